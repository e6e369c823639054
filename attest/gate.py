"""Running the gate from Python: read the artefact once, find the evidence, ask :mod:`verify.gate`, sign a VSA.

This is ``attest verify`` without click. A :class:`GateRequest` holds everything the command line
says, as given; :func:`run_gate` does the I/O around the decision, in this order:

  (1) the artefact: a local file, ``sha256:HEX`` or ``s3://bucket/key``; a file must be a regular file
  (2) the evidence named by ``--attestation``, through the hardened reader (never a second reader)
  (3) ONE read of the artefact, started at once, computing the cheapest digests the evidence allows
      (:func:`verify.matching.plan_algorithms`; a local file is opened once, its identity checked
      before and after: :func:`verify.digests.hash_file`)
  (4) meanwhile: the policy, the pinned keys, the flags, combined by :func:`verify.gate.prepare`;
      with ``layout``, the in-toto layout and its pinned keys (:func:`verify.layout.load_layout`);
      then the plan made final by the policy's ``digests`` and the store (:mod:`attest.hashing`)
  (5) the store's evidence for the artefact, by its blake3 (the store's index) or its sha256, within
      the run's file and byte budget
  (6) :func:`verify.gate.decide` (or :func:`verify.release_gate.decide_release`): every acceptance is decided there
  (6a) with ``layout``, after the provenance passed: :func:`verify.layout.verify_layout`, one more
       requirement (in-toto's verifylib over the links, the artefact a product of the last step)
  (7) after a pass only: ``--lockfile`` checks, then the stage's VSA signed and written (atomically)

Nothing here decides whether evidence is accepted.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from attest.hashing import ArtifactRead, Progress
from verify.request import GateRules  # the standard library only: the trust core is not loaded with it

if TYPE_CHECKING:
    from attest.oci_layout import Image
    from attest.registries.images import Registries
    from attest.registries.reference import ImageRef
    from attest.stores import FiledDeployment, Store
    from verify.digests import DigestSet
    from verify.formats.evidence import Evidence, EvidenceBudget
    from verify.gate import Gate, GateVerdict
    from verify.layout import LayoutVerdict, LoadedLayout
    from verify.policy import Policy
    from verify.release_gate import ReleaseVerdict
    from verify.sigstore.verifier import BundleVerifier
    from verify.trust import Identity, PublicKey

__all__ = ["EmitRequest", "GateOutcome", "GateRequest", "KeylessFlags", "newest_first", "run_gate", "running_in"]

GITHUB_ISSUER = "https://token.actions.githubusercontent.com"

@dataclass(frozen=True)
class KeylessFlags:
    """cosign's and gh's keyless identity flags, as given."""

    certificate_identity: str | None = None
    certificate_identity_regexp: str | None = None
    certificate_oidc_issuer: str | None = None
    github_repo: str | None = None
    signer_workflow: str | None = None
    source_ref: str | None = None
    deny_self_hosted_runners: bool = False


@dataclass(frozen=True)
class EmitRequest:
    """``--emit-vsa FILE --signer URI`` and the VSA's optional fields."""

    output: Path
    signer_uri: str
    insecure_key_permissions: bool = False
    resource_uri: str | None = None
    verifier_id: str | None = None


