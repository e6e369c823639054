"""An in-toto link for the build step: recorded with in-toto's runlib, signed by attest's signer.

``attest build --link FILE`` writes, beside the provenance, the classic in-toto evidence for one
step of a supply chain (an in-toto ``Link`` in a ``Metablock``, as ``in-toto-run`` writes it), so that
an in-toto layout can require the build and ``in-toto-verify`` (or ``attest verify --layout``) can
check it:

* ``materials``: the commit's tracked regular files (``git ls-tree -r HEAD``) and the bound lockfiles,
  as they are in the work tree before CMD runs, hashed by in-toto's own recorder (sha256), named
  relative to the repository root. Symbolic links and submodules are not recorded (in-toto would
  follow them out of the tree), and neither are in-toto's default exclusions (``*.link*``, ``*.pyc``,
  ``*~``): every tracked file counts;
* ``products``: the artefacts, recorded by in-toto after CMD, each of which must have the sha256 the
  provenance's subject has (an artefact changed between the two reads is refused);
* ``command``: CMD; ``byproducts``: its return value (its output went to stderr, unrecorded);
* the signature: the build's own signer, through :class:`InTotoSigner`, with the keyid in-toto computes
  for the signer's public key (what ``in-toto-verify`` and a layout name it by).

Keyless signing has no place here: a layout pins functionaries' public keys, and a Sigstore
certificate is no such key (``attest build`` refuses ``--link`` with ``--signer sigstore``).
"""

from __future__ import annotations

import os
import stat
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from verify import sslib

sslib.load()  # securesystemslib without boto3 (verify/sslib.py): a key signer's build need not import it
from securesystemslib.signer import Key, Signature, Signer  # type: ignore[attr-defined]  # noqa: E402

from attest.errors import BuildRefused, SignerError  # noqa: E402

if TYPE_CHECKING:
    from securesystemslib.signer import SecretsHandler  # type: ignore[attr-defined]

    from attest.collect import Artifact
    from attest.signers import Signer as AttestSigner

__all__ = ["MAX_MATERIALS", "STEP", "InTotoSigner", "SignedLink", "link_file", "record_materials",
           "record_products", "sign_link"]

STEP = "build"
"""The step name the link records unless told otherwise: a layout's step must be called the same."""

MAX_MATERIALS = 100_000
"""Tracked files recorded at most; a larger commit is refused (name fewer with a smaller repository)."""

_REGULAR_MODES = ("100644", "100755")
_EXCLUDE_NOTHING = [".git"]
"""in-toto replaces an empty list of exclusions by its defaults; nothing tracked lives under .git/."""
_RESOLVER_SCHEMES = ("file", "dir", "ostree")
"""Prefixes (``SCHEME:path``) that in-toto's recorder reads as a resolver, not as a file name."""

Digests = Mapping[str, str]


@dataclass(frozen=True)
class SignedLink:
    """A signed link, ready to write."""

    data: bytes
    """The JSON ``in-toto-run`` writes (a Metablock with one signature)."""
    keyid: str
    """in-toto's keyid of the signing key (the one a layout lists for the step)."""
    step: str

    @property
    def filename(self) -> str:
        """The name ``in-toto-verify`` looks for: ``STEP.KEYID[:8].link``."""
        from in_toto.models.link import FILENAME_FORMAT  # type: ignore[import-untyped]

        name: str = FILENAME_FORMAT.format(step_name=self.step, keyid=self.keyid)
        return name


# --- materials and products, recorded by in-toto ------------------------------------------------------------

def record_materials(root: Path, lockfiles: Sequence[str]) -> dict[str, dict[str, str]]:
    """The commit's tracked regular files and the lockfiles, as in-toto records them from the work tree."""
    names = _tracked_files(root)
    tracked = set(names)
    names.extend(lock for lock in lockfiles if lock not in tracked)
    present = [name for name in names if _is_regular_file(root / name)]  # --allow-dirty: a deleted file
    return _record(root, present)


def record_products(root: Path, artifacts: Sequence[Artifact],
                    subjects: Sequence[tuple[str, Digests]]) -> dict[str, dict[str, str]]:
    """The artefacts, as in-toto records them; each must have the sha256 the provenance gives it."""
    for artifact in artifacts:
        try:
            artifact.path.resolve().relative_to(root.resolve())
        except ValueError as e:
            raise BuildRefused(f"artefact {artifact.path} is outside the repository {root}; with --link every "
                               "artefact must be inside it (in-toto names products relative to the repository "
                               "root)") from e
    names = [name for name, _ in subjects]
    _check_names(names)
    products = _record(root, names)
    for name, digests in subjects:
        recorded = products.get(name, {}).get("sha256")
        if recorded != digests["sha256"]:
            found = f"sha256:{recorded}" if recorded else "no file"
            raise BuildRefused(f"artefact {name} changed while it was attested (the provenance has sha256:"
                               f"{digests['sha256']}, in-toto then found {found}); nothing was written")
    return products


def _tracked_files(root: Path) -> list[str]:
    """The paths of the regular files of HEAD's tree, relative to the repository root."""
    import subprocess

    try:
        done = subprocess.run(["git", "-C", str(root), "ls-tree", "-r", "-z", "--full-tree", "HEAD"],
                              capture_output=True, check=False)
    except FileNotFoundError as e:
        raise BuildRefused("git is not installed; attest build records the commit it builds") from e
    if done.returncode != 0:
        raise BuildRefused(f"git ls-tree HEAD failed in {root}: {done.stderr.decode(errors='replace').strip()}")
    names: list[str] = []
    for entry in done.stdout.split(b"\0"):
        if not entry:
            continue
        info, _, raw = entry.partition(b"\t")
        if info.split(b" ")[0].decode("ascii") not in _REGULAR_MODES:
            continue  # a symbolic link (120000) or a submodule (160000)
        try:
            names.append(raw.decode("utf-8"))
        except UnicodeDecodeError as e:
            raise BuildRefused(f"tracked file {raw!r} is not named in UTF-8; in-toto records names as text") from e
        if len(names) > MAX_MATERIALS:
            raise BuildRefused(f"the commit tracks more than {MAX_MATERIALS} files; --link records at most "
                               f"{MAX_MATERIALS} materials")
    _check_names(names)
    return names


