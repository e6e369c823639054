"""Key rotation and revocation: `not-before` / `not-after` per identity, `revoked` lists (top level and
per identity), enforced by verify (every path: envelopes, key-signed bundles, stage VSAs) and
applied by verify.signers.find_signers for verify and audit alike.

Windows are evaluated at the verification time (``at``, default now): a key-signed envelope carries
no trusted time, so "not-after X" means "this identity verifies nothing after X".
"""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.hardening._helpers import DEV, OTHER, STG, artefact_digests, envelope_line, evidence, pub, run_in_process
from tests.verify import _factory as f
from verify.digests import DigestSet
from verify.errors import PolicyError, PolicyViolation, SignatureInvalid
from verify.formats.evidence import Evidence
from verify.gate import _statements
from verify.policy import Policy, StageRule, VsaRequirement
from verify.policy_file import load_policy
from verify.signers import TrustRun, find_signers
from verify.stages import Bound, check_stage
from verify.trust import Identity, PublicKey, SigstoreIdentity
from verify.verifier import verify_artifact

NOW = datetime(2026, 6, 1, tzinfo=UTC)
OLD = f.private_key("p256", 20)
NEW = f.private_key("p256", 21)


def _write(tmp_path: Path, identities: str, extra: str = "") -> Path:
    for name, key in (("old", OLD), ("new", NEW), ("stg", STG), ("other", OTHER)):
        f.write_pem(tmp_path / "keys", f"{name}.pub.pem", key)
    path = tmp_path / "policy.yaml"
    path.write_text(f"version: 1\nidentities:\n{identities}provenance:\n  signed-by: [dev]\n{extra}")
    return path


def _verify(policy: Policy, signer: f.PrivateKey, *, at: datetime = NOW) -> str:
    return verify_artifact("app", evidence(envelope_line(signers=(signer,))), policy=policy, digests=artefact_digests(),
                           at=at).signer


def _fp(key: f.PrivateKey) -> str:
    return f.fingerprint(key)


# --- loading -----------------------------------------------------------------------------------------


def test_windows_and_revocations_load(tmp_path: Path) -> None:
    path = _write(tmp_path, "  dev:\n    keys: [keys/old.pub.pem, keys/new.pub.pem]\n"
                            "    not-before: '2026-01-01T00:00:00Z'\n    not-after: 2026-12-31T23:59:59+02:00\n"
                            "    revoked: [keys/old.pub.pem]\n"
                            "  stg: {keys: [keys/stg.pub.pem]}\n",
                  f"revoked:\n  - {_fp(OTHER).upper()}\n")
    policy = load_policy(path)
    dev = policy.identities["dev"]
    assert dev.not_before == datetime(2026, 1, 1, tzinfo=UTC)
    assert dev.not_after == datetime(2026, 12, 31, 21, 59, 59, tzinfo=UTC)
    assert [k.fingerprint for k in dev.keys] == [_fp(NEW)]  # the revoked key is gone from .keys
    assert dev.revoked == {_fp(OLD), _fp(OTHER)}
    assert policy.revoked == {_fp(OTHER)}
    assert {k.fingerprint for k in policy.revoked_keys} == {_fp(OLD)}
    assert policy.identities["stg"].revoked == {_fp(OTHER)}


@pytest.mark.parametrize(("spec", "line", "key", "message"), [
    ("not-before: 2026-01-01", 5, "identities.dev.not-before", "2026-01-01 is a date; give a time with a zone"),
    ("not-before: '2026-01-01T00:00:00'", 5, "identities.dev.not-before", "has no time zone"),
    ("not-after: 2026-01-01T00:00:00", 5, "identities.dev.not-after", "has no time zone"),
    ("not-after: yesterday", 5, "identities.dev.not-after", "'yesterday' is not an RFC 3339 time"),
    ("not-after: 12", 5, "identities.dev.not-after", "must be an RFC 3339 time"),
    ("not-before: '2026-02-01T00:00:00Z'\n    not-after: '2026-01-01T00:00:00Z'", 6, "identities.dev.not-after",
     "is not after not-before (2026-02-01T00:00:00+00:00)"),
    ("revoked: [keys/missing.pub.pem]", 5, "identities.dev.revoked.0", "cannot read public key"),
    ("revoked: [12]", 5, "identities.dev.revoked", "must be a list of non-empty strings"),
    ("expires: 2026", 5, "identities.dev.expires", "optionally with ['not-after', 'not-before', 'revoked']"),
])
def test_bad_windows_and_revocations_name_file_line_and_key(tmp_path: Path, spec: str, line: int, key: str,
                                                            message: str) -> None:
    path = _write(tmp_path, f"  dev:\n    keys: [keys/old.pub.pem]\n    {spec}\n")
    with pytest.raises(PolicyError) as info:
        load_policy(path)
    assert str(info.value).startswith(f"{path}:{line}: {key}: "), info.value
    assert message in str(info.value)


