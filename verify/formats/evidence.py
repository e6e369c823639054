"""Reading evidence files: ``.intoto.jsonl`` (one DSSE envelope a line) and Sigstore bundles.

Reading is not trusting: this module only finds envelopes and bundles in
bytes, with strict limits. Signatures are checked by :mod:`verify.verifier`.
"""

from __future__ import annotations

import functools
import hashlib
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from verify.errors import EvidenceRejected, LimitExceeded, MalformedEvidence
from verify.files import read_file
from verify.formats import strict_json
from verify.formats.bundle import MEDIA_TYPES, Bundle, parse_bundle
from verify.formats.envelope import Envelope
from verify.formats.statement import Statement, parse_statement
from verify.limits import (
    MAX_ENVELOPES_PER_FILE,
    MAX_EVIDENCE_BYTES,
    MAX_EVIDENCE_BYTES_PER_RUN,
    MAX_EVIDENCE_FILES_PER_RUN,
)

__all__ = ["BUNDLE_MEDIA_TYPES", "Evidence", "EvidenceBudget", "load_evidence", "read_evidence_file"]

BUNDLE_MEDIA_TYPES = MEDIA_TYPES


@dataclass(frozen=True)
class Evidence:
    """One envelope or bundle, as found (not yet verified)."""

    source: str
    """Where it was found: ``FILE`` or ``FILE:LINE``."""
    digest: str
    """sha256 of the document's bytes, without the whitespace around it (a JSON Lines line without its
    newline, a bundle file's JSON): what a VSA's ``inputAttestations`` names. (A store's object name hashes
    the file as written, newline included.)"""
    envelope: Envelope | None
    """The DSSE envelope (None for a message-signature bundle)."""
    bundle: Bundle | None = field(default=None, repr=False)
    """The Sigstore bundle it came in, if any, as read (:mod:`verify.formats.bundle`)."""
    raw: bytes = field(default=b"", repr=False)

    @property
    def has_certificate(self) -> bool:
        return self.bundle is not None and self.bundle.keyless

    def statement(self) -> Statement:
        """The in-toto statement the envelope carries, parsed once however often it is asked for (the hashing
        plan, the provenance check and the stage's VSAs all read it). Parsing is not trusting: whoever asks
        still checks the signature. Raises the reason it cannot be read, as :func:`parse_statement` does."""
        parsed = self._statement
        if isinstance(parsed, EvidenceRejected):
            raise type(parsed)(str(parsed))  # a fresh one each time: a raised exception keeps its traceback
        return parsed

    @functools.cached_property
    def _statement(self) -> Statement | EvidenceRejected:
        if self.envelope is None:
            return MalformedEvidence(f"{self.source} is a message signature: it carries no statement")
        try:
            return parse_statement(self.envelope.payload, what=f"{self.source} statement")
        except EvidenceRejected as e:
            return e


def _from_object(obj: Any, *, source: str, raw: bytes) -> Evidence:
    digest = hashlib.sha256(raw).hexdigest()
    if isinstance(obj, dict) and "mediaType" in obj:
        bundle = parse_bundle(obj, source=source)
        return Evidence(source=source, digest=digest, envelope=bundle.envelope, bundle=bundle, raw=raw)
    return Evidence(source=source, digest=digest, envelope=Envelope.from_dict(obj, what=source), raw=raw)


def load_evidence(data: bytes, *, source: str) -> list[Evidence | MalformedEvidence]:
    """Every envelope or bundle in ``data``; a line that does not parse is returned as its error.

    A file is either one JSON document (a bundle or an envelope, possibly
    pretty-printed) or JSON Lines with one document a line. Over a limit of the
    whole file (its size, more than :data:`MAX_ENVELOPES_PER_FILE` documents, a
    single document nested too deeply) is :class:`LimitExceeded`, raised before
    reading on; one line of JSON Lines over a limit (nested too deeply, say) is
    that line's error, like any other line that does not parse.
    """
    if len(data) > MAX_EVIDENCE_BYTES:
        raise LimitExceeded(f"{source} is {len(data)} bytes; at most {MAX_EVIDENCE_BYTES} are read")
    stripped = data.strip()
    if not stripped:
        raise MalformedEvidence(f"{source} is empty; expected DSSE envelopes or a Sigstore bundle")
    lines = _lines(data)
    first_number, first = next(lines)
    if b"\n" not in stripped:
        return [_parse(first, source=source)]
    if not _is_document_line(first, source=source):
        # perhaps one pretty-printed document; if not, JSON Lines whose first line is broken
        try:
            whole = strict_json.loads(stripped, what=source)
        except (MalformedEvidence, LimitExceeded) as e:
            if not any(_is_document_line(line, source=source) for _, line in _lines(data, MAX_ENVELOPES_PER_FILE)):
                if isinstance(e, MalformedEvidence):
                    return [e]
                raise
        else:
            try:
                return [_from_object(whole, source=source, raw=stripped)]
            except MalformedEvidence as e:
                return [e]
    found = [_parse_line(first, source=f"{source}:{first_number}")]
    for number, line in lines:
        if len(found) >= MAX_ENVELOPES_PER_FILE:
            raise LimitExceeded(f"{source} holds more than {MAX_ENVELOPES_PER_FILE} envelopes")
        found.append(_parse_line(line, source=f"{source}:{number}"))
    return found


