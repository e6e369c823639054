"""A stop signal unwinds every command, not only build: one sentence, exit 128 + signal, nothing left behind."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from attest.signers import from_uri, sign_envelope
from tests.conftest import _clean_env, make_keypair


def test_sigterm_while_verify_hashes_is_a_clean_stop(tmp_path: Path) -> None:
    big = tmp_path / "big.bin"
    with big.open("wb") as f:
        f.truncate(2 * 1024 ** 3)  # sparse: hashing it with sha256 takes seconds, not disk space
    pair = make_keypair(tmp_path, "dev")
    statement = {"_type": "https://in-toto.io/Statement/v1", "predicateType": "https://slsa.dev/provenance/v1",
                 "subject": [{"name": "big.bin", "digest": {"sha256": "0" * 64}}],
                 "predicate": {"buildDefinition": {"buildType": "t", "externalParameters": {}},
                               "runDetails": {"builder": {"id": "t"}}}}
    envelope = sign_envelope(from_uri(str(pair.private)), payload_type="application/vnd.in-toto+json",
                             payload=json.dumps(statement).encode())
    (tmp_path / "e.intoto.jsonl").write_bytes(envelope.to_json_line())
    process = subprocess.Popen([sys.executable, "-m", "attest", "verify", "big.bin", "--attestation", "e.intoto.jsonl",
                                "--key", str(pair.public)], cwd=tmp_path, env=_clean_env(),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(1.5)
    assert process.poll() is None, "verify finished before the signal: make the artefact larger"
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 128 + signal.SIGTERM, (process.returncode, err)
    assert err.strip().startswith("attest: stopped by SIGTERM") and "Traceback" not in err
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".tmp")]
