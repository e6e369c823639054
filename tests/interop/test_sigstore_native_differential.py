"""attest's native Sigstore verifier against sigstore-python 4.5.1 (and sigstore-js where that cannot read a bundle).

The corpus: every bundle-verify case of the sigstore-conformance suite but the three verified with a
``key.pub`` (key-signed: they never reach the keyless verifier), every real keyless bundle in
tests/assets/sigstore, and hypothesis-made mutations of them (a flipped bit in a base64 field, a log
entry from another bundle, a changed integrated time or log index, a dropped field). For each, the
verdict of :func:`verify.sigstore._native.verify_bundle` (through attest's reader and the hook
:func:`verify.sigstore.identity.make_bundle_verifier`, as ``attest verify`` runs it) must equal sigstore-python's
(``Verifier.verify_dsse`` / ``verify_artifact``, the identity checked with attest's own
:func:`verify.sigstore.identity.mismatch` so that both decide on the same pinned identity), except where
:data:`EXCEPTIONS` says why they differ. Each exception is recognised by what the bundle is and by
the reason attest gives, never by the case's name alone, and the corpus's exceptions are pinned
(:data:`CORPUS_EXCEPTIONS`) so that a new disagreement fails a test.

``intoto`` 0.0.2 bundles, which sigstore-python cannot verify, are compared with sigstore-js
(``@sigstore/verify``, run by tests/interop/js/verify_bundle.js) when Node.js and the package are
here without the network; else those tests skip, saying why.
"""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import CONFORMANCE, ROOT, missing_tool
from verify.budget import VerificationBudget
from verify.digests import DigestSet
from verify.errors import ConfigError, EvidenceRejected
from verify.formats.certificate import read_claims
from verify.formats.evidence import Evidence, load_evidence
from verify.sigstore.identity import mismatch
from verify.sigstore.verifier import make_bundle_verifier
from verify.trust import Identity, SigstoreIdentity

ASSETS = ROOT / "tests" / "assets" / "sigstore"
SUITE = CONFORMANCE / "sigstore-conformance" / "test" / "assets" / "bundle-verify"
PRODUCTION_ROOT = CONFORMANCE / "trusted_root.production.json"
BEACON = ("https://github.com/sigstore-conformance/extremely-dangerous-public-oidc-beacon/"
          ".github/workflows/extremely-dangerous-oidc-beacon.yml@refs/heads/main")
GITHUB = "https://token.actions.githubusercontent.com"

#: Why attest's verdict may differ from sigstore-python's, and in which direction.
EXCEPTIONS = {
    "intoto-0.0.2": "a Rekor intoto 0.0.2 entry (npm provenance, slsa-github-generator's delegator): sigstore-python "
                    "4.5.1 verifies no such entry and refuses; attest verifies it as sigstore-js does (compared with "
                    "sigstore-js below)",
    "tsa-end-inclusive": "an RFC 3161 timestamp at exactly its authority's validFor.end: a trusted root's TimeRange "
                         "is closed (protobuf-specs), sigstore-python treats the end as exclusive and refuses",
    "expired-trust": "a log, CT log or CA key of the trusted root whose validFor does not cover the signing time: "
                     "sigstore-python does not compare, attest refuses (issue 11, item 5)",
    "v0.1-promise-only": "a v0.1 bundle whose log entry has an inclusion promise and no inclusion proof: the "
                         "protobuf-specs and sigstore-js accept it, sigstore-python requires a proof in every bundle",
    "unverified-timestamp": "an RFC 3161 timestamp that does not verify, beside an inclusion promise that gives a "
                            "time: sigstore-python drops the timestamp, attest (as sigstore-js) refuses the bundle",
    "unknown-log": "a log entry whose logId names no transparency log of the trusted root: sigstore-python then "
                   "tries every log key it has (a checkpoint signature or SET by any of them passes), attest "
                   "(as sigstore-js) requires the log the entry names",
}


