"""The sigstore-conformance bundle-verification suite, run through attest's real CLI, offline.

The suite (``tests/assets/conformance/sigstore-conformance``, sources in that README; 70 cases: 21 that must verify,
49 named ``*_fail`` that must be rejected) speaks the protocol of its ``docs/cli_protocol.md``;
this module maps it onto ``attest verify`` the way a thin wrapper script would:

=====================================================  ======================================================
``verify-bundle``                                       ``attest verify``
=====================================================  ======================================================
``--bundle B``                                          ``--attestation B``
``--certificate-identity ID``                           ``--certificate-identity ID``
``--certificate-oidc-issuer URL``                       ``--certificate-oidc-issuer URL``
``--key K`` (cases with ``key.pub``)                    ``--key K``
``--trusted-root F`` (the case's ``trusted_root.json``)  ``--trusted-root F``, else the production root (the
                                                        bytes sigstore-python embeds): nothing is fetched
``FILE_OR_DIGEST``                                      the case's ``artifact``, else ``a.txt``, given once
                                                        as a path and once as ``sha256:<hex>``
=====================================================  ======================================================

The identity and issuer come from the case's ``identity``/``issuer`` files, else the suite
README's defaults. What is honest here: attest demands more than the protocol does, since by
default a DSSE statement must be a readable SLSA provenance. All 14 DSSE cases are typed SLSA
provenance v1; in the four ``rekor2-dsse-*`` cases the predicate lacks
``buildDefinition.externalParameters`` (required by SLSA v1), so only for those the harness
passes ``--predicate-type`` with the statement's own type: attest then checks signature,
statement type and subject without interpreting the predicate (as ``gh attestation verify
--predicate-type`` does). No other flag is added and no check is relaxed; which cases get the
flag is computed from the bundles and pinned below, so a change shows.

A rejection is exit 1 (evidence rejected), or 3 (configuration unusable) for the two cases whose
``key.pub`` or ``trusted_root.json`` is what is broken, with one sentence on stderr and no
traceback. All 21 good cases
verify, the two sigstore-python 4.5.1 cannot (an ``intoto`` 0.0.2 entry, an inclusive TSA validity
end) included: attest verifies natively (:mod:`verify.sigstore._native`). Most runs are in-process with sockets
disabled (which also proves verification is offline); a handful run as real subprocesses.
"""

from __future__ import annotations

import base64
import hashlib
import json
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import CONFORMANCE, AttestRunner, Result

SUITE = CONFORMANCE / "sigstore-conformance" / "test" / "assets" / "bundle-verify"
PRODUCTION_ROOT = CONFORMANCE / "trusted_root.production.json"
DEFAULT_IDENTITY = ("https://github.com/sigstore-conformance/extremely-dangerous-public-oidc-beacon/"
                    ".github/workflows/extremely-dangerous-oidc-beacon.yml@refs/heads/main")
DEFAULT_ISSUER = "https://token.actions.githubusercontent.com"

#: Good cases attest cannot verify, and why (none since native verification; kept as the place to say so).
KNOWN_MISSES: dict[str, str] = {}
#: DSSE cases whose predicate is not a readable SLSA provenance (see the module docstring).
NEEDS_PREDICATE_TYPE = {"rekor2-dsse-happy-path", "rekor2-dsse-invalid-sig_fail",
                        "rekor2-dsse-mismatch-envelope_fail", "rekor2-dsse-mismatch-sig_fail"}
#: Fail cases whose broken part is the verifier's own input: exit 3 (fix the pipeline), not 1.
CONFIG_REJECTIONS = {
    "managed-key-wrong-key_fail": "its key.pub is not a valid PEM public key",
    "trust-root-tlog-missing-validity-start_fail": "its trusted_root.json lacks a required field",
}
#: Cases also run as real subprocesses, with a path or a digest (all run in-process both ways).
SUBPROCESS_CASES = {"happy-path-v0.3": False, "happy-path-intoto-in-dsse-v3": True,
                    "managed-key-happy-path": True, "rekor2-dsse-happy-path": False,
                    "signature-mismatch_fail": True, "bundle-malformed-json_fail": False}


