"""In-toto layouts: an additional requirement of the gate (``attest verify --layout``), decided by in-toto.

A layout, signed by the owner of a supply chain, names its steps, who may perform each and what each
may use and make; links, signed by those functionaries, say what each step did (``attest build
--link`` writes the link of the build step). The provenance check comes first and is never replaced:
this is one more requirement, and the run passes only if both hold.

:func:`load_layout` reads the layout and the pinned layout keys; what cannot be read or used is a
configuration error (exit 3):

  (0) the layout parses as in-toto layout metadata, has at least one step (an empty layout proves
      nothing) and no inspections: an inspection is a command the verifier runs, and attest runs no
      command a layout names (``in-toto-verify`` does; verify such a layout with it)

:func:`verify_layout` then decides with in-toto's own verifylib functions, in in-toto's order; every
failure is a rejection (exit 1) that names the layout:

  (1) the layout is signed by every pinned layout key (``verify_metadata_signatures``)
  (2) it has not expired (``verify_layout_expiration``)
  (3) the links: ``STEP.KEYID8.link`` of every authorised functionary, each read within the evidence
      limits (a link that is there but malformed is a rejection, as in in-toto)
  (4) per step, a threshold of links validly signed by authorised functionaries
      (``verify_link_signature_thresholds``); none of them a sublayout, which attest does not follow
  (5) the functionaries of a step agree (``verify_threshold_constraints``)
  (6) every step's material and product rules (``verify_all_item_rules``)
  (7) attest's own binding: the artefact is one of the products of the layout's last step (in-toto
      leaves this to an inspection); without it, a valid chain of links about another build would pass

A step whose link ran another command than the layout expects is a warning, as in in-toto.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from verify import sslib
from verify.digests import DigestSet
from verify.errors import (
    DigestMismatch,
    EvidenceRejected,
    InputError,
    LimitExceeded,
    MalformedEvidence,
    PolicyError,
    PolicyViolation,
    SignatureInvalid,
    TrustConfigError,
    UnknownEvidence,
)
from verify.files import read_file
from verify.formats import strict_json
from verify.limits import MAX_EVIDENCE_BYTES
from verify.matching import subject_matches
from verify.trust import load_public_key_file, small_order

__all__ = ["LayoutVerdict", "LoadedLayout", "load_layout", "verify_layout"]


@dataclass(frozen=True)
class LoadedLayout:
    """A layout as read from disk (not yet trusted) and the pinned keys that must have signed it."""

    path: Path
    metadata: Any = field(repr=False)
    """in-toto's ``Metadata`` (a Metablock or a DSSE envelope) holding the ``Layout``."""
    keys: Mapping[str, dict[str, Any]] = field(repr=False)
    """in-toto key dictionaries by keyid, as ``in-toto-verify --verification-keys`` loads them."""
    key_files: Mapping[str, str] = field(repr=False)
    """keyid -> the file it came from, for messages."""


@dataclass(frozen=True)
class LayoutVerdict:
    """A layout that passed: the links that counted, the product that is the artefact, the warnings."""

    layout: str
    steps: tuple[tuple[str, tuple[str, ...]], ...]
    """(step name, keyids of the links that counted)."""
    product: str
    """The name under which the last step's link records the artefact."""
    warnings: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"layout": self.layout, "steps": [{"name": n, "links": list(k)} for n, k in self.steps],
                "product": self.product, "warnings": list(self.warnings)}


# --- (0) reading -----------------------------------------------------------------------------------------------

