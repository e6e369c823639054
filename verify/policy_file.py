"""A policy file (YAML, docs/policy.md) read into a :class:`~verify.policy.Policy`, strictly.

Unknown keys, duplicate keys, YAML 1.1 booleans and merge keys, wrong types and empty rule sets are
errors that name the file, the line and the key; keys are read through :mod:`verify.trust`, every
file through :func:`verify.files.read_file` (regular files, a size limit).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import date, datetime
from pathlib import Path
from typing import Any

from verify.buildtypes import BuildTypeRule, rule_key
from verify.digests import ACCEPTED, KNOWN, WEAK
from verify.errors import MalformedEvidence, PolicyError, TrustConfigError
from verify.files import read_file
from verify.formats.encoding import parse_time
from verify.formats.policy_yaml import YamlDoc, any_mapping, mapping, string, strings
from verify.limits import MAX_POLICY_BYTES
from verify.policy import (
    ApprovalRequirement,
    ComponentRules,
    Policy,
    ProvenanceRules,
    ReleaseRule,
    SourceRule,
    StageRule,
    TrustedBuilder,
    VsaRequirement,
)
from verify.sigstore.identity import sigstore_identity
from verify.trust import Identity, PublicKey, SigstoreIdentity, load_public_key_file

__all__ = ["kms_pem_name", "load_policy"]

_FINGERPRINT = re.compile(r"[0-9a-fA-F]{64}")


#: A KMS key ARN in any AWS partition (aws, aws-cn, aws-us-gov, ...), as the KMS signer takes them.
_KMS_ARN = re.compile(r"arn:aws(-[a-z]+)*:kms:")


def kms_pem_name(arn: str) -> str:
    """File name of the pinned PEM for a KMS key: what 'attest key export' writes by default."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", arn.rsplit("/", 1)[-1]) + ".pub.pem"


