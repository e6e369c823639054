"""``attest build --signer sigstore``: keyless signing against the local Fulcio and Rekor.

What attest writes is judged by sigstore-python's own ``Verifier`` (not by attest), under the local
trusted root and for a pinned identity; failures must be one sentence and an exit code, and the
identity token must never show.
"""

from __future__ import annotations

import base64
import hashlib
import json
import socket
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import blake3
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from sigstore.errors import VerificationError
from sigstore.models import Bundle, TrustedRoot
from sigstore.verify import Verifier, policy

from tests.conftest import CONFORMANCE, AttestRunner, Result
from tests.sigstore_infra import GITHUB_ACTIONS_ISSUER, TokenMinter
from tests.sigstore_infra.fixture import SigstoreLocal
from verify.formats.envelope import Envelope
from verify.formats.evidence import load_evidence

PRODUCTION_TRUSTED_ROOT = CONFORMANCE / "trusted_root.production.json"
ALICE = "alice@example.com"
ISSUER = "https://accounts.example.com"
WORKFLOW = "https://github.com/acme/app/.github/workflows/release.yml@refs/heads/main"


@dataclass(frozen=True)
class KeylessBuild:
    repo: Path
    result: Result
    bundle_text: str

    @property
    def bundle(self) -> Bundle:
        return Bundle.from_json(self.bundle_text)

    @property
    def document(self) -> dict[str, Any]:
        document: dict[str, Any] = json.loads(self.bundle_text)
        return document


def keyless_build(repo: Path, attest: AttestRunner, sigstore_local: SigstoreLocal, token: str,
                  *extra: str) -> KeylessBuild:
    result = attest("build", "--signer", "sigstore", "--trust-config", sigstore_local.trust_config_path,
                    "--bundle", "--artifact", "dist/", "--format", "json", *extra,
                    "--", sys.executable, "build.py", cwd=repo, env={"SIGSTORE_ID_TOKEN": token})
    assert result.code == 0, result
    assert token not in result.out + result.err
    return KeylessBuild(repo, result, (repo / "provenance.sigstore.json").read_text())


@pytest.fixture
def alice_build(repo: Path, attest: AttestRunner, sigstore_local: SigstoreLocal) -> KeylessBuild:
    return keyless_build(repo, attest, sigstore_local, sigstore_local.mint_token(ALICE, ISSUER))


@pytest.fixture(scope="module")
def local_verifier(sigstore_local: SigstoreLocal) -> Verifier:
    return Verifier(trusted_root=TrustedRoot.from_file(str(sigstore_local.trusted_root_path)))


def test_sigstore_python_accepts_the_bundle_for_the_signing_identity(
    alice_build: KeylessBuild, local_verifier: Verifier
) -> None:
    payload_type, payload = local_verifier.verify_dsse(alice_build.bundle, policy.Identity(identity=ALICE,
                                                                                         issuer=ISSUER))

    assert payload_type == "application/vnd.in-toto+json"
    statement = json.loads(payload)
    assert statement["predicateType"] == "https://slsa.dev/provenance/v1"
    # blake3 stays in keyless attestations, next to sha256
    for subject in statement["subject"]:
        data = (alice_build.repo / subject["name"]).read_bytes()
        assert subject["digest"] == {"sha256": hashlib.sha256(data).hexdigest(),
                                     "blake3": blake3.blake3(data).hexdigest()}
    entry = alice_build.document["verificationMaterial"]["tlogEntries"][0]
    assert entry["kindVersion"] == {"kind": "dsse", "version": "0.0.1"}
    assert "certificate" in alice_build.document["verificationMaterial"]
    assert alice_build.document["mediaType"] == "application/vnd.dev.sigstore.bundle.v0.3+json"


@pytest.mark.parametrize(("identity", "issuer", "failed_check"), [
    ("mallory@example.com", ISSUER, "SANs do not match"),
    (ALICE, "https://evil.example.com", "OIDCIssuer does not match"),
], ids=["wrong-identity", "wrong-issuer"])
def test_sigstore_python_rejects_the_bundle_for_another_identity(
    alice_build: KeylessBuild, local_verifier: Verifier, identity: str, issuer: str, failed_check: str
) -> None:
    with pytest.raises(VerificationError, match=failed_check):
        local_verifier.verify_dsse(alice_build.bundle, policy.Identity(identity=identity, issuer=issuer))


