"""sigstore-python 4.x signs keylessly against the local Fulcio and Rekor, and verifies what it signed.

Only sigstore-python's public API is used, so these tests prove that the local services speak
the protocol, and that the trust files they write are what a real verifier needs. Each rejection
test pins the check that fired, so a verifier accepting too much cannot pass unnoticed.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from cryptography.hazmat.primitives.asymmetric import ec
from sigstore.dsse import Statement
from sigstore.errors import VerificationError
from sigstore.models import Bundle, ClientTrustConfig, TrustedRoot
from sigstore.oidc import IdentityToken
from sigstore.sign import Signer, SigningContext
from sigstore.verify import Verifier, policy
from sigstore.verify.policy import VerificationPolicy

from tests.conftest import CONFORMANCE
from tests.sigstore_infra import GITHUB_ACTIONS_ISSUER, TokenMinter
from tests.sigstore_infra.fixture import SigstoreLocal

PRODUCTION_TRUSTED_ROOT = CONFORMANCE / "trusted_root.production.json"

ALICE = "alice@example.com"
ISSUER = "https://accounts.example.com"
WORKFLOW = "https://github.com/acme/app/.github/workflows/release.yml@refs/heads/main"


def statement(name: str = "dist/app.tar.gz") -> dict[str, Any]:
    """An in-toto Statement v1 about one artefact."""
    return {
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"name": name, "digest": {"sha256": "ab" * 32}}],
        "predicateType": "https://slsa.dev/provenance/v1",
        "predicate": {"buildDefinition": {"buildType": "https://example.com/build/v1"}},
    }


def alice() -> VerificationPolicy:
    return policy.Identity(identity=ALICE, issuer=ISSUER)


@pytest.fixture(scope="module")
def signing_context(sigstore_local: SigstoreLocal) -> SigningContext:
    trust_config = ClientTrustConfig.from_json(sigstore_local.trust_config_path.read_text())
    return SigningContext.from_trust_config(trust_config)


@pytest.fixture(scope="module")
def verifier(sigstore_local: SigstoreLocal) -> Verifier:
    return Verifier(trusted_root=TrustedRoot.from_file(str(sigstore_local.trusted_root_path)))


@pytest.fixture(scope="module")
def alice_signer(sigstore_local: SigstoreLocal, signing_context: SigningContext) -> Iterator[Signer]:
    """A signer holding a certificate for Alice (one CSR for the whole module)."""
    token = IdentityToken(sigstore_local.mint_token(ALICE, ISSUER))
    with signing_context.signer(token) as signer:
        yield signer


@pytest.fixture(scope="module")
def dsse_bundle(alice_signer: Signer) -> Bundle:
    """Alice's statement, signed as DSSE and logged, read back from its JSON form as a verifier would."""
    bundle = alice_signer.sign_dsse(Statement(json.dumps(statement()).encode()))
    return Bundle.from_json(bundle.to_json())


def tlog_entry(bundle: Bundle) -> dict[str, Any]:
    """The bundle's log entry in its JSON (protobuf) form."""
    entry: dict[str, Any] = json.loads(bundle.to_json())["verificationMaterial"]["tlogEntries"][0]
    return entry


def test_dsse_statement_verifies_with_local_root_and_identity(
    dsse_bundle: Bundle, verifier: Verifier
) -> None:
    payload_type, payload = verifier.verify_dsse(dsse_bundle, alice())

    assert payload_type == "application/vnd.in-toto+json"
    assert json.loads(payload) == statement()
    entry = tlog_entry(dsse_bundle)
    assert entry["kindVersion"] == {"kind": "dsse", "version": "0.0.1"}
    assert "signedEntryTimestamp" in entry["inclusionPromise"]


@pytest.mark.parametrize(
    ("identity", "issuer", "failed_check"),
    [
        ("mallory@example.com", ISSUER, "SANs do not match"),
        (ALICE, "https://evil.example.com", "OIDCIssuer does not match"),
    ],
    ids=["wrong-identity", "wrong-issuer"],
)
def test_dsse_is_rejected_for_another_identity(
    dsse_bundle: Bundle, verifier: Verifier, identity: str, issuer: str, failed_check: str
) -> None:
    with pytest.raises(VerificationError, match=failed_check):
        verifier.verify_dsse(dsse_bundle, policy.Identity(identity=identity, issuer=issuer))


def test_dsse_is_rejected_by_the_production_trusted_root(dsse_bundle: Bundle) -> None:
    production = Verifier(trusted_root=TrustedRoot.from_file(str(PRODUCTION_TRUSTED_ROOT)))

    with pytest.raises(VerificationError, match="failed to build timestamp certificate chain"):
        production.verify_dsse(dsse_bundle, alice())


