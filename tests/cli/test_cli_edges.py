"""Edges of the command line: closed pipes, bad environment, empty inputs, -v anywhere, hostile text, secrets.

Every failure exits with a documented code and says one plain sentence on stderr, never a traceback.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from tests.conftest import AttestRunner, KeyPair, Result, _clean_env

ATTEST = [sys.executable, "-m", "attest"]


def one_sentence(result: Result) -> str:
    """The one line on stderr of a failed command (build commands also report what they ran: the last line)."""
    assert "Traceback" not in result.err and "Exception ignored" not in result.err, result
    last = result.err.strip().splitlines()[-1]
    assert last.startswith("attest: "), result
    return last


def run_with_closed_stdout(*args: str | Path, cwd: Path | None = None, unbuffered: bool = True) -> Result:
    """Run attest with stdout a pipe whose read end is closed before attest starts: every write breaks.

    Buffered, the break comes when Python flushes stdout (at exit, or when click flushes an echo);
    unbuffered (PYTHONUNBUFFERED), at the first write.
    """
    env = _clean_env()
    env.pop("PYTHONUNBUFFERED", None)
    if unbuffered:
        env["PYTHONUNBUFFERED"] = "1"
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        done = subprocess.run([*ATTEST, *map(str, args)], cwd=cwd, env=env, stdout=write_end,
                              stderr=subprocess.PIPE, text=True, timeout=120, check=False)
    finally:
        os.close(write_end)
    return Result(done.returncode, "", done.stderr)


# 1. a reader that goes away (`attest verify ... | head -1`) does not change the exit code

@pytest.mark.parametrize("unbuffered", [True, False])
def test_closed_stdout_after_passing_verify_exits_0(unbuffered: bool, built: Path, keys: dict[str, KeyPair]) -> None:
    result = run_with_closed_stdout("verify", "dist/app.tar.gz", "--attestation", "provenance.intoto.jsonl",
                                    "--key", keys["dev"].public, cwd=built, unbuffered=unbuffered)
    assert result.code == 0 and result.err == "", result


@pytest.mark.parametrize("unbuffered", [True, False])
@pytest.mark.parametrize("args", [["inspect", "provenance.intoto.jsonl"], ["--help"], ["verify", "--help"]])
def test_closed_stdout_after_successful_command_exits_0(args: list[str], unbuffered: bool, built: Path) -> None:
    result = run_with_closed_stdout(*args, cwd=built, unbuffered=unbuffered)
    assert result.code == 0 and result.err == "", result


def test_closed_stdout_after_failing_verify_still_exits_1(built: Path, keys: dict[str, KeyPair]) -> None:
    result = run_with_closed_stdout("verify", "dist/app.tar.gz", "--attestation", "provenance.intoto.jsonl",
                                    "--key", keys["other"].public, cwd=built)
    assert result.code == 1, result
    one_sentence(result)


def test_closed_stdout_after_output_then_failure_still_exits_1(built: Path) -> None:
    # inspect prints the line it could decode, then fails for the one it could not
    good = (built / "provenance.intoto.jsonl").read_text().strip()
    (built / "dist" / "mixed.jsonl").write_text(good + "\n" + '{"a": 1}\n')
    result = run_with_closed_stdout("inspect", "dist/mixed.jsonl", cwd=built)
    assert result.code == 1, result
    assert "could not be decoded" in one_sentence(result)


def test_reader_leaving_after_one_line_exits_0(built: Path) -> None:
    # `attest inspect big.jsonl | head -1`, with more output than a pipe holds: attest is mid-write when it closes
    line = (built / "provenance.intoto.jsonl").read_text().strip()
    (built / "dist" / "big.jsonl").write_text((line + "\n") * 100)
    process = subprocess.Popen([*ATTEST, "inspect", "dist/big.jsonl"], cwd=built, env=_clean_env(),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert process.stdout is not None and process.stderr is not None
    first = process.stdout.readline()
    process.stdout.close()
    err = process.stderr.read().decode()
    code = process.wait(timeout=120)
    assert b"[UNVERIFIED]" in first
    assert code == 0 and err == "", err


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


# 5. -v/--verbose before or after the command name

@pytest.mark.parametrize("flag", ["-v", "--verbose", "-vv"])
def test_verbose_after_command_name_is_accepted(flag: str, built: Path, keys: dict[str, KeyPair],
                                                attest: AttestRunner) -> None:
    verify = ["verify", "dist/app.tar.gz", "--attestation", "provenance.intoto.jsonl", "--key", keys["dev"].public]
    after = attest(*verify, flag, cwd=built)
    before = attest(flag, *verify, cwd=built)
    assert after.code == 0 and before.code == 0, (after, before)
    assert after.out == before.out and "PASS" in after.out
    assert after.err == before.err and after.err.startswith("attest: ")  # the steps, logged to stderr


@pytest.mark.parametrize("args", [["inspect", "provenance.intoto.jsonl", "-v"],
                                  ["key", "generate", "--out", "dist/k", "-v"],
                                  ["key", "-v", "generate", "--out", "dist/k"]])
def test_verbose_is_accepted_by_every_command(args: list[str], built: Path, attest: AttestRunner) -> None:
    result = attest(*args, cwd=built)
    assert result.code == 0, result


@pytest.mark.parametrize("args", [["inspect", "missing.jsonl", "-vv"], ["-vv", "inspect", "missing.jsonl"],
                                  ["-v", "inspect", "missing.jsonl", "-v"],
                                  ["inspect", "--verbose", "missing.jsonl", "--verbose"]])
def test_twice_verbose_anywhere_prints_traceback(args: list[str], tmp_path: Path, attest: AttestRunner) -> None:
    result = attest(*args, cwd=tmp_path)
    assert result.code == 3 and "Traceback" in result.err, result
    assert result.err.strip().splitlines()[-1].startswith("attest: cannot read attestation")


def test_verbose_after_double_dash_belongs_to_build_command(repo: Path, keys: dict[str, KeyPair],
                                                            attest: AttestRunner) -> None:
    script = "import sys; print('CMD ARGS', sys.argv[1:], file=sys.stderr); sys.exit(3)"
    result = attest("build", "-v", "--signer", keys["dev"].private, "--artifact", "dist/",
                    "--", sys.executable, "-c", script, "-v", "-vv", cwd=repo)
    assert result.code == 1, result
    assert "CMD ARGS ['-v', '-vv']" in result.err
    assert "failed with exit status 3" in one_sentence(result)  # one -v for attest: no traceback


def test_verbose_after_command_without_double_dash_belongs_to_build_command(
        repo: Path, keys: dict[str, KeyPair], attest: AttestRunner) -> None:
    script = "import sys; print('CMD ARGS', sys.argv[1:], file=sys.stderr); sys.exit(3)"
    result = attest("build", "--signer", keys["dev"].private, "--artifact", "dist/",
                    sys.executable, "-c", script, "--verbose", "-vv", cwd=repo)
    assert result.code == 1, result
    assert "CMD ARGS ['--verbose', '-vv']" in result.err
    one_sentence(result)


# 6. evidence text reaches the terminal escaped

HOSTILE = {"name": "\x1b[2Jdist/app\u202egz.exe", "payloadType": "application/vnd.in-toto+json\x1b]0;pwned\x07",
           "keyid": "\u202ekey\x1b[31m", "type": "https://in-toto.io/Statement/v1\x1b[1A",
           "predicateType": "https://slsa.dev/provenance/v1\x9b2J", "digest": "ab\x1b[0m", "value": "\x1b]0;x\x07"}
RAW_CONTROLS = ("\x1b", "\x07", "\x9b", "\u202e")


def _hostile_envelope(path: Path) -> None:
    statement = {"_type": HOSTILE["type"], "predicateType": HOSTILE["predicateType"],
                 "subject": [{"name": HOSTILE["name"], "digest": {"sha256\x1b[2J": HOSTILE["digest"]}}],
                 "predicate": {"builder\x1b[2J": HOSTILE["value"]}}
    envelope = {"payloadType": HOSTILE["payloadType"],
                "payload": base64.b64encode(json.dumps(statement).encode()).decode(),
                "signatures": [{"keyid": HOSTILE["keyid"], "sig": base64.b64encode(b"x" * 64).decode()}]}
    path.write_text(json.dumps(envelope) + "\n")


def test_inspect_escapes_terminal_sequences_in_evidence(tmp_path: Path, attest: AttestRunner) -> None:
    _hostile_envelope(tmp_path / "hostile.intoto.jsonl")
    result = attest("inspect", "hostile.intoto.jsonl", cwd=tmp_path)
    assert result.code == 0, result
    for control in RAW_CONTROLS:
        assert control not in result.out and control not in result.err
    assert "subject: \\x1b[2Jdist/app\\u202egz.exe  sha256\\x1b[2J:ab\\x1b[0m" in result.out
    assert "payloadType: application/vnd.in-toto+json\\x1b]0;pwned\\x07" in result.out
    assert "keyid=\\u202ekey\\x1b[31m" in result.out
    assert "predicateType: https://slsa.dev/provenance/v1\\x9b2J" in result.out
    assert "_type: https://in-toto.io/Statement/v1\\x1b[1A" in result.out


def test_inspect_json_keeps_evidence_text_exact_and_escaped(tmp_path: Path, attest: AttestRunner) -> None:
    _hostile_envelope(tmp_path / "hostile.intoto.jsonl")
    result = attest("inspect", "hostile.intoto.jsonl", "--format", "json", cwd=tmp_path)
    assert result.code == 0, result
    for control in RAW_CONTROLS:
        assert control not in result.out
    entry = json.loads(result.out)[0]
    assert entry["statement"]["subject"][0]["name"] == HOSTILE["name"]
    assert entry["payloadType"] == HOSTILE["payloadType"]
    assert entry["signatures"][0]["keyid"] == HOSTILE["keyid"]
    assert entry["statement"]["predicate"] == {"builder\x1b[2J": HOSTILE["value"]}


def test_error_sentence_escapes_terminal_sequences(tmp_path: Path, attest: AttestRunner) -> None:
    result = attest("inspect", "\x1b[2Jmissing\u202e.jsonl", cwd=tmp_path)
    assert result.code == 3, result
    assert "\x1b" not in result.err and "\u202e" not in result.err
    assert "\\x1b[2Jmissing\\u202e.jsonl" in one_sentence(result)


# 7. the build command cannot read attest's secrets from /proc/<attest's pid>/environ

PROBE = """\
import os, pathlib, sys
environ = pathlib.Path(f"/proc/{os.getppid()}/environ").read_bytes()
pathlib.Path(sys.argv[1]).write_bytes(environ)
pathlib.Path("dist").mkdir(exist_ok=True)
pathlib.Path("dist/app.tar.gz").write_bytes(b"app")
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc/PID/environ is Linux's")
def test_build_command_cannot_read_secrets_from_attest_environ(repo: Path, tmp_path: Path,
                                                               attest: AttestRunner) -> None:
    password, aws_secret, marker = (f"{kind}-{uuid.uuid4().hex}" for kind in ("password", "aws", "marker"))
    generated = attest("key", "generate", "--out", tmp_path / "encrypted", env={"ATTEST_KEY_PASSWORD": password})
    assert generated.code == 0 and b"ENCRYPTED" in (tmp_path / "encrypted.pem").read_bytes(), generated
    probe, seen = tmp_path / "probe.py", tmp_path / "attest-environ.bin"  # outside the work tree
    probe.write_text(PROBE)
    env = {"ATTEST_KEY_PASSWORD": password, "AWS_SECRET_ACCESS_KEY": aws_secret, "AWS_SESSION_TOKEN": aws_secret,
           "AWS_CONTAINER_AUTHORIZATION_TOKEN_X": aws_secret, "PROBE_MARKER": marker}
    result = attest("build", "--signer", tmp_path / "encrypted.pem", "--artifact", "dist/",
                    "--", sys.executable, probe, seen, cwd=repo, env=env, fresh=True)  # its own exec'd block
    assert result.code == 0, result  # the encrypted key was still usable
    environ = seen.read_bytes()
    assert f"PROBE_MARKER={marker}".encode() in environ  # the probe did read attest's original environment
    assert password.encode() not in environ and aws_secret.encode() not in environ
    assert b"ATTEST_KEY_PASSWORD=" in environ and b"AWS_SECRET_ACCESS_KEY=" in environ  # the names stay


