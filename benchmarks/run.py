"""Speed of what a pipeline runs, on what ``attest build`` itself writes. By hand (`make bench`), not in CI.

For each size (1 and 4 GiB by default) the artefact is built and published by ``attest build`` (its
subjects carry sha256 and blake3, its blake3 indexed in the store), then, page cache warm, best of N
runs, interleaved with the reference tools in the same run:

  verify --attestation           (blake3 path)    vs b3sum                  goal <= 1.3x (aim 1.1x)
  verify --store                 (blake3 index)   vs b3sum                  goal <= 1.3x (aim 1.1x)
  verify --policy digests:[sha256] (sha256 only)  vs openssl dgst -sha256   goal <= 1.1x (aim 0.9x)
  the prd gate: --store --policy --stage prd (stg's VSA looked up and checked) vs b3sum   goal <= 1.3x
  attest --help                                                           goal < 0.1 s

Each line prints both times, the ratio and the goal, and OK or SLOW.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

GIB = 1024 ** 3

#: attest runs as an installed tool does: with its modules' bytecode cached (a session or CI that sets
#: PYTHONDONTWRITEBYTECODE would make every run compile attest from source, and measure that instead).
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
ENV.update({"GIT_AUTHOR_NAME": "Bench", "GIT_AUTHOR_EMAIL": "bench@example.com", "GIT_COMMITTER_NAME": "Bench",
            "GIT_COMMITTER_EMAIL": "bench@example.com", "GIT_CONFIG_GLOBAL": os.devnull,
            "GIT_CONFIG_NOSYSTEM": "1"})
ATTEST = [sys.executable, "-m", "attest"]


@dataclass(frozen=True)
class Goal:
    """A ratio (ours / theirs) not to exceed, and the one aimed at."""

    limit: float
    aim: float


BLAKE3_GOAL = Goal(1.3, 1.1)
SHA256_GOAL = Goal(1.1, 0.9)
HELP_GOAL_S = 0.1


def run(command: Sequence[str | Path], cwd: Path) -> None:
    done = subprocess.run([str(c) for c in command], cwd=cwd, env=ENV, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"bench: {' '.join(map(str, command))} failed ({done.returncode}): {done.stderr.strip()}")


def timings(commands: dict[str, list[str]], cwd: Path, runs: int) -> dict[str, float]:
    """Best of ``runs`` for each command, the commands interleaved so that each run sees the same machine."""
    best = {name: float("inf") for name in commands}
    for _ in range(runs):
        for name, command in commands.items():
            start = time.perf_counter()
            done = subprocess.run(command, cwd=cwd, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            elapsed = time.perf_counter() - start
            if done.returncode != 0:
                raise SystemExit(f"bench: {name} failed ({done.returncode}): {done.stderr.decode().strip()}")
            best[name] = min(best[name], elapsed)
    return best


def verdict(ratio: float, goal: Goal) -> str:
    if ratio <= goal.aim:
        return "OK (aim met)"
    return "OK" if ratio <= goal.limit else "SLOW"


def make_file(path: Path, size: int) -> None:
    block = os.urandom(16 * 1024 * 1024)
    with path.open("wb") as f:
        written = 0
        while written < size:
            chunk = block[: size - written]
            f.write(chunk)
            written += len(chunk)


def set_up(root: Path) -> Path:
    """A committed repository with keys and three policies: the dev key, sha256 alone, and stg -> prd."""
    repo = root / "app"
    repo.mkdir()
    for args in (["init", "-q", "-b", "main"], ["remote", "add", "origin", "https://github.com/acme/app.git"]):
        run(["git", *args], repo)
    (repo / ".gitignore").write_text("dist/\nstore/\nkeys/\n*.intoto.jsonl\n*.yaml\n")
    run(["git", "add", "."], repo)
    run(["git", "commit", "-q", "-m", "bench"], repo)
    (repo / "keys").mkdir()  # attest never makes an output's folder
    for name in ("dev", "stg"):
        run([*ATTEST, "key", "generate", "--out", f"keys/{name}"], repo)
    dev, stg = "keys/dev.pub.pem", "keys/stg.pub.pem"
    (repo / "dev.yaml").write_text(f"version: 1\nidentities:\n  dev: {{keys: [{dev}]}}\n"
                                   "provenance:\n  signed-by: [dev]\n")
    (repo / "fips.yaml").write_text(f"version: 1\nidentities:\n  dev: {{keys: [{dev}]}}\n"
                                    "provenance:\n  signed-by: [dev]\n  digests: [sha256]\n")
    (repo / "stages.yaml").write_text(
        f"version: 1\nidentities:\n  dev: {{keys: [{dev}]}}\n  stg-verifier: {{keys: [{stg}]}}\n"
        "provenance:\n  signed-by: [dev]\n  source: {uri: github.com/acme/app, branches: [main]}\n"
        "stages:\n  stg: {verifier: stg-verifier}\n  prd: {require-vsa: [{stage: stg, signed-by: stg-verifier}]}\n")
    return repo


def bench_size(repo: Path, size_gib: int, runs: int, b3sum: str | None, openssl: str | None) -> None:
    name = f"dist/app-{size_gib}g.bin"
    (repo / "dist").mkdir(exist_ok=True)
    make_file(repo / name, size_gib * GIB)
    provenance = f"app-{size_gib}g.intoto.jsonl"
    # what a dev pipeline does: build (here the artefact is already there), sign, publish the provenance
    run([*ATTEST, "build", "--signer", "keys/dev.pem", "--artifact", name, "--output", provenance,
         "--publish", "store", "--no-artifacts", "--no-lockfile"], repo)
    # what stg does, once: verify and sign its VSA into the store
    run([*ATTEST, "verify", name, "--store", "store", "--policy", "stages.yaml", "--stage", "stg", "--emit-vsa",
         f"stg-{size_gib}g.intoto.jsonl", "--signer", "keys/stg.pem"], repo)
    subprocess.run(["cat", name], cwd=repo, stdout=subprocess.DEVNULL, check=True)  # warm the page cache
    commands = {
        "attestation": [*ATTEST, "verify", name, "--attestation", provenance, "--policy", "dev.yaml"],
        "store": [*ATTEST, "verify", name, "--store", "store", "--policy", "dev.yaml"],
        "sha256": [*ATTEST, "verify", name, "--attestation", provenance, "--policy", "fips.yaml"],
        "prd gate": [*ATTEST, "verify", name, "--store", "store", "--policy", "stages.yaml", "--stage", "prd"],
    }
    if b3sum:
        commands["b3sum"] = [b3sum, name]
    if openssl:
        commands["openssl"] = [openssl, "dgst", "-sha256", name]
    best = timings(commands, repo, runs)
    print(f"{size_gib} GiB (best of {runs}):")
    for label, ours, reference, goal in (
            ("verify --attestation (blake3)", "attestation", "b3sum", BLAKE3_GOAL),
            ("verify --store (blake3 index)", "store", "b3sum", BLAKE3_GOAL),
            ("verify digests: [sha256]", "sha256", "openssl", SHA256_GOAL),
            ("prd gate: --store --stage prd", "prd gate", "b3sum", BLAKE3_GOAL)):
        if reference not in best:
            install = "b3sum" if reference == "b3sum" else "openssl"
            print(f"  {label:32} {best[ours]:6.2f} s   ({reference} not installed: apt-get install {install})")
            continue
        ratio = best[ours] / best[reference]
        print(f"  {label:32} {best[ours]:6.2f} s vs {reference:7} {best[reference]:6.2f} s: {ratio:4.2f}x "
              f"(goal <= {goal.limit}x, aim {goal.aim}x) {verdict(ratio, goal)}")
    (repo / name).unlink()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1,4", help="artefact sizes in GiB, comma-separated")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--dir", default=None, help="where to put the artefacts (default: a temp dir)")
    args = parser.parse_args()
    b3sum, openssl = shutil.which("b3sum"), shutil.which("openssl")
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        repo = set_up(Path(tmp))
        run([*ATTEST, "verify", "--help"], repo)  # cache bytecode
        help_time = timings({"help": [*ATTEST, "--help"]}, repo, 7)["help"]
        status = "OK" if help_time < HELP_GOAL_S else "SLOW"
        print(f"attest --help: {help_time:.3f} s (goal < {HELP_GOAL_S} s) {status}")
        for size in (int(s) for s in args.sizes.split(",")):
            bench_size(repo, size, args.runs, b3sum, openssl)


if __name__ == "__main__":
    main()
