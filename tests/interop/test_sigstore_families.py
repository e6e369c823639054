"""Issue 11: real bundles of each family other projects sign, verified offline, each with its negative twins.

Sources and what each bundle is: tests/assets/sigstore/README.md. Each family passes with the
identity that signed it, and is refused with a wrong identity, a wrong issuer, another artefact,
and a tampered statement. Families that need a Rekor ``intoto/0.0.2`` entry or a v0.1 bundle with
an inclusion promise only verify since attest verifies natively (sigstore-python 4.5.1 cannot).
"""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.conftest import ROOT

ASSETS = ROOT / "tests" / "assets" / "sigstore"
GITHUB = "https://token.actions.githubusercontent.com"


@dataclass(frozen=True)
class Family:
    bundle: str
    artefact: str
    identity: tuple[str, ...]
    """The flags that pin the identity that signed it."""
    wrong_identity: tuple[str, ...]
    wrong_issuer: tuple[str, ...]
    extra: tuple[str, ...] = ()
    """What else the family needs (a predicate type other than SLSA provenance)."""
    marks: tuple[pytest.MarkDecorator, ...] = field(default=())


FAMILIES = {
    "pypi-publish": Family(
        bundle="pypi-attestations-0.0.19.publish.sigstore.json", artefact="pypi_attestations-0.0.19.tar.gz",
        identity=("--github-repo", "trailofbits/pypi-attestations"),
        wrong_identity=("--github-repo", "trailofbits/rfc8785.py"),
        wrong_issuer=("--certificate-identity", "https://github.com/trailofbits/pypi-attestations/.github/workflows/"
                      "release.yml@refs/tags/v0.0.19", "--certificate-oidc-issuer", "https://gitlab.com"),
        extra=("--predicate-type", "https://docs.pypi.org/attestations/publish/v1")),
    "npm-provenance": Family(
        bundle="npm-gundam-visor-1.0.1.provenance.sigstore.json", artefact="npm-gundam-visor-1.0.1.tgz",
        identity=("--github-repo", "ramonpetgrave64/gundam-visor", "--source-ref", "refs/tags/v1.0.1"),
        wrong_identity=("--github-repo", "ramonpetgrave64/other"),
        wrong_issuer=("--certificate-identity", "https://github.com/ramonpetgrave64/gundam-visor/.github/workflows/"
                      "npm-publish.yml@refs/tags/v1.0.1", "--certificate-oidc-issuer", "https://gitlab.com")),
    "slsa-delegator": Family(
        bundle="slsa-delegator-v2.1.0.sigstore.json", artefact="slsa-delegator-v2.1.0-artifact",
        identity=("--signer-workflow", "slsa-framework/slsa-github-generator/.github/workflows/"
                  "delegator_generic_slsa3.yml@refs/tags/v2.1.0", "--github-repo", "slsa-framework/example-package"),
        wrong_identity=("--signer-workflow", "slsa-framework/slsa-github-generator/.github/workflows/"
                        "generator_generic_slsa3.yml", "--github-repo", "slsa-framework/example-package"),
        wrong_issuer=("--certificate-identity", "https://github.com/slsa-framework/slsa-github-generator/.github/"
                      "workflows/delegator_generic_slsa3.yml@refs/tags/v2.1.0", "--certificate-oidc-issuer",
                      "https://gitlab.com")),
    "v0.1-message": Family(
        bundle="sigstore-js-v0.1-message.sigstore.json", artefact="sigstore-js-v0.1-message-artifact.txt",
        identity=("--certificate-identity", "brian@dehamer.com", "--certificate-oidc-issuer",
                  "https://github.com/login/oauth"),
        wrong_identity=("--certificate-identity", "someone@example.com", "--certificate-oidc-issuer",
                        "https://github.com/login/oauth"),
        wrong_issuer=("--certificate-identity", "brian@dehamer.com", "--certificate-oidc-issuer", GITHUB)),
}


def verify(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "attest", "verify", *map(str, args)], capture_output=True,
                          text=True, timeout=120)


def _case(name: str, family: Family) -> object:
    return pytest.param(name, family, id=name, marks=family.marks)


