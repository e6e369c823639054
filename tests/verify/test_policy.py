"""verify.policy: loading the YAML policy strictly, every error naming file:line and key."""

from __future__ import annotations

import hashlib
import json
import re
import textwrap
from pathlib import Path

import pytest

import verify.policy_file as policy_module
from tests.verify import _factory as f
from verify.errors import PolicyError
from verify.limits import MAX_POLICY_BYTES
from verify.policy import Policy, ProvenanceRules, SourceRule, StageRule, TrustedBuilder, VsaRequirement
from verify.policy_file import load_policy
from verify.trust import Identity, load_public_key

KMS_ARN = "arn:aws:kms:eu-west-1:111111111111:key/1234abcd-12ab-34cd-56ef-1234567890ab"
KMS_ALIAS = "arn:aws:kms:eu-west-1:111111111111:alias/dev-build"
GHA_ISSUER = "https://token.actions.githubusercontent.com"
GHA_IDENTITY = "https://github.com/acme/app/.github/workflows/release.yml@refs/heads/main"

DESIGN_POLICY = f"""\
version: 1
identities:
  dev-build: {{keys: [keys/dev-build.pub.pem]}}
  dev-kms: {{kms: ["{KMS_ARN}"]}}
  dev-kms2: {{kms: [{{arn: "{KMS_ALIAS}", pem: keys/dev-build-kms.pub.pem}}]}}
  gha: {{sigstore: {{issuer: {GHA_ISSUER},
                   identity: "{GHA_IDENTITY}"}}}}
  stg-verifier: {{keys: [keys/stg.pub.pem]}}
  prd-verifier: {{keys: [keys/prd.pub.pem]}}
  alice: {{keys: [keys/alice.pub.pem]}}
provenance:
  signed-by: [dev-build, dev-kms, dev-kms2, gha]
  source: {{uri: github.com/acme/app, branches: [main]}}
  builders: ["arn:aws:codebuild:eu-west-1:111111111111:project/app-build"]
  digests: [blake3, sha256]
  lockfiles: [requirements.txt]
stages:
  stg: {{verifier: stg-verifier}}
  prd:
    verifier: prd-verifier
    require-vsa: [{{stage: stg, signed-by: stg-verifier}}]
    require-approvals: {{count: 1, signed-by: [alice]}}
    resource-uri: [arn:aws:codepipeline:eu-west-1:333333333333:app-prd]
"""

KEY_FILES = {
    "keys/dev-build.pub.pem": ("p256", 0),
    "keys/dev-build-kms.pub.pem": ("p384", 0),
    "1234abcd-12ab-34cd-56ef-1234567890ab.pub.pem": (
        "rsa2048",
        0,
    ),  # pinned PEM beside the policy for KMS_ARN
    "keys/stg.pub.pem": ("p256", 1),
    "keys/prd.pub.pem": ("p256", 2),
    "keys/alice.pub.pem": ("ed25519", 0),
}


@pytest.fixture
def policy_dir(tmp_path: Path) -> Path:
    for name, (kind, index) in KEY_FILES.items():
        f.write_pem(tmp_path, name, f.private_key(kind, index))
    return tmp_path


def _write(directory: Path, text: str, name: str = "policy.yaml") -> Path:
    path = directory / name
    path.write_text(textwrap.dedent(text))
    return path


def test_design_policy_loads(policy_dir: Path) -> None:
    path = _write(policy_dir, DESIGN_POLICY)
    policy = load_policy(path)
    assert set(policy.identities) == {
        "dev-build",
        "dev-kms",
        "dev-kms2",
        "gha",
        "stg-verifier",
        "prd-verifier",
        "alice",
    }
    dev = policy.identities["dev-build"]
    assert [k.fingerprint for k in dev.keys] == [f.fingerprint(f.private_key("p256", 0))]
    assert dev.keys[0].name == str(policy_dir / "keys/dev-build.pub.pem")
    kms = policy.identities["dev-kms"].keys[0]
    assert (kms.name, kms.fingerprint) == (KMS_ARN, f.fingerprint(f.private_key("rsa2048", 0)))
    kms2 = policy.identities["dev-kms2"].keys[0]
    assert (kms2.name, kms2.fingerprint) == (KMS_ALIAS, f.fingerprint(f.private_key("p384", 0)))
    gha = policy.identities["gha"]
    assert gha.keys == ()
    assert [(s.issuer, s.identity, s.identity_regexp) for s in gha.sigstore] == [
        (GHA_ISSUER, GHA_IDENTITY, None)
    ]
    assert policy.provenance == ProvenanceRules(
        signed_by=("dev-build", "dev-kms", "dev-kms2", "gha"),
        source=SourceRule(uri="github.com/acme/app", branches=("main",)),
        builders=(TrustedBuilder("arn:aws:codebuild:eu-west-1:111111111111:project/app-build"),),
        digests=("blake3", "sha256"),
        lockfiles=("requirements.txt",),
        allow_dirty=False,
    )
    assert [i.name for i in policy.signers()] == ["dev-build", "dev-kms", "dev-kms2", "gha"]
    assert policy.stages["stg"] == StageRule(name="stg", verifier="stg-verifier")
    prd = policy.stages["prd"]
    assert prd.verifier == "prd-verifier"
    assert prd.require_vsa == (VsaRequirement(stage="stg", signed_by=("stg-verifier",)),)
    assert prd.require_approvals is not None
    assert (prd.require_approvals.count, prd.require_approvals.signed_by) == (1, ("alice",))
    assert prd.accepts_resource("attest:stage:prd")
    assert prd.accepts_resource("arn:aws:codepipeline:eu-west-1:333333333333:app-prd")
    assert not prd.accepts_resource("attest:stage:stg")
    assert policy.uri == path.resolve().as_uri()
    assert policy.digest == hashlib.sha256(path.read_bytes()).hexdigest()


