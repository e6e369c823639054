"""Issue 23, classes 4 and 5: every command against every fault of every file it reads or writes.

For each command and each option (or argument) that names a file or folder, the matrix swaps in a
fault: for what is read, a missing path, a folder, a FIFO (which must never be waited on),
``/dev/zero`` (which must never be read to the end), a link to a FIFO, a sparse gigabyte, a file no
one may read, a non-UTF-8 name; for what is written, a folder, a path under a regular file, a missing
parent folder, a link to a file elsewhere, a FIFO, a read-only folder, an input of the same run, a
non-UTF-8 name. Whatever the fault, attest answers with a documented exit code and one sentence on
stderr, never a traceback and never "internal error" (exit 70); a missing parent folder or an output
that is also an input is a usage error (exit 2) found before any work; a refused output leaves the
path as it was, and a link's target is never written. Commands run in this process (the real
``main``), each under an alarm, so that a blocking read fails the test instead of hanging it.

Every file-valued option of every command is listed in :data:`READS` or :data:`WRITES`, and
:func:`test_the_matrix_covers_every_file_option` fails when a command gains one that is not.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext, redirect_stderr, redirect_stdout
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

import click
import pytest

from tests._modes import file_modes_enforced
from tests.conftest import KeyPair, make_keypair, make_repo, run_attest
from tests.hardening._helpers import Ran
from verify.limits import MAX_EVIDENCE_BYTES_PER_RUN

NON_UTF8 = os.fsdecode(b"n\xffme")  # a name that is not UTF-8 (surrogate-escaped, as argv gives it)
OUT = "out.zip"  # an output name every command takes (pack chooses its format by the suffix)


@dataclass(frozen=True)
class World:
    """A built repository, its published store, keys, a policy and a release manifest."""

    root: Path
    repo: Path
    keys: dict[str, KeyPair]

    @property
    def artefact(self) -> Path:
        return self.repo / "dist" / "app.tar.gz"

    @property
    def provenance(self) -> Path:
        return self.repo / "provenance.intoto.jsonl"

    @property
    def store(self) -> Path:
        return self.repo / "store"

    @property
    def policy(self) -> Path:
        return self.root / "policy.yaml"

    @property
    def release(self) -> Path:
        return self.root / "release.intoto.jsonl"

    @property
    def deploy_store(self) -> Path:
        """A copy of the store that ``deploy record`` publishes to (the others read ``store`` as built)."""
        return self.root / "deploy-store"

    def key(self, name: str) -> Path:
        return self.keys[name].public

    def signer(self, name: str) -> Path:
        return self.keys[name].private


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    root = tmp_path_factory.mktemp("world")
    keys = {name: make_keypair(root, name) for name in ("dev", "stg", "alice", "release")}
    repo = make_repo(root / "app")
    built = run_attest("build", "--signer", keys["dev"].private, "--artifact", "dist/", "--publish", "store",
                       "--", sys.executable, "build.py", cwd=repo)
    assert built.code == 0, built
    (root / "policy.yaml").write_text(f"""version: 1
identities:
  dev-build: {{keys: ["{keys['dev'].public}"]}}
  stg-verifier: {{keys: ["{keys['stg'].public}"]}}
  alice: {{keys: ["{keys['alice'].public}"]}}
  release-manager: {{keys: ["{keys['release'].public}"]}}
provenance:
  signed-by: [dev-build]
  source: {{uri: github.com/acme/app, branches: [main]}}
stages:
  stg: {{verifier: stg-verifier, deployed-by: [stg-verifier]}}
  prd:
    require-vsa: [{{stage: stg, signed-by: stg-verifier}}]
    require-approvals: {{count: 1, signed-by: [alice]}}
    hotfix: {{require-approvals: {{count: 1, signed-by: [alice]}}}}
