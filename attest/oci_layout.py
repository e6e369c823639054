"""Reproducible OCI images: a directory packed as a single-layer image in an OCI image layout.

``pack_oci(directory, layout, tag=...)`` writes an OCI image layout (https://github.com/opencontainers/
image-spec/blob/main/image-layout.md) holding one image: one layer, the directory as a tar archive packed
exactly as :mod:`attest.pack` packs a ``.tar.gz`` (entries sorted, every time ``SOURCE_DATE_EPOCH``, modes
0644/0755, no owner, gzip without a name or a time), a config naming the layer's uncompressed digest, and
a manifest naming both. Every JSON document is written canonically (sorted keys, no spaces), and the
image's ``created`` time is ``SOURCE_DATE_EPOCH``: the same directory gives the same manifest digest on
any machine, so ``attest reproduce`` compares images like other artefacts.

An image layout is named ``oci-layout:PATH[:TAG]`` on the command line, as skopeo names one
(``oci:PATH:TAG``), with attest's prefix (:func:`parse_layout`). The layout is written into a temporary
folder beside PATH and renamed into place: a reader never sees half an image.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import json
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO

from attest.errors import BuildRefused, OutputError
from attest.pack import _entries, _write_tar, refuse_failed_packing, source_date_epoch
from verify.formats.oci import Descriptor, Manifest

__all__ = ["LAYOUT_PREFIX", "MEDIA_CONFIG", "MEDIA_INDEX", "MEDIA_LAYER", "MEDIA_MANIFEST", "Image", "LayoutRef",
           "OciPackResult", "pack_oci", "parse_layout", "read_layout_image"]

LAYOUT_PREFIX = "oci-layout:"
MEDIA_INDEX = "application/vnd.oci.image.index.v1+json"
MEDIA_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MEDIA_CONFIG = "application/vnd.oci.image.config.v1+json"
MEDIA_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
#: The OCI distribution spec's tag grammar.
_TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,127}")
_PLATFORM = re.compile(r"([a-z0-9]+)/([a-z0-9_]+)(?:/([a-z0-9]+))?")
_CHUNK = 1024 * 1024


@dataclass(frozen=True)
class LayoutRef:
    """``oci-layout:PATH[:TAG]``: an OCI image layout folder, and the tag of the image in it (if named)."""

    path: Path
    tag: str | None


def parse_layout(value: str) -> LayoutRef:
    """``oci-layout:PATH[:TAG]`` read: the TAG is what follows the last ``:`` when it is a valid tag and the
    rest is a path; :class:`BuildRefused` for an empty path or a value without the prefix."""
    if not value.startswith(LAYOUT_PREFIX):
        raise BuildRefused(f"{value!r} does not name an OCI image layout; write {LAYOUT_PREFIX}PATH[:TAG]")
    rest = value.removeprefix(LAYOUT_PREFIX)
    path, tag = rest, None
    head, sep, tail = rest.rpartition(":")
    if sep and head and _TAG.fullmatch(tail):
        path, tag = head, tail
    if not path:
        raise BuildRefused(f"{value!r} names no folder; write {LAYOUT_PREFIX}PATH[:TAG]")
    return LayoutRef(path=Path(path), tag=tag)


@dataclass(frozen=True)
class OciPackResult:
    layout: Path
    tag: str | None
    manifest: str
    """``sha256:<hex>`` of the image manifest: the image's name by content."""
    manifest_size: int
    config: str
    layer: str
    diff_id: str
    files: int
    directories: int
    source_date_epoch: int
    epoch_source: str
    platform: str


def _canonical(document: Mapping[str, Any]) -> bytes:
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


class _Hashing:
    """A binary writer that hashes what passes through it (the layer's uncompressed bytes: its diff_id)."""

    def __init__(self, out: BinaryIO) -> None:
        self.out, self.sha256, self.size = out, hashlib.sha256(), 0

    def write(self, data: bytes) -> int:
        self.sha256.update(data)
        self.size += len(data)
        return self.out.write(data)

    def tell(self) -> int:
        return self.size

    def flush(self) -> None:
        self.out.flush()


def _blob(folder: Path, data: bytes) -> tuple[str, int]:
    """Write ``data`` as a blob of the layout; its digest and size."""
    digest = hashlib.sha256(data).hexdigest()
    (folder / "blobs" / "sha256" / digest).write_bytes(data)
    return f"sha256:{digest}", len(data)


