"""Running a build from Python: facts about the source, CMD, the artefacts' digests, signed provenance, a store.

This is ``attest build`` without click. A :class:`BuildRequest` holds everything the command line
says, as given; :func:`run_build` does the work, in the current directory, in this order:

  (1) the request's shape: options that exclude each other, keyless options with a key signer; the
      store to publish to, as far as it can be checked without writing (a local store is a folder);
      no output may replace a bound lockfile (nor, at (6), an artefact)
  (2) the source: the git commit, refused if tracked files changed (unless ``allow_dirty``),
      SOURCE_DATE_EPOCH, and the CI platform, whose checked-out commit must be HEAD
  (3) the lockfiles, each equal to its committed blob (or none, with ``no_lockfile``)
  (4) the signer, ready before the build runs: a key, or keyless (token and trust root checked now)
  (4a) with ``link``: the link's materials, recorded by in-toto before CMD runs (:mod:`attest.intoto_link`)
  (5) CMD, without a shell, with SOURCE_DATE_EPOCH and without the signer's credentials
  (5a) the source again: CMD must leave HEAD, its ref, the tracked files and each bound lockfile as it
       found them (the provenance describes what was built, not what was there before the build)
  (6) the artefacts, expanded and hashed (sha256 and blake3)
  (7) the provenance: an in-toto Statement with a SLSA Provenance v1 predicate, checked against
      in-toto's schemas
  (8) signed, and the signature checked
  (8a) with ``link``: the link's products, recorded by in-toto and equal to the subjects; the link
       signed by the same signer, its signature checked
  (9) published to a store: every artefact (unless ``publish_artifacts`` is off), then the provenance
      under each (a failure before the first leaves nothing a verifier accepts; one part-way leaves it
      under some artefacts: a true statement of this build, whose bytes are stored, but no ``output`` a
      release is made from; a rerun publishes a new one), then the blake3 index
  (10) written atomically: the bundle first, then the link, then ``output``, once publishing succeeded

Any failure raises and leaves ``output`` unwritten; nothing here prints.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import subprocess

    from attest.collect import Artifact, GitFacts, GitSettings, Lockfile, Platform, SourceState
    from attest.images import BuildImage
    from attest.intoto_link import SignedLink
    from attest.registries.images import Registries
    from attest.signers import Signer
    from attest.signers.sigstore import KeylessSigner
    from attest.stores import Store

__all__ = ["BuildOutcome", "BuildRequest", "KeylessIdentity", "run_build"]

Advance = Callable[[int], None]
Progress = Callable[[str, int], AbstractContextManager[Advance | None]]
"""``progress(description, total)``: a context manager giving a callback ``advance(n)``, or None."""

Digests = Mapping[str, str]


@dataclass(frozen=True)
class BuildRequest:
    """Everything one build is asked, as given on the command line (or by a Python caller)."""

    signer: str
    """A signer URI: ``PATH``, ``key:PATH``, ``awskms:KEY`` or ``sigstore`` (keyless)."""
    artifacts: tuple[str, ...]
    """Files, directories (every regular file below) or globs, relative to the current directory."""
    command: tuple[str, ...] = ()
    """CMD, run without a shell before the artefacts are hashed; empty: nothing is run."""
    lockfiles: tuple[Path, ...] = ()
    """The lockfiles to bind; empty: the well-known ones at the repository root."""
    no_lockfile: bool = False
    allow_dirty: bool = False
    insecure_key_permissions: bool = False
    output: Path = Path("provenance.intoto.jsonl")
    bundle: bool = False
    """Also write a Sigstore bundle beside ``output`` (always written when keyless)."""
    identity_token: str | None = field(default=None, repr=False)
    """Keyless only: the OIDC token; None: ``SIGSTORE_ID_TOKEN``, else ambient detection."""
    trust_config: Path | None = None
    """Keyless only: a Sigstore ClientTrustConfig naming a private instance."""
    staging: bool = False
    """Keyless only: Sigstore's staging instance."""
    publish: str | None = None
    """A store: a directory or ``s3://bucket/prefix``."""
    publish_artifacts: bool = True
    """With ``publish``: the artefacts too, not only the provenance."""
    retain_days: int | None = None
    retention_mode: str = "GOVERNANCE"
    builder_id: str | None = None
    """``runDetails.builder.id`` when no CI platform is recognised."""
    pass_credentials: bool = False
    """Let CMD see AWS and signing credentials (recorded in the provenance)."""
    link: Path | None = None
    """Also write an in-toto link for the build step here (a directory: ``STEP.KEYID8.link`` in it)."""
    link_step: str = "build"
    """The link's step name: the name of the step in the in-toto layout."""
    registry_insecure: tuple[str, ...] = ()
    """Registry hosts (``HOST[:PORT]``) reached over plain HTTP: test registries only."""


