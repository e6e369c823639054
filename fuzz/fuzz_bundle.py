"""Fuzz target: Sigstore bundles, through verify.evidence (strict JSON, shape) and verify.sigstore
(sigstore-python's model, keyless verification against the pinned production root, and key-signed
message signatures against a pinned key).

For any input: returns or raises VerifyError; anything else (a pydantic, protobuf or cryptography
exception escaping the translation in verify.sigstore) is a finding.

    python fuzz/fuzz_bundle.py -max_total_time=60 fuzz/.work/bundle fuzz/corpus/bundle
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import sys

import _common
import atheris

with atheris.instrument_imports(include=["verify"]):
    from verify.errors import VerifyError
    from verify.evidence import Evidence, load_evidence
    from verify.policy import Policy, ProvenanceRules
    from verify.sigstore import make_bundle_verifier, sigstore_identity
    from verify.trust import Identity, load_public_key
    from verify.verifier import verify_artifact

logging.getLogger("sigstore").addHandler(logging.NullHandler())
logging.getLogger("sigstore").propagate = False

_ROOT = _common.ROOT / "tests" / "assets" / "conformance" / "trusted_root.production.json"
_SHA256 = hashlib.sha256(_common.ARTIFACT).hexdigest()
_POLICY = Policy(
    identities={"dev": Identity(name="dev", keys=(load_public_key(_common.public_pem(), name="dev"),),
                                sigstore=(sigstore_identity(issuer=None, github_repo="acme/app"),
                                          sigstore_identity(issuer="https://token.actions.githubusercontent.com",
                                                            identity_regexp=".*")))},
    provenance=ProvenanceRules(signed_by=("dev",)))
_VERIFIER = make_bundle_verifier(trusted_root=_ROOT if _ROOT.is_file() else None)


def test_one_input(data: bytes) -> None:
    try:
        items = load_evidence(data, source="fuzz.sigstore.json")
    except VerifyError:
        return
    for item in items:
        if isinstance(item, Evidence):
            _ = item.has_certificate
    with contextlib.suppress(VerifyError):
        verify_artifact("fuzz", items, policy=_POLICY, digests=lambda: {"sha256": _SHA256},
                        bundle_verifier=_VERIFIER)


if __name__ == "__main__":
    _common.run(test_one_input, sys.argv)
