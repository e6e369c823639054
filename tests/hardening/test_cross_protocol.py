"""Issue 11, item 6: a DSSE signature is never accepted again as a plain message signature.

ECDSA and RSA sign a hash of the message, so a DSSE signature over the pre-authentication encoding
(PAE) is also a valid signature "over the file pae.bin". Repackaged as a Sigstore message-signature
bundle, it would make a pinned key appear to have signed a file it never meant to sign. attest
refuses a message signature whose message begins ``DSSEv1 `` (and keeps its keys to one protocol:
it signs statements only as DSSE envelopes).
"""

from __future__ import annotations

import base64
import hashlib
import json
import subprocess
import sys
from pathlib import Path

from tests.conftest import make_keypair
from tests.verify import _factory as f
from verify.digests import DigestSet
from verify.errors import SignatureInvalid
from verify.formats.envelope import pae
from verify.formats.evidence import Evidence, load_evidence
from verify.signers import TrustRun, find_signers
from verify.trust import Identity, load_public_key

DEV = f.private_key("p256", 0)


def _replayed(statement_payload: bytes) -> tuple[bytes, bytes]:
    """(pae.bin, a key-signed message-signature bundle for it made from a DSSE signature by DEV)."""
    message = pae(f.INTOTO, statement_payload)
    dsse_signature = f.sign(DEV, message)  # what DEV signed as a DSSE envelope
    bundle = {"mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json",
              "verificationMaterial": {"publicKey": {"hint": f.fingerprint(DEV)}, "tlogEntries": []},
              "messageSignature": {"messageDigest": {"algorithm": "SHA2_256",
                                                     "digest": base64.b64encode(hashlib.sha256(message).digest())
                                                     .decode()},
                                   "signature": base64.b64encode(dsse_signature).decode()}}
    return message, json.dumps(bundle).encode()


def test_a_dsse_signature_replayed_as_a_message_signature_is_refused() -> None:
    message, bundle = _replayed(f.payload_of(f.statement()))
    [item] = load_evidence(bundle, source="replayed.sigstore.json")
    assert isinstance(item, Evidence)
    dev = Identity(name="dev", keys=(load_public_key(f.public_pem(DEV), name="dev"),))
    sha = hashlib.sha256(message).hexdigest()
    # the signature is valid as a message signature: only the message's first bytes tell
    assert find_signers(item, [dev], TrustRun(), message=DigestSet({"sha256": sha})) == (dev,)
    try:
        find_signers(item, [dev], TrustRun(), message=DigestSet({"sha256": sha}, head=message[:16]))
    except SignatureInvalid as e:
        assert "a DSSE signature replayed as a plain one" in str(e)
    else:
        raise AssertionError("a replayed DSSE signature passed as a message signature")


def test_the_cli_refuses_pae_bin_signed_by_a_replayed_dsse_signature(tmp_path: Path) -> None:
    key = make_keypair(tmp_path, "dev")
    from cryptography.hazmat.primitives import serialization

    private = serialization.load_pem_private_key(key.private.read_bytes(), password=None)
    message = pae(f.INTOTO, f.payload_of(f.statement()))
    signature = f.sign(private, message)  # type: ignore[arg-type]
    bundle = {"mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json",
              "verificationMaterial": {"publicKey": {"hint": ""}, "tlogEntries": []},
              "messageSignature": {"signature": base64.b64encode(signature).decode()}}
    (tmp_path / "pae.bin").write_bytes(message)
    (tmp_path / "b.sigstore.json").write_text(json.dumps(bundle))
    (tmp_path / "other.bin").write_bytes(b"plain file")
    (tmp_path / "other.sigstore.json").write_text(json.dumps({
        **bundle, "messageSignature": {"signature": base64.b64encode(f.sign(private, b"plain file")).decode()}}))  # type: ignore[arg-type]

    def verify(artefact: str, attestation: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "attest", "verify", artefact, "--attestation", attestation,
                               "--key", str(key.public)], cwd=tmp_path, capture_output=True, text=True, timeout=120)

    plain = verify("other.bin", "other.sigstore.json")
    assert plain.returncode == 0, plain  # a plain message signature by the same key passes
    replayed = verify("pae.bin", "b.sigstore.json")
    assert replayed.returncode == 1 and "a DSSE signature replayed as a plain one" in replayed.stderr, replayed
