"""Bundles written by ``attest build`` verify with sigstore-js (``@sigstore/verify``), a second client.

Key-signed bundles are checked with the public key as key-based trust material (no CA, no logs,
no timestamps required); keyless bundles with the local services' trusted root and a pinned
identity. Needs Node.js and npm; the package is installed once into pytest's cache (or a temporary
directory), and the tests skip, saying why, when either is missing or the install fails.
"""

from __future__ import annotations

import base64
import fcntl
import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import AttestRunner, KeyPair, make_keypair, missing_tool
from tests.interop.test_keyless_build import ALICE, ISSUER, keyless_build
from tests.sigstore_infra.fixture import SigstoreLocal
from verify.trust import load_public_key_file

#: The newest @sigstore/verify that supports Node 20 (4.x requires Node >= 22.22).
SIGSTORE_JS_VERSION = "3.1.0"
SCRIPT = Path(__file__).parent / "js" / "verify_bundle.js"


@pytest.fixture(scope="session")
def sigstore_js(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory holding node_modules/@sigstore/verify at the pinned version."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        missing_tool("Node.js and npm are not installed (Debian: apt-get install -y nodejs npm), so sigstore-js "
                     "cannot check attest's bundles")
    version = subprocess.run([node, "--version"], capture_output=True, text=True, check=False).stdout.strip()
    match = re.fullmatch(r"v(\d+)\.(\d+)\.\d+", version)
    if match is None or (int(match[1]), int(match[2])) < (20, 17):
        missing_tool(f"@sigstore/verify {SIGSTORE_JS_VERSION} needs Node >= 20.17; this is "
                    f"{version or 'an unknown version'}")
    cache = getattr(request.config, "cache", None)
    directory = (cache.mkdir(f"sigstore-js-{SIGSTORE_JS_VERSION}") if cache is not None
                 else tmp_path_factory.mktemp("sigstore-js"))
    installed = directory / "node_modules" / "@sigstore" / "verify" / "package.json"
    # one install at a time: pytest-xdist's workers share pytest's cache
    with (directory.parent / f"{directory.name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (installed.is_file() and json.loads(installed.read_text())["version"] == SIGSTORE_JS_VERSION):
            install = [npm, "install", "--no-audit", "--no-fund", "--save-exact", "--prefix", str(directory),
                       f"@sigstore/verify@{SIGSTORE_JS_VERSION}"]
            done = subprocess.run(install, capture_output=True, text=True, timeout=300, check=False)
            if done.returncode != 0:
                reason = (done.stderr.strip().splitlines() or ["no output"])[-1]
                missing_tool(f"cannot install @sigstore/verify@{SIGSTORE_JS_VERSION} from npm: {reason}")
    return directory


def sigstore_js_verify(modules: Path, bundle: Path, *args: str | Path) -> dict[str, Any]:
    """Run the Node verifier; its verdict as a dict (``verified`` true or false)."""
    done = subprocess.run(["node", str(SCRIPT), str(modules), str(bundle), *map(str, args)],
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode in (0, 1), f"sigstore-js could not run: {done.stderr}"
    verdict: dict[str, Any] = json.loads(done.stdout)
    assert verdict["verified"] is (done.returncode == 0)
    return verdict


def _key_build(repo: Path, attest: AttestRunner, key: KeyPair) -> tuple[Path, str]:
    result = attest("build", "--signer", key.private, "--bundle", "--artifact", "build.py", cwd=repo)
    assert result.code == 0, result
    return repo / "provenance.sigstore.json", load_public_key_file(key.public).fingerprint


@pytest.mark.parametrize("key_type", ["ecdsa-p256", "ed25519"])
def test_key_bundle_verifies_with_sigstore_js(sigstore_js: Path, repo: Path, tmp_path: Path,
                                              attest: AttestRunner, key_type: str) -> None:
    key = make_keypair(tmp_path, "dev", key_type)
    bundle, hint = _key_build(repo, attest, key)

    verdict = sigstore_js_verify(sigstore_js, bundle, "key", hint, key.public)

    assert verdict == {"verified": True, "identity": None}


def test_sigstore_js_rejects_an_altered_statement(sigstore_js: Path, repo: Path, keys: dict[str, KeyPair],
                                                  attest: AttestRunner, tmp_path: Path) -> None:
    bundle, hint = _key_build(repo, attest, keys["dev"])
    document = json.loads(bundle.read_text())
    statement = json.loads(base64.b64decode(document["dsseEnvelope"]["payload"]))
    statement["subject"][0]["name"] = "build-backdoored.py"
    document["dsseEnvelope"]["payload"] = base64.b64encode(json.dumps(statement).encode()).decode()
    altered = tmp_path / "altered.sigstore.json"
    altered.write_text(json.dumps(document))

    verdict = sigstore_js_verify(sigstore_js, altered, "key", hint, keys["dev"].public)

    assert verdict["verified"] is False
    assert verdict["code"] == "SIGNATURE_ERROR"


def test_sigstore_js_rejects_another_key(sigstore_js: Path, repo: Path, keys: dict[str, KeyPair],
                                         attest: AttestRunner) -> None:
    bundle, hint = _key_build(repo, attest, keys["dev"])

    # the hint names the dev key, but the trusted key under that name is another one
    impostor = sigstore_js_verify(sigstore_js, bundle, "key", hint, keys["other"].public)
    # the right key, trusted under another name, is not found through the hint
    elsewhere = sigstore_js_verify(sigstore_js, bundle, "key", "another-hint", keys["dev"].public)

    assert (impostor["verified"], impostor["code"]) == (False, "SIGNATURE_ERROR")
    assert (elsewhere["verified"], elsewhere["code"]) == (False, "PUBLIC_KEY_ERROR")


def test_keyless_bundle_verifies_with_sigstore_js(sigstore_js: Path, repo: Path, attest: AttestRunner,
                                                  sigstore_local: SigstoreLocal, tmp_path: Path) -> None:
    build = keyless_build(repo, attest, sigstore_local, sigstore_local.mint_token(ALICE, ISSUER))
    bundle = repo / "provenance.sigstore.json"
    # sigstore-js finds the log that signed a checkpoint by matching the signer's name against the log's
    # baseUrl (Rekor names itself by its host). The local log calls itself by a name, not by its URL,
    # so sigstore-js is given a copy of the local trusted root whose log baseUrl carries that name; the
    # log's key, and so every signature check, is unchanged.
    checkpoint = build.document["verificationMaterial"]["tlogEntries"][0]["inclusionProof"]["checkpoint"]
    log_name = re.search(r"\n\u2014 (\S+) ", checkpoint["envelope"])
    assert log_name is not None
    root = json.loads(sigstore_local.trusted_root_path.read_text())
    for log in root["tlogs"]:
        log["baseUrl"] = f"https://{log_name[1]}"
    root_for_js = tmp_path / "trusted_root.js.json"
    root_for_js.write_text(json.dumps(root))

    verdict = sigstore_js_verify(sigstore_js, bundle, "keyless", root_for_js, ALICE, ISSUER)
    wrong = sigstore_js_verify(sigstore_js, bundle, "keyless", root_for_js, "mallory@example.com", ISSUER)

    assert verdict["verified"] is True
    assert verdict["identity"] == {"subjectAlternativeName": ALICE, "extensions": {"issuer": ISSUER}}
    assert (wrong["verified"], wrong["code"]) == (False, "UNTRUSTED_SIGNER_ERROR")
