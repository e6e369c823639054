"""The gate's findings (issue 10), each a test named after the behaviour, through the real CLI.

One history is built once for the module, the way a team would make it: a dev key signs provenance
for release-1, a docs-only commit rebuilt reproducibly (the same bytes, a second provenance), and a
hotfix that never went through stg; stg verified release-1's FIRST provenance and signed a VSA naming
it; a release manager signed manifests. The policy is realistic (source, branch, builder, lockfile).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import BUILD_SCRIPT, KeyPair, Result, git, make_keypair, make_repo, run_attest
from tests.factory import provenance as signed_provenance
from verify.formats.envelope import Envelope

ARTIFACT = "dist/app.tar.gz"
EPOCH = "1700000000"


@dataclass(frozen=True)
class World:
    work: Path
    keys: dict[str, KeyPair]
    commits: dict[str, str]

    def verify(self, *args: str | Path, timeout: float = 120) -> Result:
        return run_attest("verify", *args, cwd=self.work, timeout=timeout)

    def line(self, name: str) -> bytes:
        return (self.work / name).read_bytes()

    def sha(self, name: str) -> str:
        return hashlib.sha256((self.work / name).read_bytes()).hexdigest()


def _policy(keys: dict[str, KeyPair]) -> str:
    return f"""\
version: 1
identities:
  dev-build: {{keys: ["{keys['dev'].public}"]}}
  stg-verifier: {{keys: ["{keys['stg'].public}"]}}
  prd-verifier: {{keys: ["{keys['prd'].public}"]}}
  release-manager: {{keys: ["{keys['rel'].public}"]}}
  other: {{keys: ["{keys['other'].public}"]}}
provenance:
  signed-by: [dev-build]
  source: {{uri: github.com/acme/app, branches: [main]}}
  builders: ["attest:builder:local"]
  lockfiles: [requirements.txt]
releases: {{signed-by: [release-manager]}}
stages:
  stg: {{verifier: stg-verifier}}
  prd: {{verifier: prd-verifier, require-vsa: [{{stage: stg, signed-by: stg-verifier}}]}}
