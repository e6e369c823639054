"""Issue 20, parts 1 and 3: an image attested by digest, its provenance and VSAs kept in the registry beside it.

pack -> build --publish oci:// (the image pushed by digest, the provenance attached as an OCI referrer, then
the tag) -> verify oci://...:TAG at stg (the tag resolved once, the evidence found in the registry, a VSA
attached) -> verify at prd requiring stg's VSA, found in the registry too. Against Debian's docker-registry
(no referrers API: the referrers tag schema is what is exercised).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.conftest import AttestRunner, KeyPair
from tests.images.conftest import get, pack
from verify.formats.envelope import Envelope


def test_build_publishes_the_image_by_digest_with_its_provenance_as_a_referrer(pushed: dict[str, Any],
                                                                               repo: Path) -> None:
    registry, repository, digest = pushed["registry"], pushed["repository"], pushed["digest"]
    name = repository.split("/", 1)[1]
    # the subject is the manifest digest, named REGISTRY/REPO as cosign and gh name it
    statement = json.loads(Envelope.from_json((repo / "provenance.intoto.jsonl").read_bytes().strip()).payload)
    assert [(s["name"], "sha256:" + s["digest"]["sha256"]) for s in statement["subject"]] == [(repository, digest)]
    # the tag names the image attest built
    _, headers = get(registry, f"/v2/{name}/manifests/v1", "application/vnd.oci.image.manifest.v1+json")
    assert headers["Docker-Content-Digest"] == digest
    # the registry has no referrers API: the tag schema's index lists the provenance referrer
    index = json.loads(get(registry, f"/v2/{name}/manifests/{digest.replace(':', '-')}")[0])
    (listed,) = index["manifests"]
    assert listed["artifactType"] == "application/vnd.dsse.envelope.v1+json"
    referrer = json.loads(get(registry, f"/v2/{name}/manifests/{listed['digest']}",
                               "application/vnd.oci.image.manifest.v1+json")[0])
    assert referrer["subject"]["digest"] == digest
    (layer,) = referrer["layers"]
    envelope = get(registry, f"/v2/{name}/blobs/{layer['digest']}")[0]
    assert envelope == (repo / "provenance.intoto.jsonl").read_bytes()
    published = pushed["build"]["published"]
    assert f"oci://{repository}@{digest}" in published and f"oci://{repository}:v1" in published


def test_verify_finds_the_evidence_in_the_registry_and_names_the_digest(pushed: dict[str, Any], repo: Path,
                                                                        keys: dict[str, KeyPair],
                                                                        attest: AttestRunner) -> None:
    repository, digest, registry = pushed["repository"], pushed["digest"], pushed["registry"]
    ran = attest("verify", f"oci://{repository}:v1", "--key", keys["dev"].public, "--source-uri",
                 "github.com/acme/app", "--registry-insecure", registry, "--format", "json", cwd=repo)
    assert ran.code == 0, ran
    verdict = json.loads(ran.out)
    assert verdict["verified"] is True
    assert verdict["artifact"] == f"oci://{repository}:v1@{digest}"
    by_digest = attest("verify", f"oci://{repository}@{digest}", "--key", keys["dev"].public,
                       "--registry-insecure", registry, cwd=repo)
    assert by_digest.code == 0, by_digest
    wrong_key = attest("verify", f"oci://{repository}@{digest}", "--key", keys["other"].public,
                       "--registry-insecure", registry, cwd=repo)
    assert wrong_key.code == 1 and "Traceback" not in wrong_key.err, wrong_key


def test_stg_attaches_its_vsa_and_prd_finds_it_in_the_registry(pushed: dict[str, Any], repo: Path,
                                                               keys: dict[str, KeyPair], attest: AttestRunner) -> None:
    repository, digest, registry = pushed["repository"], pushed["digest"], pushed["registry"]
    image = f"oci://{repository}@{digest}"
    early = attest("verify", image, "--policy", "policy.yaml", "--stage", "prd", "--registry-insecure", registry,
                   cwd=repo)
    assert early.code == 1 and "stg" in early.err, early
    stg = attest("verify", image, "--policy", "policy.yaml", "--stage", "stg", "--emit-vsa", "vsa.intoto.jsonl",
                 "--signer", keys["stg"].private, "--registry-insecure", registry, "--format", "json", cwd=repo)
    assert stg.code == 0, stg
    attached = [uri for uri in json.loads(stg.out)["vsa"] if uri.startswith("oci://")]
    assert len(attached) == 1 and attached[0].startswith(f"oci://{repository}@sha256:")
    prd = attest("verify", image, "--policy", "policy.yaml", "--stage", "prd", "--registry-insecure", registry,
                 "--format", "json", cwd=repo)
    assert prd.code == 0, prd
    assert [s["stage"] for s in json.loads(prd.out)["stages"]] == ["stg"]


def test_an_image_without_attestations_is_refused_saying_how_to_bring_them(repo: Path, keys: dict[str, KeyPair],
                                                                           attest: AttestRunner,
                                                                           oci_registry: str) -> None:
    digest = pack(attest, repo, "<h1>unattested</h1>\n", "oci-layout:../bare:v1")
    # pushed without attest (as skopeo copy or replication would leave it): no referrer, no index
    from attest.oci_layout import parse_layout, read_layout_image
    from attest.registries.images import Registries, push_image
    from attest.registries.reference import parse_image

    target = parse_image(f"oci://{oci_registry}/flow/bare")
    push_image(Registries(insecure=[oci_registry]), target, read_layout_image(parse_layout("oci-layout:" + str(
        repo.parent / "bare") + ":v1")))
    ran = attest("verify", f"oci://{oci_registry}/flow/bare@{digest}", "--key", keys["dev"].public,
                 "--registry-insecure", oci_registry, cwd=repo)
    assert ran.code == 1, ran
    assert "holds no attestation" in ran.err and "attest promote" in ran.err
    assert len(ran.err.strip().splitlines()) == 1


def test_evidence_in_a_store_or_in_the_registry_either_will_do(repo: Path, keys: dict[str, KeyPair],
                                                               attest: AttestRunner, oci_registry: str,
                                                               pushed: dict[str, Any]) -> None:
    from attest.oci_layout import parse_layout, read_layout_image
    from attest.registries.images import Registries, push_image
    from attest.registries.reference import parse_image

    # an image attested into a store (by its manifest digest), pushed to the registry without attest
    digest = pack(attest, repo, "<h1>stored</h1>\n", "oci-layout:../stored:v1")
    built = attest("build", "--signer", keys["dev"].private, "--artifact", "oci-layout:../stored:v1", "--publish",
                   "store", "-o", "stored.intoto.jsonl", cwd=repo)
    assert built.code == 0, built
    push_image(Registries(insecure=[oci_registry]), parse_image(f"oci://{oci_registry}/flow/stored"),
               read_layout_image(parse_layout(f"oci-layout:{repo.parent / 'stored'}:v1")))
    ran = attest("verify", f"oci://{oci_registry}/flow/stored@{digest}", "--store", "store", "--key",
                 keys["dev"].public, "--registry-insecure", oci_registry, cwd=repo)
    assert ran.code == 0, ran
    # the registry's evidence with an empty store beside it
    (repo / "empty").mkdir()
    ran = attest("verify", f"oci://{pushed['repository']}@{pushed['digest']}", "--store", "empty", "--key",
                 keys["dev"].public, "--registry-insecure", oci_registry, cwd=repo)
    assert ran.code == 0, ran


def test_pushing_reports_progress_blob_by_blob(repo: Path, attest: AttestRunner, oci_registry: str) -> None:
    """What a progress bar is told while an image is pushed: each blob, to its last byte."""
    from collections.abc import Callable, Iterator
    from contextlib import contextmanager

    from attest.oci_layout import parse_layout, read_layout_image
    from attest.registries.images import Registries, push_image
    from attest.registries.reference import parse_image

    pack(attest, repo, "<h1>progress</h1>\n" * 5000, "oci-layout:../progress:v1")
    image = read_layout_image(parse_layout(f"oci-layout:{repo.parent / 'progress'}:v1"))
    told: dict[str, list[int]] = {}

    @contextmanager
    def progress(description: str, total: int) -> Iterator[Callable[[int], None]]:
        told[description] = [total]
        yield told[description].append

    push_image(Registries(insecure=[oci_registry]), parse_image(f"oci://{oci_registry}/flow/progress"), image,
               progress=progress)
    sizes = sorted(b.size for b in (image.manifest.config, *image.manifest.layers) if b is not None)
    assert sorted(counts[0] for counts in told.values()) == sizes
    assert all(sum(counts[1:]) == counts[0] for counts in told.values())


def test_a_layout_whose_blob_is_not_its_digest_is_not_attested(repo: Path, keys: dict[str, KeyPair],
                                                               attest: AttestRunner) -> None:
    import json as _json

    pack(attest, repo, "<h1>corrupt</h1>\n", "oci-layout:../corrupt:v1")
    layout = repo.parent / "corrupt"
    digest = _json.loads((layout / "index.json").read_text())["manifests"][0]["digest"]
    manifest = _json.loads((layout / "blobs" / "sha256" / digest.removeprefix("sha256:")).read_bytes())
    layer = layout / "blobs" / "sha256" / manifest["layers"][0]["digest"].removeprefix("sha256:")
    layer.write_bytes(b"\0" * layer.stat().st_size)
    ran = attest("build", "--signer", keys["dev"].private, "--artifact", "oci-layout:../corrupt:v1", cwd=repo)
    assert ran.code == 3 and "does not hash to its digest" in ran.err, ran
    assert not (repo / "provenance.intoto.jsonl").exists()


def test_an_image_the_build_command_pushed_is_resolved_once_and_recorded_by_digest(
        repo: Path, keys: dict[str, KeyPair], attest: AttestRunner, oci_registry: str) -> None:
    from tests.conftest import need_tool
    from tests.registry_infra import INSTALL

    skopeo = need_tool("skopeo", install=INSTALL)
    digest = pack(attest, repo, "<h1>pushed by the build</h1>\n", "oci-layout:../pushed:v1")
    repository = f"{oci_registry}/flow/pushed-by-cmd"
    built = attest("build", "--signer", keys["dev"].private, "--artifact", f"oci://{repository}:v1", "--publish",
                   f"oci://{repository}", "--registry-insecure", oci_registry, "--format", "json", "--",
                   skopeo, "copy", "--quiet", "--dest-tls-verify=false", f"oci:{repo.parent / 'pushed'}:v1",
                   f"docker://{repository}:v1", cwd=repo)
    assert built.code == 0, built
    (subject,) = json.loads(built.out)["subjects"]
    assert (subject["name"], "sha256:" + subject["digest"]["sha256"]) == (repository, digest)
    ran = attest("verify", f"oci://{repository}@{digest}", "--key", keys["dev"].public, "--registry-insecure",
                 oci_registry, cwd=repo)
    assert ran.code == 0, ran
    elsewhere = attest("build", "--signer", keys["dev"].private, "--artifact", f"oci://{repository}:v1", "--publish",
                       f"oci://{oci_registry}/flow/other", "--registry-insecure", oci_registry, cwd=repo)
    assert elsewhere.code == 2 and "publish to the image's own repository" in elsewhere.err, elsewhere
    missing = attest("build", "--signer", keys["dev"].private, "--artifact", f"oci://{repository}:v2",
                     "--registry-insecure", oci_registry, cwd=repo)
    assert missing.code == 3 and "was it pushed?" in missing.err, missing