@dataclass(frozen=True)
class Case:
    name: str
    folder: Path

    @property
    def should_pass(self) -> bool:
        return not self.name.endswith("_fail")

    @property
    def artifact(self) -> Path:
        own = self.folder / "artifact"
        return own if own.is_file() else SUITE / "a.txt"

    def predicate_type(self) -> str | None:
        """The statement's own type, when attest's default (a readable SLSA provenance) does not fit."""
        from verify.errors import EvidenceRejected
        from verify.formats.statement import parse_statement, read_provenance

        try:
            bundle = json.loads((self.folder / "bundle.sigstore.json").read_bytes())
            payload = base64.b64decode(bundle["dsseEnvelope"]["payload"])
            statement = parse_statement(payload)
        except (ValueError, KeyError, TypeError, EvidenceRejected):
            return None  # no readable statement: nothing to ask for
        try:
            read_provenance(statement)
        except EvidenceRejected:
            return statement.predicate_type
        return None

    def argv(self, *, digest: bool) -> list[str]:
        sha256 = hashlib.sha256(self.artifact.read_bytes()).hexdigest()
        target = f"sha256:{sha256}" if digest else str(self.artifact)
        argv = ["verify", target, "--attestation", str(self.folder / "bundle.sigstore.json")]
        key = self.folder / "key.pub"
        if key.is_file():
            argv += ["--key", str(key)]
        else:
            argv += ["--certificate-identity", self._text("identity", DEFAULT_IDENTITY),
                     "--certificate-oidc-issuer", self._text("issuer", DEFAULT_ISSUER)]
        root = self.folder / "trusted_root.json"
        argv += ["--trusted-root", str(root if root.is_file() else PRODUCTION_ROOT)]
        predicate_type = self.predicate_type()
        if predicate_type is not None:
            argv += ["--predicate-type", predicate_type]
        return argv

    def _text(self, name: str, default: str) -> str:
        file = self.folder / name
        return file.read_text().strip() if file.is_file() else default


CASES = sorted((Case(d.name, d) for d in SUITE.iterdir() if d.is_dir()), key=lambda c: c.name)


def _params(cases: list[Case]) -> list[object]:
    def marks(case: Case) -> list[pytest.MarkDecorator]:
        if case.name not in KNOWN_MISSES:
            return []
        return [pytest.mark.xfail(reason=KNOWN_MISSES[case.name], strict=True)]

    return [pytest.param(case, id=case.name, marks=marks(case)) for case in cases]


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Any attempt to open a connection fails the run."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"network access attempted: {args[1:]!r}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    yield


def run_in_process(argv: list[str], capsys: pytest.CaptureFixture[str]) -> Result:
    """``attest ARGV`` through the CLI's own entry point and exit-code table, in this process."""
    from attest.cli import main

    capsys.readouterr()
    with pytest.raises(SystemExit) as exited:
        main(argv)
    out, err = capsys.readouterr()
    code = exited.value.code
    return Result(code if isinstance(code, int) else 1, out, err)


def check(case: Case, result: Result) -> None:
    """The case's expected outcome, with the CLI contract: one sentence on failure, never a traceback."""
    assert "Traceback" not in result.err, result
    if case.should_pass:
        assert result.code == 0, result
        assert result.out.startswith("PASS "), result
        assert result.err == "", result
    else:
        assert result.code == (3 if case.name in CONFIG_REJECTIONS else 1), result
        assert result.out == "", result
        assert result.err.startswith("attest: ") and result.err.count("\n") == 1, result
        # rejected for what the case is about, not for attest's own demands on the predicate
        assert "predicate type" not in result.err and "not a SLSA provenance" not in result.err, result


def test_the_suite_is_complete() -> None:
    expected = dict(line.split() for line in (CONFORMANCE / "sigstore-conformance-expected.txt").read_text()
                    .splitlines() if line.strip())
    assert {c.name: "pass" if c.should_pass else "fail" for c in CASES} == expected
    assert (len(CASES), sum(c.should_pass for c in CASES)) == (70, 21)
    assert len(KNOWN_MISSES) <= 2 and all(expected[name] == "pass" for name in KNOWN_MISSES)
    assert all(expected[name] == "fail" for name in CONFIG_REJECTIONS)
    assert {c.name for c in CASES if c.predicate_type() is not None} == NEEDS_PREDICATE_TYPE


@pytest.mark.usefixtures("no_network")
@pytest.mark.parametrize("digest", [False, True], ids=["path", "digest"])
@pytest.mark.parametrize("case", _params(CASES))
def test_verify_bundle(case: Case, digest: bool, capsys: pytest.CaptureFixture[str]) -> None:
    check(case, run_in_process(case.argv(digest=digest), capsys))


@pytest.mark.parametrize("case", _params([c for c in CASES if c.name in SUBPROCESS_CASES]))
def test_verify_bundle_subprocess(case: Case, attest: AttestRunner) -> None:
    check(case, attest(*case.argv(digest=SUBPROCESS_CASES[case.name])))
