"""A gate's flags narrow the policy or are refused, never dropped without a word: ``--require-vsa STAGE`` holds beside
the stage's own requirement of that stage, and a flag the gate would not use (with ``--hotfix`` or ``--rollback``,
or without ``--emit-vsa``) is a usage error (exit 2)."""

from __future__ import annotations

import base64
import hashlib
from datetime import timedelta
from pathlib import Path

import pytest

from tests import factory as f
from tests.conftest import AttestRunner, KeyPair, make_keypair
from tests.path_world import PathWorld, make_world, policy_text

ARTEFACT = b"artefact\n"


@pytest.fixture
def evidence(tmp_path: Path) -> tuple[Path, dict[str, KeyPair]]:
    """A provenance and a stg VSA of it signed by stg-backup, not by stg's verifier; and the policy."""
    (tmp_path / "keys").mkdir()
    keys = {n: make_keypair(tmp_path / "keys", n) for n in ("dev", "stg", "backup")}
    (tmp_path / "app.tar.gz").write_bytes(ARTEFACT)
    provenance = f.provenance(keys["dev"].private, subjects={"dist/app.tar.gz": ARTEFACT}, finished=f.T0)
    line = f.line_sha256(provenance)
    vsa = f.vsa(keys["backup"].private, name="dist/app.tar.gz", artifact=ARTEFACT, stage="stg",
                at=f.T0 + timedelta(minutes=5), inputs=[("provenance", line)])
    (tmp_path / "evidence.jsonl").write_bytes(b"".join(e.to_json_line().rstrip(b"\n") + b"\n"
                                                       for e in (provenance, vsa)))
    (tmp_path / "policy.yaml").write_text(f"""version: 1
identities:
  dev-build: {{keys: ["{keys['dev'].public}"]}}
  stg-verifier: {{keys: ["{keys['stg'].public}"]}}
  stg-backup: {{keys: ["{keys['backup'].public}"]}}
provenance:
  signed-by: [dev-build]
  source: {{uri: {f.REPO.removeprefix('https://')}, branches: [main]}}
stages:
  stg: {{verifier: stg-verifier}}
  prd: {{require-vsa: [{{stage: stg, signed-by: [stg-verifier, stg-backup]}}]}}
  qa: {{}}
""")
    return tmp_path, keys


def _gate(attest: AttestRunner, work: Path, *more: str) -> tuple[int, str]:
    ran = attest("verify", "app.tar.gz", "--attestation", "evidence.jsonl", "--policy", "policy.yaml", *more, cwd=work)
    assert "Traceback" not in ran.err, ran
    return ran.code, ran.err


def test_require_vsa_holds_beside_the_stages_own_wider_requirement(
        evidence: tuple[Path, dict[str, KeyPair]], attest: AttestRunner) -> None:
    work, _ = evidence
    assert _gate(attest, work, "--stage", "prd")[0] == 0  # prd takes stg-backup's VSA
    for stage in ("qa", "prd"):  # --require-vsa stg asks for stg's verifier's, wherever the stage
        code, err = _gate(attest, work, "--stage", stage, "--require-vsa", "stg")
        assert code == 1 and "is signed by 'stg-backup', not by stg-verifier" in err, (stage, err)


@pytest.mark.parametrize(("flags", "words"), [
    (("--stage", "qa", "--resource-uri", "attest:stage:qa"), "--resource-uri says what an emitted VSA states"),
    (("--stage", "qa", "--verifier-id", "https://example.com/v"), "--verifier-id says what an emitted VSA states"),
])
def test_what_an_emitted_vsa_states_needs_emit_vsa(evidence: tuple[Path, dict[str, KeyPair]], attest: AttestRunner,
                                                   flags: tuple[str, ...], words: str) -> None:
    code, err = _gate(attest, evidence[0], *flags)
    assert code == 2 and words in err and err.count("\n") == 1, err


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> PathWorld:
    made = make_world(tmp_path_factory.mktemp("narrow"))
    made.policy.write_text(policy_text(made.keys, prd="require-deployed: [stg]\n    hotfix: {require-approvals: "
                                                      "{count: 1, signed-by: [alice]}}"))
    return made


@pytest.mark.parametrize("kind", ["--hotfix", "--rollback"])
def test_require_vsa_with_a_hotfix_or_a_rollback_is_refused(world: PathWorld, tmp_path: Path, kind: str) -> None:
    store = world.copy(tmp_path)
    ran = world.gate(store, "prd", "r3", kind, "--require-vsa", "stg")
    assert ran.code == 2, ran
    assert f"--require-vsa asks for a stage's VSA, which a {kind} goes without" in ran.err, ran


