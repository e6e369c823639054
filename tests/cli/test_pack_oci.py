"""Issue 20, part 2: ``attest pack DIR --output oci-layout:LAYOUT[:TAG]``, a reproducible single-layer OCI image.

Two runs on the same contents give the same manifest digest whatever the files' times, owners or the
order the file system lists them in; the layout is valid for skopeo, and a real registry stores the image
under the digest attest computed.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import subprocess
import tarfile
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import need_tool, run_attest
from tests.registry_infra import INSTALL

EPOCH = "1700000000"


def _site(root: Path) -> Path:
    site = root / "site"
    (site / "static" / "css").mkdir(parents=True)
    (site / "index.html").write_text("<h1>hello</h1>\n")
    (site / "static" / "css" / "a.css").write_text("h1 { color: red }\n")
    (site / "run.sh").write_text("#!/bin/sh\necho hi\n")
    (site / "run.sh").chmod(0o755)
    return site


def _pack(site: Path, out: str, *more: str, epoch: str = EPOCH) -> dict[str, Any]:
    ran = run_attest("pack", site, "--output", out, "--format", "json", *more, cwd=site.parent,
                     env={"SOURCE_DATE_EPOCH": epoch})
    assert ran.code == 0, ran
    shown: dict[str, Any] = json.loads(ran.out)
    return shown


def _blob(layout: Path, digest: str) -> bytes:
    algorithm, hexdigest = digest.split(":")
    data = (layout / "blobs" / algorithm / hexdigest).read_bytes()
    assert hashlib.sha256(data).hexdigest() == hexdigest  # content-addressed, as the spec requires
    return data


def test_the_layout_is_a_valid_single_layer_image(tmp_path: Path) -> None:
    shown = _pack(_site(tmp_path), "oci-layout:img:v1")
    layout = tmp_path / "img"
    assert json.loads((layout / "oci-layout").read_text()) == {"imageLayoutVersion": "1.0.0"}
    index = json.loads((layout / "index.json").read_text())
    (descriptor,) = index["manifests"]
    assert descriptor["annotations"] == {"org.opencontainers.image.ref.name": "v1"}
    assert descriptor["digest"] == shown["manifest"]["digest"] and descriptor["size"] == shown["manifest"]["size"]
    manifest = json.loads(_blob(layout, descriptor["digest"]))
    assert manifest["mediaType"] == "application/vnd.oci.image.manifest.v1+json"
    config_blob = _blob(layout, manifest["config"]["digest"])
    assert len(config_blob) == manifest["config"]["size"]
    config = json.loads(config_blob)
    assert (config["os"], config["architecture"]) == ("linux", "amd64")
    assert config["created"] == "2023-11-14T22:13:20Z"
    (layer,) = manifest["layers"]
    assert layer["mediaType"] == "application/vnd.oci.image.layer.v1.tar+gzip"
    packed = _blob(layout, layer["digest"])
    assert len(packed) == layer["size"]
    plain = gzip.decompress(packed)
    assert config["rootfs"] == {"type": "layers", "diff_ids": [f"sha256:{hashlib.sha256(plain).hexdigest()}"]}
    with tarfile.open(fileobj=io.BytesIO(plain)) as tar:
        members = tar.getmembers()
        assert [m.name for m in members] == ["index.html", "run.sh", "static", "static/css", "static/css/a.css"]
        assert {(m.mtime, m.uid, m.gid, m.uname, m.gname) for m in members} == {(1700000000, 0, 0, "", "")}
        assert {m.name: m.mode for m in members}["run.sh"] == 0o755
        assert tar.extractfile("index.html").read() == b"<h1>hello</h1>\n"  # type: ignore[union-attr]


def test_the_same_contents_give_the_same_image_anywhere(tmp_path: Path) -> None:
    first = _pack(_site(tmp_path / "a"), "oci-layout:img")
    other = _site(tmp_path / "b")
    for path in other.rglob("*"):  # other times and another listing order must not matter
        os.utime(path, (1, 1))
    (other / "zz-extra").mkdir()
    (other / "zz-extra").rmdir()
    again = _pack(other, "oci-layout:img")
    assert again["manifest"] == first["manifest"]
    assert (tmp_path / "a" / "img" / "index.json").read_bytes() == (tmp_path / "b" / "img" / "index.json").read_bytes()
    # a changed byte, another time or another platform is another image
    (other / "index.html").write_text("<h1>hello!</h1>\n")
    assert _pack(other, "oci-layout:img")["manifest"] != first["manifest"]
    assert _pack(_site(tmp_path / "c"), "oci-layout:img", epoch="1700000001")["manifest"] != first["manifest"]
    arm = _pack(_site(tmp_path / "d"), "oci-layout:img", "--platform", "linux/arm64/v8")
    assert arm["manifest"] != first["manifest"] and arm["platform"] == "linux/arm64/v8"


def test_packing_again_replaces_the_layout_whole(tmp_path: Path) -> None:
    site = _site(tmp_path)
    _pack(site, "oci-layout:img:v1")
    (site / "index.html").write_text("changed\n")
    second = _pack(site, "oci-layout:img:v2")
    index = json.loads((tmp_path / "img" / "index.json").read_text())
    assert [m["digest"] for m in index["manifests"]] == [second["manifest"]["digest"]]
    assert len(list((tmp_path / "img" / "blobs" / "sha256").iterdir())) == 3  # nothing of the first image left
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".img.")]  # no temporary folder left


@pytest.mark.parametrize(("out", "code", "words"), [
    pytest.param("oci-layout:", 2, "names no folder", id="no-folder"),
    pytest.param("oci-layout:missing/img", 3, "its folder", id="missing-parent"),
    pytest.param("oci-layout:a-file", 3, "exists and is not a folder", id="over-a-file"),
    pytest.param("oci-layout:site/img", 3, "inside the directory it packs", id="inside"),
])
def test_bad_outputs_are_refused_and_nothing_is_written(tmp_path: Path, out: str, code: int, words: str) -> None:
    site = _site(tmp_path)
    (tmp_path / "a-file").write_text("x")
    before = sorted(p.name for p in tmp_path.iterdir())
    ran = run_attest("pack", site, "--output", out, cwd=tmp_path, env={"SOURCE_DATE_EPOCH": EPOCH})
    assert ran.code == code and words in ran.err.strip().splitlines()[-1], ran
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_a_link_in_the_directory_is_refused(tmp_path: Path) -> None:
    site = _site(tmp_path)
    (site / "link").symlink_to("/etc/passwd")
    ran = run_attest("pack", site, "--output", "oci-layout:img", cwd=tmp_path)
    assert ran.code != 0 and "is a symbolic link" in ran.err, ran
    assert not (tmp_path / "img").exists()


def test_skopeo_reads_the_layout_and_a_registry_stores_it_under_attests_digest(tmp_path: Path,
                                                                                oci_registry: str) -> None:
    skopeo = need_tool("skopeo", install=INSTALL)
    shown = _pack(_site(tmp_path), "oci-layout:img:v1")
    inspected = subprocess.run([skopeo, "inspect", "oci:img:v1"], cwd=tmp_path, capture_output=True, text=True,
                               check=False)
    assert inspected.returncode == 0, inspected.stderr
    assert json.loads(inspected.stdout)["Digest"] == shown["manifest"]["digest"]
    # pushed as it is (no conversion), the registry names it by the same digest
    pushed = subprocess.run([skopeo, "copy", "--dest-tls-verify=false", "--preserve-digests", "oci:img:v1",
                             f"docker://{oci_registry}/pack-test/site:v1"], cwd=tmp_path, capture_output=True,
                            text=True, check=False)
    assert pushed.returncode == 0, pushed.stderr
    remote = subprocess.run([skopeo, "inspect", "--tls-verify=false", f"docker://{oci_registry}/pack-test/site:v1"],
                            capture_output=True, text=True, check=False)
    assert remote.returncode == 0, remote.stderr
    assert json.loads(remote.stdout)["Digest"] == shown["manifest"]["digest"]


def _with_environment(layout: Path, env: list[str]) -> None:
    """Give the layout's image config an environment and an entrypoint (as a real base image has), re-hashed."""
    index = json.loads((layout / "index.json").read_text())
    descriptor = index["manifests"][0]
    manifest = json.loads(_blob(layout, descriptor["digest"]))
    config = json.loads(_blob(layout, manifest["config"]["digest"]))
    config["config"] = {"Env": env, "Entrypoint": ["/bin/serve"]}
    data = json.dumps(config, sort_keys=True).encode()
    (layout / "blobs" / "sha256" / hashlib.sha256(data).hexdigest()).write_bytes(data)
    manifest["config"].update(digest=f"sha256:{hashlib.sha256(data).hexdigest()}", size=len(data))
    data = json.dumps(manifest, sort_keys=True).encode()
    (layout / "blobs" / "sha256" / hashlib.sha256(data).hexdigest()).write_bytes(data)
    descriptor.update(digest=f"sha256:{hashlib.sha256(data).hexdigest()}", size=len(data))
    (layout / "index.json").write_text(json.dumps(index))


