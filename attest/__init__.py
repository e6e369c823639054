"""attest: the edge of the toolkit (CLI, facts about a build, signers, stores); the trust core is ``verify``."""

__all__ = ["DISTRIBUTION"]

#: The name this project is installed under (``pip install attest-gate``): "attest" on PyPI is an unrelated
#: project. ``importlib.metadata`` lookups (``attest --version``, the version recorded in provenance and VSAs)
#: use it; the command and the import packages are still ``attest`` and ``verify``.
DISTRIBUTION = "attest-gate"
