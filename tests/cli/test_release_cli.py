"""``attest release create --needs``: the order of a release's components, refused before signing when it is
not one, written into the manifest, shown by inspect, and read by ``attest verify --release``."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest

from attest.signing import sign_statement
from tests.conftest import KeyPair, Result, git, make_keypair, make_repo, run_attest
from verify.formats.envelope import Envelope

COMPONENTS = ("infra", "db", "app")


@dataclass(frozen=True)
class Stacks:
    """Three components built and published from one repository, and a policy trusting their builder."""

    root: Path
    dev: KeyPair

    def create(self, *needs: str, out: str, extra: tuple[str, ...] = ()) -> Result:
        flags = [flag for n in needs for flag in ("--needs", n)]
        components = [flag for c in COMPONENTS for flag in ("--component", f"{c}={c}.intoto.jsonl")]
        return run_attest("release", "create", "--name", "r1", *components, *flags, "--signer", self.dev.private,
                          "-o", out, *extra, cwd=self.root)


@pytest.fixture(scope="module")
def stacks(tmp_path_factory: pytest.TempPathFactory) -> Stacks:
    root = tmp_path_factory.mktemp("stacks")
    dev = make_keypair(root, "dev")
    repo = make_repo(root / "repo", origin="https://github.com/acme/stacks.git")
    for name in COMPONENTS:
        (repo / f"{name}.txt").write_text(f"the {name} stack\n")
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "stacks")
    for name in COMPONENTS:
        built = run_attest("build", "--signer", dev.private, "--artifact", f"{name}.txt", "--publish", "../store",
                           "-o", f"../{name}.intoto.jsonl", cwd=repo)
        assert built.code == 0, built
    (root / "policy.yaml").write_text(f"""\
version: 1
identities:
  dev-build: {{keys: ["{dev.public}"]}}
provenance:
  signed-by: [dev-build]
