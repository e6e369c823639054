"""A Rekor-v1-like transparency log: an RFC 6962 Merkle tree of canonical entries, signed by one key.

Each accepted entry gets an inclusion proof against the current tree head, a checkpoint (the
tree head as a signed note) and a signed entry timestamp (SET). Only the two kinds sigstore-python
writes are accepted, `hashedrekord` 0.0.1 and `dsse` 0.0.1, and only with valid signatures.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import threading
import time
from typing import Any

import rfc8785
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed

from ._encoding import b64, key_id

LOG_NAME = "attest-local-rekor"
_HASHES: dict[str, type[hashes.HashAlgorithm]] = {
    "sha256": hashes.SHA256,
    "sha384": hashes.SHA384,
    "sha512": hashes.SHA512,
}


class EntryRejected(Exception):
    """The proposed entry is malformed, of an unsupported kind, or its signature does not verify."""


def leaf_hash(data: bytes) -> bytes:
    """RFC 6962 §2.1 leaf hash."""
    return hashlib.sha256(b"\x00" + data).digest()


def _node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    """The largest power of two smaller than `n` (n >= 2)."""
    return 1 << ((n - 1).bit_length() - 1)


class MerkleTree:
    """An append-only RFC 6962 Merkle tree (recomputed on demand: fine for a test log)."""

    def __init__(self) -> None:
        """Start empty."""
        self._leaves: list[bytes] = []

    @property
    def size(self) -> int:
        """The number of leaves."""
        return len(self._leaves)

    def append(self, data: bytes) -> int:
        """Add `data` as the next leaf and return its index."""
        self._leaves.append(leaf_hash(data))
        return len(self._leaves) - 1

    def root(self, size: int) -> bytes:
        """MTH(D[0:size]), the root hash of the tree's first `size` leaves."""
        return self._subtree_root(0, size)

    def _subtree_root(self, start: int, end: int) -> bytes:
        n = end - start
        if n == 0:
            return hashlib.sha256(b"").digest()
        if n == 1:
            return self._leaves[start]
        k = _split(n)
        return _node_hash(self._subtree_root(start, start + k), self._subtree_root(start + k, end))

    def inclusion_proof(self, index: int, size: int) -> list[bytes]:
        """PATH(index, D[0:size]) of RFC 6962 §2.1.1: sibling hashes from the leaf level upwards."""

        def path(m: int, start: int, end: int) -> list[bytes]:
            n = end - start
            if n == 1:
                return []
            k = _split(n)
            if m < k:
                return [*path(m, start, start + k), self._subtree_root(start + k, end)]
            return [*path(m - k, start + k, end), self._subtree_root(start, start + k)]

        return path(index, 0, size)


def _verifier_key(pem: bytes) -> ec.EllipticCurvePublicKey:
    """The ECDSA key in a PEM certificate or PEM public key, as Rekor accepts either."""
    key = (
        x509.load_pem_x509_certificate(pem).public_key()
        if b"CERTIFICATE" in pem
        else serialization.load_pem_public_key(pem)
    )
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise EntryRejected("only ECDSA verifiers are supported")
    return key


def _hashedrekord_body(spec: dict[str, Any]) -> dict[str, Any]:
    """The stored form of a hashedrekord 0.0.1 entry, after checking its signature over the digest."""
    algorithm = spec["data"]["hash"]["algorithm"]
    if algorithm not in _HASHES:
        raise EntryRejected(f"unsupported hash algorithm {algorithm!r}")
    digest = bytes.fromhex(spec["data"]["hash"]["value"])
    signature = base64.b64decode(spec["signature"]["content"], validate=True)
    verifier = spec["signature"]["publicKey"]["content"]
    try:
        _verifier_key(base64.b64decode(verifier)).verify(
            signature, digest, ec.ECDSA(Prehashed(_HASHES[algorithm]()))
        )
    except InvalidSignature as e:
        raise EntryRejected("the signature does not verify over the digest") from e
    return {
        "apiVersion": "0.0.1",
        "kind": "hashedrekord",
        "spec": {
            "data": {"hash": {"algorithm": algorithm, "value": digest.hex()}},
            "signature": {"content": b64(signature), "publicKey": {"content": verifier}},
        },
    }


