"""``attest audit``: every attestation in stores, directories and files -> each artefact's path and anomalies.

This module finds and reads the attestation files (directories, files, ``s3://``
stores) and feeds them as ``(uri, bytes)`` to :func:`verify.audit.audit`, then
hashes every artefact stored in the stores among the sources (streaming, one at a
time) and feeds ``(uri, the sha256 its address claims, the sha256 of its bytes)``
too. :mod:`verify.audit` does the judging offline; this module prints the report
as text, JSON or HTML.
"""

from __future__ import annotations

import functools
import io
import itertools
import os
import stat
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

import click

from attest.cli._options import OutputPath
from verify.audit import ANOMALY_KINDS, AuditReport, StoredArtifact, audit, fewer_collections, no_collections
from verify.audit.index import Kept, Listed
from verify.errors import ConfigError, EvidenceRejected, InputError
from verify.formats.encoding import printable
from verify.policy import Policy

if TYPE_CHECKING:
    from rich.progress import Progress, TaskID
    from rich.text import Text

    from attest.audit_index import AuditIndex as Index
    from attest.stores import Store

#: Names of attestation files looked for in a directory that is not a store.
PATTERNS = (".intoto.jsonl", ".sigstore.json")


class _IndexPath(OutputPath):
    """An SQLite file (checked as every output file is), or ``postgresql://...`` (checked when connected)."""

    name = "index"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        from attest.audit_index import is_postgres

        if isinstance(value, str) and is_postgres(value):
            return value
        return super().convert(value, param, ctx)


@click.command(name="audit")
@click.argument("sources", nargs=-1, required=True, metavar="SOURCE...")
@click.option("--policy", "policy_path", type=click.Path(path_type=Path), metavar="FILE",
              help="Policy naming trusted identities, provenance rules and stages (see docs/policy.md).")
@click.option("--key", "keys", multiple=True, type=click.Path(path_type=Path), metavar="PEM",
              help="A trusted provenance signer's public key (PEM), without a policy. Repeatable.")
@click.option("--trusted-root", type=click.Path(path_type=Path, dir_okay=False), metavar="FILE",
              help="Sigstore trusted_root.json to verify keyless bundles against (default: the production root "
                   "shipped with sigstore-python; never refreshed over the network).")
@click.option("--format", "output_format", type=click.Choice(["text", "json", "html"]), default="text",
              show_default=True, help="A table for people, JSON for machines, or a self-contained web page.")
@click.option("-o", "--output", type=OutputPath(), metavar="FILE",
              help="Write the report to FILE (atomically) instead of stdout.")
@click.option("--index", "index_path", type=_IndexPath(), metavar="PATH|postgresql://...",
              help="The audit index: what was checked, kept so that the next audit checks only what is new: an "
                   "SQLite file (default: ~/.cache/attest/audit-index.sqlite, or under $XDG_CACHE_HOME), or a "
                   "PostgreSQL database a team shares (the attest-gate[postgres] extra).")
@click.option("--no-index", is_flag=True, help="Check every attestation, and keep nothing.")
@click.option("--reverify", is_flag=True,
              help="Check every attestation again and report each index entry that disagrees (index-mismatch).")
@click.option("--dora", is_flag=True,
              help="Also compute the DORA figures per component and environment, from the signed deployment "
                   "records and provenances alone: deployment frequency, lead time, change failure rate, time "
                   "to restore.")
@click.option("--since", "since", metavar="DATE|DAYS",
              help="With --dora: the window's start, a date (2026-09-01) or a number of days back (90, the "
                   "default).")
