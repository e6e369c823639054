"""The gate's read of the artefact: one read, with a plan of digests that may still grow.

The read starts before the policy is loaded (start-up and policy loading then cost nothing on a large
file), with a provisional plan from the evidence named on the command line
(:func:`verify.matching.plan_algorithms`). What the policy, the store or the evidence found there
then requires is asked for with :meth:`ArtifactRead.ensure`:

* while the read runs, it is cancelled and started again with the plan that covers everything asked
  for (only what was read so far is lost, and it is only what the start-up overlapped);
* once it has finished, a second read computes what is missing together with one digest already
  computed, and the two reads must agree on that one: the file did not change in between, so every
  digest in the set names the same bytes.

An artefact given as ``sha256:HEX`` has that one digest and nothing else to compute. ``s3://`` objects
are streamed through the hashes the same way as files are read.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

from verify.digests import CHEAPEST_FIRST  # stdlib only: the gate starts its read before the trust core is imported

if TYPE_CHECKING:
    from verify.digests import DigestSet

__all__ = ["ArtifactRead", "Progress"]

_DIGEST_ARG = re.compile(r"sha256:([0-9a-f]{64})")

Progress = Callable[[str, int], Any]
"""``progress(description, total)``: a context manager giving a callback ``advance(n)``, or None."""


class ArtifactRead:
    """The digests of one artefact (a file, ``s3://bucket/key`` or ``sha256:HEX``), computed in a worker."""

    def __init__(self, artifact: str, pool: ThreadPoolExecutor, *, progress: Progress | None = None,
                 known: dict[str, str] | None = None) -> None:
        self.artifact = artifact
        self._pool = pool
        self._progress = progress
        self._cancels: list[threading.Event] = []
        self._required: set[str] = set()
        self._planned: set[str] = set()
        self._future: Future[DigestSet] = Future()
        self._path: Path | None = None
        given = _DIGEST_ARG.fullmatch(artifact)
        if given:
            known = {"sha256": given.group(1)}
        self.fixed = known is not None
        """True for ``sha256:HEX`` or ``known`` digests (an image's, from its manifest): nothing is computed."""
        if known is not None:
            from verify.digests import DigestSet

            self._future.set_result(DigestSet(dict(known)))
            self._planned = set(known)
        elif not artifact.startswith("s3://"):
            self._path = Path(artifact)
            if not self._path.is_file():
                from verify.errors import InputError

                raise InputError(f"artefact {artifact} does not exist or is not a file; give a file or sha256:<hex>")

    def start(self, algorithms: Iterable[str]) -> None:
        """Begin the read with a provisional plan (nothing is required yet)."""
        if self.fixed:
            return
        self._planned = set(algorithms)
        self._future = self._submit(self._planned)

    def ensure(self, algorithms: Iterable[str]) -> None:
        """Make sure the digest set will hold every one of ``algorithms`` (see the module docstring)."""
        self._required.update(algorithms)
        if self.fixed or self._required <= self._planned:
            return
        if not self._cancels or not self._future.done():
            if self._cancels:
                self._cancels[-1].set()  # the worker stops at its next chunk; the new read waits for it
            self._planned = set(self._required)
            self._future = self._submit(self._planned)
            return
        first = self._future
        missing = self._required - self._planned
        check = next(a for a in CHEAPEST_FIRST if a in self._planned)
        self._planned |= missing
        self._future = self._submit({*missing, check}, merge_with=first)

    def result(self) -> DigestSet:
        """The digest set (waiting for the read); raises what the read raised.

        Once anything was asked for with :meth:`ensure`, the set holds exactly that: a digest the provisional
        plan or a second read's check computed besides is left out, so the verdict never depends on which
        read happened to finish first.
        """
        found = self._future.result()
        if not self._required or self.fixed or set(found.digests) <= self._required:
            return found
        from verify.digests import DigestSet

        return DigestSet({a: d for a, d in found.digests.items() if a in self._required}, head=found.head)

    def has(self, algorithm: str) -> bool:
        """Whether ``algorithm`` is computed (or being computed) for the artefact."""
        return algorithm in self._planned

    def close(self) -> None:
        """Stop any read still running (the answer is known; the rest of a large file is not needed)."""
        for cancel in self._cancels:
            cancel.set()

    def _submit(self, algorithms: set[str], *, merge_with: Future[DigestSet] | None = None) -> Future[DigestSet]:
        ordered = [a for a in CHEAPEST_FIRST if a in algorithms]
        cancel = threading.Event()
        self._cancels.append(cancel)
        if merge_with is None:
            return self._pool.submit(self._read, ordered, cancel)
        return self._pool.submit(self._read_again, ordered, cancel, merge_with)

    def _read_again(self, algorithms: list[str], cancel: threading.Event, first: Future[DigestSet]) -> DigestSet:
        earlier = first.result()
        again = self._read(algorithms, cancel)
        if any(earlier.digests[a] != again.digests[a] for a in algorithms if a in earlier.digests):
            from verify.errors import InputError

            raise InputError(f"{self.artifact} changed between two reads; verify it again once it is complete")
        from verify.digests import DigestSet

        return DigestSet({**earlier.digests, **again.digests}, head=earlier.head)

    def _read(self, algorithms: list[str], cancel: threading.Event) -> DigestSet:
        from verify.digests import DigestSet, hash_file, hash_stream

        head = bytearray()
        if self._path is None:
            from attest.stores.s3 import stream_object

            digests = hash_stream(stream_object(self.artifact), algorithms, head=head, cancel=cancel)
            return DigestSet(digests, head=bytes(head))
        path = self._path
        if self._progress is None:
            return DigestSet(hash_file(path, algorithms, cancel=cancel, head=head), head=bytes(head))
        with self._progress(f"hashing {path.name}", path.stat().st_size) as advance:
            digests = hash_file(path, algorithms, progress=advance, cancel=cancel, head=head)
        return DigestSet(digests, head=bytes(head))
