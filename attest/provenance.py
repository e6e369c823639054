"""The in-toto Statement v1 with a SLSA Provenance v1 predicate that ``attest build`` signs."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from attest.collect import GitFacts, Lockfile, Platform
from verify.formats.statement import PROVENANCE_V1, STATEMENT_V1

__all__ = ["BUILD_TYPE", "BuildRecord", "statement"]

#: The buildType of provenance written by ``attest build`` (documented in docs/build-type.md).
BUILD_TYPE = "https://attest.dev/build-type/command/v1"
#: The builder id used when no CI platform is recognised and none is configured.
LOCAL_BUILDER = "attest:builder:local"
#: Locked package entries listed in resolvedDependencies at most (keeps provenance far below verify's limits).
MAX_PACKAGE_ENTRIES = 20_000

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BuildRecord:
    git: GitFacts
    platform: Platform
    lockfiles: Sequence[Lockfile]
    command: Sequence[str]
    artifact_patterns: Sequence[str]
    subjects: Sequence[tuple[str, Mapping[str, str]]]
    source_date_epoch: int
    started: datetime
    finished: datetime
    invocation_id: str
    builder_id: str | None = None
    pass_credentials: bool = False
    attest_version: str = ""
    working_directory: str = ""
    """Where CMD ran, relative to the repository root ('/'-separated; empty: the root)."""


def _time(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def package_dependencies(lockfiles: Sequence[Lockfile], *,
                         limit: int = MAX_PACKAGE_ENTRIES) -> list[dict[str, Any]]:
    """The locked packages as resource descriptors, after the lockfiles (DESIGN: Formats).

    ``{"uri": "pkg:...", "digest": {...}, "annotations": {"lockfile": PATH}}``;
    ``digest`` is left out where the lockfile gives no hash. At most ``limit``
    entries are listed (the lockfile digests bind the rest).
    """
    entries: list[dict[str, Any]] = []
    for lock in lockfiles:
        for package in lock.packages:
            if len(entries) == limit:
                log.warning("warning: the lockfiles lock more than %d package files; only the first %d are "
                            "listed in the provenance (the lockfile digests bind them all)", limit, limit)
                return entries
            entry: dict[str, Any] = {"uri": package.purl}
            if package.digest:
                entry["digest"] = dict(package.digest)
            entry["annotations"] = {"lockfile": lock.path}
            entries.append(entry)
    return entries


def statement(record: BuildRecord) -> dict[str, Any]:
    """The statement as a JSON-ready dict (DESIGN: Formats)."""
    git = record.git
    repo = f"git+{git.repo_uri}"
    dependencies: list[dict[str, Any]] = [{"uri": f"{repo}@{git.ref}", "digest": {"gitCommit": git.commit}}]
    for lock in record.lockfiles:
        dependencies.append({"name": lock.path, "uri": f"{repo}@{git.commit}#{lock.path}",
                             "digest": dict(lock.digests)})
    dependencies.extend(package_dependencies(record.lockfiles))
    internal: dict[str, Any] = {
        "SOURCE_DATE_EPOCH": record.source_date_epoch,
        "commitTime": _time(datetime.fromtimestamp(git.commit_time, UTC)),
        "dirty": git.dirty,
        "platform": record.platform.name,
        "passAwsEnv": record.pass_credentials,
    }
    if record.attest_version:
        internal["attestVersion"] = record.attest_version
    if record.platform.parameters:
        internal["environment"] = dict(record.platform.parameters)
    # a CI platform's own builder id wins: --builder-id names the builder only where none is recognised (a build of
    # one CodeBuild project must never pass as another's)
    builder_id = record.platform.builder_id or record.builder_id or LOCAL_BUILDER
    return {
        "_type": STATEMENT_V1,
        "subject": [{"name": name, "digest": dict(digests)} for name, digests in record.subjects],
        "predicateType": PROVENANCE_V1,
        "predicate": {
            "buildDefinition": {
                "buildType": BUILD_TYPE,
                "externalParameters": {
                    "source": {"uri": repo, "ref": git.ref},
                    "command": list(record.command),
                    "artifacts": list(record.artifact_patterns),
                    "lockfiles": [lock.path for lock in record.lockfiles],
                    **({"workingDirectory": record.working_directory}
                       if record.working_directory not in ("", ".") else {}),
                },
                "internalParameters": internal,
                "resolvedDependencies": dependencies,
            },
            "runDetails": {
                "builder": {"id": builder_id},
                "metadata": {
                    "invocationId": record.invocation_id,
                    "startedOn": _time(record.started),
                    "finishedOn": _time(record.finished),
                },
            },
        },
    }


def validate_with_in_toto(document: Mapping[str, Any]) -> None:
    """Check ``document`` against in-toto-attestation's Statement v1 and SLSA Provenance v1 schemas.

    Raises ValueError naming the first problem. (Used on what attest writes,
    as a second opinion on its shape; never on what it reads.)
    """
    from google.protobuf import json_format
    from in_toto_attestation.predicates.provenance.v1 import provenance_pb2
    from in_toto_attestation.v1 import statement_pb2
    from in_toto_attestation.v1.statement import Statement

    try:
        proto = json_format.ParseDict(dict(document), statement_pb2.Statement())
        Statement.copy_from_pb(proto).validate()
        json_format.ParseDict(dict(document["predicate"]), provenance_pb2.Provenance())
    except json_format.ParseError as e:
        raise ValueError(str(e)) from e
