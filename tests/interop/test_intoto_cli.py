"""in-toto's own CLI and ``attest verify --layout`` agree on the links ``attest build --link`` writes.

One real build (``attest build --link``, a subprocess) per module; a layout made here with in-toto's
``Layout`` model and signed by an owner key; then, on the same files, ``in-toto-verify`` (the venv's
console script, a subprocess) and ``attest verify --layout`` must both pass, or both fail. The two
places where they differ by design are tested too: attest also requires the artefact to be a product
of the layout's last step, and runs no inspections.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from in_toto.models._signer import load_public_key_from_file
from in_toto.models.layout import Inspection, Layout, Step
from in_toto.models.metadata import Metablock
from securesystemslib.signer import CryptoSigner, SSlibKey

from attest.intoto_link import InTotoSigner
from attest.signers.key import load as load_signer
from tests.conftest import BUILD_SCRIPT, AttestRunner, KeyPair, Result, _clean_env, git, make_keypair, make_repo

IN_TOTO_VERIFY = Path(sys.executable).with_name("in-toto-verify")
ARTIFACT = "dist/app.tar.gz"
COMMAND = [sys.executable, "build.py"]


@dataclass(frozen=True)
class Built:
    """A work tree after ``attest build --link links/``, and the keys around it."""

    root: Path
    dev: KeyPair
    owner: KeyPair
    other: KeyPair

    @property
    def link(self) -> Path:
        (link,) = (self.root / "links").glob("build.*.link")
        return link


@pytest.fixture(scope="module")
def built_once(tmp_path_factory: pytest.TempPathFactory) -> Built:
    base = tmp_path_factory.mktemp("intoto")
    keys = base / "keys"
    keys.mkdir()
    root = make_repo(base / "app", ignore="dist/\nlinks/\n*.intoto.jsonl\n")
    built = Built(root=root, **{name: make_keypair(keys, name) for name in ("dev", "owner", "other")})
    (root / "links").mkdir()
    done = subprocess.run([sys.executable, "-m", "attest", "build", "--signer", str(built.dev.private),
                           "--artifact", "dist/", "--link", "links/", "--", *COMMAND], cwd=root,
                          env=_clean_env(), capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    return built


@pytest.fixture
def built(built_once: Built, tmp_path: Path) -> Iterator[Built]:
    """A private copy of the build, free to tamper with."""
    root = tmp_path / "app"
    shutil.copytree(built_once.root, root, symlinks=True)
    yield Built(root=root, dev=built_once.dev, owner=built_once.owner, other=built_once.other)


def _layout(built: Built, *, products: list[list[str]] | None = None, signer: KeyPair | None = None,
            expires: datetime | None = None, inspect: list[Inspection] | None = None) -> Path:
    """A layout whose step ``build`` is performed by the dev key: it uses the tracked sources and
    creates dist/; signed by the owner key (or ``signer``); written to links/root.layout."""
    functionary = load_public_key_from_file(str(built.dev.public))
    step = Step(name="build", pubkeys=[functionary["keyid"]], expected_command=COMMAND,
                expected_materials=[["REQUIRE", "build.py"], ["REQUIRE", "requirements.txt"],
                                    ["ALLOW", "build.py"], ["ALLOW", "requirements.txt"], ["ALLOW", ".gitignore"],
                                    ["DISALLOW", "*"]],
                expected_products=products or [["CREATE", ARTIFACT], ["CREATE", "dist/sub/data.bin"],
                                               ["DISALLOW", "*"]])
    layout = Layout(keys={functionary["keyid"]: functionary}, steps=[step], inspect=inspect or [],
                    expires=(expires or datetime.now(UTC) + timedelta(days=30)).strftime("%Y-%m-%dT%H:%M:%SZ"))
    metablock = Metablock(signed=layout)
    private = load_pem_private_key((signer or built.owner).private.read_bytes(), None)
    metablock.create_signature(CryptoSigner(private, SSlibKey.from_crypto(private.public_key())))
    path = built.root / "links" / "root.layout"
    metablock.dump(str(path))
    return path


def in_toto_verify(built: Built, layout: Path) -> Result:
    done = subprocess.run([str(IN_TOTO_VERIFY), "--layout", str(layout), "--verification-keys",
                           str(built.owner.public), "--link-dir", str(built.root / "links")], cwd=built.root,
                          env=_clean_env(), capture_output=True, text=True, timeout=120, check=False)
    return Result(done.returncode, done.stdout, done.stderr)


def attest_verify(attest: AttestRunner, built: Built, layout: Path, *extra: str) -> Result:
    return attest("verify", ARTIFACT, "--attestation", "provenance.intoto.jsonl", "--key", built.dev.public,
                  "--layout", layout, "--layout-key", built.owner.public, *extra, cwd=built.root)


def _both(attest: AttestRunner, built: Built, layout: Path) -> tuple[Result, Result]:
    return in_toto_verify(built, layout), attest_verify(attest, built, layout)


def _resign(link: Path, key: KeyPair, change: Any = None) -> Metablock:
    """The link's metadata, changed by ``change`` and signed again by ``key`` (through attest's adapter)."""
    metablock = Metablock.load(str(link))
    if change is not None:
        change(metablock.signed)
    metablock.signatures = []
    metablock.create_signature(InTotoSigner(load_signer(key.private)))
    return metablock


def test_cli_tools_are_there() -> None:
    assert IN_TOTO_VERIFY.is_file(), "in-toto's console scripts come with the in-toto dependency"


def test_a_good_build_passes_both(built: Built, attest: AttestRunner) -> None:
    theirs, ours = _both(attest, built, _layout(built))

    assert theirs.code == 0, theirs
    assert ours.code == 0, ours
    assert "root.layout: build (1 link(s)); product dist/app.tar.gz" in ours.out
    assert ours.err == ""


def test_the_link_is_named_and_signed_as_in_toto_expects(built: Built) -> None:
    functionary = load_public_key_from_file(str(built.dev.public))
    link = json.loads(built.link.read_text())

    assert built.link.name == f"build.{functionary['keyid'][:8]}.link"
    assert [s["keyid"] for s in link["signatures"]] == [functionary["keyid"]]
    assert link["signed"]["command"] == COMMAND
    assert set(link["signed"]["materials"]) == {".gitignore", "build.py", "requirements.txt"}
    assert set(link["signed"]["products"]) == {ARTIFACT, "dist/sub/data.bin"}


def test_json_verdict_names_the_layout_and_the_product(built: Built, attest: AttestRunner) -> None:
    result = attest_verify(attest, built, _layout(built), "--format", "json")

    assert result.code == 0, result
    layout = json.loads(result.out)["layout"]
    assert layout["product"] == ARTIFACT
    assert [s["name"] for s in layout["steps"]] == ["build"]


def test_a_tampered_product_fails_both(built: Built, attest: AttestRunner) -> None:
    """The artefact swapped, and the link edited to name the new bytes: its signature no longer holds."""
    link = json.loads(built.link.read_text())
    (built.root / ARTIFACT).write_bytes(b"malicious")
    link["signed"]["products"][ARTIFACT]["sha256"] = "1" * 64
    built.link.write_text(json.dumps(link))

    theirs, ours = _both(attest, built, _layout(built))

    assert theirs.code == 1, theirs
    assert ours.code == 1, ours
    assert ours.err.startswith(f"attest: verification failed for {ARTIFACT}")
    assert "Traceback" not in ours.err


def test_a_tampered_link_fails_both_even_with_the_artefact_untouched(built: Built, attest: AttestRunner) -> None:
    link = json.loads(built.link.read_text())
    link["signed"]["materials"]["build.py"]["sha256"] = "2" * 64
    built.link.write_text(json.dumps(link))

    theirs, ours = _both(attest, built, _layout(built))

    assert (theirs.code, ours.code) == (1, 1), (theirs, ours)
    assert "validly signed by different authorized functionaries" in ours.err


def test_a_missing_link_fails_both(built: Built, attest: AttestRunner) -> None:
    built.link.unlink()

    theirs, ours = _both(attest, built, _layout(built))

    assert theirs.code == 1, theirs
    assert ours.code == 1, ours
    assert "step 'build' needs 1 link(s) from its functionaries" in ours.err


def test_a_link_signed_by_the_wrong_key_fails_both(built: Built, attest: AttestRunner) -> None:
    """Re-signed by another key and put where the authorised functionary's link belongs."""
    forged = _resign(built.link, built.other)
    forged.dump(str(built.link))

    theirs, ours = _both(attest, built, _layout(built))

    assert theirs.code == 1, theirs
    assert ours.code == 1, ours
    assert "a link signed by a key the layout does not authorise" in ours.err