@dataclass(frozen=True)
class Case:
    name: str
    bundle: bytes
    root: Path
    sha256: str
    identity: SigstoreIdentity

    @property
    def document(self) -> dict[str, Any]:
        """The bundle's JSON, a fresh copy ({} for the case whose JSON is broken)."""
        try:
            found: dict[str, Any] = json.loads(self.bundle)
        except ValueError:
            return {}
        return found


def _conformance_cases() -> list[Case]:
    cases = []
    for folder in sorted(p for p in SUITE.iterdir() if p.is_dir()):
        if (folder / "key.pub").is_file():
            continue  # key-signed: find_signers checks it against the pinned key, never the keyless verifier
        artefact = folder / "artifact" if (folder / "artifact").is_file() else SUITE / "a.txt"
        root = folder / "trusted_root.json" if (folder / "trusted_root.json").is_file() else PRODUCTION_ROOT
        identity = (folder / "identity").read_text().strip() if (folder / "identity").is_file() else BEACON
        issuer = (folder / "issuer").read_text().strip() if (folder / "issuer").is_file() else GITHUB
        cases.append(Case(name=folder.name, bundle=(folder / "bundle.sigstore.json").read_bytes(), root=root,
                          sha256=hashlib.sha256(artefact.read_bytes()).hexdigest(),
                          identity=SigstoreIdentity(issuer=issuer, identity=identity)))
    return cases


def _real_case(bundle: str, sha256: str) -> Case:
    """A real bundle, pinned to the identity its certificate names (read here, unverified: both verifiers check)."""
    from cryptography import x509

    data = (ASSETS / bundle).read_bytes()
    material = json.loads(data)["verificationMaterial"]
    raw = material["certificate"]["rawBytes"] if "certificate" in material \
        else material["x509CertificateChain"]["certificates"][0]["rawBytes"]
    claims = read_claims(x509.load_der_x509_certificate(base64.b64decode(raw)))
    assert claims.issuer is not None
    return Case(name=bundle, bundle=data, root=PRODUCTION_ROOT, sha256=sha256,
                identity=SigstoreIdentity(issuer=claims.issuer, identity=claims.sans[0]))


def _sha256(artefact: str) -> str:
    return hashlib.sha256((ASSETS / artefact).read_bytes()).hexdigest()


CASES = [
    *_conformance_cases(),
    _real_case("gh-reusable-workflow.sigstore.json", _sha256("gh-reusable-workflow-artifact.whl")),
    _real_case("gh-custom-issuer.sigstore.json", _sha256("gh-custom-issuer-artifact")),
    _real_case("pypi-attestations-0.0.19.publish.sigstore.json", _sha256("pypi_attestations-0.0.19.tar.gz")),
    _real_case("npm-gundam-visor-1.0.1.provenance.sigstore.json", _sha256("npm-gundam-visor-1.0.1.tgz")),
    _real_case("slsa-delegator-v2.1.0.sigstore.json", _sha256("slsa-delegator-v2.1.0-artifact")),
    _real_case("sigstore-js-v0.1-message.sigstore.json", _sha256("sigstore-js-v0.1-message-artifact.txt")),
    _real_case("slsa-github-generator-v2.1.0.intoto.jsonl",
               "376e7e01348585b6e6643bc6663146b9d525d9b41228bf180eaeb4d4a3706caa"),
]
BY_NAME = {case.name: case for case in CASES}

#: The corpus cases whose verdicts differ, and why (each recognised by :func:`exception_for` too).
CORPUS_EXCEPTIONS = {
    "intoto-with-custom-trust-root": "intoto-0.0.2",
    "npm-gundam-visor-1.0.1.provenance.sigstore.json": "intoto-0.0.2",
    "slsa-delegator-v2.1.0.sigstore.json": "intoto-0.0.2",
    "trust-root-tsa-validity-end-inclusive": "tsa-end-inclusive",
    "sigstore-js-v0.1-message.sigstore.json": "v0.1-promise-only",
}


# --- the two verdicts -------------------------------------------------------------------------------

@dataclass(frozen=True)
class Verdict:
    passed: bool
    reason: str


