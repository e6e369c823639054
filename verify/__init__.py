"""verify: the trust core of attest. Evidence in, a verdict out; no network, no cloud, no I/O but reading files.

The names below are the public surface: what attest's command line uses, and what another program may
call. Every other name is private, and every module is laid out in layers (docs/architecture.md).

Verify an artefact against the provenance beside it, under a policy that pins the build's key::

    from pathlib import Path

    from verify import hash_file, load_evidence, load_policy, read_evidence_file, verify_artifact

    policy = load_policy(Path("policy.yaml"))
    evidence = load_evidence(read_evidence_file(Path("provenance.intoto.jsonl")), source="provenance.intoto.jsonl")
    verdict = verify_artifact("dist/app.tar.gz", evidence, policy=policy,
                              digests=lambda: hash_file(Path("dist/app.tar.gz")))
    print(verdict.subject.name, "signed by", verdict.signer)  # or EvidenceRejected: one sentence, what is wrong

A stage's gate (provenance, earlier stages' VSAs, approvals) is :func:`prepare` then :func:`decide`; an
organisation's history is :func:`verify.audit.audit` (a
subpackage's name cannot also be a function's here). Failures are exceptions of :mod:`verify.errors`, each one plain
sentence: :class:`EvidenceRejected` (the evidence does not pass: exit 1), :class:`RequestError` (a usage
error), :class:`ConfigError` (a policy, key or trusted root that cannot be used).

Importing this package imports nothing else: each name loads its module when first used (start-up).
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = [
    "ConfigError",
    "DigestSet",
    "Evidence",
    "EvidenceRejected",
    "Gate",
    "GateVerdict",
    "Identity",
    "MalformedEvidence",
    "Policy",
    "PolicyError",
    "PublicKey",
    "ReleaseVerdict",
    "RequestError",
    "SignatureInvalid",
    "TrustRun",
    "Verdict",
    "VerifyError",
    "decide",
    "decide_release",
    "find_signers",
    "hash_file",
    "load_evidence",
    "load_policy",
    "load_public_key",
    "load_public_key_file",
    "make_bundle_verifier",
    "prepare",
    "read_evidence_file",
    "verify_artifact",
    "verify_layout",
]

#: Where each public name lives.
_HOME = {
    "ConfigError": "verify.errors", "EvidenceRejected": "verify.errors", "MalformedEvidence": "verify.errors",
    "PolicyError": "verify.errors", "RequestError": "verify.errors", "SignatureInvalid": "verify.errors",
    "VerifyError": "verify.errors",
    "DigestSet": "verify.digests", "hash_file": "verify.digests",
    "Evidence": "verify.formats.evidence", "load_evidence": "verify.formats.evidence",
    "read_evidence_file": "verify.formats.evidence",
    "Identity": "verify.trust", "PublicKey": "verify.trust", "load_public_key": "verify.trust",
    "load_public_key_file": "verify.trust",
    "make_bundle_verifier": "verify.sigstore.verifier",
    "TrustRun": "verify.signers", "find_signers": "verify.signers",
    "Policy": "verify.policy", "load_policy": "verify.policy_file",
    "Verdict": "verify.verifier", "verify_artifact": "verify.verifier",
    "Gate": "verify.gate", "GateVerdict": "verify.gate", "decide": "verify.gate", "prepare": "verify.gate",
    "ReleaseVerdict": "verify.release_gate", "decide_release": "verify.release_gate",
    "verify_layout": "verify.layout",
}


def __getattr__(name: str) -> Any:
    home = _HOME.get(name)
    if home is None:
        raise AttributeError(f"module 'verify' has no attribute {name!r}")
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value  # once
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
