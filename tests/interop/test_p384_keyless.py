"""A keyless P-384 message signature, made against the local Fulcio and Rekor, verified by attest (issue 17).

sigstore-python signs with P-256 only, so the signer here is written out from the protocol: a P-384 key
certified by the local Fulcio for alice's token, the artefact's SHA-384 signed with it and logged in the
local Rekor as a hashedrekord with ``sha384``, and the bundle v0.3 assembled from Rekor's answer, its
``messageDigest`` SHA2_384 (as sigstore-go writes it for a P-384 key). attest verifies it offline against
the local trusted root, and refuses the same key's signature over the artefact's SHA-256 (logged as such).
"""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path
from typing import Any

import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed
from cryptography.x509.oid import NameOID

from tests.conftest import run_attest
from tests.sigstore_infra.fixture import SigstoreLocal

ALICE = "alice@example.com"
ISSUER = "https://accounts.example.com"
DATA = b"a release built elsewhere\n" * 100


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _certificate(local: SigstoreLocal, key: ec.EllipticCurvePrivateKey) -> x509.Certificate:
    csr = (x509.CertificateSigningRequestBuilder()
           .subject_name(x509.Name([x509.NameAttribute(NameOID.EMAIL_ADDRESS, ALICE)]))
           .sign(key, hashes.SHA384()))
    answer = requests.post(f"{local.url}/api/v2/signingCert", timeout=30,
                           headers={"Authorization": f"Bearer {local.mint_token(ALICE, ISSUER)}"},
                           json={"certificateSigningRequest": _b64(csr.public_bytes(serialization.Encoding.PEM))})
    answer.raise_for_status()
    chain = answer.json()["signedCertificateEmbeddedSct"]["chain"]["certificates"]
    return x509.load_pem_x509_certificate(chain[0].encode())


def _bundle(local: SigstoreLocal, cert: x509.Certificate, signature: bytes, algorithm: str, digest: bytes) -> str:
    pem = cert.public_bytes(serialization.Encoding.PEM)
    rekor_name = {"SHA2_384": "sha384", "SHA2_256": "sha256"}[algorithm]
    answer = requests.post(f"{local.url}/api/v1/log/entries", timeout=30, json={
        "kind": "hashedrekord", "apiVersion": "0.0.1",
        "spec": {"data": {"hash": {"algorithm": rekor_name, "value": digest.hex()}},
                 "signature": {"content": _b64(signature), "publicKey": {"content": _b64(pem)}}}})
    answer.raise_for_status()
    [entry] = answer.json().values()
    proof = entry["verification"]["inclusionProof"]
    tlog: dict[str, Any] = {
        "logIndex": str(entry["logIndex"]), "logId": {"keyId": _b64(bytes.fromhex(entry["logID"]))},
        "kindVersion": {"kind": "hashedrekord", "version": "0.0.1"}, "integratedTime": str(entry["integratedTime"]),
        "inclusionPromise": {"signedEntryTimestamp": entry["verification"]["signedEntryTimestamp"]},
        "inclusionProof": {"logIndex": str(proof["logIndex"]), "rootHash": _b64(bytes.fromhex(proof["rootHash"])),
                           "treeSize": str(proof["treeSize"]),
                           "hashes": [_b64(bytes.fromhex(h)) for h in proof["hashes"]],
                           "checkpoint": {"envelope": proof["checkpoint"]}},
        "canonicalizedBody": entry["body"]}
    return json.dumps({
        "mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json",
        "verificationMaterial": {"certificate": {"rawBytes": _b64(cert.public_bytes(serialization.Encoding.DER))},
                                 "tlogEntries": [tlog]},
        "messageSignature": {"messageDigest": {"algorithm": algorithm, "digest": _b64(digest)},
                             "signature": _b64(signature)}})


def test_a_keyless_p384_message_signature_verifies_and_a_sha256_one_by_the_same_key_does_not(
        sigstore_local: SigstoreLocal, tmp_path: Path) -> None:
    key = ec.generate_private_key(ec.SECP384R1())
    cert = _certificate(sigstore_local, key)
    sha384, sha256 = hashlib.sha384(DATA).digest(), hashlib.sha256(DATA).digest()
    (tmp_path / "app.tar.gz").write_bytes(DATA)
    (tmp_path / "p384.sigstore.json").write_text(
        _bundle(sigstore_local, cert, key.sign(sha384, ec.ECDSA(Prehashed(hashes.SHA384()))), "SHA2_384", sha384))
    (tmp_path / "sha256.sigstore.json").write_text(
        _bundle(sigstore_local, cert, key.sign(sha256, ec.ECDSA(Prehashed(hashes.SHA256()))), "SHA2_256", sha256))
    identity = ("--certificate-identity", ALICE, "--certificate-oidc-issuer", ISSUER,
                "--trusted-root", str(sigstore_local.trusted_root_path))

    good = run_attest("verify", "app.tar.gz", "--attestation", "p384.sigstore.json", *identity, "--format", "json",
                      cwd=tmp_path)
    assert good.code == 0, good
    assert json.loads(good.out)["subject"]["digest"] == {"sha384": sha384.hex()}

    mismatched = run_attest("verify", "app.tar.gz", "--attestation", "sha256.sigstore.json", *identity, cwd=tmp_path)
    assert mismatched.code == 1, mismatched
    assert "its messageDigest is SHA2_256, and its certificate's key signs sha384 digests" in mismatched.err, mismatched