@pytest.mark.parametrize(("name", "family"), [_case(n, f) for n, f in FAMILIES.items()])
def test_a_real_bundle_verifies_offline_with_the_identity_that_signed_it(name: str, family: Family) -> None:
    done = verify(ASSETS / family.artefact, "--attestation", ASSETS / family.bundle, *family.identity, *family.extra,
                  "--format", "json")
    assert done.returncode == 0, done
    assert json.loads(done.stdout)["verified"] is True


@pytest.mark.parametrize(("name", "family"), list(FAMILIES.items()), ids=list(FAMILIES))
@pytest.mark.parametrize("twin", ["wrong identity", "wrong issuer", "another artefact"])
def test_its_negative_twins_are_refused(name: str, family: Family, twin: str, tmp_path: Path) -> None:
    artefact: Path = ASSETS / family.artefact
    flags = family.identity
    if twin == "wrong identity":
        flags = family.wrong_identity
    elif twin == "wrong issuer":
        flags = family.wrong_issuer
    else:
        artefact = tmp_path / "other"
        artefact.write_bytes(b"another artefact\n")
    done = verify(artefact, "--attestation", ASSETS / family.bundle, *flags, *family.extra)
    assert done.returncode == 1, done
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr


@pytest.mark.parametrize(("name", "family"), [(n, f) for n, f in FAMILIES.items() if n != "v0.1-message"],
                         ids=[n for n in FAMILIES if n != "v0.1-message"])
def test_a_tampered_statement_is_refused(name: str, family: Family, tmp_path: Path) -> None:
    bundle = json.loads((ASSETS / family.bundle).read_bytes())
    statement = json.loads(base64.b64decode(bundle["dsseEnvelope"]["payload"]))
    statement["subject"][0]["name"] = "tampered"
    bundle["dsseEnvelope"]["payload"] = base64.b64encode(json.dumps(statement).encode()).decode()
    (tmp_path / "tampered.sigstore.json").write_text(json.dumps(bundle))
    done = verify(ASSETS / family.artefact, "--attestation", tmp_path / "tampered.sigstore.json", *family.identity,
                  *family.extra)
    assert done.returncode == 1, done


def test_a_pypi_publish_attestation_is_not_a_provenance_unless_asked_for_by_type() -> None:
    family = FAMILIES["pypi-publish"]
    done = verify(ASSETS / family.artefact, "--attestation", ASSETS / family.bundle, *family.identity)
    assert done.returncode == 1 and "is not a SLSA provenance" in done.stderr, done
    sourced = verify(ASSETS / family.artefact, "--attestation", ASSETS / family.bundle, *family.identity,
                     *family.extra, "--source-uri", "github.com/trailofbits/pypi-attestations")
    assert sourced.returncode == 1 and "need one" in sourced.stderr, sourced  # a rule it cannot show


@pytest.mark.parametrize("field", ["messageDigest", "signature", "logged artefact"])
def test_a_tampered_v01_message_signature_is_refused(field: str, tmp_path: Path) -> None:
    family = FAMILIES["v0.1-message"]
    bundle = json.loads((ASSETS / family.bundle).read_bytes())
    message = bundle["messageSignature"]
    if field == "messageDigest":
        message["messageDigest"]["digest"] = base64.b64encode(bytes(32)).decode()
    elif field == "signature":
        raw = bytearray(base64.b64decode(message["signature"]))
        raw[-1] ^= 1
        message["signature"] = base64.b64encode(bytes(raw)).decode()
    else:  # the log entry says another artefact was signed
        entry = bundle["verificationMaterial"]["tlogEntries"][0]
        body = json.loads(base64.b64decode(entry["canonicalizedBody"]))
        body["spec"]["data"]["hash"]["value"] = "00" * 32
        entry["canonicalizedBody"] = base64.b64encode(json.dumps(body).encode()).decode()
    (tmp_path / "tampered.sigstore.json").write_text(json.dumps(bundle))
    done = verify(ASSETS / family.artefact, "--attestation", tmp_path / "tampered.sigstore.json", *family.identity)
    assert done.returncode == 1, done
    assert done.stderr.count("\n") == 1
