"""Write the seed corpora of the fuzz targets to fuzz/corpus/<target>/ (run by `make fuzz`, idempotent).

Seeds are real evidence from tests/assets/ (the conformance suites included), plus files made here
with the fuzzing key: signed envelopes and JSON Lines files, statements of every predicate attest
reads, key-signed bundles, and policies using every key of the format (docs/policy.md).
"""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
from pathlib import Path

import _common
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

ROOT = _common.ROOT
CORPUS = Path(__file__).resolve().parent / "corpus"
CONFORMANCE = ROOT / "tests" / "assets" / "conformance"
INTOTO = "application/vnd.in-toto+json"
SHA256 = hashlib.sha256(_common.ARTIFACT).hexdigest()
REPO = "https://github.com/acme/app"
COMMIT = "0123456789abcdef0123456789abcdef01234567"


def _key() -> ec.EllipticCurvePrivateKey:
    return _common.private_key()


def _pae(payload_type: str, payload: bytes) -> bytes:
    kind = payload_type.encode()
    return b"DSSEv1 %d %s %d %s" % (len(kind), kind, len(payload), payload)


def _envelope(payload: bytes, *, keyid: str = "") -> dict[str, object]:
    signature = _key().sign(_pae(INTOTO, payload), ec.ECDSA(hashes.SHA256()))
    return {"payloadType": INTOTO, "payload": base64.b64encode(payload).decode(),
            "signatures": [{"keyid": keyid, "sig": base64.b64encode(signature).decode()}]}


def _statements() -> dict[str, dict[str, object]]:
    subject = [{"name": "dist/app.tar.gz", "digest": {"sha256": SHA256, "blake3": "ab" * 32}}]
    provenance = {
        "buildDefinition": {
            "buildType": "https://attest.dev/buildtypes/command/v1",
            "externalParameters": {"source": {"uri": f"git+{REPO}", "ref": "refs/heads/main"},
                                   "command": ["make", "dist"], "lockfiles": ["requirements.txt"]},
            "internalParameters": {"SOURCE_DATE_EPOCH": 1700000000, "dirty": False},
            "resolvedDependencies": [
                {"uri": f"git+{REPO}@refs/heads/main", "digest": {"gitCommit": COMMIT}},
                {"name": "requirements.txt", "uri": f"git+{REPO}@{COMMIT}#requirements.txt",
                 "digest": {"sha256": "cd" * 32}},
                {"uri": "pkg:pypi/requests@2.32.3", "digest": {"sha256": "ef" * 32}}]},
        "runDetails": {"builder": {"id": "b"},
                       "metadata": {"invocationId": "urn:uuid:1", "startedOn": "2026-01-01T00:00:00Z",
                                    "finishedOn": "2026-01-01T00:05:00Z"}}}
    v02 = {"builder": {"id": "b"}, "buildType": "https://github.com/slsa-framework/slsa-github-generator/generic@v1",
           "invocation": {"configSource": {"uri": f"git+{REPO}@refs/heads/main", "digest": {"sha1": COMMIT}}},
           "metadata": {"buildInvocationId": "1", "buildFinishedOn": "2026-01-01T00:05:00Z"},
           "materials": [{"uri": f"git+{REPO}", "digest": {"sha1": COMMIT}}]}
    vsa = {"verifier": {"id": "attest"}, "timeVerified": "2026-01-02T00:00:00Z", "resourceUri": "attest:stage:stg",
           "policy": {"uri": "file:///p.yaml", "digest": {"sha256": "12" * 32}},
           "inputAttestations": [{"uri": "x", "digest": {"sha256": "34" * 32}}],
           "verificationResult": "PASSED", "verifiedLevels": ["SLSA_BUILD_LEVEL_2"]}
    approval = {"stage": "prd", "approver": "alice", "timeApproved": "2026-01-03T00:00:00Z"}

    def statement(kind: str, predicate: object, type_: str = "https://in-toto.io/Statement/v1") -> dict[str, object]:
        return {"_type": type_, "subject": subject, "predicateType": kind, "predicate": predicate}

    return {
        "provenance-v1": statement("https://slsa.dev/provenance/v1", provenance),
        "provenance-v02": statement("https://slsa.dev/provenance/v0.2", v02, "https://in-toto.io/Statement/v0.1"),
        "vsa": statement("https://slsa.dev/verification_summary/v1", vsa),
        "approval": statement("https://attest.dev/approval/v1", approval),
        "other": statement("https://example.com/other/v1", {"x": [1, 2.5, None, True]}),
    }


def _write(target: str, name: str, data: bytes) -> None:
    folder = CORPUS / target
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_bytes(data)


