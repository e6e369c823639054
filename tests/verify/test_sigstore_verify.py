"""verify.sigstore: identities, certificate claims, trusted roots, and the bundle verifier hook.

Keyless cases use real bundles (tests/assets/sigstore, the conformance suite); key-signed
message signatures are made here with ``cryptography`` directly. Every ``raise`` in
verify/sigstore.py is made to happen, and verification runs with sockets disabled.
"""

from __future__ import annotations

import base64
import hashlib
import json
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed
from cryptography.x509.oid import NameOID

import verify.sigstore.trusted_root as vs
from tests.conftest import CONFORMANCE, ROOT
from verify.budget import VerificationBudget
from verify.digests import DigestSet
from verify.errors import (
    DigestMismatch,
    EvidenceRejected,
    MalformedEvidence,
    PolicyViolation,
    SignatureInvalid,
    TrustConfigError,
    UnknownEvidence,
)
from verify.formats.certificate import CertificateClaims, read_claims
from verify.formats.evidence import Evidence, load_evidence
from verify.policy import ProvenanceRules, TrustedBuilder, empty_policy
from verify.signers import TrustRun, find_signers
from verify.sigstore.identity import GITHUB_ACTIONS_ISSUER, mismatch, sigstore_identity
from verify.sigstore.trusted_root import load_trusted_root
from verify.sigstore.verifier import make_bundle_verifier
from verify.trust import Identity, SigstoreIdentity, load_public_key
from verify.verifier import verify_artifact

ASSETS = ROOT / "tests" / "assets" / "sigstore"
SUITE = CONFORMANCE / "sigstore-conformance" / "test" / "assets" / "bundle-verify"
PRODUCTION_ROOT = CONFORMANCE / "trusted_root.production.json"

REUSABLE = ASSETS / "gh-reusable-workflow.sigstore.json"
REUSABLE_SHA256 = hashlib.sha256((ASSETS / "gh-reusable-workflow-artifact.whl").read_bytes()).hexdigest()
SIGNER_WORKFLOW = "github/artifact-attestations-workflows/.github/workflows/attest.yml"
A_TXT_SHA256 = hashlib.sha256((SUITE / "a.txt").read_bytes()).hexdigest()
BEACON = ("https://github.com/sigstore-conformance/extremely-dangerous-public-oidc-beacon/"
          ".github/workflows/extremely-dangerous-oidc-beacon.yml@refs/heads/main")