@dataclass(frozen=True)
class GateRequest:
    """Everything one gate run is asked, as given on the command line (or by a Python caller)."""

    artifact: str | None
    """A file, ``sha256:HEX`` or ``s3://bucket/key``; None with ``release``."""
    attestations: tuple[Path, ...] = ()
    store: str | None = None
    policy: Path | None = None
    keys: tuple[str, ...] = ()
    """Pinned public keys: PEM files, or ``awskms:KEY`` (fetched live, with a warning)."""
    keyless: KeylessFlags = field(default_factory=KeylessFlags)
    trusted_root: Path | None = None
    rules: GateRules = field(default_factory=GateRules)
    """The rule flags (--source-uri, --commit, --stage, --require-vsa, --verified-level, ...), as given: the
    object :func:`verify.gate.prepare` reads."""
    vsa_keys: tuple[Path, ...] = ()
    lockfiles: tuple[Path, ...] = ()
    emit: EmitRequest | None = None
    release: Path | None = None
    component: str | None = None
    """With ``release``: the one component about to be deployed (its gate, and the order of the path)."""
    kind: str = "deploy"
    """With ``release``: ``deploy``, or ``rollback`` (it ran there before) or ``hotfix`` (with the hotfix
    approvals of the manifest) instead of the stage's ordinary requirements."""
    same_commit: bool = False
    layout: Path | None = None
    """An in-toto layout the artefact's supply chain must also satisfy (besides the provenance)."""
    layout_keys: tuple[Path, ...] = ()
    """The pinned PEM public keys that must have signed ``layout``."""
    link_dir: Path | None = None
    """Where the layout's links are; None: the layout's directory."""
    registry_insecure: tuple[str, ...] = ()
    """Registry hosts reached over plain HTTP (an ``oci://`` ARTIFACT on a test registry)."""


@dataclass(frozen=True)
class GateOutcome:
    """A pass: the verdict, what was checked besides it, and what was written."""

    verdict: GateVerdict | ReleaseVerdict
    lockfiles: tuple[Path, ...] = ()
    emitted: tuple[str, ...] = ()
    stage: str | None = None
    layout: LayoutVerdict | None = None
    relied: tuple[Evidence, ...] = ()
    """The attestations the verdict rests on (the provenance, the stages' VSAs and approvals), as read."""


Prepared = tuple["Gate", "Policy", Any]
"""The gate (the policy narrowed by the flags), the policy it runs under, and the VSA signer if emitting."""


def run_gate(request: GateRequest, *, progress: Progress | None = None,
             warn: Callable[[str], None] | None = None, prepared: Prepared | None = None) -> GateOutcome:
    """Run the gate; return the outcome of a pass, or raise the reason for a refusal (see the module docstring).
    ``prepared``: what :func:`check_gate` made of the same flags (a caller running one gate twice reads the policy
    and the keys once)."""
    _check_shape(request)
    if request.release is not None:
        return _run_release(request, warn)
    image = None
    if _is_image(request.artifact):  # the flags and the policy first: a usage error asks nothing of the registry
        prepared = prepared or _prepare(request, warn)
        image = _resolve_image(request)
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="attest-hash") as pool:
        assert request.artifact is not None
        read = ArtifactRead(request.artifact, pool, progress=progress,
                            known=None if image is None else image.digests)
        try:
            return _run(request, read, warn, image, prepared)
        finally:
            read.close()  # do not wait for the rest of a large file when the answer is already known


def check_gate(request: GateRequest, warn: Callable[[str], None] | None = None) -> Prepared:
    """What :func:`run_gate` refuses before it reads any evidence (the flags, their shape, the policy and the keys),
    refused now: a caller that must ask a registry first (``attest promote``) asks it only of a request that may
    pass. What it made, for :func:`run_gate` of the same flags."""
    _check_shape(request)
    return _prepare(request, warn)