@dataclass(frozen=True)
class KeylessIdentity:
    """Who signed keylessly, as the certificate and the transparency log say."""

    identity: str
    issuer: str
    log_index: int


@dataclass(frozen=True)
class BuildOutcome:
    """What a build produced."""

    output: Path
    commit: str
    ref: str
    source: str
    """The repository URI the provenance names (no credentials)."""
    dirty: bool
    builder_id: str
    subjects: tuple[tuple[str, Digests], ...]
    """(name relative to the repository root, {"sha256": ..., "blake3": ...}) of every artefact."""
    lockfiles: tuple[str, ...]
    published: tuple[str, ...] = ()
    """URIs of what was written to the store."""
    bundle: Path | None = None
    keyless: KeylessIdentity | None = None
    link: Path | None = None
    """Where the in-toto link went."""
    link_keyid: str | None = None
    """in-toto's keyid of the key that signed the link (the one its layout lists)."""
    link_filename: str | None = None
    """The name in-toto-verify looks for (``STEP.KEYID8.link``)."""


@dataclass(frozen=True)
class _Source:
    git: GitFacts
    platform: Platform
    epoch: int
    """SOURCE_DATE_EPOCH: the environment's, else the commit time."""


@dataclass(frozen=True)
class _Signed:
    line: bytes
    """The envelope as a ``.intoto.jsonl`` line."""
    bundle: bytes | None
    keyless: KeylessIdentity | None


def run_build(request: BuildRequest, *, progress: Progress | None = None,
              log: Callable[[str], None] | None = None) -> BuildOutcome:
    """Run the build; return what it produced, or raise why it was refused (see the module docstring)."""
    _check_shape(request)  # (1)
    store = _store(request)
    env = dict(os.environ)
    started = datetime.now(UTC)
    source = _source(env, allow_dirty=request.allow_dirty)  # (2)
    platform_builder = source.platform.builder_id
    if log is not None and request.builder_id and platform_builder and request.builder_id != platform_builder:
        log(f"warning: --builder-id / ATTEST_BUILDER_ID ({request.builder_id}) is not recorded: on "
            f"{source.platform.name} the builder is the one the platform names ({platform_builder})")
    locks = _lockfiles(request, source.git.root)  # (3)
    _outputs_apart(request, [source.git.root / lock.path for lock in locks], "the lockfile")
    signer = _signer(request, env)  # (4)
    materials = _link_materials(source.git.root, locks, log) if request.link is not None else None  # (4a)
    if request.command:
        before = _source_state(source.git.root)
        _run_command(request, env, epoch=source.epoch, log=log)  # (5)
        _check_unchanged(source.git.root, before, locks)  # (5a)
    found = _artifacts(request.artifacts, source.git.root)  # (6)
    _outputs_apart(request, [artifact.path for artifact in found], "the artefact")
    _key_not_published(request, found)
    images = _images(request, source.git.root)
    subjects = _hash(found, progress) + tuple(s for item in images for s in item.image.subjects(item.name))
    document = _provenance(request, source, locks, subjects, started=started)  # (7)
    signed = _sign(document, signer, bundle=request.bundle)  # (8)
    link = None if materials is None else _link(request, source.git.root, found, subjects, materials,
                                                signer)  # (8a)
    published = _publish(request, store, found, subjects, signed, progress) if store is not None else ()  # (9)
    if images and _registry_target(request):
        published += _publish_images(request, images, signed, progress)
    bundle_file, link_path = _write(request.output, signed, link, request.link)  # (10)
    return BuildOutcome(output=request.output, commit=source.git.commit, ref=source.git.ref,
                        source=source.git.repo_uri, dirty=source.git.dirty,
                        builder_id=document["predicate"]["runDetails"]["builder"]["id"], subjects=subjects,
                        lockfiles=tuple(lock.path for lock in locks), published=published, bundle=bundle_file,
                        keyless=signed.keyless, link=link_path, link_keyid=link.keyid if link else None,
                        link_filename=link.filename if link else None)


