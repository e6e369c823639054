"""attest.pack: the same file contents give the same archive bytes, whatever else differs."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import stat
import subprocess
import tarfile
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from attest import pack as pack_module
from attest.errors import BuildRefused, OutputError
from attest.pack import DEFAULT_EPOCH, archive_format, pack, source_date_epoch
from tests.conftest import git, need_tool

FORMATS = ["zip", "tar.gz", "tar"]
EPOCH = {"SOURCE_DATE_EPOCH": "1700000000"}

#: name -> (content, executable); names chosen so that bytewise and other orders disagree
TREE = {
    "handler.py": (b"def handler(event, context):\n    return 42\n", False),
    "bin/bootstrap": (b"#!/bin/sh\nexec python3 handler.py\n", True),
    "B.txt": (b"upper case sorts first\n", False),
    "a-b.txt": (b"'-' sorts before '/'\n", False),
    "a/x.txt": (b"inside a/\n", False),
    "caf\u00e9.txt": (b"non-ASCII name\n", False),
    "lib/deep/er/module.py": (b"X = 1\n" * 1000, False),
    "empty.txt": (b"", False),
}


@contextmanager
def umask(mask: int) -> Iterator[None]:
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)


def make_tree(root: Path, *, mask: int = 0o022, reverse: bool = False, mtime: int = 1_000_000_000,
              content: dict[str, tuple[bytes, bool]] | None = None) -> Path:
    """Write TREE (or ``content``) below ``root`` in this order, under this umask, with these mtimes."""
    items = sorted((content or TREE).items(), reverse=reverse)
    with umask(mask):
        root.mkdir(parents=True)
        (root / "empty-dir").mkdir()
        for name, (data, executable) in items:
            path = root / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
            if executable:
                path.chmod(0o777 & ~mask)
    for path in [root, *root.rglob("*")]:
        os.utime(path, (mtime, mtime))
    return root


def archive(tmp_path: Path, tree: Path, kind: str, name: str = "out",
            env: dict[str, str] | None = None) -> bytes:
    output = tmp_path / "archives" / f"{name}.{kind}"
    output.parent.mkdir(exist_ok=True)
    pack(tree, output, env=EPOCH if env is None else env)
    return output.read_bytes()


@pytest.mark.parametrize("kind", FORMATS)
def test_same_contents_give_identical_bytes(tmp_path: Path, kind: str) -> None:
    first = make_tree(tmp_path / "one", mask=0o022, mtime=1_000_000_000)
    second = make_tree(tmp_path / "two", mask=0o077, reverse=True, mtime=1_600_000_123)
    assert (second / "handler.py").stat().st_mode & 0o777 == 0o600  # the umask really differed
    assert archive(tmp_path, first, kind, "one") == archive(tmp_path, second, kind, "two")


@pytest.mark.parametrize("kind", FORMATS)
def test_changed_content_or_mode_gives_other_bytes(tmp_path: Path, kind: str) -> None:
    base = archive(tmp_path, make_tree(tmp_path / "base"), kind, "base")
    changed = dict(TREE, **{"handler.py": (b"def handler(event, context):\n    return 43\n", False)})
    assert archive(tmp_path, make_tree(tmp_path / "changed", content=changed), kind, "changed") != base
    executable = dict(TREE, **{"handler.py": (TREE["handler.py"][0], True)})
    assert archive(tmp_path, make_tree(tmp_path / "exec", content=executable), kind, "exec") != base
    later = {"SOURCE_DATE_EPOCH": "1"}
    assert archive(tmp_path, make_tree(tmp_path / "base2"), kind, "later", env=later) != base


EXPECTED_ORDER = ["B.txt", "a-b.txt", "a/", "a/x.txt", "bin/", "bin/bootstrap", "caf\u00e9.txt", "empty-dir/",
                  "empty.txt", "handler.py", "lib/", "lib/deep/", "lib/deep/er/", "lib/deep/er/module.py"]


def test_zip_entries_are_normalised(tmp_path: Path) -> None:
    data = archive(tmp_path, make_tree(tmp_path / "tree", mask=0o077), "zip")
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        infos = z.infolist()
        assert [i.filename for i in infos] == EXPECTED_ORDER
        for info in infos:
            assert info.date_time == (2023, 11, 14, 22, 13, 20)  # SOURCE_DATE_EPOCH, in UTC
            assert info.extra == b"" and info.comment == b""
            assert info.create_system == 3
            mode = info.external_attr >> 16
            if info.is_dir():
                assert mode == stat.S_IFDIR | 0o755
            else:
                expected = 0o755 if info.filename == "bin/bootstrap" else 0o644
                assert mode == stat.S_IFREG | expected, info.filename
                assert z.read(info) == TREE[info.filename][0]
        assert z.testzip() is None
    # no extra field anywhere: every local header's "extra field length" is zero
    offset = 0
    while (offset := data.find(b"PK\x03\x04", offset)) >= 0:
        assert data[offset + 28:offset + 30] == b"\x00\x00"
        offset += 4


@pytest.mark.parametrize("kind", ["tar.gz", "tar"])
def test_tar_entries_are_normalised(tmp_path: Path, kind: str) -> None:
    data = archive(tmp_path, make_tree(tmp_path / "tree", mask=0o077), kind)
    if kind == "tar.gz":
        assert data[:4] == b"\x1f\x8b\x08\x00"  # gzip, deflate, no FNAME/FCOMMENT/FEXTRA flags
        assert data[4:8] == b"\x00\x00\x00\x00"  # mtime 0
        data = gzip.decompress(data)
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as t:
        members = t.getmembers()
        assert [m.name + ("/" if m.isdir() else "") for m in members] == EXPECTED_ORDER
        for member in members:
            assert (member.uid, member.gid, member.uname, member.gname) == (0, 0, "", "")
            assert member.mtime == 1700000000
            assert member.mode == (0o755 if member.isdir() or member.name == "bin/bootstrap" else 0o644)
            assert set(member.pax_headers) <= {"path"}  # only the non-ASCII name needs one
            if member.isfile():
                extracted = t.extractfile(member)
                assert extracted is not None and extracted.read() == TREE[member.name][0]
        assert members[EXPECTED_ORDER.index("caf\u00e9.txt")].pax_headers == {"path": "caf\u00e9.txt"}
    assert len(data) % tarfile.RECORDSIZE == 0


def test_epoch_before_1980_is_clamped_in_zip_only(tmp_path: Path) -> None:
    tree = make_tree(tmp_path / "tree")
    zero = {"SOURCE_DATE_EPOCH": "0"}
    with zipfile.ZipFile(io.BytesIO(archive(tmp_path, tree, "zip", env=zero))) as z:
        assert {i.date_time for i in z.infolist()} == {(1980, 1, 1, 0, 0, 0)}
    with tarfile.open(fileobj=io.BytesIO(archive(tmp_path, tree, "tar", env=zero))) as t:
        assert {m.mtime for m in t.getmembers()} == {0}


def test_source_date_epoch_comes_from_env_then_git_then_default(tmp_path: Path) -> None:
    plain = tmp_path / "plain"
    plain.mkdir()
    assert source_date_epoch(plain, {"SOURCE_DATE_EPOCH": "123"}) == (123, "environment")
    assert source_date_epoch(plain, {}) == (DEFAULT_EPOCH, "default")
    assert source_date_epoch(plain, {"SOURCE_DATE_EPOCH": ""}) == (DEFAULT_EPOCH, "default")
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q")
    (repo / "f").write_text("x")
    git(repo, "add", "f")
    subprocess.run(["git", "-C", str(repo), "-c", "user.name=a", "-c", "user.email=a@example.com", "commit",
                    "-qm", "x"], env={**os.environ, "GIT_COMMITTER_DATE": "@1234567890 +0000"}, check=True)
    (repo / "build").mkdir()
    assert source_date_epoch(repo / "build", {}) == (1234567890, "git")
    for bad in ("1.5", "-1", "yesterday", " 12"):
        with pytest.raises(BuildRefused, match=r"SOURCE_DATE_EPOCH is .*, but it must be a whole number of seconds"):
            source_date_epoch(plain, {"SOURCE_DATE_EPOCH": bad})


def test_symlinks_and_special_files_are_refused(tmp_path: Path) -> None:
    tree = make_tree(tmp_path / "tree")
    (tree / "link").symlink_to("handler.py")
    with pytest.raises(BuildRefused, match=r"link is a symbolic link; attest pack stores regular files"):
        pack(tree, tmp_path / "out.zip", env=EPOCH)
    (tree / "link").unlink()
    (tree / "lib" / "dirlink").symlink_to(tmp_path, target_is_directory=True)
    with pytest.raises(BuildRefused, match="dirlink is a symbolic link"):
        pack(tree, tmp_path / "out.tar", env=EPOCH)
    (tree / "lib" / "dirlink").unlink()
    os.mkfifo(tree / "pipe")
    with pytest.raises(BuildRefused, match="pipe is not a regular file or a directory"):
        pack(tree, tmp_path / "out.tar.gz", env=EPOCH)
    assert not (tmp_path / "out.zip").exists() and not list(tmp_path.glob(".out*"))


def test_bad_arguments(tmp_path: Path) -> None:
    tree = make_tree(tmp_path / "tree")
    assert archive_format(Path("a.TGZ")) == "tar.gz" and archive_format(Path(".zip")) is None
    with pytest.raises(BuildRefused, match=r"out.rar does not end in .zip, .tar.gz, .tgz, .tar"):
        pack(tree, tmp_path / "out.rar", env=EPOCH)
    with pytest.raises(BuildRefused, match="missing does not exist"):
        pack(tmp_path / "missing", tmp_path / "out.zip", env=EPOCH)
    with pytest.raises(BuildRefused, match="is not a directory"):
        pack(tree / "handler.py", tmp_path / "out.zip", env=EPOCH)
    with pytest.raises(BuildRefused, match="would be inside the directory it packs"):
        pack(tree, tree / "lib" / "out.zip", env=EPOCH)


def test_written_atomically(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    tree = make_tree(tmp_path / "tree")
    output = tmp_path / "out.zip"
    result = pack(tree, output, env=EPOCH)
    before = output.read_bytes()
    assert result.digests["sha256"] == hashlib.sha256(before).hexdigest()
    assert output.stat().st_mode & 0o777 == 0o644
    assert (result.files, result.directories, result.source_date_epoch) == (8, 6, 1700000000)

    def broken(*_: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(pack_module, "_write_zip", broken)
    with pytest.raises(OutputError, match=r"cannot pack .* No space left on device"):  # one sentence, exit 3
        pack(tree, output, env=EPOCH)
    assert output.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.zip", "tree"]


def test_unzip_accepts_the_zip(tmp_path: Path) -> None:
    need_tool("unzip", install="apt-get install -y unzip")
    pack(make_tree(tmp_path / "tree"), tmp_path / "out.zip", env=EPOCH)
    done = subprocess.run(["unzip", "-t", str(tmp_path / "out.zip")], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "No errors detected" in done.stdout
    subprocess.run(["unzip", "-q", str(tmp_path / "out.zip"), "-d", str(tmp_path / "x")], check=True)
    assert (tmp_path / "x" / "bin" / "bootstrap").stat().st_mode & 0o777 == 0o755
    assert (tmp_path / "x" / "handler.py").read_bytes() == TREE["handler.py"][0]


@pytest.mark.parametrize(("kind", "flags"), [("tar.gz", "-tzvf"), ("tar", "-tvf")])
def test_tar_lists_the_tarball(tmp_path: Path, kind: str, flags: str) -> None:
    need_tool("tar", install="apt-get install -y tar")
    pack(make_tree(tmp_path / "tree"), tmp_path / f"out.{kind}", env=EPOCH)
    done = subprocess.run(["tar", flags, str(tmp_path / f"out.{kind}")], capture_output=True, text=True,
                          env={**os.environ, "TZ": "UTC", "LC_ALL": "C.UTF-8"})
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert [line.split()[-1] for line in lines] == [n.rstrip("/") + ("/" if n.endswith("/") else "")
                                                   for n in EXPECTED_ORDER]
    assert all(" 0/0 " in line and "2023-11-14 22:13" in line for line in lines)
