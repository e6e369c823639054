"""Lockfiles down to packages: the locked packages as package URLs with their hashes.

``attest build`` binds each lockfile by its digest; where the format is known,
the packages it locks are listed too, after the lockfiles, in the provenance's
``resolvedDependencies`` (DESIGN: Formats), as
``{"uri": "pkg:pypi/requests@2.32.3", "digest": {"sha256": "..."}}``.

Formats read (see docs/reproducibility.md for what each yields):

============================  ======================================================
pip ``requirements*.txt``     ``name==version`` with ``--hash=ALG:HEX`` (one entry per hash)
``poetry.lock``, ``uv.lock``  one entry per distribution file (``file_name`` qualifier), sha256
``Pipfile.lock``              one entry per hash
``package-lock.json`` v2/v3   ``integrity`` (``sha512-<base64>`` -> hex ``sha512``)
``yarn.lock`` v1              ``integrity`` as above; berry: the package, without digest
``pnpm-lock.yaml`` v5-v9      ``resolution.integrity`` as above
``go.sum``                    module zips: ``h1:`` -> in-toto ``dirHash`` (hex)
``Cargo.lock`` v1-v4          ``checksum`` (sha256 of the .crate)
============================  ======================================================

An unknown or unreadable lockfile yields no packages and a warning; it is
still bound by its digest. Parsing never raises for bad content.
"""

from __future__ import annotations

import json
import logging
import re
import tomllib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import unquote, urlsplit

from packageurl import PackageURL

from verify.errors import MalformedEvidence
from verify.files import read_file
from verify.formats.encoding import b64decode

__all__ = ["MAX_LOCKFILE_BYTES", "LockfileContents", "Package", "integrity_digests", "log_warnings",
           "parse_lockfile"]

log = logging.getLogger(__name__)

#: Lockfiles larger than this are bound by digest only (their packages are not listed).
MAX_LOCKFILE_BYTES = 64 * 1024 * 1024

_HEX = re.compile(r"[0-9a-fA-F]+")
_SRI_ALGORITHMS = {"sha512": "sha512", "sha384": "sha384", "sha256": "sha256", "sha1": "sha1"}


@dataclass(frozen=True)
class Package:
    """One locked package: its package URL and the digests the lockfile gives for it (may be empty)."""

    purl: str
    digest: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class LockfileContents:
    """What :func:`parse_lockfile` found: the format, the packages (in file order) and any warnings."""

    format: str | None
    packages: tuple[Package, ...] = ()
    warnings: tuple[str, ...] = ()


class _Unreadable(Exception):
    """The lockfile does not parse as its format (turned into a warning)."""


def _purl(kind: str, name: str, version: str | None, *, namespace: str | None = None,
          qualifiers: Mapping[str, str] | None = None) -> str:
    return str(PackageURL(type=kind, namespace=namespace, name=name, version=version,
                          qualifiers=dict(qualifiers) if qualifiers else None).to_string())


def _hash_pair(text: str) -> tuple[str, str] | None:
    """``sha256:HEX`` (pip, poetry, uv, Pipfile) -> (algorithm, lower-case hex)."""
    algorithm, sep, value = text.strip().partition(":")
    algorithm = algorithm.lower()
    if not sep or algorithm not in ("sha256", "sha384", "sha512") or not _HEX.fullmatch(value):
        return None
    return algorithm, value.lower()


def integrity_digests(integrity: str) -> dict[str, str]:
    """Subresource Integrity (``sha512-<base64> sha1-<base64>``) as a hex DigestSet."""
    digests: dict[str, str] = {}
    for token in integrity.split():
        algorithm, sep, value = token.partition("-")
        name = _SRI_ALGORITHMS.get(algorithm.lower())
        if not sep or name is None:
            continue
        try:
            raw = b64decode(value.split("?")[0], what="an integrity hash")
        except MalformedEvidence:
            continue
        digests.setdefault(name, raw.hex())
    return digests


# --- Python -----------------------------------------------------------------------------------------

_REQUIREMENT = re.compile(  # (atomic groups: a run of blanks is read one way only, never tried every way)
    r"^(?P<name>[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?)(?>\s*)(?:\[[^\]]*\])?(?>\s*)"
    r"(?P<op>===|==)(?>\s*)(?P<version>[^\s;,*]+)(?>\s*)(?:;.*)?$")
