"""Issue 20, part 4: attest promote copies an image to another registry with the attestations its gate relied on.

Two real registries (Debian's docker-registry): the session's, standing for the dev account's ECR, and a
second one (``oci_registry_prd``), standing for prd's. After attest promote, prd's gate passes
against prd's registry alone; after a plain skopeo copy, it fails saying the attestations were left behind.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import AttestRunner, KeyPair, need_tool
from tests.images.conftest import get
from tests.registry_infra import INSTALL


@pytest.fixture
def prd_registry(oci_registry_prd: str) -> str:
    return oci_registry_prd


def _stg(attest: AttestRunner, repo: Path, keys: dict[str, KeyPair], pushed: dict[str, Any]) -> None:
    ran = attest("verify", f"oci://{pushed['repository']}@{pushed['digest']}", "--policy", "policy.yaml", "--stage",
                 "stg", "--emit-vsa", "vsa.intoto.jsonl", "--signer", keys["stg"].private,
                 "--registry-insecure", pushed["registry"], cwd=repo)
    assert ran.code == 0, ran


def _verify_prd(attest: AttestRunner, repo: Path, image: str, *insecure: str) -> Any:
    flags = [arg for host in insecure for arg in ("--registry-insecure", host)]
    return attest("verify", image, "--policy", "policy.yaml", "--stage", "prd", "--format", "json", *flags, cwd=repo)


def test_promote_keeps_the_evidence_and_prd_verifies_there_alone(pushed: dict[str, Any], repo: Path,
                                                                 keys: dict[str, KeyPair], attest: AttestRunner,
                                                                 prd_registry: str) -> None:
    _stg(attest, repo, keys, pushed)
    source, digest = f"oci://{pushed['repository']}@{pushed['digest']}", pushed["digest"]
    ran = attest("promote", source, f"oci://{prd_registry}/prd/app:v1", "--policy", "policy.yaml", "--stage", "prd",
                 "--registry-insecure", pushed["registry"], "--registry-insecure", prd_registry, "--format", "json",
                 cwd=repo)
    assert ran.code == 0, ran
    shown = json.loads(ran.out)
    assert shown["destination"] == f"oci://{prd_registry}/prd/app:v1@{digest}"
    assert shown["blobs"]["uploaded"] == 2 and len(shown["attestations"]) == 2  # provenance and stg's VSA
    _, headers = get(prd_registry, "/v2/prd/app/manifests/v1", "application/vnd.oci.image.manifest.v1+json")
    assert headers["Docker-Content-Digest"] == digest  # the digest is unchanged
    # prd's pipeline, with only prd's registry: passes on the copied evidence
    there = _verify_prd(attest, repo, f"oci://{prd_registry}/prd/app:v1", prd_registry)
    assert there.code == 0, there
    assert [s["stage"] for s in json.loads(there.out)["stages"]] == ["stg"]
    again = attest("promote", source, f"oci://{prd_registry}/prd/app:v1", "--policy", "policy.yaml", "--stage", "prd",
                   "--registry-insecure", pushed["registry"], "--registry-insecure", prd_registry, "--format", "json",
                   cwd=repo)
    assert again.code == 0, again
    assert json.loads(again.out)["blobs"] == {"uploaded": 0, "mounted": 0, "present": 2}


def test_a_promote_the_gate_refuses_copies_nothing_and_tags_nothing(pushed: dict[str, Any], repo: Path,
                                                                    attest: AttestRunner, prd_registry: str) -> None:
    ran = attest("promote", f"oci://{pushed['repository']}@{pushed['digest']}", f"oci://{prd_registry}/prd/early:v1",
                 "--policy", "policy.yaml", "--stage", "prd", "--registry-insecure", pushed["registry"],
                 "--registry-insecure", prd_registry, cwd=repo)
    assert ran.code == 1 and "stg" in ran.err and len(ran.err.strip().splitlines()) == 1, ran
    with pytest.raises(Exception, match="404"):
        get(prd_registry, "/v2/prd/early/manifests/v1", "application/vnd.oci.image.manifest.v1+json")


def test_within_one_registry_blobs_are_mounted(pushed: dict[str, Any], repo: Path, keys: dict[str, KeyPair],
                                               attest: AttestRunner) -> None:
    _stg(attest, repo, keys, pushed)
    registry = pushed["registry"]
    ran = attest("promote", f"oci://{pushed['repository']}@{pushed['digest']}", f"oci://{registry}/prd-mount/app",
                 "--policy", "policy.yaml", "--stage", "prd", "--registry-insecure", registry, "--format", "json",
                 cwd=repo)
    assert ran.code == 0, ran
    assert json.loads(ran.out)["blobs"]["mounted"] == 2


def test_after_a_plain_skopeo_copy_prd_is_told_the_attestations_were_left_behind(
        pushed: dict[str, Any], repo: Path, keys: dict[str, KeyPair], attest: AttestRunner, prd_registry: str) -> None:
    skopeo = need_tool("skopeo", install=INSTALL)
    _stg(attest, repo, keys, pushed)
    copied = subprocess.run([skopeo, "copy", "--src-tls-verify=false", "--dest-tls-verify=false",
                             f"docker://{pushed['repository']}@{pushed['digest']}",
                             f"docker://{prd_registry}/prd/copied:v1"], capture_output=True, text=True, timeout=60)
    assert copied.returncode == 0, copied.stderr
    ran = _verify_prd(attest, repo, f"oci://{prd_registry}/prd/copied:v1", prd_registry)
    assert ran.code == 1, ran
    assert "holds no attestation" in ran.err and "attest promote" in ran.err


def test_a_promote_that_fails_half_way_leaves_no_tag_and_a_rerun_completes_it(
        pushed: dict[str, Any], repo: Path, keys: dict[str, KeyPair], attest: AttestRunner, prd_registry: str,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The destination fails while the attestations are attached (after the image was copied): no tag is written;
    the same promote again skips what is there and completes."""
    import attest.registries.images as images
    from attest.errors import RemoteError
    from attest.promote import PromoteRequest, run_promote

    _stg(attest, repo, keys, pushed)
    request = PromoteRequest(source=f"oci://{pushed['repository']}@{pushed['digest']}",
                             destination=f"oci://{prd_registry}/prd/halfway:v1", policy=repo / "policy.yaml",
                             stage="prd", registry_insecure=(pushed["registry"], prd_registry))
    real_attach = images.attach
    calls = []

    def failing_attach(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        if len(calls) == 2:  # the provenance went; the registry goes away before stg's VSA
            raise RemoteError("registry went away")
        return real_attach(*args, **kwargs)

    monkeypatch.setattr(images, "attach", failing_attach)
    with pytest.raises(RemoteError):
        run_promote(request)
    with pytest.raises(Exception, match="404"):
        get(prd_registry, "/v2/prd/halfway/manifests/v1", "application/vnd.oci.image.manifest.v1+json")
    _, headers = get(prd_registry, f"/v2/prd/halfway/manifests/{pushed['digest']}",
                     "application/vnd.oci.image.manifest.v1+json")  # the image itself is there, untagged
    monkeypatch.setattr(images, "attach", real_attach)
    done = run_promote(request)
    assert done.copied.present == 2 and done.tag == "v1"
    _, headers = get(prd_registry, "/v2/prd/halfway/manifests/v1", "application/vnd.oci.image.manifest.v1+json")
    assert headers["Docker-Content-Digest"] == pushed["digest"]
