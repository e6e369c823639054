"""verify.audit._whole.out_of_order: the gate's order rule asked of every succeeded deployment record of the history
(each component its release needs ran that release's artefacts in the environment, by its newest succeeded record
dated before it). Found by bisection; these tests hold it to the rule read the plain way, record by record."""

from __future__ import annotations

import random
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

import pytest

from verify.audit._check import _Deployment
from verify.audit._whole import out_of_order
from verify.audit.report import Anomaly, ReleaseComponent, ReleaseRecord
from verify.path.order import needs_of

T0 = datetime(2024, 5, 1, tzinfo=UTC)


def plainly(placed: Mapping[str, _Deployment], releases: Mapping[str, ReleaseRecord]) -> set[tuple[str, str, str]]:
    """(artefact, environment, the release the needed component ran, or "") of each need a record did not meet: the
    rule read record by record, every earlier record looked at."""
    succeeded = [d for d in placed.values() if d.status == "succeeded"]
    unmet: set[tuple[str, str, str]] = set()
    for record in succeeded:
        release = releases.get(record.release_sha256)
        parts = {part.name: part for part in release.components} if release is not None else {}
        for name in needs_of({part.name: part.needs for part in parts.values()}, record.component):
            earlier = sorted((d for d in succeeded if d.environment == record.environment and d.component == name
                              and d.time < record.time), key=lambda d: (d.time, d.line_sha256))
            if earlier and earlier[-1].artifacts == frozenset(sha for _, sha in parts[name].artifacts):
                continue
            unmet |= {(sha, record.environment, earlier[-1].release if earlier else "") for sha in record.artifacts}
    return unmet


def flagged(found: Mapping[str, list[Anomaly]]) -> set[tuple[str, str, str]]:
    said = set()
    for sha, anomalies in found.items():
        for anomaly in anomalies:
            assert anomaly.kind == "out-of-order" and anomaly.sha256 == sha
            ran = anomaly.message.split("it ran ", 1)[1].split(" of release ", 1)[1].split(":", 1)[0] \
                if "when it ran " in anomaly.message else ""
            said.add((sha, anomaly.step, ran))
    return said


def history(seed: int) -> tuple[dict[str, _Deployment], dict[str, ReleaseRecord]]:
    """Releases of up to three stacks (infra, db, app; each needing the one before, or not), deployed to two
    environments in a shuffled order at times that often tie, some failed, some naming a release no manifest
    among the sources has."""
    rng = random.Random(seed)
    stacks = ("infra", "db", "app")
    placed: dict[str, _Deployment] = {}
    releases: dict[str, ReleaseRecord] = {}
    for r in range(rng.randint(1, 40)):
        line = f"{r:064x}"
        chained = rng.random() < 0.8
        parts = tuple(ReleaseComponent(name=name, source=None, commit=None, provenance="",
                                       artifacts=((name, f"{r:032x}{i:032x}"),),
                                       needs=(stacks[i - 1],) if i and chained else ())
                      for i, name in enumerate(stacks[:rng.randint(1, 3)]))
        if rng.random() < 0.9:
            releases[line] = ReleaseRecord(name=f"r{r}", created=T0, signers=("rm",), attestation="", components=parts)
        for env in ("stg", "prd"):
            for part in rng.sample(parts, rng.randint(0, len(parts))):
                digest = f"{len(placed):064x}"
                placed[digest] = _Deployment(environment=env, status="failed" if rng.random() < 0.1 else "succeeded",
                                             time=T0 + timedelta(minutes=rng.randint(0, 60)), release=f"r{r}",
                                             component=part.name, kind="deploy", release_sha256=line,
                                             artifacts=frozenset(sha for _, sha in part.artifacts), line_sha256=digest)
    return placed, releases


@pytest.mark.parametrize("seed", range(60))
def test_every_record_is_judged_as_the_rule_reads_record_by_record(seed: int) -> None:
    placed, releases = history(seed)
    assert flagged(out_of_order(placed, releases)) == plainly(placed, releases)


def test_a_record_at_the_very_time_of_the_stack_it_needs_did_not_follow_it() -> None:
    """"Dated before it": a tie is not before (what the histories above often have, shown once by itself)."""
    infra = ReleaseComponent(name="infra", source=None, commit=None, provenance="", artifacts=(("i", "1" * 64),))
    app = ReleaseComponent(name="app", source=None, commit=None, provenance="", artifacts=(("a", "2" * 64),),
                           needs=("infra",))
    release = ReleaseRecord(name="r1", created=T0, signers=("rm",), attestation="", components=(infra, app))

    def deployed(part: ReleaseComponent, minutes: int) -> _Deployment:
        return _Deployment(environment="prd", status="succeeded", time=T0 + timedelta(minutes=minutes), release="r1",
                           component=part.name, kind="deploy", release_sha256="f" * 64,
                           artifacts=frozenset({part.artifacts[0][1]}), line_sha256=part.name)

    at_once = out_of_order({"i": deployed(infra, 5), "a": deployed(app, 5)}, {"f" * 64: release})
    assert set(at_once) == {"2" * 64} and "infra had not run there" in at_once["2" * 64][0].message
    assert out_of_order({"i": deployed(infra, 4), "a": deployed(app, 5)}, {"f" * 64: release}) == {}
