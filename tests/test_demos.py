"""`make demo`, `make demo-aws` and `make demo-path` are the first thing a new user runs: they must work end to end.

`make demo-path` is docs/path.md itself: every ```sh block of the guide, run in order (demo/guide.py), so a
command in the guide that stops working fails here; `make demo-audit` is docs/audit.md, the same way.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import attest_bin

ROOT = Path(__file__).resolve().parent.parent


def _env(tmp_path: Path, *, forked: bool = False) -> dict[str, str]:
    """The environment of a demo: this Python's bin folder first on PATH (its ``attest``); for a guide,
    ``forked=True`` puts the suite's ``attest`` before it (tests/_zygote.py: the same CLI, without Python's
    start-up each time, which was most of a guide's time)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "CODEBUILD_", "ATTEST_"))}
    env["PATH"] = os.pathsep.join([*([attest_bin()] if forked else []), str(Path(sys.executable).parent),
                                   env.get("PATH", "")])
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


def test_demo_path_runs_the_guide(tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location("guide", ROOT / "demo" / "guide.py")
    assert spec is not None and spec.loader is not None
    guide = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(guide)
    assert len(guide.blocks(ROOT / "docs" / "path.md")) >= 10  # the guide's steps are shell blocks, not prose
    done = subprocess.run([sys.executable, str(ROOT / "demo" / "guide.py"), str(ROOT / "docs" / "path.md"),
                           "--out", str(tmp_path / "out")], env=_env(tmp_path, forked=True), capture_output=True,
                          text=True, timeout=600, check=False)
    out, err = done.stdout, done.stderr
    assert done.returncode == 0, out[-3000:] + err[-3000:]
    assert "Traceback" not in err
    # stg: infra first, then app; the release VSA; prd refuses app before infra, then takes both in order
    assert "order        infra runs in stg (release 2026.12.1)" in out
    assert "vsa       stg PASSED for the release" in out
    assert "app needs infra, and no succeeded deployment record of infra in prd is trusted" in err
    assert "refused, as it should be: deploy infra first" in out
    assert "deployed     infra ran in stg (release 2026.12.1)" in out
    # what runs where, and what prd does not run yet
    assert "prd is behind stg: app 2026.12.2 is not in prd yet (prd runs 2026.12.1)" in out
    status = json.loads((tmp_path / "out" / "prd-status.json").read_text())
    assert {c: e["release"] for c, e in status["environments"]["prd"].items()} == {"infra": "2026.12.1",
                                                                                  "app": "2026.12.1"}
    # stg had not verified r2: prd refused it, then took it as a hotfix with two approvals, then rolled back
    assert "no VSA from stage 'stg' was found" in err
    assert "hotfix       approved by alice, bob" in out
    assert "rollback     app ran in prd (release 2026.12.1)" in out
    # the offline audit of the whole history: clean, with the hotfix and the rollback listed
    assert "1 hotfix(s):" in out and "1 rollback(s):" in out and "no anomalies" in out


def test_demo_audit_runs_the_guide(tmp_path: Path) -> None:
    """docs/audit.md, run as written: a year of history (demo/history.py) audited offline finds the anomalies the
    history holds, answers what runs where and the DORA figures the history's weeks give, writes the page, is
    answered from its index the second time, and finds a failed deployment rewritten as a success."""
    env = {**_env(tmp_path, forked=True), "XDG_CACHE_HOME": str(tmp_path / "cache")}  # the default index
    done = subprocess.run([sys.executable, str(ROOT / "demo" / "guide.py"), str(ROOT / "docs" / "audit.md"),
                           "--out", str(tmp_path / "out")], env=env, capture_output=True, text=True, timeout=600,
                          check=False)
    out, err = done.stdout, done.stderr
    assert done.returncode == 0, out[-3000:] + err[-3000:]
    assert "Traceback" not in err
    assert "exit 1: the audit found anomalies" in out
    assert "audit found 3 anomalies (disallowed-source, skipped-stage, untrusted-signer) in 66 artefact(s)" in err
    for kind in ("disallowed-source", "skipped-stage"):  # a build of a branch nobody reviews, verified for prd only
        assert f"{kind} ['dist/app.zip'] built from refs/heads/quick-fix" in out, out[-3000:]
    # app ships weekly: 51 of its 52 releases reached prd, and one rollback; 3 deployments went wrong (two failed,
    # one rolled back), and each was restored
    assert "app in prd: 52 deployments," in out and "change failure rate 6%," in out, out[-2000:]
    report = json.loads((tmp_path / "out" / "audit-dora.json").read_text())
    app = report["dora"]["components"]["app"]["prd"]
    assert (app["changeFailureRate"]["failures"], app["timeToRestore"]["incidents"]) == (3, 3), app
    assert app["leadTime"]["changes"] == 51 and app["leadTime"]["medianSeconds"] > 0, app["leadTime"]
    assert {c: set(e) for c, e in report["running"].items()} == {"app": {"stg", "prd"}, "infra": {"stg", "prd"}}
    assert (tmp_path / "out" / "audit.html").stat().st_size > 10_000
    assert "434 attestation file(s) answered from it, 0 checked, 0 artefact(s) judged" in err
    assert "bad-signature" in out and "names the pinned key of prd-deployer but its signature does not verify" in out
    table = (tmp_path / "out" / "audit.txt").read_text()
    assert "│ dist/app.zip " in table and "│ dist/infra.zip " in table, table[:1500]  # names whole, never "dist/app…"


def test_demo_oci_runs_the_containers_guide(tmp_path: Path) -> None:
    """`make demo-oci` is docs/containers.md: pack, build and push to a local registry, stg verify with a VSA
    attached, promote to a second registry, prd verify there alone, a plain skopeo copy refused."""
    from tests.conftest import need_tool
    from tests.registry_infra import INSTALL

    need_tool("docker-registry", install=INSTALL)
    need_tool("skopeo", install=INSTALL)
    done = subprocess.run([sys.executable, str(ROOT / "demo" / "guide.py"), str(ROOT / "docs" / "containers.md"),
                           "--out", str(tmp_path / "out")], env=_env(tmp_path, forked=True), capture_output=True,
                          text=True, timeout=120, check=False)
    out, err = done.stdout, done.stderr
    assert done.returncode == 0, out[-3000:] + err[-3000:]
    assert "Traceback" not in err
    digest = json.loads((tmp_path / "out" / "build.json").read_text())["subjects"][0]["digest"]["sha256"]
    assert f"web:v1@sha256:{digest}" in out  # stg resolved the tag once and names the digest
    assert "evidence  2 attestation(s) attached" in out and "verified  at the destination for prd" in out
    assert out.count("PASS oci://") == 2
    assert f"copied holds no attestation for sha256:{digest}" in err and "attest promote" in err