def _check_shape(request: GateRequest) -> None:
    from verify.errors import RequestError

    if (request.artifact is None) == (request.release is None):
        raise RequestError("give ARTIFACT to verify, or --release MANIFEST (not both)")
    if request.same_commit and request.release is None:
        raise RequestError("--same-commit goes with --release MANIFEST")
    if request.component is not None and request.release is None:
        raise RequestError("--component goes with --release MANIFEST (the component of the release to deploy)")
    if request.component is not None and request.emit is not None:
        raise RequestError("--emit-vsa signs for a whole release; leave out --component to sign its VSA")
    if request.kind != "deploy":
        if request.release is None or request.rules.stage is None:
            raise RequestError(f"--{request.kind} goes with --release MANIFEST and --stage ENV (the environment the "
                               "release goes back or out to)")
        if request.emit is not None:
            raise RequestError(f"--emit-vsa vouches that a stage's ordinary requirements held; a {request.kind} "
                               "passes without them, so it signs no VSA")
    if request.release is not None and not request.store:
        raise RequestError("--release needs --store STORE to find each component's provenance")
    image = _is_image(request.artifact)
    if request.release is None and not request.attestations and not request.store and not image:
        raise RequestError("no evidence: pass --attestation FILE or --store STORE")
    if request.registry_insecure and not image:
        raise RequestError("--registry-insecure is for an image ARTIFACT (oci://...)")
    if request.emit is not None and request.rules.stage is None:
        raise RequestError("--emit-vsa needs --stage (the stage being verified) and --signer (its key)")
    if request.layout is None and (request.layout_keys or request.link_dir is not None):
        raise RequestError("--layout-key and --link-dir go with --layout LAYOUT")
    if request.layout is not None and not request.layout_keys:
        raise RequestError("--layout needs --layout-key PEM: in-toto verifies the layout's own signature against a "
                           "pinned key")
    if request.layout is not None and request.release is not None:
        raise RequestError("--layout applies to one ARTIFACT, not to --release")
    given: list[tuple[str, str | None]] = [("--store", request.store), ("ARTIFACT", request.artifact)]
    if request.emit is not None:
        emit = request.emit
        given += [("--signer", emit.signer_uri), ("--resource-uri", emit.resource_uri),
                  ("--verifier-id", emit.verifier_id)]
    for name, value in given:
        if value is not None and not value.strip():
            raise RequestError(f"{name} is empty (an unset pipeline variable?); give a value")


def _run(request: GateRequest, read: ArtifactRead, warn: Callable[[str], None] | None,
         image: ResolvedImage | None, prepared: Prepared | None = None) -> GateOutcome:
    from verify.formats.evidence import Evidence, EvidenceBudget
    from verify.matching import plan_algorithms

    assert request.artifact is not None
    budget = EvidenceBudget()
    # (1) + (2): the evidence named on the command line, read before anything else is imported
    evidence = _read_files(request.attestations, budget)
    if image is not None:  # (1a) an image's: every attestation its registry holds for its digest
        evidence.extend(image.evidence(budget, alone=not request.attestations and not request.store))
    # (3) the one read, started at once on a provisional plan: the cheapest digests the evidence allows
    required = {"sha256"} if request.layout is not None else set()  # in-toto links name artefacts by sha256
    store = _open_store(request.store) if request.store else None
    if store is not None and not store.remote and not store.has_index():
        required.add("sha256")  # a store written before the blake3 index: found by sha256 alone
    read.start(plan_algorithms(evidence, require=required))
    # (4) meanwhile: the policy, the keys, the flags, the layout; then the plan they make final
    from verify.gate import decide

    gate, policy, signer = prepared or _prepare(request, warn)
    layout = _load_layout(request)
    if store is not None and store.remote and not store.has_index():  # asked while the read runs
        required.add("sha256")
    accepted = policy.provenance.digests
    read.ensure(plan_algorithms(evidence, accepted=accepted, require=required))
    # (5) the store's evidence, by the artefact's blake3 (through the store's index) or sha256
    if store is not None:
        evidence.extend(_read_store(store, read, budget, required=image is None or not evidence))
        read.ensure(plan_algorithms(evidence, accepted=accepted, require=required))
    run = policy.trust_run(bundles=_bundle_verifier(request.trusted_root))
    # (6) the decision
    verdict = decide(gate, evidence, artifact=image.name if image else request.artifact, digests=read.result,
                     run=run)
    # (6a) the in-toto layout: one more requirement, never instead of the provenance
    layout_verdict = _check_layout(layout, request, read.result(), policy, warn) if layout is not None else None
    # (7) after a pass only
    _check_lockfiles(request.lockfiles, verdict)
    emitted: tuple[str, ...] = ()
    if request.emit is not None and signer is not None:
        assert gate.emits is not None
        emitted = _emit(request, verdict, gate, signer, read, image)
    rests_on = set(verdict.accepted())
    relied = tuple(e for e in evidence if isinstance(e, Evidence) and (e.source, e.digest) in rests_on)
    return GateOutcome(verdict=verdict, lockfiles=request.lockfiles, emitted=emitted, stage=request.rules.stage,
                       layout=layout_verdict, relied=relied)


