"""A store in a local directory (or a mounted share), with the content-addressed layout.

Writing never leaves the store: every directory below the root is opened relative to its
parent with ``O_NOFOLLOW`` (a symbolic link anywhere on the way, even one swapped in while
attest runs, is refused, and nothing is created outside first), and objects are created with
``O_EXCL`` and published by ``link()``, which never follows or replaces what is there. An
object appears complete or not at all: its bytes go to a temporary file (``.NAME.RANDOM.tmp``
in the same directory), are hashed as they are copied, synced, and only then linked to the
object's name. Two writers of one object race safely: the second link fails, and the
bytes already there are compared with ours. Temporary files are removed on every error,
including ``KeyboardInterrupt`` and the ``SIGTERM`` that ``attest build`` turns into an
exception; only ``SIGKILL`` (or a power cut) can leave one, never a partial object. Such a leftover beside the
object its rerun linked into place is not listed as an artefact (:func:`_unfinished`): an audit does not call the
good build tampered; left alone, it is listed, and reported.

Reading follows the directory as it is: what is read is only evidence, checked by its
signatures, and only regular files are read (:func:`verify.formats.evidence.read_evidence_file`).
"""

from __future__ import annotations

import contextlib
import errno
import functools
import hashlib
import io
import os
import re
import secrets
import stat
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import BinaryIO, NoReturn

from attest.errors import StoreError
from attest.stores.layout import (
    DEPLOYMENTS_FOLDER,
    EVIDENCE_SUFFIXES,
    INDEX_FOLDER,
    FiledDeployment,
    artifact_key,
    attestation_key,
    index_entry,
    index_key,
    parse_deployment_key,
    parse_index_entry,
)
from verify.errors import EvidenceRejected, InputError, MalformedEvidence
from verify.formats.evidence import read_evidence_file

__all__ = ["LocalStore"]

_CHUNK = 4 * 1024 * 1024
_DIRECTORY = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0)
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_NONBLOCK = getattr(os, "O_NONBLOCK", 0)
_ARTIFACT = "artifact"
#: The end of the name of a file being written (``.NAME.<16 hex>.tmp``), linked into place once whole.
_TMP_SUFFIX = ".tmp"
_UNFINISHED = re.compile(r"\..+\.[0-9a-f]{16}\.tmp")
#: More than an index entry ever holds (64 hex digits and a newline): a longer one is not an entry.
_INDEX_ENTRY_MAX = 80


