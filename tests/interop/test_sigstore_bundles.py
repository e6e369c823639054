"""Real bundles from GitHub Actions, verified offline by ``attest verify`` (tests/assets/sigstore/README.md).

* a GitHub artifact attestation signed through a reusable workflow (what ``gh attestation verify``
  checks: SLSA Provenance v1 in DSSE, Fulcio certificate for the GitHub Actions issuer);
* a GitHub artifact attestation under an enterprise's custom OIDC issuer;
* slsa-github-generator v2.1.0 provenance (Statement v0.1, SLSA Provenance v0.2) as a bundle;
* a message signature (a plain signed artefact) from the conformance suite's GitHub workflow.

Each verifies with its identity and source, and each is rejected for a wrong identity, a wrong
issuer, a wrong source repository or a swapped artefact, with one sentence naming what differs.
No ``--trusted-root`` is given unless said: the production root shipped in sigstore-python is
the default. Runs are in-process with sockets disabled, except the few marked subprocess.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import CONFORMANCE, ROOT, AttestRunner, Result
from tests.interop.test_conformance import no_network, run_in_process  # noqa: F401  (no_network: a fixture)

ASSETS = ROOT / "tests" / "assets" / "sigstore"
GITHUB = "https://token.actions.githubusercontent.com"

REUSABLE = ASSETS / "gh-reusable-workflow.sigstore.json"
REUSABLE_ARTIFACT = ASSETS / "gh-reusable-workflow-artifact.whl"
REUSABLE_SIGNER = "github/artifact-attestations-workflows/.github/workflows/attest.yml"
REUSABLE_SAN = f"https://github.com/{REUSABLE_SIGNER}@09b495c3f12c7881b3cc17209a327792065c1a1d"

CUSTOM = ASSETS / "gh-custom-issuer.sigstore.json"
CUSTOM_ARTIFACT = ASSETS / "gh-custom-issuer-artifact"
CUSTOM_SAN = "https://github.com/too-legit/attest/.github/workflows/integration.yml@refs/heads/main"
CUSTOM_ISSUER = "https://token.actions.githubusercontent.com/hammer-time"

GENERATOR = ASSETS / "slsa-github-generator-v2.1.0.intoto.jsonl"
GENERATOR_SHA256 = "sha256:376e7e01348585b6e6643bc6663146b9d525d9b41228bf180eaeb4d4a3706caa"
GENERATOR_WORKFLOW = "slsa-framework/slsa-github-generator/.github/workflows/generator_generic_slsa3.yml"
GENERATOR_BUILDER = f"https://github.com/{GENERATOR_WORKFLOW}@refs/tags/v2.1.0"

SUITE = CONFORMANCE / "sigstore-conformance" / "test" / "assets" / "bundle-verify"
MESSAGE = SUITE / "happy-path-v0.3" / "bundle.sigstore.json"
MESSAGE_ARTIFACT = SUITE / "a.txt"
BEACON = ("https://github.com/sigstore-conformance/extremely-dangerous-public-oidc-beacon/"
          ".github/workflows/extremely-dangerous-oidc-beacon.yml@refs/heads/main")

OTHER_SHA256 = "sha256:" + hashlib.sha256(b"another artefact").hexdigest()


Verify = Callable[..., Result]


@pytest.fixture
def verify(capsys: pytest.CaptureFixture[str], no_network: None) -> Verify:  # noqa: F811
    """``attest verify ARGS`` in-process, with sockets disabled."""

    def run(*args: str | Path) -> Result:
        return run_in_process(["verify", *map(str, args)], capsys)
    return run


def passed(result: Result, *words: str) -> None:
    assert result.code == 0, result
    assert result.out.startswith("PASS ") and result.err == "", result
    for word in words:
        assert word in result.out, result


def rejected(result: Result, *words: str, code: int = 1) -> None:
    assert result.code == code, result
    assert result.err.startswith("attest: ") and result.err.count("\n") == 1, result
    assert "Traceback" not in result.err and result.out == "", result
    for word in words:
        assert word in result.err, result


# --- a GitHub artifact attestation, signed by a reusable workflow --------------------------------

def test_github_attestation_verifies_with_its_identity_and_source(verify: Verify) -> None:
    result = verify(REUSABLE_ARTIFACT, "--attestation", REUSABLE, "--signer-workflow", REUSABLE_SIGNER,
                    "--github-repo", "malancas/attest-demo", "--source-ref", "refs/heads/main",
                    "--deny-self-hosted-runners", "--source-uri", "github.com/malancas/attest-demo",
                    "--source-branch", "main", "--commit", "95baf27389e83e6a5c48f42e190d48d7abcea19e")
    passed(result, "signed by --signer-workflow", "github_provenance_demo-0.0.0-py3-none-any.whl",
           "source    https://github.com/malancas/attest-demo refs/heads/main @ 95baf27389e8")


def test_github_attestation_by_digest_and_exact_identity(verify: Verify) -> None:
    sha = "sha256:" + hashlib.sha256(REUSABLE_ARTIFACT.read_bytes()).hexdigest()
    passed(verify(sha, "--attestation", REUSABLE, "--certificate-identity", REUSABLE_SAN,
                  "--certificate-oidc-issuer", GITHUB), "signed by --certificate-identity")


@pytest.mark.parametrize(("flags", "words"), [
    (["--certificate-identity", "https://github.com/evil/app/.github/workflows/x.yml@refs/heads/main",
      "--certificate-oidc-issuer", GITHUB], ["identity is not 'https://github.com/evil/app/"]),
    (["--certificate-identity", REUSABLE_SAN, "--certificate-oidc-issuer", "https://accounts.google.com"],
     [f"issuer is '{GITHUB}', expected 'https://accounts.google.com'"]),
    (["--signer-workflow", "evil/app/.github/workflows/attest.yml", "--github-repo", "malancas/attest-demo"],
     ["identity does not match"]),
    (["--signer-workflow", REUSABLE_SIGNER, "--github-repo", "evil/app"],
     ["source repository is 'https://github.com/malancas/attest-demo', expected 'github.com/evil/app'"]),
    (["--signer-workflow", REUSABLE_SIGNER, "--github-repo", "malancas/attest-demo", "--source-ref", "release"],
     ["source ref is 'refs/heads/main', expected 'refs/heads/release'"]),
    # like gh: --github-repo alone expects a workflow of that repository to have signed
    (["--github-repo", "malancas/attest-demo"], ["identity does not match 'https://github\\\\.com/malancas/"]),
], ids=["wrong-identity", "wrong-issuer", "wrong-signer-workflow", "wrong-github-repo", "wrong-source-ref",
        "reusable-workflow-needs-signer-workflow"])
def test_github_attestation_rejects_another_identity(flags: list[str], words: list[str],
                                                     verify: Verify) -> None:
    result = verify(REUSABLE_ARTIFACT, "--attestation", REUSABLE, *flags)
    rejected(result, "which no trusted identity allows", *words)


def test_github_attestation_rejects_another_source_repository(verify: Verify) -> None:
    result = verify(REUSABLE_ARTIFACT, "--attestation", REUSABLE, "--signer-workflow", REUSABLE_SIGNER,
                    "--github-repo", "malancas/attest-demo",
                    "--source-uri", "github.com/evil/attest-demo")
    rejected(result, "source repository is 'https://github.com/malancas/attest-demo', expected "
                     "'github.com/evil/attest-demo'")


def test_github_attestation_rejects_a_swapped_artefact(verify: Verify, tmp_path: Path) -> None:
    result = verify(OTHER_SHA256, "--attestation", REUSABLE, "--signer-workflow", REUSABLE_SIGNER,
                    "--github-repo", "malancas/attest-demo")
    rejected(result, "is not among the 1 subject(s) it attests")
    swapped = tmp_path / "github_provenance_demo-0.0.0-py3-none-any.whl"
    swapped.write_bytes(REUSABLE_ARTIFACT.read_bytes() + b"\0")
    rejected(verify(swapped, "--attestation", REUSABLE, "--signer-workflow", REUSABLE_SIGNER,
                    "--github-repo", "malancas/attest-demo"),
             "is not among the 1 subject(s) it attests")


def test_github_attestation_with_a_policy_file(verify: Verify, tmp_path: Path) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text(f"""\
version: 1
identities:
  gha:
    sigstore:
      issuer: {GITHUB}
      identity-regexp: "https://github\\\\.com/{REUSABLE_SIGNER}@[0-9a-f]{{40}}"
      github-repo: malancas/attest-demo
      source-ref: main
      deny-self-hosted-runners: true
