"""Deployment records on the path: who may sign one for an environment, and which release it may name.

``attest deploy record`` asks two questions here before it signs anything (the third, whether the
environment's gate passes for the release, is :func:`verify.release_gate.decide_release`'s):

  :func:`deployer`          the identity the signer's key signs deployment records as, for an environment:
                            one of the identities ``stages.<env>.deployed-by`` lists
  :func:`release_to_record` the release manifest a record may name: signed by an identity of
                            ``releases.signed-by``, read strictly (:func:`verify.formats.release.read_release`),
                            with the component deployed among its components

A record nobody would count is not signed, so both refuse as a usage error (:class:`RequestError`, exit 2)
what the policy does not allow; a manifest that is signed but cannot be read is malformed evidence.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from verify.errors import EvidenceRejected, MalformedEvidence, PolicyError, RequestError
from verify.formats.evidence import Evidence
from verify.formats.release import RELEASE_V1, Release, ReleasePart, read_release
from verify.matching import intoto_statements
from verify.policy import Policy
from verify.signers import TrustRun, find_signers
from verify.trust import PublicKey

__all__ = ["ReleaseToRecord", "deployer", "release_to_record", "trusted_release"]


def deployer(policy: Policy, environment: str, key: PublicKey) -> str:
    """The identity ``key`` signs deployment records as, for ``environment`` (a stage) of ``policy``.

    The environment must be a stage the policy names, with a ``deployed-by`` list, and the key one of a
    listed identity's keys, usable now (not revoked, inside the identity's window).
    """
    rule = policy.stage_named(environment, flag="--env", purpose="environment deployed to")
    if not rule.deployed_by:
        raise RequestError(f"stage {environment!r} of the policy names no identity that may sign its deployment "
                           f"records (stages.{environment}.deployed-by), so a record for it would count for nothing")
    name = policy.signer_as(rule.deployed_by, key, what="a deployment record")
    if name is None:
        raise RequestError(f"--signer's public key is not a key of an identity that may sign deployment records "
                           f"for {environment!r} (stages.{environment}.deployed-by: {', '.join(rule.deployed_by)}); "
                           "a record it signed would not count")
    return name


@dataclass(frozen=True)
class ReleaseToRecord:
    """The trusted release manifest a deployment record names, and the component it records."""

    name: str
    sha256: str
    """sha256 of the manifest's envelope line (or bundle), as a VSA's inputAttestations names an attestation."""
    signer: str
    """The identity of ``releases.signed-by`` that signed the manifest."""
    source: str
    component: ReleasePart


def release_to_record(manifest: Sequence[Evidence | MalformedEvidence], policy: Policy, run: TrustRun, *,
                      component: str) -> ReleaseToRecord:
    """The release in ``manifest`` (the first, by content, that an identity of ``releases.signed-by`` signed),
    with its component ``component``.

    As :func:`trusted_release`, and :class:`RequestError` if the release has no such component.
    """
    item, release, signer = trusted_release(manifest, policy, run)
    part = next((p for p in release.components if p.name == component), None)
    if part is None:
        raise RequestError(f"--component {component!r} is not a component of release {release.name!r} (its "
                           f"components: {', '.join(p.name for p in release.components)})")
    return ReleaseToRecord(name=release.name, sha256=item.digest, signer=signer, source=item.source, component=part)


def trusted_release(manifest: Sequence[Evidence | MalformedEvidence], policy: Policy,
                    run: TrustRun) -> tuple[Evidence, Release, str]:
    """The release in ``manifest`` that an identity of ``releases.signed-by`` signed (the first, by content),
    and that identity, for a command about to sign something naming it.

    :class:`PolicyError` if the policy names no release signers; :class:`RequestError` if no release signer
    signed a release in ``manifest``; :class:`MalformedEvidence` if ``manifest`` holds no release statement,
    or the signed one cannot be read.
    """
    if policy.releases is None:
        raise PolicyError(f"policy {policy.uri} names no release signers (releases: {{signed-by: [...]}}), so no "
                          "release manifest can be trusted")
    signers = [policy.identities[name] for name in policy.releases.signed_by]
    found = sorted(((item, statement) for item, statement in intoto_statements(manifest)
                    if statement.predicate_type == RELEASE_V1), key=lambda pair: (pair[0].digest, pair[0].source))
    reasons: list[EvidenceRejected] = []
    for item, statement in found:
        try:
            signed = find_signers(item, signers, run)
        except EvidenceRejected as e:
            reasons.append(e)
            continue
        return item, read_release(statement), signed[0].name
    if reasons:
        raise RequestError(f"the release manifest is not signed by a release signer of the policy "
                           f"(releases.signed-by: {', '.join(policy.releases.signed_by)}): {reasons[-1]}")
    bad = next((e for e in manifest if isinstance(e, MalformedEvidence)), None)
    if bad is not None:
        raise bad
    raise MalformedEvidence(f"the release manifest holds no release statement ({RELEASE_V1}); write one with "
                            "'attest release create'")
