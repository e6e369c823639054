"""``attest audit`` through the real CLI: the three formats, exit codes and one-sentence errors."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import re
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import BinaryIO

import pytest

from tests import factory as f
from tests.conftest import CONFORMANCE, AttestRunner, KeyPair, make_keypair
from verify.errors import EvidenceRejected

H = timedelta(hours=1)
APP = "dist/app.tar.gz"
EVIL_NAME = 'dist/<script>alert("x")</script>\x1b[2J\u202eevil.tar.gz'


@pytest.fixture(scope="module")
def audit_keys(tmp_path_factory: pytest.TempPathFactory) -> dict[str, KeyPair]:
    directory = tmp_path_factory.mktemp("audit-keys")
    return {name: make_keypair(directory, name) for name in ("dev", "stg", "prd", "other")}


def write_policy(directory: Path, keys: dict[str, KeyPair]) -> Path:
    path = directory / "policy.yaml"
    path.write_text(f"""version: 1
identities:
  dev-build: {{keys: [{keys['dev'].public}]}}
  stg-verifier: {{keys: [{keys['stg'].public}]}}
  prd-verifier: {{keys: [{keys['prd'].public}]}}
provenance:
  signed-by: [dev-build]
  source: {{uri: github.com/acme/app, branches: [main]}}
stages:
  stg: {{verifier: stg-verifier}}
  prd: {{verifier: prd-verifier, require-vsa: [{{stage: stg, signed-by: stg-verifier}}]}}