def audit_command(sources: tuple[str, ...], policy_path: Path | None, keys: tuple[Path, ...],
                  trusted_root: Path | None, output_format: str, output: Path | None, index_path: Path | str | None,
                  no_index: bool, reverify: bool, dora: bool, since: str | None) -> None:
    """Check every attestation in SOURCE... and show each artefact's path: commit -> build -> stages.

    A SOURCE is a store directory (sha256/<hex>/*.intoto.jsonl), any directory
    (searched for *.intoto.jsonl and *.sigstore.json), one attestation file,
    or an s3://bucket/prefix store. Nothing but S3 is contacted.

    Every envelope is verified against the policy's pinned keys, and every
    keyless Sigstore bundle against its pinned Sigstore identities, offline,
    with --trusted-root or the production root shipped with sigstore-python.
    Exits 0 when the history is clean and 1 when any anomaly is found
    (untrusted or bad signatures, malformed attestations, skipped or
    out-of-order stages, disallowed sources, dirty or non-reproducible
    builds, stored artefacts whose bytes do not hash to their address).
    Release manifests signed by the policy's releases.signed-by are listed.
    With --key and no policy, every key signs provenance and there are no
    stages.

    \b
    Examples:
      attest audit store/ --policy policy.yaml
      attest audit s3://acme-artefacts/app --policy policy.yaml --format html -o audit.html
      attest audit provenance.intoto.jsonl --key dev-build.pub.pem --format json
      attest audit store/ --policy policy.yaml --trusted-root trusted_root.json
    """
    if policy_path is None and not keys:
        raise click.UsageError("no trusted identity: pass --policy FILE or --key PEM (an audit without a "
                               "pinned identity would trust nothing)")
    if no_index and (index_path is not None or reverify):
        raise click.UsageError("--no-index keeps no index: leave out --index and --reverify")
    if since is not None and not dora and output_format != "html":
        raise click.UsageError("--since is the window of the DORA figures: give --dora too")
    window = _window(since) if dora or output_format == "html" else None  # the page always shows the figures
    policy = _policy(policy_path, keys)
    index = None if no_index else index_path or _default_index()
    if output is not None:
        _output_apart(output, policy, sources, index)
    with fewer_collections():  # rendering a large report makes as many objects as the audit did
        report, used = _audit(sources, policy, trusted_root, index, reverify=reverify, dora=window,
                              optional=index_path is None)
        if used is not None:
            import logging

            logging.getLogger(__name__).info("index %s: %s attestation file(s) answered from it, %s checked, %s "
                                             "artefact(s) judged%s", used["path"], used["reused"], used["checked"],
                                             used["judged"],
                                             " (every file checked again: --reverify)" if used["reverified"] else "")
        with no_collections():  # (printed a history at a time; no cycles: verify.audit.no_collections)
            _write(report, output_format, output)
    if not report.clean:
        kinds = sorted({a.kind for a in report.anomalies})
        unread = f"; {report.unread} part(s) of the sources could not be read" if report.unread else ""
        raise EvidenceRejected(f"audit found {_count(len(report.anomalies))} ({', '.join(kinds)}) in "
                               f"{len(report.artifacts)} artefact(s), {report.attestations} attestation(s)"
                               f"{unread}")


def _output_apart(output: Path, policy: Policy, sources: Sequence[str], index: Path | str | None) -> None:
    """-o never replaces what an audit reads: a key file the policy pins, a file of a local store among the sources,
    or the index (a usage error, before any work)."""
    from attest._atomic import same_file
    from attest.signing import output_apart

    output_apart(output, option="-o", policy=policy)
    for source in sources:
        if "://" not in source and _is_folder(Path(source) / "sha256"):
            output_apart(output, option="-o", store=source)
    if isinstance(index, Path) and (same_file(output, index) or Path(os.path.abspath(output)) == index.absolute()):
        raise click.UsageError(f"-o {output} is the audit index; write the report elsewhere")


def _write(report: AuditReport, output_format: str, output: Path | None) -> None:
    """The report in ``output_format``, to ``output`` (atomically) or to stdout."""
    chunks: Iterable[str]
    if output_format == "json":
        # indented for a person at a terminal; for a machine, compact and streamed an artefact at a time
        if output is None and sys.stdout.isatty():
            import json

            chunks = [json.dumps(report.to_dict(), sort_keys=True, indent=2) + "\n"]
        else:
            chunks = _joined(itertools.chain(report.json_chunks(), ["\n"]))
    elif output_format == "html":
        from verify.audit.html import render_html

        chunks = [render_html(report, generated_at=datetime.now(UTC))]
    else:
        chunks = [_text(report, color=output is None and sys.stdout.isatty())]
    if output is not None:
        from attest._atomic import write_atomic

        try:
            write_atomic(output, (chunk.encode("utf-8") for chunk in chunks))
        except OSError as e:
            raise InputError(f"cannot write the report to {output}: {e.strerror}") from e
    else:
        for chunk in chunks:
            click.echo(chunk, nl=False)


def _joined(chunks: Iterable[str], size: int = 1 << 20) -> Iterator[str]:
    """``chunks`` joined into pieces of about ``size`` characters: one write each, not one per artefact."""
    held: list[str] = []
    length = 0
    for chunk in chunks:
        held.append(chunk)
        length += len(chunk)
        if length >= size:
            yield "".join(held)
            held, length = [], 0
    if held:
        yield "".join(held)


def _default_index() -> Path:
    from attest.audit_index import default_index_path

    return default_index_path()


def _window(since: str | None) -> tuple[datetime, datetime]:
    """(start, now) of the DORA window: ``since`` days back (default 90), or from a date (UTC)."""
    import re

    now = datetime.now(UTC)
    text = (since or "90").strip()
    if re.fullmatch(r"[0-9]{1,5}d?", text):
        from datetime import timedelta

        return now - timedelta(days=int(text.rstrip("d"))), now
    try:
        start = datetime.fromisoformat(text)
    except ValueError:
        raise click.BadParameter(f"{text!r} is neither a number of days nor a date (2026-09-01)",
                                 param_hint="--since") from None
    try:  # in UTC, as the report states it
        start = start.astimezone(UTC) if start.tzinfo is not None else start.replace(tzinfo=UTC)
    except OverflowError:
        raise click.BadParameter(f"{text} is outside the years 1 to 9999 in UTC", param_hint="--since") from None
    if start >= now:
        raise click.BadParameter(f"{text} is not in the past", param_hint="--since")
    return start, now


