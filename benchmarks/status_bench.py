"""How fast ``attest status`` answers on a long history: N signed deployment records (P-256).

Run by hand or by ``make bench``, not in CI:

    .venv/bin/python benchmarks/status_bench.py [-n 10000] [--components 10] [--repeat 3] [--keep DIR]

It writes N deployment records, as ``attest deploy record`` files them (in the store's deployment index
and under each artefact), spread over three environments (dev, stg, prd) and --components stacks, one
release after another, each signed by its environment's deployer key, a tenth of them failed. Then it
times ``attest status --format json`` through the real CLI, best of --repeat runs, and prints the time
against the goal: 10,000 records in under 1 s on a 2-core machine.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from attest.signers import sign_envelope
from attest.signers.key import generate, load
from attest.stores import attestation_key
from attest.stores.layout import deployment_key
from attest.summaries import deployment_statement
from verify.formats.envelope import INTOTO_PAYLOAD_TYPE
from verify.formats.strict_json import dumps_canonical

ENVIRONMENTS = ("dev", "stg", "prd")
GOAL_S = 1.0
T0 = datetime(2025, 12, 1, 9, 0, tzinfo=UTC)


def _keys(directory: Path) -> dict[str, Path]:
    public = {}
    for env in ENVIRONMENTS:
        private_pem, public_pem = generate("ecdsa-p256")
        (directory / f"{env}.pem").write_bytes(private_pem)
        (directory / f"{env}.pem").chmod(0o600)
        (directory / f"{env}.pub.pem").write_bytes(public_pem)
        public[env] = directory / f"{env}.pub.pem"
    return public


def _policy(directory: Path, public: dict[str, Path]) -> Path:
    identities = "\n".join(f"  {env}-deployer: {{keys: [{public[env]}]}}" for env in ENVIRONMENTS)
    stages = "\n".join(f"  {env}: {{deployed-by: [{env}-deployer]}}" for env in ENVIRONMENTS)
    path = directory / "policy.yaml"
    path.write_text(f"version: 1\nidentities:\n{identities}\nprovenance:\n  signed-by: [dev-deployer]\n"
                    f"stages:\n{stages}\n")
    return path


def generate_store(root: Path, directory: Path, count: int, components: int) -> int:
    """Write ``count`` deployment records under ``root``; return how many."""
    signers = {env: load(directory / f"{env}.pem") for env in ENVIRONMENTS}
    written = 0
    for i in range(count):
        env = ENVIRONMENTS[i % len(ENVIRONMENTS)]
        stack = (i // len(ENVIRONMENTS)) % components
        component = f"stack-{stack}"
        release = i // (len(ENVIRONMENTS) * components)
        failed = (release + stack + i % len(ENVIRONMENTS)) % 10 == 9  # every tenth release of a stack fails
        data = f"{component} of release {release}\n".encode()
        digests = {"sha256": hashlib.sha256(data).hexdigest()}
        deployed_at = T0 + timedelta(minutes=i)
        document = deployment_statement(
            environment=env, release_name=f"r{release}", release_sha256=hashlib.sha256(b"r%d" % release).hexdigest(),
            component=component, artifacts=[(f"dist/{component}.zip", digests)],
            status="failed" if failed else "succeeded", kind="deploy", deployed_at=deployed_at,
            commit=f"{release:040x}")
        envelope = sign_envelope(signers[env], payload_type=INTOTO_PAYLOAD_TYPE, payload=dumps_canonical(document))
        line = envelope.to_json_line()
        for key in (deployment_key(env, component, deployed_at, line),
                    attestation_key(digests["sha256"], "deployment", line)):
            path = root / key
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(line)
        written += 1
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=10_000, help="deployment records to generate (default 10000)")
    parser.add_argument("--components", type=int, default=10, help="stacks (default 10)")
    parser.add_argument("--repeat", type=int, default=3, help="runs; the best is shown")
    parser.add_argument("--keep", type=Path, help="write the store here and keep it")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="attest-status-bench-") as tmp:
        work = args.keep or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        policy = _policy(work, _keys(work))
        store = work / "store"
        started = time.perf_counter()
        count = generate_store(store, work, args.n, args.components)
        print(f"generated {count} deployment records in {time.perf_counter() - started:.1f} s")
        times = []
        for _ in range(args.repeat):
            started = time.perf_counter()
            done = subprocess.run([sys.executable, "-m", "attest", "status", "--store", str(store), "--policy",
                                   str(policy), "--format", "json"], capture_output=True, text=True, check=False)
            times.append(time.perf_counter() - started)
            if done.returncode != 0:
                sys.exit(f"attest status failed ({done.returncode}): {done.stderr.strip()}")
            shown = json.loads(done.stdout)
            assert shown["records"]["indexed"] == count and shown["ignored"]["count"] == 0, shown["ignored"]
            assert sum(len(c) for c in shown["environments"].values()) == len(ENVIRONMENTS) * args.components
        best = min(times)
        runs = ", ".join(f"{t:.2f}" for t in times)
        verdict = "OK" if best < GOAL_S else "SLOW"
        print(f"attest status: {count} deployment records in {best:.2f} s (best of {len(times)}: {runs} s; "
              f"read {shown['records']['read']}); goal < {GOAL_S:.0f} s {verdict}")


if __name__ == "__main__":
    main()