# --- (1) the request -----------------------------------------------------------------------------------------

def _check_shape(request: BuildRequest) -> None:
    from attest.signers import KEYLESS
    from verify.errors import RequestError

    if not request.artifacts:
        raise RequestError("no artefact to attest: give --artifact PATH (a file, a directory or a glob)")
    from attest.images import check_images

    check_images(request.artifacts, request.publish, link=request.link is not None, retain_days=request.retain_days)
    if request.no_lockfile and request.lockfiles:
        raise RequestError("--no-lockfile and --lockfile exclude each other")
    _outputs_distinct(request)
    if request.link is not None:
        if request.signer == KEYLESS:
            raise RequestError("--link needs a key signer (a key file or awskms:): an in-toto layout pins its "
                               "functionaries' public keys, and a keyless Sigstore certificate is not one")
        if not request.link_step.strip():
            raise RequestError("the link's step name is empty; give the name of the step in the in-toto layout")
    if request.signer == KEYLESS:
        if request.trust_config is not None and request.staging:
            raise RequestError("--trust-config and --staging exclude each other")
        return
    # --identity-token, --trust-config and --staging mean nothing to a key signer
    for flag, given in (("--identity-token", request.identity_token is not None),
                        ("--trust-config", request.trust_config is not None), ("--staging", request.staging)):
        if given:
            raise RequestError(f"{flag} applies to --signer sigstore only")


# --- (2) and (3): the source and its lockfiles --------------------------------------------------------------

def _source(env: Mapping[str, str], *, allow_dirty: bool) -> _Source:
    """The commit being built, checked: a clean tree (unless allowed), the commit the CI platform checked out."""
    from attest import collect
    from attest.errors import BuildRefused

    git = collect.git_facts(Path.cwd(), env=env)
    if git.dirty and not allow_dirty:
        raise BuildRefused(f"the work tree {git.root} has uncommitted changes to tracked files; commit them or "
                           "pass --allow-dirty (recorded in the provenance)")
    epoch = collect.source_date_epoch(env, commit_time=git.commit_time)
    platform = collect.detect_platform(env)
    if platform.resolved_commit and platform.resolved_commit != git.commit:
        raise BuildRefused(f"{platform.name} says it checked out {platform.resolved_commit} but HEAD is "
                           f"{git.commit}; the provenance would name the wrong commit")
    return _Source(git=git, platform=platform, epoch=epoch)


def _lockfiles(request: BuildRequest, root: Path) -> list[Lockfile]:
    """The lockfiles to bind: none only when asked for none."""
    from attest import collect
    from attest.errors import BuildRefused

    if request.no_lockfile:
        return []
    locks = collect.lockfiles(root, [str(path) for path in request.lockfiles])
    if not locks:
        raise BuildRefused(f"no lockfile found at {root}; name one with --lockfile or pass --no-lockfile")
    return locks


# --- (4) the signer ------------------------------------------------------------------------------------------

def _signer(request: BuildRequest, env: Mapping[str, str]) -> Signer | KeylessSigner:
    """The signer, ready before the build runs, so that a missing key, token or trust root fails fast."""
    from attest.signers import KEYLESS, from_uri

    if request.signer != KEYLESS:
        signer = from_uri(request.signer, insecure_permissions=request.insecure_key_permissions)
        signer.public_key_pem()  # a KMS key is looked up now (missing, no access, a spec attest cannot sign with)
        return signer
    from attest.signers.sigstore import KeylessSigner

    token = request.identity_token if request.identity_token is not None else env.get("SIGSTORE_ID_TOKEN") or None
    keyless = KeylessSigner(identity_token=token, trust_config=request.trust_config, staging=request.staging)
    keyless.prepare()
    return keyless


