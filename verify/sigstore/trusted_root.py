"""The Sigstore trusted root: the logs, certificate authorities and timestamp authorities a bundle is checked
against, read strictly from a trusted_root.json (or the production one shipped inside sigstore-python).

Reading a trusted root is a trust decision of the operator's: a file that is not exactly the
protobuf-specs form is a :class:`TrustConfigError` (exit 3), never a root that trusts less or more.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from verify.errors import EvidenceRejected, TrustConfigError, brief
from verify.files import read_trusted_root
from verify.formats import strict_json
from verify.formats.encoding import b64decode, base64_problem, parse_time, time_problem
from verify.sigstore.times import Window

if TYPE_CHECKING:  # types only: cryptography is imported where a root is parsed
    from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes
    from cryptography.x509 import Certificate

__all__ = ["TRUSTED_ROOT_MEDIA_TYPE", "Authority", "LogKey", "TrustedRoot", "load_trusted_root", "parse_trusted_root"]

#: The trusted root media type sigstore-python 4.5.1 reads.
TRUSTED_ROOT_MEDIA_TYPE = "application/vnd.dev.sigstore.trustedroot+json;version=0.1"

#: The production trusted root inside sigstore-python: package and file within it.
_EMBEDDED_ROOT = ("sigstore._store", "https%3A%2F%2Ftuf-repo-cdn.sigstore.dev/trusted_root.json")
_EMBEDDED_ROOT_NAME = "the production trusted root embedded in sigstore-python"


@dataclass(frozen=True)
class LogKey:
    """A transparency or CT log of the trusted root: its id, key, and when the key may be relied on."""

    log_id: bytes
    key: PublicKeyTypes | None
    """None: a key type attest does not verify with (such a log never verifies anything)."""
    hash_name: str
    window: Window


@dataclass(frozen=True)
class Authority:
    """A certificate authority (Fulcio) or timestamp authority of the trusted root."""

    certificates: tuple[Certificate, ...]
    window: Window


@dataclass(frozen=True)
class TrustedRoot:
    name: str
    tlogs: tuple[LogKey, ...]
    ctlogs: tuple[LogKey, ...]
    authorities: tuple[Authority, ...]
    timestamp_authorities: tuple[Authority, ...]


_ROOT_SCHEMA: dict[str, dict[str, tuple[str, bool]]] = {
    "root": {"mediaType": ("str", True), "tlogs": ("[log]", True), "certificateAuthorities": ("[ca]", True),
             "ctlogs": ("[log]", True), "timestampAuthorities": ("[ca]", False)},
    "log": {"baseUrl": ("str", True), "hashAlgorithm": ("str", True), "publicKey": ("key", True),
            "logId": ("logId", True), "checkpointKeyId": ("logId", False), "operator": ("str", False)},
    "key": {"rawBytes": ("bytes", False), "keyDetails": ("str", True), "validFor": ("range", True)},
    "logId": {"keyId": ("bytes", True)},
    "range": {"start": ("time", True), "end": ("time", False)},
    "ca": {"subject": ("name", True), "uri": ("str", False), "certChain": ("chain", True),
           "validFor": ("range", True), "operator": ("str", False)},
    "name": {"organization": ("str", True), "commonName": ("str", True)},
    "chain": {"certificates": ("[certificate]", True)},
    "certificate": {"rawBytes": ("bytes", True)},
}


def _root_problem(value: Any, kind: str, where: str) -> str | None:
    """The first way ``value`` departs from :data:`_ROOT_SCHEMA`'s ``kind``, or None."""
    if kind.startswith("["):
        return _list_problem(value, kind[1:-1], where)
    if kind in _SCALAR_PROBLEMS:
        return _SCALAR_PROBLEMS[kind](value, where)
    return _object_problem(value, kind, where)


def _list_problem(value: Any, kind: str, where: str) -> str | None:
    """The first way the list ``value`` or one of its items (each a ``kind``) departs from the schema, or None."""
    if not isinstance(value, list):
        return f"{where} is not a list"
    return next((p for i, v in enumerate(value) if (p := _root_problem(v, kind, f"{where}[{i}]"))), None)


def _str_problem(value: Any, where: str) -> str | None:
    """Why ``value`` is not a string, or None."""
    return None if isinstance(value, str) else f"{where} is not a string"


#: scalar kind -> why a value is not one (None: it is).
_SCALAR_PROBLEMS = {"str": _str_problem, "bytes": base64_problem, "time": time_problem}


def _object_problem(value: Any, kind: str, where: str) -> str | None:
    """The first way the object ``value`` departs from ``kind``: an unknown field, then field by field."""
    if not isinstance(value, dict):
        return f"{where or 'it'} is not a JSON object"
    fields = _ROOT_SCHEMA[kind]
    unknown = [name for name in value if name not in fields]
    if unknown:
        return f"{where or 'it'} has an unknown field {unknown[0]!r}"
    for name, (field_kind, required) in fields.items():
        if value.get(name) is None:
            if required:
                return f"{where or 'it'} has no {name}"
            continue
        problem = _root_problem(value[name], field_kind, f"{where}.{name}" if where else name)
        if problem:
            return problem
    return None


