"""Facts about a build: the git source, the lockfiles, the CI platform.

Everything here is read from the work tree and the environment; nothing is
trusted from the build command, which runs later.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import SplitResult, urlsplit

from attest.errors import BuildRefused
from attest.lockfiles import Package, log_warnings, parse_lockfile
from verify.digests import hash_file
from verify.formats.encoding import printable

__all__ = ["LOCKFILE_PATTERNS", "GitFacts", "GitSettings", "Lockfile", "Platform", "SourceState", "detect_platform",
           "git_facts", "git_settings", "lockfiles", "pipeline_run", "source_date_epoch", "source_state"]

#: Well-known lockfiles looked for at the repository root, in this order.
LOCKFILE_PATTERNS = (
    "requirements*.txt", "poetry.lock", "uv.lock", "Pipfile.lock", "package-lock.json", "yarn.lock",
    "pnpm-lock.yaml", "go.sum", "Cargo.lock", "Gemfile.lock", "composer.lock",
)


@dataclass(frozen=True)
class GitFacts:
    root: Path
    repo_uri: str
    """Normalised repository URL, without credentials (``https://host/path`` or ``file:///path``)."""
    ref: str
    commit: str
    commit_time: int
    dirty: bool


#: Options of every git attest runs: no program the repository's own configuration names (a build command may
#: write .git/config: an fsmonitor hook, run by ``git status`` after the command, would run as attest).
GIT_SAFE = ("-c", "core.fsmonitor=false", "-c", "core.hooksPath=/dev/null")


def git_environment(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment every git attest runs gets: this process's, without a signing credential (a filter or a
    program the repository names still runs as a child of git), and with git's replace refs off (``git replace``
    would have HEAD's files read from another commit while HEAD still names its own)."""
    return {**{k: v for k, v in os.environ.items() if not is_credential(k)}, "GIT_NO_REPLACE_OBJECTS": "1",
            **(extra or {})}


def _git(root: Path, *args: str, check: bool = True, raw: bool = False) -> str:
    """``git args`` in ``root``, its output stripped; ``raw``: as is (NUL-separated records keep their spaces,
    and a path that is not UTF-8 is kept with surrogate escapes instead of failing)."""
    try:  # output that is not UTF-8 (a path, a remote URL) is kept with surrogate escapes, refused where it matters
        done = subprocess.run(["git", *GIT_SAFE, "-C", str(root), *args], capture_output=True, text=True,
                              errors="surrogateescape", check=False, env=git_environment())
    except FileNotFoundError as e:
        raise BuildRefused("git is not installed; attest build records the commit it builds") from e
    if check and done.returncode != 0:
        raise BuildRefused(f"git {' '.join(args)} failed in {root}: {done.stderr.strip() or done.returncode}")
    return done.stdout if raw else done.stdout.strip()


def _bad_url(url: str, why: str) -> BuildRefused:
    # a token in the user info never reaches a CI log: all up to the last @ goes (a password may hold a / or a @)
    shown = re.sub(r"(?<=://).*@", "", url, flags=re.S)
    return BuildRefused(f"the repository URL {printable(shown)!r} {why}; fix the git remote 'origin' (or the CI's "
                        "repository variable) so that the provenance can name the source")


def _utf8(url: str) -> str:
    """``url``, or :class:`BuildRefused` if it is not text (git and the environment hand over bytes)."""
    try:
        url.encode("utf-8")
    except UnicodeError:
        raise _bad_url(url, "is not UTF-8 text") from None
    return url


def _url_parts(url: str) -> SplitResult:
    """``url`` split, its port read (out of range raises), or :class:`BuildRefused` saying why it is no URL."""
    try:
        parts = urlsplit(_utf8(url))
        parts.port  # noqa: B018  (reading it validates it)
    except ValueError as e:
        raise _bad_url(url, f"is not a URL ({e})" if "@" not in url else "is not a URL") from None  # (urllib quotes)
    return parts


def clean_repo_url(url: str, root: Path) -> str:
    """The origin URL as a credential-free URL: SSH remotes become https, local paths file:// URLs."""
    url = _utf8(url.strip())
    scp = re.match(r"^(?:[\w.\-]+@)?(?P<host>[\w.\-]+):(?!//)(?P<path>.+)$", url)
    if "://" not in url and scp and not Path(url).exists():
        return f"https://{scp.group('host').lower()}/{scp.group('path').removesuffix('.git').strip('/')}"
    if "://" not in url:
        return (root / url).resolve().as_uri() if not Path(url).is_absolute() else Path(url).resolve().as_uri()
    parts = _url_parts(url)
    if parts.scheme == "file":
        return url
    host = (parts.hostname or "").lower()
    if parts.scheme in ("http", "https") and parts.port not in (None, 80, 443):  # a web port names the repository
        host = f"{host}:{parts.port}"
    scheme = "https" if parts.scheme in ("ssh", "git", "git+ssh", "http", "https") else parts.scheme
    path = parts.path.removesuffix(".git").rstrip("/")
    return f"{scheme}://{host}{path}"


def _without_userinfo(url: str) -> str:
    parts = _url_parts(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return parts._replace(netloc=netloc).geturl()


def git_facts(directory: Path, *, env: Mapping[str, str] | None = None) -> GitFacts:
    """The commit being built, its ref, its time and whether tracked files are modified."""
    env = os.environ if env is None else env
    inside = _git(directory, "rev-parse", "--is-inside-work-tree", check=False)
    if inside != "true":
        raise BuildRefused(f"{directory} is not inside a git work tree; attest build records the commit it builds")
    root = Path(_git(directory, "rev-parse", "--show-toplevel"))
    commit = _git(root, "rev-parse", "--verify", "HEAD^{commit}", check=False)
    if not re.fullmatch(r"[0-9a-f]{40}|[0-9a-f]{64}", commit):
        raise BuildRefused(f"{root} has no commit yet; commit the source before building")
    ref = _git(root, "symbolic-ref", "-q", "HEAD", check=False) or ci_ref(env) or commit
    origin = _git(root, "remote", "get-url", "origin", check=False)
    repo_uri = clean_repo_url(env.get("CODEBUILD_SOURCE_REPO_URL") or origin, root) if (
        env.get("CODEBUILD_SOURCE_REPO_URL") or origin) else root.as_uri()
    commit_time = int(_git(root, "log", "-1", "--format=%ct", "HEAD"))
    dirty = bool(source_state(root).changed)
    return GitFacts(root=root, repo_uri=repo_uri, ref=ref, commit=commit, commit_time=commit_time, dirty=dirty)


@dataclass(frozen=True)
class SourceState:
    """What a build command must leave as it found it: what git says of the work tree, taken before and after."""

    commit: str
    ref: str
    """The symbolic ref HEAD names ('' when detached)."""
    changed: frozenset[str]
    """Tracked files that differ from HEAD (in the index or the work tree), those git is told not to look at
    included."""
    hidden: frozenset[str]
    """Tracked files git is told not to look at (assume-unchanged, skip-worktree): their changes do not show."""


GitSettings = tuple[tuple[str, "bytes | None"], ...]
"""The files whose settings git compares the work tree through, with their bytes (:func:`git_settings`)."""


def git_settings(root: Path) -> GitSettings:
    """(path, bytes or None when absent) of each file whose settings git reads when it compares the work tree with
    HEAD: the repository's config and worktree config, its info/attributes, the user's git config and attributes.
    A build command that changed one could have git compare a file through a clean filter of its own (a same-size
    edit then shows no change), or a work tree elsewhere."""
    dirs = _git(root, "rev-parse", "--path-format=absolute", "--git-dir", "--git-common-dir").splitlines()
    git_dir, common = (Path(dirs[0]), Path(dirs[1])) if len(dirs) == 2 else (root / ".git", root / ".git")
    home = Path(os.environ.get("HOME") or "~").expanduser()
    xdg = Path(os.environ.get("XDG_CONFIG_HOME") or home / ".config") / "git"
    named = [Path(os.environ[v]) for v in ("GIT_CONFIG_GLOBAL", "GIT_CONFIG_SYSTEM") if os.environ.get(v)]
    files = (common / "config", git_dir / "config.worktree", common / "info" / "attributes", home / ".gitconfig",
             xdg / "config", xdg / "attributes", *named)
    return tuple((str(path), _bytes_or_none(path)) for path in files)


def _bytes_or_none(path: Path) -> bytes | None:
    """A settings file's bytes; None when absent. Another kind of file (``/dev/null``, a FIFO) is never read."""
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):
            return b"(not a regular file)"
        return path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as e:  # unreadable is not "unchanged": its bytes cannot be compared
        return f"unreadable: {e.strerror or e}".encode()


def source_state(root: Path) -> SourceState:
    """The work tree's :class:`SourceState` at ``root``."""
    commit = _git(root, "rev-parse", "--verify", "HEAD^{commit}", check=False)
    ref = _git(root, "symbolic-ref", "-q", "HEAD", check=False)
    status = _git(root, "status", "--porcelain=v1", "-z", "--untracked-files=no", "--ignore-submodules=none", raw=True)
    changed = set()
    records = iter(status.split("\0"))
    for record in records:
        if len(record) > 3:
            changed.add(record[3:])
            if record[0] in "RC":  # a rename or copy: the next record is the source path
                changed.add(next(records, ""))
    tagged = _git(root, "ls-files", "-v", "-z", raw=True)
    hidden = {entry[2:]: entry[0] for entry in tagged.split("\0")
              if len(entry) > 2 and (entry[0].islower() or entry[0] == "S")}
    changed |= _hidden_changes(root, hidden)
    return SourceState(commit=commit, ref=ref, changed=frozenset(changed - {""}), hidden=frozenset(hidden))


def _hidden_changes(root: Path, hidden: Mapping[str, str]) -> set[str]:
    """The files among ``hidden`` (assume-unchanged, skip-worktree; path -> its ``git ls-files -v`` tag) whose
    work-tree bytes differ from the index, or that are gone: git does not look at them, so git is asked again on
    a copy of the index with their flags cleared (the repository's own index is never touched). A skip-worktree
    file absent from a sparse checkout is not a change: the build cannot read it."""
    present = sorted(path for path in hidden if os.path.lexists(root / path))
    # absent: a deletion git does not show. Only a skip-worktree file that a sparse checkout leaves out is not one;
    # an assume-unchanged file (tagged in lower case) is never excused, nor is anything without a sparse checkout
    sparse = _git(root, "config", "--bool", "core.sparseCheckout", check=False) == "true"
    gone = {path for path in hidden if path not in present and not (sparse and hidden[path] == "S")}
    if not present:
        return gone
    index = Path(_git(root, "rev-parse", "--path-format=absolute", "--git-path", "index"))
    with tempfile.TemporaryDirectory(prefix="attest-index-") as tmp:
        copy = Path(tmp) / "index"
        shutil.copyfile(index, copy)
        env = git_environment({"GIT_INDEX_FILE": str(copy)})
        listed = "\0".join(present).encode("utf-8", "surrogateescape") + b"\0"
        for flag in ("--no-assume-unchanged", "--no-skip-worktree"):  # one per run: git applies only one
            cleared = subprocess.run(["git", *GIT_SAFE, "-C", str(root), "update-index", flag, "-z", "--stdin"],
                                     input=listed,
                                     env=env, capture_output=True, check=False)
            if cleared.returncode != 0:
                raise BuildRefused(f"git update-index failed on a copy of {index}: "
                                   f"{cleared.stderr.decode(errors='replace').strip()}")
        diff = subprocess.run(["git", *GIT_SAFE, "-C", str(root), "diff", "--name-only", "-z", "--no-ext-diff",
                               "--no-textconv", "--no-renames"], env=env, capture_output=True, check=False)
        if diff.returncode != 0:
            raise BuildRefused(f"git diff failed on a copy of {index}: {diff.stderr.decode(errors='replace').strip()}")
    found = set(diff.stdout.decode("utf-8", "surrogateescape").split("\0"))
    return (found & set(present)) | gone


def ci_ref(env: Mapping[str, str]) -> str | None:
    """The ref a CI system says it checked out (detached HEADs are the rule there)."""
    if env.get("GITHUB_REF"):
        return env["GITHUB_REF"]
    if env.get("CI_COMMIT_REF_NAME"):
        tag = env.get("CI_COMMIT_TAG")
        return f"refs/tags/{tag}" if tag else f"refs/heads/{env['CI_COMMIT_REF_NAME']}"
    webhook = env.get("CODEBUILD_WEBHOOK_HEAD_REF") or env.get("CODEBUILD_WEBHOOK_TRIGGER", "")
    if webhook.startswith("refs/"):
        return webhook
    if webhook.startswith("branch/"):
        return f"refs/heads/{webhook.removeprefix('branch/')}"
    if webhook.startswith("tag/"):
        return f"refs/tags/{webhook.removeprefix('tag/')}"
    return None


@dataclass(frozen=True)
class Lockfile:
    path: str
    """Relative to the repository root, with '/' separators."""
    digests: Mapping[str, str]
    packages: tuple[Package, ...] = ()
    """The packages it locks, where attest reads its format (:mod:`attest.lockfiles`)."""


def lockfiles(root: Path, given: Sequence[str]) -> list[Lockfile]:
    """The lockfiles to bind: ``given`` (paths) or those found at the root; each must equal its committed blob."""
    if given:
        paths = []
        for name in given:
            path = Path(name)
            path = path if path.is_absolute() else Path.cwd() / path
            if not path.is_file():
                raise BuildRefused(f"lockfile {name} is not a regular file (a folder, a FIFO or a device)" if
                                   path.exists() else f"lockfile {name} does not exist")
            try:
                paths.append(path.resolve().relative_to(root.resolve()))
            except ValueError as e:
                raise BuildRefused(f"lockfile {name} is outside the repository {root}") from e
    else:
        seen: set[Path] = set()
        paths = []
        for pattern in LOCKFILE_PATTERNS:
            for match in sorted(root.glob(pattern)):
                if match.is_file() and match not in seen:
                    seen.add(match)
                    paths.append(match.relative_to(root))
    found = []
    for rel in dict.fromkeys(paths):  # (a lockfile given twice is bound once)
        name = rel.as_posix()
        try:
            name.encode("utf-8")
        except UnicodeEncodeError:
            raise BuildRefused(f"lockfile {printable(name)} has a name that is not UTF-8, which a provenance "
                               "cannot record; rename it") from None
        committed = _git(root, "rev-parse", "-q", "--verify", f"HEAD:{name}", check=False)
        if not committed:
            raise BuildRefused(f"lockfile {name} is not committed; commit it so the provenance can bind it")
        # byte for byte (--no-filters): a line-ending or clean filter would pass other bytes than the commit's
        on_disk = _git(root, "hash-object", "--no-filters", "--", name)
        if on_disk != committed:
            raise BuildRefused(f"lockfile {name} differs from the committed one, byte for byte; commit or restore "
                               "it (a checkout that converts line endings, core.autocrlf or .gitattributes eol, "
                               "changes its bytes too)")
        contents = parse_lockfile(root / rel, name)
        log_warnings(contents)
        found.append(Lockfile(path=name, digests=hash_file(root / rel), packages=contents.packages))
    return found


@dataclass(frozen=True)
class Platform:
    """What the CI platform says about the run."""

    name: str
    builder_id: str | None = None
    invocation_id: str | None = None
    parameters: Mapping[str, str] = field(default_factory=dict)
    resolved_commit: str | None = None


def detect_platform(env: Mapping[str, str]) -> Platform:
    """Recognise AWS CodeBuild, GitHub Actions or GitLab CI from their environment variables."""
    if env.get("CODEBUILD_BUILD_ARN"):
        build_arn = env["CODEBUILD_BUILD_ARN"]
        match = re.fullmatch(r"arn:(aws[\w-]*):codebuild:([\w-]+):(\d{12}):build/([^:]+):(.+)", build_arn)
        if not match:
            raise BuildRefused(f"CODEBUILD_BUILD_ARN {build_arn!r} is not a CodeBuild build ARN")
        partition, region, account, project, _ = match.groups()
        params = {k: v for k, v in sorted(env.items()) if k in (
            "CODEBUILD_INITIATOR", "CODEBUILD_BUILD_IMAGE", "CODEBUILD_START_TIME", "CODEBUILD_BUILD_NUMBER",
            "CODEBUILD_SOURCE_VERSION", "CODEBUILD_RESOLVED_SOURCE_VERSION", "CODEBUILD_SOURCE_REPO_URL",
        ) or k.startswith("CODEBUILD_WEBHOOK_")}
        if "CODEBUILD_SOURCE_REPO_URL" in params:  # may carry a token in its user info
            params["CODEBUILD_SOURCE_REPO_URL"] = _without_userinfo(params["CODEBUILD_SOURCE_REPO_URL"])
        return Platform(name="codebuild",
                        builder_id=f"arn:{partition}:codebuild:{region}:{account}:project/{project}",
                        invocation_id=build_arn, parameters=params,
                        resolved_commit=env.get("CODEBUILD_RESOLVED_SOURCE_VERSION"))
    if env.get("GITHUB_ACTIONS") == "true":
        server = env.get("GITHUB_SERVER_URL", "https://github.com")
        repo = env.get("GITHUB_REPOSITORY", "")
        workflow_ref = env.get("GITHUB_WORKFLOW_REF", "")
        params = {k: env[k] for k in sorted(env) if k in (
            "GITHUB_EVENT_NAME", "GITHUB_REF", "GITHUB_REPOSITORY", "GITHUB_REPOSITORY_ID",
            "GITHUB_REPOSITORY_OWNER_ID", "GITHUB_RUN_ATTEMPT", "GITHUB_RUN_ID", "GITHUB_SHA",
            "GITHUB_WORKFLOW_REF", "GITHUB_WORKFLOW_SHA", "RUNNER_ENVIRONMENT",
        )}
        return Platform(name="github-actions",
                        builder_id=f"{server}/{workflow_ref}" if workflow_ref else f"{server}/{repo}",
                        invocation_id=f"{server}/{repo}/actions/runs/{env.get('GITHUB_RUN_ID', '')}"
                                      f"/attempts/{env.get('GITHUB_RUN_ATTEMPT', '1')}",
                        parameters=params, resolved_commit=env.get("GITHUB_SHA"))
    if env.get("GITLAB_CI") == "true":
        params = {k: env[k] for k in sorted(env) if k in (
            "CI_PIPELINE_SOURCE", "CI_COMMIT_REF_NAME", "CI_COMMIT_TAG", "CI_JOB_IMAGE", "CI_RUNNER_ID",
            "CI_PROJECT_PATH", "CI_SERVER_URL",
        )}
        server, project = env.get("CI_SERVER_URL", ""), env.get("CI_PROJECT_PATH", "")
        config = env.get("CI_CONFIG_PATH", ".gitlab-ci.yml")
        return Platform(name="gitlab-ci", builder_id=f"{server}/{project}/-/blob/{config}",
                        invocation_id=env.get("CI_JOB_URL"), parameters=params,
                        resolved_commit=env.get("CI_COMMIT_SHA"))
    return Platform(name="local")


def pipeline_run(env: Mapping[str, str]) -> tuple[str, str] | None:
    """(platform, run id) of the pipeline run this process is part of, as the environment tells it; None if it
    does not. A CodePipeline execution (``CODEPIPELINE_EXECUTION_ID``, passed in by the pipeline) first, then
    what :func:`detect_platform` reads: the CodeBuild build ARN (else ``CODEBUILD_BUILD_ID``), the GitHub
    Actions run (``GITHUB_RUN_ID`` with ``GITHUB_REPOSITORY``), the GitLab CI job."""
    if env.get("CODEPIPELINE_EXECUTION_ID"):
        return "codepipeline", env["CODEPIPELINE_EXECUTION_ID"]
    platform = detect_platform(env)
    if platform.name == "codebuild" and platform.invocation_id:
        return "codebuild", platform.invocation_id
    if env.get("CODEBUILD_BUILD_ID"):
        return "codebuild", env["CODEBUILD_BUILD_ID"]
    if platform.name == "github-actions" and platform.invocation_id and env.get("GITHUB_RUN_ID") \
            and env.get("GITHUB_REPOSITORY"):
        return "github-actions", platform.invocation_id
    if platform.name == "gitlab-ci" and platform.invocation_id:
        return "gitlab-ci", platform.invocation_id
    return None


#: The largest SOURCE_DATE_EPOCH accepted: 9999-12-31T23:59:59Z, the last second an RFC 3339 time can name.
MAX_SOURCE_DATE_EPOCH = 253402300799


def source_date_epoch(env: Mapping[str, str], *, commit_time: int) -> int:
    """SOURCE_DATE_EPOCH from ``env`` if set (a whole number of seconds since 1970), else the commit time."""
    value = env.get("SOURCE_DATE_EPOCH")
    if not value:
        return commit_time
    if not re.fullmatch(r"[0-9]{1,12}", value) or int(value) > MAX_SOURCE_DATE_EPOCH:  # (int() of 5,000 digits fails)
        from verify.formats.encoding import printable

        shown = printable(value[:64]) + ("..." if len(value) > 64 else "")
        raise BuildRefused(f"SOURCE_DATE_EPOCH is '{shown}', but it must be a whole number of seconds since "
                           f"1970-01-01 UTC, from 0 to {MAX_SOURCE_DATE_EPOCH}; fix it or unset it to use the "
                           "commit time")
    return int(value)


#: Every variable a signing credential source of attest reads, by source: removed from the build command's
#: environment (unless --pass-aws-env), so that CMD cannot sign. The keyless ones are what sigstore-python's
#: ambient detection (``sigstore.oidc.detect_credential``, through the ``id`` package) and the CI tools it
#: calls read; tests/hardening/test_build_credentials.py runs that detection from the command's own view.
CREDENTIAL_SOURCES: Mapping[str, tuple[str, ...]] = {
    "AWS (KMS signing)": (
        "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_CONTAINER_CREDENTIALS_FULL_URI",
        "AWS_CONTAINER_AUTHORIZATION_TOKEN", "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
        "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_ROLE_ARN", "AWS_PROFILE", "AWS_DEFAULT_PROFILE",
        "AWS_SHARED_CREDENTIALS_FILE", "AWS_CONFIG_FILE",
        "AWS_CREDENTIAL_FILE", "BOTO_CONFIG"),  # (botocore's credential chain reads these two as well)
    "a local key": ("ATTEST_KEY_PASSWORD",),
    "Sigstore, given": ("SIGSTORE_ID_TOKEN",),  # also GitLab CI's id_tokens for the audience 'sigstore'
    "Sigstore, GitHub Actions": ("ACTIONS_ID_TOKEN_REQUEST_TOKEN", "ACTIONS_ID_TOKEN_REQUEST_URL"),
    "Sigstore, Buildkite (buildkite-agent oidc request-token)": ("BUILDKITE_AGENT_ACCESS_TOKEN",),
    "Sigstore, CircleCI (circleci run oidc get)": ("CIRCLE_OIDC_TOKEN", "CIRCLE_OIDC_TOKEN_V2"),
    "Sigstore, Google Cloud (a service account to impersonate)": ("GOOGLE_SERVICE_ACCOUNT_NAME",),
}
#: Variables removed from the build command's environment: the signer's credentials, every source's.
CREDENTIAL_VARIABLES = tuple(name for names in CREDENTIAL_SOURCES.values() for name in names)


def is_credential(name: str) -> bool:
    """Whether the environment variable ``name`` holds a signing credential (kept from the build command)."""
    return name in CREDENTIAL_VARIABLES or name.startswith("AWS_CONTAINER_AUTHORIZATION_TOKEN")


def command_environment(env: Mapping[str, str], *, source_date_epoch: int, pass_credentials: bool) -> dict[str, str]:
    """The environment the build command runs in: SOURCE_DATE_EPOCH set, signing credentials removed."""
    result = dict(env)
    result.setdefault("SOURCE_DATE_EPOCH", str(source_date_epoch))
    if not pass_credentials:
        for name in list(result):
            if is_credential(name):
                result.pop(name)
    return result


@dataclass(frozen=True)
class Artifact:
    path: Path
    name: str
    """The subject name: the path relative to the build root, '/'-separated."""


def expand_artifacts(patterns: Sequence[str], *, root: Path) -> list[Artifact]:
    """Files named by ``patterns``: files, directories (every regular file below, sorted) or globs.

    Symlinks are refused, anywhere on a path as given (a link could point out of
    the tree and the subject would name something else than what is shipped); so is a pattern that
    matches no regular file (a missing path, a glob matching nothing, an empty
    directory), and two patterns naming one file are merged.
    """
    import glob

    found: dict[Path, Artifact] = {}
    for pattern in patterns:
        magic = glob.has_magic(pattern)
        matches = sorted(glob.glob(pattern, recursive=True)) if magic else [pattern]
        if not matches or not any(Path(m).exists() or Path(m).is_symlink() for m in matches):
            if magic:
                raise BuildRefused(f"artifact pattern {pattern} matches nothing; did the build command write it?")
            raise BuildRefused(f"artifact {pattern} does not exist; did the build command write it?")
        files = 0
        for match in matches:
            path = Path(match)
            link = _first_link(path)
            if link is not None:
                where = "is" if link == path else f"lies under {link}, which is"
                raise BuildRefused(f"artifact {match} {where} a symbolic link; attest hashes regular files only, "
                                   "named without a link anywhere on the way")
            if path.is_dir():
                for dirpath, dirnames, filenames in os.walk(path, followlinks=False, onerror=_unlisted):
                    dirnames.sort()
                    for name in sorted(filenames + [d for d in dirnames if Path(dirpath, d).is_symlink()]):
                        child = Path(dirpath, name)
                        if child.is_symlink():
                            raise BuildRefused(f"artifact {child} is a symbolic link; attest hashes regular files "
                                               "only")
                        if not child.is_file():
                            raise BuildRefused(f"artifact {child} is not a regular file (a FIFO, socket or device); "
                                               "attest hashes regular files only: remove it, or name the files")
                        _add(found, child, root)
                        files += 1
            elif path.is_file():
                _add(found, path, root)
                files += 1
            else:
                raise BuildRefused(f"artifact {match} is not a regular file or a directory")
        if not files:
            what = "matches only directories" if magic else "is a directory"
            raise BuildRefused(f"artifact {pattern} {what} with no regular file below; did the build command "
                               "write into it?")
    return sorted(found.values(), key=lambda a: a.name)


def _unlisted(error: OSError) -> None:
    """A folder under an artefact directory that cannot be listed: refused, never left out of the provenance."""
    raise BuildRefused(f"cannot list {error.filename} under an artifact directory ({error.strerror or error}); every "
                       "file below is attested, so give this process read access to it, or name the files") from error


def _first_link(path: Path) -> Path | None:
    """The first component of ``path``, as given, that is a symbolic link (None: none is): a link on the way
    could take a name inside the work tree to a file outside it."""
    parts = path.parts
    start = 1 if path.is_absolute() else 0
    for end in range(start + 1, len(parts) + 1):
        prefix = Path(*parts[:end])
        if prefix.is_symlink():
            return prefix
    return None


def _add(found: dict[Path, Artifact], path: Path, root: Path) -> None:
    resolved = path.resolve()
    try:
        name = resolved.relative_to(root.resolve()).as_posix()
    except ValueError:
        name = path.name if not path.is_absolute() else resolved.name
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        raise BuildRefused(f"artifact {printable(str(path))} has a name that is not UTF-8 text, which a provenance "
                           "cannot record; rename it") from None
    found.setdefault(resolved, Artifact(path=path, name=name))
