"""Issue 23, class 3: cost is bounded inside one piece of evidence, not only per file.

Every element a bundle, envelope or statement can repeat is counted before any of it is read (over
its limit: :class:`LimitExceeded`, even when the elements themselves are junk that would fail
otherwise), a signed note carries one signature per key, and every signature verification a keyless
bundle costs is charged to the run's budget, one by one. The worst case within every limit is
measured (time and peak memory) and must stay small: docs/limits.md gives the figures.
"""

from __future__ import annotations

import base64
import contextlib
import copy
import functools
import hashlib
import json
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import verify.sigstore._native as native
from tests.conftest import CONFORMANCE
from tests.hardening._helpers import envelope_line, pub
from tests.verify import _factory as f
from verify import limits
from verify.budget import VerificationBudget
from verify.digests import DigestSet
from verify.errors import EvidenceRejected, LimitExceeded, MalformedEvidence, SignatureInvalid
from verify.formats.evidence import Evidence, load_evidence
from verify.formats.release import read_release
from verify.formats.statement import parse_statement, read_provenance, read_vsa
from verify.signers import TrustRun, find_signers
from verify.sigstore.trusted_root import load_trusted_root
from verify.trust import Identity, SigstoreIdentity

SUITE = CONFORMANCE / "sigstore-conformance" / "test" / "assets" / "bundle-verify"
REKOR2 = SUITE / "rekor2-happy-path"  # a checkpoint signed by an Ed25519 log key, an RFC 3161 timestamp
GITHUB = "https://token.actions.githubusercontent.com"
BEACON = ("https://github.com/sigstore-conformance/extremely-dangerous-public-oidc-beacon/"
          ".github/workflows/extremely-dangerous-oidc-beacon.yml@refs/heads/main")
A_TXT = hashlib.sha256((SUITE / "a.txt").read_bytes()).hexdigest()
ROOT = load_trusted_root(REKOR2 / "trusted_root.json")
PINNED = SigstoreIdentity(issuer=GITHUB, identity=BEACON)


def bundle() -> dict[str, Any]:
    found: dict[str, Any] = json.loads((REKOR2 / "bundle.sigstore.json").read_bytes())
    return found


def entry(document: dict[str, Any]) -> dict[str, Any]:
    found: dict[str, Any] = document["verificationMaterial"]["tlogEntries"][0]
    return found


def load(document: dict[str, Any]) -> Evidence:
    [item] = load_evidence(json.dumps(document).encode(), source="bundle")
    if isinstance(item, EvidenceRejected):
        raise item
    assert isinstance(item, Evidence)
    return item


def verify(document: dict[str, Any], budget: VerificationBudget | None = None) -> VerificationBudget:
    """Verify ``document`` against its own trusted root; the budget it spent."""
    budget = VerificationBudget() if budget is None else budget
    native.verify_bundle(load(document), [(Identity(name="beacon", sigstore=(PINNED,)), PINNED)], ROOT,
                         message=DigestSet({"sha256": A_TXT}), budget=budget)
    return budget


# --- the checkpoint: one signature per key, at most MAX_NOTE_SIGNATURES lines -----------------------

def with_signature_lines(document: dict[str, Any], lines: list[str]) -> dict[str, Any]:
    changed = copy.deepcopy(document)
    checkpoint = entry(changed)["inclusionProof"]["checkpoint"]
    body, _signatures = checkpoint["envelope"].split("\n\n")
    checkpoint["envelope"] = body + "\n\n" + "".join(line + "\n" for line in lines)
    return changed


def log_line(document: dict[str, Any]) -> str:
    [line] = entry(document)["inclusionProof"]["checkpoint"]["envelope"].split("\n\n")[1].splitlines()
    return str(line)


def witness(number: int) -> str:
    """A cosignature line from a key that is not the log's (a 4-byte hint no log has, 64 bytes of junk)."""
    return f"\u2014 witness{number}.example " + base64.b64encode(bytes([0xEE, 0, number >> 8, number & 0xFF])
                                                              + bytes(64)).decode()


@pytest.mark.parametrize("copies", [2, 3, 10, limits.MAX_NOTE_SIGNATURES])
def test_the_logs_signature_twice_is_malformed_and_verified_once_at_most(copies: int) -> None:
    """The issue's example: a checkpoint repeating its one valid log-signature line (it used to cost one
    verification per copy, and pass)."""
    document = bundle()
    repeated = with_signature_lines(document, [log_line(document)] * copies)
    budget = VerificationBudget()
    with pytest.raises(MalformedEvidence, match="carries the log's signature more than once"):
        verify(repeated, budget)
    assert budget.spent <= verify(bundle()).spent  # never more than the one good bundle costs


