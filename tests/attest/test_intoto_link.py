"""attest.intoto_link and ``attest build --link``: the in-toto link of the build step.

Recorded by in-toto's runlib (materials: the commit's tracked files; products: the artefacts), signed
by the build's signer (a key file here; AWS KMS against the local moto server), and read back with
in-toto's own model and key loading, as ``in-toto-verify`` reads it.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from in_toto.models._signer import load_public_key_from_file
from in_toto.models.metadata import Metablock
from securesystemslib.signer import SSlibKey

from attest import intoto_link
from attest.build import BuildRequest, run_build
from attest.errors import BuildRefused, SignerError, SourceChanged
from attest.intoto_link import InTotoSigner, record_products, sign_link
from attest.signers import awskms
from attest.signers.key import load as load_signer
from tests.conftest import AttestRunner, KeyPair, git
from tests.conftest_aws import MotoEnv
from verify.errors import RequestError

BUILD = (sys.executable, "build.py")

# in-toto 3.1 asks pathspec for its deprecated 'gitwildmatch' patterns; not ours to fix
pytestmark = pytest.mark.filterwarnings("ignore:GitWildMatchPattern:DeprecationWarning")


@pytest.fixture
def workdir(repo: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """``repo`` as the current directory, in an environment that names no CI platform."""
    for name in list(os.environ):
        if name.startswith(("CODEBUILD_", "GITHUB_", "GITLAB_", "CI_", "ATTEST_", "SIGSTORE_")) \
                or name == "SOURCE_DATE_EPOCH":
            monkeypatch.delenv(name)
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", os.devnull)
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    monkeypatch.chdir(repo)
    return repo


def _request(keys: dict[str, KeyPair], link: Path, **fields: Any) -> BuildRequest:
    return replace(BuildRequest(signer=str(keys["dev"].private), artifacts=("dist/",), command=BUILD,
                                pass_credentials=True, link=link), **fields)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _commit(repo: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        (repo / name).parent.mkdir(parents=True, exist_ok=True)
        (repo / name).write_text(text)
    git(repo, "add", *files)
    git(repo, "commit", "-q", "-m", "more")


def test_link_records_the_build_step_as_in_toto_reads_it(workdir: Path, keys: dict[str, KeyPair],
                                                         tmp_path: Path) -> None:
    links = tmp_path / "links"
    links.mkdir()

    outcome = run_build(_request(keys, links))

    functionary = load_public_key_from_file(str(keys["dev"].public))  # as in-toto-verify and layouts load it
    assert outcome.link == links / f"build.{functionary['keyid'][:8]}.link"
    assert outcome.link_filename == outcome.link.name
    assert outcome.link_keyid == functionary["keyid"]
    metablock = Metablock.load(str(outcome.link))
    metablock.verify_signature(functionary)
    link = metablock.signed
    assert (link.name, link.command, link.byproducts) == ("build", list(BUILD), {"return-value": 0})
    tracked = git(workdir, "ls-files").split("\n")
    assert link.materials == {name: {"sha256": _sha256(workdir / name)} for name in tracked}
    assert link.products == {name: {"sha256": digests["sha256"]} for name, digests in outcome.subjects}
    assert Path("provenance.intoto.jsonl").is_file()


def test_link_to_a_file_name_is_written_there(workdir: Path, keys: dict[str, KeyPair], tmp_path: Path) -> None:
    (tmp_path / "out").mkdir()
    outcome = run_build(_request(keys, tmp_path / "out" / "step.link"))

    assert outcome.link == tmp_path / "out" / "step.link"
    assert outcome.link_filename is not None and outcome.link_filename.startswith("build.")
    assert Metablock.load(str(outcome.link)).signed.name == "build"


def test_link_step_names_the_step(workdir: Path, keys: dict[str, KeyPair], tmp_path: Path) -> None:
    outcome = run_build(_request(keys, tmp_path, link_step="compile"))

    assert outcome.link is not None and outcome.link.name.startswith("compile.")
    assert Metablock.load(str(outcome.link)).signed.name == "compile"


def test_materials_are_what_cmd_started_from_and_a_cmd_that_changes_one_gets_no_link(
        workdir: Path, keys: dict[str, KeyPair], tmp_path: Path) -> None:
    """Materials are recorded before CMD; a CMD that changes a tracked file gets neither a link nor a provenance
    (the source is checked again after CMD), so what the link names is what CMD started from."""
    _commit(workdir, {"notes.txt": "before"})
    before = _sha256(workdir / "notes.txt")
    outcome = run_build(_request(keys, tmp_path))
    assert outcome.link is not None
    assert Metablock.load(str(outcome.link)).signed.materials["notes.txt"] == {"sha256": before}
    outcome.link.unlink()
    command = (sys.executable, "-c", "import pathlib; pathlib.Path('notes.txt').write_text('after'); "
                                     "exec(open('build.py').read())")

    with pytest.raises(SourceChanged, match=r"tracked files changed: notes\.txt"):
        run_build(_request(keys, tmp_path, command=command, output=tmp_path / "refused.intoto.jsonl"))

    assert not list(tmp_path.glob("*.link")) and not (tmp_path / "refused.intoto.jsonl").exists()


def test_every_tracked_regular_file_is_a_material_and_nothing_else(workdir: Path, keys: dict[str, KeyPair],
                                                                   tmp_path: Path) -> None:
    """in-toto's default exclusions do not apply; symbolic links and submodules are not recorded."""
    _commit(workdir, {"cache.pyc": "x", "backup~": "y", "old.link": "z", "src/deep/a.txt": "a"})
    (workdir / "to-build").symlink_to("build.py")
    (workdir / "to-root").symlink_to("/")
    head = git(workdir, "rev-parse", "HEAD")
    git(workdir, "update-index", "--add", "--cacheinfo", f"160000,{head},vendor/sub")
    (workdir / "vendor" / "sub").mkdir(parents=True)  # a submodule not checked out
    git(workdir, "add", "to-build", "to-root")
    git(workdir, "commit", "-q", "-m", "links and a submodule")

    outcome = run_build(_request(keys, tmp_path))

    assert outcome.link is not None
    materials = Metablock.load(str(outcome.link)).signed.materials
    assert set(materials) == {".gitignore", "build.py", "requirements.txt", "cache.pyc", "backup~", "old.link",
                              "src/deep/a.txt"}


