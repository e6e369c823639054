"""``oci://REGISTRY/REPOSITORY[:TAG][@sha256:HEX]``: an image in a registry, as attest names one.

The registry is always written out (``oci://ghcr.io/acme/app``, ``oci://127.0.0.1:5000/app``): attest
never guesses Docker Hub, so the name in a provenance is the name the image was pushed under. A
reference with a digest names those bytes (a tag beside it is only a label); one with a tag alone is
resolved once, to the digest it points at then, and the digest is what is recorded and verified.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from verify.errors import RequestError

__all__ = ["OCI_PREFIX", "ImageRef", "is_oci", "parse_image"]

OCI_PREFIX = "oci://"
#: A registry host: a DNS name or IPv4 address, with an optional port (or [IPv6]:port).
_HOST = re.compile(r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*"
                   r"|\[[0-9A-Fa-f:]+\])(?::[0-9]{1,5})?")
#: The distribution spec's repository name grammar.
_REPOSITORY = re.compile(r"[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*)*")
_TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,127}")
_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")


def is_oci(value: str) -> bool:
    return value.startswith(OCI_PREFIX)


@dataclass(frozen=True)
class ImageRef:
    """An image (or, without tag and digest, a repository) in a registry."""

    registry: str
    """``HOST[:PORT]``, as written (lower-cased)."""
    repository: str
    tag: str | None = None
    digest: str | None = None
    """``sha256:<hex>``: the image's name by content."""

    @property
    def name(self) -> str:
        """``REGISTRY/REPOSITORY``: the name cosign and gh give the image in a provenance's subject."""
        return f"{self.registry}/{self.repository}"

    def at(self, digest: str) -> ImageRef:
        """This repository's image ``digest`` (the tag kept as a label)."""
        return replace(self, digest=digest)

    def __str__(self) -> str:
        tag = f":{self.tag}" if self.tag else ""
        digest = f"@{self.digest}" if self.digest else ""
        return f"{OCI_PREFIX}{self.name}{tag}{digest}"


def parse_image(value: str, *, what: str = "the image", repository_only: bool = False) -> ImageRef:
    """``oci://REGISTRY/REPOSITORY[:TAG][@sha256:HEX]`` read; :class:`RequestError` (exit 2) naming what is
    wrong. With ``repository_only``, a tag or digest is refused (a place to push to)."""
    if not is_oci(value):
        raise RequestError(f"{what} {value!r} is not oci://REGISTRY/REPOSITORY[:TAG|@sha256:HEX]")
    rest = value.removeprefix(OCI_PREFIX)
    digest = None
    if "@" in rest:
        rest, digest = rest.rsplit("@", 1)
        if not _DIGEST.fullmatch(digest):
            raise RequestError(f"{what} {value!r} has digest {digest!r}; write @sha256:<64 lower-case hex digits>")
    host, sep, path = rest.partition("/")
    if not sep or not host or not _HOST.fullmatch(host):
        raise RequestError(f"{what} {value!r} does not start with a registry host (oci://REGISTRY/REPOSITORY, e.g. "
                           "oci://123456789012.dkr.ecr.eu-west-1.amazonaws.com/app)")
    tag = None
    name, colon, last = path.rpartition(":")
    if colon and "/" not in last:
        path, tag = name, last
        if not _TAG.fullmatch(tag):
            raise RequestError(f"{what} {value!r} has tag {tag!r}, which is not a valid tag")
    if not _REPOSITORY.fullmatch(path) or len(host) + len(path) > 255:
        raise RequestError(f"{what} {value!r} names repository {path!r}, which is not a valid repository name "
                           "(lower-case letters, digits and separators . _ - /)")
    if repository_only and (tag or digest):
        raise RequestError(f"{what} {value!r} names an image; give the repository alone (oci://REGISTRY/REPOSITORY)")
    return ImageRef(registry=host.lower(), repository=path, tag=tag, digest=digest)