@pytest.mark.parametrize("lines", [limits.MAX_NOTE_SIGNATURES + 1, 1000, 100_000])
def test_more_signature_lines_than_the_limit_are_refused_before_any_is_read(lines: int) -> None:
    document = bundle()
    # junk that would be malformed if read: the count decides first
    over = with_signature_lines(document, [log_line(document)] + ["\u2014 x %%%"] * (lines - 1))
    budget = VerificationBudget()
    with pytest.raises(LimitExceeded, match=f"has {lines} signature lines; at most {limits.MAX_NOTE_SIGNATURES}"):
        verify(over, budget)
    assert budget.spent <= verify(bundle()).spent


def test_witness_cosignatures_cost_no_verification() -> None:
    document = bundle()
    alone = verify(document).spent
    witnessed = with_signature_lines(document, [witness(i) for i in range(limits.MAX_NOTE_SIGNATURES - 1)]
                                     + [log_line(document)])
    assert verify(witnessed).spent == alone


# --- every verification is charged ----------------------------------------------------------------

def test_every_signature_verification_of_a_keyless_bundle_is_charged() -> None:
    """A bundle costs what it verifies (timestamp with its chain, certificate path, SCT, checkpoint,
    signature); with one verification fewer left, it fails with the budget's sentence, not a pass."""
    cost = verify(bundle()).spent
    assert 5 <= cost <= 12, cost
    for total in range(cost):
        with pytest.raises(SignatureInvalid, match="gave up, this verification already tried"):
            verify(bundle(), VerificationBudget(total=total))


# --- every repeated element of a bundle is counted before it is read -------------------------------

BUNDLE_ELEMENTS: dict[str, tuple[int, Callable[[dict[str, Any], int], None]]] = {
    "tlogEntries": (limits.MAX_LOG_ENTRIES, lambda b, n: b["verificationMaterial"].update(
        tlogEntries=[{"canonicalizedBody": "%%"}] * n)),
    "x509CertificateChain": (limits.MAX_CHAIN_CERTIFICATES, lambda b, n: b["verificationMaterial"].update(
        x509CertificateChain={"certificates": [{"rawBytes": "%%"}] * n}) or b["verificationMaterial"].pop(
        "certificate")),
    "rfc3161Timestamps": (limits.MAX_TIMESTAMPS, lambda b, n: b["verificationMaterial"].update(
        timestampVerificationData={"rfc3161Timestamps": [{"signedTimestamp": "%%"}] * n})),
    "inclusionProof.hashes": (limits.MAX_PROOF_HASHES, lambda b, n: entry(b)["inclusionProof"].update(
        hashes=["%%"] * n)),
    "dsseEnvelope.signatures": (limits.MAX_SIGNATURES, lambda b, n: b.update(
        dsseEnvelope={"payloadType": "x", "payload": "", "signatures": [{"sig": "%%"}] * n})),
}


@pytest.mark.parametrize("element", sorted(BUNDLE_ELEMENTS))
@pytest.mark.parametrize("over", [1, 1000])
def test_a_bundle_element_over_its_limit_is_refused_before_it_is_read(element: str, over: int) -> None:
    limit, fill = BUNDLE_ELEMENTS[element]
    document = bundle()
    document.pop("messageSignature", None) if element == "dsseEnvelope.signatures" else None
    fill(document, limit + over)
    expected = MalformedEvidence if element == "dsseEnvelope.signatures" else LimitExceeded
    with pytest.raises(expected, match=f"{limit + over} .*at most {limit}"):
        load(document)


# --- every repeated element of a statement ---------------------------------------------------------

PROVENANCE = "https://slsa.dev/provenance/v1"
DIGEST = {"sha256": "ab" * 32}


def statement(predicate_type: str, predicate: dict[str, Any], subjects: int = 1) -> bytes:
    return json.dumps({"_type": "https://in-toto.io/Statement/v1", "predicateType": predicate_type,
                       "subject": [{"name": f"s{i}", "digest": DIGEST} for i in range(subjects)],
                       "predicate": predicate}).encode()


def provenance(dependencies: list[Any]) -> bytes:
    return statement(PROVENANCE, {"buildDefinition": {"buildType": "t", "externalParameters": {},
                                                      "resolvedDependencies": dependencies},
                                  "runDetails": {"builder": {"id": "b"}}})


def release(components: list[Any]) -> bytes:
    return statement("https://attest.dev/release/v1", {"name": "r", "timeCreated": "2026-01-01T00:00:00Z",
                                                       "components": components})


def vsa(inputs: list[Any], levels: list[str]) -> bytes:
    return statement("https://slsa.dev/verification_summary/v1", {
        "verifier": {"id": "v"}, "timeVerified": "2026-01-01T00:00:00Z", "resourceUri": "r",
        "verificationResult": "PASSED", "inputAttestations": inputs, "verifiedLevels": levels})


