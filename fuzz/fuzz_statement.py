"""Fuzz target: in-toto statements and their predicates (SLSA provenance v1/v0.2, VSA), through the whole
verification pipeline.

Each input is used as a statement payload, signed with the pinned fuzzing key, so the signature
step passes and the statement, subject and rules steps (and the stage checks of a VSA) see the
fuzzed bytes. For any input: returns or raises VerifyError; anything else is a finding.

    python fuzz/fuzz_statement.py -max_total_time=60 fuzz/.work/statement fuzz/corpus/statement
"""

from __future__ import annotations

import contextlib
import hashlib
import sys

import _common
import atheris

with atheris.instrument_imports(include=["verify"]):
    from verify.envelope import INTOTO_PAYLOAD_TYPE, Envelope, Signature, pae
    from verify.errors import VerifyError
    from verify.evidence import load_evidence
    from verify.policy import Policy, ProvenanceRules, SourceRule, StageRule, VsaRequirement
    from verify.stages import check_stage
    from verify.statement import parse_statement, read_provenance, read_vsa
    from verify.trust import Identity, load_public_key
    from verify.verifier import verify_artifact

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

_KEY = _common.private_key()
_DIGESTS = {"sha256": hashlib.sha256(_common.ARTIFACT).hexdigest()}
_DEV = Identity(name="dev", keys=(load_public_key(_common.public_pem(), name="dev"),))
_RULE = StageRule(name="prd", require_vsa=(VsaRequirement(stage="stg", signed_by=("dev",)),))
_POLICY = Policy(identities={"dev": _DEV},
                 provenance=ProvenanceRules(signed_by=("dev",), builders=("b",), lockfiles=("requirements.txt",),
                                            source=SourceRule(uri="github.com/acme/app", branches=("main",)),
                                            commit="0123456789"),
                 stages={"stg": StageRule(name="stg", verifier="dev"), "prd": _RULE})


def test_one_input(data: bytes) -> None:
    try:
        statement = parse_statement(data)
    except VerifyError:
        statement = None
    if statement is not None:
        for read in (read_provenance, read_vsa):
            with contextlib.suppress(VerifyError):
                read(statement)
    signature = _KEY.sign(pae(INTOTO_PAYLOAD_TYPE, data), ec.ECDSA(hashes.SHA256()))
    envelope = Envelope(payload_type=INTOTO_PAYLOAD_TYPE, payload=data, signatures=(Signature("", signature),))
    items = load_evidence(envelope.to_json_line(), source="fuzz")
    with contextlib.suppress(VerifyError):
        verify_artifact("fuzz", items, policy=_POLICY, digests=lambda: _DIGESTS)
    with contextlib.suppress(VerifyError):
        check_stage(_RULE, policy=_POLICY, evidence=items, digests=_DIGESTS, not_before=None)


if __name__ == "__main__":
    _common.run(test_one_input, sys.argv)
