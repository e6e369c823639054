"""P-384 Sigstore message signatures sign the artefact's SHA-384 (issue 17), through the real CLI.

Sigstore's algorithm registry binds the hash to the key (PKIX_ECDSA_P384_SHA_384): a P-384 signer
writes ``messageDigest.algorithm: SHA2_384`` and signs the SHA-384 digest. ``attest verify`` computes
the digest the bundle names in its one read, verifies, and refuses the same key over a SHA-256 digest.
"""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed

from tests.conftest import run_attest

DATA = b"a release built elsewhere\n" * 1000


def _bundle(signature: bytes, algorithm: str, digest: bytes) -> str:
    return json.dumps({
        "mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json",
        "verificationMaterial": {"publicKey": {"hint": "release-key"}, "tlogEntries": []},
        "messageSignature": {"messageDigest": {"algorithm": algorithm, "digest": base64.b64encode(digest).decode()},
                             "signature": base64.b64encode(signature).decode()}})


def test_a_p384_message_signature_verifies_over_sha384_and_not_over_sha256(tmp_path: Path) -> None:
    key = ec.generate_private_key(ec.SECP384R1())
    (tmp_path / "release.pub.pem").write_bytes(key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    (tmp_path / "app.tar.gz").write_bytes(DATA)
    sha384, sha256 = hashlib.sha384(DATA).digest(), hashlib.sha256(DATA).digest()
    (tmp_path / "good.sigstore.json").write_text(
        _bundle(key.sign(DATA, ec.ECDSA(hashes.SHA384())), "SHA2_384", sha384))
    (tmp_path / "sha256.sigstore.json").write_text(
        _bundle(key.sign(sha256, ec.ECDSA(Prehashed(hashes.SHA256()))), "SHA2_256", sha256))

    good = run_attest("verify", "app.tar.gz", "--attestation", "good.sigstore.json", "--key", "release.pub.pem",
                      "--format", "json", cwd=tmp_path)
    assert good.code == 0, good
    verdict = json.loads(good.out)
    assert verdict["kind"] == "message-signature"
    assert verdict["subject"]["digest"] == {"sha384": sha384.hex()}
    assert verdict["digests"]["sha384"] == sha384.hex()

    mismatched = run_attest("verify", "app.tar.gz", "--attestation", "sha256.sigstore.json", "--key",
                            "release.pub.pem", cwd=tmp_path)
    assert mismatched.code == 1 and "does not verify with a trusted key" in mismatched.err, mismatched

    (tmp_path / "app.tar.gz").write_bytes(DATA + b"x")
    changed = run_attest("verify", "app.tar.gz", "--attestation", "good.sigstore.json", "--key", "release.pub.pem",
                         cwd=tmp_path)
    assert changed.code == 1 and "the artefact's sha384" in changed.err, changed
