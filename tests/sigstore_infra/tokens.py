"""An OIDC-ish identity provider: mints ES256 JWTs that sigstore-python and the local CA accept.

sigstore-python decodes the token without checking its signature (Fulcio's job); the local CA
does check it, against this minter's key, so a token it did not mint gets no certificate.
"""

from __future__ import annotations

import hashlib
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec

AUDIENCE = "sigstore"
"""The audience sigstore-python requires (its default OAuth client id)."""

GITHUB_ACTIONS_ISSUER = "https://token.actions.githubusercontent.com"
GITHUB_SERVER_URL = "https://github.com"
TOKEN_LIFETIME_SECONDS = 300


class InvalidToken(Exception):
    """The bearer token is not one this minter issued, or it is expired or malformed."""


def _github_workflow_claims(identity: str) -> dict[str, Any]:
    """Claims a GitHub Actions token carries for the workflow identity `identity`.

    `identity` is what Fulcio puts in the SAN: `https://github.com/OWNER/REPO/PATH@REF`.
    The commit is a stable fake derived from the identity.
    """
    job_workflow_ref = identity.removeprefix(f"{GITHUB_SERVER_URL}/")
    workflow_path, _, ref = job_workflow_ref.partition("@")
    owner, repo, *_ = workflow_path.split("/")
    sha = hashlib.sha1(identity.encode(), usedforsecurity=False).hexdigest()
    return {
        "sub": f"repo:{owner}/{repo}:ref:{ref}",
        "job_workflow_ref": job_workflow_ref,
        "job_workflow_sha": sha,
        "workflow_ref": job_workflow_ref,
        "workflow_sha": sha,
        "workflow": workflow_path.rsplit("/", 1)[-1],
        "repository": f"{owner}/{repo}",
        "repository_id": "1",
        "repository_owner": owner,
        "repository_owner_id": "1",
        "repository_visibility": "public",
        "ref": ref,
        "sha": sha,
        "event_name": "push",
        "runner_environment": "github-hosted",
        "run_id": "1",
        "run_attempt": "1",
    }


@dataclass
class TokenMinter:
    """Mints and checks identity tokens signed with a fresh ECDSA P-256 key."""

    key: ec.EllipticCurvePrivateKey = field(default_factory=lambda: ec.generate_private_key(ec.SECP256R1()))

    def mint(self, identity: str, issuer: str, **claims: Any) -> str:
        """Return a JWT for `identity` issued by `issuer`, valid for five minutes.

        An identity containing `@` and no scheme is an email (`email`, `email_verified`); a
        `https://github.com/...` identity from the GitHub Actions issuer gets the workflow claims
        Fulcio reads; anything else becomes `sub`. `claims` are added last and override.
        """
        now = int(time.time())
        payload: dict[str, Any] = {
            "iss": issuer,
            "aud": AUDIENCE,
            "iat": now,
            "nbf": now,
            "exp": now + TOKEN_LIFETIME_SECONDS,
            "jti": str(uuid.uuid4()),
            "sub": identity,
        }
        if "@" in identity and "://" not in identity:
            payload |= {"email": identity, "email_verified": True}
        elif issuer == GITHUB_ACTIONS_ISSUER and identity.startswith(f"{GITHUB_SERVER_URL}/"):
            payload |= _github_workflow_claims(identity)
        payload |= claims
        return jwt.encode(payload, self.key, algorithm="ES256")

    def verify(self, token: str) -> dict[str, Any]:
        """Return the claims of `token` if this minter signed it and it is currently valid."""
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                self.key.public_key(),
                algorithms=["ES256"],
                audience=AUDIENCE,
                options={"require": ["iss", "sub", "aud", "iat", "exp"]},
            )
        except jwt.PyJWTError as e:
            raise InvalidToken(f"identity token rejected: {e}") from e
        return claims
