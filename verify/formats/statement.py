"""in-toto Statements and the predicates attest understands.

* Statement v1 (and v0.1, still written by real generators)
* SLSA Provenance v1 (and v0.2), read into one :class:`Provenance` view
* SLSA Verification Summary (VSA) v1

Parsing is strict about shape and lenient about extra fields: unknown fields
are ignored, as the in-toto spec asks of consumers.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from verify.errors import LimitExceeded, MalformedEvidence, UnknownEvidence
from verify.formats import strict_json
from verify.formats.encoding import parse_time
from verify.formats.levels import build_level
from verify.formats.uris import split_source_uri
from verify.limits import MAX_DEPENDENCIES, MAX_DIGESTS, MAX_SUBJECTS

__all__ = [
    "PROVENANCE_V02",
    "PROVENANCE_V1",
    "STATEMENT_V01",
    "STATEMENT_V1",
    "VSA_V1",
    "Approval",
    "Dependency",
    "Provenance",
    "Statement",
    "Subject",
    "VerificationSummary",
    "parse_statement",
    "read_approval",
    "read_provenance",
    "read_vsa",
]

STATEMENT_V1 = "https://in-toto.io/Statement/v1"
STATEMENT_V01 = "https://in-toto.io/Statement/v0.1"
PROVENANCE_V1 = "https://slsa.dev/provenance/v1"
PROVENANCE_V02 = "https://slsa.dev/provenance/v0.2"
VSA_V1 = "https://slsa.dev/verification_summary/v1"
#: attest's own predicate types (docs/predicates.md)
APPROVAL_V1 = "https://attest.dev/approval/v1"
RELEASE_V1 = "https://attest.dev/release/v1"
DEPLOYMENT_V1 = "https://attest.dev/deployment/v1"
REPRODUCTION_V1 = "https://attest.dev/reproduction/v1"

_HEX = re.compile(r"[0-9a-f]+")


@dataclass(frozen=True)
class Subject:
    name: str
    digest: Mapping[str, str]


@dataclass(frozen=True)
class Statement:
    type: str
    subjects: tuple[Subject, ...]
    predicate_type: str
    predicate: Mapping[str, Any] = field(repr=False)


def _obj(value: Any, what: str) -> Mapping[str, Any]:
    if not isinstance(value, dict):
        raise MalformedEvidence(f"{what} is not a JSON object")
    return value


def _str(value: Any, what: str, *, optional: bool = False) -> str:
    if value is None and optional:
        return ""
    if not isinstance(value, str):
        raise MalformedEvidence(f"{what} is not a string")
    return value


def _bounded(items: list[Any], limit: int, what: str, kind: str) -> list[Any]:
    """``items``, or :class:`LimitExceeded` if there are more than ``limit`` of them (counted before any is read)."""
    if len(items) > limit:
        raise LimitExceeded(f"{what} has {len(items)} {kind}; at most {limit} are read")
    return items


def _digest_set(value: Any, what: str) -> dict[str, str]:
    found = _obj(value, what)
    if len(found) > MAX_DIGESTS:
        raise LimitExceeded(f"{what} has {len(found)} digests; at most {MAX_DIGESTS} are read")
    digests = dict(found)
    for algorithm, hexdigest in digests.items():
        if not isinstance(hexdigest, str):
            raise MalformedEvidence(f"{what}[{algorithm!r}] is not a string")
    return digests


def parse_statement(payload: bytes, *, what: str = "statement") -> Statement:
    """Parse and validate an in-toto Statement (v1 or v0.1)."""
    obj = _obj(strict_json.loads(payload, what=what), what)
    kind = obj.get("_type")
    if kind not in (STATEMENT_V1, STATEMENT_V01):
        raise UnknownEvidence(f"{what} has _type {kind!r}; expected an in-toto Statement ({STATEMENT_V1})")
    raw_subjects = obj.get("subject")
    if not isinstance(raw_subjects, list) or not raw_subjects:
        raise MalformedEvidence(f"{what} has no subjects")
    if len(raw_subjects) > MAX_SUBJECTS:
        raise LimitExceeded(f"{what} has {len(raw_subjects)} subjects; at most {MAX_SUBJECTS} are read")
    subjects = []
    for i, raw in enumerate(raw_subjects):
        raw = _obj(raw, f"{what} subject {i}")
        name = _str(raw.get("name"), f"{what} subject {i} name", optional=True)
        digest = _digest_set(raw.get("digest"), f"{what} subject {i} digest")
        if not digest:
            raise MalformedEvidence(f"{what} subject {i} has an empty digest")
        for algorithm, hexdigest in digest.items():
            if algorithm in ("sha256", "sha512", "sha384", "blake3", "sha1", "md5") and \
                    not _HEX.fullmatch(hexdigest):
                raise MalformedEvidence(f"{what} subject {i} {algorithm} digest is not lower-case hex")
        subjects.append(Subject(name=name, digest=digest))
    predicate_type = _str(obj.get("predicateType"), f"{what} predicateType")
    # in-toto Statement v1: "unset is treated the same as set-but-empty" (PyPI's attestations carry null)
    raw_predicate = obj.get("predicate")
    predicate = {} if raw_predicate is None else _obj(raw_predicate, f"{what} predicate")
    return Statement(type=kind, subjects=tuple(subjects), predicate_type=predicate_type, predicate=predicate)


@dataclass(frozen=True)
class Dependency:
    uri: str
    digest: Mapping[str, str]
    name: str = ""


@dataclass(frozen=True)
class Provenance:
    """What attest reads from a SLSA provenance, whatever its version."""

    predicate_type: str
    builder_id: str
    build_type: str
    source_uri: str | None
    """The source repository (the resolvedDependencies entry with a gitCommit, else a parameter)."""
    source_ref: str | None
    commit: str | None
    dependencies: tuple[Dependency, ...]
    invocation_id: str
    started_on: datetime | None
    finished_on: datetime | None
    dirty: bool
    external_parameters: Mapping[str, Any] = field(repr=False)
    internal_parameters: Mapping[str, Any] = field(repr=False)
    source_uris: tuple[str, ...] = ()
    """EVERY repository the provenance names as its source (dependency, parameters): a rule on the
    source must hold for each, so that two places cannot say two things."""
    source_refs: tuple[str, ...] = ()
    """EVERY ref the provenance names for its source; a branch rule must hold for each."""
    commits: tuple[str, ...] = ()
    """EVERY commit its git dependencies name; a commit rule (and --same-commit) must hold for each."""

    @property
    def time(self) -> datetime | None:
        """When the build finished (else started), as the provenance says."""
        return self.finished_on or self.started_on

    @property
    def commit_time(self) -> datetime | None:
        """When the commit built was made (``internalParameters.commitTime``, as attest build records it); None
        when the provenance does not say, or says it in a form that is not RFC 3339."""
        value = self.internal_parameters.get("commitTime") if isinstance(self.internal_parameters, Mapping) else None
        if not isinstance(value, str):
            return None
        try:
            return parse_time(value, what="commitTime")
        except MalformedEvidence:
            return None

    @property
    def lockfiles(self) -> tuple[Dependency, ...]:
        """Resolved dependencies that are files of the source (lockfiles), named by path."""
        return tuple(d for d in self.dependencies if d.name and "gitCommit" not in d.digest)


def _time(value: Any, what: str) -> datetime | None:
    """An optional time: absent (or null) is None; anything else must be RFC 3339 (:func:`parse_time`)."""
    if value is None:
        return None
    return parse_time(value, what=what)


def _dependency(raw: Any, what: str) -> Dependency:
    raw = _obj(raw, what)
    return Dependency(uri=_str(raw.get("uri"), f"{what} uri", optional=True),
                      digest=_digest_set(raw.get("digest", {}), f"{what} digest"),
                      name=_str(raw.get("name"), f"{what} name", optional=True))


def read_provenance(statement: Statement) -> Provenance:
    """The provenance view of ``statement``; :class:`UnknownEvidence` if it is not SLSA provenance."""
    if statement.predicate_type == PROVENANCE_V1:
        return _provenance_v1(statement.predicate)
    if statement.predicate_type == PROVENANCE_V02:
        return _provenance_v02(statement.predicate)
    raise UnknownEvidence(f"predicate type {statement.predicate_type!r} is not a SLSA provenance "
                          f"({PROVENANCE_V1}); ask for it with --predicate-type if it is what you want")


def _dependency_list(raw: Any, what: str, key: str, kind: str) -> tuple[Dependency, ...]:
    """The dependencies listed under ``key``: a list of at most :data:`MAX_DEPENDENCIES`, each read in turn."""
    if not isinstance(raw, list):
        raise MalformedEvidence(f"{what} {key} is not a list")
    return tuple(_dependency(d, f"{what} {key}[{i}]")
                 for i, d in enumerate(_bounded(raw, MAX_DEPENDENCIES, what, kind)))


def _text(value: Any) -> str | None:
    """``value`` if it is a non-empty string, else None."""
    return value if isinstance(value, str) and value else None


def _first(items: list[str]) -> str | None:
    """The first of ``items``, or None if there is none."""
    return items[0] if items else None


def _git_sources(deps: tuple[Dependency, ...], *, materials: bool = False) -> tuple[list[str], list[str], list[str]]:
    """The repositories, refs and commits of the git dependencies (those with a gitCommit; with ``materials``, v0.2's,
    also a ``git+`` URI, its commit a gitCommit or sha1), in order."""
    uris: list[str] = []
    refs: list[str] = []
    commits: list[str] = []
    for dep in deps:  # every git dependency is a source: a rule on the source holds for each, in any order
        if "gitCommit" in dep.digest or (materials and dep.uri.startswith("git+")):
            uri, ref = split_source_uri(dep.uri)
            uris.append(uri)
            refs.extend([ref] if ref else [])
            commit = dep.digest["gitCommit"] if "gitCommit" in dep.digest else dep.digest.get("sha1")
            commits.extend([commit] if commit is not None else [])
    return uris, refs, commits


def _source_parameter(external: Mapping[str, Any], what: str) -> tuple[list[str], list[str]]:
    """The repositories and refs the ``source`` external parameter names: an object's ``uri`` (and a ref after its
    ``@``) and ``ref``, or a URI given alone. A value of another shape, empty or null names a source attest cannot
    read, and is refused: dropped, it would let a rule pass that the source it stands for breaks."""
    if "source" not in external:
        return [], []
    source, what = external["source"], f"{what} externalParameters.source"
    if isinstance(source, str):
        return _named_uri(source, what)
    if not isinstance(source, dict):
        raise MalformedEvidence(f"{what} is neither an object nor a URI")
    return _located(source, "uri", what)


def _workflow_parameter(external: Mapping[str, Any], what: str) -> tuple[list[str], list[str]]:
    """The repository and ref GitHub's actions workflow build type names under ``workflow`` (refused, as
    :func:`_source_parameter`'s, in another shape)."""
    if "workflow" not in external:
        return [], []
    workflow, what = external["workflow"], f"{what} externalParameters.workflow"
    if not isinstance(workflow, dict):
        raise MalformedEvidence(f"{what} is not an object")
    return _located(workflow, "repository", what)