# --- (1a) an image in a registry -----------------------------------------------------------------------------

def _is_image(artifact: str | None) -> bool:
    from attest.registries.reference import is_oci  # the standard library only

    return artifact is not None and is_oci(artifact)


@dataclass(frozen=True)
class ResolvedImage:
    """``oci://...``, resolved once: the digest the verdict names, and the registry that holds its evidence."""

    ref: ImageRef
    """The image, at its digest."""
    image: Image
    """Its manifests, read from the registry and checked against their digests."""
    registries: Registries

    @property
    def name(self) -> str:
        return str(self.ref)

    @property
    def digests(self) -> dict[str, str]:
        """sha256 (the manifest digest) and blake3 of the manifest's bytes, as the provenance names them."""
        return dict(self.image.subjects(self.ref.name)[0][1])

    def evidence(self, budget: EvidenceBudget, *, alone: bool) -> list[Any]:
        """Every attestation the registry holds for the image; none, when it is the only source, is a refusal
        that says how attestations get there."""
        from attest.registries.images import find_evidence
        from verify.errors import EvidenceRejected
        from verify.formats.oci import cosign_tag, referrers_tag

        found: list[Any] = []
        for uri, data in find_evidence(self.registries, self.ref):
            found.extend(budget.take(uri, data))
        if not found and alone:
            digest = self.image.digest
            raise EvidenceRejected(
                f"{self.ref.name} holds no attestation for {digest} (no referrer, no {referrers_tag(digest)} index, "
                f"no cosign {cosign_tag(digest)}): an image copied with skopeo copy or registry replication leaves "
                "its attestations behind; copy it with attest promote, or pass --store or --attestation")
        return found

    def attach_vsa(self, line: bytes) -> str:
        from attest.registries.images import attach
        from verify.formats.oci import ARTIFACT_DSSE

        return attach(self.registries, self.ref, self.image.manifest.descriptor(), line, artifact_type=ARTIFACT_DSSE,
                      annotations={"in-toto.io/predicate-type": "https://slsa.dev/verification_summary/v1"}).uri


def _resolve_image(request: GateRequest) -> ResolvedImage:
    """The image ARTIFACT names, resolved once (a tag to its digest); every later step uses the digest."""
    from attest.registries.images import Registries, resolve
    from attest.registries.reference import parse_image

    assert request.artifact is not None
    registries = Registries(insecure=request.registry_insecure)
    ref = parse_image(request.artifact, what="ARTIFACT")
    image = resolve(registries, ref)
    return ResolvedImage(ref=ref.at(image.digest), image=image, registries=registries)


# --- (2) and (5): evidence, through the hardened reader ---------------------------------------------------

def _read_files(files: Sequence[Path], budget: EvidenceBudget) -> list[Evidence | Any]:
    from verify.formats.evidence import read_evidence_file

    found: list[Any] = []
    for file in files:
        found.extend(budget.take(str(file), read_evidence_file(file)))
    return found


def _open_store(uri: str) -> Store:
    from attest.stores import from_uri

    return from_uri(uri)


def _read_store(store: Store, read: ArtifactRead, budget: EvidenceBudget, *, required: bool = True) -> list[Any]:
    """The store's evidence for the artefact: through the blake3 index when only blake3 was computed (the index
    is a hint, taken only when the folder it names holds a statement pairing this blake3 with that sha256),
    else, or when the index has no such entry, by the sha256 (computed now if it was not)."""
    from verify.errors import EvidenceRejected

    digests = read.result()
    sha256 = digests.sha256
    blake3 = digests.digests.get("blake3")
    if sha256 is None and blake3 is not None:
        hinted = store.sha256_for(blake3)
        if hinted is not None:
            found = _take(store, hinted, budget)
            if _pairs(found, blake3=blake3, sha256=hinted):
                return found
        read.ensure(["sha256"])
        sha256 = read.result().sha256
    assert sha256 is not None
    found = _take(store, sha256, budget)
    if not found and required:  # an image's registry had evidence: an empty store adds none, and says nothing
        raise EvidenceRejected(f"store {store.uri} holds no attestation for sha256:{sha256}; was it built and "
                               "published with attest build --publish?")
    return found