def test_sigstore_python_rejects_the_bundle_under_the_production_root(alice_build: KeylessBuild) -> None:
    production = Verifier(trusted_root=TrustedRoot.from_file(str(PRODUCTION_TRUSTED_ROOT)))

    with pytest.raises(VerificationError):
        production.verify_dsse(alice_build.bundle, policy.Identity(identity=ALICE, issuer=ISSUER))


def test_envelope_line_is_the_bundles_envelope(alice_build: KeylessBuild) -> None:
    line = (alice_build.repo / "provenance.intoto.jsonl").read_bytes()

    assert line.count(b"\n") == 1
    assert json.loads(line) == alice_build.document["dsseEnvelope"]
    assert Envelope.from_json(line.strip()) == Envelope.from_dict(alice_build.document["dsseEnvelope"])
    report = json.loads(alice_build.result.out)
    assert report["bundle"] == "provenance.sigstore.json"
    assert report["keyless"]["identity"] == ALICE
    assert report["keyless"]["issuer"] == ISSUER
    assert report["keyless"]["logIndex"] == int(
        alice_build.document["verificationMaterial"]["tlogEntries"][0]["logIndex"])


def test_altered_statement_in_the_bundle_is_rejected(alice_build: KeylessBuild,
                                                     local_verifier: Verifier) -> None:
    document = alice_build.document
    statement = json.loads(base64.b64decode(document["dsseEnvelope"]["payload"]))
    statement["subject"][0]["digest"]["blake3"] = "00" * 32
    document["dsseEnvelope"]["payload"] = base64.b64encode(json.dumps(statement).encode()).decode()

    with pytest.raises(VerificationError, match="DSSE: invalid signature"):
        local_verifier.verify_dsse(Bundle.from_json(json.dumps(document)),
                                   policy.Identity(identity=ALICE, issuer=ISSUER))


def test_github_workflow_identity_as_a_policy_pins_it(
    repo: Path, attest: AttestRunner, sigstore_local: SigstoreLocal, local_verifier: Verifier
) -> None:
    build = keyless_build(repo, attest, sigstore_local,
                          sigstore_local.mint_token(WORKFLOW, GITHUB_ACTIONS_ISSUER))

    local_verifier.verify_dsse(build.bundle, policy.AllOf([
        policy.Identity(identity=WORKFLOW, issuer=GITHUB_ACTIONS_ISSUER),
        policy.OIDCSourceRepositoryURI("https://github.com/acme/app"),
        policy.OIDCSourceRepositoryRef("refs/heads/main"),
    ]))
    other_workflow = WORKFLOW.replace("release.yml", "pr.yml")
    with pytest.raises(VerificationError, match="SANs do not match"):
        local_verifier.verify_dsse(build.bundle, policy.Identity(identity=other_workflow,
                                                                 issuer=GITHUB_ACTIONS_ISSUER))


def test_publish_stores_the_bundle_not_the_bare_envelope(
    repo: Path, attest: AttestRunner, sigstore_local: SigstoreLocal
) -> None:
    build = keyless_build(repo, attest, sigstore_local, sigstore_local.mint_token(ALICE, ISSUER),
                          "--publish", "store")

    stored = sorted((repo / "store").glob("sha256/*/provenance-*.intoto.jsonl"))
    assert len(stored) == 2  # one per artefact
    for path in stored:
        data = path.read_bytes()
        assert data == build.bundle_text.encode()
        (evidence,) = load_evidence(data, source=str(path))
        assert not isinstance(evidence, Exception)
        assert evidence.has_certificate
        assert evidence.envelope == Envelope.from_dict(build.document["dsseEnvelope"])


def test_attest_verify_accepts_the_keyless_bundle_by_blake3(
    repo: Path, attest: AttestRunner, sigstore_local: SigstoreLocal
) -> None:
    # the stg/prd path of docs/github.md: the bundle found in the store, the identity pinned
    token = sigstore_local.mint_token(ALICE, ISSUER)
    keyless_build(repo, attest, sigstore_local, token, "--publish", "store")

    def verify(identity: str) -> Result:
        return attest("verify", "dist/app.tar.gz", "--store", "store",
                      "--trusted-root", sigstore_local.trusted_root_path, "--certificate-identity", identity,
                      "--certificate-oidc-issuer", ISSUER, "--format", "json", cwd=repo)

    accepted = verify(ALICE)
    assert accepted.code == 0, accepted
    verdict = json.loads(accepted.out)
    assert verdict["verified"] is True
    assert "blake3" in verdict["digests"], "verification should match the artefact by blake3"
    rejected = verify("mallory@example.com")
    assert rejected.code == 1, rejected


