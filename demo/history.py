"""A year of a team's path to production, signed as its pipelines would have signed it, for docs/audit.md.

    python -m demo.history --keys keys --weeks 52 store

Real pipelines take a year to write this; an auditor's guide needs it in seconds. Every attestation is made by
attest's own statement builders and signed with the keys in ``--keys`` (``attest key generate``: dev-build,
release-manager, stg-verifier, prd-verifier, stg-deployer, prd-deployer), and published with attest's store, as
``attest build``, ``release create``, ``verify --emit-vsa`` and ``deploy record`` publish them. Only the times are
made up: a week per release, ending last Monday.

Two stacks, infra and app (app needs infra): app is built every week, infra every fourth. Each release goes
through stg (deployed, then verified), then prd (verified, requiring stg's VSA, then deployed). On the way, what
happens to teams: a prd deployment that fails and is fixed the same day, one that is rolled back to the release
before, and one that fails and waits a week for the next release. And what an audit is for: an app built from a
branch nobody reviews and verified for prd without stg (``disallowed-source`` and ``skipped-stage`` under the
guide's policy), and a deployment record in the store signed by a key the policy does not know
(``untrusted-signer``).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from attest.collect import GitFacts, Platform
from attest.errors import AttestError
from attest.provenance import BuildRecord, statement
from attest.signers import sign_envelope
from attest.signers.key import LocalKeySigner, load
from attest.stores.layout import deployment_key
from attest.stores.local import LocalStore
from attest.summaries import Component, deployment_statement, release_statement, stage_uri, vsa_statement
from verify.formats.envelope import INTOTO_PAYLOAD_TYPE

SIGNERS = ("dev-build", "release-manager", "stg-verifier", "prd-verifier", "stg-deployer", "prd-deployer")
#: Weeks (counted from the first) with something to find or to measure. infra is built anew every fourth week: app is
#: rolled back in a week that kept the week before's infra (the order rule holds for a rollback too).
FIXED_SAME_DAY, ROLLED_BACK, FAILED_FOR_A_WEEK, DIRECT_TO_PRD, STRAY_RECORD = 9, 21, 31, 40, 44


@dataclass(frozen=True)
class Built:
    """One build of a stack: its artefact and the sha256 of its provenance's envelope line."""

    stack: str
    name: str
    digests: Mapping[str, str]
    provenance: str
    commit: str


class History:
    """The store, the signers, and how to sign and publish each kind of attestation."""

    def __init__(self, store: Path, keys: Path) -> None:
        self.store = LocalStore(store)
        self.signers = {name: load(keys / f"{name}.pem") for name in SIGNERS}
        self.written = 0

    def sign(self, signer: LocalKeySigner, document: dict[str, Any]) -> bytes:
        envelope = sign_envelope(signer, payload_type=INTOTO_PAYLOAD_TYPE, payload=json.dumps(document).encode())
        self.written += 1
        return envelope.to_json_line()

    def publish(self, signer: str, kind: str, document: dict[str, Any], *under: str) -> str:
        """Sign ``document`` as ``signer`` and publish it under each artefact ``under``; the sha256 of its line."""
        line = self.sign(self.signers[signer], document)
        for sha256 in under:
            self.store.put_attestation(sha256, kind, line)
        return hashlib.sha256(line.rstrip(b"\n")).hexdigest()

    def build(self, stack: str, week: int, at: datetime, *, branch: str = "main") -> Built:
        """``stack``'s build of ``week``, committed some hours before ``at``."""
        name = f"dist/{stack}.zip"
        digests = {"sha256": hashlib.sha256(f"{stack} week {week} {branch}\n".encode()).hexdigest()}
        commit = hashlib.sha1(f"{stack} {week} {branch}".encode()).hexdigest()  # noqa: S324 -- a commit id, no trust
        committed = at - timedelta(hours=3 + 11 * (week % 7))
        record = BuildRecord(
            git=GitFacts(root=Path("."), repo_uri=f"https://github.com/acme/{stack}", ref=f"refs/heads/{branch}",
                         commit=commit, commit_time=int(committed.timestamp()), dirty=False),
            platform=Platform(name="codebuild", builder_id=f"arn:aws:codebuild:eu-west-1:111111111111:project/{stack}"),
            lockfiles=[], command=["sh", "build.sh"], artifact_patterns=["dist/"], subjects=[(name, digests)],
            source_date_epoch=int(committed.timestamp()), started=at - timedelta(minutes=6), finished=at,
            invocation_id=f"{stack}-build:{week}")
        provenance = self.publish("dev-build", "provenance", statement(record), digests["sha256"])
        return Built(stack, name, digests, provenance, commit)

    def vsa(self, stage: str, built: Built, at: datetime) -> None:
        """As ``attest verify --emit-vsa`` signs one: naming the provenance verified and the policy."""
        self.publish(f"{stage}-verifier", "vsa", vsa_statement(
            subject_name=built.name, digests=built.digests, verifier_id=f"https://attest.dev/verifier/{stage}",
            resource_uri=stage_uri(stage), policy_uri="file:///policy.yaml",
            policy_digest=hashlib.sha256(b"policy.yaml").hexdigest(), inputs=[("provenance", built.provenance)],
            levels=["SLSA_BUILD_LEVEL_2"], verified_at=at), built.digests["sha256"])

    def release(self, name: str, infra: Built, app: Built, at: datetime) -> str:
        components = [Component(name=b.stack, subjects=[(b.name, b.digests)], provenance_sha256=b.provenance,
                                source=f"https://github.com/acme/{b.stack}", commit=b.commit,
                                needs=("infra",) if b.stack == "app" else ()) for b in (infra, app)]
        return self.publish("release-manager", "release", release_statement(name=name, components=components,
                                                                           created_at=at),
                            infra.digests["sha256"], app.digests["sha256"])

    def deployed(self, env: str, release: tuple[str, str], built: Built, at: datetime, *, status: str = "succeeded",
                 kind: str = "deploy", signer: LocalKeySigner | None = None) -> None:
        """A deployment record, filed as ``attest deploy record`` files it: in the deployment index and under the
        artefact."""
        line = self.sign(signer or self.signers[f"{env}-deployer"], deployment_statement(
            environment=env, release_name=release[0], release_sha256=release[1], component=built.stack,
            artifacts=[(built.name, built.digests)], status=status, kind=kind, deployed_at=at, commit=built.commit))
        self.store.put_deployment(deployment_key(env, built.stack, at, line), line)
        self.store.put_attestation(built.digests["sha256"], "deployment", line)