def _audit(sources: Sequence[str], policy: Policy, trusted_root: Path | None, index_path: Path | str | None, *,
           reverify: bool, dora: tuple[datetime, datetime] | None = None, optional: bool = False
           ) -> tuple[AuditReport, dict[str, object] | None]:
    """The audit, with the index at ``index_path`` (None: none); an index found broken on the way is moved aside
    and the audit run again with a new one, so that no report rests on part of a broken index. An ``optional``
    index (the default one, not named by the user) that cannot be used, or that breaks again once made anew, is
    done without, saying so: without an index every file is checked, so nothing is weakened."""
    from attest.audit_index import IndexBroken, move_aside

    try:
        return _audit_once(sources, policy, trusted_root, index_path, reverify=reverify, dora=dora,
                           optional=optional)
    except IndexBroken as e:  # SQLite only
        assert isinstance(index_path, Path)
        try:
            aside = move_aside(index_path)
        except OSError as moving:
            _without_index(f"{e}, and it cannot be moved aside ({moving.strerror or moving})", "remove it, or give "
                           "--index another path, or --no-index", optional=optional, cause=moving)
        else:
            click.echo(f"attest: warning: {e}; moved it to {aside} and auditing again with a new index", err=True)
            try:
                return _audit_once(sources, policy, trusted_root, index_path, reverify=reverify, dora=dora,
                                   optional=optional)
            except IndexBroken as again:
                _without_index(f"{again}, again with a new index", "give --index a path on a sound disk, or "
                               "--no-index", optional=optional, cause=again)
    return _audit_once(sources, policy, trusted_root, None, reverify=reverify, dora=dora)


def _without_index(problem: str, remedy: str, *, optional: bool, cause: BaseException) -> None:
    """An index that cannot be used: the user's own is a ConfigError (exit 3: ``problem``; ``remedy``), the default
    one a warning (the audit goes on without an index, checking every file)."""
    if not optional:
        raise ConfigError(f"{problem}; {remedy}") from cause
    click.echo(f"attest: warning: {problem}; this audit checks every file, without an index", err=True)


def _audit_once(sources: Sequence[str], policy: Policy, trusted_root: Path | None, index_path: Path | str | None, *,
                reverify: bool, dora: tuple[datetime, datetime] | None, optional: bool = False
                ) -> tuple[AuditReport, dict[str, object] | None]:
    from verify.audit import audit_setup

    setup = audit_setup(policy, trusted_root)  # the trust the files are checked under, and the index keyed by
    index = None
    if index_path is not None:
        try:
            index = _open_index(index_path, policy, setup, sources)
        except ConfigError as e:
            if not optional:
                raise
            click.echo(f"attest: warning: {e}; this audit checks every file, without an index", err=True)
    if index is not None and (moving := _in_the_build_folder(sources, os.environ)) is not None:
        click.echo(f"attest: warning: {moving} is in this CodeBuild build's own folder, whose path changes with every "
                   "build; the audit index names files by their path, so the next build checks them all again: sync "
                   "the store to a fixed folder (docs/audit.md)", err=True)
    reader = _Reader(sources, index, reverify=reverify)
    try:
        with _progress() as live:
            report = audit(reader.attestations(), policy=policy, trusted_root=trusted_root,
                           progress=live.checked if live else None,
                           artifacts=reader.artifacts(progress=live.hashed if live else None,
                                                      finished=live.stop if live else None),
                           index=_Keyed(index, reader.key) if index is not None else None, reverify=reverify, dora=dora,
                           setup=setup, mismatched=reader.mismatched)
        if index is not None:
            index.flush()
            index.forget(reader.seen, under=reader.prefixes, stored=reader.seen_stored, stores=reader.stores)
    finally:
        if index is not None:
            index.close()
    if index is None:
        return report, None
    if index.unkept is not None:
        click.echo(f"attest: warning: {index.unkept}", err=True)
    reused = 0 if reverify else max(len(reader.seen) - index.written, 0)
    return report, {"path": str(index.path), "reused": reused, "checked": index.written, "judged": index.judged,
                    "reverified": reverify}


def _in_the_build_folder(sources: Sequence[str], env: Mapping[str, str]) -> str | None:
    """The first local source inside the folder of this CodeBuild build (the parent of ``CODEBUILD_SRC_DIR``,
    ``/codebuild/output/srcNNN``), which another build names otherwise; None elsewhere."""
    source_folder = env.get("CODEBUILD_SRC_DIR", "")
    if not source_folder:
        return None
    inside = os.path.dirname(_key(source_folder)).rstrip(os.sep) + os.sep
    return next((source for source in sources if _key(source).startswith(inside)), None)  # (an s3:// URI is not)


def _open_index(path: Path | str, policy: Policy, setup: Any, sources: Sequence[str]) -> Index:
    """The index at ``path``, for the facts checked under ``setup`` (:func:`verify.audit.audit_setup`) and the
    judgements of an audit of ``sources``."""
    from importlib.metadata import version

    from attest import DISTRIBUTION
    from attest.audit_index import PostgresIndex, SqliteIndex, scope_of
    from verify.audit.index import setup_digest

    # sigstore-python's version too: without --trusted-root, the root it ships is the one keyless bundles were checked
    # against, and a release of it may drop a key that vouched for what the index kept
    digest = setup_digest(setup, policy_digest=policy.digest,
                          version=f"{version(DISTRIBUTION)} sigstore {version('sigstore')}")
    places = [_spelled(_key(source)).rstrip("/") or "/" for source in sources]
    if isinstance(path, str):
        return PostgresIndex(path, digest, scope_of(places), places=places)
    return SqliteIndex(path, digest, scope_of(places), places=places)


