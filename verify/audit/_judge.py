"""Steps (3) to (5) of an audit (:mod:`verify.audit`): fold each fact into its artefact's record, check the
stored bytes against their address, and judge each history once everything is read."""

from __future__ import annotations

import functools
import re
from collections.abc import Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from verify.audit._check import _Approval, _Build, _Deployment, _Fact, _Release, _Signature, _Vsa
from verify.audit._gates import HotfixApproval, Known, judge_approvals, judge_gates, required_vsas
from verify.audit._reproduction import _Reproduction
from verify.audit._whole import anomaly_order, history_of, judging_components, stage_order
from verify.audit.report import (
    Anomaly,
    ArtifactHistory,
    BuildRecord,
    Endorsement,
    ReleaseRecord,
    StoredCopy,
    iso_time,
    short_sha,
    when_of,
)
from verify.errors import EvidenceRejected
from verify.formats.statement import (
    PROVENANCE_V02,
    PROVENANCE_V1,
    REPRODUCTION_V1,
)
from verify.policy import Policy, StageRule, VsaRequirement
from verify.signers import in_the_future

_SHA256 = re.compile(r"[0-9a-f]{64}")
_PROVENANCE_TYPES = (PROVENANCE_V1, PROVENANCE_V02)


# --- (3) fold, (4) stored and (5) judge ------------------------------------------------------------------

@dataclass
class _Record:
    sha256: str
    names: set[str] = field(default_factory=set)
    seen: set[str] = field(default_factory=set)
    builds: list[BuildRecord] = field(default_factory=list)
    built: list[datetime] = field(default_factory=list)
    """When each trusted build was, as the gate takes it (:attr:`verify.audit._check._Build.built_on`)."""
    vsas: dict[str, list[Endorsement]] = field(default_factory=dict)
    approvals: dict[str, list[Endorsement]] = field(default_factory=dict)
    people: dict[str, str] = field(default_factory=dict)
    """Who signed each keyless approval, by its attestation (:attr:`verify.audit._check._Approval.person`)."""
    bound: dict[str, tuple[tuple[str, ...], bool]] = field(default_factory=dict)
    """What each VSA names, by its attestation: the attestations it verified, and whether a policy
    (:func:`verify.audit._gates.required_vsas`)."""
    deployments: dict[str, list[Endorsement]] = field(default_factory=dict)
    reproductions: list[Endorsement] = field(default_factory=list)
    signatures: list[Endorsement] = field(default_factory=list)
    releases: list[Endorsement] = field(default_factory=list)
    stored: list[StoredCopy] = field(default_factory=list)


