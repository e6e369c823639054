"""verify.layout: in-toto layouts decided by in-toto's verifylib, every refusal one sentence.

Layouts and links are made here with in-toto's own models and securesystemslib's CryptoSigner (no
build, no subprocess); tests/interop/test_intoto_cli.py runs the same decisions against in-toto-verify.
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from in_toto.models.layout import Inspection, Layout, Step
from in_toto.models.link import Link
from in_toto.models.metadata import Metablock
from securesystemslib.signer import CryptoSigner, SSlibKey

from verify.digests import DigestSet
from verify.errors import (
    DigestMismatch,
    EvidenceRejected,
    InputError,
    MalformedEvidence,
    PolicyError,
    PolicyViolation,
    SignatureInvalid,
    TrustConfigError,
    UnknownEvidence,
)
from verify.layout import LayoutVerdict, load_layout, verify_layout

PRODUCT = b"the artefact"
DIGESTS = DigestSet({"sha256": hashlib.sha256(PRODUCT).hexdigest()})
ACCEPTED = ("sha256", "blake3")


@dataclass
class Party:
    """A key pair, as a CryptoSigner, an in-toto key dictionary and a PEM file."""

    signer: CryptoSigner
    key: dict[str, Any]
    pem: Path

    @classmethod
    def new(cls, directory: Path, name: str) -> Party:
        private = ec.generate_private_key(ec.SECP256R1())
        public = SSlibKey.from_crypto(private.public_key())
        pem = directory / f"{name}.pub.pem"
        pem.write_bytes(private.public_key().public_bytes(serialization.Encoding.PEM,
                                                          serialization.PublicFormat.SubjectPublicKeyInfo))
        return cls(CryptoSigner(private, public), {**public.to_dict(), "keyid": public.keyid}, pem)

    @property
    def keyid(self) -> str:
        return str(self.key["keyid"])


@pytest.fixture
def parties(tmp_path: Path) -> dict[str, Party]:
    return {name: Party.new(tmp_path, name) for name in ("owner", "dev", "dev2", "other")}


def _step(functionaries: list[Party], **fields: Any) -> Step:
    return Step(name="build", pubkeys=[p.keyid for p in functionaries], expected_command=["make"],
                expected_materials=fields.pop("materials", [["ALLOW", "*"]]),
                expected_products=fields.pop("products", [["CREATE", "app.tar.gz"], ["DISALLOW", "*"]]), **fields)


def _write_layout(tmp_path: Path, parties: dict[str, Party], *, steps: list[Step] | None = None,
                  signer: Party | None = None, expires: datetime | None = None,
                  inspect: list[Inspection] | None = None) -> Path:
    functionaries = {p.keyid: p.key for p in (parties["dev"], parties["dev2"])}
    layout = Layout(keys=functionaries, steps=[_step([parties["dev"]])] if steps is None else steps,
                    inspect=inspect or [],
                    expires=(expires or datetime.now(UTC) + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ"))
    metablock = Metablock(signed=layout)
    metablock.create_signature((signer or parties["owner"]).signer)
    path = tmp_path / "root.layout"
    metablock.dump(str(path))
    return path


def _write_link(tmp_path: Path, party: Party, *, products: dict[str, Any] | None = None, command: str = "make",
                name: str = "build", signed_by: Party | None = None) -> Path:
    link = Link(name=name, materials={"src.c": {"sha256": "0" * 64}}, command=[command],
                products={"app.tar.gz": {"sha256": DIGESTS.sha256}} if products is None else products)
    metablock = Metablock(signed=link)
    metablock.create_signature((signed_by or party).signer)
    path = tmp_path / f"{name}.{party.keyid[:8]}.link"
    metablock.dump(str(path))
    return path


def _verify(tmp_path: Path, parties: dict[str, Party], layout: Path | None = None,
            digests: DigestSet = DIGESTS) -> LayoutVerdict:
    loaded = load_layout(layout or tmp_path / "root.layout", [parties["owner"].pem])
    return verify_layout(loaded, link_dir=tmp_path, digests=digests, accepted=ACCEPTED)


# --- passing ---------------------------------------------------------------------------------------------------

def test_a_good_chain_passes_and_names_the_product(tmp_path: Path, parties: dict[str, Party]) -> None:
    layout = _write_layout(tmp_path, parties)
    _write_link(tmp_path, parties["dev"])

    verdict = _verify(tmp_path, parties, layout)

    assert verdict.product == "app.tar.gz"
    assert verdict.steps == (("build", (parties["dev"].keyid,)),)
    assert verdict.warnings == ()
    assert verdict.to_dict()["steps"] == [{"name": "build", "links": [parties["dev"].keyid]}]


def test_another_command_than_expected_is_a_warning_as_in_in_toto(tmp_path: Path, parties: dict[str, Party]) -> None:
    _write_layout(tmp_path, parties)
    _write_link(tmp_path, parties["dev"], command="gmake")

    verdict = _verify(tmp_path, parties)

    assert len(verdict.warnings) == 1
    assert "step 'build' ran ['gmake']" in verdict.warnings[0]


# --- (0) what cannot be used: configuration errors ----------------------------------------------------------------

def test_a_layout_needs_a_pinned_key(tmp_path: Path, parties: dict[str, Party]) -> None:
    with pytest.raises(TrustConfigError, match="needs a pinned layout key"):
        load_layout(_write_layout(tmp_path, parties), [])


def test_an_unreadable_layout_key_is_a_trust_config_error(tmp_path: Path, parties: dict[str, Party]) -> None:
    with pytest.raises(TrustConfigError, match="cannot read public key"):
        load_layout(_write_layout(tmp_path, parties), [tmp_path / "none.pem"])


def test_a_key_in_toto_cannot_use_is_a_trust_config_error(tmp_path: Path, parties: dict[str, Party],
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(cls: type, /, *_: object, **__: object) -> None:
        raise ValueError("unsupported key")

    layout = _write_layout(tmp_path, parties)
    monkeypatch.setattr(SSlibKey, "from_crypto", classmethod(refuse))

    with pytest.raises(TrustConfigError, match="in-toto cannot use layout key"):
        load_layout(layout, [parties["owner"].pem])


def test_a_missing_layout_is_an_input_error(tmp_path: Path, parties: dict[str, Party]) -> None:
    with pytest.raises(InputError, match=r"cannot read in-toto layout .*No such file"):
        load_layout(tmp_path / "none.layout", [parties["owner"].pem])


def test_a_layout_that_is_a_directory_is_an_input_error(tmp_path: Path, parties: dict[str, Party]) -> None:
    with pytest.raises(InputError, match="not a regular file"):
        load_layout(tmp_path, [parties["owner"].pem])


@pytest.mark.parametrize(("text", "reason"), [("{nope", "is not valid JSON"),
                                              ("[]", "is not in-toto metadata \\(a JSON object\\)"),
                                              ('{"signed": {"_type": "other"}}', "is not in-toto metadata"),
                                              ('{"signatures": [], "signed": {"_type": "layout"}}',
                                               "is not in-toto metadata")])
def test_a_layout_that_does_not_parse_is_a_policy_error(tmp_path: Path, parties: dict[str, Party], text: str,
                                                        reason: str) -> None:
    (tmp_path / "root.layout").write_text(text)

    with pytest.raises(PolicyError, match=reason):
        load_layout(tmp_path / "root.layout", [parties["owner"].pem])


def test_a_link_given_as_layout_is_a_policy_error(tmp_path: Path, parties: dict[str, Party]) -> None:
    link = _write_link(tmp_path, parties["dev"])

    with pytest.raises(PolicyError, match="is in-toto link metadata, not a layout"):
        load_layout(link, [parties["owner"].pem])


def test_a_layout_without_steps_proves_nothing(tmp_path: Path, parties: dict[str, Party]) -> None:
    with pytest.raises(PolicyError, match="has no steps"):
        load_layout(_write_layout(tmp_path, parties, steps=[]), [parties["owner"].pem])


def test_a_layout_that_authorises_a_small_order_ed25519_key_is_refused(tmp_path: Path,
                                                                       parties: dict[str, Party]) -> None:
    """With the identity point as a functionary's key, a link 'signed' with R = identity and S = 0 verifies, and no
    private key exists: the layout authorises anyone."""
    nobody = {"keytype": "ed25519", "scheme": "ed25519", "keyval": {"public": "01" + "00" * 31}}
    keyid = hashlib.sha256(b"nobody").hexdigest()
    layout = Layout(keys={keyid: {**nobody, "keyid": keyid}},
                    steps=[Step(name="build", pubkeys=[keyid], expected_command=["make"])],
                    expires=(datetime.now(UTC) + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ"))
    metablock = Metablock(signed=layout)
    metablock.create_signature(parties["owner"].signer)
    metablock.dump(str(tmp_path / "root.layout"))
    with pytest.raises(PolicyError, match="is an Ed25519 key of small order"):
        load_layout(tmp_path / "root.layout", [parties["owner"].pem])


def test_inspections_are_refused_never_run(tmp_path: Path, parties: dict[str, Party]) -> None:
    marker = tmp_path / "ran"
    inspection = Inspection(name="untar", run=["touch", str(marker)])

    with pytest.raises(PolicyError, match=r"has inspections \('untar'\).*in-toto-verify"):
        load_layout(_write_layout(tmp_path, parties, inspect=[inspection]), [parties["owner"].pem])
    assert not marker.exists()


# --- (1)-(7) rejections -------------------------------------------------------------------------------------------

def test_a_layout_not_signed_by_the_pinned_key_is_rejected(tmp_path: Path, parties: dict[str, Party]) -> None:
    _write_layout(tmp_path, parties, signer=parties["other"])
    _write_link(tmp_path, parties["dev"])

    with pytest.raises(SignatureInvalid, match=f"is not signed by layout key {parties['owner'].pem}"):
        _verify(tmp_path, parties)


def test_an_expired_layout_is_rejected(tmp_path: Path, parties: dict[str, Party]) -> None:
    _write_layout(tmp_path, parties, expires=datetime.now(UTC) - timedelta(seconds=1))
    _write_link(tmp_path, parties["dev"])

    with pytest.raises(PolicyViolation, match=r"expired at .*its owner must sign a new one"):
        _verify(tmp_path, parties)


def test_a_missing_link_is_rejected(tmp_path: Path, parties: dict[str, Party]) -> None:
    _write_layout(tmp_path, parties)

    with pytest.raises(EvidenceRejected, match=r"step 'build' needs 1 link\(s\) .* holds 0"):
        _verify(tmp_path, parties)


def test_a_link_that_cannot_be_read_is_rejected(tmp_path: Path, parties: dict[str, Party]) -> None:
    _write_layout(tmp_path, parties)
    (tmp_path / f"build.{parties['dev'].keyid[:8]}.link").mkdir()

    with pytest.raises(EvidenceRejected, match=r"in-toto link .*not a regular file"):
        _verify(tmp_path, parties)


@pytest.mark.parametrize(("text", "reason"), [("{broken", "is not valid JSON"),
                                              ('{"signed": {"_type": "nope"}, "signatures": []}',
                                               "is not in-toto metadata \\(FormatError")])
def test_a_malformed_link_is_rejected(tmp_path: Path, parties: dict[str, Party], text: str, reason: str) -> None:
    _write_layout(tmp_path, parties)
    _write_link(tmp_path, parties["dev"]).write_text(text)

    with pytest.raises(MalformedEvidence, match=f"in-toto link .* {reason}"):
        _verify(tmp_path, parties)


def test_a_link_signed_with_gpg_is_rejected_before_in_toto_reads_it(tmp_path: Path, parties: dict[str, Party]) -> None:
    """The link directory is untrusted: a signature shaped as GPG's sent in-toto down its GPG code (KeyError,
    exit 70)."""
    _write_layout(tmp_path, parties)
    path = _write_link(tmp_path, parties["dev"])
    data = json.loads(path.read_text())
    data["signatures"] = [{"keyid": parties["dev"].keyid, "signature": "00", "other_headers": "00"}]
    path.write_text(json.dumps(data))

    with pytest.raises(MalformedEvidence, match="is signed with GPG, which attest does not verify"):
        _verify(tmp_path, parties)


@pytest.mark.parametrize("payload", [b"not json", b"\xff\xfe", b"[1, 2]", b'{"_type": "nope"}'])
def test_a_dsse_layout_whose_payload_is_no_layout_is_a_policy_error(tmp_path: Path, parties: dict[str, Party],
                                                                     payload: bytes) -> None:
    """A payload that is not JSON, not UTF-8, a list or of an unknown type was an internal error (exit 70)."""
    envelope = {"payloadType": "application/vnd.in-toto+json", "payload": base64.b64encode(payload).decode(),
                "signatures": [{"keyid": parties["owner"].keyid, "sig": base64.b64encode(b"x").decode()}]}
    (tmp_path / "root.layout").write_text(json.dumps(envelope))

    with pytest.raises(PolicyError, match="carries no in-toto layout or link"):
        load_layout(tmp_path / "root.layout", [parties["owner"].pem])


def test_a_step_whose_threshold_is_below_one_is_a_policy_error(tmp_path: Path, parties: dict[str, Party]) -> None:
    with pytest.raises(PolicyError, match="step 'build' has a threshold below 1"):
        load_layout(_write_layout(tmp_path, parties, steps=[_step([parties["dev"]], threshold=0)]),
                    [parties["owner"].pem])


def test_a_link_signed_by_another_key_is_rejected(tmp_path: Path, parties: dict[str, Party]) -> None:
    _write_layout(tmp_path, parties)
    _write_link(tmp_path, parties["dev"], signed_by=parties["other"])

    with pytest.raises(SignatureInvalid, match=r"validly signed .* not authorise, or changed after it was signed"):
        _verify(tmp_path, parties)


def test_a_changed_link_is_rejected(tmp_path: Path, parties: dict[str, Party]) -> None:
    _write_layout(tmp_path, parties)
    path = _write_link(tmp_path, parties["dev"])
    data = json.loads(path.read_text())
    data["signed"]["products"]["app.tar.gz"]["sha256"] = "1" * 64
    path.write_text(json.dumps(data))

    with pytest.raises(SignatureInvalid):
        _verify(tmp_path, parties)


def test_a_sublayout_is_not_followed(tmp_path: Path, parties: dict[str, Party]) -> None:
    _write_layout(tmp_path, parties)
    sub = Metablock(signed=Layout(steps=[_step([parties["dev"]])]))
    sub.create_signature(parties["dev"].signer)
    sub.dump(str(tmp_path / f"build.{parties['dev'].keyid[:8]}.link"))

    with pytest.raises(UnknownEvidence, match="is a sublayout, which attest does not follow"):
        _verify(tmp_path, parties)


def test_functionaries_who_disagree_are_rejected(tmp_path: Path, parties: dict[str, Party]) -> None:
    _write_layout(tmp_path, parties, steps=[_step([parties["dev"], parties["dev2"]], threshold=2)])
    _write_link(tmp_path, parties["dev"])
    _write_link(tmp_path, parties["dev2"], products={"app.tar.gz": {"sha256": "2" * 64}})

    with pytest.raises(PolicyViolation, match="functionaries of a step disagree"):
        _verify(tmp_path, parties)


def test_a_rule_violation_is_rejected_in_one_line(tmp_path: Path, parties: dict[str, Party]) -> None:
    _write_layout(tmp_path, parties)
    _write_link(tmp_path, parties["dev"], products={"app.tar.gz": {"sha256": DIGESTS.sha256},
                                                     "extra.so": {"sha256": "3" * 64}})

    with pytest.raises(PolicyViolation) as raised:
        _verify(tmp_path, parties)
    assert str(raised.value).endswith("'DISALLOW *' matched the following artifacts: ['extra.so']")


def test_other_in_toto_refusals_are_rejections(tmp_path: Path, parties: dict[str, Party],
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    from in_toto import verifylib
    from in_toto.exceptions import PrefixError

    def refuse(*_: object) -> None:
        raise PrefixError("something in-toto refuses")

    _write_layout(tmp_path, parties)
    _write_link(tmp_path, parties["dev"])
    monkeypatch.setattr(verifylib, "reduce_chain_links", refuse)

    with pytest.raises(EvidenceRejected, match=r"in-toto verification failed \(PrefixError: something"):
        _verify(tmp_path, parties)


def test_an_artefact_that_is_no_product_of_the_last_step_is_rejected(tmp_path: Path,
                                                                    parties: dict[str, Party]) -> None:
    _write_layout(tmp_path, parties)
    _write_link(tmp_path, parties["dev"])
    other = DigestSet({"sha256": hashlib.sha256(b"another artefact").hexdigest()})

    with pytest.raises(DigestMismatch, match=r"is not among the 1 product\(s\) of its last step 'build'"):
        _verify(tmp_path, parties, digests=other)


def test_a_product_matches_only_on_an_accepted_algorithm(tmp_path: Path, parties: dict[str, Party]) -> None:
    _write_layout(tmp_path, parties)
    _write_link(tmp_path, parties["dev"])
    loaded = load_layout(tmp_path / "root.layout", [parties["owner"].pem])

    with pytest.raises(DigestMismatch):
        verify_layout(loaded, link_dir=tmp_path, digests=DIGESTS, accepted=("blake3",))