def _prefix(source: str) -> str:
    """The index's name of a folder, store or prefix among the sources, ending in ``/``: what its files' names begin
    with."""
    return _spelled(_key(source)).rstrip("/") + "/"


def _key(uri: str, cwd: str | None = None) -> str:
    """An index's name for a file: a local path made absolute (the same file, whatever the current folder);
    ``cwd`` the current folder, when the caller has it already (one getcwd per audit, not per file)."""
    if "://" in uri:
        return uri
    return os.path.normpath(os.path.join(cwd or os.getcwd(), uri))


#: Names :class:`_Keys` keeps, twice over: the last ones made, and those made before them. A file is named when it is
#: listed and again when its facts come back from a worker, a few batches later (up to about 3,000 files): with one
#: generation, emptied when full, most of those came back after it was emptied, and were made again.
_KEYS_KEPT = 8192


class _Keys:
    """:func:`_key` of every file of an audit, each folder's part made once (a store has a folder per artefact, and
    the audit names each file two or three times)."""

    def __init__(self) -> None:
        self.cwd = os.getcwd()
        self._folders: dict[str, str] = {}
        self._made: dict[str, str] = {}
        self._older: dict[str, str] = {}

    def __call__(self, uri: str) -> str:
        made = self._made.get(uri) or self._older.get(uri)
        if made is None:
            if len(self._made) >= _KEYS_KEPT:  # a file is named again soon after it is listed, or never
                self._older, self._made = self._made, {}
            made = self._made[uri] = self._make(uri)
        return made

    def _make(self, uri: str) -> str:
        folder, slash, name = uri.rpartition("/")
        if "://" in uri or not slash or name in ("", ".", ".."):
            return _key(uri, self.cwd)
        known = self._folders.get(folder)
        if known is None:
            known = self._folders[folder] = _key(folder or "/", self.cwd).rstrip("/")
        if known == folder:  # named as the index names it (an absolute, normal path): one string for both
            return sys.intern(uri)
        return sys.intern(f"{known}/{name}")  # one string with the index's name of the file


class _Keyed:
    """The index as :func:`verify.audit.audit` asks it, by the sources' URIs as the report shows them."""

    def __init__(self, index: Index, keys: _Keys) -> None:
        self.index = index
        self.key = keys

    def kept(self, uri: str) -> Kept | None:
        return self.index.kept(self.key(uri))

    def read_done(self) -> None:
        self.index.read_done()

    def facts(self, uri: str, digest: str) -> str | None:
        return self.index.facts(self.key(uri), digest)

    def put(self, uri: str, digest: str, facts: str, touch: tuple[str, ...], count: int) -> None:
        self.index.put(self.key(uri), digest, facts, touch, count)

    def judgements(self) -> Mapping[str, tuple[str, str, str]]:
        return self.index.judgements()

    def judge(self, sha256: str, inputs: str, judged: str, history: str) -> None:
        self.index.judge(sha256, inputs, judged, history)


def _policy(path: Path | None, keys: Sequence[Path]) -> Policy:
    from verify.policy import empty_policy
    from verify.policy_file import load_policy
    from verify.trust import Identity, load_public_key_file

    policy = load_policy(path) if path is not None else empty_policy()
    if keys:
        pinned = tuple(load_public_key_file(k) for k in keys)
        policy = policy.with_identity(Identity(name="--key", keys=pinned))
    return policy


# --- reading ---------------------------------------------------------------------------------------------

#: Bytes of a stored artefact read at a time while it is hashed.
HASH_CHUNK = 1024 * 1024