def _located(value: Mapping[str, Any], key: str, what: str) -> tuple[list[str], list[str]]:
    """The repository (under ``key``, a URI) and ref an object names, each where present."""
    uris, refs = _named_uri(value[key], f"{what}.{key}") if key in value else ([], [])
    if "ref" in value:
        refs.append(_named(value["ref"], f"{what}.ref"))
    return uris, refs


def _named(value: Any, what: str) -> str:
    """A source's repository or ref, as named: a non-empty string."""
    if not isinstance(value, str) or not value:
        raise MalformedEvidence(f"{what} is not a non-empty string")
    return value


def _named_uri(value: Any, what: str) -> tuple[list[str], list[str]]:
    """([the repository], [the ref after its '@', if one]) a source URI names."""
    uri, ref = split_source_uri(_named(value, what))
    return [uri], [ref] if ref else []


def _dirty(*parameters: Mapping[str, Any]) -> bool:
    """Anything but an absent or false "dirty" is dirty: "true", "false", 1 are claims attest cannot read."""
    return any(params.get("dirty", False) is not False for params in parameters)


def _provenance_v1(pred: Mapping[str, Any]) -> Provenance:
    """SLSA Provenance v1: each part read in turn, then every source it names (git dependencies first)."""
    what = "provenance"
    definition = _obj(pred.get("buildDefinition"), f"{what} buildDefinition")
    run = _obj(pred.get("runDetails"), f"{what} runDetails")
    builder = _obj(run.get("builder"), f"{what} runDetails.builder")
    metadata = _obj(run.get("metadata", {}), f"{what} runDetails.metadata")
    deps = _dependency_list(definition.get("resolvedDependencies", []), what, "resolvedDependencies",
                            "resolved dependencies")
    external = _obj(definition.get("externalParameters"), f"{what} externalParameters")
    internal = _obj(definition.get("internalParameters", {}), f"{what} internalParameters")
    uris, refs, commits = _git_sources(deps)
    source_uris, source_refs = _source_parameter(external, what)
    workflow_uris, workflow_refs = _workflow_parameter(external, what)
    uris += source_uris + workflow_uris
    refs += source_refs + workflow_refs
    return Provenance(
        predicate_type=PROVENANCE_V1,
        builder_id=_str(builder.get("id"), f"{what} runDetails.builder.id"),
        build_type=_str(definition.get("buildType"), f"{what} buildDefinition.buildType"),
        source_uri=_first(uris), source_ref=_first(refs), commit=_first(commits), dependencies=deps,
        invocation_id=_str(metadata.get("invocationId"), f"{what} invocationId", optional=True),
        started_on=_time(metadata.get("startedOn"), f"{what} startedOn"),
        finished_on=_time(metadata.get("finishedOn"), f"{what} finishedOn"),
        dirty=_dirty(internal, external), external_parameters=external, internal_parameters=internal,
        source_uris=tuple(dict.fromkeys(uris)), source_refs=tuple(dict.fromkeys(refs)),
        commits=tuple(dict.fromkeys(commits)),
    )


