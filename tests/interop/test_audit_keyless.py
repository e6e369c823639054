"""``attest audit`` over keyless Sigstore evidence, signed for real against the local Fulcio and Rekor.

The provenance comes from ``attest build --signer sigstore --bundle --publish``; a stage's VSA is
signed keylessly by attest's own keyless signer, a message signature by sigstore-python, and
another stage's VSA with a pinned key. The audit verifies all of it offline, against the local
trusted root (``--trusted-root``), and judges keyless signers by the policy's ``sigstore``
identities exactly as it judges keys.
"""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from attest.signers.sigstore import KeylessSigner
from attest.stores.local import LocalStore
from attest.summaries import stage_uri, vsa_statement
from tests import factory as f
from tests.conftest import AttestRunner, KeyPair, Result, _clean_env, make_keypair, make_repo
from tests.sigstore_infra.fixture import SigstoreLocal
from verify.audit import audit
from verify.policy_file import load_policy

ISSUER = "https://accounts.example.com"
ALICE = "alice@example.com"
STG_PIPELINE = "stg-pipeline@example.com"
MALLORY = "mallory@example.com"
APP = "dist/app.tar.gz"
DATA = "dist/sub/data.bin"

POLICY = """\
version: 1
identities:
  dev-build: {{sigstore: {{issuer: "{issuer}", identity: "{builder}"}}}}
  stg-verifier: {{sigstore: {{issuer: "{issuer}", identity: "{stg}"}}}}
  prd-verifier: {{keys: [{prd}]}}
provenance:
  signed-by: [dev-build]
  source: {{uri: github.com/acme/app, branches: [main]}}
stages:
  stg: {{verifier: stg-verifier}}
  prd: {{verifier: prd-verifier, require-vsa: [{{stage: stg, signed-by: stg-verifier}}]}}
"""


def write_policy(directory: Path, prd: KeyPair, *, builder: str = ALICE, stg: str = STG_PIPELINE,
                 name: str = "policy.yaml") -> Path:
    path = directory / name
    path.write_text(POLICY.format(issuer=ISSUER, builder=builder, stg=stg, prd=prd.public))
    return path


def sign_keyless(sigstore_local: SigstoreLocal, identity: str, statement: dict[str, Any]) -> bytes:
    """``statement`` signed keylessly by ``identity`` with attest's keyless signer: a bundle v0.3."""
    signer = KeylessSigner(identity_token=sigstore_local.mint_token(identity, ISSUER),
                           trust_config=sigstore_local.trust_config_path)
    return signer.sign_statement(json.dumps(statement, sort_keys=True).encode()).bundle


def vsa(name: str, data: bytes, stage: str, at: datetime, provenance: str = "") -> dict[str, Any]:
    """A stage's VSA as ``attest verify --emit-vsa`` signs one, naming the ``provenance`` it verified (its digest)."""
    return vsa_statement(subject_name=name, digests=f.digests(data), verifier_id=f"https://attest.dev/verifier/{stage}",
                         resource_uri=stage_uri(stage), policy_uri="file:///policy.yaml", policy_digest="ab" * 32,
                         inputs=[("provenance", provenance)] if provenance else (), levels=["SLSA_BUILD_LEVEL_2"],
                         verified_at=at)


def provenance_digest(store: Path, data: bytes) -> str:
    """The digest the gate names the one provenance of ``data`` in ``store`` by (an emitted VSA's input)."""
    from verify.formats.evidence import load_evidence, read_evidence_file

    [path] = (store / "sha256" / sha(data)).glob("provenance-*")
    return load_evidence(read_evidence_file(path), source=str(path))[0].digest


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def put_bundle(store: Path, sha256: str, bundle: bytes) -> None:
    """A bundle beside an artefact's attestations in a store (a store has no kind for plain signatures)."""
    directory = store / "sha256" / sha256
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "blob.sigstore.json").write_bytes(bundle)