def test_an_emitted_vsa_names_only_digests_this_stage_computed(tmp_path: Path, attest: AttestRunner) -> None:
    """A provenance pairing these bytes' blake3 with another's sha256 (a stolen dev key) passes a blake3 gate; the
    VSA would have vouched for the other sha256, and a sha256-only prd gate then taken bytes stg never saw."""
    import json

    import blake3

    (tmp_path / "keys").mkdir()
    keys = {n: make_keypair(tmp_path / "keys", n) for n in ("dev", "stg")}
    tested, other = b"what stg tested\n", b"what stg never saw\n"
    (tmp_path / "app.tar.gz").write_bytes(tested)
    paired = {"blake3": blake3.blake3(tested).hexdigest(), "sha256": hashlib.sha256(other).hexdigest()}
    honest = {"blake3": blake3.blake3(tested).hexdigest(), "sha256": hashlib.sha256(tested).hexdigest()}
    (tmp_path / "policy.yaml").write_text(f"""version: 1
identities:
  dev-build: {{keys: ["{keys['dev'].public}"]}}
  stg-verifier: {{keys: ["{keys['stg'].public}"]}}
provenance:
  signed-by: [dev-build]
  source: {{uri: {f.REPO.removeprefix('https://')}, branches: [main]}}
  digests: [blake3]
stages:
  stg: {{verifier: stg-verifier}}
""")
    for subject, code in ((paired, 1), (honest, 0)):
        provenance = f.provenance(keys["dev"].private, subjects={"dist/app.tar.gz": subject})
        (tmp_path / "provenance.jsonl").write_bytes(provenance.to_json_line().rstrip(b"\n") + b"\n")
        vsa = tmp_path / "stg.intoto.jsonl"
        vsa.unlink(missing_ok=True)
        ran = attest("verify", "app.tar.gz", "--attestation", "provenance.jsonl", "--policy", "policy.yaml",
                     "--stage", "stg", "--emit-vsa", vsa, "--signer", keys["stg"].private, cwd=tmp_path)
        assert ran.code == code and "Traceback" not in ran.err, ran
        if code:
            assert "pairs these bytes with another's digest, so no VSA is signed" in ran.err and not vsa.exists(), ran
            continue
        statement = json.loads(base64.b64decode(json.loads(vsa.read_text())["payload"]))
        assert statement["subject"][0]["digest"] == honest  # each computed from the bytes


@pytest.mark.parametrize("command", ["verify", "promote"])
def test_a_usage_error_about_an_image_asks_nothing_of_its_registry(
        evidence: tuple[Path, dict[str, KeyPair]], attest: AttestRunner, command: str) -> None:
    """Exit 2 before the registry is asked (here none answers: asking would have been exit 4, "retry")."""
    work, _ = evidence
    image = "oci://127.0.0.1:1/acme/app@sha256:" + "ab" * 32
    where = (image, "oci://127.0.0.1:2/acme/app") if command == "promote" else (image,)
    ran = attest(command, *where, "--policy", "policy.yaml", "--stage", "nope", "--registry-insecure", "127.0.0.1:1",
                 *(("--registry-insecure", "127.0.0.1:2") if command == "promote" else ()), cwd=work)
    assert ran.code == 2 and "--stage 'nope' is not a stage of the policy" in ran.err, ran


@pytest.mark.parametrize("command", ["verify", "audit"])
def test_a_malformed_trusted_root_is_refused_with_no_keyless_bundle_in_sight(
        evidence: tuple[Path, dict[str, KeyPair]], attest: AttestRunner, command: str) -> None:
    """--trusted-root was parsed only when a keyless bundle was met: a broken one passed unseen (exit 0) until the
    day one was."""
    work, _ = evidence
    (work / "root.json").write_text('{"mediaType": "application/vnd.dev.sigstore.trustedroot+json;version=0.1"}')
    args = ("app.tar.gz", "--attestation", "evidence.jsonl") if command == "verify" else ("evidence.jsonl",)
    ran = attest(command, *args, "--policy", "policy.yaml", "--trusted-root", "root.json", cwd=work)
    assert ran.code == 3 and "root.json is not a Sigstore trusted root" in ran.err and "Traceback" not in ran.err, ran


def test_a_policys_source_is_read_once_by_the_gate(evidence: tuple[Path, dict[str, KeyPair]],
                                                   attest: AttestRunner) -> None:
    """The gate narrows the policy's source rule by the flags without reading it again: the branch literally named
    ``refs/heads/main`` (written ``refs/heads/refs/heads/main``) was read twice and became main. A repository URI
    with a ref written after ``#`` or ``?`` names no branch rule: a policy error, and a usage error as a flag."""
    work, _ = evidence
    policy = work / "policy.yaml"
    text = policy.read_text()
    policy.write_text(text.replace("branches: [main]", "branches: ['refs/heads/refs/heads/main']"))
    code, err = _gate(attest, work)
    assert code == 1 and "expected branch refs/heads/main" in err, err
    repo = f.REPO.removeprefix("https://")
    policy.write_text(text.replace(f"uri: {repo},", f"uri: '{repo}#main',"))
    code, err = _gate(attest, work)
    assert code == 3 and "carries a query or a fragment" in err, err
    policy.write_text(text)
    code, err = _gate(attest, work, "--source-uri", f"{repo}?ref=main")
    assert code == 2 and "carries a query or a fragment" in err, err
