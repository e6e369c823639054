"""Sigstore bundles, verified offline against a pinned trusted root.

A bundle with a certificate (keyless signing) is verified by sigstore-python, in order:

  (1) parse     the bundle (v0.1, v0.2, v0.3), with sigstore-python's own strict model
  (2) verify    sigstore-python's ``Verifier`` against the trusted root: a signed time (log
                inclusion promise or RFC 3161 timestamp), the certificate chain at that time,
                its SCT, the log entry's inclusion proof and checkpoint, the signature over the
                DSSE envelope or over the artefact's sha256, and the log entry's consistency
                with all of them
  (3) identity  during (2), the certificate must satisfy one pinned :class:`SigstoreIdentity`
                (issuer, SAN, GitHub extensions); the first that does is the signer
  (4) bind      for DSSE, the payload sigstore-python verified is the one attest reads next

A bundle signed with a key (``verificationMaterial.publicKey``, no certificate) never comes here:
:func:`verify.signers.find_signers` checks it against the pinned keys (the envelope's signature, or a
message signature over the artefact's sha256). Its log entries are not checked: the pinned key is
the trust.

Nothing here touches the network. The default trusted root is the production one that ships
inside sigstore-python (the file its TUF client is bootstrapped with), read as is: no TUF
refresh. sigstore-python is imported only when a bundle is verified.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from verify.encoding import b64decode, format_time, parse_time
from verify.errors import (
    EvidenceRejected,
    MalformedEvidence,
    SignatureInvalid,
    TrustConfigError,
    UnknownEvidence,
)
from verify.signers import BundleVerifier
from verify.trust import Identity, SigstoreIdentity
from verify.uris import normalize_repo

if TYPE_CHECKING:
    from cryptography.x509 import Certificate
    from sigstore.hashes import Hashed
    from sigstore.models import Bundle as SigstoreBundle
    from sigstore.models import TrustedRoot
    from sigstore.verify import Verifier

    from verify.evidence import Evidence

__all__ = [
    "GITHUB_ACTIONS_ISSUER",
    "BundleVerifier",
    "CertificateClaims",
    "load_trusted_root",
    "make_bundle_verifier",
    "mismatch",
    "read_claims",
    "sigstore_identity",
]

log = logging.getLogger(__name__)

GITHUB_ACTIONS_ISSUER = "https://token.actions.githubusercontent.com"

#: The production trusted root inside sigstore-python: package and file within it.
_EMBEDDED_ROOT = ("sigstore._store", "https%3A%2F%2Ftuf-repo-cdn.sigstore.dev/trusted_root.json")
_EMBEDDED_ROOT_NAME = "the production trusted root embedded in sigstore-python"

# Fulcio certificate extensions (https://github.com/sigstore/fulcio/blob/main/docs/oid-info.md)
_OID_ISSUER_V1 = "1.3.6.1.4.1.57264.1.1"                 # raw UTF-8 (deprecated, still issued)
_OID_OTHERNAME_SAN = "1.3.6.1.4.1.57264.1.7"
_OID_ISSUER = "1.3.6.1.4.1.57264.1.8"                    # the rest: DER UTF8String
_OID_BUILD_SIGNER_URI = "1.3.6.1.4.1.57264.1.9"
_OID_RUNNER_ENVIRONMENT = "1.3.6.1.4.1.57264.1.11"
_OID_SOURCE_REPOSITORY_URI = "1.3.6.1.4.1.57264.1.12"
_OID_SOURCE_REPOSITORY_REF = "1.3.6.1.4.1.57264.1.14"

_T = TypeVar("_T")


# --- identities -----------------------------------------------------------------------------------

def sigstore_identity(*, issuer: str | None, identity: str | None = None, identity_regexp: str | None = None,
                      github_repo: str | None = None, source_ref: str | None = None,
                      signer_workflow: str | None = None, deny_self_hosted_runners: bool = False,
                      ) -> SigstoreIdentity:
    """A pinned Sigstore identity from cosign- and gh-style fields; :class:`TrustConfigError` if incomplete.

    Without ``identity`` or ``identity_regexp``, the GitHub fields imply one (as ``gh attestation
    verify`` does): the certificate's identity must be ``signer_workflow`` at some ref, else a
    workflow of ``github_repo``; the issuer then defaults to GitHub Actions'.
    """
    if identity is not None and identity_regexp is not None:
        raise TrustConfigError("give either a certificate identity or an identity regexp, not both")
    workflow = _normalize_workflow(signer_workflow) if signer_workflow else None
    repo = _normalize_github_repo(github_repo) if github_repo else None
    if identity is None and identity_regexp is None:
        if workflow is not None:
            identity_regexp = re.escape(f"https://{workflow}") + ("" if "@" in workflow else "@.+")
        elif repo is not None:
            identity_regexp = re.escape(f"https://{repo}/") + ".+"
        else:
            raise TrustConfigError("a Sigstore identity needs a certificate identity (or identity regexp), "
                                   "a GitHub repository or a signer workflow")
        issuer = issuer or GITHUB_ACTIONS_ISSUER
    if not issuer:
        raise TrustConfigError("a certificate identity needs its OIDC issuer (--certificate-oidc-issuer), "
                               "or anyone that issuer vouches for with that name would be trusted")
    if identity_regexp is not None:
        try:
            re.compile(identity_regexp)
        except re.error as e:
            raise TrustConfigError(f"identity regexp {identity_regexp!r} is not a valid regular expression: "
                                   f"{e}") from e
    return SigstoreIdentity(issuer=issuer, identity=identity, identity_regexp=identity_regexp,
                            source_repository=repo,
                            source_ref=_normalize_ref(source_ref) if source_ref else None,
                            signer_workflow=workflow, github_hosted=deny_self_hosted_runners)


def _normalize_github_repo(value: str) -> str:
    """``acme/app``, ``github.com/acme/app`` or a URL -> ``github.com/acme/app`` (host kept if given)."""
    text = value.strip().removeprefix("https://").removeprefix("http://").strip("/")
    parts = text.split("/")
    if len(parts) == 2 and "." not in parts[0]:
        text = f"github.com/{text}"
    if len(text.split("/")) != 3 or not all(text.split("/")):
        raise TrustConfigError(f"GitHub repository {value!r} is not OWNER/REPO")
    return normalize_repo(text)  # ValueError for what is not a URL at all: callers name the flag or key


def _normalize_workflow(value: str) -> str:
    """``acme/app/.github/workflows/f.yml[@ref]`` -> ``github.com/acme/app/.github/workflows/f.yml[@ref]``."""
    text = value.strip().removeprefix("https://").removeprefix("http://").strip("/")
    first = text.split("/", 1)[0]
    if "." not in first:
        text = f"github.com/{text}"
    if "/.github/workflows/" not in text:
        raise TrustConfigError(f"signer workflow {value!r} is not OWNER/REPO/.github/workflows/FILE")
    return text


def _normalize_ref(value: str) -> str:
    """A branch name means its ref (``main`` -> ``refs/heads/main``); full refs are kept."""
    return value if value.startswith("refs/") else f"refs/heads/{value}"


@dataclass(frozen=True)
class CertificateClaims:
    """What a Fulcio certificate says about its subject (unverified until the chain is)."""

    sans: tuple[str, ...]
    issuer: str | None
    build_signer_uri: str | None
    source_repository_uri: str | None
    source_repository_ref: str | None
    runner_environment: str | None

    def describe(self) -> str:
        identity = self.sans[0] if len(self.sans) == 1 else list(self.sans)
        return f"{identity!r} (issuer {self.issuer!r})"


def read_claims(cert: Certificate) -> CertificateClaims:
    """The identity claims of ``cert``; ``ValueError`` if one of its extensions is malformed."""
    from cryptography import x509

    sans: list[str] = []
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        san = None
    if san is not None:
        sans.extend(san.get_values_for_type(x509.RFC822Name))
        sans.extend(san.get_values_for_type(x509.UniformResourceIdentifier))
        sans.extend(_utf8_der(o.value) for o in san.get_values_for_type(x509.OtherName)
                    if o.type_id.dotted_string == _OID_OTHERNAME_SAN)
    raw = {e.oid.dotted_string: e.value.value for e in cert.extensions
           if isinstance(e.value, x509.UnrecognizedExtension)}

    def text(oid: str) -> str | None:
        return _utf8_der(raw[oid]) if oid in raw else None

    issuer = text(_OID_ISSUER)
    if issuer is None and _OID_ISSUER_V1 in raw:
        issuer = raw[_OID_ISSUER_V1].decode("utf-8")
    return CertificateClaims(sans=tuple(sans), issuer=issuer, build_signer_uri=text(_OID_BUILD_SIGNER_URI),
                             source_repository_uri=text(_OID_SOURCE_REPOSITORY_URI),
                             source_repository_ref=text(_OID_SOURCE_REPOSITORY_REF),
                             runner_environment=text(_OID_RUNNER_ENVIRONMENT))


def _utf8_der(data: bytes) -> str:
    """Decode one DER UTF8String (tag 0x0c), exactly; ``ValueError`` otherwise."""
    if len(data) < 2 or data[0] != 0x0C:
        raise ValueError("not a DER UTF8String")
    length, offset = data[1], 2
    if length & 0x80:
        width = length & 0x7F
        if width == 0 or width > 4 or len(data) < 2 + width:
            raise ValueError("bad DER length")
        length, offset = int.from_bytes(data[2:2 + width], "big"), 2 + width
    if len(data) != offset + length:
        raise ValueError("DER length does not match the value")
    return data[offset:].decode("utf-8")


def mismatch(claims: CertificateClaims, pinned: SigstoreIdentity) -> str | None:
    """Why ``claims`` do not satisfy ``pinned`` (the first failed requirement), or None if they do."""
    if claims.issuer != pinned.issuer:
        return f"issuer is {claims.issuer!r}, expected {pinned.issuer!r}"
    if pinned.identity is not None and pinned.identity not in claims.sans:
        return f"identity is not {pinned.identity!r}"
    regexp = pinned.identity_regexp
    if regexp is not None and not any(re.fullmatch(regexp, san) for san in claims.sans):
        return f"identity does not match {pinned.identity_regexp!r}"
    if pinned.source_repository is not None:
        found = claims.source_repository_uri
        if found is None or normalize_repo(found) != normalize_repo(pinned.source_repository):
            return f"source repository is {found!r}, expected {pinned.source_repository!r}"
    if pinned.source_ref is not None and claims.source_repository_ref != pinned.source_ref:
        return f"source ref is {claims.source_repository_ref!r}, expected {pinned.source_ref!r}"
    workflow = pinned.signer_workflow
    if workflow is not None and not _workflow_matches(claims.build_signer_uri, workflow):
        return f"signer workflow is {claims.build_signer_uri!r}, expected {pinned.signer_workflow!r}"
    if pinned.github_hosted and claims.runner_environment != "github-hosted":
        return f"runner environment is {claims.runner_environment!r}, expected 'github-hosted'"
    return None


def _workflow_matches(build_signer_uri: str | None, workflow: str) -> bool:
    """True if the Build Signer URI names ``workflow``.

    The URI is ``https://HOST/OWNER/REPO/.github/workflows/FILE@REF``; its ``@REF`` counts only
    when ``workflow`` has one too.
    """
    if build_signer_uri is None or not build_signer_uri.startswith("https://"):
        return False
    found = build_signer_uri.removeprefix("https://")
    if "@" not in workflow:
        found = found.split("@", 1)[0]
    return found == workflow


class _TrustedIdentities:
    """A sigstore-python verification policy: the certificate satisfies a pinned identity; remembers which."""

    def __init__(self, candidates: Sequence[tuple[Identity, SigstoreIdentity]]) -> None:
        self.candidates = tuple(candidates)
        self.matched: list[Identity] = []
        self.refusal: str | None = None

    def verify(self, cert: Certificate) -> None:
        from sigstore.errors import VerificationError

        try:
            claims = read_claims(cert)
        except ValueError as e:
            self.refusal = f"the signing certificate has a malformed identity extension ({e})"
            raise VerificationError(self.refusal) from e
        reasons = []
        for identity, pinned in self.candidates:
            reason = mismatch(claims, pinned)
            if reason is None:
                if identity not in self.matched:
                    self.matched.append(identity)
            else:
                reasons.append(f"{identity.name}: {reason}")
        if self.matched:
            return
        self.refusal = (f"signed by {claims.describe()}, which no trusted identity allows "
                        f"({'; '.join(reasons)})")
        raise VerificationError(self.refusal)


# --- trusted roots --------------------------------------------------------------------------------

def load_trusted_root(path: Path | None) -> TrustedRoot:
    """The trusted root in ``path``, else the production one embedded in sigstore-python (never refreshed)."""
    import importlib.resources

    from sigstore.models import TrustedRoot

    if path is not None:
        if not path.is_file():
            raise TrustConfigError(f"cannot read trusted root {path}: no such file")
        return _parse_trusted_root(TrustedRoot, path, str(path))
    package, name = _EMBEDDED_ROOT
    try:
        resource = importlib.resources.files(package).joinpath(name)
        found = resource.is_file()
    except ModuleNotFoundError:
        found = False
    if not found:
        raise TrustConfigError(f"{_EMBEDDED_ROOT_NAME} is missing from this installation; "
                               "pass --trusted-root FILE")
    with importlib.resources.as_file(resource) as file:
        return _parse_trusted_root(TrustedRoot, file, _EMBEDDED_ROOT_NAME)


def _parse_trusted_root(cls: type[TrustedRoot], path: Path, name: str) -> TrustedRoot:
    try:
        return cls.from_file(str(path))
    except OSError as e:
        raise TrustConfigError(f"cannot read trusted root {name}: {e.strerror}") from e
    except Exception as e:  # pydantic, protobuf and sigstore errors alike: the file is not a trusted root
        raise TrustConfigError(f"{name} is not a Sigstore trusted root ({_reason(e)})") from e


def _reason(error: BaseException) -> str:
    """A third-party exception's message, on one line and not too long.

    A pydantic validation error (raised, or wrapped by sigstore-python) is told by its first
    problem: where, and what.
    """
    for cause in (error, error.__cause__, error.__context__):
        problems = getattr(cause, "errors", None)
        if callable(problems):
            try:
                first = problems()[0]
                where = ".".join(str(part) for part in first["loc"])
                text = f"{where}: {first['msg']}"
                break
            except (TypeError, LookupError, ValueError):
                continue
    else:
        text = str(error)
    text = " ".join(text.split()) or type(error).__name__
    return text if len(text) <= 200 else text[:197] + "..."


# --- the bundle verifier --------------------------------------------------------------------------

def make_bundle_verifier(*, trusted_root: Path | None) -> BundleVerifier:
    """The keyless bundle verifier :func:`verify.signers.find_signers` calls (``TrustRun.bundles``).

    ``trusted_root`` is a trusted_root.json (None: the production root embedded in sigstore-python),
    loaded when the first keyless bundle is met.
    """
    return _BundleVerifier(trusted_root)


class _BundleVerifier:
    def __init__(self, trusted_root: Path | None) -> None:
        self._root_path = trusted_root
        self._verifier: Verifier | None = None
        self._windows: TrustWindows | None = None

    def __call__(self, item: Evidence, identities: Sequence[Identity], *,
                 message_sha256: str | None) -> tuple[Identity, ...]:
        if item.bundle is None or not item.bundle.keyless:
            raise UnknownEvidence(f"{item.source} is not a keyless Sigstore bundle")
        signers = _verify_keyless(item, identities, self._sigstore_verifier(), message_sha256)
        # (5) every key the bundle relies on was trusted at the time it was signed
        if self._windows is None:
            self._windows = TrustWindows.of(_trusted_root_document(self._root_path))
        self._windows.check(item)
        return signers

    def _sigstore_verifier(self) -> Verifier:
        if self._verifier is None:
            import logging

            from sigstore.errors import Error
            from sigstore.verify import Verifier

            # sigstore-python logs warnings (a root CA in a bundle, say); the verdict says what matters, and
            # without a handler they would reach stderr through logging's last resort
            logger = logging.getLogger("sigstore")
            if not any(isinstance(h, logging.NullHandler) for h in logger.handlers):
                logger.addHandler(logging.NullHandler())
            root = load_trusted_root(self._root_path)
            try:
                self._verifier = Verifier(trusted_root=root)
            except Error as e:
                name = self._root_path or _EMBEDDED_ROOT_NAME
                raise TrustConfigError(f"trusted root {name} cannot verify bundles ({_reason(e)})") from e
        return self._verifier


def _verify_keyless(item: Evidence, identities: Sequence[Identity], verifier: Verifier,
                    message_sha256: str | None) -> tuple[Identity, ...]:
    """Steps (1) to (4) for a bundle with a certificate."""
    source = item.source
    candidates = [(identity, pinned) for identity in identities for pinned in identity.sigstore]
    # (1) parse
    bundle = _parse_bundle(item)
    if not candidates:
        raise SignatureInvalid(f"{source} is signed keylessly, and no Sigstore identity is trusted; pass "
                               "--certificate-identity and --certificate-oidc-issuer (or --github-repo), or "
                               "name one in the policy")
    # (2) verify, and (3) the identity, which sigstore-python checks through ``policy``
    policy = _TrustedIdentities(candidates)
    if item.envelope is None:
        if message_sha256 is None:
            raise SignatureInvalid(f"{source}: a message signature needs the artefact's sha256")
        digest = bytes.fromhex(message_sha256)
        _call_sigstore(lambda: verifier.verify_artifact(_hashed(digest), bundle, policy), source, policy)
    else:
        verified = _call_sigstore(lambda: verifier.verify_dsse(bundle, policy), source, policy)
        # (4) bind: what attest reads next is what was verified
        if verified != (item.envelope.payload_type, item.envelope.payload):
            raise MalformedEvidence(f"{source}: the DSSE envelope attest read is not the one Sigstore "
                                    "verified")
    if not policy.matched:  # sigstore-python always applies the policy; refuse if it ever did not
        raise SignatureInvalid(f"{source}: the signing certificate's identity was not checked")
    log.debug("%s: Sigstore bundle verified, signed by %s", source, ", ".join(i.name for i in policy.matched))
    return tuple(policy.matched)


# --- (5) validity windows of the trusted root at signing time ---------------------------------------

def _trusted_root_document(path: Path | None) -> Any:
    """The trusted root's JSON (the same file sigstore-python read), strictly."""
    import importlib.resources

    from verify import _json

    try:
        if path is not None:
            data = path.read_bytes()
        else:
            package, name = _EMBEDDED_ROOT
            data = importlib.resources.files(package).joinpath(name).read_bytes()
    except OSError as e:
        raise TrustConfigError(f"cannot read trusted root {path or _EMBEDDED_ROOT_NAME}: {e.strerror}") from e
    try:
        return _json.loads(data, what=f"trusted root {path or _EMBEDDED_ROOT_NAME}")
    except EvidenceRejected as e:
        raise TrustConfigError(str(e)) from e