@pytest.fixture(autouse=True)
def no_network(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Verification never opens a connection: any attempt fails the test."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"network access attempted: {args[1:]!r}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    yield


def evidence(path: Path | None = None, *, obj: Any = None) -> Evidence:
    data = path.read_bytes() if path is not None else json.dumps(obj).encode()
    [item] = load_evidence(data, source="bundle")
    assert isinstance(item, Evidence), item
    return item


def keyless(name: str, **fields: Any) -> Identity:
    return Identity(name=name, sigstore=(sigstore_identity(**fields),))


def hook(sha256: str, root: Path | None = PRODUCTION_ROOT, *,
         more: dict[str, str] | None = None) -> Callable[[Evidence, list[Identity]], Identity]:
    """Who signed a bundle for the artefact whose sha256 is ``sha256`` (and other digests ``more``):
    verify.signers.find_signers (the one decision), with Sigstore support from make_bundle_verifier; the
    first signer."""

    def signer(item: Evidence, identities: list[Identity]) -> Identity:
        run = TrustRun(bundles=make_bundle_verifier(trusted_root=root))
        return find_signers(item, identities, run, message=DigestSet({"sha256": sha256, **(more or {})}))[0]

    return signer


def unreadable(obj: Any) -> str:
    """The sentence the hardened reader refuses ``obj`` with (it never reaches a verifier)."""
    [item] = load_evidence(json.dumps(obj).encode(), source="bundle")
    assert isinstance(item, MalformedEvidence), item
    return str(item)


# --- identities ------------------------------------------------------------------------------------

def test_github_shorthands_make_anchored_identities() -> None:
    by_workflow = sigstore_identity(issuer=None, signer_workflow=SIGNER_WORKFLOW, github_repo="acme/app",
                                    source_ref="main", deny_self_hosted_runners=True)
    assert by_workflow.issuer == GITHUB_ACTIONS_ISSUER
    assert by_workflow.identity_regexp == r"https://github\.com/github/artifact\-attestations\-workflows/" \
                                          r"\.github/workflows/attest\.yml@.+"
    assert (by_workflow.source_repository, by_workflow.source_ref, by_workflow.signer_workflow) == (
        "github.com/acme/app", "refs/heads/main", f"github.com/{SIGNER_WORKFLOW}")
    assert by_workflow.github_hosted
    by_repo = sigstore_identity(issuer=None, github_repo="https://GitHub.com/acme/app/")
    assert by_repo.identity_regexp == r"https://github\.com/acme/app/.+"
    pinned_ref = sigstore_identity(issuer=None, github_repo="ghe.example.com/a/caller",
                                   signer_workflow="ghe.example.com/a/b/.github/workflows/c.yml@v1")
    assert pinned_ref.identity_regexp == r"https://ghe\.example\.com/a/b/\.github/workflows/c\.yml@v1"
    tagged = sigstore_identity(issuer="https://x", identity="a", source_ref="refs/tags/v1")
    assert tagged.source_ref == "refs/tags/v1"


@pytest.mark.parametrize(("fields", "words"), [
    ({"issuer": "i", "identity": "a", "identity_regexp": "b"}, "not both"),
    ({"issuer": "i"}, "needs a certificate identity"),
    ({"issuer": None, "identity": "a"}, "needs its OIDC issuer"),
    ({"issuer": "i", "identity_regexp": "(a"}, "is not a valid regular expression"),
    ({"issuer": None, "github_repo": "acme"}, "is not OWNER/REPO"),
    ({"issuer": None, "github_repo": "a/b/c/d"}, "is not OWNER/REPO"),
    ({"issuer": None, "signer_workflow": "acme/app/release.yml"}, "is not OWNER/REPO/.github/workflows/FILE"),
    # any repository may call a reusable workflow: the workflow alone would trust them all
    ({"issuer": None, "signer_workflow": "acme/app/.github/workflows/release.yml"}, "pin that repository too"),
    ({"issuer": None, "signer_workflow": "acme/app/.github/workflows/release.yml", "source_ref": "main"},
     "pin that repository too"),
    # an identity pinned beside it (a shared workflow's own) still trusts every repository that calls it
    ({"issuer": None, "signer_workflow": "acme/shared/.github/workflows/release.yml",
      "identity": "https://github.com/acme/shared/.github/workflows/release.yml@refs/heads/main"},
     "pin that repository too"),
    ({"issuer": None, "signer_workflow": "acme/shared/.github/workflows/release.yml",
      "identity_regexp": "https://github.com/acme/shared/.*"}, "pin that repository too"),
])
def test_incomplete_identities_are_refused(fields: dict[str, Any], words: str) -> None:
    with pytest.raises(TrustConfigError) as e:
        sigstore_identity(**fields)
    assert words in str(e.value)


def test_describe_names_every_requirement() -> None:
    text = sigstore_identity(issuer=None, signer_workflow=SIGNER_WORKFLOW, github_repo="acme/app",
                             source_ref="main", deny_self_hosted_runners=True).describe()
    for word in ("identity matching", "issuer", "source repository", "source ref", "signer workflow",
                 "GitHub-hosted"):
        assert word in text
    assert SigstoreIdentity(issuer="i", identity="a").describe() == "identity 'a', issuer 'i'"


# --- certificate claims ----------------------------------------------------------------------------

def reusable_claims() -> CertificateClaims:
    from sigstore.models import Bundle

    return read_claims(Bundle.from_json(REUSABLE.read_bytes()).signing_certificate)


def test_claims_of_a_github_certificate() -> None:
    claims = reusable_claims()
    assert claims.sans == (f"https://github.com/{SIGNER_WORKFLOW}@09b495c3f12c7881b3cc17209a327792065c1a1d",)
    assert claims.issuer == GITHUB_ACTIONS_ISSUER
    assert claims.build_signer_uri == claims.sans[0]
    assert claims.source_repository_uri == "https://github.com/malancas/attest-demo"
    assert (claims.source_repository_ref, claims.runner_environment) == ("refs/heads/main", "github-hosted")


@pytest.mark.parametrize(("fields", "reason"), [
    ({"issuer": "https://accounts.google.com", "identity": "x"}, "issuer is 'https://token.actions"),
    ({"issuer": GITHUB_ACTIONS_ISSUER, "identity": "https://github.com/acme/app"}, "identity is not"),
    ({"issuer": GITHUB_ACTIONS_ISSUER, "identity_regexp": "https://github.com/github"},
     "identity does not match"),
    ({"issuer": None, "signer_workflow": SIGNER_WORKFLOW, "github_repo": "acme/app"},
     "source repository is 'https://github.com/malancas/attest-demo'"),
    ({"issuer": None, "signer_workflow": SIGNER_WORKFLOW, "github_repo": "malancas/attest-demo", "source_ref": "dev"},
     "source ref is 'refs/heads/main'"),
    ({"issuer": None, "github_repo": "github/artifact-attestations-workflows",
      "signer_workflow": "github/artifact-attestations-workflows/.github/workflows/other.yml"},
     "identity does not match"),
])
def test_mismatch_names_the_first_failed_requirement(fields: dict[str, Any], reason: str) -> None:
    found = mismatch(reusable_claims(), sigstore_identity(**fields))
    assert found is not None and reason in found


def test_mismatch_on_signer_workflow_and_runner() -> None:
    claims = reusable_claims()
    pinned = sigstore_identity(issuer=None, signer_workflow=SIGNER_WORKFLOW,
                               github_repo="malancas/attest-demo", source_ref="refs/heads/main",
                               deny_self_hosted_runners=True)
    assert mismatch(claims, pinned) is None
    loose = SigstoreIdentity(issuer=GITHUB_ACTIONS_ISSUER, identity_regexp=".*",
                             signer_workflow="github.com/acme/app/.github/workflows/attest.yml")
    assert "signer workflow is" in (mismatch(claims, loose) or "")
    self_hosted = CertificateClaims(**{**claims.__dict__, "runner_environment": "self-hosted"})
    assert mismatch(self_hosted, pinned) == "runner environment is 'self-hosted', expected 'github-hosted'"
    assert "signer workflow" in (mismatch(CertificateClaims(**{**claims.__dict__, "build_signer_uri": None}),
                                          pinned) or "")


def _certificate(extensions: list[tuple[str, bytes]], sans: list[x509.GeneralName]) -> x509.Certificate:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test")])
    now = datetime.now(UTC)
    builder = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
               .serial_number(1).not_valid_before(now).not_valid_after(now + timedelta(minutes=5)))
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    for oid, value in extensions:
        builder = builder.add_extension(x509.UnrecognizedExtension(x509.ObjectIdentifier(oid), value),
                                        critical=False)
    return builder.sign(key, hashes.SHA256())


