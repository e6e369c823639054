"""What a review of attest's output found: a file name that is not UTF-8 stopped every audit with an index (exit 70)
and made --format json that strict readers refuse; terminal escapes from evidence and file names reached the
terminal through build's listing, the logging, and the audit table's emoji codes; the page's history showed a
commit's right-to-left override raw; a rebuild's image layout it did not write was an internal error."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import pytest

from tests import factory as f
from tests.audit_index.conftest import write_builds_policy
from tests.conftest import AttestRunner, KeyPair, make_keypair

ESCAPES = "\x1b]0;PWNED\x07\x1b[2J\u202e"


@pytest.fixture
def audited(tmp_path: Path) -> tuple[Path, dict[str, KeyPair]]:
    keys = {name: make_keypair(tmp_path, name) for name in ("dev", "stg")}
    write_builds_policy(tmp_path, keys)  # (the audit index tests' policy: dev builds, stg verifies)
    return tmp_path, keys


def _strict(text: str) -> Any:
    from verify.formats import strict_json

    text.encode("utf-8")  # (raises on a lone surrogate)
    return strict_json.loads(text, what="attest's own JSON")


def test_a_file_name_that_is_not_utf8_is_a_malformed_file_not_a_stopped_audit(
        audited: tuple[Path, dict[str, KeyPair]], attest: AttestRunner) -> None:
    work, keys = audited
    folder = work / "attestations"
    folder.mkdir()
    built = f.provenance(keys["dev"].private, subjects={"app.zip": b"x"})
    (folder / "ok.intoto.jsonl").write_bytes(built.to_json_line())
    with open(os.fsencode(folder) + b"/x\xff.intoto.jsonl", "wb") as out:  # (unpacked from an archive made elsewhere)
        out.write(b"junk\n")
    for index in (["--index", str(work / "index.sqlite")], ["--no-index"]):
        result = attest("audit", folder, "--policy", work / "policy.yaml", "--format", "json", *index, cwd=work)
        assert result.code == 1, result
        report = _strict(result.out)
        [anomaly] = report["anomalies"]
        assert anomaly["kind"] == "malformed" and anomaly["source"].endswith("x\\udcff.intoto.jsonl")


def test_json_of_a_file_named_in_bytes_that_are_not_utf8_is_utf8(tmp_path: Path, attest: AttestRunner) -> None:
    bad = os.fsdecode(os.fsencode(tmp_path) + b"/bad\xff.intoto.jsonl")
    Path(bad).write_bytes(b"junk\n")
    result = attest("inspect", bad, "--format", "json", cwd=tmp_path)
    assert result.code == 1, result
    [entry] = _strict(result.out)
    assert entry["source"].endswith("bad\\udcff.intoto.jsonl")  # (a backslash, then udcff: text)


def test_build_lists_artefact_names_without_their_escapes(repo: Path, keys: dict[str, KeyPair],
                                                         attest: AttestRunner) -> None:
    (repo / "dist").mkdir()
    (repo / "dist" / f"app{ESCAPES}.zip").write_bytes(b"app")
    result = attest("build", "--signer", keys["dev"].private, "--artifact", "dist/", "--", "true", cwd=repo)
    assert result.code == 0, result
    assert "\x1b" not in result.out + result.err and "\u202e" not in result.out
    assert "app\\x1b]0;PWNED\\x07\\x1b[2J\\u202e.zip" in result.out


def test_log_lines_spell_out_what_they_quote(tmp_path: Path, keys: dict[str, KeyPair], attest: AttestRunner) -> None:
    (tmp_path / "app.zip").write_bytes(b"app")
    named = tmp_path / f"prov{ESCAPES}.intoto.jsonl"
    named.write_bytes(f.provenance(keys["dev"].private, subjects={"app.zip": b"app"}).to_json_line())
    result = attest("-v", "verify", "app.zip", "--attestation", named, "--key", keys["dev"].public, cwd=tmp_path)
    assert "\x1b" not in result.err and "\u202e" not in result.err, result
    assert "prov\\x1b]0;PWNED" in result.err  # (the log line is there, spelled out)


def test_the_audit_table_never_draws_an_emoji_code_from_evidence(audited: tuple[Path, dict[str, KeyPair]],
                                                                attest: AttestRunner) -> None:
    work, keys = audited
    f.publish(work / "store", f.provenance(keys["dev"].private, subjects={"app.zip :heavy_check_mark: stg": b"a"}))
    result = attest("audit", work / "store", "--policy", work / "policy.yaml", "--no-index", cwd=work,
                    env={"COLUMNS": "200"})
    assert "\u2714" not in result.out and ":heavy_check_mark:" in result.out, result


def test_the_page_s_history_spells_out_a_commit_s_escapes(audited: tuple[Path, dict[str, KeyPair]],
                                                         attest: AttestRunner) -> None:
    work, keys = audited
    f.publish(work / "store", f.provenance(keys["dev"].private, subjects={"app.zip": b"a"},
                                           commit="\u202e0123456789abcdef0123456789abcdef012345"))
    result = attest("audit", work / "store", "--policy", work / "policy.yaml", "--no-index", "--format", "html",
                    "-o", work / "page.html", cwd=work)
    assert result.code in (0, 1), result
    page = (work / "page.html").read_text()
    assert "\u202e" not in page  # (the override itself, anywhere: the history's data is JSON of raw text)


def test_a_rebuild_that_wrote_no_image_layout_misses_it(built: Path, keys: dict[str, KeyPair],
                                                       attest: AttestRunner) -> None:
    from tests.cli.test_reproduce_cli import resign

    def change(doc: dict[str, Any]) -> None:
        doc["predicate"]["buildDefinition"]["externalParameters"]["artifacts"] = ["oci-layout:not-written"]

    resign(built / "provenance.intoto.jsonl", keys["dev"], change)
    result = attest("reproduce", "provenance.intoto.jsonl", "--key", keys["dev"].public, "--", sys.executable, "-c",
                    "print('writes nothing')", cwd=built)
    assert result.code == 1 and "internal error" not in result.err, result


def test_two_files_never_share_a_spelling(audited: tuple[Path, dict[str, KeyPair]], attest: AttestRunner) -> None:
    """A name that is not UTF-8 is spelled with escapes, and a real name that looks like that spelling has its
    backslash doubled: the report never puts one file's anomaly under the other's name."""
    work, keys = audited
    folder = work / "attestations"
    folder.mkdir()
    (folder / "prov-\\udcff.intoto.jsonl").write_bytes(
        f.provenance(keys["dev"].private, subjects={"app.zip": b"x"}).to_json_line())
    with open(os.fsencode(folder) + b"/prov-\xff.intoto.jsonl", "wb") as out:
        out.write(f.provenance(keys["stg"].private, subjects={"app.zip": b"x"}).to_json_line())  # (not provenance's)
    for index in (["--index", str(work / "index.sqlite")], ["--no-index"]):
        result = attest("audit", folder, "--policy", work / "policy.yaml", "--format", "json", *index, cwd=work)
        report = _strict(result.out)
        [anomaly] = report["anomalies"]
        sources = {b["attestation"] for a in report["artifacts"] for b in a["builds"]}
        assert anomaly["source"].endswith("/prov-\\udcff.intoto.jsonl")  # the file that is not UTF-8
        assert {s.rsplit("/", 1)[1] for s in sources} == {"prov-\\\\udcff.intoto.jsonl"}  # the other one


def test_an_option_hidden_at_the_end_of_a_cluster_counts_as_given(audited: tuple[Path, dict[str, KeyPair]],
                                                                  attest: AttestRunner) -> None:
    work, _ = audited
    result = attest("audit", work, "--policy", work / "policy.yaml", "-vo", "a.json", "-o", "b.json", cwd=work)
    assert result.code == 2 and "-o/--output is given more than once" in result.err, result
    assert not (work / "a.json").exists() and not (work / "b.json").exists()
