"""``attest verify``: the pipeline gate."""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from attest.cli._options import emit_json, format_option, progress
from verify.errors import EvidenceRejected, MalformedEvidence
from verify.evidence import Evidence, load_evidence, read_evidence_file
from verify.policy import Policy
from verify.verifier import Check, Verdict, preferred_algorithms, verify_artifact

if TYPE_CHECKING:
    from verify.trust import Identity

F = TypeVar("F", bound=Callable[..., Any])

_DIGEST_ARG = re.compile(r"sha256:([0-9a-f]{64})")
GITHUB_ISSUER = "https://token.actions.githubusercontent.com"


def sigstore_options(f: F) -> F:
    """Keyless identities, with cosign's flag names and gh's GitHub shorthands, and the trusted root."""
    options = [
        click.option("--certificate-identity", metavar="ID",
                     help="Trust Sigstore bundles whose certificate names exactly this identity (SAN)."),
        click.option("--certificate-identity-regexp", metavar="RE",
                     help="As --certificate-identity, a regular expression that must match the WHOLE "
                          "identity."),
        click.option("--certificate-oidc-issuer", metavar="URL",
                     help=f"The OIDC issuer the certificate must name (GitHub Actions: {GITHUB_ISSUER})."),
        click.option("--github-repo", metavar="OWNER/REPO",
                     help="Trust GitHub Actions signatures made from this repository (its source "
                          "repository extension; and, without --certificate-identity or --signer-workflow, "
                          "a workflow in it)."),
        click.option("--signer-workflow", metavar="OWNER/REPO/.github/workflows/FILE",
                     help="The workflow that must have signed (the certificate's Build Signer URI), e.g. a "
                          "reusable workflow; at any ref unless @REF is given."),
        click.option("--source-ref", metavar="REF",
                     help="The ref the workflow must have run on (refs/heads/main, or a branch name)."),
        click.option("--deny-self-hosted-runners", is_flag=True,
                     help="Refuse signatures made on self-hosted runners."),
        click.option("--trusted-root", type=click.Path(path_type=Path), metavar="FILE",
                     help="Sigstore trusted_root.json to verify bundles against (default: the production "
                          "root shipped with sigstore-python; never refreshed over the network)."),
    ]
    for option in reversed(options):
        f = option(f)
    return f


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
@sigstore_options
@format_option
def verify(artifact: str, attestations: tuple[Path, ...], store: str | None, policy_path: Path | None,
           keys: tuple[Path, ...], source_uri: str | None, source_branch: str | None, commit: str | None,
           builder_id: str | None, predicate_type: str | None, output_format: str, **sigstore: Any) -> None:
    """Verify ARTIFACT (a file, or sha256:HEX) against signed provenance.

    Passes (exit 0) only if a provenance signed by a pinned identity names the
    artefact's digest and satisfies every rule; otherwise exits 1 with one
    sentence saying which check failed. Sigstore bundles are verified offline,
    against --trusted-root or the production root shipped with sigstore-python;
    a bundle that only signs the artefact (cosign sign-blob) passes an
    identity-only check, and no rule that needs a provenance.

    \b
    Examples:
      attest verify dist/app.tar.gz --attestation provenance.intoto.jsonl \\
          --key dev-build.pub.pem --source-uri github.com/acme/app --source-branch main
      attest verify dist/app.tar.gz --attestation app.sigstore.json \\
          --github-repo acme/app --signer-workflow acme/app/.github/workflows/release.yml
    """
    from verify.errors import InputError
    from verify.policy import empty_policy, load_policy
    from verify.trust import Identity, load_public_key_file

    keyless = _sigstore_identity(**sigstore)
    if not keys and policy_path is None and keyless is None:
        raise click.UsageError("no trusted identity: pass --key PEM, --certificate-identity with "
                               "--certificate-oidc-issuer, --github-repo, or --policy FILE (verification "
                               "without a pinned identity is refused)")
    if not attestations and not store:
        raise click.UsageError("no evidence: pass --attestation FILE or --store STORE")
    policy = load_policy(policy_path) if policy_path else empty_policy()
    if keys:
        policy = policy.with_identity(Identity(name="--key", keys=tuple(load_public_key_file(k) for k in keys)))
    if keyless is not None:
        policy = policy.with_identity(keyless)
    if sigstore["trusted_root"] is not None and not sigstore["trusted_root"].is_file():
        from verify.errors import TrustConfigError

        raise TrustConfigError(f"cannot read trusted root {sigstore['trusted_root']}: no such file")
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
            verdict = _run(artifact, path, attestations, store, policy, start, available,
                           trusted_root=sigstore["trusted_root"])
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
        if verdict.statement is None:
            signed = ", ".join(f"{a}:{h}" for a, h in verdict.subject.digest.items())
            click.echo(f"  signed    {signed} (a message signature: identity only, no provenance)")
        else:
            click.echo(f"  subject   {verdict.subject.name or '(unnamed)'}")
        click.echo(f"  signed by {verdict.signer} ({verdict.evidence.source})")
        if prov is not None:
            click.echo(f"  source    {prov.source_uri} {prov.source_ref or ''} @ {prov.commit}")
            click.echo(f"  builder   {prov.builder_id}")
        click.echo(f"  checks    {', '.join(c.name for c in verdict.checks)}")


