"""The gate's neighbouring attack classes, proven by properties (issue 17, finding 4).

Each test generates the variants of one class and states, for every variant, the one outcome the
design allows; evidence is signed for real (``tests.verify._factory``: keys and signatures made with
``cryptography`` directly) and judged by :func:`verify.gate.decide`, in-process.

* a VSA or an approval replayed across artefacts, provenances, stages, ``resourceUri``s and signers;
* an approval quorum met by one person's two keys, or by one approval counted twice;
* an envelope with one good signature among bad or unlisted ones;
* a statement with many subjects, one of which is the artefact;
* digests in upper case, under aliases (``SHA256``, ``sha-256``), truncated or padded;
* times written with other offsets, a leap second, and the edges of an identity's window.

The policy file's classes (YAML 1.1 booleans, anchors and merge keys, duplicate keys) are at the end.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.verify import _factory as f
from verify.digests import DigestSet
from verify.errors import DigestMismatch, MalformedEvidence, PolicyError, PolicyViolation, SignatureInvalid
from verify.formats.evidence import Evidence, load_evidence
from verify.formats.statement import APPROVAL_V1, VSA_V1
from verify.gate import Gate, decide
from verify.policy import ApprovalRequirement, Policy, ProvenanceRules, StageRule, TrustedBuilder, VsaRequirement
from verify.policy_file import load_policy
from verify.trust import Identity, load_public_key

KEYS = {name: f.private_key("p256", i) for i, name in enumerate(("dev", "stg", "prd", "alice-1", "alice-2", "bob",
                                                                  "carol", "other"))}
BUILT = datetime(2024, 5, 1, 10, 5, 30, tzinfo=UTC)  # the factory provenance's finishedOn
X = f.ARTIFACT
Y = b"another artefact\n"
PROPS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _identity(name: str, *keys: str, **window: datetime) -> Identity:
    return Identity(name=name, keys=tuple(load_public_key(f.public_pem(KEYS[k]), name=f"{k}.pem") for k in keys),
                    **window)


IDENTITIES = {i.name: i for i in (_identity("dev-build", "dev"), _identity("stg-verifier", "stg"),
                                  _identity("prd-verifier", "prd"), _identity("alice", "alice-1", "alice-2"),
                                  _identity("bob", "bob"), _identity("carol", "carol"))}
STAGES = {"stg": StageRule(name="stg", verifier="stg-verifier"),
          "prd": StageRule(name="prd", verifier="prd-verifier")}


def _policy(**identities: Identity) -> Policy:
    return Policy(identities={**IDENTITIES, **identities},
                  provenance=ProvenanceRules(signed_by=("dev-build",), builders=(TrustedBuilder(f.BUILDER),)),
                  stages=STAGES)


def _line(statement: dict[str, Any], *signers: str, extra: Sequence[dict[str, Any]] = ()) -> bytes:
    return f.json_line(f.envelope_dict(f.payload_of(statement), [KEYS[s] for s in signers], extra_sigs=extra))


def _one(line: bytes, source: str) -> Evidence:
    [item] = load_evidence(line, source=source)
    assert isinstance(item, Evidence)
    return item


def _provenance(artefact: bytes, source: str, *, commit: str = f.COMMIT) -> Evidence:
    statement = f.statement([("dist/app.tar.gz", f.digest_set(artefact))], predicate=f.provenance_v1(commit=commit))
    return _one(_line(statement, "dev"), source)


PX = _provenance(X, "px.intoto.jsonl")
PX2 = _provenance(X, "px2.intoto.jsonl", commit="1" * 40)  # the same bytes rebuilt from another commit
PY = _provenance(Y, "py.intoto.jsonl")


def _decide(stage: StageRule, evidence: Sequence[Evidence], *, artefact: bytes = X, policy: Policy | None = None,
            at: datetime | None = None) -> Any:
    policy = policy or _policy()
    gate = Gate(policy=Policy(identities=policy.identities, provenance=policy.provenance,
                              stages={**policy.stages, stage.name: stage}), stage=stage)
    return decide(gate, list(evidence), artifact="dist/app.tar.gz", digests=DigestSet(f.digest_set(artefact)),
                  run=gate.policy.trust_run(at=at), provenance=PX.digest if artefact == X else None)


# --- a VSA replayed ---------------------------------------------------------------------------------------------

REQUIRE_STG = StageRule(name="prd", verifier="prd-verifier",
                        require_vsa=(VsaRequirement(stage="stg", signed_by=("stg-verifier",)),))


@PROPS
@given(artefact=st.sampled_from(["X", "Y"]), bound=st.sampled_from(["PX", "PX2", "PY"]),
       resource=st.sampled_from(["attest:stage:stg", "attest:stage:prd", "attest:stage:dev", "attest:stage:stg ",
                                 "attest:stage:STG", "arn:aws:codepipeline:eu-west-1:1:stg"]),
       signer=st.sampled_from(["stg", "prd", "dev", "other"]), result=st.sampled_from(["PASSED", "FAILED"]),
       hours=st.sampled_from([-1, 0, 1]))
def test_a_vsa_counts_only_for_its_artefact_provenance_stage_signer_and_after_the_build(
        artefact: str, bound: str, resource: str, signer: str, result: str, hours: int) -> None:
    provenance = {"PX": PX, "PX2": PX2, "PY": PY}[bound]
    verified = BUILT + timedelta(hours=hours)
    statement = f.statement([("dist/app.tar.gz", f.digest_set(X if artefact == "X" else Y))],
                            predicate_type=VSA_V1, predicate=f.vsa(
                                resourceUri=resource, verificationResult=result,
                                timeVerified=verified.strftime("%Y-%m-%dT%H:%M:%SZ"),
                                inputAttestations=[{"uri": provenance.source,
                                                    "digest": {"sha256": provenance.digest}}]))
    vsa = _one(_line(statement, signer), "vsa.intoto.jsonl")
    counts = (artefact == "X" and bound == "PX" and resource == "attest:stage:stg" and signer == "stg"
              and result == "PASSED" and hours >= 0)
    if counts:
        passed = _decide(REQUIRE_STG, [PX, vsa])
        assert [s.source for s in passed.stages] == ["vsa.intoto.jsonl"]
    else:
        with pytest.raises(PolicyViolation, match="requires stage 'stg' to have verified this artefact"):
            _decide(REQUIRE_STG, [PX, vsa])


# --- approvals: replayed, and a quorum of people, not of keys or files ------------------------------------------

QUORUM = StageRule(name="prd", verifier="prd-verifier",
                   require_approvals=ApprovalRequirement(count=2, signed_by=("alice", "bob", "carol")))
PEOPLE = {"alice-1": "alice", "alice-2": "alice", "bob": "bob", "carol": "carol", "other": None, "dev": None}


@dataclass(frozen=True)
class Approval:
    signers: tuple[str, ...]
    artefact: str
    stage: str
    hours: int

    def line(self) -> bytes:
        statement = f.statement([("dist/app.tar.gz", f.digest_set(X if self.artefact == "X" else Y))],
                                predicate_type=APPROVAL_V1, predicate={
                                    "stage": self.stage, "approver": "someone", "reason": "reviewed",
                                    "timeApproved": (BUILT + timedelta(hours=self.hours)).strftime(
                                        "%Y-%m-%dT%H:%M:%SZ")})
        return _line(statement, *self.signers)

    def people(self) -> set[str]:
        if self.artefact != "X" or self.stage != "prd" or self.hours < 0:
            return set()
        return {p for s in self.signers if (p := PEOPLE[s]) is not None}


approvals = st.builds(Approval, signers=st.lists(st.sampled_from(list(PEOPLE)), min_size=1, max_size=3,
                                                 unique=True).map(tuple),
                      artefact=st.sampled_from(["X", "X", "Y"]), stage=st.sampled_from(["prd", "prd", "stg"]),
                      hours=st.sampled_from([-1, 0, 2]))


@PROPS
@given(drawn=st.lists(approvals, min_size=1, max_size=4), copies=st.integers(1, 3))
def test_approvals_count_distinct_people_for_this_artefact_and_stage_after_the_build(
        drawn: list[Approval], copies: int) -> None:
    evidence = [_one(a.line(), f"approval-{i}-{c}.intoto.jsonl") for i, a in enumerate(drawn) for c in range(copies)]
    people = set().union(*(a.people() for a in drawn))
    if len(people) >= 2:
        passed = _decide(QUORUM, [PX, *evidence])
        assert {s.signer for s in passed.stages} <= people and len(passed.stages) >= 2
    else:
        with pytest.raises(PolicyViolation, match="requires 2 approval"):
            _decide(QUORUM, [PX, *evidence])


def test_one_persons_two_keys_are_one_approval() -> None:
    both = Approval(signers=("alice-1", "alice-2"), artefact="X", stage="prd", hours=1)
    apart = [Approval(signers=(k,), artefact="X", stage="prd", hours=1) for k in ("alice-1", "alice-2")]
    for evidence in ([both], apart, [both, *apart]):
        with pytest.raises(PolicyViolation, match=r"found 1 \(alice\)"):
            _decide(QUORUM, [PX, *(_one(a.line(), f"a{i}.intoto.jsonl") for i, a in enumerate(evidence))])


# --- an envelope with one good signature among bad or unlisted ones ---------------------------------------------

def _bad_signatures(payload: bytes, kinds: Sequence[str]) -> list[dict[str, Any]]:
    other = f.pae(f.INTOTO, payload + b" ")
    made = {
        "garbage-claiming-dev": lambda: {"keyid": f.fingerprint(KEYS["dev"]), "sig": f.b64(b"\x30\x06garbage")},
        "other-key": lambda: {"keyid": f.fingerprint(KEYS["other"]),
                              "sig": f.b64(f.sign(KEYS["other"], f.pae(f.INTOTO, payload)))},
        "other-key-claiming-dev": lambda: {"keyid": f.fingerprint(KEYS["dev"]),
                                           "sig": f.b64(f.sign(KEYS["other"], f.pae(f.INTOTO, payload)))},
        "dev-over-other-bytes": lambda: {"keyid": f.fingerprint(KEYS["dev"]), "sig": f.b64(f.sign(KEYS["dev"], other))},
        "no-keyid": lambda: {"keyid": "", "sig": f.b64(f.sign(KEYS["other"], f.pae(f.INTOTO, payload)))},
        "stg-key": lambda: {"keyid": f.fingerprint(KEYS["stg"]),
                            "sig": f.b64(f.sign(KEYS["stg"], f.pae(f.INTOTO, payload)))},
    }
    return [made[k]() for k in kinds]


@PROPS
@given(kinds=st.lists(st.sampled_from(["garbage-claiming-dev", "other-key", "other-key-claiming-dev",
                                       "dev-over-other-bytes", "no-keyid", "stg-key"]), max_size=12),
       good=st.booleans(), seed=st.integers(0, 2**16))
def test_an_envelope_passes_only_by_a_good_trusted_signature_whatever_else_it_carries(
        kinds: list[str], good: bool, seed: int) -> None:
    payload = f.payload_of(f.statement())
    signatures = _bad_signatures(payload, kinds)
    if good:
        signatures += f.envelope_dict(payload, [KEYS["dev"]])["signatures"]
    random.Random(seed).shuffle(signatures)
    line = f.json_line({"payloadType": f.INTOTO, "payload": f.b64(payload), "signatures": signatures})
    if not signatures:
        return  # an envelope with no signature at all is malformed (tested in tests/verify)
    item = _one(line, "p.intoto.jsonl")
    gate = Gate(policy=_policy(), stage=None)
    if good:
        passed = decide(gate, [item], artifact="a", digests=DigestSet(f.digest_set(X)), run=gate.policy.trust_run())
        assert passed.verdict.signer == "dev-build"
    else:
        with pytest.raises(SignatureInvalid):
            decide(gate, [item], artifact="a", digests=DigestSet(f.digest_set(X)), run=gate.policy.trust_run())


# --- many subjects, one of them the artefact ---------------------------------------------------------------------

@PROPS
@given(others=st.lists(st.binary(min_size=1, max_size=8), max_size=20), at=st.integers(0, 20), present=st.booleans(),
       half=st.sampled_from(["none", "sha256", "blake3"]))
def test_a_statement_with_many_subjects_matches_only_the_artefacts_own(
        others: list[bytes], at: int, present: bool, half: str) -> None:
    subjects = [(f"other-{i}", f.digest_set(data)) for i, data in enumerate(others) if data != X]
    if half != "none":  # a decoy: one of the artefact's digests right, the other wrong
        decoy = f.digest_set(X)
        decoy["blake3" if half == "sha256" else "sha256"] = "0" * 64
        subjects.insert(0, ("decoy", decoy))
    if present:
        subjects.insert(min(at, len(subjects)), ("the-artefact", f.digest_set(X)))
    if not subjects:
        return
    item = _one(_line(f.statement(subjects), "dev"), "p.intoto.jsonl")
    gate = Gate(policy=_policy(), stage=None)
    if present:
        passed = decide(gate, [item], artifact="a", digests=DigestSet(f.digest_set(X)), run=gate.policy.trust_run())
        assert passed.verdict.subject.name == "the-artefact"
    else:
        with pytest.raises(DigestMismatch):
            decide(gate, [item], artifact="a", digests=DigestSet(f.digest_set(X)), run=gate.policy.trust_run())


# --- digests spelt another way ----------------------------------------------------------------------------------

def _spellings(algorithm: str, hexdigest: str) -> list[tuple[str, str]]:
    names = [algorithm.upper(), algorithm.capitalize(), algorithm.replace("sha", "sha-"),
             algorithm.replace("sha", "SHA-"), algorithm.replace("sha", "sha_"), f" {algorithm}", f"{algorithm} "]
    values = [hexdigest.upper(), hexdigest[:-1], hexdigest[:32], "0" + hexdigest, hexdigest + "0", f" {hexdigest}",
              f"{hexdigest}\n", hexdigest[:-1] + hexdigest[-1].upper() if hexdigest[-1].isalpha() else hexdigest[:-2],
              f"sha256:{hexdigest}"]
    return ([(n, hexdigest) for n in names if n != algorithm] + [(algorithm, v) for v in values])


SPELLINGS = [(computed, spelt) for computed in (("sha256", "blake3"), ("sha256",), ("blake3",))
             for algorithm in ("sha256", "blake3") for spelt in _spellings(algorithm, f.digest_set(X)[algorithm])]


@pytest.mark.parametrize(("computed", "spelt"), SPELLINGS)
def test_a_digest_spelt_another_way_names_nothing(computed: tuple[str, ...], spelt: tuple[str, str]) -> None:
    # refused as another digest, or as a statement that is not well formed (a known algorithm's value must be
    # lower-case hex): never a match
    name, value = spelt
    item = _one(_line(f.statement([("a", {name: value})]), "dev"), "p.intoto.jsonl")
    gate = Gate(policy=_policy(), stage=None)
    with pytest.raises((DigestMismatch, MalformedEvidence)):
        decide(gate, [item], artifact="a", digests=DigestSet(f.digest_set(X, computed)), run=gate.policy.trust_run())


@pytest.mark.parametrize("spelt", [s for _, s in SPELLINGS if s[0] in ("sha256", "blake3")][:10])
def test_a_misspelt_digest_beside_the_right_one_of_the_same_algorithm_refuses(spelt: tuple[str, str]) -> None:
    # {"sha256": right, "blake3": WRONG SPELLING}: blake3 was computed, so it must agree
    name, value = spelt
    right = f.digest_set(X)
    other = "blake3" if name == "sha256" else "sha256"
    item = _one(_line(f.statement([("a", {other: right[other], name: value})]), "dev"), "p.intoto.jsonl")
    gate = Gate(policy=_policy(), stage=None)
    with pytest.raises((DigestMismatch, MalformedEvidence)):
        decide(gate, [item], artifact="a", digests=DigestSet(right), run=gate.policy.trust_run())


# --- times: offsets, a leap second, the edges of a window ---------------------------------------------------------

@PROPS
@given(minutes=st.integers(-14 * 60, 14 * 60), delta=st.integers(-3, 3))
def test_a_vsa_time_in_any_offset_is_the_same_instant(minutes: int, delta: int) -> None:
    instant = BUILT + timedelta(seconds=delta)
    zone = timezone(timedelta(minutes=minutes))
    written = instant.astimezone(zone).isoformat()
    statement = f.statement(predicate_type=VSA_V1, predicate=f.vsa(
        timeVerified=written, inputAttestations=[{"uri": PX.source, "digest": {"sha256": PX.digest}}]))
    vsa = _one(_line(statement, "stg"), "vsa.intoto.jsonl")
    if delta >= 0:
        _decide(REQUIRE_STG, [PX, vsa])
    else:
        with pytest.raises(PolicyViolation, match="is older than the provenance"):
            _decide(REQUIRE_STG, [PX, vsa])


@pytest.mark.parametrize("written", ["2024-05-01T23:59:60Z", "2024-05-01T10:05:30",
                                     "2024-05-01T10:05:30+2400", "2024-05-01T10:05:30+24:00",
                                     "2024-02-30T10:05:30Z", "1714557930", "2024-05-01T10:05:30.Z"])
def test_a_vsa_time_that_is_no_instant_makes_it_count_for_nothing(written: str) -> None:
    statement = f.statement(predicate_type=VSA_V1, predicate=f.vsa(
        timeVerified=written, inputAttestations=[{"uri": PX.source, "digest": {"sha256": PX.digest}}]))
    vsa = _one(_line(statement, "stg"), "vsa.intoto.jsonl")
    with pytest.raises(PolicyViolation, match="unreadable"):
        _decide(REQUIRE_STG, [PX, vsa])


@PROPS
@given(offset=st.sampled_from([timedelta(microseconds=-1), timedelta(0), timedelta(microseconds=1),
                               timedelta(seconds=1), timedelta(days=-1)]),
       edge=st.sampled_from(["not_before", "not_after"]))
def test_an_identity_counts_exactly_inside_its_window_edges_included(offset: timedelta, edge: str) -> None:
    at = datetime(2026, 6, 1, tzinfo=UTC)
    dev = _identity("dev-build", "dev", **{edge: at})
    policy = _policy(**{"dev-build": dev})
    gate = Gate(policy=policy, stage=None)
    moment = at + offset
    inside = moment >= at if edge == "not_before" else moment <= at
    run = policy.trust_run(at=moment)
    if inside:
        decide(gate, [PX], artifact="a", digests=DigestSet(f.digest_set(X)), run=run)
    else:
        with pytest.raises(SignatureInvalid):
            decide(gate, [PX], artifact="a", digests=DigestSet(f.digest_set(X)), run=run)


@PROPS
@given(offset=st.timedeltas(min_value=timedelta(days=-3650), max_value=timedelta(days=3650)))
def test_a_revoked_key_counts_at_no_time(offset: timedelta) -> None:
    dev = IDENTITIES["dev-build"]
    policy = _policy(**{"dev-build": Identity(name="dev-build", keys=(),
                                              revoked=frozenset(k.fingerprint for k in dev.keys))})
    gate = Gate(policy=policy, stage=None)
    with pytest.raises(SignatureInvalid):
        decide(gate, [PX], artifact="a", digests=DigestSet(f.digest_set(X)),
               run=policy.trust_run(at=datetime(2026, 6, 1, tzinfo=UTC) + offset))


# --- the policy file: YAML 1.1 booleans, anchors and merge keys, duplicate keys -----------------------------------

BASE = """\
version: 1
identities:
  dev: {keys: [dev.pem]}
  gha: {sigstore: {issuer: "https://token.actions.githubusercontent.com", identity: "x", DENY}}
