"""Speed of attest against the tools people compare it with. Run by hand (`make bench`), not in CI.

Prints, for 1 GiB and 4 GiB artefacts (page cache warm, best of N runs):
  * attest verify with blake3 in the attestation  vs  b3sum            (target <= 1.3x)
  * attest verify with sha256 only                vs  openssl dgst -sha256 (target <= 1.1x)
  * attest --help                                                       (target < 0.3 s)
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import blake3

from attest.signers import sign_envelope
from attest.signers.key import LocalKeySigner, generate
from verify.envelope import INTOTO_PAYLOAD_TYPE

GIB = 1024 ** 3


def make_file(path: Path, size: int) -> None:
    block = os.urandom(16 * 1024 * 1024)
    with path.open("wb") as f:
        written = 0
        while written < size:
            chunk = block[: size - written]
            f.write(chunk)
            written += len(chunk)


def attestation(path: Path, directory: Path, algorithms: tuple[str, ...]) -> tuple[Path, Path]:
    """A signed provenance-shaped statement for ``path`` with only ``algorithms`` in its subject."""
    from cryptography.hazmat.primitives import serialization

    private_pem, public_pem = generate("ecdsa-p256")
    key = serialization.load_pem_private_key(private_pem, password=None)
    digests = {}
    if "sha256" in algorithms:
        h = hashlib.sha256()
        with path.open("rb") as f:
            while chunk := f.read(8 << 20):
                h.update(chunk)
        digests["sha256"] = h.hexdigest()
    if "blake3" in algorithms:
        b = blake3.blake3(max_threads=blake3.blake3.AUTO)
        b.update_mmap(str(path))
        digests["blake3"] = b.hexdigest()
    statement = {"_type": "https://in-toto.io/Statement/v1",
                 "subject": [{"name": path.name, "digest": digests}],
                 "predicateType": "https://slsa.dev/provenance/v1",
                 "predicate": {"buildDefinition": {"buildType": "bench", "externalParameters": {}},
                               "runDetails": {"builder": {"id": "bench"}}}}
    signer = LocalKeySigner(key, name="bench")
    envelope = sign_envelope(signer, payload_type=INTOTO_PAYLOAD_TYPE, payload=json.dumps(statement).encode())
    name = "-".join(algorithms)
    att, pub = directory / f"{name}.intoto.jsonl", directory / f"{name}.pub.pem"
    att.write_bytes(envelope.to_json_line())
    pub.write_bytes(public_pem)
    return att, pub


#: attest runs as an installed tool does: with its modules' bytecode cached (a session or CI that sets
#: PYTHONDONTWRITEBYTECODE would make every run compile attest from source, and measure that instead).
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def best(command: list[str], runs: int) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=ENV)
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1,4", help="artefact sizes in GiB, comma-separated")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--dir", default=None, help="where to put the artefacts (default: a temp dir)")
    args = parser.parse_args()
    attest = [sys.executable, "-m", "attest"]
    b3sum, openssl = shutil.which("b3sum"), shutil.which("openssl")
    subprocess.run([*attest, "verify", "--help"], check=True, stdout=subprocess.DEVNULL, env=ENV)  # cache bytecode
    help_time = best([*attest, "--help"], 5)
    print(f"attest --help: {help_time:.3f} s (target < 0.3 s) {'OK' if help_time < 0.3 else 'SLOW'}")
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        directory = Path(tmp)
        for size in (int(s) for s in args.sizes.split(",")):
            artefact = directory / f"artefact-{size}g.bin"
            make_file(artefact, size * GIB)
            b3_att, b3_pub = attestation(artefact, directory, ("blake3",))
            sha_att, sha_pub = attestation(artefact, directory, ("sha256",))
            best(["cat", str(artefact)], 1)  # warm the page cache
            ours_b3 = best([*attest, "verify", str(artefact), "--attestation", str(b3_att), "--key", str(b3_pub)],
                           args.runs)
            ours_sha = best([*attest, "verify", str(artefact), "--attestation", str(sha_att), "--key", str(sha_pub)],
                            args.runs)
            print(f"{size} GiB:")
            if b3sum:
                theirs = best([b3sum, str(artefact)], args.runs)
                ratio = ours_b3 / theirs
                print(f"  verify (blake3) {ours_b3:.2f} s vs b3sum {theirs:.2f} s: {ratio:.2f}x (target <= 1.3x) "
                      f"{'OK' if ratio <= 1.3 else 'SLOW'}")
            else:
                print(f"  verify (blake3) {ours_b3:.2f} s (b3sum not installed: apt-get install b3sum)")
            if openssl:
                theirs = best([openssl, "dgst", "-sha256", str(artefact)], args.runs)
                ratio = ours_sha / theirs
                print(f"  verify (sha256) {ours_sha:.2f} s vs openssl {theirs:.2f} s: {ratio:.2f}x (target <= 1.1x) "
                      f"{'OK' if ratio <= 1.1 else 'SLOW'}")
            artefact.unlink()


if __name__ == "__main__":
    main()
