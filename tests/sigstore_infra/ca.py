"""A Fulcio-like certificate authority: identity token + CSR in, short-lived code-signing certificate out.

The chain is root -> intermediate -> leaf, all ECDSA P-384 / SHA-384 except the leaf's own key
(whatever the client generated). Each leaf follows Fulcio's profile: empty subject, the identity
as a critical SAN, digitalSignature, codeSigning, the OIDC issuer in 1.3.6.1.4.1.57264.1.1 (raw
string) and .1.8 (DER UTF8String), GitHub workflow extensions when the token has GitHub claims,
and one embedded SCT over the precertificate (RFC 6962 §3.2).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from cryptography import x509
from cryptography.hazmat import asn1
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from ._encoding import key_id
from .ct import CTLog, sct_list_extension
from .tokens import GITHUB_SERVER_URL, TokenMinter

LEAF_LIFETIME = dt.timedelta(minutes=10)
CA_LIFETIME = dt.timedelta(days=1)
ORGANIZATION = "attest-test"

_FULCIO_OID_ARC = "1.3.6.1.4.1.57264.1"
_ISSUER_LEGACY = 1
_ISSUER_V2 = 8

# Fulcio's OID list (docs/oid-info.md): extension number -> value built from the GitHub token claims.
# 2-6 are the deprecated raw-string forms, 9-22 the DER UTF8String forms.
_GITHUB_LEGACY_EXTENSIONS = {2: "{event_name}", 3: "{sha}", 4: "{workflow}", 5: "{repository}", 6: "{ref}"}
_GITHUB_EXTENSIONS = {
    9: "{server_url}/{job_workflow_ref}",  # build signer URI (= the SAN)
    10: "{job_workflow_sha}",  # build signer digest
    11: "{runner_environment}",
    12: "{server_url}/{repository}",  # source repository URI
    13: "{sha}",  # source repository digest
    14: "{ref}",  # source repository ref
    15: "{repository_id}",
    16: "{server_url}/{repository_owner}",
    17: "{repository_owner_id}",
    18: "{server_url}/{workflow_ref}",  # build config URI
    19: "{workflow_sha}",  # build config digest
    20: "{event_name}",  # build trigger
    21: "{server_url}/{repository}/actions/runs/{run_id}/attempts/{run_attempt}",
    22: "{repository_visibility}",
}


class CertificateRequestRejected(Exception):
    """The CSR or the identity in the token cannot be certified."""


def _fulcio_extension(number: int, value: str, *, der: bool) -> x509.UnrecognizedExtension:
    oid = x509.ObjectIdentifier(f"{_FULCIO_OID_ARC}.{number}")
    return x509.UnrecognizedExtension(oid, asn1.encode_der(value) if der else value.encode())


def identity_from_claims(claims: dict[str, Any]) -> tuple[x509.GeneralName, list[x509.UnrecognizedExtension]]:
    """The SAN and Fulcio extensions a certificate for these (verified) token claims carries."""
    issuer = str(claims["iss"])
    extensions = [
        _fulcio_extension(_ISSUER_LEGACY, issuer, der=False),
        _fulcio_extension(_ISSUER_V2, issuer, der=True),
    ]
    if "email" in claims:
        if claims.get("email_verified") is not True:
            raise CertificateRequestRejected("the token's email is not verified")
        return x509.RFC822Name(str(claims["email"])), extensions
    if "job_workflow_ref" in claims:
        values = {"server_url": GITHUB_SERVER_URL, **claims}
        for templates, der in ((_GITHUB_LEGACY_EXTENSIONS, False), (_GITHUB_EXTENSIONS, True)):
            for number, template in templates.items():
                try:
                    extensions.append(_fulcio_extension(number, template.format_map(values), der=der))
                except KeyError:
                    continue  # the token lacks a claim this extension needs: Fulcio omits it too
        return x509.UniformResourceIdentifier(f"{GITHUB_SERVER_URL}/{claims['job_workflow_ref']}"), extensions
    subject = str(claims["sub"])
    if "://" not in subject:
        raise CertificateRequestRejected(f"the token has no email and its subject {subject!r} is not a URI")
    return x509.UniformResourceIdentifier(subject), extensions


def _key_usage(
    *, digital_signature: bool = False, key_cert_sign: bool = False, crl_sign: bool = False
) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=digital_signature,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=key_cert_sign,
        crl_sign=crl_sign,
        encipher_only=False,
        decipher_only=False,
    )


def _ca_certificate(
    *,
    common_name: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: x509.Certificate | None,
    issuer_key: ec.EllipticCurvePrivateKey,
    path_length: int,
    valid_from: dt.datetime,
) -> x509.Certificate:
    """A CA certificate; self-signed when `issuer` is None."""
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, ORGANIZATION),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer.subject if issuer else subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(valid_from)
        .not_valid_after(valid_from + CA_LIFETIME)
        .add_extension(x509.BasicConstraints(ca=True, path_length=path_length), critical=True)
        .add_extension(_key_usage(key_cert_sign=True, crl_sign=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()), critical=False
        )
    )
    if issuer is not None:  # Fulcio's intermediate is restricted to code signing, as its leaves are
        builder = builder.add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CODE_SIGNING]), critical=False
        )
    return builder.sign(issuer_key, hashes.SHA384())


class CertificateAuthority:
    """Fulcio's issuing side, with fresh keys, for one test session."""

    def __init__(self, *, ct_log: CTLog, tokens: TokenMinter, valid_from: dt.datetime) -> None:
        """Generate the root and intermediate; leaves get SCTs from `ct_log` for tokens from `tokens`."""
        self._ct_log = ct_log
        self._tokens = tokens
        root_key = ec.generate_private_key(ec.SECP384R1())
        self.root = _ca_certificate(
            common_name="attest local root",
            key=root_key,
            issuer=None,
            issuer_key=root_key,
            path_length=1,
            valid_from=valid_from,
        )
        self._intermediate_key = ec.generate_private_key(ec.SECP384R1())
        self.intermediate = _ca_certificate(
            common_name="attest local intermediate",
            key=self._intermediate_key,
            issuer=self.root,
            issuer_key=root_key,
            path_length=0,
            valid_from=valid_from,
        )

    @property
    def chain(self) -> list[x509.Certificate]:
        """The CA chain from the intermediate up to the root, as the trusted root lists it."""
        return [self.intermediate, self.root]

    def issue(self, *, csr_pem: bytes, token: str) -> list[x509.Certificate]:
        """Certify the key in `csr_pem` for the identity in `token`: return [leaf, intermediate, root].

        Raises `tokens.InvalidToken` or `CertificateRequestRejected`.
        """
        claims = self._tokens.verify(token)
        try:
            csr = x509.load_pem_x509_csr(csr_pem)
        except ValueError as e:
            raise CertificateRequestRejected(f"the certificate request is not a PEM CSR: {e}") from e
        if not csr.is_signature_valid:  # the proof that the caller holds the private key
            raise CertificateRequestRejected("the CSR's signature does not verify with its own key")
        public_key = csr.public_key()
        if not isinstance(public_key, ec.EllipticCurvePublicKey):
            raise CertificateRequestRejected("only ECDSA keys are certified here")
        san, identity_extensions = identity_from_claims(claims)

        now = dt.datetime.now(dt.UTC).replace(microsecond=0)
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([]))
            .issuer_name(self.intermediate.subject)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now)
            .not_valid_after(now + LEAF_LIFETIME)
            .add_extension(_key_usage(digital_signature=True), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CODE_SIGNING]), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self._intermediate_key.public_key()),
                critical=False,
            )
            # Critical because the subject is empty (RFC 5280 §4.2.1.6).
            .add_extension(x509.SubjectAlternativeName([san]), critical=True)
        )
        for extension in identity_extensions:
            builder = builder.add_extension(extension, critical=False)

        # RFC 6962 §3.2: the SCT signs the TBSCertificate as it is without the SCT list extension
        # (Fulcio logs a poisoned precertificate; its TBS without the poison is the same bytes).
        # The SCT list goes last, so removing it from the final certificate gives back these bytes.
        tbs_precertificate = builder.sign(self._intermediate_key, hashes.SHA384()).tbs_certificate_bytes
        sct = self._ct_log.sign_precertificate(
            tbs_precertificate=tbs_precertificate,
            issuer_key_hash=key_id(self._intermediate_key.public_key()),
        )
        leaf = builder.add_extension(sct_list_extension([sct]), critical=False).sign(
            self._intermediate_key, hashes.SHA384()
        )
        if leaf.tbs_precertificate_bytes != tbs_precertificate:
            raise AssertionError("the SCT does not cover the issued certificate")
        return [leaf, *self.chain]