def test_minimal_policy_defaults(policy_dir: Path) -> None:
    path = _write(
        policy_dir,
        """\
        version: 1
        identities:
          dev: {keys: keys/dev-build.pub.pem}
        provenance:
          signed-by: dev
          allow-dirty: true
          predicate-type: https://example.com/sbom/v1
    """,
    )
    policy = load_policy(path)
    assert len(policy.identities["dev"].keys) == 1  # a single string is a list of one
    assert policy.provenance.signed_by == ("dev",)
    assert policy.provenance.digests == ("blake3", "sha256", "sha512", "sha384")
    assert policy.provenance.allow_dirty is True
    assert policy.provenance.predicate_type == "https://example.com/sbom/v1"
    assert policy.provenance.source == SourceRule()
    assert policy.stages == {}


def test_require_vsa_signed_by_defaults_to_the_stage_verifier(policy_dir: Path) -> None:
    path = _write(
        policy_dir,
        """\
        version: 1
        identities: {dev: {keys: [keys/dev-build.pub.pem]}, stg: {keys: [keys/stg.pub.pem]}}
        provenance: {signed-by: [dev]}
        stages:
          prd: {require-vsa: [stg]}
          stg: {verifier: stg}
    """,
    )
    assert load_policy(path).stages["prd"].require_vsa == (VsaRequirement(stage="stg", signed_by=("stg",)),)


def test_policy_digest_is_sha256_of_the_file_bytes(policy_dir: Path) -> None:
    first = _write(policy_dir, DESIGN_POLICY, "a.yaml")
    second = _write(policy_dir, DESIGN_POLICY + "# a comment changes the digest\n", "b.yaml")
    assert load_policy(first).digest == hashlib.sha256(first.read_bytes()).hexdigest()
    assert load_policy(second).digest == hashlib.sha256(second.read_bytes()).hexdigest()
    assert load_policy(first).digest != load_policy(second).digest


_BASE = """\
version: 1
identities:
  dev: {keys: [keys/dev-build.pub.pem]}
  stg: {keys: [keys/stg.pub.pem]}
provenance:
  signed-by: [dev]
"""