provenance:
  signed-by: [dev]
  allow-dirty: DIRTY
"""


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("yaml")
    (folder / "dev.pem").write_bytes(f.public_pem(KEYS["dev"]))
    return folder


def _load(folder: Path, text: str) -> Policy:
    (folder / "policy.yaml").write_text(text)
    return load_policy(folder / "policy.yaml")


YAML11 = ["yes", "no", "on", "off", "Yes", "NO", "On", "OFF", "y", "n", "Y", "N"]


@pytest.mark.parametrize("word", YAML11)
@pytest.mark.parametrize("where", ["DIRTY", "DENY"])
def test_a_yaml_11_boolean_is_refused_never_guessed(folder: Path, word: str, where: str) -> None:
    text = BASE.replace("DIRTY", word if where == "DIRTY" else "false").replace(
        "DENY", f"deny-self-hosted-runners: {word}" if where == "DENY" else "deny-self-hosted-runners: true")
    with pytest.raises(PolicyError) as raised:
        _load(folder, text)
    assert ":7" in str(raised.value) or ":4" in str(raised.value)
    assert "true or false" in str(raised.value) or "boolean only in YAML 1.1" in str(raised.value)


@pytest.mark.parametrize("word", ["true", "True", "TRUE", "false", "False", "FALSE"])
def test_yaml_12_booleans_are_read(folder: Path, word: str) -> None:
    policy = _load(folder, BASE.replace("DIRTY", word).replace("DENY", "deny-self-hosted-runners: false"))
    assert policy.provenance.allow_dirty is (word.lower() == "true")


def test_an_alias_loads_as_its_value_written_out(folder: Path) -> None:
    plain = BASE.replace("DIRTY", "false").replace("DENY", "deny-self-hosted-runners: true")
    aliased = plain.replace("  dev: {keys: [dev.pem]}", "  dev: &k {keys: [dev.pem]}\n  dev2: *k").replace(
        "signed-by: [dev]", "signed-by: [dev, dev2]")
    written = plain.replace("  dev: {keys: [dev.pem]}", "  dev: {keys: [dev.pem]}\n  dev2: {keys: [dev.pem]}").replace(
        "signed-by: [dev]", "signed-by: [dev, dev2]")
    a, w = _load(folder, aliased), _load(folder, written)
    assert (a.identities.keys(), a.provenance) == (w.identities.keys(), w.provenance)


def test_a_merge_key_is_refused(folder: Path) -> None:
    text = BASE.replace("DIRTY", "false").replace("DENY", "deny-self-hosted-runners: true").replace(
        "  dev: {keys: [dev.pem]}", "  dev: &k {keys: [dev.pem]}\n  dev2: {<<: *k, keys: [dev.pem]}")
    with pytest.raises(PolicyError, match="merge keys"):
        _load(folder, text)


@PROPS
@given(line=st.integers(0, 20))
def test_a_key_written_twice_at_any_depth_is_refused(folder: Path, line: int) -> None:
    text = BASE.replace("DIRTY", "false").replace("DENY", "deny-self-hosted-runners: true").replace(
        "{keys: [dev.pem]}", "\n    keys: [dev.pem]")
    lines = text.splitlines()
    keyed = [i for i, row in enumerate(lines) if ":" in row and not row.strip().startswith("-")]
    row = lines[keyed[line % len(keyed)]]
    lines.insert(keyed[line % len(keyed)], row if not row.rstrip().endswith(":") else row + " {}")
    with pytest.raises(PolicyError, match="appears twice"):
        _load(folder, "\n".join(lines) + "\n")