def test_an_image_on_a_base_keeps_its_layers_environment_and_entrypoint(tmp_path: Path) -> None:
    base_dir = tmp_path / "base"
    (base_dir / "bin").mkdir(parents=True)
    (base_dir / "bin" / "serve").write_text("#!/bin/sh\n")
    _pack(base_dir, "oci-layout:base-image:1.0")
    _with_environment(tmp_path / "base-image", ["PATH=/bin", "PORT=8080"])
    base_manifest = json.loads(_blob(tmp_path / "base-image", json.loads(
        (tmp_path / "base-image" / "index.json").read_text())["manifests"][0]["digest"]))
    base_config = json.loads(_blob(tmp_path / "base-image", base_manifest["config"]["digest"]))
    site = _site(tmp_path)
    first = _pack(site, "oci-layout:app-image:v1", "--base", "oci-layout:base-image:1.0")
    again = _pack(site, "oci-layout:app-image-2:v1", "--base", "oci-layout:base-image:1.0")
    assert first["manifest"]["digest"] == again["manifest"]["digest"]  # reproducible on a base too
    layout = tmp_path / "app-image"
    manifest = json.loads(_blob(layout, first["manifest"]["digest"]))
    assert [layer["digest"] for layer in manifest["layers"]] == [base_manifest["layers"][0]["digest"], first["layer"]]
    _blob(layout, base_manifest["layers"][0]["digest"])  # the base's layer is in the new layout, by its digest
    config = json.loads(_blob(layout, manifest["config"]["digest"]))
    assert config["config"] == {"Env": ["PATH=/bin", "PORT=8080"], "Entrypoint": ["/bin/serve"]}
    assert config["rootfs"]["diff_ids"] == [*base_config["rootfs"]["diff_ids"], first["diffId"]]
    assert len(config["history"]) == 2


