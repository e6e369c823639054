"""The audit index in SQLite: what ``attest audit`` checked, kept between runs so that the next one checks only what
is new (:mod:`verify.audit.index` says what is kept and why it is only a cache).

One file holds the facts of any number of stores, policies and trusted roots, each row under the digest of the
trust it was checked under (its *setup*), with a scan cache beside them:

* ``facts (setup, uri) -> digest, facts, touch, count, stamp``: a file's facts, reused only for the same bytes
  (``digest``) at the same place under the same setup, with what they concern and how many there are (read
  for every file on every audit, where the facts themselves are read only for what changed), and the stamp the
  file had when those bytes were read (local: size, modification and change times and inode, once older than a
  clock tick; S3: ETag and size; ``""``: none that may stand for them), so that an unchanged history costs a
  listing, not a read;
* ``judged (setup, scope, sha256) -> inputs, judged, history``: an artefact's judgement and its history as the
  report prints it, reused only while the digest of everything it rests on (``inputs``) is unchanged. The history
  names where each attestation was read, so each set of sources audited (its *scope*: two stores holding one
  artefact, audited in turn) keeps its own;
* ``stored uri -> stamp, sha256``: the sha256 of a stored artefact when its stamp was last seen, which an audit
  otherwise re-hashes (whatever the setup: hashing does not depend on trust);
* ``used (setup, scope) -> at``: when an audit last used each setup and scope. What no audit has used for
  :data:`KEPT_UNUSED_DAYS` is dropped (the facts of an older policy, key set, trusted root or attest; the
  judgements of sources audited once): without this, every policy edit and every attest upgrade would leave a
  whole history's rows behind for good.

Reads need no lock; writes are buffered and written in short transactions, so two audits of one index both
finish, each with a correct report (one waits for the other's write, at most :data:`BUSY_SECONDS`; past that, or
on a full or read-only disk, an audit not begun is refused, and one whose checks are done keeps nothing more and
reports all the same). A file
that is a corrupt SQLite database is :class:`IndexBroken`: the caller moves it aside and audits again with a
new one; a file that is not an SQLite database at all (a report, a policy: not attest's) is refused, never
moved. An index of a newer format is refused (it is another version's; nothing is overwritten); one of an older
format is emptied and filled again. The file is
created readable by its owner only, and one that others may write is refused: whoever can write the index can
make an audit believe what they wrote (docs/threat-model.md).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sqlite3
import stat
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import ClassVar, TypeVar

from attest.errors import AttestError, RemoteError
from verify.audit.index import EVERYWHERE, INDEX_FORMAT, Kept
from verify.errors import ConfigError
from verify.formats.encoding import printable

__all__ = ["BUSY_SECONDS", "KEPT_UNUSED_DAYS", "AuditIndex", "IndexBroken", "PostgresIndex", "SqliteIndex",
           "default_index_path", "is_postgres", "move_aside", "scope_of"]

_T = TypeVar("_T")

#: How long a write waits for another audit's write to the same index.
BUSY_SECONDS = 60
#: Times a PostgreSQL write undone by a deadlock with another audit's is written again.
_PG_RETRIES = 5
#: Rows written per transaction (short transactions: a concurrent audit waits little).
_FLUSH_ROWS = 5000
#: What no audit has used for this many days (a setup's facts, a scope's judgements) is dropped.
KEPT_UNUSED_DAYS = 30
_SQLITE_HEADER = b"SQLite format 3\x00"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS facts (setup TEXT NOT NULL, uri TEXT NOT NULL, digest TEXT NOT NULL,
                                  facts TEXT NOT NULL, touch TEXT NOT NULL, count INTEGER NOT NULL,
                                  stamp TEXT NOT NULL, PRIMARY KEY (setup, uri));
CREATE TABLE IF NOT EXISTS judged (setup TEXT NOT NULL, scope TEXT NOT NULL, sha256 TEXT NOT NULL,
                                   inputs TEXT NOT NULL, judged TEXT NOT NULL, history TEXT NOT NULL,
                                   PRIMARY KEY (setup, scope, sha256));
CREATE TABLE IF NOT EXISTS stored (uri TEXT PRIMARY KEY, stamp TEXT NOT NULL, sha256 TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS used (setup TEXT NOT NULL, scope TEXT NOT NULL, at TEXT NOT NULL,
                                 places TEXT NOT NULL, PRIMARY KEY (setup, scope));
"""


class IndexBroken(AttestError):
    """The index file is an SQLite database that cannot be used (corrupt, truncated): moved aside and rebuilt."""


class IndexUnwritable(ConfigError):
    """A sound index this run cannot write: another audit held its lock past :data:`BUSY_SECONDS`, or the disk is
    full, read-only or failing. Not a broken index: nothing is moved aside."""