# (policy text, line, key, message) -- the error must read "FILE:LINE: KEY: MESSAGE..."
ERRORS = [
    pytest.param("- version: 1\n", 1, "(top level)", "must be a mapping, not list", id="top-not-mapping"),
    pytest.param(
        _BASE + "extra: 1\n",
        7,
        "extra",
        "unknown key; expected one of ['components', 'identities', 'provenance',",
        id="unknown-top-key",
    ),
    pytest.param(
        _BASE.replace("version: 1", "version: 2"), 1, "version", "must be 1 (found 2)", id="version-2"
    ),
    pytest.param(
        _BASE.replace("version: 1", "version: '1'"),
        1,
        "version",
        "must be 1 (found '1')",
        id="version-string",
    ),
    pytest.param(
        _BASE.replace("version: 1", "version: true"),
        1,
        "version",
        "must be 1 (found True)",
        id="version-bool",
    ),
    pytest.param(
        _BASE.replace("version: 1\n", ""), 1, "version", "must be 1 (found None)", id="version-missing"
    ),
    pytest.param(
        "version: 1\nidentities: {}\nprovenance: {signed-by: [dev]}\n",
        2,
        "identities",
        "names no trusted identity; verification without one is refused",
        id="identities-empty",
    ),
    pytest.param(
        "version: 1\nidentities: [dev]\nprovenance: {signed-by: [dev]}\n",
        2,
        "identities",
        "must be a mapping, not list",
        id="identities-list",
    ),
    pytest.param(
        "version: 1\nprovenance: {signed-by: [dev]}\n",
        1,
        "identities",
        "must be a mapping, not NoneType",
        id="identities-missing",
    ),
    pytest.param(
        _BASE.replace("dev: {keys: [keys/dev-build.pub.pem]}", "dev: {}"),
        3,
        "identities.dev",
        "names no keys, kms keys or sigstore identity",
        id="identity-nothing",
    ),
    pytest.param(
        _BASE.replace("dev: {keys: [keys/dev-build.pub.pem]}", "dev: {kms: []}"),
        3,
        "identities.dev",
        "names no keys, kms keys or sigstore identity",
        id="identity-empty-kms",
    ),
    pytest.param(
        _BASE.replace("dev: {keys: [keys/dev-build.pub.pem]}", "dev: {sigstore: []}"),
        3,
        "identities.dev",
        "names no keys, kms keys or sigstore identity",
        id="identity-empty-sigstore",
    ),
    pytest.param(
        _BASE.replace("dev: {keys: [keys/dev-build.pub.pem]}", "dev: keys/dev-build.pub.pem"),
        3,
        "identities.dev",
        "must be a mapping, not str",
        id="identity-not-mapping",
    ),
    pytest.param(
        _BASE.replace("{keys: [keys/dev-build.pub.pem]}", "{key: [keys/dev-build.pub.pem]}"),
        3,
        "identities.dev.key",
        "unknown key; expected one of ['keys', 'kms', 'sigstore']",
        id="identity-unknown-key",
    ),
    pytest.param(
        _BASE.replace("[keys/dev-build.pub.pem]", "[]"),
        3,
        "identities.dev.keys",
        "must not be empty (an empty rule would pass everything)",
        id="keys-empty",
    ),
    pytest.param(
        _BASE.replace("[keys/dev-build.pub.pem]", "[1]"),
        3,
        "identities.dev.keys",
        "must be a list of non-empty strings",
        id="keys-not-strings",
    ),
    pytest.param(
        _BASE.replace("keys/dev-build.pub.pem", "keys/missing.pub.pem"),
        3,
        "identities.dev.keys.0",
        "cannot read public key",
        id="keys-missing-file",
    ),
    pytest.param(
        _BASE.replace("keys/dev-build.pub.pem", "policy.yaml"),
        3,
        "identities.dev.keys.0",
        "is not a PEM public key",
        id="keys-not-pem",
    ),
    pytest.param(
        _BASE.replace("{keys: [keys/dev-build.pub.pem]}", '{kms: ["arn:aws:kms:eu-west-1:1:key/nopem"]}'),
        3,
        "identities.dev.kms.0",
        "cannot read public key",
        id="kms-without-pinned-pem",
    ),
    pytest.param(
        _BASE.replace("{keys: [keys/dev-build.pub.pem]}", '{kms: ["alias/dev"]}'),
        3,
        "identities.dev.kms.0",
        "must be a KMS key ARN or {arn: ARN, pem: PINNED_PUBLIC_KEY}",
        id="kms-not-arn",
    ),
    pytest.param(
        _BASE.replace("{keys: [keys/dev-build.pub.pem]}", '{kms: "arn:aws:kms:eu-west-1:1:key/x"}'),
        3,
        "identities.dev.kms.0",
        "must be a KMS key ARN or {arn: ARN, pem: PINNED_PUBLIC_KEY}",
        id="kms-not-list",
    ),
    pytest.param(
        _BASE.replace("{keys: [keys/dev-build.pub.pem]}", "{kms: [{arn: x, pem: y, region: z}]}"),
        3,
        "identities.dev.kms.0.region",
        "unknown key; expected one of ['arn', 'pem']",
        id="kms-unknown-key",
    ),
    pytest.param(
        _BASE.replace("{keys: [keys/dev-build.pub.pem]}", "{kms: [{pem: keys/stg.pub.pem}]}"),
        3,
        "identities.dev.kms.0.arn",
        "must be a non-empty string",
        id="kms-no-arn",
    ),
    pytest.param(
        _BASE.replace("{keys: [keys/dev-build.pub.pem]}", "{sigstore: {issuer: i}}"),
        3,
        "identities.dev.sigstore",
        "needs exactly one of 'identity' or 'identity-regexp'",
        id="sigstore-neither",
    ),
    pytest.param(
        _BASE.replace(
            "{keys: [keys/dev-build.pub.pem]}", "{sigstore: [{issuer: i, identity: a, identity-regexp: b}]}"
        ),
        3,
        "identities.dev.sigstore.0",
        "needs exactly one of 'identity' or 'identity-regexp'",
        id="sigstore-both",
    ),
    pytest.param(
        _BASE.replace("{keys: [keys/dev-build.pub.pem]}", "{sigstore: {identity: a}}"),
        3,
        "identities.dev.sigstore.issuer",
        "must be a non-empty string",
        id="sigstore-no-issuer",
    ),
    pytest.param(
        _BASE.replace("{keys: [keys/dev-build.pub.pem]}", "{sigstore: {issuer: i, identity: a, x: 1}}"),
        3,
        "identities.dev.sigstore.x",
        "unknown key; expected one of [",
        id="sigstore-unknown-key",
    ),
    pytest.param(
        _BASE.replace("{keys: [keys/dev-build.pub.pem]}", "{sigstore: {issuer: i, identity-regexp: '(a'}}"),
        3,
        "identities.dev.sigstore",
        "is not a valid regular expression: missing ), ",
        id="sigstore-bad-regexp",
    ),
    pytest.param(
        _BASE.replace("{keys: [keys/dev-build.pub.pem]}", "{sigstore: {issuer: i, identity-regexp: 5}}"),
        3,
        "identities.dev.sigstore.identity-regexp",
        "must be a non-empty string",
        id="sigstore-regexp-not-string",
    ),
    pytest.param(
        _BASE.replace("{keys: [keys/dev-build.pub.pem]}", "{sigstore: {issuer: i, identity: ''}}"),
        3,
        "identities.dev.sigstore.identity",
        "must be a non-empty string",
        id="sigstore-identity-empty",
    ),
    pytest.param(
        _BASE.replace(
            "{keys: [keys/dev-build.pub.pem]}",
            "{sigstore: {issuer: i, identity: a, deny-self-hosted-runners: 'no'}}",
        ),
        3,
        "identities.dev.sigstore.deny-self-hosted-runners",
        "must be true or false",
        id="sigstore-deny-self-hosted-not-bool",
    ),
    pytest.param(
        _BASE.replace("signed-by: [dev]", "signed-by: []"),
        6,
        "provenance.signed-by",
        "must not be empty",
        id="signed-by-empty",
    ),
    pytest.param(
        _BASE.replace("  signed-by: [dev]\n", "  builders: [b]\n"),
        5,
        "provenance.signed-by",
        "must be a list of non-empty strings",
        id="signed-by-missing",
    ),
    pytest.param(
        _BASE.replace("signed-by: [dev]", "signed-by: [dev, nobody]"),
        6,
        "provenance.signed-by",
        "names identity 'nobody', which 'identities' does not define",
        id="signed-by-unknown",
    ),
    pytest.param(
        _BASE.replace("provenance:\n  signed-by: [dev]\n", ""),
        1,
        "provenance",
        "must be a mapping, not NoneType",
        id="provenance-missing",
    ),
    pytest.param(
        _BASE + "  signed_by: [dev]\n",
        7,
        "provenance.signed_by",
        "unknown key; expected one of",
        id="provenance-unknown-key",
    ),
    pytest.param(
        _BASE + "  source: github.com/acme/app\n",
        7,
        "provenance.source",
        "must be a mapping, not str",
        id="source-not-mapping",
    ),
    pytest.param(
        _BASE + "  source: {url: github.com/acme/app}\n",
        7,
        "provenance.source.url",
        "unknown key; expected one of ['branches', 'uri']",
        id="source-unknown-key",
    ),
    pytest.param(
        _BASE + "  source: {uri: ''}\n",
        7,
        "provenance.source.uri",
        "must be a non-empty string",
        id="source-uri-empty",
    ),
    pytest.param(
        _BASE + "  source: {branches: []}\n",
        7,
        "provenance.source.branches",
        "must not be empty",
        id="branches-empty",
    ),
    pytest.param(
        _BASE + '  builders: [""]\n',
        7,
        "provenance.builders.0",
        "must be a non-empty string",
        id="builders-empty-string",
    ),
    pytest.param(_BASE + "  builders: [{id: b, level: 4}]\n", 7, "provenance.builders.0.level",
                 "must be a SLSA build level, 1, 2 or 3 (found 4)", id="builder-level-4"),
    pytest.param(_BASE + "  builders: [{id: b, level: '3'}]\n", 7, "provenance.builders.0.level",
                 "must be a SLSA build level, 1, 2 or 3 (found '3')", id="builder-level-string"),
    pytest.param(_BASE + "  builders: [{id: b, level: true}]\n", 7, "provenance.builders.0.level",
                 "must be a SLSA build level", id="builder-level-yes"),
    pytest.param(_BASE + "  builders: [{id: b}]\n", 7, "provenance.builders.0.level",
                 "is missing; give the SLSA build level", id="builder-level-missing"),
    pytest.param(_BASE + "  builders: [{id: b, level: 2, trust: all}]\n", 7, "provenance.builders.0.trust",
                 "unknown key; expected one of ['id', 'level']", id="builder-unknown-key"),
    pytest.param(_BASE + "  builders: [b, {id: b, level: 3}]\n", 7, "provenance.builders.1",
                 "lists builder 'b' twice", id="builder-twice"),
    pytest.param(_BASE + "  builders: []\n", 7, "provenance.builders",
                 "must be a non-empty list", id="builders-empty"),
    pytest.param(_BASE + "stages:\n  stg: {verifier: stg, min-level: 0}\n", 8, "stages.stg.min-level",
                 "must be a SLSA build level, 1, 2 or 3 (found 0)", id="stage-min-level-0"),
    pytest.param(
        _BASE + "  digests: [sha256, md5]\n",
        7,
        "provenance.digests",
        "md5 is too weak to identify an artefact",
        id="digest-md5",
    ),
    pytest.param(
        _BASE + "  digests: [sha1]\n",
        7,
        "provenance.digests",
        "sha1 is too weak to identify an artefact",
        id="digest-sha1",
    ),
    pytest.param(
        _BASE + "  digests: [sha3-256]\n",
        7,
        "provenance.digests",
        "unknown digest algorithm 'sha3-256'; expected some of ['blake3', 'sha256', 'sha384', 'sha512']",
        id="digest-unknown",
    ),
    pytest.param(
        _BASE + "  lockfiles: {a: b}\n",
        7,
        "provenance.lockfiles",
        "must be a list of non-empty strings",
        id="lockfiles-mapping",
    ),
    pytest.param(
        _BASE + "  allow-dirty: 'yes'\n",
        7,
        "provenance.allow-dirty",
        "must be true or false",
        id="allow-dirty-string",
    ),
    pytest.param(
        _BASE + "  allow-dirty: 1\n",
        7,
        "provenance.allow-dirty",
        "must be true or false",
        id="allow-dirty-int",
    ),
    pytest.param(
        _BASE + "  predicate-type: [a]\n",
        7,
        "provenance.predicate-type",
        "must be a non-empty string",
        id="predicate-type-list",
    ),
    pytest.param(_BASE + "stages: [stg]\n", 7, "stages", "must be a mapping, not list", id="stages-list"),
    pytest.param(
        _BASE + "stages:\n  stg: stg\n", 8, "stages.stg", "must be a mapping, not str", id="stage-string"
    ),
    pytest.param(
        _BASE + "stages:\n  stg: {verifer: stg}\n",
        8,
        "stages.stg.verifer",
        "unknown key; expected one of ['deployed-by', 'hotfix', 'min-level', 'require-approvals', "
        "'require-deployed', 'require-vsa', 'resource-uri', 'verifier']",
        id="stage-unknown-key",
    ),
    pytest.param(
        _BASE + "stages:\n  stg:\n    verifier: nobody\n",
        9,
        "stages.stg.verifier",
        "names identity 'nobody', which 'identities' does not define",
        id="stage-verifier-unknown",
    ),
    pytest.param(
        _BASE + "stages:\n  stg: {verifier: [stg]}\n",
        8,
        "stages.stg.verifier",
        "must be a non-empty string",
        id="stage-verifier-list",
    ),
    pytest.param(
        _BASE + "stages:\n  prd: {require-vsa: stg}\n",
        8,
        "stages.prd.require-vsa",
        "must be a list of {stage, signed-by}",
        id="require-vsa-not-list",
    ),
    pytest.param(
        _BASE + "stages:\n  prd: {require-vsa: [{stage: stg, by: stg}]}\n",
        8,
        "stages.prd.require-vsa.0.by",
        "unknown key; expected one of ['signed-by', 'stage']",
        id="require-vsa-unknown-key",
    ),
    pytest.param(
        _BASE + "stages:\n  prd: {require-vsa: [{signed-by: stg}]}\n",
        8,
        "stages.prd.require-vsa.0.stage",
        "must be a non-empty string",
        id="require-vsa-no-stage",
    ),
    pytest.param(
        _BASE + "stages:\n  stg: {}\n  prd: {require-vsa: [stg]}\n",
        9,
        "stages.prd.require-vsa.0",
        "says neither who signs stage 'stg''s VSAs ('signed-by') nor does stages.stg.verifier",
        id="require-vsa-no-signer",
    ),
    pytest.param(
        _BASE + "stages:\n  prd: {require-vsa: [stg]}\n  stg:\n",
        8,
        "stages.prd.require-vsa.0",
        "says neither who signs stage 'stg''s VSAs",
        id="require-vsa-null-stage-listed-later",
    ),
    pytest.param(
        _BASE + "stages:\n  prd: {require-vsa: [stg]}\n  stg: oops\n",
        8,
        "stages.prd.require-vsa.0",
        "says neither who signs stage 'stg''s VSAs",
        id="require-vsa-string-stage-listed-later",
    ),
    pytest.param(
        _BASE + "stages:\n  prd: {require-vsa: [{stage: stg, signed-by: [nobody]}]}\n",
        8,
        "stages.prd.require-vsa.0.signed-by",
        "names identity 'nobody', which 'identities' does not define",
        id="require-vsa-signer-unknown",
    ),
    pytest.param(
        _BASE + "stages:\n  prd:\n    require-vsa:\n      - {stage: qa, signed-by: stg}\n",
        9,
        "stages.prd.require-vsa",
        "requires a VSA from stage 'qa', which 'stages' does not define",
        id="require-vsa-undefined-stage",
    ),
    pytest.param(
        _BASE + "stages:\n  prd: {require-approvals: [dev]}\n",
        8,
        "stages.prd.require-approvals",
        "must be a mapping, not list",
        id="approvals-not-mapping",
    ),
    pytest.param(
        _BASE + "stages:\n  prd: {require-approvals: {count: 0, signed-by: [dev]}}\n",
        8,
        "stages.prd.require-approvals.count",
        "must be a whole number of at least 1",
        id="approvals-zero",
    ),
    pytest.param(
        _BASE + "stages:\n  prd: {require-approvals: {count: true, signed-by: [dev]}}\n",
        8,
        "stages.prd.require-approvals.count",
        "must be a whole number of at least 1",
        id="approvals-bool",
    ),
    pytest.param(
        _BASE + "stages:\n  prd: {require-approvals: {count: '2', signed-by: [dev]}}\n",
        8,
        "stages.prd.require-approvals.count",
        "must be a whole number of at least 1",
        id="approvals-string",
    ),
    pytest.param(
        _BASE + "stages:\n  prd: {require-approvals: {signed-by: [dev]}}\n",
        8,
        "stages.prd.require-approvals.count",
        "must be a whole number of at least 1",
        id="approvals-no-count",
    ),
    pytest.param(
        _BASE + "stages:\n  prd: {require-approvals: {count: 1, signed-by: [eve]}}\n",
        8,
        "stages.prd.require-approvals.signed-by",
        "names identity 'eve', which 'identities' does not define",
        id="approvals-signer-unknown",
    ),
    pytest.param(
        _BASE + "stages:\n  prd: {require-approvals: {count: 1}}\n",
        8,
        "stages.prd.require-approvals.signed-by",
        "must be a list of non-empty strings",
        id="approvals-no-signers",
    ),
    pytest.param(
        _BASE + "stages:\n  prd: {require-approvals: {count: 1, signed-by: [dev], n: 1}}\n",
        8,
        "stages.prd.require-approvals.n",
        "unknown key; expected one of ['count', 'signed-by']",
        id="approvals-unknown-key",
    ),
    pytest.param(
        _BASE + "stages:\n  prd: {resource-uri: []}\n",
        8,
        "stages.prd.resource-uri",
        "must not be empty",
        id="resource-uri-empty",
    ),
    pytest.param(
        _BASE.replace("stg: {keys: [keys/stg.pub.pem]}", "stg: {keys: [keys/dev-build.pub.pem]}")
        + "stages:\n  prd: {require-approvals: {count: 2, signed-by: [dev, stg]}}\n",
        8,
        "stages.prd.require-approvals.signed-by",
        "names 'dev' and 'stg', who pin the same key",
        id="approvers-one-key",
    ),
    pytest.param(
        _BASE.replace("stg: {keys: [keys/stg.pub.pem]}", "stg: {keys: [keys/dev-build.pub.pem]}")
        + "stages:\n  prd:\n    hotfix: {require-approvals: {count: 2, signed-by: [dev, stg]}}\n",
        9,
        "stages.prd.hotfix.require-approvals.signed-by",
        "who pin the same key",
        id="hotfix-approvers-one-key",
    ),
    pytest.param(
        _BASE + "stages:\n  stg: {verifier: stg}\n  prd: {require-vsa: []}\n",
        9,
        "stages.prd.require-vsa",
        "must not be empty",
        id="require-vsa-empty",
    ),
    pytest.param(
        _BASE + "stages:\n  prd: {require-vsa: null}\n",
        8,
        "stages.prd.require-vsa",
        "must be a list",
        id="require-vsa-null",
    ),
    *(pytest.param(_BASE + f"  predicate-type: {value}\n", 7, "provenance.predicate-type",
                   "must be a non-empty string", id=f"predicate-type-{value}")
      for value in ("null", "''", "false", "0")),
    pytest.param(
        _BASE + "  source: {}\n",
        7,
        "provenance.source",
        "names neither a repository nor branches",
        id="source-empty",
    ),
    pytest.param(
        _BASE + "components:\n  app: {source: {}}\n",
        8,
        "components.app.source",
        "names neither a repository nor branches",
        id="component-source-empty",
    ),
    pytest.param(
        _BASE + "  source: {uri: github.com/acme/app, branches: [main, refs/tags/v1]}\n",
        7,
        "provenance.source.branches",
        "branch 'refs/tags/v1' is a ref that names no branch",
        id="branch-a-tag",
    ),
    pytest.param(
        _BASE + "stages:\n  stg: {resource-uri: [arn:pipeline]}\n  prd: {resource-uri: [arn:pipeline]}\n",
        8,
        "stages.stg.resource-uri",
        "names 'arn:pipeline', which stage 'prd' takes too",
        id="resource-uri-shared",
    ),
    pytest.param(
        _BASE + "stages:\n  stg: {resource-uri: ['attest:stage:prd']}\n  prd: {}\n",
        8,
        "stages.stg.resource-uri",
        "names 'attest:stage:prd', which stage 'prd' takes too",
        id="resource-uri-another-stages-own",
    ),
    pytest.param(
        _BASE.replace("version: 1", "version: 1.0"), 1, "version", "must be 1 (found 1.0)", id="version-float"
    ),
    pytest.param(
        _BASE + "provenance:\n  signed-by: [stg]\n", 7, "provenance", "appears twice", id="duplicate-top-key"
    ),
    pytest.param(
        _BASE + "  builders: [a]\n  builders: [b]\n",
        8,
        "provenance.builders",
        "appears twice",
        id="duplicate-nested-key",
    ),
    pytest.param(
        _BASE.replace(
            "dev: {keys: [keys/dev-build.pub.pem]}",
            "dev: {keys: [keys/dev-build.pub.pem], keys: [keys/stg.pub.pem]}",
        ),
        3,
        "identities.dev.keys",
        "appears twice",
        id="duplicate-flow-key",
    ),
]


