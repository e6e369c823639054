"""Container images as build artefacts: ``--artifact oci-layout:DIR[:TAG]`` and ``--artifact oci://REGISTRY/REPO:TAG``,
and ``--publish oci://REGISTRY/REPO``.

An image is attested by its manifest digest (an index's, for a multi-platform image, and each platform's
manifest's too, so that one platform verifies by its own digest), named ``REGISTRY/REPO`` as cosign and
gh name it. An image the build command pushed (``oci://``) is resolved once, after the command, and its
digest recorded, never its tag.

Publishing to ``oci://REGISTRY/REPO`` pushes each layout's image there by digest, attaches the signed
provenance as an OCI 1.1 referrer of every manifest attested (the envelope, artifact type
``application/vnd.dsse.envelope.v1+json``; with a bundle, the Sigstore bundle too, artifact type
``application/vnd.dev.sigstore.bundle.v0.3+json``, as ``gh attestation`` reads it), and only then tags the
image: a tag never names an image whose attestation is not there yet, and a rerun completes a push that
failed half-way.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from attest.oci_layout import LAYOUT_PREFIX
from attest.registries.reference import OCI_PREFIX

if TYPE_CHECKING:
    from attest.oci_layout import Image
    from attest.registries.images import Progress, Registries
    from attest.registries.reference import ImageRef

__all__ = ["BuildImage", "check_images", "collect_images", "is_image", "publish_images", "registry_target"]


def is_image(pattern: str) -> bool:
    return pattern.startswith((LAYOUT_PREFIX, OCI_PREFIX))


@dataclass(frozen=True)
class BuildImage:
    """One image artefact: what names it, the image read, and where it is (or goes)."""

    pattern: str
    name: str
    image: Image
    ref: ImageRef | None
    """The registry image (``oci://`` artefact), or the image pushed to (``--publish oci://`` of a layout)."""


def registry_target(publish: str | None) -> ImageRef | None:
    """The repository ``--publish oci://REGISTRY/REPO`` names; None for a store (or no publishing)."""
    from attest.registries.reference import is_oci, parse_image

    return parse_image(publish, what="--publish", repository_only=True) if publish and is_oci(publish) else None


def check_images(patterns: Sequence[str], publish: str | None, *, link: bool, retain_days: int | None) -> None:
    """The request's shape, before the build runs: names that parse, a publish target images can go to."""
    from attest.oci_layout import parse_layout
    from attest.registries.reference import parse_image
    from verify.errors import RequestError

    images = [p for p in patterns if is_image(p)]
    target = registry_target(publish)
    if target is not None:
        files = [p for p in patterns if not is_image(p)]
        if files:
            raise RequestError(f"--publish {publish} takes images; artefact {files[0]} is a file: publish files to a "
                               "store (a directory or s3://) in another build step, or attest the image alone")
        if retain_days is not None:
            raise RequestError("--retain-days is S3 Object Lock; a registry keeps what it is sent")
    if images and link:
        raise RequestError("--link records files as in-toto products; leave it out when attesting images")
    for pattern in images:
        if pattern.startswith(LAYOUT_PREFIX):
            parse_layout(pattern)
            continue
        ref = parse_image(pattern, what="--artifact")
        if target is not None and (ref.registry, ref.repository) != (target.registry, target.repository):
            raise RequestError(f"--artifact {pattern} is in {ref.name}, not in --publish {publish}; a provenance is "
                               "attached beside the image, so publish to the image's own repository")


def collect_images(patterns: Sequence[str], root: Path, publish: str | None, registries: Registries
                   ) -> list[BuildImage]:
    """Each image artefact read (a layout) or resolved once (a registry image), in the order given."""
    from attest.errors import BuildRefused
    from attest.oci_layout import parse_layout, read_layout_image
    from attest.registries.images import resolve
    from attest.registries.reference import parse_image
    from verify.errors import EvidenceRejected

    target = registry_target(publish)
    found: list[BuildImage] = []
    for pattern in patterns:
        if not is_image(pattern):
            continue
        if pattern.startswith(LAYOUT_PREFIX):
            layout = parse_layout(pattern)
            image = read_layout_image(layout)
            image.check_blobs()
            found.append(BuildImage(pattern=pattern, name=target.name if target else _layout_name(layout.path, root),
                                    image=image, ref=target))
        else:
            ref = parse_image(pattern)
            try:
                image = resolve(registries, ref)
            except EvidenceRejected as e:  # not there, or not what the registry says: nothing to attest
                raise BuildRefused(f"artefact {pattern}: {e}") from e
            found.append(BuildImage(pattern=pattern, name=ref.name, image=image, ref=ref.at(image.digest)))
    return found


def _layout_name(path: Path, root: Path) -> str:
    resolved = path.resolve()
    return resolved.relative_to(root.resolve()).as_posix() if resolved.is_relative_to(root.resolve()) else path.name


def publish_images(images: Sequence[BuildImage], registries: Registries, *, envelope: bytes | None,
                   bundle: bytes | None, push: bool, progress: Progress | None = None) -> list[str]:
    """Push each layout's image (unless ``push`` is off), attach the provenance to every manifest attested, then
    tag; what was written, as ``oci://`` names."""
    from attest.registries.images import attach, push_image
    from verify.formats.oci import ARTIFACT_BUNDLE, ARTIFACT_DSSE

    published: list[str] = []
    for item in images:
        assert item.ref is not None
        if push and item.image.layout is not None:
            published.extend(push_image(registries, item.ref, item.image, progress=progress))
        for manifest, _ in item.image.manifests():
            if envelope is not None:
                published.append(attach(registries, item.ref, manifest.descriptor(), envelope,
                                        artifact_type=ARTIFACT_DSSE,
                                        annotations={"in-toto.io/predicate-type": "https://slsa.dev/provenance/v1"}
                                        ).uri)
            if bundle is not None:
                published.append(attach(registries, item.ref, manifest.descriptor(), bundle,
                                        artifact_type=ARTIFACT_BUNDLE,
                                        annotations={"dev.sigstore.bundle.content": "dsse-envelope",
                                                     "dev.sigstore.bundle.predicateType":
                                                         "https://slsa.dev/provenance/v1"}).uri)
        tag = item.image.tag
        if push and item.image.layout is not None and tag:
            registry = registries(item.ref.registry)
            registry.put_manifest(item.ref.repository, tag, item.image.data, item.image.manifest.media_type)
            published.append(f"{OCI_PREFIX}{item.ref.name}:{tag}")
    return published