Window = tuple[datetime, datetime | None]


@dataclass(frozen=True)
class TrustWindows:
    """When each key of a trusted root may be relied on (``validFor``, both ends inclusive).

    sigstore-python accepts a log, CT log or CA key whose ``validFor.end`` has passed, whatever the
    signing time. attest refuses a bundle unless the time it was signed (its verified timestamps: the
    integrated time an inclusion promise signs, and RFC 3161 timestamps) lies inside the window of
    the transparency log that holds its entry, of every CT log that gave its certificate an SCT, and of
    a certificate authority that issued its certificate.
    """

    tlogs: Mapping[bytes, Window]
    ctlogs: Mapping[bytes, Window]
    authorities: tuple[tuple[tuple[Any, ...], Window], ...]
    """(certificates of the CA's chain, window)."""

    @classmethod
    def of(cls, root: Any) -> TrustWindows:
        from cryptography import x509

        def window(entry: Any, what: str) -> Window:
            valid = entry.get("validFor") if isinstance(entry, dict) else None
            if not isinstance(valid, dict) or "start" not in valid:
                raise TrustConfigError(f"the trusted root's {what} has no validFor.start")
            try:
                start = parse_time(valid["start"], what=f"the trusted root's {what} validFor.start")
                end = parse_time(valid["end"], what=f"the trusted root's {what} validFor.end") \
                    if valid.get("end") is not None else None
            except MalformedEvidence as e:
                raise TrustConfigError(str(e)) from e
            return start, end

        def logs(key: str) -> dict[bytes, Window]:
            found: dict[bytes, Window] = {}
            for entry in root.get(key) or [] if isinstance(root, dict) else []:
                log_id = entry.get("logId", {}).get("keyId") if isinstance(entry, dict) else None
                try:
                    found[b64decode(log_id, what=f"the trusted root's {key} logId")] = \
                        window(entry.get("publicKey"), f"{key} key")
                except MalformedEvidence as e:
                    raise TrustConfigError(str(e)) from e
            return found

        authorities = []
        for entry in root.get("certificateAuthorities") or [] if isinstance(root, dict) else []:
            chain = entry.get("certChain", {}).get("certificates", []) if isinstance(entry, dict) else []
            try:
                certificates = tuple(x509.load_der_x509_certificate(b64decode(c.get("rawBytes"), what="a CA"))
                                     for c in chain if isinstance(c, dict))
            except (MalformedEvidence, ValueError) as e:
                raise TrustConfigError(f"the trusted root holds an unreadable CA certificate ({e})") from e
            authorities.append((certificates, window(entry, "certificate authority")))
        return cls(tlogs=logs("tlogs"), ctlogs=logs("ctlogs"), authorities=tuple(authorities))

    def check(self, item: Evidence) -> None:
        """Raise :class:`SignatureInvalid` unless every key ``item`` relies on was valid when it was signed."""
        from cryptography import x509

        bundle = item.bundle
        assert bundle is not None and bundle.certificate is not None
        times = _signing_times(bundle)
        if not times:
            raise SignatureInvalid(f"{item.source}: the bundle has no verified signing time to check the trusted "
                                   "root's validity windows against")
        leaf = x509.load_der_x509_certificate(bundle.certificate)
        for entry in bundle.log_entries[:1]:
            window = self.tlogs.get(entry.log_id or b"")
            when = entry.integrated_time if entry.integrated_time is not None else min(times)
            if window is not None and not _inside(when, window):
                raise SignatureInvalid(f"{item.source}: its transparency log entry is dated {format_time(when)}, "
                                       f"outside the validity of that log's key in the trusted root "
                                       f"({_show(window)})")
        for log_id in _sct_log_ids(leaf):
            window = self.ctlogs.get(log_id)
            if window is not None and not all(_inside(t, window) for t in times):
                raise SignatureInvalid(f"{item.source}: its certificate's SCT is from a CT log whose key the trusted "
                                       f"root trusts only {_show(window)}, not at signing time {_show_times(times)}")
        issuers = [w for certs, w in self.authorities if any(c.subject == leaf.issuer for c in certs)]
        if issuers and not any(all(_inside(t, w) for t in times) for w in issuers):
            raise SignatureInvalid(f"{item.source}: the certificate authority that issued its certificate is trusted "
                                   f"only {', '.join(_show(w) for w in issuers)}, not at signing time "
                                   f"{_show_times(times)}")


