"""Every file attest reads as input is read like evidence: a regular file, of bounded size, in one open.

Keys, trusted roots, policies, lockfiles, layouts and attestations all come through
:func:`read_file`. It opens the path once without waiting (``O_NONBLOCK``: a FIFO is refused, not
waited on), takes type and size from the open descriptor (``fstat``), refuses anything but a regular
file (a directory, a FIFO, ``/dev/zero``) and anything over the limit for its kind, and stops one
byte past the limit if the file grows while it is read. Each refusal is one sentence naming the file
and what it was for; the caller chooses the error class, and so the exit code (docs/limits.md).
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from pathlib import Path

from verify.errors import InputError, TrustConfigError
from verify.limits import MAX_TRUSTED_ROOT_BYTES

__all__ = ["read_file", "read_file_and_mode", "read_trusted_root"]

_FLAGS = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)


def read_file(path: str | Path, *, what: str, limit: int, error: Callable[[str], BaseException] = InputError,
              too_large: Callable[[str], BaseException] | None = None) -> bytes:
    """The bytes of the regular file at ``path`` (``what`` it is, for messages), at most ``limit`` of them.

    Raises ``error(sentence)`` for a file that is missing, unreadable, a directory or not a regular file,
    and ``too_large(sentence)`` (default: ``error``) for one over ``limit`` bytes, decided from its size
    before a byte is read.
    """
    return read_file_and_mode(path, what=what, limit=limit, error=error, too_large=too_large)[0]


def read_file_and_mode(path: str | Path, *, what: str, limit: int, error: Callable[[str], BaseException] = InputError,
                       too_large: Callable[[str], BaseException] | None = None) -> tuple[bytes, int]:
    """:func:`read_file`, and the mode of the very file read (for a permission check without a race)."""
    too_large = error if too_large is None else too_large
    try:
        fd = os.open(path, _FLAGS)
    except OSError as e:
        raise error(f"cannot read {what} {path}: {reason(e)}") from e
    except ValueError as e:  # a NUL in the name, which no file has
        shown = str(path).replace("\0", "\\0")
        raise error(f"cannot read {what} {shown}: its name holds a NUL byte, which no file name may") from e
    try:
        info = os.fstat(fd)
        if stat.S_ISDIR(info.st_mode):
            raise error(f"{what} {path} is not a regular file (it is a directory); give the file itself")
        if not stat.S_ISREG(info.st_mode):
            raise error(f"{what} {path} is not a regular file (a FIFO, device or socket is never read)")
        if info.st_size > limit:
            raise too_large(f"{what} {path} is {info.st_size} bytes; at most {limit} are read")
    except BaseException:
        os.close(fd)
        raise
    try:
        # as many bytes as fstat said, and one more to see growth (asking for the limit itself would make Python
        # set aside limit bytes for every small file), in as few reads as the file allows (one, mostly: an audit
        # reads every file of a history); a file that grew is read on, to the limit
        data = _read_up_to(fd, min(info.st_size, limit) + 1, enough=info.st_size)
        if len(data) > info.st_size:
            data += _read_up_to(fd, limit + 1 - len(data), enough=limit + 1 - len(data))
    except OSError as e:
        raise error(f"cannot read {what} {path}: {reason(e)}") from e
    finally:
        os.close(fd)
    if len(data) > limit:
        raise too_large(f"{what} {path} grew past {limit} bytes while it was read")
    return data, info.st_mode


def _read_up_to(fd: int, size: int, *, enough: int) -> bytes:
    """Up to ``size`` bytes from ``fd``, read until ``enough`` are (a file's size as fstat said: one read, where
    asking for more than is there would take a second to see its end) or it ends."""
    parts = [os.read(fd, size)]
    got = len(parts[0])
    while parts[-1] and got < enough:
        parts.append(os.read(fd, size - got))
        got += len(parts[-1])
    return b"".join(parts)


def read_trusted_root(path: Path) -> bytes:
    """A Sigstore trusted root's bytes (``--trusted-root``): unreadable or too large is :class:`TrustConfigError`."""
    return read_file(path, what="trusted root", limit=MAX_TRUSTED_ROOT_BYTES, error=TrustConfigError)


def reason(error: OSError) -> str:
    """The plain words for ``error`` ("No such file or directory")."""
    return error.strerror or type(error).__name__