class _Auditor:
    """Steps (3) to (5): the records of every artefact and release, and the anomalies found."""

    def __init__(self, policy: Policy, at: datetime | None = None) -> None:
        self.policy = policy
        self.at = at
        """The audit's time, which no signed time may be after (:func:`verify.signers.in_the_future`); None: any."""
        self.order = stage_order(policy)
        self.records: dict[str, _Record] = {}
        self.anomalies: dict[tuple[str, str | None, str], Anomaly] = {}
        self.attestations = 0
        self.files = 0
        self.stored = 0
        self.unread = 0
        self.releases: dict[str, ReleaseRecord] = {}
        self.by_line: dict[str, ReleaseRecord] = {}
        """Trusted release manifests by the sha256 of their envelope line (as deployment records name them)."""
        self.built: list[tuple[str, str, str, _Build]] = []
        """(sha256, name, source, build) of each trusted provenance of an artefact, judged by the rules of the
        component a release binds it to (``components.NAME``), else by ``provenance``'s, once all is read."""
        self.reproduced: list[tuple[str, str, _Fact, _Reproduction]] = []
        """(sha256, name, fact, reproduction) of each trusted reproduction: judged against the builds once all is in."""
        self.hotfixes: dict[str, list[HotfixApproval]] = {}
        """Trusted hotfix approvals by ``MANIFEST-LINE:STAGE`` (a hotfix record's dep)."""
        self.unplaced: set[tuple[str, str]] = set()
        """(statement digest, sha256) of each deployment record that does not count for that artefact."""
        self.clocked: set[str] = set()
        """The artefacts whose judgement found a time after the audit's: true now, not once that time has come (such
        a judgement is not kept in the index)."""
        self.passed: set[tuple[str, str]] = set()
        """(sha256, provenance line sha256) of each trusted provenance its rules found nothing wrong with: only such
        a provenance's commit time starts a lead time."""
        self.levels: dict[str, list[int]] = {}
        """The build level each trusted provenance's builder is trusted for under the rules judging it, by sha256."""
        self.deployed: list[tuple[_Fact, _Deployment]] = []
        """Trusted deployment records, judged against their release once every manifest is read."""
        self.placed: dict[str, _Deployment] = {}
        """The trusted deployment records that name a component of their release with its artefacts, by the
        sha256 of their statement: what the DORA figures count."""
        """Trusted release manifests, by the sha256 of their statement (one manifest in two files is one)."""
        self.vsa_signers = {name: self._vsa_signers(rule) for name, rule in policy.stages.items()}
        self._states: dict[str, str] = {}
        """:meth:`release_state` of each dependency asked about."""
        self._line_states: dict[str, str] = {}
        """What a trusted release manifest is, by the sha256 of its line (:meth:`release_state`)."""

    def _vsa_signers(self, rule: StageRule) -> frozenset[str]:
        names = {rule.verifier} if rule.verifier else set()
        for other in self.policy.stages.values():
            for requirement in other.require_vsa:
                if requirement.stage == rule.name:
                    names.update(requirement.signed_by)
        return frozenset(names)

    def _stage_of(self, resource_uri: str) -> StageRule | None:
        stages = (self.policy.stages[name] for name in self.order)
        return next((rule for rule in stages if rule.accepts_resource(resource_uri)), None)

    def _record(self, sha256: str) -> _Record:
        record = self.records.get(sha256)
        if record is None:
            record = self.records[sha256] = _Record(sha256)
        return record

    def index_mismatch(self, uri: str) -> None:
        """The audit index held other facts for ``uri`` than its bytes give now (``--reverify``)."""
        self._flag("index-mismatch", None, f"the audit index held other facts for {uri} than a fresh check of its "
                   "bytes gives: the index was edited or written by a faulty version; the report uses the fresh "
                   "check, and the entry is replaced", source=uri, key=uri)

    def _flag(self, kind: str, sha256: str | None, message: str, *, source: str = "", step: str = "",
              key: str = "") -> None:
        anomaly = Anomaly(kind=kind, sha256=sha256, message=message, source=source, step=step)
        self.anomalies.setdefault((kind, sha256, key or message), anomaly)

    def _step(self, fact: _Fact) -> str:
        if fact.predicate_type in _PROVENANCE_TYPES or fact.predicate_type == REPRODUCTION_V1:
            return "build"
        if fact.claimed_stage:
            rule = self._stage_of(fact.claimed_stage)
            return rule.name if rule else ""
        return ""

    def add(self, fact: _Fact) -> None:
        self.attestations += 1
        if fact.problem is not None:
            kind, message = fact.problem
            step = self._step(fact)
            digests: list[str | None] = [sha for _, sha in fact.subjects] or [None]
            for sha in digests:
                if sha is not None:
                    self._record(sha)
                self._flag(kind, sha, message, source=fact.source, step=step, key=fact.statement_digest)
            return
        detail = fact.detail
        if isinstance(detail, _Build):
            self._add_build(fact, detail)
        elif isinstance(detail, _Vsa):
            self._add_vsa(fact, detail)
        elif isinstance(detail, _Approval):
            self._add_approval(fact, detail)
        elif isinstance(detail, _Reproduction):
            self._add_reproduction(fact, detail)
        elif isinstance(detail, _Signature):
            self._add_signature(fact)
        elif isinstance(detail, _Release):
            self._add_release(fact, detail)
        elif isinstance(detail, _Deployment):
            self._add_deployment(fact, detail)
        # other predicate types signed by a pinned identity say nothing about the path: counted only

    def _allowed(self, fact: _Fact, allowed: frozenset[str], what: str, rule: str, step: str) -> bool:
        if set(fact.signers) & allowed:
            return True
        may = ", ".join(sorted(allowed)) or "no identity"
        message = f"{what} is signed by {' and '.join(fact.signers)}, but {rule} allows {may}"
        for _, sha in fact.subjects:
            self._record(sha)
            self._flag("untrusted-signer", sha, message, source=fact.source, step=step,
                       key=fact.statement_digest)
        return False

    def _new(self, fact: _Fact, *, artefacts: bool = False) -> Iterator[tuple[str, _Record]]:
        """(subject name, record) of each artefact the fact names and has not been seen for it before; with
        ``artefacts``, not the subject a statement about a whole release names it by (``release:NAME``, the
        manifest's digest: a VSA of a release names it beside each artefact)."""
        for name, sha in fact.subjects:
            if artefacts and name.startswith("release:"):
                continue
            record = self._record(sha)
            if fact.statement_digest in record.seen:
                continue
            record.seen.add(fact.statement_digest)
            yield name, record

    def _add_build(self, fact: _Fact, build: _Build) -> None:
        rules = self.policy.provenance
        if not self._allowed(fact, frozenset(rules.signed_by), "the provenance", "provenance.signed-by",
                             "build"):
            return
        for name, record in self._new(fact):
            sha = record.sha256
            record.names.add(name)
            record.builds.append(BuildRecord(
                name=name, commit=build.commit, source=build.source, ref=build.ref, builder=build.builder,
                started_on=build.started_on, finished_on=build.finished_on, dirty=build.dirty,
                invocation_id=build.invocation_id, lockfiles=build.lockfiles, signers=fact.signers,
                attestation=fact.source))
            self.built.append((sha, name, fact.source, build))
            record.built += [build.built_on] if build.built_on is not None else []

    def _add_vsa(self, fact: _Fact, vsa: _Vsa) -> None:
        rule = self._stage_of(vsa.resource_uri)
        if rule is None:
            for _, sha in fact.subjects:
                self._record(sha)
                self._flag("unknown-stage", sha, f"a VSA by {' and '.join(fact.signers)} is "
                           f"for {vsa.resource_uri!r}, which no stage of the policy accepts",
                           source=fact.source, key=fact.statement_digest)
            return
        if not self._allowed(fact, self.vsa_signers[rule.name], f"a VSA for stage {rule.name!r}",
                             f"stages.{rule.name}.verifier", rule.name):
            return
        for _, record in self._new(fact, artefacts=True):
            record.vsas.setdefault(rule.name, []).append(Endorsement(
                kind="vsa", stage=rule.name, result=vsa.result, time=vsa.time, signers=fact.signers,
                attestation=fact.source, level=vsa.level))
            record.bound[fact.source] = (vsa.inputs, vsa.policy_named)

    def _add_approval(self, fact: _Fact, approval: _Approval) -> None:
        rule = self.policy.stages.get(approval.stage)
        if approval.hotfix:  # of a release manifest, by an approver of the stage's hotfixes
            self._add_hotfix_approval(fact, approval)
            return
        needed = rule.require_approvals if rule else None
        allowed = frozenset(needed.signed_by) if needed else frozenset()
        if not self._allowed(fact, allowed, f"an approval for stage {approval.stage!r}",
                             f"stages.{approval.stage}.require-approvals", approval.stage if rule else ""):
            return
        for _, record in self._new(fact):
            record.approvals.setdefault(approval.stage, []).append(Endorsement(
                kind="approval", stage=approval.stage, result=approval.approver, time=approval.time,
                signers=tuple(s for s in fact.signers if s in allowed), attestation=fact.source))
            if approval.person:
                record.people[fact.source] = approval.person

    def _add_hotfix_approval(self, fact: _Fact, approval: _Approval) -> None:
        """A hotfix approval names a release, not an artefact: only who signed it is judged."""
        rule = self.policy.stages.get(approval.stage)
        allowed = frozenset(rule.hotfix.signed_by) if rule and rule.hotfix else frozenset()
        approvers = tuple(sorted(set(fact.signers) & allowed))
        if approvers:
            for _, line in fact.subjects:  # the manifest's line: what the deployment records of a hotfix name
                self.hotfixes.setdefault(f"{line}:{approval.stage}", []).append((approvers, approval.time,
                                                                                 approval.person))
            return
        may = ", ".join(sorted(allowed)) or "no identity"
        self._flag("untrusted-signer", None, f"a hotfix approval for stage {approval.stage!r} is signed by "
                   f"{' and '.join(fact.signers)}, but stages.{approval.stage}.hotfix.require-approvals allows {may}",
                   source=fact.source, step=approval.stage if rule else "", key=fact.statement_digest)

    def _add_deployment(self, fact: _Fact, deployment: _Deployment) -> None:
        """A deployment record by an identity of its environment's ``deployed-by``: listed under the stage."""
        env = deployment.environment
        rule = self.policy.stages.get(env)
        allowed = frozenset(rule.deployed_by if rule else ())
        if not self._allowed(fact, allowed, f"a deployment record for environment {env!r}",
                             f"stages.{env}.deployed-by", env if rule else ""):
            return
        self.deployed.append((fact, deployment))
        for _, record in self._new(fact):
            record.deployments.setdefault(env, []).append(Endorsement(
                kind="deployment", stage=env, result=deployment.status, time=deployment.time,
                signers=tuple(s for s in fact.signers if s in allowed), attestation=fact.source,
                about=(("release", deployment.release), ("component", deployment.component),
                       ("kind", deployment.kind))))

    def _add_reproduction(self, fact: _Fact, reproduction: _Reproduction) -> None:
        for name, record in self._new(fact):
            self.reproduced.append((record.sha256, name, fact, reproduction))
            verdict = reproduction.verdict_for(name, record.sha256)
            record.reproductions.append(Endorsement(
                kind="reproduction", stage="", result=verdict, time=reproduction.time,
                signers=fact.signers, attestation=fact.source))
            if verdict == "NOT_REPRODUCIBLE":
                self._flag("non-reproducible", record.sha256, f"{' and '.join(fact.signers)} "
                           f"rebuilt {name!r} and got different bytes (NOT_REPRODUCIBLE)",
                           source=fact.source, step="build")

    def _add_signature(self, fact: _Fact) -> None:
        """A message signature by any identity of the policy: listed with the artefact, and nothing more."""
        for _, record in self._new(fact):
            record.signatures.append(Endorsement(
                kind="signature", stage="", result=f"sha256:{record.sha256}", time=None, signers=fact.signers,
                attestation=fact.source))

    def _add_release(self, fact: _Fact, release: _Release) -> None:
        """A release manifest by an identity of ``releases.signed-by``: listed, and named on each artefact."""
        if not self.know_release(fact, release):
            return
        for _, record in self._new(fact):
            record.releases.append(Endorsement(
                kind="release", stage="", result=release.name, time=release.created, signers=fact.signers,
                attestation=fact.source))

    def know_release(self, fact: _Fact, release: _Release) -> bool:
        """List a release manifest by an identity of ``releases.signed-by`` (what judgements depend on: which
        components it binds, what deployment records name), without naming it on its artefacts; whether it is."""
        rule = self.policy.releases
        where = "releases.signed-by" if rule else "the policy, which names no release signers,"
        if not self._allowed(fact, frozenset(rule.signed_by if rule else ()), f"the release manifest "
                             f"{release.name!r}", where, ""):
            return False
        listed = ReleaseRecord(name=release.name, created=release.created, signers=fact.signers,
                               attestation=fact.source, components=release.components)
        known = self.releases.get(fact.statement_digest)
        if known is None or listed.attestation < known.attestation:  # the same whatever the reading order
            self.releases[fact.statement_digest] = listed
        if release.line_sha256:
            self.by_line[release.line_sha256] = listed
            # all a judgement takes from it: the statement (name, time, components), who signed it, and where it is
            self._line_states[release.line_sha256] = f"{fact.statement_digest} {' '.join(fact.signers)} {fact.source}"
        return True

    # (4) stored artefacts

    def add_stored(self, uri: str, claimed: str, found: str | EvidenceRejected) -> None:
        """One stored artefact: the bytes at ``sha256/<claimed>/artifact/NAME`` must hash to ``claimed``."""
        self.stored += 1
        if not _SHA256.fullmatch(claimed):
            self._flag("tampered-artifact", None, f"an artefact is stored at an address that names no sha256 "
                       f"({claimed!r}, not 64 lower-case hex digits), so its bytes cannot be checked",
                       source=uri, key=uri)
            return
        record = self._record(claimed)
        if isinstance(found, EvidenceRejected):
            self.unread += 1
            record.stored.append(StoredCopy(uri=uri, sha256=None, status="unreadable"))
            self._flag("tampered-artifact", claimed, f"the stored bytes of {short_sha(claimed)} cannot be read to "
                       f"check them against their address: {found}", source=uri, key=uri)
        elif found != claimed:
            record.stored.append(StoredCopy(uri=uri, sha256=found, status="tampered"))
            self._flag("tampered-artifact", claimed, f"the bytes stored as {short_sha(claimed)} hash to "
                       f"{short_sha(found)}: they were replaced or corrupted after they were published, so no "
                       "attestation of this artefact vouches for them; do not deploy them",
                       source=uri, key=uri)
        else:
            record.stored.append(StoredCopy(uri=uri, sha256=found, status="verified"))

    # (5) judge, once everything is read

    def _judge_stages(self, record: _Record) -> None:
        """Each stage in order: every VSA that passed the artefact against its build and the earlier stages it
        requires; then, if the stage passed it, the stage's minimum level and its approvals."""
        built_on = min(record.built, default=None)
        for name in self.order:
            rule = self.policy.stages[name]
            passed = [vsa for vsa in record.vsas.get(name, []) if vsa.result == "PASSED"]
            for vsa in passed:
                self._judge_vsa_order(record, name, rule, vsa, built_on)
            if not passed:
                continue
            if rule.min_level:
                self._judge_level(record, rule)
            judge_approvals(record.sha256, record.approvals.get(name, []), record.people, rule,
                            (built_on, min(passed, key=when_of)), self._flag)

    def _judge_vsa_order(self, record: _Record, name: str, rule: StageRule, vsa: Endorsement,
                         built_on: datetime | None) -> None:
        """A VSA that passed the artefact for stage ``name`` comes after its build and after the VSA of each
        earlier stage the stage requires."""
        sha = record.sha256
        said = f"stage {name!r} verified {short_sha(sha)} at {iso_time(vsa.time)}"
        where = {"source": vsa.attestation, "step": name}
        if self.at is not None and vsa.time is not None and in_the_future(vsa.time, self.at):
            self.clocked.add(sha)
            self._flag("out-of-order", sha, f"{said}, after the time of this audit: a verifier's clock was ahead, or "
                       "the time is forged", **where)
        if not record.builds:
            self._flag("skipped-stage", sha, f"{said}, but no trusted provenance for it was found", **where)
        elif built_on is not None and vsa.time is not None and vsa.time < built_on:
            self._flag("out-of-order", sha, f"{said}, before it was built ({iso_time(built_on)})", **where)
        for requirement in rule.require_vsa:
            self._judge_required_vsa(record, vsa, requirement, said, where)

    def _judge_required_vsa(self, record: _Record, vsa: Endorsement, requirement: VsaRequirement, said: str,
                            where: dict[str, str]) -> None:
        """The earlier stage ``requirement`` names passed the artefact, by a signer it accepts, before ``vsa``."""
        sha = record.sha256
        earlier = required_vsas(record, requirement, self.passed)
        if not earlier:
            self._flag("skipped-stage", sha, f"{said} without the VSA from stage "
                       f"{requirement.stage!r} that it requires (naming a provenance of it and a policy)", **where)
            return
        first = min(earlier, key=when_of)
        if vsa.time is not None and first.time is not None and vsa.time < first.time:
            self._flag("out-of-order", sha, f"{said}, before stage {requirement.stage!r} did "
                       f"({iso_time(first.time)})", **where)

    def _judge_level(self, record: _Record, rule: StageRule) -> None:
        """A stage with ``min-level`` passed the artefact: a build by a builder trusted for that level, and each
        earlier stage it relies on stating that level, must be in the history."""
        sha = record.sha256
        if record.builds and max(self.levels.get(sha, []), default=0) < rule.min_level:
            builders = ", ".join(sorted({b.builder for b in record.builds}))
            self._flag("insufficient-level", sha, f"stage {rule.name!r} verified {short_sha(sha)}, which no builder "
                       f"trusted for SLSA build level {rule.min_level} built (built by {builders})", step=rule.name)
        for requirement in rule.require_vsa:
            stated = [v.level or 0 for v in required_vsas(record, requirement, self.passed)]
            if stated and max(stated) < rule.min_level:
                self._flag("insufficient-level", sha, f"stage {rule.name!r} verified {short_sha(sha)}, and stage "
                           f"{requirement.stage!r} vouched for SLSA build level {max(stated)} at most, not the "
                           f"{rule.min_level} it requires", step=rule.name)

    def history(self, record: _Record, anomalies: Sequence[Anomaly]) -> ArtifactHistory:
        return history_of(record, self.order, anomalies)

    def _judge_deployments(self) -> None:
        """A trusted deployment record names a component of its release, with that component's artefacts, and is
        dated neither after this audit nor before what it deployed was built: only then is it placed (what runs
        where, the DORA figures). A record of a release no trusted manifest among the sources shows cannot be
        checked so, and is not counted."""
        for fact, deployment in self.deployed:
            found = self._future(fact, deployment) or self._unplaced(deployment)
            if found is None:
                self.placed[fact.statement_digest] = deployment
            for _, sha in fact.subjects:  # (an artefact judged by its own builds only: an index keeps it alone)
                kind, why = found or self._before_built(sha, deployment) or ("", "")
                if kind:
                    self.unplaced.add((fact.statement_digest, sha))
                    self._flag(kind, sha, f"a deployment record for {deployment.environment!r} {why}",
                               source=fact.source, step=deployment.environment, key=fact.statement_digest)

    def _future(self, fact: _Fact, deployment: _Deployment) -> tuple[str, str] | None:
        if self.at is not None and in_the_future(deployment.time, self.at):
            self.clocked.update(sha for _, sha in fact.subjects)
            return "out-of-order", (f"is dated {iso_time(deployment.time)}, after the time of this audit: a "
                                    "deployer's clock was ahead, or the time is forged, so it is not counted")
        return None

    def _before_built(self, sha: str, deployment: _Deployment) -> tuple[str, str] | None:
        built = self.records[sha].built if sha in self.records else []
        if built and deployment.time < min(built):
            return "out-of-order", (f"is dated {iso_time(deployment.time)}, before what it deployed was built "
                                    f"({iso_time(min(built))}): its time is wrong or forged, so it is not counted")
        return None

    def _unplaced(self, deployment: _Deployment) -> tuple[str, str] | None:
        release = self.by_line.get(deployment.release_sha256)
        if release is None:
            return "unknown-deployment", (
                f"names release {deployment.release!r} ({short_sha(deployment.release_sha256 or None)}), which no "
                "trusted manifest among the sources shows, so it is not counted; audit the store the release was "
                "published to with it")
        part = next((c for c in release.components if c.name == deployment.component), None)
        if part is None:
            return "unknown-deployment", (f"names component {deployment.component!r}, which release "
                                          f"{release.name!r} does not have")
        if frozenset(sha for _, sha in part.artifacts) != deployment.artifacts:
            return "unknown-deployment", (f"names other artefacts for {deployment.component!r} than release "
                                          f"{release.name!r} gives that component")
        return None

    def _judge_builds(self) -> None:
        """Each provenance by the rules that apply to it (:meth:`_component_of`), which also say the build level its
        builder is trusted for."""
        bound: dict[str, set[str]] = {}
        for release in self.releases.values():
            for component in release.components:
                bound.setdefault(component.provenance, set()).add(component.name)
        rules_of = {name: rule.apply(self.policy.unnamed_rules()) for name, rule in self.policy.components.items()}
        unnamed = self.policy.unnamed_rules()  # (each made once, not once a build)
        for sha, name, source, build in self.built:
            own = dict(build.by_component)
            chosen = judging_components(self.policy, build, own, bound)  # (every one a release binds it to)
            levels = [trusted.level if (trusted := (rules_of[c] if c else unnamed).builder(build.builder)) else 0
                      for c in chosen]
            self.levels.setdefault(sha, []).append(min(levels))
            findings = list(dict.fromkeys(f for c in chosen for f in (own[c] if c is not None else build.findings)))
            for kind, message, step in findings:
                self._flag(kind, sha, f"{name!r}: {message}", source=source, step=step)
            if not findings:
                self.passed.add((sha, build.line_sha256))

    def _judge_reproductions(self) -> None:
        """A reproduction confirms an artefact's build only if it rebuilt that build: one of another commit, or of
        another provenance, than every trusted provenance of the artefact names is flagged, not taken as one."""
        builds: dict[str, list[_Build]] = {}
        for sha, _, _, build in self.built:
            builds.setdefault(sha, []).append(build)
        for sha, name, fact, rebuilt in self.reproduced:
            known = builds.get(sha, [])
            other = (f"provenance {short_sha(rebuilt.provenance)}" if rebuilt.provenance and known and all(
                b.line_sha256 != rebuilt.provenance for b in known) else f"commit {rebuilt.commit[:12]}" if
                rebuilt.commit and known and all((b.commit or "").lower() != rebuilt.commit for b in known) else "")
            if other:
                self._flag("non-reproducible", sha, f"{' and '.join(fact.signers)} rebuilt {name!r} from {other}, "
                           "which no trusted provenance of it names: that rebuild confirms no build of it",
                           source=fact.source, step="build")

    def judge(self, shas: Iterable[str]) -> None:
        """Step (5) for the artefacts ``shas`` (each builds' rules, deployment records against their releases, then
        each stage in order), once everything about them is folded in; reproducibility across artefacts is
        judged over the whole history by :func:`reproducibility`."""
        self._judge_builds()
        self._judge_reproductions()
        self._judge_deployments()
        judge_gates(self.policy, ((f, d) for f, d in self.deployed if f.statement_digest in self.placed),
                    Known(self.records.get, self.levels, self.passed), self.hotfixes,
                    {line: r.created for line, r in self.by_line.items()}, self._flag)
        for sha in shas:
            record = self.records.get(sha)
            if record is not None:
                self._judge_stages(record)

    def own_anomalies(self) -> dict[str | None, list[Anomaly]]:
        """The anomalies found so far, by the artefact they concern (None: none), each list in report order."""
        by_sha: dict[str | None, list[Anomaly]] = {}
        for anomaly in sorted(self.anomalies.values(), key=anomaly_order):
            by_sha.setdefault(anomaly.sha256, []).append(anomaly)
        return by_sha


    def contexts(self, shas: Collection[str]) -> dict[str, _Context]:
        """What each artefact's judgement took from beyond its own evidence, and what the whole history's figures
        take from it (:class:`_Context`), for the artefacts ``shas``."""
        deps: dict[str, set[str]] = {sha: set() for sha in shas}
        committed: dict[str, tuple[str, datetime]] = {}
        placed: dict[str, set[tuple[str, _Deployment]]] = {}
        for sha, _, _, build in self.built:
            if sha not in deps:
                continue
            deps[sha].add(f"bind:{build.line_sha256}")
            if (sha, build.line_sha256) not in self.passed:  # a provenance the policy refuses says nothing true
                continue
            if build.committed_on is not None and (sha not in committed or build.committed_on < committed[sha][1]):
                committed[sha] = (build.commit or sha, build.committed_on)
        self._deployment_contexts(deps, placed)
        return {sha: _Context(deps=tuple(sorted(deps[sha])), committed=committed.get(sha),
                              placed=tuple(sorted(placed.get(sha, ()), key=lambda p: p[0]))) for sha in shas}

    def _deployment_contexts(self, deps: dict[str, set[str]], placed: dict[str, set[tuple[str, _Deployment]]]) -> None:
        for fact, deployment in self.deployed:  # (the release each names, a hotfix's approvals, where it counts)
            for sha in (sha for _, sha in fact.subjects if sha in deps):
                deps[sha].add(f"rel:{deployment.release_sha256}")
                if deployment.kind == "hotfix":
                    deps[sha].add(f"hot:{deployment.release_sha256}:{deployment.environment}")
                if fact.statement_digest in self.placed and (fact.statement_digest, sha) not in self.unplaced:
                    placed.setdefault(sha, set()).add((fact.statement_digest, deployment))

    @functools.cached_property
    def _bound(self) -> dict[str, str]:
        """The components each provenance line is bound to by the trusted release manifests, as text."""
        bound: dict[str, set[str]] = {}
        for release in self.releases.values():
            for component in release.components:
                bound.setdefault(component.provenance, set()).add(component.name)
        return {line: ",".join(sorted(names)) for line, names in bound.items()}

    def release_state(self, dep: str) -> str:
        """What the release manifests folded in say to a dependency of :meth:`contexts` (a changed answer means
        the artefact is judged again); read once every manifest is folded in."""
        known = self._states.get(dep)
        if known is None:
            kind, _, line = dep.partition(":")
            known = self._states[dep] = self._bound.get(line, "") if kind == "bind" else repr(sorted(
                self.hotfixes.get(line, ()), key=repr)) if kind == "hot" else self._line_states.get(line, "")
        return known

    def know_everywhere(self, fact: _Fact) -> None:
        """Fold in what an artefact's judgement may rest on beyond its own files: a release manifest, a hotfix."""
        if isinstance(fact.detail, _Release) and fact.problem is None:
            self.know_release(fact, fact.detail)
        elif isinstance(fact.detail, _Approval) and fact.detail.hotfix and fact.problem is None:
            self._add_hotfix_approval(fact, fact.detail)


@dataclass(frozen=True)
class _Context:
    """What an artefact's judgement took from beyond its own evidence, and what the history's figures take from it."""

    deps: tuple[str, ...]
    """The release manifests it depended on: ``bind:<provenance line>`` for each of its builds (which components a
    release binds it to), ``rel:<manifest line>`` for each of its deployment records (the release it names)."""
    committed: tuple[str, datetime] | None
    """Its earliest commit and when it was made, as its provenances the policy accepts say (the change; lead time
    starts there)."""
    placed: tuple[tuple[str, _Deployment], ...]
    """Its trusted deployment records that are placed in their release, by statement digest."""