@functools.cache
@functools.cache
def _subjects(count: int) -> bytes:
    """A statement of ``count`` subjects, made once: the reading is measured, not the making."""
    return statement(PROVENANCE, {}, subjects=count)


JUNK = "not an object"  # what each element is, so that reading one would fail differently
STATEMENT_ELEMENTS: dict[str, tuple[int, Callable[[int], Any]]] = {
    "subjects": (limits.MAX_SUBJECTS, lambda n: parse_statement(_subjects(n))),
    "subject digests": (limits.MAX_DIGESTS, lambda n: parse_statement(json.dumps({
        "_type": "https://in-toto.io/Statement/v1", "predicateType": PROVENANCE, "predicate": {},
        "subject": [{"digest": {f"alg{i}": 1 for i in range(n)}}]}).encode())),
    "resolvedDependencies": (limits.MAX_DEPENDENCIES,
                             lambda n: read_provenance(parse_statement(provenance([JUNK] * n)))),
    "dependency digests": (limits.MAX_DIGESTS, lambda n: read_provenance(parse_statement(provenance(
        [{"uri": "u", "digest": {f"alg{i}": 1 for i in range(n)}}])))),
    "release components": (limits.MAX_DEPENDENCIES, lambda n: read_release(parse_statement(release([JUNK] * n)))),
    "release artefacts": (limits.MAX_DEPENDENCIES, lambda n: read_release(parse_statement(release([{
        "name": "c", "provenance": {"digest": DIGEST}, "artifacts": [JUNK] * n}])))),
    "VSA inputAttestations": (limits.MAX_DEPENDENCIES, lambda n: read_vsa(parse_statement(vsa([JUNK] * n, [])))),
    "VSA verifiedLevels": (limits.MAX_DIGESTS, lambda n: read_vsa(parse_statement(vsa([], ["x"] * n)))),
}


@pytest.mark.parametrize("element", sorted(STATEMENT_ELEMENTS))
def test_a_statement_element_over_its_limit_is_refused_before_it_is_read(element: str) -> None:
    limit, read = STATEMENT_ELEMENTS[element]
    with pytest.raises(LimitExceeded, match=f"has {limit + 1} .*at most {limit} are read"):
        read(limit + 1)
    try:  # at the limit, the count lets it be read (and the junk, if any, is what is refused)
        read(limit)
    except LimitExceeded as e:
        pytest.fail(f"{element}: {limit} are refused: {e}")
    except EvidenceRejected:
        pass


# --- the worst case within every limit, measured ----------------------------------------------------

def _measure(work: Callable[[], object]) -> tuple[float, float]:
    """(seconds, peak MiB) of ``work()``; its result or rejection is not the point. On Linux, in one run: the
    growth of the process's resident set over its high-water mark, reset first (``/proc/self/clear_refs``);
    elsewhere a second run traces Python's allocations (tracemalloc slows that run three- or fourfold)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")  # VmHWM := VmRSS
        before = _status_kib("VmRSS")
    except OSError:
        before = None
    started = time.perf_counter()
    with contextlib.suppress(EvidenceRejected):
        work()
    seconds = time.perf_counter() - started
    if before is not None:
        return seconds, (_status_kib("VmHWM") - before) / 1024
    tracemalloc.start()
    with contextlib.suppress(EvidenceRejected):
        work()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return seconds, peak / 2**20


def _status_kib(field: str) -> int:
    """A ``kB`` field of /proc/self/status."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise OSError(f"no {field} in /proc/self/status")


def _worst_checkpoint() -> object:
    document = bundle()
    lines = [witness(i) for i in range(limits.MAX_NOTE_SIGNATURES - 1)] + [log_line(document)]
    return verify(with_signature_lines(document, lines))


def _varied(data: str, number: int) -> str:
    """Base64 ``data`` with its last byte changed to ``number``: still readable, no longer what was signed."""
    raw = bytearray(base64.b64decode(data))
    raw[-1] = number & 0xFF
    return base64.b64encode(bytes(raw)).decode()


def _real_elements(element: str, document: dict[str, Any], count: int) -> None:
    """``count`` readable copies of the real ``element`` of ``document`` (the costliest way to fill it)."""
    material = document["verificationMaterial"]
    if element == "tlogEntries":
        material["tlogEntries"] = [copy.deepcopy(entry(document)) for _ in range(count)]
    elif element == "x509CertificateChain":
        leaf = material.pop("certificate")
        material["x509CertificateChain"] = {"certificates": [leaf] * count}
    elif element == "rfc3161Timestamps":
        [stamp] = material["timestampVerificationData"]["rfc3161Timestamps"]
        material["timestampVerificationData"]["rfc3161Timestamps"] = [
            {"signedTimestamp": _varied(stamp["signedTimestamp"], i)} for i in range(count)]
    elif element == "inclusionProof.hashes":
        proof = entry(document)["inclusionProof"]
        proof["hashes"] = [proof["hashes"][i % len(proof["hashes"])] for i in range(count)]
    else:
        signature = document.pop("messageSignature")["signature"]
        document["dsseEnvelope"] = {"payloadType": "application/vnd.in-toto+json", "payload": "e30=",
                                    "signatures": [{"sig": _varied(signature, i)} for i in range(count)]}


