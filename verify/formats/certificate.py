"""What a Fulcio signing certificate claims about its subject: read, never trusted here.

The claims (SANs, the OIDC issuer, the GitHub workflow extensions) are believed only once the
certificate chains to the trusted root (:mod:`verify.sigstore`); until then they name the identity a
bundle *says* signed it, for messages and for telling a forged signature from an untrusted one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # types only: cryptography is imported when a certificate is read
    from cryptography.x509 import Certificate

__all__ = ["CertificateClaims", "read_claims"]

# Fulcio certificate extensions (https://github.com/sigstore/fulcio/blob/main/docs/oid-info.md)
_OID_ISSUER_V1 = "1.3.6.1.4.1.57264.1.1"                 # raw UTF-8 (deprecated, still issued)
_OID_OTHERNAME_SAN = "1.3.6.1.4.1.57264.1.7"
_OID_ISSUER = "1.3.6.1.4.1.57264.1.8"                    # the rest: DER UTF8String
_OID_BUILD_SIGNER_URI = "1.3.6.1.4.1.57264.1.9"
_OID_RUNNER_ENVIRONMENT = "1.3.6.1.4.1.57264.1.11"
_OID_SOURCE_REPOSITORY_URI = "1.3.6.1.4.1.57264.1.12"
_OID_SOURCE_REPOSITORY_REF = "1.3.6.1.4.1.57264.1.14"


@dataclass(frozen=True)
class CertificateClaims:
    """What a Fulcio certificate says about its subject (unverified until the chain is)."""

    sans: tuple[str, ...]
    issuer: str | None
    build_signer_uri: str | None
    source_repository_uri: str | None
    source_repository_ref: str | None
    runner_environment: str | None

    def describe(self) -> str:
        identity = self.sans[0] if len(self.sans) == 1 else list(self.sans)
        return f"{identity!r} (issuer {self.issuer!r})"

    @property
    def person(self) -> str:
        """Who the certificate was issued to, as one text (its names and issuer): one person, whatever identities
        of a policy the certificate satisfies (an approval counts once for them)."""
        return f"{' '.join(self.sans)} {self.issuer or ''}"


def read_claims(cert: Certificate) -> CertificateClaims:
    """The identity claims of ``cert``; ``ValueError`` if one of its extensions is malformed."""
    from cryptography import x509

    sans: list[str] = []
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        san = None
    if san is not None:
        sans.extend(san.get_values_for_type(x509.RFC822Name))
        sans.extend(san.get_values_for_type(x509.UniformResourceIdentifier))
        sans.extend(_utf8_der(o.value) for o in san.get_values_for_type(x509.OtherName)
                    if o.type_id.dotted_string == _OID_OTHERNAME_SAN)
    raw = {e.oid.dotted_string: e.value.value for e in cert.extensions
           if isinstance(e.value, x509.UnrecognizedExtension)}

    def text(oid: str) -> str | None:
        return _utf8_der(raw[oid]) if oid in raw else None

    issuer = text(_OID_ISSUER)
    if issuer is None and _OID_ISSUER_V1 in raw:
        issuer = raw[_OID_ISSUER_V1].decode("utf-8")
    return CertificateClaims(sans=tuple(sans), issuer=issuer, build_signer_uri=text(_OID_BUILD_SIGNER_URI),
                             source_repository_uri=text(_OID_SOURCE_REPOSITORY_URI),
                             source_repository_ref=text(_OID_SOURCE_REPOSITORY_REF),
                             runner_environment=text(_OID_RUNNER_ENVIRONMENT))


def _utf8_der(data: bytes) -> str:
    """Decode one DER UTF8String (tag 0x0c), exactly; ``ValueError`` otherwise."""
    if len(data) < 2 or data[0] != 0x0C:
        raise ValueError("not a DER UTF8String")
    length, offset = data[1], 2
    if length & 0x80:
        width = length & 0x7F
        if width == 0 or width > 4 or len(data) < 2 + width:
            raise ValueError("bad DER length")
        length, offset = int.from_bytes(data[2:2 + width], "big"), 2 + width
    if len(data) != offset + length:
        raise ValueError("DER length does not match the value")
    return data[offset:].decode("utf-8")
