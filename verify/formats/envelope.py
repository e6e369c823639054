"""DSSE envelopes: parsing, serialisation and the pre-authentication encoding.

https://github.com/secure-systems-lab/dsse/blob/master/envelope.md
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any

from verify.errors import MalformedEvidence
from verify.formats import strict_json
from verify.formats.encoding import b64decode
from verify.limits import MAX_SIGNATURES

__all__ = ["INTOTO_PAYLOAD_TYPE", "Envelope", "Signature", "b64decode", "pae"]

INTOTO_PAYLOAD_TYPE = "application/vnd.in-toto+json"


def pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE v1 pre-authentication encoding: the bytes that are actually signed."""
    kind = payload_type.encode("utf-8")
    return b"DSSEv1 %d %s %d %s" % (len(kind), kind, len(payload), payload)


@dataclass(frozen=True)
class Signature:
    keyid: str
    sig: bytes


@dataclass(frozen=True)
class Envelope:
    payload_type: str
    payload: bytes
    signatures: tuple[Signature, ...]

    @classmethod
    def from_dict(cls, obj: Any, *, what: str = "envelope") -> Envelope:
        """Parse a DSSE envelope from decoded JSON. Never mutates ``obj``."""
        if not isinstance(obj, dict):
            raise MalformedEvidence(f"{what} is not a JSON object")
        for key in ("payload", "payloadType", "signatures"):
            if key not in obj:
                raise MalformedEvidence(f"{what} has no {key!r} field; is it a DSSE envelope?")
        payload_type = obj["payloadType"]
        if not isinstance(payload_type, str):
            raise MalformedEvidence(f"{what} payloadType is not a string")
        payload = b64decode(obj["payload"], what=f"{what} payload")
        raw_sigs = obj["signatures"]
        if not isinstance(raw_sigs, list) or not raw_sigs:
            raise MalformedEvidence(f"{what} has no signatures")
        if len(raw_sigs) > MAX_SIGNATURES:
            raise MalformedEvidence(f"{what} has {len(raw_sigs)} signatures; at most {MAX_SIGNATURES} are read")
        signatures = []
        for i, raw in enumerate(raw_sigs):
            if not isinstance(raw, dict) or "sig" not in raw:
                raise MalformedEvidence(f"{what} signature {i} has no 'sig' field")
            keyid = raw.get("keyid", "")
            if keyid is None:
                keyid = ""
            if not isinstance(keyid, str):
                raise MalformedEvidence(f"{what} signature {i} keyid is not a string")
            sig = b64decode(raw["sig"], what=f"{what} signature {i}")
            if not sig:
                raise MalformedEvidence(f"{what} signature {i} is empty")
            signatures.append(Signature(keyid=keyid, sig=sig))
        return cls(payload_type=payload_type, payload=payload, signatures=tuple(signatures))

    @classmethod
    def from_json(cls, data: str | bytes, *, what: str = "envelope") -> Envelope:
        return cls.from_dict(strict_json.loads(data, what=what), what=what)

    def to_dict(self) -> dict[str, Any]:
        return {
            "payloadType": self.payload_type,
            "payload": base64.b64encode(self.payload).decode("ascii"),
            "signatures": [
                {"keyid": s.keyid, "sig": base64.b64encode(s.sig).decode("ascii")} for s in self.signatures
            ],
        }

    def to_json_line(self) -> bytes:
        """One line of a ``.intoto.jsonl`` file (compact JSON and a newline)."""
        return strict_json.dumps_canonical(self.to_dict()) + b"\n"

    def pae(self) -> bytes:
        return pae(self.payload_type, self.payload)
