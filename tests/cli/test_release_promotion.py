"""Issue 19: a release promoted as one unit.

``attest verify --release M --stage stg --emit-vsa FILE --signer STG`` signs one VSA for the whole release:
its subjects are the manifest (``release:NAME``, by the sha256 of its envelope line) and every component
artefact; its inputs are the manifest, each component's provenance and the stage evidence relied on; it is
published under each artefact. ``--stage prd --release M`` then passes on that VSA, and per-component
VSAs from stg count for their component too. Two stacks from two repositories, three environments.
"""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
import sys
from pathlib import Path

import pytest

from tests.conftest import KeyPair, git, make_keypair, make_repo, run_attest

POLICY = """\
version: 1
identities:
  dev-build: {{keys: ["{dev}"]}}
  stg-verifier: {{keys: ["{stg}"]}}
  prd-verifier: {{keys: ["{prd}"]}}
provenance:
  signed-by: [dev-build]
  source: {{uri: github.com/acme/app, branches: [main]}}
components:
  infra: {{source: {{uri: github.com/acme/infra, branches: [main]}}}}
releases: {{signed-by: [dev-build]}}
stages:
  stg: {{verifier: stg-verifier}}
  prd:
    verifier: prd-verifier
    require-vsa: [{{stage: stg, signed-by: stg-verifier}}]
"""


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, KeyPair]]:
    """infra (dist/) and app (app.txt) built from their own repositories into ``store``, a release of both,
    and the policy; copied for each test."""
    root = tmp_path_factory.mktemp("promotion")
    keys = {name: make_keypair(root, name) for name in ("dev", "stg", "prd")}
    infra = make_repo(root / "infra", origin="git@github.com:acme/infra.git")
    assert run_attest("build", "--signer", keys["dev"].private, "--artifact", "dist/", "--publish", "../store",
                      "-o", "../infra.intoto.jsonl", "--", sys.executable, "build.py", cwd=infra).code == 0
    app = make_repo(root / "app", origin="git@github.com:acme/app.git")
    (app / "app.txt").write_text("the app\n")
    git(app, "add", "app.txt")
    git(app, "commit", "-q", "-m", "app")
    assert run_attest("build", "--signer", keys["dev"].private, "--artifact", "app.txt", "--publish", "../store",
                      "-o", "../app.intoto.jsonl", cwd=app).code == 0
    made = run_attest("release", "create", "--name", "r1", "--component", "infra=infra.intoto.jsonl",
                      "--component", "app=app.intoto.jsonl", "--needs", "app=infra", "--signer", keys["dev"].private,
                      cwd=root)
    assert made.code == 0, made
    (root / "policy.yaml").write_text(POLICY.format(**{n: k.public for n, k in keys.items()}))
    return root, keys


@pytest.fixture
def work(template: tuple[Path, dict[str, KeyPair]], tmp_path: Path) -> tuple[Path, dict[str, KeyPair]]:
    root, keys = template
    copy = tmp_path / "work"
    shutil.copytree(root, copy, symlinks=True)
    return copy, keys


def gate(work: Path, stage: str, *more: str) -> tuple[int, str, str]:
    result = run_attest("verify", "--release", "release.intoto.jsonl", "--store", "store", "--policy", "policy.yaml",
                        "--stage", stage, *more, cwd=work)
    return result.code, result.out, result.err


def statement(path: Path) -> dict[str, object]:
    envelope = json.loads(path.read_text())
    document: dict[str, object] = json.loads(base64.b64decode(envelope["payload"]))
    return document


def line_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes().strip()).hexdigest()


def test_prd_refuses_a_release_stg_has_not_verified(work: tuple[Path, dict[str, KeyPair]]) -> None:
    root, _ = work
    code, _, err = gate(root, "prd")
    assert code == 1 and "stg" in err, err