def attest_verdict(bundle: bytes, case: Case) -> Verdict:
    """attest's: its reader, then the keyless hook find_signers calls."""
    try:
        [item] = load_evidence(bundle, source="bundle")
        if not isinstance(item, Evidence):
            return Verdict(False, str(item))
        identity = Identity(name="pinned", sigstore=(case.identity,))
        hook = make_bundle_verifier(trusted_root=case.root)
        hook(item, [identity], message=None if case.sha256 is None else DigestSet({"sha256": case.sha256}),
             budget=VerificationBudget())
    except (EvidenceRejected, ConfigError, ValueError) as e:
        return Verdict(False, str(e))
    return Verdict(True, "")


class _SameIdentity:
    """A sigstore-python policy deciding as attest does: :func:`verify.sigstore.identity.mismatch` against the pinned
    one."""

    def __init__(self, pinned: SigstoreIdentity) -> None:
        self.pinned = pinned

    def verify(self, cert: Any) -> None:
        from sigstore.errors import VerificationError

        try:
            reason = mismatch(read_claims(cert), self.pinned)
        except ValueError as e:
            raise VerificationError(str(e)) from e
        if reason is not None:
            raise VerificationError(reason)


def sigstore_python_verdict(bundle: bytes, case: Case) -> Verdict:
    """sigstore-python 4.5.1's, offline, against the same trusted root; any exception is a refusal."""
    import logging

    from sigstore.hashes import Hashed
    from sigstore.models import Bundle, TrustedRoot
    from sigstore.verify import Verifier
    from sigstore_models.common.v1 import HashAlgorithm

    logging.getLogger("sigstore").setLevel(logging.CRITICAL)
    try:
        parsed = Bundle.from_json(bundle)
        verifier = Verifier(trusted_root=TrustedRoot.from_file(str(case.root)))
        policy = _SameIdentity(case.identity)
        if parsed._dsse_envelope is not None:  # sigstore-python's own way of telling
            verifier.verify_dsse(parsed, policy)
        else:
            verifier.verify_artifact(Hashed(algorithm=HashAlgorithm.SHA2_256, digest=bytes.fromhex(case.sha256)),
                                     parsed, policy)
    except Exception as e:  # whatever it raises is its refusal
        return Verdict(False, f"{type(e).__name__}: {e}")
    return Verdict(True, "")


def exception_for(document: Any, ours: Verdict, theirs: Verdict, case: Case) -> str | None:
    """The :data:`EXCEPTIONS` key that explains why the verdicts differ for ``document``, or None."""
    if ours.passed == theirs.passed:
        return None
    material = document.get("verificationMaterial") if isinstance(document, dict) else None
    entries = material.get("tlogEntries") if isinstance(material, dict) else None
    entry: dict[str, Any] = entries[0] if isinstance(entries, list) and len(entries) == 1 \
        and isinstance(entries[0], dict) else {}
    kind: dict[str, Any] = entry["kindVersion"] if isinstance(entry.get("kindVersion"), dict) else {}
    if ours.passed:  # attest accepts what sigstore-python refuses
        if (kind.get("kind"), kind.get("version")) == ("intoto", "0.0.2"):
            return "intoto-0.0.2"
        if document.get("mediaType", "").endswith("version=0.1") and "inclusionProof" not in entry:
            return "v0.1-promise-only"
        if "validity period" in theirs.reason or "not in CA time range" in theirs.reason or (
                "not enough sources of verified time" in theirs.reason and _at_tsa_end(document, case)):
            return "tsa-end-inclusive"
        return None
    # attest refuses what sigstore-python accepts
    if "trusted only" in ours.reason or "outside the validity of that log's key" in ours.reason \
            or "trusts only" in ours.reason:
        return "expired-trust"
    if "signed timestamp" in ours.reason and "inclusionPromise" in entry:
        return "unverified-timestamp"
    if "from a transparency log the trusted root does not name" in ours.reason:
        return "unknown-log"
    return None


