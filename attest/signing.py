"""Signing statements after the build (approve, release, verify --emit-vsa), writing and publishing them."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from attest.signers import Signer
    from verify.policy import Policy

_DIGEST_ARG = re.compile(r"sha256:([0-9a-f]{64})")


def artifact_digests(artifact: str) -> tuple[str, dict[str, str]]:
    """(subject name, digests) of ARTIFACT: a file (sha256 and blake3) or ``sha256:<hex>``."""
    from verify.digests import hash_file
    from verify.errors import InputError

    match = _DIGEST_ARG.fullmatch(artifact)
    if match:
        return artifact, {"sha256": match.group(1)}
    path = Path(artifact)
    if not path.is_file():
        raise InputError(f"artefact {artifact} does not exist or is not a file; give a file or sha256:<hex>")
    return path.name, hash_file(path, ("sha256", "blake3"))


def sign_statement(document: Mapping[str, Any], *, signer_uri: str, insecure_key_permissions: bool = False) -> bytes:
    """Sign ``document`` as a DSSE envelope, check the signature, and return the .intoto.jsonl line."""
    from attest.signers import from_uri

    return sign_with(document, from_uri(signer_uri, insecure_permissions=insecure_key_permissions))


def sign_with(document: Mapping[str, Any], signer: Signer) -> bytes:
    """``document`` signed by ``signer`` as a DSSE envelope (the signature checked), as a .intoto.jsonl line."""
    from attest.signers import sign_envelope
    from verify.formats import strict_json
    from verify.formats.envelope import INTOTO_PAYLOAD_TYPE

    envelope = sign_envelope(signer, payload_type=INTOTO_PAYLOAD_TYPE,
                             payload=strict_json.dumps_canonical(dict(document)))
    return envelope.to_json_line()


def write_and_publish(line: bytes, *, output: Path, store: str | None, kind: str,
                      artifacts: Sequence[Mapping[str, str]], attach: Callable[[bytes], str] | None = None,
                      last: Callable[[], str] | None = None) -> list[str]:
    """Publish ``line`` under the sha256 of each artefact (its digests) in ``artifacts`` and ``attach`` it (to an
    image in its registry), then ``last`` (a put that makes it count, which must come after the others), then write
    it to ``output`` atomically: a failed publish leaves no output that looks like success, and a rerun completes it
    (puts of the same bytes are idempotent). (The store's blake3 index is written by the build that published the
    artefact: a stage's role may add VSAs to a store and nothing else.)"""
    from attest._atomic import write_atomic

    published = []
    if store:
        from attest.stores import publishable, sha256_of

        target = publishable(store)
        published = [target.put_attestation(sha256_of(digests, what=kind, store=target.uri), kind, line)
                     for digests in artifacts]
    if attach is not None:
        published.append(attach(line))
    if last is not None:
        published.append(last())
    write_atomic(output, line)
    return published


def output_apart(output: Path, *, option: str, policy: Policy | None = None, store: str | None = None) -> None:
    """A usage error, before any work, if ``output`` would replace a file the run reads beyond its options' own
    values: a key file the policy pins (the next run would trust no key), or anything in the local ``store`` (a
    store is written only by publishing, once; the command publishes its statement there itself)."""
    import os

    from attest._atomic import same_file
    from verify.errors import RequestError

    pinned = [(name, Path(key.name)) for name, identity in (policy.identities.items() if policy else ())
              for key in identity.keys if not key.name.startswith("arn:")]
    pinned += [("the policy's revocations", Path(key.name)) for key in (policy.revoked_keys if policy else ())]
    pinned += [("an identity (a KMS key's PEM, say)", Path(file)) for file in (policy.key_files if policy else ())]
    for who, path in pinned:
        if same_file(output, path):
            raise RequestError(f"{option} {output} is the key file {path} the policy pins for {who}; write the "
                               "output elsewhere")
    if store is not None and "://" not in store:
        from attest.stores.layout import DEPLOYMENTS_FOLDER, INDEX_FOLDER

        target = os.path.realpath(output)
        for tree in ("sha256", INDEX_FOLDER, DEPLOYMENTS_FOLDER):  # what a store's readers read (its other files: not)
            root = os.path.realpath(os.path.join(store, tree))
            if os.path.commonpath([root, target]) == root:
                raise RequestError(f"{option} {output} is inside the store {store} ({tree}/), which is written only "
                                   "by publishing (the command publishes there itself); write the output elsewhere")
