"""Artefact stores: content-addressed, write-once, untrusted.

Layout (a directory or ``s3://bucket/prefix``), keyed by the artefact's sha256, with an index by blake3::

    sha256/<hex>/artifact/<name>
    sha256/<hex>/<kind>-<sha256 of the envelope line>.intoto.jsonl
    blake3/<hex>                  the artefact's sha256 (64 hex digits and a newline)

The blake3 index lets a verifier that computed only the artefact's blake3 (the cheap digest) find its
``sha256/<hex>/`` folder. It is a hint, like everything else in a store: the evidence found through it
is verified against the digest the verifier computed, so a wrong entry can only make a verification
fail. A store written before the index existed has no ``blake3/`` folder; a verifier then computes the
sha256 in the same read.

Nothing read from a store is trusted because of where it was found: the
signatures on the attestations carry the trust. Objects are written once;
writing the same bytes again is a no-op, writing other bytes is an error.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import BinaryIO, Protocol

from attest.errors import StoreError
from attest.stores.layout import (
    EVIDENCE_SUFFIXES,
    INDEX_FOLDER,
    KINDS,
    FiledDeployment,
    artifact_key,
    attestation_key,
    index_entry,
    index_key,
    parse_index_entry,
    safe_name,
)
from verify.errors import EvidenceRejected

__all__ = ["EVIDENCE_SUFFIXES", "INDEX_FOLDER", "KINDS", "FiledDeployment", "Store", "artifact_key",
           "attestation_key", "from_uri", "index_entry", "index_key", "parse_index_entry", "safe_name", "sha256_of"]

class Store(Protocol):
    """Where artefacts and attestations are published and found again."""

    uri: str
    remote: bool
    """True when asking the store costs a round trip (S3); a directory is asked before the artefact's read."""

    def put_artifact(self, sha256: str, name: str, source: Path) -> str:
        """Store the file ``source`` (whose sha256 is ``sha256``) as artefact ``name``; return its URI."""
        ...

    def put_attestation(self, sha256: str, kind: str, data: bytes) -> str:
        """Store ``data`` (one or more envelope lines) for the artefact ``sha256``; return its URI."""
        ...

    def put_index(self, blake3: str, sha256: str) -> str:
        """Record, once, that the artefact whose blake3 is ``blake3`` is stored under ``sha256``; return its URI."""
        ...

    def sha256_for(self, blake3: str) -> str | None:
        """The sha256 the blake3 index gives for ``blake3`` (a hint: nothing found through it is trusted for
        that), or None when the index has no such entry."""
        ...

    def has_index(self) -> bool:
        """Whether the store has a blake3 index at all (a store written before it existed has none)."""
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

    def listed_attestations(self) -> Iterator[tuple[str, str | None, Callable[[], bytes | EvidenceRejected]]]:
        """As :meth:`all_attestations`, listed and not read: (URI, a stamp that changes when the file is replaced
        (None: unknown), a function reading it): what an audit index needs to skip unchanged files."""
        ...

    def listed_artifacts(self) -> Iterator[tuple[str, str, Callable[[], BinaryIO], str | None]]:
        """As :meth:`artifacts`, with each one's stamp (None: unknown)."""
        ...

    def put_deployment(self, key: str, data: bytes) -> str:
        """Write the deployment record ``data`` once at ``key`` of the deployment index
        (:func:`~attest.stores.layout.deployment_key`); return its URI."""
        ...

    def deployments(self, environment: str | None = None) -> list[FiledDeployment]:
        """The deployment index (of ``environment`` only, if given), from one listing: what each entry's name
        claims, nothing read yet. A name that is not an entry's is left out (the index is a hint; every record
        is also filed under its artefacts, where an audit reads it)."""
        ...

    def read_deployment(self, filed: FiledDeployment) -> tuple[str, bytes | EvidenceRejected]:
        """(URI, the bytes of one indexed deployment record, or why they were not read)."""
        ...


def sha256_of(digests: Mapping[str, str], *, what: str, store: str) -> str:
    """The artefact's sha256 from ``digests``, under which a store files ``what``; refused when it is not known."""
    if "sha256" not in digests:
        raise StoreError(f"cannot publish the {what} to {store}: a store files attestations under the artefact's "
                         "sha256, and it is not known")
    return digests["sha256"]


def publishable(uri: str, *, retain_days: int | None = None, retention_mode: str = "GOVERNANCE") -> Store:
    """The store at ``uri``, once what can be checked without writing is checked (before any work): a
    local store is a folder, or does not exist yet and its parent folder does; an S3 URI is well formed, and
    its bucket has Object Lock when attestations are to be retained.
    """
    store = from_uri(uri, retain_days=retain_days, retention_mode=retention_mode)
    if retain_days is not None:
        from attest.stores import s3

        if isinstance(store, s3.S3Store):  # a bucket without Object Lock would be found after the artefacts' upload
            store.check_retention()
    root = getattr(store, "root", None)
    if isinstance(root, Path):
        if root.exists() and not root.is_dir():
            raise StoreError(f"store {root} is not a folder; give a folder (made if missing) or an s3:// URI")
        if not root.exists() and not root.parent.is_dir():
            raise StoreError(f"store {root} cannot be made: {root.parent} is not a folder")
    return store


def from_uri(uri: str, *, retain_days: int | None = None, retention_mode: str = "GOVERNANCE") -> Store:
    """The store at ``uri``: ``s3://bucket/prefix`` or a directory path.

    ``retain_days`` sets S3 Object Lock retention on attestation objects (S3 stores only).
    """
    if uri.startswith("s3://"):
        from attest.stores import s3  # lazy: start-up (boto3)

        mode: s3.RetentionMode = "COMPLIANCE" if retention_mode == "COMPLIANCE" else "GOVERNANCE"
        return s3.S3Store.from_uri(uri, retain_days=retain_days, retention_mode=mode)
    if retain_days is not None:
        raise StoreError(f"--retain-days needs an s3:// store with Object Lock; {uri} is a directory")
    if "://" in uri:
        raise StoreError(f"store {uri!r} is neither a directory nor an s3:// URI")
    from attest.stores import local  # lazy: only the store named is loaded

    return local.LocalStore(Path(uri))
