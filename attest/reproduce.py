"""Rebuild an attested commit and compare every artefact with the provenance.

The plan, each step a call that raises or returns:

  (1) provenance  read the attestation; with a trust anchor, check the
                  signature before reading the statement
  (2) source      clone the repository into a fresh temporary directory and
                  check out the provenance's commit (detached)
  (3) lockfiles   every lockfile the provenance bound has the bound digests
  (4) build       run the recorded command (or the one given) with the
                  recorded SOURCE_DATE_EPOCH and a clean environment: PATH,
                  HOME (a temporary directory), LC_ALL=C.UTF-8, TZ=UTC,
                  SOURCE_DATE_EPOCH and nothing else
  (5) compare     hash the file each subject names inside the work tree
                  (names that leave the tree are refused) and compare; an
                  image (an ``oci-layout:`` artefact) matches when the layout
                  the rebuild wrote holds a manifest of the same digest

The result is a :class:`Reproduction`; :func:`reproduction_statement` turns
it into an in-toto Statement with the ``https://attest.dev/reproduction/v1``
predicate (docs/reproducibility.md).
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import IO, Any, Literal

from attest.errors import BuildRefused, CommandFailed
from verify.digests import ACCEPTED, KNOWN, DigestSet, hash_file
from verify.errors import (
    EvidenceRejected,
    MalformedEvidence,
    PolicyViolation,
    SignatureInvalid,
    UnknownEvidence,
)
from verify.formats.encoding import printable
from verify.formats.envelope import INTOTO_PAYLOAD_TYPE
from verify.formats.evidence import Evidence, load_evidence, read_evidence_file
from verify.formats.statement import (
    PROVENANCE_V02,
    PROVENANCE_V1,
    STATEMENT_V1,
    Provenance,
    Statement,
    parse_statement,
    read_provenance,
)
from verify.matching import subject_matches
from verify.trust import Identity
from verify.verifier import verify_signature

__all__ = [
    "REPRODUCTION_V1",
    "LoadedProvenance",
    "Reproduction",
    "SubjectResult",
    "clean_environment",
    "default_rebuilder_id",
    "diff_artifacts",
    "find_diffoscope",
    "load_provenance",
    "reproduce",
    "reproduction_statement",
    "safe_path",
    "workspace",
]

log = logging.getLogger(__name__)

#: The predicate type of a reproduction attestation (docs/reproducibility.md).
REPRODUCTION_V1 = "https://attest.dev/reproduction/v1"

Status = Literal["match", "differs", "missing", "refused"]

_COMMIT = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")
#: Variables of the caller's environment that would point git at another repository.
_GIT_REDIRECTS = ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_OBJECT_DIRECTORY",
                  "GIT_ALTERNATE_OBJECT_DIRECTORIES", "GIT_COMMON_DIR", "GIT_NAMESPACE")


# (1) provenance ----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class LoadedProvenance:
    """A provenance read from an attestation file, and who signed it (None: not verified)."""

    evidence: Evidence
    statement: Statement
    provenance: Provenance
    signer: str | None


def load_provenance(path: Path, identities: Sequence[Identity] | None) -> LoadedProvenance:
    """The first SLSA provenance in ``path``; with ``identities``, the first one they signed.

    Without identities nothing is verified (the caller says so).
    """
    items = load_evidence(read_evidence_file(path), source=str(path))
    failure: EvidenceRejected | None = None
    for item in items:
        if isinstance(item, MalformedEvidence):
            failure = failure or item
            continue
        envelope = item.envelope
        if envelope is None or envelope.payload_type != INTOTO_PAYLOAD_TYPE:
            continue
        signer = None
        if identities is not None:
            if item.has_certificate:
                failure = failure or UnknownEvidence(
                    f"{item.source}: attest reproduce checks DSSE signatures by pinned keys; verify this "
                    "Sigstore bundle with attest verify first, then reproduce it without --key")
                continue
            try:
                signer = verify_signature(envelope, identities, source=item.source).name
            except SignatureInvalid as e:
                failure = e
                continue
        try:
            statement = parse_statement(envelope.payload, what=f"{item.source} statement")
        except EvidenceRejected as e:
            failure = failure or e
            continue
        if statement.predicate_type not in (PROVENANCE_V1, PROVENANCE_V02):
            continue
        return LoadedProvenance(evidence=item, statement=statement, provenance=read_provenance(statement),
                                signer=signer)
    if failure is not None:
        raise failure
    raise UnknownEvidence(f"{path} holds no SLSA provenance ({PROVENANCE_V1}); give the provenance attest "
                          "build wrote")


# (5) names inside the work tree ----------------------------------------------------------------------

class _Unsafe(Exception):
    """A subject name that would leave the work tree or names something other than a regular file."""


class _Missing(Exception):
    """A subject name that names nothing in the work tree."""


_NOT_FOUND = "it does not exist"


def safe_path(root: Path, name: str) -> Path:
    """The regular file ``name`` (relative, '/'-separated) names below ``root``, never outside it.

    Refused: an empty name, NUL, an absolute path, any '..' component, and a
    symbolic link anywhere on the way (checked component by component with
    lstat, so a link planted by the build cannot redirect the read).
    """
    if not name:
        raise _Unsafe("the subject has no name")
    if "\0" in name:
        raise _Unsafe("the name contains a NUL byte")
    pure = PurePosixPath(name)
    if pure.is_absolute() or name.startswith("/"):
        raise _Unsafe("the name is an absolute path")
    if ".." in pure.parts:
        raise _Unsafe("the name contains '..'")
    current = root
    parts = [p for p in pure.parts if p != "."]
    if not parts:
        raise _Unsafe("the name names the build root itself")
    for index, part in enumerate(parts):
        current = current / part
        try:
            info = os.lstat(current)
        except FileNotFoundError as e:
            raise _Missing(_NOT_FOUND) from e
        except OSError as e:
            raise _Missing(f"it cannot be read ({e.strerror})") from e
        if stat.S_ISLNK(info.st_mode):
            raise _Unsafe(f"{'/'.join(parts[:index + 1])} is a symbolic link")
        last = index == len(parts) - 1
        if not last and not stat.S_ISDIR(info.st_mode):
            raise _Missing(f"{'/'.join(parts[:index + 1])} is not a directory")
        if last and not stat.S_ISREG(info.st_mode):
            raise _Unsafe("it is not a regular file")
    return current


# results -----------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class SubjectResult:
    """How one subject of the provenance compared with its rebuild."""

    name: str
    status: Status
    expected: Mapping[str, str]
    rebuilt: Mapping[str, str] = field(default_factory=dict)
    reason: str = ""
    path: Path | None = field(default=None, compare=False)
    """The rebuilt file (inside the work tree, which may be gone)."""

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "status": self.status, "expected": dict(self.expected),
                "rebuilt": dict(self.rebuilt) or None, "reason": self.reason or None}  # (every key, always)


@dataclass(frozen=True)
class Reproduction:
    """The outcome of :func:`reproduce`."""

    attestation: str
    provenance_digest: str
    """sha256 of the provenance's envelope line as stored."""
    signer: str | None
    source_uri: str | None
    repository: str
    commit: str
    command: tuple[str, ...]
    source_date_epoch: int
    lockfiles: tuple[str, ...]
    subjects: tuple[SubjectResult, ...]
    finished: datetime

    @property
    def reproducible(self) -> bool:
        return bool(self.subjects) and all(s.status == "match" for s in self.subjects)

    @property
    def verdict(self) -> str:
        return "REPRODUCIBLE" if self.reproducible else "NOT_REPRODUCIBLE"

    def to_dict(self) -> dict[str, Any]:
        return {
            "verdict": self.verdict, "reproducible": self.reproducible,
            "provenance": {"source": self.attestation, "sha256": self.provenance_digest,
                           "verified": self.signer is not None, "signer": self.signer},
            "source": self.source_uri, "repository": self.repository, "commit": self.commit,
            "command": list(self.command), "sourceDateEpoch": self.source_date_epoch,
            "lockfiles": [{"name": name, "status": "match"} for name in self.lockfiles],
            "subjects": [s.to_dict() for s in self.subjects],
        }


