"""verify.verifier: the pipeline, over envelopes signed here with real keys (SLSA statements as in DESIGN)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any

import pytest

from tests.verify import _factory as f
from verify.budget import VerificationBudget
from verify.digests import DigestSet
from verify.errors import (
    DigestMismatch,
    EvidenceRejected,
    MalformedEvidence,
    PolicyError,
    PolicyViolation,
    SignatureInvalid,
    UnknownEvidence,
)
from verify.formats.evidence import Evidence, load_evidence
from verify.limits import MAX_VERIFICATIONS_PER_ENVELOPE
from verify.matching import plan_algorithms
from verify.policy import Policy, ProvenanceRules, SourceRule, TrustedBuilder
from verify.trust import Identity, PublicKey, SigstoreIdentity, load_public_key
from verify.verifier import Verdict, verify_artifact, verify_signature

DEV = f.private_key("p256", 0)
OTHER = f.private_key("p256", 9)
SOURCE = "provenance.intoto.jsonl"


def _pub(key: f.PrivateKey, name: str = "k") -> PublicKey:
    return load_public_key(f.public_pem(key), name=name)


def _policy(*, keys: Sequence[f.PrivateKey] = (DEV,), **rules: Any) -> Policy:
    base: dict[str, Any] = {
        "signed_by": ("dev",),
        "source": SourceRule(uri="github.com/acme/app", branches=("main",)),
        "builders": (TrustedBuilder(f.BUILDER),),
    }
    base.update(rules)
    return Policy(
        identities={"dev": Identity(name="dev", keys=tuple(_pub(k, f"dev{i}") for i, k in enumerate(keys)))},
        provenance=ProvenanceRules(**base),
    )


def _evidence(
    statement: Mapping[str, Any] | None = None,
    *,
    signers: Sequence[Any] = (DEV,),
    payload_type: str = f.INTOTO,
    mutate: Callable[[dict[str, Any]], None] | None = None,
    source: str = SOURCE,
) -> list[Evidence | MalformedEvidence]:
    envelope = f.envelope_dict(f.payload_of(statement or f.statement()), signers, payload_type=payload_type)
    if mutate is not None:
        mutate(envelope)
    return load_evidence(f.json_line(envelope), source=source)


def _digests(
    data: bytes = f.ARTIFACT, algorithms: Sequence[str] = ("sha256", "blake3")
) -> Callable[[], dict[str, str]]:
    return lambda: f.digest_set(data, algorithms)


def _verify(
    evidence: Sequence[Evidence | MalformedEvidence],
    policy: Policy | None = None,
    digests: Callable[[], Mapping[str, str]] | None = None,
    **kwargs: Any,
) -> Verdict:
    return verify_artifact(
        "dist/app.tar.gz", evidence, policy=policy or _policy(), digests=digests or _digests(), **kwargs
    )


def _reject(
    error: type[EvidenceRejected],
    match: str,
    evidence: Sequence[Evidence | MalformedEvidence],
    policy: Policy | None = None,
    **kwargs: Any,
) -> EvidenceRejected:
    with pytest.raises(error) as info:
        _verify(evidence, policy, **kwargs)
    assert type(info.value) is error
    assert match in str(info.value), str(info.value)
    return info.value


# --- the pass case --------------------------------------------------------------------------------


def test_pass_returns_a_verdict_with_every_check() -> None:
    verdict = _verify(_evidence())
    assert verdict.signer == "dev"
    assert verdict.artifact == "dist/app.tar.gz"
    assert verdict.subject.name == "dist/app.tar.gz"
    assert verdict.digests == f.digest_set(f.ARTIFACT)
    assert verdict.evidence.source == SOURCE
    assert verdict.provenance is not None and verdict.provenance.commit == f.COMMIT
    assert [c.name for c in verdict.checks] == [
        "signature",
        "payloadType",
        "statement",
        "predicateType",
        "subject",
        "source",
        "branch",
        "builder",
        "parameters",
        "clean",
    ]
    assert all(c.passed for c in verdict.checks)
    by_name = {c.name: c for c in verdict.checks}
    assert by_name["subject"].expected == f.digest_set(f.ARTIFACT)  # every algorithm computed and listed
    assert by_name["source"].expected == "github.com/acme/app"
    assert by_name["branch"].found == "refs/heads/main"
    out = verdict.to_dict()
    assert out["verified"] is True
    assert out["provenance"]["builder"] == f.BUILDER
    assert (
        out["evidence"]["sha256"]
        == hashlib.sha256(f.json_line(json.loads(verdict.evidence.raw)).strip()).hexdigest()
    )
    json.dumps(out)  # machine-readable as it is


def test_pass_with_provenance_v02() -> None:
    statement = f.statement(predicate_type=f.PROVENANCE_V02, predicate=f.provenance_v02())
    verdict = _verify(_evidence(statement), _policy(commit=f.COMMIT))
    assert verdict.provenance is not None and verdict.provenance.predicate_type == f.PROVENANCE_V02
    assert "commit" in [c.name for c in verdict.checks]


@pytest.mark.parametrize("kind", ["p384", "ed25519", "rsa2048"])
def test_pass_with_other_key_types(kind: str) -> None:
    key = f.private_key(kind)
    assert _verify(_evidence(signers=[key]), _policy(keys=[key])).signer == "dev"


# --- refusals before any evidence is looked at ----------------------------------------------------


def test_no_signed_by_in_policy() -> None:
    _reject(
        SignatureInvalid,
        "no trusted identity may sign provenance; verification without one is refused",
        _evidence(),
        _policy(signed_by=()),
    )


def test_no_evidence() -> None:
    _reject(MalformedEvidence, "no attestation found for dist/app.tar.gz", [])


def test_only_malformed_evidence_reports_it() -> None:
    [bad] = load_evidence(b"{not json", source="p.intoto.jsonl")
    _reject(MalformedEvidence, "p.intoto.jsonl is not valid JSON", [bad])


# --- (2) signature --------------------------------------------------------------------------------


def test_no_pinned_key() -> None:
    keyless = Identity(
        name="gha",
        sigstore=(SigstoreIdentity(issuer="https://token.actions.githubusercontent.com", identity="x"),),
    )
    policy = Policy(identities={"gha": keyless}, provenance=ProvenanceRules(signed_by=("gha",)))
    error = _reject(
        SignatureInvalid,
        f"{SOURCE}: no pinned public key may sign this evidence; pass --key",
        _evidence(),
        policy,
    )
    assert [(c.name, c.passed) for c in error.checks] == [("signature", False)]  # type: ignore[attr-defined]


def test_signature_by_unpinned_key() -> None:
    error = _reject(
        SignatureInvalid,
        f"{SOURCE}: no signature verifies with a trusted key (trusted: dev); the evidence "
        "was altered or signed by an untrusted key",
        _evidence(signers=[OTHER]),
    )
    [check] = error.checks
    assert (check.name, check.passed, check.expected) == ("signature", False, ["dev"])  # type: ignore[attr-defined]


def test_a_trusted_identity_not_in_signed_by_cannot_sign_provenance() -> None:
    policy = _policy()
    policy = Policy(
        identities={**policy.identities, "stg": Identity(name="stg", keys=(_pub(OTHER),))},
        provenance=policy.provenance,
    )
    _reject(SignatureInvalid, "(trusted: dev)", _evidence(signers=[OTHER]), policy)


@pytest.mark.parametrize("keyid", ["", None, "not-a-fingerprint", f.fingerprint(OTHER)],
                         ids=["empty", "none", "not-a-fingerprint", "another-keys-fingerprint"])
def test_keyid_is_only_a_hint(keyid: str | None) -> None:
    assert _verify(_evidence(signers=[(DEV, keyid)])).signer == "dev"


def test_keyid_naming_a_trusted_key_does_not_make_a_bad_signature_good() -> None:
    _reject(SignatureInvalid, "no signature verifies", _evidence(signers=[(OTHER, f.fingerprint(DEV))]))


def test_one_good_signature_among_bad_ones() -> None:
    bogus = [
        {"keyid": "", "sig": f.b64(bytes(64))},
        {"keyid": f.fingerprint(DEV), "sig": f.b64(b"\x01" * 70)},
    ]

    def add_bogus_first(envelope: dict[str, Any]) -> None:
        envelope["signatures"] = bogus + envelope["signatures"]

    assert _verify(_evidence(signers=[OTHER, DEV], mutate=add_bogus_first)).signer == "dev"


@pytest.fixture
def count_verifications(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts PublicKey.verify calls; each still runs the real verification."""
    calls: list[int] = []
    real = PublicKey.verify

    def counting(self: PublicKey, signature: bytes, data: bytes) -> bool:
        calls.append(1)
        return real(self, signature, data)

    monkeypatch.setattr(PublicKey, "verify", counting)
    return calls