@pytest.mark.parametrize(("text", "line", "key", "message"), ERRORS)
def test_policy_errors_name_file_line_and_key(
    policy_dir: Path, text: str, line: int, key: str, message: str
) -> None:
    path = _write(policy_dir, text)
    with pytest.raises(PolicyError) as info:
        load_policy(path)
    text_of_error = str(info.value)
    if message == "appears twice":  # the duplicate-key message puts the key in quotes after the line
        assert text_of_error == f"{path}:{line}: key {key!r} appears twice"
    else:
        assert text_of_error.startswith(f"{path}:{line}: {key}: "), text_of_error
        assert message in text_of_error


def test_kms_arn_with_pinned_pem_beside_the_policy(policy_dir: Path) -> None:
    arn = "arn:aws:kms:eu-west-1:111111111111:alias/dev-build"
    text = _BASE.replace("{keys: [keys/dev-build.pub.pem]}", f'{{kms: ["{arn}"]}}')
    path = _write(policy_dir, text)
    with pytest.raises(PolicyError) as info:
        load_policy(path)
    pem = policy_dir / "dev-build.pub.pem"  # what 'attest key export' writes by default for the alias
    assert str(info.value).startswith(f"{path}:3: identities.dev.kms.0: cannot read public key {pem}")
    assert str(info.value).endswith(f"; pin it with 'attest key export awskms:{arn} --out {pem}'")
    f.write_pem(policy_dir, pem.name, f.private_key("p256", 5))
    key = load_policy(path).identities["dev"].keys[0]
    assert (key.name, key.fingerprint) == (arn, f.fingerprint(f.private_key("p256", 5)))


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(
        PolicyError, match=re.escape(f"cannot read policy {tmp_path / 'nope.yaml'}: No such file")
    ):
        load_policy(tmp_path / "nope.yaml")


