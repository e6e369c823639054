"""A store that answers differently each time it is read (issue 17, finding 4, the last class).

A directory store (a real ``LocalStore`` over a real folder) whose folder is rewritten before every
listing, and between the listing and the reading of each file, by a second writer: the provenance is
there, tampered, forged by another key, replaced by junk, removed, or joined by a forgery; the blake3
index is right, names another artefact's folder, or is gone. Whatever sequence the store goes
through, the gate passes only on the bytes of the good provenance, and a VSA it signs names exactly
those bytes; when no state of the store held the good provenance, it refuses.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import blake3
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import attest.stores
from attest.gate import EmitRequest, GateRequest, run_gate
from attest.stores.local import LocalStore
from tests.conftest import KeyPair, make_keypair
from tests.factory import BUILDER, provenance
from verify.errors import EvidenceRejected
from verify.formats.envelope import Envelope
from verify.request import GateRules

DATA = b"release-1 bytes\n"
SHA256 = hashlib.sha256(DATA).hexdigest()
BLAKE3 = blake3.blake3(DATA).hexdigest()
STATES = ["good", "tampered", "forged", "junk", "gone", "good+forged"]
INDEX = ["right", "elsewhere", "gone"]


class ChangingStore(LocalStore):
    """A real directory store whose folder a second writer rewrites before each read."""

    def __init__(self, root: Path, lines: dict[str, bytes], states: list[str], index: list[str]) -> None:
        super().__init__(root)
        self.lines, self.states, self.index = lines, list(states), list(index)
        self.seen: list[str] = []

    def _write(self) -> None:
        state = self.states.pop(0) if self.states else self.seen[-1]
        self.seen.append(state)
        folder = self.root / "sha256" / SHA256
        folder.mkdir(parents=True, exist_ok=True)
        for old in folder.glob("*.intoto.jsonl"):
            old.unlink()
        for part in state.split("+"):
            if part != "gone":
                (folder / f"{part}.intoto.jsonl").write_bytes(self.lines[part])

    def sha256_for(self, blake3_hex: str) -> str | None:
        entry = self.index.pop(0) if self.index else "right"
        (self.root / "blake3").mkdir(exist_ok=True)
        target = self.root / "blake3" / BLAKE3
        if entry == "gone":
            target.unlink(missing_ok=True)
        else:
            target.write_text((SHA256 if entry == "right" else "ab" * 32) + "\n")
        return super().sha256_for(blake3_hex)

    def attestations(self, sha256: str) -> Iterator[tuple[str, bytes | EvidenceRejected]]:
        self._write()
        listed = super().attestations(sha256)
        for first in listed:
            self._write()  # between the listing and the reading: the writer is faster than the reader
            yield first
            yield from listed
            return


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, KeyPair], dict[str, bytes]]:
    root = tmp_path_factory.mktemp("rereads")
    keys = {name: make_keypair(root, name) for name in ("dev", "stg", "other")}
    (root / "app.tar.gz").write_bytes(DATA)
    good = provenance(keys["dev"].private, subjects={"app.tar.gz": DATA}).to_json_line()
    tampered = json.loads(good)  # the good signatures over another statement's payload
    tampered["payload"] = Envelope.from_json(provenance(keys["other"].private, subjects={"app.tar.gz": DATA},
                                                        commit="f" * 40).to_json_line()).to_dict()["payload"]
    lines = {"good": good, "tampered": json.dumps(tampered).encode() + b"\n",
             "forged": provenance(keys["other"].private, subjects={"app.tar.gz": DATA}).to_json_line(),
             "junk": b"{not json\n"}
    (root / "policy.yaml").write_text(f"""\
version: 1
identities:
  dev-build: {{keys: ["{keys['dev'].public}"]}}
  stg-verifier: {{keys: ["{keys['stg'].public}"]}}
provenance:
  signed-by: [dev-build]
  builders: ["{BUILDER}"]
stages:
  stg: {{verifier: stg-verifier}}
""")
    return root, keys, lines


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(states=st.lists(st.sampled_from(STATES), min_size=1, max_size=6),
       index=st.lists(st.sampled_from(INDEX), max_size=3), emit=st.booleans())
def test_a_store_that_changes_between_reads_passes_only_on_the_good_bytes(
        world: tuple[Path, dict[str, KeyPair], dict[str, bytes]], tmp_path_factory: pytest.TempPathFactory,
        monkeypatch: pytest.MonkeyPatch, states: list[str], index: list[str], emit: bool) -> None:
    root, keys, lines = world
    folder = tmp_path_factory.mktemp("store")
    store = ChangingStore(folder, lines, states, index)
    monkeypatch.setattr(attest.stores, "from_uri", lambda uri, **_: store)
    out = tmp_path_factory.mktemp("out") / "vsa.intoto.jsonl"  # (never inside the store: refused)
    request = GateRequest(artifact=str(root / "app.tar.gz"), store=str(folder), policy=root / "policy.yaml",
                          rules=GateRules(stage="stg" if emit else None),
                          emit=EmitRequest(output=out, signer_uri=str(keys["stg"].private)) if emit else None)
    good = hashlib.sha256(lines["good"].rstrip(b"\n")).hexdigest()
    try:
        outcome = run_gate(request)
    except EvidenceRejected:
        assert not out.exists()
        return
    assert any("good" in state for state in store.seen), store.seen  # never a pass without the good bytes
    verdict: Any = outcome.verdict
    assert verdict.candidate.evidence.digest == good
    if emit:
        vsa = json.loads(Envelope.from_json(out.read_bytes()).payload)
        assert [i["digest"]["sha256"] for i in vsa["predicate"]["inputAttestations"]] == [good]