def _flood(envelope: dict[str, Any]) -> None:
    envelope["signatures"] = [{"keyid": "", "sig": f.b64(bytes([i]) * 64)} for i in range(16)]


def test_verification_budget_stops_a_flood_of_bogus_signatures(count_verifications: list[int]) -> None:
    keys = [f.private_key("p256", i) for i in range(5)]  # 16 signatures x 5 keys = 80 > 64
    error = _reject(
        SignatureInvalid,
        f"{SOURCE}: gave up after {MAX_VERIFICATIONS_PER_ENVELOPE} signature "
        "verifications without a valid one",
        _evidence(signers=[], mutate=_flood),
        _policy(keys=keys),
    )
    assert len(count_verifications) == MAX_VERIFICATIONS_PER_ENVELOPE
    assert error.checks[-1].name == "signature"  # type: ignore[attr-defined]


def test_flood_within_budget_tries_every_pair(count_verifications: list[int]) -> None:
    keys = [f.private_key("p256", i) for i in range(4)]  # 16 x 4 = 64: exactly the budget
    _reject(
        SignatureInvalid,
        "no signature verifies with a trusted key",
        _evidence(signers=[], mutate=_flood),
        _policy(keys=keys),
    )
    assert len(count_verifications) == 64


def test_valid_signature_found_by_keyid_with_one_verification(count_verifications: list[int]) -> None:
    keys = [f.private_key("p256", i) for i in (3, 2, 1, 0)]  # DEV last
    assert _verify(_evidence(signers=[DEV]), _policy(keys=keys)).signer == "dev"
    assert len(count_verifications) == 1
    count_verifications.clear()
    assert _verify(_evidence(signers=[(DEV, "")]), _policy(keys=keys)).signer == "dev"
    assert len(count_verifications) == 4  # no hint: tried in the policy's order


