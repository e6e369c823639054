"""The session-scoped pytest fixture `sigstore_local`: local Sigstore services and their trust files.

Register it once, in tests/conftest.py:

    from tests.sigstore_infra.fixture import sigstore_local  # noqa: F401
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import pytest

from .services import SigstoreServices

_LOCAL_HOSTS = "127.0.0.1,localhost"


class MintToken(Protocol):
    """Signature of `SigstoreLocal.mint_token`."""

    def __call__(self, identity: str, issuer: str, **claims: Any) -> str:
        """Return an identity token for `identity` from `issuer`; `claims` override the defaults."""
        ...


@dataclass(frozen=True)
class SigstoreLocal:
    """What a test needs to sign keylessly against the local services and to verify the result."""

    url: str
    trusted_root_path: Path
    signing_config_path: Path
    trust_config_path: Path
    mint_token: MintToken


@pytest.fixture(scope="session")
def sigstore_local(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SigstoreLocal]:
    """Run the local Fulcio, Rekor and token minter for the session; keep proxies away from them."""
    with pytest.MonkeyPatch.context() as env:
        for name in ("NO_PROXY", "no_proxy"):
            env.setenv(name, ",".join(filter(None, [os.environ.get(name), _LOCAL_HOSTS])))
        with SigstoreServices() as services:
            files = services.write_trust_files(tmp_path_factory.mktemp("sigstore-local"))
            yield SigstoreLocal(
                url=services.url,
                trusted_root_path=files.trusted_root,
                signing_config_path=files.signing_config,
                trust_config_path=files.trust_config,
                mint_token=services.mint_token,
            )