@pytest.mark.parametrize("args", [
    ("audit", ""), ("audit", "store", ""), ("pack", "", "-o", "out.zip"), ("inspect", ""), ("reproduce", ""),
    ("verify", ""),
], ids=["audit", "audit-second-source", "pack", "inspect", "reproduce", "verify"])
def test_an_empty_argument_is_a_usage_error_never_the_current_folder(args: tuple[str, ...], tmp_path: Path,
                                                                     attest: AttestRunner) -> None:
    """An unset pipeline variable (``attest audit "$STORE"``) audited, packed or read the current folder."""
    (tmp_path / "store").mkdir()
    result = attest(*args, cwd=tmp_path)
    assert result.code == 2, result
    assert "it is empty (an unset pipeline variable?); give a value" in result.err and "Traceback" not in result.err
    assert not (tmp_path / "out.zip").exists()


def test_a_build_command_keeps_its_empty_words(repo: Path, keys: dict[str, KeyPair], attest: AttestRunner) -> None:
    """``attest build ... -- CMD ...`` passes CMD's words as given, an empty one too."""
    ran = attest("build", "--signer", keys["dev"].private, "--artifact", "build.py", "--no-lockfile", "--",
                 sys.executable, "-c", "import sys; assert sys.argv[1:] == ['']", "", cwd=repo)
    assert ran.code == 0, ran