def test_runs_sharing_their_key_caches_answer_each_set_of_identities_for_itself(
        count_verifications: list[int]) -> None:
    """As an audit's runs do (one per file): the keys worked out for one set of identities never answer for
    another, every identity pinning the key that verifies is named, and a revoked key is never tried."""
    from datetime import UTC, datetime

    from verify.signers import TrustRun, find_signers

    [item] = _evidence()
    assert isinstance(item, Evidence)
    dev, also = Identity(name="dev", keys=(_pub(DEV),)), Identity(name="also", keys=(_pub(DEV, "copy"),))
    other = Identity(name="other", keys=(_pub(OTHER),))
    usable: dict[Any, Any] = {}
    pairs: dict[Any, Any] = {}
    at = datetime.now(UTC)

    def run(revoked: frozenset[str] = frozenset()) -> TrustRun:
        return TrustRun(at=at, revoked=revoked, usable_cache=usable, pairs_cache=pairs)

    assert find_signers(item, [other, dev, also], run()) == (dev, also)
    with pytest.raises(SignatureInvalid, match=r"trusted: other\)"):
        find_signers(item, [other], run())
    assert find_signers(item, [dev], run()) == (dev,)
    count_verifications.clear()
    with pytest.raises(SignatureInvalid, match="no pinned public key may sign"):
        find_signers(item, [dev], run(frozenset({f.fingerprint(DEV)})))
    assert count_verifications == []


def test_verify_signature_directly() -> None:
    [item] = _evidence()
    assert isinstance(item, Evidence) and item.envelope is not None
    dev = Identity(name="dev", keys=(_pub(DEV),))
    other = Identity(name="other", keys=(_pub(OTHER),))
    assert verify_signature(item.envelope, [other, dev], source="s") is dev
    with pytest.raises(
        SignatureInvalid, match=r"s: no signature verifies with a trusted key \(trusted: other\)"
    ):
        verify_signature(item.envelope, [other], source="s")
    with pytest.raises(SignatureInvalid, match="s: no pinned public key may sign this evidence"):
        verify_signature(item.envelope, [], source="s")


def test_payload_type_changed_under_the_signature() -> None:
    def change(envelope: dict[str, Any]) -> None:
        envelope["payloadType"] = "application/json"

    _reject(SignatureInvalid, "no signature verifies", _evidence(mutate=change))


def test_payload_changed_under_the_signature() -> None:
    def change(envelope: dict[str, Any]) -> None:
        other = f.statement([("dist/app.tar.gz", f.digest_set(b"evil"))])
        envelope["payload"] = f.b64(f.payload_of(other))

    _reject(SignatureInvalid, "no signature verifies", _evidence(mutate=change))


# --- (3) statement --------------------------------------------------------------------------------


def test_signed_payload_type_not_in_toto() -> None:
    error = _reject(
        UnknownEvidence,
        f"{SOURCE}: payloadType is 'application/json', not 'application/vnd.in-toto+json'",
        _evidence(payload_type="application/json"),
    )
    assert [c.name for c in error.checks] == ["signature", "payloadType"]  # type: ignore[attr-defined]


def test_statement_type_unknown() -> None:
    _reject(
        UnknownEvidence,
        f"{SOURCE} statement has _type 'https://in-toto.io/Statement/v9'",
        _evidence(f.statement(type_="https://in-toto.io/Statement/v9")),
    )


def test_statement_not_json() -> None:
    def change(envelope: dict[str, Any]) -> None:
        payload = b"not json"
        envelope["payload"] = f.b64(payload)
        envelope["signatures"] = [{"keyid": "", "sig": f.b64(f.sign(DEV, f.pae(f.INTOTO, payload)))}]

    error = _reject(MalformedEvidence, f"{SOURCE} statement is not valid JSON", _evidence(mutate=change))
    assert error.checks[-1].name == "statement"  # type: ignore[attr-defined]


def test_predicate_not_provenance() -> None:
    statement = f.statement(predicate_type="https://spdx.dev/Document", predicate={"spdxVersion": "SPDX-2.3"})
    _reject(
        UnknownEvidence,
        f"{SOURCE}: predicate type 'https://spdx.dev/Document' is not a SLSA provenance "
        f"({f.PROVENANCE_V1}); ask for another type with --predicate-type",
        _evidence(statement),
    )