def test_a_deleted_tracked_file_is_no_material_of_a_dirty_build(workdir: Path, keys: dict[str, KeyPair],
                                                               tmp_path: Path) -> None:
    _commit(workdir, {"notes.txt": "n"})
    (workdir / "notes.txt").unlink()

    outcome = run_build(_request(keys, tmp_path, allow_dirty=True))

    assert outcome.link is not None
    assert "notes.txt" not in Metablock.load(str(outcome.link)).signed.materials


def test_keyless_link_is_a_usage_error_before_any_work(workdir: Path, tmp_path: Path) -> None:
    request = BuildRequest(signer="sigstore", artifacts=("dist/",), command=BUILD, link=tmp_path)

    with pytest.raises(RequestError, match="--link needs a key signer"):
        run_build(request)
    assert not (workdir / "dist").exists()


def test_artefact_outside_the_repository_is_refused_and_nothing_written(workdir: Path, keys: dict[str, KeyPair],
                                                                        tmp_path: Path) -> None:
    outside = tmp_path / "outside.bin"
    outside.write_bytes(b"out")

    with pytest.raises(BuildRefused, match="outside the repository"):
        run_build(_request(keys, tmp_path / "links", artifacts=(str(outside),), command=()))
    assert not Path("provenance.intoto.jsonl").exists()
    assert not (tmp_path / "links").exists()


def test_a_tracked_name_in_toto_reads_as_a_uri_is_refused(workdir: Path, keys: dict[str, KeyPair],
                                                          tmp_path: Path) -> None:
    _commit(workdir, {"dir:notes": "n"})

    with pytest.raises(BuildRefused, match=r"dir:notes reads as an in-toto resolver URI"):
        run_build(_request(keys, tmp_path))


