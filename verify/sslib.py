"""securesystemslib's signer API, imported without its cloud backends.

``securesystemslib.signer`` imports every signing backend it ships, and its AWS backend imports boto3,
whose urllib3 opens a socket at import time (to find out whether IPv6 works) and costs about 0.15 s.
attest uses securesystemslib for keys, signatures and in-toto metadata, never to reach a cloud (KMS
signing has its own module, :mod:`attest.signers.awskms`). So the first import keeps boto3 and
botocore out (``sys.modules[name] = None`` makes their import fail, and securesystemslib then marks its
AWS signer unavailable); afterwards they import as usual. Call :func:`load` before any
``from securesystemslib.signer import ...`` (and before importing in-toto, which imports it too).
"""

from __future__ import annotations

import importlib
import sys
import threading
from types import ModuleType

__all__ = ["load"]

#: Imported by securesystemslib's cloud backends only; kept out while it is imported.
_KEPT_OUT = ("boto3", "botocore")
_LOCK = threading.Lock()


def load() -> ModuleType:
    """``securesystemslib.signer``, imported (once) without boto3."""
    with _LOCK:
        loaded = sys.modules.get("securesystemslib.signer")
        if loaded is not None:
            return loaded
        kept_out = [name for name in _KEPT_OUT if name not in sys.modules]
        for name in kept_out:
            sys.modules[name] = None  # type: ignore[assignment]
        try:
            return importlib.import_module("securesystemslib.signer")
        finally:
            for name in kept_out:
                if sys.modules.get(name, False) is None:
                    del sys.modules[name]
