"""The client-side trust material for the local services, in Sigstore's JSON formats.

`trusted_root.json` (what a verifier trusts), `signing_config.json` (v0.2: where a signer goes)
and `trust_config.json`, the `ClientTrustConfig` that holds both, as `sigstore --trust-config`
and `sigstore.models.ClientTrustConfig.from_json` read it.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from ._encoding import b64, key_id, spki_der
from .ca import ORGANIZATION, CertificateAuthority
from .ct import CTLog
from .tlog import TransparencyLog

TRUSTED_ROOT_MEDIA_TYPE = "application/vnd.dev.sigstore.trustedroot+json;version=0.1"
SIGNING_CONFIG_MEDIA_TYPE = "application/vnd.dev.sigstore.signingconfig.v0.2+json"
CLIENT_TRUST_CONFIG_MEDIA_TYPE = "application/vnd.dev.sigstore.clienttrustconfig.v0.1+json"
OPERATOR = "attest.local"


@dataclass(frozen=True)
class TrustFiles:
    """Where the trust material was written."""

    trusted_root: Path
    signing_config: Path
    trust_config: Path


def _timestamp(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _log_instance(base_url: str, key: ec.EllipticCurvePublicKey, valid_from: dt.datetime) -> dict[str, Any]:
    """A `TransparencyLogInstance` (used for both Rekor and CT logs, both ECDSA P-256 here)."""
    return {
        "baseUrl": base_url,
        "hashAlgorithm": "SHA2_256",
        "publicKey": {
            "rawBytes": b64(spki_der(key)),
            "keyDetails": "PKIX_ECDSA_P256_SHA_256",
            "validFor": {"start": _timestamp(valid_from)},
        },
        "logId": {"keyId": b64(key_id(key))},
    }


def trusted_root(
    *, url: str, ca: CertificateAuthority, tlog: TransparencyLog, ct_log: CTLog, valid_from: dt.datetime
) -> dict[str, Any]:
    """The trusted root for the services at `url`: the CA chain, the Rekor key, the CT key."""
    certificates = [c.public_bytes(serialization.Encoding.DER) for c in ca.chain]
    return {
        "mediaType": TRUSTED_ROOT_MEDIA_TYPE,
        "tlogs": [_log_instance(url, tlog.key.public_key(), valid_from)],
        "certificateAuthorities": [
            {
                "subject": {"organization": ORGANIZATION, "commonName": "attest local root"},
                "uri": url,
                "certChain": {"certificates": [{"rawBytes": b64(der)} for der in certificates]},
                "validFor": {"start": _timestamp(valid_from)},
            }
        ],
        "ctlogs": [_log_instance(f"{url}/ct", ct_log.key.public_key(), valid_from)],
        "timestampAuthorities": [],
    }


def signing_config(*, url: str, valid_from: dt.datetime) -> dict[str, Any]:
    """A v0.2 signing config naming the local CA, one Rekor v1 log, the local issuer and no TSA."""

    def service(service_url: str) -> dict[str, Any]:
        return {
            "url": service_url,
            "majorApiVersion": 1,
            "validFor": {"start": _timestamp(valid_from)},
            "operator": OPERATOR,
        }

    return {
        "mediaType": SIGNING_CONFIG_MEDIA_TYPE,
        "caUrls": [service(url)],
        "oidcUrls": [service(f"{url}/oidc")],  # a placeholder: tokens are minted in-process
        "rekorTlogUrls": [service(url)],
        "tsaUrls": [],
        "rekorTlogConfig": {"selector": "ANY"},
        "tsaConfig": {"selector": "ANY"},
    }


def write_trust_files(
    directory: Path,
    *,
    url: str,
    ca: CertificateAuthority,
    tlog: TransparencyLog,
    ct_log: CTLog,
    valid_from: dt.datetime,
) -> TrustFiles:
    """Write the three trust files into `directory` and return their paths."""
    root = trusted_root(url=url, ca=ca, tlog=tlog, ct_log=ct_log, valid_from=valid_from)
    config = signing_config(url=url, valid_from=valid_from)
    documents = {
        "trusted_root.json": root,
        "signing_config.json": config,
        "trust_config.json": {
            "mediaType": CLIENT_TRUST_CONFIG_MEDIA_TYPE,
            "trustedRoot": root,
            "signingConfig": config,
        },
    }
    directory.mkdir(parents=True, exist_ok=True)
    for name, document in documents.items():
        (directory / name).write_text(json.dumps(document, indent=2) + "\n")
    return TrustFiles(
        trusted_root=directory / "trusted_root.json",
        signing_config=directory / "signing_config.json",
        trust_config=directory / "trust_config.json",
    )
