"""``attest verify oci://...`` against a registry that lies, loops, stalls behind a password or floods.

The registry is :mod:`tests.images.hostile_registry`, a stdlib HTTP server the test scripts: real HTTP to the
real CLI, with real signed evidence (:mod:`tests.factory`) for the image's manifest digest. A registry that
behaves serves a provenance through the OCI 1.1 referrers API and the image verifies; one that sends other
bytes than asked for, a referrer of another image, an index of 100,000 referrers or a blob longer than its
descriptor is refused as evidence (exit 1); one that loops, demands a password attest does not have, or fails
is a remote failure (exit 4). Every refusal is one sentence on stderr, never a traceback. A redirect to
another host does not carry the first host's password.
"""

from __future__ import annotations

import base64
import hashlib
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import AttestRunner, KeyPair, Result
from tests.factory import provenance
from tests.images import hostile_registry as adversary
from tests.images.hostile_registry import MEDIA_OCI_INDEX, MEDIA_OCI_MANIFEST, HostileRegistry, start_hostile_registry

hostile_registry = adversary.hostile_registry  # the fixture: a fresh hostile registry for each test

ARTIFACT_DSSE = "application/vnd.dsse.envelope.v1+json"
MEDIA_EMPTY = "application/vnd.oci.empty.v1+json"
REPOSITORY = "acme/app"


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _json(document: object) -> bytes:
    return json.dumps(document, separators=(",", ":"), sort_keys=True).encode()


def _descriptor(media_type: str, data: bytes, **extra: str) -> dict[str, object]:
    return {"mediaType": media_type, "digest": _digest(data), "size": len(data), **extra}