class _Reader:
    """The sources, read in two passes: every attestation file, then every artefact of the stores among them.

    A store (``s3://`` or a directory with ``sha256/``) is opened once and read through the store
    interface (:class:`attest.stores.Store`), as ``attest verify`` reads it; another directory or a
    file through the same hardened reader, one regular file at a time.
    """

    def __init__(self, sources: Sequence[str], index: Index | None = None, *, reverify: bool = False) -> None:
        self.sources = tuple(dict.fromkeys(sources))  # a source named twice is read once
        self._stores: dict[str, Store] = {}
        self._index = index
        self._reverify = reverify
        """Hash every stored artefact, whatever the index kept, and say where the index said otherwise."""
        self.mismatched: list[str] = []
        """Index entries a fresh check disagreed with (``reverify``), as :func:`verify.audit.audit` names them."""
        self.key = _Keys()
        self._settled_before = time.time_ns() - _RACY_NS
        """A local file's times must be older than this (ns) for its stamp to stand for its bytes."""
        self.seen: list[str] = []
        """The index's name of every attestation file listed (to forget the facts of those gone)."""
        self.prefixes: list[str] = []
        """The index's name of every store and folder among the sources (where files may have gone)."""
        self.seen_stored: list[str] = []
        """The index's name of every stored artefact listed (to forget the hashes of those gone)."""
        self.stores: list[str] = []
        """The index's name of every store among the sources (where stored artefacts may have gone)."""

    def attestations(self) -> Iterator[tuple[str, bytes | EvidenceRejected | Listed]]:
        """Every attestation file of every source, as (uri, bytes or why not), one at a time; with an index, as
        (uri, Listed): read only if the audit needs its bytes."""
        for source in self.sources:
            found = 0
            listed = ((_spelled(uri), data) for uri, data in self._source(source)) if self._index is None \
                else self._listed(source)  # (spelled there, before its index key is made)
            for uri, data in listed:
                found += 1
                yield uri, data
            if not found:
                raise InputError(f"audit source {source} holds no attestation file "
                                 f"(*{' or *'.join(PATTERNS)}); is it the right directory or prefix?")

    def artifacts(self, *, progress: Callable[[int], None] | None = None,
                  finished: Callable[[], None] | None = None) -> Iterator[StoredArtifact]:
        """Every artefact stored in a store source, hashed: (uri, the sha256 its address claims, the sha256
        of its bytes or why they could not be read), one at a time; with an index, an artefact whose stamp is
        unchanged is not read again. ``finished`` is called once the last is given (the audit has read
        everything then)."""
        for source in self.sources:
            store = self._store(source)
            if store is None:
                continue
            self.stores.append(_prefix(source))
            for listed, claimed, opener, stamp in store.listed_artifacts():
                uri = _spelled(listed)
                key = self.key(uri)
                self.seen_stored.append(key)
                kept = self._index.hashed(key, stamp) if self._index is not None else None
                known = None if self._reverify else kept
                found = known if known is not None else _sha256(uri, opener)
                if kept is not None and known is None and found != kept:
                    self.mismatched.append(f"another sha256 for the stored artefact {uri}")
                if self._index is not None and known is None and isinstance(found, str) and \
                        _settled(stamp, self._settled_before):
                    self._index.hash(key, stamp, found)
                yield uri, claimed, found
                if progress is not None:
                    progress(1)
        if finished is not None:
            finished()

    def _listed(self, source: str) -> Iterator[tuple[str, Listed]]:
        """The source's files, listed with their stamps: each read only if the index cannot answer for it."""
        from attest.stores.local import file_stamp

        assert self._index is not None
        index = self._index
        store = self._store(source)
        if store is not None:
            self.prefixes.append(_prefix(source))
            listing: Iterator[tuple[str, str | None, Callable[[], bytes | EvidenceRejected]]] = \
                store.listed_attestations()
        else:
            path = Path(source)
            if _is_folder(path):
                self.prefixes.append(_prefix(str(path)))
            listing = ((str(file), file_stamp(file) if unlisted is None else None, _reader(unlisted, file, named))
                       for file, unlisted, named in self._unread(source))
        for listed, stamp, read in listing:
            uri = _spelled(listed)
            key = self.key(uri)
            self.seen.append(key)
            yield uri, Listed(index.scanned(key, stamp), read,
                              functools.partial(_scanned_as, index, key, stamp, self._settled_before))

    def _unread(self, source: str) -> Iterator[tuple[Path, EvidenceRejected | None, bool]]:
        """A directory's or a file's attestation files, not read yet: (file, why a part cannot be listed, whether
        the file itself was named on the command line)."""
        path = Path(source)
        if _is_folder(path):
            for file, unlisted in _walk(path):
                yield file, unlisted, False
        elif path.exists():
            yield path, None, True
        else:
            raise InputError(f"audit source {source} does not exist; give a directory, a file or "
                             "s3://bucket/prefix")

    def _store(self, source: str) -> Store | None:
        """The store ``source`` names, opened once; None for a plain directory or file."""
        if source in self._stores:
            return self._stores[source]
        if "://" in source and not source.startswith("s3://"):
            raise InputError(f"audit source {source!r} is neither a path nor an s3:// URI")
        if not source.startswith("s3://") and not _is_folder(Path(source) / "sha256"):
            return None
        from attest.stores import from_uri

        store = self._stores[source] = from_uri(source)
        return store

    def _source(self, source: str) -> Iterator[tuple[str, bytes | EvidenceRejected]]:
        store = self._store(source)
        if store is not None:
            yield from store.all_attestations()
            return
        for file, unlisted, named in self._unread(source):
            yield str(file), unlisted or _read_file(file, named=named)


def _reader(unlisted: EvidenceRejected | None, path: Path, named: bool) -> Callable[[], bytes | EvidenceRejected]:
    """How to read a listed file when its facts are needed: as the audit without an index reads it."""
    if unlisted is not None:
        return lambda: unlisted
    return functools.partial(_read_file, path, named=named)