def _check_names(names: Sequence[str]) -> None:
    for name in names:
        scheme, colon, _ = name.partition(":")
        if colon and scheme in _RESOLVER_SCHEMES:
            raise BuildRefused(f"{name} reads as an in-toto resolver URI ({scheme}:...), which in-toto would not "
                               "record as this file; rename it or build without --link")


def _is_regular_file(path: Path) -> bool:
    try:
        return stat.S_ISREG(path.lstat().st_mode)
    except OSError:
        return False


def _record(root: Path, names: Sequence[str]) -> dict[str, dict[str, str]]:
    """in-toto's recorder over ``names`` (relative to ``root``), without following directory links.

    The recorder changes the process's directory to ``root`` and does not change it back on failure;
    this does.
    """
    from in_toto.runlib import record_artifacts_as_dict  # type: ignore[import-untyped]

    if not names:
        return {}
    here = os.getcwd()
    try:
        recorded: dict[str, dict[str, str]] = record_artifacts_as_dict(
            list(names), exclude_patterns=list(_EXCLUDE_NOTHING), base_path=str(root), follow_symlink_dirs=False)
    except OSError as e:
        raise BuildRefused(f"in-toto could not record {e.filename or 'a file'}: {e.strerror}") from e
    finally:
        os.chdir(here)
    return recorded


# --- the signer -------------------------------------------------------------------------------------------------

class InTotoSigner(Signer):
    """attest's signer (a key file or a KMS key) as the securesystemslib ``Signer`` in-toto signs with.

    The keyid is the one securesystemslib computes for the public key and its scheme, as
    ``in-toto-verify --verification-keys`` and ``Layout.add_functionary_key_from_path`` do. Which
    scheme attest's signer uses (an RSA KMS key may sign PSS or PKCS#1 v1.5) is found by checking the
    signature: the first of in-toto's schemes for the key under which it verifies.
    """

    def __init__(self, signer: AttestSigner) -> None:
        self._signer = signer
        self._keys = _keys_for(signer.public_key_pem(), name=signer.keyid)
        self._key = self._keys[0]

    @property
    def public_key(self) -> Key:
        """The key (and scheme) the last signature verified with; before any, the default scheme's."""
        return self._key

    @classmethod
    def from_priv_key_uri(cls, priv_key_uri: str, public_key: Key,
                          secrets_handler: SecretsHandler | None = None) -> InTotoSigner:
        raise ValueError("an InTotoSigner wraps an attest signer; build it with InTotoSigner(signer)")

    def sign(self, payload: bytes) -> Signature:
        from securesystemslib.exceptions import UnverifiedSignatureError

        raw = self._signer.sign(payload)
        for key in self._keys:
            signature = Signature(keyid=key.keyid, sig=raw.hex())
            try:
                key.verify_signature(signature, payload)
            except UnverifiedSignatureError:
                continue
            self._key = key
            return signature
        schemes = ", ".join(key.scheme for key in self._keys)
        raise SignerError(f"the in-toto link signature by {self._signer.keyid} does not verify under any in-toto "
                          f"scheme of its public key ({schemes})")


def _keys_for(pem: bytes, *, name: str) -> list[Key]:
    """in-toto's keys for ``pem``: its default scheme first; for RSA, PKCS#1 v1.5 too."""
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.hazmat.primitives.serialization import load_pem_public_key
    from securesystemslib.signer import SSlibKey  # type: ignore[attr-defined]

    public = load_pem_public_key(pem)
    try:
        keys: list[Key] = [SSlibKey.from_crypto(public)]
        if isinstance(public, rsa.RSAPublicKey):
            keys.append(SSlibKey.from_crypto(public, scheme="rsa-pkcs1v15-sha256"))
    except ValueError as e:
        raise SignerError(f"in-toto cannot represent the key of {name} ({e}); sign links with an ECDSA P-256/"
                          "P-384, Ed25519 or RSA key") from e
    return keys


# --- the link ---------------------------------------------------------------------------------------------------

def sign_link(*, step: str, materials: Mapping[str, Any], products: Mapping[str, Any], command: Sequence[str],
              signer: AttestSigner) -> SignedLink:
    """The link as ``in-toto-run`` would write it, signed, its signature checked the way in-toto checks it."""
    from in_toto.exceptions import SignatureVerificationError  # type: ignore[import-untyped]
    from in_toto.models.link import Link
    from in_toto.models.metadata import Metablock  # type: ignore[import-untyped]

    link = Link(name=step, materials=dict(materials), products=dict(products), command=list(command),
                byproducts={"return-value": 0} if command else {}, environment={})
    metablock = Metablock(signed=link)
    adapter = InTotoSigner(signer)
    signature = metablock.create_signature(adapter)
    key = {**adapter.public_key.to_dict(), "keyid": signature.keyid}
    try:
        metablock.verify_signature(key)
    except SignatureVerificationError as e:
        raise SignerError(f"the in-toto link just signed by {signer.keyid} does not verify: {e}") from e
    return SignedLink(data=f"{metablock!r}\n".encode(), keyid=signature.keyid, step=step)


def link_file(given: Path, link: SignedLink) -> Path:
    """Where to write ``link``: ``given``, or inside it under in-toto's name if it is a directory."""
    return given / link.filename if given.is_dir() else given
