"""Issue 20: a multi-platform image (an index of two manifests) verifies by the index digest and by one
platform's digest; an attestation cosign keeps under ``sha256-<hex>.att`` counts when a pinned key signed it."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

from tests import factory
from tests.conftest import AttestRunner, KeyPair
from tests.images.conftest import pack

INDEX = "application/vnd.oci.image.index.v1+json"


def _canonical(document: object) -> bytes:
    return json.dumps(document, sort_keys=True, separators=(",", ":")).encode()


def _multi_layout(attest: AttestRunner, repo: Path) -> tuple[Path, str, dict[str, str]]:
    """An OCI layout whose image tagged v1 is an index of a linux/amd64 and a linux/arm64 image."""
    platforms: dict[str, str] = {}
    multi = repo.parent / "multi"
    (multi / "blobs" / "sha256").mkdir(parents=True)
    descriptors = []
    for arch in ("amd64", "arm64"):
        site = repo.parent / f"site-{arch}"
        site.mkdir()
        (site / "arch.txt").write_text(arch)
        packed = attest("pack", site, "--output", f"oci-layout:../{arch}", "--platform", f"linux/{arch}",
                        "--format", "json", cwd=repo, env={"SOURCE_DATE_EPOCH": "1700000000"})
        assert packed.code == 0, packed
        for blob in (repo.parent / arch / "blobs" / "sha256").iterdir():
            shutil.copy(blob, multi / "blobs" / "sha256" / blob.name)
        (descriptor,) = json.loads((repo.parent / arch / "index.json").read_text())["manifests"]
        descriptor.pop("annotations", None)
        descriptors.append(descriptor)
        platforms[arch] = descriptor["digest"]
    index = _canonical({"schemaVersion": 2, "mediaType": INDEX, "manifests": descriptors})
    digest = hashlib.sha256(index).hexdigest()
    (multi / "blobs" / "sha256" / digest).write_bytes(index)
    (multi / "index.json").write_bytes(_canonical({"schemaVersion": 2, "mediaType": INDEX, "manifests": [
        {"mediaType": INDEX, "digest": f"sha256:{digest}", "size": len(index),
         "annotations": {"org.opencontainers.image.ref.name": "v1"}}]}))
    (multi / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    return multi, f"sha256:{digest}", platforms


def test_a_multi_platform_image_verifies_by_its_index_and_by_one_platform(repo: Path, keys: dict[str, KeyPair],
                                                                          attest: AttestRunner,
                                                                          oci_registry: str) -> None:
    _, index, platforms = _multi_layout(attest, repo)
    repository = f"{oci_registry}/multi/app"
    built = attest("build", "--signer", keys["dev"].private, "--artifact", "oci-layout:../multi:v1", "--publish",
                   f"oci://{repository}", "--registry-insecure", oci_registry, "--format", "json", cwd=repo)
    assert built.code == 0, built
    subjects = [s["digest"]["sha256"] for s in json.loads(built.out)["subjects"]]
    assert ["sha256:" + s for s in subjects] == [index, platforms["amd64"], platforms["arm64"]]
    for digest in (index, platforms["arm64"]):
        ran = attest("verify", f"oci://{repository}@{digest}", "--key", keys["dev"].public, "--registry-insecure",
                     oci_registry, "--format", "json", cwd=repo)
        assert ran.code == 0, ran
        assert json.loads(ran.out)["artifact"] == f"oci://{repository}@{digest}"
    by_tag = attest("verify", f"oci://{repository}:v1", "--key", keys["dev"].public, "--registry-insecure",
                    oci_registry, "--format", "json", cwd=repo)
    assert by_tag.code == 0 and json.loads(by_tag.out)["artifact"].endswith(f"@{index}"), by_tag


def _push_cosign_attestation(registry: str, repository: str, image: str, envelope: bytes) -> None:
    """What ``cosign attest`` leaves: a manifest tagged sha256-<hex>.att, one DSSE envelope per layer."""
    from attest.registries.client import Registry

    client = Registry(registry, insecure=[registry])
    config = b'{"architecture":"","os":"","config":{},"rootfs":{"type":"layers","diff_ids":[]}}'
    for blob in (config, envelope):
        client.push_blob(repository, "sha256:" + hashlib.sha256(blob).hexdigest(), len(blob), blob)
    manifest = _canonical({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "size": len(config),
                   "digest": "sha256:" + hashlib.sha256(config).hexdigest()},
        "layers": [{"mediaType": "application/vnd.dsse.envelope.v1+json", "size": len(envelope),
                    "digest": "sha256:" + hashlib.sha256(envelope).hexdigest(),
                    "annotations": {"predicateType": "https://slsa.dev/provenance/v1"}}]})
    client.put_manifest(repository, image.replace(":", "-") + ".att", manifest,
                        "application/vnd.oci.image.manifest.v1+json")


def test_a_cosign_att_attestation_signed_by_a_pinned_key_counts(repo: Path, keys: dict[str, KeyPair],
                                                                attest: AttestRunner, oci_registry: str) -> None:
    from attest.oci_layout import parse_layout, read_layout_image
    from attest.registries.images import Registries, push_image
    from attest.registries.reference import parse_image

    digest = pack(attest, repo, "<h1>cosign</h1>\n", "oci-layout:../cosigned:v1")
    repository = "cosign/app"
    push_image(Registries(insecure=[oci_registry]), parse_image(f"oci://{oci_registry}/{repository}"),
               read_layout_image(parse_layout(f"oci-layout:{repo.parent / 'cosigned'}:v1")))
    image = f"oci://{oci_registry}/{repository}@{digest}"
    envelope = factory.provenance(keys["dev"].private, subjects={f"{oci_registry}/{repository}": {
        "sha256": digest.removeprefix("sha256:")}})
    as_cosign = envelope.to_dict()
    for signature in as_cosign["signatures"]:
        signature["keyid"] = ""  # cosign writes an empty keyid: the signature is found by the pinned key alone
    _push_cosign_attestation(oci_registry, repository, digest, json.dumps(as_cosign).encode())
    ran = attest("verify", image, "--key", keys["dev"].public, "--registry-insecure", oci_registry, cwd=repo)
    assert ran.code == 0, ran
    assert ".att" in ran.out  # the verdict says where the evidence came from
    other = attest("verify", image, "--key", keys["other"].public, "--registry-insecure", oci_registry, cwd=repo)
    assert other.code == 1, other


def test_a_promoted_multi_platform_image_verifies_by_one_platform_at_the_destination(
        repo: Path, keys: dict[str, KeyPair], attest: AttestRunner, oci_registry: str, oci_registry_prd: str) -> None:
    from tests.images.conftest import write_policy

    _, index, platforms = _multi_layout(attest, repo)
    source = f"{oci_registry}/multi/promoted"
    built = attest("build", "--signer", keys["dev"].private, "--artifact", "oci-layout:../multi:v1", "--publish",
                   f"oci://{source}", "--registry-insecure", oci_registry, cwd=repo)
    assert built.code == 0, built
    write_policy(repo, keys)
    insecure = ("--registry-insecure", oci_registry, "--registry-insecure", oci_registry_prd)
    stg = attest("verify", f"oci://{source}@{index}", "--policy", "policy.yaml", "--stage", "stg", "--emit-vsa",
                 "vsa.intoto.jsonl", "--signer", keys["stg"].private, *insecure, cwd=repo)
    assert stg.code == 0, stg
    promoted = attest("promote", f"oci://{source}@{index}", f"oci://{oci_registry_prd}/multi/app:v1", "--policy",
                      "policy.yaml", "--stage", "prd", *insecure, "--format", "json", cwd=repo)
    assert promoted.code == 0, promoted
    assert len(json.loads(promoted.out)["attestations"]) == 4  # the provenance on the index and both platforms, the VSA
    there = attest("verify", f"oci://{oci_registry_prd}/multi/app@{platforms['arm64']}", "--key", keys["dev"].public,
                   "--registry-insecure", oci_registry_prd, cwd=repo)
    assert there.code == 0, there