def _utf8(text: str) -> bytes:
    data = text.encode()
    length = bytes([len(data)]) if len(data) < 128 else bytes([0x81, len(data)])
    return b"\x0c" + length + data


def test_claims_from_other_names_v1_issuer_and_long_values() -> None:
    long_uri = "https://example.com/" + "a" * 200
    cert = _certificate([("1.3.6.1.4.1.57264.1.1", b"https://issuer.example"),
                         ("1.3.6.1.4.1.57264.1.9", _utf8(long_uri))],
                        [x509.OtherName(x509.ObjectIdentifier("1.3.6.1.4.1.57264.1.7"), _utf8("user@host")),
                         x509.RFC822Name("a@example.com")])
    claims = read_claims(cert)
    assert claims.sans == ("a@example.com", "user@host")
    assert (claims.issuer, claims.build_signer_uri, claims.source_repository_uri) == (
        "https://issuer.example", long_uri, None)
    assert read_claims(_certificate([], [])).sans == ()


@pytest.mark.parametrize("value", [b"", b"\x04\x01a", b"\x0c\x80", b"\x0c\x85\x00\x00\x00\x00\x01a",
                                   b"\x0c\x05ab", b"\x0c\x02\xff\xfe"],
                         ids=["empty", "not-utf8string", "zero-width-length", "too-wide-length", "short",
                              "bad-utf8"])
def test_malformed_extension_values_are_refused(value: bytes) -> None:
    cert = _certificate([("1.3.6.1.4.1.57264.1.8", value)], [x509.UniformResourceIdentifier("https://x")])
    with pytest.raises(ValueError):
        read_claims(cert)
    import dataclasses

    import verify.sigstore._native as native

    parsed = dataclasses.replace(native.parse(evidence(REUSABLE)), leaf=cert)
    with pytest.raises(SignatureInvalid, match="malformed identity extension"):
        native.verify_identity(parsed, [(keyless("x", issuer="i", identity="https://x"),
                                         SigstoreIdentity(issuer="i", identity="https://x"))])


# --- trusted roots ---------------------------------------------------------------------------------

def test_the_default_root_is_the_one_sigstore_python_embeds() -> None:
    import importlib.resources

    package, name = vs._EMBEDDED_ROOT
    embedded = importlib.resources.files(package).joinpath(name).read_bytes()
    assert hashlib.sha256(embedded).hexdigest() == hashlib.sha256(PRODUCTION_ROOT.read_bytes()).hexdigest()
    assert load_trusted_root(None).authorities