def _link_materials(root: Path, locks: Sequence[Lockfile], log: Callable[[str], None] | None
                    ) -> dict[str, dict[str, str]]:
    """(4a) The in-toto link's materials, before CMD can change the work tree."""
    from attest.intoto_link import record_materials

    materials = record_materials(root, [lock.path for lock in locks])
    if log is not None:
        log(f"in-toto: recorded {len(materials)} materials (the commit's tracked files)")
    return materials


# --- (5) CMD -------------------------------------------------------------------------------------------------

def _run_command(request: BuildRequest, env: Mapping[str, str], *, epoch: int,
                 log: Callable[[str], None] | None) -> None:
    """Run CMD with SOURCE_DATE_EPOCH and without the signer's credentials; its output goes to stderr."""
    import subprocess
    import sys

    from attest import collect
    from attest.errors import CommandFailed

    command = request.command
    if log is not None:
        log(f"running {' '.join(command)} (SOURCE_DATE_EPOCH={epoch})")
    if not request.pass_credentials:
        from attest._secrets import hide_from_children

        hide_from_children(collect.is_credential)  # /proc/<our pid>/environ still shows them
    environment = collect.command_environment(env, source_date_epoch=epoch, pass_credentials=request.pass_credentials)
    try:  # a process group of its own, so that stopping attest stops every process CMD started, not CMD alone
        child = subprocess.Popen(list(command), env=environment, stdout=sys.stderr, stdin=subprocess.DEVNULL,
                                 process_group=0)
    except OSError as e:
        raise CommandFailed(f"cannot run {command[0]}: {e.strerror}; no attestation was written", 127) from e
    with child:
        try:
            status = child.wait()
        except BaseException:  # ^C, SIGTERM (attest.cli._signals.Terminated): nothing may go on writing artefacts
            _stop_group(child)
            raise
    if status != 0:
        raise CommandFailed(f"build command {' '.join(command)} failed with exit status {status}; "
                            "no attestation was written", status)


#: Seconds a stopped build command's processes get to end on SIGTERM before they are killed.
STOP_GRACE_SECONDS = 5.0


def _stop_group(child: subprocess.Popen[bytes]) -> None:
    """Stop CMD's whole process group: SIGTERM, then SIGKILL for what is left after :data:`STOP_GRACE_SECONDS`."""
    import signal
    import subprocess

    try:
        with suppress(ProcessLookupError, PermissionError):
            os.killpg(child.pid, signal.SIGTERM)
        with suppress(subprocess.TimeoutExpired):
            child.wait(STOP_GRACE_SECONDS)
    finally:  # (even if a second ^C cuts the grace short)
        with suppress(ProcessLookupError, PermissionError):  # what outlived its leader, or would not stop
            os.killpg(child.pid, signal.SIGKILL)
        child.wait()


def _source_state(root: Path) -> tuple[SourceState, GitSettings]:
    """What CMD must leave as it found it: the work tree as git sees it, and git's own settings it sees it through."""
    from attest import collect

    return collect.source_state(root), collect.git_settings(root)


