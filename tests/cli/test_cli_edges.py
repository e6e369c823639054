"""Edges of the command line: closed pipes, bad environment, empty inputs, -v anywhere, hostile text, secrets.

Every failure exits with a documented code and says one plain sentence on stderr, never a traceback.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import AttestRunner, KeyPair, Result


def one_sentence(result: Result) -> str:
    """The one line on stderr of a failed command (build commands also report what they ran: the last line)."""
    assert "Traceback" not in result.err and "Exception ignored" not in result.err, result
    last = result.err.strip().splitlines()[-1]
    assert last.startswith("attest: "), result
    return last


# 2. SOURCE_DATE_EPOCH must be a whole number of seconds since 1970

@pytest.mark.parametrize("value", ["yesterday", "-1", "1.5", "1e9", "253402300800", "99999999999999999999999"])
def test_source_date_epoch_not_whole_seconds_is_refused(value: str, repo: Path, keys: dict[str, KeyPair],
                                                        attest: AttestRunner) -> None:
    result = attest("build", "--signer", keys["dev"].private, "--artifact", "build.py", cwd=repo,
                    env={"SOURCE_DATE_EPOCH": value})
    assert result.code == 3, result
    sentence = one_sentence(result)
    assert f"SOURCE_DATE_EPOCH is '{value}'" in sentence
    assert "whole number of seconds since 1970" in sentence and "253402300799" in sentence
    assert not (repo / "provenance.intoto.jsonl").exists()


@pytest.mark.parametrize("value", ["0", "253402300799"])
def test_source_date_epoch_bounds_are_accepted(value: str, repo: Path, keys: dict[str, KeyPair],
                                               attest: AttestRunner) -> None:
    result = attest("build", "--signer", keys["dev"].private, "--artifact", "build.py", "--format", "json",
                    cwd=repo, env={"SOURCE_DATE_EPOCH": value})
    assert result.code == 0, result


# 3. artefacts that name no regular file

@pytest.mark.parametrize(("pattern", "expected"), [
    ("dist/empty", "artifact dist/empty is a directory with no regular file below"),
    ("dist/empty/", "artifact dist/empty/ is a directory with no regular file below"),
    ("dist/e*", "artifact dist/e* matches only directories with no regular file below"),
    ("dist/*.zip", "artifact pattern dist/*.zip matches nothing"),
    ("dist/missing.tar.gz", "artifact dist/missing.tar.gz does not exist"),
])
def test_artifact_without_regular_files_is_refused(pattern: str, expected: str, repo: Path,
                                                   keys: dict[str, KeyPair], attest: AttestRunner) -> None:
    (repo / "dist" / "empty" / "sub").mkdir(parents=True)  # dist/ is ignored: the tree stays clean
    result = attest("build", "--signer", keys["dev"].private, "--artifact", pattern, cwd=repo)
    assert result.code == 3, result
    assert expected in one_sentence(result)
    assert not (repo / "provenance.intoto.jsonl").exists()


# 4. inspect exits 1 when anything in the file could not be decoded

@pytest.mark.parametrize(("content", "expected"), [
    ("not json\n", "nothing in bad.jsonl could be decoded: bad.jsonl is not valid JSON"),
    ('{"hello": "world"}\n', "nothing in bad.jsonl could be decoded: bad.jsonl has no 'payload' field"),
    ("", "bad.jsonl is empty"),
    ("[1, 2]\n", "nothing in bad.jsonl could be decoded"),
])
def test_inspect_undecodable_file_exits_1(content: str, expected: str, tmp_path: Path, attest: AttestRunner) -> None:
    (tmp_path / "bad.jsonl").write_text(content)
    result = attest("inspect", "bad.jsonl", cwd=tmp_path)
    assert result.code == 1, result
    assert expected in one_sentence(result)
    if content:  # what could not be decoded is still shown
        assert "[UNVERIFIED]" in result.out and "error:" in result.out


def test_inspect_partly_decodable_file_shows_all_and_exits_1(built: Path, attest: AttestRunner) -> None:
    good = (built / "provenance.intoto.jsonl").read_text().strip()
    (built / "dist" / "mixed.jsonl").write_text(good + "\nnot json\n")
    result = attest("inspect", "dist/mixed.jsonl", cwd=built)
    assert result.code == 1, result
    assert "predicateType: https://slsa.dev/provenance/v1" in result.out and "error:" in result.out
    assert "1 of the 2 entries in dist/mixed.jsonl could not be decoded" in one_sentence(result)
    as_json = attest("inspect", "dist/mixed.jsonl", "--format", "json", cwd=built)
    assert as_json.code == 1
    entries = json.loads(as_json.out)
    assert entries[0]["statement"]["subject"][0]["name"] == "dist/app.tar.gz" and "error" in entries[1]


def test_inspect_missing_file_exits_3(tmp_path: Path, attest: AttestRunner) -> None:
    result = attest("inspect", "missing.jsonl", cwd=tmp_path)
    assert result.code == 3, result
    assert "cannot read attestation missing.jsonl" in one_sentence(result)


