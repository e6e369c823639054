"""A build judged by a component's rules (``components.NAME.builders``) is trusted for the level those rules give
its builder, not ``provenance.builders``'s: what ``--verified-level`` checks, what a VSA states, and what the audit's
``min-level`` judges are one level (a review found the VSA and the audit reading the top-level builders)."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest

from tests import factory as f
from tests.conftest import make_keypair, run_attest
from verify.formats.envelope import Envelope

SHARED = "arn:aws:codebuild:eu-west-1:111111111111:project/shared-build"
INFRA = "arn:aws:codebuild:eu-west-1:111111111111:project/infra-build"
ARTIFACT = b"the infra bytes\n"


def _world(tmp_path: Path, *, top: tuple[str, int], component: tuple[str, int], builder: str) -> Path:
    keys = {name: make_keypair(tmp_path, name) for name in ("dev", "stg", "prd")}
    (tmp_path / "app.tar.gz").write_bytes(ARTIFACT)
    built = f.provenance(keys["dev"].private, subjects={"app.tar.gz": ARTIFACT}, repo="https://github.com/acme/infra",
                         builder=builder)
    f.publish(tmp_path / "store", built)
    (tmp_path / "infra.intoto.jsonl").write_bytes(built.to_json_line())
    (tmp_path / "policy.yaml").write_text(f"""\
version: 1
identities:
  dev-build: {{keys: ["{keys['dev'].public}"]}}
  stg-verifier: {{keys: ["{keys['stg'].public}"]}}
  prd-verifier: {{keys: ["{keys['prd'].public}"]}}
provenance:
  signed-by: [dev-build]
  builders: [{{id: "{top[0]}", level: {top[1]}}}]
components:
  infra:
    source: {{uri: github.com/acme/infra, branches: [main]}}
    builders: [{{id: "{component[0]}", level: {component[1]}}}]
stages:
  stg: {{verifier: stg-verifier, min-level: 3}}
""")
    return tmp_path


@pytest.mark.parametrize(("top", "component", "builder", "level"), [
    ((SHARED, 3), (SHARED, 1), SHARED, 1),  # the component trusts the shared builder less: no level 3 claimed
    ((SHARED, 3), (INFRA, 3), INFRA, 3),  # the component's own builder: its level 3, though provenance's has none
])
def test_the_vsa_states_the_level_the_component_trusts_the_builder_for(
        tmp_path: Path, top: tuple[str, int], component: tuple[str, int], builder: str, level: int) -> None:
    work = _world(tmp_path, top=top, component=component, builder=builder)
    for wanted in (1, 3):
        checked = run_attest("verify", "app.tar.gz", "--attestation", "infra.intoto.jsonl", "--policy", "policy.yaml",
                             "--verified-level", f"SLSA_BUILD_LEVEL_{wanted}", cwd=work)
        assert checked.code == (0 if wanted <= level else 1), checked
    emitted = run_attest("verify", "app.tar.gz", "--attestation", "infra.intoto.jsonl", "--policy", "policy.yaml",
                         "--format", "json", cwd=work)
    assert emitted.code == 0 and json.loads(emitted.out)["buildLevel"] == level, emitted
    if level:
        signed = run_attest("verify", "app.tar.gz", "--attestation", "infra.intoto.jsonl", "--policy", "policy.yaml",
                            "--stage", "stg", "--emit-vsa", "vsa.intoto.jsonl", "--signer", work / "stg.pem", cwd=work)
        if level < 3:  # stg's min-level 3 refuses it
            assert signed.code == 1 and not (work / "vsa.intoto.jsonl").exists(), signed
        else:
            assert signed.code == 0, signed
            statement = json.loads(Envelope.from_json((work / "vsa.intoto.jsonl").read_bytes()).payload)
            assert statement["predicate"]["verifiedLevels"] == [f"SLSA_BUILD_LEVEL_{level}"]


@pytest.mark.parametrize(("top", "component", "builder", "short"), [
    ((SHARED, 3), (SHARED, 1), SHARED, True),
    ((SHARED, 1), (INFRA, 3), INFRA, False),
])
def test_the_audit_judges_min_level_by_the_component_s_builders(tmp_path: Path, top: tuple[str, int],
                                                               component: tuple[str, int], builder: str,
                                                               short: bool) -> None:
    work = _world(tmp_path, top=top, component=component, builder=builder)
    f.publish(work / "store", f.vsa(work / "stg.pem", name="app.tar.gz", artifact=ARTIFACT, stage="stg",
                                    at=f.T0 + timedelta(hours=1), levels=("SLSA_BUILD_LEVEL_3",)))
    audited = run_attest("audit", "store", "--policy", "policy.yaml", "--no-index", "--format", "json", cwd=work)
    kinds = [a["kind"] for a in json.loads(audited.out)["anomalies"]]
    assert ("insufficient-level" in kinds) is short, audited