def load_layout(path: Path, key_files: Sequence[Path]) -> LoadedLayout:
    """The layout at ``path`` and the layout keys; raise a :class:`ConfigError` for what is unusable."""
    if not key_files:
        raise TrustConfigError(f"in-toto layout {path} needs a pinned layout key (--layout-key PEM): in-toto "
                               "verifies the layout's own signature")
    keys: dict[str, dict[str, Any]] = {}
    names: dict[str, str] = {}
    for file in key_files:
        key = _layout_key(file)
        keys[key["keyid"]] = key
        names[key["keyid"]] = str(file)
    try:
        metadata = _parse(_read(path, what="in-toto layout"), what=f"in-toto layout {path}")
        layout = _payload(metadata, what=f"in-toto layout {path}")
    except EvidenceRejected as e:
        raise PolicyError(str(e)) from e
    if layout.type_ != "layout":
        raise PolicyError(f"{path} is in-toto {layout.type_} metadata, not a layout")
    if not layout.steps:
        raise PolicyError(f"in-toto layout {path} has no steps; an empty layout proves nothing")
    if low := [step.name for step in layout.steps if not isinstance(step.threshold, int) or step.threshold < 1]:
        raise PolicyError(f"in-toto layout {path}: step {low[0]!r} has a threshold below 1; a step needs at least "
                          "one functionary's link")
    _no_key_anyone_signs_with(layout.keys or {}, path)
    if layout.inspect:
        names_ = ", ".join(repr(i.name) for i in layout.inspect)
        raise PolicyError(f"in-toto layout {path} has inspections ({names_}): commands a verifier runs, which "
                          "attest does not; verify this layout with in-toto-verify, or drop the inspections")
    return LoadedLayout(path=path, metadata=metadata, keys=keys, key_files=names)


def _no_key_anyone_signs_with(keys: dict[str, Any], path: Path) -> None:
    """A policy error if the layout authorises a functionary key for which anyone can sign (a small-order Ed25519
    point): a link 'signed' with R = that point and S = 0 verifies, and no private key exists."""
    for keyid, key in keys.items():
        public = key.get("keyval", {}).get("public", "") if isinstance(key, dict) else ""
        if isinstance(key, dict) and key.get("keytype") == "ed25519" and _small_ed25519(public):
            raise PolicyError(f"in-toto layout {path}: functionary key {keyid[:16]} is an Ed25519 key of small order, "
                              "for which signatures can be made without any private key; the layout must not "
                              "authorise it")


def _small_ed25519(public: Any) -> bool:
    """Whether an in-toto Ed25519 key's ``keyval.public`` (hex) is no key (:func:`verify.trust.small_order`)."""
    try:
        raw = bytes.fromhex(public) if isinstance(public, str) else b""
    except ValueError:
        return False  # (not hex: in-toto refuses the key itself)
    return len(raw) == 32 and small_order(raw)


def _layout_key(file: Path) -> dict[str, Any]:
    """A PEM public key as in-toto's key dictionary (its default scheme), as in-toto-verify loads it."""
    sslib.load()  # before securesystemslib and in-toto: without boto3 (verify/sslib.py)
    from cryptography.hazmat.primitives.serialization import load_der_public_key
    from securesystemslib.signer import SSlibKey  # type: ignore[attr-defined]

    pinned = load_public_key_file(file)  # TrustConfigError: unreadable, not PEM, too weak
    try:
        key = SSlibKey.from_crypto(load_der_public_key(pinned.spki_der))
    except ValueError as e:
        raise TrustConfigError(f"in-toto cannot use layout key {file} ({e})") from e
    found: dict[str, Any] = key.to_dict()
    found["keyid"] = key.keyid
    return found


def _read(path: Path, *, what: str) -> bytes:
    return read_file(path, what=what, limit=MAX_EVIDENCE_BYTES, too_large=LimitExceeded)


def _read_link(path: Path) -> bytes | None:
    """A link file's bytes; None if there is none. The link directory is untrusted storage: a link that
    is there but cannot be read (a directory, a FIFO, no permission) is a rejection."""
    try:
        return _read(path, what="in-toto link")
    except InputError as e:
        if isinstance(e.__cause__, FileNotFoundError):
            return None
        raise EvidenceRejected(str(e)) from e


