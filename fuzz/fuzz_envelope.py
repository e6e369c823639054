"""Fuzz target: DSSE envelopes and .intoto.jsonl files, through parsing, re-serialising and the signature step.

Checks, for any bytes: load_evidence returns or raises VerifyError; every envelope it finds survives
to_json_line -> from_json unchanged; verify_artifact (pinned key, SLSA rules) returns or raises
VerifyError. Anything else is a finding.

    python fuzz/fuzz_envelope.py -max_total_time=60 fuzz/.work/envelope fuzz/corpus/envelope
"""

from __future__ import annotations

import contextlib
import sys

import _common
import atheris

with atheris.instrument_imports(include=["verify"]):
    from verify.envelope import Envelope
    from verify.errors import VerifyError
    from verify.evidence import Evidence, load_evidence
    from verify.policy import Policy, ProvenanceRules, SourceRule
    from verify.trust import Identity, load_public_key
    from verify.verifier import verify_artifact

_DIGESTS = {"sha256": __import__("hashlib").sha256(_common.ARTIFACT).hexdigest()}
_POLICY = Policy(identities={"dev": Identity(name="dev", keys=(load_public_key(_common.public_pem(), name="dev"),))},
                 provenance=ProvenanceRules(signed_by=("dev",),
                                            source=SourceRule(uri="github.com/acme/app", branches=("main",))))


def test_one_input(data: bytes) -> None:
    try:
        items = load_evidence(data, source="fuzz")
    except VerifyError:
        return
    for item in items:
        if isinstance(item, Evidence) and item.envelope is not None:
            again = Envelope.from_json(item.envelope.to_json_line())
            assert again == item.envelope, "an envelope changed when written and read again"
            item.envelope.pae()
    with contextlib.suppress(VerifyError):
        verify_artifact("fuzz", items, policy=_POLICY, digests=lambda: _DIGESTS)


if __name__ == "__main__":
    _common.run(test_one_input, sys.argv)