def _worst_bundle_element(element: str) -> Callable[[], object]:
    limit, _ = BUNDLE_ELEMENTS[element]

    def work() -> object:
        document = bundle()
        _real_elements(element, document, limit)
        return verify(document)
    return work


def _worst_statement(element: str) -> Callable[[], object]:
    limit, read = WORST_STATEMENTS[element]
    return lambda: read(limit)


def _source(i: int) -> dict[str, Any]:
    return {"uri": f"git+https://github.com/acme/repo{i}@refs/heads/main", "digest": {"gitCommit": "ab" * 20}}


def _component(i: int, artefacts: int = 1) -> dict[str, Any]:
    return {"name": f"c{i}", "provenance": {"digest": DIGEST}, "source": "github.com/acme/app", "commit": "ab" * 20,
            "artifacts": [{"name": f"a{j}", "digest": DIGEST} for j in range(artefacts)]}


#: each element filled to its limit with readable, valid elements (the costliest case)
WORST_STATEMENTS: dict[str, tuple[int, Callable[[int], Any]]] = {
    "subjects": STATEMENT_ELEMENTS["subjects"],
    "subject digests": (limits.MAX_DIGESTS, lambda n: parse_statement(json.dumps({
        "_type": "https://in-toto.io/Statement/v1", "predicateType": PROVENANCE, "predicate": {},
        "subject": [{"digest": {f"alg{i}": "ab" * 32 for i in range(n)}}]}).encode())),
    "resolvedDependencies": (limits.MAX_DEPENDENCIES, lambda n: read_provenance(parse_statement(provenance(
        [_source(i) for i in range(n)])))),
    "dependency digests": (limits.MAX_DIGESTS, lambda n: read_provenance(parse_statement(provenance(
        [{"uri": "u", "digest": {f"alg{i}": "ab" * 32 for i in range(n)}}])))),
    "release components": (limits.MAX_DEPENDENCIES, lambda n: read_release(parse_statement(release(
        [_component(i) for i in range(n)])))),
    "release artefacts": (limits.MAX_DEPENDENCIES, lambda n: read_release(parse_statement(release(
        [_component(0, artefacts=n)])))),
    "VSA inputAttestations": (limits.MAX_DEPENDENCIES, lambda n: read_vsa(parse_statement(vsa(
        [_source(i) for i in range(n)], [])))),
    "VSA verifiedLevels": (limits.MAX_DIGESTS, lambda n: read_vsa(parse_statement(vsa(
        [], [f"SLSA_BUILD_LEVEL_{i}" for i in range(n)])))),
}


def _worst_envelope() -> object:
    """:data:`MAX_SIGNATURES` signatures by strangers, tried against pinned keys up to the per-envelope cap."""
    strangers = [f.private_key("p256", 100 + i) for i in range(limits.MAX_SIGNATURES)]
    pinned = tuple(pub(f.private_key("p256", 200 + i), f"k{i}.pem")
                   for i in range(limits.MAX_VERIFICATIONS_PER_ENVELOPE // limits.MAX_SIGNATURES))
    [item] = load_evidence(envelope_line(signers=strangers), source="e")
    assert isinstance(item, Evidence)
    return find_signers(item, [Identity(name="k", keys=pinned)], TrustRun())


WORST_CASES: dict[str, Callable[[], object]] = {
    "checkpoint signature lines": _worst_checkpoint,
    "envelope signatures x pinned keys": _worst_envelope,
    **{f"bundle {name}": _worst_bundle_element(name) for name in sorted(BUNDLE_ELEMENTS)},
    **{f"statement {name}": _worst_statement(name) for name in sorted(STATEMENT_ELEMENTS)},
}

#: generous ceilings, far above the measured figures in docs/limits.md and far below what an unbounded
#: element costs (100,000 checkpoint lines took 100,000 verifications, several seconds)
CEILING_SECONDS, CEILING_MIB = 5.0, 400.0


@pytest.mark.parametrize("case", sorted(WORST_CASES))
def test_the_worst_case_of_each_element_is_small(case: str, record_property: Callable[[str, object], None]) -> None:
    seconds, mib = _measure(WORST_CASES[case])
    record_property("seconds", round(seconds, 3))
    record_property("peak_mib", round(mib, 1))
    print(f"{case}: {seconds:.3f} s, {mib:.1f} MiB")
    assert seconds < CEILING_SECONDS and mib < CEILING_MIB, (case, seconds, mib)
