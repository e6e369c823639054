"""What images cost a pipeline: attest's push, gate and promotion beside skopeo doing the plain part of each.

Run by hand or by ``make bench``, not in CI (needs Debian's docker-registry and skopeo):

    .venv/bin/python benchmarks/image_bench.py [--mib 512] [--repeat 3]

It writes an OCI image layout with one layer of --mib MiB (incompressible bytes, as a real layer is after
gzip), starts two local registries (dev's and prd's ECR), and times, best of --repeat, each through the
real CLI beside its reference in the same run:

* dev:  ``attest build --artifact oci-layout: --publish oci://`` (checks every blob of the layout, signs,
  pushes by digest, attaches the provenance, tags) beside ``skopeo copy oci: docker://`` (the push alone);
* stg:  ``attest verify oci://...@sha256 --stage stg --emit-vsa`` (the gate and a VSA attached) beside
  ``skopeo inspect --raw`` (reading the manifest);
* prd:  ``attest promote`` (the gate, the copy, the evidence, the gate again, the tag) beside
  ``skopeo copy docker:// docker://`` (the copy alone).

The goals are attest's own (the issue sets none): a push or a promotion at most 1.5 times the plain copy,
and a gate within 1.5 s of reading the manifest (CLI start-up and signature checks).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

GOAL_COPY = 1.5
GOAL_GATE_S = 1.5
ENV = {**os.environ, "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1", "GIT_AUTHOR_NAME": "Dev",
       "GIT_AUTHOR_EMAIL": "dev@example.com", "GIT_COMMITTER_NAME": "Dev", "GIT_COMMITTER_EMAIL": "dev@example.com"}
ATTEST = [sys.executable, "-m", "attest"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _registry(folder: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = _free_port()
    folder.mkdir(parents=True)
    (folder / "config.yml").write_text(f"version: 0.1\nlog: {{level: error}}\nstorage: {{filesystem: "
                                       f"{{rootdirectory: {folder / 'data'}}}}}\nhttp: {{addr: 127.0.0.1:{port}}}\n")
    binary = shutil.which("docker-registry") or sys.exit("docker-registry is missing: apt-get install -y "
                                                          "docker-registry skopeo")
    process = subprocess.Popen([binary, "serve", str(folder / "config.yml")], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    for _ in range(300):
        try:
            opener.open(f"http://127.0.0.1:{port}/v2/", timeout=1).close()
            return process, f"127.0.0.1:{port}"
        except OSError:
            time.sleep(0.1)
    sys.exit("docker-registry did not start")


def _canonical(document: object) -> bytes:
    return json.dumps(document, sort_keys=True, separators=(",", ":")).encode()


def _layout(folder: Path, mib: int) -> str:
    """An OCI image layout with one incompressible layer of ``mib`` MiB, tagged v1; its manifest digest."""
    blobs = folder / "blobs" / "sha256"
    blobs.mkdir(parents=True)
    part, sha256 = blobs / "layer.part", hashlib.sha256()
    with part.open("wb") as out:
        for _ in range(mib):
            chunk = os.urandom(1024 * 1024)
            sha256.update(chunk)
            out.write(chunk)
    layer = sha256.hexdigest()
    part.rename(blobs / layer)

    def blob(data: bytes) -> dict[str, object]:
        digest = hashlib.sha256(data).hexdigest()
        (blobs / digest).write_bytes(data)
        return {"digest": f"sha256:{digest}", "size": len(data)}

    config = blob(_canonical({"architecture": "amd64", "os": "linux", "config": {},
                              "rootfs": {"type": "layers", "diff_ids": [f"sha256:{layer}"]}}))
    manifest_data = _canonical({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                                "config": {"mediaType": "application/vnd.oci.image.config.v1+json", **config},
                                "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                                            "digest": f"sha256:{layer}", "size": mib * 1024 * 1024}]})
    manifest = blob(manifest_data)
    (folder / "index.json").write_bytes(_canonical({"schemaVersion": 2, "manifests": [{
        "mediaType": "application/vnd.oci.image.manifest.v1+json", **manifest,
        "annotations": {"org.opencontainers.image.ref.name": "v1"}}]}))
    (folder / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    return str(manifest["digest"])


def _best(run: Callable[[int], list[str]], repeat: int, cwd: Path) -> float:
    """The fastest of ``repeat`` runs of the command ``run(n)`` gives for run n (each must succeed)."""
    times = []
    for n in range(repeat):
        argv = run(n)
        started = time.perf_counter()
        done = subprocess.run(argv, cwd=cwd, env=ENV, capture_output=True, text=True, check=False)
        times.append(time.perf_counter() - started)
        if done.returncode != 0:
            sys.exit(f"{' '.join(argv[:4])}... failed: {done.stderr[-2000:]}")
    return min(times)


def _report(what: str, ours: float, theirs: float, reference: str) -> None:
    ratio = ours / theirs
    verdict = "OK" if ratio <= GOAL_COPY else "SLOW"
    print(f"{what:<34} attest {ours:6.2f} s   {reference} {theirs:6.2f} s   {ratio:4.2f}x (goal <= {GOAL_COPY}x) "
          f"{verdict}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=int, default=512)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    skopeo = shutil.which("skopeo") or sys.exit("skopeo is missing: apt-get install -y docker-registry skopeo")
    work = Path(tempfile.mkdtemp(prefix="attest-image-bench-"))
    processes: list[subprocess.Popen[bytes]] = []

    def fresh() -> str:
        """A new, empty registry: every push and copy is measured into one, so nothing is already there."""
        process, address = _registry(work / f"registry-{len(processes)}")
        processes.append(process)
        return address

    try:
        dev = fresh()
        repo = work / "app"
        repo.mkdir()
        subprocess.run(["git", "init", "-q", "-b", "main"], cwd=repo, env=ENV, check=True)
        subprocess.run(["git", "remote", "add", "origin", "https://github.com/acme/app.git"], cwd=repo, env=ENV,
                       check=True)
        (repo / "README").write_text("app\n")
        subprocess.run(["git", "add", "."], cwd=repo, env=ENV, check=True)
        subprocess.run(["git", "commit", "-q", "-m", "app"], cwd=repo, env=ENV, check=True)
        digest = _layout(work / "image", args.mib)
        print(f"an image of one {args.mib} MiB layer, {digest}")
        for who in ("dev", "stg"):
            subprocess.run([*ATTEST, "key", "generate", "--out", str(work / who)], env=ENV, check=True,
                           capture_output=True)
        (work / "policy.yaml").write_text(
            f"version: 1\nidentities:\n  dev-build: {{keys: [{work / 'dev.pub.pem'}]}}\n"
            f"  stg-verifier: {{keys: [{work / 'stg.pub.pem'}]}}\nprovenance:\n  signed-by: [dev-build]\n"
            "stages:\n  stg: {verifier: stg-verifier}\n  prd: {require-vsa: [{stage: stg, signed-by: "
            "stg-verifier}]}\n")
        layout = f"oci-layout:{work / 'image'}:v1"
        targets = [dev] + [fresh() for _ in range(1, args.repeat)]
        push = _best(lambda n: [*ATTEST, "build", "--signer", str(work / "dev.pem"), "--no-lockfile", "--artifact",
                                layout, "--publish", f"oci://{targets[n]}/app", "--registry-insecure", targets[n],
                                "-o", str(work / f"p{n}.intoto.jsonl")], args.repeat, repo)
        plain_targets = [fresh() for _ in range(args.repeat)]
        plain_push = _best(lambda n: [skopeo, "copy", "--quiet", "--dest-tls-verify=false",
                                      f"oci:{work / 'image'}:v1", f"docker://{plain_targets[n]}/app:v1"],
                           args.repeat, repo)
        _report("dev: build --publish oci://", push, plain_push, "skopeo copy oci:")
        image = f"oci://{dev}/app@{digest}"
        gate = _best(lambda n: [*ATTEST, "verify", image, "--policy", str(work / "policy.yaml"), "--stage", "stg",
                                "--emit-vsa", str(work / f"vsa{n}.intoto.jsonl"), "--signer", str(work / "stg.pem"),
                                "--registry-insecure", dev], args.repeat, repo)
        inspect = _best(lambda n: [skopeo, "inspect", "--raw", "--tls-verify=false", f"docker://{dev}/app@{digest}"],
                        args.repeat, repo)
        verdict = "OK" if gate - inspect <= GOAL_GATE_S else "SLOW"
        print(f"{'stg: verify oci:// --emit-vsa':<34} attest {gate:6.2f} s   skopeo inspect {inspect:6.2f} s   "
              f"+{gate - inspect:.2f} s (goal <= +{GOAL_GATE_S} s) {verdict}")
        prds = [fresh() for _ in range(args.repeat)]
        promote = _best(lambda n: [*ATTEST, "promote", image, f"oci://{prds[n]}/app:v1", "--policy",
                                   str(work / "policy.yaml"), "--stage", "prd", "--registry-insecure", dev,
                                   "--registry-insecure", prds[n]], args.repeat, repo)
        copies = [fresh() for _ in range(args.repeat)]
        plain_copy = _best(lambda n: [skopeo, "copy", "--quiet", "--src-tls-verify=false", "--dest-tls-verify=false",
                                      f"docker://{dev}/app@{digest}", f"docker://{copies[n]}/app:v1"],
                           args.repeat, repo)
        _report("prd: promote", promote, plain_copy, "skopeo copy")
    finally:
        for process in processes:
            process.terminate()
            process.wait(timeout=10)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
