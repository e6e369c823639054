"""Nothing is signed that could not count, and unknown is never equal (issue 23, class 10).

* ``attest approve`` for an approver outside its window, and ``--emit-vsa`` with a stage key that is not yet
  valid (or no longer), refuse before signing: exit 2, nothing written.
* ``verify --release --same-commit`` with a component that records no commit refuses: an unknown commit
  equals nothing.
* Every git dependency of a provenance is a source: a second one, from another repository, branch or
  commit, fails the source, branch and commit rules in whatever order the dependencies come.
* A source URI's scheme and port are part of the repository it names.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests import factory as f
from tests.conftest import KeyPair, make_keypair, run_attest
from verify.formats.statement import parse_statement, read_provenance
from verify.policy import ProvenanceRules, SourceRule
from verify.rules import evaluate_provenance

DATA = b"release bytes\n"
PAST = (datetime.now(UTC) - timedelta(days=30)).strftime("%Y-%m-%dT%H:%M:%SZ")
FUTURE = (datetime.now(UTC) + timedelta(days=30)).strftime("%Y-%m-%dT%H:%M:%SZ")


def _policy(keys: dict[str, KeyPair], *, alice: str = "", stg: str = "") -> str:
    return f"""\
version: 1
identities:
  dev-build: {{keys: ["{keys['dev'].public}"]}}
  stg-verifier: {{keys: ["{keys['stg'].public}"]{stg}}}
  alice: {{keys: ["{keys['alice'].public}"]{alice}}}
  release-manager: {{keys: ["{keys['rel'].public}"]}}
provenance:
  signed-by: [dev-build]
releases: {{signed-by: [release-manager]}}
stages:
  stg: {{verifier: stg-verifier}}
  prd: {{require-vsa: [stg], require-approvals: {{count: 1, signed-by: [alice]}}}}
