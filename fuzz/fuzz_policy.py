"""Fuzz target: the policy loader (YAML, then every rule), and what a loaded policy is asked.

For any bytes as policy.yaml (beside a readable PEM public key k.pem): load_policy returns or
raises PolicyError; a loaded policy answers trust_run(...).usable and with_rules without crashing.
Anything else is a finding.

    python fuzz/fuzz_policy.py -max_total_time=60 -dict=fuzz/policy.dict fuzz/.work/policy fuzz/corpus/policy
"""

from __future__ import annotations

import contextlib
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

import _common
import atheris

with atheris.instrument_imports(include=["verify"]):
    from verify.errors import PolicyError
    from verify.policy import SourceRule, load_policy

_DIR = Path(tempfile.mkdtemp(prefix="attest-fuzz-policy-"))
(_DIR / "k.pem").write_bytes(_common.public_pem())
(_DIR / "keys").mkdir()
(_DIR / "keys" / "dev.pub.pem").write_bytes(_common.public_pem())
_PATH = _DIR / "policy.yaml"
_WHEN = (datetime(1970, 1, 1, tzinfo=UTC), datetime(2026, 6, 1, tzinfo=UTC), datetime(9999, 1, 1, tzinfo=UTC))


def test_one_input(data: bytes) -> None:
    _PATH.write_bytes(data)
    try:
        policy = load_policy(_PATH)
    except PolicyError:
        return
    for at in _WHEN:
        policy.trust_run(at=at).usable(list(policy.identities.values()))
        for identity in policy.identities.values():
            identity.usable(at)
            identity.unusable_because(at)
    policy.signers()
    with contextlib.suppress(PolicyError):
        policy.with_rules(source=SourceRule(uri="github.com/acme/app"))


if __name__ == "__main__":
    _common.run(test_one_input, sys.argv)
