"""What every fuzz target shares: where the repository is, a pinned key, and the one rule of the game.

The rule: for any input, the trust core either returns or raises one of OUR exceptions
(:class:`verify.errors.VerifyError`); anything else (a ``KeyError``, a ``RecursionError``, a
``ValueError`` from deep inside a library) is a finding, i.e. a crash the CLI would report as an
internal error (exit 70) instead of a one-sentence rejection.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric import ec

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

#: The scalar of a fixed P-256 key (test only): corpus envelopes are signed with it, the targets pin it.
_SCALAR = int.from_bytes(b"attest fuzzing key, not a secret", "big")


def private_key() -> ec.EllipticCurvePrivateKey:
    from cryptography.hazmat.primitives.asymmetric import ec

    return ec.derive_private_key(_SCALAR, ec.SECP256R1())


ARTIFACT = b"the artefact bytes\n" * 100


def public_pem() -> bytes:
    from cryptography.hazmat.primitives import serialization

    public = private_key().public_key()
    return public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def run(target: object, argv: list[str]) -> None:
    """Hand ``target`` to atheris (libFuzzer): ``python fuzz/fuzz_X.py [libFuzzer flags] [CORPUS_DIR...]``."""
    import atheris

    atheris.Setup(argv, target)
    atheris.Fuzz()
