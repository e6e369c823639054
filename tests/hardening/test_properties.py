"""Property tests (hypothesis): tampering always fails, build -> verify always round-trips, and the
policy and evidence loaders never crash, whatever bytes they are given.

Examples are few per property (the suite stays fast); fuzz/ runs the same parsers for minutes.
"""

from __future__ import annotations

import base64
import contextlib
import json
import string
import tempfile
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from attest.collect import GitFacts, Platform
from attest.errors import StoreError
from attest.provenance import BuildRecord, statement
from attest.signers import sign_envelope
from attest.signers.key import LocalKeySigner
from attest.stores import safe_name
from attest.stores.local import LocalStore
from tests.hardening._helpers import DEV, evidence, policy, pub
from tests.verify import _factory as f
from verify.digests import hash_file
from verify.errors import DigestMismatch, EvidenceRejected, InputError, PolicyError
from verify.formats import strict_json
from verify.formats.envelope import INTOTO_PAYLOAD_TYPE, Envelope
from verify.formats.evidence import Evidence, load_evidence
from verify.formats.statement import parse_statement
from verify.policy import Policy, ProvenanceRules, SourceRule
from verify.policy_file import load_policy
from verify.trust import Identity
from verify.verifier import verify_artifact

#: few examples, no example database written into the work tree
FAST = settings(max_examples=40, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
KEYS = [f.private_key("p256", 0), f.private_key("ed25519", 0), f.private_key("rsa2048", 0)]
SIGNED_LINES = [f.json_line(f.envelope_dict(f.payload_of(f.statement()), [key])) for key in KEYS]


def _policy_for(key: f.PrivateKey) -> Policy:
    return policy(keys=(key,))


def _verify(line: bytes, key: f.PrivateKey) -> Any:
    return verify_artifact("app", load_evidence(line, source="p"), policy=_policy_for(key),
                           digests=lambda: f.digest_set(f.ARTIFACT))


# --- tampering ----------------------------------------------------------------------------------------


@FAST
@given(which=st.sampled_from(range(len(KEYS))), field=st.sampled_from(["payload", "sig"]), data=st.data())
def test_any_single_byte_change_to_payload_or_signature_fails(which: int, field: str, data: st.DataObject) -> None:
    envelope = json.loads(SIGNED_LINES[which])
    holder = envelope if field == "payload" else envelope["signatures"][0]
    raw = bytearray(base64.b64decode(holder[field]))
    index = data.draw(st.integers(0, len(raw) - 1), label="index")
    value = data.draw(st.integers(0, 255).filter(lambda v: v != raw[index]), label="value")
    raw[index] = value
    holder[field] = base64.b64encode(bytes(raw)).decode()
    with pytest.raises(EvidenceRejected):
        _verify(f.json_line(envelope), KEYS[which])


@FAST
@given(which=st.sampled_from(range(len(KEYS))), data=st.data())
def test_any_single_byte_change_to_the_line_fails_or_changes_nothing_signed(which: int, data: st.DataObject) -> None:
    line = bytearray(SIGNED_LINES[which].rstrip(b"\n"))
    index = data.draw(st.integers(0, len(line) - 1), label="index")
    line[index] = data.draw(st.integers(0, 255).filter(lambda v: v != line[index]), label="value")
    try:
        verdict = _verify(bytes(line), KEYS[which])
    except EvidenceRejected:
        return
    # it verified: then only an unsigned hint (the keyid) can have changed, never what is signed
    original = Envelope.from_json(SIGNED_LINES[which])
    assert verdict.evidence.envelope.payload == original.payload
    assert verdict.evidence.envelope.payload_type == original.payload_type


# --- build -> verify round trip -----------------------------------------------------------------------------

def _const(value: dict[str, str]) -> Callable[[], dict[str, str]]:
    return lambda: value


_SEGMENT = st.text(alphabet=st.characters(blacklist_categories=["Cs"], blacklist_characters="/\\\x00"),
                   min_size=1, max_size=12).filter(lambda s: s not in (".", ".."))
_NAMES = st.lists(_SEGMENT, min_size=1, max_size=3).map("/".join)
_ARTEFACTS = st.dictionaries(_NAMES, st.binary(max_size=2048), min_size=1, max_size=4)

_SIGNER = LocalKeySigner(f.private_key("p256", 0), name="dev.pem")
_GIT = GitFacts(root=Path("/src"), repo_uri="https://github.com/acme/app", ref="refs/heads/main",
                commit="a" * 40, commit_time=1_700_000_000, dirty=False)


@settings(FAST, max_examples=15)
@given(artefacts=_ARTEFACTS)
def test_build_then_verify_round_trips_for_any_artefacts(artefacts: dict[str, bytes]) -> None:
    with tempfile.TemporaryDirectory() as directory:
        root = Path(directory)
        subjects = []
        for i, (name, content) in enumerate(artefacts.items()):
            (root / f"a{i}").write_bytes(content)
            subjects.append((name, hash_file(root / f"a{i}", ("sha256", "blake3"))))
        now = datetime(2026, 1, 1, tzinfo=UTC)
        record = BuildRecord(git=_GIT, platform=Platform(name="local"), lockfiles=[], command=["make"],
                             artifact_patterns=["dist/"], subjects=subjects, source_date_epoch=1_700_000_000,
                             started=now, finished=now, invocation_id="urn:uuid:1", builder_id=f.BUILDER)
        envelope = sign_envelope(_SIGNER, payload_type=INTOTO_PAYLOAD_TYPE,
                                 payload=strict_json.dumps_canonical(statement(record)))
        line = envelope.to_json_line()
        rules = policy(keys=(f.private_key("p256", 0),))
        store = LocalStore(root / "store")
        for i, (name, content) in enumerate(artefacts.items()):
            digests = dict(subjects[i][1])
            verdict = verify_artifact(name, load_evidence(line, source="p"), policy=rules, digests=_const(digests))
            assert verdict.subject.digest == digests and verdict.provenance is not None
            assert verdict.provenance.commit == "a" * 40
            try:
                safe_name(name)
            except StoreError:
                continue  # a name that is not a plain relative path is never stored (test_paths.py)
            uri = store.put_artifact(digests["sha256"], name, root / f"a{i}")
            assert Path(uri).read_bytes() == content
            store.put_attestation(digests["sha256"], "provenance", line)
            found = [e for _, data in store.attestations(digests["sha256"]) for e in evidence(data)]
            assert verify_artifact(name, found, policy=rules, digests=_const(digests)).signer == "dev"
        other = f.digest_set(b"not one of them" + b"".join(artefacts.values()))
        assume(other["sha256"] not in {d["sha256"] for _, d in subjects})
        with pytest.raises(DigestMismatch):
            verify_artifact("x", load_evidence(line, source="p"), policy=rules, digests=lambda: other)


# --- loaders never crash ------------------------------------------------------------------------------------

_VOCABULARY = ["version", "identities", "provenance", "stages", "revoked", "keys", "kms", "sigstore", "signed-by",
               "source", "uri", "branches", "builders", "digests", "lockfiles", "allow-dirty", "predicate-type",
               "verifier", "require-vsa", "require-approvals", "count", "stage", "resource-uri", "issuer",
               "identity", "identity-regexp", "github-repo", "not-before", "not-after", "arn", "pem", "dev", "stg",
               "k.pem", "main", "sha256", "md5", "1", "[", "2026-01-01T00:00:00Z"]
_SCALARS = st.one_of(st.sampled_from(_VOCABULARY), st.integers(-2, 3), st.booleans(), st.none(),
                     st.text(max_size=8), st.floats(allow_nan=True))
_YAML_VALUES = st.recursive(_SCALARS, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.sampled_from(_VOCABULARY), inner, max_size=5)), max_leaves=25)


