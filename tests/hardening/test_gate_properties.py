"""The gate's general rules, as properties, run in-process through attest.gate.run_gate (no click).

* No combination of empty or unknown options added to a rejected invocation turns it into a pass, and
  none writes a VSA: every one is a refusal with a documented error (never an internal one).
* One read of the artefact: it is opened once, and a file swapped or changed while it is read is
  refused, whichever hashing path is taken (two algorithms in one pass, or blake3 over a mapping).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass, fields, replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import blake3
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from attest.errors import AttestError
from attest.gate import EmitRequest, GateRequest, KeylessFlags, run_gate
from tests.conftest import KeyPair, make_keypair
from tests.factory import BUILDER, COMMIT, T0, provenance, vsa
from verify.errors import InputError, VerifyError
from verify.request import GateRules

POLICY = """\
version: 1
identities:
  dev-build: {{keys: ["{dev}"]}}
  stg-verifier: {{keys: ["{stg}"]}}
  prd-verifier: {{keys: ["{prd}"]}}
provenance:
  signed-by: [dev-build]
  source: {{uri: github.com/acme/app, branches: [main]}}
  builders: ["{builder}"]
stages:
  stg: {{verifier: stg-verifier}}
  prd: {{verifier: prd-verifier, require-vsa: [stg]}}
"""


@dataclass(frozen=True)
class World:
    root: Path
    keys: dict[str, KeyPair]

    def path(self, name: str) -> Path:
        return self.root / name


def _publish(store: Path, data: bytes, name: str, line: bytes) -> None:
    """``line`` filed under the artefact's sha256, with its blake3 indexed, as attest build --publish does."""
    sha256 = hashlib.sha256(data).hexdigest()
    folder = store / "sha256" / sha256
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_bytes(line)
    (store / "blake3").mkdir(exist_ok=True)
    (store / "blake3" / blake3.blake3(data).hexdigest()).write_text(sha256 + "\n")


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    root = tmp_path_factory.mktemp("properties")
    keys = {name: make_keypair(root, name) for name in ("dev", "stg", "prd", "other")}
    store = root / "store"
    artefacts = {"release.tar.gz": b"release-1", "hotfix.tar.gz": b"hotfix", "branch.tar.gz": b"from dev branch"}
    for name, data in artefacts.items():
        root.joinpath(name).write_bytes(data)
        ref = "refs/heads/dev" if name == "branch.tar.gz" else "refs/heads/main"
        line = provenance(keys["dev"].private, subjects={f"dist/{name}": data}, ref=ref).to_json_line()
        root.joinpath(f"{name}.intoto.jsonl").write_bytes(line)
        _publish(store, data, "provenance.intoto.jsonl", line)
        if name == "release.tar.gz":  # stg verified the release (only)
            bound = [("provenance", hashlib.sha256(line.strip()).hexdigest())]
            stg = vsa(keys["stg"].private, name=f"dist/{name}", artifact=data, stage="stg", at=T0 + timedelta(hours=1),
                      inputs=bound)
            _publish(store, data, "vsa.intoto.jsonl", stg.to_json_line())
    root.joinpath("tampered.tar.gz").write_bytes(b"release-2")
    root.joinpath("policy.yaml").write_text(POLICY.format(dev=keys["dev"].public, stg=keys["stg"].public,
                                                          prd=keys["prd"].public, builder=BUILDER))
    return World(root=root, keys=keys)


def _bases(world: World) -> dict[str, GateRequest]:
    """Invocations the gate must refuse, each for its own reason."""
    policy, store = world.path("policy.yaml"), str(world.path("store"))
    return {
        "hotfix that skipped stg": GateRequest(artifact=str(world.path("hotfix.tar.gz")), store=store, policy=policy,
                                               rules=GateRules(stage="prd")),
        "wrong branch": GateRequest(artifact=str(world.path("branch.tar.gz")), store=store, policy=policy),
        "tampered artefact": GateRequest(artifact=str(world.path("tampered.tar.gz")), policy=policy,
                                         attestations=(world.path("release.tar.gz.intoto.jsonl"),)),
        "ad-hoc gate, no stg VSA": GateRequest(
            artifact=str(world.path("hotfix.tar.gz")), store=store, keys=(str(world.keys["dev"].public),),
            rules=GateRules(stage="prd", require_vsa=("stg",)), vsa_keys=(world.keys["stg"].public,)),
        "unpinned signer": GateRequest(artifact=str(world.path("release.tar.gz")), store=store,
                                       keys=(str(world.keys["other"].public),)),
    }


