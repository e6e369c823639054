"""The provenance describes what was built, not what was there before the build.

``attest build`` checks the work tree, HEAD and the bound lockfiles before it runs CMD, and again after:
a build command (or a dependency it installs) that rewrites a source file or ``requirements.txt``, makes
or amends a commit, switches branch, or tells git to stop looking at a file gets no provenance. Each
way of changing the source is a variant below; each is refused with exit 1, one sentence naming what
changed, and no output written. Writing build outputs (ignored or untracked files) is what a build does.
"""

from __future__ import annotations

import base64
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import AttestRunner, KeyPair

#: Python run as the build command, after writing dist/ as the repository's build.py does.
VARIANTS: dict[str, tuple[str, str]] = {
    # name: (what the command does, what the refusal names)
    "rewrites a tracked source file": (
        "pathlib.Path('build.py').write_text(pathlib.Path('build.py').read_text() + '# patched\\n')",
        "tracked files changed: build.py"),
    "rewrites the lockfile": (
        "pathlib.Path('requirements.txt').write_text('evil==6.6.6\\n')",
        "lockfile requirements.txt was rewritten"),
    "rewrites the lockfile and restores its mtime": (
        "p = pathlib.Path('requirements.txt'); s = p.stat(); p.write_text('evil==6.6.6\\n'); "
        "os.utime(p, ns=(s.st_atime_ns, s.st_mtime_ns))",
        "lockfile requirements.txt was rewritten"),
    "deletes the lockfile": (
        "pathlib.Path('requirements.txt').unlink()",
        "lockfile requirements.txt is gone"),
    "stages a change": (
        "pathlib.Path('build.py').write_text('print(1)\\n'); git('add', 'build.py')",
        "tracked files changed: build.py"),
    "makes a commit": (
        "pathlib.Path('new.txt').write_text('x'); git('add', 'new.txt'); git('commit', '-q', '-m', 'sneaky')",
        "HEAD moved from"),
    "amends the commit": (
        "git('commit', '-q', '--amend', '-m', 'amended')",
        "HEAD moved from"),
    "switches branch": (
        "git('checkout', '-q', '-b', 'feature')",
        "HEAD now names refs/heads/feature, not refs/heads/main"),
    "detaches HEAD": (
        "git('checkout', '-q', '--detach')",
        "HEAD now names no branch (detached), not refs/heads/main"),
    "hides a change with assume-unchanged": (
        "git('update-index', '--assume-unchanged', 'build.py'); pathlib.Path('build.py').write_text('print(2)\\n')",
        "git was told to stop looking at build.py"),
    "hides a change with skip-worktree": (
        "git('update-index', '--skip-worktree', 'build.py'); pathlib.Path('build.py').write_text('print(3)\\n')",
        "git was told to stop looking at build.py"),
    "deletes a tracked file": (
        "pathlib.Path('.gitignore').unlink()",
        "tracked files changed: .gitignore"),
    # git compares through its settings: a command that changes them could hide its edit from attest's own git
    "hides a same-size edit behind a clean filter of its own": (
        "p = pathlib.Path('build.py'); t = p.read_text(); pathlib.Path('.git/orig').write_text(t); "
        "p.write_text(t[:-1] + '#'); git('config', 'filter.hide.clean', 'cat .git/orig'); "
        "pathlib.Path('.git/info').mkdir(exist_ok=True); "
        "pathlib.Path('.git/info/attributes').write_text('build.py filter=hide\\n')",
        "git's settings changed, which git compares the source through"),
    "points git at a clean copy of the work tree": (
        "import shutil, tempfile; d = tempfile.mkdtemp(); "
        "shutil.copytree('.', d, dirs_exist_ok=True, ignore=shutil.ignore_patterns('.git')); "
        "pathlib.Path('build.py').write_text('print(4)\\n'); git('config', 'core.worktree', d)",
        "git's settings changed, which git compares the source through"),
    "reads HEAD's files from another commit with git replace": (
        "pathlib.Path('build.py').write_text('print(5)\\n'); git('add', 'build.py'); "
        "out = lambda *a: subprocess.run(['git', *a], check=True, capture_output=True, text=True).stdout.strip(); "
        "new = out('commit-tree', out('write-tree'), '-p', 'HEAD', '-m', 'x'); git('replace', 'HEAD', new)",
        "tracked files changed: build.py"),
}