def _at_tsa_end(document: Any, case: Case) -> bool:
    """True if the bundle's one RFC 3161 timestamp is at exactly the end of a TSA's validity in the case's root."""
    from rfc3161_client import decode_timestamp_response

    from verify.formats.encoding import parse_time

    try:
        stamps = document["verificationMaterial"]["timestampVerificationData"]["rfc3161Timestamps"]
        when = decode_timestamp_response(base64.b64decode(stamps[0]["signedTimestamp"])).tst_info.gen_time
        ends = [parse_time(tsa["validFor"]["end"], what="end")
                for tsa in json.loads(case.root.read_bytes()).get("timestampAuthorities", [])
                if tsa.get("validFor", {}).get("end")]
    except (KeyError, IndexError, TypeError, ValueError):
        return False
    return when.replace(tzinfo=ends[0].tzinfo) in ends if ends else False


# --- the corpus -------------------------------------------------------------------------------------

def test_the_corpus_is_every_keyless_conformance_case_and_real_bundle() -> None:
    managed = {p.name for p in SUITE.iterdir() if (p / "key.pub").is_file()}
    assert len(CASES) == 70 - len(managed) + 7 and len(managed) == 3
    assert set(CORPUS_EXCEPTIONS.values()) <= set(EXCEPTIONS)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_attest_and_sigstore_python_agree_on_every_bundle(case: Case) -> None:
    ours, theirs = attest_verdict(case.bundle, case), sigstore_python_verdict(case.bundle, case)
    why = exception_for(case.document, ours, theirs, case)
    assert why == CORPUS_EXCEPTIONS.get(case.name), (ours, theirs)
    if why is None:
        assert ours.passed == theirs.passed
        if case.name.endswith("_fail"):
            assert not ours.passed
    else:  # every documented difference here is attest verifying a good bundle sigstore-python cannot
        assert ours.passed and not theirs.passed and not case.name.endswith("_fail"), (ours, theirs)


# --- mutations --------------------------------------------------------------------------------------

_BASE64_FIELDS = {"rawBytes", "signature", "payload", "sig", "keyId", "canonicalizedBody", "signedEntryTimestamp",
                  "rootHash", "signedTimestamp", "digest"}

Path_ = tuple[str | int, ...]


def _paths(value: Any, path: Path_ = ()) -> list[Path_]:
    """Every path to a value in ``value`` (dict keys and list indexes), the root excluded."""
    found: list[Path_] = []
    items: list[tuple[str | int, Any]] = list(value.items()) if isinstance(value, dict) \
        else list(enumerate(value)) if isinstance(value, list) else []
    for key, child in items:
        found.append((*path, key))
        found.extend(_paths(child, (*path, key)))
    return found


def _get(document: Any, path: Path_) -> Any:
    for key in path:
        document = document[key]
    return document


def _base64_paths(document: Any) -> list[Path_]:
    return [p for p in _paths(document) if isinstance(_get(document, p), str)
            and (p[-1] in _BASE64_FIELDS or (len(p) > 1 and p[-2] == "hashes"))]