# (2) source, (4) build ---------------------------------------------------------------------------------

@contextlib.contextmanager
def workspace(*, keep: bool = False) -> Iterator[Path]:
    """A fresh temporary directory, removed afterwards (read-only leftovers too) unless ``keep``."""
    path = Path(tempfile.mkdtemp(prefix="attest-reproduce-"))
    try:
        yield path
    finally:
        if not keep:
            _remove_tree(path)


def _remove_tree(path: Path) -> None:
    """Remove ``path``, making read-only directories writable on the way (Go's module cache is 0555)."""

    def make_writable(function: Any, name: str, _: Any) -> None:
        with contextlib.suppress(OSError):
            Path(name).parent.chmod(0o700)
            Path(name).chmod(0o700)
        with contextlib.suppress(OSError):
            function(name)

    if sys.version_info >= (3, 12):
        shutil.rmtree(path, onexc=make_writable)
    else:
        shutil.rmtree(path, onerror=make_writable)


def _git_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _GIT_REDIRECTS}
    env["GIT_TERMINAL_PROMPT"] = "0"
    return env


def _git(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(["git", *args], cwd=cwd, env=_git_env(), capture_output=True, text=True,
                              check=False)
    except FileNotFoundError as e:
        raise BuildRefused("git is not installed; attest reproduce clones the attested commit with it") from e


def current_repository(directory: Path) -> Path:
    """The top of the git work tree ``directory`` is in (the default ``--repo``)."""
    done = _git("-C", str(directory), "rev-parse", "--show-toplevel")
    if done.returncode != 0:
        raise BuildRefused(f"{directory} is not inside a git repository; pass --repo PATH|URL")
    return Path(done.stdout.strip())


def _plain_folder(repository: str) -> bool:
    """Whether ``repository`` is a local folder that is plainly no git repository (one that cannot be looked into
    is not said to be: git's own sentence says more)."""
    if "://" in repository:
        return False
    local = Path(repository)
    try:
        return local.is_dir() and not (local / ".git").exists() and not (local / "HEAD").is_file()
    except OSError:
        return False


def _checkout(repository: str, commit: str, tree: Path) -> None:
    log.info("cloning %s and checking out %s", repository, commit)
    done = _git("clone", "--quiet", "--no-checkout", "--", repository, str(tree))
    if done.returncode != 0:
        why = f"{repository} is a folder but no git repository" if _plain_folder(repository) else \
            _first_line(done.stderr)
        raise BuildRefused(f"git clone {repository} failed: {why}; pass --repo the repository that built it")
    if _git("-C", str(tree), "cat-file", "-e", f"{commit}^{{commit}}").returncode != 0:
        _git("-C", str(tree), "fetch", "--quiet", "origin", commit)  # a commit no branch or tag reaches
        if _git("-C", str(tree), "cat-file", "-e", f"{commit}^{{commit}}").returncode != 0:
            raise BuildRefused(f"commit {commit} is not in {repository}; push it or pass --repo with a "
                               "repository that has it")
    done = _git("-C", str(tree), "-c", "core.autocrlf=false", "-c", "advice.detachedHead=false",
                "checkout", "--quiet", "--detach", commit)
    if done.returncode != 0:
        raise BuildRefused(f"git checkout {commit} failed in the clone of {repository}: "
                           f"{_first_line(done.stderr)}")
    head = _git("-C", str(tree), "rev-parse", "HEAD")
    if head.returncode != 0 or head.stdout.strip().lower() != commit:  # (git reads a short id as its prefix)
        raise PolicyViolation(f"the provenance's commit {commit} is only the start of commit "
                              f"{head.stdout.strip() or '?'} in {repository}; a commit is named whole")
    if (tree / ".gitmodules").exists():
        log.warning("warning: %s has submodules, which attest reproduce does not check out", repository)


def _first_line(text: str) -> str:
    """What a tool's error output says: git's ``fatal:`` line (the cause; what follows only says what to check),
    else the first line."""
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return next((line for line in lines if line.startswith("fatal:")), lines[0] if lines else "no message")


def clean_environment(*, path: str, home: Path, source_date_epoch: int) -> dict[str, str]:
    """The whole environment of the rebuild: nothing of the caller's but PATH."""
    return {"PATH": path, "HOME": str(home), "LC_ALL": "C.UTF-8", "TZ": "UTC",
            "SOURCE_DATE_EPOCH": str(source_date_epoch)}


def _recorded_epoch(prov: Provenance, tree: Path) -> int:
    """The SOURCE_DATE_EPOCH the build ran with; the commit's time where none is recorded. A recorded value that is
    not a whole number of seconds attest build could have set is malformed evidence, never a reason to rebuild
    with another."""
    from attest.collect import MAX_SOURCE_DATE_EPOCH

    value = prov.internal_parameters.get("SOURCE_DATE_EPOCH")
    if value is None:
        done = _git("-C", str(tree), "log", "-1", "--format=%ct", "HEAD")
        log.warning("warning: the provenance records no SOURCE_DATE_EPOCH; using the commit time")
        return int(done.stdout.strip())
    if isinstance(value, str) and re.fullmatch(r"[0-9]{1,12}", value):
        value = int(value)
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_SOURCE_DATE_EPOCH:
        return value
    shown = repr(value)[:40]
    raise MalformedEvidence(f"the provenance records SOURCE_DATE_EPOCH {shown}, which is not a whole number of "
                            f"seconds from 0 to {MAX_SOURCE_DATE_EPOCH}; attest does not rebuild with another")


def _recorded_command(prov: Provenance) -> tuple[str, ...]:
    command = prov.external_parameters.get("command")
    if isinstance(command, list) and all(isinstance(a, str) for a in command):
        if any("\0" in a for a in command):
            raise MalformedEvidence("the provenance's command holds a NUL byte, which no command line can")
        return tuple(command)
    if command is not None:  # (recorded, in a form no command line is: the evidence's fault, not the user's)
        raise MalformedEvidence("the provenance records its build command as something other than a list of "
                                "arguments; give the command after --, or rebuild from a provenance attest wrote")
    return ()


def _check_lockfiles(prov: Provenance, tree: Path, commit: str) -> tuple[str, ...]:
    """Each lockfile the provenance binds, in the checked-out commit, must be the bound one
    (:func:`verify.lockfile_check.lockfile_difference`, the comparison ``verify --lockfile`` makes)."""
    from verify.lockfile_check import lockfile_difference

    checked = []
    for dep in prov.lockfiles:
        try:
            path = safe_path(tree, dep.name)
        except (_Unsafe, _Missing) as e:
            raise PolicyViolation(f"lockfile {dep.name} bound by the provenance is not a file of commit "
                                  f"{commit[:12]} ({e}); the provenance does not describe this commit") from e
        difference = lockfile_difference(path, dep)
        if difference is not None:
            raise PolicyViolation(f"lockfile {dep.name} of commit {commit[:12]} is not the one the provenance bound "
                                  f"({difference}); the provenance does not describe this commit")
        checked.append(dep.name)
    return tuple(checked)


def _rebuilt_images(cwd: Path, patterns: object) -> dict[str, list[dict[str, str]]]:
    """The images the rebuild wrote into OCI image layouts (``oci-layout:`` artefacts of the provenance),
    read from the work tree: layout name (as the build named it) -> the digests of each manifest attested."""
    from attest.oci_layout import LAYOUT_PREFIX, parse_layout, read_layout_image

    images: dict[str, list[dict[str, str]]] = {}
    for pattern in patterns if isinstance(patterns, list) else []:
        if not isinstance(pattern, str) or not pattern.startswith(LAYOUT_PREFIX):
            continue
        try:
            layout = parse_layout(pattern)
        except BuildRefused as e:  # (the provenance's: its image is then missing from the comparison)
            log.warning("the provenance's artefact %s names no image layout: %s", printable(pattern), e)
            images[pattern] = []
            continue
        name = layout.path.as_posix()
        try:
            where = real_folder(cwd, safe_layout(layout.path), what="the image layout", below=True)
            image = read_layout_image(type(layout)(path=where, tag=layout.tag))
            image.check_blobs()  # (a manifest alone matching would vouch for layers of other bytes)
        except (BuildRefused, _Unsafe, _Missing) as e:  # (its images are then missing from the comparison)
            log.warning("the rebuild's image layout %s cannot be read: %s", printable(pattern), e)
            images[name] = []
            continue
        images[name] = [digests for _, digests in image.subjects(name)]
    return images


def real_folder(root: Path, relative: Path, *, what: str, below: bool = False, create: bool = False) -> Path:
    """The folder ``relative`` names below ``root``, each part of the way a real folder, never a symbolic link (a
    committed one, or one the rebuild planted, would have the rebuild's output read from elsewhere); with ``below``,
    nothing inside it is a link either; with ``create``, a part that is not there is made (a build folder git
    ignores, as an out-of-source build's)."""
    current = root
    for index, part in enumerate(relative.parts):
        current = current / part
        shown = "/".join(relative.parts[:index + 1])
        if create:
            with contextlib.suppress(FileExistsError):
                os.mkdir(current)
        try:
            info = os.lstat(current)
        except OSError as e:
            raise _Missing(f"{what} {shown} cannot be read ({e.strerror})") from e
        if stat.S_ISLNK(info.st_mode):
            raise _Unsafe(f"{what} {shown} is a symbolic link")
        if not stat.S_ISDIR(info.st_mode):
            raise _Missing(f"{what} {shown} is not a folder")
    for folder, names, files in os.walk(current) if below else ():
        for entry in (*names, *files):
            if os.path.islink(os.path.join(folder, entry)):
                raise _Unsafe(f"{what} {relative.as_posix()} holds a symbolic link, "
                              f"{os.path.relpath(os.path.join(folder, entry), current)}")
    return current


def safe_layout(path: Path) -> Path:
    """A layout folder named by the provenance, relative and inside the work tree."""
    pure = PurePosixPath(path.as_posix())
    if pure.is_absolute() or ".." in pure.parts or "\0" in str(path):
        raise _Unsafe(f"the image layout {path} is not inside the source tree")
    return Path(*pure.parts)


def _compare_image(subject: Any, expected: dict[str, str], images: Mapping[str, list[dict[str, str]]]
                   ) -> SubjectResult:
    """An image subject: it matches if one of the rebuild's images has a manifest of the same digests."""
    rebuilt = [digests for found in images.values() for digests in found]
    for digests in rebuilt:
        if subject_matches(expected, DigestSet(digests), ACCEPTED):
            return SubjectResult(subject.name, "match", expected, digests)
    shown = ", ".join(f"sha256:{d['sha256']}" for d in rebuilt) or "none"
    return SubjectResult(subject.name, "differs", expected, rebuilt[0] if rebuilt else {},
                         reason=f"no image the rebuild wrote has this manifest digest (the rebuild's: {shown})")


def _is_image_name(name: str, images: Mapping[str, list[dict[str, str]]]) -> bool:
    """Whether a subject that names no file is one of the build's images: a layout's name, or REGISTRY/REPO."""
    if not images:
        return False
    first = name.split("/", 1)[0]
    return name in images or ("/" in name and ("." in first or ":" in first or first == "localhost"))


def _compare(tree: Path, statement: Statement, images: Mapping[str, list[dict[str, str]]] | None = None
             ) -> tuple[SubjectResult, ...]:
    images = images or {}
    results = []
    for subject in statement.subjects:
        expected = dict(subject.digest)
        algorithms = [a for a in ACCEPTED if a in expected]
        if not algorithms:
            results.append(SubjectResult(subject.name, "refused", expected,
                                         reason=f"no digest attest accepts (found {sorted(expected)})"))
            continue
        try:
            path = safe_path(tree, subject.name)
        except (_Unsafe, _Missing) as e:
            if _is_image_name(subject.name, images):
                results.append(_compare_image(subject, expected, images))
                continue
            if isinstance(e, _Missing):
                reason = "the rebuild did not write it" if str(e) == _NOT_FOUND else str(e)
                results.append(SubjectResult(subject.name, "missing", expected, reason=reason))
                continue
            results.append(SubjectResult(subject.name, "refused", expected, reason=str(e)))
            continue
        wanted = list(dict.fromkeys([*algorithms, "sha256"]))
        rebuilt = hash_file(path, [a for a in wanted if a in KNOWN])
        same = subject_matches(expected, DigestSet(rebuilt), ACCEPTED)
        results.append(SubjectResult(subject.name, "match" if same else "differs", expected, rebuilt,
                                     path=path))
    return tuple(results)


def reproduce(loaded: LoadedProvenance, *, repository: str, work: Path, command: Sequence[str] = (),
              path_env: str | None = None, output: IO[bytes] | IO[str] | None = None) -> Reproduction:
    """Steps (2) to (5) in ``work`` (an empty directory): clone, check, rebuild, compare.

    The build command's output goes to ``output`` (default: stderr).
    """
    prov = loaded.provenance
    commit = (prov.commit or "").lower()
    if not _COMMIT.fullmatch(commit):
        raise PolicyViolation(f"{loaded.evidence.source}: the provenance names no git commit "
                              f"(found {prov.commit!r}); there is nothing to rebuild")
    if len({c.lower() for c in prov.commits}) > 1:  # (one rebuild of one of them would speak for the others)
        raise PolicyViolation(f"{loaded.evidence.source}: the provenance names {len(prov.commits)} commits "
                              f"({', '.join(prov.commits)}); a rebuild is of one commit, so it cannot say the build "
                              "reproduces")
    if prov.dirty:
        log.warning("warning: the provenance says the build ran in a work tree with uncommitted changes; "
                    "the commit alone may not rebuild the same artefacts")

    # (2) source
    tree, home = work / "src", work / "home"
    home.mkdir(parents=True)
    _checkout(repository, commit, tree)

    # (3) lockfiles
    lockfiles = _check_lockfiles(prov, tree, commit)

    # (4) build
    argv = tuple(command) or _recorded_command(prov)
    if not argv:
        raise BuildRefused("the provenance records no build command; give the command after --")
    cwd = tree
    working = prov.external_parameters.get("workingDirectory")
    if isinstance(working, str) and working not in ("", "."):
        pure = PurePosixPath(working)
        if pure.is_absolute() or ".." in pure.parts or "\0" in working:
            raise PolicyViolation(f"the provenance's workingDirectory {working!r} leaves the source tree")
        try:
            cwd = real_folder(tree, Path(*pure.parts), what="the provenance's workingDirectory", create=True)
        except (_Unsafe, _Missing) as e:
            raise PolicyViolation(f"{e} in the commit; a rebuild runs only in the source tree") from e
    epoch = _recorded_epoch(prov, tree)
    env = clean_environment(path=os.environ.get("PATH", os.defpath) if path_env is None else path_env,
                            home=home, source_date_epoch=epoch)
    log.info("running %s (SOURCE_DATE_EPOCH=%d) in %s", " ".join(argv), epoch, cwd)
    try:
        done = subprocess.run(list(argv), cwd=cwd, env=env,
                              stdout=output if output is not None else sys.stderr, check=False)
    except (OSError, ValueError) as e:  # (ValueError: a NUL byte in a command given after --)
        why = e.strerror if isinstance(e, OSError) else str(e)
        raise CommandFailed(f"cannot run {argv[0]} in the rebuild: {why}; give the command after -- "
                            "if the recorded one does not exist on this machine", 127) from e
    if done.returncode != 0:
        raise CommandFailed(f"the rebuild command {' '.join(argv)} failed with exit status {done.returncode}",
                            done.returncode)

    # (5) compare
    subjects = _compare(tree, loaded.statement, _rebuilt_images(cwd, prov.external_parameters.get("artifacts")))
    return Reproduction(attestation=loaded.evidence.source, provenance_digest=loaded.evidence.digest,
                        signer=loaded.signer, source_uri=prov.source_uri, repository=repository,
                        commit=commit, command=argv, source_date_epoch=epoch, lockfiles=lockfiles,
                        subjects=subjects, finished=datetime.now(UTC))


# --diff ------------------------------------------------------------------------------------------------

def find_diffoscope() -> str | None:
    """diffoscope on PATH, or installed beside this Python (a virtual environment's bin/)."""
    found = shutil.which("diffoscope")
    if found:
        return found
    beside = Path(sys.executable).parent / "diffoscope"
    return str(beside) if beside.is_file() and os.access(beside, os.X_OK) else None


@dataclass(frozen=True)
class DiffReport:
    """What ``--diff`` produced for one differing artefact."""

    name: str
    html: Path | None = None
    text: Path | None = None
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "html": str(self.html) if self.html else None,
                "text": str(self.text) if self.text else None, "note": self.note or None}