def _scanned_as(index: Index, key: str, stamp: str | None, settled_before: int, digest: str) -> None:
    """Note in the index that the file at ``key`` held bytes of sha256 ``digest`` when it had ``stamp`` (the next
    run's listing), if that stamp may stand for its bytes."""
    if _settled(stamp, settled_before):
        index.scan(key, stamp, digest)  # (a stamp that is None is never settled)


#: A local file changed less than this long ago may change again within the same clock tick without its stamp
#: changing (as git's "racily clean" files): its digest is not remembered by its stamp.
_RACY_NS = 2_000_000_000


def _settled(stamp: str | None, before: int) -> bool:
    """Whether a stamp may stand for the bytes read: a local file's or an S3 object's only once its times are older
    than the clock's tick could hide a second write (``before``: the audit's start less that tick, in ns)."""
    if stamp is None:
        return False
    parts = stamp.split(":")
    if parts[0] == "s3" and len(parts) == 4 and parts[3].isdigit():  # s3:ETAG:SIZE:SECONDS
        return int(parts[3]) * 1_000_000_000 < before
    if len(parts) != 4 or not all(map(str.isdigit, parts)):
        return False  # a stamp of no known shape stands for nothing
    return max(int(parts[1]), int(parts[2])) < before


def _spelled(uri: str) -> str:
    """A file's name as the report and the index give it: text, whatever bytes the file system holds. In a name
    that is not UTF-8 each byte that is not is spelled ``\\udcNN`` (the file is still read by its own name), and a
    backslash is then doubled in every name, so that no two files share a spelling; character by character, so that
    a folder's spelling begins its files'."""
    if "\\" not in uri:
        try:
            uri.encode("utf-8")
        except UnicodeEncodeError:
            pass
        else:
            return uri
    return "".join("\\\\" if c == "\\" else f"\\u{ord(c):04x}" if 0xD800 <= ord(c) <= 0xDFFF else c for c in uri)


def _walk(root: Path) -> Iterator[tuple[Path, EvidenceRejected | None]]:
    """``*.intoto.jsonl`` and ``*.sigstore.json`` under ``root`` (not a store), in a stable order, skipping
    hidden directories and not following symbolic links to directories; with each folder that cannot be
    listed as (that folder, why), so that the audit reports what it skipped."""
    from verify.errors import MalformedEvidence

    unlisted: list[OSError] = []
    for directory, subdirs, files in _walked(root, unlisted):
        while unlisted:
            e = unlisted.pop()
            yield Path(e.filename), MalformedEvidence(f"cannot list the folder {e.filename}: {e.strerror or e}")
        subdirs[:] = sorted(d for d in subdirs if not d.startswith("."))
        for name in sorted(files):
            if name.endswith(PATTERNS):
                yield Path(directory) / name, None
    for e in unlisted:  # the last folders walked
        yield Path(e.filename), MalformedEvidence(f"cannot list the folder {e.filename}: {e.strerror or e}")


def _walked(root: Path, unlisted: list[OSError]) -> Iterator[tuple[str, list[str], list[str]]]:
    """``os.walk(root)`` top-down, without recursion (Python 3.11's recurses once a level: a folder nested a few
    thousand deep, anyone's to make in a folder audited, ended the audit in a RecursionError); a folder that cannot
    be listed goes to ``unlisted``. The caller may prune a level's folders in place, as with os.walk."""
    stack = [str(root)]
    while stack:
        directory = stack.pop()
        try:
            with os.scandir(directory) as listing:
                entries = list(listing)
        except OSError as e:
            unlisted.append(e)
            continue
        subdirs = [e.name for e in entries if e.is_dir(follow_symlinks=False)]
        files = [e.name for e in entries if not e.is_dir(follow_symlinks=False)]
        yield directory, subdirs, files
        stack.extend(os.path.join(directory, name) for name in reversed(subdirs))


def _is_folder(path: Path) -> bool:
    """Whether ``path`` is a folder; one this process may not look at is an error, never "not a folder"."""
    try:
        return stat.S_ISDIR(os.stat(path).st_mode)
    except (FileNotFoundError, NotADirectoryError):
        return False
    except OSError as e:
        import errno

        advice = "a link that leads back to itself: give the folder it should name" if e.errno == errno.ELOOP else \
            "give this process read access to it"
        raise InputError(f"cannot read audit source {path}: {e.strerror or e}; {advice}") from e


def _read_file(path: Path, *, named: bool) -> bytes | EvidenceRejected:
    """One attestation file through the hardened reader: a FIFO or device is refused, never waited on. A
    file found in a folder that cannot be read is that file's anomaly; one named on the command line is the
    invocation's error."""
    from verify.errors import MalformedEvidence
    from verify.formats.evidence import read_evidence_file

    try:
        return read_evidence_file(path)
    except EvidenceRejected as e:
        return e
    except InputError as e:
        if not named or (path.exists() and not path.is_file()):  # that file's problem, reported
            return MalformedEvidence(str(e))
        raise


