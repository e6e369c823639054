"""Signers: turn DSSE pre-authentication encodings into signatures.

A signer is anything with a ``keyid``, a ``public_key_pem()`` and a
``sign(data)`` that signs the bytes it is given (the DSSE PAE) and returns the
raw signature (DER for ECDSA). Backends live in one module each and are chosen
by the URI scheme of ``--signer``:

* ``PATH`` or ``key:PATH``: a PEM private key on disk (:mod:`attest.signers.key`)
* ``awskms:<key id | key ARN | alias/NAME | alias ARN>``: AWS KMS (:mod:`attest.signers.awskms`)
* ``sigstore``: keyless signing (:mod:`attest.signers.sigstore`); not a :class:`Signer`, since
  what it makes is a Sigstore bundle (certificate and log entry), not a signature by a pinned key

Backends import their heavy dependencies (boto3, sigstore) only when chosen.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from verify.formats.envelope import Envelope, Signature, pae

__all__ = ["KEYLESS", "Signer", "from_uri", "sign_envelope"]

#: The signer URI of keyless signing, which makes a bundle (:class:`attest.signers.sigstore.KeylessSigner`).
KEYLESS = "sigstore"


@runtime_checkable
class Signer(Protocol):
    """Signs DSSE PAE bytes with one key."""

    @property
    def keyid(self) -> str:
        """A hint naming the key; verifiers never trust it."""
        ...

    def public_key_pem(self) -> bytes:
        """The SubjectPublicKeyInfo PEM of the signing key (what a verifier pins)."""
        ...

    def sign(self, data: bytes) -> bytes:
        """Sign ``data`` (the PAE) and return the signature bytes."""
        ...


def sign_envelope(signer: Signer, *, payload_type: str, payload: bytes) -> Envelope:
    """Sign ``payload`` as a DSSE envelope with one signature, checked with the signer's own public key.

    The check uses the verifier's own code and the public key a verifier will pin, so a signer
    that returns something else (a KMS key of another spec, a broken backend) fails here, before
    anything is written.
    """
    from attest.errors import SignerError
    from verify.errors import SignatureInvalid
    from verify.trust import Identity, load_public_key
    from verify.verifier import verify_signature

    signature = signer.sign(pae(payload_type, payload))
    envelope = Envelope(payload_type=payload_type, payload=payload,
                        signatures=(Signature(keyid=signer.keyid, sig=signature),))
    own = Identity(name="signer", keys=(load_public_key(signer.public_key_pem(), name=signer.keyid),))
    try:
        verify_signature(envelope, [own], source="the new envelope")
    except SignatureInvalid as e:
        raise SignerError(f"the signature {signer.keyid} just made does not verify with its own public key") from e
    return envelope


def from_uri(uri: str, **options: object) -> Signer:
    """Build the signer named by a cosign-style signer URI."""
    from attest.errors import SignerError

    if uri.startswith("awskms:"):
        from attest.signers import awskms

        return awskms.from_uri(uri, **options)
    if uri == KEYLESS:
        raise SignerError("keyless signing (--signer sigstore) makes a Sigstore bundle, which only "
                          "'attest build' writes; sign here with a key file or an awskms: key")
    if uri.startswith("sigstore:"):
        raise SignerError(f"--signer {uri!r}: keyless signing takes no argument; write "
                          "'--signer sigstore' and choose the instance with --trust-config or --staging")
    from attest.signers import key

    path = uri.removeprefix("key:")
    if not path:
        raise SignerError("--signer 'key:' names no file; give the path of a PEM private key")
    return key.load(path, insecure_permissions=bool(options.get("insecure_permissions", False)))