"""


def _build(app: Path, keys: dict[str, KeyPair], output: Path) -> None:
    done = run_attest("build", "--signer", keys["dev"].private, "--artifact", "dist/", "--publish", "../store", "-o",
                      output, "--", sys.executable, "build.py", cwd=app, env={"SOURCE_DATE_EPOCH": EPOCH})
    assert done.code == 0, done


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    work = tmp_path_factory.mktemp("gate")
    keys = {name: make_keypair(work, name) for name in ("dev", "stg", "prd", "rel", "other")}
    app = make_repo(work / "app", ignore="dist/\n", origin="https://github.com/acme/app.git", message="release-1")
    commits = {"release-1": git(app, "rev-parse", "HEAD")}
    _build(app, keys, work / "p1.intoto.jsonl")
    shutil.copy(app / ARTIFACT, work / "release-1.tar.gz")
    # a docs-only commit, rebuilt reproducibly: the same bytes, a second provenance in the store
    (app / "README.md").write_text("docs\n")
    git(app, "add", "README.md")
    git(app, "commit", "-q", "-m", "docs")
    commits["docs"] = git(app, "rev-parse", "HEAD")
    _build(app, keys, work / "p2.intoto.jsonl")
    assert (app / ARTIFACT).read_bytes() == (work / "release-1.tar.gz").read_bytes()
    # a hotfix that goes straight at prd
    (app / "build.py").write_text(BUILD_SCRIPT.replace("app built at", "hotfix built at"))
    git(app, "commit", "-q", "-am", "hotfix")
    commits["hotfix"] = git(app, "rev-parse", "HEAD")
    _build(app, keys, work / "hotfix.intoto.jsonl")
    shutil.copy(app / ARTIFACT, work / "hotfix.tar.gz")
    (work / "policy.yaml").write_text(_policy(keys))
    shutil.copy(app / "dist" / "sub" / "data.bin", work / "data.bin")  # the other artefact of every build
    # stg verifies release-1 (both artefacts) against its FIRST provenance only, signs VSAs naming it, publishes them
    for artefact, vsa in (("release-1.tar.gz", "stg-vsa.intoto.jsonl"), ("data.bin", "stg-data-vsa.intoto.jsonl")):
        stg = run_attest("verify", artefact, "--attestation", "p1.intoto.jsonl", "--policy", "policy.yaml", "--stage",
                         "stg", "--emit-vsa", vsa, "--signer", keys["stg"].private, cwd=work)
        assert stg.code == 0, stg
        sha = hashlib.sha256((work / artefact).read_bytes()).hexdigest()
        (work / "store" / "sha256" / sha / f"vsa-{vsa}").write_bytes((work / vsa).read_bytes())
    for name, component in (("r1", "p1.intoto.jsonl"), ("r-hotfix", "hotfix.intoto.jsonl")):
        made = run_attest("release", "create", "--name", name, "--component", f"app={component}", "--signer",
                          keys["rel"].private, "-o", f"{name}.intoto.jsonl", cwd=work)
        assert made.code == 0, made
    made = run_attest("release", "create", "--name", "forged", "--component", "app=p1.intoto.jsonl", "--signer",
                      keys["other"].private, "-o", "forged.intoto.jsonl", cwd=work)
    assert made.code == 0, made
    return World(work=work, keys=keys, commits=commits)


def _one_sentence(result: Result) -> None:
    assert result.err.count("\n") == 1 and result.err.startswith("attest: "), result
    assert "Traceback" not in result.err


# --- 1. releases are the gate applied to every component --------------------------------------------------

def test_a_release_passes_only_with_the_stage_requirements_of_every_component(world: World) -> None:
    ok = world.verify("--release", "r1.intoto.jsonl", "--store", "store", "--policy", "policy.yaml", "--stage", "prd",
                      "--format", "json")
    assert ok.code == 0, ok
    components = json.loads(ok.out)["components"]
    assert sorted(c["artifact"] for c in components) == ["dist/app.tar.gz", "dist/sub/data.bin"]
    assert all([s["stage"] for s in c["stages"]] == ["stg"] for c in components)
    hotfix = world.verify("--release", "r-hotfix.intoto.jsonl", "--store", "store", "--policy", "policy.yaml",
                          "--stage", "prd")
    assert hotfix.code == 1 and "component app" in hotfix.err and "stage 'stg'" in hotfix.err, hotfix
    _one_sentence(hotfix)


def test_a_release_applies_the_provenance_rules_to_each_component_not_to_the_manifest(world: World) -> None:
    ok = world.verify("--release", "r1.intoto.jsonl", "--store", "store", "--policy", "policy.yaml")
    assert ok.code == 0, ok  # source, branch, builder and lockfile rules hold for the component's provenance
    assert "PASS release r1 (signed by release-manager)" in ok.out


def test_a_release_manifest_signed_by_someone_not_allowed_for_releases_is_refused(world: World) -> None:
    forged = world.verify("--release", "forged.intoto.jsonl", "--store", "store", "--policy", "policy.yaml")
    assert forged.code == 1 and "no signature verifies with a trusted key (trusted: release-manager)" in forged.err, \
        forged


def test_a_release_refuses_what_applies_to_one_artefact(world: World) -> None:
    # --emit-vsa is allowed with --release since issue 19: tests/cli/test_release_promotion.py
    result = world.verify("--release", "r1.intoto.jsonl", "--store", "store", "--policy", "policy.yaml",
                          "--lockfile", "app/requirements.txt")
    assert result.code == 2 and "--lockfile applies to one artefact" in result.err, result


# --- 2. stages are named by the policy ---------------------------------------------------------------------

@pytest.mark.parametrize("stage", ["prod", "PRD", "prd ", "Stg"])
def test_a_stage_the_policy_does_not_name_is_a_usage_error(world: World, stage: str) -> None:
    result = world.verify("hotfix.tar.gz", "--store", "store", "--policy", "policy.yaml", "--stage", stage)
    assert result.code == 2 and f"--stage {stage!r} is not a stage of the policy (its stages: stg, prd)" \
        in result.err, result
    _one_sentence(result)


def test_a_stage_without_a_policy_needs_its_requirements_spelt_out(world: World) -> None:
    result = world.verify("hotfix.tar.gz", "--store", "store", "--key", world.keys["dev"].public, "--stage", "prd")
    assert result.code == 2 and "--require-vsa STAGE --vsa-key PEM" in result.err, result
    adhoc = world.verify("hotfix.tar.gz", "--store", "store", "--key", world.keys["dev"].public, "--stage", "prd",
                         "--require-vsa", "stg", "--vsa-key", world.keys["stg"].public)
    assert adhoc.code == 1 and "stage 'stg'" in adhoc.err, adhoc
    ok = world.verify("release-1.tar.gz", "--store", "store", "--key", world.keys["dev"].public, "--stage", "prd",
                      "--require-vsa", "stg", "--vsa-key", world.keys["stg"].public)
    assert ok.code == 0, ok


@pytest.mark.parametrize(("stage", "signer", "words"), [
    ("prod", "stg", "is not a stage of the policy"),
    ("stg", "prd", "--signer's public key is not a key of 'stg-verifier', the verifier of stage 'stg'"),
    ("stg", "other", "--signer's public key is not a key of 'stg-verifier'"),
])
def test_a_vsa_is_signed_only_for_a_policy_stage_by_its_verifier(world: World, stage: str, signer: str,
                                                                words: str) -> None:
    result = world.verify("release-1.tar.gz", "--store", "store", "--policy", "policy.yaml", "--stage", stage,
                          "--emit-vsa", "rogue.intoto.jsonl", "--signer", world.keys[signer].private)
    assert result.code == 2 and words in result.err, result
    assert not (world.work / "rogue.intoto.jsonl").exists()


def test_emit_vsa_without_a_policy_is_refused(world: World) -> None:
    result = world.verify("hotfix.tar.gz", "--store", "store", "--key", world.keys["dev"].public, "--stage", "prd",
                          "--emit-vsa", "rogue.intoto.jsonl", "--signer", world.keys["prd"].private)
    assert result.code == 2 and "--emit-vsa signs a VSA for a stage the policy names" in result.err, result
    assert not (world.work / "rogue.intoto.jsonl").exists()


def test_emit_vsa_never_replaces_a_key_the_policy_pins_or_an_object_of_the_store(world: World) -> None:
    """Files the run reads beyond its options' own values: the next run would have trusted no key, or read a VSA
    where the store held a provenance."""
    pinned = world.keys["stg"].public
    before = pinned.read_bytes()
    result = world.verify("hotfix.tar.gz", "--store", "store", "--policy", "policy.yaml", "--stage", "stg",
                          "--emit-vsa", pinned, "--signer", world.keys["stg"].private)
    assert result.code == 2 and "is the key file" in result.err and "the policy pins for" in result.err, result
    assert pinned.read_bytes() == before
    stored = sorted((world.work / "store" / "sha256").glob("*/provenance-*.intoto.jsonl"))[0]
    before = stored.read_bytes()
    result = world.verify("hotfix.tar.gz", "--store", "store", "--policy", "policy.yaml", "--stage", "stg",
                          "--emit-vsa", stored, "--signer", world.keys["stg"].private)
    assert result.code == 2 and "is inside the store store" in result.err, result
    assert stored.read_bytes() == before


def test_emit_vsa_may_write_beside_a_store_s_trees(world: World, tmp_path: Path) -> None:
    """A workspace that is the store holds reports and the like too: only the store's own trees are refused."""
    store = tmp_path / "store"
    shutil.copytree(world.work / "store", store)
    (store / "reports").mkdir()
    result = world.verify("hotfix.tar.gz", "--store", store, "--policy", "policy.yaml", "--stage", "stg",
                          "--emit-vsa", store / "reports" / "stg.vsa.intoto.jsonl", "--signer",
                          world.keys["stg"].private)
    assert result.code in (0, 1) and "is inside the store" not in result.err, result


