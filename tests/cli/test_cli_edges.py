"""Edges of the command line: closed pipes, bad environment, empty inputs, -v anywhere, hostile text, secrets.

Every failure exits with a documented code and says one plain sentence on stderr, never a traceback.
"""

from __future__ import annotations

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


