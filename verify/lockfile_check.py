"""Is this local lockfile, byte for byte, the one a provenance bound?

``attest verify --lockfile PATH`` asks this before a deployment installs
dependencies from a lockfile: the lockfile is matched to the provenance's
lockfile entry by its path (the longest trailing match of path components,
then the file name) and its digests compared. The verdict is purely
digest-based. To say *which* package changed, the caller may pass the local
lockfile's packages (parsed at the edge: :mod:`verify` reads no lockfile
format); they are compared with the packages the provenance lists.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path, PurePosixPath
from typing import Protocol

from verify.digests import ACCEPTED, hash_file
from verify.errors import InputError, PolicyViolation
from verify.formats.statement import Dependency, Provenance

__all__ = ["LockedPackage", "bound_lockfile", "check_lockfile", "first_package_difference", "lockfile_difference"]

log = logging.getLogger(__name__)


class LockedPackage(Protocol):
    """A package a lockfile locks: a ``pkg:`` URL and the digests given for it."""

    @property
    def purl(self) -> str: ...

    @property
    def digest(self) -> Mapping[str, str]: ...


def bound_lockfile(path: Path, provenance: Provenance) -> Dependency:
    """The lockfile entry of ``provenance`` that ``path`` names.

    Entries with ``path``'s file name are candidates; one whose whole name
    ends ``path`` beats one that does not, then more trailing components in
    common win (``/ci/app/services/api/requirements.txt`` picks
    ``services/api/requirements.txt`` over ``requirements.txt``). Two equally
    good candidates are refused.
    """
    bound = provenance.lockfiles
    if not bound:
        raise PolicyViolation(f"the provenance binds no lockfile, so {path} cannot be checked against it")
    parts = Path(path).parts
    best: list[Dependency] = []
    best_score = (False, 0)
    for dep in bound:
        name_parts = PurePosixPath(dep.name).parts
        common = 0
        while common < min(len(parts), len(name_parts)) and parts[-1 - common] == name_parts[-1 - common]:
            common += 1
        if common == 0:
            continue
        score = (common == len(name_parts), common)
        if score > best_score:
            best, best_score = [dep], score
        elif score == best_score:
            best.append(dep)
    if not best:
        names = ", ".join(sorted(d.name for d in bound))
        raise PolicyViolation(f"the provenance binds no lockfile named {Path(path).name!r} (it binds "
                              f"{names}); give the path of a bound lockfile")
    if len(best) > 1:
        raise PolicyViolation(f"{path} matches several bound lockfiles ({', '.join(d.name for d in best)}); "
                              "give a longer path, relative to the repository root")
    return best[0]


def _purl_parts(purl: str) -> tuple[str, str]:
    """``pkg:type/ns/name@version?q#s`` -> (``type/ns/name``, ``version``); no validation."""
    body = purl.removeprefix("pkg:").split("#", 1)[0].split("?", 1)[0]
    name, at, version = body.rpartition("@")
    return (name, version) if at else (body, "")


def _same_digest(a: Mapping[str, str], b: Mapping[str, str]) -> bool:
    common = [alg for alg in (*ACCEPTED, "dirHash") if alg in a and alg in b]
    return bool(common) and all(a[alg].lower() == b[alg].lower() for alg in common)


def first_package_difference(local: Sequence[LockedPackage], bound: Sequence[Dependency], *,
                             lockfile: str, single_lockfile: bool = False) -> str | None:
    """A sentence naming the first package that differs between ``local`` and ``bound``, or None.

    ``bound`` are the provenance's package entries (``pkg:`` URIs) of every
    lockfile, listed together; a bound package missing from ``local`` is
    reported only when ``single_lockfile`` says the provenance binds one
    lockfile (else it may well come from another).
    """
    bound_pkgs = [d for d in bound if d.uri.startswith("pkg:")]
    by_purl, versions = _bound_packages(bound_pkgs)
    for package in local:
        difference = _package_difference(package, by_purl, versions, lockfile=lockfile)
        if difference is not None:
            return difference
    if not single_lockfile:
        return None  # the packages of several lockfiles are listed together: a missing one proves nothing
    return _first_missing(local, bound_pkgs, lockfile=lockfile)