releases: {{signed-by: [release-manager]}}
""")
    made = run_attest("release", "create", "--name", "r1", "--component", f"app={repo / 'provenance.intoto.jsonl'}",
                      "--signer", keys["release"].private, "-o", root / "release.intoto.jsonl", cwd=root)
    assert made.code == 0, made
    shutil.copytree(repo / "store", root / "deploy-store")
    return World(root=root, repo=repo, keys=keys)


# --- what each command reads and writes -------------------------------------------------------------

Args = Callable[[World, str, str], list[str | Path]]
"""(world, the faulty path, a good output path) -> argv, the faulty path in the option under test."""


def _verify(w: World, *more: str | Path) -> list[str | Path]:
    return ["verify", w.artefact, "--attestation", w.provenance, "--key", w.key("dev"), *more]


def _stg(w: World, *, artefact: str | Path | None = None, store: str | Path | None = None,
         policy: str | Path | None = None, out: str | Path = "vsa.intoto.jsonl",
         signer: str | Path | None = None) -> list[str | Path]:
    return ["verify", artefact or w.artefact, "--store", store or w.store, "--policy", policy or w.policy,
            "--stage", "stg", "--emit-vsa", out, "--signer", signer or w.signer("stg")]


def _build(w: World, *more: str | Path, out: str | Path = "out.intoto.jsonl") -> list[str | Path]:
    return ["build", "--signer", w.signer("dev"), "--artifact", "dist/", "-o", out, *more,
            "--", sys.executable, "build.py"]


def _approve(w: World, *, artefact: str | Path | None = None, signer: str | Path | None = None,
             policy: str | Path | None = None, out: str | Path = "approval.intoto.jsonl",
             more: tuple[str | Path, ...] = ()) -> list[str | Path]:
    return ["approve", artefact or w.artefact, "--signer", signer or w.signer("alice"), "--policy",
            policy or w.policy, "--stage", "prd", "-o", out, *more]


def _audit(w: World, *, source: str | Path | None = None, policy: str | Path | None = None,
           out: str | Path = "audit.json", more: tuple[str | Path, ...] = ()) -> list[str | Path]:
    return ["audit", source or w.store, "--policy", policy or w.policy, "--format", "json", "-o", out, *more]


def _release(w: World, *, component: str | Path | None = None, signer: str | Path | None = None,
             out: str | Path = "release.intoto.jsonl", more: tuple[str | Path, ...] = ()) -> list[str | Path]:
    return ["release", "create", "--name", "r2", "--component", f"app={component or w.provenance}", "--signer",
            signer or w.signer("release"), "-o", out, *more]


def _deploy(w: World, *, release: str | Path | None = None, signer: str | Path | None = None,
            policy: str | Path | None = None, store: str | Path | None = None,
            out: str | Path = "deployment.intoto.jsonl") -> list[str | Path]:
    return ["deploy", "record", "--env", "stg", "--release", release or w.release, "--component", "app", "--status",
            "succeeded", "--signer", signer or w.signer("stg"), "--policy", policy or w.policy, "--store",
            store or w.deploy_store, "-o", out]


def _reproduce(w: World, *, attestation: str | Path | None = None, key: str | Path | None = None,
               more: tuple[str | Path, ...] = ()) -> list[str | Path]:
    return ["reproduce", attestation or w.provenance, "--key", key or w.key("dev"), "--repo", w.repo, *more,
            "--", sys.executable, "-c", "raise SystemExit(9)"]


#: (command, option) -> (kind, argv with the faulty path F). A kind is "file" (read whole, bounded), "artefact"
#: (hashed in one pass, of any size), "dir" (a folder read), or "store" (a folder published to: made if missing)
READS: dict[tuple[str, str], tuple[str, Args]] = {
    ("verify", "ARTIFACT"): ("artefact", lambda w, f, o: ["verify", f, "--attestation", w.provenance,
                                                      "--key", w.key("dev")]),
    ("verify", "--attestation"): ("file", lambda w, f, o: ["verify", w.artefact, "--attestation", f,
                                                           "--key", w.key("dev")]),
    ("verify", "--key"): ("file", lambda w, f, o: ["verify", w.artefact, "--attestation", w.provenance,
                                                   "--key", f]),
    ("verify", "--policy"): ("file", lambda w, f, o: ["verify", w.artefact, "--attestation", w.provenance,
                                                      "--policy", f]),
    ("verify", "--store"): ("dir", lambda w, f, o: ["verify", w.artefact, "--store", f, "--policy", w.policy]),
    ("verify", "--trusted-root"): ("file", lambda w, f, o: _verify(w, "--trusted-root", f)),
    ("verify", "--vsa-key"): ("file", lambda w, f, o: _verify(w, "--require-vsa", "stg", "--vsa-key", f)),
    ("verify", "--lockfile"): ("file", lambda w, f, o: _verify(w, "--lockfile", f)),
    ("verify", "--release"): ("file", lambda w, f, o: ["verify", "--release", f, "--store", w.store,
                                                       "--policy", w.policy]),
    ("verify", "--layout"): ("file", lambda w, f, o: _verify(w, "--layout", f, "--layout-key", w.key("dev"),
                                                             "--link-dir", w.root)),
    ("verify", "--layout-key"): ("file", lambda w, f, o: _verify(w, "--layout", w.policy, "--layout-key", f,
                                                                 "--link-dir", w.root)),
    ("verify", "--link-dir"): ("dir", lambda w, f, o: _verify(w, "--layout", w.policy, "--layout-key",
                                                              w.key("dev"), "--link-dir", f)),
    ("verify", "--signer"): ("file", lambda w, f, o: _stg(w, out=o, signer=f)),
    ("build", "--signer"): ("file", lambda w, f, o: ["build", "--signer", f, "--artifact", "dist/", "-o", o,
                                                     "--", sys.executable, "build.py"]),
    ("build", "--artifact"): ("artefact", lambda w, f, o: ["build", "--signer", w.signer("dev"), "--artifact", f,
                                                       "-o", o, "--", sys.executable, "build.py"]),
    ("build", "--lockfile"): ("file", lambda w, f, o: _build(w, "--lockfile", f, out=o)),
    ("build", "--trust-config"): ("file", lambda w, f, o: ["build", "--signer", "sigstore", "--trust-config", f,
                                                           "--identity-token", "not-a-token", "--artifact",
                                                           "dist/", "-o", o, "--", sys.executable, "build.py"]),
    ("build", "--publish"): ("store", lambda w, f, o: _build(w, "--publish", f, out=o)),
    ("approve", "ARTIFACT"): ("artefact", lambda w, f, o: _approve(w, artefact=f, out=o)),
    ("approve", "--signer"): ("file", lambda w, f, o: _approve(w, signer=f, out=o)),
    ("approve", "--policy"): ("file", lambda w, f, o: _approve(w, policy=f, out=o)),
    ("approve", "--store"): ("store", lambda w, f, o: _approve(w, out=o, more=("--store", f))),
    ("approve", "--release"): ("file", lambda w, f, o: ["approve", "--release", f, "--hotfix", "--stage", "prd",
                                                        "--signer", w.signer("alice"), "--policy", w.policy,
                                                        "--store", w.deploy_store, "-o", o]),
    ("audit", "SOURCES"): ("dir", lambda w, f, o: _audit(w, source=f, out=o)),
    ("audit", "--policy"): ("file", lambda w, f, o: _audit(w, policy=f, out=o)),
    ("audit", "--key"): ("file", lambda w, f, o: _audit(w, out=o, more=("--key", f))),
    ("audit", "--trusted-root"): ("file", lambda w, f, o: _audit(w, out=o, more=("--trusted-root", f))),
    ("inspect", "FILE"): ("file", lambda w, f, o: ["inspect", f]),
    ("promote", "--policy"): ("file", lambda w, f, o: _promote(w, "--policy", f)),
    ("promote", "--trusted-root"): ("file", lambda w, f, o: _promote(w, "--policy", w.policy, "--trusted-root", f)),
    ("pack", "DIRECTORY"): ("dir", lambda w, f, o: ["pack", f, "-o", o + ".zip"]),
    ("release create", "--component"): ("file", lambda w, f, o: _release(w, component=f, out=o)),
    ("release create", "--signer"): ("file", lambda w, f, o: _release(w, signer=f, out=o)),
    ("release create", "--store"): ("store", lambda w, f, o: _release(w, out=o, more=("--store", f))),
    ("deploy record", "--release"): ("file", lambda w, f, o: _deploy(w, release=f, out=o)),
    ("deploy record", "--signer"): ("file", lambda w, f, o: _deploy(w, signer=f, out=o)),
    ("deploy record", "--policy"): ("file", lambda w, f, o: _deploy(w, policy=f, out=o)),
    ("deploy record", "--store"): ("store", lambda w, f, o: _deploy(w, store=f, out=o)),
    ("status", "--policy"): ("file", lambda w, f, o: ["status", "--store", w.deploy_store, "--policy", f]),
    ("status", "--store"): ("dir", lambda w, f, o: ["status", "--store", f, "--policy", w.policy]),
    ("reproduce", "ATTESTATION"): ("file", lambda w, f, o: _reproduce(w, attestation=f)),
    ("reproduce", "--key"): ("file", lambda w, f, o: _reproduce(w, key=f)),
    ("reproduce", "--policy"): ("file", lambda w, f, o: _reproduce(w, more=("--policy", f))),
    ("reproduce", "--repo"): ("dir", lambda w, f, o: ["reproduce", w.provenance, "--key", w.key("dev"), "--repo", f,
                                                      "--", sys.executable, "-c", "raise SystemExit(9)"]),
}

#: (command, option) -> argv writing to the path O (and the input it may not be: "equal to an input")
WRITES: dict[tuple[str, str], tuple[Callable[[World, str], list[str | Path]], Callable[[World], Path] | None]] = {
    ("verify", "--emit-vsa"): (lambda w, o: _stg(w, out=o), lambda w: w.policy),
    ("build", "--output"): (lambda w, o: _build(w, out=o), lambda w: w.repo / "build.py"),
    ("build", "--link"): (lambda w, o: _build(w, "--link", o), lambda w: w.repo / "requirements.txt"),
    ("approve", "--output"): (lambda w, o: _approve(w, out=o), lambda w: w.artefact),
    ("audit", "--output"): (lambda w, o: _audit(w, out=o), lambda w: w.policy),
    ("audit", "--index"): (lambda w, o: _audit(w, out="audit.json", more=("--index", o)), lambda w: w.policy),
    ("pack", "--output"): (lambda w, o: ["pack", w.repo / "dist", "-o", o], None),
    ("release create", "--output"): (lambda w, o: _release(w, out=o), lambda w: w.provenance),
    ("deploy record", "--output"): (lambda w, o: _deploy(w, out=o), lambda w: w.release),
    ("key generate", "--out"): (lambda w, o: ["key", "generate", "--out", o], None),
    ("reproduce", "--emit"): (lambda w, o: _reproduce(w, more=("--emit", o, "--signer", w.signer("stg"))),
                              lambda w: w.provenance),
}

#: outputs that take a folder too: the file goes in it (--link), or beside it (a key PREFIX)
WRITES_INTO_FOLDERS = {("build", "--link"), ("key generate", "--out")}

#: options that name files but are not in the matrix, and why
NOT_IN_MATRIX = {
    ("key export", "--out"): "needs a KMS key: tests/aws/test_kms_export.py covers its output",
    ("reproduce", "--diff"): "a folder written only after a rebuild that differs: tests/cli/test_reproduce_cli.py",
    ("reproduce", "--originals"): "read only after a rebuild that differs: tests/cli/test_reproduce_cli.py",
}


def _promote(w: World, *more: str | Path) -> list[str | Path]:
    """attest promote onto its own repository (a usage error, exit 2, once its files are read): a bad input must
    be refused first, and before any registry is asked."""
    return ["promote", f"oci://127.0.0.1:9/app@sha256:{'0' * 64}", "oci://127.0.0.1:9/app", "--stage", "prd",
            "--registry-insecure", "127.0.0.1:9", *more]


# --- the faults ---------------------------------------------------------------------------------------

def read_fault(kind: str, fault: str, tmp: Path, good: Path | None) -> str:
    """A faulty path of ``fault`` for an input of ``kind`` ("file" or "dir")."""
    path = tmp / "faulty"
    if fault == "missing":
        pass
    elif fault == "directory":
        path.mkdir()
    elif fault == "regular-file":
        path.write_bytes(b"not a folder\n")
    elif fault == "fifo":
        os.mkfifo(path)
    elif fault == "dev-zero":
        return "/dev/zero"
    elif fault == "link-to-fifo":
        os.mkfifo(tmp / "fifo")
        path.symlink_to(tmp / "fifo")
    elif fault == "sparse-gigabyte":
        # an input with a size limit must refuse a gigabyte before reading it; an artefact has none and is hashed
        # whole, so twice the largest input limit (MAX_EVIDENCE_BYTES_PER_RUN) is as much a test, in an eighth
        # of the time
        with path.open("wb") as out:
            out.truncate(1024**3 if kind != "artefact" else 2 * MAX_EVIDENCE_BYTES_PER_RUN)
    elif fault == "unreadable":
        if kind in ("dir", "store"):
            path.mkdir()
        else:
            path.write_bytes(b"secret\n")
        path.chmod(0)
    elif fault == "non-utf8-name":
        path = tmp / NON_UTF8
        if good is not None and good.is_dir():
            shutil.copytree(good, path, symlinks=True)
        elif good is not None:
            shutil.copyfile(good, path)
        else:
            path.write_bytes(b"{}\n")
    return str(path)


FILE_FAULTS = ["missing", "directory", "fifo", "dev-zero", "link-to-fifo", "sparse-gigabyte", "unreadable",
               "non-utf8-name"]
DIR_FAULTS = ["missing", "regular-file", "fifo", "link-to-fifo", "unreadable"]
READ_FAULTS = {"file": FILE_FAULTS, "artefact": FILE_FAULTS, "dir": DIR_FAULTS, "store": DIR_FAULTS}
#: (kind, fault) that may pass: a name is not a fault, an artefact has no size limit, a store is made
MAY_PASS = {("file", "non-utf8-name"), ("artefact", "non-utf8-name"), ("artefact", "sparse-gigabyte"),
            ("store", "missing")}
WRITE_FAULTS = ["directory", "under-a-file", "missing-parent", "link", "fifo", "read-only-folder", "equal-to-an-input",
                "non-utf8-name"]

#: good files to copy under a non-UTF-8 name
GOOD: dict[tuple[str, str], Callable[[World], Path]] = {
    ("verify", "ARTIFACT"): lambda w: w.artefact, ("verify", "--attestation"): lambda w: w.provenance,
    ("verify", "--key"): lambda w: w.key("dev"), ("verify", "--policy"): lambda w: w.policy,
    ("verify", "--vsa-key"): lambda w: w.key("stg"), ("verify", "--release"): lambda w: w.release,
    ("verify", "--signer"): lambda w: w.signer("stg"), ("build", "--signer"): lambda w: w.signer("dev"),
    ("approve", "ARTIFACT"): lambda w: w.artefact, ("approve", "--signer"): lambda w: w.signer("alice"),
    ("approve", "--policy"): lambda w: w.policy, ("audit", "--policy"): lambda w: w.policy,
    ("audit", "--key"): lambda w: w.key("dev"), ("inspect", "FILE"): lambda w: w.provenance,
    ("release create", "--component"): lambda w: w.provenance,
    ("release create", "--signer"): lambda w: w.signer("release"),
    ("deploy record", "--release"): lambda w: w.release, ("deploy record", "--signer"): lambda w: w.signer("stg"),
    ("deploy record", "--policy"): lambda w: w.policy, ("status", "--policy"): lambda w: w.policy,
    ("approve", "--release"): lambda w: w.release,
    ("reproduce", "ATTESTATION"): lambda w: w.provenance, ("reproduce", "--key"): lambda w: w.key("dev"),
    ("reproduce", "--policy"): lambda w: w.policy,
}


class Hung(Exception):
    """The command blocked (on a FIFO, reading /dev/zero to the end): the alarm rang."""


@contextmanager
def alarm(seconds: int) -> Iterator[None]:
    def ring(signum: int, frame: FrameType | None) -> None:
        raise Hung(f"still running after {seconds} s")

    previous = signal.signal(signal.SIGALRM, ring)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def run(argv: list[str | Path], cwd: Path, monkeypatch: pytest.MonkeyPatch) -> Ran:
    """``attest ARGV`` in this process, with stdout and stderr in real files (a build command writes to
    attest's stderr by its descriptor), under an alarm. The build command's environment scrub
    (:func:`attest._secrets.hide_from_children`, tested in test_build_credentials.py) is left out: it
    would act on this test process itself."""
    from attest import _secrets
    from attest.cli import main

    for name in list(os.environ):
        if name.startswith(("CODEBUILD_", "GITHUB_", "GITLAB_", "CI_", "ATTEST_", "SIGSTORE_")):
            monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", os.devnull)
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    monkeypatch.setattr(_secrets, "hide_from_children", lambda is_secret: None)
    monkeypatch.chdir(cwd)
    code = 0
    with tempfile.TemporaryFile("w+", encoding="utf-8", errors="surrogateescape") as out, \
            tempfile.TemporaryFile("w+", encoding="utf-8", errors="surrogateescape") as err:
        with redirect_stdout(out), redirect_stderr(err), alarm(60):
            try:
                main([str(a) for a in argv])
            except SystemExit as e:
                code = int(e.code or 0) if not isinstance(e.code, str) else 1
        out.seek(0)
        err.seek(0)
        ran = Ran(code, out.read(), err.read())
    monkeypatch.undo()
    return ran


def one_sentence(ran: Ran) -> None:
    """The failure ends with one line on stderr, attest's own sentence, with no traceback and no internal
    error (a build logs its steps before it, as on any run)."""
    assert "Traceback" not in ran.err and "internal error" not in ran.err and ran.code != 70, ran
    lines = [line for line in ran.err.splitlines() if line.strip()]
    if ran.code != 0:
        assert lines and lines[-1].startswith("attest: ") and lines[-1].endswith((".", "?", "!", ")")), ran


def _cases_read() -> list[tuple[str, str, str]]:
    return [(command, option, fault) for (command, option), (kind, _) in sorted(READS.items())
            for fault in READ_FAULTS[kind]]


@pytest.mark.parametrize(("command", "option", "fault"), _cases_read())
def test_every_input_fault_is_a_documented_exit_and_one_sentence(
        world: World, command: str, option: str, fault: str, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    kind, args = READS[(command, option)]
    good = GOOD.get((command, option))
    path = read_fault(kind, fault, tmp_path, good(world) if good else None)
    out = str(tmp_path / "out.intoto.jsonl")
    with file_modes_enforced() if fault == "unreadable" else nullcontext():  # root too
        ran = run(args(world, path, out), world.repo, monkeypatch)
    one_sentence(ran)
    if (kind, fault) in MAY_PASS:
        assert ran.code in (0, 1, 2, 3), ran
    else:
        assert ran.code in (1, 2, 3), ran
        if command != "audit":  # an audit's report says what failed: it is written on exit 1 too
            assert not Path(out).exists(), "a refused run wrote its output"


def write_fault(fault: str, tmp: Path, world: World, equal: Callable[[World], Path] | None) -> tuple[str, Path | None]:
    """(the output path, the file that must stay as it is) for ``fault``."""
    out = tmp / OUT
    if fault == "directory":
        out.mkdir()
        return str(out), None
    if fault == "under-a-file":
        (tmp / "file").write_bytes(b"a file\n")
        return str(tmp / "file" / OUT), tmp / "file"
    if fault == "missing-parent":
        return str(tmp / "nowhere" / OUT), None
    if fault == "link":
        target = tmp / "elsewhere" / "target"
        target.parent.mkdir()
        target.write_bytes(b"keep me\n")
        out.symlink_to(target)
        return str(out), target
    if fault == "fifo":
        os.mkfifo(out)
        return str(out), None
    if fault == "read-only-folder":
        (tmp / "ro").mkdir()
        (tmp / "ro").chmod(0o555)
        return str(tmp / "ro" / OUT), None
    if fault == "equal-to-an-input":  # the world's own file: refused before a byte is written, or the test fails
        assert equal is not None
        return str(equal(world)), equal(world)
    assert fault == "non-utf8-name"
    return str(tmp / (NON_UTF8 + ".zip")), None


def _cases_write() -> list[tuple[str, str, str]]:
    return [(command, option, fault) for (command, option), (_, equal) in sorted(WRITES.items())
            for fault in WRITE_FAULTS if fault != "equal-to-an-input" or equal is not None]


@pytest.mark.parametrize(("command", "option", "fault"), _cases_write())
def test_every_output_fault_is_a_documented_exit_and_nothing_half_done(
        world: World, command: str, option: str, fault: str, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    args, equal = WRITES[(command, option)]
    path, kept = write_fault(fault, tmp_path, world, equal)
    before = kept.read_bytes() if kept is not None and kept.is_file() else None
    listing = sorted(p.name for p in tmp_path.rglob("*"))
    with file_modes_enforced() if fault == "read-only-folder" else nullcontext():  # root too
        ran = run(args(world, path), world.repo if command != "key generate" else tmp_path, monkeypatch)
    one_sentence(ran)
    if kept is not None and before is not None:
        assert kept.read_bytes() == before, f"{kept} was written through {path}"
    if fault == "directory" and (command, option) in WRITES_INTO_FOLDERS:
        assert ran.code == 0, ran
    elif fault in ("missing-parent", "equal-to-an-input", "directory", "under-a-file"):
        assert ran.code == 2, ran  # a usage error, found before any work
        assert sorted(p.name for p in tmp_path.rglob("*")) == listing, "a refused output left something"
    elif fault == "non-utf8-name":
        assert ran.code in (0, 1), ran
    else:
        assert ran.code in (0, 1, 2, 3), ran


# --- the matrix is complete -------------------------------------------------------------------------

def _file_options() -> set[tuple[str, str]]:
    """(command, option) for every option or argument of every command whose type is a path."""
    from attest.cli import cli

    found: set[tuple[str, str]] = set()

    def walk(command: click.Command, path: list[str]) -> None:
        if isinstance(command, click.Group):
            for name in command.list_commands(click.Context(command)):
                sub = command.get_command(click.Context(command), name)
                assert sub is not None
                walk(sub, [*path, name])
            return
        for param in command.params:
            kind = getattr(param.type, "inner", param.type)
            if isinstance(kind, click.Path):
                name = max(param.opts, key=len) if isinstance(param, click.Option) else (param.name or "").upper()
                found.add((" ".join(path), name))
    walk(cli, [])
    return found


def test_the_matrix_covers_every_file_option() -> None:
    covered = set(READS) | set(WRITES) | set(NOT_IN_MATRIX)
    missing = _file_options() - covered
    assert not missing, f"file options the fault matrix does not try: {sorted(missing)}"


# --- the faults the issue names one by one ------------------------------------------------------------

def _copy_store(world: World, tmp: Path) -> Path:
    store = tmp / "store"
    shutil.copytree(world.store, store, symlinks=True)
    return store


def _sha256_folder(store: Path) -> Path:
    [folder] = [p for p in (store / "sha256").iterdir() if (p / "artifact" / "dist" / "app.tar.gz").exists()]
    return folder


@pytest.mark.parametrize("kind", ["provenance", "vsa", "approval", "release"])
def test_a_store_object_with_a_non_utf8_name_never_crashes_the_gate_or_its_vsa(
        world: World, kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = _copy_store(world, tmp_path)
    folder = _sha256_folder(store)
    [provenance] = folder.glob("provenance-*.intoto.jsonl")
    shutil.copyfile(provenance, folder / f"{kind}-{NON_UTF8}.intoto.jsonl")
    out = tmp_path / "vsa.intoto.jsonl"
    ran = run(_stg(world, store=store, out=out), world.repo, monkeypatch)
    one_sentence(ran)
    assert ran.code in (0, 1, 3), ran
    if ran.code == 0:  # what it names is text: every name in the VSA is UTF-8
        out.read_bytes().decode("utf-8")
    else:
        assert not out.exists()


@pytest.mark.parametrize("origin", ["http://[::1", "https://github.com:99999/acme/app", "ssh://", "::", " ",
                                    "https://exa mple.com/acme/app", "git@:acme/app.git", NON_UTF8])
@pytest.mark.parametrize("where", ["origin", "CODEBUILD_SOURCE_REPO_URL"])
def test_a_malformed_repository_url_is_one_sentence(world: World, origin: str, where: str, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    repo = make_repo(tmp_path / "app")
    argv = _build(world, out=tmp_path / "out.intoto.jsonl")
    if where == "origin":
        subprocess.run(["git", "-C", str(repo), "remote", "set-url", "origin", origin], check=True,
                       capture_output=True)
        ran = run(argv, repo, monkeypatch)
    else:
        monkeypatch.setenv("CODEBUILD_BUILD_ARN", "arn:aws:codebuild:eu-west-1:111111111111:build/app:1")
        monkeypatch.setenv("CODEBUILD_RESOLVED_SOURCE_VERSION", subprocess.run(
            ["git", "-C", str(repo), "rev-parse", "HEAD"], check=True, capture_output=True, text=True).stdout.strip())
        ran = _run_with_env(argv, repo, monkeypatch, {where: origin})
    one_sentence(ran)
    assert ran.code in (0, 1, 2, 3), ran


def _run_with_env(argv: list[str | Path], cwd: Path, monkeypatch: pytest.MonkeyPatch,
                  env: dict[str, str]) -> Ran:
    """:func:`run`, with ``env`` set after the run's own clean-up of CI variables."""
    real_delenv = monkeypatch.delenv

    def keep(name: str, raising: bool = True) -> None:
        if name not in env:
            real_delenv(name, raising=raising)

    monkeypatch.setattr(monkeypatch, "delenv", keep)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return run(argv, cwd, monkeypatch)


@pytest.mark.parametrize("fault", ["sha256-folder-is-a-file", "provenance-is-a-fifo",
                                   "provenance-is-a-folder", "index-is-a-folder", "blake3-is-a-file"])
def test_a_store_verify_cannot_read_is_one_sentence(world: World, fault: str, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    store = _copy_store(world, tmp_path)
    folder = _sha256_folder(store)
    [provenance] = folder.glob("provenance-*.intoto.jsonl")
    if fault == "sha256-folder-is-a-file":
        shutil.rmtree(folder)
        folder.write_bytes(b"junk\n")
    elif fault == "provenance-is-a-fifo":
        provenance.unlink()
        os.mkfifo(provenance)
    elif fault == "provenance-is-a-folder":
        provenance.unlink()
        provenance.mkdir()
    elif fault == "index-is-a-folder":
        for item in (store / "blake3").iterdir():
            item.unlink()
            item.mkdir()
    else:
        shutil.rmtree(store / "blake3")
        (store / "blake3").write_bytes(b"junk\n")
    for argv in (["verify", world.artefact, "--store", store, "--policy", world.policy],
                 ["audit", store, "--policy", world.policy]):
        ran = run(argv, world.repo, monkeypatch)
        one_sentence(ran)
        if fault.startswith(("index", "blake3")):  # the blake3 index is a cache: verify falls back to sha256
            assert ran.code in (0, 1), ran
        else:
            assert ran.code in (1, 3), ran  # never a pass over a store part that could not be read


def test_a_publish_that_fails_on_its_second_artefact_leaves_nothing_a_verifier_accepts(
        world: World, tmp_path: Path) -> None:
    """Class 6: the store refuses the second artefact (it holds other bytes under that name); the build exits 3
    with no output and no provenance in the store, so nothing verifies; once the store is put right, a rerun
    completes the publish."""
    repo = make_repo(tmp_path / "app")
    first = run_attest(*_build(world, out=tmp_path / "probe.intoto.jsonl"), cwd=repo)
    assert first.code == 0, first
    data = repo / "dist" / "sub" / "data.bin"
    planted = tmp_path / "store" / "sha256" / hashlib.sha256(data.read_bytes()).hexdigest() / "artifact" / "dist" \
        / "sub" / "data.bin"
    planted.parent.mkdir(parents=True)
    planted.write_bytes(b"other bytes under this name\n")
    out = tmp_path / "provenance.intoto.jsonl"
    failed = run_attest(*_build(world, "--publish", tmp_path / "store", out=out), cwd=repo)
    assert failed.code == 3 and not out.exists(), failed
    assert not list((tmp_path / "store").rglob("provenance-*")), "a provenance was published before every artefact"
    for artefact in (repo / "dist" / "app.tar.gz", data):
        refused = run_attest("verify", artefact, "--store", tmp_path / "store", "--key", world.key("dev"), cwd=repo)
        assert refused.code == 1, refused
    planted.unlink()
    rerun = run_attest(*_build(world, "--publish", tmp_path / "store", out=out), cwd=repo)
    assert rerun.code == 0 and out.exists(), rerun
    for artefact in (repo / "dist" / "app.tar.gz", data):
        passed = run_attest("verify", artefact, "--store", tmp_path / "store", "--key", world.key("dev"), cwd=repo)
        assert passed.code == 0, passed