def test_the_world_can_pass(world: World) -> None:
    """The bases fail for their reason, not because nothing could ever pass."""
    ok = run_gate(GateRequest(artifact=str(world.path("release.tar.gz")), store=str(world.path("store")),
                              policy=world.path("policy.yaml"), rules=GateRules(stage="prd")))
    assert [s.stage for s in ok.verdict.stages] == ["stg"]  # type: ignore[union-attr]
    ok = run_gate(replace(_bases(world)["ad-hoc gate, no stg VSA"], artifact=str(world.path("release.tar.gz"))))
    assert ok.verdict.candidate.provenance is not None  # type: ignore[union-attr]


EMPTY = st.sampled_from(["", " ", "\t"])
UNKNOWN_TEXT = st.sampled_from(["prod", "PRD", "nostage", "[", "x", "unknown.example/acme/app", "0123456",
                                "deadbeef", "main ", "refs/heads/main/", "https://example.com/other/v1"])


def _extras(world: World) -> st.SearchStrategy[dict[str, Any]]:
    """Options a pipeline could add with an empty or unknown value (an unset variable, a typo)."""
    text = st.one_of(EMPTY, UNKNOWN_TEXT)
    unknown_key = st.sampled_from(["", str(world.keys["other"].public), str(world.path("missing.pub.pem"))])
    # and the one right key, which with a policy only narrows (without one it would be a new, valid identity)
    key = st.one_of(unknown_key, st.just(str(world.keys["dev"].public)))

    def also(valid: str) -> st.SearchStrategy[str]:
        """``text``, or the one value that satisfies the rule anyway: narrowing, which reaches the decision."""
        return st.one_of(text, st.just(valid))

    options: dict[str, st.SearchStrategy[Any]] = {
        "source_uri": also("github.com/acme/app"), "source_branch": also("main"),
        "commit": st.one_of(text, st.just(COMMIT[:7]), st.just(COMMIT)), "builder_id": also(BUILDER),
        "predicate_type": text, "require_vsa": st.lists(text, min_size=1, max_size=2).map(tuple),
        "keys": st.lists(key, min_size=1, max_size=2).map(tuple),
        "vsa_keys": st.just((world.keys["other"].public,)),
        "trusted_root": st.just(world.path("missing-root.json")),
        "keyless": st.builds(KeylessFlags, certificate_identity=st.one_of(st.none(), text),
                             certificate_oidc_issuer=st.one_of(st.none(), text),
                             github_repo=st.one_of(st.none(), text)),
        "emit": st.builds(EmitRequest, output=st.just(world.path("rogue-vsa.intoto.jsonl")),
                          signer_uri=st.sampled_from(["", str(world.keys["other"].private),
                                                      str(world.keys["prd"].private)])),
        "stage": text,
        "layout": st.sampled_from([world.path("missing.layout"), world.path("policy.yaml")]),
        "layout_keys": st.just((world.keys["other"].public,)),
        "link_dir": st.just(world.path("no-links")),
        "store": st.sampled_from(["", "nostore"]),
        "attestations": st.just((world.path("missing.intoto.jsonl"),)),
    }
    return st.fixed_dictionaries({}, optional=options)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_no_empty_or_unknown_option_turns_a_rejection_into_a_pass(world: World, data: st.DataObject) -> None:
    name = data.draw(st.sampled_from(sorted(_bases(world))))
    base = _bases(world)[name]
    extras = data.draw(_extras(world))
    if "keys" in extras:  # keys are added to the base's, never put in their place
        added = tuple(k for k in extras["keys"] if base.policy is not None or k != str(world.keys["dev"].public))
        extras["keys"] = (*base.keys, *added)
    rule_names = {f.name for f in fields(GateRules)}  # the rule flags are in the request's rules
    rules = replace(base.rules, **{k: v for k, v in extras.items() if k in rule_names})
    request = replace(base, rules=rules, **{k: v for k, v in extras.items() if k not in rule_names})
    with pytest.raises((VerifyError, AttestError)):  # a documented refusal (exit 1, 2, 3 or 4), never a pass
        outcome = run_gate(request)
        pytest.fail(f"{name} with {extras} passed: {outcome}")
    assert not world.path("rogue-vsa.intoto.jsonl").exists()