def _signing_times(bundle: Any) -> list[datetime]:
    """The bundle's verified times: an integrated time signed by an inclusion promise, and RFC 3161 times."""
    times = [e.integrated_time for e in bundle.log_entries[:1] if e.promised and e.integrated_time is not None]
    if bundle.timestamps:
        from rfc3161_client import decode_timestamp_response

        for der in bundle.timestamps:
            try:
                when = decode_timestamp_response(der).tst_info.gen_time
            except Exception as e:  # sigstore-python verified it already: a surprise here is a refusal
                raise MalformedEvidence(f"a signed timestamp cannot be read ({_reason(e)})") from e
            times.append(when if when.tzinfo is not None else when.replace(tzinfo=UTC))
    return times


def _sct_log_ids(leaf: Any) -> list[bytes]:
    from cryptography import x509

    try:
        scts = leaf.extensions.get_extension_for_class(x509.PrecertificateSignedCertificateTimestamps).value
    except x509.ExtensionNotFound:
        return []
    return [sct.log_id for sct in scts]


def _inside(when: datetime, window: Window) -> bool:
    start, end = window
    return start <= when and (end is None or when <= end)


def _show(window: Window) -> str:
    start, end = window
    return f"from {format_time(start)}" + (f" to {format_time(end)}" if end is not None else "")


