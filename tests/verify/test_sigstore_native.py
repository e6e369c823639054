"""verify.sigstore._native: every refusal of the native keyless verifier, one step at a time.

Real bundles (the conformance suite's, tests/assets/sigstore) are changed one field at a time, or a
trusted root is; a step is also called on its own where the steps before it would refuse first (a
log entry body that no log signed, a certificate no CA issued). Sockets are disabled.
"""

from __future__ import annotations

import base64
import copy
import dataclasses
import hashlib
import json
import socket
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

import verify.sigstore._log as sigstore_log
import verify.sigstore._native as native
import verify.sigstore._parsed as sigstore_parsed
import verify.sigstore.times as sigstore_times
import verify.sigstore.trusted_root as trusted_root
from tests.conftest import CONFORMANCE, ROOT
from verify.digests import DigestSet
from verify.errors import EvidenceRejected, MalformedEvidence, SignatureInvalid, TrustConfigError
from verify.formats.evidence import Evidence, load_evidence
from verify.sigstore.trusted_root import load_trusted_root
from verify.trust import Identity, SigstoreIdentity

ASSETS = ROOT / "tests" / "assets" / "sigstore"
SUITE = CONFORMANCE / "sigstore-conformance" / "test" / "assets" / "bundle-verify"
PRODUCTION_ROOT = CONFORMANCE / "trusted_root.production.json"
GITHUB = "https://token.actions.githubusercontent.com"
BEACON = ("https://github.com/sigstore-conformance/extremely-dangerous-public-oidc-beacon/"
          ".github/workflows/extremely-dangerous-oidc-beacon.yml@refs/heads/main")
A_TXT = hashlib.sha256((SUITE / "a.txt").read_bytes()).hexdigest()

REUSABLE = ASSETS / "gh-reusable-workflow.sigstore.json"  # v0.3, DSSE, dsse 0.0.1 with promise and proof
REUSABLE_IDENTITY = SigstoreIdentity(issuer=GITHUB, identity_regexp="https://github.com/github/artifact-"
                                     "attestations-workflows/.+")
V03 = SUITE / "happy-path-v0.3" / "bundle.sigstore.json"  # message signature, hashedrekord 0.0.1
V01 = SUITE / "happy-path-v0.1" / "bundle.sigstore.json"
REKOR2 = SUITE / "rekor2-happy-path"  # hashedrekord 0.0.2, RFC 3161 timestamp, own trusted root
REKOR2_DSSE = SUITE / "rekor2-dsse-happy-path"
INTOTO = SUITE / "intoto-with-custom-trust-root"


@pytest.fixture(autouse=True)
def no_network(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"network access attempted: {args[1:]!r}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    yield


def document(path: Path) -> dict[str, Any]:
    found: dict[str, Any] = json.loads((path / "bundle.sigstore.json" if path.is_dir() else path).read_bytes())
    return found


def evidence(obj: Any) -> Evidence:
    [item] = load_evidence(json.dumps(obj).encode(), source="bundle")
    assert isinstance(item, Evidence), item
    return item


def root_document(path: Path = PRODUCTION_ROOT) -> dict[str, Any]:
    found: dict[str, Any] = json.loads(path.read_bytes())
    return found


def root_of(obj: dict[str, Any]) -> trusted_root.TrustedRoot:
    return trusted_root.parse_trusted_root(json.dumps(obj).encode(), name="root.json")


def verify(obj: dict[str, Any], *, root: trusted_root.TrustedRoot | None = None, sha256: str | None = A_TXT,
           identity: SigstoreIdentity | None = None) -> tuple[Identity, ...]:
    pinned = identity or SigstoreIdentity(issuer=GITHUB, identity=BEACON)
    candidate = Identity(name="pinned", sigstore=(pinned,))
    signers, _ = native.verify_bundle(evidence(obj), [(candidate, pinned)],
                                      root or load_trusted_root(PRODUCTION_ROOT),
                                      message=None if sha256 is None else DigestSet({"sha256": sha256}))
    return signers


def entry(obj: dict[str, Any]) -> dict[str, Any]:
    found: dict[str, Any] = obj["verificationMaterial"]["tlogEntries"][0]
    return found


def re_escape(text: str) -> str:
    import re

    return re.escape(text)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _certificate(*, key: Any = None, extensions: tuple[x509.ExtensionType, ...] = (), ca: bool = False,
                 name: str = "test") -> x509.Certificate:
    key = key or ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.now(UTC)
    builder = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
               .serial_number(1).not_valid_before(now).not_valid_after(now + timedelta(minutes=5)))
    builder = builder.add_extension(x509.KeyUsage(digital_signature=not ca, content_commitment=False,
                                                  key_encipherment=False, data_encipherment=False,
                                                  key_agreement=False, key_cert_sign=ca, crl_sign=False,
                                                  encipher_only=False, decipher_only=False), critical=True)
    builder = builder.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CODE_SIGNING]), critical=False)
    if ca:
        builder = builder.add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
    for extension in extensions:
        builder = builder.add_extension(extension, critical=False)
    return builder.sign(key, hashes.SHA256())