def write(store: Path, keys: Path, weeks: int, *, now: datetime) -> int:
    """Write ``weeks`` weeks of history into ``store``, the last ending before ``now``; the attestations written."""
    history = History(store, keys)
    monday = (now - timedelta(days=now.weekday() + 7)).replace(hour=9, minute=0, second=0, microsecond=0)
    infra: Built | None = None
    running: dict[str, tuple[tuple[str, str], Built]] = {}
    """What runs in prd: stack -> (release, artefact)."""
    for week in range(weeks):
        day = monday - timedelta(weeks=weeks - 1 - week)
        if infra is None or week % 4 == 0:
            infra = history.build("infra", week, day)
        app = history.build("app", week, day + timedelta(minutes=20))
        name = f"{day:%Y.%m.%d}"
        release = (name, history.release(name, infra, app, day + timedelta(hours=1)))
        new = [b for b in (infra, app) if b.digests["sha256"] not in
               {r[1].digests["sha256"] for r in running.values() if r[1].stack == b.stack}]
        for n, built in enumerate(new):  # stg: deployed in order (infra first), then verified
            history.deployed("stg", release, built, day + timedelta(hours=2, minutes=10 * n))
            history.vsa("stg", built, day + timedelta(hours=5))
        for n, built in enumerate(new):  # prd the next day: verified (stg's VSA required), then deployed
            at = day + timedelta(days=1, minutes=30 * n)
            history.vsa("prd", built, at)
            if built.stack == "app" and week in (FIXED_SAME_DAY, FAILED_FOR_A_WEEK):
                history.deployed("prd", release, built, at + timedelta(minutes=5), status="failed")
                if week == FAILED_FOR_A_WEEK:
                    continue  # prd keeps running the release before until next week's
                at += timedelta(hours=3)
            history.deployed("prd", release, built, at + timedelta(minutes=5))
            if built.stack == "app" and week == ROLLED_BACK and "app" in running:
                before, previous = running["app"]
                history.deployed("prd", before, previous, at + timedelta(hours=20), kind="rollback")
                continue
            running[built.stack] = (release, built)
        if week == DIRECT_TO_PRD:  # built from an unreviewed branch and verified for prd, never for stg
            history.vsa("prd", history.build("app", week, day + timedelta(hours=6), branch="quick-fix"),
                        day + timedelta(hours=7))
        if week == STRAY_RECORD:  # a record in the store that no key of the policy signed
            from cryptography.hazmat.primitives.asymmetric import ec

            stray = LocalKeySigner(ec.generate_private_key(ec.SECP256R1()), name="stray")
            history.deployed("prd", release, app, day + timedelta(days=2), signer=stray)
    return history.written


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("store", type=Path, help="the store to write (a folder)")
    parser.add_argument("--keys", type=Path, required=True, help="the folder of the signers' private keys")
    parser.add_argument("--weeks", type=int, default=52, help="weeks of history, ending last Monday (default 52)")
    args = parser.parse_args()
    try:
        written = write(args.store, args.keys, args.weeks, now=datetime.now(UTC))
    except AttestError as e:
        print(f"history: {e}; make the keys with attest key generate --out {args.keys}/NAME for each of "
              f"{', '.join(SIGNERS)}", file=sys.stderr)
        return 2
    print(f"signed {written} attestations: {args.weeks} weeks of releases of infra and app, in {args.store}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