def test_a_link_signed_by_the_wrong_key_under_its_own_name_fails_both(built: Built, attest: AttestRunner) -> None:
    forged = _resign(built.link, built.other)
    built.link.unlink()
    forged.dump(str(built.root / "links" / f"build.{forged.signatures[0]['keyid'][:8]}.link"))

    theirs, ours = _both(attest, built, _layout(built))

    assert (theirs.code, ours.code) == (1, 1), (theirs, ours)


def test_a_layout_signed_by_another_key_fails_both(built: Built, attest: AttestRunner) -> None:
    theirs, ours = _both(attest, built, _layout(built, signer=built.other))

    assert (theirs.code, ours.code) == (1, 1), (theirs, ours)
    assert f"is not signed by layout key {built.owner.public}" in ours.err


def test_an_expired_layout_fails_both(built: Built, attest: AttestRunner) -> None:
    theirs, ours = _both(attest, built, _layout(built, expires=datetime.now(UTC) - timedelta(days=1)))

    assert (theirs.code, ours.code) == (1, 1), (theirs, ours)
    assert "expired" in ours.err


def test_a_product_the_layout_disallows_fails_both(built: Built, attest: AttestRunner) -> None:
    theirs, ours = _both(attest, built, _layout(built, products=[["CREATE", ARTIFACT], ["DISALLOW", "*"]]))

    assert (theirs.code, ours.code) == (1, 1), (theirs, ours)
    assert "'DISALLOW *' matched the following artifacts: ['dist/sub/data.bin']" in ours.err