def parsed(path: Path = V03, **changes: Any) -> sigstore_parsed.Parsed:
    return dataclasses.replace(native.parse(evidence(document(path))), **changes)


# --- the trusted root ------------------------------------------------------------------------------

def _tlog(root: dict[str, Any], key_id: str | None = None) -> dict[str, Any]:
    logs: list[dict[str, Any]] = root["tlogs"]
    return next(log for log in logs if key_id is None or log["logId"]["keyId"] == key_id)


@pytest.mark.parametrize(("change", "words"), [
    (lambda r: r.update(tlogs={}), "tlogs is not a list"),
    (lambda r: r["tlogs"][0].update(baseUrl=1), "tlogs[0].baseUrl is not a string"),
    (lambda r: r["tlogs"][0].update(publicKey=[]), "tlogs[0].publicKey is not a JSON object"),
    (lambda r: r.update(surprise=1), "it has an unknown field 'surprise'"),
    (lambda r: r.pop("ctlogs"), "it has no ctlogs"),
    (lambda r: r["tlogs"][0]["logId"].update(keyId="%%"), "tlogs[0].logId.keyId is not base64 text"),
    (lambda r: r["tlogs"][0]["publicKey"]["validFor"].update(start="yesterday"), "is not an RFC 3339 time"),
], ids=["list", "string", "object", "unknown", "missing", "base64", "time"])
def test_a_root_that_is_not_in_the_trusted_root_form_is_refused(change: Callable[[dict[str, Any]], None],
                                                                words: str) -> None:
    root = root_document()
    change(root)
    with pytest.raises(TrustConfigError, match="is not a Sigstore trusted root") as e:
        root_of(root)
    assert words in str(e.value)


def test_trusted_root_refusals() -> None:
    with pytest.raises(TrustConfigError, match="is not a Sigstore trusted root"):
        trusted_root.parse_trusted_root(b"{", name="root.json")
    with pytest.raises(TrustConfigError, match="is not a Sigstore trusted root"):
        trusted_root.parse_trusted_root(b"[]", name="root.json")
    changes: list[tuple[Callable[[dict[str, Any]], object], str]] = [
        (lambda r: r.update(mediaType="application/vnd.dev.sigstore.trustedroot.v0.2+json"), "unsupported media"),
        (lambda r: r["certificateAuthorities"][0]["certChain"]["certificates"][0].update(rawBytes="AAAA"),
         "holds an unreadable certificate authority certificate"),
        (lambda r: r["certificateAuthorities"][0]["certChain"].update(certificates=[]), "has no certificates"),
        (lambda r: r.update(tlogs=[]), "names no transparency log"),
        (lambda r: r.update(certificateAuthorities=[]), "names no certificate authority"),
    ]
    for change, words in changes:
        root = root_document()
        change(root)
        with pytest.raises(TrustConfigError, match=words):
            root_of(root)


def test_log_keys_of_a_kind_attest_does_not_verify_with_verify_nothing() -> None:
    root = root_document()
    rekor = _tlog(root, entry(document(REUSABLE))["logId"]["keyId"])
    loaded = trusted_root.parse_trusted_root(json.dumps(root).encode(), name="r")
    assert all(log.key is not None for log in loaded.tlogs + loaded.ctlogs)
    for details, raw in [("PKIX_ED25519", None), ("PKIX_RSA_PSS_2048_SHA256", None),
                         ("PKIX_ECDSA_P256_SHA_256", "AAAA")]:
        changed = copy.deepcopy(root)
        key = _tlog(changed, rekor["logId"]["keyId"])["publicKey"]
        key["keyDetails"] = details
        if raw is not None:
            key["rawBytes"] = raw
        with pytest.raises(SignatureInvalid, match="signed entry timestamp"):
            verify(document(REUSABLE), root=root_of(changed), identity=REUSABLE_IDENTITY)


