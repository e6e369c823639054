"""The gate of the path: a release's gate (:func:`verify.release_gate.decide_release`) with the rules that
read deployment records on top, for the kind of deployment asked.

  deploy    the stage's requirements (earlier stages' VSAs, approvals) and its ``require-deployed``
            stages (:func:`verify.path.order.check_deployed`)
  rollback  instead of them: the release ran in this environment before (:func:`verify.path.kinds.check_rollback`)
  hotfix    instead of them: the hotfix approvals of this manifest (:func:`verify.path.kinds.check_hotfix`)

For every kind, the provenance rules hold, and with ``component``, every component it needs runs in the
environment at this release's artefacts (:func:`verify.path.order.check_order`). Each rule that held is a
check of the verdict; the first that does not is the refusal.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from typing import Literal

from verify.errors import EvidenceRejected, PolicyError, PolicyViolation, RequestError
from verify.formats.release import Release, ReleasePart
from verify.gate import Found, Gate
from verify.path.kinds import check_hotfix, check_rollback
from verify.path.order import Indexed, check_deployed, check_order, needed
from verify.path.running import Deployed, Running
from verify.policy import Policy, StageRule
from verify.release_gate import ReleaseVerdict, decide_release
from verify.signers import TrustRun
from verify.verifier import Check

__all__ = ["Kind", "decide_path"]

Kind = Literal["deploy", "rollback", "hotfix"]


def decide_path(gate: Gate, manifest: Found, *, lookup: Callable[[str], Found], run: TrustRun,
                indexed: Indexed, running_of: Callable[[str], Running] | None = None, component: str | None = None,
                same_commit: bool = False, kind: Kind = "deploy") -> ReleaseVerdict:
    """The release gate (for ``component`` only, if given), then the path's rules for the gate's stage and
    ``kind``; ``running_of`` gives what runs of a component in the stage, ``indexed`` whether the store's deployment
    index files a record (one it does not never counts as having run)."""
    stage = gate.stage
    if kind != "deploy":
        if stage is None:
            raise RequestError(f"--{kind} needs --stage ENV, the environment the release goes to")
        # the stage's ordinary requirements give way to the kind's own (checked below)
        gate = replace(gate, stage=replace(stage, require_vsa=(), require_approvals=None, require_deployed=()))
    verdict = decide_release(gate, manifest, lookup=lookup, run=run, same_commit=same_commit, only=component)
    assert verdict.release is not None
    release, checks = verdict.release, list(verdict.checks)
    parts = [p for p in release.components if component is None or p.name == component]
    relied: list[tuple[str, str]] = []
    if stage is not None:
        rule = {"rollback": "rollback", "hotfix": "hotfix"}.get(kind, "deployed")
        with _as_check(rule, {"stage": stage.name, "kind": kind}, checks):
            held = _stage_check(kind, stage, verdict, parts, policy=gate.policy, run=run, lookup=lookup,
                                indexed=indexed, relied=relied)
        checks += [held] if held is not None else []
    if component is not None and needed(release, component):
        with _as_check("order", {"component": component}, checks):
            checks.append(_order(release, component, gate, running_of))
    return replace(verdict, checks=tuple(checks), relied=tuple(relied))


@contextlib.contextmanager
def _as_check(name: str, expected: object, held: Sequence[Check]) -> Iterator[None]:
    """A rule of the path that refuses says so as a failed check after those that held: what ``--format json``
    lists, as it lists a failed provenance check."""
    try:
        yield
    except EvidenceRejected as e:
        if e.checks:
            raise
        raise PolicyViolation(str(e), checks=(*held, Check(name, False, expected, str(e)))) from e


def _stage_check(kind: Kind, stage: StageRule, verdict: ReleaseVerdict, parts: Sequence[ReleasePart], *,
                 policy: Policy, run: TrustRun, lookup: Callable[[str], Found], indexed: Indexed,
                 relied: list[tuple[str, str]]) -> Check | None:
    """The kind's own requirement of the stage (for a deploy: its ``require-deployed``), as a check that held;
    ``relied`` gets (source, sha256) of each attestation it rests on (a release VSA names them)."""
    assert verdict.release is not None
    if kind == "rollback":
        ran = check_rollback(verdict.release, parts, environment=stage.name, policy=policy, run=run, lookup=lookup,
                             indexed=indexed)
        relied += [(d.source, d.sha256) for d in ran]
        return _records("rollback", {"ran-in": stage.name}, ran)
    if kind == "hotfix":
        approvals = check_hotfix(verdict.release, verdict.manifest_sha256, stage=stage, policy=policy, run=run,
                                 lookup=lookup)
        relied += [(a.source, a.sha256) for a in approvals]
        rule = {"count": stage.hotfix.count, "signed-by": list(stage.hotfix.signed_by)} if stage.hotfix else None
        return Check("hotfix", True, {"stage": stage.name, "approvals": rule}, [a.to_dict() for a in approvals])
    if stage.require_deployed:
        deployed = check_deployed(parts, stages=stage.require_deployed, policy=policy, run=run, lookup=lookup,
                                  indexed=indexed)
        relied += [(d.source, d.sha256) for d in deployed]
        return _records("deployed", {"stages": list(stage.require_deployed)}, deployed)
    return None


def _records(name: str, expected: dict[str, object], found: Sequence[Deployed]) -> Check:
    return Check(name, True, expected, [{"component": d.record.component, "environment": d.record.environment,
                                         "release": d.record.release, "record": d.source, "signer": d.signer}
                                        for d in found])


def _order(release: Release, component: str, gate: Gate, running_of: Callable[[str], Running] | None) -> Check:
    """The order rule for ``component`` in the gate's stage, as a check that held."""
    if gate.stage is None:
        raise RequestError(f"{component} needs {', '.join(p.name for p in needed(release, component))}: pass "
                           "--stage ENV, the environment it is deployed to, whose deployment records say whether "
                           "they run there")
    if running_of is None:
        raise PolicyError("the order of a release's components cannot be checked without the deployment index")
    now = check_order(release, component, environment=gate.stage.name, running_of=running_of)
    return Check("order", True, {"component": component, "needs": [r.component for r in now]},
                 [{"component": r.component, "release": r.current.record.release if r.current else None,
                   "record": r.current.source if r.current else None} for r in now])
