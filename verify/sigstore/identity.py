"""Pinned Sigstore identities: made from cosign- and gh-style fields, and matched against a certificate's claims.

:func:`sigstore_identity` is how a policy or a flag pins one (issuer, identity or regexp, GitHub
repository, ref, signer workflow, hosted runners); :func:`mismatch` is the one rule that says whether a
certificate's claims (:mod:`verify.formats.certificate`) satisfy it; :func:`claimed_identities` names
the pinned identities a bundle *claims* (unverified: for messages and audit's anomaly kinds).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from verify.errors import MalformedEvidence, TrustConfigError
from verify.formats.bundle import Bundle
from verify.formats.certificate import CertificateClaims
from verify.formats.uris import normalize_repo
from verify.trust import Identity, SigstoreIdentity

__all__ = ["GITHUB_ACTIONS_ISSUER", "claimed_identities", "mismatch", "sigstore_identity"]

GITHUB_ACTIONS_ISSUER = "https://token.actions.githubusercontent.com"


def sigstore_identity(*, issuer: str | None, identity: str | None = None, identity_regexp: str | None = None,
                      github_repo: str | None = None, source_ref: str | None = None,
                      signer_workflow: str | None = None, deny_self_hosted_runners: bool = False,
                      ) -> SigstoreIdentity:
    """A pinned Sigstore identity from cosign- and gh-style fields; :class:`TrustConfigError` if incomplete.

    Without ``identity`` or ``identity_regexp``, the GitHub fields imply one (as ``gh attestation
    verify`` does): the certificate's identity must be ``signer_workflow`` at some ref, else a
    workflow of ``github_repo``; the issuer then defaults to GitHub Actions'. A signer workflow needs
    ``github_repo`` beside it: any repository may call a reusable workflow, and would be trusted.
    """
    if identity is not None and identity_regexp is not None:
        raise TrustConfigError("give either a certificate identity or an identity regexp, not both")
    workflow = _normalize_workflow(signer_workflow) if signer_workflow else None
    repo = _normalize_github_repo(github_repo) if github_repo else None
    _repo_beside(workflow, repo)  # (whatever identity is pinned beside them)
    if identity is None and identity_regexp is None:
        identity_regexp = _implied_identity(workflow, repo)
        issuer = issuer or GITHUB_ACTIONS_ISSUER
    if not issuer:
        raise TrustConfigError("a certificate identity needs its OIDC issuer (--certificate-oidc-issuer), "
                               "or anyone that issuer vouches for with that name would be trusted")
    if identity_regexp is not None:
        try:
            re.compile(identity_regexp)
        except re.error as e:
            raise TrustConfigError(f"identity regexp {identity_regexp!r} is not a valid regular expression: "
                                   f"{e}") from e
    return SigstoreIdentity(issuer=issuer, identity=identity, identity_regexp=identity_regexp,
                            source_repository=repo,
                            source_ref=_normalize_ref(source_ref) if source_ref else None,
                            signer_workflow=workflow, github_hosted=deny_self_hosted_runners)


def _repo_beside(workflow: str | None, repo: str | None) -> None:
    """A signer workflow needs the repository it built pinned beside it, with an identity given or implied."""
    if workflow is not None and repo is None:
        raise TrustConfigError(
            "a signer workflow names the workflow that signed, not the repository it built: any repository may "
            "call a reusable workflow (a public one, anyone's), so pin that repository too (--github-repo "
            "OWNER/REPO; gh attestation verify asks for --repo likewise)")


def _implied_identity(workflow: str | None, repo: str | None) -> str:
    """The identity regexp the GitHub fields imply (see :func:`sigstore_identity`)."""
    if workflow is not None:
        return re.escape(f"https://{workflow}") + ("" if "@" in workflow else "@.+")
    if repo is not None:
        return re.escape(f"https://{repo}/") + ".+"
    raise TrustConfigError("a Sigstore identity needs a certificate identity (or identity regexp), "
                           "a GitHub repository or a signer workflow")


def _normalize_github_repo(value: str) -> str:
    """``acme/app``, ``github.com/acme/app`` or a URL -> ``github.com/acme/app`` (host kept if given)."""
    text = value.strip().removeprefix("https://").removeprefix("http://").strip("/")
    parts = text.split("/")
    if len(parts) == 2 and "." not in parts[0]:
        text = f"github.com/{text}"
    if len(text.split("/")) != 3 or not all(text.split("/")):
        raise TrustConfigError(f"GitHub repository {value!r} is not OWNER/REPO")
    return normalize_repo(text)  # ValueError for what is not a URL at all: callers name the flag or key


def _normalize_workflow(value: str) -> str:
    """``acme/app/.github/workflows/f.yml[@ref]`` -> ``github.com/acme/app/.github/workflows/f.yml[@ref]``."""
    text = value.strip().removeprefix("https://").removeprefix("http://").strip("/")
    first = text.split("/", 1)[0]
    if "." not in first:
        text = f"github.com/{text}"
    if "/.github/workflows/" not in text:
        raise TrustConfigError(f"signer workflow {value!r} is not OWNER/REPO/.github/workflows/FILE")
    return text


def _normalize_ref(value: str) -> str:
    """A branch name means its ref (``main`` -> ``refs/heads/main``); full refs are kept."""
    return value if value.startswith("refs/") else f"refs/heads/{value}"


def mismatch(claims: CertificateClaims, pinned: SigstoreIdentity) -> str | None:
    """Why ``claims`` do not satisfy ``pinned`` (the first failed requirement), or None if they do."""
    return next((reason for check in _CHECKS if (reason := check(claims, pinned)) is not None), None)


def _issuer(claims: CertificateClaims, pinned: SigstoreIdentity) -> str | None:
    """The OIDC issuer is the pinned one."""
    if claims.issuer != pinned.issuer:
        return f"issuer is {claims.issuer!r}, expected {pinned.issuer!r}"
    return None


def _identity(claims: CertificateClaims, pinned: SigstoreIdentity) -> str | None:
    """A SAN is the pinned identity, if one is pinned."""
    if pinned.identity is not None and pinned.identity not in claims.sans:
        return f"identity is not {pinned.identity!r}"
    return None


def _identity_regexp(claims: CertificateClaims, pinned: SigstoreIdentity) -> str | None:
    """A SAN matches the pinned identity regexp (whole), if one is pinned."""
    regexp = pinned.identity_regexp
    if regexp is not None and not any(re.fullmatch(regexp, san) for san in claims.sans):
        return f"identity does not match {pinned.identity_regexp!r}"
    return None


def _source_repository(claims: CertificateClaims, pinned: SigstoreIdentity) -> str | None:
    """The source repository is the pinned one (normalized), if one is pinned."""
    if pinned.source_repository is None:
        return None
    found = claims.source_repository_uri
    if found is None or normalize_repo(found) != normalize_repo(pinned.source_repository):
        return f"source repository is {found!r}, expected {pinned.source_repository!r}"
    return None


def _source_ref(claims: CertificateClaims, pinned: SigstoreIdentity) -> str | None:
    """The source ref is the pinned one, if one is pinned."""
    if pinned.source_ref is not None and claims.source_repository_ref != pinned.source_ref:
        return f"source ref is {claims.source_repository_ref!r}, expected {pinned.source_ref!r}"
    return None


def _signer_workflow(claims: CertificateClaims, pinned: SigstoreIdentity) -> str | None:
    """The Build Signer URI names the pinned workflow, if one is pinned."""
    workflow = pinned.signer_workflow
    if workflow is not None and not _workflow_matches(claims.build_signer_uri, workflow):
        return f"signer workflow is {claims.build_signer_uri!r}, expected {pinned.signer_workflow!r}"
    return None


def _hosted_runner(claims: CertificateClaims, pinned: SigstoreIdentity) -> str | None:
    """The runner is GitHub-hosted, if self-hosted runners are denied."""
    if pinned.github_hosted and claims.runner_environment != "github-hosted":
        return f"runner environment is {claims.runner_environment!r}, expected 'github-hosted'"
    return None


#: The requirements :func:`mismatch` checks, in order: the first one that fails names the mismatch.
_CHECKS = (_issuer, _identity, _identity_regexp, _source_repository, _source_ref, _signer_workflow, _hosted_runner)


def _workflow_matches(build_signer_uri: str | None, workflow: str) -> bool:
    """True if the Build Signer URI names ``workflow``.

    The URI is ``https://HOST/OWNER/REPO/.github/workflows/FILE@REF``; its ``@REF`` counts only
    when ``workflow`` has one too.
    """
    if build_signer_uri is None or not build_signer_uri.startswith("https://"):
        return False
    found = build_signer_uri.removeprefix("https://")
    if "@" not in workflow:
        found = found.split("@", 1)[0]
    return found == workflow


def claimed_identities(bundle: Bundle, identities: Sequence[Identity]) -> tuple[str, ...]:
    """Names of the ``identities`` whose Sigstore entries ``bundle``'s certificate claims to satisfy (unverified)."""
    if bundle.certificate is None:
        return ()
    try:
        claims = bundle.certificate_claims()
    except MalformedEvidence:
        return ()
    return tuple(i.name for i in identities if any(mismatch(claims, pinned) is None for pinned in i.sigstore))