# --- (1) parse -------------------------------------------------------------------------------------

@pytest.mark.parametrize(("change", "words"), [
    (lambda b: b.update(surprise=1), "the bundle has an unknown field 'surprise'"),
    (lambda b: entry(b).update(logIndex="-1"), "logIndex is not an unsigned 64-bit integer"),
    (lambda b: entry(b).update(logIndex=1), "logIndex is not an unsigned 64-bit integer"),
    (lambda b: entry(b).pop("logId"), "tlogEntries[0] has no 'logId'"),
    (lambda b: entry(b)["kindVersion"].update(kind=1), "kindVersion.kind is not a string"),
    (lambda b: entry(b).update(inclusionProof=[]), "inclusionProof is not a JSON object"),
    (lambda b: b["verificationMaterial"].update(tlogEntries={}), "tlogEntries is not a list"),
    (lambda b: entry(b).update(canonicalizedBody="%%"), "canonicalizedBody is not base64 text"),
], ids=["unknown", "negative-index", "number-index", "missing", "not-string", "not-object", "not-list", "base64"])
def test_what_the_protobuf_specs_form_does_not_allow_is_refused(change: Callable[[dict[str, Any]], None],
                                                                words: str) -> None:
    bundle = document(V03)
    change(bundle)
    with pytest.raises(MalformedEvidence, match="is not a valid Sigstore bundle") as e:
        verify(bundle)
    assert words in str(e.value)


def _chain_in_v03(b: dict[str, Any]) -> None:
    b["verificationMaterial"]["x509CertificateChain"] = {"certificates": [b["verificationMaterial"].pop(
        "certificate")]}


def _dsse_with_hashedrekord(b: dict[str, Any]) -> None:
    entry(b)["kindVersion"] = {"kind": "hashedrekord", "version": "0.0.1"}


def _two_signatures(b: dict[str, Any]) -> None:
    b["dsseEnvelope"]["signatures"] *= 2


@pytest.mark.parametrize(("path", "change", "words"), [
    (V03, _chain_in_v03, "a v0.3 bundle carries its signing certificate in verificationMaterial.certificate"),
    (V01, lambda b: b["verificationMaterial"].update(certificate=b["verificationMaterial"].pop(
        "x509CertificateChain")["certificates"][0]), "a v0.1 bundle carries its signing certificate in "
                                                     "verificationMaterial.x509CertificateChain"),
    (V03, lambda b: b["verificationMaterial"]["tlogEntries"].append(entry(b)), "it has 2 transparency log entries"),
    (REUSABLE, _dsse_with_hashedrekord, "a DSSE bundle with a 'hashedrekord' '0.0.1' log entry is not a kind"),
    (V03, lambda b: entry(b)["kindVersion"].update(version="0.0.3"), "a message signature bundle with a"),
    (V03, lambda b: b["verificationMaterial"]["certificate"].update(rawBytes="AAAA"), "a certificate cannot be read"),
    (V01, lambda b: b["verificationMaterial"]["x509CertificateChain"]["certificates"].append({"rawBytes": "AAAA"}),
     "a certificate cannot be read"),
    (V01, lambda b: entry(b).pop("inclusionPromise"), "a v0.1 bundle needs an inclusion promise"),
    (REUSABLE, lambda b: entry(b).pop("inclusionProof"), "has no inclusion proof with a checkpoint"),
    (REUSABLE, lambda b: entry(b)["inclusionProof"].pop("checkpoint"), "has no inclusion proof with a checkpoint"),
    (REUSABLE, lambda b: entry(b).pop("inclusionPromise"), "neither an inclusion promise nor a signed timestamp"),
    (REUSABLE, lambda b: entry(b).update(integratedTime="99999999999999"), "integrated time is out of range"),
    (REUSABLE, _two_signatures, "a keyless DSSE envelope has exactly one signature, this one 2"),
], ids=["chain-in-v0.3", "certificate-in-v0.1", "two-entries", "dsse-hashedrekord", "unknown-version",
        "unreadable-leaf", "unreadable-chain", "v0.1-no-promise", "no-proof", "no-checkpoint", "no-time-source",
        "time-out-of-range", "two-signatures"])