class LocalStore:
    """``DIR/sha256/<hex>/...`` and ``DIR/blake3/<hex>`` on the local file system. Write-once."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.uri = str(self.root)
        self.remote = False
        self._artifact_folders: list[tuple[str, str, bool]] | None = None
        """(folder, its sha256, whether its ``artifact`` entry is a real folder) of every artefact's folder
        holding an ``artifact`` entry, as the last complete :meth:`listed_attestations` pass saw them."""

    # -- writing ------------------------------------------------------------

    def _open_directory(self, parts: Sequence[str]) -> int:
        """A descriptor of ``root/parts...``, creating each directory; no component may be a symlink.

        The root itself is the operator's choice and may be a link; everything below it is
        store content, which an attacker with write access to the store controls.
        """
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.root, _DIRECTORY)
        except OSError as e:
            raise StoreError(f"cannot open store {self.root}: {e.strerror}") from e
        where = self.root
        try:
            for part in parts:
                where = where / part
                try:
                    os.mkdir(part, 0o755, dir_fd=fd)
                except FileExistsError:
                    pass
                except OSError as e:  # a name too long for the file system, no space, no permission
                    raise StoreError(f"cannot create {where}: {e.strerror}") from e
                try:
                    inner = os.open(part, _DIRECTORY | _NOFOLLOW, dir_fd=fd)
                except OSError as e:
                    if e.errno in (errno.ELOOP, errno.ENOTDIR):
                        raise StoreError(_not_a_folder(where, part, fd, self.root)) from e
                    raise StoreError(f"cannot create {where}: {e.strerror}") from e
                os.close(fd)
                fd = inner
        except BaseException:
            os.close(fd)
            raise
        return fd

    def put_artifact(self, sha256: str, name: str, source: Path,
                     progress: Callable[[int], None] | None = None) -> str:
        """Copy ``source`` to ``sha256/<hex>/artifact/<name>``, hashing the bytes as they are copied."""

        def copy(out: BinaryIO) -> None:
            with _open_source(source) as src:
                digest = hashlib.sha256()
                while chunk := src.read(_CHUNK):
                    digest.update(chunk)
                    out.write(chunk)
                    if progress is not None:
                        progress(len(chunk))
            # what is stored must be what was attested: hash the bytes as they were copied
            if digest.hexdigest() != sha256:
                raise StoreError(f"{source} changed after it was hashed (sha256 now {digest.hexdigest()[:16]}...); "
                                 "build again")

        return self._write_once(artifact_key(sha256, name), sha256, copy, skip_if_stored=True)

    def put_attestation(self, sha256: str, kind: str, data: bytes) -> str:
        """Write ``data`` once as ``sha256/<hex>/<kind>-<sha256 of data>.intoto.jsonl``."""

        def write(out: BinaryIO) -> None:
            out.write(data)

        return self._write_once(attestation_key(sha256, kind, data), hashlib.sha256(data).hexdigest(), write)

    def put_index(self, blake3: str, sha256: str) -> str:
        """Write ``blake3/<blake3>`` once, naming ``sha256``."""
        entry = index_entry(sha256)

        def write(out: BinaryIO) -> None:
            out.write(entry)

        return self._write_once(index_key(blake3), hashlib.sha256(entry).hexdigest(), write)

    def put_deployment(self, key: str, data: bytes) -> str:
        """Write ``data`` once at ``key``, an entry of the deployment index."""
        if parse_deployment_key(key) is None:
            raise StoreError(f"{key!r} is not a key of the store's deployment index")

        def write(out: BinaryIO) -> None:
            out.write(data)

        return self._write_once(key, hashlib.sha256(data).hexdigest(), write)

    def _write_once(self, key: str, sha256: str, write: Callable[[BinaryIO], None], *,
                    skip_if_stored: bool = False) -> str:
        """Write ``key`` once: into a hidden temp file beside it, then linked into place (never replaced).

        An object already there with the same bytes (``sha256``) is fine, with other bytes an error;
        the temp file is removed whatever happens.
        """
        target = self.root / key
        *folders, filename = key.split("/")
        directory = self._open_directory(folders)
        try:
            if skip_if_stored and _stored_sha256(directory, filename, target) is not None:
                _same_or_refuse(directory, filename, target, sha256)
                return str(target)
            tmp = f".{filename[:200]}.{secrets.token_hex(8)}{_TMP_SUFFIX}"  # (_unfinished: what a kill leaves)
            try:
                out_fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW, 0o600, dir_fd=directory)
                with open(out_fd, "wb") as out:
                    write(out)
                    out.flush()
                    os.fsync(out.fileno())
                    os.fchmod(out.fileno(), 0o644)
                try:
                    os.link(tmp, filename, src_dir_fd=directory, dst_dir_fd=directory, follow_symlinks=False)
                except FileExistsError:  # another writer was first: fine if it wrote the same bytes
                    _same_or_refuse(directory, filename, target, sha256)
            except OSError as e:
                raise StoreError(f"cannot write {target}: {e.strerror}; give this process write access to the store "
                                 "(or free space), then run again: what is stored already is kept") from e
            finally:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(tmp, dir_fd=directory)
        finally:
            os.close(directory)
        return str(target)

    # -- reading ------------------------------------------------------------

    def _check_root(self) -> None:
        """A store that does not exist is a mistake in the invocation (a typo), not an empty store."""
        if not _is_folder(self.root):
            raise InputError(f"store {self.root} is not a directory; check the path (a store is made by "
                             "'attest build --publish DIR')")

    def has_index(self) -> bool:
        self._check_root()
        return _is_folder(self.root / INDEX_FOLDER)

    def sha256_for(self, blake3: str) -> str | None:
        self._check_root()
        try:
            with _open_regular(self.root / index_key(blake3)) as f:
                return parse_index_entry(f.read(_INDEX_ENTRY_MAX))
        except StoreError:  # none, or not a regular file: no entry (the sha256 read finds the evidence)
            return None

    def attestations(self, sha256: str) -> Iterator[tuple[str, bytes | EvidenceRejected]]:
        self._check_root()
        directory = self.root / "sha256" / sha256
        if not _is_folder(directory):
            return
        entries = _listing(directory, what="a stored artefact's folder")
        if isinstance(entries, EvidenceRejected):  # its evidence cannot be read: no verdict, not "none found"
            raise StoreError(f"{entries}; give this process read access to the store")
        for path, _ in entries:
            if path.name.endswith(EVIDENCE_SUFFIXES):
                yield str(path), _read(path)

    def all_attestations(self) -> Iterator[tuple[str, bytes | EvidenceRejected]]:
        """Every attestation file, and every part of ``sha256/`` that cannot be read as the store's layout (a
        file or a link where an artefact's folder should be, a folder that cannot be listed), as that part's
        rejection: an audit reports what it could not read instead of passing over it."""
        for uri, _, read in self.listed_attestations():
            yield uri, read()

    def listed_attestations(self) -> Iterator[tuple[str, str | None, Callable[[], bytes | EvidenceRejected]]]:
        """As :meth:`all_attestations`, listed and not read: (path, its stamp (:func:`file_stamp`; None for a
        part that cannot be read), a function reading it).

        Each stamp is taken from the folder's open descriptor as it is listed, before anything is read. A pass
        that runs to its end also remembers which artefact folders hold an ``artifact`` entry, so that
        :meth:`listed_artifacts` on this store, which an audit asks next, need not list every folder again."""
        self._artifact_folders = None
        found: list[tuple[str, str, bool]] = []
        yield from self._listed_attestations(found)
        self._artifact_folders = found

    def _listed_attestations(self, artifact_folders: list[tuple[str, str, bool]]
                             ) -> Iterator[tuple[str, str | None, Callable[[], bytes | EvidenceRejected]]]:
        self._check_root()
        base = self.root / "sha256"
        if not _is_folder(base, follow=False) and not base.is_symlink():
            return  # a store nothing was published to (a link or a file there is listed, and refused, below)
        listed = str(base)
        folders = _scan(listed, what="the store's sha256 folder")
        if isinstance(folders, EvidenceRejected):
            yield listed, None, _given(folders)
            return
        for name, is_folder, _ in folders:
            folder = f"{listed}{os.sep}{name}"
            if not is_folder:
                yield folder, None, _given(MalformedEvidence(
                    f"{folder} is not a folder of a stored artefact (a file, a link or a device where the store "
                    "keeps a folder); the store holds what attest cannot read"))
                continue
            entries = _scan(folder, what="a stored artefact's folder", stamped=EVIDENCE_SUFFIXES)
            if isinstance(entries, EvidenceRejected):
                yield folder, None, _given(entries)
                continue
            for entry, entry_is_folder, stamp in entries:
                if entry == _ARTIFACT:
                    artifact_folders.append((folder, name, entry_is_folder))
                elif entry.endswith(EVIDENCE_SUFFIXES):
                    path = f"{folder}{os.sep}{entry}"
                    yield path, stamp, functools.partial(_read, path)

    def deployments(self, environment: str | None = None) -> list[FiledDeployment]:
        """The deployment index, listed (``deployments/<env>/<component>/``); a part of it that cannot be
        listed is a StoreError: what runs where is not answered from part of the index."""
        self._check_root()
        base = self.root / DEPLOYMENTS_FOLDER
        if not _is_folder(base, follow=False):
            return []
        found: list[FiledDeployment] = []
        for env_folder in _folders(base, what="the store's deployment index"):
            for folder in _folders(env_folder, what="the store's deployment index"):
                for path, is_folder in _listed(folder, what="the store's deployment index"):
                    filed = None if is_folder else parse_deployment_key(str(path.relative_to(self.root)))
                    if filed is not None and (environment is None or filed.environment == environment):
                        found.append(filed)
        return found

    def read_deployment(self, filed: FiledDeployment) -> tuple[str, bytes | EvidenceRejected]:
        path = self.root / filed.key
        return str(path), _read(path)

    def artifacts(self) -> Iterator[tuple[str, str, Callable[[], BinaryIO]]]:
        """(URI, the sha256 its address claims, an opener) of every stored artefact, for audits."""
        for uri, claimed, opener, _ in self.listed_artifacts():
            yield uri, claimed, opener

    def listed_artifacts(self) -> Iterator[tuple[str, str, Callable[[], BinaryIO], str | None]]:
        """As :meth:`artifacts`, with each one's stamp (:func:`file_stamp`), or None.

        After a complete :meth:`listed_attestations` pass over this store, only the folders it saw holding an
        ``artifact`` entry are visited, as an audit needs the artefacts of the attestations it listed (one
        stored since is found by the next audit; one removed since is reported as unreadable); otherwise
        every artefact folder is listed."""
        self._check_root()
        if self._artifact_folders is not None:
            for folder, claimed, is_folder in self._artifact_folders:
                yield from _artifact_entry(folder, claimed=claimed, is_folder=is_folder)
            return
        base = self.root / "sha256"
        if not _is_folder(base, follow=False):
            return  # none, or not a folder: all_attestations reports that part
        listed = str(base)
        folders = _scan(listed, what="the store's sha256 folder")
        if isinstance(folders, EvidenceRejected):
            return  # reported by all_attestations, which an audit reads first
        for name, is_folder, _ in folders:
            folder = f"{listed}{os.sep}{name}"
            entries = _scan(folder, what="a stored artefact's folder") if is_folder else None
            if not isinstance(entries, list):
                continue  # not a folder, or not listed: all_attestations, which an audit reads first, said so
            for entry, entry_is_folder, _ in entries:
                if entry == _ARTIFACT:
                    yield from _artifact_entry(folder, claimed=name, is_folder=entry_is_folder)


def _artifact_entry(folder: str, *, claimed: str, is_folder: bool
                    ) -> Iterator[tuple[str, str, Callable[[], BinaryIO], str | None]]:
    """What the ``artifact`` entry of an artefact's folder holds: the files below it, or the entry itself when
    it is a link or a file where the folder should be (its opener decides)."""
    path = f"{folder}{os.sep}{_ARTIFACT}"
    if is_folder:
        yield from _artifacts_under(path, claimed=claimed)
    else:
        yield path, claimed, functools.partial(_open_regular, path), file_stamp(Path(path))


def _artifacts_under(folder: str, *, claimed: str) -> Iterator[tuple[str, str, Callable[[], BinaryIO], str | None]]:
    """Every entry below ``folder`` that is not a folder, depth first by name, without following a link; a
    folder that cannot be listed is yielded too, with an opener that says so and no stamp (audit reports it,
    as it reports a symbolic link, a FIFO or a device, which their openers refuse)."""
    # (a stack of listings, not recursion: a store's writer could nest folders deeper than Python recurses)
    stack: list[tuple[str, Iterator[tuple[str, bool, str | None]], list[tuple[str, bool, str | None]]]] = []
    entries = _scan(folder, what="a stored artefact's folder", stamped="")
    if isinstance(entries, EvidenceRejected):
        yield folder, claimed, functools.partial(_refuse, StoreError(str(entries))), None
        return
    stack.append((folder, iter(entries), entries))
    while stack:
        where, pending, listed = stack[-1]
        entry = next(pending, None)
        if entry is None:
            stack.pop()
            continue
        name, is_folder, stamp = entry
        path = f"{where}{os.sep}{name}"
        if not is_folder:
            if not _unfinished(name, listed):
                yield path, claimed, functools.partial(_open_regular, path), stamp
            continue
        inner = _scan(path, what="a stored artefact's folder", stamped="")
        if isinstance(inner, EvidenceRejected):
            yield path, claimed, functools.partial(_refuse, StoreError(str(inner))), None
        else:
            stack.append((path, iter(inner), inner))


def _unfinished(name: str, entries: Sequence[tuple[str, bool, str | None]]) -> bool:
    """Whether ``name`` is a copy this store began and never linked into place (a writer killed mid-copy leaves
    ``.NAME.<16 hex>.tmp``): never an artefact, whose name is what a provenance attests, so not read as one. Only
    beside the artefact it was to become: any other file is read, and a wrong one reported."""
    if not _UNFINISHED.fullmatch(name):
        return False
    meant = name[1:-len(_TMP_SUFFIX) - 17]
    return any(other == meant and not is_folder for other, is_folder, _ in entries)


def _refuse(error: StoreError) -> BinaryIO:
    raise error


def _is_folder(path: Path, *, follow: bool = True) -> bool:
    """Whether ``path`` is a folder (a missing one is not); a part of the store this process may not look
    at is a StoreError (exit 3), never taken for an absent one."""
    try:
        return stat.S_ISDIR(os.stat(path, follow_symlinks=follow).st_mode)
    except (FileNotFoundError, NotADirectoryError):
        return False
    except OSError as e:
        raise StoreError(f"cannot read {path} in the store: {e.strerror or e}; give this process read access "
                         "to the store") from e


def _listing(folder: Path, *, what: str) -> list[tuple[Path, bool]] | EvidenceRejected:
    """(path, whether it is a real folder) of each entry of ``folder``, as :func:`_scan` lists them."""
    entries = _scan(str(folder), what=what)
    if isinstance(entries, EvidenceRejected):
        return entries
    return [(folder / name, is_dir) for name, is_dir, _ in entries]


def _scan(folder: str, *, what: str, stamped: str | tuple[str, ...] = ()
          ) -> list[tuple[str, bool, str | None]] | EvidenceRejected:
    """(name, whether it is a real folder, its stamp if the name ends with ``stamped`` ("" for every name)) of
    each entry of ``folder``, sorted by name, the folder opened without following a link; or the rejection
    saying why it cannot be listed (not a folder, a link, no permission). Types and stamps are read through
    the open descriptor: no path is resolved again, and a folder swapped since is not looked into."""
    try:
        fd = os.open(folder, _DIRECTORY | _NOFOLLOW)
    except OSError as e:
        return MalformedEvidence(f"cannot list {what} {folder}: {e.strerror or e}")
    found: list[tuple[str, bool, str | None]] = []
    try:
        with os.scandir(fd) as entries:
            for entry in entries:
                name = entry.name
                found.append((name, entry.is_dir(follow_symlinks=False),
                              _entry_stamp(entry) if name.endswith(stamped) else None))
    except OSError as e:
        return MalformedEvidence(f"cannot list {what} {folder}: {e.strerror or e}")
    finally:
        os.close(fd)
    found.sort()  # as text, by name (names in one folder are unique): cheaper than as paths
    return found


def _listed(folder: Path, *, what: str) -> list[tuple[Path, bool]]:
    """:func:`_listing`, where a folder that cannot be listed stops the answer (StoreError, exit 3)."""
    entries = _listing(folder, what=what)
    if isinstance(entries, EvidenceRejected):
        raise StoreError(f"{entries}; give this process read access to the store")
    return entries


def _folders(folder: Path, *, what: str) -> list[Path]:
    return [path for path, is_folder in _listed(folder, what=what) if is_folder]


def file_stamp(path: Path) -> str | None:
    """What changes when a file is replaced, rewritten or has its permissions changed (size, modification and
    change times, inode; never following a link), or None when it cannot be looked at: an audit index's reason
    to read a file again (a file made unreadable since is read, and reported, not answered for from the index)."""
    try:
        info = os.lstat(path)
    except OSError:
        return None
    if not stat.S_ISREG(info.st_mode):
        return None
    return _stamp(info)


def _entry_stamp(entry: os.DirEntry[str]) -> str | None:
    """:func:`file_stamp` of an entry listed through a folder's descriptor, looked at relative to it."""
    try:
        info = entry.stat(follow_symlinks=False)
    except OSError:
        return None
    if not stat.S_ISREG(info.st_mode):
        return None
    return _stamp(info)