PRELUDE = ("import os, pathlib, subprocess, runpy\n"
           "def git(*args): subprocess.run(['git', *args], check=True, capture_output=True)\n"
           "runpy.run_path('build.py')\n")


def _command(body: str) -> list[str]:
    return [sys.executable, "-c", PRELUDE + body.replace("; ", "\n")]


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_a_build_command_that_changes_its_source_gets_no_provenance(repo: Path, keys: dict[str, KeyPair],
                                                                     attest: AttestRunner, variant: str) -> None:
    body, named = VARIANTS[variant]
    result = attest("build", "--signer", keys["dev"].private, "--artifact", "dist/", "--publish", "store",
                    "--", *_command(body), cwd=repo)
    assert result.code == 1, result
    last = result.err.strip().splitlines()[-1]  # before it: the command line attest logs as it runs it
    assert last.startswith("attest: the build command changed the source it was building ("), result
    assert named in last and "Traceback" not in result.err, result
    assert not (repo / "provenance.intoto.jsonl").exists()
    assert not (repo / "store").exists()


def test_a_build_command_that_writes_only_build_outputs_is_attested(repo: Path, keys: dict[str, KeyPair],
                                                                    attest: AttestRunner) -> None:
    """The control: untracked and ignored files (dist/, caches) are what a build makes; a lockfile rewritten
    with the same bytes is the same lockfile."""
    body = ("pathlib.Path('cache.tmp').write_text('untracked'); "
            "p = pathlib.Path('requirements.txt'); p.write_bytes(p.read_bytes())")
    result = attest("build", "--signer", keys["dev"].private, "--artifact", "dist/", "--", *_command(body), cwd=repo)
    assert result.code == 0, result
    assert (repo / "provenance.intoto.jsonl").is_file()


def test_a_dirty_build_allowed_by_flag_still_may_not_move_head(repo: Path, keys: dict[str, KeyPair],
                                                              attest: AttestRunner) -> None:
    (repo / "build.py").write_text((repo / "build.py").read_text() + "# local edit\n")
    body = "git('commit', '-q', '-am', 'sneaky')"
    result = attest("build", "--signer", keys["dev"].private, "--artifact", "dist/", "--allow-dirty",
                    "--", *_command(body), cwd=repo)
    assert result.code == 1 and "HEAD moved from" in result.err, result


def _git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True)


@pytest.mark.parametrize("flag", ["--assume-unchanged", "--skip-worktree"])
def test_a_change_hidden_from_git_before_the_build_is_still_a_change(
        repo: Path, keys: dict[str, KeyPair], attest: AttestRunner, flag: str) -> None:
    # git status does not show a file git was told not to look at: a checkout prepared that way looked
    # clean, and a build command could rewrite that file after the first check, unseen by the second
    _git(repo, "update-index", flag, "build.py")
    index = (repo / ".git" / "index").read_bytes()
    (repo / "build.py").write_text((repo / "build.py").read_text() + "# hidden edit\n")
    dirty = attest("build", "--signer", keys["dev"].private, "--artifact", "build.py", cwd=repo)
    assert dirty.code == 3 and "uncommitted changes" in dirty.err, dirty
    assert (repo / ".git" / "index").read_bytes() == index  # asked on a copy: the index is not touched

    committed = subprocess.run(["git", "-C", str(repo), "show", "HEAD:build.py"], check=True,
                               capture_output=True).stdout
    (repo / "build.py").write_bytes(committed)
    body = "pathlib.Path('build.py').write_text(pathlib.Path('build.py').read_text() + '# patched\\n')"
    during = attest("build", "--signer", keys["dev"].private, "--artifact", "dist/", "--", *_command(body), cwd=repo)
    assert during.code == 1 and "tracked files changed: build.py" in during.err, during
    assert not (repo / "provenance.intoto.jsonl").exists()

    (repo / "build.py").write_bytes(committed)
    clean = attest("build", "--signer", keys["dev"].private, "--artifact", "dist/", "--", *_command(""), cwd=repo)
    assert clean.code == 0, clean  # the control: hidden but unchanged is clean