def test_bundles_sigstore_python_refuses_to_read_are_refused(path: Path, change: Callable[[dict[str, Any]], None],
                                                             words: str) -> None:
    bundle = document(path)
    change(bundle)
    with pytest.raises(MalformedEvidence) as e:
        verify(bundle, identity=REUSABLE_IDENTITY if path == REUSABLE else None)
    assert words in str(e.value)


def test_a_certificate_that_cannot_sign_is_refused() -> None:
    bundle = document(V03)
    ca = root_document()["certificateAuthorities"][-1]["certChain"]["certificates"][0]["rawBytes"]
    bundle["verificationMaterial"]["certificate"]["rawBytes"] = ca
    with pytest.raises(MalformedEvidence, match="its signing certificate is a CA certificate"):
        verify(bundle)
    no_eku = _certificate().public_bytes(serialization.Encoding.DER)
    assert sigstore_parsed._leaf_problem(_certificate(ca=True)) == "is a CA certificate, not a signing certificate"
    assert sigstore_parsed._leaf_problem(x509.load_der_x509_certificate(no_eku)) is None
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "bare")])
    now = datetime.now(UTC)
    bare = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(1).not_valid_before(now).not_valid_after(now + timedelta(minutes=5))
            .sign(key, hashes.SHA256()))
    assert "lacks a required extension" in (sigstore_parsed._leaf_problem(bare) or "")


def test_what_the_bundle_verifier_reads_is_what_attest_reads() -> None:
    item = evidence(document(REUSABLE))
    other = evidence(document(REKOR2_DSSE)).envelope
    with pytest.raises(MalformedEvidence, match="the DSSE envelope attest read is not the one Sigstore verified"):
        native.parse(dataclasses.replace(item, envelope=other))
    keyed = evidence({"mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json",
                      "verificationMaterial": {"publicKey": {"hint": "h"}, "tlogEntries": []},
                      "messageSignature": {"signature": "AA=="}})
    with pytest.raises(MalformedEvidence, match="is not a keyless Sigstore bundle"):
        native.parse(keyed)


def test_a_chain_certificate_without_bytes_is_unreadable() -> None:
    bundle = document(V01)
    bundle["verificationMaterial"]["x509CertificateChain"]["certificates"].append({})
    [item] = load_evidence(json.dumps(bundle).encode(), source="bundle")
    assert isinstance(item, MalformedEvidence) and "certificate 2 of its chain has no rawBytes" in str(item)


# --- (2) signing times -----------------------------------------------------------------------------

def _timestamps(b: dict[str, Any], stamps: list[str]) -> None:
    b["verificationMaterial"]["timestampVerificationData"] = {"rfc3161Timestamps": [
        {"signedTimestamp": s} for s in stamps]}


@pytest.mark.parametrize(("change", "error", "words"), [
    (lambda b: _timestamps(b, ["AA==", "AA=="]), MalformedEvidence, "holds the same signed timestamp twice"),
    (lambda b: _timestamps(b, ["AA=="]), MalformedEvidence, "signed timestamp 1 cannot be read"),
    (lambda b: entry(b).update(inclusionPromise={"signedEntryTimestamp": "AA=="}, integratedTime="1749729736"),
     SignatureInvalid, "an inclusion promise does not sign the time of a hashedrekord 0.0.2 entry"),
], ids=["duplicate", "unreadable", "promise-over-rekor2"])
def test_signed_time_refusals(change: Callable[[dict[str, Any]], None], error: type[EvidenceRejected],
                              words: str) -> None:
    bundle = document(REKOR2)
    change(bundle)
    with pytest.raises(error) as e:
        verify(bundle, root=load_trusted_root(REKOR2 / "trusted_root.json"))
    assert words in str(e.value)


def test_a_timestamp_needs_a_timestamp_authority() -> None:
    root = root_document(REKOR2 / "trusted_root.json")
    root["timestampAuthorities"] = []
    with pytest.raises(SignatureInvalid, match="it holds a signed timestamp and the trusted root names no timestamp"):
        verify(document(REKOR2), root=root_of(root))