# -- failures: one sentence, an exit code, nothing written, the token never shown ----------------------

def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


def _fails(repo: Path, attest: AttestRunner, *args: str | Path, token: str | None) -> Result:
    env = {"SIGSTORE_ID_TOKEN": token} if token is not None else {}
    result = attest("build", "--signer", "sigstore", "--bundle", "--artifact", "build.py", *args,
                    cwd=repo, env=env)
    assert result.code in (3, 4), result
    assert "Traceback" not in result.err
    assert result.err.startswith("attest: ") and result.err.count("\n") == 1, result.err
    if token:
        assert token not in result.err and token not in result.out
        for part in token.split("."):
            assert part not in result.err
    assert not (repo / "provenance.intoto.jsonl").exists()
    assert not (repo / "provenance.sigstore.json").exists()
    return result


def test_no_token_is_a_configuration_error(repo: Path, attest: AttestRunner,
                                           sigstore_local: SigstoreLocal) -> None:
    result = _fails(repo, attest, "--trust-config", sigstore_local.trust_config_path, token=None)

    assert result.code == 3
    assert "no identity token for keyless signing" in result.err and "SIGSTORE_ID_TOKEN" in result.err


def test_expired_token_is_refused_before_the_build(repo: Path, attest: AttestRunner,
                                                   sigstore_local: SigstoreLocal) -> None:
    now = int(time.time())
    token = sigstore_local.mint_token(ALICE, ISSUER, iat=now - 900, nbf=now - 900, exp=now - 600)

    result = _fails(repo, attest, "--trust-config", sigstore_local.trust_config_path, "--",
                    sys.executable, "-c", "open('ran', 'w')", token=token)

    assert result.code == 3
    assert "the identity token expired 10 min ago" in result.err
    assert not (repo / "ran").exists(), "the build command must not run with a token that cannot sign"


@pytest.mark.parametrize(("make_token", "message"), [
    (lambda local: "not-a-jwt", "the identity token is not a JWT"),
    (lambda local: local.mint_token(ALICE, ISSUER, aud="another-audience"),
     "the identity token is not usable for Sigstore"),
], ids=["garbage", "wrong-audience"])
def test_unusable_token_is_a_configuration_error(repo: Path, attest: AttestRunner,
                                                 sigstore_local: SigstoreLocal, make_token: Any,
                                                 message: str) -> None:
    result = _fails(repo, attest, "--trust-config", sigstore_local.trust_config_path,
                    token=make_token(sigstore_local))

    assert result.code == 3
    assert message in result.err


def test_ca_refusing_the_token_is_a_remote_error(repo: Path, attest: AttestRunner,
                                                 sigstore_local: SigstoreLocal) -> None:
    forged = TokenMinter(key=ec.generate_private_key(ec.SECP256R1())).mint(ALICE, ISSUER)

    result = _fails(repo, attest, "--trust-config", sigstore_local.trust_config_path, token=forged)

    assert result.code == 4
    endpoint = f"{sigstore_local.url}/api/v2/signingCert"
    assert f"the Sigstore CA at {endpoint} refused to issue a certificate" in result.err
    assert "HTTP 401" in result.err and "Signature verification failed" in result.err


def test_unreachable_services_are_a_remote_error(repo: Path, attest: AttestRunner,
                                                 sigstore_local: SigstoreLocal, tmp_path: Path) -> None:
    down = f"http://127.0.0.1:{_closed_port()}"
    config = tmp_path / "down.json"
    config.write_text(sigstore_local.trust_config_path.read_text().replace(sigstore_local.url, down))

    result = _fails(repo, attest, "--trust-config", config, token=sigstore_local.mint_token(ALICE, ISSUER))

    assert result.code == 4
    assert f"cannot reach {down}/api/v2/signingCert" in result.err


def test_services_outside_the_trusted_root_are_refused(repo: Path, attest: AttestRunner,
                                                       sigstore_local: SigstoreLocal, tmp_path: Path) -> None:
    # the local CA and log, but Sigstore's production root: the certificate's SCT cannot verify
    config = json.loads(sigstore_local.trust_config_path.read_text())
    config["trustedRoot"] = json.loads(PRODUCTION_TRUSTED_ROOT.read_text())
    mixed = tmp_path / "mixed.json"
    mixed.write_text(json.dumps(config))

    result = _fails(repo, attest, "--trust-config", mixed, token=sigstore_local.mint_token(ALICE, ISSUER))

    assert result.code == 3
    assert "does not verify against the trusted root" in result.err