def test_directory_instead_of_file(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match=re.escape(f"policy {tmp_path} is not a regular file (it is a directory)")):
        load_policy(tmp_path)


def test_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_bytes(b"version: 1\nidentities: {\xff: 1}\n")
    with pytest.raises(PolicyError, match=re.escape(f"policy {path} is not UTF-8 text")):
        load_policy(path)


@pytest.mark.parametrize("text", ["", "\n\n", "# only a comment\n"])
def test_empty_file(tmp_path: Path, text: str) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(
        PolicyError, match=re.escape(f"policy {path} is empty; it must name identities and provenance")
    ):
        load_policy(path)


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("version: 1\nidentities: {dev: [\n", 3),
        ("version: 1\n  bad indent: x\n", 2),
        ("version: 1\n---\nversion: 1\n", 2),  # two documents
        ("version: 1\nkey: @reserved\n", 2),
        ("version: !!python/object:os.system x\n", 1),  # SafeLoader refuses arbitrary tags
    ],
)
def test_invalid_yaml(tmp_path: Path, text: str, line: int) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(PolicyError, match=re.escape(f"policy {path}:{line} is not valid YAML: ")):
        load_policy(path)


def test_recursive_yaml_alias_is_an_error_not_a_crash(policy_dir: Path) -> None:
    # regression: a self-referencing alias sent the line-number walk into infinite recursion
    path = _write(policy_dir, "version: 1\nidentities: &a {dev: *a}\nprovenance: {signed-by: [dev]}\n")
    with pytest.raises(PolicyError, match=re.escape(f"{path}:2: identities.dev.dev: unknown key")):
        load_policy(path)


