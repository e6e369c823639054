"""Signed attestations for tests, made the way attest makes them.

Statements come from :mod:`attest.provenance` and :mod:`attest.summaries`, signatures from a
PEM private key file through :func:`attest.signers.key.load` and :func:`attest.signers.sign_envelope`:
real keys, real signatures. Every builder takes the key file of the signer and returns the
signed :class:`~verify.formats.envelope.Envelope`; :func:`publish` puts one into a store directory.

    env = provenance(keys["dev"].private, subjects={"dist/app.tar.gz": b"bytes"}, commit=COMMIT)
    publish(store, env)
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any

import blake3

from attest.collect import GitFacts, Lockfile, Platform
from attest.provenance import BuildRecord
from attest.provenance import statement as provenance_statement
from attest.reproduce import Reproduction, Status, SubjectResult, reproduction_statement
from attest.signers import sign_envelope
from attest.signers.key import LocalKeySigner, load
from attest.stores.local import LocalStore
from attest.summaries import approval_statement, stage_uri, vsa_statement
from verify.formats.envelope import INTOTO_PAYLOAD_TYPE, Envelope
from verify.formats.statement import REPRODUCTION_V1

__all__ = [
    "BUILDER", "COMMIT", "LOCKFILE", "REPO", "T0", "approval", "digests", "line_sha256", "provenance", "publish",
    "reproduction", "sign", "signer", "vsa",
]

REPO = "https://github.com/acme/app"
COMMIT = "0123456789abcdef0123456789abcdef01234567"
BUILDER = "arn:aws:codebuild:eu-west-1:111111111111:project/app-build"
LOCKFILE = b"requests==2.32.3\n"
#: A fixed moment the builders count from, so histories are the same on every run.
T0 = datetime(2024, 5, 1, 10, 0, 0, tzinfo=UTC)

Subjects = Mapping[str, bytes | Mapping[str, str]]
"""Subject name -> the artefact's bytes, or its digests."""


def digests(data: bytes) -> dict[str, str]:
    """sha256 and blake3 of ``data``, as attest writes subjects."""
    return {"sha256": hashlib.sha256(data).hexdigest(), "blake3": blake3.blake3(data).hexdigest()}


def _digests(value: bytes | Mapping[str, str]) -> dict[str, str]:
    return digests(value) if isinstance(value, bytes) else dict(value)


@cache
def line_sha256(envelope: Envelope) -> str:
    """sha256 of ``envelope``'s line, as attest names an attestation: a VSA's inputAttestations, a release manifest's
    provenance, a deployment record's release."""
    return hashlib.sha256(envelope.to_json_line().rstrip(b"\n")).hexdigest()


def signer(key_file: Path) -> LocalKeySigner:
    """The signer for a PEM private key file (mode 0600, as attest requires), loaded once."""
    return load(key_file)


def sign(key_file: Path, statement: Mapping[str, Any]) -> Envelope:
    """``statement`` signed as a DSSE envelope by ``key_file``."""
    return sign_envelope(signer(Path(key_file)), payload_type=INTOTO_PAYLOAD_TYPE,
                         payload=json.dumps(statement, sort_keys=True).encode())


def provenance(key_file: Path, *, subjects: Subjects, commit: str = COMMIT, repo: str = REPO,
               ref: str = "refs/heads/main", builder: str = BUILDER, finished: datetime = T0,
               dirty: bool = False, lockfiles: Mapping[str, bytes] | None = None,
               invocation: str = "build/1") -> Envelope:
    """A SLSA provenance as ``attest build`` writes it, finished at ``finished`` (started 5 minutes before)."""
    locks = {"requirements.txt": LOCKFILE} if lockfiles is None else lockfiles
    record = BuildRecord(
        git=GitFacts(root=Path("/src"), repo_uri=repo, ref=ref, commit=commit,
                     commit_time=int(finished.timestamp()) - 3600, dirty=dirty),
        platform=Platform(name="codebuild", builder_id=builder, invocation_id=invocation),
        lockfiles=[Lockfile(path=name, digests=digests(data)) for name, data in locks.items()],
        command=["make", "dist"], artifact_patterns=["dist/"],
        subjects=[(name, _digests(value)) for name, value in subjects.items()],
        source_date_epoch=int(finished.timestamp()) - 3600, started=finished - timedelta(minutes=5),
        finished=finished, invocation_id=invocation, builder_id=builder)
    return sign(key_file, provenance_statement(record))