def test_altered_envelope_payload_is_rejected(dsse_bundle: Bundle, verifier: Verifier) -> None:
    document = json.loads(dsse_bundle.to_json())
    altered = json.dumps(statement(name="dist/backdoored.tar.gz")).encode()
    document["dsseEnvelope"]["payload"] = base64.b64encode(altered).decode()
    tampered = Bundle.from_json(json.dumps(document))

    with pytest.raises(VerificationError, match="DSSE: invalid signature"):
        verifier.verify_dsse(tampered, alice())


def test_message_signature_verifies_for_its_artifact_only(alice_signer: Signer, verifier: Verifier) -> None:
    artifact = b"the release tarball\n"
    bundle = Bundle.from_json(alice_signer.sign_artifact(artifact).to_json())

    verifier.verify_artifact(artifact, bundle, alice())
    assert tlog_entry(bundle)["kindVersion"] == {"kind": "hashedrekord", "version": "0.0.1"}
    with pytest.raises(VerificationError, match="digest mismatch"):
        verifier.verify_artifact(b"another tarball\n", bundle, alice())


@pytest.fixture(scope="module")
def two_bundles(alice_signer: Signer) -> tuple[Bundle, Bundle]:
    """Two statements logged one after the other: the second proof has the first leaf as a sibling."""
    first, second = (
        Bundle.from_json(alice_signer.sign_dsse(Statement(json.dumps(statement(name)).encode())).to_json())
        for name in ("dist/one.tar.gz", "dist/two.tar.gz")
    )
    return first, second


def test_two_log_entries_have_real_inclusion_proofs(
    two_bundles: tuple[Bundle, Bundle], verifier: Verifier
) -> None:
    first, second = (tlog_entry(bundle) for bundle in two_bundles)

    assert int(second["logIndex"]) == int(first["logIndex"]) + 1
    assert int(second["inclusionProof"]["treeSize"]) == int(second["logIndex"]) + 1
    assert second["inclusionProof"]["hashes"], "a tree of two or more leaves has a non-empty audit path"
    for bundle in two_bundles:
        verifier.verify_dsse(bundle, alice())


def test_tampered_inclusion_proof_is_rejected(two_bundles: tuple[Bundle, Bundle], verifier: Verifier) -> None:
    document = json.loads(two_bundles[1].to_json())
    proof = document["verificationMaterial"]["tlogEntries"][0]["inclusionProof"]
    sibling = bytearray(base64.b64decode(proof["hashes"][0]))
    sibling[0] ^= 0x01
    proof["hashes"][0] = base64.b64encode(bytes(sibling)).decode()

    with pytest.raises(VerificationError, match="inclusion proof"):
        verifier.verify_dsse(Bundle.from_json(json.dumps(document)), alice())


def test_github_workflow_identity_carries_fulcio_extensions(
    sigstore_local: SigstoreLocal, signing_context: SigningContext, verifier: Verifier
) -> None:
    token = IdentityToken(sigstore_local.mint_token(WORKFLOW, GITHUB_ACTIONS_ISSUER))
    with signing_context.signer(token) as signer:
        bundle = signer.sign_dsse(Statement(json.dumps(statement()).encode()))

    workflow_policy = policy.AllOf(
        [
            policy.Identity(identity=WORKFLOW, issuer=GITHUB_ACTIONS_ISSUER),
            policy.OIDCIssuerV2(GITHUB_ACTIONS_ISSUER),
            policy.OIDCBuildSignerURI(WORKFLOW),
            policy.OIDCSourceRepositoryURI("https://github.com/acme/app"),
            policy.OIDCSourceRepositoryRef("refs/heads/main"),
            policy.GitHubWorkflowRepository("acme/app"),
        ]
    )
    verifier.verify_dsse(bundle, workflow_policy)
    with pytest.raises(VerificationError, match="OIDCSourceRepositoryURI does not match"):
        verifier.verify_dsse(bundle, policy.OIDCSourceRepositoryURI("https://github.com/acme/other"))


def test_ca_refuses_a_token_it_did_not_mint(sigstore_local: SigstoreLocal) -> None:
    forged = TokenMinter(key=ec.generate_private_key(ec.SECP256R1())).mint(ALICE, ISSUER)

    answer = requests.post(
        f"{sigstore_local.url}/api/v2/signingCert",
        json={"certificateSigningRequest": base64.b64encode(b"unused").decode()},
        headers={"Authorization": f"Bearer {forged}"},
        timeout=10,
    )

    assert answer.status_code == 401
    assert "Signature verification failed" in answer.json()["message"]