def _take(store: Store, sha256: str, budget: EvidenceBudget) -> list[Any]:
    found: list[Any] = []
    for uri, data in store.attestations(sha256):
        found.extend(budget.take(uri, data))
    return found


def _pairs(found: Sequence[Any], *, blake3: str, sha256: str) -> bool:
    """Whether some statement in ``found`` (not yet verified: this only decides where to look) has a subject
    with both this blake3 and this sha256."""
    from verify.errors import EvidenceRejected
    from verify.formats.evidence import Evidence

    for item in found:
        if not isinstance(item, Evidence) or item.envelope is None:
            continue
        try:
            subjects = item.statement().subjects
        except EvidenceRejected:
            continue
        if any(s.digest.get("blake3") == blake3 and s.digest.get("sha256") == sha256 for s in subjects):
            return True
    return False


def _bundle_verifier(trusted_root: Path | None) -> BundleVerifier:
    """Sigstore support for keyless bundles: sigstore-python is imported, and the trusted root read, only
    when the first keyless bundle is checked."""
    from verify.sigstore.verifier import make_bundle_verifier

    if trusted_root is not None:  # unreadable or malformed is a configuration error now, keyless bundle or not
        from verify.sigstore.trusted_root import checked_trusted_root

        checked_trusted_root(trusted_root)
    return make_bundle_verifier(trusted_root=trusted_root)


# --- (4) the policy, keys and flags -----------------------------------------------------------------------------

def _prepare(request: GateRequest, warn: Callable[[str], None] | None) -> Prepared:
    """The gate (policy narrowed by flags), the policy it runs under, and the VSA signer (if emitting)."""
    from verify.gate import GateFlags, prepare
    from verify.policy_file import load_policy
    from verify.trust import load_public_key_file

    policy = load_policy(request.policy) if request.policy is not None else None
    signer = emit_key = None
    if request.emit is not None:
        from attest.signing import output_apart

        output_apart(request.emit.output, option="--emit-vsa", policy=policy, store=request.store)
        from attest.signers import from_uri
        from verify.trust import load_public_key

        signer = from_uri(request.emit.signer_uri, insecure_permissions=request.emit.insecure_key_permissions)
        emit_key = load_public_key(signer.public_key_pem(), name=request.emit.signer_uri)
    flags = GateFlags(
        rules=request.rules, keys=tuple(_load_key(k, warn) for k in request.keys),
        keyless=keyless_identity(request.keyless), vsa_keys=tuple(load_public_key_file(k) for k in request.vsa_keys),
        emit_key=emit_key, emit_vsa=request.emit is not None,
        emit_resource_uri=request.emit.resource_uri if request.emit is not None else None,
        lockfiles=len(request.lockfiles), release=request.release is not None)
    gate = prepare(policy, flags)
    return gate, gate.policy, signer


def _load_key(spec: str, warn: Callable[[str], None] | None) -> PublicKey:
    """A pinned PEM file, or (with a warning) a KMS key's public key fetched now."""
    from verify.errors import RequestError
    from verify.trust import load_public_key, load_public_key_file

    if not spec.strip():
        raise RequestError("--key is empty (an unset pipeline variable?); give a PEM file")
    if spec.startswith("awskms:"):
        from attest.signers.awskms import export_public_key_pem

        if warn is not None:
            warn(f"fetching the public key of {spec} from KMS; pin it with 'attest key export {spec} --out "
                 "FILE.pub.pem' to verify offline")
        return load_public_key(export_public_key_pem(spec), name=spec.removeprefix("awskms:"))
    return load_public_key_file(Path(spec))


