"""The signature verifications one run may still try: a leaf that every verifying module charges.

A :class:`VerificationBudget` is shared by every envelope and bundle of a run (one gate, one audited
file). Each signature verification is charged before it is tried, a keyless Sigstore bundle's too (its
timestamps, certificate chain, SCT, log promise, checkpoint and signature, one by one), so that no
piece of evidence can cost more than the budget whatever it repeats (docs/limits.md).
"""

from __future__ import annotations

from verify.errors import SignatureInvalid
from verify.limits import MAX_VERIFICATIONS_PER_RUN

__all__ = ["VerificationBudget"]


class VerificationBudget:
    """The signature verifications one run may still try (:data:`MAX_VERIFICATIONS_PER_RUN`).

    Once it is spent, every further verification fails at once with :class:`SignatureInvalid`.
    """

    def __init__(self, total: int = MAX_VERIFICATIONS_PER_RUN) -> None:
        self.total = total
        self.left = total

    @property
    def spent(self) -> int:
        return self.total - self.left

    def spend(self, count: int, *, source: str) -> None:
        """Take ``count`` verifications, or raise :class:`SignatureInvalid` naming ``source`` if too few are left."""
        if count > self.left:
            self.left = 0
            raise SignatureInvalid(f"{source}: gave up, this verification already tried {self.total} signature "
                                   "verifications without enough valid ones; the evidence holds too many bogus "
                                   "signatures")
        self.left -= count