def _sha256(uri: str, opener: Callable[[], BinaryIO]) -> str | EvidenceRejected:
    """The sha256 of a stored artefact's bytes, streamed; or why they cannot be read (a FIFO or a symbolic
    link where an artefact should be, refused by the store's opener, is that artefact's anomaly)."""
    from attest.errors import StoreError
    from verify.digests import hash_stream
    from verify.errors import MalformedEvidence

    try:
        with opener() as stream:
            return hash_stream(iter(functools.partial(stream.read, HASH_CHUNK), b""), ["sha256"])["sha256"]
    except StoreError as e:
        return MalformedEvidence(str(e))
    except OSError as e:
        return MalformedEvidence(f"cannot read artefact {uri}: {e.strerror or e}")


# --- progress and text output ----------------------------------------------------------------------------

class _Live:
    """Live counts on a terminal: attestations checked, then stored artefacts hashed."""

    def __init__(self, bar: Progress, redraws: Sequence[threading.Thread] = ()) -> None:
        self._bar = bar
        self._redraws = redraws
        """The threads the bar started to redraw itself."""
        self._checked = bar.add_task("attestations", total=None, what="attestations checked")
        self._hashed: TaskID | None = None

    def checked(self, n: int) -> None:
        self._bar.advance(self._checked, n)

    def hashed(self, n: int) -> None:
        if self._hashed is None:
            self._hashed = self._bar.add_task("artefacts", total=None, what="stored artefacts hashed")
        self._bar.advance(self._hashed, n)

    def stop(self) -> None:
        """Everything is read: the counts go, and the thread that redrew them with them (a process running
        another thread makes the report on one core: :func:`verify.audit._halves.in_two_halves`)."""
        self._bar.stop()
        for thread in self._redraws:  # (rich tells it to stop, and does not wait for it)
            thread.join(timeout=2)


@contextmanager
def _progress() -> Iterator[_Live | None]:
    """Live counts of attestations checked and stored artefacts hashed, on stderr when it is a terminal."""
    if not sys.stderr.isatty():
        yield None
        return
    from rich.console import Console
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    columns = (SpinnerColumn(), TextColumn("auditing: {task.completed:,.0f} {task.fields[what]}"),
               TimeElapsedColumn())
    before = set(threading.enumerate())
    with Progress(*columns, console=Console(stderr=True), transient=True) as bar:
        yield _Live(bar, [thread for thread in threading.enumerate() if thread not in before])


#: Rows of the text table at most (rich takes a few milliseconds a row).
TEXT_ROWS = 1000

_MARK = {"passed": "[green]✔[/]", "failed": "[red]✘ failed[/]", "anomalous": "[bold red]⚠[/]",
         "absent": "[dim]·[/]"}


def _text(report: AuditReport, *, color: bool) -> str:
    """The report as a table and a list of anomalies; evidence text is never markup nor control codes: each piece of
    it is a :class:`rich.text.Text` of its own (:func:`_shown`), so that no two pieces side by side make a tag."""
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    shown = report.artifacts
    title = f"{len(report.artifacts)} artefact(s) from {report.attestations} attestation(s)"
    if report.stored:
        title += f", {report.stored} stored artefact(s) hashed"
    if report.unread:
        title += f", {report.unread} part(s) of the sources not read (see the anomalies)"
    if len(shown) > TEXT_ROWS:  # a table that long is for a machine: keep what a person must see
        shown = report.with_anomalies()[:TEXT_ROWS]
        title += (f", {len(shown)} shown (those with anomalies); --format json or html lists every one")
    table = Table(title=title, title_justify="left", header_style="bold")
    table.add_column("artefact", overflow="fold", min_width=14)  # a name is shown whole, never cut short
    table.add_column("sha256", no_wrap=True)
    table.add_column("commit", no_wrap=True)
    table.add_column("built", no_wrap=True)
    for name in report.stages:
        table.add_column(escape(printable(name)), justify="center", no_wrap=True)
    if report.releases:
        table.add_column("releases", overflow="fold")
    table.add_column("anomalies", overflow="fold")
    for artifact in shown:
        build = artifact.build
        stage_marks = []
        for stage in artifact.stages:
            first = stage.first_passed
            when = f" {first.time:%Y-%m-%d}" if stage.status == "passed" and first and first.time else ""
            stage_marks.append(_MARK[stage.status] + when)
        kinds = sorted({a.kind for a in artifact.anomalies})
        releases = [_shown(", ".join(dict.fromkeys(r.result for r in artifact.releases)) or None)] \
            if report.releases else []
        table.add_row(
            _shown(", ".join(artifact.names)) if artifact.names else "[dim](no trusted provenance)[/]",
            _shown(artifact.sha256[:16]),
            _shown(build.commit[:12] if build and build.commit else None),
            _shown(f"{build.finished_on:%Y-%m-%d %H:%M}" if build and build.finished_on else None),
            *stage_marks,
            *releases,
            f"[bold red]{escape(', '.join(kinds))}[/]" if kinds else "[green]none[/]",
        )
    out = io.StringIO()
    console = Console(file=out, width=max(120, _columns()), force_terminal=color, no_color=not color,
                      highlight=False, emoji=False)  # (":heavy_check_mark:" in a name must not draw a pass)
    console.print(table)
    for line in [*(_releases(report) if report.releases else ()), *_exceptions(report), *_anomalies(report),
                 *(_dora(report.dora) if report.dora is not None else ())]:
        console.print(line, soft_wrap=True)
    return out.getvalue()


