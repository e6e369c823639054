"""Audit: many attestations in, one history per artefact and a list of anomalies out.

The plan, one function a step:

  (1) read    attestation files arrive as ``(uri, bytes)``, one at a time; none is kept
  (2) check   each envelope or bundle (in worker processes): parse it, find which policy
              identities sign it -- pinned keys (a keyid only orders the keys tried), or a
              pinned Sigstore identity for a keyless bundle, verified offline against the
              trusted root -- parse its statement and keep a small :class:`_Fact` -- never
              the envelope
  (3) fold    each fact into the record of every artefact it names (by subject sha256),
              judging its signer against what the policy lets that identity sign, and a
              provenance against the source, builder and clean-tree rules
  (4) stored  then each stored artefact's bytes, hashed by the caller, against the sha256 its
              address names (``sha256/<hex>/artifact/NAME``): other bytes are ``tampered-artifact``
  (5) judge   each artefact's whole history once everything is read: stages in the
              policy's order, their times, approvals, and reproducibility across builds
  (6) report  artefacts, releases and anomalies, sorted, as an :class:`AuditReport`

Memory grows with the number of artefacts and the facts about them, not with the bytes read.

Who signed: the identities of the policy whose pinned keys verify an envelope's
signature, or, for a keyless Sigstore bundle (a certificate and a log entry), the
identities whose ``sigstore`` entries the certificate satisfies once
:mod:`verify.sigstore` has verified the whole bundle against the trusted root. Either
way the signers are identity names, and everything below treats them alike.

Which signer counts for what: a provenance must be signed by an identity in
``provenance.signed-by``; a VSA by its stage's ``verifier`` (or an identity a
``require-vsa`` of another stage names for it), the stage being the one whose
``StageRule.accepts_resource`` takes the VSA's ``resourceUri``; an approval by
the stage's ``require-approvals.signed-by``; a reproduction by any identity of
the policy; a release manifest by ``releases.signed-by`` (a policy without
``releases`` trusts no manifest). A message-signature bundle signs an artefact's sha256 (its
``messageDigest``, else its log entry's), not a statement: verified, and by any
identity of the policy, it is listed as a signature of that artefact, and it is
never a provenance.

Telling a bad signature from an untrusted one: evidence that no pinned signer
verifies is ``bad-signature`` if it claims a pinned signer -- one of its
signatures' keyids (or a bundle's key hint) equals the fingerprint of a pinned
key, or a keyless bundle's certificate names an identity that a ``sigstore``
entry of the policy pins -- and the bytes do not prove it: it was altered after
signing or forged (for a keyless bundle, this includes a certificate or log
entry that the trusted root does not vouch for, as when audit is given another
Sigstore instance's root). Otherwise it is ``untrusted-signer``: signed by a key
or a certificate identity the policy does not pin (an altered envelope whose
keyid names no pinned key looks the same and is reported the same way). A
certificate's claims are read before it is verified only to choose between the
two; they are never believed unverified.

``unverifiable`` is left for a message-signature bundle that names no digest (neither a
``messageDigest`` nor a ``hashedrekord`` log entry): audit has no artefact bytes to check
its signature against.

Cost: keyless bundles are verified natively (:mod:`verify.sigstore._native`, through
:func:`verify.signers.find_signers`): each process reads the trusted root from its path when it
first meets a keyless bundle whose certificate names a pinned identity.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from verify.audit._check import BATCH_FILES, _facts, _Setup
from verify.audit._judge import _Auditor
from verify.audit.index import FactIndex, Listed, decode_facts, encode_facts
from verify.audit.report import (
    ANOMALY_KINDS,
    Anomaly,
    ArtifactHistory,
    AuditReport,
    BuildRecord,
    Endorsement,
    Progress,
    ReleaseComponent,
    ReleaseRecord,
    Source,
    StageHistory,
    StoredArtifact,
    StoredCopy,
)
from verify.errors import EvidenceRejected, PolicyError
from verify.files import read_trusted_root
from verify.policy import Policy

__all__ = [
    "ANOMALY_KINDS",
    "Anomaly",
    "ArtifactHistory",
    "AuditReport",
    "BuildRecord",
    "Endorsement",
    "ReleaseComponent",
    "ReleaseRecord",
    "StageHistory",
    "StoredArtifact",
    "StoredCopy",
    "audit",
    "audit_setup",
]

# --- the whole audit -------------------------------------------------------------------------------------

def audit(sources: Iterable[tuple[str, bytes | EvidenceRejected | Listed]], *, policy: Policy,
          trusted_root: Path | None = None, workers: int | None = None, batch_size: int = BATCH_FILES,
          progress: Progress | None = None, artifacts: Iterable[StoredArtifact] = (),
          index: FactIndex | None = None, reverify: bool = False,
          dora: tuple[datetime, datetime] | None = None, setup: _Setup | None = None) -> AuditReport:
    """Read every attestation file in ``sources`` as ``(uri, bytes)`` and report each artefact's history.

    ``artifacts`` are the stored artefacts, as ``(uri, the sha256 their address claims, the sha256 of
    their bytes or why they could not be read)``, iterated once every attestation is read: bytes that
    do not hash to their address, or cannot be read, are a ``tampered-artifact`` anomaly. (Audit reads
    no artefact itself: the caller hashes them, streaming, from wherever they are stored.)

    Signatures are checked in ``workers`` processes (default: one per CPU) once
    there is more than one batch of ``batch_size`` files; ``progress`` is called
    with the number of attestations done after each batch. Keyless Sigstore
    bundles are verified offline against ``trusted_root`` (a trusted_root.json;
    None: the production root shipped in sigstore-python, never refreshed).
    Errors raised while iterating ``sources`` (an unreadable file, a store out
    of reach), and a trusted root that cannot be loaded, propagate.

    With ``index`` (:mod:`verify.audit.index`, made for this setup: :func:`audit_setup`), a file whose facts
    the index holds for its place and bytes is not checked again, and every file checked is kept there. A
    source may then be ``(uri, Listed)``: read only if its facts are not in the index. ``reverify`` checks
    every file again and reports each index entry that disagrees with the fresh check (``index-mismatch``).
    ``dora`` (since, until) adds the DORA figures of that window (:mod:`verify.audit.dora`). ``setup`` is the
    trust to check under, when the caller made it already (:func:`audit_setup`: the one an index is keyed by).
    """
    setup = setup or audit_setup(policy, trusted_root)
    auditor = _Auditor(policy)
    workers = workers or os.cpu_count() or 1
    digests: dict[str, str] = {}
    """The sha256 of each file sent to be checked, until its facts come back (to keep them in the index)."""

    def to_check(sources: Iterable[tuple[str, bytes | EvidenceRejected | Listed]]) -> Iterator[Source]:
        """The files to check: those whose facts the index does not hold (all of them with ``reverify``)."""
        for uri, payload in sources:
            if isinstance(payload, Listed):
                if index is not None and not reverify and payload.digest is not None and _reuse(
                        auditor, index.facts(uri, payload.digest), progress):
                    continue
                payload = payload.read()
            if isinstance(payload, EvidenceRejected):
                auditor.unread += 1
            elif index is not None:
                digest = hashlib.sha256(payload).hexdigest()
                if not reverify and _reuse(auditor, index.facts(uri, digest), progress):
                    continue
                digests[uri] = digest
            yield uri, payload

    for batch, results in _facts(to_check(sources), setup, workers=workers, batch_size=batch_size):
        auditor.files += len(batch)
        for (uri, _), facts in zip(batch, results, strict=True):
            for fact in facts:
                auditor.add(fact)
            if index is not None and uri in digests:
                _keep(index, auditor, uri, digests.pop(uri), facts, reverify=reverify)
        if progress is not None:
            progress(len(batch))
    for uri, claimed, found in artifacts:
        auditor.add_stored(uri, claimed, found)
    return auditor.report(dora=dora)


def audit_setup(policy: Policy, trusted_root: Path | None) -> _Setup:
    """The trust every file is checked under: the policy's pinned identities, rules and revocations, now."""
    identities = [identity for identity in policy.identities.values() if identity.keys or identity.sigstore]
    if not identities:
        raise PolicyError("the policy pins no public key and no Sigstore identity; audit trusts only signatures "
                          "by pinned identities, so name some in the policy or pass --key")
    # unreadable is a configuration error now, not when a keyless bundle is met
    root = hashlib.sha256(read_trusted_root(trusted_root)).hexdigest() if trusted_root is not None else ""
    # the same rule as verify (verify.signers.find_signers): revoked keys never count, an identity outside
    # its validity window (not-before / not-after, at the time of the audit) signs nothing
    return _Setup(identities=tuple(identities), rules=policy.provenance, trusted_root=trusted_root,
                  revoked=policy.revoked, at=datetime.now(UTC),
                  components=tuple((name, policy.for_component(name).provenance)
                                   for name in sorted(policy.components)), trusted_root_sha256=root)


def _reuse(auditor: _Auditor, kept: str | None, progress: Progress | None) -> bool:
    """Add the facts the index kept for a file (True), or say there are none to reuse (False)."""
    facts = decode_facts(kept) if kept is not None else None
    if facts is None:
        return False
    auditor.files += 1
    for fact in facts:
        auditor.add(fact)
    if progress is not None:
        progress(1)
    return True


def _keep(index: FactIndex, auditor: _Auditor, uri: str, digest: str, facts: list[Any], *, reverify: bool) -> None:
    """Keep a file's fresh facts; with ``reverify``, an entry that said otherwise is an ``index-mismatch``."""
    if reverify:
        kept = index.facts(uri, digest)
        if kept is not None and decode_facts(kept) != facts:
            auditor.index_mismatch(uri)
    index.put(uri, digest, encode_facts(facts))