def _dsse_body(spec: dict[str, Any]) -> dict[str, Any]:
    """The stored form of a dsse 0.0.1 entry: envelope and payload hashes, signatures with their verifiers."""
    envelope_json: str = spec["proposedContent"]["envelope"]
    verifiers: list[str] = spec["proposedContent"]["verifiers"]
    envelope = json.loads(envelope_json)
    payload_type: bytes = envelope["payloadType"].encode()
    payload = base64.b64decode(envelope["payload"], validate=True)
    pae = b"DSSEv1 %d %b %d %b" % (len(payload_type), payload_type, len(payload), payload)
    keys = [(verifier, _verifier_key(base64.b64decode(verifier))) for verifier in verifiers]

    signatures = []
    for entry in envelope["signatures"]:
        signature = base64.b64decode(entry["sig"], validate=True)
        for verifier, key in keys:
            try:
                key.verify(signature, pae, ec.ECDSA(hashes.SHA256()))
            except InvalidSignature:
                continue
            signatures.append({"signature": b64(signature), "verifier": verifier})
            break
        else:
            raise EntryRejected("a DSSE signature does not verify with any of the verifiers")
    if not signatures:
        raise EntryRejected("the DSSE envelope has no signatures")
    return {
        "apiVersion": "0.0.1",
        "kind": "dsse",
        "spec": {
            "envelopeHash": {
                "algorithm": "sha256",
                "value": hashlib.sha256(envelope_json.encode()).hexdigest(),
            },
            "payloadHash": {"algorithm": "sha256", "value": hashlib.sha256(payload).hexdigest()},
            "signatures": signatures,
        },
    }


_KINDS = {("hashedrekord", "0.0.1"): _hashedrekord_body, ("dsse", "0.0.1"): _dsse_body}


class TransparencyLog:
    """One Rekor v1 shard with an ECDSA P-256 key (SETs and checkpoints)."""

    def __init__(self) -> None:
        """Generate the log key and start an empty tree."""
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.tree_id = secrets.randbits(62)
        self._tree = MerkleTree()
        self._lock = threading.Lock()

    @property
    def log_id(self) -> bytes:
        """SHA-256 of the log key's SubjectPublicKeyInfo; its first 4 bytes are the checkpoint key hint."""
        return key_id(self.key.public_key())

    def add(self, proposed: dict[str, Any]) -> dict[str, Any]:
        """Integrate a proposed entry and return Rekor's `POST /api/v1/log/entries` response body."""
        try:
            make_body = _KINDS[(proposed["kind"], proposed["apiVersion"])]
            body = rfc8785.dumps(make_body(proposed["spec"]))
        except (KeyError, TypeError, ValueError) as e:
            raise EntryRejected(f"malformed or unsupported entry: {e!r}") from e

        with self._lock:
            index = self._tree.append(body)
            size = self._tree.size
            root = self._tree.root(size)
            proof = self._tree.inclusion_proof(index, size)
            checkpoint = self._checkpoint(size, root)
        integrated_time = int(time.time())
        body_b64 = b64(body)
        entry_timestamp: dict[str, str | int] = {
            "body": body_b64,
            "integratedTime": integrated_time,
            "logID": self.log_id.hex(),
            "logIndex": index,
        }
        return {
            leaf_hash(body).hex(): {
                **entry_timestamp,
                "verification": {
                    "inclusionProof": {
                        "checkpoint": checkpoint,
                        "hashes": [h.hex() for h in proof],
                        "logIndex": index,
                        "rootHash": root.hex(),
                        "treeSize": size,
                    },
                    "signedEntryTimestamp": b64(self._sign(rfc8785.dumps(entry_timestamp))),
                },
            }
        }

    def info(self) -> dict[str, Any]:
        """Rekor's `GET /api/v1/log` response body: the current tree head."""
        with self._lock:
            size = self._tree.size
            root = self._tree.root(size)
            checkpoint = self._checkpoint(size, root)
        return {
            "rootHash": root.hex(),
            "treeSize": size,
            "signedTreeHead": checkpoint,
            "treeID": str(self.tree_id),
            "inactiveShards": [],
        }

    def _checkpoint(self, size: int, root: bytes) -> str:
        """The tree head as a signed note: origin, size, root hash, a blank line, then one signature line.

        The signature line is `— NAME base64(key hint || signature)`, the key hint being the first
        4 bytes of the log id; the signature covers the note text up to and including its last newline.
        """
        note = f"{LOG_NAME} - {self.tree_id}\n{size}\n{b64(root)}\n"
        signature = self._sign(note.encode())
        return f"{note}\n\u2014 {LOG_NAME} {b64(self.log_id[:4] + signature)}\n"

    def _sign(self, data: bytes) -> bytes:
        return self.key.sign(data, ec.ECDSA(hashes.SHA256()))