def _provenance_v02(pred: Mapping[str, Any]) -> Provenance:
    """SLSA Provenance v0.2: the configSource and every git material are sources (as v1's git dependencies are)."""
    what = "provenance (v0.2)"
    builder = _obj(pred.get("builder"), f"{what} builder")
    invocation = _obj(pred.get("invocation", {}), f"{what} invocation")
    config = _obj(invocation.get("configSource", {}), f"{what} invocation.configSource")
    metadata = _obj(pred.get("metadata", {}), f"{what} metadata")
    deps = _dependency_list(pred.get("materials", []), what, "materials", "materials")
    uris: list[str] = []
    refs: list[str] = []
    commits: list[str] = []
    if "uri" in config:
        uris, refs = _named_uri(config["uri"], f"{what} invocation.configSource.uri")
        digest = _digest_set(config.get("digest", {}), f"{what} configSource.digest")
        commits.extend(c for c in (digest.get("sha1") or digest.get("gitCommit"),) if c)
    material_uris, material_refs, material_commits = _git_sources(deps, materials=True)
    uris += material_uris
    refs += material_refs
    commits += material_commits
    params = invocation.get("parameters")
    parameters = {} if params is None else _obj(params, f"{what} invocation.parameters")
    environment = _obj(invocation.get("environment") or {}, f"{what} environment")
    return Provenance(
        predicate_type=PROVENANCE_V02,
        builder_id=_str(builder.get("id"), f"{what} builder.id"),
        build_type=_str(pred.get("buildType"), f"{what} buildType"),
        source_uri=_first(uris), source_ref=_first(refs), commit=_first(commits), dependencies=deps,
        invocation_id=_str(metadata.get("buildInvocationId"), f"{what} buildInvocationId", optional=True),
        started_on=_time(metadata.get("buildStartedOn"), f"{what} buildStartedOn"),
        finished_on=_time(metadata.get("buildFinishedOn"), f"{what} buildFinishedOn"),
        dirty=_dirty(parameters, environment), external_parameters=parameters, internal_parameters=environment,
        source_uris=tuple(dict.fromkeys(uris)), source_refs=tuple(dict.fromkeys(refs)),
        commits=tuple(dict.fromkeys(commits)),
    )