@st.composite
def mutations(draw: st.DrawFn) -> tuple[Case, bytes, str]:
    """(case, mutated bundle bytes, what was done)."""
    case = draw(st.sampled_from([c for c in CASES if not c.name.endswith("_fail")]))
    document = case.document
    how = draw(st.sampled_from(["flip", "swap-entry", "time", "index", "drop"]))
    entry = document["verificationMaterial"]["tlogEntries"][0]
    if how == "flip":
        path = draw(st.sampled_from(_base64_paths(document)))
        parent, raw = _get(document, path[:-1]), base64.b64decode(_get(document, path))
        if not raw:
            return case, case.bundle, "nothing to flip"
        at, bit = draw(st.integers(0, len(raw) - 1)), draw(st.integers(0, 7))
        flipped = bytearray(raw)
        flipped[at] ^= 1 << bit
        parent[path[-1]] = base64.b64encode(bytes(flipped)).decode()
        what = f"flip bit {bit} of byte {at} of {'.'.join(map(str, path))}"
    elif how == "swap-entry":
        other = draw(st.sampled_from([c for c in CASES if c.name != case.name
                                      and c.document.get("verificationMaterial", {}).get("tlogEntries")]))
        document["verificationMaterial"]["tlogEntries"] = other.document["verificationMaterial"]["tlogEntries"]
        what = f"log entry of {other.name}"
    elif how == "time":
        if "integratedTime" not in entry:
            return case, case.bundle, "no integrated time"
        delta = draw(st.sampled_from([-86400 * 400, -3600, -1, 1, 3600, 86400 * 400]))
        entry["integratedTime"] = str(max(0, int(entry["integratedTime"]) + delta))
        what = f"integratedTime {delta:+d}"
    elif how == "index":
        delta = draw(st.sampled_from([-1, 1, 1 << 32]))
        entry["logIndex"] = str(int(entry["logIndex"]) + delta)
        what = f"logIndex {delta:+d}"
    else:
        path = draw(st.sampled_from(_paths(document)))
        parent = _get(document, path[:-1])
        del parent[path[-1]]
        what = f"drop {'.'.join(map(str, path))}"
    return case, json.dumps(document).encode(), what


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True)
@given(mutation=mutations())
def test_attest_and_sigstore_python_agree_on_mutated_bundles(mutation: tuple[Case, bytes, str]) -> None:
    case, bundle, what = mutation
    ours, theirs = attest_verdict(bundle, case), sigstore_python_verdict(bundle, case)
    if ours.passed == theirs.passed:
        return
    why = exception_for(json.loads(bundle), ours, theirs, case)
    assert why is not None, f"{case.name}, {what}: attest {ours}, sigstore-python {theirs}"


@pytest.mark.parametrize(("name", "change", "expected"), [
    ("gh-reusable-workflow.sigstore.json",
     lambda d: d["verificationMaterial"]["tlogEntries"][0]["logId"].update(keyId=base64.b64encode(
         base64.b64decode(d["verificationMaterial"]["tlogEntries"][0]["logId"]["keyId"])[:4] + bytes(28)).decode()),
     None),  # a Rekor v1 entry: the SET signs the log id, so both refuse
    ("rekor2-happy-path",
     lambda d: d["verificationMaterial"]["tlogEntries"][0]["logId"].update(keyId=base64.b64encode(
         base64.b64decode(d["verificationMaterial"]["tlogEntries"][0]["logId"]["keyId"])[:4] + bytes(28)).decode()),
     "unknown-log"),  # Rekor v2: no SET; sigstore-python finds the key by trying them all
], ids=["rekor1-log-id", "rekor2-log-id"])
def test_a_changed_log_id(name: str, change: Callable[[dict[str, Any]], None], expected: str | None) -> None:
    case = BY_NAME[name]
    document = case.document
    change(document)
    bundle = json.dumps(document).encode()
    ours, theirs = attest_verdict(bundle, case), sigstore_python_verdict(bundle, case)
    assert not ours.passed
    assert exception_for(document, ours, theirs, case) == expected, (ours, theirs)


# --- intoto 0.0.2: sigstore-js ----------------------------------------------------------------------

INTOTO = [c for c in CASES if c.name in {n for n, why in CORPUS_EXCEPTIONS.items() if why == "intoto-0.0.2"}]
SCRIPT = Path(__file__).parent / "js" / "verify_bundle.js"


