"""Named limits on what the verifier will read. Over a limit is a rejection, decided before reading on."""

from __future__ import annotations

#: Largest attestation file (.intoto.jsonl or bundle) read, in bytes.
MAX_EVIDENCE_BYTES = 16 * 1024 * 1024
#: Envelopes read from one .intoto.jsonl file.
MAX_ENVELOPES_PER_FILE = 1024
#: Signatures looked at on one envelope.
MAX_SIGNATURES = 16
#: Subjects in one statement.
MAX_SUBJECTS = 100_000
#: JSON nesting depth of any evidence document.
MAX_JSON_DEPTH = 64
#: Size of a policy file, in bytes.
MAX_POLICY_BYTES = 1024 * 1024
#: Signature verifications tried for one envelope (signatures x keys).
MAX_VERIFICATIONS_PER_ENVELOPE = 64