def keyless_identity(flags: KeylessFlags) -> Identity | None:
    """The keyless identity the flags pin, named after the flag that names it; None if no flag does."""
    from verify.errors import RequestError, TrustConfigError
    from verify.sigstore.identity import sigstore_identity
    from verify.trust import Identity

    texts = {"--certificate-identity": flags.certificate_identity,
             "--certificate-identity-regexp": flags.certificate_identity_regexp,
             "--certificate-oidc-issuer": flags.certificate_oidc_issuer, "--github-repo": flags.github_repo,
             "--signer-workflow": flags.signer_workflow, "--source-ref": flags.source_ref}
    for flag, value in texts.items():
        if value is not None and not value.strip():
            raise RequestError(f"{flag} is empty (an unset pipeline variable?); give a value or leave the flag out")
    named = [(flag, texts[flag]) for flag in ("--certificate-identity", "--certificate-identity-regexp",
                                              "--signer-workflow", "--github-repo") if texts[flag]]
    narrowing = [flag for flag, given in (("--certificate-oidc-issuer", flags.certificate_oidc_issuer),
                                          ("--source-ref", flags.source_ref),
                                          ("--deny-self-hosted-runners", flags.deny_self_hosted_runners)) if given]
    if not named:
        if narrowing:
            raise RequestError(f"{narrowing[0]} needs an identity to narrow: pass --certificate-identity, "
                               "--certificate-identity-regexp, --github-repo or --signer-workflow")
        return None
    if (flags.certificate_identity or flags.certificate_identity_regexp) and not flags.certificate_oidc_issuer:
        raise RequestError(f"{named[0][0]} needs --certificate-oidc-issuer (e.g. {GITHUB_ISSUER})")
    try:
        pinned = sigstore_identity(issuer=flags.certificate_oidc_issuer, identity=flags.certificate_identity,
                                   identity_regexp=flags.certificate_identity_regexp, github_repo=flags.github_repo,
                                   source_ref=flags.source_ref, signer_workflow=flags.signer_workflow,
                                   deny_self_hosted_runners=flags.deny_self_hosted_runners)
    except TrustConfigError as e:
        raise RequestError(str(e)) from e
    except ValueError as e:  # a repository or workflow that is not a URL at all
        raise RequestError(f"{named[0][0]} {named[0][1]!r} is not OWNER/REPO[/...] ({e})") from e
    return Identity(name=named[0][0], sigstore=(pinned,))


# --- (4) and (6a): the in-toto layout --------------------------------------------------------------------------

def _load_layout(request: GateRequest) -> LoadedLayout | None:
    """The layout and its pinned keys, read before the decision: an unusable one is a configuration error."""
    if request.layout is None:
        return None
    from verify.layout import load_layout

    return load_layout(request.layout, request.layout_keys)


def _check_layout(layout: LoadedLayout, request: GateRequest, digests: DigestSet, policy: Policy,
                  warn: Callable[[str], None] | None) -> LayoutVerdict:
    from verify.layout import verify_layout

    link_dir = request.link_dir if request.link_dir is not None else layout.path.parent
    verdict = verify_layout(layout, link_dir=link_dir, digests=digests, accepted=policy.provenance.digests)
    for text in verdict.warnings:
        if warn is not None:
            warn(text)
    return verdict


# --- (7) after a pass ---------------------------------------------------------------------------------------

def _check_lockfiles(lockfiles: Sequence[Path], verdict: GateVerdict) -> None:
    """--lockfile: each local lockfile must be the one the provenance bound (naming the first changed package); a
    refusal lists the verdict's checks and this failed one (what --format json shows)."""
    from verify.errors import EvidenceRejected, PolicyViolation
    from verify.lockfile_check import check_lockfile
    from verify.verifier import Check

    for path in lockfiles:
        try:
            provenance = verdict.candidate.provenance
            if provenance is None:
                raise PolicyViolation(f"--lockfile {path} needs a provenance, and the evidence is a message signature")
            packages = None
            if path.is_file():
                from attest.lockfiles import parse_lockfile

                packages = parse_lockfile(path).packages
            check_lockfile(path, provenance, packages=packages)
        except EvidenceRejected as e:
            failed = Check("lockfile", False, {"path": str(path)}, str(e))
            raise PolicyViolation(str(e), checks=(*verdict.verdict.checks, failed)) from e