@pytest.mark.parametrize(("content", "message"), [
    (None, "cannot read Sigstore trust config"),
    ('{"mediaType": "nonsense"}', "is not a Sigstore ClientTrustConfig"),
], ids=["missing", "malformed"])
def test_unreadable_trust_config_is_a_configuration_error(repo: Path, attest: AttestRunner,
                                                          sigstore_local: SigstoreLocal, tmp_path: Path,
                                                          content: str | None, message: str) -> None:
    config = tmp_path / "trust.json"
    if content is not None:
        config.write_text(content)

    result = _fails(repo, attest, "--trust-config", config, token=sigstore_local.mint_token(ALICE, ISSUER))

    assert result.code == 3
    assert message in result.err and str(config) in result.err


def test_trust_config_and_staging_exclude_each_other(repo: Path, attest: AttestRunner,
                                                     sigstore_local: SigstoreLocal) -> None:
    result = attest("build", "--signer", "sigstore", "--artifact", "build.py", "--staging",
                    "--trust-config", sigstore_local.trust_config_path, cwd=repo)

    assert result.code == 2
    assert "--trust-config and --staging exclude each other" in result.err


@pytest.mark.parametrize("claim", ["email", "iss"], ids=["another-identity", "another-issuer"])
def test_a_certificate_for_another_identity_than_the_tokens_is_refused(repo: Path, attest: AttestRunner,
                                                                        sigstore_local: SigstoreLocal,
                                                                        monkeypatch: pytest.MonkeyPatch,
                                                                        claim: str) -> None:
    """A CA (or whatever answers at its address) that certifies the new key for mallory, or for another issuer, than
    alice's token proves: the bundle would verify in someone else's name. Nothing is written."""
    from tests.sigstore_infra import ca

    original = ca.identity_from_claims
    other = {"email": "mallory@example.com", "iss": "https://evil.example.com"}[claim]
    monkeypatch.setattr(ca, "identity_from_claims", lambda claims: original({**claims, claim: other}))
    result = attest("build", "--signer", "sigstore", "--trust-config", sigstore_local.trust_config_path, "--bundle",
                    "--artifact", "dist/", "--", sys.executable, "build.py", cwd=repo,
                    env={"SIGSTORE_ID_TOKEN": sigstore_local.mint_token(ALICE, ISSUER)})
    assert result.code == 3 and "the CA certified" in result.err and other in result.err, result
    assert not (repo / "provenance.sigstore.json").exists() and not (repo / "provenance.intoto.jsonl").exists()


def test_junk_from_the_log_or_a_trust_config_sigstore_cannot_read_is_a_sentence_not_an_internal_error(
        repo: Path, attest: AttestRunner, sigstore_local: SigstoreLocal, monkeypatch: pytest.MonkeyPatch,
        tmp_path: Path) -> None:
    """sigstore-python raised KeyError on a log entry without its body, ValueError on a CA certificate that is no
    DER, RecursionError on a token's deeply nested claims: each was exit 70, "a bug in attest"."""
    from tests.sigstore_infra import services

    token = sigstore_local.mint_token(ALICE, ISSUER)
    monkeypatch.setattr(services.SigstoreServices, "_create_entry", lambda self, request, headers: (201, {"x": 1}))
    junk = _fails(repo, attest, "--trust-config", sigstore_local.trust_config_path, token=token)
    assert junk.code == 3 and "keyless signing failed on what the Sigstore instance" in junk.err, junk
    monkeypatch.undo()
    config = json.loads(Path(sigstore_local.trust_config_path).read_text())
    config["trustedRoot"]["certificateAuthorities"][0]["certChain"]["certificates"][0]["rawBytes"] = "AAAA"
    (tmp_path / "bad.json").write_text(json.dumps(config))
    bad_ca = _fails(repo, attest, "--trust-config", tmp_path / "bad.json", token=token)
    assert bad_ca.code == 3 and "internal error" not in bad_ca.err, bad_ca

    def part(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    deep = f"{part(b'{}')}.{part(b'[' * 5000 + b']' * 5000)}.{part(b'sig')}"
    nested = _fails(repo, attest, "--trust-config", sigstore_local.trust_config_path, token=deep)
    assert nested.code == 3 and "its claims do not decode as JSON" in nested.err, nested