#: A line with something other than JSON whitespace on it (blank lines are skipped in C, not in a loop).
_LINE = re.compile(rb"^[ \t\r\f\v]*[^\s].*$", re.MULTILINE)


def _lines(data: bytes, most: int | None = None) -> Iterator[tuple[int, bytes]]:
    """(line number in the file, stripped line) of every non-blank line of ``data`` (the first ``most``), lazily."""
    number, counted = 1, 0
    for seen, match in enumerate(_LINE.finditer(data)):
        if most is not None and seen >= most:
            return
        number += data.count(b"\n", counted, match.start())
        counted = match.start()
        yield number, match.group().strip()


def _is_document_line(line: bytes, *, source: str) -> bool:
    """True if ``line`` is a JSON object by itself, as every line of JSON Lines evidence is."""
    if not (line.startswith(b"{") and line.endswith(b"}")):
        return False  # cheap: a line of a pretty-printed document is usually not even shaped like one
    try:
        strict_json.loads(line, what=source)
    except EvidenceRejected:
        return False
    return True


def _parse(raw: bytes, *, source: str) -> Evidence | MalformedEvidence:
    try:
        return _from_object(strict_json.loads(raw, what=source), source=source, raw=raw)
    except MalformedEvidence as e:
        return e


def _parse_line(raw: bytes, *, source: str) -> Evidence | MalformedEvidence:
    """One line of JSON Lines: a line over a limit is that line's error, not the whole file's."""
    try:
        return _parse(raw, source=source)
    except LimitExceeded as e:
        return MalformedEvidence(str(e))


def read_evidence_file(path: str | Path) -> bytes:
    """Read an evidence file, refusing one over the size limit before reading it (:func:`verify.files.read_file`:
    a regular file only, its size from the open file, reading stops one byte past the limit)."""
    return read_file(path, what="attestation", limit=MAX_EVIDENCE_BYTES, too_large=LimitExceeded)


class EvidenceBudget:
    """What one run may still read: :data:`MAX_EVIDENCE_FILES_PER_RUN` files and
    :data:`MAX_EVIDENCE_BYTES_PER_RUN` bytes of attestations, across every source.

    A store an attacker can write to may hold many large files (one 16 MiB file hard-linked many
    times costs nothing to store); past the budget the run stops with :class:`LimitExceeded` (a
    rejection, exit 1) instead of holding them all.
    """

    def __init__(self, files: int = MAX_EVIDENCE_FILES_PER_RUN, size: int = MAX_EVIDENCE_BYTES_PER_RUN) -> None:
        self.files_left = files
        self.bytes_left = size

    def take(self, source: str, data: bytes | EvidenceRejected) -> list[Evidence | MalformedEvidence]:
        """Count ``data`` (the bytes of one attestation file, or why it could not be read) and parse it."""
        self.files_left -= 1
        if self.files_left < 0:
            raise LimitExceeded(f"gave up at {source}: this verification already read {MAX_EVIDENCE_FILES_PER_RUN} "
                                "attestation files; the store holds too many for one artefact")
        if isinstance(data, EvidenceRejected):
            return [data if isinstance(data, MalformedEvidence) else MalformedEvidence(str(data))]
        self.bytes_left -= len(data)
        if self.bytes_left < 0:
            raise LimitExceeded(f"gave up at {source}: this verification already read {MAX_EVIDENCE_BYTES_PER_RUN} "
                                "bytes of attestations; the store holds too much for one artefact")
        try:
            return load_evidence(data, source=source)
        except EvidenceRejected as e:  # over a limit of the whole file: that file's error, not the run's
            return [e if isinstance(e, MalformedEvidence) else MalformedEvidence(str(e))]
