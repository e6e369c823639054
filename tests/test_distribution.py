"""What `pip install` gives: the distribution `attest-gate` (its own name, not PyPI's unrelated "attest"), with the
Apache-2.0 LICENSE in the sdist and the wheel, the `attest` command and the `attest` and `verify` packages."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tarfile
import tomllib
import zipfile
from importlib.metadata import version
from pathlib import Path

from attest import DISTRIBUTION
from tests.conftest import ROOT, AttestRunner

PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
BUILD = """\
import sys
from setuptools import build_meta
print(build_meta.build_wheel("dist") if sys.argv[1] == "wheel" else build_meta.build_sdist("dist"))
"""


def _source(tmp_path: Path) -> Path:
    """What a checkout holds for building (a copy: building writes build/ and *.egg-info beside the sources)."""
    source = tmp_path / "src"
    source.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(ROOT / name, source / name)
    for package in ("attest", "verify"):
        shutil.copytree(ROOT / package, source / package, ignore=shutil.ignore_patterns("__pycache__"))
    return source


def _build(source: Path, kind: str) -> Path:
    done = subprocess.run([sys.executable, "-c", BUILD, kind], cwd=source, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "License classifiers are deprecated" not in done.stderr and "project.license" not in done.stderr, \
        done.stderr[-2000:]
    return source / "dist" / done.stdout.strip().splitlines()[-1]


def test_the_distribution_name_is_the_one_the_code_looks_up() -> None:
    assert PROJECT["name"] == DISTRIBUTION == "attest-gate"
    assert version(DISTRIBUTION) == PROJECT["version"]
    assert PROJECT["scripts"] == {"attest": "attest.cli:main"}
    assert PROJECT["license"] == "Apache-2.0" and PROJECT["license-files"] == ["LICENSE"]


def test_the_licence_is_the_apache_2_0_text() -> None:
    text = (ROOT / "LICENSE").read_text()
    assert text.lstrip().startswith("Apache License\n                           Version 2.0, January 2004")
    assert "END OF TERMS AND CONDITIONS" in text


def test_version_names_the_distribution(attest: AttestRunner) -> None:
    result = attest("--version")
    assert (result.code, result.out, result.err) == (0, f"attest ({DISTRIBUTION}) {PROJECT['version']}\n", "")


def test_the_wheel_carries_the_licence_and_the_name(tmp_path: Path) -> None:
    wheel = _build(_source(tmp_path), "wheel")
    assert wheel.name == f"attest_gate-{PROJECT['version']}-py3-none-any.whl"
    info = f"attest_gate-{PROJECT['version']}.dist-info"
    with zipfile.ZipFile(wheel) as archive:
        assert archive.read(f"{info}/licenses/LICENSE") == (ROOT / "LICENSE").read_bytes()
        metadata = archive.read(f"{info}/METADATA").decode()
        entry_points = archive.read(f"{info}/entry_points.txt").decode()
        packages = {name.split("/")[0] for name in archive.namelist() if not name.startswith(info)}
    assert "\nName: attest-gate\n" in metadata
    assert "\nLicense-Expression: Apache-2.0\n" in metadata and "\nLicense-File: LICENSE\n" in metadata
    assert "attest = attest.cli:main" in entry_points
    assert packages == {"attest", "verify"}


def test_the_sdist_carries_the_licence(tmp_path: Path) -> None:
    sdist = _build(_source(tmp_path), "sdist")
    assert sdist.name == f"attest_gate-{PROJECT['version']}.tar.gz"
    with tarfile.open(sdist) as archive:
        member = archive.extractfile(f"attest_gate-{PROJECT['version']}/LICENSE")
        assert member is not None and member.read() == (ROOT / "LICENSE").read_bytes()
