"""``attest status``: what runs where, since when, from verified deployment records alone (issue 19)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from attest.cli._options import emit_json

if TYPE_CHECKING:
    from verify.path.status import Status


@click.command()
@click.option("--store", required=True, metavar="STORE", help="The store the deployment records are published to.")
@click.option("--policy", "policy_path", required=True, type=click.Path(path_type=Path), metavar="FILE",
              help="The policy: the environments (stages with deployed-by) and who signs their records.")
@click.option("--env", "environment", metavar="ENV", help="Only this environment (a stage with deployed-by).")
@click.option("--format", "output_format", type=click.Choice(["table", "json"]), default="table", show_default=True,
              help="A table for people, or JSON on stdout for machines.")
def status(store: str, policy_path: Path, environment: str | None, output_format: str) -> None:
    """Show what runs in each environment: per component, the release, commit, artefacts, since when, who
    signed the record and its kind; the components a later environment does not run yet; a last deployment
    that failed.

    \b
    Only deployment records that verify count: signed by a deployer of their
    environment (stages.ENV.deployed-by), filed in the store's deployment
    index under their own signed time and digest. Of each component the
    newest such succeeded record is read first and reading stops there, so a
    long history costs one listing. A record that does not count is left out,
    counted, and its reason given. Nothing is asked of any server but the
    store; nothing is trusted but the policy's keys.

    \b
    Example:
      attest status --store s3://acme-attest/app --policy policy/attest.yaml --env prd

    Exit codes: 0 answered (also when nothing is deployed), 2 a usage error
    (an ENV the policy does not name), 3 the policy or the store unreadable.
    """
    from attest.gate import newest_first
    from attest.stores import from_uri
    from verify.errors import RequestError
    from verify.formats.evidence import EvidenceBudget
    from verify.path.running import running
    from verify.path.status import environments
    from verify.path.status import status as build_status
    from verify.policy_file import load_policy

    policy = load_policy(policy_path)
    names = environments(policy)
    if environment is not None:
        if environment not in names:
            raise RequestError(f"--env {environment!r} is not a stage of the policy whose deployment records someone "
                               f"signs (stages with deployed-by: {', '.join(names) or 'none'})")
        names = [environment]
    target = from_uri(store)
    listing = target.deployments(environment)
    found = {}
    for env in names:
        here = [f for f in listing if f.environment == env]
        # each component on its own budgets: junk piled on one cannot blank out the others
        found[env] = {name: running(newest_first(target, here, name, EvidenceBudget()), policy, policy.trust_run(),
                                    environment=env, component=name)
                      for name in sorted({f.component for f in here})}
    unknown: dict[str, int] = {}
    for filed in listing:
        if filed.environment not in names:
            unknown[filed.environment] = unknown.get(filed.environment, 0) + 1
    result = build_status(policy, found, unknown=unknown, indexed=len(listing))
    if output_format == "json":
        emit_json({"store": target.uri, "policy": str(policy_path), **result.to_dict()})
    else:
        _table(result, target.uri)


def _table(result: Status, store: str) -> None:
    from verify.formats.encoding import printable

    if result.empty:
        click.echo(f"nothing deployed: {printable(store)} holds no deployment record")
        return
    rows: list[tuple[str, ...]] = [("ENV", "COMPONENT", "RELEASE", "COMMIT", "SINCE", "KIND", "SIGNER")]
    notes: list[str] = []
    for env, comps in result.environments.items():
        for name, now in comps.items():
            current = now.current
            if current is None:
                rows.append((env, name, "-", "-", "-", "-", "(nothing known to run)"))
            else:
                record = current.record
                rows.append((env, name, record.release, (record.commit or "?")[:12],
                             record.time.strftime("%Y-%m-%d %H:%M:%SZ"), record.kind, current.signer))
            if now.failed:
                failed = now.failed[0].record
                notes.append(f"{env} {name}: the last deployment failed (release {failed.release}, "
                             f"{failed.time.strftime('%Y-%m-%d %H:%M:%SZ')}); it still runs what it ran")
    widths = [max(len(printable(row[i])) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        click.echo("  ".join(printable(cell).ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
    for behind in result.pending:
        runs = f"runs {behind.behind_release}" if behind.behind_release else "runs nothing"
        notes.append(f"{behind.behind} is behind {behind.ahead}: {behind.component} {behind.ahead_release} is not in "
                     f"{behind.behind} yet ({behind.behind} {runs})")
    if result.ignored:
        notes.append(f"{len(result.ignored)} record(s) did not count: {result.ignored[0]}")
    for note in notes:
        click.echo(printable(note))

