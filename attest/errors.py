"""Exceptions of the edge (build, signers, stores).

Errors from :mod:`verify` keep their own classes; the CLI maps both families
to exit codes in one table (:mod:`attest.cli._exit`).
"""

from __future__ import annotations


class AttestError(Exception):
    """Base of every error raised by :mod:`attest`."""


class BuildRefused(AttestError):
    """The build's inputs are not fit to attest (dirty tree, changed lockfile, ...). Exit code 3."""


class CommandFailed(AttestError):
    """The build command exited non-zero; no attestation is written. Exit code 1."""

    def __init__(self, message: str, returncode: int) -> None:
        super().__init__(message)
        self.returncode = returncode


class SourceChanged(AttestError):
    """The build command changed the source it was building (a commit, a tracked file, a bound lockfile), so a
    provenance would describe what was there before the build, not what was built. Exit code 1."""


class SignerError(AttestError):
    """A signer could not be set up or could not sign (bad key file, bad URI). Exit code 3."""


class StoreError(AttestError):
    """A store refused or could not complete an operation (exists with other bytes, bad layout). Exit code 3."""


class OutputError(AttestError):
    """An output cannot be written (a read-only folder, a full disk); nothing was left half-written. Exit code 3."""


class RemoteError(AttestError):
    """A remote service (S3, KMS, a Sigstore server) failed or denied access. Exit code 4."""