# --- 3. an empty value never removes a rule ------------------------------------------------------------------

@pytest.mark.parametrize("flag", ["--source-uri", "--source-branch", "--builder-id", "--commit", "--predicate-type",
                                  "--stage", "--require-vsa", "--key", "--store", "--certificate-identity",
                                  "--github-repo", "--resource-uri", "--verifier-id", "--lockfile", "--attestation",
                                  "--policy", "--trusted-root", "--vsa-key", "--emit-vsa", "--signer",
                                  "--verified-level", "--certificate-oidc-issuer", "--source-ref"])
def test_an_empty_flag_is_a_usage_error_never_a_missing_rule(world: World, flag: str) -> None:
    rule = ["--source-uri", "github.com/acme/app"] if flag != "--source-uri" else []  # (given once: see below)
    args = ["hotfix.tar.gz", "--attestation", "hotfix.intoto.jsonl", "--key", world.keys["dev"].public, *rule, flag, ""]
    result = world.verify(*args)
    assert result.code == 2 and "empty (an unset pipeline variable?)" in result.err, result
    _one_sentence(result)


@pytest.mark.parametrize("twice", [
    ["--commit", "1" * 40, "--commit", "2" * 40],
    ["--source-branch", "release", "--source-branch", "main"],
    ["--source-uri", "github.com/evil/app", "--source-uri=github.com/acme/app"],
    ["--predicate-type", "https://attest.dev/approval/v1", "--predicate-type", "https://slsa.dev/provenance/v1"],
    ["--format", "json", "--format", "text"],
    ["--rollback", "--hotfix"],
])
def test_an_option_of_one_value_given_twice_is_a_usage_error(world: World, twice: list[str]) -> None:
    """click keeps the last of them, silently: ``--commit WRONG --commit RIGHT`` (a pipeline's variable, then a
    default) passed as if only RIGHT had been asked for."""
    result = world.verify("hotfix.tar.gz", "--attestation", "hotfix.intoto.jsonl", "--key", world.keys["dev"].public,
                          *twice)
    assert result.code == 2, result
    assert "is given more than once" in result.err or "exclude each other" in result.err, result
    _one_sentence(result)


