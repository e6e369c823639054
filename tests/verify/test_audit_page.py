"""The audit page at an organisation's scale (issue 21): what it lists in full, and where it says the rest is."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from verify.audit import AuditReport, ReleaseComponent, ReleaseRecord
from verify.audit.html import RELEASES, render_html


def _report(releases: int) -> AuditReport:
    """A history of ``releases`` release manifests, one an hour, oldest first (as an audit orders them)."""
    start = datetime(2026, 1, 1, tzinfo=UTC)
    return AuditReport(
        artifacts=(), anomalies=(), stages=("stg", "prd"), files=releases, attestations=releases,
        policy_uri="file:///policy.yaml", policy_digest="",
        releases=tuple(ReleaseRecord(name=f"r{n}", created=start + timedelta(hours=n), signers=("release-manager",),
                                     attestation=f"store/release-{n}.intoto.jsonl",
                                     components=(ReleaseComponent(name="app", source=None, commit=None,
                                                                  provenance="ab" * 32,
                                                                  artifacts=(("app.zip", f"{n:064x}"),)),))
                       for n in range(releases)))


def _listed(page: str, releases: int) -> list[int]:
    return [n for n in range(releases) if f"store/release-{n}.intoto.jsonl<" in page]


def test_the_page_lists_every_release_of_a_team() -> None:
    page = render_html(_report(3))
    assert _listed(page, 3) == [0, 1, 2] and "3 releases" in page and "older are in the JSON report" not in page


def test_the_page_lists_the_newest_releases_of_an_organisation_and_says_where_the_others_are() -> None:
    """Thousands of release manifests are not one table: the newest RELEASES are, and the page says where the
    others are (the JSON report; the history's search finds each artefact's releases)."""
    page = render_html(_report(RELEASES + 7))
    assert _listed(page, RELEASES + 7) == list(range(7, RELEASES + 7))
    assert f"{RELEASES + 7} releases" in page and "the 7 older are in the JSON report" in page