def _parse(data: bytes, *, what: str) -> Any:
    """in-toto metadata (a Metablock or a DSSE envelope) from strict JSON; malformed: a rejection. A GPG signature
    (its ``signature`` and ``other_headers``) is one attest does not verify: refused here, before in-toto's GPG
    code reads what it does not check."""
    sslib.load()  # before securesystemslib and in-toto: without boto3 (verify/sslib.py)
    from in_toto.models.metadata import Metadata  # type: ignore[import-untyped]
    from securesystemslib.exceptions import Error as SslibError

    document = strict_json.loads(data, what=what)
    if not isinstance(document, dict):
        raise MalformedEvidence(f"{what} is not in-toto metadata (a JSON object)")
    signatures = document.get("signatures")
    if isinstance(signatures, list) and any(isinstance(s, dict) and ("other_headers" in s or "signature" in s)
                                            for s in signatures):
        raise MalformedEvidence(f"{what} is signed with GPG, which attest does not verify; sign it with a key")
    try:
        return Metadata.from_dict(document)
    except (SslibError, ValueError, KeyError, TypeError, AttributeError) as e:
        reason = f"{type(e).__name__}: {e}" if str(e) else type(e).__name__
        raise MalformedEvidence(f"{what} is not in-toto metadata ({reason})") from e


def _payload(metadata: Any, *, what: str) -> Any:
    """The layout or link the metadata carries (a DSSE envelope's payload is read here): one that does not read is
    malformed, never a traceback."""
    from securesystemslib.exceptions import Error as SslibError

    try:
        return metadata.get_payload()
    except (SslibError, ValueError, KeyError, TypeError, AttributeError) as e:
        reason = f"{type(e).__name__}: {e}" if str(e) else type(e).__name__
        raise MalformedEvidence(f"{what} carries no in-toto layout or link ({reason[:200]})") from e


# --- (1)-(7) the decision ------------------------------------------------------------------------------------------

def verify_layout(loaded: LoadedLayout, *, link_dir: Path, digests: DigestSet,
                  accepted: Sequence[str]) -> LayoutVerdict:
    """Pass the layout's supply chain and bind it to the artefact, or raise why not (see the module docstring)."""
    sslib.load()  # before securesystemslib and in-toto: without boto3 (verify/sslib.py)
    from in_toto import verifylib  # type: ignore[import-untyped]
    from in_toto.exceptions import (  # type: ignore[import-untyped]
        LayoutExpiredError,
        RuleVerificationError,
        ThresholdVerificationError,
    )
    from securesystemslib.exceptions import Error as SslibError

    where = f"in-toto layout {loaded.path}"
    layout = loaded.metadata.get_payload()
    try:
        _check_layout_signatures(loaded)  # (1)
        try:
            verifylib.verify_layout_expiration(layout)  # (2)
        except LayoutExpiredError as e:
            raise PolicyViolation(f"{where} expired at {layout.expires}; its owner must sign a new one") from e
        found = _load_links(layout, link_dir, where=where)  # (3)
        try:
            signed = verifylib.verify_link_signature_thresholds(layout, found)  # (4)
        except ThresholdVerificationError as e:
            raise SignatureInvalid(f"{where}: {_first_line(e).rstrip('.')} in {link_dir} (a link signed by a key "
                                   "the layout does not authorise, or changed after it was signed)") from e
        chain = _links_only(signed, where=where)
        warnings = _command_warnings(layout, chain, where=where)
        try:
            verifylib.verify_threshold_constraints(layout, chain)  # (5)
        except ThresholdVerificationError as e:
            raise PolicyViolation(f"{where}: the functionaries of a step disagree: {_first_line(e)}") from e
        reduced = verifylib.reduce_chain_links(chain)
        try:
            verifylib.verify_all_item_rules(layout.steps, reduced)  # (6)
        except RuleVerificationError as e:
            raise PolicyViolation(f"{where}: {_first_line(e)}") from e
        summary = verifylib.get_summary_link(layout, reduced, "")
    except EvidenceRejected:
        raise
    except SslibError as e:  # anything else in-toto refuses: a rejection, never a traceback
        raise EvidenceRejected(f"{where}: in-toto verification failed ({type(e).__name__}: {_first_line(e)})") from e
    product = _product(summary.products, digests, accepted)  # (7)
    if product is None:
        last = layout.steps[-1].name
        raise DigestMismatch(f"{where}: the artefact ({digests.short()}) is not among the "
                             f"{len(summary.products)} product(s) of its last step {last!r}; the links describe "
                             "another build")
    steps = tuple((step.name, tuple(sorted(signed.get(step.name, {})))) for step in layout.steps)
    return LayoutVerdict(layout=str(loaded.path), steps=steps, product=product, warnings=warnings)


