"""Issue 19, part 5: ``attest status``, what runs where, since when, from verified deployment records alone."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import _clean_env
from tests.conftest_aws import MotoEnv
from tests.path_world import PathWorld, make_world


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> PathWorld:
    return make_world(tmp_path_factory.mktemp("status"))


@pytest.fixture(scope="module")
def deployed(world: PathWorld, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """r1 in dev, stg and prd; then r3 in dev and stg, with a failed r3 infra in prd after r1 ran there."""
    tmp = tmp_path_factory.mktemp("deployed")
    store = world.copy(tmp)
    for env in ("dev", "stg", "prd"):
        for component in ("infra", "app"):
            ran = world.deploy(store, env, "r1", component, tmp=tmp)
            assert ran.code == 0, ran
    for env in ("dev", "stg"):
        for component in ("infra", "app"):
            assert world.deploy(store, env, "r3", component, tmp=tmp).code == 0
    assert world.deploy(store, "prd", "r3", "infra", status="failed", tmp=tmp).code == 0
    return store


def _json(world: PathWorld, store: Path | str, *more: str) -> dict[str, object]:
    result = world.status(store, "--format", "json", *more)
    assert result.code == 0, result
    shown: dict[str, object] = json.loads(result.out)
    return shown


def test_status_says_what_runs_in_each_environment(world: PathWorld, deployed: Path) -> None:
    shown = _json(world, deployed)
    envs = shown["environments"]
    assert isinstance(envs, dict) and shown["path"] == ["dev", "stg", "prd"]  # the policy's order
    assert {env: {c: e["release"] for c, e in comps.items()} for env, comps in envs.items()} == {
        "dev": {"app": "r3", "infra": "r3"}, "stg": {"app": "r3", "infra": "r3"}, "prd": {"app": "r1", "infra": "r1"}}
    infra = envs["prd"]["infra"]
    assert infra["artifacts"] == world.artifacts("r1", "infra") and infra["kind"] == "deploy"
    assert infra["signer"] == "prd-deploy" and len(infra["commit"]) == 40 and infra["since"]
    # prd's last infra deployment failed: it still runs r1, and the failure is shown
    assert infra["lastFailed"]["release"] == "r3" and infra["lastFailed"]["status"] == "failed"
    assert envs["prd"]["app"]["lastFailed"] is None
    # prd is behind stg for both stacks; dev and stg agree
    assert sorted((p["component"], p["from"], p["to"], p["release"], p["runs"]) for p in shown["pending"]) == [
        ("app", "stg", "prd", "r3", "r1"), ("infra", "stg", "prd", "r3", "r1")]
    assert shown["ignored"] == {"count": 0, "reasons": []}
    # of 11 records, only the newest of each component are read (prd infra: the failed one, then r1's)
    assert shown["records"]["indexed"] == 11 and shown["records"]["read"] == 7


def test_the_table_for_people(world: PathWorld, deployed: Path) -> None:
    result = world.status(deployed)
    assert result.code == 0, result
    lines = result.out.splitlines()
    assert lines[0].split() == ["ENV", "COMPONENT", "RELEASE", "COMMIT", "SINCE", "KIND", "SIGNER"]
    assert [line.split()[:3] for line in lines[1:7]] == [
        ["dev", "app", "r3"], ["dev", "infra", "r3"], ["stg", "app", "r3"], ["stg", "infra", "r3"],
        ["prd", "app", "r1"], ["prd", "infra", "r1"]]
    assert "prd infra: the last deployment failed (release r3" in result.out
    assert "prd is behind stg: app r3 is not in prd yet (prd runs r1)" in result.out


def test_one_environment(world: PathWorld, deployed: Path) -> None:
    shown = _json(world, deployed, "--env", "prd")
    assert list(shown["environments"]) == ["prd"] and shown["pending"] == []
    assert shown["records"]["indexed"] == 3


def test_a_forged_or_misfiled_record_is_ignored_and_counted(world: PathWorld, deployed: Path, tmp_path: Path) -> None:
    store = tmp_path / "store"
    shutil.copytree(deployed, store)
    folder = store / "deployments" / "prd" / "app"
    (genuine,) = sorted(folder.iterdir())
    # stg's record of r3's app, put into prd's folder under a newer name: another environment's word
    stg = max((store / "deployments" / "stg" / "app").iterdir())
    (folder / ("99991231T235959000000Z-" + stg.name.split("-", 1)[1])).write_bytes(stg.read_bytes())
    # junk that is not a record, under the newest name of all
    (folder / ("99991231T235959999999Z-" + "0" * 64 + ".intoto.jsonl")).write_bytes(b"{not json\n")
    shown = _json(world, store, "--env", "prd")
    assert shown["environments"]["prd"]["app"]["release"] == "r1"
    assert shown["ignored"]["count"] == 2 and shown["records"]["read"] == 3 + 2
    assert any("is not a key of an identity" in r or "not signed" in r or "signature" in r
               for r in shown["ignored"]["reasons"]), shown["ignored"]
    # with the genuine record gone, nothing is known to run there: never the forged one
    genuine.unlink()
    shown = _json(world, store, "--env", "prd")
    assert shown["environments"]["prd"]["app"]["release"] is None
    # every entry has the keys docs/usage.md lists, whether something runs or not
    keys = {"release", "releaseDigest", "commit", "artifacts", "since", "kind", "signer", "record", "lastFailed"}
    assert set(shown["environments"]["prd"]["app"]) == keys == set(shown["environments"]["prd"]["infra"])
    table = world.status(store, "--env", "prd")
    assert "(nothing known to run)" in table.out and "2 record(s) did not count" in table.out


def test_a_record_for_an_environment_the_policy_does_not_name_is_counted(world: PathWorld, deployed: Path,
                                                                          tmp_path: Path) -> None:
    store = tmp_path / "store"
    shutil.copytree(deployed, store)
    shutil.copytree(store / "deployments" / "stg", store / "deployments" / "qa")
    shown = _json(world, store)
    assert shown["ignored"]["count"] == 1
    assert "4 index entries for environment 'qa', which the policy does not name" in shown["ignored"]["reasons"][0]


def test_an_empty_store_says_nothing_is_deployed(world: PathWorld, tmp_path: Path) -> None:
    store = world.copy(tmp_path)
    result = world.status(store)
    assert result.code == 0 and "nothing deployed:" in result.out and "holds no deployment record" in result.out
    shown = _json(world, store)
    assert shown["environments"] == {"dev": {}, "stg": {}, "prd": {}} and shown["records"]["indexed"] == 0


@pytest.mark.parametrize(("args", "code", "words"), [
    pytest.param(("--env", "qa"), 2, "--env 'qa' is not a stage of the policy whose deployment records someone "
                                     "signs (stages with deployed-by: dev, stg, prd)", id="unknown-env"),
    pytest.param(("--store", "/nonexistent/store"), 3, "store /nonexistent/store is not a directory", id="no-store"),
])
def test_bad_requests(world: PathWorld, deployed: Path, args: tuple[str, ...], code: int, words: str) -> None:
    store = args[1] if args[0] == "--store" else deployed
    result = world.status(store, *(args if args[0] != "--store" else ()))
    assert result.code == code and words in result.err, result


def test_status_on_the_local_aws_endpoint(world: PathWorld, deployed: Path, aws_env: MotoEnv) -> None:
    s3 = aws_env.client("s3")
    s3.create_bucket(Bucket="store", CreateBucketConfiguration={"LocationConstraint": aws_env.region})
    for path in sorted(deployed.rglob("*")):
        if path.is_file():
            s3.put_object(Bucket="store", Key=f"p/{path.relative_to(deployed).as_posix()}", Body=path.read_bytes())
    local, remote = _json(world, deployed), _json(world, "s3://store/p")
    assert remote["environments"] == json.loads(json.dumps(local["environments"]).replace(
        str(deployed), "s3://store/p"))
    assert remote["pending"] == local["pending"] and remote["records"] == local["records"]


#: ``attest`` run by a pipeline runner whose clock is 30 days ahead: the time ``deploy record`` signs.
_AHEAD = """
import sys
from datetime import datetime, timedelta
import attest.cli.deploy as deploy
class Ahead(datetime):
    @classmethod
    def now(cls, tz=None):
        return datetime.now(tz) + timedelta(days=30)
