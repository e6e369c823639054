"""Exceptions of the trust core.

Two families, kept apart because a pipeline reacts to them differently:

* :class:`EvidenceRejected` and its subclasses: the evidence was looked at and
  does not prove what was asked (exit 1, "block").
* :class:`ConfigError` and its subclasses: the verifier could not even start
  because its own inputs (policy, keys, files) are missing or unreadable
  (exit 3, "fix the pipeline").

Every message is one plain sentence meant for a person: what was checked,
what was expected, what was found, and the fix where one is known.
"""

from __future__ import annotations


class VerifyError(Exception):
    """Base of every error raised by :mod:`verify`."""


class EvidenceRejected(VerifyError):
    """The evidence does not satisfy the check (exit code 1).

    ``checks`` holds the checks made before the failure (and the failed one),
    so that a machine-readable verdict can explain a rejection too.
    """

    def __init__(self, message: str, *, checks: tuple[object, ...] = ()) -> None:
        super().__init__(message)
        self.checks = checks


class MalformedEvidence(EvidenceRejected):
    """An envelope, bundle or statement could not be parsed or has the wrong shape."""


class UnknownEvidence(EvidenceRejected):
    """The evidence parsed but is of a type attest does not accept (payload, statement or predicate type)."""


class SignatureInvalid(EvidenceRejected):
    """No signature on the evidence verifies with a trusted identity.

    ``claimed`` names the trusted identities the evidence claims to be signed by (a keyid naming a
    pinned key, a certificate naming a pinned identity): a claim that does not verify is a forgery
    or an alteration, not merely an untrusted signer.
    """

    def __init__(self, message: str, *, checks: tuple[object, ...] = (), claimed: tuple[str, ...] = ()) -> None:
        super().__init__(message, checks=checks)
        self.claimed = claimed


class DigestMismatch(EvidenceRejected):
    """The artefact's digest is not among the subjects the evidence signs."""


class PolicyViolation(EvidenceRejected):
    """The evidence is authentic but what it says breaks a policy rule."""


class LimitExceeded(EvidenceRejected):
    """The evidence is larger or deeper than attest is willing to read."""


class ConfigError(VerifyError):
    """The verifier's own configuration or inputs are unusable (exit code 3)."""


class InputError(ConfigError):
    """A file named on the command line is missing or unreadable."""


class PolicyError(ConfigError):
    """The policy file is missing, unreadable or invalid."""


class TrustConfigError(ConfigError):
    """A trust anchor (key, trusted root) is missing, unreadable or unusable."""


class RequestError(VerifyError):
    """The request itself is contradictory or incomplete: flags that cannot hold together, a stage the
    policy does not name, an empty value where a rule was asked for (exit code 2, "fix the invocation")."""


def brief(error: BaseException) -> str:
    """A third-party error's text on one line, at most 200 characters: for the middle of one of our sentences."""
    text = " ".join(str(error).split()) or type(error).__name__
    return text if len(text) <= 200 else text[:197] + "..."