def test_a_promise_without_an_integrated_time_gives_no_time() -> None:
    bundle = document(REUSABLE)
    entry(bundle).pop("integratedTime")
    with pytest.raises(SignatureInvalid, match="it has no verified signing time"):
        verify(bundle, identity=REUSABLE_IDENTITY)


@pytest.mark.parametrize(("case", "words"), [
    ("rekor2-timestamp-outside-trust-root-tsa-validity_fail", "signed timestamp 1 (2025-06-12T12:02:20Z) is outside "
                                                              "the validity of its timestamp authority"),
    ("rekor2-timestamp-payload-mismatch_fail", "signed timestamp 1 does not verify with a timestamp authority"),
])
def test_timestamps_that_do_not_hold(case: str, words: str) -> None:
    with pytest.raises(SignatureInvalid, match=re_escape(words)):
        verify(document(SUITE / case), root=load_trusted_root(SUITE / case / "trusted_root.json"))


def test_a_tsa_without_a_chain_is_skipped() -> None:
    root = root_document(REKOR2 / "trusted_root.json")
    tsa = root["timestampAuthorities"][0]
    root["timestampAuthorities"] = [{**tsa, "certChain": {"certificates": tsa["certChain"]["certificates"][:1]}},
                                    tsa]
    assert [i.name for i in verify(document(REKOR2), root=root_of(root))] == ["pinned"]


# --- (3) chain, (4) SCT ----------------------------------------------------------------------------

def _end_before_signing(root: dict[str, Any], kind: str) -> None:
    before = "2024-05-24T19:14:23Z"
    if kind == "ca":
        next(ca for ca in root["certificateAuthorities"] if "end" not in ca["validFor"])["validFor"]["end"] = before
    elif kind == "ctlog":
        for log in root["ctlogs"]:
            log["publicKey"]["validFor"]["end"] = before
    else:
        for log in root["tlogs"]:
            log["publicKey"]["validFor"]["end"] = before


@pytest.mark.parametrize(("kind", "words"), [
    ("ca", "the certificate authority that issued its certificate is trusted only"),
    ("ctlog", "its certificate's SCT is from a CT log whose key the trusted root trusts only"),
    ("tlog", "outside the validity of that log's key"),
])
def test_keys_of_the_root_outside_their_window_are_refused(kind: str, words: str) -> None:
    root = root_document()
    _end_before_signing(root, kind)
    with pytest.raises(SignatureInvalid, match=words):
        verify(document(REUSABLE), root=root_of(root), identity=REUSABLE_IDENTITY)


def test_a_certificate_from_another_ca_is_refused() -> None:
    with pytest.raises(SignatureInvalid, match="its certificate does not chain to a certificate authority"):
        verify(document(REUSABLE), root=load_trusted_root(INTOTO / "trusted_root.json"), identity=REUSABLE_IDENTITY)


def _sct_extension(hash_algorithm: int) -> x509.UnrecognizedExtension:
    """A SignedCertificateTimestampList of one v1 SCT whose signature names ``hash_algorithm`` (TLS numbering)."""
    sct = bytes([0]) + bytes(32) + (0).to_bytes(8, "big") + (0).to_bytes(2, "big") \
        + bytes([hash_algorithm, 3]) + (2).to_bytes(2, "big") + b"\x30\x00"
    listed = len(sct).to_bytes(2, "big") + sct
    value = len(listed).to_bytes(2, "big") + listed
    return x509.UnrecognizedExtension(x509.ObjectIdentifier("1.3.6.1.4.1.11129.2.4.2"),
                                      b"\x04" + bytes([len(value)]) + value)


def test_sct_refusals() -> None:
    root = load_trusted_root(PRODUCTION_ROOT)
    good = parsed(REUSABLE)
    chain = (good.leaf, *root.authorities[-1].certificates)
    times = (sigstore_times.SignedTime(datetime(2024, 5, 24, 19, 14, 24, tzinfo=UTC), "a test"),)
    with pytest.raises(SignatureInvalid, match="carries 0 signed certificate timestamps; exactly one"):
        native.verify_sct(dataclasses.replace(good, leaf=_certificate()), chain, root, times)
    with pytest.raises(SignatureInvalid, match="its certificate's SCT is not signed with SHA-256"):
        native.verify_sct(dataclasses.replace(good, leaf=_certificate(extensions=(_sct_extension(5),))), chain, root,
                          times)
    with pytest.raises(SignatureInvalid, match="its certificate's SCT is from a CT log the trusted root does not"):
        native.verify_sct(dataclasses.replace(good, leaf=_certificate(extensions=(_sct_extension(4),))), chain, root,
                          times)


