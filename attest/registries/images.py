"""Images and their attestations in a registry: resolve, push from a layout, attach a referrer, find evidence.

* :func:`resolve`: the image an ``oci://`` reference names, resolved ONCE: a tag becomes the digest it
  points at now, and everything after works on that digest (the manifest's bytes are checked against it).
* :func:`push_image`: an image from an OCI image layout, by digest: every blob (streamed from its file,
  skipped when the registry has it), every platform's manifest, then the top manifest; a tag only when
  asked, by the caller, after the attestations are attached (a tag never names an unattested image).
* :func:`attach`: an attestation as an OCI 1.1 referrer: an artifact manifest whose ``subject`` is the
  image, with the envelope or bundle as its one layer. Where the registry has no referrers API (it did not
  answer the push with ``OCI-Subject``), the referrers tag schema's index ``sha256-<hex>`` is updated too.
* :func:`find_evidence`: every attestation the registry holds for an image: the referrers API, else the
  tag schema, then cosign's ``sha256-<hex>.att``; each referrer's subject checked to be the image.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Collection, Iterator, Mapping
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from attest.registries.client import Registry
from attest.registries.reference import ImageRef
from verify.formats.oci import (
    ACCEPT_MANIFESTS,
    EMPTY_CONFIG,
    MEDIA_EMPTY,
    MEDIA_OCI_INDEX,
    MEDIA_OCI_MANIFEST,
    Descriptor,
    cosign_layers,
    cosign_tag,
    evidence_layers,
    parse_manifest,
    referrers_of,
    referrers_tag,
    sha256_digest,
)

if TYPE_CHECKING:
    from attest.oci_layout import Image
    from verify.errors import EvidenceRejected

__all__ = ["Referrer", "Registries", "attach", "find_evidence", "push_image", "resolve"]


class Registries:
    """One :class:`Registry` client per host for a run (so credentials and tokens are fetched once)."""

    def __init__(self, insecure: Collection[str] = (), env: Mapping[str, str] | None = None) -> None:
        self.insecure = tuple(insecure)
        self._env = env
        self._clients: dict[str, Registry] = {}

    def __call__(self, host: str) -> Registry:
        if host not in self._clients:
            self._clients[host] = Registry(host, insecure=self.insecure, env=self._env)
        return self._clients[host]


def resolve(registries: Registries, ref: ImageRef) -> Image:
    """The image ``ref`` names, its manifest read and checked (a tag resolved once, to its digest)."""
    from attest.errors import RemoteError
    from attest.oci_layout import Image, platform_manifests
    from verify.errors import EvidenceRejected

    registry = registries(ref.registry)
    reference = ref.digest or ref.tag or "latest"
    fetched = registry.manifest(ref.repository, reference, accept=ACCEPT_MANIFESTS)
    if fetched is None:
        raise EvidenceRejected(f"{ref} is not in the registry (no manifest {reference}); was it pushed?")
    top = parse_manifest(fetched.data, what=f"{ref}", digest=ref.digest, content_type=fetched.content_type)
    if ref.digest is None and fetched.digest and fetched.digest != top.digest:
        raise RemoteError(f"registry {ref.registry} says tag {ref.tag} is {fetched.digest} but sent the bytes of "
                          f"{top.digest}; it is broken or tampered with")
    def fetch(child: Descriptor) -> tuple[bytes, str | None]:
        got = registry.manifest(ref.repository, child.digest, accept=ACCEPT_MANIFESTS)
        if got is None:
            raise EvidenceRejected(f"{ref.at(top.digest)} lists manifest {child.digest}, which the registry does "
                                   "not have")
        return got.data, got.content_type

    return Image(manifest=top, data=fetched.data, children=platform_manifests(top, fetch, where=ref.name),
                 tag=ref.tag)


Progress = Callable[[str, int], AbstractContextManager[Callable[[int], None] | None]]
"""``progress(description, total)``: a context manager giving ``advance(n)`` (a bar on a terminal), or None."""


def push_image(registries: Registries, target: ImageRef, image: Image, *, progress: Progress | None = None
               ) -> list[str]:
    """Every blob and manifest of ``image`` (from its layout) into ``target``'s repository, by digest; what
    was pushed, as ``oci://`` names."""
    registry = registries(target.registry)
    pushed = []
    for manifest, data in image.manifests():
        for blob in (manifest.config, *manifest.layers):
            if blob is None:
                continue
            with _bar(progress, f"pushing {blob.digest[:19]}", blob.size) as advance:
                registry.push_blob(target.repository, blob.digest, blob.size,
                                   _counted(_opener(image.blob(blob.digest)), advance))
        registry.put_manifest(target.repository, manifest.digest, data, manifest.media_type)
        pushed.append(str(target.at(manifest.digest)))
    return pushed