def test_too_many_tracked_files_are_refused(workdir: Path, keys: dict[str, KeyPair], tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(intoto_link, "MAX_MATERIALS", 2)

    with pytest.raises(BuildRefused, match="more than 2 files"):
        run_build(_request(keys, tmp_path))


def test_an_artefact_changed_between_the_reads_is_refused(workdir: Path) -> None:
    from attest.collect import Artifact

    (workdir / "a.bin").write_bytes(b"now")
    subjects = [("a.bin", {"sha256": hashlib.sha256(b"then").hexdigest()})]

    with pytest.raises(BuildRefused, match=r"a.bin changed while it was attested"):
        record_products(workdir, [Artifact(path=workdir / "a.bin", name="a.bin")], subjects)


def test_a_recording_failure_is_refused_and_the_directory_kept(workdir: Path, keys: dict[str, KeyPair],
                                                              tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from in_toto.resolver import _resolver

    def unreadable(path: str, *_: object) -> str:
        raise PermissionError(13, "Permission denied", path)

    monkeypatch.setattr(_resolver, "_hash_file", unreadable)

    with pytest.raises(BuildRefused, match=r"in-toto could not record .*: Permission denied"):
        run_build(_request(keys, tmp_path))
    assert Path.cwd() == workdir


def test_a_signature_that_does_not_verify_is_refused(keys: dict[str, KeyPair]) -> None:
    class Broken:
        keyid = "broken"

        def public_key_pem(self) -> bytes:
            return keys["dev"].public.read_bytes()

        def sign(self, data: bytes) -> bytes:
            return load_signer(keys["other"].private).sign(data)

    with pytest.raises(SignerError, match="does not verify under any in-toto scheme"):
        sign_link(step="build", materials={}, products={}, command=(), signer=Broken())


def test_the_adapter_is_no_uri_signer(keys: dict[str, KeyPair]) -> None:
    adapter = InTotoSigner(load_signer(keys["dev"].private))

    with pytest.raises(ValueError, match="wraps an attest signer"):
        InTotoSigner.from_priv_key_uri("file:x", adapter.public_key)


KMS_SPECS = [("ECC_NIST_P256", "pss", "ecdsa-sha2-nistp256"), ("ECC_NIST_P384", "pss", "ecdsa-sha2-nistp384"),
             ("RSA_2048", "pss", "rsassa-pss-sha256"), ("RSA_2048", "pkcs1v15", "rsa-pkcs1v15-sha256")]


@pytest.mark.parametrize(("spec", "rsa_scheme", "scheme"), KMS_SPECS, ids=[f"{s}-{r}" for s, r, _ in KMS_SPECS])
def test_kms_signs_links_in_toto_verifies(aws_env: MotoEnv, spec: str, rsa_scheme: str, scheme: str,
                                          tmp_path: Path) -> None:
    """Through the adapter, with the keyid in-toto computes; PSS and ECDSA keys as in-toto-verify loads a PEM."""
    from cryptography.hazmat.primitives.serialization import load_pem_public_key

    kms = aws_env.client("kms")
    arn = kms.create_key(KeyUsage="SIGN_VERIFY", KeySpec=spec)["KeyMetadata"]["Arn"]
    signer = awskms.from_uri(f"awskms:{arn}", rsa_scheme=rsa_scheme)

    link = sign_link(step="build", materials={"a": {"sha256": "0" * 64}}, products={}, command=("make",),
                     signer=signer)

    pem = tmp_path / "kms.pub.pem"
    pem.write_bytes(awskms.export_public_key_pem(f"awskms:{arn}"))
    key = SSlibKey.from_crypto(load_pem_public_key(pem.read_bytes()), scheme=scheme)
    assert link.keyid == key.keyid
    metablock = Metablock.from_dict(json.loads(link.data))
    metablock.verify_signature({**key.to_dict(), "keyid": key.keyid})
    if rsa_scheme == "pss":
        assert link.keyid == load_public_key_from_file(str(pem))["keyid"]


def test_cli_link_option_writes_and_reports_the_link(repo: Path, keys: dict[str, KeyPair], attest: AttestRunner,
                                                     tmp_path: Path) -> None:
    result = attest("build", "--signer", keys["dev"].private, "--artifact", "dist/", "--link", tmp_path,
                    "--format", "json", "--", *BUILD, cwd=repo)

    assert result.code == 0, result
    reported = json.loads(result.out)["link"]
    assert Path(reported["path"]) == tmp_path / f"build.{reported['keyid'][:8]}.link"
    assert Path(reported["path"]).is_file()


def test_cli_link_under_another_name_says_what_in_toto_looks_for(repo: Path, keys: dict[str, KeyPair],
                                                                 attest: AttestRunner, tmp_path: Path) -> None:
    result = attest("build", "--signer", keys["dev"].private, "--artifact", "dist/", "--link",
                    tmp_path / "step.link", "--", *BUILD, cwd=repo)

    assert result.code == 0, result
    assert f"-> {tmp_path / 'step.link'}" in result.out
    assert "in-toto-verify looks for this link as build." in result.err


def test_cli_keyless_link_exits_2(repo: Path, attest: AttestRunner, tmp_path: Path) -> None:
    result = attest("build", "--signer", "sigstore", "--artifact", "dist/", "--link", tmp_path, "--", *BUILD,
                    cwd=repo)

    assert result.code == 2, result
    assert "--link needs a key signer" in result.err


def test_an_empty_step_name_is_a_usage_error(workdir: Path, keys: dict[str, KeyPair], tmp_path: Path) -> None:
    with pytest.raises(RequestError, match="step name is empty"):
        run_build(_request(keys, tmp_path, link_step=" "))