#: A comment as pip reads one: a ``#`` at the start of a line or after a blank, to the end of the line (the blank
#: looked behind at, one character: a run of blanks tried at each of its places would take quadratic time).
_COMMENT = re.compile(r"(?:^|(?<=\s))#.*$")
_HASH_OPTION = re.compile(r"--hash(?:=|\s+)(\S+)")


def _logical_lines(text: str) -> list[str]:
    """The lines of a requirements file as pip joins them: a line ending in ``\\`` goes on with the next, glued
    without a blank, unless it is a comment (pip never continues one: ``# note \\`` does not swallow the next
    requirement, which pip installs)."""
    lines: list[str] = []
    held: list[str] = []
    for line in text.splitlines():
        if line.endswith("\\") and not _COMMENT.search(line):
            held.append(line[:-1])
            continue
        lines.append("".join(held) + (" " + line if held and _COMMENT.match(line) else line))
        held = []
    if held:
        lines.append("".join(held))
    return lines


def _requirements(text: str, name: str) -> tuple[list[Package], list[str]]:
    packages: list[Package] = []
    warnings: list[str] = []
    unpinned: list[str] = []
    for raw in _logical_lines(text):
        line = _COMMENT.sub("", raw).strip()
        if not line:
            continue
        if line.startswith("-"):
            include = re.match(r"^(?:-r|--requirement|-c|--constraint)(?:=|\s+)(\S+)", line)
            if include:
                warnings.append(f"{name} includes {include.group(1)}; bind it with --lockfile too so that "
                                "its packages are listed")
            continue
        spec, _, _ = line.partition(" --")
        hashes = [pair for pair in (_hash_pair(h) for h in _HASH_OPTION.findall(line)) if pair]
        match = _REQUIREMENT.match(spec.strip())
        if match is None:
            unpinned.append(spec.split(";")[0].strip())
            continue
        purl = _purl("pypi", match.group("name"), match.group("version"))
        if not hashes:
            packages.append(Package(purl))
        packages.extend(Package(purl, {algorithm: value}) for algorithm, value in hashes)
    if unpinned:
        shown = ", ".join(unpinned[:3]) + (", ..." if len(unpinned) > 3 else "")
        warnings.append(f"{name}: {len(unpinned)} requirement(s) are not pinned with == and are not listed "
                        f"({shown})")
    return packages, warnings


def _file_name(url_or_name: str) -> str:
    return unquote(PurePosixPath(urlsplit(url_or_name).path).name)


def _poetry(text: str, name: str) -> tuple[list[Package], list[str]]:
    doc = _toml(text)
    metadata = doc.get("metadata")
    legacy_files = metadata.get("files", {}) if isinstance(metadata, dict) else {}  # lock format 1.x
    packages: list[Package] = []
    for entry in _tables(doc.get("package")):
        pkg_name, version = entry.get("name"), entry.get("version")
        if not isinstance(pkg_name, str) or not isinstance(version, str):
            continue
        source = entry.get("source")
        if isinstance(source, dict) and source.get("type") == "directory":
            continue  # a path dependency: part of the source tree, bound by the commit
        files = entry.get("files")
        if not isinstance(files, list):
            files = legacy_files.get(pkg_name, []) if isinstance(legacy_files, dict) else []
        files_and_hashes = ((f.get("file"), f.get("hash")) for f in _tables(files))
        packages.extend(_python_files(pkg_name, version, files_and_hashes))
    return packages, []


def _python_files(name: str, version: str | None, files: Iterable[tuple[Any, Any]]) -> list[Package]:
    found: list[Package] = []
    for file_name, hash_text in files:
        pair = _hash_pair(hash_text) if isinstance(hash_text, str) else None
        if pair is None:
            continue
        qualifiers = {"file_name": _file_name(file_name)} if isinstance(file_name, str) and file_name \
            else None
        found.append(Package(_purl("pypi", name, version, qualifiers=qualifiers), {pair[0]: pair[1]}))
    return found or [Package(_purl("pypi", name, version))]


_LOCAL_SOURCES = ("editable", "virtual", "directory", "path")


