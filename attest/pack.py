"""Reproducible archives: the same file contents give the same bytes, whatever the machine.

``pack(directory, output)`` writes a ``.zip``, ``.tar.gz`` (``.tgz``) or
``.tar`` of every file below ``directory`` such that nothing but the names,
the contents and the executable bits of the files reaches the archive:

* entries sorted by their '/'-separated path, compared as UTF-8 bytes;
* every timestamp set to ``SOURCE_DATE_EPOCH`` (from the environment, else the
  commit time of HEAD in the directory's git repository, else 1980-01-01);
* modes normalised: 0644 for files, 0755 for executables and directories;
  no owner, group, uid or gid;
* zip: no extra fields (no extended timestamps, no unix uid/gid), a fixed
  ``create_system`` (3, unix) and ``external_attr``, DEFLATE at zlib's default
  level, DOS times in UTC;
* tar: POSIX pax format (``tarfile.PAX_FORMAT``); a pax header is written only
  for what ustar cannot hold (a long or non-ASCII name, a file over 8 GiB) and
  depends only on that entry, never on the machine or the process;
* gzip: no file name, mtime 0, fixed level 9.

Symbolic links, sockets, FIFOs and devices are refused rather than stored: a
link could point out of the tree, and Lambda and CloudFormation bundles hold
regular files only. The archive is written to a temporary file beside
``output`` and renamed into place.
"""

from __future__ import annotations

import contextlib
import gzip
import logging
import os
import re
import stat
import subprocess
import tarfile
import tempfile
import time
import zipfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Literal

from attest._atomic import is_stream
from attest.errors import AttestError, BuildRefused, OutputError
from verify.digests import hash_file

__all__ = ["DEFAULT_EPOCH", "FORMATS", "Entry", "PackResult", "archive_format", "pack", "refuse_failed_packing",
           "source_date_epoch"]

log = logging.getLogger(__name__)

#: 1980-01-01T00:00:00Z: the earliest time a zip entry can carry, used when nothing else is known.
DEFAULT_EPOCH = 315532800
#: The latest time a zip entry can carry (2107-12-31T23:59:58Z).
_ZIP_MAX_EPOCH = 4354819198

ArchiveFormat = Literal["zip", "tar.gz", "tar"]
#: Output file suffix -> archive format.
FORMATS: Mapping[str, ArchiveFormat] = {".zip": "zip", ".tar.gz": "tar.gz", ".tgz": "tar.gz", ".tar": "tar"}

_CHUNK = 1024 * 1024


def archive_format(output: Path) -> ArchiveFormat | None:
    """The archive format named by ``output``'s suffix, or None if it names none."""
    name = output.name.lower()
    for suffix, kind in FORMATS.items():
        if name.endswith(suffix) and len(name) > len(suffix):
            return kind
    return None


def source_date_epoch(directory: Path, env: Mapping[str, str]) -> tuple[int, str]:
    """The timestamp to give every entry and where it came from (``environment``, ``git`` or ``default``).

    https://reproducible-builds.org/specs/source-date-epoch/: a malformed
    value is an error, not something to fall back from.
    """
    if env.get("SOURCE_DATE_EPOCH"):  # read as attest build reads it: the same range, the same refusal
        from attest.collect import source_date_epoch as checked

        return checked(env, commit_time=DEFAULT_EPOCH), "environment"
    try:
        done = subprocess.run(["git", "-C", str(directory), "log", "-1", "--format=%ct", "HEAD"],
                              capture_output=True, text=True, check=False)
    except FileNotFoundError:
        return DEFAULT_EPOCH, "default"
    if done.returncode == 0 and re.fullmatch(r"[0-9]+", done.stdout.strip()):
        return int(done.stdout.strip()), "git"
    return DEFAULT_EPOCH, "default"


@dataclass(frozen=True)
class Entry:
    """One archive member: a directory (name without the trailing '/') or a regular file."""

    name: str
    path: Path
    is_dir: bool
    executable: bool
    size: int

    @property
    def sort_key(self) -> bytes:
        return (self.name + "/" if self.is_dir else self.name).encode("utf-8")


@dataclass(frozen=True)
class PackResult:
    """What :func:`pack` wrote."""

    output: Path
    format: ArchiveFormat
    files: int
    directories: int
    source_date_epoch: int
    epoch_source: str
    digests: Mapping[str, str]


def _entries(directory: Path) -> list[Entry]:
    """Every directory and regular file below ``directory``, sorted; anything else is refused."""
    found: list[Entry] = []

    def walk(current: Path, prefix: str) -> None:
        try:
            children = list(os.scandir(current))
        except OSError as e:
            raise BuildRefused(f"cannot read directory {current}: {e.strerror}") from e
        for child in children:
            name = prefix + child.name
            try:
                name.encode("utf-8")
            except UnicodeEncodeError as e:
                raise BuildRefused(f"{Path(child.path)!r} has a name that is not UTF-8; rename it") from e
            info = child.stat(follow_symlinks=False)
            if stat.S_ISLNK(info.st_mode):
                raise BuildRefused(f"{child.path} is a symbolic link; attest pack stores regular files and "
                                   "directories only (copy the target in its place)")
            if stat.S_ISDIR(info.st_mode):
                found.append(Entry(name=name, path=Path(child.path), is_dir=True, executable=True, size=0))
                walk(Path(child.path), name + "/")
            elif stat.S_ISREG(info.st_mode):
                found.append(Entry(name=name, path=Path(child.path), is_dir=False,
                                   executable=bool(info.st_mode & 0o111), size=info.st_size))
            else:
                raise BuildRefused(f"{child.path} is not a regular file or a directory; attest pack refuses "
                                   "sockets, FIFOs and devices")

    walk(directory, "")
    return sorted(found, key=lambda e: e.sort_key)