def _image_manifest(content: bytes) -> bytes:
    """An image's manifest (its config and layer need not be served: attest verifies the manifest digest)."""
    config = _json({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": []}})
    return _json({"schemaVersion": 2, "mediaType": MEDIA_OCI_MANIFEST,
                  "config": _descriptor("application/vnd.oci.image.config.v1+json", config),
                  "layers": [_descriptor("application/vnd.oci.image.layer.v1.tar+gzip", content)]})


def _referrer(line: bytes, *, subject: bytes) -> bytes:
    """An OCI 1.1 artifact manifest: the envelope line as its one layer, ``subject`` the image it attests."""
    return _json({"schemaVersion": 2, "mediaType": MEDIA_OCI_MANIFEST, "artifactType": ARTIFACT_DSSE,
                  "config": _descriptor(MEDIA_EMPTY, b"{}"), "layers": [_descriptor(ARTIFACT_DSSE, line)],
                  "subject": _descriptor(MEDIA_OCI_MANIFEST, subject)})


@dataclass(frozen=True)
class Scene:
    """An image in the hostile registry with its provenance attached as a referrer (through the referrers API)."""

    registry: HostileRegistry
    manifest: bytes
    digest: str
    line: bytes
    """The signed provenance's envelope line: the referrer's one layer."""
    referrer: bytes

    @property
    def uri(self) -> str:
        return f"oci://{self.registry.address}/{REPOSITORY}@{self.digest}"

    @property
    def layer(self) -> str:
        return _digest(self.line)

    def path(self, kind: str, reference: str) -> str:
        return f"/v2/{REPOSITORY}/{kind}/{reference}"


def _signed_for(registry: HostileRegistry, manifest: bytes, keys: dict[str, KeyPair]) -> bytes:
    """A real provenance for the image whose manifest is ``manifest``, as attest build signs one for an image:
    subject REGISTRY/REPO, sha256 the manifest digest, blake3 of the manifest's bytes."""
    return provenance(keys["dev"].private, subjects={f"{registry.address}/{REPOSITORY}": manifest}).to_json_line()


def _stage(registry: HostileRegistry, keys: dict[str, KeyPair], *, content: bytes = b"v1") -> Scene:
    """Serve an image, its provenance's blob, the referrer holding it and the referrers API's answer listing it."""
    manifest = _image_manifest(content)
    digest = registry.add_manifest(REPOSITORY, manifest)
    line = _signed_for(registry, manifest, keys)
    referrer = _referrer(line, subject=manifest)
    registry.add_manifest(REPOSITORY, referrer)
    registry.add_blob(REPOSITORY, line)
    registry.add_blob(REPOSITORY, b"{}")
    registry.set_referrers(REPOSITORY, digest, [_descriptor(MEDIA_OCI_MANIFEST, referrer, artifactType=ARTIFACT_DSSE)])
    return Scene(registry=registry, manifest=manifest, digest=digest, line=line, referrer=referrer)


@pytest.fixture
def home(tmp_path: Path) -> dict[str, str]:
    """An environment with no registry credentials anywhere (an empty HOME, no auth file)."""
    empty = tmp_path / "home"
    empty.mkdir()
    return {"HOME": str(empty), "REGISTRY_AUTH_FILE": "", "DOCKER_CONFIG": "", "XDG_RUNTIME_DIR": ""}


def _verify(attest: AttestRunner, scene: Scene, keys: dict[str, KeyPair], env: dict[str, str], cwd: Path,
            *insecure: str) -> Result:
    started = time.monotonic()
    ran = attest("verify", scene.uri, "--key", keys["dev"].public,
                 *[arg for host in (scene.registry.address, *insecure) for arg in ("--registry-insecure", host)],
                 cwd=cwd, env=env, timeout=60)
    assert time.monotonic() - started < 30, "attest took far too long against the hostile registry"
    return ran


def _refused(ran: Result, code: int) -> str:
    """The one sentence of a refusal with exit ``code``."""
    assert ran.code == code, ran
    assert "Traceback" not in ran.err and "internal error" not in ran.err, ran
    lines = ran.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("attest: ") and lines[0].endswith("."), ran
    return lines[0]


# --- (a) a registry that behaves: the referrers API path -----------------------------------------------------

def test_a_provenance_found_through_the_referrers_api_verifies(hostile_registry: HostileRegistry,
                                                               keys: dict[str, KeyPair], attest: AttestRunner,
                                                               home: dict[str, str], tmp_path: Path) -> None:
    scene = _stage(hostile_registry, keys)
    ran = _verify(attest, scene, keys, home, tmp_path)
    assert ran.code == 0, ran
    assert "Traceback" not in ran.err
    assert hostile_registry.requests("GET", scene.path("referrers", scene.digest))
    assert hostile_registry.requests("GET", scene.path("blobs", scene.layer))
    # the API answered: the referrers tag schema's index was not asked for
    assert not hostile_registry.requests("GET", scene.path("manifests", scene.digest.replace(":", "-")))


# --- (b)-(e) bytes that are not what was asked for: evidence refused (exit 1) --------------------------------

def test_a_manifest_that_does_not_hash_to_the_digest_asked_for_is_refused(hostile_registry: HostileRegistry,
                                                                          keys: dict[str, KeyPair],
                                                                          attest: AttestRunner, home: dict[str, str],
                                                                          tmp_path: Path) -> None:
    scene = _stage(hostile_registry, keys)
    # the registry swaps the image: other bytes (a valid manifest) under the digest asked for
    hostile_registry.add_manifest(REPOSITORY, _image_manifest(b"backdoored"), digest=scene.digest)
    line = _refused(_verify(attest, scene, keys, home, tmp_path), 1)
    assert scene.digest in line and _digest(_image_manifest(b"backdoored")) in line


def test_a_referrer_whose_subject_is_another_image_is_not_evidence_for_this_one(
        hostile_registry: HostileRegistry, keys: dict[str, KeyPair], attest: AttestRunner, home: dict[str, str],
        tmp_path: Path) -> None:
    scene = _stage(hostile_registry, keys, content=b"the image verified")
    other = _stage(hostile_registry, keys, content=b"another image, attested")
    # the referrers API lists, for the image verified, only the referrer (and real provenance) of another image
    hostile_registry.set_referrers(REPOSITORY, scene.digest,
                                   [_descriptor(MEDIA_OCI_MANIFEST, other.referrer, artifactType=ARTIFACT_DSSE)])
    line = _refused(_verify(attest, scene, keys, home, tmp_path), 1)
    assert "subject" in line and other.digest in line, line
    assert not hostile_registry.requests("GET", other.path("blobs", other.layer))  # its evidence not even read


@cache
def _flood(entries: int) -> bytes:
    """A referrers index of ``entries`` distinct descriptors (100,000 is about 19 MB), made once."""
    head = b'{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":['
    one = ('{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:%064x","size":500,'
           '"artifactType":"application/vnd.dsse.envelope.v1+json"}')
    return head + ",".join(one % n for n in range(entries)).encode() + b"]}"


@pytest.mark.parametrize("entries", [100_000, 1001], ids=["100k-over-the-size-limit", "1001-over-the-count-limit"])
def test_a_flood_of_referrers_is_refused_quickly(entries: int, hostile_registry: HostileRegistry,
                                                 keys: dict[str, KeyPair], attest: AttestRunner,
                                                 home: dict[str, str], tmp_path: Path) -> None:
    scene = _stage(hostile_registry, keys)
    hostile_registry.set_referrers(REPOSITORY, scene.digest, _flood(entries))
    started = time.monotonic()
    line = _refused(_verify(attest, scene, keys, home, tmp_path), 1)
    assert time.monotonic() - started < 3
    assert "at most" in line, line
    # not one of the listed referrers was fetched
    assert not [seen for seen in hostile_registry.log if seen.path.startswith(f"/v2/{REPOSITORY}/manifests/sha256:0")]


@pytest.mark.parametrize("how", ["longer", "tampered"])
def test_an_evidence_blob_that_is_not_what_its_descriptor_says_is_refused(how: str, hostile_registry: HostileRegistry,
                                                                          keys: dict[str, KeyPair],
                                                                          attest: AttestRunner,
                                                                          home: dict[str, str],
                                                                          tmp_path: Path) -> None:
    scene = _stage(hostile_registry, keys)
    sent = scene.line + b" " * 4096 if how == "longer" else scene.line.replace(b'"sig":"', b'"sig":"A', 1)[:-1]
    hostile_registry.add_blob(REPOSITORY, sent, digest=scene.layer)
    line = _refused(_verify(attest, scene, keys, home, tmp_path), 1)
    assert scene.layer in line, line


# --- (f)-(h) a registry that will not answer properly: a remote failure (exit 4) -----------------------------

@pytest.mark.parametrize("what", ["manifest", "blob"])
def test_a_redirect_loop_is_a_remote_failure_that_says_so(what: str, hostile_registry: HostileRegistry,
                                                          keys: dict[str, KeyPair], attest: AttestRunner,
                                                          home: dict[str, str], tmp_path: Path) -> None:
    scene = _stage(hostile_registry, keys)
    if what == "manifest":  # absolute Location, back to itself
        path = scene.path("manifests", scene.digest)
        hostile_registry.redirect("GET", path, f"http://{hostile_registry.address}{path}")
    else:  # a two-step loop, relative Locations
        path = scene.path("blobs", scene.layer)
        hostile_registry.redirect("GET", path, path + "-elsewhere", status=302)
        hostile_registry.redirect("GET", path + "-elsewhere", path, status=301)
    line = _refused(_verify(attest, scene, keys, home, tmp_path), 4)
    assert "redirect" in line, line
    assert len(hostile_registry.requests("GET")) < 20  # it gave up; it did not follow forever


def test_a_password_demanded_and_none_at_hand_says_to_log_in(hostile_registry: HostileRegistry,
                                                             keys: dict[str, KeyPair], attest: AttestRunner,
                                                             home: dict[str, str], tmp_path: Path) -> None:
    scene = _stage(hostile_registry, keys)
    hostile_registry.demand_basic("someone", "secret", realm="x")
    line = _refused(_verify(attest, scene, keys, home, tmp_path), 4)
    assert "log in" in line and hostile_registry.address in line, line
    assert all(seen.authorization is None for seen in hostile_registry.log)


def test_a_registry_failing_with_500_is_a_remote_failure(hostile_registry: HostileRegistry,
                                                         keys: dict[str, KeyPair], attest: AttestRunner,
                                                         home: dict[str, str], tmp_path: Path) -> None:
    scene = _stage(hostile_registry, keys)
    hostile_registry.fail("GET", scene.path("manifests", scene.digest), 500)
    line = _refused(_verify(attest, scene, keys, home, tmp_path), 4)
    assert "500" in line and "retry" in line, line


# --- (i) credentials stay with their host ----------------------------------------------------------------------

def test_a_redirect_to_another_host_does_not_carry_the_password(hostile_registry: HostileRegistry,
                                                                keys: dict[str, KeyPair], attest: AttestRunner,
                                                                home: dict[str, str], tmp_path: Path) -> None:
    scene = _stage(hostile_registry, keys)
    auth_file = tmp_path / "auth.json"
    auth_file.write_text(json.dumps({"auths": {hostile_registry.address: {
        "auth": base64.b64encode(b"user:pass").decode()}}}))
    hostile_registry.demand_basic("user", "pass")
    with start_hostile_registry() as elsewhere:
        # the blob is "in object storage" on another host (both 127.0.0.1, another port)
        elsewhere.add_blob(REPOSITORY, scene.line)
        blob = scene.path("blobs", scene.layer)
        hostile_registry.redirect("GET", blob, f"http://{elsewhere.address}{blob}")
        ran = _verify(attest, scene, keys, {**home, "REGISTRY_AUTH_FILE": str(auth_file)}, tmp_path,
                      elsewhere.address)
        assert ran.code == 0, ran
        (fetched,) = elsewhere.requests("GET", blob)
        assert fetched.authorization is None
        assert all(seen.authorization is None for seen in elsewhere.log)
    expected = "Basic " + base64.b64encode(b"user:pass").decode()
    assert [seen.authorization for seen in hostile_registry.requests("GET", blob)] == [expected]


# --- the client alone: a blob longer than its descriptor is not read to its end ------------------------------

def test_stream_blob_stops_reading_once_the_blob_is_longer_than_its_descriptor(
        hostile_registry: HostileRegistry) -> None:
    from attest.registries.client import Registry
    from verify.errors import DigestMismatch

    total, chunk = 50 * 1024 * 1024, b"x" * (256 * 1024)

    def fifty_megabytes() -> Iterator[bytes]:
        for _ in range(total // len(chunk)):
            yield chunk

    digest = _digest(b"0123456789")
    hostile_registry.add_blob(REPOSITORY, fifty_megabytes, digest=digest, length=total)
    route = hostile_registry.routes[("GET", f"/v2/{REPOSITORY}/blobs/{digest}")]
    client = Registry(hostile_registry.address, insecure=[hostile_registry.address], env={"HOME": "/nonexistent"})
    started = time.monotonic()
    received = 0
    with pytest.raises(DigestMismatch, match="longer than the 10 bytes"):
        for part in client.stream_blob(REPOSITORY, digest, 10):
            received += len(part)
    assert time.monotonic() - started < 2
    assert received == 0  # not one byte of a blob longer than its descriptor reached the consumer
    assert route.sent < total // 2, f"the registry had to send {route.sent} of {total} bytes"
    for pool in client._pools.values():  # hang up, so the registry's writer stops
        pool.clear()


# --- the referrers API in pages ------------------------------------------------------------------------------

def _paged(scene: Scene, first_next: str) -> None:
    """The referrers API's first page lists nothing and points to ``first_next``."""
    empty = json.dumps({"schemaVersion": 2, "mediaType": MEDIA_OCI_INDEX, "manifests": []}).encode()
    scene.registry.route("GET", scene.path("referrers", scene.digest), 200,
                         {"Content-Type": MEDIA_OCI_INDEX, "Link": f'<{first_next}>; rel="next"'}, empty)


def test_referrers_on_a_second_page_are_found(hostile_registry: HostileRegistry, keys: dict[str, KeyPair],
                                              attest: AttestRunner, home: dict[str, str], tmp_path: Path) -> None:
    scene = _stage(hostile_registry, keys)
    listing = [_descriptor(MEDIA_OCI_MANIFEST, scene.referrer, artifactType=ARTIFACT_DSSE)]
    second = scene.path("referrers", scene.digest) + "?last=page1"
    hostile_registry.route("GET", second, 200, {"Content-Type": MEDIA_OCI_INDEX}, json.dumps(
        {"schemaVersion": 2, "mediaType": MEDIA_OCI_INDEX, "manifests": listing}).encode())
    _paged(scene, second)
    ran = _verify(attest, scene, keys, home, tmp_path)
    assert ran.code == 0, ran
    assert hostile_registry.requests("GET", second)


def test_endless_or_foreign_pages_of_referrers_are_refused(hostile_registry: HostileRegistry,
                                                           keys: dict[str, KeyPair], attest: AttestRunner,
                                                           home: dict[str, str], tmp_path: Path) -> None:
    scene = _stage(hostile_registry, keys)
    _paged(scene, scene.path("referrers", scene.digest))  # the next page is this page, forever
    assert "pages" in _refused(_verify(attest, scene, keys, home, tmp_path), 1)
    _paged(scene, f"http://127.0.0.1:9{scene.path('referrers', scene.digest)}")
    assert "another host" in _refused(_verify(attest, scene, keys, home, tmp_path), 4)


# --- (i) credentials stay with their host: what the registry names, not only what it redirects to ------------

def _client(registry: HostileRegistry, tmp_path: Path, *insecure: str) -> Any:
    from attest.registries.client import Registry

    auth_file = tmp_path / "auth.json"
    auth_file.write_text(json.dumps({"auths": {registry.address: {"auth": base64.b64encode(b"user:pass").decode()}}}))
    registry.demand_basic("user", "pass")
    return Registry(registry.address, insecure=[registry.address, *insecure],
                    env={"HOME": str(tmp_path), "REGISTRY_AUTH_FILE": str(auth_file)})


@pytest.mark.parametrize("insecure", [False, True], ids=["plain-http-elsewhere", "insecure-elsewhere"])
def test_an_upload_location_on_another_host_never_gets_the_password(hostile_registry: HostileRegistry,
                                                                    tmp_path: Path, insecure: bool) -> None:
    """The registry's answer to starting an upload names where to PUT the blob: attest sent the registry's password
    there, to any host, over plain http."""
    from attest.errors import RemoteError

    with start_hostile_registry() as elsewhere:
        hostile_registry.route("POST", f"/v2/{REPOSITORY}/blobs/uploads/", 202,
                               {"Location": f"http://{elsewhere.address}/upload/1", "Content-Length": "0"})
        elsewhere.route("PUT", "/upload/1", 201, {})
        client = _client(hostile_registry, tmp_path, *([elsewhere.address] if insecure else []))
        data = b"a layer"
        if insecure:  # a host the user named for plain http: the blob goes, without the registry's password
            assert client.push_blob(REPOSITORY, _digest(data), len(data), data) == "uploaded"
            assert [seen.authorization for seen in elsewhere.requests("PUT")] == [None]
        else:
            with pytest.raises(RemoteError, match=r"sent uploading blob .* to plain http"):
                client.push_blob(REPOSITORY, _digest(data), len(data), data)
            assert elsewhere.log == []


def test_a_challenge_from_where_a_redirect_led_never_gets_the_password(hostile_registry: HostileRegistry,
                                                                       tmp_path: Path) -> None:
    """A 401 from another host after a redirect was answered as the registry's own: the registry's credentials went
    to whatever token service that host named."""
    from attest.errors import RemoteError

    with start_hostile_registry() as elsewhere, start_hostile_registry() as realm:
        manifest = f"/v2/{REPOSITORY}/manifests/v1"
        hostile_registry.redirect("GET", manifest, f"http://{elsewhere.address}{manifest}")
        elsewhere.route("GET", manifest, 401, {"WWW-Authenticate":
                                               f'Bearer realm="http://{realm.address}/token",service="x"'})
        client = _client(hostile_registry, tmp_path, elsewhere.address, realm.address)
        with pytest.raises(RemoteError):
            client.manifest(REPOSITORY, "v1", accept=MEDIA_OCI_MANIFEST)
        assert realm.log == []
        assert all(seen.authorization is None for seen in elsewhere.log)


def test_a_next_page_on_another_scheme_is_refused(hostile_registry: HostileRegistry, keys: dict[str, KeyPair],
                                                  attest: AttestRunner, home: dict[str, str], tmp_path: Path) -> None:
    """The same host and port, but another scheme (https to http, where the password would go in clear)."""
    scene = _stage(hostile_registry, keys)
    _paged(scene, f"https://{hostile_registry.address}{scene.path('referrers', scene.digest)}?last=1")
    assert "another host or scheme" in _refused(_verify(attest, scene, keys, home, tmp_path), 4)


@pytest.mark.parametrize("where", ["redirect", "next-page", "token-realm"])
def test_a_malformed_address_from_the_registry_is_a_remote_failure(where: str, hostile_registry: HostileRegistry,
                                                                   keys: dict[str, KeyPair], attest: AttestRunner,
                                                                   home: dict[str, str], tmp_path: Path) -> None:
    """An address Python cannot read (``https://[x``) in a Location, a Link or a token realm: one sentence, never
    an internal error."""
    scene = _stage(hostile_registry, keys)
    path = scene.path("referrers", scene.digest)
    if where == "redirect":
        hostile_registry.redirect("GET", path, "https://[::1/x")
    elif where == "next-page":
        _paged(scene, "https://[x/next")
    else:
        hostile_registry.route("GET", path, 401, {"WWW-Authenticate": 'Bearer realm="https://[x/token",service="s"'})
    assert "sent a malformed address" in _refused(_verify(attest, scene, keys, home, tmp_path), 4)


@pytest.mark.parametrize("how", ["one-manifest-twice", "too-many-bytes"])
def test_an_image_index_that_would_be_held_whole_is_refused(how: str, hostile_registry: HostileRegistry,
                                                           keys: dict[str, KeyPair], attest: AttestRunner,
                                                           home: dict[str, str], tmp_path: Path) -> None:
    """An index listing one 4 MiB manifest a thousand times was fetched a thousand times and held whole (8 GiB):
    a manifest listed twice is refused, and so are platform manifests past MAX_OCI_INDEX_CHILDREN_BYTES together,
    before the rest are fetched."""
    from verify.limits import MAX_OCI_INDEX_CHILDREN_BYTES, MAX_OCI_MANIFEST_BYTES

    def big(n: int) -> bytes:  # a valid image manifest of almost 4 MiB
        manifest = json.loads(_image_manifest(b"v%d" % n))
        manifest["annotations"] = {"padding": "x" * (MAX_OCI_MANIFEST_BYTES - 4096)}
        return _json(manifest)

    children = [big(0)] * 3 if how == "one-manifest-twice" else \
        [big(n) for n in range(MAX_OCI_INDEX_CHILDREN_BYTES // MAX_OCI_MANIFEST_BYTES + 2)]
    for child in children:
        hostile_registry.add_manifest(REPOSITORY, child)
    index = _json({"schemaVersion": 2, "mediaType": MEDIA_OCI_INDEX, "manifests": [
        _descriptor(MEDIA_OCI_MANIFEST, child, platform={"architecture": f"a{n}", "os": "linux"})  # type: ignore[arg-type]
        for n, child in enumerate(children)]})
    digest = hostile_registry.add_manifest(REPOSITORY, index)
    ran = attest("verify", f"oci://{hostile_registry.address}/{REPOSITORY}@{digest}", "--key", keys["dev"].public,
                 "--registry-insecure", hostile_registry.address, cwd=tmp_path, env=home, timeout=60)
    line = _refused(ran, 1)
    assert ("twice" if how == "one-manifest-twice" else f"more than {MAX_OCI_INDEX_CHILDREN_BYTES} bytes") in line
    fetched = [seen for seen in hostile_registry.log if seen.path.startswith(f"/v2/{REPOSITORY}/manifests/sha256:")
               and seen.path.rsplit("/", 1)[1] != digest]
    assert len(fetched) <= (1 if how == "one-manifest-twice" else len(children) - 1), len(fetched)


@pytest.mark.parametrize("what", ["manifest", "blob"])
def test_a_registry_that_sends_a_byte_now_and_then_is_given_up_on(what: str, hostile_registry: HostileRegistry,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """Each read comes well inside the read timeout, so only the pace can tell: past the grace (made short here,
    60 s for real), slower than the least pace is a remote failure, never a run held for days."""
    import attest.registries.client as client_module
    from attest.errors import RemoteError

    monkeypatch.setattr(client_module, "_GRACE_S", 0.5)

    def drip() -> Iterator[bytes]:
        for _ in range(1000):
            yield b" "
            time.sleep(0.1)

    digest = _digest(b"never sent")
    if what == "manifest":
        hostile_registry.route("GET", f"/v2/{REPOSITORY}/manifests/{digest}", 200,
                               {"Content-Type": MEDIA_OCI_MANIFEST}, drip, length=1000)
    else:
        hostile_registry.add_blob(REPOSITORY, drip, digest=digest, length=1000)
    client = client_module.Registry(hostile_registry.address, insecure=[hostile_registry.address],
                                    env={"HOME": "/nonexistent"})
    started = time.monotonic()
    with pytest.raises(RemoteError, match="bytes a second, slower than the 16384 attest waits for"):
        if what == "manifest":
            client.manifest(REPOSITORY, digest, accept=MEDIA_OCI_MANIFEST)
        else:
            list(client.stream_blob(REPOSITORY, digest, 1000))
    assert time.monotonic() - started < 10
    for pool in client._pools.values():  # hang up, so the registry's writer stops
        pool.clear()


def test_an_unwanted_body_without_end_is_not_read_on(hostile_registry: HostileRegistry) -> None:
    """A 404 (no referrers API), a redirect or a challenge says all it says in its status: its body is read up to
    4096 bytes, paced, and a longer one ends the connection, never read to its end (urllib3's drain read on as long
    as a registry sent, and a body without end held attest forever)."""
    from attest.registries.client import Registry

    total, chunk = 64 * 1024 * 1024, b"x" * (256 * 1024)

    def endless() -> Iterator[bytes]:
        for _ in range(total // len(chunk)):
            yield chunk

    digest = _digest(b"subject")
    route = hostile_registry.route("GET", f"/v2/{REPOSITORY}/referrers/{digest}", 404, body=endless, length=total)
    client = Registry(hostile_registry.address, insecure=[hostile_registry.address], env={"HOME": "/nonexistent"})
    started = time.monotonic()
    assert client.referrers(REPOSITORY, digest, accept=MEDIA_OCI_INDEX) is None  # no referrers API: fall back
    assert time.monotonic() - started < 5
    assert route.sent < total // 4, f"the registry had to send {route.sent} of {total} bytes"
    for pool in client._pools.values():
        pool.clear()


@pytest.mark.parametrize("media_type", [["x"], {"a": 1}, 7], ids=["list", "object", "number"])
def test_a_manifest_whose_media_type_is_no_string_is_malformed_not_an_internal_error(media_type: object) -> None:
    """A registry chooses what a tag or the referrers API answers: a ``mediaType`` that is a list or an object was a
    TypeError (unhashable), exit 70; it is a manifest of no known media type (exit 1, one sentence)."""
    from verify.errors import MalformedEvidence
    from verify.formats.oci import parse_manifest

    data = json.dumps({"schemaVersion": 2, "mediaType": media_type, "manifests": []}).encode()
    with pytest.raises(MalformedEvidence, match="which is not an image manifest or index"):
        parse_manifest(data, what="the manifest of web:v1")