@dataclass(frozen=True)
class Approval:
    """A person's signed "this artefact may go to ``stage``" (``https://attest.dev/approval/v1``)."""

    stage: str
    approver: str
    reason: str
    time: datetime
    hotfix: bool = False
    """An approval of a hotfix (``attest approve --release M --hotfix``): it names a release manifest, and
    counts only for a hotfix's gate (``stages.<stage>.hotfix``), never as an ordinary approval."""


def read_approval(statement: Statement) -> Approval:
    """The approval view of ``statement``: a stage and a time are required, read with the one time reader."""
    if statement.predicate_type != APPROVAL_V1:
        raise UnknownEvidence(f"predicate type {statement.predicate_type!r} is not an approval ({APPROVAL_V1})")
    what = "approval"
    pred = statement.predicate
    stage = _str(pred.get("stage"), f"{what} stage")
    if not stage:
        raise MalformedEvidence(f"the {what} names no stage")
    when = _time(pred.get("timeApproved"), f"{what} timeApproved")
    if when is None:
        raise MalformedEvidence(f"the {what} has no timeApproved")
    hotfix = pred.get("hotfix", False)
    if not isinstance(hotfix, bool):
        raise MalformedEvidence(f"the {what} has hotfix {hotfix!r}, which is not true or false")
    return Approval(stage=stage, approver=_str(pred.get("approver"), f"{what} approver", optional=True),
                    reason=_str(pred.get("reason"), f"{what} reason", optional=True), time=when, hotfix=hotfix)