def _bar(progress: Progress | None, description: str, total: int
         ) -> AbstractContextManager[Callable[[int], None] | None]:
    return nullcontext(None) if progress is None else progress(description, total)


def _counted(open_stream: Callable[[], IO[bytes]], advance: Callable[[int], None] | None) -> Callable[[], IO[bytes]]:
    """``open_stream``, reporting each read to ``advance`` (a progress bar) when there is one."""
    if advance is None:
        return open_stream
    report = advance

    class Counted(io.RawIOBase):
        def __init__(self) -> None:
            super().__init__()
            self.inner = open_stream()

        def readable(self) -> bool:
            return True

        def readinto(self, buffer: Any) -> int:
            size = self.inner.readinto(buffer)  # type: ignore[attr-defined]
            report(size or 0)
            return int(size or 0)

        def close(self) -> None:
            self.inner.close()
            super().close()

    return lambda: io.BufferedReader(Counted(), buffer_size=1024 * 1024)


def _opener(path: Path) -> Callable[[], IO[bytes]]:
    """A fresh stream of the file for each send (a request is sent again after a credentials challenge)."""
    return lambda: path.open("rb")


@dataclass(frozen=True)
class Referrer:
    """An attestation attached to an image: where it is, and what it attests."""

    uri: str
    digest: str
    subject: str


def attach(registries: Registries, target: ImageRef, subject: Descriptor, payload: bytes, *, artifact_type: str,
           annotations: Mapping[str, str] | None = None) -> Referrer:
    """``payload`` (an envelope's line, a bundle) as a referrer of ``subject`` in ``target``'s repository."""
    registry = registries(target.registry)
    repository = target.repository
    layer = Descriptor(media_type=artifact_type, digest=sha256_digest(payload), size=len(payload))
    config = Descriptor(media_type=MEDIA_EMPTY, digest=sha256_digest(EMPTY_CONFIG), size=len(EMPTY_CONFIG))
    registry.push_blob(repository, config.digest, config.size, EMPTY_CONFIG)
    registry.push_blob(repository, layer.digest, layer.size, payload)
    from verify.formats.strict_json import dumps_canonical

    document = {"schemaVersion": 2, "mediaType": MEDIA_OCI_MANIFEST, "artifactType": artifact_type,
                "config": config.to_dict(), "layers": [layer.to_dict()],
                "subject": {"mediaType": subject.media_type, "digest": subject.digest, "size": subject.size},
                **({"annotations": dict(annotations)} if annotations else {})}
    data = dumps_canonical(document)
    digest = sha256_digest(data)
    answered = registry.put_manifest(repository, digest, data, MEDIA_OCI_MANIFEST)
    if not any(k.lower() == "oci-subject" for k in answered):  # no referrers API: the tag schema's index, too
        _add_to_tag_index(registry, repository, subject.digest,
                          Descriptor(media_type=MEDIA_OCI_MANIFEST, digest=digest, size=len(data),
                                     artifact_type=artifact_type, annotations=dict(annotations or {})))
    return Referrer(uri=str(target.at(digest)), digest=digest, subject=subject.digest)


def _add_to_tag_index(registry: Registry, repository: str, subject: str, referrer: Descriptor) -> None:
    """The referrers tag schema: add ``referrer`` to the index tagged ``sha256-<hex>`` (made if missing).

    Two writers at once can lose one entry (the schema has no compare-and-swap); the referrer manifest
    itself stays in the registry and a rerun lists it again.
    """
    from verify.formats.strict_json import dumps_canonical

    tag = referrers_tag(subject)
    fetched = registry.manifest(repository, tag, accept=MEDIA_OCI_INDEX)
    listed: list[Descriptor] = []
    if fetched is not None:
        listed = list(referrers_of(parse_manifest(fetched.data, what=f"the referrers index {tag} of {repository}",
                                                  content_type=fetched.content_type), subject=subject))
    if any(d.digest == referrer.digest for d in listed):
        return
    listed.append(referrer)
    index = {"schemaVersion": 2, "mediaType": MEDIA_OCI_INDEX, "manifests": [d.to_dict() for d in listed]}
    registry.put_manifest(repository, tag, dumps_canonical(index), MEDIA_OCI_INDEX)