def _check_layout_signatures(loaded: LoadedLayout) -> None:
    """(1) Every pinned layout key has a valid signature on the layout."""
    from in_toto import verifylib
    from in_toto.exceptions import SignatureVerificationError

    for keyid, key in loaded.keys.items():
        try:
            verifylib.verify_metadata_signatures(loaded.metadata, {keyid: key})
        except SignatureVerificationError as e:
            raise SignatureInvalid(f"in-toto layout {loaded.path} is not signed by layout key "
                                   f"{loaded.key_files[keyid]} ({_first_line(e)})") from e


def _load_links(layout: Any, link_dir: Path, *, where: str) -> dict[str, dict[str, Any]]:
    """(3) in-toto's ``load_links_for_layout``, reading each file within the evidence limits."""
    from in_toto.models.link import FILENAME_FORMAT  # type: ignore[import-untyped]

    found: dict[str, dict[str, Any]] = {}
    for step in layout.steps:
        links: dict[str, Any] = {}
        for authorised in step.pubkeys:
            for keyid in [authorised, *layout.keys.get(authorised, {}).get("subkeys", {})]:
                path = link_dir / FILENAME_FORMAT.format(step_name=step.name, keyid=keyid)
                data = _read_link(path)
                if data is not None:  # authorised is not required
                    links[keyid] = _parse(data, what=f"in-toto link {path}")
        if len(links) < step.threshold:
            raise EvidenceRejected(f"{where}: step {step.name!r} needs {step.threshold} link(s) from its "
                                   f"functionaries and {link_dir} holds {len(links)}; was the step run with "
                                   "'attest build --link'?")
        found[step.name] = links
    return found


def _links_only(signed: Mapping[str, Mapping[str, Any]], *, where: str) -> dict[str, dict[str, Any]]:
    """in-toto's ``verify_sublayouts`` where no link is a sublayout: each step's links by keyid."""
    chain: dict[str, dict[str, Any]] = {}
    for step, links in signed.items():
        chain[step] = {}
        for keyid, metadata in links.items():
            payload = _payload(metadata, what=f"{where}: the evidence for step {step!r}")
            if payload.type_ != "link":
                raise UnknownEvidence(f"{where}: the evidence for step {step!r} signed by {keyid[:8]} is a "
                                      "sublayout, which attest does not follow; verify it with in-toto-verify")
            chain[step][keyid] = payload
    return chain


def _command_warnings(layout: Any, chain: Mapping[str, Mapping[str, Any]], *, where: str) -> tuple[str, ...]:
    """In-toto's command alignment: a warning only, as the in-toto specification says."""
    warnings = []
    for step in layout.steps:
        for keyid, link in chain.get(step.name, {}).items():
            if step.expected_command and list(link.command) != list(step.expected_command):
                warnings.append(f"{where}: step {step.name!r} ran {link.command!r} (link by {keyid[:8]}) but the "
                                f"layout expects {step.expected_command!r}")
    return tuple(warnings)


def _product(products: Mapping[str, Mapping[str, str]], digests: DigestSet, accepted: Sequence[str]) -> str | None:
    return next((name for name, digest in sorted(products.items()) if subject_matches(digest, digests, accepted)),
                None)


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