def test_predicate_type_rule_accepts_another_predicate() -> None:
    statement = f.statement(predicate_type="https://spdx.dev/Document", predicate={"spdxVersion": "SPDX-2.3"})
    policy = _policy(source=SourceRule(), builders=(), predicate_type="https://spdx.dev/Document")
    verdict = _verify(_evidence(statement), policy)
    assert verdict.provenance is None
    assert verdict.statement is not None and verdict.statement.predicate_type == "https://spdx.dev/Document"
    assert [c.name for c in verdict.checks] == [
        "signature",
        "payloadType",
        "statement",
        "predicateType",
        "subject",
    ]


def test_predicate_type_rule_refuses_other_types_including_provenance() -> None:
    policy = _policy(source=SourceRule(), builders=(), predicate_type="https://spdx.dev/Document")
    _reject(
        UnknownEvidence,
        f"predicate type '{f.PROVENANCE_V1}' is not 'https://spdx.dev/Document'",
        _evidence(),
        policy,
    )


def test_predicate_type_rule_does_not_silently_drop_provenance_rules() -> None:
    # regression: with --predicate-type, a non-provenance statement skipped source/builder rules, passed
    statement = f.statement(predicate_type="https://spdx.dev/Document", predicate={"spdxVersion": "SPDX-2.3"})
    policy = _policy(predicate_type="https://spdx.dev/Document")
    error = _reject(
        PolicyViolation,
        f"{SOURCE}: predicate type 'https://spdx.dev/Document' is not a SLSA provenance, "
        "and the rules on source, branch, builder need one",
        _evidence(statement),
        policy,
    )
    assert error.checks[-1].name == "provenance"  # type: ignore[attr-defined]


def test_unreadable_provenance() -> None:
    predicate = f.provenance_v1()
    del predicate["runDetails"]
    error = _reject(
        MalformedEvidence,
        f"{SOURCE}: provenance runDetails is not a JSON object",
        _evidence(f.statement(predicate=predicate)),
    )
    assert error.checks[-1].name == "provenance"  # type: ignore[attr-defined]


def test_unreadable_provenance_asked_for_by_type_without_rules_is_not_interpreted() -> None:
    """Flags only (--key --predicate-type): no rule reads the predicate."""
    predicate = f.provenance_v1()
    del predicate["runDetails"]
    policy = _policy(source=SourceRule(), builders=(), predicate_type=f.PROVENANCE_V1, check_parameters=False)
    verdict = _verify(_evidence(f.statement(predicate=predicate)), policy)
    assert verdict.provenance is None
    assert verdict.checks[-1].name == "provenance" and verdict.checks[-1].passed


@pytest.mark.parametrize("unreadable", ["no runDetails", "a time that is none"])
def test_a_policy_refuses_an_unreadable_provenance_it_would_refuse_readable(unreadable: str) -> None:
    """A policy checks every provenance's parameters and clean tree: a dirty one was refused, and the same one
    passed once a bad time made it unreadable ('not interpreted')."""
    predicate = f.provenance_v1()
    predicate["buildDefinition"].setdefault("internalParameters", {})["dirty"] = True
    policy = _policy(source=SourceRule(), builders=())
    _reject(PolicyViolation, "uncommitted changes", _evidence(f.statement(predicate=predicate)), policy)
    if unreadable == "no runDetails":
        del predicate["runDetails"]
    else:
        predicate["runDetails"]["metadata"] = {"finishedOn": "yesterday"}
    _reject(MalformedEvidence, "", _evidence(f.statement(predicate=predicate)), policy)


# --- (4) subject ----------------------------------------------------------------------------------


def test_subject_digest_mismatch() -> None:
    error = _reject(
        DigestMismatch,
        "is not among the 1 subject(s) it attests; the artefact was changed",
        _evidence(),
        digests=_digests(b"another artefact"),
    )
    assert [c.name for c in error.checks][-1] == "subject"  # type: ignore[attr-defined]


def test_subject_matches_among_many() -> None:
    subjects = [(f"dist/f{i}", f.digest_set(b"%d" % i)) for i in range(50)]
    subjects.insert(31, ("dist/app.tar.gz", f.digest_set(f.ARTIFACT)))
    assert _verify(_evidence(f.statement(subjects))).subject.name == "dist/app.tar.gz"


@pytest.mark.parametrize("weak", [("md5",), ("sha1",), ("md5", "sha1")])
def test_weak_only_subject_rejected_even_when_it_matches(weak: tuple[str, ...]) -> None:
    statement = f.statement([("dist/app.tar.gz", f.digest_set(f.ARTIFACT, weak))])
    _reject(
        DigestMismatch,
        f"no subject has a digest attest accepts (found {sorted(weak)}",
        _evidence(statement),
        digests=_digests(algorithms=("sha256", "blake3", *weak)),
    )