def find_evidence(registries: Registries, image: ImageRef) -> Iterator[tuple[str, bytes | EvidenceRejected]]:
    """(where, bytes or why they were refused) of every attestation the registry holds for ``image`` (which
    names a digest): referrers (API, else tag schema) whose artifact type is a DSSE envelope or a Sigstore
    bundle, then cosign's ``.att`` envelopes. A referrer of another image is that entry's error."""
    from verify.errors import EvidenceRejected, LimitExceeded
    from verify.formats.oci import check_blob
    from verify.limits import MAX_EVIDENCE_BYTES, MAX_REFERRERS

    assert image.digest is not None
    registry = registries(image.registry)
    repository, digest = image.repository, image.digest
    pages = registry.referrers(repository, digest, accept=MEDIA_OCI_INDEX)
    where = f"the referrers of {digest}"
    if pages is None:
        tagged = registry.manifest(repository, referrers_tag(digest), accept=MEDIA_OCI_INDEX)
        pages = [] if tagged is None else [tagged]
        where = f"the referrers index {referrers_tag(digest)}"
    listed = [d for page in pages for d in referrers_of(
        parse_manifest(page.data, what=f"{where} in {image.name}", content_type=page.content_type), subject=digest)]
    if len(listed) > MAX_REFERRERS:
        raise LimitExceeded(f"{where} in {image.name} list more than {MAX_REFERRERS} referrers; attest reads at "
                            "most that many")
    for descriptor in listed:
        if descriptor.artifact_type is not None and not _evidence_type(descriptor.artifact_type):
            continue  # an SBOM, a signature: not evidence attest reads (and not fetched)
        uri = str(image.at(descriptor.digest))
        try:
            got = registry.manifest(repository, descriptor.digest, accept=ACCEPT_MANIFESTS)
            if got is None:
                raise EvidenceRejected(f"{uri} is listed as a referrer of {digest} but is not in the registry")
            referrer = parse_manifest(got.data, what=uri, digest=descriptor.digest, content_type=got.content_type)
            layers = evidence_layers(referrer, subject=digest)
        except EvidenceRejected as e:
            yield uri, e
            continue
        for layer in layers:
            yield uri, check_blob(registry.read_blob(repository, layer.digest, layer.size, limit=MAX_EVIDENCE_BYTES),
                                  layer, what=f"layer {layer.digest} of {uri}")
    att = registry.manifest(repository, cosign_tag(digest), accept=ACCEPT_MANIFESTS)
    if att is not None:
        uri = f"{image.name}:{cosign_tag(digest)}"
        manifest = parse_manifest(att.data, what=uri, content_type=att.content_type)
        for layer in cosign_layers(manifest):
            yield uri, check_blob(registry.read_blob(repository, layer.digest, layer.size, limit=MAX_EVIDENCE_BYTES),
                                  layer, what=f"layer {layer.digest} of {uri}")


def _evidence_type(artifact_type: str) -> bool:
    from verify.formats.oci import ARTIFACT_BUNDLE, ARTIFACT_DSSE

    return artifact_type in (ARTIFACT_DSSE, ARTIFACT_BUNDLE) or artifact_type.startswith(
        "application/vnd.dev.sigstore.bundle")


@dataclass(frozen=True)
class Copied:
    """What a copy of an image did, blob by blob."""

    uploaded: int
    mounted: int
    present: int
    manifests: int


def copy_image(registries: Registries, source: ImageRef, target: ImageRef, image: Image, *,
               progress: Progress | None = None) -> Copied:
    """Every blob and manifest of ``image`` from ``source``'s repository into ``target``'s, digests unchanged:
    a blob the target has is skipped, one in the same registry is mounted across repositories where the registry
    allows it, any other is streamed from the source to the target (hashed on the way, never held)."""
    src, dst = registries(source.registry), registries(target.registry)
    same = source.registry == target.registry
    counts = {"uploaded": 0, "mounted": 0, "exists": 0}
    for manifest, data in image.manifests():
        for blob in (manifest.config, *manifest.layers):
            if blob is None:
                continue
            with _bar(progress, f"copying {blob.digest[:19]}", blob.size) as advance:
                how = dst.push_blob(target.repository, blob.digest, blob.size,
                                    _counted(_streamer(src, source.repository, blob.digest, blob.size), advance),
                                    mount_from=source.repository if same else None)
            counts[how] += 1
        dst.put_manifest(target.repository, manifest.digest, data, manifest.media_type)
    return Copied(uploaded=counts["uploaded"], mounted=counts["mounted"], present=counts["exists"],
                  manifests=len(image.manifests()))


def _streamer(registry: Registry, repository: str, digest: str, size: int) -> Callable[[], IO[bytes]]:
    def open_stream() -> IO[bytes]:
        return io.BufferedReader(_Chunks(registry.stream_blob(repository, digest, size)), buffer_size=1024 * 1024)

    return open_stream


class _Chunks(io.RawIOBase):
    """A readable stream over an iterator of chunks: a blob streamed from one registry into another's upload."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        super().__init__()
        self._chunks = chunks
        self._pending = b""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        while not self._pending:
            try:
                self._pending = next(self._chunks)
            except StopIteration:
                return 0
        size = min(len(buffer), len(self._pending))
        buffer[:size] = self._pending[:size]
        self._pending = self._pending[size:]
        return size