def _layer(folder: Path, directory: Path, epoch: int) -> tuple[str, int, str, int, int]:
    """The directory as a gzip'd tar blob: (digest, size, diff_id, files, directories)."""
    entries = _entries(directory)
    part = folder / "blobs" / "sha256" / ".layer.tmp"
    with part.open("wb") as raw:
        with gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=9) as gz:
            plain = _Hashing(gz)  # type: ignore[arg-type]  # GzipFile is a binary file
            _write_tar(plain, entries, epoch)  # type: ignore[arg-type]  # a writer is all tarfile needs
        raw.flush()
        os.fsync(raw.fileno())
    digest = hashlib.sha256()
    with part.open("rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    size = part.stat().st_size
    part.replace(folder / "blobs" / "sha256" / digest.hexdigest())
    files = sum(not e.is_dir for e in entries)
    return f"sha256:{digest.hexdigest()}", size, f"sha256:{plain.sha256.hexdigest()}", files, len(entries) - files


@dataclass(frozen=True)
class _Base:
    """A base image: its layers (blobs in its layout) and its config, read and checked."""

    image: Image
    manifest: Manifest
    config: dict[str, Any]


def _base(ref: LayoutRef, os_name: str, arch: str, variant: str | None) -> _Base:
    """The base image ``ref`` names, for the platform asked (an index: the manifest of that platform)."""
    from verify.errors import EvidenceRejected
    from verify.formats import strict_json
    from verify.formats.oci import check_blob

    image = read_layout_image(ref)
    wanted = {"os": os_name, "architecture": arch, **({"variant": variant} if variant else {})}
    manifest = image.manifest
    if manifest.is_index:
        found = [m for m, _ in image.children if _platform_of(image.manifest, m.digest) == wanted]
        if not found:
            raise BuildRefused(f"the base image {ref.path} has no {'/'.join(wanted.values())} image; pack for one of "
                               "its platforms (--platform)")
        manifest = found[0]
    assert manifest.config is not None
    try:
        data = check_blob(_read_small(image.blob(manifest.config.digest), "the base config"), manifest.config,
                          what=f"the config of the base image {ref.path}")
        config = strict_json.loads(data, what=f"the config of the base image {ref.path}")
    except EvidenceRejected as e:
        raise BuildRefused(f"the base image {ref.path} is not sound: {e}") from e
    if not isinstance(config, dict) or not isinstance(config.get("rootfs"), dict):
        raise BuildRefused(f"the config of the base image {ref.path} is not an image config")
    got = {"os": config.get("os"), "architecture": config.get("architecture"),
           **({"variant": config.get("variant")} if variant else {})}
    if got != wanted:
        raise BuildRefused(f"the base image {ref.path} is for {got.get('os')}/{got.get('architecture')}, not "
                           f"{'/'.join(wanted.values())}; pack for its platform (--platform)")
    diff_ids = config["rootfs"].get("diff_ids")
    if not isinstance(diff_ids, list) or len(diff_ids) != len(manifest.layers):
        raise BuildRefused(f"the base image {ref.path} has {len(manifest.layers)} layers but its config lists "
                           f"{len(diff_ids) if isinstance(diff_ids, list) else 'no'} diff_ids")
    return _Base(image=image, manifest=manifest, config=config)


def _platform_of(index: Manifest, digest: str) -> dict[str, str]:
    for descriptor in index.manifests:
        if descriptor.digest == digest and descriptor.platform is not None:
            return {k: v for k, v in descriptor.platform.items() if k in ("os", "architecture", "variant")}
    return {}


def _config(base: _Base | None, *, os_name: str, arch: str, variant: str | None, created: str,
            diff_id: str) -> dict[str, Any]:
    """The image config: the base's (its environment, entrypoint, layers and history) with this layer on top."""
    if base is None:
        config: dict[str, Any] = {"architecture": arch, "os": os_name, "config": {}, "rootfs": {"type": "layers",
                                  "diff_ids": []}, "history": []}
    else:
        config = json.loads(json.dumps(base.config))
        config.setdefault("config", {})
        if not isinstance(config.get("history"), list):
            config["history"] = []
    config["created"] = created
    config["rootfs"] = {"type": "layers", "diff_ids": [*config["rootfs"].get("diff_ids", []), diff_id]}
    config["history"] = [*config["history"], {"created": created, "created_by": "attest pack"}]
    if variant:
        config["variant"] = variant
    return config


def pack_oci(directory: Path, layout: Path, *, tag: str | None = None, platform: str = "linux/amd64",
             env: Mapping[str, str] | None = None, base: LayoutRef | None = None) -> OciPackResult:
    """Write ``directory`` as a reproducible image into the OCI image layout ``layout``: one layer, on top of the
    layers of ``base`` (an image in another layout) when given."""
    env = os.environ if env is None else env
    if not directory.is_dir():
        what = "is not a directory" if directory.exists() else "does not exist"
        raise BuildRefused(f"{directory} {what}; give the directory to pack")
    matched = _PLATFORM.fullmatch(platform)
    if matched is None:
        raise BuildRefused(f"--platform {platform!r} is not OS/ARCH[/VARIANT] (e.g. linux/amd64, linux/arm64)")
    if tag is not None and not _TAG.fullmatch(tag):
        raise BuildRefused(f"tag {tag!r} is not a valid OCI tag (letters, digits, '_', '.', '-'; at most 128)")
    target = Path(os.path.abspath(layout))
    if target.is_relative_to(directory.resolve()):
        raise BuildRefused(f"the layout {layout} would be inside the directory it packs; write it elsewhere")
    if target.is_symlink():
        raise OutputError(f"{layout} is a symbolic link; an OCI image layout is written to a real folder")
    if target.exists() and not target.is_dir():
        raise OutputError(f"{layout} exists and is not a folder; an OCI image layout is a folder")
    if target.is_dir() and any(target.iterdir()) and not (target / "oci-layout").is_file():
        raise OutputError(f"{layout} is a folder that holds no OCI image layout; pack replaces only a layout (or an "
                          "empty folder), never other files: name another folder")
    if not target.parent.is_dir():
        raise OutputError(f"cannot write {layout}: its folder {target.parent} does not exist; create it first")
    os_name, arch, variant = matched.groups()
    under = _base(base, os_name, arch, variant) if base is not None else None
    epoch, epoch_source = source_date_epoch(directory, env)
    try:
        work = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    except OSError as e:
        raise OutputError(f"cannot write {layout}: {e.strerror or type(e).__name__}") from e
    try:
        (work / "blobs" / "sha256").mkdir(parents=True)
        layer, layer_size, diff_id, files, directories = _layer(work, directory, epoch)
        created = datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        config = _config(under, os_name=os_name, arch=arch, variant=variant, created=created, diff_id=diff_id)
        config_digest, config_size = _blob(work, _canonical(config))
        below = [] if under is None else _copy_layers(under, work)
        manifest = {"schemaVersion": 2, "mediaType": MEDIA_MANIFEST,
                    "config": {"mediaType": MEDIA_CONFIG, "digest": config_digest, "size": config_size},
                    "layers": [*below, {"mediaType": MEDIA_LAYER, "digest": layer, "size": layer_size}],
                    "annotations": {"org.opencontainers.image.created": created}}
        manifest_digest, manifest_size = _blob(work, _canonical(manifest))
        descriptor: dict[str, Any] = {"mediaType": MEDIA_MANIFEST, "digest": manifest_digest, "size": manifest_size,
                                      "platform": {"architecture": arch, "os": os_name,
                                                   **({"variant": variant} if variant else {})}}
        if tag is not None:
            descriptor["annotations"] = {"org.opencontainers.image.ref.name": tag}
        (work / "index.json").write_bytes(_canonical({"schemaVersion": 2, "mediaType": MEDIA_INDEX,
                                                      "manifests": [descriptor]}))
        (work / "oci-layout").write_bytes(_canonical({"imageLayoutVersion": "1.0.0"}))
        _move_into_place(work, target)
    except BaseException as e:
        shutil.rmtree(work, ignore_errors=True)
        refuse_failed_packing(e, directory, layout, scratch=work)
        raise
    return OciPackResult(layout=layout, tag=tag, manifest=manifest_digest, manifest_size=manifest_size,
                         config=config_digest, layer=layer, diff_id=diff_id, files=files, directories=directories,
                         source_date_epoch=epoch, epoch_source=epoch_source, platform=platform)


def _copy_layers(base: _Base, work: Path) -> list[dict[str, Any]]:
    """The base's layer blobs, copied into the new layout (each checked against its digest on the way); their
    descriptors, as the base's manifest gives them."""
    from verify.digests import hash_file

    layers = []
    for layer in base.manifest.layers:
        source = base.image.blob(layer.digest)
        target = work / "blobs" / "sha256" / layer.digest.removeprefix("sha256:")
        shutil.copyfile(source, target)
        if "sha256:" + hash_file(target, ("sha256",))["sha256"] != layer.digest:
            raise BuildRefused(f"layer {layer.digest} of the base image {base.image.layout} does not hash to its "
                               "digest; the base layout is corrupt")
        layers.append(layer.to_dict())
    return layers


def _move_into_place(work: Path, target: Path) -> None:
    """``work`` becomes ``target``; a layout already there is replaced whole (moved aside, then removed)."""
    for folder, _, names in os.walk(work):
        for name in names:
            os.chmod(os.path.join(folder, name), 0o644)
        os.chmod(folder, 0o755)  # noqa: S103  (an image layout is published, like the archives pack writes)
    old = None
    if target.exists():
        old = target.with_name(f".{target.name}.{os.getpid()}.old")
        try:
            target.rename(old)
        except OSError as e:
            raise OutputError(f"cannot replace {target}: {e.strerror or type(e).__name__}") from e
    try:
        work.rename(target)
    except OSError as e:
        if old is not None:
            with contextlib.suppress(OSError):
                old.rename(target)
        raise OutputError(f"cannot write {target}: {e.strerror or type(e).__name__}") from e
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


# --- reading an image from a layout (attest build --artifact oci-layout:DIR[:TAG]) ---------------------------

@dataclass(frozen=True)
class Image:
    """An image to attest: its top manifest (an image manifest, or an index of several platforms' manifests),
    the platforms' manifests of an index, and where its blobs are (a layout folder), all read and checked."""

    manifest: Manifest
    data: bytes
    """The top manifest's bytes: its digest is the image's name by content."""
    children: tuple[tuple[Manifest, bytes], ...] = ()
    layout: Path | None = None
    tag: str | None = None

    @property
    def digest(self) -> str:
        return self.manifest.digest

    def subjects(self, name: str) -> list[tuple[str, dict[str, str]]]:
        """The provenance's subjects for this image: the top manifest, then each platform's manifest (so that
        one platform's image verifies by its own digest), named ``name``; sha256 is the manifest digest, blake3
        the blake3 of the same bytes."""
        import blake3

        return [(name, {"sha256": manifest.digest.removeprefix("sha256:"),
                        "blake3": blake3.blake3(data).hexdigest()})
                for manifest, data in ((self.manifest, self.data), *self.children)]

    def blob(self, digest: str) -> Path:
        assert self.layout is not None
        return self.layout / "blobs" / "sha256" / digest.removeprefix("sha256:")

    def check_blobs(self) -> None:
        """Every blob of the layout hashes to its digest (one streaming read each): what is signed is what the
        layout holds. :class:`BuildRefused` names the first that does not."""
        from verify.digests import hash_file

        for manifest, _ in self.manifests():
            for blob in (manifest.config, *manifest.layers):
                if blob is not None and "sha256:" + hash_file(self.blob(blob.digest), ("sha256",))["sha256"] != \
                        blob.digest:
                    raise BuildRefused(f"blob {blob.digest} of the image layout {self.layout} does not hash to its "
                                       "digest; the layout is corrupt: write it again")

    def manifests(self) -> list[tuple[Manifest, bytes]]:
        """Every manifest, platforms' first and the top one last: the order they are pushed in."""
        return [*self.children, (self.manifest, self.data)]


def _read_small(path: Path, what: str) -> bytes:
    from verify.limits import MAX_OCI_MANIFEST_BYTES

    try:
        with path.open("rb") as f:
            data = f.read(MAX_OCI_MANIFEST_BYTES + 1)
    except FileNotFoundError:
        raise BuildRefused(f"{what} {path} is missing; is this an OCI image layout written in full?") from None
    except OSError as e:
        raise BuildRefused(f"cannot read {what} {path}: {e.strerror or type(e).__name__}") from e
    if len(data) > MAX_OCI_MANIFEST_BYTES:
        raise BuildRefused(f"{what} {path} is over {MAX_OCI_MANIFEST_BYTES} bytes; it is not a manifest")
    return data


def _pick(index: Manifest, ref: LayoutRef) -> Descriptor:
    named = {d.annotations.get("org.opencontainers.image.ref.name"): d for d in index.manifests}
    if ref.tag is not None:
        if ref.tag not in named:
            tags = ", ".join(sorted(t for t in named if t)) or "none"
            raise BuildRefused(f"the image layout {ref.path} has no image tagged {ref.tag!r} (tags: {tags})")
        return named[ref.tag]
    if len(index.manifests) != 1:
        tags = ", ".join(sorted(t for t in named if t)) or "untagged"
        raise BuildRefused(f"the image layout {ref.path} holds {len(index.manifests)} images ({tags}); name one: "
                           f"{LAYOUT_PREFIX}{ref.path}:TAG")
    return index.manifests[0]


def platform_manifests(top: Manifest, fetch: Callable[[Descriptor], tuple[bytes, str | None]], *,
                       where: str) -> tuple[tuple[Manifest, bytes], ...]:
    """Each platform's manifest an index lists (none for an image manifest), its bytes from ``fetch`` (with the
    content type said for them, if any) checked against its digest; an index within the index is refused. Every
    refusal is :class:`EvidenceRejected` naming ``where`` the image is (a layout, a registry)."""
    from verify.errors import EvidenceRejected, LimitExceeded
    from verify.formats.oci import INDEX_TYPES, parse_manifest
    from verify.limits import MAX_OCI_INDEX_CHILDREN_BYTES

    children = []
    seen: set[str] = set()
    held = 0
    for child in top.manifests:
        if child.media_type in INDEX_TYPES:
            raise EvidenceRejected(f"the image index {top.digest} in {where} nests another index; attest reads an "
                                   "index of image manifests")
        if child.digest in seen:
            raise EvidenceRejected(f"the image index {top.digest} in {where} lists manifest {child.digest} twice; an "
                                   "index lists each platform's manifest once")
        seen.add(child.digest)
        data, content_type = fetch(child)
        held += len(data)
        if held > MAX_OCI_INDEX_CHILDREN_BYTES:
            raise LimitExceeded(f"the platform manifests the image index {top.digest} in {where} lists come to more "
                                f"than {MAX_OCI_INDEX_CHILDREN_BYTES} bytes; attest reads no index that large")
        children.append((parse_manifest(data, what=f"manifest {child.digest} of {where}", digest=child.digest,
                                        content_type=content_type), data))
    return tuple(children)


def read_layout_image(ref: LayoutRef) -> Image:
    """The image ``oci-layout:PATH[:TAG]`` names, every manifest checked against its digest and every blob it
    names present at its size; :class:`BuildRefused` (exit 3) naming what is wrong."""
    from verify.errors import EvidenceRejected
    from verify.formats.oci import parse_manifest

    if not ref.path.is_dir():
        raise BuildRefused(f"the image layout {ref.path} is not a folder; give the folder the image builder wrote")
    if not (ref.path / "oci-layout").is_file():
        raise BuildRefused(f"{ref.path} has no oci-layout file; it is not an OCI image layout")
    try:
        index = parse_manifest(_read_small(ref.path / "index.json", "the index"), what=f"{ref.path}/index.json",
                               content_type=MEDIA_INDEX)
        chosen = _pick(index, ref)
        image = Image(manifest=index, data=b"", layout=ref.path, tag=ref.tag)  # for blob paths only
        data = _read_small(image.blob(chosen.digest), "the manifest")
        top = parse_manifest(data, what=f"manifest {chosen.digest} of {ref.path}", digest=chosen.digest)
        children = platform_manifests(top, lambda d: (_read_small(image.blob(d.digest), "the manifest"), None),
                                      where=str(ref.path))
    except EvidenceRejected as e:
        raise BuildRefused(f"the image layout {ref.path} is not sound: {e}") from e
    image = Image(manifest=top, data=data, children=children, layout=ref.path, tag=ref.tag)
    for manifest, _ in image.manifests():
        for blob in (manifest.config, *manifest.layers):
            if blob is None:
                continue
            path = image.blob(blob.digest)
            if not path.is_file() or path.stat().st_size != blob.size:
                what = "missing" if not path.is_file() else f"{path.stat().st_size} bytes, not {blob.size}"
                raise BuildRefused(f"blob {blob.digest} of the image layout {ref.path} is {what}; was the layout "
                                   "written in full?")
    return image
