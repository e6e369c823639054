"""One offline keyless verification, as whole processes: ``attest verify`` vs a plain sigstore-python script.

Run by hand (``python benchmarks/sigstore.py [--runs N]``), not in CI. Both verify the same real GitHub
attestation (tests/assets/sigstore/gh-reusable-workflow.sigstore.json: DSSE, Rekor dsse 0.0.1 entry,
public-good Sigstore) for the same wheel, offline, against the same trusted root (the production one
sigstore-python embeds), and check the same things: the bundle (time, chain, SCT, log entry and its
body, signature), the signer workflow, the repository it ran for and the issuer, and the wheel's sha256 among
the statement's subjects. attest also reads the statement as a SLSA provenance, as ``attest verify`` always does.

Prints the median and best wall time of each (bytecode cached, as installed; one warm-up run each),
then the ratio attest / sigstore-python. Target: at most 1.0 (no slower); goal: 0.5.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ASSETS = ROOT / "tests" / "assets" / "sigstore"
BUNDLE = ASSETS / "gh-reusable-workflow.sigstore.json"
ARTEFACT = ASSETS / "gh-reusable-workflow-artifact.whl"
WORKFLOW = "github/artifact-attestations-workflows/.github/workflows/attest.yml"
REPOSITORY = "malancas/attest-demo"  # the caller of that reusable workflow: any repository may call it
ISSUER = "https://token.actions.githubusercontent.com"

#: What a person would write with sigstore-python's API to check the same things.
SIGSTORE_PYTHON = f'''
import hashlib, importlib.resources, json, re
from sigstore.models import Bundle, TrustedRoot
from sigstore.verify import Verifier
from sigstore.verify.policy import AllOf, GitHubWorkflowRepository, OIDCIssuer
from cryptography.x509 import UniformResourceIdentifier, SubjectAlternativeName

class SignerWorkflow:
    def verify(self, cert):
        from sigstore.errors import VerificationError
        uris = cert.extensions.get_extension_for_class(SubjectAlternativeName).value.get_values_for_type(
            UniformResourceIdentifier)
        if not any(re.fullmatch(r"https://github\\.com/{WORKFLOW.replace(".", "[.]")}@.+", u) for u in uris):
            raise VerificationError("wrong signer workflow")

bundle = Bundle.from_json(open({str(BUNDLE)!r}, "rb").read())
# the file attest reads too: the production root sigstore-python embeds, as is (no TUF refresh)
store = importlib.resources.files("sigstore._store").joinpath("https%3A%2F%2Ftuf-repo-cdn.sigstore.dev")
root = TrustedRoot.from_file(str(store.joinpath("trusted_root.json")))
payload_type, payload = Verifier(trusted_root=root).verify_dsse(
    bundle, AllOf([OIDCIssuer({ISSUER!r}), SignerWorkflow(), GitHubWorkflowRepository({REPOSITORY!r})]))
assert payload_type == "application/vnd.in-toto+json"
sha256 = hashlib.sha256(open({str(ARTEFACT)!r}, "rb").read()).hexdigest()
statement = json.loads(payload)
assert any(s["digest"].get("sha256") == sha256 for s in statement["subject"]), "artefact not a subject"
print("PASS")
'''


def attest_argv() -> list[str]:
    return [sys.executable, "-m", "attest", "verify", str(ARTEFACT), "--attestation", str(BUNDLE),
            "--signer-workflow", WORKFLOW, "--github-repo", REPOSITORY]


def sigstore_python_argv() -> list[str]:
    return [sys.executable, "-c", SIGSTORE_PYTHON]


def timed(argv: list[str], runs: int) -> list[float]:
    """Wall times of ``runs`` runs of ``argv`` (after one warm-up that also checks it passes)."""
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    if done.returncode != 0 or "PASS" not in done.stdout:
        sys.exit(f"{argv[:4]} did not verify: {done.stdout}{done.stderr}")
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(argv, capture_output=True, check=True)
        times.append(time.perf_counter() - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15, help="timed runs of each (default 15)")
    args = parser.parse_args()
    results = {}
    # interleaved would be fairer on a busy machine; one after the other keeps each one's caches warm
    for name, argv in (("attest verify", attest_argv()), ("sigstore-python", sigstore_python_argv())):
        times = timed(argv, args.runs)
        results[name] = statistics.median(times)
        print(f"{name:16} median {statistics.median(times):.3f} s   best {min(times):.3f} s   ({args.runs} runs)")
    ratio = results["attest verify"] / results["sigstore-python"]
    verdict = "goal met" if ratio <= 0.5 else "target met" if ratio <= 1.0 else "SLOWER than sigstore-python"
    print(f"ratio attest / sigstore-python: {ratio:.2f}x ({verdict}; target <= 1.0x, goal <= 0.5x)")


if __name__ == "__main__":
    main()
