"""verify.formats.statement: in-toto Statements, SLSA provenance v1 / v0.2, VSA v1."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any

import pytest

import verify.formats.statement as statement_module
from tests.verify import _factory as f
from verify.errors import LimitExceeded, MalformedEvidence, UnknownEvidence
from verify.formats.statement import (
    STATEMENT_V01,
    Dependency,
    Statement,
    Subject,
    parse_statement,
    read_provenance,
    read_vsa,
)


def _parse(obj: Any) -> Statement:
    return parse_statement(json.dumps(obj).encode(), what="st")


def test_parse_v1_statement() -> None:
    digests = f.digest_set(f.ARTIFACT)
    st = _parse(
        f.statement([("dist/app.tar.gz", digests), ("dist/other", {"sha512": "ab" * 64, "foo": "x"})])
    )
    assert st.type == f.STATEMENT_V1
    assert st.predicate_type == f.PROVENANCE_V1
    assert st.subjects == (
        Subject("dist/app.tar.gz", digests),
        Subject("dist/other", {"sha512": "ab" * 64, "foo": "x"}),
    )


@pytest.mark.parametrize("predicate", [None, "absent"])
def test_a_statement_without_a_predicate_has_an_empty_one(predicate: Any) -> None:
    """Issue 11, item 1: in-toto Statement v1 treats an unset predicate as set-but-empty (PyPI writes null)."""
    obj = f.statement(predicate_type="https://docs.pypi.org/attestations/publish/v1")
    if predicate == "absent":
        del obj["predicate"]
    else:
        obj["predicate"] = predicate
    assert _parse(obj).predicate == {}


def test_parse_v01_statement_unnamed_subject_and_no_predicate() -> None:
    obj = {"_type": STATEMENT_V01, "subject": [{"digest": {"sha256": "ab" * 32}}], "predicateType": "x:y"}
    st = _parse(obj)
    assert st.type == STATEMENT_V01
    assert st.subjects[0].name == ""
    assert st.predicate == {}


def _edited(obj: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """``obj`` with the value at the dotted ``path`` (list indexes as numbers) set to ``value``, or removed
    (``_DELETE``)."""
    target: Any = obj
    *parents, last = path.split(".")
    for part in parents:
        target = target[int(part)] if isinstance(target, list) else target[part]
    if value is _DELETE:
        del target[last]
    elif isinstance(target, list):
        target[int(last)] = value
    else:
        target[last] = value
    return obj


def _changed(path: str, value: Any) -> dict[str, Any]:
    """The factory's statement, edited (:func:`_edited`)."""
    return _edited(f.statement(), path, value)


_DELETE = object()


@pytest.mark.parametrize(
    ("obj", "error", "message"),
    [
        ([], MalformedEvidence, "st is not a JSON object"),
        (
            _changed("_type", "https://in-toto.io/Statement/v2"),
            UnknownEvidence,
            "st has _type 'https://in-toto.io/Statement/v2'; expected an in-toto Statement (https://in-toto.io/Statement/v1)",
        ),
        (_changed("_type", _DELETE), UnknownEvidence, "st has _type None"),
        (_changed("_type", ["https://in-toto.io/Statement/v1"]), UnknownEvidence, "st has _type ["),
        (_changed("subject", []), MalformedEvidence, "st has no subjects"),
        (_changed("subject", _DELETE), MalformedEvidence, "st has no subjects"),
        (
            _changed("subject", {"name": "a", "digest": {"sha256": "ab"}}),
            MalformedEvidence,
            "st has no subjects",
        ),
        (_changed("subject.0", "dist/app.tar.gz"), MalformedEvidence, "st subject 0 is not a JSON object"),
        (_changed("subject.0.name", 7), MalformedEvidence, "st subject 0 name is not a string"),
        (_changed("subject.0.digest", {}), MalformedEvidence, "st subject 0 has an empty digest"),
        (
            _changed("subject.0.digest", _DELETE),
            MalformedEvidence,
            "st subject 0 digest is not a JSON object",
        ),
        (
            _changed("subject.0.digest", ["sha256", "ab"]),
            MalformedEvidence,
            "st subject 0 digest is not a JSON object",
        ),
        (
            _changed("subject.0.digest.sha256", 5),
            MalformedEvidence,
            "st subject 0 digest['sha256'] is not a string",
        ),
        (
            _changed("subject.0.digest.sha256", "AB" * 32),
            MalformedEvidence,
            "st subject 0 sha256 digest is not lower-case hex",
        ),
        (
            _changed("subject.0.digest.sha256", "xyz"),
            MalformedEvidence,
            "st subject 0 sha256 digest is not lower-case hex",
        ),
        (
            _changed("subject.0.digest.blake3", ""),
            MalformedEvidence,
            "st subject 0 blake3 digest is not lower-case hex",
        ),
        (
            _changed("subject.0.digest.md5", "g" * 32),
            MalformedEvidence,
            "st subject 0 md5 digest is not lower-case hex",
        ),
        (_changed("predicateType", _DELETE), MalformedEvidence, "st predicateType is not a string"),
        (_changed("predicateType", 1), MalformedEvidence, "st predicateType is not a string"),
        (_changed("predicate", []), MalformedEvidence, "st predicate is not a JSON object"),
    ],
)
def test_parse_statement_rejects(obj: Any, error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=re.escape(message)):
        _parse(obj)