def test_an_sct_that_does_not_verify_is_refused() -> None:
    root = root_document()
    rekor_key = root["tlogs"][0]["publicKey"]["rawBytes"]
    for log in root["ctlogs"]:
        log["publicKey"]["rawBytes"] = rekor_key
    with pytest.raises(SignatureInvalid, match="its certificate's SCT does not verify with the CT log's key"):
        verify(document(REUSABLE), root=root_of(root), identity=REUSABLE_IDENTITY)
    with pytest.raises(SignatureInvalid, match="its certificate's SCT is from a CT log the trusted root does not"):
        verify(document(SUITE / "invalid-ct-key_fail"),
               root=load_trusted_root(SUITE / "invalid-ct-key_fail" / "trusted_root.json"))


# --- (5) identity ----------------------------------------------------------------------------------

def test_identity_refusals() -> None:
    with pytest.raises(SignatureInvalid, match=r"signed by .* which no trusted identity allows \(pinned: identity"):
        verify(document(REUSABLE), identity=SigstoreIdentity(issuer=GITHUB, identity="https://github.com/x"))
    broken = _certificate(extensions=(x509.UnrecognizedExtension(x509.ObjectIdentifier("1.3.6.1.4.1.57264.1.8"),
                                                                 b"\x0c\x05ab"),))
    pinned = SigstoreIdentity(issuer=GITHUB, identity=BEACON)
    with pytest.raises(SignatureInvalid, match="malformed identity extension"):
        native.verify_identity(parsed(leaf=broken), [(Identity(name="p", sigstore=(pinned,)), pinned)])


def test_every_satisfied_identity_signs_once() -> None:
    pinned = SigstoreIdentity(issuer=GITHUB, identity=BEACON)
    one, two = Identity(name="one", sigstore=(pinned,)), Identity(name="two", sigstore=(pinned,))
    found = native.verify_identity(parsed(), [(one, pinned), (one, pinned), (two, pinned)])
    assert [i.name for i in found] == ["one", "two"]


# --- (6) the log entry -----------------------------------------------------------------------------

def _checkpoint(b: dict[str, Any], change: Callable[[str], str]) -> None:
    checkpoint = entry(b)["inclusionProof"]["checkpoint"]
    checkpoint["envelope"] = change(checkpoint["envelope"])


def _proof(b: dict[str, Any], **fields: Any) -> None:
    entry(b)["inclusionProof"].update(fields)


@pytest.mark.parametrize(("change", "error", "words"), [
    (lambda b: entry(b)["logId"].update(keyId=_b64(bytes(32))), SignatureInvalid,
     "its log entry is from a transparency log the trusted root does not name"),
    (lambda b: _proof(b, logIndex=entry(b)["inclusionProof"]["treeSize"]), SignatureInvalid,
     "is outside a tree of size"),
    (lambda b: _proof(b, hashes=entry(b)["inclusionProof"]["hashes"][1:]), SignatureInvalid,
     "hashes, 13 expected"),
    (lambda b: _proof(b, treeSize=str(int(entry(b)["inclusionProof"]["treeSize"]) + 1)), SignatureInvalid,
     "its inclusion proof is for another tree than the checkpoint the log signed"),
    (lambda b: _checkpoint(b, lambda c: c + "\n\n"), MalformedEvidence, "is not a signed note"),
    (lambda b: _checkpoint(b, lambda c: c.replace("=\n\n", "=\n%%\n\n", 1).replace("\n", "\n", 1)),
     SignatureInvalid, "checkpoint's signature does not verify"),
    (lambda b: _checkpoint(b, lambda c: "\n".join([*c.split("\n")[:2], "%%", *c.split("\n")[3:]])),
     MalformedEvidence, "checkpoint's root hash is not base64 text"),
    (lambda b: _checkpoint(b, lambda c: c + "garbage\n"), MalformedEvidence,
     "its checkpoint has a line that is not a signature"),
    (lambda b: _checkpoint(b, lambda c: c + "\u2014 short AAAA\n"), MalformedEvidence,
     "its checkpoint has a signature of 3 bytes"),
], ids=["unknown-log", "index-outside", "hash-count", "other-tree", "two-blank-lines", "extra-line",
        "root-hash-base64", "not-a-signature", "short-signature"])
