"""How fast ``attest audit`` reads a history, cold and with its index: the figures of issue 21 against their goals.

Run by hand or by ``make bench``, not in CI:

    .venv/bin/python benchmarks/audit_bench.py [-n 100000] [--new 1000] [--keep DIR]

It writes N attestations into a temporary store (a third each: provenance, stg VSA, prd VSA, every artefact
with its whole path), then times ``attest audit --format json`` through the real CLI, with the peak memory
of its process:

* cold, without an index (``--no-index``), and cold, filling a new index;
* warm: the same history again, answered by the index;
* incremental: the same history plus --new attestations.

Goals on a 2-core machine (issue 21): 100,000 attestations cold in at most 15 s, the same plus 1,000 new in at
most 1 s, memory under 500 MB.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from attest.collect import GitFacts, Lockfile, Platform
from attest.provenance import BuildRecord, statement
from attest.signers import sign_envelope
from attest.signers.key import generate, load
from attest.stores import attestation_key
from attest.summaries import stage_uri, vsa_statement
from verify.formats.envelope import INTOTO_PAYLOAD_TYPE

T0 = datetime(2024, 5, 1, 10, 0, tzinfo=UTC)


def _keys(directory: Path) -> dict[str, tuple[Path, Path]]:
    keys = {}
    for name in ("dev", "stg", "prd"):
        private, public = generate("ecdsa-p256")
        (directory / f"{name}.pem").write_bytes(private)
        (directory / f"{name}.pem").chmod(0o600)
        (directory / f"{name}.pub.pem").write_bytes(public)
        keys[name] = (directory / f"{name}.pem", directory / f"{name}.pub.pem")
    return keys


def _policy(directory: Path, keys: dict[str, tuple[Path, Path]]) -> Path:
    path = directory / "policy.yaml"
    path.write_text(f"""version: 1
identities:
  dev-build: {{keys: [{keys['dev'][1]}]}}
  stg-verifier: {{keys: [{keys['stg'][1]}]}}
  prd-verifier: {{keys: [{keys['prd'][1]}]}}
provenance:
  signed-by: [dev-build]
  source: {{uri: github.com/acme/app, branches: [main]}}
stages:
  stg: {{verifier: stg-verifier}}
  prd: {{verifier: prd-verifier, require-vsa: [{{stage: stg, signed-by: stg-verifier}}]}}
""")
    return path


def generate_store(root: Path, keys: dict[str, tuple[Path, Path]], count: int, *, start: int = 0) -> int:
    """Write ``count`` attestations (rounded down to whole artefact paths, numbered from ``start``) under
    ``root``; return how many."""
    import hashlib

    signers = {name: load(private) for name, (private, _) in keys.items()}
    lock = Lockfile(path="requirements.txt", digests={"sha256": "0" * 64})
    written = 0
    for i in range(start, start + count // 3):
        data = f"artefact {i}\n".encode()
        digests = {"sha256": hashlib.sha256(data).hexdigest()}
        name = f"dist/app-{i}.tar.gz"
        built = T0 + timedelta(minutes=i)
        record = BuildRecord(
            git=GitFacts(root=root, repo_uri="https://github.com/acme/app", ref="refs/heads/main",
                         commit=f"{i:040x}", commit_time=int(built.timestamp()), dirty=False),
            platform=Platform(name="codebuild", builder_id="arn:aws:codebuild:eu-west-1:1:project/app"),
            lockfiles=[lock], command=["make", "dist"], artifact_patterns=["dist/"], subjects=[(name, digests)],
            source_date_epoch=int(built.timestamp()), started=built - timedelta(minutes=5), finished=built,
            invocation_id=f"build/{i}")
        statements = [("dev", "provenance", statement(record))]
        for stage, hours in (("stg", 1), ("prd", 2)):
            statements.append((stage, "vsa", vsa_statement(
                subject_name=name, digests=digests, verifier_id=f"https://attest.dev/verifier/{stage}",
                resource_uri=stage_uri(stage), policy_uri="file:///policy.yaml", policy_digest="ab" * 32,
                inputs=[], levels=["SLSA_BUILD_LEVEL_2"], verified_at=built + timedelta(hours=hours))))
        for signer, kind, document in statements:
            envelope = sign_envelope(signers[signer], payload_type=INTOTO_PAYLOAD_TYPE,
                                     payload=json.dumps(document).encode())
            line = envelope.to_json_line()
            path = root / attestation_key(digests["sha256"], kind, line)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(line)
            written += 1
    return written


GOAL_COLD_S, GOAL_MORE_S, GOAL_MB = 15.0, 1.0, 500


#: attest's CLI in this process, then its own peak memory on stderr's last line (worker processes aside: the
#: facts, the records and the report live in this one).
_MEASURED = """\
import resource, sys
from attest.cli import main
try:
    main(sys.argv[1:])
    code = 0
except SystemExit as e:
    code = e.code
sys.stderr.write(f"\\npeak-kb {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}\\n")
sys.exit(code)
"""


def _cli(store: Path, policy: Path, *more: str) -> tuple[float, float, int]:
    """One ``attest audit --format json`` run: (seconds, peak memory of its process in MB, attestations)."""
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", _MEASURED, "audit", str(store), "--policy", str(policy),
                           "--format", "json", *more], capture_output=True, check=False)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        sys.exit(f"attest audit failed ({done.returncode}): {done.stderr.decode().strip()[-2000:]}")
    peak = int(done.stderr.decode().rsplit("peak-kb ", 1)[1]) / 1024
    return elapsed, peak, int(json.loads(done.stdout)["summary"]["attestations"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=100_000, help="attestations to generate (default 100000)")
    parser.add_argument("--new", type=int, default=1_000, help="attestations added for the incremental run")
    parser.add_argument("--keep", type=Path, help="write the store here and keep it")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="attest-audit-bench-") as tmp:
        work = args.keep or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        keys = _keys(work)
        policy = _policy(work, keys)
        store = work / "store"
        started = time.perf_counter()
        count = generate_store(store, keys, args.n)
        print(f"generated {count} attestations in {time.perf_counter() - started:.1f} s ({os.cpu_count()} CPUs)")
        index = str(work / "index.sqlite")

        seconds, peak, seen = _cli(store, policy, "--no-index")
        print(f"cold, no index:       {seen} attestations in {seconds:6.2f} s, {peak:4.0f} MB")
        seconds, peak, seen = _cli(store, policy, "--index", index)
        verdict = "OK" if seconds <= GOAL_COLD_S and peak < GOAL_MB else "SLOW"
        print(f"cold, filling index:  {seen} attestations in {seconds:6.2f} s, {peak:4.0f} MB "
              f"(goal <= {GOAL_COLD_S:.0f} s, < {GOAL_MB} MB) {verdict}")
        time.sleep(2.1)  # older than the index's racy window: the files' stamps stand for their bytes
        seconds, peak, seen = _cli(store, policy, "--index", index)
        print(f"warm, unchanged:      {seen} attestations in {seconds:6.2f} s, {peak:4.0f} MB")
        added = generate_store(store, keys, args.new, start=count // 3)
        time.sleep(2.1)
        seconds, peak, seen = _cli(store, policy, "--index", index)
        verdict = "OK" if seconds <= GOAL_MORE_S and peak < GOAL_MB else "SLOW"
        print(f"warm, {added} new:     {seen} attestations in {seconds:6.2f} s, {peak:4.0f} MB "
              f"(goal <= {GOAL_MORE_S:.0f} s) {verdict}")


if __name__ == "__main__":
    main()