def test_unknown_digest_algorithms_are_kept_unchecked() -> None:
    st = _parse(_changed("subject.0.digest.gitCommit", "NOT-HEX but unknown algorithm"))
    assert st.subjects[0].digest["gitCommit"] == "NOT-HEX but unknown algorithm"


def test_statement_payload_not_json() -> None:
    with pytest.raises(MalformedEvidence, match=r"st is not valid JSON"):
        parse_statement(b"\x00not json", what="st")


def test_too_many_subjects(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(statement_module, "MAX_SUBJECTS", 3)
    subjects = [(f"f{i}", {"sha256": f"{i:064x}"}) for i in range(4)]
    with pytest.raises(LimitExceeded, match="st has 4 subjects; at most 3 are read"):
        _parse(f.statement(subjects))
    assert len(_parse(f.statement(subjects[:3])).subjects) == 3


# --- provenance v1 --------------------------------------------------------------------------------


def test_read_provenance_v1() -> None:
    predicate = f.provenance_v1(lockfiles={"requirements.txt": b"a", "poetry.lock": b"b"})
    prov = read_provenance(_parse(f.statement(predicate=predicate)))
    assert prov.predicate_type == f.PROVENANCE_V1
    assert prov.builder_id == f.BUILDER
    assert prov.build_type == f.BUILD_TYPE
    assert (
        prov.source_uri == f.REPO
    )  # from the resolvedDependencies entry with a gitCommit, git+ and @ref removed
    assert prov.source_ref == "refs/heads/main"
    assert prov.commit == f.COMMIT
    assert prov.invocation_id == "arn:aws:codebuild:eu-west-1:111111111111:build/app-build:1"
    assert prov.started_on == datetime(2024, 5, 1, 10, 0, tzinfo=UTC)
    assert prov.finished_on == datetime(2024, 5, 1, 10, 5, 30, tzinfo=UTC)
    assert prov.dirty is False
    assert [d.name for d in prov.lockfiles] == ["requirements.txt", "poetry.lock"]
    assert prov.lockfiles[1] == Dependency(
        uri=f"git+{f.REPO}@{f.COMMIT}#poetry.lock", digest=f.digest_set(b"b"), name="poetry.lock"
    )
    assert len(prov.dependencies) == 4  # source, two lockfiles, one package (not a lockfile: no name)
    assert prov.external_parameters["command"] == ["make", "dist"]
    assert prov.internal_parameters["SOURCE_DATE_EPOCH"] == "1700000000"


def test_provenance_v1_source_from_git_commit_entry_not_first_entry() -> None:
    predicate = f.provenance_v1(repo="https://github.com/acme/app", ref="refs/heads/main")
    deps = predicate["buildDefinition"]["resolvedDependencies"]
    deps.insert(0, {"uri": "git+https://github.com/evil/other@refs/heads/x", "digest": {"sha256": "ab" * 32}})
    del predicate["buildDefinition"]["externalParameters"]["source"]
    prov = read_provenance(_parse(f.statement(predicate=predicate)))
    assert (prov.source_uri, prov.source_ref, prov.commit) == (
        "https://github.com/acme/app",
        "refs/heads/main",
        f.COMMIT,
    )


def test_provenance_v1_ref_from_external_parameters_source() -> None:
    predicate = f.provenance_v1()
    predicate["buildDefinition"]["resolvedDependencies"][0]["uri"] = f"git+{f.REPO}"  # no @ref
    predicate["buildDefinition"]["externalParameters"]["source"] = {
        "uri": "ignored",
        "ref": "refs/heads/release",
    }
    prov = read_provenance(_parse(f.statement(predicate=predicate)))
    assert prov.source_uri == f.REPO  # the gitCommit entry wins for the repository
    assert prov.source_ref == "refs/heads/release"


def test_provenance_v1_source_only_in_external_parameters() -> None:
    predicate = f.provenance_v1()
    predicate["buildDefinition"]["resolvedDependencies"] = []
    prov = read_provenance(_parse(f.statement(predicate=predicate)))
    assert (prov.source_uri, prov.source_ref, prov.commit) == (f.REPO, "refs/heads/main", None)
    assert prov.lockfiles == ()


def test_provenance_v1_github_workflow_source() -> None:
    predicate = f.provenance_v1()
    definition = predicate["buildDefinition"]
    definition["resolvedDependencies"] = []
    definition["externalParameters"] = {
        "workflow": {
            "repository": "https://github.com/acme/app",
            "ref": "refs/heads/main",
            "path": ".github/workflows/r.yml",
        }
    }
    prov = read_provenance(_parse(f.statement(predicate=predicate)))
    assert (prov.source_uri, prov.source_ref) == ("https://github.com/acme/app", "refs/heads/main")


@pytest.mark.parametrize(("where", "expected"), [("internal", True), ("external", True), (None, False)])
def test_provenance_v1_dirty(where: str | None, expected: bool) -> None:
    predicate = f.provenance_v1()
    if where is not None:
        predicate["buildDefinition"][f"{where}Parameters"]["dirty"] = True
    assert read_provenance(_parse(f.statement(predicate=predicate))).dirty is expected


@pytest.mark.parametrize(("value", "dirty"), [(False, False), (True, True), ("true", True), ("false", True),
                                               (1, True), (0, True), (None, True), ({}, True)])
@pytest.mark.parametrize("where", ["internalParameters", "externalParameters"])
def test_provenance_v1_is_clean_only_when_dirty_is_absent_or_false(value: Any, dirty: bool, where: str) -> None:
    """Finding 9: "dirty": "true" (a string) counted as clean. Anything but absent or false is dirty."""
    predicate = f.provenance_v1()
    predicate["buildDefinition"]["internalParameters"].pop("dirty", None)
    predicate["buildDefinition"][where]["dirty"] = value
    assert read_provenance(_parse(f.statement(predicate=predicate))).dirty is dirty
    predicate["buildDefinition"][where].pop("dirty")
    assert read_provenance(_parse(f.statement(predicate=predicate))).dirty is False


def test_provenance_v1_times_are_optional() -> None:
    predicate = f.provenance_v1()
    predicate["runDetails"]["metadata"] = {"startedOn": "2024-05-01T10:00:00+02:00"}
    prov = read_provenance(_parse(f.statement(predicate=predicate)))
    assert prov.started_on == datetime(2024, 5, 1, 8, 0, tzinfo=UTC)
    assert prov.finished_on is None
    assert prov.time == prov.started_on
    assert prov.invocation_id == ""


@pytest.mark.parametrize("value", ["2024-05-01T10:00:00", "", "2024-05-01", "2024-W18-3T10:00:00Z",
                                   "20240501T100000Z", "2024-02-30T10:00:00Z", "0001-01-01T00:00:00+01:00",
                                   "9999-12-31T23:59:59-01:00", 1714557600])
def test_provenance_v1_times_must_be_rfc3339_with_a_zone(value: Any) -> None:
    predicate = f.provenance_v1()
    predicate["runDetails"]["metadata"] = {"finishedOn": value}
    with pytest.raises(MalformedEvidence, match="provenance finishedOn"):
        read_provenance(_parse(f.statement(predicate=predicate)))


def test_provenance_v1_names_every_source_it_claims() -> None:
    """Finding 9: the branch was read from externalParameters although resolvedDependencies named another."""
    predicate = f.provenance_v1(ref="refs/heads/main")
    predicate["buildDefinition"]["externalParameters"]["source"]["ref"] = "refs/heads/evil"
    prov = read_provenance(_parse(f.statement(predicate=predicate)))
    assert prov.source_refs == ("refs/heads/main", "refs/heads/evil")
    predicate["buildDefinition"]["externalParameters"]["source"]["uri"] = "https://github.com/evil/app"
    prov = read_provenance(_parse(f.statement(predicate=predicate)))
    assert prov.source_uris == ("https://github.com/acme/app", "https://github.com/evil/app")


def test_provenance_v1_a_ref_inside_a_source_uri_is_a_ref_it_names() -> None:
    predicate = f.provenance_v1(ref="refs/heads/main")
    predicate["buildDefinition"]["externalParameters"]["source"]["uri"] = f"{f.REPO}@refs/heads/evil"
    prov = read_provenance(_parse(f.statement(predicate=predicate)))
    assert "refs/heads/evil" in prov.source_refs and f.REPO in prov.source_uris


def test_provenance_v1_a_source_given_as_a_uri_is_a_source_it_names() -> None:
    predicate = f.provenance_v1()
    predicate["buildDefinition"]["externalParameters"]["source"] = "git+https://github.com/evil/app@refs/heads/x"
    prov = read_provenance(_parse(f.statement(predicate=predicate)))
    assert "https://github.com/evil/app" in prov.source_uris and "refs/heads/x" in prov.source_refs


@pytest.mark.parametrize(("where", "value", "message"), [
    ("source", ["https://github.com/evil/app"], "externalParameters.source is neither an object nor a URI"),
    ("source", None, "externalParameters.source is neither an object nor a URI"),
    ("source.uri", ["https://github.com/evil/app"], "externalParameters.source.uri is not a non-empty string"),
    ("source.uri", 42, "externalParameters.source.uri is not a non-empty string"),
    ("source.uri", "", "externalParameters.source.uri is not a non-empty string"),
    ("source.ref", ["refs/heads/evil"], "externalParameters.source.ref is not a non-empty string"),
    ("source.ref", {"branch": "evil"}, "externalParameters.source.ref is not a non-empty string"),
    ("source.ref", "", "externalParameters.source.ref is not a non-empty string"),
    ("source.ref", None, "externalParameters.source.ref is not a non-empty string"),
    ("workflow", "main", "externalParameters.workflow is not an object"),
    ("workflow.ref", ["refs/heads/evil"], "externalParameters.workflow.ref is not a non-empty string"),
    ("workflow.repository", 7, "externalParameters.workflow.repository is not a non-empty string"),
])
def test_provenance_v1_a_source_in_a_shape_it_cannot_read_is_malformed(where: str, value: Any, message: str) -> None:
    """A source named in another shape (a list, an object, a number, empty) was dropped: a build from another
    branch or repository passed every source rule, as the one place that said so went unread."""
    predicate = f.provenance_v1()
    external = predicate["buildDefinition"]["externalParameters"]
    external.setdefault("workflow", {"repository": f.REPO, "ref": "refs/heads/main"})
    key, _, field = where.partition(".")
    if field:
        external[key][field] = value
    else:
        external[key] = value
    with pytest.raises(MalformedEvidence, match=re.escape(message)):
        read_provenance(_parse(f.statement(predicate=predicate)))


def _v1_changed(path: str, value: Any) -> dict[str, Any]:
    """The factory's SLSA v1 provenance predicate, edited (:func:`_edited`)."""
    return _edited(f.provenance_v1(), path, value)


@pytest.mark.parametrize(
    ("predicate", "message"),
    [
        (_v1_changed("buildDefinition", _DELETE), "provenance buildDefinition is not a JSON object"),
        (_v1_changed("runDetails", []), "provenance runDetails is not a JSON object"),
        (_v1_changed("runDetails.builder", "x"), "provenance runDetails.builder is not a JSON object"),
        (_v1_changed("runDetails.metadata", 1), "provenance runDetails.metadata is not a JSON object"),
        (_v1_changed("runDetails.builder.id", None), "provenance runDetails.builder.id is not a string"),
        (_v1_changed("buildDefinition.buildType", 3), "provenance buildDefinition.buildType is not a string"),
        (
            _v1_changed("buildDefinition.resolvedDependencies", {}),
            "provenance resolvedDependencies is not a list",
        ),
        (
            _v1_changed("buildDefinition.resolvedDependencies.1", "x"),
            "provenance resolvedDependencies[1] is not a JSON object",
        ),
        (
            _v1_changed("buildDefinition.resolvedDependencies.1.uri", 5),
            "provenance resolvedDependencies[1] uri is not a string",
        ),
        (
            _v1_changed("buildDefinition.resolvedDependencies.1.name", []),
            "provenance resolvedDependencies[1] name is not a string",
        ),
        (
            _v1_changed("buildDefinition.resolvedDependencies.0.digest", "sha1:x"),
            "provenance resolvedDependencies[0] digest is not a JSON object",
        ),
        (
            _v1_changed("buildDefinition.resolvedDependencies.0.digest", {"gitCommit": 1}),
            "provenance resolvedDependencies[0] digest['gitCommit'] is not a string",
        ),
        (
            _v1_changed("buildDefinition.externalParameters", _DELETE),
            "provenance externalParameters is not a JSON object",
        ),
        (
            _v1_changed("buildDefinition.internalParameters", "x"),
            "provenance internalParameters is not a JSON object",
        ),
        (_v1_changed("runDetails.metadata.invocationId", 1), "provenance invocationId is not a string"),
        (
            _v1_changed("runDetails.metadata.startedOn", "yesterday"),
            "provenance startedOn 'yesterday' is not an RFC 3339 time",
        ),
        (_v1_changed("runDetails.metadata.finishedOn", 1714557930),
         "provenance finishedOn is not an RFC 3339 time string"),
    ],
)
def test_provenance_v1_rejects(predicate: dict[str, Any], message: str) -> None:
    with pytest.raises(MalformedEvidence, match=re.escape(message)):
        read_provenance(_parse(f.statement(predicate=predicate)))


# --- provenance v0.2 ------------------------------------------------------------------------------


def test_read_provenance_v02() -> None:
    prov = read_provenance(_parse(f.statement(predicate_type=f.PROVENANCE_V02, predicate=f.provenance_v02())))
    assert prov.predicate_type == f.PROVENANCE_V02
    assert prov.builder_id == f.BUILDER
    assert prov.build_type == "https://github.com/slsa-framework/slsa-github-generator/generic@v1"
    assert (prov.source_uri, prov.source_ref, prov.commit) == (f.REPO, "refs/heads/main", f.COMMIT)
    assert prov.dependencies == (Dependency(uri=f"git+{f.REPO}@refs/heads/main", digest={"sha1": f.COMMIT}),)
    assert prov.invocation_id == "42-1"
    assert prov.started_on == datetime(2024, 5, 1, 10, 0, tzinfo=UTC)
    assert prov.finished_on == datetime(2024, 5, 1, 10, 5, 30, tzinfo=UTC)
    assert prov.external_parameters == {"event_inputs": {}, "vars": {}}
    assert prov.internal_parameters == {"github_run_id": "42"}
    assert prov.dirty is False


def _v02(predicate: dict[str, Any]) -> Any:
    return read_provenance(_parse(f.statement(predicate_type=f.PROVENANCE_V02, predicate=predicate)))


def test_provenance_v02_every_git_material_is_a_source() -> None:
    """As v1's git dependencies: a material from another repository or branch was not read as a source, and a
    build that named one passed the rules the same material failed in v1."""
    predicate = f.provenance_v02()
    evil = {"uri": "git+https://github.com/evil/app@refs/heads/evil", "digest": {"sha1": "e" * 40}}
    predicate["materials"].append(evil)
    prov = _v02(predicate)
    assert prov.source_uris == (f.REPO, "https://github.com/evil/app")
    assert prov.source_refs == ("refs/heads/main", "refs/heads/evil")
    assert prov.commits == (f.COMMIT, "e" * 40)
    assert (prov.source_uri, prov.source_ref, prov.commit) == (f.REPO, "refs/heads/main", f.COMMIT)


@pytest.mark.parametrize("value", [[f"git+{f.REPO}@refs/heads/main"], 7, "", None])
def test_provenance_v02_a_config_source_it_cannot_read_is_malformed(value: Any) -> None:
    predicate = f.provenance_v02()
    predicate["invocation"]["configSource"]["uri"] = value
    with pytest.raises(MalformedEvidence, match=re.escape("invocation.configSource.uri is not a non-empty string")):
        _v02(predicate)


@pytest.mark.parametrize("where", ["parameters", "environment"])
def test_provenance_v02_says_dirty_as_v1_does(where: str) -> None:
    predicate = f.provenance_v02()
    predicate["invocation"][where]["dirty"] = True
    assert _v02(predicate).dirty is True


@pytest.mark.parametrize("parameters", [["--skip-tests"], "--skip-tests", 1, True])
def test_provenance_v02_parameters_that_are_not_an_object_are_malformed_not_empty(parameters: Any) -> None:
    # read as "no parameters", they would pass the check that every external parameter is recognised
    pred = {**f.provenance_v02(), "invocation": {**f.provenance_v02()["invocation"], "parameters": parameters}}
    with pytest.raises(MalformedEvidence, match=r"invocation.parameters is not a JSON object"):
        read_provenance(_parse(f.statement(predicate_type=f.PROVENANCE_V02, predicate=pred)))


def test_provenance_v02_minimal_and_git_commit_digest() -> None:
    pred: dict[str, Any] = {"builder": {"id": "b"}, "buildType": "t"}
    prov = read_provenance(_parse(f.statement(predicate_type=f.PROVENANCE_V02, predicate=pred)))
    assert (prov.source_uri, prov.source_ref, prov.commit, prov.dependencies) == (None, None, None, ())
    pred["invocation"] = {
        "configSource": {"uri": "git+https://github.com/acme/app", "digest": {"gitCommit": "abc"}},
        "parameters": None,
    }
    prov = read_provenance(_parse(f.statement(predicate_type=f.PROVENANCE_V02, predicate=pred)))
    assert (prov.source_uri, prov.source_ref, prov.commit) == ("https://github.com/acme/app", None, "abc")
    assert prov.external_parameters == {}


def _v02_changed(key: str, value: Any) -> dict[str, Any]:
    pred = f.provenance_v02()
    target: Any = pred
    *parents, last = key.split(".")
    for part in parents:
        target = target[part]
    if value is _DELETE:
        del target[last]
    else:
        target[last] = value
    return pred


@pytest.mark.parametrize(
    ("predicate", "message"),
    [
        (_v02_changed("builder", _DELETE), "provenance (v0.2) builder is not a JSON object"),
        (_v02_changed("invocation", []), "provenance (v0.2) invocation is not a JSON object"),
        (
            _v02_changed("invocation.configSource", "x"),
            "provenance (v0.2) invocation.configSource is not a JSON object",
        ),
        (_v02_changed("metadata", 1), "provenance (v0.2) metadata is not a JSON object"),
        (_v02_changed("materials", {}), "provenance (v0.2) materials is not a list"),
        (_v02_changed("materials", [1]), "provenance (v0.2) materials[0] is not a JSON object"),
        (
            _v02_changed("invocation.configSource.digest", "x"),
            "provenance (v0.2) configSource.digest is not a JSON object",
        ),
        (_v02_changed("builder.id", 1), "provenance (v0.2) builder.id is not a string"),
        (_v02_changed("buildType", _DELETE), "provenance (v0.2) buildType is not a string"),
        (
            _v02_changed("metadata.buildInvocationId", 1),
            "provenance (v0.2) buildInvocationId is not a string",
        ),
        (
            _v02_changed("metadata.buildStartedOn", "soon"),
            "provenance (v0.2) buildStartedOn 'soon' is not an RFC 3339",
        ),
        (
            _v02_changed("metadata.buildFinishedOn", "2024-13-01"),
            "provenance (v0.2) buildFinishedOn '2024-13-01'",
        ),
        (_v02_changed("invocation.environment", [1]), "provenance (v0.2) environment is not a JSON object"),
    ],
)
def test_provenance_v02_rejects(predicate: dict[str, Any], message: str) -> None:
    with pytest.raises(MalformedEvidence, match=re.escape(message)):
        read_provenance(_parse(f.statement(predicate_type=f.PROVENANCE_V02, predicate=predicate)))


@pytest.mark.parametrize(
    "predicate_type", [f.VSA_V1, "https://slsa.dev/provenance/v2", "https://spdx.dev/Document"]
)
def test_read_provenance_of_non_provenance(predicate_type: str) -> None:
    with pytest.raises(
        UnknownEvidence, match=f"predicate type '{re.escape(predicate_type)}' is not a SLSA provenance"
    ):
        read_provenance(_parse(f.statement(predicate_type=predicate_type, predicate={})))


# --- VSA ------------------------------------------------------------------------------------------


def test_read_vsa() -> None:
    summary = read_vsa(_parse(f.statement(predicate_type=f.VSA_V1, predicate=f.vsa())))
    assert summary.verifier_id == "https://attest.example/verifier"
    assert summary.time_verified == datetime(2024, 5, 2, 8, 0, tzinfo=UTC)
    assert summary.resource_uri == "attest:stage:stg"
    assert summary.policy_uri == "file:///policy.yaml"
    assert summary.policy_digest == {"sha256": "cd" * 32}
    assert summary.input_attestations == (
        Dependency(uri="sha256/x/provenance.intoto.jsonl", digest={"sha256": "ef" * 32}),
    )
    assert summary.result == "PASSED"
    assert summary.levels == ("SLSA_BUILD_LEVEL_2",)
    assert summary.build_level == 2


def test_read_vsa_minimal() -> None:
    pred = {
        "verifier": {"id": "v"},
        "timeVerified": "2024-05-02T08:00:00+02:00",
        "resourceUri": "r",
        "verificationResult": "FAILED",
    }
    summary = read_vsa(_parse(f.statement(predicate_type=f.VSA_V1, predicate=pred)))
    assert summary.time_verified == datetime(2024, 5, 2, 6, 0, tzinfo=UTC)
    assert (summary.policy_uri, dict(summary.policy_digest), summary.input_attestations, summary.levels) == (
        "",
        {},
        (),
        (),
    )


def _vsa_without(key: str) -> dict[str, Any]:
    pred = f.vsa()
    del pred[key]
    return pred


@pytest.mark.parametrize(
    ("predicate", "error", "message"),
    [
        (f.vsa(verifier="v"), MalformedEvidence, "verification summary verifier is not a JSON object"),
        (_vsa_without("verifier"), MalformedEvidence, "verification summary verifier is not a JSON object"),
        (f.vsa(verifier={}), MalformedEvidence, "verification summary verifier.id is not a string"),
        (f.vsa(policy="p"), MalformedEvidence, "verification summary policy is not a JSON object"),
        (f.vsa(policy={"uri": 1}), MalformedEvidence, "verification summary policy.uri is not a string"),
        (
            f.vsa(policy={"digest": []}),
            MalformedEvidence,
            "verification summary policy.digest is not a JSON object",
        ),
        (
            f.vsa(inputAttestations={}),
            MalformedEvidence,
            "verification summary inputAttestations is not a list",
        ),
        (
            f.vsa(inputAttestations=["x"]),
            MalformedEvidence,
            "verification summary inputAttestations[0] is not a JSON",
        ),
        (
            f.vsa(verifiedLevels="SLSA_BUILD_LEVEL_3"),
            MalformedEvidence,
            "verification summary verifiedLevels is not a list",
        ),
        (
            f.vsa(verifiedLevels=[3]),
            MalformedEvidence,
            "verification summary verifiedLevels is not a list of strings",
        ),
        (
            f.vsa(verifiedLevels=["SLSA_BUILD_LEVEL_1", "SLSA_BUILD_LEVEL_3"]),
            MalformedEvidence,
            "verification summary verifiedLevels states two levels of the build track (SLSA_BUILD_LEVEL_1 and "
            "SLSA_BUILD_LEVEL_3)",
        ),
        (_vsa_without("timeVerified"), MalformedEvidence, "verification summary has no timeVerified"),
        (f.vsa(timeVerified=""), MalformedEvidence, "verification summary timeVerified '' is not an RFC 3339 time"),
        (
            f.vsa(timeVerified="2024-02-30T00:00:00Z"),
            MalformedEvidence,
            "verification summary timeVerified '2024-02-30",
        ),
        (_vsa_without("resourceUri"), MalformedEvidence, "verification summary resourceUri is not a string"),
        (
            f.vsa(verificationResult=True),
            MalformedEvidence,
            "verification summary verificationResult is not a string",
        ),
    ],
)
def test_read_vsa_rejects(predicate: dict[str, Any], error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=re.escape(message)):
        read_vsa(_parse(f.statement(predicate_type=f.VSA_V1, predicate=predicate)))


def test_read_vsa_of_provenance() -> None:
    with pytest.raises(
        UnknownEvidence, match=re.escape(f"predicate type '{f.PROVENANCE_V1}' is not a SLSA VSA")
    ):
        read_vsa(_parse(f.statement()))