""")
    return path


def promote(store: Path, keys: dict[str, KeyPair], data: bytes, *, commit: str, stages: tuple[str, ...],
            built_hours: int = 0) -> str:
    built = f.T0 + built_hours * H
    provenance = f.provenance(keys["dev"].private, subjects={APP: data}, commit=commit, finished=built)
    f.publish(store, provenance)
    made = [("provenance", f.line_sha256(provenance))]
    for i, stage in enumerate(stages, start=1):  # (each naming the provenance, as attest verify --emit-vsa signs)
        f.publish(store, f.vsa(keys[stage].private, name=APP, artifact=data, stage=stage, at=built + i * H,
                               inputs=made))
    return f.digests(data)["sha256"]


@pytest.fixture
def history(tmp_path: Path, audit_keys: dict[str, KeyPair]) -> dict[str, str]:
    """A store with one clean artefact and one of each: skipped stage, untrusted signer, non-reproducible build."""
    store = tmp_path / "store"
    write_policy(tmp_path, audit_keys)
    shas = {
        "clean": promote(store, audit_keys, b"v1", commit="a" * 40, stages=("stg", "prd")),
        "skipped": promote(store, audit_keys, b"v2", commit="b" * 40, stages=("prd",)),
        "build1": promote(store, audit_keys, b"v3 first", commit="c" * 40, stages=()),
        "build2": promote(store, audit_keys, b"v3 second", commit="c" * 40, stages=(), built_hours=1),
    }
    f.publish(store, f.provenance(audit_keys["other"].private, subjects={EVIL_NAME: b"evil"}))
    shas["untrusted"] = f.digests(b"evil")["sha256"]
    return shas


def expected(history: dict[str, str]) -> set[tuple[str, str]]:
    return {("skipped-stage", history["skipped"]), ("untrusted-signer", history["untrusted"]),
            ("non-reproducible", history["build1"]), ("non-reproducible", history["build2"])}


def one_sentence(err: str) -> None:
    assert err.count("\n") == 1 and err.startswith("attest: ") and "Traceback" not in err, err


ANOMALY_SENTENCE = ("attest: audit found 4 anomalies (non-reproducible, skipped-stage, untrusted-signer) "
                    "in 5 artefact(s), 8 attestation(s).\n")


# --- the three formats --------------------------------------------------------------------------------

def test_json(history: dict[str, str], attest: AttestRunner, tmp_path: Path) -> None:
    result = attest("audit", "store", "--policy", "policy.yaml", "--format", "json", cwd=tmp_path)
    assert result.code == 1, result
    assert result.err == ANOMALY_SENTENCE
    report = json.loads(result.out)
    assert {(a["kind"], a["sha256"]) for a in report["anomalies"]} == expected(history)
    artifacts = {a["sha256"]: a for a in report["artifacts"]}
    assert set(artifacts) == set(history.values())
    clean = artifacts[history["clean"]]
    assert clean["commit"] == "a" * 40 and clean["names"] == [APP] and clean["anomalies"] == []
    assert [(s["stage"], s["status"]) for s in clean["stages"]] == [("stg", "passed"), ("prd", "passed")]
    assert artifacts[history["skipped"]]["anomalies"] == ["skipped-stage"]
    assert report["summary"] == {"files": 8, "attestations": 8, "artifacts": 5, "anomalies": 4,
                                 "stages": ["stg", "prd"], "releases": 0, "stored": 0, "unread": 0}
    # deterministic: the same bytes on a second run
    assert attest("audit", "store", "--policy", "policy.yaml", "--format", "json", cwd=tmp_path).out == result.out


def test_text(history: dict[str, str], attest: AttestRunner, tmp_path: Path) -> None:
    result = attest("audit", "store", "--policy", "policy.yaml", cwd=tmp_path)
    assert result.code == 1, result
    assert result.err == ANOMALY_SENTENCE
    assert "5 artefact(s) from 8 attestation(s)" in result.out
    for sha in history.values():
        assert sha[:16] in result.out
    for kind, sha in expected(history):
        assert re.search(rf"{kind} {sha[:16]} ", result.out), (kind, result.out)
    assert "\x1b" not in result.out and "\u202e" not in result.out  # evidence cannot drive the terminal
    assert "\\x1b[2J\\u202eevil.tar.gz" in result.out


def test_html(history: dict[str, str], attest: AttestRunner, tmp_path: Path) -> None:
    (tmp_path / "out").mkdir()
    result = attest("audit", "store", "--policy", "policy.yaml", "--format", "html", "-o", "out/audit.html",
                    cwd=tmp_path)
    assert result.code == 1, result
    assert result.out == "" and result.err == ANOMALY_SENTENCE
    page = (tmp_path / "out" / "audit.html").read_text()
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    for sha in history.values():
        assert f'id="a-{sha}"' in page and f"sha256:{sha}" in page
    assert page.count('class="anomaly"') == 2 * 4  # in the list at the top, and on each artefact
    assert "without the VSA from stage &#x27;stg&#x27; that it requires" in page
    assert '<span class="pill anomalous" data-step="prd"' in page
    # self-contained, and nothing from the evidence is markup: the one script is the page's own, pinned by its
    # hash in the Content-Security-Policy, beside the history's JSON, in which evidence cannot close the element
    from verify.audit.dashboard import SCRIPT, SCRIPT_HASH

    assert "<link" not in page and "url(" not in page and "@import" not in page
    assert page.count("<script") == 2 and f"<script>{SCRIPT}</script>" in page
    assert f"script-src '{SCRIPT_HASH}'" in page
    assert "sha256-" + base64.b64encode(hashlib.sha256(SCRIPT.encode()).digest()).decode() == SCRIPT_HASH
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;\\x1b[2J\\u202eevil.tar.gz" in page  # in its card
    island = page.split('<script type="application/json" id="history-data">', 1)[1].split("</script>", 1)[0]
    assert "<" not in island and len(json.loads(island)["rows"]) == len(history)  # the history's data: no markup
    assert list((tmp_path / "out").iterdir()) == [tmp_path / "out" / "audit.html"]  # no temporary file left


def test_clean_history_exits_0_in_every_format(tmp_path: Path, audit_keys: dict[str, KeyPair],
                                               attest: AttestRunner) -> None:
    write_policy(tmp_path, audit_keys)
    sha = promote(tmp_path / "store", audit_keys, b"v1", commit="a" * 40, stages=("stg", "prd"))
    for output_format in ("text", "json", "html"):
        result = attest("audit", "store", "--policy", "policy.yaml", "--format", output_format, cwd=tmp_path)
        assert result.code == 0 and result.err == "", result
        assert sha[:16] in result.out
    assert "no anomalies" in attest("audit", "store", "--policy", "policy.yaml", cwd=tmp_path).out


@pytest.mark.parametrize(("name", "file"), [
    ("app.zip: signature verified against the pinned key, no action needed[x", "provenance-].intoto.jsonl"),
    ("x[/", "provenance-].intoto.jsonl"),
    ("x[bold red]", "provenance-[x].intoto.jsonl"),
], ids=["hides-the-rest", "unmatched-closing-tag", "whole-tags"])
def test_evidence_text_is_never_markup_even_two_pieces_side_by_side(tmp_path: Path, audit_keys: dict[str, KeyPair],
                                                                   attest: AttestRunner, name: str, file: str) -> None:
    """A file signed by no pinned key controls its subject's name (quoted in its anomaly) and its own file name (the
    anomaly's source): each was escaped alone, so '[x' in one and ']' in the other made a tag of the text between,
    which rich dropped (hiding what the anomaly says) or refused (an internal error, no report). Each piece is text."""
    write_policy(tmp_path, audit_keys)
    store = tmp_path / "store"
    f.publish(store, f.provenance(audit_keys["dev"].private, subjects={"good.zip": b"good"}))
    placed = f.publish(store, f.provenance(audit_keys["other"].private, subjects={name: b"x"}))
    placed.rename(placed.with_name(file))
    result = attest("audit", "store", "--policy", "policy.yaml", cwd=tmp_path)
    assert result.code == 1 and "internal error" not in result.err, result
    assert f"a provenance for {name!r} is signed by no key the policy pins" in result.out, result.out
    assert file in result.out


# --- sources ------------------------------------------------------------------------------------------

def test_a_build_directory_with_only_a_key(built: Path, keys: dict[str, KeyPair], attest: AttestRunner) -> None:
    """What ``attest build`` wrote (envelopes and bundles, anywhere under a directory), with --key only."""
    result = attest("audit", ".", "provenance.intoto.jsonl", "--key", keys["dev"].public, "--format", "json",
                    cwd=built)
    assert result.code == 0, result
    report = json.loads(result.out)
    assert sorted(n for a in report["artifacts"] for n in a["names"]) == ["dist/app.tar.gz", "dist/sub/data.bin"]
    assert report["summary"]["stages"] == [] and report["anomalies"] == []
    result = attest("audit", ".", "--key", keys["other"].public, "--format", "json", cwd=built)
    assert result.code == 1 and {a["kind"] for a in json.loads(result.out)["anomalies"]} == {"untrusted-signer"}


def test_several_sources_and_a_malformed_file(tmp_path: Path, audit_keys: dict[str, KeyPair],
                                              attest: AttestRunner) -> None:
    write_policy(tmp_path, audit_keys)
    promote(tmp_path / "one", audit_keys, b"v1", commit="a" * 40, stages=("stg",))
    (tmp_path / "loose.intoto.jsonl").write_text("{not json\n")
    result = attest("audit", "one", "loose.intoto.jsonl", "--policy", "policy.yaml", "--format", "json",
                    cwd=tmp_path)
    assert result.code == 1, result
    anomalies = json.loads(result.out)["anomalies"]
    assert [(a["kind"], a["sha256"], a["source"]) for a in anomalies] == [
        ("malformed", None, "loose.intoto.jsonl")]


# --- usage and configuration errors ---------------------------------------------------------------------

def test_errors(tmp_path: Path, audit_keys: dict[str, KeyPair], attest: AttestRunner) -> None:
    write_policy(tmp_path, audit_keys)
    promote(tmp_path / "store", audit_keys, b"v1", commit="a" * 40, stages=())
    (tmp_path / "empty").mkdir()
    (tmp_path / "bad.yaml").write_text("version: 2\n")

    result = attest("audit", "store", cwd=tmp_path)
    assert result.code == 2 and "no trusted identity: pass --policy FILE or --key PEM" in result.err
    assert attest("audit", "--policy", "policy.yaml", cwd=tmp_path).code == 2

    for args, words in [
        (("missing",), "audit source missing does not exist"),
        (("empty",), "audit source empty holds no attestation file"),
        (("ftp://host/x",), "is neither a path nor an s3:// URI"),
    ]:
        result = attest("audit", *args, "--policy", "policy.yaml", cwd=tmp_path)
        assert result.code == 3 and words in result.err, result
        one_sentence(result.err)
    result = attest("audit", "store", "--policy", "bad.yaml", cwd=tmp_path)
    assert result.code == 3 and "version: must be 1" in result.err, result
    one_sentence(result.err)
    result = attest("audit", "store", "--key", "nokey.pem", cwd=tmp_path)
    assert result.code == 3 and "cannot read public key nokey.pem" in result.err, result
    one_sentence(result.err)


def test_an_s3_store_is_read_through_the_s3_store(tmp_path: Path, audit_keys: dict[str, KeyPair],
                                                   monkeypatch: pytest.MonkeyPatch,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    """``s3://`` sources go through ``S3Store.from_uri(...)``, opened once: ``listed_attestations()``, then
    ``listed_artifacts()``, whose bytes are hashed (S3 itself: tests/attest)."""
    from attest.cli import main
    from attest.stores import s3
    from attest.stores.local import LocalStore

    policy = write_policy(tmp_path, audit_keys)
    sha = promote(tmp_path / "bucket" / "app", audit_keys, b"v1", commit="a" * 40, stages=("prd",))
    opened: list[str] = []

    class Bucket:
        @classmethod
        def from_uri(cls, uri: str, **options: object) -> Bucket:
            opened.append(uri)
            return cls()

        def listed_attestations(self) -> Iterator[tuple[str, str | None, Callable[[], bytes | EvidenceRejected]]]:
            local = LocalStore(tmp_path / "bucket" / "app")
            for path, stamp, read in local.listed_attestations():
                yield "s3://bucket/app/" + Path(path).relative_to(local.root).as_posix(), stamp, read

        def listed_artifacts(self) -> Iterator[tuple[str, str, Callable[[], BinaryIO], str | None]]:
            yield f"s3://bucket/app/sha256/{sha}/artifact/{APP}", sha, lambda: io.BytesIO(b"v1"), None

    monkeypatch.setattr(s3, "S3Store", Bucket)
    with pytest.raises(SystemExit) as exit_:
        main(["audit", "s3://bucket/app", "--policy", str(policy), "--format", "json"])
    assert exit_.value.code == 1 and opened == ["s3://bucket/app"]
    out = json.loads(capsys.readouterr().out)
    assert [(a["kind"], a["sha256"]) for a in out["anomalies"]] == [("skipped-stage", sha)]
    assert out["anomalies"][0]["source"].startswith(f"s3://bucket/app/sha256/{sha}/vsa-")
    assert out["artifacts"][0]["stored"] == [{"uri": f"s3://bucket/app/sha256/{sha}/artifact/{APP}",
                                              "sha256": sha, "status": "verified"}]
    assert out["summary"]["stored"] == 1


def test_a_long_text_table_keeps_the_artefacts_with_anomalies(history: dict[str, str], tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    from attest.cli import audit as command
    from verify.audit import audit
    from verify.policy_file import load_policy

    store = tmp_path / "store"
    report = audit(((str(p), p.read_bytes()) for p in sorted(store.rglob("*.intoto.jsonl"))),
                   policy=load_policy(tmp_path / "policy.yaml"), workers=1)
    monkeypatch.setattr(command, "TEXT_ROWS", 3)
    text = command._text(report, color=False)
    assert "5 artefact(s) from 8 attestation(s), 3 shown (those with anomalies)" in text
    assert history["clean"][:16] not in text.split("anomalies:")[0]
    assert history["skipped"][:16] in text


# --- keyless bundles ----------------------------------------------------------------------------------

REUSABLE = Path(__file__).resolve().parents[1] / "assets" / "sigstore" / "gh-reusable-workflow.sigstore.json"
OTHER_ROOT = (CONFORMANCE / "sigstore-conformance" / "test" / "assets" / "bundle-verify" /
              "intoto-with-custom-trust-root" / "trusted_root.json")


def test_keyless_bundles_against_the_default_or_a_given_trusted_root(tmp_path: Path, attest: AttestRunner) -> None:
    """A GitHub artifact attestation, verified offline: the production root by default, or --trusted-root."""
    (tmp_path / "evidence").mkdir()
    (tmp_path / "evidence" / "wheel.sigstore.json").write_bytes(REUSABLE.read_bytes())
    (tmp_path / "policy.yaml").write_text("""version: 1
