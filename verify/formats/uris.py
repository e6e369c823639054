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


#: The transports that name one repository on a host (with their default ports): whichever of these a URI
#: uses, it is the same repository. Any other scheme (``file://``, ``http://``) is part of what it names.
_TRANSPORTS = {"https": 443, "ssh": 22, "git": 9418}


def normalize_repo(uri: str) -> str:
    """Canonical ``host/path`` form: no user info, default port, ``.git`` or trailing ``/``; host lower-case.

    ``https://``, ``ssh://``, ``git://``, ``git@host:path`` and a bare ``host/path`` name one repository; another
    scheme stays in the result (``file://github.com/acme/app`` is not ``github.com/acme/app``), and so does
    a port other than the transport's default (``github.com:8443/acme/app``).
    Raises :class:`ValueError` for text that is not a URL at all (an unbalanced ``[``, a port that is no
    number).
    """
    text, _ = split_source_uri(uri.strip())
    scp = _SCP.match(text) if "://" not in text else None
    prefix = ""
    if scp:
        host, path = scp.group("host"), scp.group("path")
    else:
        parts = urlsplit(text if "://" in text else f"//{text}")
        scheme = parts.scheme.lower()
        host, path = parts.hostname or "", parts.path
        if scheme and scheme not in _TRANSPORTS:
            prefix = f"{scheme}://"
        port = parts.port
        if port is not None and port != _TRANSPORTS.get(scheme or "https"):
            host = f"{host}:{port}"
    path = path.strip("/")
    path = path.removesuffix(".git").rstrip("/")
    return f"{prefix}{host.lower()}/{path}" if path else f"{prefix}{host.lower()}"


def branch_of(ref: str | None) -> str | None:
    """The branch a ref names (``refs/heads/main`` -> ``main``), or None for tags and commits."""
    if ref is None:
        return None
    if ref.startswith("refs/heads/"):
        return ref.removeprefix("refs/heads/")
    if ref.startswith("refs/"):
        return None
    return ref