def _check_unchanged(root: Path, taken: tuple[SourceState, GitSettings], locks: Sequence[Lockfile]) -> None:
    """(5a) git's settings, HEAD, its ref, the tracked files (also those git was told to ignore) and each bound
    lockfile's bytes as they were before CMD; otherwise nothing is signed, and the sentence says what changed."""
    from attest import collect
    from attest.errors import SourceChanged
    from verify.digests import hash_file
    from verify.errors import InputError

    before, settings_before = taken
    settings = [name for (name, was), (_, now) in zip(settings_before, collect.git_settings(root), strict=True)
                if was != now]
    if settings:  # refused before git compares anything through them: no filter the command named runs
        raise SourceChanged(f"the build command changed the source it was building (git's settings changed, which "
                            f"git compares the source through: {_names(settings)}); a provenance would describe what "
                            "was there before the build, so none was written: build from a clean checkout with a "
                            "command that leaves tracked files and lockfiles alone")
    after = collect.source_state(root)
    what: list[str] = []
    if after.commit != before.commit:
        what.append(f"HEAD moved from {before.commit[:12]} to {after.commit[:12] or 'nothing'}")
    if after.ref != before.ref:
        what.append(f"HEAD now names {after.ref or 'no branch (detached)'}, not {before.ref or 'a detached commit'}")
    changed = sorted(after.changed - before.changed)
    if changed:
        what.append(f"tracked files changed: {_names(changed)}")
    hidden = sorted(after.hidden - before.hidden)
    if hidden:
        what.append(f"git was told to stop looking at {_names(hidden)} (assume-unchanged or skip-worktree)")
    for lock in locks:
        try:
            now = hash_file(root / lock.path, ("sha256",))["sha256"]
        except InputError:
            now = None
        if now != lock.digests["sha256"]:
            what.append(f"lockfile {lock.path} {'is gone' if now is None else 'was rewritten'}")
    if what:
        raise SourceChanged(f"the build command changed the source it was building ({'; '.join(what)}); a "
                            "provenance would describe what was there before the build, so none was written: build "
                            "from a clean checkout with a command that leaves tracked files and lockfiles alone")


def _names(paths: Sequence[str], most: int = 3) -> str:
    shown = ", ".join(paths[:most])
    return shown if len(paths) <= most else f"{shown} and {len(paths) - most} more"


# --- (6) the artefacts ---------------------------------------------------------------------------------------

def _outputs_distinct(request: BuildRequest) -> None:
    """A usage error, before any work, if two outputs of the build are one file: the last written would replace
    the other (a link written over the provenance, with exit 0)."""
    import itertools

    from attest._atomic import same_file
    from attest.bundle import bundle_path
    from attest.signers import KEYLESS
    from verify.errors import RequestError

    outputs = [("--output", request.output)]
    if request.bundle or request.signer == KEYLESS:
        outputs.append(("--output's bundle", bundle_path(request.output)))
    if request.link is not None and not request.link.is_dir():
        outputs.append(("--link", request.link))
    for (one, first), (other, second) in itertools.combinations(outputs, 2):
        if same_file(first, second) or os.path.realpath(first) == os.path.realpath(second):
            raise RequestError(f"{one} and {other} are both {first}; give each output a path of its own")


def _key_not_published(request: BuildRequest, found: Sequence[Artifact]) -> None:
    """A usage error if an artefact is the signing key file (``--artifact .`` in the folder that holds it): its
    bytes would be hashed into the provenance and copied to the store, where every reader may fetch them."""
    from attest._atomic import same_file
    from attest.signers import KEYLESS
    from verify.errors import RequestError

    if request.signer == KEYLESS or request.signer.startswith(("awskms:", "sigstore:")):
        return
    key = Path(request.signer.removeprefix("key:"))
    for artifact in found:
        if same_file(artifact.path, key):
            raise RequestError(f"artefact {artifact.name} is the signing key {key}: it would be published with the "
                               "build; keep the key out of the artefacts (or the artefacts' folder)")


def _outputs_apart(request: BuildRequest, inputs: Sequence[Path], what: str) -> None:
    """A usage error (before the command for lockfiles, before signing for artefacts) if an output would
    replace an input the build binds: the provenance would then name bytes that are no longer there."""
    from attest._atomic import same_file
    from attest.bundle import bundle_path
    from verify.errors import RequestError

    outputs = [("--output", request.output), ("--output's bundle", bundle_path(request.output))]
    if request.link is not None and not request.link.is_dir():
        outputs.append(("--link", request.link))
    for option, output in outputs:
        for given in inputs:
            if same_file(output, given):
                raise RequestError(f"{option} {output} is also {what} {given}; write the output elsewhere")


