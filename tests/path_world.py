"""Two stacks through three environments, for the tests of the path (issue 19): built once per module.

infra and app come from two repositories. infra is built twice (v1, v2) and app twice (v1, v2), each build
writing its own bytes, into one store. Three releases, each signed by the release manager, app needing infra:

    r1  infra v1, app v1
    r2  infra v1, app v2      (infra did not change)
    r3  infra v2, app v2

The policy has stages dev, stg and prd, each with its verifier and its deployer; prd requires that stg
ran a release first (``require-deployed: [stg]``). alice, bob and carol are people who may approve. Each
test works on its own copy of the store (:meth:`PathWorld.copy`), through the real CLI.
"""

from __future__ import annotations

import json
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.conftest import KeyPair, Result, git, make_keypair, make_repo, run_attest

#: The deployers of each environment, by key name.
DEPLOYERS = {"dev": "dev-deploy", "stg": "stg-deploy", "prd": "prd-deploy"}
_BUILD = """\
import pathlib
out = pathlib.Path("dist")
out.mkdir(exist_ok=True)
version = pathlib.Path("VERSION").read_text().strip()
(out / "{name}.zip").write_bytes(b"{name} " + version.encode())
"""


@dataclass(frozen=True)
class PathWorld:
    root: Path
    keys: dict[str, KeyPair]

    @property
    def policy(self) -> Path:
        return self.root / "policy.yaml"

    def release(self, name: str) -> Path:
        return self.root / f"{name}.intoto.jsonl"

    def copy(self, tmp: Path) -> Path:
        """A copy of the built store, for one test."""
        store = tmp / "store"
        shutil.copytree(self.root / "store", store)
        return store

    def deploy(self, store: Path | str, env: str, release: str, component: str, *, status: str = "succeeded",
               signer: str | None = None, more: tuple[str, ...] = (), tmp: Path | None = None) -> Result:
        """``attest deploy record`` of ``component`` of ``release`` to ``env``."""
        out = (tmp or self.root) / f"deployment-{env}-{release}-{component}-{status}.intoto.jsonl"
        return run_attest("deploy", "record", "--env", env, "--release", self.release(release), "--component",
                          component, "--status", status, "--signer", self.keys[signer or DEPLOYERS[env]].private,
                          "--policy", self.policy, "--store", store, "-o", out, *more, cwd=self.root)

    def gate(self, store: Path | str, env: str, release: str, *more: str, policy: Path | None = None) -> Result:
        """``attest verify --release`` of ``release`` for ``env`` (``--component`` and the rest in ``more``)."""
        return run_attest("verify", "--release", self.release(release), "--store", store, "--policy",
                          policy or self.policy, "--stage", env, *more, cwd=self.root)

    def approve(self, store: Path | str, release: str, who: str, *more: str, policy: Path | None = None,
                tmp: Path | None = None) -> Result:
        """``attest approve --release`` of ``release`` as a hotfix to prd, signed by ``who``."""
        out = (tmp or self.root) / f"approval-{release}-{who}.intoto.jsonl"
        return run_attest("approve", "--release", self.release(release), "--hotfix", "--stage", "prd", "--signer",
                          self.keys[who].private, "--policy", policy or self.policy, "--store", store, "-o", out,
                          "--approver", who, *more, cwd=self.root)

    def status(self, store: Path | str, *more: str, policy: Path | None = None) -> Result:
        return run_attest("status", "--store", store, "--policy", policy or self.policy, *more, cwd=self.root)

    def artifacts(self, release: str, component: str) -> list[dict[str, Any]]:
        """The component's artefacts as the signed manifest names them."""
        from verify.formats.envelope import Envelope

        statement = json.loads(Envelope.from_json(self.release(release).read_bytes().strip()).payload)
        found: list[dict[str, Any]] = next(c["artifacts"] for c in statement["predicate"]["components"]
                                           if c["name"] == component)
        return found


def _build(repo: Path, name: str, version: str, key: KeyPair) -> None:
    (repo / "VERSION").write_text(version + "\n")
    git(repo, "add", "VERSION", "build.py")
    git(repo, "commit", "-q", "-m", version)
    built = run_attest("build", "--signer", key.private, "--artifact", "dist/", "--publish", "../store", "-o",
                       f"../{name}-{version}.intoto.jsonl", "--", sys.executable, "build.py", cwd=repo)
    assert built.code == 0, built


def policy_text(keys: dict[str, KeyPair], *, prd: str = "require-deployed: [stg]") -> str:
    """The policy: three stages with their verifiers and deployers; ``prd`` adds to prd's rules."""
    identities = "\n".join(f"  {name}: {{keys: [\"{keys[name].public}\"]}}" for name in sorted(keys))
    return f"""\
version: 1
identities:
{identities}
provenance:
  signed-by: [dev]
components:
  infra: {{source: {{uri: github.com/acme/infra, branches: [main]}}}}
  app: {{source: {{uri: github.com/acme/app, branches: [main]}}}}
stages:
  dev: {{verifier: dev-verify, deployed-by: [dev-deploy]}}
  stg: {{verifier: stg-verify, deployed-by: [stg-deploy]}}
  prd:
    verifier: prd-verify
    deployed-by: [prd-deploy]
    {prd}
releases: {{signed-by: [release]}}
"""


def make_world(root: Path) -> PathWorld:
    names = ("dev", "release", "dev-verify", "stg-verify", "prd-verify", "dev-deploy", "stg-deploy", "prd-deploy",
             "alice", "bob", "carol")
    keys = {name: make_keypair(root, name) for name in names}
    for name in ("infra", "app"):
        repo = make_repo(root / name, origin=f"git@github.com:acme/{name}.git")
        (repo / "build.py").write_text(_BUILD.format(name=name))
        _build(repo, name, "v1", keys["dev"])
        _build(repo, name, "v2", keys["dev"])
    for release, infra, app in (("r1", "v1", "v1"), ("r2", "v1", "v2"), ("r3", "v2", "v2")):
        made = run_attest("release", "create", "--name", release, "--component", f"infra=infra-{infra}.intoto.jsonl",
                          "--component", f"app=app-{app}.intoto.jsonl", "--needs", "app=infra", "--signer",
                          keys["release"].private, "-o", f"{release}.intoto.jsonl", cwd=root)
        assert made.code == 0, made
    (root / "policy.yaml").write_text(policy_text(keys))
    return PathWorld(root=root, keys=keys)
