"""``attest verify``: the pipeline gate."""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from attest.cli._options import emit_json, format_option, progress

if TYPE_CHECKING:  # the trust core is imported inside the command, once the artefact is being hashed
    from verify.errors import MalformedEvidence
    from verify.evidence import Evidence
    from verify.policy import Policy
    from verify.trust import Identity, PublicKey
    from verify.verifier import Verdict

    BundleVerifier = Callable[[Evidence, Sequence[Identity]], Identity]

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


def gate_options(f: F) -> F:
    """Stage gates (earlier stages' VSAs), VSA emission, lockfiles and release manifests."""
    options = [
        click.option("--stage", metavar="STAGE",
                     help="The stage running this gate (stg, prd): applies stages.STAGE of the policy."),
        click.option("--require-vsa", "require_vsa", multiple=True, metavar="STAGE",
                     help="Require a PASSED VSA of STAGE for this artefact, signed by --vsa-key. Repeatable."),
        click.option("--vsa-key", "vsa_keys", multiple=True, type=click.Path(path_type=Path), metavar="PEM",
                     help="A public key whose VSAs --require-vsa accepts. Repeatable."),
        click.option("--emit-vsa", type=click.Path(dir_okay=False, path_type=Path), metavar="FILE",
                     help="After a pass only: sign a SLSA VSA for --stage with --signer and write it to FILE "
                          "(and to --store)."),
        click.option("--signer", "signer_uri", metavar="URI",
                     help="Key that signs the VSA: PATH, key:PATH or awskms:<key>."),
        click.option("--insecure-key-permissions", is_flag=True,
                     help="Accept a signing key file that other users can read."),
        click.option("--resource-uri", metavar="URI",
                     help="The VSA's resourceUri (default attest:stage:STAGE), e.g. the pipeline ARN."),
        click.option("--verifier-id", metavar="ID",
                     help="The VSA's verifier.id (default: the CI project, else attest:verifier:local)."),
        click.option("--verified-level", "verified_levels", multiple=True, metavar="LEVEL",
                     help="verifiedLevels of the VSA (default SLSA_BUILD_LEVEL_1). Repeatable."),
        click.option("--lockfile", "lockfiles", multiple=True, type=click.Path(path_type=Path), metavar="PATH",
                     help="Check that this local lockfile is byte for byte the one the provenance bound."),
        click.option("--release", type=click.Path(dir_okay=False, path_type=Path), metavar="MANIFEST",
                     help="Verify a release manifest and every component's provenance in --store (no ARTIFACT)."),
        click.option("--same-commit", is_flag=True, help="With --release: every component from one commit."),
    ]
    for option in reversed(options):
        f = option(f)
    return f


@click.command()
@click.argument("artifact", metavar="ARTIFACT", required=False)
@click.option("--attestation", "attestations", multiple=True, type=click.Path(path_type=Path),
              metavar="FILE", help="A .intoto.jsonl file or a Sigstore bundle. Repeatable.")
@click.option("--store", metavar="STORE",
              help="Find attestations by the artefact's sha256 in a store (directory or s3://bucket/prefix).")
@click.option("--policy", "policy_path", type=click.Path(path_type=Path), metavar="FILE",
              help="Policy file naming trusted identities and rules (see docs/policy.md).")
@click.option("--key", "keys", multiple=True, metavar="PEM",
              help="A trusted public key (PEM), or awskms:<key ARN> fetched live (pin a PEM to stay offline). "
                   "Repeatable.")
