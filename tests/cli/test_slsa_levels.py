"""SLSA levels come from trust, not from a flag (issue 17, finding 1), through the real CLI.

The policy trusts a laptop's builder id for level 1 (a bare id) and the CodeBuild project for level 3.
A VSA states the level the policy trusts the provenance's builder for; ``--verified-level`` only
requires a level; a stage's ``min-level`` is checked against the builder and against the VSAs it
relies on.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest

from tests import factory as f
from tests.conftest import KeyPair, Result, make_keypair, run_attest
from verify.formats.envelope import Envelope

LAPTOP = "attest:builder:local"
ARTIFACT = b"app bytes\n"


@dataclass(frozen=True)
class Levels:
    work: Path
    keys: dict[str, KeyPair]

    def verify(self, *args: str | Path) -> Result:
        return run_attest("verify", "app.tar.gz", "--policy", "policy.yaml", *args, cwd=self.work)

    def levels(self, name: str) -> list[str]:
        envelope = Envelope.from_json((self.work / name).read_bytes())
        return list(json.loads(envelope.payload)["predicate"]["verifiedLevels"])

    def sha(self, name: str) -> str:
        """sha256 of the attestation's line: what a VSA's inputAttestations names."""
        return hashlib.sha256((self.work / name).read_bytes().rstrip(b"\n")).hexdigest()


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Levels:
    work = tmp_path_factory.mktemp("levels")
    keys = {name: make_keypair(work, name) for name in ("dev", "stg", "prd")}
    (work / "app.tar.gz").write_bytes(ARTIFACT)
    for name, builder in (("laptop", LAPTOP), ("codebuild", f.BUILDER)):
        env = f.provenance(keys["dev"].private, subjects={"app.tar.gz": ARTIFACT}, builder=builder)
        (work / f"{name}.intoto.jsonl").write_bytes(env.to_json_line())
    (work / "policy.yaml").write_text(f"""\
version: 1
identities:
  dev-build: {{keys: ["{keys['dev'].public}"]}}
  stg-verifier: {{keys: ["{keys['stg'].public}"]}}
  prd-verifier: {{keys: ["{keys['prd'].public}"]}}
provenance:
  signed-by: [dev-build]
  builders: ["{LAPTOP}", {{id: "{f.BUILDER}", level: 3}}]
stages:
  stg: {{verifier: stg-verifier}}
  prd: {{verifier: prd-verifier, require-vsa: [stg], min-level: 3}}