@pytest.mark.parametrize("wrong", ["blake3", "sha256"])
def test_every_computed_algorithm_the_subject_lists_must_agree(wrong: str) -> None:
    """Finding 5: one meaning of "this subject is this artefact": a subject whose sha256 matches but whose
    blake3 does not (or the other way round) names other bytes."""
    subject = dict(f.digest_set(f.ARTIFACT))
    subject[wrong] = "00" * 32
    _reject(DigestMismatch, "is not among the 1 subject(s)", _evidence(f.statement([("a", subject)])))
    # what was not computed is not compared
    other = "sha256" if wrong == "blake3" else "blake3"
    assert _verify(_evidence(f.statement([("a", subject)])), digests=_digests(algorithms=(other,))).subject.name \
        == "a"


def test_sha256_used_when_only_sha256_was_computed() -> None:
    # e.g. 'attest verify sha256:HEX': the subject also has blake3, which was not (could not be) computed
    verdict = _verify(_evidence(), digests=_digests(algorithms=("sha256",)))
    assert {c.name: c for c in verdict.checks}["subject"].expected == {
        "sha256": f.digest_set(f.ARTIFACT)["sha256"]
    }


def test_policy_digests_restrict_algorithms() -> None:
    subject = {"sha512": hashlib.sha512(f.ARTIFACT).hexdigest()}
    policy = _policy(digests=("blake3", "sha256"))
    _reject(
        DigestMismatch,
        "no subject has a digest attest accepts (found ['sha512'], accepted ['blake3', 'sha256'])",
        _evidence(f.statement([("a", subject)])),
        policy,
        digests=_digests(algorithms=("sha256", "blake3", "sha512")),
    )
    assert (
        _verify(
            _evidence(f.statement([("a", subject)])), digests=_digests(algorithms=("sha512",))
        ).subject.name
        == "a"
    )


# --- (5) provenance rules -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "repo",
    [
        "https://github.com/acme/app.git",
        "git@github.com:acme/app.git",
        "ssh://git@GitHub.com/acme/app",
        "https://token@github.com:443/acme/app/",
    ],
)
def test_source_matches_in_any_spelling(repo: str) -> None:
    assert _verify(_evidence(f.statement(predicate=f.provenance_v1(repo=repo)))).provenance is not None


@pytest.mark.parametrize(
    "repo",
    [
        "https://github.com/acme/app2",
        "https://github.com/evil/app",
        "https://github.com@evil.example/acme/app",
        "https://[evil/acme/app",
    ],
)
def test_source_mismatch(repo: str) -> None:
    error = _reject(
        PolicyViolation, "source repository is", _evidence(f.statement(predicate=f.provenance_v1(repo=repo)))
    )
    assert "expected 'github.com/acme/app'" in str(error)
    assert error.checks[-1].name == "source"  # type: ignore[attr-defined]


def test_source_missing() -> None:
    predicate = f.provenance_v1()
    predicate["buildDefinition"]["resolvedDependencies"] = []
    predicate["buildDefinition"]["externalParameters"] = {}
    _reject(
        PolicyViolation,
        "the provenance names no source repository, expected 'github.com/acme/app'",
        _evidence(f.statement(predicate=predicate)),
    )


@pytest.mark.parametrize("ref", ["refs/heads/main", "main"])
def test_branch_matches(ref: str) -> None:
    assert _verify(_evidence(f.statement(predicate=f.provenance_v1(ref=ref)))).provenance is not None


@pytest.mark.parametrize(
    "ref", ["refs/heads/dev", "refs/tags/main", "refs/heads/main-old", "refs/pull/1/merge"]
)
def test_branch_mismatch(ref: str) -> None:
    _reject(
        PolicyViolation,
        f"built from ref {ref!r}, expected branch main",
        _evidence(f.statement(predicate=f.provenance_v1(ref=ref))),
    )


@pytest.mark.parametrize("ref", ["refs/heads/main", "main"])
def test_a_rule_may_name_a_branch_by_its_ref(ref: str) -> None:
    """branches: [refs/heads/main] is the branch main; read as a name, it would have matched only a branch named
    'refs/heads/main' (ref refs/heads/refs/heads/main), which anyone who may push can make."""
    policy = _policy(source=SourceRule(uri="github.com/acme/app", branches=("refs/heads/main",)))
    assert _verify(_evidence(f.statement(predicate=f.provenance_v1(ref=ref))), policy).provenance is not None
    _reject(
        PolicyViolation,
        "built from ref 'refs/heads/refs/heads/main', expected branch main",
        _evidence(f.statement(predicate=f.provenance_v1(ref="refs/heads/refs/heads/main"))),
        policy,
    )


@pytest.mark.parametrize("branch", ["refs/tags/v1", "refs/pull/1/merge", "refs/heads/"])
def test_a_ref_that_names_no_branch_is_no_branch_rule(branch: str) -> None:
    with pytest.raises(PolicyError, match="is a ref that names no branch"):
        SourceRule(uri="github.com/acme/app", branches=(branch,))


@pytest.mark.parametrize("commit", [f.COMMIT, f.COMMIT.upper()])
def test_commit_matches(commit: str) -> None:
    verdict = _verify(_evidence(), _policy(commit=commit))
    assert {c.name: c for c in verdict.checks}["commit"].found == f.COMMIT