@click.option("--source-uri", metavar="URI", help="Required source repository (github.com/acme/app or any URL form).")
@click.option("--source-branch", metavar="BRANCH", help="Required branch (main matches refs/heads/main).")
@click.option("--commit", metavar="SHA", help="Required commit (full or at least 7 hex digits).")
@click.option("--builder-id", metavar="ID", help="Required runDetails.builder.id.")
@click.option("--predicate-type", metavar="TYPE", help="Accept this predicate type instead of SLSA provenance.")
@sigstore_options
@gate_options
@format_option
def verify(artifact: str | None, attestations: tuple[Path, ...], store: str | None, policy_path: Path | None,
           keys: tuple[str, ...], source_uri: str | None, source_branch: str | None, commit: str | None,
           builder_id: str | None, predicate_type: str | None, output_format: str, stage: str | None,
           require_vsa: tuple[str, ...], vsa_keys: tuple[Path, ...], emit_vsa: Path | None, signer_uri: str | None,
           insecure_key_permissions: bool, resource_uri: str | None, verifier_id: str | None,
           verified_levels: tuple[str, ...], lockfiles: tuple[Path, ...], release: Path | None, same_commit: bool,
           **sigstore: Any) -> None:
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
      attest verify dist/app.tar.gz --store s3://acme-store/app --policy policy.yaml \\
          --stage stg --emit-vsa vsa.intoto.jsonl --signer awskms:alias/stg-verifier
      attest verify dist/app.tar.gz --store s3://acme-store/app --policy policy.yaml --stage prd
    """
    # Start hashing before anything heavy is imported: the evidence says which digest to compute,
    # and hashing (which releases the GIL) then runs beside the imports, the policy and the signatures.
    cancel = threading.Event()
    pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="attest-verify")
    early = _start_early(artifact, attestations, store, pool, cancel) if release is None else None
    try:
        _verify(artifact, attestations, store, policy_path, keys, source_uri, source_branch, commit, builder_id,
                predicate_type, output_format, stage, require_vsa, vsa_keys, emit_vsa, signer_uri,
                insecure_key_permissions, resource_uri, verifier_id, verified_levels, lockfiles, release,
                same_commit, sigstore, pool=pool, cancel=cancel, early=early)
    finally:
        cancel.set()
        pool.shutdown(wait=False, cancel_futures=True)


def _verify(artifact: str | None, attestations: tuple[Path, ...], store: str | None, policy_path: Path | None,
            keys: tuple[str, ...], source_uri: str | None, source_branch: str | None, commit: str | None,
            builder_id: str | None, predicate_type: str | None, output_format: str, stage: str | None,
            require_vsa: tuple[str, ...], vsa_keys: tuple[Path, ...], emit_vsa: Path | None, signer_uri: str | None,
            insecure_key_permissions: bool, resource_uri: str | None, verifier_id: str | None,
            verified_levels: tuple[str, ...], lockfiles: tuple[Path, ...], release: Path | None, same_commit: bool,
            sigstore: dict[str, Any], *, pool: ThreadPoolExecutor, cancel: threading.Event,
            early: tuple[list[str], Future[dict[str, str]]] | None) -> None:
    """The verify command, once hashing has (perhaps) started."""
    from verify.errors import EvidenceRejected, InputError
    from verify.evidence import Evidence
    from verify.policy import empty_policy, load_policy
    from verify.trust import Identity, load_public_key_file
    from verify.verifier import Check

    if emit_vsa is not None and (stage is None or signer_uri is None):
        raise click.UsageError("--emit-vsa needs --stage (the stage being verified) and --signer (its key)")
    if signer_uri is not None and emit_vsa is None:
        raise click.UsageError("--signer is for --emit-vsa; verification itself needs no signing key")
    if same_commit and release is None:
        raise click.UsageError("--same-commit goes with --release MANIFEST")
    if (artifact is None) == (release is None):
        raise click.UsageError("give ARTIFACT to verify, or --release MANIFEST (not both)")
    keyless = _sigstore_identity(**sigstore)
    if not keys and policy_path is None and keyless is None:
        raise click.UsageError("no trusted identity: pass --key PEM, --certificate-identity with "
                               "--certificate-oidc-issuer, --github-repo, or --policy FILE (verification "
                               "without a pinned identity is refused)")
    if not attestations and not store and release is None:
        raise click.UsageError("no evidence: pass --attestation FILE or --store STORE")
    policy = load_policy(policy_path) if policy_path else empty_policy()
    if keys:
        policy = policy.with_identity(Identity(name="--key", keys=tuple(_load_key(k) for k in keys)))
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

    from attest.cli import _gate

    vsa_identity = (Identity(name="--vsa-key", keys=tuple(load_public_key_file(k) for k in vsa_keys))
                    if vsa_keys else None)
    policy, stage_rule = _gate.stage_rule(policy, stage, require_vsa, vsa_identity)
    if release is not None:
        result = _gate.verify_release(release, policy=policy, store=store, same_commit=same_commit)
        if output_format == "json":
            emit_json(result)
        else:
            click.echo(f"PASS release {result['release']} (signed by {result['signer']})")
            for item in result["components"]:
                click.echo(f"  {item['component']:<12} {item['artifact']} @ {item['commit']}")
        return
    assert artifact is not None

    digest_arg = _DIGEST_ARG.fullmatch(artifact)
    path = None if digest_arg or artifact.startswith("s3://") else Path(artifact)
    if path is not None and not path.is_file():
        raise InputError(f"artefact {artifact} does not exist or is not a file; give a file or sha256:<hex>")
    available = ["sha256"] if digest_arg else ["blake3", "sha256", "sha384", "sha512"]
    if artifact.startswith("s3://"):
        # an artefact in S3: stream it through the hashes (an S3 checksum the attestation did not sign
        # proves nothing), then verify by digest
        from attest.stores.s3 import stream_object
        from verify.digests import hash_stream

        digest_arg = None
        s3_digests = hash_stream(stream_object(artifact), ("sha256", "blake3"))

    known: dict[str, str] = {"sha256": digest_arg.group(1)} if digest_arg else {}
    if artifact.startswith("s3://"):
        known = s3_digests

    def start(algorithms: list[str]) -> Future[dict[str, str]]:
        if path is None:
            done: Future[dict[str, str]] = Future()
            done.set_result(known)
            return done
        if early is not None:
            planned, future = early
            missing = [a for a in algorithms if a not in planned]
            if not missing:
                return future
            return pool.submit(lambda: {**future.result(), **_hash(path, missing, cancel)})
        return pool.submit(_hash, path, algorithms, cancel)

    try:
        verdict, evidence, bundle_verifier = _run(artifact, path, attestations, store, policy, start,
                                                  available, trusted_root=sigstore["trusted_root"])
        passed = _gate.check_gate(verdict, policy=policy, rule=stage_rule, evidence=evidence,
                                  bundle_verifier=bundle_verifier)
        for lockfile in lockfiles:
            _check_lockfile(lockfile, verdict)
    except BaseException as e:
        cancel.set()  # do not wait for the rest of a large file when the answer is already no
        if not isinstance(e, EvidenceRejected):
            raise
        if output_format == "json":
            emit_json({"verified": False, "artifact": artifact, "error": str(e),
                       "checks": [c.to_dict() for c in e.checks if isinstance(c, Check)]})
        raise EvidenceRejected(f"verification failed for {artifact}: {e}", checks=e.checks) from e
    emitted: list[str] = []
    if emit_vsa is not None:
        assert stage is not None and signer_uri is not None
        accepted = [verdict.evidence, *[e for e in evidence if isinstance(e, Evidence)
                                        and e.digest in {p.sha256 for p in passed}]]
        emitted = [str(emit_vsa), *_gate.emit_vsa(
            verdict, policy=policy, stage=stage, resource_uri=resource_uri, signer_uri=signer_uri,
            insecure_key_permissions=insecure_key_permissions, output=emit_vsa, store=store,
            verifier_id=verifier_id, levels=verified_levels or ("SLSA_BUILD_LEVEL_1",), inputs=accepted)]
    if output_format == "json":
        emit_json({**verdict.to_dict(), "stage": stage, "stages": [p.to_dict() for p in passed],
                   "vsa": emitted})
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
        for item in passed:
            click.echo(f"  {item.kind:<9} {item.stage} by {item.signer} at {item.time.isoformat()}")
        if lockfiles:
            click.echo(f"  lockfiles {', '.join(map(str, lockfiles))}: as bound")
        if emitted:
            click.echo(f"  vsa       {stage} PASSED -> {', '.join(emitted)}")


def _run(artifact: str, path: Path | None, attestations: tuple[Path, ...], store: str | None, policy: Policy,
         start: Callable[[list[str]], Future[dict[str, str]]], available: list[str], *,
         trusted_root: Path | None) -> tuple[Verdict, list[Evidence | MalformedEvidence], BundleVerifier | None]:
    """Gather the evidence, start hashing as early as possible, and run the verification pipeline."""
    from verify.errors import EvidenceRejected
    from verify.evidence import Evidence, load_evidence, read_evidence_file
    from verify.verifier import preferred_algorithms, verify_artifact

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
    verdict = verify_artifact(artifact, evidence, policy=policy, digests=hashing.result,
                              bundle_verifier=bundle_verifier)
    return verdict, evidence, bundle_verifier


def _load_key(spec: str) -> PublicKey:
    """A pinned PEM file, or (with a warning) a KMS key's public key fetched now."""
    from verify.trust import load_public_key, load_public_key_file

    if spec.startswith("awskms:"):
        from attest.signers.awskms import export_public_key_pem

        click.echo(f"attest: warning: fetching the public key of {spec} from KMS; pin it with 'attest key export "
                   f"{spec} --out FILE.pub.pem' to verify offline", err=True)
        return load_public_key(export_public_key_pem(spec), name=spec.removeprefix("awskms:"))
    return load_public_key_file(Path(spec))