identities:
  gha: {sigstore: {issuer: "https://token.actions.githubusercontent.com", github-repo: malancas/attest-demo,
                   identity-regexp: "https://github.com/github/artifact-attestations-workflows/.+",
                   signer-workflow: github/artifact-attestations-workflows/.github/workflows/attest.yml}}
provenance:
  signed-by: [gha]
  source: {uri: github.com/malancas/attest-demo, branches: [main]}
""")
    result = attest("audit", "evidence", "--policy", "policy.yaml", "--format", "json", cwd=tmp_path)
    assert result.code == 0 and result.err == "", result
    (artifact,) = json.loads(result.out)["artifacts"]
    assert artifact["builds"][0]["signers"] == ["gha"] and artifact["commit"].startswith("95baf27389e8")

    result = attest("audit", "evidence", "--policy", "policy.yaml", "--trusted-root", OTHER_ROOT, cwd=tmp_path)
    assert result.code == 1, result
    assert result.err == ("attest: audit found 1 anomaly (bad-signature) in 1 artefact(s), 1 attestation(s).\n")
    assert re.search(r"bad-signature 49a3aa6075e0f49f  a provenance for .* is signed keylessly in the name of gha",
                     result.out), result.out

    result = attest("audit", "evidence", "--policy", "policy.yaml", "--trusted-root", "nowhere.json", cwd=tmp_path)
    assert result.code == 3, result
    assert "cannot read trusted root nowhere.json: No such file" in result.err
    one_sentence(result.err)


def test_a_file_name_that_is_not_utf8_is_spelled_in_every_message_of_the_json(tmp_path: Path,
                                                                              audit_keys: dict[str, KeyPair],
                                                                              attest: AttestRunner) -> None:
    """A store's folder named by bytes that are not UTF-8: the anomaly's message quoted it as lone surrogates (a JSON
    escape no UTF-8 text carries, refused by strict readers); it is spelled \\udcNN there, as in its source."""
    import os

    write_policy(tmp_path, audit_keys)
    store = tmp_path / "store"
    f.publish(store, f.provenance(audit_keys["dev"].private, subjects={"good.zip": b"good"}))
    with open(os.path.join(os.fsencode(store / "sha256"), b"\xff"), "wb") as odd:
        odd.write(b"a file where a folder should be")
    result = attest("audit", "store", "--policy", "policy.yaml", "--format", "json", cwd=tmp_path)
    assert result.code == 1, result
    report = json.loads(result.out)
    message = next(a["message"] for a in report["anomalies"] if a["kind"] == "malformed")
    assert "\\\\udcff is not a folder" in json.dumps(message) and message.encode("utf-8")
    assert "\\udcff" not in result.out.replace("\\\\udcff", "")  # no lone-surrogate escape anywhere


def test_the_report_never_replaces_what_an_audit_reads(tmp_path: Path, audit_keys: dict[str, KeyPair],
                                                      attest: AttestRunner) -> None:
    """-o onto a stored attestation, a key file the policy pins (a KMS key's PEM too: its key is named by its ARN),
    or the audit index replaced it: evidence lost from a write-once store, the next run trusting no key or running
    without its index. A usage error now, before any work."""
    import shutil

    from verify.policy_file import kms_pem_name

    write_policy(tmp_path, audit_keys)
    arn = "arn:aws:kms:eu-west-1:111111111111:key/1234abcd"
    shutil.copy(audit_keys["other"].public, tmp_path / kms_pem_name(arn))
    policy = tmp_path / "policy.yaml"
    policy.write_text(policy.read_text().replace("identities:\n", f"identities:\n  kms-dev: {{kms: [{arn}]}}\n"))
    promote(tmp_path / "store", audit_keys, b"v1", commit="a" * 40, stages=("stg",))
    stored = next((tmp_path / "store").rglob("provenance-*.intoto.jsonl"))
    for output in (stored, Path(audit_keys["dev"].public), tmp_path / kms_pem_name(arn), tmp_path / "index.sqlite"):
        before = output.read_bytes() if output.exists() else None
        refused = attest("audit", "store", "--policy", "policy.yaml", "--index", tmp_path / "index.sqlite", "-o",
                         output, cwd=tmp_path)
        assert refused.code == 2 and "write the" in refused.err, (output, refused)
        assert (output.read_bytes() if output.exists() else None) == before


def test_a_source_folder_nested_deeper_than_python_recurses_is_walked(tmp_path: Path, audit_keys: dict[str, KeyPair],
                                                                      attest: AttestRunner) -> None:
    """os.walk recurses once a folder on Python 3.11: a plain folder audited with 1,200 levels in it ended the
    audit in a RecursionError (exit 70)."""
    import subprocess

    write_policy(tmp_path, audit_keys)
    line = f.provenance(audit_keys["dev"].private, subjects={APP: b"v1"}).to_json_line()
    deep = tmp_path / "plain" / Path(*(["a"] * 1200))
    try:
        subprocess.run(["mkdir", "-p", str(deep)], check=True)
        (tmp_path / "plain" / "top.intoto.jsonl").write_bytes(line)
        (deep / "deep.intoto.jsonl").write_bytes(line)
        result = attest("audit", "plain", "--policy", "policy.yaml", "--format", "json", cwd=tmp_path)
        assert result.code in (0, 1) and "internal error" not in result.err, result
        assert json.loads(result.out)["summary"]["files"] == 2
    finally:
        subprocess.run(["rm", "-rf", str(tmp_path / "plain")], check=True)