@pytest.mark.parametrize("commit", [f.COMMIT[:7], f.COMMIT[:6], "f" * 40, f.COMMIT[:39] + "0", "0123457"])
def test_commit_mismatch_or_a_prefix(commit: str) -> None:
    """Finding 6: a prefix is never the commit (a colliding prefix can be brute-forced)."""
    _reject(
        PolicyViolation,
        f"built from commit {f.COMMIT!r}, expected {commit!r}",
        _evidence(),
        _policy(commit=commit),
    )


def test_builder_mismatch() -> None:
    other = "arn:aws:codebuild:eu-west-1:222222222222:project/app-build"
    _reject(
        PolicyViolation,
        f"builder {other!r} is not one of the allowed builders [{f.BUILDER!r}]",
        _evidence(f.statement(predicate=f.provenance_v1(builder=other))),
    )


def test_lockfile_bound_and_not_bound() -> None:
    verdict = _verify(_evidence(), _policy(lockfiles=("requirements.txt",)))
    assert {c.name: c for c in verdict.checks}["lockfiles"].found == ["requirements.txt"]
    _reject(
        PolicyViolation,
        "the provenance does not bind lockfile 'poetry.lock'",
        _evidence(),
        _policy(lockfiles=("requirements.txt", "poetry.lock")),
    )


@pytest.mark.parametrize("digest", [{}, None, {"md5": "ab" * 16}], ids=["empty", "absent", "weak-only"])
def test_a_lockfile_named_without_an_accepted_digest_is_not_bound(digest: dict[str, str] | None) -> None:
    """Named with no digest (or only a weak one), the entry binds nothing: it satisfied the lockfiles rule."""
    predicate = f.provenance_v1()
    entry = next(d for d in predicate["buildDefinition"]["resolvedDependencies"] if d.get("name"))
    if digest is None:
        del entry["digest"]
    else:
        entry["digest"] = digest
    _reject(
        PolicyViolation,
        "the provenance names lockfile 'requirements.txt' without a digest of an algorithm the policy accepts",
        _evidence(f.statement(predicate=predicate)),
        _policy(lockfiles=("requirements.txt",)),
    )


def test_dirty_build_refused_unless_allowed() -> None:
    evidence = _evidence(f.statement(predicate=f.provenance_v1(dirty=True)))
    _reject(PolicyViolation, "built from a work tree with uncommitted changes", evidence)
    verdict = _verify(evidence, _policy(allow_dirty=True))
    clean = {c.name: c for c in verdict.checks}["clean"]
    assert (clean.passed, clean.found) == (True, False)


# --- several pieces of evidence -------------------------------------------------------------------


def test_first_passing_evidence_wins() -> None:
    bad = _evidence(signers=[OTHER], source="a:1")
    good = _evidence(source="b:1")
    assert _verify([*bad, *good]).evidence.source == "b:1"


def test_best_failure_is_the_one_that_got_furthest() -> None:
    [malformed] = load_evidence(b"{", source="m:1")
    unsigned = _evidence(signers=[OTHER], source="u:1")
    wrong_branch = _evidence(f.statement(predicate=f.provenance_v1(ref="refs/heads/dev")), source="w:1")
    other_artefact = _evidence(f.statement([("x", f.digest_set(b"x"))]), source="o:1")
    for order in (
        [malformed, *unsigned, *other_artefact, *wrong_branch],
        [*wrong_branch, *other_artefact, *unsigned, malformed],
    ):
        _reject(PolicyViolation, "w:1: built from ref 'refs/heads/dev'", order)
    _reject(DigestMismatch, "o:1:", [*unsigned, malformed, *other_artefact])
    _reject(SignatureInvalid, "u:1:", [malformed, *unsigned])


def test_ties_report_the_first() -> None:
    _reject(
        SignatureInvalid,
        "first:1:",
        [*_evidence(signers=[OTHER], source="first:1"), *_evidence(signers=[OTHER], source="second:1")],
    )


# --- bundles --------------------------------------------------------------------------------------


def _bundle(material: dict[str, Any], **content: Any) -> list[Evidence | MalformedEvidence]:
    bundle = {
        "mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json",
        "verificationMaterial": material,
        **content,
    }
    return load_evidence(json.dumps(bundle).encode(), source="b.sigstore.json")


def _dsse_bundle(material: dict[str, Any]) -> list[Evidence | MalformedEvidence]:
    return _bundle(material, dsseEnvelope=f.envelope_dict(f.payload_of(f.statement()), [DEV]))


def test_key_signed_bundle_is_verified_with_pinned_keys() -> None:
    assert _verify(_dsse_bundle({"publicKey": {"hint": "dev"}})).signer == "dev"
    _reject(
        SignatureInvalid,
        "no signature verifies",
        _dsse_bundle({"publicKey": {"hint": "dev"}}),
        _policy(keys=[OTHER]),
    )