@pytest.mark.parametrize("args", [
    ["--key", "K1", "--key", "K2"],  # options that take many are left alone
    ["-v", "-v"],
])
def test_options_that_take_many_may_be_repeated(world: World, args: list[str]) -> None:
    keys = [str(world.keys[name].public) for name in ("dev", "other")]
    given = [keys.pop(0) if a.startswith("K") else a for a in args]
    result = world.verify("hotfix.tar.gz", "--attestation", "hotfix.intoto.jsonl",
                          *(given if "--key" in given else ["--key", world.keys["dev"].public, *given]),
                          "--source-uri", "github.com/acme/app")
    assert "is given more than once" not in result.err, result


# --- 4. flags narrow a policy, never widen or replace it ---------------------------------------------------

@pytest.mark.parametrize(("flag", "value", "words"), [
    ("--source-uri", "github.com/evil/app", "names another repository than the policy's"),
    ("--source-branch", "release", "is not one of the policy's branches"),
    ("--builder-id", "arn:aws:codebuild:eu-west-1:1:project/x", "is not one of the policy's builders"),
    ("--predicate-type", "https://example.com/other", "is not what the policy asks for"),
    ("--vsa-key", "other.pub.pem", "--vsa-key is for a gate without a policy"),
    ("--certificate-identity", "me", "adds a trusted identity, and flags only narrow a policy"),
])
def test_a_flag_that_would_widen_or_contradict_the_policy_is_refused(world: World, flag: str, value: str,
                                                                    words: str) -> None:
    extra = ["--certificate-oidc-issuer", "https://issuer"] if flag == "--certificate-identity" else []
    result = world.verify("release-1.tar.gz", "--attestation", "p1.intoto.jsonl", "--policy", "policy.yaml", flag,
                          value, *extra)
    assert result.code == 2 and words in result.err, result


def test_a_key_flag_with_a_policy_only_narrows_the_trusted_signers(world: World) -> None:
    narrowed = world.verify("release-1.tar.gz", "--attestation", "p1.intoto.jsonl", "--policy", "policy.yaml",
                            "--key", world.keys["dev"].public)
    assert narrowed.code == 0, narrowed
    widened = world.verify("release-1.tar.gz", "--attestation", "p1.intoto.jsonl", "--policy", "policy.yaml",
                           "--key", world.keys["other"].public)
    assert widened.code == 2 and "is not a key the policy trusts to sign provenance" in widened.err, widened


def test_narrowing_flags_still_apply_on_top_of_the_policy(world: World) -> None:
    ok = world.verify("release-1.tar.gz", "--attestation", "p1.intoto.jsonl", "--policy", "policy.yaml",
                      "--source-branch", "main", "--commit", world.commits["release-1"])
    assert ok.code == 0, ok
    other = world.verify("release-1.tar.gz", "--attestation", "p1.intoto.jsonl", "--policy", "policy.yaml",
                         "--commit", world.commits["docs"])
    assert other.code == 1 and "expected" in other.err and world.commits["docs"] in other.err, other


# --- 6. a full commit id only --------------------------------------------------------------------------------