def _bound_packages(bound_pkgs: Sequence[Dependency]) -> tuple[dict[str, list[Mapping[str, str]]],
                                                               dict[str, set[str]]]:
    """The bound packages' digests by ``pkg:`` URL, and their versions by package name."""
    by_purl: dict[str, list[Mapping[str, str]]] = {}
    versions: dict[str, set[str]] = {}
    for dep in bound_pkgs:
        by_purl.setdefault(dep.uri, []).append(dep.digest)
        name, version = _purl_parts(dep.uri)
        versions.setdefault(name, set()).add(version)
    return by_purl, versions


def _package_difference(package: LockedPackage, by_purl: Mapping[str, list[Mapping[str, str]]],
                        versions: Mapping[str, set[str]], *, lockfile: str) -> str | None:
    """A sentence if the local ``package`` has another hash, another version, or is not bound at all; else None."""
    name, version = _purl_parts(package.purl)
    if package.purl in by_purl:
        digests = by_purl[package.purl]
        if package.digest and all(d for d in digests) and not any(_same_digest(package.digest, d)
                                                                  for d in digests):
            return f"{lockfile} locks {package.purl} with another hash than the provenance bound"
        return None
    if name in versions and version not in versions[name]:
        was = ", ".join(sorted(versions[name]))
        return f"{lockfile} locks {name.split('/')[-1]} {version} where the provenance bound {was}"
    if name not in versions:
        return f"{lockfile} locks {package.purl}, which the provenance does not bind"
    return None


def _first_missing(local: Sequence[LockedPackage], bound_pkgs: Sequence[Dependency], *, lockfile: str) -> str | None:
    """A sentence naming the first bound package that no local package has the name of, or None."""
    local_names = {_purl_parts(package.purl)[0] for package in local}
    for dep in bound_pkgs:
        name, _ = _purl_parts(dep.uri)
        if name not in local_names:
            return f"{lockfile} no longer locks {dep.uri}, which the provenance bound"
    return None


def check_lockfile(path: Path, provenance: Provenance, *, packages: Sequence[LockedPackage] | None = None,
                   entry: Dependency | None = None) -> None:
    """Raise :class:`PolicyViolation` unless ``path`` has the digests the provenance bound for it.

    ``entry`` is the provenance's lockfile entry ``path`` is (default: found by its path,
    :func:`bound_lockfile`). ``packages`` (the local lockfile's packages, optional) only sharpen
    the message: they name the first package that differs.
    """
    entry = bound_lockfile(path, provenance) if entry is None else entry
    difference = lockfile_difference(path, entry)
    if difference is None:
        return
    detail = None
    if packages is not None:
        detail = first_package_difference(packages, provenance.dependencies, lockfile=str(path),
                                          single_lockfile=len(provenance.lockfiles) == 1)
    raise PolicyViolation(f"lockfile {path} is not the one the provenance bound as {entry.name} ({difference})"
                          + (f": {detail}" if detail else "; restore it from the attested commit"))


def lockfile_difference(path: Path, entry: Dependency) -> str | None:
    """None if the file ``path`` has every accepted digest the lockfile ``entry`` binds; else what differs
    (``sha256 0123... where abcd... was bound``). :class:`PolicyViolation` if the entry binds no digest
    attest accepts, :class:`InputError` if ``path`` is not a file."""
    accepted = [alg for alg in ACCEPTED if alg in entry.digest]
    if not accepted:
        found = sorted(entry.digest)
        raise PolicyViolation(f"the provenance binds lockfile {entry.name} with no digest attest accepts "
                              f"(found {found}, accepted {list(ACCEPTED)})")
    if not Path(path).is_file():
        raise InputError(f"lockfile {path} does not exist or is not a file")
    local = hash_file(Path(path), accepted)
    log.info("lockfile %s: comparing %s with %s", path, ", ".join(accepted), entry.name)
    differing = [alg for alg in accepted if local[alg] != entry.digest[alg].lower()]
    if not differing:
        return None
    alg = differing[0]
    return f"{alg} {local[alg][:16]}... where {entry.digest[alg][:16]}... was bound"