def _keyless_policy(**rules: Any) -> Policy:
    """_policy, whose dev identity also pins a Sigstore identity (a keyless bundle is offered to it)."""
    policy = _policy(**rules)
    dev = policy.identities["dev"]
    keyless = SigstoreIdentity(issuer="https://issuer.example", identity="dev@example.com")
    return Policy(identities={"dev": Identity(name="dev", keys=dev.keys, sigstore=(keyless,))},
                  provenance=policy.provenance)


def test_certificate_bundle_without_sigstore_support() -> None:
    _reject(
        UnknownEvidence,
        "b.sigstore.json: Sigstore bundles with a certificate need Sigstore support",
        _dsse_bundle({"certificate": {"rawBytes": "MIIB"}}),
        _keyless_policy(),
    )
    _reject(
        SignatureInvalid,
        "b.sigstore.json is signed keylessly by an unreadable certificate, and no Sigstore identity is trusted",
        _dsse_bundle({"certificate": {"rawBytes": "MIIB"}}),
    )


def test_certificate_bundle_goes_to_the_bundle_verifier() -> None:
    seen: list[tuple[str, list[str]]] = []

    def accept(evidence: Evidence, identities: Sequence[Identity], *,
               message: DigestSet | None, budget: VerificationBudget) -> tuple[tuple[Identity, ...], None]:
        seen.append((evidence.source, [i.name for i in identities]))
        return (identities[0],), None

    verdict = _verify(_dsse_bundle({"certificate": {"rawBytes": "MIIB"}}), _keyless_policy(), bundle_verifier=accept)
    assert verdict.signer == "dev"
    assert seen == [("b.sigstore.json", ["dev"])]

    def refuse(evidence: Evidence, identities: Sequence[Identity], *,
               message: DigestSet | None, budget: VerificationBudget) -> tuple[tuple[Identity, ...], None]:
        raise SignatureInvalid(f"{evidence.source}: certificate identity is not pinned")

    error = _reject(
        SignatureInvalid,
        "b.sigstore.json: certificate identity is not pinned",
        _dsse_bundle({"certificate": {"rawBytes": "MIIB"}}),
        _keyless_policy(),
        bundle_verifier=refuse,
    )
    assert [(c.name, c.passed) for c in error.checks] == [("signature", False)]  # type: ignore[attr-defined]


def test_message_signature_bundle_is_not_a_provenance() -> None:
    sha256 = bytes.fromhex(f.digest_set(f.ARTIFACT)["sha256"])
    message = _bundle(
        {"publicKey": {"hint": "dev"}},
        messageSignature={"messageDigest": {"algorithm": "SHA2_256", "digest": f.b64(sha256)},
                          "signature": f.b64(f.sign(DEV, f.ARTIFACT))},
    )
    _reject(
        PolicyViolation,
        "b.sigstore.json: a message signature (a plain signed artefact) is not a provenance, "
        "and the rules on source, branch, builder need one",
        message,
    )
    identity_only = _policy(source=SourceRule(), builders=())
    verdict = _verify(message, identity_only)
    assert verdict.statement is None and verdict.provenance is None
    assert verdict.subject.digest == {"sha256": f.digest_set(f.ARTIFACT)["sha256"]}
    _reject(DigestMismatch, "is not the digest the bundle signs", message, identity_only,
            digests=_digests(b"another artefact"))
    _reject(SignatureInvalid, "the message signature does not verify with a trusted key", message,
            _policy(keys=(OTHER,), source=SourceRule(), builders=()))


# --- plan_algorithms -------------------------------------------------------------------------------


def _items(*statements: Mapping[str, Any]) -> list[Evidence]:
    items = [item for s in statements for item in _evidence(s)]
    assert all(isinstance(i, Evidence) for i in items)
    return items  # type: ignore[return-value]


def test_plan_computes_the_cheapest_strong_digest_each_subject_allows() -> None:
    both = f.statement()
    sha256 = f.statement([("a", f.digest_set(b"a", ("sha256",)))])
    sha512 = f.statement([("a", f.digest_set(b"a", ("sha512",)))])
    sha512_sha384 = f.statement([("a", f.digest_set(b"a", ("sha512", "sha384")))])
    blake3 = f.statement([("a", {"blake3": "ab" * 32})])
    assert plan_algorithms(_items(both)) == ["blake3"]  # one agreeing strong digest identifies the bytes
    assert plan_algorithms(_items(blake3)) == ["blake3"]
    assert plan_algorithms(_items(sha256)) == ["sha256"]  # its only strong algorithm: still matched
    assert plan_algorithms(_items(sha512_sha384)) == ["sha512"]
    # a subject with one algorithm forces it, and then covers the subjects that also list it
    assert plan_algorithms(_items(sha256, both)) == ["sha256"]
    assert plan_algorithms(_items(sha256, both, sha512)) == ["sha256", "sha512"]
    assert plan_algorithms(_items(blake3, sha256)) == ["blake3", "sha256"]
    weak = f.statement([("a", f.digest_set(b"a", ("md5",)))])
    assert plan_algorithms(_items(weak)) == ["blake3"]  # nothing could match it: the cheapest, for the refusal
    assert plan_algorithms(_items(weak), accepted=("sha256",)) == ["sha256"]