def _stamp(info: os.stat_result) -> str:
    return f"{info.st_size}:{info.st_mtime_ns}:{info.st_ctime_ns}:{info.st_ino}"


def _given(error: EvidenceRejected) -> Callable[[], bytes | EvidenceRejected]:
    return lambda: error


def _read(path: str | Path) -> bytes | EvidenceRejected:
    """One stored attestation file, or why it cannot be read: that file's problem, never the whole store's."""
    try:
        return read_evidence_file(path)
    except EvidenceRejected as e:
        return e
    except InputError as e:  # not a regular file (a FIFO, a device), or unreadable: junk in an untrusted store
        return MalformedEvidence(str(e))


def _open_regular(path: str | Path) -> BinaryIO:
    """``path`` opened for reading if it is a regular file (a FIFO swapped in must not block the audit)."""
    try:
        fd = os.open(path, os.O_RDONLY | _NONBLOCK | _NOFOLLOW)
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise StoreError(f"artefact {path} is a symbolic link; the store was tampered with") from e
        raise StoreError(f"cannot read artefact {path}: {e.strerror}") from e
    if not stat.S_ISREG(os.fstat(fd).st_mode):  # before open(): a directory there would raise IsADirectoryError
        os.close(fd)
        raise StoreError(f"artefact {path} is not a regular file; the store was tampered with")
    return open(fd, "rb")  # the caller closes it


