"""The keyless bundle verifier that :func:`verify.signers.find_signers` calls, and the Protocol it meets.

A bundle with a certificate (keyless signing) is verified natively, with ``cryptography`` (and
``rfc3161_client`` for RFC 3161 timestamps), by :mod:`verify.sigstore._native`, in order:

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
with), read as is: no TUF refresh. The verifier and the trusted root are imported when the first
keyless bundle is met (start-up: ``cryptography`` is not loaded by a run that has none).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from verify.budget import VerificationBudget
from verify.digests import DigestSet
from verify.errors import SignatureInvalid, UnknownEvidence
from verify.formats.evidence import Evidence
from verify.sigstore.times import SignedTime
from verify.trust import Identity

if TYPE_CHECKING:
    from verify.sigstore.trusted_root import TrustedRoot

__all__ = ["BundleVerifier", "make_bundle_verifier"]

log = logging.getLogger(__name__)


class BundleVerifier(Protocol):
    """Verifies a keyless Sigstore bundle offline; returns the identities its certificate satisfies."""

    def __call__(self, item: Evidence, identities: Sequence[Identity], *, message: DigestSet | None,
                 budget: VerificationBudget) -> tuple[tuple[Identity, ...], SignedTime | None]:
        """The identities that signed ``item``, and the signed time it was signed at (None: none is known);
        each signature verification it tries is charged to ``budget`` first."""


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
        from verify.sigstore._native import verify_bundle  # lazy: start-up (cryptography)

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
            from verify.sigstore.trusted_root import load_trusted_root  # lazy: start-up (cryptography)

            self._root = load_trusted_root(self._root_path)
        signers, when = verify_bundle(item, candidates, self._root, message=message, budget=budget)
        log.debug("%s: Sigstore bundle verified, signed by %s at %s (%s)", source,
                  ", ".join(i.name for i in signers), when.at, when.by)
        return signers, when
