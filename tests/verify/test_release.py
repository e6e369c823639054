"""verify.formats.release: the release manifest's components, their needs, and the order they are deployed in."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest

from tests.verify import _factory as f
from verify.errors import EvidenceRejected, LimitExceeded, MalformedEvidence
from verify.formats.release import RELEASE_V1, Release, deployment_order, read_release
from verify.formats.statement import parse_statement
from verify.limits import MAX_DEPENDENCIES

WHERE = "the release manifest 'r1'"


def _sha(name: str) -> str:
    return hashlib.sha256(name.encode()).hexdigest()


def _component(name: str, needs: Any = None) -> dict[str, Any]:
    component: dict[str, Any] = {"name": name, "artifacts": [{"name": f"{name}.zip", "digest": {"sha256": _sha(name)}}],
                                 "provenance": {"digest": {"sha256": "ab" * 32}},
                                 "source": "https://github.com/acme/stack", "commit": f.COMMIT}
    if needs is not None:
        component["needs"] = needs
    return component


def _read(*components: dict[str, Any]) -> Release:
    """The manifest of ``components`` (each artefact a subject), read by read_release."""
    subjects = [(a["name"], a["digest"]) for c in components for a in c.get("artifacts", [])]
    statement = f.statement(subjects, predicate_type=RELEASE_V1, predicate={
        "name": "r1", "timeCreated": "2026-11-28T10:00:00Z", "components": list(components)})
    return read_release(parse_statement(f.payload_of(statement)))


def test_a_manifest_without_needs_reads_as_before_and_is_ordered_by_name() -> None:
    release = _read(_component("infra"), _component("app"), _component("db"))
    assert [p.needs for p in release.components] == [(), (), ()]
    assert [p.name for p in release.order] == ["app", "db", "infra"]


def test_the_needs_are_read_sorted_and_order_the_components() -> None:
    release = _read(_component("app", ["infra", "db"]), _component("db", ["infra"]), _component("infra", []))
    assert {p.name: p.needs for p in release.components} == {"app": ("db", "infra"), "db": ("infra",),
                                                              "infra": ()}
    assert [p.name for p in release.order] == ["infra", "db", "app"]
    assert release.order[0] is release.components[2]  # the parts themselves, in order


@pytest.mark.parametrize("listed", [("infra", "db", "app"), ("app", "db", "infra"), ("db", "app", "infra")])
def test_the_diamond_is_ordered_the_same_whatever_the_listing(listed: tuple[str, ...]) -> None:
    needs = {"infra": None, "db": ["infra"], "app": ["infra", "db"]}
    release = _read(*(_component(name, needs[name]) for name in listed))
    assert [p.name for p in release.order] == ["infra", "db", "app"]


def test_ties_are_broken_by_name_at_every_step() -> None:
    # web and api both wait for infra; batch is ready at once; worker waits for api only
    needs = {"worker": ["api"], "web": ["infra"], "api": ["infra"], "infra": [], "batch": []}
    assert deployment_order(needs) == ("batch", "infra", "api", "web", "worker")
    assert deployment_order(dict(reversed(list(needs.items())))) == ("batch", "infra", "api", "web", "worker")
    # a name early in the alphabet still waits for what it needs
    assert deployment_order({"a": ["z"], "z": []}) == ("z", "a")


@pytest.mark.parametrize(("needs", "words"), [
    pytest.param("infra", "component 'app' has needs that are not a list of component names", id="a-string"),
    pytest.param({"infra": True}, "component 'app' has needs that are not a list of component names",
                 id="an-object"),
    pytest.param(["infra", 7], "component 'app' has needs that are not a list of component names", id="a-number"),
    pytest.param([None], "component 'app' has needs that are not a list of component names", id="null"),
    pytest.param(["web"], "component 'app' needs 'web', which is not one of the components", id="unknown"),
    pytest.param([""], "component 'app' needs '', which is not one of the components", id="empty-name"),
    pytest.param(["app"], "component 'app' needs itself", id="itself"),
    pytest.param(["infra", "infra"], "component 'app' needs 'infra' twice", id="twice"),
])
def test_malformed_needs_are_refused(needs: Any, words: str) -> None:
    with pytest.raises(MalformedEvidence) as caught:
        _read(_component("infra"), _component("app", needs))
    assert str(caught.value) == f"{WHERE}: {words}"


@pytest.mark.parametrize(("needs", "cycle"), [
    pytest.param({"app": ["db"], "db": ["app"]}, "app -> db -> app", id="two"),
    pytest.param({"infra": ["app"], "app": ["db"], "db": ["infra"]}, "app -> db -> infra -> app", id="three"),
    # api waits behind the cycle but is not in it: the walk starts at api, the cycle named starts at queue
    pytest.param({"api": ["queue"], "queue": ["worker"], "worker": ["queue"], "infra": []},
                 "queue -> worker -> queue", id="behind-a-cycle"),
])
def test_a_cycle_is_refused_and_named(needs: dict[str, list[str]], cycle: str) -> None:
    with pytest.raises(MalformedEvidence) as caught:
        _read(*(_component(name, wanted) for name, wanted in needs.items()))
    assert str(caught.value) == f"{WHERE}: the components' needs form a cycle: {cycle}"
    with pytest.raises(ValueError, match=f"^the components' needs form a cycle: {cycle}$"):
        deployment_order(needs)


def test_a_component_named_twice_is_refused() -> None:
    # needs name components: with two of one name, what "needs app" means is not one thing
    with pytest.raises(MalformedEvidence) as caught:
        _read(_component("app"), _component("infra"), _component("app"))
    assert str(caught.value) == f"{WHERE} names component 'app' twice"


def test_the_needs_of_a_component_are_counted_before_they_are_read() -> None:
    # a component needs at most every other one: the bound on the components bounds its needs too
    with pytest.raises(LimitExceeded) as caught:
        _read(_component("infra"), _component("app", [7] * (MAX_DEPENDENCIES + 1)))
    assert str(caught.value) == f"{WHERE}: component 'app' has {MAX_DEPENDENCIES + 1} needs; " \
                                f"at most {MAX_DEPENDENCIES} are read"
    with pytest.raises(EvidenceRejected) as at_limit:  # at the limit, the junk is what is refused
        _read(_component("infra"), _component("app", [7] * MAX_DEPENDENCIES))
    assert not isinstance(at_limit.value, LimitExceeded)


def test_a_long_chain_is_ordered() -> None:
    count = 2_000
    needs = {f"c{i:04}": [f"c{i + 1:04}"] if i + 1 < count else [] for i in range(count)}
    assert deployment_order(needs) == tuple(sorted(needs, reverse=True))