releases: {{signed-by: [dev-build]}}
""")
    return Stacks(root=root, dev=dev)


def _predicate(path: Path) -> dict[str, object]:
    statement = json.loads(Envelope.from_json(path.read_bytes().strip()).payload)
    predicate: dict[str, object] = statement["predicate"]
    return predicate


NOT_A_NEED = "is not NAME=NAME (a component, then the one it needs first)"
NAMES = "is not one of the --component names (infra, db, app)"


@pytest.mark.parametrize(("needs", "sentence"), [
    pytest.param(("app",), f"'app' {NOT_A_NEED}", id="no-equals"),
    pytest.param(("=infra",), f"'=infra' {NOT_A_NEED}", id="no-component"),
    pytest.param(("app=",), f"'app=' {NOT_A_NEED}", id="no-need"),
    pytest.param(("app=web",), f"'web' in 'app=web' {NAMES}", id="unknown-need"),
    pytest.param(("web=app",), f"'web' in 'web=app' {NAMES}", id="unknown-component"),
    pytest.param(("app=app",), "component 'app' needs itself", id="itself"),
    pytest.param(("app=infra", "app=infra"), "component 'app' needs 'infra' twice", id="twice"),
    pytest.param(("app=db", "db=app"), "the components' needs form a cycle: app -> db -> app", id="cycle"),
    pytest.param(("infra=app", "app=db", "db=infra"),
                 "the components' needs form a cycle: app -> db -> infra -> app", id="cycle-of-three"),
])
def test_needs_that_are_no_order_are_a_usage_error(needs: tuple[str, ...], sentence: str, stacks: Stacks,
                                                   request: pytest.FixtureRequest) -> None:
    out = f"refused-{request.node.callspec.id}.intoto.jsonl"
    result = stacks.create(*needs, out=out)
    assert result.code == 2, result
    assert result.err == f"attest: Invalid value for --needs: {sentence}. (see 'attest release create --help')\n"
    assert result.out == ""
    assert not (stacks.root / out).exists()


def test_ordered_release_is_written_shown_and_verified(stacks: Stacks) -> None:
    made = stacks.create("app=infra", "app=db", "db=infra", out="ordered.intoto.jsonl", extra=("--format", "json"))
    assert made.code == 0, made
    shown = json.loads(made.out)
    assert shown["order"] == ["infra", "db", "app"]
    assert [(c["name"], c["needs"]) for c in shown["components"]] == [("infra", []), ("db", ["infra"]),
                                                                      ("app", ["db", "infra"])]
    # the manifest: needs sorted, and only on the components that need something
    components = _predicate(stacks.root / "ordered.intoto.jsonl")["components"]
    assert isinstance(components, list)
    assert [(c["name"], c.get("needs")) for c in components] == [("infra", None), ("db", ["infra"]),
                                                                ("app", ["db", "infra"])]

    text = run_attest("inspect", "ordered.intoto.jsonl", cwd=stacks.root)
    assert text.code == 0, text
    assert text.out.endswith("  release order (each component after the ones it needs):\n"
                             "    1. infra\n    2. db  needs infra\n    3. app  needs db, infra\n")
    inspected = run_attest("inspect", "ordered.intoto.jsonl", "--format", "json", cwd=stacks.root)
    assert inspected.code == 0, inspected
    assert json.loads(inspected.out)[0]["release"] == {
        "name": "r1", "order": ["infra", "db", "app"], "needs": {"infra": [], "db": ["infra"], "app": ["db", "infra"]}}

    verified = run_attest("verify", "--release", "ordered.intoto.jsonl", "--store", "store", "--policy", "policy.yaml",
                          "--format", "json", cwd=stacks.root)
    assert verified.code == 0, verified
    assert {c["component"] for c in json.loads(verified.out)["components"]} == set(COMPONENTS)


def test_the_text_output_names_the_needs_and_the_order(stacks: Stacks) -> None:
    made = stacks.create("app=db", "db=infra", out="text.intoto.jsonl")
    assert made.code == 0, made
    lines = made.out.splitlines()
    assert lines[0] == "release r1: 3 component(s) -> text.intoto.jsonl"
    assert lines[1].startswith("  infra: 1 artefact(s) @ ") and "needs" not in lines[1]
    assert lines[2].endswith(" (needs infra)") and lines[3].endswith(" (needs db)")
    assert lines[4:] == ["  order: infra -> db -> app"]


def test_a_release_without_needs_keeps_its_shape(stacks: Stacks) -> None:
    made = stacks.create(out="plain.intoto.jsonl", extra=("--format", "json"))
    assert made.code == 0, made
    assert json.loads(made.out)["order"] == ["app", "db", "infra"]  # no needs: by name
    components = _predicate(stacks.root / "plain.intoto.jsonl")["components"]
    assert isinstance(components, list)
    assert [sorted(c) for c in components] == [["artifacts", "commit", "name", "provenance", "source"]] * 3
    text = run_attest("inspect", "plain.intoto.jsonl", cwd=stacks.root)
    assert "    1. app\n    2. db\n    3. infra\n" in text.out


def test_a_signed_manifest_whose_needs_are_a_cycle_is_refused_by_verify_and_shown_by_inspect(stacks: Stacks) -> None:
    # another writer signed it: attest release create would have refused these needs
    made = stacks.create("app=db", out="to-resign.intoto.jsonl")
    assert made.code == 0, made
    statement = json.loads(Envelope.from_json((stacks.root / "to-resign.intoto.jsonl").read_bytes().strip()).payload)
    by_name = {c["name"]: c for c in statement["predicate"]["components"]}
    by_name["db"]["needs"] = ["app"]
    (stacks.root / "cycle.intoto.jsonl").write_bytes(sign_statement(statement, signer_uri=str(stacks.dev.private)))

    verified = run_attest("verify", "--release", "cycle.intoto.jsonl", "--store", "store", "--policy", "policy.yaml",
                          cwd=stacks.root)
    assert verified.code == 1, verified
    assert "the release manifest 'r1': the components' needs form a cycle: app -> db -> app" in verified.err

    shown = run_attest("inspect", "cycle.intoto.jsonl", cwd=stacks.root)  # nothing is verified: shown, exit 0
    assert shown.code == 0, shown
    assert shown.out.endswith("  release order: unreadable (the release manifest 'r1': the components' needs form "
                              "a cycle: app -> db -> app)\n")