_ZONELESS = re.compile(r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?")


def _time(doc: YamlDoc, value: Any, path: tuple[str, ...]) -> datetime:
    """An RFC 3339 date-time with a time zone, read by :func:`verify.formats.encoding.parse_time` (YAML may already
    have read an unquoted one as a datetime: it is read again from its ISO form)."""
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise doc.error(path, "has no time zone; write it in UTC with a Z, e.g. 2026-01-31T00:00:00Z")
        value = value.isoformat()
    elif isinstance(value, date):
        raise doc.error(path, f"{value.isoformat()} is a date; give a time with a zone, e.g. "
                              f"{value.isoformat()}T00:00:00Z")
    if not isinstance(value, str):
        raise doc.error(path, "must be an RFC 3339 time such as 2026-01-31T00:00:00Z")
    if _ZONELESS.fullmatch(value.strip()):
        raise doc.error(path, "has no time zone; write it in UTC with a Z, e.g. 2026-01-31T00:00:00Z")
    try:
        return parse_time(value.strip(), what="")
    except MalformedEvidence as e:
        raise doc.error(path, str(e).strip()) from None


def _revoked(doc: YamlDoc, value: Any, path: tuple[str, ...], base: Path) -> tuple[frozenset[str], list[PublicKey]]:
    """A ``revoked`` list: key fingerprints (sha256 of the DER SubjectPublicKeyInfo, hex) or PEM paths."""
    fingerprints: set[str] = set()
    keys: list[PublicKey] = []
    for i, item in enumerate(strings(doc, value, path, nonempty=False)):  # an empty list revokes nothing
        if _FINGERPRINT.fullmatch(item):
            fingerprints.add(item.lower())
        else:
            key = _load_key(doc, base / item, (*path, str(i)))
            fingerprints.add(key.fingerprint)
            keys.append(key)
    return frozenset(fingerprints), keys


def _identity(doc: YamlDoc, name: str, value: Any, base: Path, *, revoked: frozenset[str] = frozenset(),
              revoked_keys: list[PublicKey] | None = None) -> Identity:
    """``identities.NAME``: its keys, KMS keys and Sigstore identities, its validity window, its revoked keys."""
    path = ("identities", name)
    spec = mapping(doc, value, path, {"keys", "kms", "sigstore"}, frozenset({"not-before", "not-after", "revoked"}))
    keys = [*_key_files(doc, spec, path, base), *_kms_keys(doc, spec, path, base)]
    sigstore = _sigstore_entries(doc, spec, path)
    if not keys and not sigstore:  # {}, {kms: []} and {sigstore: []} alike
        raise doc.error(path, "names no keys, kms keys or sigstore identity")
    not_before, not_after = _window(doc, spec, path)
    own, own_keys = (_revoked(doc, spec["revoked"], (*path, "revoked"), base) if "revoked" in spec
                     else (frozenset(), []))
    revoked = revoked | own
    if revoked_keys is not None:
        revoked_keys.extend(own_keys)
        revoked_keys.extend(key for key in keys if key.fingerprint in revoked)
    # a revoked key is dropped here, so that no code iterating ``keys`` can trust it by accident
    return Identity(name=name, keys=tuple(key for key in keys if key.fingerprint not in revoked),
                    sigstore=tuple(sigstore), not_before=not_before, not_after=not_after, revoked=revoked)


def _key_files(doc: YamlDoc, spec: dict[str, Any], path: tuple[str, ...], base: Path) -> list[PublicKey]:
    """``keys``: pinned PEM files, relative to the policy's folder."""
    names = strings(doc, spec.get("keys", []), (*path, "keys"), nonempty="keys" in spec)
    return [_load_key(doc, base / rel, (*path, "keys", str(i))) for i, rel in enumerate(names)]


def _kms_keys(doc: YamlDoc, spec: dict[str, Any], path: tuple[str, ...], base: Path) -> list[PublicKey]:
    """``kms``: KMS key ARNs (pinned by the PEM 'attest key export' writes) or ``{arn, pem}``."""
    keys: list[PublicKey] = []
    for i, item in enumerate(spec.get("kms", []) if isinstance(spec.get("kms", []), list) else [None]):
        item_path: tuple[str, ...] = (*path, "kms", str(i))
        if isinstance(item, str) and _KMS_ARN.match(item):
            keys.append(_load_key(doc, base / kms_pem_name(item), item_path, arn=item))
        elif isinstance(item, dict):
            entry = mapping(doc, item, item_path, {"arn", "pem"})
            arn = string(doc, entry.get("arn"), (*item_path, "arn"))
            keys.append(_load_key(doc, base / string(doc, entry.get("pem"), (*item_path, "pem")), item_path, arn=arn))
        else:
            raise doc.error(item_path, "must be a KMS key ARN or {arn: ARN, pem: PINNED_PUBLIC_KEY}")
    return keys


def _kms_pins_apart(doc: YamlDoc, identities: Mapping[str, Identity]) -> None:
    """Two KMS keys of two identities pinned by one public key: one of the pins is another key's (the default
    file of ``alias/prod/signer`` and of ``alias/dev/signer`` is the same ``signer.pub.pem``), and whatever that key
    signs would count for both identities."""
    pinned: dict[str, tuple[str, str]] = {}
    for name, identity in identities.items():
        for key in identity.keys:
            if not key.name.startswith("arn:"):
                continue
            other_name, other_arn = pinned.setdefault(key.fingerprint, (name, key.name))
            if other_name != name and other_arn != key.name:
                raise doc.error(("identities", name, "kms"), f"pins KMS key {key.name} with the public key that pins "
                                f"{other_arn} of identity {other_name!r}: one of the two pins is the other key's "
                                f"(the default file of both is {kms_pem_name(key.name)!r}); export each key to a "
                                "file of its own and pin it with {arn: ARN, pem: FILE}")


def _sigstore_entries(doc: YamlDoc, spec: dict[str, Any], path: tuple[str, ...]) -> list[SigstoreIdentity]:
    """``sigstore``: one Sigstore identity or a list of them."""
    raw = spec.get("sigstore")
    if raw is None:
        return []
    if not isinstance(raw, list):
        return [_sigstore_entry(doc, raw, (*path, "sigstore"))]
    return [_sigstore_entry(doc, item, (*path, "sigstore", str(i))) for i, item in enumerate(raw)]


def _window(doc: YamlDoc, spec: dict[str, Any], path: tuple[str, ...]) -> tuple[datetime | None, datetime | None]:
    """``not-before`` and ``not-after``: when the identity may sign; the end after the start."""
    not_before = _time(doc, spec["not-before"], (*path, "not-before")) if "not-before" in spec else None
    not_after = _time(doc, spec["not-after"], (*path, "not-after")) if "not-after" in spec else None
    if not_before is not None and not_after is not None and not_after <= not_before:
        raise doc.error((*path, "not-after"), f"is not after not-before ({not_before.isoformat()})")
    return not_before, not_after


_SIGSTORE_KEYS = {"issuer", "identity", "identity-regexp", "github-repo", "source-ref", "signer-workflow",
                  "deny-self-hosted-runners"}


def _sigstore_entry(doc: YamlDoc, item: Any, path: tuple[str, ...]) -> SigstoreIdentity:
    """``{issuer, identity | identity-regexp}``, optionally narrowed by the GitHub fields of the CLI flags."""
    entry = mapping(doc, item, path, _SIGSTORE_KEYS)
    issuer = string(doc, entry.get("issuer"), (*path, "issuer"))
    if ("identity" in entry) == ("identity-regexp" in entry):
        raise doc.error(path, "needs exactly one of 'identity' or 'identity-regexp'")
    texts = {key: string(doc, entry[key], (*path, key))
             for key in _SIGSTORE_KEYS - {"deny-self-hosted-runners"} if key in entry}
    deny = entry.get("deny-self-hosted-runners", False)
    if not isinstance(deny, bool):
        raise doc.error((*path, "deny-self-hosted-runners"), "must be true or false")
    try:
        return sigstore_identity(issuer=issuer, identity=texts.get("identity"),
                                 identity_regexp=texts.get("identity-regexp"),
                                 github_repo=texts.get("github-repo"), source_ref=texts.get("source-ref"),
                                 signer_workflow=texts.get("signer-workflow"), deny_self_hosted_runners=deny)
    except TrustConfigError as e:
        raise doc.error(path, str(e)) from e
    except ValueError as e:  # a repository that is not a URL at all ('[', say)
        raise doc.error((*path, "github-repo"), f"is not a repository ({e})") from e


def _load_key(doc: YamlDoc, file: Path, path: tuple[str, ...], *, arn: str | None = None) -> PublicKey:
    doc.key_files.append(str(file))
    try:
        key = load_public_key_file(file)
    except TrustConfigError as e:
        hint = f"; pin it with 'attest key export awskms:{arn} --out {file}'" if arn else ""
        raise doc.error(path, f"{e}{hint}") from e
    return replace(key, name=arn or str(file))


def _stage(doc: YamlDoc, name: str, value: Any, identities: Mapping[str, Identity]) -> StageRule:
    """``stages.NAME``: its verifier, the VSAs and approvals it requires, its resource URIs and level, and who
    signs its deployment records."""
    path = ("stages", name)
    spec = mapping(doc, value, path, {"verifier", "require-vsa", "require-approvals", "resource-uri", "min-level",
                                       "deployed-by", "require-deployed", "hotfix"})
    verifier = _verifier(doc, spec.get("verifier"), (*path, "verifier"), identities)
    requirements = (_vsa_requirements(doc, spec["require-vsa"], (*path, "require-vsa"), identities)
                    if "require-vsa" in spec else ())
    approvals = (_approval_requirement(doc, spec["require-approvals"], (*path, "require-approvals"), identities)
                 if "require-approvals" in spec else None)
    resource_uris = strings(doc, spec["resource-uri"], (*path, "resource-uri")) if "resource-uri" in spec else ()
    min_level = _level(doc, spec["min-level"], (*path, "min-level")) if "min-level" in spec else 0
    deployed_by = (_signers(doc, spec["deployed-by"], (*path, "deployed-by"), identities) if "deployed-by" in spec
                   else ())
    require_deployed = (strings(doc, spec["require-deployed"], (*path, "require-deployed"))
                        if "require-deployed" in spec else ())
    hotfix = None
    if "hotfix" in spec:
        entry = mapping(doc, spec["hotfix"], (*path, "hotfix"), {"require-approvals"})
        if "require-approvals" not in entry:
            raise doc.error((*path, "hotfix"), "needs require-approvals (who must approve a hotfix, and how many)")
        hotfix = _approval_requirement(doc, entry["require-approvals"], (*path, "hotfix", "require-approvals"),
                                       identities)
    return StageRule(name=name, verifier=verifier, require_vsa=requirements, require_approvals=approvals,
                     resource_uris=resource_uris, min_level=min_level, deployed_by=deployed_by,
                     require_deployed=require_deployed, hotfix=hotfix)


def _verifier(doc: YamlDoc, value: Any, path: tuple[str, ...], identities: Mapping[str, Identity]) -> str | None:
    """``verifier``: the identity that signs the stage's VSAs, if any."""
    if value is None:
        return None
    name = string(doc, value, path)
    if name not in identities:
        raise doc.error(path, f"names identity {name!r}, which 'identities' does not define")
    return name


def _vsa_requirements(doc: YamlDoc, value: Any, path: tuple[str, ...],
                      identities: Mapping[str, Identity]) -> tuple[VsaRequirement, ...]:
    """``require-vsa``: stage names, or ``{stage, signed-by}``."""
    if not isinstance(value, list):
        raise doc.error(path, "must be a list of {stage, signed-by}")
    if not value:
        raise doc.error(path, "must not be empty (an empty rule would pass everything); name the stages whose VSAs "
                              "are required, or remove require-vsa")
    return tuple(_vsa_requirement(doc, item, (*path, str(i)), identities) for i, item in enumerate(value))


def _vsa_requirement(doc: YamlDoc, item: Any, path: tuple[str, ...],
                     identities: Mapping[str, Identity]) -> VsaRequirement:
    """One ``require-vsa`` entry; without ``signed-by``, the VSAs of that stage's verifier."""
    entry = mapping(doc, {"stage": item} if isinstance(item, str) else item, path, {"stage", "signed-by"})
    stage = string(doc, entry.get("stage"), (*path, "stage"))
    signed_by = entry.get("signed-by")
    if signed_by is None:
        other = doc.data.get("stages", {}).get(stage)
        signed_by = other.get("verifier") if isinstance(other, dict) else None
        if signed_by is None:
            raise doc.error(path, f"says neither who signs stage {stage!r}'s VSAs ('signed-by') nor does "
                                  f"stages.{stage}.verifier")
    return VsaRequirement(stage=stage, signed_by=_signers(doc, signed_by, (*path, "signed-by"), identities))


def _approval_requirement(doc: YamlDoc, value: Any, path: tuple[str, ...],
                          identities: Mapping[str, Identity]) -> ApprovalRequirement:
    """``require-approvals``: how many of which identities must approve."""
    entry = mapping(doc, value, path, {"count", "signed-by"})
    count = entry.get("count")
    if not isinstance(count, int) or isinstance(count, bool) or count < 1:
        raise doc.error((*path, "count"), "must be a whole number of at least 1")
    signed_by = _signers(doc, entry.get("signed-by"), (*path, "signed-by"), identities)
    _distinct_approvers(doc, signed_by, (*path, "signed-by"), identities)
    return ApprovalRequirement(count=count, signed_by=signed_by)


def _distinct_approvers(doc: YamlDoc, names: Sequence[str], path: tuple[str, ...],
                        identities: Mapping[str, Identity]) -> None:
    """Approvers who pin one key are one signer: one approval signed with it would count for each of them."""
    holder: dict[str, str] = {}
    for name in names:
        for key in identities[name].keys:
            other = holder.setdefault(key.fingerprint, name)
            if other != name:
                raise doc.error(path, f"names {other!r} and {name!r}, who pin the same key ({key.name}): one approval "
                                      "signed with it would count for both; give each approver their own key")


def _signers(doc: YamlDoc, value: Any, path: tuple[str, ...], identities: Mapping[str, Identity]) -> tuple[str, ...]:
    """A ``signed-by`` list: names of identities the policy defines."""
    names = strings(doc, value, path)
    for who in names:
        if who not in identities:
            raise doc.error(path, f"names identity {who!r}, which 'identities' does not define")
    return names


def _level(doc: YamlDoc, value: Any, path: tuple[str, ...]) -> int:
    """A SLSA build level, 1 to 3 (0 guarantees nothing, so it is no level to trust or require)."""
    if not isinstance(value, int) or isinstance(value, bool) or value not in range(1, 4):
        raise doc.error(path, f"must be a SLSA build level, 1, 2 or 3 (found {value!r})")
    return value


def _parameter_path(doc: YamlDoc, value: Any, path: tuple[str, ...]) -> tuple[str, ...]:
    """``workflow.path``: an external parameter's keys, joined by dots."""
    text = string(doc, value, path)
    parts = tuple(text.split("."))
    if not all(parts):
        raise doc.error(path, f"{text!r} is not a parameter path; name the keys from externalParameters down, "
                              "joined by dots (e.g. inputs.skip-tests)")
    return parts


#: Values in one expected parameter, nested ones included: a YAML alias that refers to itself would never end, and a
#: few aliases of aliases make billions (the policy is read by a pipeline; it must not hang it).
_MAX_PARAMETER_VALUES = 10_000


def _plain_json(value: Any) -> str | None:
    """Why ``value`` is not JSON that compares exactly (a float, 1.0 being 1; a time; null), or is too large to
    read (more than :data:`_MAX_PARAMETER_VALUES` values, an alias referring to itself); None when it is fine."""
    todo, seen = [value], 0
    while todo:
        item = todo.pop()
        seen += 1
        if seen > _MAX_PARAMETER_VALUES:
            return (f"holds more than {_MAX_PARAMETER_VALUES} values (an alias that refers to itself, or to aliases "
                    "of aliases?); spell the value out")
        if isinstance(item, (str, int)):  # bool is an int
            continue
        if isinstance(item, list):
            todo.extend(item)
        elif isinstance(item, dict) and all(isinstance(k, str) for k in item):
            todo.extend(item.values())
        else:
            return ("must be a string, a whole number, true, false, a list or a mapping, as the provenance's JSON "
                    "has it (quote a time or a decimal)")
    return None


def _build_types(doc: YamlDoc, value: Any, path: tuple[str, ...]) -> dict[str, BuildTypeRule]:
    """``build-types``: per buildType URI, ``ignore`` (parameter paths) and ``parameters`` (expected values)."""
    rules: dict[str, BuildTypeRule] = {}
    for uri, spec in any_mapping(doc, value, path).items():
        type_path = (*path, str(uri))
        string(doc, uri, type_path)
        entry = mapping(doc, spec if spec is not None else {}, type_path, {"ignore", "parameters"})
        ignore = tuple(_parameter_path(doc, item, (*type_path, "ignore", str(i)))
                       for i, item in enumerate(strings(doc, entry["ignore"], (*type_path, "ignore"))
                                                if "ignore" in entry else ()))
        expected: dict[tuple[str, ...], Any] = {}
        for key, wanted in any_mapping(doc, entry.get("parameters", {}), (*type_path, "parameters")).items():
            key_path = (*type_path, "parameters", str(key))
            wrong = _plain_json(wanted)
            if wrong is not None:
                raise doc.error(key_path, wrong)
            expected[_parameter_path(doc, key, key_path)] = wanted
        key = rule_key(str(uri))  # (GitLab's runner: one rule for every version)
        if key in rules:
            raise doc.error(type_path, f"is the same build type as another entry ({key}): one rule each")
        rules[key] = BuildTypeRule(ignore=ignore, parameters=expected)
    return rules


def _builders(doc: YamlDoc, value: Any, path: tuple[str, ...]) -> tuple[TrustedBuilder, ...]:
    """``builders``: ids (trusted for level 1) or ``{id, level}``; an id listed twice is an error."""
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not value:
        raise doc.error(path, "must be a non-empty list of builder ids or {id, level} (an empty rule would pass "
                              "everything)")
    builders: dict[str, TrustedBuilder] = {}
    for i, item in enumerate(value):
        item_path = (*path, str(i))
        if isinstance(item, str):
            builder = TrustedBuilder(id=string(doc, item, item_path))
        else:
            entry = mapping(doc, item, item_path, {"id", "level"})
            if "level" not in entry:
                raise doc.error((*item_path, "level"), "is missing; give the SLSA build level this builder is "
                                                       "trusted for (1, 2 or 3), or list its id alone for level 1")
            builder = TrustedBuilder(id=string(doc, entry.get("id"), (*item_path, "id")),
                                     level=_level(doc, entry["level"], (*item_path, "level")))
        if builder.id in builders:
            raise doc.error(item_path, f"lists builder {builder.id!r} twice; give it once, with the level it is "
                                       "trusted for")
        builders[builder.id] = builder
    return tuple(builders.values())


def load_policy(path: Path) -> Policy:
    """Read and validate the policy file at ``path``."""
    raw = read_file(path, what="policy", limit=MAX_POLICY_BYTES, error=PolicyError)
    doc = YamlDoc(path, _text(raw, path))
    top = mapping(doc, doc.data, (), {"version", "identities", "provenance", "stages", "revoked", "releases",
                                       "components"})
    _version(doc, top.get("version"))
    raw_identities = _identity_specs(doc, top.get("identities"))
    revoked, revoked_keys = (_revoked(doc, top["revoked"], ("revoked",), path.parent) if "revoked" in top
                             else (frozenset(), []))
    identities = {_name(doc, name, ("identities",)): _identity(doc, str(name), spec, path.parent, revoked=revoked,
                                                              revoked_keys=revoked_keys)
                  for name, spec in raw_identities.items()}
    _kms_pins_apart(doc, identities)
    rules = _provenance(doc, top.get("provenance"), identities)
    stages = _stages(doc, top.get("stages") or {}, identities)
    releases = _releases(doc, top["releases"], identities) if "releases" in top else None
    components = _components(doc, top["components"]) if "components" in top else {}
    unique_revoked = tuple({key.fingerprint: key for key in revoked_keys}.values())
    return Policy(identities=identities, provenance=rules, stages=stages, releases=releases,
                  uri=path.resolve().as_uri(), digest=hashlib.sha256(raw).hexdigest(),
                  revoked=revoked, revoked_keys=unique_revoked, components=components,
                  key_files=tuple(dict.fromkeys(doc.key_files)))


def _text(raw: bytes, path: Path) -> str:
    """The policy's bytes as UTF-8 text."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise PolicyError(f"policy {path} is not UTF-8 text") from e


def _version(doc: YamlDoc, value: Any) -> None:
    """``version``: 1."""
    if type(value) is not int or value != 1:
        raise doc.error(("version",), f"must be 1 (found {value!r})")


def _identity_specs(doc: YamlDoc, value: Any) -> dict[str, Any]:
    """``identities``: a mapping that names at least one identity."""
    specs = any_mapping(doc, value, ("identities",))
    if not specs:
        raise doc.error(("identities",), "names no trusted identity; verification without one is refused")
    return specs


def _provenance(doc: YamlDoc, value: Any, identities: Mapping[str, Identity]) -> ProvenanceRules:
    """``provenance``: who signs it and what it must show."""
    path = ("provenance",)
    prov = mapping(doc, value, path, {"signed-by", "source", "builders", "digests", "lockfiles", "allow-dirty",
                                       "predicate-type", "build-types"})
    signed_by = _signers(doc, prov.get("signed-by"), (*path, "signed-by"), identities)
    source = _source(doc, prov["source"], (*path, "source")) if "source" in prov else SourceRule()
    digests = _digests(doc, prov["digests"], (*path, "digests")) if "digests" in prov else ACCEPTED
    allow_dirty = _allow_dirty(doc, prov.get("allow-dirty", False), (*path, "allow-dirty"))
    return ProvenanceRules(
        signed_by=signed_by, source=source,
        builders=_builders(doc, prov["builders"], (*path, "builders")) if "builders" in prov else (),
        digests=digests,
        lockfiles=strings(doc, prov["lockfiles"], (*path, "lockfiles")) if "lockfiles" in prov else (),
        allow_dirty=allow_dirty,
        predicate_type=string(doc, prov["predicate-type"], (*path, "predicate-type")) if "predicate-type" in prov
        else None,
        build_types=_build_types(doc, prov["build-types"], (*path, "build-types")) if "build-types" in prov else {},
    )


def _source(doc: YamlDoc, value: Any, path: tuple[str, ...]) -> SourceRule:
    """``source``: the repository (checked by :class:`SourceRule`) and the branches."""
    spec = mapping(doc, value, path, {"uri", "branches"})
    if not spec:
        raise doc.error(path, "names neither a repository nor branches (an empty rule would pass every source); give "
                              "its uri and branches, or remove it")
    uri = string(doc, spec.get("uri"), (*path, "uri")) if "uri" in spec else None
    try:
        rule = SourceRule(uri=uri)
    except PolicyError as e:
        raise doc.error((*path, "uri"), str(e)) from e
    branches = strings(doc, spec["branches"], (*path, "branches")) if "branches" in spec else ()
    try:
        return replace(rule, branches=branches)
    except PolicyError as e:
        raise doc.error((*path, "branches"), str(e)) from e


def _digests(doc: YamlDoc, value: Any, path: tuple[str, ...]) -> tuple[str, ...]:
    """``digests``: the algorithms a subject may be matched on; none weak, none unknown."""
    digests = strings(doc, value, path)
    for algorithm in digests:
        if algorithm in WEAK:
            raise doc.error(path, f"{algorithm} is too weak to identify an artefact")
        if algorithm not in KNOWN:
            raise doc.error(path, f"unknown digest algorithm {algorithm!r}; expected some of {sorted(KNOWN)}")
    return digests


def _allow_dirty(doc: YamlDoc, value: Any, path: tuple[str, ...]) -> bool:
    """``allow-dirty``: true or false."""
    if not isinstance(value, bool):
        raise doc.error(path, "must be true or false")
    return value


def _name(doc: YamlDoc, name: Any, path: tuple[str, ...]) -> str:
    """The name of an identity, a stage or a component: text (YAML reads ``5``, ``~`` or ``yes`` as a number, null
    or true, and a flag naming ``None`` would then find the stage ``~``)."""
    if not isinstance(name, str) or not name.strip():
        raise doc.error((*path, str(name)), "is not a name: quote it, or name it with letters")
    return name


def _stages(doc: YamlDoc, value: Any, identities: Mapping[str, Identity]) -> dict[str, StageRule]:
    """``stages``: each stage, and every stage a stage requires a VSA from defined."""
    stages = {_name(doc, name, ("stages",)): _stage(doc, str(name), spec, identities)
              for name, spec in any_mapping(doc, value, ("stages",)).items()}
    for stage in stages.values():
        for requirement in stage.require_vsa:
            if requirement.stage not in stages:
                raise doc.error(("stages", stage.name, "require-vsa"),
                                f"requires a VSA from stage {requirement.stage!r}, which 'stages' does not define")
        _check_require_deployed(doc, stage, stages)
        for uri in stage.resource_uris:
            other = next((o.name for o in stages.values() if o.name != stage.name and o.accepts_resource(uri)), None)
            if other is not None:
                raise doc.error(("stages", stage.name, "resource-uri"),
                                f"names {uri!r}, which stage {other!r} takes too: a VSA for one would count for the "
                                "other; give each stage its own")
    return stages


def _check_require_deployed(doc: YamlDoc, stage: StageRule, stages: Mapping[str, StageRule]) -> None:
    """``require-deployed``: other stages, each naming who signs its deployment records (else none could count)."""
    path = ("stages", stage.name, "require-deployed")
    for name in stage.require_deployed:
        if name == stage.name:
            raise doc.error(path, f"names {name!r}, the stage itself; name the stages a release must have run in "
                                  "before it")
        other = stages.get(name)
        if other is None:
            raise doc.error(path, f"names stage {name!r}, which 'stages' does not define")
        if not other.deployed_by:
            raise doc.error(path, f"names stage {name!r}, which names no identity that signs its deployment records "
                                  f"(stages.{name}.deployed-by), so no record could satisfy it")


def _releases(doc: YamlDoc, value: Any, identities: Mapping[str, Identity]) -> ReleaseRule:
    """``releases``: who may sign release manifests."""
    spec = mapping(doc, value, ("releases",), {"signed-by"})
    return ReleaseRule(signed_by=_signers(doc, spec.get("signed-by"), ("releases", "signed-by"), identities))


def _components(doc: YamlDoc, value: Any) -> dict[str, ComponentRules]:
    """``components``: per release component, the ``source``, ``builders`` or ``lockfiles`` that differ from
    ``provenance``'s; an entry that changes nothing is an error (it would read as a rule and be none)."""
    path = ("components",)
    specs = any_mapping(doc, value, path)
    if not specs:
        raise doc.error(path, "names no component; name one (components: {infra: {source: ...}}) or remove it")
    return {_name(doc, name, path): _component(doc, spec, (*path, str(name))) for name, spec in specs.items()}


def _component(doc: YamlDoc, value: Any, path: tuple[str, ...]) -> ComponentRules:
    """One ``components.NAME``."""
    spec = mapping(doc, value, path, {"source", "builders", "lockfiles"})
    if not spec:
        raise doc.error(path, "changes no rule; give its source, builders or lockfiles, or remove it")
    source = _source(doc, spec["source"], (*path, "source")) if "source" in spec else None
    if source is not None and source.uri is None:
        raise doc.error((*path, "source"), "names no uri: a component's source replaces provenance.source as a "
                                           "whole, so without its repository any repository would build it; give "
                                           "the component's uri")
    return ComponentRules(
        source=source,
        builders=_builders(doc, spec["builders"], (*path, "builders")) if "builders" in spec else None,
        lockfiles=strings(doc, spec["lockfiles"], (*path, "lockfiles")) if "lockfiles" in spec else None)
