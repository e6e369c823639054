"""Which trusted identities signed a piece of evidence: the one decision every caller makes the same way.

:func:`find_signers` is the only place attest checks a signature on evidence. ``verify`` (provenance,
stage VSAs, approvals, release manifests), ``audit`` and ``reproduce`` all call it, each with the
identities the policy allows for what they are checking, and one :class:`TrustRun` that carries what
a whole run shares:

* the verification time ``at``: keys are used as the policy allows them then (a revoked key never,
  an identity only inside its ``not-before`` / ``not-after`` window, :meth:`Identity.usable`);
* one :class:`VerificationBudget`, so that a store full of bogus signatures costs a bounded amount
  of work (:data:`~verify.limits.MAX_VERIFICATIONS_PER_RUN`), and at most
  :data:`~verify.limits.MAX_VERIFICATIONS_PER_ENVELOPE` tries per envelope;
* the Sigstore bundle verifier (keyless signing), loaded only when a keyless bundle is met;
* a memo, so that one envelope checked for several roles or candidates costs one verification.

The three kinds of evidence, and what "signed" means for each:

  DSSE envelope (alone, or in a key-signed bundle)  a signature over the PAE bytes by a pinned key;
                                                     a ``keyid`` (or the bundle's key hint) only
                                                     orders the keys tried
  keyless Sigstore bundle                           the whole bundle verified offline against the
                                                     trusted root, and its certificate satisfying a
                                                     pinned Sigstore identity (:mod:`verify.sigstore`)
  key-signed message-signature bundle               a signature over the artefact's sha256 by a
                                                     pinned key, the bundle's ``messageDigest`` equal
                                                     to that sha256

When nothing verifies, :class:`SignatureInvalid` says why in one sentence, and its ``claimed`` names
the pinned identities the evidence claims (a keyid naming a pinned key, a certificate naming a pinned
identity): ``audit`` tells a forged or altered signature (``claimed``) from an untrusted one.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

from verify.budget import VerificationBudget
from verify.digests import DigestSet
from verify.errors import DigestMismatch, EvidenceRejected, SignatureInvalid, UnknownEvidence
from verify.formats.evidence import Evidence
from verify.limits import MAX_CLOCK_SKEW_SECONDS, MAX_VERIFICATIONS_PER_ENVELOPE
from verify.sigstore.identity import claimed_identities
from verify.sigstore.times import SignedTime
from verify.sigstore.verifier import BundleVerifier
from verify.trust import Identity, PublicKey

__all__ = ["TrustRun", "find_signers", "one_person"]

log = logging.getLogger(__name__)

_MemoKey = tuple[str, str, tuple[str, ...], tuple[tuple[str, str], ...] | None, bytes | None]
"""(source, digest, identity names, message digests, message head): one signature check of a run."""


@dataclass
class TrustRun:
    """What every signature check of one run shares (see the module docstring)."""

    at: datetime = field(default_factory=lambda: datetime.now(UTC))
    budget: VerificationBudget = field(default_factory=VerificationBudget)
    bundles: BundleVerifier | None = None
    """Verifies keyless Sigstore bundles; None: such bundles are refused (no Sigstore support given)."""
    revoked: frozenset[str] = frozenset()
    """Fingerprints the policy revokes for every identity (also for identities added by flags)."""
    revoked_keys: tuple[PublicKey, ...] = ()
    """Revoked public keys the policy knows, only to say "signed by a revoked key" in a message."""
    memo: dict[_MemoKey, tuple[Identity, ...] | EvidenceRejected] = field(default_factory=dict, repr=False)
    usable_cache: dict[tuple[tuple[int, ...], datetime, frozenset[str]],
                       tuple[tuple[Identity, ...], tuple[Identity, ...]]] = field(default_factory=dict, repr=False)
    """Identities as they may verify, by (the identities, the time, the revocations): a run's own, or shared by
    runs of one audit (:mod:`verify.audit`), whose time and revocations are fixed."""
    pairs_cache: dict[tuple[int, ...], tuple[tuple[Identity, ...], tuple[tuple[Identity, PublicKey, str], ...]]] = \
        field(default_factory=dict, repr=False)
    """:meth:`pairs` by the usable identities (kept alive with it), shared as ``usable_cache`` is."""
    signed_times: dict[str, SignedTime] = field(default_factory=dict, repr=False)
    """By the sha256 of a keyless bundle's bytes: the time a signature vouches it was signed at (an RFC 3161
    timestamp, a promise-bound integrated time), once it verified. A time nothing signs is never here."""

    def __post_init__(self) -> None:
        if self.at.tzinfo is None:
            self.at = self.at.replace(tzinfo=UTC)

    def in_the_future(self, time: datetime) -> bool:
        """:func:`in_the_future` of this run's time."""
        return in_the_future(time, self.at)

    def usable(self, identities: Sequence[Identity]) -> list[Identity]:
        """``identities`` as they may verify now: revoked keys dropped, nothing outside a validity window (worked
        out once a run for the same identities: they are frozen, and the run's time and revocations fixed)."""
        given = tuple(identities)
        key = (tuple(map(id, given)), self.at, self.revoked)
        kept = self.usable_cache.get(key)
        if kept is not None and all(a is b for a, b in zip(kept[0], given, strict=True)):
            return list(kept[1])
        found = [replace(i, revoked=i.revoked | self.revoked).usable(self.at) for i in given]
        self.usable_cache[key] = (given, tuple(found))  # the identities kept alive with it: their ids stay theirs
        return found

    def pairs(self, usable: Sequence[Identity]) -> tuple[tuple[Identity, PublicKey, str], ...]:
        """(identity, key, the key's fingerprint) for every key of ``usable`` (identities as :meth:`usable` gives
        them: their keys are the usable ones), worked out once for the same identities, as :meth:`usable`."""
        given = tuple(usable)
        key = tuple(map(id, given))
        kept = self.pairs_cache.get(key)
        if kept is not None and all(a is b for a, b in zip(kept[0], given, strict=True)):
            return kept[1]
        found = tuple((identity, k, k.fingerprint) for identity in given for k in identity.keys)
        self.pairs_cache[key] = (given, found)
        return found