def test_top_level_revoked_entries_are_checked(tmp_path: Path) -> None:
    path = _write(tmp_path, "  dev: {keys: [keys/old.pub.pem]}\n", "revoked: [not-a-fingerprint.pem]\n")
    with pytest.raises(PolicyError, match=r"policy\.yaml:6: revoked\.0: cannot read public key"):
        load_policy(path)


# --- the one rule: find_signers with the run's time and the policy's revocations ---------------------


def _signed_by(key: f.PrivateKey) -> Evidence:
    [item] = evidence(envelope_line(signers=(key,)))
    assert isinstance(item, Evidence)
    return item


def _trusted(policy: Policy, key: f.PrivateKey, at: datetime) -> bool:
    try:
        return bool(find_signers(_signed_by(key), list(policy.signers()), policy.trust_run(at=at)))
    except SignatureInvalid:
        return False


def test_a_key_counts_only_inside_its_window_and_never_when_revoked() -> None:
    dev = Identity(name="dev", keys=(pub(OLD), pub(NEW)), not_before=NOW, not_after=NOW + timedelta(days=30),
                   revoked=frozenset({_fp(OLD)}))
    policy = Policy(identities={"dev": dev}, provenance=_rules())
    assert _trusted(policy, NEW, NOW) and _trusted(policy, NEW, NOW + timedelta(days=30))  # both ends inclusive
    assert not _trusted(policy, NEW, NOW - timedelta(seconds=1))
    assert not _trusted(policy, NEW, NOW + timedelta(days=30, seconds=1))
    assert not _trusted(policy, OLD, NOW)  # revoked: never
    assert not _trusted(policy, OTHER, NOW)  # not pinned
    assert dev.usable_keys(NOW) == (pub(NEW),) and dev.usable_keys(NOW - timedelta(days=1)) == ()
    assert _trusted(policy, NEW, datetime(2026, 6, 2))  # a naive time is read as UTC
    top = replace(policy, revoked=frozenset({_fp(NEW)}))
    assert not _trusted(top, NEW, NOW)


def _rules() -> Any:
    from verify.policy import ProvenanceRules

    return ProvenanceRules(signed_by=("dev",))


def test_find_signers_never_tries_a_revoked_or_expired_key(monkeypatch: pytest.MonkeyPatch) -> None:
    revoked = Identity(name="a", keys=(pub(OLD),), revoked=frozenset({_fp(OLD)}))
    expired = Identity(name="b", keys=(pub(STG),), not_after=NOW)
    current = Identity(name="c", keys=(pub(NEW),))
    [item] = evidence(envelope_line(signers=((OLD, _fp(OLD)),)))  # its keyid names the revoked key
    assert isinstance(item, Evidence)
    tried: list[str] = []
    real = PublicKey.verify

    def spy(self: PublicKey, signature: bytes, data: bytes) -> bool:
        tried.append(self.fingerprint)
        return real(self, signature, data)

    monkeypatch.setattr(PublicKey, "verify", spy)
    with pytest.raises(SignatureInvalid):
        find_signers(item, [revoked, expired, current], TrustRun(at=NOW + timedelta(1)))
    assert tried == [_fp(NEW)]


# --- verify --------------------------------------------------------------------------------------------


def _policy(dev: Identity, **changes: Any) -> Policy:
    return Policy(identities={"dev": dev}, provenance=_rules(), **changes)


def test_a_revoked_key_never_verifies_and_the_message_says_so(tmp_path: Path) -> None:
    path = _write(tmp_path, "  dev: {keys: [keys/old.pub.pem, keys/new.pub.pem]}\n", "revoked: [keys/old.pub.pem]\n")
    policy = load_policy(path)
    assert _verify(policy, NEW) == "dev"
    with pytest.raises(SignatureInvalid, match=r"keys/old\.pub\.pem, a key the policy revokes"):
        _verify(policy, OLD)


