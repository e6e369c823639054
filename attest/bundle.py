"""Sigstore bundles out: ``NAME.sigstore.json`` beside ``NAME.intoto.jsonl``.

A key (or KMS) signed build gets a Sigstore bundle v0.3 holding the very
envelope of the ``.intoto.jsonl`` line, with the signer's keyid as the
``verificationMaterial.publicKey.hint`` and no transparency log entries::

    {"mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json",
     "verificationMaterial": {"publicKey": {"hint": KEYID}, "tlogEntries": []},
     "dsseEnvelope": {"payload": B64, "payloadType": "application/vnd.in-toto+json",
                      "signatures": [{"keyid": KEYID, "sig": B64}]}}

That is the protobuf-specs JSON form (camelCase names, standard base64 bytes).
It is written by hand rather than through sigstore-models, whose pydantic
import would cost a key-signed build most of a second; the tests parse what
is written with sigstore-models' ``Bundle`` and with sigstore-js. A keyless
bundle is sigstore-python's own serialisation (:mod:`attest.signers.sigstore`).

A bundle is written as one line of compact JSON, so the same bytes can also go
into a store's ``.intoto.jsonl`` files, which hold one document a line.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from attest._atomic import write_atomic
from verify.formats import strict_json
from verify.formats.envelope import Envelope

__all__ = ["BUNDLE_MEDIA_TYPE", "bundle_path", "key_bundle", "write_bundle"]

BUNDLE_MEDIA_TYPE = "application/vnd.dev.sigstore.bundle.v0.3+json"
_SUFFIXES = (".intoto.jsonl", ".jsonl", ".json")


def bundle_path(output: Path) -> Path:
    """Where the bundle for the envelope file ``output`` goes.

    ``provenance.intoto.jsonl`` -> ``provenance.sigstore.json``; another name
    loses a ``.jsonl`` or ``.json`` suffix and gains ``.sigstore.json``.
    """
    name = output.name
    for suffix in _SUFFIXES:
        if name.endswith(suffix) and len(name) > len(suffix):
            name = name[: -len(suffix)]
            break
    return output.with_name(f"{name}.sigstore.json")


def key_bundle(envelope: Envelope, *, hint: str) -> bytes:
    """The bundle for an envelope signed by a pinned key: one line of compact JSON and a newline.

    ``hint`` names the key (its keyid); like the envelope's keyid it is
    unauthenticated, and a verifier finds the key in its own trust material.
    """
    if len(envelope.signatures) != 1:
        raise ValueError(f"a Sigstore bundle carries exactly one signature, not {len(envelope.signatures)}")
    document: dict[str, Any] = {
        "mediaType": BUNDLE_MEDIA_TYPE,
        "verificationMaterial": {"publicKey": {"hint": hint}, "tlogEntries": []},
        "dsseEnvelope": envelope.to_dict(),
    }
    return strict_json.dumps_canonical(document) + b"\n"


def write_bundle(path: Path, data: bytes) -> None:
    """Write bundle bytes atomically (a reader never sees half a bundle)."""
    write_atomic(path, data)