def test_a_link_about_another_build_passes_in_toto_but_not_attest(built: Built, attest: AttestRunner) -> None:
    """in-toto-verify checks the links, not the artefact; attest requires the artefact among the products."""
    (built.root / "build.py").write_text(BUILD_SCRIPT.replace("app built at", "app v2 built at"))
    git(built.root, "commit", "-q", "-am", "v2")
    rebuilt = attest("build", "--signer", built.dev.private, "--artifact", "dist/", "--", *COMMAND, cwd=built.root)
    assert rebuilt.code == 0, rebuilt

    theirs, ours = _both(attest, built, _layout(built))

    assert theirs.code == 0, theirs
    assert ours.code == 1, ours
    assert "is not among the 2 product(s) of its last step 'build'" in ours.err


def test_a_layout_with_inspections_is_refused_by_attest_not_run(built: Built, attest: AttestRunner) -> None:
    """in-toto-verify runs an inspection's command; attest runs none and says so (exit 3)."""
    marker = built.root / "inspection-ran"
    inspection = Inspection(name="check", run=[sys.executable, "-c", f"open({str(marker)!r}, 'w')"],
                            expected_materials=[["ALLOW", "*"]], expected_products=[["ALLOW", "*"]])
    layout = _layout(built, inspect=[inspection])

    ours = attest_verify(attest, built, layout)
    assert ours.code == 3, ours
    assert "has inspections ('check')" in ours.err
    assert not marker.exists()

    theirs = in_toto_verify(built, layout)
    assert theirs.code == 0, theirs
    assert marker.exists()


def test_the_provenance_is_still_required(built: Built, attest: AttestRunner) -> None:
    """A layout that passes never replaces the provenance check: another --key fails the run."""
    layout = _layout(built)
    result = attest("verify", ARTIFACT, "--attestation", "provenance.intoto.jsonl", "--key", built.other.public,
                    "--layout", layout, "--layout-key", built.owner.public, cwd=built.root)

    assert result.code == 1, result
    assert "in-toto" not in result.err


def test_unreadable_layout_or_key_exits_3(built: Built, attest: AttestRunner) -> None:
    layout = _layout(built)
    missing_layout = attest_verify(attest, built, built.root / "links" / "none.layout")
    missing_key = attest("verify", ARTIFACT, "--attestation", "provenance.intoto.jsonl", "--key", built.dev.public,
                         "--layout", layout, "--layout-key", built.root / "none.pem", cwd=built.root)
    (built.root / "links" / "junk.layout").write_text("{not json")
    junk = attest_verify(attest, built, built.root / "links" / "junk.layout")

    assert missing_layout.code == 3, missing_layout
    assert "cannot read in-toto layout" in missing_layout.err
    assert missing_key.code == 3, missing_key
    assert "cannot read public key" in missing_key.err
    assert junk.code == 3, junk
    assert "is not valid JSON" in junk.err
    assert all("Traceback" not in r.err for r in (missing_layout, missing_key, junk))


def test_layout_without_its_key_is_a_usage_error(built: Built, attest: AttestRunner) -> None:
    no_key = attest("verify", ARTIFACT, "--attestation", "provenance.intoto.jsonl", "--key", built.dev.public,
                    "--layout", _layout(built), cwd=built.root)
    key_alone = attest("verify", ARTIFACT, "--attestation", "provenance.intoto.jsonl", "--key", built.dev.public,
                       "--layout-key", built.owner.public, cwd=built.root)

    assert no_key.code == 2, no_key
    assert "--layout needs --layout-key PEM" in no_key.err
    assert key_alone.code == 2, key_alone


def test_links_are_found_in_link_dir(built: Built, attest: AttestRunner, tmp_path: Path) -> None:
    layout = _layout(built)
    moved = tmp_path / "elsewhere"
    moved.mkdir()
    shutil.move(str(layout), moved / "root.layout")

    beside = attest_verify(attest, built, moved / "root.layout")
    given = attest_verify(attest, built, moved / "root.layout", "--link-dir", str(built.root / "links"))

    assert beside.code == 1, beside
    assert given.code == 0, given
