"""Paths: subject names are data, never paths; publishing never leaves the store; --artifact never follows links.

Every escape is tried against the real LocalStore (and S3 key building), and the test checks both
the refusal and that nothing was created or changed outside the store.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import pytest

from attest import collect
from attest.errors import BuildRefused, StoreError
from attest.stores import artifact_key, attestation_key, safe_name
from attest.stores.local import LocalStore
from attest.stores.s3 import S3Store
from tests.hardening._helpers import artefact_digests, envelope_line, evidence, policy
from tests.verify import _factory as f
from verify.verifier import verify_artifact

DATA = b"artefact bytes\n"
SHA = hashlib.sha256(DATA).hexdigest()

ESCAPES = ["../x", "a/../../x", "/etc/passwd", "a\x00b", "a\\..\\b", "C:x", "c:/x/y", "", ".", "./a", "a//b", "a/",
           "..", "a/./b"]


def _tree(path: Path) -> list[str]:
    return sorted(str(p.relative_to(path)) for p in path.rglob("*"))


@pytest.fixture
def setup(tmp_path: Path) -> tuple[Path, Path, Path]:
    """(store, source file, a directory outside the store that must stay empty)."""
    store, outside = tmp_path / "store", tmp_path / "outside"
    store.mkdir()
    outside.mkdir()
    source = tmp_path / "app.tar.gz"
    source.write_bytes(DATA)
    return store, source, outside


@pytest.mark.parametrize("name", ESCAPES)
def test_subject_names_that_are_not_plain_relative_paths_are_refused(setup: tuple[Path, Path, Path],
                                                                     name: str) -> None:
    store, source, _ = setup
    with pytest.raises(StoreError, match="cannot be stored"):
        safe_name(name)
    with pytest.raises(StoreError, match="cannot be stored"):
        LocalStore(store).put_artifact(SHA, name, source)
    assert _tree(store) == []


@pytest.mark.parametrize("link", ["sha256", f"sha256/{SHA}", f"sha256/{SHA}/artifact", f"sha256/{SHA}/artifact/sub"])
def test_a_symlinked_directory_in_the_store_is_never_followed(setup: tuple[Path, Path, Path], link: str) -> None:
    store, source, outside = setup
    (store / link).parent.mkdir(parents=True, exist_ok=True)
    (store / link).symlink_to(outside, target_is_directory=True)
    with pytest.raises(StoreError, match="is a symbolic link or not a directory"):
        LocalStore(store).put_artifact(SHA, "sub/app.tar.gz", source)
    if link in ("sha256", f"sha256/{SHA}"):  # the attestation's directory is on the same path
        with pytest.raises(StoreError, match="is a symbolic link or not a directory"):
            LocalStore(store).put_attestation(SHA, "provenance", envelope_line())
    assert _tree(outside) == [], "something was created outside the store"


def test_a_symlink_swapped_in_while_publishing_is_not_followed(setup: tuple[Path, Path, Path],
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    store, source, outside = setup
    real_mkdir = os.mkdir

    def racing_mkdir(path: Any, mode: int = 0o777, *, dir_fd: int | None = None) -> None:
        real_mkdir(path, mode, dir_fd=dir_fd)
        if path == "artifact":  # an attacker replaces the directory just made with a link out
            os.rename(path, "artifact.moved", src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
            os.symlink(outside, path, dir_fd=dir_fd)

    monkeypatch.setattr(os, "mkdir", racing_mkdir)  # the store calls os.mkdir(part, dir_fd=...)
    with pytest.raises(StoreError, match="is a symbolic link or not a directory"):
        LocalStore(store).put_artifact(SHA, "app.tar.gz", source)
    assert _tree(outside) == []


def test_a_symlink_planted_at_the_object_name_is_refused_and_its_target_untouched(
        setup: tuple[Path, Path, Path]) -> None:
    store, source, outside = setup
    victim = outside / "victim"
    victim.write_bytes(b"keep me")
    target = store / artifact_key(SHA, "app.tar.gz")
    target.parent.mkdir(parents=True)
    target.symlink_to(victim)
    with pytest.raises(StoreError, match="is a symbolic link; the store was tampered with"):
        LocalStore(store).put_artifact(SHA, "app.tar.gz", source)
    assert victim.read_bytes() == b"keep me"
    line = envelope_line()
    planted = store / attestation_key(SHA, "provenance", line)
    planted.symlink_to(victim)
    with pytest.raises(StoreError, match="is a symbolic link; the store was tampered with"):
        LocalStore(store).put_attestation(SHA, "provenance", line)
    assert victim.read_bytes() == b"keep me"


def test_a_fifo_planted_at_the_object_name_is_refused_without_blocking(setup: tuple[Path, Path, Path]) -> None:
    store, source, _ = setup
    target = store / artifact_key(SHA, "app.tar.gz")
    target.parent.mkdir(parents=True)
    os.mkfifo(target)
    with pytest.raises(StoreError, match="is not a regular file; the store was tampered with"):
        LocalStore(store).put_artifact(SHA, "app.tar.gz", source)


def test_a_plain_publish_lands_inside_the_store(setup: tuple[Path, Path, Path]) -> None:
    store, source, _ = setup
    uri = LocalStore(store).put_artifact(SHA, "dist/sub/app.tar.gz", source)
    assert Path(uri) == store / f"sha256/{SHA}/artifact/dist/sub/app.tar.gz"
    assert Path(uri).read_bytes() == DATA and (Path(uri).stat().st_mode & 0o777) == 0o644
    assert not [p for p in store.rglob("*") if p.name.endswith(".tmp")]


def test_a_symlinked_store_root_is_the_operators_choice(tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.mkdir()
    (tmp_path / "store").symlink_to(real, target_is_directory=True)
    (tmp_path / "a").write_bytes(DATA)
    LocalStore(tmp_path / "store").put_artifact(SHA, "a", tmp_path / "a")
    assert (real / artifact_key(SHA, "a")).read_bytes() == DATA


class _NoNetwork:
    """An S3 client that fails the test if any call is made."""

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"S3 was called ({name}) for a name that should have been refused first")


@pytest.mark.parametrize("name", ESCAPES)
def test_s3_keys_for_escaping_names_are_refused_before_any_request(tmp_path: Path, name: str) -> None:
    source = tmp_path / "a"
    source.write_bytes(DATA)
    store = S3Store("attest-store", "app", client=_NoNetwork())
    with pytest.raises(StoreError, match="cannot be stored"):
        store.put_artifact(SHA, name, source)


@pytest.mark.parametrize(("sha256", "kind"), [("../" + "0" * 61, "provenance"), (SHA.upper(), "provenance"),
                                              (SHA, "../provenance"), (SHA, "provenance/x")])
def test_store_keys_take_only_a_hex_digest_and_a_known_kind(sha256: str, kind: str) -> None:
    with pytest.raises(StoreError):
        attestation_key(sha256, kind, b"x")
    with pytest.raises(StoreError):
        S3Store("attest-store", client=_NoNetwork()).put_attestation(sha256, kind, b"x")


def test_subject_names_in_evidence_are_only_data() -> None:
    statement = f.statement([("../../../../etc/passwd", f.digest_set(f.ARTIFACT))])
    verdict = verify_artifact("app", evidence(envelope_line(statement)), policy=policy(), digests=artefact_digests())
    assert verdict.subject.name == "../../../../etc/passwd"  # reported, never opened


# --- --artifact directories (attest/collect.py, tested as it is) -------------------------------------------


@pytest.fixture
def tree(tmp_path: Path) -> tuple[Path, Path]:
    root, outside = tmp_path / "repo", tmp_path / "outside"
    (root / "dist" / "sub").mkdir(parents=True)
    outside.mkdir()
    (root / "dist" / "app.tar.gz").write_bytes(b"app")
    (root / "dist" / "sub" / "data.bin").write_bytes(b"data")
    (outside / "secret").write_bytes(b"secret")
    return root, outside


def test_artifact_directories_list_regular_files_with_relative_names(tree: tuple[Path, Path],
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    root, _ = tree
    monkeypatch.chdir(root)
    found = collect.expand_artifacts(["dist/"], root=root)
    assert [a.name for a in found] == ["dist/app.tar.gz", "dist/sub/data.bin"]
    assert all(safe_name(a.name) for a in found)


@pytest.mark.parametrize("link", ["dist/leak", "dist/sub/leak", "dist/linkdir"])
def test_artifact_directories_never_follow_symlinks_out(tree: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch,
                                                       link: str) -> None:
    root, outside = tree
    monkeypatch.chdir(root)
    if link.endswith("linkdir"):
        (root / link).symlink_to(outside, target_is_directory=True)
    else:
        (root / link).symlink_to(outside / "secret")
    with pytest.raises(BuildRefused, match="is a symbolic link; attest hashes regular files only"):
        collect.expand_artifacts(["dist/"], root=root)
    with pytest.raises(BuildRefused, match="is a symbolic link"):
        collect.expand_artifacts([link], root=root)
    with pytest.raises(BuildRefused, match="is a symbolic link"):
        collect.expand_artifacts(["dist/**/*"], root=root)


def test_a_symlinked_artifact_directory_itself_is_refused(tree: tuple[Path, Path],
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    root, outside = tree
    monkeypatch.chdir(root)
    (root / "out").symlink_to(outside, target_is_directory=True)
    with pytest.raises(BuildRefused, match="out is a symbolic link"):
        collect.expand_artifacts(["out"], root=root)
