"""Offline, proven: verify and audit open no network socket.

Each command runs in a fresh process whose audit hook ends it (exit 97, naming the event) at the first
``socket.*`` audit event of the network: creating an IP socket, resolving a name, connecting, binding. Nothing
in the process can catch that, so a command that passes here made no network call, whatever it imported. A Unix
socket, which reaches only this machine, is let through: an audit's worker processes are forked from a server
it talks to over one (multiprocessing's forkserver).
The runs cover what a stage and an auditor do: key-signed evidence from files and from a directory
store (the prd gate, with stg's VSA; stg signing its VSA with a local key), a real keyless GitHub
attestation against the shipped trusted root, and an audit of a store holding both. A control shows
that the guard does end a run that reaches for the network (a KMS key fetched live).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT, KeyPair, Result, _clean_env, make_keypair, make_repo

ASSETS = ROOT / "tests" / "assets" / "sigstore"
REUSABLE = ASSETS / "gh-reusable-workflow.sigstore.json"
REUSABLE_ARTIFACT = ASSETS / "gh-reusable-workflow-artifact.whl"
REUSABLE_SIGNER = "github/artifact-attestations-workflows/.github/workflows/attest.yml"
ARTIFACT = "dist/app.tar.gz"
GUARDED = 97

GUARD = """
import os, socket, sys

def local(event, args):
    if event == "socket.__new__":
        return args[1] == socket.AF_UNIX
    return bool(args) and isinstance(args[0], socket.socket) and args[0].family == socket.AF_UNIX

def refuse(event, args):
    if event.startswith("socket.") and not local(event, args):
        os.write(2, f"offline guard: {event} {args!r}\\n".encode())
        os._exit(97)

sys.addaudithook(refuse)
from attest.cli import main
main(sys.argv[1:])
"""


def offline(*args: str | Path, cwd: Path, env: dict[str, str] | None = None) -> Result:
    """``attest ARGS`` in a fresh process that may not touch a network socket."""
    done = subprocess.run([sys.executable, "-c", GUARD, *map(str, args)], cwd=cwd, env=_clean_env(env),
                          capture_output=True, text=True, timeout=120)
    return Result(done.returncode, done.stdout, done.stderr)


POLICY = """\
version: 1
identities:
  dev: {{keys: [{dev}]}}
  stg-verifier: {{keys: [{stg}]}}
  gha:
    sigstore: {{issuer: https://token.actions.githubusercontent.com,
               identity: "https://github.com/{signer}@09b495c3f12c7881b3cc17209a327792065c1a1d"}}
provenance:
  signed-by: [dev, gha]
stages:
  stg: {{verifier: stg-verifier}}
  prd: {{require-vsa: [{{stage: stg, signed-by: stg-verifier}}]}}
"""


@pytest.fixture
def published(built: Path, keys: dict[str, KeyPair], attest: object) -> Path:
    from tests.conftest import run_attest

    result = run_attest("build", "--signer", keys["dev"].private, "--artifact", "dist/", "--publish", "store",
                        cwd=built)
    assert result.code == 0, result
    (built / "policy.yaml").write_text(POLICY.format(dev=keys["dev"].public, stg=keys["stg"].public,
                                                     signer=REUSABLE_SIGNER))
    return built


def test_the_guard_ends_a_run_that_reaches_for_the_network(published: Path) -> None:
    """The control: fetching a KMS key live opens a socket, and the guard ends the run before it connects."""
    env = {"AWS_ENDPOINT_URL": "http://127.0.0.1:9", "AWS_ACCESS_KEY_ID": "testing",
           "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "eu-west-1", "AWS_EC2_METADATA_DISABLED": "true",
           "AWS_MAX_ATTEMPTS": "1"}
    result = offline("verify", ARTIFACT, "--attestation", "provenance.intoto.jsonl", "--key", "awskms:alias/dev",
                     cwd=published, env=env)
    assert result.code == GUARDED and "offline guard: socket." in result.err, result


def test_verify_of_key_signed_evidence_opens_no_socket(published: Path, keys: dict[str, KeyPair]) -> None:
    result = offline("verify", ARTIFACT, "--attestation", "provenance.intoto.jsonl", "--key", keys["dev"].public,
                     cwd=published)
    assert result.code == 0, result
    result = offline("verify", ARTIFACT, "--store", "store", "--policy", "policy.yaml", cwd=published)
    assert result.code == 0, result


def test_the_stage_gates_from_a_directory_store_open_no_socket(published: Path, keys: dict[str, KeyPair]) -> None:
    stg = offline("verify", ARTIFACT, "--store", "store", "--policy", "policy.yaml", "--stage", "stg",
                  "--emit-vsa", "stg.intoto.jsonl", "--signer", keys["stg"].private, cwd=published)
    assert stg.code == 0, stg
    prd = offline("verify", ARTIFACT, "--store", "store", "--policy", "policy.yaml", "--stage", "prd",
                  "--format", "json", cwd=published)
    assert prd.code == 0, prd
    refused = offline("verify", "build.py", "--store", "store", "--policy", "policy.yaml", "--stage", "prd",
                      cwd=published)
    assert refused.code == 1 and "offline guard" not in refused.err, refused


def test_verify_of_a_keyless_github_attestation_opens_no_socket(tmp_path: Path) -> None:
    result = offline("verify", REUSABLE_ARTIFACT, "--attestation", REUSABLE, "--signer-workflow", REUSABLE_SIGNER,
                     "--github-repo", "malancas/attest-demo", "--source-uri", "github.com/malancas/attest-demo",
                     cwd=tmp_path)
    assert result.code == 0, result


def test_audit_of_a_store_with_keyed_and_keyless_evidence_opens_no_socket(published: Path,
                                                                          keys: dict[str, KeyPair]) -> None:
    folder = published / "store" / "sha256" / ("0" * 64)  # where a bundle of another artefact was filed
    folder.mkdir(parents=True)
    shutil.copy(REUSABLE, folder / "provenance.sigstore.json")
    for output in ("json", "html"):
        result = offline("audit", "store", "--policy", "policy.yaml", "--format", output, "-o",
                         f"audit.{output}", cwd=published)
        assert result.code in (0, 1) and "offline guard" not in result.err, result
        assert (published / f"audit.{output}").stat().st_size > 0


def test_verify_with_an_in_toto_layout_opens_no_socket(tmp_path: Path) -> None:
    """in-toto and securesystemslib are imported without their cloud backends (verify/sslib.py)."""
    from tests.interop.test_intoto_cli import COMMAND, Built, _layout

    keys = tmp_path / "keys"
    keys.mkdir()
    root = make_repo(tmp_path / "app", ignore="dist/\nlinks/\n*.intoto.jsonl\n")
    built = Built(root=root, **{name: make_keypair(keys, name) for name in ("dev", "owner", "other")})
    (root / "links").mkdir()
    done = offline("build", "--signer", built.dev.private, "--artifact", "dist/", "--link", "links/", "--",
                   *COMMAND, cwd=root)
    assert done.code == 0, done  # a key signer's build with an in-toto link: no socket either
    result = offline("verify", ARTIFACT, "--attestation", "provenance.intoto.jsonl", "--key", built.dev.public,
                     "--layout", _layout(built), "--layout-key", built.owner.public, cwd=root)
    assert result.code == 0, result