def test_stg_signs_one_vsa_for_the_release_and_prd_accepts_it(work: tuple[Path, dict[str, KeyPair]]) -> None:
    root, keys = work
    code, out, err = gate(root, "stg", "--emit-vsa", "stg.vsa.intoto.jsonl", "--signer", str(keys["stg"].private))
    assert code == 0, err
    assert "vsa       stg PASSED for the release" in out

    vsa = statement(root / "stg.vsa.intoto.jsonl")
    subjects = vsa["subject"]
    assert isinstance(subjects, list)
    manifest = line_sha256(root / "release.intoto.jsonl")
    built = [s["digest"]["sha256"] for name in ("infra", "app")  # type: ignore[index]
             for s in statement(root / f"{name}.intoto.jsonl")["subject"]]  # type: ignore[union-attr]
    assert len(built) == 3  # infra's two files, app's one
    assert subjects[0] == {"name": "release:r1", "digest": {"sha256": manifest}}
    assert sorted(s["digest"]["sha256"] for s in subjects[1:]) == sorted(built)
    predicate = vsa["predicate"]
    assert isinstance(predicate, dict) and predicate["resourceUri"] == "attest:stage:stg"
    inputs = [i["digest"]["sha256"] for i in predicate["inputAttestations"]]
    assert inputs == [manifest, line_sha256(root / "infra.intoto.jsonl"), line_sha256(root / "app.intoto.jsonl")]
    for sha in built:  # published beside each artefact, where prd's gate looks
        assert any(p.read_bytes() == (root / "stg.vsa.intoto.jsonl").read_bytes()
                   for p in (root / "store" / "sha256" / sha).glob("vsa-*.intoto.jsonl"))

    code, out, err = gate(root, "prd", "--format", "json")
    assert code == 0, err
    components = json.loads(out)["components"]
    assert {c["component"] for c in components} == {"infra", "app"}
    assert all(s["stage"] == "stg" for c in components for s in c["stages"])


def test_per_component_vsas_from_stg_count_for_their_component(work: tuple[Path, dict[str, KeyPair]]) -> None:
    root, keys = work
    # stg's infra pipeline verifies infra's files under its own policy (infra's repository), app's under app's
    infra_policy = root / "infra-policy.yaml"
    infra_policy.write_text((root / "policy.yaml").read_text().replace(
        "source: {uri: github.com/acme/app, branches: [main]}", "source: {uri: github.com/acme/infra}"))
    artefacts = [("infra-policy.yaml", "infra/dist/app.tar.gz"), ("infra-policy.yaml", "infra/dist/sub/data.bin"),
                 ("policy.yaml", "app/app.txt")]
    for number, (policy, artefact) in enumerate(artefacts):
        one = run_attest("verify", artefact, "--store", "store", "--policy", policy, "--stage", "stg",
                         "--emit-vsa", f"{number}.vsa.intoto.jsonl", "--signer", keys["stg"].private, cwd=root)
        assert one.code == 0, one
        code, _, err = gate(root, "prd")
        assert (code == 0) == (number == len(artefacts) - 1), err  # the release passes once every artefact has one


def test_only_the_stage_verifier_signs_the_release_vsa(work: tuple[Path, dict[str, KeyPair]]) -> None:
    root, keys = work
    code, _, err = gate(root, "stg", "--emit-vsa", "stg.vsa.intoto.jsonl", "--signer", str(keys["prd"].private))
    assert code == 2 and "not a key of 'stg-verifier'" in err, err
    assert not (root / "stg.vsa.intoto.jsonl").exists()
    assert not list((root / "store").rglob("vsa-*.intoto.jsonl"))


def test_a_release_stg_refuses_gets_no_vsa(work: tuple[Path, dict[str, KeyPair]]) -> None:
    root, keys = work
    policy = root / "policy.yaml"
    policy.write_text(policy.read_text().replace("github.com/acme/infra", "github.com/acme/elsewhere"))
    code, _, err = gate(root, "stg", "--emit-vsa", "stg.vsa.intoto.jsonl", "--signer", str(keys["stg"].private))
    assert code == 1 and "component infra" in err, err
    assert not (root / "stg.vsa.intoto.jsonl").exists()
    assert not list((root / "store").rglob("vsa-*.intoto.jsonl"))


def test_lockfiles_still_apply_to_one_artefact(work: tuple[Path, dict[str, KeyPair]]) -> None:
    root, _ = work
    code, _, err = gate(root, "stg", "--lockfile", "infra/requirements.txt")
    assert code == 2 and "--lockfile applies to one artefact" in err, err
