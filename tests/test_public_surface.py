"""verify's public surface (verify/__init__.py): each name resolves, importing it costs nothing, and its
docstring's example runs as written on what ``attest build`` writes."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

import verify
from tests.conftest import ROOT, KeyPair


def test_every_public_name_resolves_to_its_module() -> None:
    import verify.audit

    for name in verify.__all__:
        value = getattr(verify, name)
        assert getattr(value, "__name__", name) == name, name
    with pytest.raises(AttributeError, match="no attribute '_json'"):
        verify._json  # noqa: B018  (a private name is not reached through the surface)


def test_importing_verify_imports_none_of_its_modules() -> None:
    code = "import sys, verify; print(sorted(m for m in sys.modules if m.startswith('verify.')))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert done.stdout.strip() == "[]"


def test_the_docstring_example_runs_on_a_real_build(built: Path, keys: dict[str, KeyPair]) -> None:
    (built / "policy.yaml").write_text(f"version: 1\nidentities:\n  dev-build: {{keys: [\"{keys['dev'].public}\"]}}\n"
                                       "provenance:\n  signed-by: [dev-build]\n")
    doc = verify.__doc__ or ""
    example = re.search(r"::\n\n((?:    .*\n|\n)+)", doc)
    assert example is not None
    code = "\n".join(line[4:] for line in example.group(1).splitlines())
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=built,
                          env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stderr
    assert done.stdout == "dist/app.tar.gz signed by dev-build\n"

    (built / "dist" / "app.tar.gz").write_bytes(b"tampered")
    tampered = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=built,
                              env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    assert tampered.returncode != 0 and "verify.errors" in tampered.stderr