def _check_lockfile(path: Path, verdict: Verdict) -> None:
    """--lockfile: the local lockfile must be the one the provenance bound (naming the first changed package)."""
    from verify.errors import PolicyViolation
    from verify.lockfile_check import check_lockfile

    if verdict.provenance is None:
        raise PolicyViolation(f"--lockfile {path} needs a provenance, and the evidence is a message signature")
    packages = None
    if path.is_file():
        from attest.lockfiles import parse_lockfile

        packages = parse_lockfile(path).packages
    check_lockfile(path, verdict.provenance, packages=packages)


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
    except ValueError as e:  # a repository or workflow that is not a URL at all
        raise click.UsageError(f"{named[0][0]} {named[0][1]!r} is not OWNER/REPO[/...] ({e})") from e
    return Identity(name=named[0][0], sigstore=(pinned,))


def _start_early(artifact: str | None, attestations: tuple[Path, ...], store: str | None, pool: ThreadPoolExecutor,
                 cancel: threading.Event) -> tuple[list[str], Future[dict[str, str]]] | None:
    """Start hashing a local artefact with the digests its attestation files carry (a plan, not trust).

    Reads the evidence with the standard library only: which algorithm to compute decides nothing
    about trust (the verifier compares digests with what a trusted signer signed, and computes any
    algorithm the plan missed). None when there is nothing to plan from.
    """
    if artifact is None or store or not attestations or _DIGEST_ARG.fullmatch(artifact) \
            or artifact.startswith("s3://") or not Path(artifact).is_file():
        return None
    planned = _plan(attestations)
    if not planned:
        return None
    return planned, pool.submit(_hash, Path(artifact), planned, cancel)


