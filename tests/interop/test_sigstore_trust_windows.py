"""Issue 11, item 5: a trusted root's validity windows are compared with the time a bundle was signed.

sigstore-python accepts a log, CT log or CA key whose ``validFor.end`` has passed, whatever the
signing time. These tests take a real GitHub attestation (signed 2024-05-24T19:14:24Z, public-good
Sigstore) and the production trusted root, move one window so that it ends before the signing time,
and check that attest refuses the bundle, offline, while the genuine root still verifies it.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import CONFORMANCE, ROOT
from verify.errors import SignatureInvalid
from verify.formats.evidence import Evidence, load_evidence
from verify.signers import TrustRun, find_signers
from verify.sigstore.identity import sigstore_identity
from verify.sigstore.verifier import make_bundle_verifier
from verify.trust import Identity

ASSETS = ROOT / "tests" / "assets" / "sigstore"
BUNDLE = ASSETS / "gh-reusable-workflow.sigstore.json"
PRODUCTION_ROOT = CONFORMANCE / "trusted_root.production.json"
SIGNER_WORKFLOW = "github/artifact-attestations-workflows/.github/workflows/attest.yml"
REKOR = "wNI9atQGlz+VWfO6LRygH4QUfY/8W4RFwiT5i5WRgB0="  # the log holding the bundle's entry
CTFE = base64.b64encode(bytes.fromhex("dd3d306ac6c7113263191e1c99673702a24a5eb8de3cadff878a72802f29ee8e")).decode()
BEFORE = "2024-05-24T19:14:23Z"  # one second before the entry's integrated time
AT = "2024-05-24T19:14:24Z"


def _signers(root: Path) -> tuple[Identity, ...]:
    [item] = load_evidence(BUNDLE.read_bytes(), source="bundle")
    assert isinstance(item, Evidence)
    gha = Identity(name="gha", sigstore=(sigstore_identity(issuer=None, signer_workflow=SIGNER_WORKFLOW,
                                                          github_repo="malancas/attest-demo"),))
    return find_signers(item, [gha], TrustRun(bundles=make_bundle_verifier(trusted_root=root)))


def _root(tmp_path: Path, change: Callable[[dict[str, Any]], None]) -> Path:
    root = json.loads(PRODUCTION_ROOT.read_bytes())
    change(root)
    path = tmp_path / f"root-{hashlib.sha256(json.dumps(root).encode()).hexdigest()[:8]}.json"
    path.write_text(json.dumps(root))
    return path


def _log(root: dict[str, Any], kind: str, key_id: str) -> dict[str, Any]:
    return next(log for log in root[kind] if log["logId"]["keyId"] == key_id)


def _issuing_authority(root: dict[str, Any]) -> dict[str, Any]:
    """The CA whose chain holds the 'sigstore-intermediate' that issued the bundle's certificate."""
    return next(ca for ca in root["certificateAuthorities"] if "validFor" in ca and "end" not in ca["validFor"])


def test_the_genuine_root_verifies_the_bundle() -> None:
    assert [i.name for i in _signers(PRODUCTION_ROOT)] == ["gha"]


@pytest.mark.parametrize(("what", "change", "words"), [
    ("transparency log key", lambda r: _log(r, "tlogs", REKOR)["publicKey"]["validFor"].update(end=BEFORE),
     "outside the validity of that log's key"),
    ("CT log key", lambda r: _log(r, "ctlogs", CTFE)["publicKey"]["validFor"].update(end=BEFORE),
     "is from a CT log whose key the trusted root trusts only"),
    ("certificate authority", lambda r: _issuing_authority(r)["validFor"].update(end=BEFORE),
     "the certificate authority that issued its certificate is trusted only"),
    ("transparency log key not yet valid", lambda r: _log(r, "tlogs", REKOR)["publicKey"]["validFor"].update(
        start="2024-05-24T19:14:25Z"), "outside the validity of that log's key"),
])
def test_a_key_of_the_trusted_root_outside_its_window_at_signing_time_is_refused(
        tmp_path: Path, what: str, change: Callable[[dict[str, Any]], None], words: str) -> None:
    with pytest.raises(SignatureInvalid, match=words):
        _signers(_root(tmp_path, change))


@pytest.mark.parametrize("kind", ["tlogs", "ctlogs", "ca"])
def test_a_window_that_ends_exactly_at_signing_time_still_holds(tmp_path: Path, kind: str) -> None:
    """Both ends are inclusive."""
    def change(root: dict[str, Any]) -> None:
        if kind == "ca":
            _issuing_authority(root)["validFor"]["end"] = AT
        else:
            _log(root, kind, REKOR if kind == "tlogs" else CTFE)["publicKey"]["validFor"]["end"] = AT

    assert [i.name for i in _signers(_root(tmp_path, change))] == ["gha"]


def test_the_cli_refuses_an_expired_log_key_with_one_sentence(tmp_path: Path) -> None:
    import subprocess
    import sys

    root = _root(tmp_path, lambda r: _log(r, "tlogs", REKOR)["publicKey"]["validFor"].update(end=BEFORE))
    done = subprocess.run([sys.executable, "-m", "attest", "verify", str(ASSETS / "gh-reusable-workflow-artifact.whl"),
                           "--attestation", str(BUNDLE), "--trusted-root", str(root), "--signer-workflow",
                           SIGNER_WORKFLOW, "--github-repo", "malancas/attest-demo"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 1, done
    assert done.stderr.count("\n") == 1 and "outside the validity of that log's key" in done.stderr
