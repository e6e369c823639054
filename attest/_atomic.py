"""Atomic file writes: a reader sees the old file or the whole new one, never a part."""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import stat
from collections.abc import Iterable
from pathlib import Path

from attest.errors import OutputError


def same_file(output: Path, given: Path) -> bool:
    """Whether writing ``output`` would replace the file ``given`` (the same file, through any name or link)."""
    try:
        return output.exists() and os.path.samefile(output, given)
    except OSError:
        return os.path.abspath(output) == os.path.abspath(given)


def write_atomic(path: Path, data: bytes | Iterable[bytes], *, mode: int = 0o644, exclusive: bool = False) -> None:
    """Write ``data`` (bytes, or chunks written as they come) to ``path`` through a temporary file in the same
    directory and a rename; to a character device or a pipe (``/dev/null``, ``/dev/stdout``, a FIFO), which
    has no whole to replace, as the chunks come (a rename would put a file in the device's place: run as root,
    ``--output /dev/null`` replaced the system's /dev/null with a report).

    The folder must exist: it is never created (a missing folder is the caller's usage error). A link
    at ``path`` is replaced, never written through. With ``exclusive``, an existing ``path`` is never
    replaced (``FileExistsError``). Any other failure is :class:`OutputError`, one sentence. The
    temporary file (``.NAME.RANDOM.tmp``) is removed whatever goes wrong, including an
    interrupt: its name is known before it exists, so no moment leaves it behind.
    """
    path = Path(path)
    if not exclusive and (descriptor := _descriptor(path)) is not None:
        _write_descriptor(path, descriptor, data)
        return
    if not exclusive and _is_stream(path):
        _write_stream(path, data)
        return
    tmp = path.parent / f".{path.name[:200]}.{secrets.token_hex(8)}.tmp"
    try:
        _write(path, tmp, data, mode=mode, exclusive=exclusive)
    except FileExistsError:
        if exclusive:
            raise
        raise OutputError(f"cannot write {path}: it exists and cannot be replaced") from None
    except IsADirectoryError as e:
        raise OutputError(f"cannot write {path}: it is a folder; name a file") from e
    except OSError as e:
        raise OutputError(f"cannot write {path}: {e.strerror or type(e).__name__}") from e


def _write(path: Path, tmp: Path, data: bytes | Iterable[bytes], *, mode: int, exclusive: bool) -> None:
    try:
        # made with ``mode`` less the umask, as any new file; a file replaced keeps its own permissions (a report
        # someone made private stays private), never more than ``mode`` allows (a key stays the owner's)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), mode)
        with os.fdopen(fd, "wb") as f:
            for chunk in [data] if isinstance(data, bytes) else data:
                f.write(chunk)
            f.flush()
            os.fsync(f.fileno())
        kept = _kept_mode(path)
        if kept is not None:
            os.chmod(tmp, kept & mode)
        if exclusive:
            os.link(tmp, path)  # fails if path exists: never overwrites
            os.unlink(tmp)
        else:
            os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _kept_mode(path: Path) -> int | None:
    """The permissions of the regular file at ``path`` (never through a link), or None."""
    try:
        info = os.lstat(path)
    except OSError:
        return None
    return stat.S_IMODE(info.st_mode) if stat.S_ISREG(info.st_mode) else None


#: Names of this process's open files: written through the descriptor, never replaced (``-o /dev/stdout`` with stdout
#: redirected to a file is a link to that file: a rename would put a file in /dev in the link's place).
_DESCRIPTORS = {"/dev/stdout": 1, "/dev/stderr": 2}


def _descriptor(path: Path) -> int | None:
    """The open descriptor ``path`` names (``/dev/stdout``, ``/dev/fd/N``, ``/proc/self/fd/N``), or None."""
    name = os.path.abspath(path)
    if name in _DESCRIPTORS:
        return _DESCRIPTORS[name]
    for prefix in ("/dev/fd/", "/proc/self/fd/"):
        if name.startswith(prefix) and name[len(prefix):].isdigit():
            return int(name[len(prefix):])
    return None


def _write_descriptor(path: Path, descriptor: int, data: bytes | Iterable[bytes]) -> None:
    """Write through a descriptor this process has open (a copy of it: the shell's redirection decides where)."""
    try:
        fd = os.dup(descriptor)
    except OSError as e:
        raise OutputError(f"cannot write {path}: this process has no such open file ({e.strerror or e})") from e
    try:
        with os.fdopen(fd, "wb") as f:
            for chunk in [data] if isinstance(data, bytes) else data:
                f.write(chunk)
    except OSError as e:
        raise OutputError(f"cannot write {path}: {e.strerror or type(e).__name__}") from e


def is_stream(path: Path) -> bool:
    """Whether ``path`` names what no file replaces: a device, a pipe, or one of this process's open files."""
    return _descriptor(Path(path)) is not None or _is_stream(Path(path))


def _is_stream(path: Path) -> bool:
    """A character device or a pipe at ``path``, or behind a link there (``/dev/stdout`` is one)."""
    try:
        info = os.stat(path)
    except OSError:
        return False
    return stat.S_ISCHR(info.st_mode) or stat.S_ISFIFO(info.st_mode)


def _write_stream(path: Path, data: bytes | Iterable[bytes]) -> None:
    """Write to a device or a pipe; a pipe no process reads is refused at once, never waited on."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as e:
        if e.errno == errno.ENXIO:
            raise OutputError(f"cannot write {path}: it is a pipe no process reads; start its reader first, or "
                              "name a file") from e
        raise OutputError(f"cannot write {path}: {e.strerror or type(e).__name__}") from e
    try:
        os.set_blocking(fd, True)  # (open only was not to wait: the reader takes what is written at its pace)
        with os.fdopen(fd, "wb") as f:
            for chunk in [data] if isinstance(data, bytes) else data:
                f.write(chunk)
    except OSError as e:
        raise OutputError(f"cannot write {path}: {e.strerror or type(e).__name__}") from e