@pytest.mark.parametrize("flag", ["--assume-unchanged", "--skip-worktree"])
def test_a_deletion_hidden_from_git_is_a_change(repo: Path, keys: dict[str, KeyPair], attest: AttestRunner,
                                                flag: str) -> None:
    # git status shows nothing: the file is tracked, gone, and git was told not to look. Only a sparse checkout
    # (below) leaves a file out legitimately; build.py reads what is there and builds something else
    _git(repo, "update-index", flag, ".gitignore")
    (repo / ".gitignore").unlink()
    assert subprocess.run(["git", "-C", str(repo), "status", "--porcelain"], capture_output=True, text=True,
                          check=True).stdout == ""
    result = attest("build", "--signer", keys["dev"].private, "--artifact", "build.py", cwd=repo)
    assert result.code == 3 and "uncommitted changes" in result.err, result
    assert not (repo / "provenance.intoto.jsonl").exists()


def test_a_file_marked_assume_unchanged_is_not_excused_by_a_sparse_checkout(
        repo: Path, keys: dict[str, KeyPair], attest: AttestRunner) -> None:
    _git(repo, "config", "core.sparseCheckout", "true")
    _git(repo, "update-index", "--assume-unchanged", ".gitignore")
    (repo / ".gitignore").unlink()
    result = attest("build", "--signer", keys["dev"].private, "--artifact", "build.py", cwd=repo)
    assert result.code == 3 and "uncommitted changes" in result.err, result


def test_a_sparse_checkout_without_a_file_is_clean(repo: Path, keys: dict[str, KeyPair],
                                                   attest: AttestRunner) -> None:
    # skip-worktree on a file that is not in the work tree, in a sparse checkout, is what a sparse checkout is:
    # nothing the build can read differs from the commit
    _git(repo, "config", "core.sparseCheckout", "true")
    _git(repo, "update-index", "--skip-worktree", ".gitignore")
    (repo / ".gitignore").unlink()
    result = attest("build", "--signer", keys["dev"].private, "--artifact", "build.py", cwd=repo)
    assert result.code == 0, result
    assert _dirty(repo / "provenance.intoto.jsonl") is False


def _dirty(path: Path) -> object:
    import json

    statement = json.loads(base64.b64decode(json.loads(path.read_text())["payload"]))
    return statement["predicate"]["buildDefinition"]["internalParameters"]["dirty"]


def test_a_replace_ref_set_before_the_build_does_not_stand_in_for_the_commit(repo: Path, keys: dict[str, KeyPair],
                                                                             attest: AttestRunner) -> None:
    """``git replace`` (by an earlier step) had attest's git read HEAD's files from another commit: the provenance
    named the commit and bound a lockfile that is not in it. attest's git reads replace refs no more."""
    def git_out(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True, text=True).stdout.strip()

    (repo / "requirements.txt").write_text("evil==6.6.6\n")
    git_out("add", "requirements.txt")
    git_out("replace", "HEAD", git_out("commit-tree", git_out("write-tree"), "-p", "HEAD", "-m", "not this"))
    result = attest("build", "--signer", keys["dev"].private, "--artifact", "dist/", "--", sys.executable, "build.py",
                    cwd=repo)
    assert result.code == 3 and "has uncommitted changes to tracked files" in result.err, result
    assert not (repo / "provenance.intoto.jsonl").exists()
