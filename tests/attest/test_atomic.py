"""attest._atomic.write_atomic: a whole new file, or, where a device or a pipe is named, the bytes written to it."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from attest._atomic import write_atomic
from attest.errors import OutputError


def _reader(fifo: Path) -> int:
    """The read end of ``fifo``, open before anything writes (a small write then fits in the pipe)."""
    return os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)


def test_a_file_is_replaced_whole(tmp_path: Path) -> None:
    out = tmp_path / "report.json"
    out.write_text("old")
    write_atomic(out, [b"new ", b"report"])
    assert out.read_bytes() == b"new report"
    assert [p.name for p in tmp_path.iterdir()] == ["report.json"]  # no temporary file left


@pytest.mark.parametrize("through_a_link", [False, True], ids=["fifo", "link-to-fifo"])
def test_a_pipe_is_written_to_never_replaced(tmp_path: Path, through_a_link: bool) -> None:
    """--output /dev/null or /dev/stdout (a link to the process's pipe): a rename would put a file in the device's
    place, as it did to a root CI machine's /dev/null."""
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    named = fifo
    if through_a_link:
        named = tmp_path / "stdout"
        named.symlink_to(fifo)
    reader = _reader(fifo)
    try:
        write_atomic(named, [b"a ", b"report"])
        assert os.read(reader, 100) == b"a report"
    finally:
        os.close(reader)
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
    assert os.path.islink(named) == through_a_link


def test_a_link_to_a_file_is_replaced_not_written_through(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere.txt"
    target.write_text("keep")
    link = tmp_path / "out.json"
    link.symlink_to(target)
    write_atomic(link, b"report")
    assert not link.is_symlink() and link.read_bytes() == b"report"
    assert target.read_text() == "keep"


def test_a_pipe_no_process_reads_is_refused_not_waited_on(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    with pytest.raises(OutputError, match="it is a pipe no process reads"):
        write_atomic(fifo, b"report")
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)


def test_an_exclusive_write_never_opens_a_device(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    with pytest.raises(FileExistsError):
        write_atomic(fifo, b"key", exclusive=True)
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)


def test_a_folder_is_named_in_one_sentence(tmp_path: Path) -> None:
    with pytest.raises(OutputError, match="it is a folder; name a file"):
        write_atomic(tmp_path, b"x")


def test_an_open_descriptors_name_is_written_through_never_replaced(tmp_path: Path) -> None:
    """``-o /dev/stdout`` with stdout redirected to a file: /dev/stdout is a link to that file, and a rename put a
    file in /dev in the link's place (as root), the report never reaching the file. Written through the descriptor."""
    import os

    target = tmp_path / "report.txt"
    with open(target, "wb") as held:
        write_atomic(Path(f"/dev/fd/{held.fileno()}"), [b"the ", b"report\n"])
        write_atomic(Path(f"/proc/self/fd/{held.fileno()}"), b"more\n")
    assert target.read_bytes() == b"the report\nmore\n"
    assert os.path.islink(f"/proc/self/fd/{os.open(os.devnull, os.O_RDONLY)}")  # (the names stay what they were)


def test_a_file_replaced_keeps_its_permissions_and_a_new_one_takes_the_umask(tmp_path: Path) -> None:
    import os

    private = tmp_path / "private-report.json"
    private.write_bytes(b"old")
    private.chmod(0o600)
    write_atomic(private, b"new")
    assert private.read_bytes() == b"new" and (private.stat().st_mode & 0o777) == 0o600
    before = os.umask(0o077)
    try:
        write_atomic(tmp_path / "new.json", b"x")
    finally:
        os.umask(before)
    assert ((tmp_path / "new.json").stat().st_mode & 0o777) == 0o600
    write_atomic(tmp_path / "key.pem", b"k", mode=0o600)
    (tmp_path / "key.pem").chmod(0o644)  # an existing key made readable: a new key is still the owner's alone
    write_atomic(tmp_path / "key.pem", b"k2", mode=0o600)
    assert ((tmp_path / "key.pem").stat().st_mode & 0o777) == 0o600