def _artifacts(patterns: Sequence[str], root: Path) -> list[Artifact]:
    from attest import collect
    from attest.images import is_image

    files = [pattern for pattern in patterns if not is_image(pattern)]
    return collect.expand_artifacts(files, root=root) if files else []


def _images(request: BuildRequest, root: Path) -> list[BuildImage]:
    """The image artefacts: layouts read, registry images resolved once (their digests recorded, not tags)."""
    from attest.images import collect_images, is_image

    if not any(is_image(pattern) for pattern in request.artifacts):
        return []
    return collect_images(request.artifacts, root, request.publish, _registries(request))


def _registries(request: BuildRequest) -> Registries:
    from attest.registries.images import Registries

    return Registries(insecure=request.registry_insecure)


def _hash(found: Sequence[Artifact], progress: Progress | None) -> tuple[tuple[str, Digests], ...]:
    """Each artefact's name and its sha256 and blake3, in one read."""
    from verify.digests import hash_file

    subjects = []
    for artifact in found:
        with _progress(progress, f"hashing {artifact.name}", artifact.path) as advance:
            subjects.append((artifact.name, hash_file(artifact.path, ("sha256", "blake3"), progress=advance)))
    return tuple(subjects)


def _progress(progress: Progress | None, description: str, path: Path) -> AbstractContextManager[Advance | None]:
    if progress is None:
        return nullcontext(None)
    return progress(description, path.stat().st_size)


# --- (7) and (8): the provenance, signed ---------------------------------------------------------------------

def _provenance(request: BuildRequest, source: _Source, locks: Sequence[Lockfile],
                subjects: Sequence[tuple[str, Digests]], *, started: datetime) -> dict[str, Any]:
    """The statement, checked against in-toto's own schemas; the build finished when its artefacts were hashed."""
    from importlib.metadata import version

    from attest import DISTRIBUTION
    from attest.provenance import BuildRecord, statement, validate_with_in_toto

    record = BuildRecord(git=source.git, platform=source.platform, lockfiles=locks, command=request.command,
                         artifact_patterns=request.artifacts, subjects=subjects, source_date_epoch=source.epoch,
                         started=started, finished=datetime.now(UTC),
                         invocation_id=source.platform.invocation_id or f"urn:uuid:{uuid.uuid4()}",
                         builder_id=request.builder_id, pass_credentials=request.pass_credentials,
                         attest_version=version(DISTRIBUTION), working_directory=_working_directory(source.git.root))
    document = statement(record)
    try:
        validate_with_in_toto(document)
    except ValueError as e:  # a bug in what we wrote, not the user's input
        raise RuntimeError(f"the provenance attest wrote does not validate against in-toto's schema: {e}") from e
    return document


def _working_directory(root: Path) -> str:
    """Where the command ran (this process's folder), relative to the repository's root: a rebuild runs it there."""
    from attest.errors import BuildRefused
    from verify.formats.encoding import printable

    here = Path.cwd().resolve().relative_to(root.resolve()).as_posix()
    try:
        here.encode("utf-8")
    except UnicodeEncodeError:
        raise BuildRefused(f"the build runs in {printable(here)}, a folder whose name is not UTF-8, which a "
                           "provenance cannot record; run it from another folder") from None
    return here


def _sign(document: Mapping[str, Any], signer: Signer | KeylessSigner, *, bundle: bool) -> _Signed:
    """The envelope (and bundle), each signature checked before anything is written."""
    from attest.signers.sigstore import KeylessSigner  # imports sigstore only when it signs
    from verify.formats import strict_json

    payload = strict_json.dumps_canonical(document)
    if isinstance(signer, KeylessSigner):
        result = signer.sign_statement(payload)  # checks what it made against the trusted root
        return _Signed(line=result.envelope_line, bundle=result.bundle, keyless=KeylessIdentity(
            identity=result.identity, issuer=result.issuer, log_index=result.log_index))
    from attest.bundle import key_bundle
    from attest.signers import sign_envelope
    from verify.formats.envelope import INTOTO_PAYLOAD_TYPE

    envelope = sign_envelope(signer, payload_type=INTOTO_PAYLOAD_TYPE, payload=payload)  # checks itself
    return _Signed(line=envelope.to_json_line(), keyless=None,
                   bundle=key_bundle(envelope, hint=signer.keyid) if bundle else None)