def diff_artifacts(reproduction: Reproduction, *, program: str, originals: Path, out: Path,
                   timeout: float = 1800) -> list[DiffReport]:
    """Run diffoscope on each differing artefact against its original below ``originals``.

    ``program`` is diffoscope (:func:`find_diffoscope`). Writes ``NAME.html``
    and ``NAME.txt`` reports into ``out``. The original
    must have the digest the provenance names (else a diff would explain
    nothing). Must run while the work tree still exists.
    """
    differing = [s for s in reproduction.subjects if s.status == "differs" and s.path is not None]
    if not differing:
        return []
    out.mkdir(parents=True, exist_ok=True)
    reports = []
    used: set[str] = set()
    for subject in differing:
        assert subject.path is not None
        try:
            original = safe_path(originals, subject.name)
        except (_Unsafe, _Missing) as e:
            reports.append(DiffReport(subject.name, note=f"no original below {originals} to compare with "
                                                         f"({e})"))
            continue
        algorithms = [a for a in ACCEPTED if a in subject.expected]
        digests = hash_file(original, algorithms)
        if any(digests[a] != subject.expected[a].lower() for a in algorithms):
            reports.append(DiffReport(subject.name, note=f"{original} is not the attested artefact (its "
                                                         "digest is not the provenance's); not compared"))
            continue
        stem = re.sub(r"[^A-Za-z0-9._-]+", "_", subject.name).strip("._") or "artefact"
        while stem in used:
            stem += "_"
        used.add(stem)
        html, text = out / f"{stem}.html", out / f"{stem}.txt"
        log.info("diffoscope %s %s", original, subject.path)
        with tempfile.TemporaryDirectory(prefix=".attest-diff-", dir=out) as scratch:  # renamed whole, or not at all
            partial_html, partial_text = Path(scratch) / "report.html", Path(scratch) / "report.txt"
            try:
                done = subprocess.run([program, "--html", str(partial_html), "--text", str(partial_text), "--",
                                       str(original), str(subject.path)], capture_output=True, text=True,
                                      check=False, timeout=timeout)
            except (OSError, subprocess.TimeoutExpired) as e:
                reports.append(DiffReport(subject.name, note=f"diffoscope did not finish: {e}"))
                continue
            if done.returncode not in (0, 1) or not partial_html.is_file() or not partial_text.is_file():
                reports.append(DiffReport(subject.name, note=f"diffoscope failed: {_first_line(done.stderr)}"))
                continue
            os.replace(partial_html, html)
            os.replace(partial_text, text)
        reports.append(DiffReport(subject.name, html=html, text=text))
    return reports


