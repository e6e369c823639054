"""Issue 19: a release of stacks from several repositories, each component verified under its own rules.

Two stacks from two repositories (github.com/acme/infra and github.com/acme/app), built and published to
one store, bound by one release manifest. The policy's ``components.NAME`` replaces ``provenance``'s
``source``, ``builders`` and ``lockfiles`` for that component; a component it does not name falls back to
``provenance``; a ``components`` entry that is malformed is a policy error like any other.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from tests.conftest import KeyPair, make_keypair, make_repo, run_attest


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, KeyPair]:
    """infra and app built from their own repositories into ``store``, and a release manifest of both."""
    root = tmp_path_factory.mktemp("stacks")
    dev = make_keypair(root, "dev")
    for name in ("infra", "app"):
        repo = make_repo(root / name, origin=f"git@github.com:acme/{name}.git")
        built = run_attest("build", "--signer", dev.private, "--artifact", "dist/", "--publish", "../store",
                           "-o", f"../{name}.intoto.jsonl", "--", sys.executable, "build.py", cwd=repo)
        assert built.code == 0, built
    made = run_attest("release", "create", "--name", "r1", "--component", "infra=infra.intoto.jsonl",
                      "--component", "app=app.intoto.jsonl", "--signer", dev.private, cwd=root)
    assert made.code == 0, made
    return root, dev


def policy(root: Path, dev: KeyPair, components: str = "", *,
           source: str = "  source: {uri: github.com/acme/app, branches: [main]}\n") -> str:
    (root / "policy.yaml").write_text(f"""\
version: 1
identities:
  dev-build: {{keys: ["{dev.public}"]}}
