"""verify.lockfile_check: is the local lockfile, byte for byte, the one the provenance bound?"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest

from tests.verify import _factory as f
from verify.errors import InputError, PolicyViolation
from verify.formats.statement import Provenance, parse_statement, read_provenance
from verify.lockfile_check import bound_lockfile, check_lockfile, first_package_difference

LOCK = b"requests==2.32.3 --hash=sha256:" + b"ab" * 32 + b"\nidna==3.8\n"


@dataclass(frozen=True)
class Pkg:
    purl: str
    digest: dict[str, str] = field(default_factory=dict)


def provenance(lockfiles: dict[str, bytes], packages: list[dict[str, Any]] | None = None) -> Provenance:
    predicate = f.provenance_v1(lockfiles=lockfiles)
    deps = [
        d for d in predicate["buildDefinition"]["resolvedDependencies"] if not d["uri"].startswith("pkg:")
    ]
    deps += (
        packages
        if packages is not None
        else [
            {"uri": "pkg:pypi/requests@2.32.3", "digest": {"sha256": "ab" * 32}},
            {"uri": "pkg:pypi/idna@3.8"},
        ]
    )
    predicate["buildDefinition"]["resolvedDependencies"] = deps
    return read_provenance(parse_statement(json.dumps(f.statement(predicate=predicate)).encode()))


def test_the_bound_lockfile_passes(tmp_path: Path) -> None:
    (tmp_path / "requirements.txt").write_bytes(LOCK)
    check_lockfile(tmp_path / "requirements.txt", provenance({"requirements.txt": LOCK}))


def test_one_changed_byte_is_a_policy_violation_naming_the_package(tmp_path: Path) -> None:
    changed = LOCK.replace(b"idna==3.8", b"idna==3.7")
    (tmp_path / "requirements.txt").write_bytes(changed)
    prov = provenance({"requirements.txt": LOCK})
    with pytest.raises(
        PolicyViolation, match=r"is not the one the provenance bound as requirements.txt \(blake3 "
    ) as caught:
        check_lockfile(tmp_path / "requirements.txt", prov)
    assert "restore it from the attested commit" in str(caught.value)
    local = [Pkg("pkg:pypi/requests@2.32.3", {"sha256": "ab" * 32}), Pkg("pkg:pypi/idna@3.7")]
    with pytest.raises(
        PolicyViolation, match=r": .*requirements.txt locks idna 3.7 where the provenance bound 3.8"
    ):
        check_lockfile(tmp_path / "requirements.txt", prov, packages=local)


def test_package_differences() -> None:
    bound = provenance({"requirements.txt": LOCK}).dependencies
    same = [Pkg("pkg:pypi/requests@2.32.3", {"sha256": "ab" * 32}), Pkg("pkg:pypi/idna@3.8")]
    assert first_package_difference(same, bound, lockfile="r.txt", single_lockfile=True) is None
    other_hash = [Pkg("pkg:pypi/requests@2.32.3", {"sha256": "cd" * 32})]
    assert first_package_difference(other_hash, bound, lockfile="r.txt") == (
        "r.txt locks pkg:pypi/requests@2.32.3 with another hash than the provenance bound"
    )
    added = [*same, Pkg("pkg:pypi/evil@1.0")]
    assert first_package_difference(added, bound, lockfile="r.txt") == (
        "r.txt locks pkg:pypi/evil@1.0, which the provenance does not bind"
    )
    removed = same[:1]
    assert first_package_difference(removed, bound, lockfile="r.txt", single_lockfile=True) == (
        "r.txt no longer locks pkg:pypi/idna@3.8, which the provenance bound"
    )
    # with several lockfiles a missing package may belong to another one: nothing is claimed
    assert first_package_difference(removed, bound, lockfile="r.txt", single_lockfile=False) is None


def test_matching_by_path(tmp_path: Path) -> None:
    prov = provenance({"requirements.txt": LOCK, "services/api/requirements.txt": b"x==1\n"})
    assert bound_lockfile(Path("/checkout/app/requirements.txt"), prov).name == "requirements.txt"
    assert (
        bound_lockfile(Path("/checkout/services/api/requirements.txt"), prov).name
        == "services/api/requirements.txt"
    )
    with pytest.raises(
        PolicyViolation,
        match=r"binds no lockfile named 'uv.lock' \(it binds requirements.txt, "
        r"services/api/requirements.txt\)",
    ):
        bound_lockfile(Path("uv.lock"), prov)
    twins = provenance({"a/requirements.txt": LOCK, "b/requirements.txt": LOCK})
    assert bound_lockfile(Path("/src/b/requirements.txt"), twins).name == "b/requirements.txt"
    with pytest.raises(PolicyViolation, match="matches several bound lockfiles"):
        bound_lockfile(Path("requirements.txt"), twins)
    nested = provenance({"services/api/requirements.txt": LOCK})
    assert bound_lockfile(Path("requirements.txt"), nested).name == "services/api/requirements.txt"


def test_no_lockfile_bound_or_no_acceptable_digest(tmp_path: Path) -> None:
    (tmp_path / "requirements.txt").write_bytes(LOCK)
    with pytest.raises(PolicyViolation, match="binds no lockfile, so"):
        check_lockfile(tmp_path / "requirements.txt", provenance({}))
    prov = provenance({"requirements.txt": LOCK})
    md5 = {"md5": hashlib.md5(LOCK).hexdigest()}
    md5_only = replace(
        prov, dependencies=tuple(replace(d, digest=md5) if d.name else d for d in prov.dependencies)
    )
    with pytest.raises(PolicyViolation, match="no digest attest accepts"):
        check_lockfile(tmp_path / "requirements.txt", md5_only)


def test_missing_local_lockfile_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="does not exist"):
        check_lockfile(tmp_path / "requirements.txt", provenance({"requirements.txt": LOCK}))


def test_the_packages_attest_build_writes_are_read_back(tmp_path: Path) -> None:
    """attest.lockfiles -> provenance -> verify.lockfile_check: one vocabulary end to end."""
    from attest.lockfiles import parse_lockfile

    (tmp_path / "requirements.txt").write_bytes(LOCK)
    packages = parse_lockfile(tmp_path / "requirements.txt").packages
    entries = [{"uri": p.purl, **({"digest": dict(p.digest)} if p.digest else {})} for p in packages]
    prov = provenance({"requirements.txt": LOCK}, entries)
    assert first_package_difference(packages, prov.dependencies, lockfile="r", single_lockfile=True) is None