# --emit ------------------------------------------------------------------------------------------------

def default_rebuilder_id(env: Mapping[str, str]) -> str:
    """The CI builder id where a CI platform is recognised, else ``attest:rebuilder:<hostname>``."""
    from attest.collect import detect_platform

    try:
        platform_id = detect_platform(env).builder_id
    except BuildRefused:
        platform_id = None
    return platform_id or f"attest:rebuilder:{socket.gethostname()}"


def _time(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def reproduction_statement(reproduction: Reproduction, *, rebuilder_id: str) -> dict[str, Any]:
    """The reproduction attestation's statement (predicate ``https://attest.dev/reproduction/v1``).

    Its subjects are the original subjects that were rebuilt (matching or
    not); if none was, every original subject, so that the verdict still
    names what failed to rebuild.
    """
    rebuilt = [s for s in reproduction.subjects if s.status in ("match", "differs")]
    rebuilt = rebuilt or list(reproduction.subjects)
    return {
        "_type": STATEMENT_V1,
        "subject": [{"name": s.name, "digest": dict(s.expected)} for s in rebuilt],
        "predicateType": REPRODUCTION_V1,
        "predicate": {
            "provenance": {"digest": {"sha256": reproduction.provenance_digest},
                           "verified": reproduction.signer is not None},
            "source": {"uri": reproduction.source_uri, "commit": reproduction.commit},
            "rebuilder": {"id": rebuilder_id},
            "command": list(reproduction.command),
            "sourceDateEpoch": reproduction.source_date_epoch,
            "results": [{k: v for k, v in s.to_dict().items() if k != "reason" or v} for s in reproduction.subjects],
            "verdict": reproduction.verdict,
            "timeReproduced": _time(reproduction.finished),
        },
    }