def default_index_path(env: Mapping[str, str] | None = None) -> Path:
    """``$XDG_CACHE_HOME/attest/audit-index.sqlite``, else ``~/.cache/attest/audit-index.sqlite``."""
    env = os.environ if env is None else env
    cache = Path(env["XDG_CACHE_HOME"]) if env.get("XDG_CACHE_HOME") else Path.home() / ".cache"
    return cache / "attest" / "audit-index.sqlite"


def scope_of(sources: Iterable[str]) -> str:
    """The scope of an audit of ``sources``, each named as the index names files (an absolute path, or a URI): the
    same whatever their order, or how often one is named."""
    return hashlib.sha256("\n".join(sorted(set(sources))).encode()).hexdigest()


def move_aside(path: Path) -> Path:
    """Move a broken index out of the way (kept for a look, never deleted); where it went."""
    aside = path.with_name(f"{path.name}.broken-{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}")
    for suffix in ("", "-wal", "-shm", "-journal"):
        with contextlib.suppress(FileNotFoundError):
            Path(str(path) + suffix).rename(str(aside) + suffix)
    return aside


class AuditIndex:
    """What every index does, whatever keeps it: buffered writes, what it holds loaded once, the counts. A backend
    says how to run its few statements (:class:`SqliteIndex`, :class:`PostgresIndex`)."""

    #: The SQL of each statement, in the backend's dialect.
    SQL: ClassVar[Mapping[str, str]] = {}

    def __init__(self, where: str, setup: str, scope: str = "", *, places: Sequence[str] | None = None) -> None:
        self.path = where
        """Where the index is, for messages (a file, or the server without its password)."""
        self.setup = setup
        self.scope = scope
        """The sources audited (:func:`scope_of`): whose judgements are read and written."""
        self.places = "" if places is None else json.dumps(sorted(set(places)))
        """The sources audited as the index names files (:func:`scope_of`'s), kept with this audit's use: the checks
        of a file under no place any audit named lately are dropped (:meth:`_tidy`). Empty: not said, nothing
        dropped by place."""
        self._facts: list[tuple[str, str, str, str, str, int, str]] = []
        self._judged: list[tuple[str, str, str, str, str, str]] = []
        self._scanned: dict[str, tuple[str, str]] = {}
        """The stamp and digest of each file read in this audit whose stamp may stand for its bytes, until its row
        is written (:meth:`put`, or :meth:`read_done` for a file whose facts were known)."""
        self._restamps: list[tuple[str, str, str, str]] = []
        self._stored: list[tuple[str, str, str]] = []
        self._known_stored: dict[str, tuple[str, str]] | None = None
        self._known_facts: dict[str, Kept] | None = None
        self._known_touch: Mapping[str, tuple[str, ...]] | None = None
        """What each file this setup had facts of when the audit began concerns (what :meth:`forget` looks at)."""
        self._kept_facts: dict[tuple[str, str], str] | None = None
        self._stamps: dict[str, tuple[str, str]] = {}
        self.written = 0
        self.unkept: str | None = None
        """Why this run's checks could not be kept (another audit held the index too long, the disk is full), once a
        write gave up: nothing more is written, and the audit's report is whole all the same (it never reads what it
        writes)."""
        self.judged = 0
        """Artefacts judged in this audit (the others' judgements came from the index)."""

    # --- the backend ------------------------------------------------------------------------------------

    def _rows(self, sql: str, args: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
        raise NotImplementedError

    def _raw(self, sql: str, args: tuple[str, ...] = ()) -> list[tuple[object, ...]]:
        """The rows as the database gives them (no conversion: the audit reads a row per file)."""
        raise NotImplementedError

    def _write(self, statements: Sequence[tuple[str, Sequence[tuple[object, ...]]]]) -> None:
        """Run each (sql, rows) in one transaction."""
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    # --- facts (verify.audit.index.FactIndex) -------------------------------------------------------------

    def kept(self, uri: str) -> Kept | None:
        known = self._known_facts
        return (known if known is not None else self._kept()).get(uri)

    def _kept(self) -> dict[str, Kept]:
        """What this setup has of each file, in one query (a miss costs no query), with the stamp its bytes last had
        (so that an unchanged file's digest is answered without reading it)."""
        if self._known_facts is None:
            self._known_facts, self._stamps = {}, {}
            for name, digest, touch, count, stamp in self._raw(self.SQL["keys"], (self.setup,)):
                if type(name) is str and type(digest) is str and type(touch) is str and type(count) is int:
                    name = sys.intern(name)  # one string with the caller's name of the file (attest audit's keys)
                    self._known_facts[name] = Kept(digest, tuple(touch.split()), count)
                    if type(stamp) is str and stamp:
                        self._stamps[name] = (stamp, digest)
        return self._known_facts

    def read_done(self) -> None:
        """Every file has been asked about: what was loaded to answer is not held any more (an audit's memory); the
        new stamp of each file read whose facts were known (its bytes unchanged) is written with the next flush."""
        if self._known_facts is not None:
            self._known_touch = self._touches()
        self._known_facts, self._stamps = None, {}
        self._restamps.extend((stamp, self.setup, uri, digest) for uri, (stamp, digest) in self._scanned.items())
        self._scanned = {}

    def _touches(self) -> Mapping[str, tuple[str, ...]]:
        """What each file this setup has facts of concerns: as loaded when the audit began (the same strings),
        else as the database says."""
        if self._known_facts is not None:
            return {name: kept.touch for name, kept in self._known_facts.items()}
        if self._known_touch is not None:
            return self._known_touch
        return {uri: tuple(touch.split()) for uri, touch in self._rows(self.SQL["touches"], (self.setup,))}

    def facts(self, uri: str, digest: str) -> str | None:
        if self._kept_facts is None:  # the few files whose facts are kept, in one query (an audit asks for each)
            self._kept_facts = {(str(u), str(d)): str(f) for u, d, f in self._raw(self.SQL["kept_facts"],
                                                                                 (self.setup,))}
        return self._kept_facts.get((uri, digest))

    def put(self, uri: str, digest: str, facts: str, touch: tuple[str, ...], count: int) -> None:
        if self._kept_facts is None:
            self.facts("", "")  # the facts as they were before this audit wrote any (what --reverify compares)
        scanned = self._scanned.pop(uri, None)
        stamp = scanned[0] if scanned is not None and scanned[1] == digest else ""
        self._facts.append((self.setup, uri, digest, facts, " ".join(touch), count, stamp))
        self.written += 1
        if len(self._facts) >= _FLUSH_ROWS:
            self.flush()

    def judgements(self) -> dict[str, tuple[str, str, str]]:
        return {str(sha): (str(inputs), str(judged), str(history))
                for sha, inputs, judged, history in self._raw(self.SQL["judgements"], (self.setup, self.scope))}

    def judge(self, sha256: str, inputs: str, judged: str, history: str) -> None:
        self._judged.append((self.setup, self.scope, sha256, inputs, judged, history))
        self.judged += judged != "[]"  # a sha256 that is no artefact of the report is not counted
        if len(self._judged) >= _FLUSH_ROWS:
            self.flush()

    # --- the scans ------------------------------------------------------------------------------------

    def scanned(self, uri: str, stamp: str | None) -> str | None:
        """The digest of the file at ``uri`` when it had ``stamp``, if this setup has its facts (None: never seen so,
        or no stamp; a file this setup has no facts of is read whatever its digest)."""
        if stamp is None:
            return None
        if self._known_facts is None:
            self._kept()
        return _at_stamp(self._stamps.get(uri), stamp)

    def scan(self, uri: str, stamp: str | None, digest: str) -> None:
        """The file at ``uri`` held bytes of sha256 ``digest`` when it had ``stamp``: kept with its row."""
        if stamp is not None:
            self._scanned[uri] = (stamp, digest)

    def hashed(self, uri: str, stamp: str | None) -> str | None:
        """The sha256 of the stored artefact at ``uri`` when it had ``stamp``."""
        if stamp is None:
            return None
        return _at_stamp(self._stored_hashes().get(uri), stamp)

    def _stored_hashes(self) -> dict[str, tuple[str, str]]:
        """The stamp and sha256 of every stored artefact the index has hashed, loaded once."""
        if self._known_stored is None:
            self._known_stored = {u: (s, h) for u, s, h in self._rows(self.SQL["stored"])}
        return self._known_stored

    def hash(self, uri: str, stamp: str | None, sha256: str) -> None:
        if stamp is not None:
            self._stored.append((uri, stamp, sha256))

    # --- writing --------------------------------------------------------------------------------------

    def flush(self) -> None:
        """Write what is buffered, in one short transaction; if another audit holds the index past
        :data:`BUSY_SECONDS` (or the disk is full, read-only, failing), keep nothing more of this run
        (:attr:`unkept`) rather than lose its report."""
        statements: list[tuple[str, Sequence[tuple[object, ...]]]] = [
            (self.SQL["put_facts"], self._facts), (self.SQL["restamp"], self._restamps),
            (self.SQL["put_stored"], self._stored), (self.SQL["put_judged"], self._judged)]
        self._facts, self._restamps, self._stored, self._judged = [], [], [], []
        if self.unkept is None and any(rows for _, rows in statements):
            try:
                self._write(statements)
            except IndexUnwritable as e:
                self.unkept = str(e)

    def forget(self, seen: Iterable[str], under: Iterable[str], *, stored: Iterable[str] = (),
               stores: Iterable[str] = ()) -> None:
        """Drop this setup's facts of files under the prefixes ``under`` that were not ``seen``:
        an envelope no longer in the store is not kept, nor reported. The judgement of an artefact no file of this
        setup concerns any more (its files all gone, from every store audited under it) is dropped too (in every
        scope), and the hash of a stored artefact under the prefixes ``stores`` that was not listed (not in
        ``stored``), so that an index does not keep, and load on every run, the artefacts a store's retention has
        removed; and what no audit has used for a while (:meth:`_tidy`). A write that cannot be made keeps nothing
        more (:attr:`unkept`): the report is made already."""
        if self.unkept is not None:
            return
        try:
            self._tidy()
            self._forget_stored(set(stored), tuple(stores))
            self._forget_files(set(seen), tuple(under))
        except IndexUnwritable as e:
            self.unkept = str(e)

    def _forget_files(self, seen_set: set[str], prefixes: tuple[str, ...]) -> None:
        known = self._touches()
        gone = [uri for uri in known if uri.startswith(prefixes) and uri not in seen_set]
        if not gone:
            return
        self._write([(self.SQL["drop_facts"], [(self.setup, u) for u in gone])])
        about = {sha for uri in gone for sha in known[uri]} - {EVERYWHERE}
        if about:
            still = {sha for _, touch in self._rows(self.SQL["touches"], (self.setup,)) for sha in touch.split()}
            if stale := sorted(about - still):
                self._write([(self.SQL["drop_judged"], [(self.setup, sha) for sha in stale])])

    def _forget_stored(self, listed: set[str], stores: tuple[str, ...]) -> None:
        if not stores:
            return
        if gone := [(uri,) for uri in self._stored_hashes() if uri.startswith(stores) and uri not in listed]:
            self._write([(self.SQL["drop_stored"], gone)])

    def _tidy(self) -> None:
        """Drop what no audit has used for :data:`KEPT_UNUSED_DAYS`: the facts of a setup, the judgements of a
        scope, and the facts and stored hashes of files under no place an audit named since (a store moved, or
        synced to another folder on every run). (This audit's own were marked used when it opened the index, as
        were those of any audit running.)"""
        cutoff = _now(-KEPT_UNUSED_DAYS)
        if not self._rows(self.SQL["stale"], (cutoff,)):
            return
        self._write([(self.SQL["drop_stale"], [(cutoff,)]), (self.SQL["drop_unused_judged"], [()]),
                     (self.SQL["drop_unused_facts"], [()])])
        named: dict[str, set[str]] = {}
        for setup, places in self._rows(self.SQL["places"]):
            found = _places(places)
            if found is None:  # a use that does not say where (or says it unreadably): nothing is dropped by place
                return
            named.setdefault(setup, set()).update(found)
        anywhere = _Places(set().union(*named.values()))
        by_setup = {setup: _Places(places) for setup, places in named.items()}
        facts = [(setup, uri) for setup, uri in self._rows(self.SQL["all_facts"])
                 if setup in by_setup and uri not in by_setup[setup]]
        stored = [(uri,) for (uri,) in self._rows(self.SQL["all_stored"]) if uri not in anywhere]
        if facts or stored:
            self._write([(self.SQL["drop_facts"], facts), (self.SQL["drop_stored"], stored)])


def _places(text: str) -> list[str] | None:
    """The places a use of the index names (``used.places``); None when it names none or is not that list."""
    try:
        found = json.loads(text)
    except ValueError:
        return None
    return found if type(found) is list and found and all(type(p) is str and p for p in found) else None


class _Places:
    """Places as the index names them (a folder, a store or prefix, or a file named by itself): ``uri in places``
    when the file at ``uri`` is one of them or under one."""

    def __init__(self, places: Iterable[str]) -> None:
        self._exact = frozenset(places)
        self._under = tuple(p if p.endswith("/") else f"{p}/" for p in self._exact)

    def __contains__(self, uri: object) -> bool:
        return isinstance(uri, str) and (uri in self._exact or uri.startswith(self._under))


def _at_stamp(found: tuple[str, str] | None, stamp: str) -> str | None:
    """The digest of ``found`` (stamp, digest) if it was taken at ``stamp``."""
    return found[1] if found is not None and found[0] == stamp else None


def _now(days: int = 0) -> str:
    """The time now (``days`` from now), as the ``used`` table keeps it: text that sorts as time does."""
    return (datetime.now(UTC) + timedelta(days=days)).isoformat(timespec="seconds")


class SqliteIndex(AuditIndex):
    """The index in an SQLite file (see the module docstring)."""

    SQL: ClassVar[Mapping[str, str]] = {
        "kept_facts": "SELECT uri, digest, facts FROM facts WHERE setup = ? AND facts != ''",
        "stored": "SELECT uri, stamp, sha256 FROM stored",
        "touches": "SELECT uri, touch FROM facts WHERE setup = ?",
        "keys": "SELECT uri, digest, touch, count, stamp FROM facts WHERE setup = ?",
        "judgements": "SELECT sha256, inputs, judged, history FROM judged WHERE setup = ? AND scope = ?",
        "put_facts": "INSERT OR REPLACE INTO facts VALUES (?, ?, ?, ?, ?, ?, ?)",
        "put_judged": "INSERT OR REPLACE INTO judged VALUES (?, ?, ?, ?, ?, ?)",
        "restamp": "UPDATE facts SET stamp = ? WHERE setup = ? AND uri = ? AND digest = ?",
        "put_stored": "INSERT OR REPLACE INTO stored VALUES (?, ?, ?)",
        "drop_facts": "DELETE FROM facts WHERE setup = ? AND uri = ?",
        "drop_stored": "DELETE FROM stored WHERE uri = ?",
        "drop_judged": "DELETE FROM judged WHERE setup = ? AND sha256 = ?",
        "use": "INSERT OR REPLACE INTO used VALUES (?, ?, ?, ?)",
        "places": "SELECT setup, places FROM used",
        "all_facts": "SELECT setup, uri FROM facts",
        "all_stored": "SELECT uri FROM stored",
        "stale": "SELECT setup FROM used WHERE at < ? LIMIT 1",
        "drop_stale": "DELETE FROM used WHERE at < ?",
        "drop_unused_judged": "DELETE FROM judged WHERE NOT EXISTS (SELECT 1 FROM used u WHERE u.setup = judged.setup "
                              "AND u.scope = judged.scope)",
        "drop_unused_facts": "DELETE FROM facts WHERE NOT EXISTS (SELECT 1 FROM used u WHERE u.setup = facts.setup)",
    }

    def __init__(self, path: Path, setup: str, scope: str = "", *, places: Sequence[str] | None = None) -> None:
        super().__init__(str(path), setup, scope, places=places)
        self.file = path
        self._db = self._open()

    # --- opening ---------------------------------------------------------------------------------------

    def _open(self) -> sqlite3.Connection:
        path = self.file
        try:
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        except OSError as e:
            raise ConfigError(f"cannot create the folder of the audit index {path}: {e.strerror or e}; give "
                              "--index another path, or --no-index") from e
        self._folder_is_own()
        if os.path.lexists(path):
            self._check_file()
        else:
            try:
                os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_NOFOLLOW, 0o600))
            except FileExistsError:
                self._check_file()  # another audit made it meanwhile
            except OSError as e:
                raise ConfigError(f"cannot create the audit index {path}: {e.strerror or e}; give --index a path "
                                  "this process may write, or --no-index") from e
        try:
            db = sqlite3.connect(path, timeout=BUSY_SECONDS, isolation_level=None)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
            found = _format(db.execute("SELECT value FROM meta WHERE key = 'format'").fetchone(), str(path),
                            "path")
            if found is not None and found < INDEX_FORMAT:  # an older attest's: a cache, filled again
                db.executescript("BEGIN IMMEDIATE; DROP TABLE IF EXISTS facts; DROP TABLE IF EXISTS scans; "
                                 "DROP TABLE IF EXISTS stored; DROP TABLE IF EXISTS judged; DROP TABLE IF EXISTS used; "
                                 "DELETE FROM meta; COMMIT;")
            db.executescript(_SCHEMA)
            db.execute("INSERT OR IGNORE INTO meta VALUES ('format', ?)", (str(INDEX_FORMAT),))
            db.execute(self.SQL["use"], (self.setup, self.scope, _now(), self.places))
        except sqlite3.DatabaseError as e:
            raise _failure(path, e, writing=False) from e
        return db

    def _check_file(self) -> None:
        """An index there already: a regular file (never through a link), others may not write it, and an SQLite
        database or empty (any other file is someone's, and is neither used nor moved)."""
        try:
            info = os.lstat(self.file)
        except OSError as e:
            raise ConfigError(f"cannot read the audit index {self.file}: {e.strerror or e}") from e
        if not stat.S_ISREG(info.st_mode):
            raise ConfigError(f"the audit index {self.file} is not a regular file (a link, a folder, a device); give "
                              "--index the path of a file")
        if info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
            raise ConfigError(f"the audit index {self.file} may be written by other users, who could then make the "
                              f"audit believe what they wrote; chmod go-w {self.file}, or give --index another path")
        if info.st_uid != os.geteuid():
            raise ConfigError(f"the audit index {self.file} belongs to another user (uid {info.st_uid}), who may "
                              "write it and so make the audit believe what they wrote; give --index a file of "
                              "your own, or --no-index")
        for journal in (f"{self.file}-wal", f"{self.file}-shm", f"{self.file}-journal"):
            self._check_journal(Path(journal))
        try:
            with open(self.file, "rb") as f:
                head = f.read(len(_SQLITE_HEADER))
        except OSError as e:
            raise ConfigError(f"cannot read the audit index {self.file}: {e.strerror or e}; give this process "
                              "access to it, or --index another path") from e
        if head and head != _SQLITE_HEADER:
            raise ConfigError(f"{self.file} is not an audit index (not an SQLite database), and attest does not "
                              "overwrite it; give --index another path")

    @staticmethod
    def _check_journal(path: Path) -> None:
        """SQLite reads a journal beside the index (``-wal``, ``-shm``, ``-journal``) as part of it: one there
        must be the owner's own regular file that others may not write, as the index itself."""
        try:
            info = os.lstat(path)
        except FileNotFoundError:
            return
        except OSError as e:
            raise ConfigError(f"cannot read {path}, a journal of the audit index: {e.strerror or e}") from e
        if not stat.S_ISREG(info.st_mode) or info.st_uid != os.geteuid() or \
                info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
            raise ConfigError(f"{path}, a journal SQLite would read as part of the audit index, is not a file of "
                              "your own that only you may write: someone could make the audit believe what they "
                              "wrote in it; remove it if you trust nothing in it, or give --index another path")

    def _folder_is_own(self) -> None:
        """The index's folder: others may not add a file there (a journal SQLite would read as the index's)."""
        try:
            info = os.stat(self.file.parent)
        except OSError as e:
            raise ConfigError(f"cannot read the folder of the audit index {self.file.parent}: "
                              f"{e.strerror or e}") from e
        if info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
            raise ConfigError(f"the folder of the audit index, {self.file.parent}, may be written by other users, "
                              f"who could put a journal beside the index ({self.file.name}-wal) that SQLite reads "
                              "as part of it; give --index a path in a folder only you may write, or --no-index")

    def _rows(self, sql: str, args: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
        return [tuple(str(v) for v in row) for row in self._raw(sql, args)]

    def _raw(self, sql: str, args: tuple[str, ...] = ()) -> list[tuple[object, ...]]:
        try:
            return self._db.execute(sql, args).fetchall()
        except sqlite3.DatabaseError as e:
            raise IndexBroken(f"the audit index {self.file} cannot be read ({e})") from e

    def _write(self, statements: Sequence[tuple[str, Sequence[tuple[object, ...]]]]) -> None:
        """One IMMEDIATE transaction, waiting up to BUSY_SECONDS for another audit's."""
        try:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                for sql, rows in statements:
                    self._db.executemany(sql, rows)
                self._db.execute("COMMIT")
            except BaseException:
                with contextlib.suppress(sqlite3.Error):
                    self._db.execute("ROLLBACK")
                raise
        except sqlite3.DatabaseError as e:
            raise _failure(self.file, e, writing=True) from e

    def close(self) -> None:
        with contextlib.suppress(sqlite3.Error):
            self._db.close()


def _format(row: Sequence[object] | None, where: str, other: str) -> int | None:
    """The index format an index's meta table states (None: a new index); one this attest cannot read, a newer
    one or a value that is no format at all (text that is not ASCII digits, a number, NULL), is refused."""
    if row is None:
        return None
    value = row[0]
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) < 10 and \
            int(value) <= INDEX_FORMAT:
        return int(value)
    stated = printable(str(value))[:40]
    raise ConfigError(f"the audit index {where} states index format {stated}, which this attest (format "
                      f"{INDEX_FORMAT}) cannot read: a newer attest wrote it, or someone else; upgrade attest, or "
                      f"give --index another {other}")