provenance:
  signed-by: [gha]
  source: {{uri: github.com/malancas/attest-demo, branches: [main]}}
""")
    passed(verify(REUSABLE_ARTIFACT, "--attestation", REUSABLE, "--policy", policy), "signed by gha")
    policy.write_text(policy.read_text().replace("malancas/attest-demo\n", "evil/app\n"))
    rejected(verify(REUSABLE_ARTIFACT, "--attestation", REUSABLE, "--policy", policy),
             "gha: source repository is")


def test_tampered_github_attestation_is_rejected(verify: Verify, tmp_path: Path) -> None:
    bundle = json.loads(REUSABLE.read_bytes())
    signature = bundle["dsseEnvelope"]["signatures"][0]
    raw = bytearray(base64.b64decode(signature["sig"]))
    raw[-1] ^= 0x01
    signature["sig"] = base64.b64encode(bytes(raw)).decode()
    tampered = tmp_path / "tampered.sigstore.json"
    tampered.write_text(json.dumps(bundle))
    result = verify(REUSABLE_ARTIFACT, "--attestation", tampered, "--signer-workflow", REUSABLE_SIGNER,
                    "--github-repo", "malancas/attest-demo")
    rejected(result, "the Sigstore bundle does not verify against the trusted root")


# --- a custom (enterprise) issuer -----------------------------------------------------------------

def test_custom_issuer(verify: Verify) -> None:
    passed(verify(CUSTOM_ARTIFACT, "--attestation", CUSTOM, "--certificate-identity", CUSTOM_SAN,
                  "--certificate-oidc-issuer", CUSTOM_ISSUER, "--source-uri", "github.com/too-legit/attest"),
           "subject   artifact")
    # --github-repo assumes GitHub's own issuer: another one is refused, whatever the repository
    rejected(verify(CUSTOM_ARTIFACT, "--attestation", CUSTOM, "--github-repo", "too-legit/attest"),
             f"issuer is '{CUSTOM_ISSUER}', expected '{GITHUB}'")
    rejected(verify(CUSTOM_ARTIFACT, "--attestation", CUSTOM, "--certificate-identity", CUSTOM_SAN,
                    "--certificate-oidc-issuer", GITHUB), "issuer is")


# --- slsa-github-generator: Statement v0.1 + SLSA Provenance v0.2 ---------------------------------

def test_slsa_github_generator_provenance(verify: Verify) -> None:
    result = verify(GENERATOR_SHA256, "--attestation", GENERATOR, "--signer-workflow", GENERATOR_WORKFLOW,
                    "--github-repo", "slsa-framework/example-package", "--source-ref", "main",
                    "--source-uri", "github.com/slsa-framework/example-package", "--source-branch", "main",
                    "--builder-id", GENERATOR_BUILDER, "--commit", "4d329c75e7ec1725f7c9ce917a8799d408d06be3",
                    "--format", "json")
    assert result.code == 0, result
    verdict = json.loads(result.out)
    assert verdict["predicateType"] == "https://slsa.dev/provenance/v0.2"
    assert verdict["provenance"]["commit"] == "4d329c75e7ec1725f7c9ce917a8799d408d06be3"
    assert verdict["signer"] == "--signer-workflow"


def test_slsa_github_generator_identity_regexp_is_anchored(verify: Verify) -> None:
    whole = r"https://github\.com/slsa-framework/slsa-github-generator/\.github/workflows/" \
            r"generator_generic_slsa3\.yml@refs/tags/v2\.\d+\.\d+"
    passed(verify(GENERATOR_SHA256, "--attestation", GENERATOR, "--certificate-identity-regexp", whole,
                  "--certificate-oidc-issuer", GITHUB))
    # unlike cosign's, the pattern must match the whole identity: a fragment matches nothing
    rejected(verify(GENERATOR_SHA256, "--attestation", GENERATOR, "--certificate-identity-regexp",
                    "slsa-github-generator", "--certificate-oidc-issuer", GITHUB), "identity does not match")


@pytest.mark.parametrize(("flags", "words"), [
    (["--source-uri", "github.com/evil/example-package"], "source repository is"),
    (["--source-branch", "release"], "expected branch release"),
    (["--builder-id", "https://github.com/evil/gen.yml@refs/tags/v1"], "is not one of the allowed builders"),
], ids=["source", "branch", "builder"])
def test_slsa_github_generator_rules(flags: list[str], words: str, verify: Verify) -> None:
    rejected(verify(GENERATOR_SHA256, "--attestation", GENERATOR, "--signer-workflow", GENERATOR_WORKFLOW,
                    "--github-repo", "slsa-framework/example-package",
                    *flags), words)


def test_slsa_github_generator_swapped_artefact_and_wrong_issuer(verify: Verify) -> None:
    rejected(verify(OTHER_SHA256, "--attestation", GENERATOR, "--signer-workflow", GENERATOR_WORKFLOW,
                    "--github-repo", "slsa-framework/example-package"),
             "is not among the 1 subject(s)")
    rejected(verify(GENERATOR_SHA256, "--attestation", GENERATOR, "--signer-workflow", GENERATOR_WORKFLOW,
                    "--github-repo", "slsa-framework/example-package",
                    "--certificate-oidc-issuer", "https://gitlab.com"), "issuer is")


# --- a message signature: identity only ------------------------------------------------------------

def test_message_signature_passes_an_identity_only_check(verify: Verify) -> None:
    result = verify(MESSAGE_ARTIFACT, "--attestation", MESSAGE, "--certificate-identity", BEACON,
                    "--certificate-oidc-issuer", GITHUB, "--format", "json")
    assert result.code == 0, result
    verdict = json.loads(result.out)
    assert (verdict["kind"], verdict["predicateType"], verdict["provenance"]) == (
        "message-signature", None, None)
    sha256 = hashlib.sha256(MESSAGE_ARTIFACT.read_bytes()).hexdigest()
    assert verdict["subject"]["digest"] == {"sha256": sha256}
    text = verify(MESSAGE_ARTIFACT, "--attestation", MESSAGE, "--certificate-identity", BEACON,
                  "--certificate-oidc-issuer", GITHUB)
    passed(text, "a message signature: identity only, no provenance")


@pytest.mark.parametrize(("flags", "words"), [
    (["--source-uri", "github.com/sigstore-conformance/beacon"], "rules on source need one"),
    (["--builder-id", "x", "--source-branch", "main"], "rules on branch, builder need one"),
    (["--predicate-type", "https://slsa.dev/provenance/v1"], "rules on predicate type"),
], ids=["source", "branch-and-builder", "predicate-type"])
def test_message_signature_is_not_a_provenance(flags: list[str], words: str, verify: Verify) -> None:
    result = verify(MESSAGE_ARTIFACT, "--attestation", MESSAGE, "--certificate-identity", BEACON,
                    "--certificate-oidc-issuer", GITHUB, *flags)
    rejected(result, "a message signature (a plain signed artefact) is not a provenance", words)


def test_message_signature_for_another_artefact(verify: Verify) -> None:
    rejected(verify(OTHER_SHA256, "--attestation", MESSAGE, "--certificate-identity", BEACON,
                    "--certificate-oidc-issuer", GITHUB), "is not the digest the bundle signs")


# --- flags, trusted roots, subprocesses ------------------------------------------------------------

@pytest.mark.parametrize(("flags", "words"), [
    (["--certificate-identity", BEACON], "--certificate-identity needs --certificate-oidc-issuer"),
    (["--certificate-oidc-issuer", GITHUB], "--certificate-oidc-issuer needs an identity to narrow"),
    (["--source-ref", "main"], "--source-ref needs an identity to narrow"),
    (["--certificate-identity", BEACON, "--certificate-identity-regexp", "x",
      "--certificate-oidc-issuer", GITHUB], "either a certificate identity or an identity regexp"),
    (["--certificate-identity-regexp", "(", "--certificate-oidc-issuer", GITHUB],
     "not a valid regular expression"),
    (["--github-repo", "just-a-name"], "is not OWNER/REPO"),
    (["--signer-workflow", "acme/app/release.yml"], "is not OWNER/REPO/.github/workflows/FILE"),
    # a reusable workflow may be called from any repository, anyone's: as gh, the repository must be pinned too
    (["--signer-workflow", REUSABLE_SIGNER], "pin that repository too (--github-repo OWNER/REPO"),
], ids=["identity-without-issuer", "issuer-alone", "ref-alone", "identity-and-regexp", "bad-regexp",
        "bad-repo", "bad-workflow", "workflow-without-repo"])
def test_identity_flag_usage_errors(flags: list[str], words: str, verify: Verify) -> None:
    result = verify(MESSAGE_ARTIFACT, "--attestation", MESSAGE, *flags)
    assert result.code == 2 and words in result.err and "Traceback" not in result.err, result


def test_trusted_root_errors(verify: Verify, tmp_path: Path) -> None:
    rejected(verify(REUSABLE_ARTIFACT, "--attestation", REUSABLE, "--signer-workflow", REUSABLE_SIGNER,
                    "--github-repo", "malancas/attest-demo",
                    "--trusted-root", tmp_path / "missing.json"), "cannot read trusted root", code=3)
    bad = tmp_path / "root.json"
    bad.write_text('{"mediaType": "application/vnd.dev.sigstore.trustedroot+json;version=0.1", "tlogs": 5}')
    rejected(verify(REUSABLE_ARTIFACT, "--attestation", REUSABLE, "--signer-workflow", REUSABLE_SIGNER,
                    "--github-repo", "malancas/attest-demo",
                    "--trusted-root", bad), "is not a Sigstore trusted root", code=3)


def test_another_trusted_root_does_not_vouch(verify: Verify) -> None:
    staging = CONFORMANCE / "trusted_root.staging.json"
    rejected(verify(REUSABLE_ARTIFACT, "--attestation", REUSABLE, "--signer-workflow", REUSABLE_SIGNER,
                    "--github-repo", "malancas/attest-demo",
                    "--trusted-root", staging), "does not verify against the trusted root")


def test_real_subprocess(attest: AttestRunner) -> None:
    """The installed entry point, as a pipeline runs it: default trusted root, exit codes, one sentence."""
    ok = attest("verify", GENERATOR_SHA256, "--attestation", GENERATOR, "--signer-workflow",
                GENERATOR_WORKFLOW, "--github-repo", "slsa-framework/example-package",
                "--source-uri", "github.com/slsa-framework/example-package")
    passed(ok, "signed by --signer-workflow")
    wrong = attest("verify", REUSABLE_ARTIFACT, "--attestation", REUSABLE, "--certificate-identity",
                   CUSTOM_SAN, "--certificate-oidc-issuer", GITHUB)
    rejected(wrong, "which no trusted identity allows")