def _run(artifact: str, path: Path | None, attestations: tuple[Path, ...], store: str | None, policy: Policy,
         start: Callable[[list[str]], Future[dict[str, str]]], available: list[str], *,
         trusted_root: Path | None) -> Verdict:
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
        found = [e for e in evidence if isinstance(e, Evidence)]
        algorithms = preferred_algorithms(found, policy, available=available)
        if any(e.envelope is None for e in found) and "sha256" not in algorithms:
            algorithms.append("sha256")  # a message signature signs the artefact's sha256
        hashing = start(algorithms)
    bundle_verifier = None
    if any(isinstance(e, Evidence) and e.bundle is not None for e in evidence):
        from verify.sigstore import make_bundle_verifier

        _quiet_sigstore_logging()
        bundle_verifier = make_bundle_verifier(trusted_root=trusted_root,
                                               artifact_sha256=lambda: hashing.result()["sha256"])
    return verify_artifact(artifact, evidence, policy=policy, digests=hashing.result,
                           bundle_verifier=bundle_verifier)


def _quiet_sigstore_logging() -> None:
    """sigstore-python logs warnings (e.g. a root CA in a bundle); the verdict says what matters.

    With no handler configured they would reach stderr through logging's last resort, breaking the
    one-sentence rule; with -v they show, through the root logger, like ours.
    """
    import logging

    logger = logging.getLogger("sigstore")
    if not any(isinstance(h, logging.NullHandler) for h in logger.handlers):
        logger.addHandler(logging.NullHandler())


def _sigstore_identity(*, certificate_identity: str | None, certificate_identity_regexp: str | None,
                       certificate_oidc_issuer: str | None, github_repo: str | None,
                       signer_workflow: str | None, source_ref: str | None, deny_self_hosted_runners: bool,
                       trusted_root: Path | None) -> Identity | None:
    """The keyless identity the flags pin, named after the flag that names it; None if no flag does."""
    from verify.errors import TrustConfigError
    from verify.sigstore import sigstore_identity
    from verify.trust import Identity

    named = [(flag, value) for flag, value in (("--certificate-identity", certificate_identity),
                                               ("--certificate-identity-regexp", certificate_identity_regexp),
                                               ("--signer-workflow", signer_workflow),
                                               ("--github-repo", github_repo)) if value]
    narrowing = [flag for flag, given in (("--certificate-oidc-issuer", certificate_oidc_issuer),
                                          ("--source-ref", source_ref),
                                          ("--deny-self-hosted-runners", deny_self_hosted_runners)) if given]
    if not named:
        if narrowing:
            raise click.UsageError(f"{narrowing[0]} needs an identity to narrow: pass "
                                   "--certificate-identity, --certificate-identity-regexp, --github-repo or "
                                   "--signer-workflow")
        return None
    if (certificate_identity or certificate_identity_regexp) and not certificate_oidc_issuer:
        raise click.UsageError(f"{named[0][0]} needs --certificate-oidc-issuer (e.g. {GITHUB_ISSUER})")
    try:
        pinned = sigstore_identity(issuer=certificate_oidc_issuer, identity=certificate_identity,
                                   identity_regexp=certificate_identity_regexp, github_repo=github_repo,
                                   source_ref=source_ref, signer_workflow=signer_workflow,
                                   deny_self_hosted_runners=deny_self_hosted_runners)
    except TrustConfigError as e:
        raise click.UsageError(str(e)) from e
    return Identity(name=named[0][0], sigstore=(pinned,))


def _hash(path: Path, algorithms: list[str], cancel: threading.Event) -> dict[str, str]:
    from verify.digests import hash_file

    with progress(f"hashing {path.name}", path.stat().st_size) as advance:
        return hash_file(path, algorithms, progress=advance, cancel=cancel)