#: SQLite's primary result codes for a sound index that cannot be used now: busy or locked (another audit's
#: write), and no permission, read-only, an I/O error, a full disk, a file that cannot be opened.
_BUSY = frozenset({5, 6})
_UNUSABLE = frozenset({3, 8, 10, 13, 14})


def _failure(path: Path, error: sqlite3.DatabaseError, *, writing: bool) -> Exception:
    """What an SQLite error means for an audit. A sound index that cannot be used now (another audit's lock held
    past :data:`BUSY_SECONDS`, a full or read-only disk) refuses an audit that has not begun (ConfigError: wait, or
    another path) and, ``writing`` once the checks are done, keeps nothing more of the run
    (:class:`IndexUnwritable`); anything else is a broken index (:class:`IndexBroken`: moved aside and rebuilt)."""
    code = (getattr(error, "sqlite_errorcode", None) or 0) & 0xFF
    if code in _BUSY:
        why = f"stayed locked by another audit for {BUSY_SECONDS} s"
        advice = "wait for it, or give --index another path"
    elif code in _UNUSABLE:
        why = f"cannot be {'written' if writing else 'used'} ({error})"
        advice = "give --index another path, or --no-index"
    else:
        return IndexBroken(f"the audit index {path} is not a usable database ({error})")
    return _refusal(f"the audit index {path} {why}", writing=writing, advice=advice)