# --- one read of the artefact ----------------------------------------------------------------------------

def _swap_after_first_chunk(path: Path, replacement: Path) -> Callable[[str, int], Any]:
    """A progress hook (as the CLI's progress bar is) that swaps another file in under ``path`` mid-read."""

    @contextlib.contextmanager
    def progress(description: str, total: int) -> Iterator[Callable[[int], None]]:
        swapped: list[bool] = []

        def advance(n: int) -> None:
            if not swapped:
                os.replace(replacement, path)
                swapped.append(True)

        yield advance

    return progress


@pytest.mark.parametrize(("algorithms", "size"), [(("sha256",), 24 << 20), (("blake3",), 80 << 20)],
                         ids=["chunked", "blake3-mapped"])
def test_an_artefact_swapped_while_it_is_read_is_refused(tmp_path: Path, world: World, algorithms: tuple[str, ...],
                                                         size: int) -> None:
    """Finding 5: with one read there is no second pass to swap between; a swap during the read is refused."""
    artefact, other = tmp_path / "app.bin", tmp_path / "other.bin"
    for path, byte in ((artefact, b"a"), (other, b"b")):
        with path.open("wb") as f:
            f.write(byte * (1 << 20))
            f.truncate(size)
    from verify.digests import hash_file

    digests = hash_file(artefact, algorithms)
    line = provenance(world.keys["dev"].private, subjects={"app.bin": digests}).to_json_line()
    (tmp_path / "p.intoto.jsonl").write_bytes(line)
    request = GateRequest(artifact=str(artefact), attestations=(tmp_path / "p.intoto.jsonl",),
                          keys=(str(world.keys["dev"].public),))
    assert run_gate(request).verdict.verdict.digests == digests  # type: ignore[union-attr]
    with pytest.raises(InputError, match="changed while it was being hashed"):
        run_gate(request, progress=_swap_after_first_chunk(artefact, other))


def test_the_artefact_is_opened_once_for_every_check_of_the_run(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    """Provenance, the stg VSA and the stage gate all use the one digest set from one open of the file."""
    target = world.path("release.tar.gz")
    opened: list[str] = []
    real_open = os.open

    def spy(path: Any, flags: int, *args: Any, **kwargs: Any) -> int:
        if Path(os.fsdecode(path)).resolve() == target.resolve():
            opened.append(os.fsdecode(path))
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", spy)
    outcome = run_gate(GateRequest(artifact=str(target), store=str(world.path("store")),
                                   policy=world.path("policy.yaml"), rules=GateRules(stage="prd")))
    assert outcome.verdict.stages and len(opened) == 1, opened  # type: ignore[union-attr]


def test_a_vsa_whose_subject_matches_on_one_algorithm_only_does_not_vouch(world: World, tmp_path: Path) -> None:
    """Finding 5: one meaning of "this subject is this artefact" for provenance, VSAs and approvals alike."""
    data = world.path("release.tar.gz").read_bytes()
    sha = hashlib.sha256(data).hexdigest()
    store = tmp_path / "store"
    shutil.copytree(world.path("store"), store)
    for path in (store / "sha256" / sha).glob("vsa*"):
        path.unlink()
    prov = world.path("release.tar.gz.intoto.jsonl").read_bytes()
    wrong_blake3 = {"sha256": sha, "blake3": "00" * 32}
    bound = [("provenance", hashlib.sha256(prov.strip()).hexdigest())]
    stg = vsa(world.keys["stg"].private, name="dist/release.tar.gz", artifact=wrong_blake3, stage="stg",
              at=T0 + timedelta(hours=1), inputs=bound)
    _publish(store, data, "vsa.intoto.jsonl", stg.to_json_line())
    with pytest.raises(VerifyError, match="are for another artefact"):
        run_gate(GateRequest(artifact=str(world.path("release.tar.gz")), store=str(store),
                             policy=world.path("policy.yaml"), rules=GateRules(stage="prd")))
