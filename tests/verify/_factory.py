"""Builders for the verify/ unit tests: real keys, real signatures, SLSA statements shaped like DESIGN's.

Nothing here calls verify/ to produce what verify/ later checks: the PAE is spelled out
independently, signatures are made with ``cryptography`` directly and digests with
``hashlib`` / ``blake3``, so a bug in verify/ cannot hide behind a matching bug here.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from functools import cache
from pathlib import Path
from typing import Any

import blake3
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa

INTOTO = "application/vnd.in-toto+json"
STATEMENT_V1 = "https://in-toto.io/Statement/v1"
PROVENANCE_V1 = "https://slsa.dev/provenance/v1"
PROVENANCE_V02 = "https://slsa.dev/provenance/v0.2"
VSA_V1 = "https://slsa.dev/verification_summary/v1"

REPO = "https://github.com/acme/app"
COMMIT = "0123456789abcdef0123456789abcdef01234567"
BUILDER = "arn:aws:codebuild:eu-west-1:111111111111:project/app-build"
BUILD_TYPE = "https://attest.dev/build-type/command/v1"
ARTIFACT = b"the artefact bytes\n" * 100
LOCKFILE = b"requests==2.32.3\n"

PrivateKey = ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey | rsa.RSAPrivateKey


# --- keys -----------------------------------------------------------------------------------------


@cache
def private_key(kind: str = "p256", index: int = 0) -> PrivateKey:
    """A key pair, generated once per (kind, index) for the whole test run."""
    del index  # only makes distinct cache entries
    if kind == "p256":
        return ec.generate_private_key(ec.SECP256R1())
    if kind == "p384":
        return ec.generate_private_key(ec.SECP384R1())
    if kind == "p521":
        return ec.generate_private_key(ec.SECP521R1())
    if kind == "ed25519":
        return ed25519.Ed25519PrivateKey.generate()
    if kind.startswith("rsa"):
        return rsa.generate_private_key(public_exponent=65537, key_size=int(kind.removeprefix("rsa")))
    raise ValueError(kind)


def public_pem(key: PrivateKey) -> bytes:
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def fingerprint(key: PrivateKey) -> str:
    """sha256 of the DER SubjectPublicKeyInfo, computed from the PEM text (not by verify/)."""
    body = b"".join(line for line in public_pem(key).splitlines() if not line.startswith(b"-----"))
    return hashlib.sha256(base64.b64decode(body)).hexdigest()


def write_pem(directory: Path, name: str, key: PrivateKey) -> Path:
    path = directory / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(public_pem(key))
    return path


def sign(key: PrivateKey, data: bytes, *, scheme: str = "default") -> bytes:
    """Sign ``data``: ECDSA DER (raw r||s with scheme='raw'), Ed25519, RSA PSS (or scheme='pkcs1v15')."""
    if isinstance(key, ec.EllipticCurvePrivateKey):
        algorithm = {256: hashes.SHA256(), 384: hashes.SHA384(), 521: hashes.SHA512()}[key.curve.key_size]
        der = key.sign(data, ec.ECDSA(algorithm))
        if scheme == "raw":
            from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

            r, s = decode_dss_signature(der)
            width = (key.curve.key_size + 7) // 8
            return r.to_bytes(width, "big") + s.to_bytes(width, "big")
        return der
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return key.sign(data)
    if scheme == "pkcs1v15":
        return key.sign(data, padding.PKCS1v15(), hashes.SHA256())
    return key.sign(
        data,
        padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=padding.PSS.DIGEST_LENGTH),
        hashes.SHA256(),
    )


# --- envelopes ------------------------------------------------------------------------------------


def pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE v1 PAE, written out from the spec independently of verify.formats.envelope."""
    kind = payload_type.encode()
    return b" ".join([b"DSSEv1", str(len(kind)).encode(), kind, str(len(payload)).encode(), payload])


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def envelope_dict(
    payload: bytes,
    signers: Iterable[PrivateKey | tuple[PrivateKey, str | None]] = (),
    *,
    payload_type: str = INTOTO,
    extra_sigs: Sequence[dict[str, Any]] = (),
) -> dict[str, Any]:
    """A DSSE envelope as JSON-ready dict, signed by each signer (keyid: its fingerprint unless given)."""
    sigs: list[dict[str, Any]] = []
    for signer in signers:
        key, keyid = signer if isinstance(signer, tuple) else (signer, fingerprint(signer))
        sigs.append({"keyid": keyid, "sig": b64(sign(key, pae(payload_type, payload)))})
    sigs.extend(extra_sigs)
    return {"payloadType": payload_type, "payload": b64(payload), "signatures": sigs}