def _vsa_digests(verdict: GateVerdict, read: ArtifactRead, *, sha256: bool) -> dict[str, str]:
    """The digests a VSA names the artefact by: every strong one the provenance subject that matched lists, each
    computed now from the bytes (never the builder's word alone: prd may match the VSA on one this stage would not
    have checked), and sha256 if ``sha256`` (the VSA is published to a store, which files it by sha256).
    :class:`DigestMismatch` if one of them names other bytes: a provenance pairing this artefact's digest with
    another's gets no VSA. An artefact given by digest (nothing read) is named by that digest alone."""
    from verify.digests import KNOWN
    from verify.errors import DigestMismatch

    listed = {a: d for a, d in verdict.verdict.subject.digest.items() if a in KNOWN}
    read.ensure(sorted({*listed, *(("sha256",) if sha256 else ())}))
    computed = {a: d for a, d in read.result().digests.items() if a in KNOWN}
    for algorithm, digest in sorted(listed.items()):
        if algorithm in computed and computed[algorithm] != digest:
            raise DigestMismatch(f"the provenance that passed names this artefact's {algorithm} as {digest[:16]}..., "
                                 f"but its bytes hash to {computed[algorithm][:16]}...: it pairs these bytes with "
                                 "another's digest, so no VSA is signed for them")
    return computed


def _emit(request: GateRequest, verdict: GateVerdict, gate: Gate, signer: Any,
          read: ArtifactRead, image: ResolvedImage | None) -> tuple[str, ...]:
    """Sign the stage's VSA for what passed, write it atomically, publish it beside the artefact (and, for an
    image, attach it to the image in its registry)."""
    assert request.emit is not None
    digests = _vsa_digests(verdict, read, sha256=request.store is not None or image is not None)
    return _sign_vsa(request.emit, gate, signer, subjects=[(verdict.verdict.subject.name, digests)],
                     inputs=verdict.accepted(), level=verdict.level, store=request.store, publish_under=[digests],
                     attach=image.attach_vsa if image is not None else None)


def _sign_vsa(emit: EmitRequest, gate: Gate, signer: Any, *, subjects: Sequence[tuple[str, Mapping[str, str]]],
              inputs: Sequence[tuple[str, str]], level: int, store: str | None,
              publish_under: Sequence[Mapping[str, str]],
              attach: Callable[[bytes], str] | None = None) -> tuple[str, ...]:
    """The stage's VSA for ``subjects``, signed, written atomically, published under each of ``publish_under``."""
    import os
    from datetime import UTC, datetime
    from importlib.metadata import version

    from attest import DISTRIBUTION
    from attest.collect import detect_platform
    from attest.signing import sign_with, write_and_publish
    from attest.summaries import stage_uri, vsa_statement
    from verify.formats.levels import level_name

    assert gate.emits is not None
    platform = detect_platform(os.environ)
    (first, digests), *more = subjects
    document = vsa_statement(
        subject_name=first, digests=digests, more_subjects=more,
        verifier_id=emit.verifier_id or platform.builder_id or "attest:verifier:local",
        resource_uri=emit.resource_uri or stage_uri(gate.emits), policy_uri=gate.policy.uri,
        policy_digest=gate.policy.digest, inputs=inputs, levels=[level_name(level)],
        verified_at=datetime.now(UTC), attest_version=version(DISTRIBUTION))
    envelope = sign_with(document, signer)
    published = write_and_publish(envelope, output=emit.output, store=store, kind="vsa", artifacts=list(publish_under),
                                  attach=attach)  # the local file last: written only once all else is done
    return (str(emit.output), *published)


# --- releases ---------------------------------------------------------------------------------------------

