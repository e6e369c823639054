"""Issue 20, part 1: Sigstore bundles as referrers, as ``gh attestation verify oci://...`` reads them.

A keyless build (against the local Fulcio and Rekor) attaches its bundle, artifact type
``application/vnd.dev.sigstore.bundle.v0.3+json``, and no bare envelope (which would not verify without
its certificate); a key build with --bundle attaches both. attest verify oci://... finds the bundle and
verifies it offline for the pinned identity.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.conftest import AttestRunner, KeyPair
from tests.images.conftest import get, pack
from tests.sigstore_infra.fixture import SigstoreLocal

BUNDLE = "application/vnd.dev.sigstore.bundle.v0.3+json"
DSSE = "application/vnd.dsse.envelope.v1+json"
ALICE, ISSUER = "alice@example.com", "https://accounts.example.com"


def _referrers(registry: str, repository: str, digest: str) -> list[dict[str, Any]]:
    name = repository.split("/", 1)[1]
    listed: list[dict[str, Any]] = json.loads(get(registry, f"/v2/{name}/manifests/{digest.replace(':', '-')}")[0])[
        "manifests"]
    return listed


def test_a_keyless_build_attaches_its_bundle_and_verify_reads_it(repo: Path, attest: AttestRunner,
                                                                 oci_registry: str,
                                                                 sigstore_local: SigstoreLocal) -> None:
    digest = pack(attest, repo, "<h1>keyless</h1>\n", "oci-layout:../keyless:v1")
    repository = f"{oci_registry}/bundles/keyless"
    built = attest("build", "--signer", "sigstore", "--trust-config", sigstore_local.trust_config_path,
                   "--artifact", "oci-layout:../keyless:v1", "--publish", f"oci://{repository}",
                   "--registry-insecure", oci_registry, cwd=repo,
                   env={"SIGSTORE_ID_TOKEN": sigstore_local.mint_token(ALICE, ISSUER)})
    assert built.code == 0, built
    (listed,) = _referrers(oci_registry, repository, digest)
    assert listed["artifactType"] == BUNDLE
    assert listed["annotations"]["dev.sigstore.bundle.predicateType"] == "https://slsa.dev/provenance/v1"
    ran = attest("verify", f"oci://{repository}:v1", "--certificate-identity", ALICE, "--certificate-oidc-issuer",
                 ISSUER, "--trusted-root", sigstore_local.trusted_root_path, "--registry-insecure", oci_registry,
                 "--format", "json", cwd=repo)
    assert ran.code == 0, ran
    assert json.loads(ran.out)["artifact"].endswith(f"@{digest}")
    someone_else = attest("verify", f"oci://{repository}:v1", "--certificate-identity", "mallory@example.com",
                          "--certificate-oidc-issuer", ISSUER, "--trusted-root", sigstore_local.trusted_root_path,
                          "--registry-insecure", oci_registry, cwd=repo)
    assert someone_else.code == 1, someone_else


def test_a_key_build_with_bundle_attaches_both(repo: Path, keys: dict[str, KeyPair], attest: AttestRunner,
                                               oci_registry: str) -> None:
    digest = pack(attest, repo, "<h1>both</h1>\n", "oci-layout:../both:v1")
    repository = f"{oci_registry}/bundles/both"
    built = attest("build", "--signer", keys["dev"].private, "--bundle", "--artifact", "oci-layout:../both:v1",
                   "--publish", f"oci://{repository}", "--registry-insecure", oci_registry, cwd=repo)
    assert built.code == 0, built
    assert sorted(r["artifactType"] for r in _referrers(oci_registry, repository, digest)) == sorted([DSSE, BUNDLE])