def _uv(text: str, name: str) -> tuple[list[Package], list[str]]:
    doc = _toml(text)
    packages: list[Package] = []
    for entry in _tables(doc.get("package")):
        pkg_name, version = entry.get("name"), entry.get("version")
        source = entry.get("source")
        local = isinstance(source, dict) and any(k in source for k in _LOCAL_SOURCES)
        if not isinstance(pkg_name, str) or local:
            continue  # the project itself or a path dependency: bound by the commit
        files = [entry["sdist"]] if isinstance(entry.get("sdist"), dict) else []
        files += _tables(entry.get("wheels"))
        packages.extend(_python_files(pkg_name, version if isinstance(version, str) else None,
                                      ((f.get("url") or f.get("path") or f.get("filename"), f.get("hash"))
                                       for f in files)))
    return packages, []


def _pipfile(text: str, name: str) -> tuple[list[Package], list[str]]:
    doc = _json(text)
    packages: list[Package] = []
    for section in ("default", "develop"):
        entries = doc.get(section, {})
        for pkg_name, entry in (entries.items() if isinstance(entries, dict) else ()):
            version = entry.get("version") if isinstance(entry, dict) else None
            if not isinstance(version, str) or not version.startswith("=="):
                continue  # git, path or editable entries carry no version
            purl = _purl("pypi", pkg_name, version.lstrip("="))
            hashes = [p for p in (_hash_pair(h) for h in entry.get("hashes", []) if isinstance(h, str)) if p]
            packages.extend([Package(purl, {a: v}) for a, v in hashes] or [Package(purl)])
    return packages, []


# --- JavaScript -------------------------------------------------------------------------------------

def _npm_purl(name: str, version: str) -> str:
    namespace, _, short = name.rpartition("/") if name.startswith("@") else ("", "", name)
    return _purl("npm", short, version, namespace=namespace or None)


def _package_lock(text: str, name: str) -> tuple[list[Package], list[str]]:
    doc = _json(text)
    entries = doc.get("packages")
    if not isinstance(entries, dict):
        version = doc.get("lockfileVersion")
        return [], [f"{name} is a package-lock.json version {version}; only versions 2 and 3 list their "
                    "packages"]
    packages: list[Package] = []
    for key, entry in entries.items():
        if not key or not isinstance(entry, dict) or entry.get("link") or "node_modules/" not in key:
            continue  # the root project, workspace links
        version = entry.get("version")
        pkg_name = entry.get("name") or key.rsplit("node_modules/", 1)[1]
        if not isinstance(version, str) or not isinstance(pkg_name, str) or not pkg_name:
            continue
        integrity = entry.get("integrity")
        packages.append(Package(_npm_purl(pkg_name, version),
                                integrity_digests(integrity) if isinstance(integrity, str) else {}))
    return packages, []


def _selector_name(selector: str) -> str:
    """``@scope/name@^1.0`` -> ``@scope/name``; an alias ``alias@npm:real@^1`` -> ``real``."""
    selector = selector.strip().strip('"')
    at = selector.find("@", 1)
    name, spec = (selector[:at], selector[at + 1:]) if at > 0 else (selector, "")
    if spec.startswith("npm:") and "@" in spec[5:]:
        real = spec[4:]
        return real[:real.find("@", 1)]
    return name


def _yarn(text: str, name: str) -> tuple[list[Package], list[str]]:
    if re.search(r"^__metadata:", text, re.MULTILINE):
        return _yarn_berry(text, name)
    packages: list[Package] = []
    current: dict[str, str] = {}
    selector = ""

    def flush() -> None:
        version = current.get("version")
        if selector and version:
            digests = integrity_digests(current["integrity"]) if "integrity" in current else {}
            resolved = current.get("resolved", "")
            if not digests and re.fullmatch(r"[0-9a-f]{40}", resolved.rpartition("#")[2]):
                digests = {"sha1": resolved.rpartition("#")[2]}
            packages.append(Package(_npm_purl(_selector_name(selector.split(",")[0]), version), digests))

    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if not line.startswith(" "):
            flush()
            selector, current = line.rstrip().rstrip(":"), {}
        elif line.startswith("  ") and not line.startswith("   "):
            key, _, value = line.strip().partition(" ")
            current[key.strip('"')] = value.strip().strip('"')  # ("version" is version, as yarn reads it)
    flush()
    return packages, []