def test_a_key_revoked_by_fingerprint_only_is_still_refused(tmp_path: Path) -> None:
    policy = load_policy(_write(tmp_path, "  dev: {keys: [keys/old.pub.pem]}\n", f"revoked: ['{_fp(OLD)}']\n"))
    with pytest.raises(SignatureInvalid, match="no pinned public key may sign this evidence"):
        _verify(policy, OLD)


def test_a_per_identity_revocation_leaves_other_identities_alone(tmp_path: Path) -> None:
    path = _write(tmp_path, "  dev: {keys: [keys/old.pub.pem], revoked: [keys/old.pub.pem]}\n"
                            "  ops: {keys: [keys/old.pub.pem]}\n")
    policy = load_policy(path)
    with pytest.raises(SignatureInvalid):
        _verify(policy, OLD)
    assert _verify(policy.with_identity(policy.identities["ops"]), OLD) == "ops"


def test_top_level_revocation_covers_identities_added_after_loading(tmp_path: Path) -> None:
    policy = load_policy(_write(tmp_path, "  dev: {keys: [keys/new.pub.pem]}\n", "revoked: [keys/old.pub.pem]\n"))
    flag_key = Identity(name="--key", keys=(pub(OLD),))  # what `attest verify --key old.pub.pem` adds
    with pytest.raises(SignatureInvalid, match="a key the policy revokes"):
        _verify(policy.with_identity(flag_key), OLD)
    # added without with_identity (as the stage gate adds --vsa-key): still refused at use
    sneaked = replace(policy, identities={**policy.identities, "--key": flag_key},
                      provenance=replace(policy.provenance, signed_by=("--key",)))
    with pytest.raises(SignatureInvalid, match="a key the policy revokes"):
        _verify(sneaked, OLD)


def test_an_identity_verifies_only_inside_its_window() -> None:
    dev = Identity(name="dev", keys=(pub(DEV),), not_before=NOW, not_after=NOW + timedelta(days=1))
    policy = _policy(dev)
    assert _verify(policy, DEV, at=NOW + timedelta(hours=1)) == "dev"
    with pytest.raises(SignatureInvalid, match=r"identity 'dev' is not valid before 2026-06-01T00:00:00\+00:00"):
        _verify(policy, DEV, at=NOW - timedelta(seconds=1))
    with pytest.raises(SignatureInvalid, match=r"identity 'dev' is not valid after 2026-06-02T00:00:00\+00:00"):
        _verify(policy, DEV, at=NOW + timedelta(days=2))


def test_the_default_verification_time_is_now() -> None:
    past = Identity(name="dev", keys=(pub(DEV),), not_after=datetime.now(UTC) - timedelta(minutes=1))
    with pytest.raises(SignatureInvalid, match="is not valid after"):
        verify_artifact("app", evidence(envelope_line()), policy=_policy(past), digests=artefact_digests())
    future = replace(past, not_after=datetime.now(UTC) + timedelta(days=1))
    assert verify_artifact("app", evidence(envelope_line()), policy=_policy(future), digests=artefact_digests())


def test_an_expired_keyless_identity_is_not_offered_to_the_bundle_verifier() -> None:
    pinned = SigstoreIdentity(issuer="https://issuer", identity="me")
    keyless = Identity(name="dev", sigstore=(pinned,), not_after=NOW)
    bundle = {"mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json",
              "verificationMaterial": {"certificate": {"rawBytes": "AA=="}}, "messageSignature": {"signature": "AA=="}}
    [item] = evidence(json.dumps(bundle).encode())
    assert isinstance(item, Evidence)
    offered: list[tuple[SigstoreIdentity, ...]] = []

    def bundle_verifier(e: Evidence, identities: Any, *, message: DigestSet | None, budget: Any) -> Any:
        offered.extend(i.sigstore for i in identities)
        if not any(i.sigstore for i in identities):
            raise SignatureInvalid("no Sigstore identity is trusted")
        return (keyless,), None

    policy = _policy(keyless)
    assert verify_artifact("app", [item], policy=policy, digests=artefact_digests(), bundle_verifier=bundle_verifier,
                           at=NOW).signer == "dev"
    with pytest.raises(SignatureInvalid, match="is not valid after"):
        verify_artifact("app", [item], policy=policy, digests=artefact_digests(), bundle_verifier=bundle_verifier,
                        at=NOW + timedelta(seconds=1))
    assert offered == [(pinned,)]  # outside its window it is not even offered: refused before