"""


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, KeyPair]]:
    work = tmp_path_factory.mktemp("unknown")
    keys = {name: make_keypair(work, name) for name in ("dev", "stg", "alice", "rel")}
    (work / "app.tar.gz").write_bytes(DATA)
    (work / "p.intoto.jsonl").write_bytes(f.provenance(keys["dev"].private, subjects={"app.tar.gz": DATA})
                                          .to_json_line())
    return work, keys


WINDOWS = pytest.mark.parametrize("window", [f", not-after: {PAST}", f", not-before: {FUTURE}"],
                                  ids=["expired", "not-yet-valid"])


@WINDOWS
def test_an_approver_outside_its_window_signs_nothing(work: tuple[Path, dict[str, KeyPair]], window: str) -> None:
    path, keys = work
    (path / "policy.yaml").write_text(_policy(keys, alice=window))
    result = run_attest("approve", "app.tar.gz", "--policy", "policy.yaml", "--stage", "prd", "--signer",
                        keys["alice"].private, "-o", "approval.intoto.jsonl", cwd=path)
    assert result.code == 2 and "may not sign for 'alice' now (identity 'alice' is not valid" in result.err, result
    assert not (path / "approval.intoto.jsonl").exists()


@WINDOWS
def test_a_stage_key_outside_its_window_signs_no_vsa(work: tuple[Path, dict[str, KeyPair]], window: str) -> None:
    path, keys = work
    (path / "policy.yaml").write_text(_policy(keys, stg=window))
    result = run_attest("verify", "app.tar.gz", "--attestation", "p.intoto.jsonl", "--policy", "policy.yaml",
                        "--stage", "stg", "--emit-vsa", "vsa.intoto.jsonl", "--signer", keys["stg"].private, cwd=path)
    assert result.code == 2 and "may not sign for 'stg-verifier' now" in result.err, result
    assert not (path / "vsa.intoto.jsonl").exists()


def _without_commit(statement: dict[str, Any]) -> None:
    deps = statement["predicate"]["buildDefinition"]["resolvedDependencies"]
    statement["predicate"]["buildDefinition"]["resolvedDependencies"] = [d for d in deps
                                                                         if "gitCommit" not in d["digest"]]


def test_same_commit_refuses_a_component_that_records_no_commit(work: tuple[Path, dict[str, KeyPair]]) -> None:
    path, keys = work
    (path / "policy.yaml").write_text(_policy(keys))
    store = path / "store"
    for name, data in (("infra", b"infra bytes\n"), ("app", b"app bytes\n")):
        statement = json.loads(f.provenance(keys["dev"].private, subjects={f"{name}.zip": data}).payload)
        _without_commit(statement)
        envelope = f.sign(keys["dev"].private, statement)
        (path / f"{name}.intoto.jsonl").write_bytes(envelope.to_json_line())
        f.publish(store, envelope)
    made = run_attest("release", "create", "--name", "r1", "--component", "infra=infra.intoto.jsonl", "--component",
                      "app=app.intoto.jsonl", "--signer", keys["rel"].private, "-o", "r1.intoto.jsonl", cwd=path)
    assert made.code == 0, made
    plain = run_attest("verify", "--release", "r1.intoto.jsonl", "--store", "store", "--policy", "policy.yaml",
                       cwd=path)
    assert plain.code == 0, plain  # without --same-commit, no rule asks for a commit
    same = run_attest("verify", "--release", "r1.intoto.jsonl", "--store", "store", "--policy", "policy.yaml",
                      "--same-commit", cwd=path)
    assert same.code == 1 and "records no single commit, and an unknown commit equals nothing" in same.err, same


# --- every git dependency is a source ----------------------------------------------------------------------

GOOD = {"uri": "git+https://github.com/acme/app@refs/heads/main", "digest": {"gitCommit": f.COMMIT}}
OTHERS = [
    {"uri": "git+https://github.com/evil/app@refs/heads/main", "digest": {"gitCommit": f.COMMIT}},
    {"uri": "git+https://github.com/acme/app@refs/heads/evil", "digest": {"gitCommit": f.COMMIT}},
    {"uri": "git+https://github.com/acme/app@refs/heads/main", "digest": {"gitCommit": "f" * 40}},
]
RULES = ProvenanceRules(signed_by=("dev",), source=SourceRule(uri="github.com/acme/app", branches=("main",)),
                        commit=f.COMMIT, check_parameters=False)


def _provenance(dependencies: list[dict[str, Any]]) -> Any:
    predicate = {"buildDefinition": {"buildType": "https://attest.dev/build-type/command/v1",
                                     "externalParameters": {}, "resolvedDependencies": dependencies},
                 "runDetails": {"builder": {"id": f.BUILDER}}}
    document = {"_type": "https://in-toto.io/Statement/v1", "subject": [{"name": "a", "digest": f.digests(DATA)}],
                "predicateType": "https://slsa.dev/provenance/v1", "predicate": predicate}
    return read_provenance(parse_statement(json.dumps(document).encode()))


@settings(max_examples=40, deadline=None)
@given(others=st.lists(st.sampled_from(range(len(OTHERS))), min_size=1, max_size=3), at=st.integers(0, 3))
def test_a_second_git_dependency_must_satisfy_the_source_rules_in_any_order(others: list[int], at: int) -> None:
    dependencies = [OTHERS[i] for i in others]
    dependencies.insert(min(at, len(dependencies)), GOOD)
    failed = {r.rule for r in evaluate_provenance(_provenance(dependencies), RULES) if not r.passed}
    expected = {("source", "branch", "commit")[i] for i in others}
    assert failed == expected
    assert not {r.rule for r in evaluate_provenance(_provenance([GOOD]), RULES) if not r.passed}


@pytest.mark.parametrize("uri", ["git+file://github.com/acme/app@refs/heads/main",
                                 "git+http://github.com/acme/app@refs/heads/main",
                                 "git+https://github.com:8443/acme/app@refs/heads/main",
                                 "git+ftp://github.com/acme/app@refs/heads/main"])
def test_a_source_uri_with_another_scheme_or_port_is_another_repository(uri: str) -> None:
    results = evaluate_provenance(_provenance([{"uri": uri, "digest": {"gitCommit": f.COMMIT}}]), RULES)
    assert [r.rule for r in results if not r.passed] == ["source"]


@pytest.mark.parametrize("uri", ["git+ssh://git@github.com/acme/app.git@refs/heads/main",
                                 "git+https://github.com:443/acme/app@refs/heads/main",
                                 "git+git@github.com:acme/app.git@refs/heads/main",
                                 "git+https://GitHub.com/acme/app.git/@refs/heads/main"])
def test_the_same_repository_over_another_transport_is_the_same(uri: str) -> None:
    results = evaluate_provenance(_provenance([{"uri": uri, "digest": {"gitCommit": f.COMMIT}}]), RULES)
    assert all(r.passed for r in results), results