@contextlib.contextmanager
def _open_source(source: Path) -> Iterator[io.BufferedReader]:
    """The artefact to copy, if it is (still) a regular file: a FIFO swapped in must not block the copy."""
    try:
        fd = os.open(source, os.O_RDONLY | _NONBLOCK)
    except OSError as e:
        raise StoreError(f"cannot read artefact {source}: {e.strerror}") from e
    with open(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise StoreError(f"artefact {source} is no longer a regular file")
        yield f


def _not_a_folder(where: Path, part: str, fd: int, root: Path) -> str:
    """Why the store cannot be written through ``where``: a file an artefact of the same bytes was stored as (one
    path cannot be both), or a link or anything else (refused: nothing escapes ``root``)."""
    with contextlib.suppress(OSError):
        if stat.S_ISREG(os.stat(part, dir_fd=fd, follow_symlinks=False).st_mode) and \
                _ARTIFACT in where.relative_to(root).parts[:-1]:
            return (f"{where} is a file in the store: an artefact of the same bytes was stored by that name, and a "
                    "folder cannot be made there for a name below it; rename this artefact (or that one's folder)")
    return (f"{where} is a symbolic link or not a directory; a store is written only through real directories, so "
            f"nothing escapes {root}")


def _stored_sha256(directory: int, filename: str, target: Path) -> str | None:
    """The sha256 of the object ``filename`` in ``directory``, or None if there is none.

    A symbolic link, a FIFO or anything else than a regular file where an object should be
    is refused: the store was tampered with.
    """
    try:
        fd = os.open(filename, os.O_RDONLY | _NOFOLLOW | _NONBLOCK, dir_fd=directory)
    except FileNotFoundError:
        return None
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise StoreError(f"{target} is a symbolic link; the store was tampered with") from e
        raise StoreError(f"cannot read {target}: {e.strerror}") from e
    with open(fd, "rb", closefd=True) if stat.S_ISREG(_mode(fd, target)) else _refused(fd, target) as f:
        digest = hashlib.sha256()
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _mode(fd: int, target: Path) -> int:
    try:
        return os.fstat(fd).st_mode
    except OSError as e:
        os.close(fd)
        raise StoreError(f"cannot read {target}: {e.strerror}") from e


def _refused(fd: int, target: Path) -> NoReturn:
    """Anything but a regular file where an object should be: a folder (artefacts of the same bytes stored under
    names below this one), or the store tampered with."""
    folder = stat.S_ISDIR(os.fstat(fd).st_mode)
    os.close(fd)
    if folder:
        raise StoreError(f"{target} is a folder in the store: artefacts of the same bytes were stored under names "
                         "below it, and one path cannot be both; rename this artefact")
    raise StoreError(f"{target} is not a regular file; the store was tampered with")


def _same_or_refuse(directory: int, filename: str, target: Path, sha256: str) -> None:
    if _stored_sha256(directory, filename, target) != sha256:
        raise StoreError(f"{target} already holds different bytes; the store is write-once")
