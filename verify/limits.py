"""Named limits on what the verifier will read. Over a limit is a rejection, decided before reading on.

Every limit here is documented, with its reason and what happens over it, in docs/limits.md.
"""

from __future__ import annotations

#: Largest attestation file (.intoto.jsonl or bundle) read, in bytes: refused by its size before reading.
MAX_EVIDENCE_BYTES = 16 * 1024 * 1024
#: Envelopes read from one .intoto.jsonl file; reading stops at the next one.
MAX_ENVELOPES_PER_FILE = 1024
#: Signatures looked at on one envelope.
MAX_SIGNATURES = 16
#: Subjects in one statement.
MAX_SUBJECTS = 100_000
#: JSON nesting depth of any evidence document (or of one line of a .intoto.jsonl file).
MAX_JSON_DEPTH = 64
#: Digits of a JSON integer in evidence (any 64-bit integer fits); longer ones are refused unparsed.
MAX_JSON_INTEGER_DIGITS = 20
#: Size of a policy file, in bytes.
MAX_POLICY_BYTES = 1024 * 1024
#: Size of a key file (a PEM public or private key; an RSA-16384 key is under 4 KiB), in bytes.
MAX_KEY_BYTES = 64 * 1024
#: Size of a Sigstore trusted root or client trust config, in bytes (the public root is about 10 KiB).
MAX_TRUSTED_ROOT_BYTES = 4 * 1024 * 1024
#: Signature verifications tried for one envelope (signatures x keys).
MAX_VERIFICATIONS_PER_ENVELOPE = 64
#: Signature verifications tried in one verification run (one artefact, or one stage's requirements),
#: across every envelope and bundle of every file: bounds the work a store full of junk can cause.
MAX_VERIFICATIONS_PER_RUN = 1024
#: Attestation files read in one verification run (every --attestation file and every store object).
MAX_EVIDENCE_FILES_PER_RUN = 1024
#: Bytes of attestation files read in one verification run: a store cannot make verify hold more.
MAX_EVIDENCE_BYTES_PER_RUN = 64 * 1024 * 1024
#: RFC 3161 timestamps in one Sigstore bundle (as sigstore-go and sigstore-python).
MAX_TIMESTAMPS = 32
#: Transparency log entries in one Sigstore bundle (exactly one is verified).
MAX_LOG_ENTRIES = 8
#: Certificates in one bundle's x509CertificateChain (read, never trusted).
MAX_CHAIN_CERTIFICATES = 10
#: Hashes in one inclusion proof (a tree of 2**64 leaves needs 64).
MAX_PROOF_HASHES = 64
#: Signature lines in one checkpoint (a signed note), as golang.org/x/mod/sumdb/note.
MAX_NOTE_SIGNATURES = 100
#: Resolved dependencies (materials) in one provenance, input attestations in one VSA, components of one
#: release, and the artefacts and needs of one component.
MAX_DEPENDENCIES = 10_000
#: Objects listed from one S3 store (an audit's whole history; a listing past it is refused, not followed).
MAX_STORE_KEYS = 10_000_000
#: Digest algorithms in one resource descriptor (a subject, a dependency).
MAX_DIGESTS = 16
#: Size of one OCI manifest or index read from a registry (distribution's own limit for a manifest it stores).
MAX_OCI_MANIFEST_BYTES = 4 * 1024 * 1024
#: Bytes of the platform manifests one image index lists, together (each is also within MAX_OCI_MANIFEST_BYTES; a
#: multi-platform image's are a few KiB each): an index listing one large manifest a thousand times would be held
#: whole, gigabytes of it.
MAX_OCI_INDEX_CHILDREN_BYTES = 16 * 1024 * 1024
#: Referrers of one image read from a registry (the referrers API's answer, every page; the tag schema's
#: index), and layers or manifests listed by one manifest: a registry past it is refused, never half read.
MAX_REFERRERS = 1000
#: How far after the time of a verification a signed time may be (a VSA's timeVerified, an approval's time, a
#: deployment record's timeDeployed): clocks of separate accounts differ a little; a time further ahead is refused,
#: never believed (a record from the future would stay "what runs" until then, whatever came after it).
MAX_CLOCK_SKEW_SECONDS = 300
