"""Artefacts come from inside the work tree (issue 23, class 9).

A link anywhere on an artefact's path, as the pattern names it or as a glob or a folder walk reaches it,
could take a name inside the work tree to a file outside it: the build would sign and publish the outside
file under an inside name. Generated: a link at every depth of ``dist/pkg/sub/app.bin``, named by the file,
its folders and globs; each is refused, and the same tree without the link is accepted.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from attest.collect import expand_artifacts
from attest.errors import BuildRefused
from tests.conftest import KeyPair, make_repo, run_attest

PARTS = ("dist", "pkg", "sub", "app.bin")
PATTERNS = ["dist/pkg/sub/app.bin", "dist/pkg/sub", "dist/pkg/sub/", "dist/pkg", "dist/", "dist/**/*.bin",
            "dist/*/sub/app.bin", "dist/pkg/*/*"]


def _tree(root: Path, outside: Path, link_at: int | None) -> None:
    """dist/pkg/sub/app.bin under ``root``; with ``link_at``, that component is a link to a copy outside."""
    for depth in range(len(PARTS)):
        here = root.joinpath(*PARTS[:depth + 1])
        there = outside.joinpath(*PARTS[:depth + 1])
        if depth == link_at:
            target = there
            if depth == len(PARTS) - 1:
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(b"outside\n")
            else:
                (target / Path(*PARTS[depth + 1:])).parent.mkdir(parents=True, exist_ok=True)
                (target / Path(*PARTS[depth + 1:])).write_bytes(b"outside\n")
            here.symlink_to(target, target_is_directory=depth < len(PARTS) - 1)
            return
        if depth == len(PARTS) - 1:
            here.write_bytes(b"inside\n")
        else:
            here.mkdir(exist_ok=True)


@pytest.mark.parametrize("pattern", PATTERNS)
@pytest.mark.parametrize("link_at", [None, 0, 1, 2, 3], ids=["no-link", "dist", "pkg", "sub", "file"])
def test_a_link_anywhere_on_the_way_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, pattern: str,
                                               link_at: int | None) -> None:
    root, outside = tmp_path / "repo", tmp_path / "outside"
    root.mkdir()
    _tree(root, outside, link_at)
    monkeypatch.chdir(root)
    if link_at is None:
        [found] = expand_artifacts([pattern], root=root)
        assert (found.name, found.path.read_bytes()) == ("dist/pkg/sub/app.bin", b"inside\n")
    else:
        with pytest.raises(BuildRefused, match="symbolic link"):
            expand_artifacts([pattern], root=root)


def test_a_build_command_that_links_a_folder_outside_gets_nothing_signed(tmp_path: Path, keys: dict[str, KeyPair]
                                                                         ) -> None:
    repo = make_repo(tmp_path / "app", ignore="dist/\n*.pem\n*.intoto.jsonl\nstore/\n",
                     origin="https://github.com/acme/app.git")
    outside = tmp_path / "outside" / "sub"
    outside.mkdir(parents=True)
    (outside / "secret.bin").write_bytes(b"not built here\n")
    script = (f"import os; os.makedirs('dist', exist_ok=True); "
              f"os.symlink({str(outside.parent)!r}, 'dist/pkg')")
    result = run_attest("build", "--signer", keys["dev"].private, "--artifact", "dist/pkg/sub", "--publish", "store",
                        "-o", "p.intoto.jsonl", "--", sys.executable, "-c", script, cwd=repo)
    assert result.code == 3 and "lies under dist/pkg, which is a symbolic link" in result.err, result
    assert not (repo / "p.intoto.jsonl").exists() and not (repo / "store").exists()
    assert os.path.islink(repo / "dist" / "pkg")