def _refusal(problem: str, *, writing: bool, advice: str) -> ConfigError:
    """A sound index that cannot be used now (``problem``): an audit not begun is refused (saying ``advice``); one
    ``writing`` once its checks are done keeps nothing more (:class:`IndexUnwritable`), its report whole."""
    if writing:
        return IndexUnwritable(f"{problem}; this run's checks were not kept (its report is whole): run it again to "
                               "keep them")
    return ConfigError(f"{problem}; {advice}")


# --- PostgreSQL: an index a team shares ----------------------------------------------------------------------

POSTGRES_PREFIXES = ("postgresql://", "postgres://")

_PG_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS attest_audit_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS attest_audit_facts (setup TEXT NOT NULL, uri TEXT NOT NULL, digest TEXT NOT NULL, "
    "facts TEXT NOT NULL, touch TEXT NOT NULL, count INTEGER NOT NULL, stamp TEXT NOT NULL, PRIMARY KEY (setup, uri))",
    "CREATE TABLE IF NOT EXISTS attest_audit_judged (setup TEXT NOT NULL, scope TEXT NOT NULL, sha256 TEXT NOT NULL, "
    "inputs TEXT NOT NULL, judged TEXT NOT NULL, history TEXT NOT NULL, PRIMARY KEY (setup, scope, sha256))",
    "CREATE TABLE IF NOT EXISTS attest_audit_stored (uri TEXT PRIMARY KEY, stamp TEXT NOT NULL, "
    "sha256 TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS attest_audit_used (setup TEXT NOT NULL, scope TEXT NOT NULL, at TEXT NOT NULL, "
    "places TEXT NOT NULL, "
    "PRIMARY KEY (setup, scope))",
)
#: pg_advisory_xact_lock key under which the schema is made (two audits making it at once would collide).
_PG_SCHEMA_LOCK = 0x61747465