@pytest.fixture(scope="module")
def sigstore_js_modules(request: pytest.FixtureRequest) -> Path:
    """A directory whose node_modules holds @sigstore/verify, found without the network.

    The copy npm itself ships (npm signs and verifies provenance with it), else the version
    tests/interop/test_sigstore_js.py installs into pytest's cache. One order, whatever ran before: the
    two versions disagree on one mutation (sigstore-js 3.1.0 accepts an intoto bundle whose inclusion
    promise is gone, so that nothing signs its time; newer @sigstore/verify, sigstore-python and attest
    refuse it), and the verdict compared must not depend on which test ran first.
    """
    from tests.interop.test_sigstore_js import SIGSTORE_JS_VERSION

    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        missing_tool("Node.js and npm are not installed (Debian: apt-get install -y nodejs npm), so sigstore-js "
                     "cannot be asked about intoto 0.0.2 bundles")
    candidates: list[Path] = []
    done = subprocess.run([npm, "root", "-g"], capture_output=True, text=True, timeout=60, check=False)
    if done.returncode == 0 and done.stdout.strip():
        candidates.append(Path(done.stdout.strip()) / "npm")
    cache = getattr(request.config, "cache", None)
    if cache is not None:
        candidates.append(cache.mkdir(f"sigstore-js-{SIGSTORE_JS_VERSION}"))
    for directory in candidates:
        if all((directory / "node_modules" / "@sigstore" / p / "package.json").is_file()
               for p in ("verify", "bundle", "protobuf-specs")):
            return directory
    missing_tool("@sigstore/verify is neither in pytest's cache nor shipped with npm here, and the tests do not "
                "reach the network to install it")


def sigstore_js_verdict(modules: Path, bundle: bytes, case: Case, tmp_path: Path) -> Verdict:
    path = tmp_path / "bundle.json"
    path.write_bytes(bundle)
    assert case.identity.identity is not None
    done = subprocess.run(["node", str(SCRIPT), str(modules), str(path), "keyless", str(case.root),
                           case.identity.identity, case.identity.issuer], capture_output=True, text=True,
                          timeout=60, check=False)
    if done.returncode == 0:
        return Verdict(True, "")
    return Verdict(False, done.stdout.strip() or done.stderr.strip().splitlines()[0])


_JS_MUTATIONS: dict[str, Callable[[dict[str, Any]], None]] = {
    "as-is": lambda d: None,
    "no inclusion proof": lambda d: d["verificationMaterial"]["tlogEntries"][0].pop("inclusionProof"),
    "no inclusion promise": lambda d: d["verificationMaterial"]["tlogEntries"][0].pop("inclusionPromise"),
    "another signature": lambda d: d["dsseEnvelope"]["signatures"][0].update(
        sig=base64.b64encode(base64.b64decode(d["dsseEnvelope"]["signatures"][0]["sig"])[:-1] + b"\0").decode()),
    "another payload": lambda d: d["dsseEnvelope"].update(
        payload=base64.b64encode(base64.b64decode(d["dsseEnvelope"]["payload"]) + b" ").decode()),
    "SET of another time": lambda d: d["verificationMaterial"]["tlogEntries"][0].update(
        integratedTime=str(int(d["verificationMaterial"]["tlogEntries"][0]["integratedTime"]) + 1)),
}


@pytest.mark.parametrize("mutation", list(_JS_MUTATIONS))
@pytest.mark.parametrize("case", INTOTO, ids=[c.name for c in INTOTO])
def test_attest_and_sigstore_js_agree_on_intoto_bundles(sigstore_js_modules: Path, case: Case, mutation: str,
                                                        tmp_path: Path) -> None:
    document = case.document
    _JS_MUTATIONS[mutation](document)
    bundle = json.dumps(document).encode()
    ours, theirs = attest_verdict(bundle, case), sigstore_js_verdict(sigstore_js_modules, bundle, case, tmp_path)
    if mutation == "no inclusion proof" and theirs.passed:
        # a v0.2 bundle needs an inclusion proof (protobuf-specs, sigstore-python); sigstore-js settles for
        # the promise: attest is the stricter here
        assert not ours.passed and "no inclusion proof" in ours.reason
        return
    if mutation == "no inclusion promise" and theirs.passed and not ours.passed:
        # without a signed timestamp either, sigstore-js 3.1.0 trusts the integrated time nothing signs;
        # newer @sigstore/verify and sigstore-python refuse a bundle without a signed time, and so does attest
        assert "neither an inclusion promise nor a signed timestamp" in ours.reason
        return
    assert ours.passed == theirs.passed, (ours, theirs)
    timestamped = bool(case.document["verificationMaterial"].get("timestampVerificationData", {})
                       .get("rfc3161Timestamps"))
    assert ours.passed == (mutation == "as-is" or (mutation == "no inclusion promise" and timestamped))