def test_log_entry_refusals(change: Callable[[dict[str, Any]], None], error: type[EvidenceRejected],
                            words: str) -> None:
    bundle = document(REKOR2_DSSE)
    change(bundle)
    with pytest.raises(error) as e:
        verify(bundle, root=load_trusted_root(REKOR2_DSSE / "trusted_root.json"))
    assert words in str(e.value)


@pytest.mark.parametrize(("case", "error", "words"), [
    ("set-invalid-signature_fail", SignatureInvalid, "inclusion promise (signed entry timestamp) does not verify"),
    ("inclusion-proof-corrupted-hash_fail", SignatureInvalid, "does not lead to the checkpoint's root hash"),
    ("invalid-checkpoint-signature_fail", SignatureInvalid, "checkpoint's signature does not verify with the log"),
    ("checkpoint-bad-keyhint_fail", SignatureInvalid, "checkpoint is not signed by the log that holds the entry"),
    ("rekor2-checkpoint-missing-origin_fail", MalformedEvidence, "does not start with an origin, a tree size"),
    ("rekor2-checkpoint-missing-log-signature_fail", MalformedEvidence, "signatures do not end with a newline"),
])
def test_conformance_log_entries_that_do_not_hold(case: str, error: type[EvidenceRejected], words: str) -> None:
    root = SUITE / case / "trusted_root.json"
    with pytest.raises(error, match=re_escape(words)):
        verify(document(SUITE / case), root=load_trusted_root(root if root.is_file() else PRODUCTION_ROOT))


def test_a_v01_proof_without_its_checkpoint_is_refused() -> None:
    bundle = document(V01)
    entry(bundle)["inclusionProof"].pop("checkpoint")
    with pytest.raises(MalformedEvidence, match="its inclusion proof has no checkpoint"):
        verify(bundle)
    entry(bundle).pop("inclusionProof")  # a promise alone is enough for v0.1
    assert [i.name for i in verify(bundle)] == ["pinned"]


# --- (7) the entry's body --------------------------------------------------------------------------

def _with_body(p: sigstore_parsed.Parsed, body: bytes) -> sigstore_parsed.Parsed:
    return dataclasses.replace(p, entry=dataclasses.replace(p.entry, body=body))


def test_entry_body_refusals() -> None:
    good = parsed()
    with pytest.raises(MalformedEvidence, match="its log entry's body is not valid JSON"):
        native.verify_entry_body(_with_body(good, b"{"), DigestSet({"sha256": A_TXT}))
    with pytest.raises(SignatureInvalid, match=re_escape("is not the hashedrekord 0.0.1 entry it claims to be")):
        native.verify_entry_body(_with_body(good, b'{"kind": "dsse", "apiVersion": "0.0.1"}'),
                                 DigestSet({"sha256": A_TXT}))
    with pytest.raises(SignatureInvalid, match="a message signature needs the artefact's sha256"):
        native.verify_entry_body(good, None)
    with pytest.raises(SignatureInvalid, match=r"does not record this bundle \(spec.data.hash.value differs\)"):
        native.verify_entry_body(good, DigestSet({"sha256": "00" * 32}))
    rsa_leaf = _certificate(key=rsa.generate_private_key(public_exponent=65537, key_size=2048))
    with pytest.raises(SignatureInvalid, match="is not an ECDSA key on P-256, P-384 or P-521"):
        native.verify_entry_body(parsed(REKOR2, leaf=rsa_leaf), DigestSet({"sha256": A_TXT}))


@pytest.mark.parametrize(("found", "expected", "difference"), [
    ({"a": 1}, {"a": 1, "b": 2}, "x has fields ['a'], expected ['a', 'b']"),
    ([1], {"a": 1}, "x has fields [1], expected ['a']"),
    ({"a": [1, 2]}, {"a": [1]}, "x.a does not hold 1 item(s)"),
    ("%%", b"\0", "x differs"),
    ("AA==", b"\1", "x differs"),
    ("not a pem", sigstore_log._Pem(_certificate()), "x differs"),
    ("%%", sigstore_log._Der(_certificate()), "x differs"),
    ("%%", sigstore_log._Twice(b"a"), "x differs"),
    (_b64(b"\xff"), sigstore_log._Twice(b"a"), "x differs"),
    ({"any": ["thing"]}, sigstore_log._Any(), None),
    (2, 1, "x differs"),
], ids=["keys", "not-dict", "list", "bad-base64", "other-bytes", "pem", "der", "twice", "twice-not-ascii", "any",
        "value"])
