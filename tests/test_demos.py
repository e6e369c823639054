"""`make demo` and `make demo-aws` are the first thing a new user runs: they must work end to end."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "CODEBUILD_", "ATTEST_"))}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return env


def test_demo(tmp_path: Path) -> None:
    done = subprocess.run(["bash", str(ROOT / "demo" / "demo.sh")], env=_env(tmp_path), capture_output=True,
                          text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    out = done.stdout
    assert "PASS ../release-1.tar.gz" in out
    assert "stage 'prd' requires stage 'stg' to have verified this artefact" in done.stdout + done.stderr
    assert "skipped-stage" in out
    assert (ROOT / "demo-out" / "audit.html").is_file()
    assert "Traceback" not in done.stderr


def test_demo_aws(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, str(ROOT / "demo" / "demo_aws.py")], env=_env(tmp_path),
                          capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "builder   arn:aws:codebuild:eu-west-1:111111111111:project/app-build" in done.stdout
    assert "the build command sees AWS credentials: none" in done.stderr  # build output goes to stderr
    assert "vsa       stg PASSED" in done.stdout
    assert "cannot reach KMS" in done.stderr
    assert "Traceback" not in done.stderr