def _yarn_berry(text: str, name: str) -> tuple[list[Package], list[str]]:
    doc = _yaml(text)
    packages: list[Package] = []
    for key, entry in doc.items():
        if key == "__metadata" or not isinstance(entry, dict):
            continue
        resolution = entry.get("resolution")  # (a string, never another node: str() of an alias tree explodes)
        match = re.fullmatch(r"(@?[^@]+)@npm:(.+)", resolution) if isinstance(resolution, str) else None
        if match:  # berry's checksum hashes yarn's own zip of the package, not the npm tarball: no digest
            packages.append(Package(_npm_purl(match.group(1), match.group(2))))
    return packages, []


_PNPM5_KEY = re.compile(r"(?:@[^/]+/)?[^/@]+/[0-9]")


def _pnpm(text: str, name: str) -> tuple[list[Package], list[str]]:
    doc = _yaml(text)
    stated = doc.get("lockfileVersion", "0")
    try:  # (a number or a string, never another node: str() of an alias tree explodes)
        lock_version = float(str(stated).strip("'\"")) if isinstance(stated, str | int | float) else 0.0
    except ValueError:
        lock_version = 0.0
    entries = doc.get("packages") or {}
    if not isinstance(entries, dict):
        raise _Unreadable("its packages are not a mapping")
    packages: list[Package] = []
    for key, entry in entries.items():
        if not isinstance(entry, dict):
            continue
        pkg_name, version = entry.get("name"), entry.get("version")
        if not (isinstance(pkg_name, str) and isinstance(version, str)):
            spec = str(key).lstrip("/")
            slash_style = 0 < lock_version < 6 or (lock_version == 0 and _PNPM5_KEY.match(spec) is not None)
            if not slash_style:
                spec = spec.split("(")[0]
                at = spec.rfind("@")
                if at <= 0:
                    continue
                pkg_name, version = spec[:at], spec[at + 1:]
            else:  # 5.x: /name/version or /@scope/name/version, peers after '_'
                pkg_name, _, version = spec.rpartition("/")
                version = version.split("_")[0]
        if not pkg_name or not version or version.startswith(("link:", "file:")):
            continue
        resolution = entry.get("resolution")
        integrity = resolution.get("integrity") if isinstance(resolution, dict) else None
        packages.append(Package(_npm_purl(pkg_name, version),
                                integrity_digests(integrity) if isinstance(integrity, str) else {}))
    return packages, []


# --- Go, Rust ---------------------------------------------------------------------------------------

def _go_sum(text: str, name: str) -> tuple[list[Package], list[str]]:
    packages: list[Package] = []
    bad = 0
    for line in text.splitlines():
        fields = line.split()
        if not fields:
            continue
        if len(fields) != 3 or not fields[2].startswith("h1:"):
            bad += 1
            continue
        module, version, h1 = fields
        if version.endswith("/go.mod"):
            continue  # only the module's go.mod was needed (graph pruning), not its code
        try:
            raw = b64decode(h1[3:], what="a go.sum hash")
        except MalformedEvidence:
            bad += 1
            continue
        namespace, _, short = module.rpartition("/")
        packages.append(Package(_purl("golang", short, version, namespace=namespace or None),
                                {"dirHash": raw.hex()} if len(raw) == 32 else {}))
    warnings = [f"{name}: {bad} line(s) are not 'module version h1:hash' and were skipped"] if bad else []
    return packages, warnings


def _cargo(text: str, name: str) -> tuple[list[Package], list[str]]:
    doc = _toml(text)
    legacy = doc.get("metadata", {}) if isinstance(doc.get("metadata"), dict) else {}  # Cargo.lock v1
    packages: list[Package] = []
    for entry in _tables(doc.get("package")):
        pkg_name, version, source = entry.get("name"), entry.get("version"), entry.get("source")
        if not isinstance(pkg_name, str) or not isinstance(version, str) or not isinstance(source, str):
            continue  # workspace members and path dependencies: bound by the commit
        checksum = entry.get("checksum") or legacy.get(f"checksum {pkg_name} {version} ({source})")
        digest = {"sha256": checksum.lower()} if isinstance(checksum, str) and re.fullmatch(
            r"[0-9a-fA-F]{64}", checksum) else {}
        packages.append(Package(_purl("cargo", pkg_name, version), digest))
    return packages, []


# --- plumbing ---------------------------------------------------------------------------------------

