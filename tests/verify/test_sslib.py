"""verify.sslib: securesystemslib's signer API without boto3 (which opens a socket when imported)."""

from __future__ import annotations

import subprocess
import sys

CHECK = """
import sys
from verify import sslib
signer = sslib.load()
assert signer is sslib.load() is sys.modules["securesystemslib.signer"]
assert "boto3" not in sys.modules and "botocore" not in sys.modules, "kept out while securesystemslib was imported"
assert signer.CryptoSigner and signer.SSlibKey  # the API attest uses is there
import boto3  # and afterwards boto3 imports as usual
print("ok")
"""


def test_securesystemslib_is_imported_without_boto3_which_then_imports_as_usual() -> None:
    done = subprocess.run([sys.executable, "-c", CHECK], capture_output=True, text=True, check=False)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr
