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

import os
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path

from verify.audit._check import BATCH_FILES, _facts, _Setup
from verify.audit._judge import _Auditor
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
from verify.errors import EvidenceRejected, PolicyError, TrustConfigError
from verify.files import read_file
from verify.limits import MAX_TRUSTED_ROOT_BYTES
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
]

# --- the whole audit -------------------------------------------------------------------------------------

def audit(sources: Iterable[Source], *, policy: Policy, trusted_root: Path | None = None,
          workers: int | None = None, batch_size: int = BATCH_FILES,
          progress: Progress | None = None, artifacts: Iterable[StoredArtifact] = ()) -> AuditReport:
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
    """
    identities = [identity for identity in policy.identities.values() if identity.keys or identity.sigstore]
    if not identities:
        raise PolicyError("the policy pins no public key and no Sigstore identity; audit trusts only signatures "
                          "by pinned identities, so name some in the policy or pass --key")
    if trusted_root is not None:  # unreadable is a configuration error now, not when a keyless bundle is met
        read_file(trusted_root, what="trusted root", limit=MAX_TRUSTED_ROOT_BYTES, error=TrustConfigError)
    # the same rule as verify (verify.signers.find_signers): revoked keys never count, an identity outside
    # its validity window (not-before / not-after, at the time of the audit) signs nothing
    setup = _Setup(identities=tuple(identities), rules=policy.provenance, trusted_root=trusted_root,
                   revoked=policy.revoked, at=datetime.now(UTC),
                   components=tuple((name, policy.for_component(name).provenance)
                                    for name in sorted(policy.components)))
    auditor = _Auditor(policy)
    workers = workers or os.cpu_count() or 1
    def counted(sources: Iterable[Source]) -> Iterator[Source]:
        for source in sources:
            if isinstance(source[1], EvidenceRejected):
                auditor.unread += 1
            yield source

    for files, facts in _facts(counted(sources), setup, workers=workers, batch_size=batch_size):
        auditor.files += files
        for fact in facts:
            auditor.add(fact)
        if progress is not None:
            progress(len(facts))
    for uri, claimed, found in artifacts:
        auditor.add_stored(uri, claimed, found)
    return auditor.report()
