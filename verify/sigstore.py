"""Sigstore bundles, verified offline against a pinned trusted root.

A bundle with a certificate (keyless signing) is verified natively, with ``cryptography`` (and
``rfc3161_client`` for RFC 3161 timestamps), by :mod:`verify._sigstore_native`, in order:

  (1) parse      the bundle (v0.1, v0.2, v0.3) from its typed model, as strictly as sigstore-python
  (2) time       the signing time(s): RFC 3161 timestamps, the integrated time an inclusion promise signs
  (3) chain      the certificate chains to a trusted CA at every signing time, and that CA was valid then
  (4) SCT        its SCT verifies with a CT log of the trusted root, valid at signing time
  (5) identity   the certificate satisfies one pinned :class:`SigstoreIdentity` (issuer, SAN, GitHub
                 extensions); every one it satisfies signed
  (6) log entry  the entry's inclusion promise and/or inclusion proof with its signed checkpoint, by a
                 log of the trusted root valid at signing time
  (7) body       the log entry records this bundle (hashedrekord 0.0.1/0.0.2, dsse 0.0.1, intoto 0.0.2)
  (8) signature  over the DSSE envelope's PAE, or over the artefact's sha256

A bundle signed with a key (``verificationMaterial.publicKey``, no certificate) never comes here:
:func:`verify.signers.find_signers` checks it against the pinned keys (the envelope's signature, or a
message signature over the artefact's sha256). Its log entries are not checked: the pinned key is
the trust.

Nothing here touches the network, and sigstore-python is never imported. The default trusted root
is the production one that ships inside sigstore-python (the file its TUF client is bootstrapped
with), read as is: no TUF refresh.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from verify.errors import SignatureInvalid, TrustConfigError, UnknownEvidence
from verify.signers import BundleVerifier
from verify.trust import Identity, SigstoreIdentity
from verify.uris import normalize_repo

if TYPE_CHECKING:
    from cryptography.x509 import Certificate

    from verify._sigstore_native import SignedTime, TrustedRoot
    from verify.budget import VerificationBudget
    from verify.evidence import Evidence
    from verify.matching import DigestSet

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


# --- trusted roots --------------------------------------------------------------------------------

def load_trusted_root(path: Path | None) -> TrustedRoot:
    """The trusted root in ``path``, else the production one embedded in sigstore-python (never refreshed)."""
    import importlib.resources

    from verify._sigstore_native import parse_trusted_root

    data: bytes | None = None
    if path is not None:
        from verify.files import read_file
        from verify.limits import MAX_TRUSTED_ROOT_BYTES

        data = read_file(path, what="trusted root", limit=MAX_TRUSTED_ROOT_BYTES, error=TrustConfigError)
        return parse_trusted_root(data, name=str(path))
    package, name = _EMBEDDED_ROOT
    try:
        resource = importlib.resources.files(package).joinpath(name)
        if resource.is_file():
            data = resource.read_bytes()
    except (ModuleNotFoundError, OSError):
        data = None
    if data is None:
        raise TrustConfigError(f"{_EMBEDDED_ROOT_NAME} is missing from this installation; "
                               "pass --trusted-root FILE")
    return parse_trusted_root(data, name=_EMBEDDED_ROOT_NAME)


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
        self._root: TrustedRoot | None = None

    def __call__(self, item: Evidence, identities: Sequence[Identity], *, message: DigestSet | None,
                 budget: VerificationBudget) -> tuple[tuple[Identity, ...], SignedTime | None]:
        from verify._sigstore_native import verify_bundle

        source = item.source
        if item.bundle is None or not item.bundle.keyless:
            raise UnknownEvidence(f"{source} is not a keyless Sigstore bundle")
        candidates = [(identity, pinned) for identity in identities for pinned in identity.sigstore]
        if not candidates:
            raise SignatureInvalid(f"{source} is signed keylessly, and no Sigstore identity is trusted; pass "
                                   "--certificate-identity and --certificate-oidc-issuer (or --github-repo), or "
                                   "name one in the policy")
        if item.envelope is None and message is None:
            raise SignatureInvalid(f"{source}: a message signature needs the artefact's digest")
        if self._root is None:
            self._root = load_trusted_root(self._root_path)
        signers, when = verify_bundle(item, candidates, self._root, message=message, budget=budget)
        log.debug("%s: Sigstore bundle verified, signed by %s at %s (%s)", source,
                  ", ".join(i.name for i in signers), when.at, when.by)
        return signers, when