def test_a_base_of_another_platform_or_broken_is_refused(tmp_path: Path) -> None:
    base_dir = tmp_path / "base"
    base_dir.mkdir()
    (base_dir / "a").write_text("a")
    _pack(base_dir, "oci-layout:base-image:1.0")
    site = _site(tmp_path)
    ran = run_attest("pack", site, "--output", "oci-layout:out:v1", "--platform", "linux/arm64", "--base",
                     "oci-layout:base-image:1.0", cwd=tmp_path, env={"SOURCE_DATE_EPOCH": EPOCH})
    assert ran.code == 3 and "is for linux/amd64, not linux/arm64" in ran.err, ran
    missing = run_attest("pack", site, "--output", "oci-layout:out:v1", "--base", "oci-layout:base-image:2.0",
                         cwd=tmp_path, env={"SOURCE_DATE_EPOCH": EPOCH})
    assert missing.code == 3 and "no image tagged '2.0'" in missing.err, missing
    base = tmp_path / "base-image"
    manifest = json.loads(_blob(base, json.loads((base / "index.json").read_text())["manifests"][0]["digest"]))
    for blob, said in ((manifest["layers"][0], "does not hash to its digest"), (manifest["config"], "hashes to")):
        path = base / "blobs" / "sha256" / blob["digest"].removeprefix("sha256:")
        kept = path.read_bytes()
        path.write_bytes(b"x" * len(kept))  # same size, other bytes
        corrupt = run_attest("pack", site, "--output", "oci-layout:out:v1", "--base", "oci-layout:base-image:1.0",
                             cwd=tmp_path, env={"SOURCE_DATE_EPOCH": EPOCH})
        assert corrupt.code == 3 and said in corrupt.err and len(corrupt.err.splitlines()) == 1, corrupt
        path.write_bytes(kept)
    assert not (tmp_path / "out").exists()
    archive = run_attest("pack", site, "--output", "out.zip", "--base", "oci-layout:base-image:1.0", cwd=tmp_path)
    assert archive.code == 2 and "--base is for an image" in archive.err, archive