def main() -> None:
    shutil.rmtree(CORPUS, ignore_errors=True)
    statements = _statements()
    for name, statement in statements.items():
        payload = json.dumps(statement, separators=(",", ":")).encode()
        _write("statement", f"{name}.json", payload)
        line = json.dumps(_envelope(payload, keyid=name)).encode() + b"\n"
        _write("envelope", f"{name}.intoto.jsonl", line)
        _write("envelope", f"{name}.pretty.json", json.dumps(_envelope(payload), indent=2).encode())
    lines = [json.dumps(_envelope(json.dumps(s).encode())).encode() for s in statements.values()]
    _write("envelope", "several.intoto.jsonl", b"\n".join(lines) + b"\n")
    _write("envelope", "broken-line.intoto.jsonl", lines[0] + b"\n{broken\n\n" + lines[1] + b"\n")
    for asset in sorted((ROOT / "tests" / "assets").rglob("*.intoto.jsonl")):
        _write("envelope", asset.name, asset.read_bytes())
        _write("bundle", asset.name, asset.read_bytes())  # bundles as JSON Lines (what keyless builds publish)
        for number, line in enumerate(asset.read_bytes().splitlines()):
            try:  # regression vectors are hostile on purpose (an integer past Python's digit limit, say)
                document = json.loads(line)
                envelope = document.get("dsseEnvelope", document)
                payload = base64.b64decode(envelope["payload"])
            except (ValueError, KeyError, TypeError, AttributeError):
                continue
            _write("statement", f"{asset.stem}-{number}.json", payload)
    vector = CONFORMANCE / "dsse" / "test_vector_hello_world.json"
    if vector.is_file():
        _write("envelope", vector.name, vector.read_bytes())
    # bundles: real ones, then key-signed ones made here
    for asset in sorted((ROOT / "tests" / "assets").rglob("*.sigstore.json")):
        if CONFORMANCE in asset.parents:
            continue  # the suite's bundles all have one name: taken below, named after their case
        _write("bundle", asset.name, asset.read_bytes())
    suite = CONFORMANCE / "sigstore-conformance" / "test" / "assets" / "bundle-verify"
    for bundle in sorted(suite.glob("*/bundle.sigstore.json"))[:24] if suite.is_dir() else []:
        _write("bundle", f"{bundle.parent.name}.sigstore.json", bundle.read_bytes())
    message = _key().sign(_common.ARTIFACT, ec.ECDSA(hashes.SHA256()))
    key_bundle = {"mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json",
                  "verificationMaterial": {"publicKey": {"hint": "dev"}, "tlogEntries": []},
                  "messageSignature": {"messageDigest": {"algorithm": "SHA2_256",
                                                         "digest": base64.b64encode(bytes.fromhex(SHA256)).decode()},
                                       "signature": base64.b64encode(message).decode()}}
    _write("bundle", "key-signed-message.sigstore.json", json.dumps(key_bundle).encode())
    dsse_bundle = {"mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json",
                   "verificationMaterial": {"publicKey": {"hint": "dev"}},
                   "dsseEnvelope": _envelope(json.dumps(statements["provenance-v1"]).encode())}
    _write("bundle", "key-signed-dsse.sigstore.json", json.dumps(dsse_bundle, indent=2).encode())
    # policies
    doc = (ROOT / "docs" / "policy.md").read_text()
    _write("policy", "policy-md.yaml", doc.split("```yaml\n", 1)[1].split("```", 1)[0].encode())
    _write("policy", "minimal.yaml", b"version: 1\nidentities:\n  dev: {keys: [k.pem]}\nprovenance:\n"
                                     b"  signed-by: [dev]\n")
    _write("policy", "rotation.yaml", (
        b"version: 1\nidentities:\n  dev:\n    keys: [k.pem, keys/dev.pub.pem]\n"
        b"    not-before: 2026-01-01T00:00:00Z\n    not-after: '2027-01-01T00:00:00+01:00'\n"
        b"    revoked: [keys/dev.pub.pem]\n  stg: {keys: [k.pem]}\n"
        b"  gha: {sigstore: {issuer: https://token.actions.githubusercontent.com, github-repo: acme/app,"
        b" source-ref: main, deny-self-hosted-runners: true}}\n"
        b"revoked: ['" + hashlib.sha256(b"x").hexdigest().encode() + b"']\n"
        b"provenance:\n  signed-by: [dev, gha]\n  source: {uri: github.com/acme/app, branches: [main]}\n"
        b"  builders: [b]\n  digests: [blake3, sha256]\n  lockfiles: [requirements.txt]\n  allow-dirty: false\n"
        b"stages:\n  stg: {verifier: stg}\n  prd:\n    verifier: stg\n    require-vsa: [{stage: stg, signed-by: stg}]\n"
        b"    require-approvals: {count: 1, signed-by: [dev]}\n    resource-uri: [arn:aws:codepipeline:x]\n"))
    _write("policy", "anchors.yaml", b"version: 1\nidentities:\n  dev: &k {keys: [k.pem]}\n  ops: *k\n"
                                     b"provenance: {signed-by: [dev, ops], builders: &b [x, y]}\n")
    for target in ("envelope", "statement", "bundle", "policy"):
        print(f"{target}: {len(list((CORPUS / target).iterdir()))} seeds")


if __name__ == "__main__":
    main()
