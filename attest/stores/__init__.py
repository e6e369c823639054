"""Artefact stores: content-addressed, write-once, untrusted.

Layout (a directory or ``s3://bucket/prefix``), keyed by the artefact's sha256::

    sha256/<hex>/artifact/<name>
    sha256/<hex>/<kind>-<sha256 of the envelope line>.intoto.jsonl

Nothing read from a store is trusted because of where it was found: the
signatures on the attestations carry the trust. Objects are written once;
writing the same bytes again is a no-op, writing other bytes is an error.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO, Protocol

from attest.errors import StoreError
from verify.errors import EvidenceRejected

__all__ = ["EVIDENCE_SUFFIXES", "KINDS", "Store", "artifact_key", "attestation_key", "from_uri", "safe_name"]

#: Names of the files read as evidence in a store's ``sha256/<hex>/``: what attest writes (``.intoto.jsonl``)
#: and Sigstore bundles put beside them (``.sigstore.json``).
EVIDENCE_SUFFIXES = (".intoto.jsonl", ".sigstore.json")
#: Attestation kinds a store holds, by the file name prefix.
KINDS = ("provenance", "vsa", "approval", "release", "reproduction")

_HEX64 = re.compile(r"[0-9a-f]{64}")


def safe_name(name: str) -> str:
    """Check that a subject name can be used as a relative path inside a store, and return it.

    Subject names are data: they may not climb out (``..``), be absolute, carry a
    NUL or a backslash, or name a Windows drive.
    """
    if not name or "\x00" in name or "\\" in name or name.startswith("/") or re.match(r"^[A-Za-z]:", name):
        raise StoreError(f"subject name {name!r} cannot be stored: it must be a plain relative path")
    if any(part in ("", ".", "..") for part in name.split("/")):
        raise StoreError(f"subject name {name!r} cannot be stored: it must not contain '.', '..' or empty parts")
    return name


def _check_hex(sha256: str) -> str:
    if not _HEX64.fullmatch(sha256):
        raise StoreError(f"{sha256!r} is not a lower-case hex sha256 digest")
    return sha256


def artifact_key(sha256: str, name: str) -> str:
    return f"sha256/{_check_hex(sha256)}/artifact/{safe_name(name)}"


def attestation_key(sha256: str, kind: str, line: bytes) -> str:
    if kind not in KINDS:
        raise StoreError(f"unknown attestation kind {kind!r}; expected one of {list(KINDS)}")
    return f"sha256/{_check_hex(sha256)}/{kind}-{hashlib.sha256(line).hexdigest()}.intoto.jsonl"


class Store(Protocol):
    """Where artefacts and attestations are published and found again."""

    uri: str

    def put_artifact(self, sha256: str, name: str, source: Path) -> str:
        """Store the file ``source`` (whose sha256 is ``sha256``) as artefact ``name``; return its URI."""
        ...

    def put_attestation(self, sha256: str, kind: str, data: bytes) -> str:
        """Store ``data`` (one or more envelope lines) for the artefact ``sha256``; return its URI."""
        ...

    def attestations(self, sha256: str) -> Iterator[tuple[str, bytes | EvidenceRejected]]:
        """Every attestation file stored for the artefact ``sha256``, as (URI, its bytes or why they were not
        read: a file over a limit or not a regular file is that file's rejection, never the whole store's)."""
        ...

    def all_attestations(self) -> Iterator[tuple[str, bytes | EvidenceRejected]]:
        """Every attestation file in the store, as :meth:`attestations` gives them, for audits."""
        ...

    def artifacts(self) -> Iterator[tuple[str, str, Callable[[], BinaryIO]]]:
        """(URI, the sha256 its address claims, a function opening its bytes) of every stored artefact."""
        ...


def from_uri(uri: str, *, retain_days: int | None = None, retention_mode: str = "GOVERNANCE") -> Store:
    """The store at ``uri``: ``s3://bucket/prefix`` or a directory path.

    ``retain_days`` sets S3 Object Lock retention on attestation objects (S3 stores only).
    """
    if uri.startswith("s3://"):
        from attest.stores import s3

        mode: s3.RetentionMode = "COMPLIANCE" if retention_mode == "COMPLIANCE" else "GOVERNANCE"
        return s3.S3Store.from_uri(uri, retain_days=retain_days, retention_mode=mode)
    if retain_days is not None:
        raise StoreError(f"--retain-days needs an s3:// store with Object Lock; {uri} is a directory")
    if "://" in uri:
        raise StoreError(f"store {uri!r} is neither a directory nor an s3:// URI")
    from attest.stores import local

    return local.LocalStore(Path(uri))