def test_odd_inputs_get_sentences_that_say_what_they_are(repo: Path, tmp_path: Path, keys: dict[str, KeyPair],
                                                         attest: AttestRunner) -> None:
    """A FIFO given as a lockfile is no missing file, a link to itself no permission problem, a plain folder given
    to reproduce no missing repository: each sentence says what the input is."""
    os.mkfifo(repo / "fifo.lock")
    ran = attest("build", "--signer", keys["dev"].private, "--artifact", "build.py", "--lockfile", "fifo.lock",
                 cwd=repo)
    assert ran.code == 3 and "lockfile fifo.lock is not a regular file" in ran.err, ran
    (tmp_path / "loop").symlink_to("loop")
    (tmp_path / "policy.yaml").write_text(f'version: 1\nidentities:\n  dev: {{keys: ["{keys["dev"].public}"]}}\n'
                                          "provenance:\n  signed-by: [dev]\n")
    ran = attest("audit", "loop", "--policy", "policy.yaml", "--no-index", cwd=tmp_path)
    assert ran.code == 3 and "a link that leads back to itself" in ran.err, ran
    built = attest("build", "--signer", keys["dev"].private, "--artifact", "build.py", "--no-lockfile",
                   "-o", tmp_path / "prov.intoto.jsonl", cwd=repo)
    assert built.code == 0, built
    (tmp_path / "plain").mkdir()
    ran = attest("reproduce", tmp_path / "prov.intoto.jsonl", "--repo", tmp_path / "plain", "--key",
                 keys["dev"].public, cwd=tmp_path)
    assert ran.code == 3 and "is a folder but no git repository" in ran.err, ran