@contextlib.contextmanager
def _open_member(entry: Entry) -> Iterator[BinaryIO]:
    """Open a file to archive; fail if it changes while it is read."""
    try:
        f = entry.path.open("rb")
    except OSError as e:
        raise BuildRefused(f"cannot read {entry.path}: {e.strerror}") from e
    with f:
        before = os.fstat(f.fileno())
        yield f
        after = os.fstat(f.fileno())
    changed = (before.st_size, before.st_mtime_ns) != (after.st_size, after.st_mtime_ns)
    if changed or after.st_size != entry.size:
        raise BuildRefused(f"{entry.path} changed while it was being packed; pack it again once it is "
                           "complete")


def _mode(entry: Entry) -> int:
    return 0o755 if entry.is_dir or entry.executable else 0o644


def _write_zip(out: BinaryIO, entries: list[Entry], epoch: int) -> None:
    clamped = min(max(epoch, DEFAULT_EPOCH), _ZIP_MAX_EPOCH)
    date_time = time.gmtime(clamped)[:6]
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED, allowZip64=True) as archive:
        for entry in entries:
            info = zipfile.ZipInfo(entry.name + "/" if entry.is_dir else entry.name, date_time=date_time)
            info.create_system = 3  # unix, so that external_attr carries the mode
            info.extra = b""
            info.comment = b""
            if entry.is_dir:
                info.compress_type = zipfile.ZIP_STORED
                info.external_attr = ((stat.S_IFDIR | 0o755) << 16) | 0x10  # 0x10: MS-DOS directory flag
                archive.writestr(info, b"")
                continue
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = (stat.S_IFREG | _mode(entry)) << 16
            info.file_size = entry.size
            with _open_member(entry) as src, archive.open(info, "w") as dst:
                while chunk := src.read(_CHUNK):
                    dst.write(chunk)


def _write_tar(out: BinaryIO, entries: list[Entry], epoch: int) -> None:
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT, encoding="utf-8") as archive:
        for entry in entries:
            info = tarfile.TarInfo(entry.name)
            info.mtime = epoch
            info.mode = _mode(entry)
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            if entry.is_dir:
                info.type = tarfile.DIRTYPE
                archive.addfile(info)
                continue
            info.type = tarfile.REGTYPE
            info.size = entry.size
            with _open_member(entry) as src:
                archive.addfile(info, src)


def refuse_failed_packing(error: BaseException, directory: Path, output: object, *, scratch: Path) -> None:
    """An OSError that is not attest's own, met while packing (a full disk, an unreadable file), as one sentence:
    :class:`OutputError`, naming the file unless it is the ``scratch`` being written; anything else is the caller's
    to raise as it is."""
    if isinstance(error, OSError) and not isinstance(error, AttestError):
        named = error.filename and not Path(error.filename).is_relative_to(scratch)
        where = f" ({error.filename})" if named else ""
        raise OutputError(f"cannot pack {directory} into {output}: {error.strerror or type(error).__name__}"
                          f"{where}") from error


def pack(directory: Path, output: Path, *, env: Mapping[str, str] | None = None,
         kind: ArchiveFormat | None = None) -> PackResult:
    """Write a reproducible archive of ``directory`` to ``output`` (format ``kind``, else from its suffix)."""
    env = os.environ if env is None else env
    kind = kind or archive_format(output)
    if kind is None:
        raise BuildRefused(f"{output} does not end in {', '.join(FORMATS)}; name the archive after its "
                           "format")
    if not directory.is_dir():
        what = "is not a directory" if directory.exists() else "does not exist"
        raise BuildRefused(f"{directory} {what}; give the directory to pack")
    out_abs = output.resolve()
    if out_abs.is_relative_to(directory.resolve()):
        raise BuildRefused(f"the archive {output} would be inside the directory it packs; write it elsewhere")
    epoch, epoch_source = source_date_epoch(directory, env)
    entries = _entries(directory)
    log.info("packing %d entries of %s with SOURCE_DATE_EPOCH=%d (%s)", len(entries), directory, epoch,
             epoch_source)

    # written beside the name given, never through it: a link there is replaced, its target left alone
    out_path = Path(os.path.abspath(output))
    if is_stream(out_path):  # (a rename would put the archive in a device's or a pipe's place)
        raise OutputError(f"{output} is a device, a pipe or an open file's name; pack writes an archive file: name "
                          "one")
    try:
        fd, tmp_name = tempfile.mkstemp(prefix=f".{out_path.name}.", suffix=".tmp", dir=out_path.parent)
    except OSError as e:
        raise OutputError(f"cannot write {output}: {e.strerror or type(e).__name__}") from e
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "w+b") as raw:
            if kind == "zip":
                _write_zip(raw, entries, epoch)
            elif kind == "tar":
                _write_tar(raw, entries, epoch)
            else:
                with gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=9) as gz:
                    _write_tar(gz, entries, epoch)  # type: ignore[arg-type]  # GzipFile is a binary file
            raw.flush()
            os.fsync(raw.fileno())
        tmp.chmod(0o644)
        digests = hash_file(tmp)
        tmp.replace(out_path)
    except BaseException as e:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        refuse_failed_packing(e, directory, output, scratch=tmp)
        raise
    return PackResult(output=output, format=kind, files=sum(not e.is_dir for e in entries),
                      directories=sum(e.is_dir for e in entries), source_date_epoch=epoch,
                      epoch_source=epoch_source, digests=digests)