def test_body_comparison(found: Any, expected: Any, difference: str | None) -> None:
    assert sigstore_log._difference(found, expected, "x") == difference


@pytest.mark.parametrize(("case", "words"), [
    ("wrong-hashedrekord-entry_fail", "spec.data.hash.value differs"),
    ("dsse-mismatch-envelope_fail", "spec.payloadHash.value differs"),
    ("rekor2-dsse-mismatch-sig_fail", "spec.hashedRekordV002.signature.content differs"),
    ("intoto-log-entry-mismatch_fail", "spec.content.envelope.signatures[0].sig differs"),
])
def test_entries_that_record_another_bundle_are_refused(case: str, words: str) -> None:
    root = SUITE / case / "trusted_root.json"
    identity = None if case != "dsse-mismatch-envelope_fail" else SigstoreIdentity(issuer=GITHUB, identity=BEACON)
    with pytest.raises(SignatureInvalid, match=re_escape(words)):
        verify(document(SUITE / case), root=load_trusted_root(root if root.is_file() else PRODUCTION_ROOT),
               identity=identity)


def test_an_intoto_entry_records_the_payload_when_it_has_one() -> None:
    good = parsed(INTOTO)
    body = json.loads(good.entry.body or b"")
    assert "payload" in body["spec"]["content"]["envelope"]
    native.verify_entry_body(good, None)
    body["spec"]["content"]["envelope"]["payload"] = _b64(_b64(b"another").encode())
    with pytest.raises(SignatureInvalid, match=re_escape("spec.content.envelope.payload differs")):
        native.verify_entry_body(_with_body(good, json.dumps(body).encode()), None)


# --- (8) the signature -----------------------------------------------------------------------------

def test_signature_refusals() -> None:
    good = parsed()
    native.verify_signature(good, DigestSet({"sha256": A_TXT}))
    with pytest.raises(SignatureInvalid, match="its messageDigest is not the artefact's sha256"):
        native.verify_signature(good, DigestSet({"sha256": "00" * 32}))
    with pytest.raises(SignatureInvalid, match="its signature over the artefact's sha256 does not verify"):
        native.verify_signature(dataclasses.replace(good, signature=b"\x30\x00"), DigestSet({"sha256": A_TXT}))
    dsse = parsed(REUSABLE)
    with pytest.raises(SignatureInvalid, match="its signature over the DSSE envelope does not verify"):
        native.verify_signature(dataclasses.replace(dsse, signature=good.signature), None)
    rsa_leaf = _certificate(key=rsa.generate_private_key(public_exponent=65537, key_size=2048))
    with pytest.raises(SignatureInvalid, match="is not an ECDSA key"):
        native.verify_signature(dataclasses.replace(good, leaf=rsa_leaf), DigestSet({"sha256": A_TXT}))


# --- all of it -------------------------------------------------------------------------------------

@pytest.mark.parametrize(("path", "root", "identity", "sha256"), [
    (V03, PRODUCTION_ROOT, None, A_TXT),
    (V01, PRODUCTION_ROOT, None, A_TXT),
    (REUSABLE, PRODUCTION_ROOT, REUSABLE_IDENTITY, None),
    (REKOR2, REKOR2 / "trusted_root.json", None, A_TXT),
    (REKOR2_DSSE, REKOR2_DSSE / "trusted_root.json", None, None),
    (INTOTO, INTOTO / "trusted_root.json", SigstoreIdentity(issuer=GITHUB, identity_regexp=".+"), None),
], ids=["v0.3-message", "v0.1-message", "dsse-0.0.1", "rekor2-message", "rekor2-dsse", "intoto-0.0.2"])
def test_each_kind_of_entry_verifies(path: Path, root: Path, identity: SigstoreIdentity | None,
                                     sha256: str | None) -> None:
    assert [i.name for i in verify(document(path), root=load_trusted_root(root), identity=identity,
                                   sha256=sha256)] == ["pinned"]
