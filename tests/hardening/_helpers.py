"""Helpers for the hardening tests: signed evidence, policies, an in-process CLI, counting verifications.

Evidence is made with ``tests.verify._factory`` (keys and signatures by ``cryptography`` directly),
so that a bug in verify/ cannot hide behind the same bug in the test.
"""

from __future__ import annotations

import io
import os
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, redirect_stderr, redirect_stdout
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.verify import _factory as f
from verify.errors import MalformedEvidence
from verify.formats.evidence import Evidence, load_evidence
from verify.policy import Policy, ProvenanceRules, SourceRule, TrustedBuilder
from verify.trust import Identity, PublicKey, load_public_key

DEV = f.private_key("p256", 0)
STG = f.private_key("p256", 1)
OTHER = f.private_key("p256", 9)


def pub(key: f.PrivateKey, name: str = "dev.pub.pem") -> PublicKey:
    return load_public_key(f.public_pem(key), name=name)


def policy(*, keys: Sequence[f.PrivateKey] = (DEV,), identity: Identity | None = None, **rules: Any) -> Policy:
    """A policy trusting ``keys`` (or ``identity``) as 'dev', with DESIGN's source and builder rules."""
    base: dict[str, Any] = {"signed_by": ("dev",), "source": SourceRule(uri="github.com/acme/app", branches=("main",)),
                            "builders": (TrustedBuilder(f.BUILDER),)}
    base.update(rules)
    dev = identity or Identity(name="dev", keys=tuple(pub(k, f"dev{i}.pub.pem") for i, k in enumerate(keys)))
    return Policy(identities={"dev": dev}, provenance=ProvenanceRules(**base))


def envelope_line(statement: Mapping[str, Any] | None = None, signers: Sequence[Any] = (DEV,), **kw: Any) -> bytes:
    return f.json_line(f.envelope_dict(f.payload_of(statement or f.statement()), signers, **kw))


def evidence(data: bytes, source: str = "p.intoto.jsonl") -> list[Evidence | MalformedEvidence]:
    return load_evidence(data, source=source)


def artefact_digests(data: bytes = f.ARTIFACT) -> Callable[[], dict[str, str]]:
    return lambda: f.digest_set(data)


@contextmanager
def counting_verifications(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    """Count calls of PublicKey.verify, each still doing the real verification."""
    calls = [0]
    real = PublicKey.verify

    def counted(self: PublicKey, signature: bytes, data: bytes) -> bool:
        calls[0] += 1
        return real(self, signature, data)

    monkeypatch.setattr(PublicKey, "verify", counted)
    yield calls


@dataclass(frozen=True)
class Ran:
    code: int
    out: str
    err: str


def run_in_process(args: Sequence[str | Path], *, cwd: Path, monkeypatch: pytest.MonkeyPatch,
                   env: Mapping[str, str] | None = None) -> Ran:
    """Run ``attest ARGS`` in this process (the real main(): exit-code table, one-sentence errors)."""
    from attest.cli import main

    for name in list(os.environ):
        if name.startswith(("CODEBUILD_", "GITHUB_", "GITLAB_", "CI_", "ATTEST_", "SIGSTORE_")):
            monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", os.devnull)
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    for name, value in (env or {}).items():
        monkeypatch.setenv(name, value)
    monkeypatch.chdir(cwd)
    out, err = io.StringIO(), io.StringIO()
    code = 0
    with redirect_stdout(out), redirect_stderr(err):
        try:
            main([str(a) for a in args])
        except SystemExit as e:
            code = int(e.code or 0) if not isinstance(e.code, str) else 1
    sys.stdout.flush()
    return Ran(code, out.getvalue(), err.getvalue())