def _toml(text: str) -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise _Unreadable(f"it is not valid TOML ({e})") from e


def _json(text: str) -> dict[str, Any]:
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as e:
        raise _Unreadable(f"it is not valid JSON ({e.msg} at line {e.lineno})") from e
    if not isinstance(doc, dict):
        raise _Unreadable("it is not a JSON object")
    return doc


def _yaml(text: str) -> dict[str, Any]:
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml: big pnpm locks load in a fraction
    try:
        doc = yaml.load(text, Loader=loader)  # noqa: S506  (a safe loader)
    except yaml.YAMLError as e:
        raise _Unreadable(f"it is not valid YAML ({str(e).splitlines()[0]})") from e
    if not isinstance(doc, dict):
        raise _Unreadable("it is not a YAML mapping")
    return doc


def _tables(value: Any) -> list[dict[str, Any]]:
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


Parser = Callable[[str, str], tuple[list[Package], list[str]]]

#: (file name pattern, format name, parser), tried in order on the file's base name.
_PARSERS: tuple[tuple[re.Pattern[str], str, Parser], ...] = (
    (re.compile(r".*\.txt"), "requirements.txt", _requirements),
    (re.compile(r"poetry\.lock"), "poetry.lock", _poetry),
    (re.compile(r"uv\.lock"), "uv.lock", _uv),
    (re.compile(r"Pipfile\.lock"), "Pipfile.lock", _pipfile),
    (re.compile(r"(npm-shrinkwrap|package-lock)\.json"), "package-lock.json", _package_lock),
    (re.compile(r"yarn\.lock"), "yarn.lock", _yarn),
    (re.compile(r"pnpm-lock\.yaml"), "pnpm-lock.yaml", _pnpm),
    (re.compile(r"go\.sum"), "go.sum", _go_sum),
    (re.compile(r"Cargo\.lock"), "Cargo.lock", _cargo),
)


class _TooLarge(Exception):
    """A lockfile over :data:`MAX_LOCKFILE_BYTES`: bound by its digest, its packages not listed."""


def parse_lockfile(path: Path, name: str | None = None) -> LockfileContents:
    """The packages ``path`` locks, chosen by its file name; ``name`` is how messages call it.

    Never raises for the file's content: an unknown format, a file that does
    not parse or one over :data:`MAX_LOCKFILE_BYTES` gives no packages and a
    warning (the lockfile is still bound by its digest).
    """
    name = name or path.name
    chosen = next(((kind, parser) for pattern, kind, parser in _PARSERS if pattern.fullmatch(path.name)),
                  None)
    if chosen is None:
        return LockfileContents(None, (), (f"lockfile {name}: attest does not read this format, so its "
                                           "packages are not listed; it is bound by its digest",))
    kind, parser = chosen
    try:
        try:
            data = read_file(path, what="lockfile", limit=MAX_LOCKFILE_BYTES, error=_Unreadable, too_large=_TooLarge)
        except _TooLarge:
            return LockfileContents(kind, (), (f"lockfile {name} is over {MAX_LOCKFILE_BYTES} bytes; its packages "
                                               "are listed only below that size; it is bound by its digest",))
        text = data.decode("utf-8-sig")
        packages, warnings = parser(text, name)
    except (UnicodeDecodeError, _Unreadable, ValueError, TypeError, AttributeError, KeyError, RecursionError) as e:
        if isinstance(e, UnicodeDecodeError):
            reason = "it is not UTF-8 text"
        elif isinstance(e, RecursionError):
            reason = "it nests deeper than a lockfile does"
        elif isinstance(e, _Unreadable):
            reason = str(e)
        else:  # a shape the parser did not expect: bad content, never a crash
            reason = f"unexpected content: {e}"
        return LockfileContents(kind, (), (f"lockfile {name} could not be read as a {kind} ({reason}); its "
                                           "packages are not listed; it is bound by its digest",))
    unique = tuple(dict.fromkeys((p.purl, tuple(sorted(p.digest.items()))) for p in packages))
    return LockfileContents(kind, tuple(Package(purl, dict(digest)) for purl, digest in unique),
                            tuple(warnings))


def log_warnings(contents: LockfileContents) -> None:
    """Log each warning of ``contents`` (the CLI shows warnings on stderr)."""
    for warning in contents.warnings:
        log.warning("warning: %s", warning)