def run_audit(attest: AttestRunner, cwd: Path, *args: str | Path) -> tuple[Result, dict[str, Any]]:
    result = attest("audit", "store", "--format", "json", *args, cwd=cwd)
    assert result.code in (0, 1), result
    assert "Traceback" not in result.err
    return result, json.loads(result.out)


def kinds(report: dict[str, Any]) -> set[tuple[str, str | None]]:
    return {(a["kind"], a["sha256"]) for a in report["anomalies"]}


@pytest.fixture(scope="module")
def prd_key(tmp_path_factory: pytest.TempPathFactory) -> KeyPair:
    return make_keypair(tmp_path_factory.mktemp("prd-key"), "prd")


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory, sigstore_local: SigstoreLocal,
            prd_key: KeyPair) -> dict[str, Any]:
    """A repository built keylessly by Alice and published, then verified by stg (keyless) and prd (a key).

    Made once for the module (signing goes through the local services); each test audits a copy.
    """
    root = tmp_path_factory.mktemp("keyless-history")
    repo = make_repo(root / "app", ignore="dist/\n*.pem\n*.intoto.jsonl\n*.sigstore.json\nstore/\n")
    done = subprocess.run(
        [sys.executable, "-m", "attest", "build", "--signer", "sigstore", "--trust-config",
         str(sigstore_local.trust_config_path), "--bundle", "--artifact", "dist/", "--publish", "store",
         "--", sys.executable, "build.py"],
        cwd=repo, env=_clean_env({"SIGSTORE_ID_TOKEN": sigstore_local.mint_token(ALICE, ISSUER)}),
        capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    app, data = (repo / APP).read_bytes(), (repo / DATA).read_bytes()
    store = LocalStore(repo / "store")
    built = datetime.now(UTC)  # just built: the stages' VSAs follow within the minute (never after the audit)
    made = provenance_digest(repo / "store", app)
    stg = store.put_attestation(sha(app), "vsa", sign_keyless(sigstore_local, STG_PIPELINE, vsa(
        APP, app, "stg", built + timedelta(seconds=20), made)))
    store.put_attestation(sha(app), "vsa", f.vsa(prd_key.private, name=APP, artifact=app, stage="prd",
                                                 at=built + timedelta(seconds=40),
                                                 inputs=[("provenance", made)]).to_json_line())
    return {"repo": repo, "app": app, "data": data, "stg": Path(stg), "built": built}


@pytest.fixture
def work(history: dict[str, Any], tmp_path: Path, prd_key: KeyPair) -> Path:
    """A copy of the history's store, with a policy pinning Alice (dev-build) and the stg pipeline."""
    shutil.copytree(history["repo"] / "store", tmp_path / "store")
    write_policy(tmp_path, prd_key)
    return tmp_path


def test_keyless_evidence_pinned_by_the_policy_is_a_clean_history(
    work: Path, history: dict[str, Any], attest: AttestRunner, sigstore_local: SigstoreLocal
) -> None:
    result, report = run_audit(attest, work, "--policy", "policy.yaml",
                               "--trusted-root", sigstore_local.trusted_root_path)

    assert result.code == 0 and result.err == "", result
    assert report["anomalies"] == [] and report["summary"]["attestations"] == 4
    artifacts = {a["sha256"]: a for a in report["artifacts"]}
    assert set(artifacts) == {sha(history["app"]), sha(history["data"])}
    app = artifacts[sha(history["app"])]
    assert app["names"] == [APP] and app["source"] == "https://github.com/acme/app"
    assert [b["signers"] for b in app["builds"]] == [["dev-build"]]  # the identity's name, as for a key
    assert [(s["stage"], s["status"]) for s in app["stages"]] == [("stg", "passed"), ("prd", "passed")]
    assert app["stages"][0]["vsas"][0]["signers"] == ["stg-verifier"]
    assert app["stages"][1]["vsas"][0]["signers"] == ["prd-verifier"]
    data = artifacts[sha(history["data"])]
    assert [b["signers"] for b in data["builds"]] == [["dev-build"]]
    assert [s["status"] for s in data["stages"]] == ["absent", "absent"]


def test_an_identity_the_policy_does_not_pin_is_an_untrusted_signer(
    work: Path, history: dict[str, Any], attest: AttestRunner, sigstore_local: SigstoreLocal, prd_key: KeyPair
) -> None:
    write_policy(work, prd_key, builder=MALLORY, name="mallory.yaml")

    result, report = run_audit(attest, work, "--policy", "mallory.yaml",
                               "--trusted-root", sigstore_local.trusted_root_path)

    assert result.code == 1, result
    assert result.err.startswith("attest: audit found ") and result.err.count("\n") == 1, result.err
    app, data = sha(history["app"]), sha(history["data"])
    # Alice's provenance counts for nothing; so stg and prd verified an artefact without a trusted build
    assert kinds(report) == {("untrusted-signer", app), ("untrusted-signer", data), ("skipped-stage", app)}
    untrusted = [a for a in report["anomalies"] if a["kind"] == "untrusted-signer"]
    for anomaly in untrusted:
        assert f"is signed keylessly by '{ALICE}' (issuer '{ISSUER}')" in anomaly["message"], anomaly
        assert anomaly["step"] == "build"
    assert all(a["builds"] == [] for a in report["artifacts"])


def test_a_keyless_vsa_counts_only_for_the_stage_whose_verifier_signed_it(
    work: Path, history: dict[str, Any], attest: AttestRunner, sigstore_local: SigstoreLocal, prd_key: KeyPair
) -> None:
    # stg's verifier is now another identity: the stg pipeline's VSA is signed by nobody the policy pins
    write_policy(work, prd_key, stg=MALLORY, name="swapped.yaml")

    result, report = run_audit(attest, work, "--policy", "swapped.yaml",
                               "--trusted-root", sigstore_local.trusted_root_path)

    assert result.code == 1, result
    app = sha(history["app"])
    assert kinds(report) == {("untrusted-signer", app), ("skipped-stage", app)}
    (untrusted,) = [a for a in report["anomalies"] if a["kind"] == "untrusted-signer"]
    assert untrusted["step"] == "stg" and f"'{STG_PIPELINE}'" in untrusted["message"]
    (skipped,) = [a for a in report["anomalies"] if a["kind"] == "skipped-stage"]
    assert skipped["step"] == "prd" and "without the VSA from stage 'stg'" in skipped["message"]
    (artifact,) = [a for a in report["artifacts"] if a["sha256"] == app]
    assert [b["signers"] for b in artifact["builds"]] == [["dev-build"]]  # the provenance still counts

    # pinned, but as another stage's verifier: untrusted for stg all the same
    (work / "other-stage.yaml").write_text((work / "policy.yaml").read_text().replace(
        f'stg-verifier: {{sigstore: {{issuer: "{ISSUER}", identity: "{STG_PIPELINE}"}}}}',
        f'stg-verifier: {{sigstore: {{issuer: "{ISSUER}", identity: "{MALLORY}"}}}}\n'
        f'  qa-verifier: {{sigstore: {{issuer: "{ISSUER}", identity: "{STG_PIPELINE}"}}}}'))
    result, report = run_audit(attest, work, "--policy", "other-stage.yaml",
                               "--trusted-root", sigstore_local.trusted_root_path)
    assert kinds(report) == {("untrusted-signer", app), ("skipped-stage", app)}
    (untrusted,) = [a for a in report["anomalies"] if a["kind"] == "untrusted-signer"]
    assert "a VSA for stage 'stg' is signed by qa-verifier, but stages.stg.verifier allows stg-verifier" \
        in untrusted["message"]


def test_the_production_root_does_not_vouch_for_the_local_instance(
    work: Path, history: dict[str, Any], attest: AttestRunner
) -> None:
    result, report = run_audit(attest, work, "--policy", "policy.yaml")  # no --trusted-root: production

    assert result.code == 1, result
    assert result.err.count("\n") == 1 and "bad-signature" in result.err, result.err
    app, data = sha(history["app"]), sha(history["data"])
    assert kinds(report) == {("bad-signature", app), ("bad-signature", data), ("skipped-stage", app)}
    messages = [a["message"] for a in report["anomalies"] if a["kind"] == "bad-signature"]
    assert any(m.startswith("a provenance for 'dist/app.tar.gz', 'dist/sub/data.bin' is signed keylessly in "
                            f"the name of dev-build ('{ALICE}' (issuer '{ISSUER}')), but") for m in messages)
    assert any(m.startswith("a VSA for 'dist/app.tar.gz' is signed keylessly in the name of stg-verifier "
                            f"('{STG_PIPELINE}'") for m in messages)
    assert all("does not verify against the trusted root" in m for m in messages), messages


def test_a_tampered_bundle_payload_is_a_bad_signature(
    work: Path, history: dict[str, Any], attest: AttestRunner, sigstore_local: SigstoreLocal
) -> None:
    # the stg VSA now says it was verified a day earlier: the DSSE signature no longer matches
    path = work / "store" / history["stg"].relative_to(history["repo"] / "store")
    bundle = json.loads(path.read_bytes())
    statement = json.loads(base64.b64decode(bundle["dsseEnvelope"]["payload"]))
    statement["predicate"]["timeVerified"] = "2020-01-01T00:00:00Z"
    bundle["dsseEnvelope"]["payload"] = base64.b64encode(json.dumps(statement).encode()).decode()
    path.write_text(json.dumps(bundle))

    result, report = run_audit(attest, work, "--policy", "policy.yaml",
                               "--trusted-root", sigstore_local.trusted_root_path)

    assert result.code == 1, result
    app = sha(history["app"])
    # the VSA is gone from the history, so prd verified without stg
    assert kinds(report) == {("bad-signature", app), ("skipped-stage", app)}
    (bad,) = [a for a in report["anomalies"] if a["kind"] == "bad-signature"]
    assert bad["source"] == str(path.relative_to(work)) and bad["step"] == "stg"
    assert "signed keylessly in the name of stg-verifier" in bad["message"]
    assert "does not record this bundle" in bad["message"]  # the log recorded the payload as it was signed


def test_a_message_signature_is_listed_and_is_not_a_provenance(
    work: Path, history: dict[str, Any], attest: AttestRunner, sigstore_local: SigstoreLocal
) -> None:
    from sigstore.models import ClientTrustConfig
    from sigstore.oidc import IdentityToken
    from sigstore.sign import SigningContext

    context = SigningContext.from_trust_config(
        ClientTrustConfig.from_json(sigstore_local.trust_config_path.read_text()))
    blob = b"a release note, signed as a blob\n"
    with context.signer(IdentityToken(sigstore_local.mint_token(ALICE, ISSUER))) as signer:
        signed = signer.sign_artifact(blob).to_json().encode()
    put_bundle(work / "store", sha(blob), signed)

    result, report = run_audit(attest, work, "--policy", "policy.yaml",
                               "--trusted-root", sigstore_local.trusted_root_path)

    assert result.code == 0 and report["anomalies"] == [], result
    (artifact,) = [a for a in report["artifacts"] if a["sha256"] == sha(blob)]
    assert artifact["signatures"] == [{"digest": f"sha256:{sha(blob)}", "signers": ["dev-build"],
                                       "attestation": artifact["signatures"][0]["attestation"]}]
    assert artifact["builds"] == [] and artifact["names"] == []  # identity only: not a build

    # altered to claim another artefact: the signature and the log entry no longer match it
    document = json.loads(signed)
    document["messageSignature"]["messageDigest"]["digest"] = base64.b64encode(
        hashlib.sha256(b"another blob").digest()).decode()
    put_bundle(work / "store", sha(b"another blob"), json.dumps(document).encode())
    result, report = run_audit(attest, work, "--policy", "policy.yaml",
                               "--trusted-root", sigstore_local.trusted_root_path)
    assert result.code == 1, result
    assert kinds(report) == {("bad-signature", sha(b"another blob"))}


def test_worker_processes_verify_keyless_bundles_too(
    work: Path, history: dict[str, Any], sigstore_local: SigstoreLocal
) -> None:
    files = [(str(p), p.read_bytes()) for p in sorted((work / "store").rglob("*.intoto.jsonl"))]
    assert len(files) == 4
    policy = load_policy(work / "policy.yaml")

    inline = audit(files, policy=policy, trusted_root=sigstore_local.trusted_root_path, workers=1)
    pooled = audit(iter(files), policy=policy, trusted_root=sigstore_local.trusted_root_path, workers=2,
                   batch_size=1)

    assert inline.clean and pooled.to_dict() == inline.to_dict()
    production = audit(iter(files), policy=policy, workers=2, batch_size=1)
    assert {a.kind for a in production.anomalies} == {"bad-signature", "skipped-stage"}


def test_an_unreadable_trusted_root_stops_the_audit(
    work: Path, attest: AttestRunner
) -> None:
    (work / "root.json").write_text('{"mediaType": "nonsense"}')
    for root, words in [("missing.json", "cannot read trusted root missing.json: No such file"),
                        ("root.json", "root.json is not a Sigstore trusted root")]:
        result = attest("audit", "store", "--policy", "policy.yaml", "--trusted-root", root, cwd=work)
        assert result.code == 3, result
        assert words in result.err and result.err.count("\n") == 1 and "Traceback" not in result.err, result


def test_one_person_is_one_approver_however_many_identities_their_certificate_satisfies(
        history: dict[str, Any], work: Path, sigstore_local: SigstoreLocal, attest: AttestRunner) -> None:
    """Two approvers whose Sigstore identities one certificate satisfies (Alice by name, and anyone of the domain):
    one approval Alice signed keylessly counted for both, and 'two approvals' was one person's."""
    from attest.summaries import approval_statement

    policy = work / "policy.yaml"
    policy.write_text(policy.read_text().replace(
        "  prd-verifier:", f'  po-alice: {{sigstore: {{issuer: "{ISSUER}", identity: "{ALICE}"}}}}\n'
                           f'  po-any: {{sigstore: {{issuer: "{ISSUER}", identity-regexp: ".*@example[.]com"}}}}\n'
                           "  prd-verifier:").replace(
        "require-vsa: [{stage: stg, signed-by: stg-verifier}]}",
        "require-approvals: {count: 2, signed-by: [po-alice, po-any]}}"))
    app = history["app"]
    statement = approval_statement(subject_name=APP, digests=f.digests(app), stage="prd", approver=ALICE,
                                   reason="CHG-1", approved_at=history["built"] + timedelta(seconds=30))
    LocalStore(work / "store").put_attestation(sha(app), "approval", sign_keyless(sigstore_local, ALICE, statement))
    result = attest("verify", history["repo"] / APP, "--store", "store", "--policy", policy, "--stage", "prd",
                    "--trusted-root", sigstore_local.trusted_root_path, cwd=work)
    assert result.code == 1, result
    assert "stage 'prd' requires 2 approval(s) from po-alice, po-any, but found 1" in result.err, result
    # the audit counts as the gate does (prd verified it at +40 s, after the approval)
    _, report = run_audit(attest, work, "--policy", policy, "--trusted-root", sigstore_local.trusted_root_path)
    missing = [a for a in report["anomalies"] if a["kind"] == "missing-approval"]
    assert len(missing) == 1 and "with 1 of the 2 approval(s) it requires" in missing[0]["message"], report