def _shown(value: str | None, style: str = "") -> Text:
    """Evidence text as the text report prints it: spelled out (:func:`printable`), never read as markup."""
    from rich.text import Text

    return Text(printable(value), style=style) if value else Text("-", style="dim")


def _line(*parts: str | Text) -> Text:
    """One line of the text report: our own markup (a str) and evidence (a :class:`Text`, from :func:`_shown`)."""
    from rich.text import Text

    line = Text()
    for part in parts:
        line.append(part if isinstance(part, Text) else Text.from_markup(part))
    return line


def _anomalies(report: AuditReport) -> list[Text]:
    """Each anomaly, a line each, then what each kind means; or that there is none."""
    if not report.anomalies:
        return [_line("[green]no anomalies[/]")]
    lines = [_line(f"\n[bold red]{_count(len(report.anomalies))}:[/]")]
    for anomaly in report.anomalies:
        where = (" (", _shown(anomaly.source), ")") if anomaly.source else ()
        lines.append(_line(f"  [bold red]{anomaly.kind}[/] ", _shown((anomaly.sha256 or "-")[:16]), "  ",
                           _shown(anomaly.message), *where))
    meanings = "; ".join(f"{k}: {ANOMALY_KINDS.get(k, '')}" for k in sorted({a.kind for a in report.anomalies}))
    lines.append(_line("\n", _shown(meanings, "dim")))
    return lines


def _duration(seconds: float | None) -> str:
    from verify.audit.dashboard import duration

    return duration(seconds) if seconds is not None else "[dim]no data[/]"


def _padded(text: Text, width: int) -> Text:
    text = text.copy()
    text.pad_right(max(width - text.cell_len, 0))
    return text


def _dora(dora: Mapping[str, Any]) -> list[Text]:
    """The DORA figures, a line per component and environment (a figure without data says so)."""
    window = dora["window"]
    lines = [_line(f"\n[bold]DORA figures[/] {window['since'][:10]} to {window['until'][:10]}, from signed "
                   "deployment records:")]
    if not dora["components"]:
        lines.append(_line("  [dim]no trusted deployment record: nothing to count[/]"))
    for component, environments in dora["components"].items():
        for environment, figures in environments.items():
            frequency, lead = figures["deploymentFrequency"], figures["leadTime"]
            failures, restore = figures["changeFailureRate"], figures["timeToRestore"]
            rate = "[dim]no data[/]" if failures["rate"] is None else \
                f"{failures['rate']:.0%} ({failures['failures']}/{failures['deployments']})"
            weekly = "none in the window" if frequency["perWeek"] is None else f"{frequency['perWeek']:.1f}/week"
            lines.append(_line(
                "  ", _padded(_shown(component), 12), " ", _padded(_shown(environment), 6),
                f" {frequency['deployments']} deployment(s), {weekly}; lead time {_duration(lead['medianSeconds'])} "
                f"median, {_duration(lead['p90Seconds'])} p90 ({lead['changes']} change(s)); failure rate {rate}; "
                f"restore {_duration(restore['medianSeconds'])} ({restore['incidents']} incident(s))"))
    return lines


def _releases(report: AuditReport) -> list[Text]:
    """The release manifests signed by a release signer, one line each, then a line per component artefact."""
    lines = [_line(f"\n[bold]{len(report.releases)} release(s):[/]")]
    for release in report.releases:
        created = f"  created {release.created:%Y-%m-%d %H:%M}  signed by "
        lines.append(_line("  ", _shown(release.name, "bold"), created, _shown(", ".join(release.signers)), "  (",
                           _shown(release.attestation), ")"))
        lines.extend(_line("    ", _shown(c.name), "  ", _shown(name), "  ", _shown(sha[:16]), "  commit ",
                           _shown(c.commit[:12] if c.commit else None))
                     for c in release.components for name, sha in c.artifacts)
    return lines


def _exceptions(report: AuditReport) -> list[Text]:
    """Every hotfix and rollback the environments recorded, one line each (what bypassed the ordinary gate)."""
    lines = []
    for kind in ("hotfix", "rollback"):
        found = report.exceptions(kind)
        if found:
            lines.append(_line(f"\n[bold]{len(found)} {kind}(s):[/]"))
        for e in found:
            about = dict(e.about)
            when = f"{e.time:%Y-%m-%d %H:%M}" if e.time else "?"
            lines.append(_line("  ", _shown(e.stage), "  ", _shown(about.get("component")), " of release ",
                               _shown(about.get("release")), "  ", _shown(e.result), f"  {when}  signed by ",
                               _shown(", ".join(e.signers)), "  (", _shown(e.attestation), ")"))
    return lines


def _columns() -> int:
    try:
        return os.get_terminal_size(sys.stdout.fileno()).columns
    except (OSError, ValueError):
        return 0


def _count(n: int) -> str:
    return f"{n} anomaly" if n == 1 else f"{n} anomalies"