def find_signers(item: Evidence, identities: Sequence[Identity], run: TrustRun, *,
                 message: DigestSet | None = None) -> tuple[Identity, ...]:
    """The identities among ``identities`` that verifiably signed ``item``, in the order given.

    ``message`` is the artefact's digests (and its first bytes, when known), of which a message-signature
    bundle must sign the one its ``messageDigest`` names (sha256 unless it says SHA2_384 or SHA2_512); it
    is not needed for envelopes. A message signature over a DSSE pre-authentication encoding is refused
    (:func:`_not_a_dsse_message`).
    Raises :class:`SignatureInvalid` (with ``claimed``) when no identity signed it, :class:`DigestMismatch`
    when a message signature is for other bytes, and :class:`MalformedEvidence` / :class:`UnknownEvidence`
    for evidence that cannot be checked.
    """
    names = tuple(identity.name for identity in identities)
    memo_key = (item.source, item.digest, names, None if message is None else tuple(sorted(message.digests.items())),
                None if message is None else message.head)
    found = run.memo.get(memo_key)
    if found is None:
        try:
            if item.envelope is None:
                _not_a_dsse_message(item, None if message is None else message.head)
            found = _find(item, identities, run, message)
        except EvidenceRejected as e:
            found = e
        run.memo[memo_key] = found
    if isinstance(found, EvidenceRejected):
        raise found
    return found


def _find(item: Evidence, identities: Sequence[Identity], run: TrustRun,
          message: DigestSet | None) -> tuple[Identity, ...]:
    usable = run.usable(identities)
    bundle = item.bundle
    if bundle is not None and bundle.keyless:
        return _keyless(item, identities, usable, run, message)
    prehash, signed, attempts = _signed(item, message)
    pairs = run.pairs(usable)
    if not pairs:
        raise SignatureInvalid(f"{item.source}: no pinned public key may sign this evidence"
                               f"{_revocation_note(item, identities, run, signed)}; pass --key or name the signer "
                               "in the policy", claimed=())
    signers = _try_keys(item, attempts, pairs, prehash, signed, run)
    if signers:
        names = {i.name for i in signers}
        return tuple(i for i in identities if i.name in names)  # as given, in the order given
    trusted = ", ".join(sorted({i.name for i in usable if i.keys}))
    what = "the message signature does not verify with a trusted key for this artefact" if item.envelope is None \
        else "no signature verifies with a trusted key"
    raise SignatureInvalid(f"{item.source}: {what} (trusted: {trusted}); the evidence was altered or signed by "
                           f"an untrusted key{_revocation_note(item, identities, run, signed)}",
                           claimed=_claimed_by_keyid(attempts, usable, run))


def one_person(item: Evidence, found: tuple[Identity, ...], people: set[str]) -> tuple[Identity, ...]:
    """``found``, the approvers a keyless approval's certificate satisfies, as one: the first, unless ``people``
    (those counted already) has its signer; a key's signature as it is. One person is one approver, however many
    approvers' identities their certificate fits (a stage's approvals, a hotfix's)."""
    if not found or item.bundle is None or not item.bundle.keyless:
        return found
    person = item.bundle.certificate_claims().person  # (verified: find_signers verified the bundle)
    if person in people:
        return ()
    people.add(person)
    return found[:1]


def in_the_future(time: datetime, now: datetime) -> bool:
    """Whether a signed ``time`` is later than ``now`` by more than clocks differ
    (:data:`~verify.limits.MAX_CLOCK_SKEW_SECONDS`): a signer's clock ahead, or a forged time."""
    return time > now + timedelta(seconds=MAX_CLOCK_SKEW_SECONDS)


_Attempt = tuple[str, bytes]
"""(keyid or key hint, signature): one signature to try; the keyid only orders the keys tried."""


def _signed(item: Evidence, message: DigestSet | None) -> tuple[str, bytes, list[_Attempt]]:
    """(prehash algorithm, signed bytes, signatures) of key-signed evidence: an envelope's PAE, or the artefact's
    digest a message-signature bundle signs (prehashed with its algorithm)."""
    bundle = item.bundle
    hint = bundle.public_key_hint if bundle is not None else None
    if item.envelope is not None:
        return "", item.envelope.pae(), [(s.keyid or hint or "", s.sig) for s in item.envelope.signatures]
    assert bundle is not None and bundle.message is not None
    prehash, signed = _signed_digest(item, message)
    return prehash, signed, [(hint or "", bundle.message.signature)]


def _try_keys(item: Evidence, attempts: Sequence[_Attempt], pairs: Sequence[tuple[Identity, PublicKey, str]],
              prehash: str, signed: bytes, run: TrustRun) -> list[Identity]:
    """The identities whose pinned key verifies a signature: every usable key is tried (a keyid is an
    unauthenticated hint: those it names first), at most MAX_VERIFICATIONS_PER_ENVELOPE times."""
    signers: list[Identity] = []
    tries = MAX_VERIFICATIONS_PER_ENVELOPE
    for keyid, signature in attempts:
        for identity, key in _hinted_first(pairs, keyid):
            if any(s.name == identity.name for s in signers):
                continue
            if tries == 0:
                raise SignatureInvalid(f"{item.source}: gave up after {MAX_VERIFICATIONS_PER_ENVELOPE} signature "
                                       "verifications without a valid one")
            tries -= 1
            run.budget.spend(1, source=item.source)
            good = key.verify_prehashed(signature, signed, prehash) if prehash else key.verify(signature, signed)
            if good:
                log.debug("%s: signature verified with %s (%s)", item.source, key.name, identity.name)
                # every identity pinning this key signed it
                signers.extend(i for i, _, fingerprint in pairs if fingerprint == key.fingerprint
                               and all(s.name != i.name for s in signers))
                break
    return signers


def _hinted_first(pairs: Sequence[tuple[Identity, PublicKey, str]], keyid: str) -> list[tuple[Identity, PublicKey]]:
    """(identity, key) of every pair, those whose key's fingerprint is ``keyid`` first, each part in order."""
    return [(i, k) for i, k, fingerprint in pairs if fingerprint == keyid] + \
        [(i, k) for i, k, fingerprint in pairs if fingerprint != keyid]


def _keyless(item: Evidence, identities: Sequence[Identity], usable: Sequence[Identity], run: TrustRun,
             message: DigestSet | None) -> tuple[Identity, ...]:
    bundle = item.bundle
    assert bundle is not None
    claimed = claimed_identities(bundle, identities)
    if not any(identity.sigstore for identity in usable):
        reasons = [r for r in (identity.unusable_because(run.at) for identity in identities) if r]
        why = f" ({'; '.join(reasons)})" if reasons else ""
        raise SignatureInvalid(f"{item.source} is signed keylessly by {bundle.describe_signer()}, and no Sigstore "
                               f"identity is trusted for it{why}; pass --certificate-identity and "
                               "--certificate-oidc-issuer (or --github-repo), or name one in the policy",
                               claimed=claimed)
    if run.bundles is None:
        raise UnknownEvidence(f"{item.source}: Sigstore bundles with a certificate need Sigstore support, which "
                              "this verifier was not given")
    if item.envelope is None:
        _signed_digest(item, message)
    try:
        verified, when = run.bundles(item, usable, message=message, budget=run.budget)
    except SignatureInvalid as e:
        raise SignatureInvalid(str(e), claimed=claimed) from e
    if when is not None:
        run.signed_times[item.digest] = when
    names = {i.name for i in verified}
    return tuple(i for i in identities if i.name in names)  # as given, in the order given


def _not_a_dsse_message(item: Evidence, head: bytes | None) -> None:
    """A message signature over bytes that begin ``DSSEv1 `` is refused: such bytes are a DSSE
    pre-authentication encoding, and an ECDSA or RSA signature over them is also a DSSE signature, so a
    signed envelope could be replayed as "this key signed this file" (a cross-protocol signature). A
    key is kept to one protocol: attest signs statements only as DSSE envelopes."""
    if head is not None and head.startswith(b"DSSEv1 "):
        raise SignatureInvalid(f"{item.source}: a message signature over a DSSE pre-authentication encoding "
                               "(the artefact begins 'DSSEv1 ') is a DSSE signature replayed as a plain one; "
                               "refused")


def _signed_digest(item: Evidence, message: DigestSet | None) -> tuple[str, bytes]:
    """(algorithm, digest) a message-signature bundle signs: the artefact's digest of the algorithm its
    ``messageDigest`` names (sha256 when it names none), checked against the digest it gives."""
    bundle = item.bundle
    assert bundle is not None and bundle.message is not None
    _, algorithm = bundle.message.algorithm(item.source)
    computed = None if message is None else message.digests.get(algorithm)
    if computed is None:
        raise SignatureInvalid(f"{item.source}: a message signature signs an artefact's {algorithm}, and none was "
                               "computed for this check")
    ours = bytes.fromhex(computed)
    signed = bundle.message.digest
    if signed is not None and signed != ours:
        raise DigestMismatch(f"{item.source}: the artefact's {algorithm} {computed[:16]}... is not the digest the "
                             f"bundle signs ({signed.hex()[:16]}...); the artefact was changed or this bundle is for "
                             "another one")
    return algorithm, ours


def _claimed_by_keyid(attempts: Sequence[tuple[str, bytes]], usable: Sequence[Identity],
                      run: TrustRun) -> tuple[str, ...]:
    """The identities whose usable pinned key a signature's keyid (or the bundle's hint) names (a key that
    is revoked or out of its window is no longer a claim to trust, only an untrusted signer)."""
    hints = {keyid for keyid, _ in attempts} - {""}
    return tuple(i.name for i in usable if any(key.fingerprint in hints for key in i.usable_keys(run.at)))


def _revocation_note(item: Evidence, identities: Sequence[Identity], run: TrustRun, message: bytes) -> str:
    """Why a trusted signer may have failed: out of its window, or the evidence is signed by a revoked key.

    Only for the message: a revoked key is tried here to NAME it, and what it says is never trusted.
    """
    notes = [r for r in (identity.unusable_because(run.at) for identity in identities) if r]
    if item.envelope is not None and run.revoked_keys:
        pairs = [(key, s) for key in run.revoked_keys for s in item.envelope.signatures]
        for key, signature in pairs[:MAX_VERIFICATIONS_PER_ENVELOPE]:
            if run.budget.left == 0:
                break
            run.budget.spend(1, source=item.source)
            if key.verify(signature.sig, message):
                notes.insert(0, f"it is signed by {key.name}, a key the policy revokes")
                break
    return f" ({'; '.join(notes)})" if notes else ""