def test_a_key_signed_message_bundle_by_a_revoked_key_is_refused() -> None:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec


    assert isinstance(OLD, ec.EllipticCurvePrivateKey)
    bundle = {"mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json",
              "verificationMaterial": {"publicKey": {"hint": ""}, "tlogEntries": []},
              "messageSignature": {"signature": f.b64(OLD.sign(f.ARTIFACT, ec.ECDSA(hashes.SHA256())))}}
    [item] = evidence(json.dumps(bundle).encode())
    assert isinstance(item, Evidence)
    sha256 = f.digest_set(f.ARTIFACT)["sha256"]
    dev = Identity(name="dev", keys=(pub(OLD),))
    assert find_signers(item, [dev], TrustRun(), message=DigestSet({"sha256": sha256})) == (dev,)
    with pytest.raises(SignatureInvalid):  # even called directly with the raw identity: find_signers filters
        find_signers(item, [replace(dev, revoked=frozenset({_fp(OLD)}))], TrustRun(),
                     message=DigestSet({"sha256": sha256}))
    with pytest.raises(SignatureInvalid, match="no pinned public key may sign this evidence"):
        verify_artifact("app", [item], policy=_policy(replace(dev, revoked=frozenset({_fp(OLD)}))),
                        digests=artefact_digests())


def test_a_vsa_signed_by_a_revoked_stage_key_does_not_count() -> None:
    vsa = envelope_line(f.statement(predicate_type=f.VSA_V1, predicate=f.vsa()), signers=(STG,))
    stg = Identity(name="stg", keys=(pub(STG),))
    rule = StageRule(name="prd", require_vsa=(VsaRequirement(stage="stg", signed_by=("stg",)),))
    policy = Policy(identities={"dev": Identity(name="dev", keys=(pub(DEV),)), "stg": stg}, provenance=_rules(),
                    stages={"stg": StageRule(name="stg", verifier="stg"), "prd": rule})
    def check(policy: Policy, at: datetime = NOW) -> list[Any]:
        return check_stage(rule, policy=policy, vsas=_statements(evidence(vsa), f.VSA_V1), approvals=[],
                           digests=DigestSet(f.digest_set(f.ARTIFACT)),
                           bound=Bound(sha256="ef" * 32, time=datetime(2024, 1, 1, tzinfo=UTC), source="p"),
                           run=policy.trust_run(at=at))

    assert [e.signer for e in check(policy)] == ["stg"]
    revoked = replace(policy, identities={**policy.identities, "stg": replace(stg, revoked=frozenset({_fp(STG)}))})
    with pytest.raises(PolicyViolation, match="is signed by an untrusted key, not by stg"):
        check(revoked)
    expired = replace(policy, identities={**policy.identities, "stg": replace(stg, not_after=NOW)})
    with pytest.raises(PolicyViolation):
        check(expired, NOW + timedelta(seconds=1))


def test_cli_verify_refuses_a_revoked_key_with_exit_1(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _write(tmp_path, "  dev: {keys: [keys/old.pub.pem, keys/new.pub.pem]}\n", "revoked: [keys/old.pub.pem]\n")
    (tmp_path / "app").write_bytes(f.ARTIFACT)
    (tmp_path / "old.intoto.jsonl").write_bytes(envelope_line(signers=(OLD,)))
    (tmp_path / "new.intoto.jsonl").write_bytes(envelope_line(signers=(NEW,)))
    result = run_in_process(["verify", "app", "--attestation", "old.intoto.jsonl", "--policy", path], cwd=tmp_path,
                            monkeypatch=monkeypatch)
    assert result.code == 1, result
    assert "keys/old.pub.pem, a key the policy revokes" in result.err and len(result.err.splitlines()) == 1
    result = run_in_process(["verify", "app", "--attestation", "new.intoto.jsonl", "--policy", path], cwd=tmp_path,
                            monkeypatch=monkeypatch)
    assert result.code == 0, result