def test_yaml_alias_bomb_loads_quickly(policy_dir: Path) -> None:
    # regression: the line-number walk followed every alias, 9**9 nodes for this file
    lines = ["version: 1", "x0: &x0 [a, a, a, a, a, a, a, a, a]"]
    lines += [f"x{i}: &x{i} [{', '.join([f'*x{i - 1}'] * 9)}]" for i in range(1, 10)]
    path = _write(policy_dir, "\n".join(lines) + "\n")
    with pytest.raises(PolicyError, match=re.escape(f"{path}:2: x0: unknown key")):
        load_policy(path)


def test_yaml_aliases_for_shared_lists_work(policy_dir: Path) -> None:
    path = _write(
        policy_dir,
        """\
        version: 1
        identities:
          dev: {keys: &devkeys [keys/dev-build.pub.pem]}
          also-dev: {keys: *devkeys}
        provenance: {signed-by: [dev, also-dev]}
    """,
    )
    policy = load_policy(path)
    assert policy.identities["dev"].keys == policy.identities["also-dev"].keys


def test_over_size_limit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _write(tmp_path, _BASE)
    monkeypatch.setattr(policy_module, "MAX_POLICY_BYTES", len(_BASE) - 1)
    with pytest.raises(
        PolicyError, match=re.escape(f"policy {path} is {len(_BASE)} bytes; at most {len(_BASE) - 1}")
    ):
        load_policy(path)


