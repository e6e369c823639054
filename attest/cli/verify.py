"""``attest verify``: the pipeline gate."""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import click

from attest.cli._options import emit_json, format_option, progress
from verify.errors import EvidenceRejected, MalformedEvidence
from verify.evidence import Evidence, load_evidence, read_evidence_file
from verify.policy import Policy
from verify.verifier import Check, Verdict, preferred_algorithms, verify_artifact

_DIGEST_ARG = re.compile(r"sha256:([0-9a-f]{64})")


@click.command()
@click.argument("artifact", metavar="ARTIFACT")
@click.option("--attestation", "attestations", multiple=True, type=click.Path(path_type=Path),
              metavar="FILE", help="A .intoto.jsonl file or a Sigstore bundle. Repeatable.")
@click.option("--store", metavar="STORE", help="Find attestations by the artefact's sha256 in a store (directory).")
@click.option("--policy", "policy_path", type=click.Path(path_type=Path), metavar="FILE",
              help="Policy file naming trusted identities and rules (see docs/policy.md).")
@click.option("--key", "keys", multiple=True, type=click.Path(path_type=Path), metavar="PEM",
              help="A trusted public key (PEM). Repeatable.")
@click.option("--source-uri", metavar="URI", help="Required source repository (github.com/acme/app or any URL form).")
@click.option("--source-branch", metavar="BRANCH", help="Required branch (main matches refs/heads/main).")
@click.option("--commit", metavar="SHA", help="Required commit (full or at least 7 hex digits).")
@click.option("--builder-id", metavar="ID", help="Required runDetails.builder.id.")
@click.option("--predicate-type", metavar="TYPE", help="Accept this predicate type instead of SLSA provenance.")
@format_option
def verify(artifact: str, attestations: tuple[Path, ...], store: str | None, policy_path: Path | None,
           keys: tuple[Path, ...], source_uri: str | None, source_branch: str | None, commit: str | None,
           builder_id: str | None, predicate_type: str | None, output_format: str) -> None:
    """Verify ARTIFACT (a file, or sha256:HEX) against signed provenance.

    Passes (exit 0) only if a provenance signed by a pinned identity names the
    artefact's digest and satisfies every rule; otherwise exits 1 with one
    sentence saying which check failed.

    \b
    Example:
      attest verify dist/app.tar.gz --attestation provenance.intoto.jsonl \\
          --key dev-build.pub.pem --source-uri github.com/acme/app --source-branch main
    """
    from verify.errors import InputError
    from verify.policy import empty_policy, load_policy
    from verify.trust import Identity, load_public_key_file

    if not keys and policy_path is None:
        raise click.UsageError("no trusted identity: pass --key PEM or --policy FILE (verification without a "
                               "pinned identity is refused)")
    if not attestations and not store:
        raise click.UsageError("no evidence: pass --attestation FILE or --store STORE")
    policy = load_policy(policy_path) if policy_path else empty_policy()
    if keys:
        policy = policy.with_identity(Identity(name="--key", keys=tuple(load_public_key_file(k) for k in keys)))
    policy = policy.with_rules(commit=commit, builders=(builder_id,) if builder_id else (),
                               predicate_type=predicate_type)
    if source_uri or source_branch:
        from dataclasses import replace

        rule = policy.provenance.source
        policy = policy.with_rules(source=replace(rule, uri=source_uri or rule.uri,
                                                  branches=(source_branch,) if source_branch else rule.branches))

    digest_arg = _DIGEST_ARG.fullmatch(artifact)
    path = None if digest_arg else Path(artifact)
    if path is not None and not path.is_file():
        raise InputError(f"artefact {artifact} does not exist or is not a file; give a file or sha256:<hex>")
    available = ["sha256"] if digest_arg else ["blake3", "sha256", "sha384", "sha512"]

    cancel = threading.Event()
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="attest-verify") as pool:
        known: dict[str, str] = {"sha256": digest_arg.group(1)} if digest_arg else {}

        def start(algorithms: list[str]) -> Future[dict[str, str]]:
            if path is None:
                done: Future[dict[str, str]] = Future()
                done.set_result(known)
                return done
            return pool.submit(_hash, path, algorithms, cancel)

        try:
            verdict = _run(artifact, path, attestations, store, policy, start, available)
        except BaseException as e:
            cancel.set()  # do not wait for the rest of a large file when the answer is already no
            if not isinstance(e, EvidenceRejected):
                raise
            if output_format == "json":
                emit_json({"verified": False, "artifact": artifact, "error": str(e),
                           "checks": [c.to_dict() for c in e.checks if isinstance(c, Check)]})
            raise EvidenceRejected(f"verification failed for {artifact}: {e}", checks=e.checks) from e
    if output_format == "json":
        emit_json(verdict.to_dict())
    else:
        prov = verdict.provenance
        click.echo(f"PASS {artifact}")
        click.echo(f"  subject   {verdict.subject.name or '(unnamed)'}")
        click.echo(f"  signed by {verdict.signer} ({verdict.evidence.source})")
        if prov is not None:
            click.echo(f"  source    {prov.source_uri} {prov.source_ref or ''} @ {prov.commit}")
            click.echo(f"  builder   {prov.builder_id}")
        click.echo(f"  checks    {', '.join(c.name for c in verdict.checks)}")


def _run(artifact: str, path: Path | None, attestations: tuple[Path, ...], store: str | None, policy: Policy,
         start: Callable[[list[str]], Future[dict[str, str]]], available: list[str]) -> Verdict:
    """Gather the evidence, start hashing as early as possible, and run the verification pipeline."""
    evidence: list[Evidence | MalformedEvidence] = []
    for file in attestations:
        evidence.extend(load_evidence(read_evidence_file(file), source=str(file)))
    if store:
        # the store is indexed by sha256: hash first, with every algorithm we may need, in one read
        hashing = start(["sha256", "blake3"] if path else [])
        sha256 = hashing.result()["sha256"]
        from attest.stores import from_uri as store_from_uri

        for uri, data in store_from_uri(store).attestations(sha256):
            evidence.extend(load_evidence(data, source=uri))
        if not evidence:
            raise EvidenceRejected(f"store {store} holds no attestation for sha256:{sha256}; "
                                   "was it built and published with attest build --publish?")
    else:
        # start hashing now, with the digest the evidence asks for, while signatures are checked
        hashing = start(preferred_algorithms([e for e in evidence if isinstance(e, Evidence)], policy,
                                             available=available))
    return verify_artifact(artifact, evidence, policy=policy, digests=hashing.result)


def _hash(path: Path, algorithms: list[str], cancel: threading.Event) -> dict[str, str]:
    from verify.digests import hash_file

    with progress(f"hashing {path.name}", path.stat().st_size) as advance:
        return hash_file(path, algorithms, progress=advance, cancel=cancel)