def checked_trusted_root(path: Path) -> bytes:
    """The bytes of the trusted root at ``path`` (``--trusted-root``), read and parsed: unreadable or malformed is a
    :class:`TrustConfigError` now, whether a keyless bundle is met or not."""
    data = read_trusted_root(path)
    parse_trusted_root(data, name=str(path))
    return data


def parse_trusted_root(data: bytes, *, name: str) -> TrustedRoot:
    """The trusted root ``data`` (trusted_root.json), read strictly; :class:`TrustConfigError` naming ``name``."""
    from cryptography import x509

    try:
        document = strict_json.loads(data, what=f"trusted root {name}")
    except EvidenceRejected as e:
        raise TrustConfigError(f"{name} is not a Sigstore trusted root ({e})") from e
    problem = _root_problem(document, "root", "")
    if problem is not None:
        raise TrustConfigError(f"{name} is not a Sigstore trusted root ({problem})")
    if document["mediaType"] != TRUSTED_ROOT_MEDIA_TYPE:
        raise TrustConfigError(f"{name} is a trusted root of unsupported media type {document['mediaType']!r}")

    def window(valid: Any) -> Window:
        return (parse_time(valid["start"], what="validFor.start"),
                parse_time(valid["end"], what="validFor.end") if valid.get("end") is not None else None)

    def authority(entry: Any, what: str) -> Authority:
        try:
            certificates = tuple(x509.load_der_x509_certificate(b64decode(c["rawBytes"], what=what))
                                 for c in entry["certChain"]["certificates"])
        except ValueError as e:
            raise TrustConfigError(f"{name} holds an unreadable {what} certificate ({brief(e)})") from e
        if not certificates:
            raise TrustConfigError(f"trusted root {name} cannot verify bundles (a {what} has no certificates)")
        return Authority(certificates=certificates, window=window(entry["validFor"]))

    root = TrustedRoot(name=name, tlogs=tuple(_log_key(e) for e in document["tlogs"]),
                       ctlogs=tuple(_log_key(e) for e in document["ctlogs"]),
                       authorities=tuple(authority(e, "certificate authority")
                                         for e in document["certificateAuthorities"]),
                       timestamp_authorities=tuple(authority(e, "timestamp authority")
                                                   for e in document.get("timestampAuthorities") or []))
    if not root.tlogs:
        raise TrustConfigError(f"trusted root {name} cannot verify bundles (it names no transparency log)")
    if not root.authorities:
        raise TrustConfigError(f"trusted root {name} cannot verify bundles (it names no certificate authority)")
    return root


def _log_key(entry: Any) -> LogKey:
    """A log's key as sigstore-python loads it: a key type it does not know never verifies anything."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

    public = entry["publicKey"]
    details = public["keyDetails"]
    types: tuple[type, ...]
    if details in ("PKCS1_RSA_PKCS1V5", "PKIX_RSA_PKCS1V15_2048_SHA256", "PKIX_RSA_PKCS1V15_3072_SHA256",
                   "PKIX_RSA_PKCS1V15_4096_SHA256"):
        types, hash_name = (rsa.RSAPublicKey,), "sha256"
    elif details in ("PKIX_ECDSA_P256_SHA_256", "PKIX_ECDSA_P384_SHA_384", "PKIX_ECDSA_P521_SHA_512"):
        types, hash_name = (ec.EllipticCurvePublicKey,), {"256": "sha256", "384": "sha384"}.get(details[12:15],
                                                                                                   "sha512")
    elif details == "PKIX_ED25519":
        types, hash_name = (ed25519.Ed25519PublicKey,), ""
    else:
        types, hash_name = (), ""
    key: PublicKeyTypes | None = None
    raw = public.get("rawBytes")
    if types and raw:
        try:
            loaded = serialization.load_der_public_key(b64decode(raw, what="a log key"))
        except ValueError:
            loaded = None
        key = loaded if isinstance(loaded, types) else None
    valid = public["validFor"]
    return LogKey(log_id=b64decode(entry["logId"]["keyId"], what="a log id"), key=key, hash_name=hash_name,
                  window=(parse_time(valid["start"], what="validFor.start"),
                          parse_time(valid["end"], what="validFor.end") if valid.get("end") is not None
                          else None))


def load_trusted_root(path: Path | None) -> TrustedRoot:
    """The trusted root in ``path``, else the production one embedded in sigstore-python (never refreshed)."""
    import importlib.resources

    data: bytes | None = None
    if path is not None:
        return parse_trusted_root(read_trusted_root(path), name=str(path))
    package, name = _EMBEDDED_ROOT
    try:
        resource = importlib.resources.files(package).joinpath(name)
        if resource.is_file():
            data = resource.read_bytes()
    except (ModuleNotFoundError, OSError):
        data = None
    if data is None:
        raise TrustConfigError(f"{_EMBEDDED_ROOT_NAME} is missing from this installation; "
                               "pass --trusted-root FILE")
    return parse_trusted_root(data, name=_EMBEDDED_ROOT_NAME)
