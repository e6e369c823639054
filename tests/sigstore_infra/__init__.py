"""Local Sigstore services (Fulcio, Rekor v1, a token minter) for testing keyless signing offline.

`SigstoreServices` runs them on 127.0.0.1 and writes the matching trust material; the pytest
fixture `sigstore_local` (in `fixture.py`) wraps it for a test session.
"""

from .services import SigstoreServices
from .tokens import GITHUB_ACTIONS_ISSUER, TokenMinter
from .trust import TrustFiles

__all__ = ["GITHUB_ACTIONS_ISSUER", "SigstoreServices", "TokenMinter", "TrustFiles"]
