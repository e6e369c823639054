"""How fast ``attest audit`` reads a store: N signed attestations (P-256), attestations per second.

Run by hand, not in CI:

    .venv/bin/python benchmarks/audit_bench.py [-n 10000] [--workers N] [--repeat 2] [--keep DIR]

It writes N attestations into a temporary store (a third each: provenance, stg VSA, prd VSA,
every artefact with its whole path), then times the library (reading the files, signature
checks on every core, the report) and ``attest audit --format json`` through the real CLI,
each the best of --repeat runs (a shared machine is noisy). The target is 10,000 attestations
in under 10 seconds on a 2-core machine.
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


def generate_store(root: Path, keys: dict[str, tuple[Path, Path]], count: int) -> int:
    """Write ``count`` attestations (rounded down to whole artefact paths) under ``root``; return how many."""
    import hashlib

    signers = {name: load(private) for name, (private, _) in keys.items()}
    lock = Lockfile(path="requirements.txt", digests={"sha256": "0" * 64})
    written = 0
    for i in range(count // 3):
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=10_000, help="attestations to generate (default 10000)")
    parser.add_argument("--workers", type=int, default=None, help="worker processes (default: one per CPU)")
    parser.add_argument("--repeat", type=int, default=2, help="runs of each measurement; the best is shown")
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
        print(f"generated {count} attestations in {time.perf_counter() - started:.1f} s "
              f"({os.cpu_count()} CPUs)")

        from verify.audit import audit
        from verify.policy_file import load_policy

        files = sorted(store.glob("sha256/*/*.intoto.jsonl"))
        times = []
        for _ in range(args.repeat):
            started = time.perf_counter()
            report = audit(((str(p), p.read_bytes()) for p in files), policy=load_policy(policy),
                           workers=args.workers)
            times.append(time.perf_counter() - started)
            assert report.attestations == count and report.clean, report.anomalies[:3]
        _show("library", count, times)

        times = []
        for _ in range(args.repeat):
            started = time.perf_counter()
            done = subprocess.run([sys.executable, "-m", "attest", "audit", str(store), "--policy", str(policy),
                                   "--format", "json"], capture_output=True, text=True, check=False)
            times.append(time.perf_counter() - started)
            if done.returncode != 0:
                sys.exit(f"attest audit failed ({done.returncode}): {done.stderr.strip()}")
            assert json.loads(done.stdout)["summary"]["attestations"] == count
        _show("CLI", count, times)
        print("target: 10,000 attestations in under 10 s")


def _show(what: str, count: int, times: list[float]) -> None:
    best = min(times)
    runs = ", ".join(f"{t:.2f}" for t in times)
    print(f"{what + ':':8} {count} attestations in {best:.2f} s = {count / best:,.0f} attestations/s "
          f"(best of {len(times)}: {runs} s)")


if __name__ == "__main__":
    main()