def test_a_path_this_process_may_not_enter_is_exit_3_with_a_sentence(tmp_path: Path, keys: dict[str, KeyPair]) -> None:
    """On Python 3.11 ``Path.exists()`` raises PermissionError under a folder the process may not enter: what was an
    internal error (exit 70) in build, pack, approve, release create and reproduce is exit 3 with one sentence."""
    closed = tmp_path / "closed"
    (closed / "repo").mkdir(parents=True)
    (closed / "app.tar.gz").write_text("app")
    closed.chmod(0o600)  # neither entered nor listed
    prefix = ["setpriv", "--bounding-set", "-dac_override,-dac_read_search"] if os.geteuid() == 0 else []
    key = keys["dev"].private
    try:
        for args in (["approve", closed / "app.tar.gz", "--signer", key, "--stage", "prd"],
                     ["release", "create", "--name", "r1", "--component", f"app={closed / 'p.jsonl'}", "--signer",
                      key, "-o", tmp_path / "r.jsonl", "--store", closed / "store"],
                     ["pack", closed / "repo", "-o", tmp_path / "x.zip"],
                     ["pack", tmp_path / "x", "-o", closed / "sub" / "x.zip"]):
            done = subprocess.run([*prefix, *ATTEST, *map(str, args)], capture_output=True, text=True,
                                  env=_clean_env(), cwd=tmp_path, timeout=60)
            result = Result(done.returncode, done.stdout, done.stderr)
            assert done.returncode in (2, 3), result
            assert "internal error" not in done.stderr
            one_sentence(result)
    finally:
        closed.chmod(0o700)