@pytest.mark.parametrize("length", [7, 12, 39])
def test_a_commit_prefix_is_refused(world: World, length: int) -> None:
    result = world.verify("release-1.tar.gz", "--attestation", "p1.intoto.jsonl", "--policy", "policy.yaml",
                          "--commit", world.commits["release-1"][:length])
    assert result.code == 2 and "is not a full commit id" in result.err, result


# --- 7. candidates, not the first match by file name ----------------------------------------------------------

def test_the_gate_finds_the_provenance_the_stg_vsa_names_whatever_the_file_names(world: World) -> None:
    sha = world.sha("release-1.tar.gz")
    folder = world.work / "store" / "sha256" / sha
    p1 = hashlib.sha256(world.line("p1.intoto.jsonl").strip()).hexdigest()
    for prefix in ("aaa", "zzz"):  # the provenance stg verified sorts first, then last
        copy = world.work / f"store-{prefix}"
        shutil.copytree(world.work / "store", copy)
        target = copy / "sha256" / sha
        for path in list(target.iterdir()):
            if path.name.startswith("provenance-"):
                data = path.read_bytes()
                path.unlink()
                named = prefix if hashlib.sha256(data.strip()).hexdigest() == p1 else "mmm"
                (target / f"{named}-{path.name}").write_bytes(data)
        assert len(list(target.glob("*provenance-*"))) == 2 and folder.is_dir()
        result = world.verify("release-1.tar.gz", "--store", copy, "--policy", "policy.yaml", "--stage", "prd",
                              "--format", "json")
        assert result.code == 0, result
        verdict = json.loads(result.out)
        assert verdict["evidence"]["sha256"] == p1 and verdict["candidates"] == 2
        assert verdict["provenance"]["commit"] == world.commits["release-1"]


# --- 8. a VSA is bound to the provenance it verified -----------------------------------------------------------

def test_a_stg_vsa_does_not_vouch_for_another_provenance_of_the_same_bytes(world: World) -> None:
    """Only p2 (the docs commit's provenance) is given: the stg VSA names p1, so prd refuses."""
    result = world.verify("release-1.tar.gz", "--attestation", "p2.intoto.jsonl", "--attestation",
                          "stg-vsa.intoto.jsonl", "--policy", "policy.yaml", "--stage", "prd")
    assert result.code == 1 and "does not name the provenance p2.intoto.jsonl" in result.err, result


def test_a_provenance_without_a_build_time_gets_no_stage_vsa(world: World, tmp_path: Path) -> None:
    timeless = signed_provenance(world.keys["dev"].private, subjects={ARTIFACT: world.line("release-1.tar.gz")},
                                 commit=world.commits["release-1"], repo="https://github.com/acme/app",
                                 builder="attest:builder:local")
    statement = json.loads(timeless.payload)
    del statement["predicate"]["runDetails"]["metadata"]["startedOn"]
    del statement["predicate"]["runDetails"]["metadata"]["finishedOn"]
    from tests.factory import sign

    line = sign(world.keys["dev"].private, statement).to_json_line()
    (tmp_path / "timeless.intoto.jsonl").write_bytes(line)
    vsa = json.loads(Envelope.from_json(world.line("stg-vsa.intoto.jsonl").strip()).payload)
    vsa["predicate"]["timeVerified"] = "1970-01-01T00:00:00Z"
    vsa["predicate"]["inputAttestations"] = [{"uri": "t", "digest": {"sha256": hashlib.sha256(line.strip())
                                                                     .hexdigest()}}]
    (tmp_path / "vsa-1970.intoto.jsonl").write_bytes(sign(world.keys["stg"].private, vsa).to_json_line())
    result = world.verify("release-1.tar.gz", "--attestation", tmp_path / "timeless.intoto.jsonl", "--attestation",
                          tmp_path / "vsa-1970.intoto.jsonl", "--policy", "policy.yaml", "--stage", "prd")
    assert result.code == 1 and "records no build time" in result.err, result


# --- 10. every evidence byte through the hardened reader --------------------------------------------------------

def test_a_fifo_as_attestation_is_refused_at_once(world: World, tmp_path: Path) -> None:
    fifo = tmp_path / "fifo.intoto.jsonl"
    os.mkfifo(fifo)
    result = world.verify("release-1.tar.gz", "--attestation", fifo, "--policy", "policy.yaml", timeout=30)
    assert result.code == 3 and "is not a regular file" in result.err, result