def json_line(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode() + b"\n"


def payload_of(statement: Mapping[str, Any]) -> bytes:
    return json.dumps(statement).encode()


# --- statements -----------------------------------------------------------------------------------


def digest_set(data: bytes, algorithms: Sequence[str] = ("sha256", "blake3")) -> dict[str, str]:
    out = {}
    for name in algorithms:
        out[name] = (
            blake3.blake3(data).hexdigest() if name == "blake3" else hashlib.new(name, data).hexdigest()
        )
    return out


def provenance_v1(
    *,
    repo: str = REPO,
    ref: str = "refs/heads/main",
    commit: str = COMMIT,
    builder: str = BUILDER,
    lockfiles: Mapping[str, bytes] | None = None,
    dirty: bool | None = None,
) -> dict[str, Any]:
    """A SLSA v1 predicate shaped like DESIGN's."""
    lockfiles = {"requirements.txt": LOCKFILE} if lockfiles is None else lockfiles
    deps: list[dict[str, Any]] = [{"uri": f"git+{repo}@{ref}", "digest": {"gitCommit": commit}}]
    deps += [
        {"name": name, "uri": f"git+{repo}@{commit}#{name}", "digest": digest_set(data)}
        for name, data in lockfiles.items()
    ]
    deps.append({"uri": "pkg:pypi/requests@2.32.3", "digest": {"sha256": "ab" * 32}})
    internal: dict[str, Any] = {
        "codebuildImage": "aws/codebuild/standard:7.0",
        "SOURCE_DATE_EPOCH": "1700000000",
    }
    if dirty is not None:
        internal["dirty"] = dirty
    return {
        "buildDefinition": {
            "buildType": BUILD_TYPE,
            "externalParameters": {
                "source": {"uri": repo, "ref": ref},
                "command": ["make", "dist"],
                "lockfiles": list(lockfiles),
            },
            "internalParameters": internal,
            "resolvedDependencies": deps,
        },
        "runDetails": {
            "builder": {"id": builder},
            "metadata": {
                "invocationId": "arn:aws:codebuild:eu-west-1:111111111111:build/app-build:1",
                "startedOn": "2024-05-01T10:00:00Z",
                "finishedOn": "2024-05-01T10:05:30Z",
            },
        },
    }


def provenance_v02(
    *, repo: str = REPO, ref: str = "refs/heads/main", commit: str = COMMIT, builder: str = BUILDER
) -> dict[str, Any]:
    return {
        "builder": {"id": builder},
        "buildType": "https://github.com/slsa-framework/slsa-github-generator/generic@v1",
        "invocation": {
            "configSource": {
                "uri": f"git+{repo}@{ref}",
                "digest": {"sha1": commit},
                "entryPoint": ".github/workflows/release.yml",
            },
            "parameters": {"event_inputs": {}, "vars": {}},
            "environment": {"github_run_id": "42"},
        },
        "metadata": {
            "buildInvocationId": "42-1",
            "buildStartedOn": "2024-05-01T10:00:00Z",
            "buildFinishedOn": "2024-05-01T10:05:30Z",
        },
        "materials": [{"uri": f"git+{repo}@{ref}", "digest": {"sha1": commit}}],
    }


def statement(
    subjects: Sequence[tuple[str, Mapping[str, str]]] | None = None,
    *,
    predicate_type: str = PROVENANCE_V1,
    predicate: Mapping[str, Any] | None = None,
    type_: str = STATEMENT_V1,
) -> dict[str, Any]:
    """An in-toto Statement; by default one subject (ARTIFACT's sha256 + blake3) and a SLSA v1 predicate."""
    if subjects is None:
        subjects = [("dist/app.tar.gz", digest_set(ARTIFACT))]
    return {
        "_type": type_,
        "subject": [{"name": name, "digest": dict(digest)} for name, digest in subjects],
        "predicateType": predicate_type,
        "predicate": provenance_v1() if predicate is None else dict(predicate),
    }


def vsa(**overrides: Any) -> dict[str, Any]:
    predicate: dict[str, Any] = {
        "verifier": {"id": "https://attest.example/verifier"},
        "timeVerified": "2024-05-02T08:00:00Z",
        "resourceUri": "attest:stage:stg",
        "policy": {"uri": "file:///policy.yaml", "digest": {"sha256": "cd" * 32}},
        "inputAttestations": [{"uri": "sha256/x/provenance.intoto.jsonl", "digest": {"sha256": "ef" * 32}}],
        "verificationResult": "PASSED",
        "verifiedLevels": ["SLSA_BUILD_LEVEL_2"],
    }
    predicate.update(overrides)
    return predicate
