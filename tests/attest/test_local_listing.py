"""Listing a local store for an audit: what the listing pass remembers must give the same answer as listing
again, and each stamp must be the one :func:`file_stamp` gives for the path."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from attest.errors import StoreError
from attest.stores import local
from attest.stores.layout import EVIDENCE_SUFFIXES
from attest.stores.local import LocalStore, file_stamp

A = "a" * 64
B = "b" * 64
C = "c" * 64
D = "d" * 64
E = "e" * 64


def _odd_store(root: Path) -> Path:
    """Every shape an artefact's folder can take: a folder below ``artifact``, a file or a link where it should
    be, a FIFO, no artefact at all, and a file or a link where an artefact's folder should be."""
    sha = root / "sha256"
    (sha / A / "artifact" / "dist" / "inner").mkdir(parents=True)
    (sha / A / "artifact" / "dist" / "inner" / "app.whl").write_bytes(b"wheel")
    (sha / A / "artifact" / "app.tar").write_bytes(b"tar")
    os.symlink("/dev/zero", sha / A / "artifact" / "zero")
    os.mkfifo(sha / A / "artifact" / "pipe")
    (sha / A / f"provenance-{A}.intoto.jsonl").write_bytes(b"{}\n")
    (sha / A / f"vsa-{B}.sigstore.json").write_bytes(b"{}")
    (sha / A / "notes.txt").write_bytes(b"not evidence")
    (sha / B).mkdir()
    (sha / B / "artifact").write_bytes(b"a file where the folder should be")
    os.mkfifo(sha / B / f"vsa-{C}.intoto.jsonl")
    (sha / C).mkdir()
    os.symlink(sha / A / "artifact", sha / C / "artifact")
    (sha / C / f"vsa-{D}.intoto.jsonl").mkdir()
    (sha / D).write_bytes(b"a file where a folder should be")
    os.symlink(sha / A, sha / E)
    return root


def _listed(store: LocalStore) -> list[tuple[str, str, str | None]]:
    return [(uri, claimed, stamp) for uri, claimed, _, stamp in store.listed_artifacts()]


def test_artefacts_after_a_listing_pass_are_those_listed_without_one(tmp_path: Path) -> None:
    root = _odd_store(tmp_path / "store")
    fresh = _listed(LocalStore(root))
    store = LocalStore(root)
    attestations = list(store.listed_attestations())
    assert _listed(store) == fresh

    artefacts = root / "sha256" / A / "artifact"
    assert [(Path(uri), claimed) for uri, claimed, _ in fresh] == [
        (artefacts / "app.tar", A), (artefacts / "dist" / "inner" / "app.whl", A), (artefacts / "pipe", A),
        (artefacts / "zero", A), (root / "sha256" / B / "artifact", B), (root / "sha256" / C / "artifact", C)]
    assert [uri for uri, _, _ in attestations] == [
        str(root / "sha256" / A / f"provenance-{A}.intoto.jsonl"), str(root / "sha256" / A / f"vsa-{B}.sigstore.json"),
        str(root / "sha256" / B / f"vsa-{C}.intoto.jsonl"), str(root / "sha256" / C / f"vsa-{D}.intoto.jsonl"),
        str(root / "sha256" / D), str(root / "sha256" / E)]


def test_each_stamp_is_the_file_stamp_of_its_path(tmp_path: Path) -> None:
    store = LocalStore(_odd_store(tmp_path / "store"))
    for uri, stamp, _ in store.listed_attestations():  # a part that is not an attestation file has none
        assert stamp == (file_stamp(Path(uri)) if uri.endswith(EVIDENCE_SUFFIXES) else None), uri
    for uri, _, _, stamp in store.listed_artifacts():
        assert stamp == file_stamp(Path(uri)), uri
    stamps = {Path(uri).relative_to(store.root / "sha256").as_posix(): stamp
              for uri, _, _, stamp in store.listed_artifacts()}
    assert stamps[f"{A}/artifact/app.tar"] is not None and stamps[f"{B}/artifact"] is not None
    assert stamps[f"{A}/artifact/pipe"] is None and stamps[f"{A}/artifact/zero"] is None
    assert stamps[f"{C}/artifact"] is None


def test_what_cannot_be_read_is_still_refused_by_its_reader_and_opener(tmp_path: Path) -> None:
    root = _odd_store(tmp_path / "store")
    store = LocalStore(root)
    read = {Path(uri).relative_to(root).as_posix(): reader() for uri, _, reader in store.listed_attestations()}
    assert read[f"sha256/{A}/provenance-{A}.intoto.jsonl"] == b"{}\n"
    assert all(not isinstance(data, bytes) for key, data in read.items() if not key.startswith(f"sha256/{A}/"))
    opened = {Path(uri).name: opener for uri, _, opener, _ in store.listed_artifacts()}
    with opened["app.tar"]() as f:
        assert f.read() == b"tar"
    for name in ("pipe", "zero"):
        with pytest.raises(StoreError):
            opened[name]()


def test_a_complete_pass_spares_listing_every_folder_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = _odd_store(tmp_path / "store")
    store = LocalStore(root)
    list(store.listed_attestations())
    scanned: list[str] = []
    scan = local._scan

    def counted(folder: str, **options: Any) -> Any:
        scanned.append(folder)
        return scan(folder, **options)

    monkeypatch.setattr(local, "_scan", counted)
    list(store.listed_artifacts())
    assert scanned == [str(root / "sha256" / A / "artifact"), str(root / "sha256" / A / "artifact" / "dist"),
                       str(root / "sha256" / A / "artifact" / "dist" / "inner")]