def test_a_symlink_to_dev_zero_as_attestation_is_refused_at_once(world: World, tmp_path: Path) -> None:
    link = tmp_path / "zero.intoto.jsonl"
    link.symlink_to("/dev/zero")
    result = world.verify("release-1.tar.gz", "--attestation", link, "--policy", "policy.yaml", timeout=30)
    assert result.code == 3 and "is not a regular file" in result.err, result


def test_deeply_nested_json_as_attestation_is_a_rejection_not_a_crash(world: World, tmp_path: Path) -> None:
    deep = tmp_path / "deep.intoto.jsonl"
    deep.write_bytes(b"[" * 100_000)
    result = world.verify("release-1.tar.gz", "--attestation", deep, "--policy", "policy.yaml", timeout=30)
    assert result.code == 1 and "nests JSON deeper than 64 levels" in result.err, result
    _one_sentence(result)


def test_a_store_full_of_hard_links_to_one_large_file_stops_at_the_run_budget(world: World, tmp_path: Path) -> None:
    store = tmp_path / "store"
    shutil.copytree(world.work / "store", store)
    folder = store / "sha256" / world.sha("release-1.tar.gz")
    big = tmp_path / "big"
    with big.open("wb") as f:
        f.truncate(16 * 1024 * 1024)  # sparse: costs no disk
    for i in range(60):
        os.link(big, folder / f"junk-{i:02d}.intoto.jsonl")
    result = world.verify("release-1.tar.gz", "--store", store, "--policy", "policy.yaml", timeout=60)
    assert result.code == 1 and "bytes of attestations" in result.err, result


# --- 13. smaller ---------------------------------------------------------------------------------------------

def test_a_store_that_does_not_exist_is_unreadable_input(world: World) -> None:
    result = world.verify("release-1.tar.gz", "--store", "nostore", "--policy", "policy.yaml")
    assert result.code == 3 and "store nostore is not a directory" in result.err, result


def test_verify_shows_evidence_text_escaped(world: World, tmp_path: Path) -> None:
    name = "dist/\x1b[2J\x1b]0;pwned\x07app\u202e.tar.gz"
    hostile = signed_provenance(world.keys["dev"].private, subjects={name: world.line("release-1.tar.gz")},
                                commit=world.commits["release-1"], builder="attest:builder:local")
    (tmp_path / "hostile.intoto.jsonl").write_bytes(hostile.to_json_line())
    result = world.verify("release-1.tar.gz", "--attestation", tmp_path / "hostile.intoto.jsonl", "--key",
                          world.keys["dev"].public)
    assert result.code == 0, result
    assert "\x1b" not in result.out and "\x07" not in result.out and "\u202e" not in result.out
    assert "dist/\\x1b[2J\\x1b]0;pwned\\x07app\\u202e.tar.gz" in result.out


def test_a_failed_stage_explains_itself_in_json(world: World) -> None:
    result = world.verify("hotfix.tar.gz", "--store", "store", "--policy", "policy.yaml", "--stage", "prd",
                          "--format", "json")
    assert result.code == 1, result
    verdict = json.loads(result.out)
    assert verdict["verified"] is False
    checks = verdict["checks"]
    assert [c["check"] for c in checks][:2] == ["signature", "payloadType"] and all(c["passed"] for c in checks[:-1])
    assert checks[-1]["check"] == "stage" and checks[-1]["passed"] is False
    assert checks[-1]["expected"]["vsa"] == [{"stage": "stg", "signed-by": ["stg-verifier"]}]


def test_the_hotfix_that_skipped_stg_is_refused_and_release_1_passes(world: World) -> None:
    refused = world.verify("hotfix.tar.gz", "--store", "store", "--policy", "policy.yaml", "--stage", "prd")
    assert refused.code == 1 and "stage 'prd' requires stage 'stg' to have verified this artefact" in refused.err
    _one_sentence(refused)
    passed = world.verify("release-1.tar.gz", "--store", "store", "--policy", "policy.yaml", "--stage", "prd")
    assert passed.code == 0 and "vsa       stg by stg-verifier" in passed.out, passed


def test_a_usage_error_is_one_sentence_naming_the_help(world: World) -> None:
    for args in (("--no-such-flag",), ("release-1.tar.gz", "--format", "yaml")):
        result = world.verify(*args)
        assert result.code == 2 and "(see 'attest verify --help')" in result.err, result
        _one_sentence(result)
