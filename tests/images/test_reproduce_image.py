"""Issue 20, part 2: attest reproduce compares images like other artefacts.

A build that packs a folder into an OCI image layout is rebuilt from its commit: the layout the rebuild
writes holds a manifest of the very digest the provenance names, or the reproduction says it differs.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from tests.conftest import AttestRunner, KeyPair, git


def _image_repo(repo: Path, command: str) -> None:
    (repo / "site").mkdir()
    (repo / "site" / "index.html").write_text("<h1>hello</h1>\n")
    (repo / "make_image.py").write_text(command)
    (repo / ".gitignore").write_text("image/\nsite/stamp\n*.pem\n*.intoto.jsonl\n")
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "an image")


_PACK = """\
import subprocess, sys
subprocess.run([sys.executable, "-m", "attest", "pack", "site", "--output", "oci-layout:image:v1"], check=True)
"""


def _build_and_reproduce(repo: Path, keys: dict[str, KeyPair], attest: AttestRunner) -> dict[str, object]:
    built = attest("build", "--signer", keys["dev"].private, "--artifact", "oci-layout:image:v1", "--no-lockfile",
                   "--", sys.executable, "make_image.py", cwd=repo)
    assert built.code == 0, built
    ran = attest("reproduce", "provenance.intoto.jsonl", "--key", keys["dev"].public, "--format", "json", cwd=repo)
    shown: dict[str, object] = json.loads(ran.out)
    shown["code"] = ran.code
    return shown


def test_a_reproducible_image_matches_its_manifest_digest(repo: Path, keys: dict[str, KeyPair],
                                                          attest: AttestRunner) -> None:
    _image_repo(repo, _PACK)
    shown = _build_and_reproduce(repo, keys, attest)
    assert shown["code"] == 0, shown
    (subject,) = shown["subjects"]  # type: ignore[misc]
    assert subject["name"] == "image" and subject["status"] == "match"
    manifest = json.loads((repo / "image" / "index.json").read_text())["manifests"][0]["digest"]
    assert "sha256:" + subject["rebuilt"]["sha256"] == manifest


def test_an_image_that_does_not_rebuild_the_same_differs(repo: Path, keys: dict[str, KeyPair],
                                                         attest: AttestRunner) -> None:
    _image_repo(repo, "import time, pathlib\npathlib.Path('site/stamp').write_text(str(time.time_ns()))\n" + _PACK)
    shown = _build_and_reproduce(repo, keys, attest)
    assert shown["code"] == 1, shown
    (subject,) = shown["subjects"]  # type: ignore[misc]
    assert subject["status"] == "differs"
    assert "no image the rebuild wrote has this manifest digest" in subject["reason"]


_CORRUPT_LAYER = """\
import json, pathlib, subprocess, sys
subprocess.run([sys.executable, "make_image.py"], check=True)
blobs = pathlib.Path("image/blobs/sha256")
manifest = json.loads((blobs / json.loads(pathlib.Path("image/index.json").read_text())["manifests"][0]["digest"]
                       .split(":")[1]).read_text())
layer = blobs / manifest["layers"][0]["digest"].split(":")[1]
data = bytearray(layer.read_bytes())
data[-1] ^= 0xFF  # other bytes, of the same size, under the attested manifest
layer.write_bytes(bytes(data))
"""


def test_an_image_whose_layer_is_not_the_attested_bytes_is_not_reproduced(repo: Path, keys: dict[str, KeyPair],
                                                                           attest: AttestRunner) -> None:
    """The rebuild's layout holds the attested manifest over a layer of other bytes of the same size: only the
    manifest was hashed, and it matched; every blob is hashed now, and the image is not the one attested."""
    _image_repo(repo, _PACK)
    (repo / "corrupt.py").write_text(_CORRUPT_LAYER)
    built = attest("build", "--signer", keys["dev"].private, "--artifact", "oci-layout:image:v1", "--no-lockfile",
                   "--", sys.executable, "make_image.py", cwd=repo)
    assert built.code == 0, built
    ran = attest("reproduce", "provenance.intoto.jsonl", "--key", keys["dev"].public, "--format", "json", "--",
                 sys.executable, str(repo / "corrupt.py"), cwd=repo)
    assert ran.code == 1, ran
    (subject,) = json.loads(ran.out)["subjects"]
    assert subject["status"] != "match", subject
