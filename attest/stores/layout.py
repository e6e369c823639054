"""A store's layout: where an artefact, its attestations and its blake3 index entry are, by key.

Every key is made here from checked parts (a lower-case hex digest, a subject name that stays inside the
store, a known attestation kind), so that neither store writes outside its layout.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import quote, unquote

from attest.errors import StoreError
from verify.formats.deployment import filing_time

__all__ = ["DEPLOYMENTS_FOLDER", "EVIDENCE_SUFFIXES", "INDEX_FOLDER", "KINDS", "FiledDeployment", "artifact_key",
           "attestation_key", "deployment_key", "deployment_prefix", "index_entry", "index_key", "parse_deployment_key",
           "parse_index_entry", "safe_name"]

#: Names of the files read as evidence in a store's ``sha256/<hex>/``: what attest writes (``.intoto.jsonl``)
#: and Sigstore bundles put beside them (``.sigstore.json``).
EVIDENCE_SUFFIXES = (".intoto.jsonl", ".sigstore.json")
#: Attestation kinds a store holds, by the file name prefix.
KINDS = ("provenance", "vsa", "approval", "release", "reproduction", "deployment")

_HEX64 = re.compile(r"[0-9a-f]{64}")
#: The folder of the blake3 index: ``blake3/<blake3 hex>`` holds the artefact's sha256.
INDEX_FOLDER = "blake3"
#: The folder of the deployment index: ``deployments/<env>/<component>/<time>-<sha256>.intoto.jsonl``.
DEPLOYMENTS_FOLDER = "deployments"
_FILED = re.compile(r"([^/]+)/([^/]+)/([0-9]{8}T[0-9]{12}Z)-([0-9a-f]{64})\.intoto\.jsonl")


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


def index_key(blake3: str) -> str:
    """Where the blake3 index entry of the artefact whose blake3 is ``blake3`` is."""
    if not _HEX64.fullmatch(blake3):
        raise StoreError(f"{blake3!r} is not a lower-case hex blake3 digest")
    return f"{INDEX_FOLDER}/{blake3}"


def index_entry(sha256: str) -> bytes:
    """The bytes of an index entry pointing at ``sha256/<sha256>/``."""
    return _check_hex(sha256).encode() + b"\n"


def parse_index_entry(data: bytes) -> str | None:
    """The sha256 an index entry names, or None if it is not one (junk in an untrusted store is no entry)."""
    text = data.removesuffix(b"\n")
    return text.decode() if _HEX64.fullmatch(text.decode("ascii", "replace")) else None


def artifact_key(sha256: str, name: str) -> str:
    return f"sha256/{_check_hex(sha256)}/artifact/{safe_name(name)}"


def attestation_key(sha256: str, kind: str, line: bytes) -> str:
    if kind not in KINDS:
        raise StoreError(f"unknown attestation kind {kind!r}; expected one of {list(KINDS)}")
    return f"sha256/{_check_hex(sha256)}/{kind}-{hashlib.sha256(line).hexdigest()}.intoto.jsonl"


@dataclass(frozen=True)
class FiledDeployment:
    """A deployment record as the store's deployment index names it: a hint of what it holds (the record's
    signed fields decide), by which records are found and read newest first without reading the others."""

    environment: str
    component: str
    time: str
    """The record's timeDeployed as :func:`verify.formats.deployment.filing_time` writes it."""
    sha256: str
    """sha256 of the record's envelope line (without its newline)."""
    key: str
    """Where it is, relative to the store."""


def _segment(name: str) -> str:
    """A name as one path segment: percent-encoded, dots too, so that no name reads as '.' or '..'."""
    if not name:
        raise StoreError("an environment or component name is empty, and cannot be filed")
    return quote(name, safe="-_").replace(".", "%2E")


def deployment_key(environment: str, component: str, time: datetime, line: bytes) -> str:
    """Where the deployment record ``line`` (environment, component, timeDeployed as signed) is indexed."""
    sha256 = hashlib.sha256(line.removesuffix(b"\n")).hexdigest()
    return (f"{DEPLOYMENTS_FOLDER}/{_segment(environment)}/{_segment(component)}/"
            f"{filing_time(time)}-{sha256}.intoto.jsonl")


def deployment_prefix(environment: str | None = None) -> str:
    """The prefix of the deployment index, of one environment's part of it if given."""
    return f"{DEPLOYMENTS_FOLDER}/" + (f"{_segment(environment)}/" if environment is not None else "")


def parse_deployment_key(key: str) -> FiledDeployment | None:
    """What the deployment index entry ``key`` (relative to the store) claims; None if it is not one."""
    match = _FILED.fullmatch(key.removeprefix(f"{DEPLOYMENTS_FOLDER}/")) if key.startswith(
        f"{DEPLOYMENTS_FOLDER}/") else None
    if match is None:
        return None
    environment, component = unquote(match.group(1)), unquote(match.group(2))
    if not environment or not component or _segment(environment) != match.group(1) or (
            _segment(component) != match.group(2)):
        return None  # one record, one name: a name written another way is not the index's
    return FiledDeployment(environment=environment, component=component, time=match.group(3),
                           sha256=match.group(4), key=key)