def _plan(attestations: tuple[Path, ...]) -> list[str]:
    """Per statement, the strongest digest attest prefers that its subjects carry (blake3, else sha256)."""
    import base64
    import json

    from verify.limits import MAX_EVIDENCE_BYTES

    wanted: list[str] = []
    for file in attestations:
        try:
            if file.stat().st_size > MAX_EVIDENCE_BYTES:
                return []
            data = file.read_bytes()
        except OSError:
            return []
        try:
            documents = [json.loads(data)]
        except ValueError:
            documents = []
            for line in data.splitlines():
                try:
                    documents.append(json.loads(line))
                except ValueError:
                    continue
        for document in documents:
            try:
                if "messageSignature" in document:
                    algorithm = "sha256"
                else:
                    envelope = document.get("dsseEnvelope", document)
                    statement = json.loads(base64.b64decode(envelope["payload"]))
                    digests = [subject["digest"] for subject in statement["subject"]]
                    algorithm = "blake3" if all("blake3" in d for d in digests) else "sha256"
            except (ValueError, KeyError, TypeError, AttributeError):
                continue
            if algorithm not in wanted:
                wanted.append(algorithm)
    return wanted


def _hash(path: Path, algorithms: list[str], cancel: threading.Event) -> dict[str, str]:
    from verify.digests import hash_file

    with progress(f"hashing {path.name}", path.stat().st_size) as advance:
        return hash_file(path, algorithms, progress=advance, cancel=cancel)
