"""Steps (1) and (2) of an audit (:mod:`verify.audit`): every attestation file, in the order read, with its facts
checked now (on every core: :mod:`verify.audit._workers`) or as the index holds them for its place and bytes."""

from __future__ import annotations

import functools
import hashlib
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass

from verify.audit._check import _Fact, _Setup
from verify.audit._workers import _facts
from verify.audit.index import EVERYWHERE, FactIndex, Kept, Listed, disagrees, encode_facts, touches
from verify.audit.report import Progress, Source
from verify.errors import EvidenceRejected

__all__: list[str] = []


@dataclass(slots=True)
class _File:
    """One attestation file of the sources, in the order read."""

    uri: str
    digest: str | None
    """The sha256 of its bytes; None when they could not be read."""
    touch: tuple[str, ...]
    count: int
    facts: list[_Fact] | None
    """Its facts, when checked in this audit; None: in the index."""
    read: Callable[[], bytes | EvidenceRejected] | None = None
    """How to read it again, if the index's facts for it do not read back."""
    checking: bool = False
    """Sent to be checked, its facts not back yet."""
    mismatch: bool = False
    """With ``reverify``: the index held other facts for it than its check gives now."""


def _read(sources: Iterable[tuple[str, bytes | EvidenceRejected | Listed]], setup: _Setup, *,
          index: FactIndex | None, keep: FactIndex | None, all_facts: bool, reverify: bool, workers: int,
          batch_size: int, inline: int, progress: Progress | None) -> Iterator[_File]:
    """Steps (1) and (2): every file, in order, with its facts checked now or what ``index`` holds of it; what is
    checked is kept in ``keep`` (the facts of every file with ``all_facts``, else :func:`_kept_facts`)."""
    ordered: deque[_File] = deque()
    """Files not given out yet, in order (a file being checked holds back those after it)."""
    waiting: deque[_File] = deque()
    """Files sent to be checked, in order, until their facts come back."""

    def known(uri: str, kept: Kept, read: Callable[[], bytes | EvidenceRejected] | None) -> None:
        """A file the index holds for these bytes: not checked."""
        ordered.append(_File(uri, kept.digest, kept.touch, kept.facts, None, read))
        if progress is not None:
            progress(1)

    def to_check() -> Iterator[Source]:
        for uri, payload in sources:
            reread: Callable[[], bytes | EvidenceRejected] | None = None
            record: Callable[[str], None] | None = None
            kept = index.kept(uri) if index is not None else None
            claimed = payload.digest if isinstance(payload, Listed) else None  # (what the index said its stamp means)
            if isinstance(payload, Listed):
                if kept is not None and payload.digest is not None and kept.digest == payload.digest:
                    known(uri, kept, payload.read)
                    continue
                reread, record, payload = payload.read, payload.record, payload.read()
            elif isinstance(payload, bytes) and kept is not None:  # given, not listed: kept, should it be needed
                reread = functools.partial(_same, payload)
            digest = hashlib.sha256(payload).hexdigest() if isinstance(payload, bytes) else None
            if record is not None and digest is not None:
                record(digest)
            if kept is not None and digest is not None and kept.digest == digest:
                known(uri, kept, reread)
                continue
            file = _File(uri, digest, (), 0, None, reread, checking=True)
            file.mismatch = reverify and claimed is not None and digest is not None and claimed != digest
            ordered.append(file)
            waiting.append(file)
            yield uri, payload

    def ready() -> Iterator[_File]:
        while ordered and not ordered[0].checking:
            yield ordered.popleft()

    for batch, results in _facts(to_check(), setup, workers=workers, batch_size=batch_size, inline=inline):
        for facts in results:
            file = waiting.popleft()
            file.facts, file.touch, file.count, file.checking = facts, touches(facts), len(facts), False
            if keep is not None and file.digest is not None:
                file.mismatch = file.mismatch or (reverify and disagrees(keep, file.uri, file.digest, facts,
                                                                         every=all_facts))
                keep.put(file.uri, file.digest, _kept_facts(facts, file.touch, every=all_facts), file.touch,
                         file.count)
        if progress is not None:
            progress(len(batch))
        yield from ready()
    yield from ready()


def _same(data: bytes) -> bytes:
    return data


def _kept_facts(facts: Sequence[_Fact], touch: Sequence[str], *, every: bool) -> str:
    """The facts an index keeps of a file: with ``every`` (an index that keeps no judgement), all of them; else
    those of a file read on every audit (:data:`EVERYWHERE`), and of another none (``""``): it is read and checked
    again in the rare audit that judges one of its artefacts again, and its artefacts' judgements are what the
    index answers with."""
    return encode_facts(facts) if every or EVERYWHERE in touch else ""