def is_postgres(value: str) -> bool:
    return value.startswith(POSTGRES_PREFIXES)


class PostgresIndex(AuditIndex):
    """The index in PostgreSQL (``--index postgresql://...``, psycopg 3: the ``attest-gate[postgres]`` extra), in
    tables named ``attest_audit_*``. A server that cannot be reached, or goes away during the audit, is
    :class:`RemoteError` (exit 4): no report rests on part of an index. Whoever may write those tables can make
    an audit believe what they wrote: grant it to the auditors' role only (docs/threat-model.md)."""

    SQL: ClassVar[Mapping[str, str]] = {
        "kept_facts": "SELECT uri, digest, facts FROM attest_audit_facts WHERE setup = %s AND facts != ''",
        "stored": "SELECT uri, stamp, sha256 FROM attest_audit_stored",
        "touches": "SELECT uri, touch FROM attest_audit_facts WHERE setup = %s",
        "keys": "SELECT uri, digest, touch, count, stamp FROM attest_audit_facts WHERE setup = %s",
        "judgements": "SELECT sha256, inputs, judged, history FROM attest_audit_judged WHERE setup = %s AND "
                      "scope = %s",
        "put_facts": "INSERT INTO attest_audit_facts VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT (setup, uri) "
                     "DO UPDATE SET digest = EXCLUDED.digest, facts = EXCLUDED.facts, touch = EXCLUDED.touch, "
                     "count = EXCLUDED.count, stamp = EXCLUDED.stamp",
        "put_judged": "INSERT INTO attest_audit_judged VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (setup, scope, "
                      "sha256) DO UPDATE SET inputs = EXCLUDED.inputs, judged = EXCLUDED.judged, "
                      "history = EXCLUDED.history",
        "restamp": "UPDATE attest_audit_facts SET stamp = %s WHERE setup = %s AND uri = %s AND digest = %s",
        "put_stored": "INSERT INTO attest_audit_stored VALUES (%s, %s, %s) ON CONFLICT (uri) DO UPDATE "
                      "SET stamp = EXCLUDED.stamp, sha256 = EXCLUDED.sha256",
        "drop_facts": "DELETE FROM attest_audit_facts WHERE setup = %s AND uri = %s",
        "drop_stored": "DELETE FROM attest_audit_stored WHERE uri = %s",
        "drop_judged": "DELETE FROM attest_audit_judged WHERE setup = %s AND sha256 = %s",
        "use": "INSERT INTO attest_audit_used VALUES (%s, %s, %s, %s) ON CONFLICT (setup, scope) DO UPDATE SET at = "
               "EXCLUDED.at, places = EXCLUDED.places",
        "places": "SELECT setup, places FROM attest_audit_used",
        "all_facts": "SELECT setup, uri FROM attest_audit_facts",
        "all_stored": "SELECT uri FROM attest_audit_stored",
        "stale": "SELECT setup FROM attest_audit_used WHERE at < %s LIMIT 1",
        "drop_stale": "DELETE FROM attest_audit_used WHERE at < %s",
        "drop_unused_judged": "DELETE FROM attest_audit_judged j WHERE NOT EXISTS (SELECT 1 FROM attest_audit_used u "
                              "WHERE u.setup = j.setup AND u.scope = j.scope)",
        "drop_unused_facts": "DELETE FROM attest_audit_facts f WHERE NOT EXISTS (SELECT 1 FROM attest_audit_used u "
                             "WHERE u.setup = f.setup)",
    }

    def __init__(self, dsn: str, setup: str, scope: str = "", *, places: Sequence[str] | None = None) -> None:
        try:
            import psycopg
        except ImportError as e:
            raise ConfigError("--index postgresql://... needs psycopg: pip install 'attest-gate[postgres]'") from e
        self._psycopg = psycopg
        super().__init__(_shown(dsn), setup, scope, places=places)
        try:
            self._db = psycopg.connect(dsn, autocommit=True, connect_timeout=15)
        except psycopg.Error as e:
            raise RemoteError(f"cannot reach the audit index {self.path}: {_first_line(e)}; check the server and "
                              "its credentials (PGPASSWORD, ~/.pgpass), or use --no-index") from e
        # a lock another session holds (a concurrent audit's write, a transaction left open) is waited for as long
        # as SQLite's, not for ever
        self._guard(lambda: self._db.execute("SELECT set_config('lock_timeout', %s, false)",
                                             (f"{int(BUSY_SECONDS * 1000)}ms",)))
        self._guard(self._make_schema)

    def _make_schema(self) -> None:
        with self._db.transaction():
            self._db.execute("SELECT pg_advisory_xact_lock(%s)", (_PG_SCHEMA_LOCK,))
            for statement in _PG_SCHEMA:
                self._db.execute(statement)
            found = _format(self._db.execute("SELECT value FROM attest_audit_meta WHERE key = 'format'").fetchone(),
                            self.path, "database")
            if found is not None and found < INDEX_FORMAT:  # an older attest's: a cache, filled again
                for table in ("facts", "scans", "stored", "judged", "used"):
                    self._db.execute(f"DROP TABLE IF EXISTS attest_audit_{table}")
                self._db.execute("DELETE FROM attest_audit_meta")
                for statement in _PG_SCHEMA:
                    self._db.execute(statement)
            if found is None or found < INDEX_FORMAT:
                self._db.execute("INSERT INTO attest_audit_meta VALUES ('format', %s)", (str(INDEX_FORMAT),))
            self._db.execute(self.SQL["use"], (self.setup, self.scope, _now(), self.places))

    def _guard(self, work: Callable[[], _T], *, writing: bool = False) -> _T:
        """``work()``, a lost server (or one that refuses) said in one sentence; a lock another session held past
        :data:`BUSY_SECONDS` refuses an audit not begun, and keeps nothing more of one ``writing`` its checks
        (:class:`IndexUnwritable`)."""
        psycopg = self._psycopg
        try:
            return work()
        except psycopg.errors.LockNotAvailable as e:
            raise _refusal(f"the audit index {self.path} stayed locked by another session for {BUSY_SECONDS} s",
                           writing=writing, advice="wait for it, or give --index another database") from e
        except psycopg.OperationalError as e:
            raise RemoteError(f"the audit index {self.path} went away or refused the audit ({_first_line(e)}); "
                              "no report was made from part of it: run the audit again, or use --no-index") from e
        except psycopg.Error as e:
            raise ConfigError(f"the audit index {self.path} refused the audit ({_first_line(e)}); check the role's "
                              "rights on the attest_audit_* tables, or use --no-index") from e

    def _rows(self, sql: str, args: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
        return [tuple(str(v) for v in row) for row in self._raw(sql, args)]

    def _raw(self, sql: str, args: tuple[str, ...] = ()) -> list[tuple[object, ...]]:
        return self._guard(lambda: self._db.execute(sql, args).fetchall())

    def _write(self, statements: Sequence[tuple[str, Sequence[tuple[object, ...]]]]) -> None:
        errors = self._psycopg.errors

        def write() -> None:
            for attempt in range(_PG_RETRIES):
                try:
                    with self._db.transaction(), self._db.cursor() as cursor:
                        for sql, rows in statements:
                            if rows:
                                cursor.executemany(sql, rows)
                    return
                except (errors.DeadlockDetected, errors.SerializationFailure):
                    # another audit wrote the same rows in another order: the server undid this transaction, which
                    # is written again once the other's is done (what "wait" means for a shared index)
                    if attempt == _PG_RETRIES - 1:
                        raise
                    time.sleep(0.05 * (attempt + 1))
        self._guard(write, writing=True)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._db.close()


def _shown(dsn: str) -> str:
    """The server and database a DSN names, without its password (for messages)."""
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(dsn)
        host = parts.hostname or "localhost"
        port = f":{parts.port}" if parts.port else ""
    except ValueError as e:  # a port that is no number or out of range, an unclosed '[': no server named at all
        raise ConfigError(f"--index names no PostgreSQL server ({e}); give postgresql://USER@HOST[:PORT]/DATABASE, "
                          "or a path for an SQLite index") from e
    return f"postgresql://{host}{port}{parts.path or '/'}"


def _first_line(error: BaseException) -> str:
    return (str(error).strip().splitlines() or [type(error).__name__])[0][:200]