def vsa(key_file: Path, *, name: str, artifact: bytes | Mapping[str, str], stage: str, at: datetime,
        result: str = "PASSED", resource_uri: str | None = None,
        inputs: Sequence[tuple[str, str]] = (), levels: Sequence[str] = ("SLSA_BUILD_LEVEL_2",)) -> Envelope:
    """A VSA saying ``stage`` verified the artefact at ``at``."""
    return sign(key_file, vsa_statement(
        subject_name=name, digests=_digests(artifact), verifier_id=f"https://attest.dev/verifier/{stage}",
        resource_uri=resource_uri or stage_uri(stage), policy_uri="file:///policy.yaml",
        policy_digest="ab" * 32, inputs=inputs, levels=list(levels), verified_at=at, result=result))


def approval(key_file: Path, *, name: str, artifact: bytes | Mapping[str, str], stage: str, approver: str,
             at: datetime, reason: str = "release notes reviewed") -> Envelope:
    """A person's approval of the artefact for ``stage``."""
    return sign(key_file, approval_statement(subject_name=name, digests=_digests(artifact), stage=stage,
                                             approver=approver, reason=reason, approved_at=at))


def reproduction(key_file: Path, *, results: Mapping[str, tuple[bytes | Mapping[str, str], Status]], at: datetime,
                 commit: str = "", repo: str = REPO, provenance: str = "") -> Envelope:
    """A rebuilder's signed comparison, as ``attest reproduce --emit`` writes it (docs/reproducibility.md).

    ``results`` maps each subject name to (the original artefact or its digests, status), the
    status being ``match``, ``differs``, ``missing`` or ``refused``; the verdict follows from them. ``commit`` and
    ``provenance`` (the sha256 of the provenance's line) say which build was rebuilt; empty, they bind none (the
    audit then judges the reproduction by its subjects alone).
    """
    subjects = tuple(SubjectResult(name=name, status=status, expected=_digests(artifact),
                                   rebuilt=_digests(artifact) if status == "match" else
                                   ({"sha256": "0" * 64} if status == "differs" else {}))
                     for name, (artifact, status) in results.items())
    outcome = Reproduction(attestation="provenance.intoto.jsonl", provenance_digest=provenance, signer="dev-build",
                           source_uri=repo, repository=repo, commit=commit, command=("make", "dist"),
                           source_date_epoch=int(at.timestamp()) - 3600, lockfiles=("requirements.txt",),
                           subjects=subjects, finished=at)
    return sign(key_file, reproduction_statement(outcome, rebuilder_id="attest:rebuilder:test"))


def publish(store: Path, envelope: Envelope, *, kind: str | None = None) -> Path:
    """Put ``envelope`` into the store at ``store`` under each subject's sha256 (a provenance's subjects indexed by
    blake3, as attest build does); return the first path."""
    statement = json.loads(envelope.payload)
    kind = kind or {"https://slsa.dev/provenance/v1": "provenance",
                    "https://slsa.dev/verification_summary/v1": "vsa",
                    "https://attest.dev/approval/v1": "approval",
                    REPRODUCTION_V1: "reproduction"}.get(statement["predicateType"], "release")
    local = LocalStore(store)
    paths = []
    for subject in statement["subject"]:
        digest = subject["digest"]
        paths.append(local.put_attestation(digest["sha256"], kind, envelope.to_json_line()))
        if "blake3" in digest and kind == "provenance":  # as attest build --publish does
            local.put_index(digest["blake3"], digest["sha256"])
    return Path(paths[0])
