"""Repository URIs and refs, compared the way people mean them.

``git+https://GitHub.com/acme/app.git@refs/heads/main``, ``https://github.com/acme/app``,
``git@github.com:acme/app.git`` and ``github.com/acme/app`` all name one repository.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

__all__ = ["branch_of", "normalize_repo", "split_source_uri"]

_SCP = re.compile(r"^(?:[\w.\-]+@)?(?P<host>[\w.\-]+):(?!//)(?P<path>.+)$")


def split_source_uri(uri: str) -> tuple[str, str | None]:
    """Split ``git+URL@REF`` into (URL, REF); REF is None when absent."""
    text = uri.removeprefix("git+")
    scheme_end = text.find("://")
    start = scheme_end + 3 if scheme_end >= 0 else 0
    # the ref separator is the last '@' after the host part (user info uses '@' before the host)
    path_start = text.find("/", start)
    at = text.rfind("@")
    if at > path_start >= 0:
        return text[:at], text[at + 1:] or None
    return text, None


def normalize_repo(uri: str) -> str:
    """Canonical ``host/path`` form: no scheme, user info, port, ``.git`` or trailing ``/``; host lower-case.

    Raises :class:`ValueError` for text that is not a URL at all (an unbalanced ``[``, say).
    """
    text, _ = split_source_uri(uri.strip())
    scp = _SCP.match(text) if "://" not in text else None
    if scp:
        host, path = scp.group("host"), scp.group("path")
    else:
        parts = urlsplit(text if "://" in text else f"//{text}")
        host, path = parts.hostname or "", parts.path
    path = path.strip("/")
    path = path.removesuffix(".git").rstrip("/")
    return f"{host.lower()}/{path}" if path else host.lower()


def branch_of(ref: str | None) -> str | None:
    """The branch a ref names (``refs/heads/main`` -> ``main``), or None for tags and commits."""
    if ref is None:
        return None
    if ref.startswith("refs/heads/"):
        return ref.removeprefix("refs/heads/")
    if ref.startswith("refs/"):
        return None
    return ref