def _run_release(request: GateRequest, warn: Callable[[str], None] | None) -> GateOutcome:
    from attest.stores import from_uri
    from verify.formats.evidence import EvidenceBudget
    from verify.path.gate import decide_path

    assert request.release is not None and request.store is not None
    budget = EvidenceBudget()
    manifest = _read_files([request.release], budget)
    gate, policy, signer = _prepare(request, warn)
    store = from_uri(request.store)

    @functools.cache  # the gate and the path's rules read one artefact's evidence once
    def lookup(sha256: str) -> list[Any]:
        return _take(store, sha256, budget)

    deployments = functools.cache(store.deployments)  # each environment's index listed once, when first asked
    run = policy.trust_run(bundles=_bundle_verifier(request.trusted_root))
    running_of = (running_in(store, deployments, policy, run, request.rules.stage, budget)
                  if request.rules.stage is not None else None)
    verdict = decide_path(gate, manifest, lookup=lookup, run=run, running_of=running_of,
                          indexed=indexed_in(store, deployments, budget),
                          component=request.component, same_commit=request.same_commit,
                          kind="rollback" if request.kind == "rollback" else "hotfix" if request.kind == "hotfix"
                          else "deploy")
    emitted: tuple[str, ...] = ()
    if request.emit is not None and signer is not None:
        emitted = _emit_release(request, verdict, gate, signer)
    return GateOutcome(verdict=verdict, stage=request.rules.stage, emitted=emitted)


def _emit_release(request: GateRequest, verdict: ReleaseVerdict, gate: Gate, signer: Any) -> tuple[str, ...]:
    """Sign the stage's VSA for the whole release: its subjects are the manifest and every component artefact,
    its inputs the manifest, each provenance and the stage evidence relied on; published under each artefact."""
    from attest.summaries import release_subject

    assert request.emit is not None and gate.emits is not None
    artefacts = [(c.artifact, c.digests) for c in verdict.components]
    subjects = [release_subject(verdict.name, verdict.manifest_sha256), *artefacts]
    return _sign_vsa(request.emit, gate, signer, subjects=subjects, inputs=verdict.accepted(), level=verdict.level,
                     store=request.store, publish_under=[d for _, d in artefacts])


def running_in(store: Store, deployments: Callable[[str], Sequence[FiledDeployment]], policy: Policy, run: Any,
               environment: str, budget: EvidenceBudget) -> Callable[[str], Any]:
    """What runs of a component in ``environment``: :func:`verify.path.running.running` over ``store``'s
    deployment index for it, as ``deployments`` lists it."""
    from verify.path.running import running

    def running_of(component: str) -> Any:
        return running(newest_first(store, deployments(environment), component, budget), policy, run,
                       environment=environment, component=component)

    return running_of


def indexed_in(store: Store, deployments: Callable[[str], Sequence[FiledDeployment]],
               budget: EvidenceBudget) -> Callable[[Any], bool]:
    """Whether ``store``'s deployment index (each environment's as ``deployments`` lists it) files a trusted record
    (:class:`verify.path.running.Deployed`) under its own signed time and digest: an entry of that name holding
    that very record, as ``attest status`` counts it."""
    from verify.formats.deployment import filing_time
    from verify.formats.evidence import Evidence

    def indexed(found: Any) -> bool:
        record = found.record
        name = (record.component, filing_time(record.time), found.sha256)
        for filed in deployments(record.environment):
            if (filed.component, filed.time, filed.sha256) == name:
                items = budget.take(*store.read_deployment(filed))
                return len(items) == 1 and isinstance(items[0], Evidence) and items[0].digest == found.sha256
        return False

    return indexed


def newest_first(store: Store, listing: Sequence[FiledDeployment], component: str,
                 budget: EvidenceBudget) -> Iterator[Any]:
    """The index entries of ``component`` in ``listing``, newest first by name (time, then digest), each read
    (within ``budget``) only when it is reached."""
    from verify.path.running import Filed

    def read(filed: FiledDeployment) -> list[Any]:
        return budget.take(*store.read_deployment(filed))

    entries = sorted((f for f in listing if f.component == component), key=lambda f: (f.time, f.sha256),
                     reverse=True)
    return (Filed(time=f.time, sha256=f.sha256, read=functools.partial(read, f)) for f in entries)