def test_plan_follows_the_policys_digests_and_what_must_be_addressed_by_sha256() -> None:
    both = f.statement()
    # a policy that names sha256 alone (FIPS): sha256 is computed, blake3 is not
    assert plan_algorithms(_items(both), accepted=("sha256",)) == ["sha256"]
    assert plan_algorithms(_items(both), accepted=("sha256", "blake3")) == ["blake3"]
    # md5 and sha1 never count, whatever a policy object says
    assert plan_algorithms(_items(both), accepted=("md5", "sha1", "sha256")) == ["sha256"]
    # a subject with nothing the policy accepts adds nothing
    assert plan_algorithms(_items(f.statement([("a", {"blake3": "ab" * 32})])), accepted=("sha256",)) == ["sha256"]
    # a store indexed by sha256 only, an in-toto link: required whatever the subjects allow
    assert plan_algorithms(_items(both), require=("sha256",)) == ["sha256"]  # and it covers the subject
    assert plan_algorithms(_items(f.statement([("a", {"blake3": "ab" * 32})])), require=("sha256",)) == [
        "blake3", "sha256"]
    assert plan_algorithms([], require=("sha256",)) == ["sha256"]
    # a message signature signs the sha256
    sha256 = bytes.fromhex(f.digest_set(f.ARTIFACT)["sha256"])
    message = _bundle(
        {"publicKey": {"hint": "dev"}},
        messageSignature={"messageDigest": {"algorithm": "SHA2_256", "digest": f.b64(sha256)},
                          "signature": f.b64(f.sign(DEV, f.ARTIFACT))},
    )
    assert plan_algorithms([*message]) == ["sha256"]
    assert plan_algorithms([*_items(both), *message]) == ["sha256"]  # which then covers the subject too
    assert plan_algorithms([*_items(f.statement([("a", {"blake3": "ab" * 32})])), *message]) == ["blake3", "sha256"]


def test_plan_for_unreadable_statements_is_the_cheapest_accepted_digest() -> None:
    [not_intoto] = _evidence(payload_type="application/json")
    [bad_statement] = _evidence(f.statement(type_="x"))
    assert plan_algorithms([not_intoto, bad_statement]) == ["blake3"]
    assert plan_algorithms([not_intoto, bad_statement], accepted=("sha512", "sha256")) == ["sha256"]


def test_a_policy_pinning_only_its_components_repositories_lets_no_evidence_skip_the_source_rule() -> None:
    """Components name their repositories, provenance none: a message signature, another predicate or an unreadable
    provenance shows no repository, so none passes as an identity-only check (each did, with no rule asking)."""
    from verify.policy import ComponentRules

    policy = replace(_policy(source=SourceRule(), builders=()),
                     components={"infra": ComponentRules(source=SourceRule(uri="github.com/acme/infra"))})
    sha256 = bytes.fromhex(f.digest_set(f.ARTIFACT)["sha256"])
    message = _bundle(
        {"publicKey": {"hint": "dev"}},
        messageSignature={"messageDigest": {"algorithm": "SHA2_256", "digest": f.b64(sha256)},
                          "signature": f.b64(f.sign(DEV, f.ARTIFACT))},
    )
    _reject(PolicyViolation, "is not a provenance, and the rules on source need one", message, policy)
    unreadable = f.provenance_v1()
    del unreadable["runDetails"]
    asked = replace(policy, provenance=replace(policy.provenance, predicate_type=f.PROVENANCE_V1))
    _reject(MalformedEvidence, "runDetails is not a JSON object", _evidence(f.statement(predicate=unreadable)), asked)
    # the provenance of a repository no rule names is refused with the sentence saying what to add
    _reject(PolicyViolation, "the policy names no source repository for this build", _evidence(), policy)
    # without components nothing is pinned, and an identity-only check stays one
    assert _verify(message, _policy(source=SourceRule(), builders=())).provenance is None


def test_a_message_signature_counts_only_over_a_digest_the_policy_accepts() -> None:
    """``digests`` decides what counts: a subject with no accepted digest matches nothing, and a message signature
    over the artefact's sha256 passed a policy that accepts only sha512 (or blake3) all the same."""
    sha256 = bytes.fromhex(f.digest_set(f.ARTIFACT)["sha256"])
    message = _bundle(
        {"publicKey": {"hint": "dev"}},
        messageSignature={"messageDigest": {"algorithm": "SHA2_256", "digest": f.b64(sha256)},
                          "signature": f.b64(f.sign(DEV, f.ARTIFACT))},
    )
    identity_only = _policy(source=SourceRule(), builders=())
    assert _verify(message, identity_only).provenance is None  # an identity-only check, as before
    for accepted in (("sha512",), ("blake3",)):
        _reject(PolicyViolation, "which the policy's digests do not accept", message,
                replace(identity_only, provenance=replace(identity_only.provenance, digests=accepted)))