deploy.datetime = Ahead
from attest.cli import main
sys.argv[0] = "attest"
main()
"""


def test_a_record_dated_after_now_does_not_count(world: PathWorld, tmp_path: Path) -> None:
    """A record from a runner whose clock is ahead was the newest by its signed time until that time came: it stayed
    "what runs" whatever was deployed after it, and the order gate believed it too."""
    store = world.copy(tmp_path)
    assert world.deploy(store, "stg", "r1", "infra", tmp=tmp_path).code == 0
    ahead = tmp_path / "ahead.py"
    ahead.write_text(_AHEAD)
    done = subprocess.run([sys.executable, ahead, "deploy", "record", "--env", "stg", "--release", world.release("r3"),
                           "--component", "infra", "--status", "succeeded", "--signer",
                           world.keys["stg-deploy"].private, "--policy", world.policy, "--store", store, "-o",
                           tmp_path / "ahead.intoto.jsonl"], cwd=world.root, env=_clean_env(), capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    shown = _json(world, store, "--env", "stg")
    assert shown["environments"]["stg"]["infra"]["release"] == "r1"
    assert shown["ignored"]["count"] == 1
    assert "after the time of this verification" in shown["ignored"]["reasons"][0], shown["ignored"]
    # r3's app needs infra at r3's artefacts in stg: the record from the future does not say so
    gate = world.gate(store, "stg", "r3", "--component", "app")
    assert gate.code == 1 and "app needs infra" in gate.err, gate
