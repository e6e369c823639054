"""What runs in an environment: the latest deployment record of a component that its environment's
deployers signed.

A store files every deployment record twice: under each of its artefacts (where the gate and the audit
find it) and in a deployment index by environment, component, time and digest (where the newest is
found without reading the rest). The index's names are hints, like everything in a store: a record
counts only once it verified (:func:`trusted_deployment`), and only under the name its signed fields
give it. So records are read newest first by name, and the first succeeded one that verifies and is
filed under its own time and digest is the one that runs: no record filed under another name can make
an older one look newer, and no name makes a record count.

  :func:`trusted_deployment` one record: signed by an identity of ``stages.<env>.deployed-by``, read
                             strictly, for the environment and component asked
  :func:`running`            the newest succeeded record of one component in one environment, the failed
                             ones newer than it, and every record read that did not count, with why
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from verify.errors import EvidenceRejected, MalformedEvidence, PolicyError, PolicyViolation
from verify.formats.deployment import DEPLOYMENT_V1, Deployment, filing_time, read_deployment
from verify.formats.encoding import format_time
from verify.formats.evidence import Evidence
from verify.policy import Policy
from verify.signers import TrustRun, find_signers

__all__ = ["Deployed", "Filed", "Running", "deployers", "running", "trusted_deployment"]


@dataclass(frozen=True)
class Deployed:
    """A deployment record that verified: signed by a deployer of its environment, read strictly."""

    record: Deployment
    signer: str
    """The identity of ``stages.<env>.deployed-by`` that signed it."""
    source: str
    sha256: str
    """sha256 of its envelope line: how a later record's ``replaces`` names it."""

    @property
    def artifact_digests(self) -> frozenset[str]:
        """The sha256 of every artefact the record names: what ran."""
        return frozenset(a.digest["sha256"] for a in self.record.artifacts)

    def to_dict(self) -> dict[str, object]:
        record = self.record
        return {"release": record.release, "releaseDigest": {"sha256": record.release_sha256},
                "status": record.status, "kind": record.kind, "since": record.time.isoformat(),
                "signer": self.signer, "record": self.source, "recordDigest": {"sha256": self.sha256},
                "artifacts": [{"name": a.name, "digest": dict(a.digest)} for a in record.artifacts]}


def deployers(policy: Policy, environment: str) -> list[str]:
    """The identities that sign ``environment``'s deployment records; a stage with none cannot answer."""
    rule = policy.stages.get(environment)
    if rule is None or not rule.deployed_by:
        raise PolicyError(f"policy {policy.uri}: stage {environment!r} names no identity that signs its deployment "
                          f"records (stages.{environment}.deployed-by), so what runs there cannot be known")
    return list(rule.deployed_by)


def trusted_deployment(item: Evidence, policy: Policy, run: TrustRun, *, environment: str,
                       component: str) -> Deployed:
    """``item`` as a deployment record of ``component`` in ``environment`` signed by one of its deployers;
    :class:`EvidenceRejected` saying why not (an untrusted signature, another environment or component)."""
    signers = [policy.identities[name] for name in deployers(policy, environment)]
    signed = find_signers(item, signers, run)
    statement = item.statement()
    if statement.predicate_type != DEPLOYMENT_V1:
        raise MalformedEvidence(f"{item.source} is not a deployment record ({statement.predicate_type})")
    record = read_deployment(statement)
    if run.in_the_future(record.time):
        raise PolicyViolation(f"{item.source} is dated {format_time(record.time)}, after the time of this verification "
                              f"({format_time(run.at)}): a deployer's clock is ahead, or the time is forged; it is not "
                              "counted")
    if (record.environment, record.component) != (environment, component):
        raise PolicyViolation(f"{item.source} records {record.component!r} in {record.environment!r}, not "
                              f"{component!r} in {environment!r}")
    return Deployed(record=record, signer=signed[0].name, source=item.source, sha256=item.digest)


@dataclass(frozen=True)
class Filed:
    """One entry of the deployment index, as its name claims, and how to read it."""

    time: str
    """The claimed timeDeployed, as :func:`~verify.formats.deployment.filing_time` writes it."""
    sha256: str
    """The claimed sha256 of the record's envelope line."""
    read: Callable[[], Sequence[Evidence | MalformedEvidence]]
    """The record's evidence (one envelope), read when it is needed."""


@dataclass(frozen=True)
class Running:
    """What runs of one component in one environment, from the records read newest first."""

    environment: str
    component: str
    current: Deployed | None
    """The newest succeeded record that verified: what runs. None: nothing known to run."""
    failed: tuple[Deployed, ...] = ()
    """Failed records newer than ``current``, newest first: a last deployment that failed."""
    ignored: tuple[str, ...] = ()
    """Why each record read that did not count was not counted (one sentence each)."""
    read: int = 0


def running(filed: Iterable[Filed], policy: Policy, run: TrustRun, *, environment: str, component: str) -> Running:
    """The newest succeeded record among ``filed`` (given newest first by name) that verifies, and is filed
    under its own signed time and digest; reading stops there."""
    deployers(policy, environment)  # a stage with no deployers answers nothing, rather than "nothing runs"
    failed: list[Deployed] = []
    ignored: list[str] = []
    count = 0
    for entry in filed:
        count += 1
        try:
            found = _one(entry, policy, run, environment=environment, component=component)
        except EvidenceRejected as e:
            ignored.append(str(e))
            continue
        if found.record.status == "succeeded":
            return Running(environment, component, found, tuple(failed), tuple(ignored), count)
        failed.append(found)
    return Running(environment, component, None, tuple(failed), tuple(ignored), count)


def _one(entry: Filed, policy: Policy, run: TrustRun, *, environment: str, component: str) -> Deployed:
    """One index entry, trusted and filed under its own name (else it could pose as newer than it is)."""
    items = entry.read()
    if len(items) != 1:
        raise MalformedEvidence(f"an entry of the deployment index holds {len(items)} envelopes, not one record")
    item = items[0]
    if isinstance(item, MalformedEvidence):
        raise item
    found = trusted_deployment(item, policy, run, environment=environment, component=component)
    if item.digest != entry.sha256 or filing_time(found.record.time) != entry.time:
        raise PolicyViolation(f"{item.source} is filed under another time or digest than it was signed with "
                              f"({found.record.time.isoformat()}); it is not counted")
    return found