""")
    return Levels(work=work, keys=keys)


def _emit(world: Levels, provenance: str, out: str, *more: str) -> Result:
    return world.verify("--attestation", provenance, "--stage", "stg", "--emit-vsa", out, "--signer",
                        world.keys["stg"].private, *more)


def test_a_vsa_states_the_level_the_policy_trusts_the_builder_for(world: Levels) -> None:
    laptop = _emit(world, "laptop.intoto.jsonl", "laptop-vsa.intoto.jsonl")
    assert laptop.code == 0, laptop
    assert world.levels("laptop-vsa.intoto.jsonl") == ["SLSA_BUILD_LEVEL_1"]
    codebuild = _emit(world, "codebuild.intoto.jsonl", "codebuild-vsa.intoto.jsonl", "--format", "json")
    assert codebuild.code == 0, codebuild
    assert world.levels("codebuild-vsa.intoto.jsonl") == ["SLSA_BUILD_LEVEL_3"]
    assert json.loads(codebuild.out)["buildLevel"] == 3


def test_verified_level_above_the_builders_trust_is_refused_and_nothing_is_signed(world: Levels) -> None:
    result = _emit(world, "laptop.intoto.jsonl", "claimed-l3.intoto.jsonl", "--verified-level", "SLSA_BUILD_LEVEL_3")
    assert result.code == 1, result
    assert (f"builder '{LAPTOP}' is not trusted for SLSA build level 3: the policy trusts it for level 1"
            in result.err), result
    assert not (world.work / "claimed-l3.intoto.jsonl").exists()


def test_verified_level_only_requires_and_the_vsa_states_the_trusted_level(world: Levels) -> None:
    result = _emit(world, "codebuild.intoto.jsonl", "asked-l2.intoto.jsonl", "--verified-level", "SLSA_BUILD_LEVEL_2")
    assert result.code == 0, result
    assert world.levels("asked-l2.intoto.jsonl") == ["SLSA_BUILD_LEVEL_3"]


@pytest.mark.parametrize(("levels", "words"), [
    (["SLSA_BUILD_LEVEL_1", "SLSA_BUILD_LEVEL_3"], "is given 2 times"),
    (["SLSA_BUILD_LEVEL_3", "SLSA_BUILD_LEVEL_3"], "is given 2 times"),
    (["SLSA_BUILD_LEVEL_4"], "is not a SLSA build level attest verifies"),
    (["SLSA_SOURCE_LEVEL_2"], "is not a SLSA build level attest verifies"),
    (["slsa_build_level_3"], "is not a SLSA build level attest verifies"),
    (["L3"], "is not a SLSA build level attest verifies"),
])
def test_two_levels_or_an_unknown_level_is_a_usage_error(world: Levels, levels: list[str], words: str) -> None:
    args = [a for level in levels for a in ("--verified-level", level)]
    result = _emit(world, "codebuild.intoto.jsonl", "never.intoto.jsonl", *args)
    assert result.code == 2 and words in result.err, result
    assert not (world.work / "never.intoto.jsonl").exists()


def test_without_a_policy_no_builder_is_trusted_above_level_1(world: Levels) -> None:
    base = ["app.tar.gz", "--attestation", "codebuild.intoto.jsonl", "--key", world.keys["dev"].public]
    refused = run_attest("verify", *base, "--verified-level", "SLSA_BUILD_LEVEL_2", cwd=world.work)
    assert refused.code == 2 and "needs --policy FILE listing the builders trusted" in refused.err, refused
    ok = run_attest("verify", *base, "--verified-level", "SLSA_BUILD_LEVEL_1", cwd=world.work)
    assert ok.code == 0, ok


def test_a_stage_min_level_refuses_a_builder_trusted_for_less(world: Levels) -> None:
    assert _emit(world, "laptop.intoto.jsonl", "stg-laptop.intoto.jsonl").code == 0
    result = world.verify("--attestation", "laptop.intoto.jsonl", "--attestation", "stg-laptop.intoto.jsonl",
                          "--stage", "prd")
    assert result.code == 1 and "is not trusted for SLSA build level 3" in result.err, result


def test_a_stage_min_level_refuses_a_vsa_stating_less(world: Levels) -> None:
    # stg's verifier key signs a VSA for the right artefact and provenance, but states level 2
    for name, levels in (("stg-l2", ["SLSA_BUILD_LEVEL_2"]), ("stg-none", [])):
        vsa = f.vsa(world.keys["stg"].private, name="app.tar.gz", artifact=ARTIFACT, stage="stg",
                    at=f.T0 + timedelta(hours=1),
                    inputs=[("codebuild.intoto.jsonl", world.sha("codebuild.intoto.jsonl"))],
                    levels=levels)
        (world.work / f"{name}.intoto.jsonl").write_bytes(vsa.to_json_line())
    low = world.verify("--attestation", "codebuild.intoto.jsonl", "--attestation", "stg-l2.intoto.jsonl",
                       "--stage", "prd")
    assert low.code == 1 and "states SLSA build level 2, and this stage requires level 3" in low.err, low
    none = world.verify("--attestation", "codebuild.intoto.jsonl", "--attestation", "stg-none.intoto.jsonl",
                        "--stage", "prd")
    assert none.code == 1 and "states no build level, and this stage requires level 3" in none.err, none


def test_a_stage_min_level_passes_with_a_builder_and_vsa_at_that_level(world: Levels) -> None:
    assert _emit(world, "codebuild.intoto.jsonl", "stg-l3.intoto.jsonl").code == 0
    result = world.verify("--attestation", "codebuild.intoto.jsonl", "--attestation", "stg-l3.intoto.jsonl",
                          "--stage", "prd")
    assert result.code == 0, result
    assert f"builder   {f.BUILDER} (trusted for SLSA build level 3)" in result.out