def _show_times(times: Sequence[datetime]) -> str:
    return " and ".join(format_time(t) for t in times)


def _call_sigstore(call: Callable[[], _T], source: str, policy: _TrustedIdentities) -> _T:
    """``call()``, with anything sigstore-python raises translated into one of our errors."""
    try:
        return call()
    except Exception as e:
        raise _translate(e, source, policy) from e


def _parse_bundle(item: Evidence) -> SigstoreBundle:
    from sigstore.models import Bundle

    try:
        return Bundle.from_json(item.raw)
    except Exception as e:  # InvalidBundle, and whatever the models raise on bytes they do not expect
        raise MalformedEvidence(f"{item.source} is not a valid Sigstore bundle ({_reason(e)})") from e


def _hashed(sha256: bytes) -> Hashed:
    from sigstore.hashes import Hashed
    from sigstore_models.common.v1 import HashAlgorithm

    return Hashed(algorithm=HashAlgorithm.SHA2_256, digest=sha256)


def _translate(error: Exception, source: str, policy: _TrustedIdentities) -> Exception:
    """One of our errors, with one sentence, for whatever sigstore-python raised."""
    from sigstore.errors import VerificationError

    if policy.refusal is not None:
        return SignatureInvalid(f"{source}: {policy.refusal}")
    if isinstance(error, VerificationError):
        return SignatureInvalid(f"{source}: the Sigstore bundle does not verify against the trusted root "
                                f"({_reason(error)})")
    return MalformedEvidence(f"{source}: the Sigstore bundle cannot be verified ({type(error).__name__}: "
                             f"{_reason(error)})")