def test_real_size_limit_is_checked_before_reading(tmp_path: Path) -> None:
    path = tmp_path / "huge.yaml"
    with path.open("wb") as out:
        out.truncate(MAX_POLICY_BYTES + 1)  # sparse: refused from its size alone
    with pytest.raises(PolicyError, match=f"is {MAX_POLICY_BYTES + 1} bytes"):
        load_policy(path)


# --- Policy objects -------------------------------------------------------------------------------


def _key(index: int = 0) -> Identity:
    return Identity(
        name=f"k{index}", keys=(load_public_key(f.public_pem(f.private_key("p256", index)), name="k"),)
    )


def test_with_rules_overrides_only_given_rules() -> None:
    base = Policy(
        identities={"k0": _key()},
        provenance=ProvenanceRules(
            signed_by=("k0",), builders=(TrustedBuilder("b1"),), source=SourceRule(uri="github.com/acme/app"),
            commit=None,
        ),
    )
    changed = base.with_rules(commit="a" * 40)
    assert changed.provenance.commit == "a" * 40
    assert changed.provenance.builders == (TrustedBuilder("b1"),)  # what is not named is kept
    assert changed.provenance.source == SourceRule(uri="github.com/acme/app")
    assert changed.provenance.predicate_type is None
    assert base.provenance.commit is None  # frozen: the original is untouched
    narrowed = base.with_rules(builders=(TrustedBuilder("b2"),), allow_dirty=True)
    assert (narrowed.provenance.builders, narrowed.provenance.allow_dirty) == ((TrustedBuilder("b2"),), True)