def _link(request: BuildRequest, root: Path, found: Sequence[Artifact], subjects: Sequence[tuple[str, Digests]],
          materials: Mapping[str, Any], signer: Signer | KeylessSigner) -> SignedLink:
    """(8a) The in-toto link: the artefacts recorded by in-toto as products, signed by the provenance's signer."""
    from attest.intoto_link import record_products, sign_link
    from attest.signers.sigstore import KeylessSigner

    assert not isinstance(signer, KeylessSigner)  # refused by _check_shape
    products = record_products(root, found, subjects)
    return sign_link(step=request.link_step, materials=materials, products=products, command=request.command,
                     signer=signer)


# --- (9) and (10): written, published ------------------------------------------------------------------------

def _write(output: Path, signed: _Signed, link: SignedLink | None, link_to: Path | None
           ) -> tuple[Path | None, Path | None]:
    """Write the bundle, then the link, then ``output``; return where the bundle and the link went."""
    from attest._atomic import write_atomic
    from attest.bundle import bundle_path

    bundle_file: Path | None = None
    if signed.bundle is not None:
        bundle_file = bundle_path(output)
        write_atomic(bundle_file, signed.bundle)  # first: when output exists, so does its bundle
    link_path: Path | None = None
    if link is not None and link_to is not None:
        from attest.intoto_link import link_file

        link_path = link_file(link_to, link)
        write_atomic(link_path, link.data)
    write_atomic(output, signed.line)
    return bundle_file, link_path


def _registry_target(request: BuildRequest) -> bool:
    from attest.registries.reference import is_oci

    return request.publish is not None and is_oci(request.publish)


def _publish_images(request: BuildRequest, images: Sequence[BuildImage], signed: _Signed,
                    progress: Progress | None) -> tuple[str, ...]:
    """(9) to a registry: each layout's image pushed, the provenance attached to every manifest, then the tag."""
    from attest.images import publish_images

    return tuple(publish_images(images, _registries(request), envelope=None if signed.keyless else signed.line,
                                bundle=signed.bundle, push=request.publish_artifacts, progress=progress))


def _store(request: BuildRequest) -> Store | None:
    """The --publish store, checked before any work (a local store that is a file fails now, not after the
    build command ran); None for a registry (``oci://``), reached only once there is something to push."""
    if request.publish is None or _registry_target(request):
        return None
    from attest.stores import publishable

    return publishable(request.publish, retain_days=request.retain_days, retention_mode=request.retention_mode)


def _publish(request: BuildRequest, store: Store, found: Sequence[Artifact], subjects: Sequence[tuple[str, Digests]],
             signed: _Signed, progress: Progress | None) -> tuple[str, ...]:
    """Every file artefact (unless only the provenance is published; an image stays in its layout or registry),
    then the provenance under each artefact's sha256,
    then the blake3 index. A publish that fails before the first provenance leaves nothing a verifier accepts;
    one that fails part-way leaves the provenance under some artefacts (true of their stored bytes: a verifier
    accepts those, and there is no ``output`` to make a release of); a rerun publishes the artefacts again (each
    put of the same bytes is idempotent) with a new provenance."""
    # a keyless envelope verifies only with its certificate and log entry: publish the bundle's line
    stored = signed.bundle if signed.keyless is not None and signed.bundle is not None else signed.line
    published: list[str] = []
    if request.publish_artifacts:
        for artifact, (name, digests) in zip(found, subjects[:len(found)], strict=True):  # images: not files
            with _progress(progress, f"publishing {name}", artifact.path) as advance:
                published.append(store.put_artifact(digests["sha256"], name, artifact.path,
                                                    **({"progress": advance} if advance else {})))
    published.extend(store.put_attestation(digests["sha256"], "provenance", stored) for _, digests in subjects)
    for _, digests in subjects:
        store.put_index(digests["blake3"], digests["sha256"])  # last: an entry never names a folder not there
    return tuple(published)