provenance:
  signed-by: [dev-build]
{source}releases: {{signed-by: [dev-build]}}
{components}""")
    return "policy.yaml"


def verify_release(root: Path, *more: str) -> tuple[int, str]:
    result = run_attest("verify", "--release", "release.intoto.jsonl", "--store", "store", "--policy", "policy.yaml",
                        *more, cwd=root)
    return result.code, result.err.strip().splitlines()[-1] if result.err.strip() else result.out


def test_without_components_the_infra_stack_fails_the_app_repository_rule(work: tuple[Path, KeyPair]) -> None:
    root, dev = work
    policy(root, dev)
    code, said = verify_release(root)
    assert code == 1 and "component infra: " in said, said
    assert "source repository is 'https://github.com/acme/infra', expected 'github.com/acme/app'" in said, said


def test_each_component_is_verified_under_its_own_source(work: tuple[Path, KeyPair]) -> None:
    root, dev = work
    policy(root, dev, "components:\n  infra: {source: {uri: github.com/acme/infra, branches: [main]}}\n")
    code, said = verify_release(root)
    assert code == 0, said  # infra under its own rule, app (not named) under provenance's


@pytest.mark.parametrize(("components", "failing", "words"), [
    ("components:\n  infra: {source: {uri: github.com/acme/elsewhere}}\n", "infra",
     "expected 'github.com/acme/elsewhere'"),
    ("components:\n  infra: {source: {uri: github.com/acme/infra, branches: [release]}}\n", "infra",
     "built from ref 'refs/heads/main', expected branch release"),
    ("components:\n  infra: {source: {uri: github.com/acme/infra}}\n"
     "  app: {source: {uri: github.com/acme/infra}}\n", "app",
     "source repository is 'https://github.com/acme/app', expected 'github.com/acme/infra'"),
    ("components:\n  infra: {source: {uri: github.com/acme/infra}, builders: [https://ci.example/other]}\n",
     "infra", "builder 'attest:builder:local' is not one of the allowed builders"),
    ("components:\n  infra: {source: {uri: github.com/acme/infra}, lockfiles: [poetry.lock]}\n", "infra",
     "poetry.lock"),
], ids=["other-repository", "other-branch", "app-named-with-the-wrong-repository", "builders", "lockfiles"])
def test_a_component_rule_is_enforced_for_its_component(work: tuple[Path, KeyPair], components: str,
                                                        failing: str, words: str) -> None:
    root, dev = work
    policy(root, dev, components)
    code, said = verify_release(root)
    assert code == 1 and f"component {failing}: " in said and words in said, said


@pytest.mark.parametrize(("components", "words"), [
    ("components:\n  infra: {repo: github.com/acme/infra}\n", "components.infra.repo: unknown key"),
    ("components:\n  infra: {}\n", "components.infra: changes no rule"),
    ("components: {}\n", "components: names no component"),
    ("components:\n  infra: {source: {uri: '['}}\n", "components.infra.source.uri: source repository '['"),
    ("components:\n  infra: {builders: []}\n", "components.infra.builders: must be a non-empty list"),
    # a source replaces provenance.source whole: branches alone would let any repository build the component
    ("components:\n  infra: {source: {branches: [main]}}\n", "components.infra.source: names no uri"),
], ids=["unknown-key", "empty-entry", "no-component", "bad-uri", "empty-builders", "source-without-uri"])
def test_a_malformed_components_entry_is_a_policy_error(work: tuple[Path, KeyPair], components: str,
                                                        words: str) -> None:
    root, dev = work
    policy(root, dev, components)
    code, said = verify_release(root)
    assert code == 3 and words in said and "Traceback" not in said, said


def test_source_flags_cannot_override_the_components_rules(work: tuple[Path, KeyPair]) -> None:
    root, dev = work
    policy(root, dev, "components:\n  infra: {source: {uri: github.com/acme/infra}}\n")
    code, said = verify_release(root, "--source-uri", "github.com/acme/app")
    assert code == 2 and "put the rule in the policy's components instead" in said, said


def test_the_audit_judges_each_provenance_by_the_rules_of_the_component_a_release_binds_it_to(
        work: tuple[Path, KeyPair]) -> None:
    root, dev = work
    policy(root, dev, "components:\n  infra: {source: {uri: github.com/acme/infra, branches: [main]}}\n")

    def disallowed(*sources: str) -> set[str]:
        ran = run_attest("audit", *sources, "--policy", "policy.yaml", "--format", "json", cwd=root)
        report = json.loads(ran.out)
        return {a["message"] for a in report["anomalies"] if a["kind"] == "disallowed-source"}

    # the store alone: no release says infra's provenance is infra's, so it is judged as attest verify judges one
    # artefact, by the component its repository builds: infra's rule, which it passes
    assert disallowed("store") == set()
    # with the release that binds it to infra, infra's own rule applies, and app's provenance keeps provenance's
    assert disallowed("store", "release.intoto.jsonl") == set()
    # a component rule that infra's provenance breaks is reported under it, bound by the release or not
    policy(root, dev, "components:\n  infra: {source: {uri: github.com/acme/infra, branches: [release]}}\n")
    for sources in (("store", "release.intoto.jsonl"), ("store",)):
        broken = disallowed(*sources)
        assert broken and all("expected branch release" in m for m in broken), (sources, broken)
    # a release that binds infra's provenance to app judges it by app's rules (provenance's): the release decides
    made = run_attest("release", "create", "--name", "r-wrong", "--component", "app=infra.intoto.jsonl",
                      "--signer", dev.private, "-o", "wrong.intoto.jsonl", cwd=root)
    assert made.code == 0, made
    policy(root, dev, "components:\n  infra: {source: {uri: github.com/acme/infra, branches: [main]}}\n")
    wrong = disallowed("store", "wrong.intoto.jsonl")
    assert wrong and all("expected 'github.com/acme/app'" in m for m in wrong), wrong
    # bound to infra by one release and to app by another: judged by both (it was judged by one of them, and the
    # other release's deployment of it, which its gate refused, passed the audit)
    both = disallowed("store", "release.intoto.jsonl", "wrong.intoto.jsonl")
    assert both and all("expected 'github.com/acme/app'" in m for m in both), both


def test_one_artefact_outside_a_release_is_judged_by_the_component_its_repository_builds(
        work: tuple[Path, KeyPair]) -> None:
    """attest verify of one artefact (no --release): nothing says which component it is, so the component whose
    repository built it judges it (before, provenance's rules did: infra's build failed app's repository rule)."""
    root, dev = work

    def verify_infra() -> tuple[int, str]:
        ran = run_attest("verify", "infra/dist/app.tar.gz", "--attestation", "infra.intoto.jsonl", "--policy",
                         "policy.yaml", cwd=root)
        return ran.code, ran.out + ran.err

    policy(root, dev, "components:\n  infra: {source: {uri: github.com/acme/infra, branches: [main]}}\n")
    code, said = verify_infra()
    assert code == 0 and "source, branch" in said, said
    policy(root, dev, "components:\n  infra: {source: {uri: github.com/acme/infra, branches: [release]}}\n")
    code, said = verify_infra()
    assert code == 1 and "built from ref 'refs/heads/main', expected branch release" in said, said
    # a flag would narrow provenance's rules, which may not be the ones that judge the build: refused
    ran = run_attest("verify", "infra/dist/app.tar.gz", "--attestation", "infra.intoto.jsonl", "--policy",
                     "policy.yaml", "--source-branch", "main", cwd=root)
    assert ran.code == 2 and "put the rule in the policy's components instead" in ran.err, ran


def test_a_build_from_a_repository_the_policy_does_not_pin_is_refused(work: tuple[Path, KeyPair],
                                                                       tmp_path: Path) -> None:
    """The components name their repositories and provenance none: a build from a third repository was taken
    from anywhere (no source rule applied at all); it is refused now, by attest verify and by attest audit."""
    root, dev = work
    repo = make_repo(tmp_path / "tools", origin="git@github.com:acme/tools.git")
    built = run_attest("build", "--signer", dev.private, "--artifact", "dist/", "--publish", "../store",
                       "-o", "../tools.intoto.jsonl", "--", sys.executable, "build.py", cwd=repo)
    assert built.code == 0, built
    both = ("components:\n  infra: {source: {uri: github.com/acme/infra, branches: [main]}}\n"
            "  app: {source: {uri: github.com/acme/app, branches: [main]}}\n")
    policy(tmp_path, dev, both, source="")
    ran = run_attest("verify", "tools/dist/app.tar.gz", "--attestation", "tools.intoto.jsonl", "--policy",
                     "policy.yaml", cwd=tmp_path)
    assert ran.code == 1 and "the policy names no source repository for this build" in ran.err, ran
    report = json.loads(run_attest("audit", "store", "--policy", "policy.yaml", "--format", "json", cwd=tmp_path).out)
    found = [(a["kind"], a["step"]) for a in report["anomalies"]]
    assert found and set(found) == {("disallowed-source", "source")}, found
    # the components' own builds still pass, each under its component's rules
    policy(root, dev, both, source="")
    ran = run_attest("verify", "infra/dist/app.tar.gz", "--attestation", "infra.intoto.jsonl", "--policy",
                     "policy.yaml", cwd=root)
    assert ran.code == 0, ran
    assert verify_release(root)[0] == 0
    # a release's component the policy does not name, where it pins the others' repositories and not provenance's
    policy(root, dev, "components:\n  infra: {source: {uri: github.com/acme/infra, branches: [main]}}\n", source="")
    code, said = verify_release(root)
    assert code == 1 and "component app: " in said and "names no source repository for this build" in said, said
    audited = json.loads(run_attest("audit", "store", "release.intoto.jsonl", "--policy", "policy.yaml", "--format",
                                    "json", cwd=root).out)
    messages = {a["message"] for a in audited["anomalies"] if a["kind"] == "disallowed-source"}
    assert messages and all("names no source repository for this build" in m for m in messages), audited["anomalies"]
    # nor one the policy names without a source: its other rules apply, never "any repository"
    policy(root, dev, "components:\n  infra: {source: {uri: github.com/acme/infra, branches: [main]}}\n"
           "  app: {builders: ['attest:builder:local']}\n", source="")
    code, said = verify_release(root)
    assert code == 1 and "component app: " in said and "names no source repository for this build" in said, said
    audited = json.loads(run_attest("audit", "store", "release.intoto.jsonl", "--policy", "policy.yaml", "--format",
                                    "json", cwd=root).out)
    assert {a["kind"] for a in audited["anomalies"]} == {"disallowed-source"}, audited["anomalies"]
