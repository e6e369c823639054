"""``attest pack``: exit codes, messages, JSON, and identical bytes across locales, zones and umasks."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from pathlib import Path

import pytest

from tests.conftest import AttestRunner, git, need_tool


def tree(root: Path, *, mask: int, mtime: int) -> Path:
    old = os.umask(mask)
    try:
        (root / "lib").mkdir(parents=True)
        (root / "lib" / "util.py").write_text("def f():\n    return 1\n")
        (root / "handler.py").write_text("from lib.util import f\n")
        (root / "bootstrap").write_text("#!/bin/sh\n")
        (root / "bootstrap").chmod(0o777 & ~mask)
    finally:
        os.umask(old)
    for path in [root, *root.rglob("*")]:
        os.utime(path, (mtime, mtime))
    return root


@pytest.mark.parametrize("suffix", ["zip", "tar.gz", "tar"])
def test_identical_bytes_across_locale_timezone_umask_and_mtimes(tmp_path: Path, attest: AttestRunner,
                                                                suffix: str) -> None:
    one = tree(tmp_path / "one", mask=0o022, mtime=1_000_000_000)
    two = tree(tmp_path / "two", mask=0o077, mtime=1_700_000_000)
    first = attest("pack", one, "--output", tmp_path / f"one.{suffix}",
                   env={"LC_ALL": "C", "TZ": "UTC", "SOURCE_DATE_EPOCH": "1600000000"})
    second = attest("pack", two, "--output", tmp_path / f"two.{suffix}",
                    env={"LC_ALL": "C.UTF-8", "TZ": "Pacific/Kiritimati", "SOURCE_DATE_EPOCH": "1600000000"})
    assert first.code == 0 and second.code == 0, (first, second)
    assert (tmp_path / f"one.{suffix}").read_bytes() == (tmp_path / f"two.{suffix}").read_bytes()
    assert f"packed 3 file(s) of {one}" in first.out
    assert "SOURCE_DATE_EPOCH=1600000000 from environment" in first.out


def test_json_output_and_epoch_from_git(tmp_path: Path, attest: AttestRunner, repo: Path) -> None:
    build = tree(repo / "build", mask=0o022, mtime=1)
    commit_time = int(git(repo, "log", "-1", "--format=%ct"))
    result = attest("pack", build, "-o", tmp_path / "fn.zip", "--format", "json", cwd=repo)
    assert result.code == 0, result
    doc = json.loads(result.out)
    data = (tmp_path / "fn.zip").read_bytes()
    assert doc["digest"]["sha256"] == hashlib.sha256(data).hexdigest()
    assert doc == {"output": str(tmp_path / "fn.zip"), "format": "zip", "files": 3, "directories": 1,
                   "sourceDateEpoch": commit_time, "sourceDateEpochFrom": "git", "digest": doc["digest"]}
    assert set(doc["digest"]) == {"sha256", "blake3"}


def test_unzip_and_tar_read_what_pack_wrote(tmp_path: Path, attest: AttestRunner) -> None:
    need_tool("unzip", install="apt-get install -y unzip")
    source = tree(tmp_path / "src", mask=0o022, mtime=1)
    assert attest("pack", source, "-o", tmp_path / "a.zip").code == 0
    assert attest("pack", source, "-o", tmp_path / "a.tgz").code == 0
    unzip = subprocess.run(["unzip", "-t", tmp_path / "a.zip"], capture_output=True, text=True)
    assert unzip.returncode == 0 and "No errors detected" in unzip.stdout
    listing = subprocess.run(["tar", "-tzf", tmp_path / "a.tgz"], capture_output=True, text=True, check=True)
    assert listing.stdout.split() == ["bootstrap", "handler.py", "lib/", "lib/util.py"]


def test_errors_are_one_sentence_with_the_right_exit_code(tmp_path: Path, attest: AttestRunner) -> None:
    missing = attest("pack", tmp_path / "nope", "-o", tmp_path / "out.zip")
    assert missing.code == 3
    assert missing.err.strip() == f"attest: {tmp_path / 'nope'} does not exist; give the directory to pack."
    source = tree(tmp_path / "src", mask=0o022, mtime=1)
    unknown = attest("pack", source, "-o", tmp_path / "out.rar")
    assert unknown.code == 2
    assert "out.rar does not end in .zip, .tar.gz, .tgz, .tar" in unknown.err and "--output" in unknown.err
    (source / "link").symlink_to("handler.py")
    link = attest("pack", source, "-o", tmp_path / "out.zip")
    assert link.code == 3 and "is a symbolic link" in link.err
    bad_epoch = attest("pack", tmp_path / "src", "-o", tmp_path / "x.tar", env={"SOURCE_DATE_EPOCH": "soon"})
    assert bad_epoch.code == 3 and "SOURCE_DATE_EPOCH is 'soon'" in bad_epoch.err
    no_output = attest("pack", source)
    assert no_output.code == 2 and "--output" in no_output.err
    for result in (missing, unknown, link, bad_epoch, no_output):
        assert "Traceback" not in result.err
    assert not list(tmp_path.glob("out.*"))


def test_format_zip_tar_or_oci_chooses_the_archive_as_the_design_names_it(tmp_path: Path,
                                                                           attest: AttestRunner) -> None:
    """``attest pack DIRECTORY --output FILE --format zip|tar|oci`` (DESIGN.md): the flag chooses the format whatever
    the name; the same bytes as the suffix would give; a suffix naming another format is a usage error."""
    build = tree(tmp_path / "build", mask=0o022, mtime=1)
    env = {"SOURCE_DATE_EPOCH": "1600000000"}
    for kind, suffix in (("zip", "zip"), ("tar", "tar")):
        chosen = attest("pack", build, "--output", tmp_path / f"by-flag-{kind}", "--format", kind, env=env)
        named = attest("pack", build, "--output", tmp_path / f"by-name.{suffix}", env=env)
        assert chosen.code == 0 and named.code == 0, (chosen, named)
        assert (tmp_path / f"by-flag-{kind}").read_bytes() == (tmp_path / f"by-name.{suffix}").read_bytes()
        assert f"({kind}," in chosen.out
    gzipped = attest("pack", build, "--output", tmp_path / "x.tar.gz", "--format", "tar", env=env)
    assert gzipped.code == 0 and "(tar.gz," in gzipped.out, gzipped
    image = attest("pack", build, "--output", tmp_path / "image", "--format", "oci", env=env)
    assert image.code == 0, image
    assert json.loads((tmp_path / "image" / "oci-layout").read_text()) == {"imageLayoutVersion": "1.0.0"}
    for output, kind in (("f.zip", "tar"), ("f.tar", "zip"), ("f.zip", "oci"), ("oci-layout:img", "zip")):
        refused = attest("pack", build, "--output", output if ":" in output else tmp_path / output, "--format", kind)
        assert refused.code == 2 and "--output" in refused.err and "Traceback" not in refused.err, refused
        assert not (tmp_path / output).exists()
    no_suffix = attest("pack", build, "--output", tmp_path / "plain", "--format", "json")
    assert no_suffix.code == 2 and "or give --format zip, tar or oci" in no_suffix.err, no_suffix


def test_pack_never_replaces_a_device_a_pipe_or_a_folder_that_is_no_layout(tmp_path: Path,
                                                                           attest: AttestRunner) -> None:
    """pack wrote a temp file and renamed it over its output: a FIFO (or, as root, /dev/null) became a zip; an
    existing folder that was no image layout was moved aside and deleted by --output oci-layout:DIR."""
    import os

    build = tree(tmp_path / "build", mask=0o022, mtime=1)
    os.mkfifo(tmp_path / "pipe.zip")
    refused = attest("pack", build, "--output", tmp_path / "pipe.zip")
    assert refused.code == 3 and "is a device, a pipe" in refused.err, refused
    assert (tmp_path / "pipe.zip").is_fifo()
    (tmp_path / "dist").mkdir()
    (tmp_path / "dist" / "notes.txt").write_text("mine\n")
    refused = attest("pack", build, "--output", f"oci-layout:{tmp_path / 'dist'}")
    assert refused.code == 3 and "holds no OCI image layout" in refused.err, refused
    assert (tmp_path / "dist" / "notes.txt").read_text() == "mine\n"
    (tmp_path / "link").symlink_to(tmp_path / "dist")
    refused = attest("pack", build, "--output", f"oci-layout:{tmp_path / 'link'}")
    assert refused.code == 3 and "is a symbolic link" in refused.err, refused
    made = attest("pack", build, "--output", f"oci-layout:{tmp_path / 'image'}")
    assert made.code == 0, made
    again = attest("pack", build, "--output", f"oci-layout:{tmp_path / 'image'}")  # a layout is replaced whole
    assert again.code == 0, again