def test_with_identity_adds_a_signer_once() -> None:
    base = Policy(identities={}, provenance=ProvenanceRules())
    assert base.signers() == ()
    one = base.with_identity(_key(0))
    assert one.provenance.signed_by == ("k0",)
    assert one.signers() == (one.identities["k0"],)
    again = one.with_identity(_key(0))
    assert again.provenance.signed_by == ("k0",)
    verifier_only = one.with_identity(_key(1), signs_provenance=False)
    assert set(verifier_only.identities) == {"k0", "k1"}
    assert verifier_only.provenance.signed_by == ("k0",)
    assert base.identities == {}


@pytest.mark.parametrize("parameters", [
    ["x: &r [*r]"],
    [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}' if i else 'x'] * 10)}]" for i in range(10)],
], ids=["refers-to-itself", "alias-bomb"])
def test_an_expected_parameter_that_never_ends_is_a_policy_error(policy_dir: Path, parameters: list[str]) -> None:
    """``provenance.build-types.URI.parameters``: an alias that refers to itself, or aliases of aliases (10**10
    values from ten lines), is refused at once (one crashed, the other hung the pipeline reading the policy)."""
    import time

    path = _write(policy_dir, _BASE + "  build-types:\n    https://example.com/build@v1:\n      parameters:\n"
                  + "".join(f"        {line}\n" for line in parameters))
    started = time.monotonic()
    with pytest.raises(PolicyError, match="an alias that refers to itself, or to aliases of aliases"):
        load_policy(path)
    assert time.monotonic() - started < 5


@pytest.mark.parametrize("where", ["keys", "revoked"])
def test_a_path_with_a_nul_byte_is_a_policy_error(policy_dir: Path, where: str) -> None:
    """A NUL (YAML's ``\\0``) in a key's file name: a policy error with one sentence, not an internal error."""
    text = _BASE.replace("{keys: [keys/dev-build.pub.pem]}", '{keys: ["keys/dev\\0.pub.pem"]}') if where == "keys" \
        else _BASE + 'revoked: ["keys/stg\\0.pub.pem"]\n'
    path = _write(policy_dir, text)
    with pytest.raises(PolicyError, match="holds a NUL byte, which no file name may"):
        load_policy(path)


@pytest.mark.parametrize(("text", "where"), [
    (_BASE + "stages:\n  ~: {verifier: stg}\n", "stages.None"),
    (_BASE + "stages:\n  5: {verifier: stg}\n", "stages.5"),
    (_BASE.replace("  stg: {keys:", "  7: {keys:"), "identities.7"),
], ids=["null-stage", "number-stage", "number-identity"])
def test_a_name_yaml_reads_as_no_text_is_a_policy_error(policy_dir: Path, text: str, where: str) -> None:
    """A stage named ``~`` was the stage ``None``, which ``--stage None`` then found."""
    path = _write(policy_dir, text)
    with pytest.raises(PolicyError, match=re.escape(f"{where}: is not a name: quote it")):
        load_policy(path)


def test_a_gitlab_runner_rule_holds_for_every_runner_version(policy_dir: Path) -> None:
    """GitLab's runner names its version in its build type; a build-types rule keyed by one version (or written
    with VERSION, as docs/policy.md spells the type) holds for every version, and two such keys are one type."""
    from verify.buildtypes import rule_key
    from verify.formats.statement import parse_statement, read_provenance
    from verify.rules import evaluate_provenance

    versioned = "https://gitlab.com/gitlab-org/gitlab-runner/-/blob/{}/PROVENANCE.md"
    for key in (versioned.format("v16.11.0"), versioned.format("VERSION")):
        path = _write(policy_dir, _BASE + f"  build-types:\n    {key}: {{parameters: {{entryPoint: release-build}}}}\n")
        rules = load_policy(path).provenance
        predicate = f.provenance_v1()
        predicate["buildDefinition"].update(buildType=versioned.format("v17.0.0"), externalParameters={
            "source": "https://gitlab.com/acme/app", "entryPoint": "debug-build-skip-tests"})
        statement = parse_statement(json.dumps(f.statement(predicate=predicate)).encode())
        results = {r.rule: r for r in evaluate_provenance(read_provenance(statement), rules)}
        assert not results["parameters"].passed and "release-build" in results["parameters"].message
        assert set(rules.build_types) == {rule_key(versioned.format("v1"))}
    twice = _write(policy_dir, _BASE + "  build-types:\n"
                   f"    {versioned.format('v16.11.0')}: {{}}\n    {versioned.format('v17.0.0')}: {{}}\n")
    with pytest.raises(PolicyError, match="is the same build type as another entry"):
        load_policy(twice)