def test_trusted_root_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(TrustConfigError, match=r"cannot read trusted root .*: No such file"):
        load_trusted_root(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text("not json")
    with pytest.raises(TrustConfigError, match="is not a Sigstore trusted root"):
        load_trusted_root(bad)
    unreadable = tmp_path / "dir.json"
    unreadable.mkdir()
    with pytest.raises(TrustConfigError, match=r"trusted root .*dir\.json is not a regular file \(it is a directory\)"):
        load_trusted_root(unreadable)
    monkeypatch.undo()
    monkeypatch.setattr(vs, "_EMBEDDED_ROOT", ("sigstore._store", "missing/trusted_root.json"))
    with pytest.raises(TrustConfigError, match="is missing from this installation"):
        load_trusted_root(None)


def test_a_root_without_logs_cannot_verify(tmp_path: Path) -> None:
    root = json.loads(PRODUCTION_ROOT.read_bytes())
    root["tlogs"] = []
    path = tmp_path / "root.json"
    path.write_text(json.dumps(root))
    pinned = keyless("gha", issuer=None, signer_workflow=SIGNER_WORKFLOW, github_repo="malancas/attest-demo")
    with pytest.raises(TrustConfigError, match="cannot verify bundles"):
        hook(REUSABLE_SHA256, path)(evidence(REUSABLE), [pinned])


# --- keyless bundles -------------------------------------------------------------------------------

def test_the_first_matching_identity_signs() -> None:
    others = keyless("other", issuer=None, github_repo="acme/app")
    gha = keyless("gha", issuer=None, signer_workflow=SIGNER_WORKFLOW, github_repo="malancas/attest-demo")
    keys_only = Identity(name="dev", keys=(load_public_key((SUITE / "managed-key-happy-path" / "key.pub")
                                                           .read_bytes(), name="k"),))
    assert hook(REUSABLE_SHA256)(evidence(REUSABLE), [keys_only, others, gha]) is gha
    assert hook(REUSABLE_SHA256, None)(evidence(REUSABLE), [gha]) is gha  # the embedded production root


def test_no_trusted_identity_is_refused_with_the_found_one() -> None:
    with pytest.raises(SignatureInvalid, match=r"no trusted identity allows .*other: identity does not"):
        hook(REUSABLE_SHA256)(evidence(REUSABLE), [keyless("other", issuer=None, github_repo="acme/app")])
    with pytest.raises(SignatureInvalid, match=r"signed keylessly by 'https://github\.com/github/artifact-"
                                               r"attestations.*no Sigstore identity is trusted"):
        hook(REUSABLE_SHA256)(evidence(REUSABLE), [Identity(name="dev")])


def test_message_signature_bundles() -> None:
    bundle = evidence(SUITE / "happy-path-v0.3" / "bundle.sigstore.json")
    beacon = keyless("beacon", issuer=GITHUB_ACTIONS_ISSUER, identity=BEACON)
    assert hook(A_TXT_SHA256)(bundle, [beacon]) is beacon
    with pytest.raises(DigestMismatch, match="is not the digest the bundle signs"):
        hook("00" * 32)(bundle, [beacon])
    without_digest = json.loads(bundle.raw)
    del without_digest["messageSignature"]["messageDigest"]
    assert hook(A_TXT_SHA256)(evidence(obj=without_digest), [beacon]) is beacon
    with pytest.raises(SignatureInvalid, match="does not verify against the trusted root"):
        hook("00" * 32)(evidence(obj=without_digest), [beacon])


@pytest.mark.parametrize(("change", "error", "words"), [
    (lambda b: b.update(verificationMaterial={"certificate": {"rawBytes": "AAAA"}}), MalformedEvidence,
     "is not a valid Sigstore bundle"),
    (lambda b: b["messageSignature"].update(messageDigest={"algorithm": "SHA3_256", "digest": "AA=="}),
     MalformedEvidence, "messageDigest algorithm is 'SHA3_256'"),
], ids=["bad-certificate", "sha3-digest"])
def test_malformed_keyless_bundles(change: Callable[[dict[str, Any]], None], error: type[EvidenceRejected],
                                   words: str) -> None:
    bundle = json.loads((SUITE / "happy-path-v0.3" / "bundle.sigstore.json").read_bytes())
    change(bundle)
    beacon = keyless("beacon", issuer=GITHUB_ACTIONS_ISSUER, identity=BEACON)
    with pytest.raises(error) as e:
        hook(A_TXT_SHA256)(evidence(obj=bundle), [beacon])
    assert words in str(e.value)


def test_a_bundle_with_bad_base64_never_reaches_the_verifier() -> None:
    bundle = json.loads((SUITE / "happy-path-v0.3" / "bundle.sigstore.json").read_bytes())
    bundle["messageSignature"]["messageDigest"]["digest"] = "%%%"
    assert "messageDigest is not base64 text" in unreadable(bundle)


def test_tampered_dsse_bundle() -> None:
    bundle = json.loads(REUSABLE.read_bytes())
    statement = json.loads(base64.b64decode(bundle["dsseEnvelope"]["payload"]))
    statement["subject"][0]["digest"]["sha256"] = "00" * 32
    bundle["dsseEnvelope"]["payload"] = base64.b64encode(json.dumps(statement).encode()).decode()
    gha = keyless("gha", issuer=None, signer_workflow=SIGNER_WORKFLOW, github_repo="malancas/attest-demo")
    with pytest.raises(SignatureInvalid, match="does not verify against the trusted root"):
        hook(REUSABLE_SHA256)(evidence(obj=bundle), [gha])


def test_what_the_bundle_verifier_does_not_take() -> None:
    verifier = make_bundle_verifier(trusted_root=PRODUCTION_ROOT)
    envelope = evidence(obj={"payloadType": "x", "payload": "", "signatures": [{"sig": "AA=="}]})
    with pytest.raises(UnknownEvidence, match="is not a keyless Sigstore bundle"):
        verifier(envelope, [], message=None, budget=VerificationBudget())
    keyed_dsse = {"mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json",
                  "verificationMaterial": {"publicKey": {"hint": "h"}},
                  "dsseEnvelope": {"payloadType": "x", "payload": "", "signatures": [{"sig": "AA=="}]}}
    with pytest.raises(UnknownEvidence, match="is not a keyless Sigstore bundle"):
        verifier(evidence(obj=keyed_dsse), [], message=None, budget=VerificationBudget())
    with pytest.raises(SignatureInvalid, match="needs the artefact's digest"):
        verifier(evidence(SUITE / "happy-path-v0.3" / "bundle.sigstore.json"),
                 [keyless("beacon", issuer=GITHUB_ACTIONS_ISSUER, identity=BEACON)], message=None,
                 budget=VerificationBudget())


# --- key-signed message signatures -----------------------------------------------------------------

MESSAGE = b"a plain signed artefact\n"
MESSAGE_SHA256 = hashlib.sha256(MESSAGE).hexdigest()


def key_bundle(signature: bytes, *, digest: bytes | None = None, hint: Any = "hint",
               algorithm: str = "SHA2_256") -> dict[str, Any]:
    message: dict[str, Any] = {"signature": base64.b64encode(signature).decode()}
    if digest is not None:
        message["messageDigest"] = {"algorithm": algorithm, "digest": base64.b64encode(digest).decode()}
    material: dict[str, Any] = {"tlogEntries": []}
    if hint is not None:
        material["publicKey"] = {"hint": hint}
    return {"mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json", "verificationMaterial": material,
            "messageSignature": message}


def pinned(key: Any, name: str = "dev") -> Identity:
    pem = key.public_key().public_bytes(serialization.Encoding.PEM,
                                        serialization.PublicFormat.SubjectPublicKeyInfo)
    return Identity(name=name, keys=(load_public_key(pem, name=f"{name}.pem"),))


def test_key_signed_message_with_pinned_keys() -> None:
    p256 = ec.generate_private_key(ec.SECP256R1())
    p384 = ec.generate_private_key(ec.SECP384R1())
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    digest = hashlib.sha256(MESSAGE).digest()
    prehashed = Prehashed(hashes.SHA256())
    del p384  # P-384 signs SHA-384 digests: test_p384_message_signatures
    signatures = {
        "p256": (p256, p256.sign(MESSAGE, ec.ECDSA(hashes.SHA256()))),
        "p256-prehashed": (p256, p256.sign(digest, ec.ECDSA(prehashed))),
        "rsa-pkcs1": (rsa_key, rsa_key.sign(MESSAGE, padding.PKCS1v15(), hashes.SHA256())),
        "rsa-pss": (rsa_key, rsa_key.sign(MESSAGE, padding.PSS(mgf=padding.MGF1(hashes.SHA256()),
                                                                salt_length=32), hashes.SHA256())),
    }
    stranger = pinned(ec.generate_private_key(ec.SECP256R1()), "stranger")
    for name, (key, signature) in signatures.items():
        signer = pinned(key)
        with_digest = evidence(obj=key_bundle(signature, digest=digest))
        assert hook(MESSAGE_SHA256)(with_digest, [stranger, signer]) is signer, name
        assert hook(MESSAGE_SHA256)(evidence(obj=key_bundle(signature)), [signer]) is signer, name
        with pytest.raises(SignatureInvalid, match=r"does not verify with a trusted key .*: stranger"):
            hook(MESSAGE_SHA256)(evidence(obj=key_bundle(signature)), [stranger])
        with pytest.raises(SignatureInvalid, match="does not verify with a trusted key"):
            hook(hashlib.sha256(b"other").hexdigest())(evidence(obj=key_bundle(signature)), [signer])


MESSAGE_SHA384 = hashlib.sha384(MESSAGE).hexdigest()


def test_p384_message_signatures_sign_sha384_and_a_mismatched_hash_is_refused() -> None:
    p384 = ec.generate_private_key(ec.SECP384R1())
    signer = pinned(p384)
    sha384 = hashlib.sha384(MESSAGE).digest()
    good = p384.sign(MESSAGE, ec.ECDSA(hashes.SHA384()))  # what a P-384 signer writes: ECDSA over SHA-384
    assert hook(MESSAGE_SHA256, more={"sha384": MESSAGE_SHA384})(
        evidence(obj=key_bundle(good, digest=sha384, algorithm="SHA2_384")), [signer]) is signer
    # the same bytes signed over their sha256 with the P-384 key: Sigstore binds P-384 to SHA-384
    over_sha256 = p384.sign(hashlib.sha256(MESSAGE).digest(), ec.ECDSA(Prehashed(hashes.SHA256())))
    for bundle in (key_bundle(over_sha256), key_bundle(over_sha256, digest=hashlib.sha256(MESSAGE).digest())):
        with pytest.raises(SignatureInvalid, match="does not verify with a trusted key"):
            hook(MESSAGE_SHA256, more={"sha384": MESSAGE_SHA384})(evidence(obj=bundle), [signer])
    # a SHA2_384 bundle whose digest is another artefact's, and a P-256 key claiming SHA-384
    with pytest.raises(DigestMismatch, match=r"the artefact's sha384 .* is not the digest the bundle signs"):
        hook(MESSAGE_SHA256, more={"sha384": MESSAGE_SHA384})(
            evidence(obj=key_bundle(good, digest=hashlib.sha384(b"other").digest(), algorithm="SHA2_384")), [signer])
    p256 = ec.generate_private_key(ec.SECP256R1())
    claimed = p256.sign(MESSAGE, ec.ECDSA(hashes.SHA384()))
    with pytest.raises(SignatureInvalid, match="does not verify with a trusted key"):
        hook(MESSAGE_SHA256, more={"sha384": MESSAGE_SHA384})(
            evidence(obj=key_bundle(claimed, digest=sha384, algorithm="SHA2_384")), [pinned(p256)])
    # without the artefact's sha384, nothing is assumed
    with pytest.raises(SignatureInvalid, match="signs an artefact's sha384, and none was computed"):
        hook(MESSAGE_SHA256)(evidence(obj=key_bundle(good, digest=sha384, algorithm="SHA2_384")), [signer])


def test_key_signed_message_refusals() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    signature = key.sign(MESSAGE, ec.ECDSA(hashes.SHA256()))
    with pytest.raises(SignatureInvalid, match="no pinned public key may sign this evidence"):
        hook(MESSAGE_SHA256)(evidence(obj=key_bundle(signature)), [keyless("gha", issuer="i", identity="a")])
    with pytest.raises(DigestMismatch, match="is not the digest the bundle signs"):
        hook(MESSAGE_SHA256)(evidence(obj=key_bundle(signature, digest=b"\0" * 32)), [pinned(key)])
    assert "neither a certificate nor a publicKey hint" in unreadable(key_bundle(signature, hint=None))
    malformed: list[tuple[Callable[[dict[str, Any]], None], str]] = [
        (lambda b: b["messageSignature"].update(signature="!!"), "messageSignature is not base64 text"),
        (lambda b: b["messageSignature"].update(messageDigest="x"), "messageDigest is not a JSON object"),
        (lambda b: b["messageSignature"].update(messageDigest={"algorithm": "SHA2_256", "digest": 5}),
         "messageDigest is not base64 text"),
        (lambda b: b.update(messageSignature=[]), "messageSignature is not a JSON object"),
    ]
    for change, words in malformed:
        bundle = key_bundle(signature)
        change(bundle)
        assert words in unreadable(bundle)
    # Ed25519 signs the message itself, never a digest: it cannot verify a signature from the digest alone
    ed = ed25519.Ed25519PrivateKey.generate()
    with pytest.raises(SignatureInvalid, match="does not verify with a trusted key"):
        hook(MESSAGE_SHA256)(evidence(obj=key_bundle(ed.sign(MESSAGE))), [pinned(ed)])


def test_conformance_managed_key_bundle() -> None:
    case = SUITE / "managed-key-happy-path"
    signer = Identity(name="--key", keys=(load_public_key((case / "key.pub").read_bytes(), name="key.pub"),))
    assert hook(A_TXT_SHA256)(evidence(case / "bundle.sigstore.json"), [signer]) is signer


# --- the pipeline: message signatures, identity only -----------------------------------------------

def test_pipeline_message_signature_is_identity_only() -> None:
    bundle = evidence(SUITE / "happy-path-v0.3" / "bundle.sigstore.json")
    beacon = keyless("beacon", issuer=GITHUB_ACTIONS_ISSUER, identity=BEACON)
    policy = empty_policy().with_identity(beacon)
    verdict = verify_artifact("a.txt", [bundle], policy=policy, digests=lambda: {"sha256": A_TXT_SHA256},
                              bundle_verifier=make_bundle_verifier(trusted_root=PRODUCTION_ROOT))
    assert (verdict.statement, verdict.provenance, verdict.signer) == (None, None, "beacon")
    assert verdict.to_dict()["kind"] == "message-signature"
    assert [c.name for c in verdict.checks] == ["signature", "signedTime", "messageSignature"]
    with pytest.raises(PolicyViolation, match="rules on commit need one") as e:
        verify_artifact("a.txt", [bundle], policy=policy.with_rules(commit="ab" * 20),
                        digests=lambda: {"sha256": A_TXT_SHA256},
                        bundle_verifier=make_bundle_verifier(trusted_root=PRODUCTION_ROOT))
    assert [getattr(c, "passed", None) for c in e.value.checks] == [True, True, False]


def test_pipeline_reads_provenance_only_when_a_rule_needs_it() -> None:
    """Issue 11, item 2: a SLSA predicate without externalParameters is not interpreted when no rule reads it (an
    identity-only check: flags, no policy, whose rules check no parameters)."""
    bundle = evidence(SUITE / "rekor2-dsse-happy-path" / "bundle.sigstore.json")
    beacon = keyless("beacon", issuer=GITHUB_ACTIONS_ISSUER, identity=BEACON)
    policy = replace(empty_policy(), provenance=ProvenanceRules(check_parameters=False)).with_identity(beacon)
    verifier = make_bundle_verifier(trusted_root=SUITE / "rekor2-dsse-happy-path" / "trusted_root.json")
    digests = {"sha256": A_TXT_SHA256}
    identity_only = verify_artifact("a.txt", [bundle], policy=policy, digests=lambda: digests,
                                    bundle_verifier=verifier)
    assert identity_only.provenance is None
    assert identity_only.checks[-1].name == "provenance" and "not interpreted" in identity_only.checks[-1].expected
    with pytest.raises(MalformedEvidence, match="externalParameters"):
        verify_artifact("a.txt", [bundle], policy=policy.with_rules(builders=(TrustedBuilder("b"),)),
                        digests=lambda: digests, bundle_verifier=verifier)
    typed = policy.with_rules(predicate_type="https://slsa.dev/provenance/v1")
    verdict = verify_artifact("a.txt", [bundle], policy=typed, digests=lambda: digests,
                              bundle_verifier=verifier)
    assert verdict.provenance is None and verdict.checks[-1].name == "provenance"
    with pytest.raises(MalformedEvidence, match="externalParameters"):
        verify_artifact("a.txt", [bundle], policy=typed.with_rules(builders=(TrustedBuilder("b"),)),
                        digests=lambda: digests, bundle_verifier=verifier)

def test_a_policy_reads_every_provenance() -> None:
    """A policy's rules check a provenance's parameters and its clean tree: one they cannot read is refused, never
    passed as an identity-only check (a dirty provenance made unreadable by a bad time passed, where the same one
    readable was refused)."""
    bundle = evidence(SUITE / "rekor2-dsse-happy-path" / "bundle.sigstore.json")
    policy = empty_policy().with_identity(keyless("beacon", issuer=GITHUB_ACTIONS_ISSUER, identity=BEACON))
    with pytest.raises(MalformedEvidence, match="externalParameters"):
        verify_artifact("a.txt", [bundle], policy=policy, digests=lambda: {"sha256": A_TXT_SHA256},
                        bundle_verifier=make_bundle_verifier(trusted_root=SUITE / "rekor2-dsse-happy-path"
                                                             / "trusted_root.json"))


def test_module_is_light_and_offline_by_construction() -> None:
    code = ("import sys, verify.sigstore, verify.verifier, verify.policy; "
            "print(sorted(m for m in ('sigstore', 'attest', 'requests', 'pydantic') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert done.stdout.strip() == "[]"


def test_key_signed_message_tries_a_bounded_number_of_keys() -> None:
    from verify.limits import MAX_VERIFICATIONS_PER_ENVELOPE

    key = ec.generate_private_key(ec.SECP256R1())
    bundle = evidence(obj=key_bundle(key.sign(MESSAGE, ec.ECDSA(hashes.SHA256()))))
    strangers = [pinned(ec.generate_private_key(ec.SECP256R1()), f"s{i}")
                 for i in range(MAX_VERIFICATIONS_PER_ENVELOPE)]
    signer = pinned(key)
    assert hook(MESSAGE_SHA256)(bundle, [*strangers[1:], signer]) is signer
    with pytest.raises(SignatureInvalid, match=f"gave up after {MAX_VERIFICATIONS_PER_ENVELOPE} signature"):
        hook(MESSAGE_SHA256)(bundle, [*strangers, signer])


def test_policy_sigstore_identities_take_the_github_fields(tmp_path: Path) -> None:
    from verify.errors import PolicyError
    from verify.policy_file import load_policy

    def policy(entry: str) -> Path:
        path = tmp_path / "policy.yaml"
        path.write_text(f"version: 1\nidentities:\n  gha:\n    sigstore: {entry}\nprovenance: {{signed-by: [gha]}}\n")
        return path

    loaded = load_policy(policy("{issuer: https://i, identity: a, github-repo: acme/app, source-ref: main, "
                                "signer-workflow: acme/app/.github/workflows/r.yml, deny-self-hosted-runners: true}"))
    assert loaded.identities["gha"].sigstore == (SigstoreIdentity(
        issuer="https://i", identity="a", source_repository="github.com/acme/app", source_ref="refs/heads/main",
        signer_workflow="github.com/acme/app/.github/workflows/r.yml", github_hosted=True),)
    with pytest.raises(PolicyError, match=r"sigstore\.deny-self-hosted-runners: must be true or false"):
        load_policy(policy("{issuer: https://i, identity: a, deny-self-hosted-runners: sometimes}"))
    with pytest.raises(PolicyError, match=r"identities.gha.sigstore: GitHub repository 'acme' is not OWNER/REPO"):
        load_policy(policy("{issuer: https://i, identity: a, github-repo: acme}"))


@pytest.mark.parametrize("integrated", ["0", None], ids=["zero", "absent"])
def test_a_v0_1_bundle_whose_promise_signs_no_time_proves_no_log_entry(integrated: str | None) -> None:
    """A v0.1 bundle's only log evidence is its promise: one of integratedTime 0 (or none) was never checked, so a
    junk promise, a body never logged and no proof passed on an RFC 3161 timestamp alone (which a public TSA gives
    any signature)."""
    bundle = json.loads((SUITE / "rekor2-happy-path" / "bundle.sigstore.json").read_bytes())
    material = bundle["verificationMaterial"]
    bundle["mediaType"] = "application/vnd.dev.sigstore.bundle+json;version=0.1"
    material["x509CertificateChain"] = {"certificates": [material.pop("certificate")]}
    entry = material["tlogEntries"][0]
    entry.pop("inclusionProof")
    entry["inclusionPromise"] = {"signedEntryTimestamp": base64.b64encode(b"not a signature at all").decode()}
    entry.pop("integratedTime", None)
    if integrated is not None:
        entry["integratedTime"] = integrated
    body = json.loads(base64.b64decode(entry["canonicalizedBody"]))
    entry["canonicalizedBody"] = base64.b64encode(json.dumps(body, indent=1).encode()).decode()  # never logged
    signer = hook(A_TXT_SHA256, SUITE / "rekor2-happy-path" / "trusted_root.json")
    beacon = keyless("beacon", issuer=GITHUB_ACTIONS_ISSUER, identity=BEACON)
    with pytest.raises(EvidenceRejected, match=r"a v0\.1 bundle needs an inclusion promise of its log entry's "
                                               r"integrated time"):
        signer(evidence(obj=bundle), [beacon])


def test_a_trusted_root_that_lists_the_signing_certificate_as_a_ca_is_refused_in_one_sentence(
        tmp_path: Path) -> None:
    """The path to the root is then the leaf alone: it was an IndexError, exit 70."""
    bundle = json.loads((SUITE / "happy-path-v0.3" / "bundle.sigstore.json").read_bytes())
    root = json.loads(PRODUCTION_ROOT.read_bytes())
    root["certificateAuthorities"].append({
        "subject": {"organization": "x", "commonName": "y"},
        "certChain": {"certificates": [{"rawBytes": bundle["verificationMaterial"]["certificate"]["rawBytes"]}]},
        "validFor": {"start": "2000-01-01T00:00:00Z"}})
    (tmp_path / "root.json").write_text(json.dumps(root))
    signer = hook(A_TXT_SHA256, tmp_path / "root.json")
    with pytest.raises(EvidenceRejected, match="is itself listed as a certificate authority of the trusted root"):
        signer(evidence(obj=bundle), [keyless("any", issuer=GITHUB_ACTIONS_ISSUER, identity=BEACON)])