def _load_policy_text(data: bytes) -> None:
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "policy.yaml"
        path.write_bytes(data)
        f.write_pem(Path(directory), "k.pem", DEV)
        with contextlib.suppress(PolicyError):
            load_policy(path)


@settings(FAST, max_examples=25)
@given(value=_YAML_VALUES, whole=st.booleans())
def test_policy_loader_only_ever_raises_policy_error_on_random_yaml(value: Any, whole: bool) -> None:
    document = {"version": 1, "identities": {"dev": {"keys": ["k.pem"]}}, "provenance": {"signed-by": ["dev"]}}
    if isinstance(value, dict):
        document.update(value)
    else:
        document["provenance"] = value
    _load_policy_text(yaml.safe_dump(value if whole else document).encode())


@FAST
@given(data=st.one_of(st.binary(max_size=512), st.text(alphabet=string.printable + "[]{}&*!|>'\"%@`", max_size=300)
                      .map(str.encode)))
def test_policy_loader_only_ever_raises_policy_error_on_random_bytes(data: bytes) -> None:
    _load_policy_text(data)


_JSON_SCALARS = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=10))
_JSON = st.recursive(_JSON_SCALARS, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=6), inner, max_size=4)), max_leaves=20)


def _load_and_verify(data: bytes) -> None:
    try:
        items = load_evidence(data, source="p")
    except (EvidenceRejected, InputError):
        return
    dev = Identity(name="dev", keys=(pub(DEV),))
    rules = Policy(identities={"dev": dev}, provenance=ProvenanceRules(
        signed_by=("dev",), source=SourceRule(uri="github.com/acme/app", branches=("main",))))
    with contextlib.suppress(EvidenceRejected):
        verify_artifact("app", items, policy=rules, digests=lambda: f.digest_set(f.ARTIFACT))
    for item in items:
        if isinstance(item, Evidence) and item.envelope is not None:
            with contextlib.suppress(EvidenceRejected):
                parse_statement(item.envelope.payload)


@FAST
@given(data=st.binary(max_size=1024))
def test_evidence_loader_never_crashes_on_random_bytes(data: bytes) -> None:
    _load_and_verify(data)


@FAST
@given(value=_JSON, where=st.sampled_from(["envelope", "payload", "bundle", "statement", "lines"]))
def test_evidence_loader_never_crashes_on_random_json_in_evidence_shapes(value: Any, where: str) -> None:
    statement = f.statement()
    if where == "envelope":
        document: Any = {"payloadType": INTOTO_PAYLOAD_TYPE, "payload": value, "signatures": value}
    elif where == "payload":
        document = f.envelope_dict(json.dumps(value).encode(), [DEV])
    elif where == "statement":
        statement["predicate"] = {"buildDefinition": value, "runDetails": value}
        statement["subject"] = value if isinstance(value, list) else statement["subject"]
        document = f.envelope_dict(f.payload_of(statement), [DEV])
    elif where == "bundle":
        document = {"mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json", "verificationMaterial": value,
                    "dsseEnvelope": value, "messageSignature": value}
    else:
        document = None
    data = json.dumps(document).encode() if document is not None else \
        b"\n".join(json.dumps(v).encode() for v in (value, f.envelope_dict(b"{}", [DEV]), value))
    _load_and_verify(data)