def test_an_unfinished_pass_is_not_trusted(tmp_path: Path) -> None:
    root = _odd_store(tmp_path / "store")
    store = LocalStore(root)
    list(store.listed_attestations())
    next(iter(store.listed_attestations()))  # an audit stopped after its first file
    late = root / "sha256" / ("f" * 64)
    (late / "artifact").mkdir(parents=True)
    (late / "artifact" / "late.bin").write_bytes(b"late")
    assert str(late / "artifact" / "late.bin") in [uri for uri, _, _, _ in store.listed_artifacts()]


def test_the_index_names_a_file_by_its_absolute_normal_path_sharing_the_string_it_was_given(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """attest audit's name for a file in its index: a relative or unnormal path made absolute and normal from the
    current folder; a path that already is one named by that very string (an audit of 100,000 files holds one string
    a file, not two)."""
    from attest.cli.audit import _Keys

    monkeypatch.chdir(tmp_path)
    keys = _Keys()
    given = f"{tmp_path}/store/sha256/{A}/provenance.intoto.jsonl"
    assert keys(given) is given  # (the test's folder is new: no equal string was interned before)
    again = "".join([given[:10], given[10:]])  # the same path, another string
    assert again is not given and keys(again) is given
    assert keys(f"store/sha256/{A}/provenance.intoto.jsonl") == given
    assert keys(f"./store/../store/sha256/{A}/provenance.intoto.jsonl") == given
    assert keys(f"{tmp_path}//store/sha256/{A}/provenance.intoto.jsonl") == given
    assert keys("s3://bucket/app/x.intoto.jsonl") == "s3://bucket/app/x.intoto.jsonl"


def test_a_copy_a_killed_writer_left_beside_its_artefact_is_not_read_as_one(tmp_path: Path) -> None:
    """A writer killed mid-copy leaves ``.NAME.<16 hex>.tmp`` in the artefact's folder; the rerun links NAME in
    beside it. That leftover is no artefact (a provenance attests NAME): not listed, so an audit does not call the
    good build tampered. The same name alone, or any other name, is listed (and a wrong one reported)."""
    folder = tmp_path / "sha256" / A / "artifact" / "dist"
    folder.mkdir(parents=True)
    (folder / ".app.bin.0123456789abcdef.tmp").write_bytes(b"half of")
    (folder / ".lone.bin.0123456789abcdef.tmp").write_bytes(b"half of")
    (folder / ".app.bin.not-hex-at-all!.tmp").write_bytes(b"junk")
    (folder / "app.bin").write_bytes(b"the artefact")
    names = sorted(Path(uri).name for uri, _, _ in _listed(LocalStore(tmp_path)))
    assert names == [".app.bin.not-hex-at-all!.tmp", ".lone.bin.0123456789abcdef.tmp", "app.bin"]


@pytest.mark.parametrize(("first", "then", "words"), [
    ("dist/data", "dist/data/.keep", "is a file in the store: an artefact of the same bytes was stored by that name"),
    ("dist/x/.keep", "dist/x", "is a folder in the store: artefacts of the same bytes were stored under names"),
], ids=["file-then-below", "below-then-file"])
def test_one_path_for_a_file_and_a_folder_of_the_same_bytes_is_a_sentence_not_a_crash(
        tmp_path: Path, first: str, then: str, words: str) -> None:
    """Artefacts of the same bytes share one folder (every empty file: ``sha256/e3b0.../artifact/``), so a name and
    a name below it cannot both be stored: said so, as a StoreError (exit 3), not an internal error nor a claim
    that the store was tampered with."""
    import hashlib

    empty = tmp_path / "empty"
    empty.write_bytes(b"")
    sha = hashlib.sha256(b"").hexdigest()
    store = LocalStore(tmp_path / "store")
    store.put_artifact(sha, first, empty)
    with pytest.raises(StoreError, match=words) as refused:
        store.put_artifact(sha, then, empty)
    assert "tampered" not in str(refused.value) and "symbolic link" not in str(refused.value)


def test_folders_nested_deeper_than_python_recurses_are_listed(tmp_path: Path) -> None:
    """A store's writer (anyone's, in an untrusted store) nesting folders 1,200 deep under an artefact ended every
    audit in a RecursionError (exit 70); the listing keeps a stack of its own."""
    import subprocess

    deep = tmp_path / "sha256" / A / "artifact" / Path(*(["a"] * 1200))
    try:
        subprocess.run(["mkdir", "-p", str(deep)], check=True)
        (deep / "x.tar.gz").write_bytes(b"x")
        (tmp_path / "sha256" / A / "artifact" / "b.tar.gz").write_bytes(b"b")
        names = [uri.rsplit("/", 1)[1] for uri, _, _ in _listed(LocalStore(tmp_path))]
        assert names == ["x.tar.gz", "b.tar.gz"]  # depth first, by name, as before
    finally:
        subprocess.run(["rm", "-rf", str(tmp_path / "sha256")], check=True)  # (shutil.rmtree recurses too)