@dataclass(frozen=True)
class VerificationSummary:
    verifier_id: str
    time_verified: datetime
    resource_uri: str
    policy_uri: str
    policy_digest: Mapping[str, str]
    input_attestations: tuple[Dependency, ...]
    result: str
    levels: tuple[str, ...]
    build_level: int | None = None
    """The SLSA build level the VSA states (None: none); one at most, or the VSA is unreadable."""


def read_vsa(statement: Statement) -> VerificationSummary:
    """The VSA view of ``statement``; :class:`UnknownEvidence` if it is not a VSA v1."""
    if statement.predicate_type != VSA_V1:
        raise UnknownEvidence(f"predicate type {statement.predicate_type!r} is not a SLSA VSA ({VSA_V1})")
    what = "verification summary"
    pred = statement.predicate
    verifier = _obj(pred.get("verifier"), f"{what} verifier")
    policy = _obj(pred.get("policy", {}), f"{what} policy")
    raw_inputs = pred.get("inputAttestations", [])
    if not isinstance(raw_inputs, list):
        raise MalformedEvidence(f"{what} inputAttestations is not a list")
    levels = pred.get("verifiedLevels", [])
    if not isinstance(levels, list) or not all(isinstance(x, str) for x in _bounded(levels, MAX_DIGESTS, what,
                                                                                   "verified levels")):
        raise MalformedEvidence(f"{what} verifiedLevels is not a list of strings")
    verified = _time(pred.get("timeVerified"), f"{what} timeVerified")
    if verified is None:
        raise MalformedEvidence(f"{what} has no timeVerified")
    return VerificationSummary(
        verifier_id=_str(verifier.get("id"), f"{what} verifier.id"),
        time_verified=verified,
        resource_uri=_str(pred.get("resourceUri"), f"{what} resourceUri"),
        policy_uri=_str(policy.get("uri"), f"{what} policy.uri", optional=True),
        policy_digest=_digest_set(policy.get("digest", {}), f"{what} policy.digest"),
        input_attestations=tuple(_dependency(d, f"{what} inputAttestations[{i}]")
                                 for i, d in enumerate(_bounded(raw_inputs, MAX_DEPENDENCIES, what,
                                                                "input attestations"))),
        result=_str(pred.get("verificationResult"), f"{what} verificationResult"),
        levels=tuple(levels),
        build_level=build_level(levels, what=f"{what} verifiedLevels"),
    )
