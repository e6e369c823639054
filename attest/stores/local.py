"""A store in a local directory (or a mounted share), with the content-addressed layout."""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

from attest._atomic import write_atomic
from attest.errors import StoreError
from attest.stores import artifact_key, attestation_key
from verify.evidence import read_evidence_file

__all__ = ["LocalStore"]

_CHUNK = 4 * 1024 * 1024


class LocalStore:
    """``DIR/sha256/<hex>/...`` on the local file system. Write-once."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.uri = str(self.root)

    def _target(self, key: str) -> Path:
        """The path for ``key``, after checking that no symlink on the way leads out of the store."""
        target = self.root / key
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise StoreError(f"cannot create {target.parent}: {e.strerror}") from e
        if not target.parent.resolve().is_relative_to(self.root.resolve()) or target.is_symlink():
            raise StoreError(f"{target} would be written outside the store {self.root}; "
                             "a symbolic link in the store leads elsewhere")
        return target

    def put_artifact(self, sha256: str, name: str, source: Path,
                     progress: Callable[[int], None] | None = None) -> str:
        target = self._target(artifact_key(sha256, name))
        if target.exists():
            if _sha256_of(target) != sha256:
                raise StoreError(f"{target} already holds different bytes; the store is write-once")
            return str(target)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
        try:
            digest = hashlib.sha256()
            with os.fdopen(fd, "wb") as out, Path(source).open("rb") as src:
                while chunk := src.read(_CHUNK):
                    digest.update(chunk)
                    out.write(chunk)
                    if progress is not None:
                        progress(len(chunk))
                out.flush()
                os.fsync(out.fileno())
            # what is stored must be what was attested: hash the bytes as they were copied
            if digest.hexdigest() != sha256:
                raise StoreError(f"{source} changed after it was hashed (sha256 now {digest.hexdigest()[:16]}...); "
                                 "build again")
            os.chmod(tmp, 0o644)
            try:
                os.link(tmp, target)
            except FileExistsError:
                if _sha256_of(target) != sha256:
                    raise StoreError(f"{target} already holds different bytes; the store is write-once") from None
        except OSError as e:
            raise StoreError(f"cannot write {target}: {e.strerror}") from e
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
        return str(target)

    def put_attestation(self, sha256: str, kind: str, data: bytes) -> str:
        target = self._target(attestation_key(sha256, kind, data))
        try:
            write_atomic(target, data, exclusive=True)
        except FileExistsError:
            if target.read_bytes() != data:
                raise StoreError(f"{target} already holds different bytes; the store is write-once") from None
        except OSError as e:
            raise StoreError(f"cannot write {target}: {e.strerror}") from e
        return str(target)

    def attestations(self, sha256: str) -> Iterator[tuple[str, bytes]]:
        directory = self.root / "sha256" / sha256
        if not directory.is_dir():
            return
        for path in sorted(directory.glob("*.intoto.jsonl")):
            yield str(path), read_evidence_file(path)

    def all_attestations(self) -> Iterator[tuple[str, bytes]]:
        base = self.root / "sha256"
        if not base.is_dir():
            return
        for path in sorted(base.glob("*/*.intoto.jsonl")):
            yield str(path), read_evidence_file(path)


def _sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()
