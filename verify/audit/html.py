"""An audit report as one self-contained web page: each artefact's path as a row of pills.

``commit -> build -> stg -> prd``: green when the step passed, grey when it is absent, red when
something about it is anomalous. Anomalies are listed first and again on each artefact; then the
release manifests signed by a release signer, each component's artefacts linked to their cards.

The page loads nothing (no script, style sheet, font or image from anywhere; the styles are
inline; the one script is the page's own, the history's paging and search, allowed by its hash in the
Content-Security-Policy: :mod:`verify.audit.dashboard`; the "only anomalies" filter is a CSS checkbox).
Everything that comes from evidence goes through :func:`_e` -- control characters spelled out, then
HTML-escaped -- because evidence is hostile input.
"""

from __future__ import annotations

import html
from collections.abc import Collection, Iterable, Sequence
from datetime import UTC, datetime

from verify.audit.dashboard import CSS as DASHBOARD_CSS
from verify.audit.dashboard import SCRIPT_HASH, dora_tiles, history, newest_first, running_map
from verify.audit.report import (
    ANOMALY_KINDS,
    Anomaly,
    ArtifactHistory,
    AuditReport,
    BuildRecord,
    Endorsement,
    ReleaseRecord,
    StageHistory,
    StoredCopy,
)
from verify.formats.encoding import printable

__all__ = ["render_html"]

#: The colour an anomaly is shown in (a person's eye goes there first; tests check it is used).
WARNING_COLOUR = "#b42318"

_CSS = """
:root { --ok:#067647; --ok-bg:#ecfdf3; --ok-line:#75e0a7; --no:#667085; --no-bg:#f9fafb; --no-line:#d0d5dd;
  --warn:WARNING_COLOUR; --warn-bg:#fef3f2; --warn-line:#fda29b; --ink:#101828; --muted:#475467;
  --card:#ffffff;
  --page:#f2f4f7; --mono: ui-monospace, SFMono-Regular, Menlo, Consolas, "Liberation Mono", monospace; }
* { box-sizing: border-box; }
body { margin: 0; background: var(--page); color: var(--ink);
  font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; }
header { background: #0c111d; color: #f5f5f6; padding: 22px 32px 18px; }
header h1 { margin: 0 0 4px; font-size: 22px; font-weight: 650; letter-spacing: .2px; }
header .sub { margin: 0; color: #94969c; font-size: 12.5px; word-break: break-all; }
.stats { display: flex; flex-wrap: wrap; gap: 10px; margin-top: 14px; }
.stat { background: #1f242f; border-radius: 10px; padding: 8px 14px; min-width: 120px; }
.stat b { display: block; font-size: 20px; color: #fff; }
.stat span { font-size: 12px; color: #94969c; }
.stat.bad { background: #55160c; } .stat.bad b { color: #fecdca; }
.stat.good { background: #053321; } .stat.good b { color: #abefc6; }
main { padding: 20px 32px 40px; max-width: 1400px; }
h2 { font-size: 16px; margin: 6px 0 10px; }
.panel { background: var(--card); border-radius: 12px; padding: 16px 18px; margin-bottom: 18px;
  box-shadow: 0 1px 2px rgba(16,24,40,.06), 0 1px 3px rgba(16,24,40,.1); }
.panel.alert { border: 1px solid var(--warn-line); }
ul.anomalies { list-style: none; margin: 0; padding: 0; }
.anomaly { color: var(--warn); background: var(--warn-bg); border-left: 4px solid var(--warn);
  border-radius: 6px; padding: 7px 10px; margin: 6px 0; }
.anomaly .kind { display: inline-block; font-weight: 700; font-size: 12px; text-transform: uppercase;
  letter-spacing: .4px; margin-right: 8px; }
.anomaly a { color: var(--warn); font-family: var(--mono); font-size: 12px; margin-right: 8px; }
.anomaly .src { display: block; color: #912018; opacity: .8; font-family: var(--mono); font-size: 11.5px;
  word-break: break-all; margin-top: 2px; }
.clean { color: var(--ok); font-weight: 600; }
.toolbar { display: flex; align-items: center; gap: 18px; flex-wrap: wrap; margin: 0 0 12px;
  color: var(--muted); }
.toolbar label { cursor: pointer; user-select: none; }
.toolbar label::before { content: "☐ "; font-size: 15px; }
#only-anomalous:checked ~ main .toolbar label::before { content: "☑ "; }
.legend { display: flex; gap: 8px; align-items: center; flex-wrap: wrap; font-size: 12px; }
#only-anomalous:checked ~ main .artifact:not(.has-anomaly) { display: none; }
.artifact { background: var(--card); border-radius: 12px; padding: 14px 18px 10px; margin-bottom: 12px;
  box-shadow: 0 1px 2px rgba(16,24,40,.06); border: 1px solid #eaecf0; }
.artifact.has-anomaly { border-color: var(--warn-line); box-shadow: 0 0 0 1px var(--warn-line); }
.artifact .head { display: flex; align-items: baseline; gap: 12px; flex-wrap: wrap; }
.artifact h3 { margin: 0; font-size: 15px; word-break: break-all; }
.artifact h3 .none { color: var(--muted); font-weight: 500; font-style: italic; }
.sha { font-family: var(--mono); font-size: 12px; color: var(--muted); word-break: break-all; }
ol.path { list-style: none; display: flex; flex-wrap: wrap; align-items: center; padding: 0;
  margin: 12px 0 8px; row-gap: 10px; }
ol.path > li { display: flex; align-items: center; }
ol.path > li + li::before { content: ""; width: 30px; height: 2px; background: var(--no-line);
  margin: 0 3px; }
ol.path > li.passed + li.passed::before { background: var(--ok-line); height: 3px; }
.pill { display: inline-flex; flex-direction: column; min-width: 150px; max-width: 260px;
  padding: 7px 14px 8px; border-radius: 999px; border: 1.5px solid var(--no-line); background: var(--no-bg);
  color: var(--no); }
.pill .step { font-size: 11px; font-weight: 700; text-transform: uppercase; letter-spacing: .5px; }
.pill .val { font-family: var(--mono); font-size: 12.5px; white-space: nowrap; overflow: hidden;
  text-overflow: ellipsis; }
.pill .note { font-size: 11.5px; opacity: .85; white-space: nowrap; overflow: hidden;
  text-overflow: ellipsis; }
.pill.absent { border-style: dashed; }
.pill.passed { background: var(--ok-bg); border-color: var(--ok-line); color: var(--ok); }
.pill.anomalous, .pill.failed { background: var(--warn-bg); border-color: var(--warn); color: var(--warn); }
.pill.anomalous { box-shadow: 0 0 0 3px rgba(217,45,32,.12); }
.legend .pill { min-width: 0; padding: 2px 10px; flex-direction: row; }
details { margin: 4px 0 2px; }
summary { cursor: pointer; color: var(--muted); font-size: 12.5px; }
table { border-collapse: collapse; width: 100%; margin: 8px 0; font-size: 12.5px; }
th { text-align: left; color: var(--muted); font-weight: 600; padding: 4px 8px;
  border-bottom: 1px solid #eaecf0; }
td { padding: 4px 8px; border-bottom: 1px solid #f2f4f7; vertical-align: top; white-space: nowrap; }
td.long { white-space: normal; overflow-wrap: anywhere; }
td.mono { font-family: var(--mono); font-size: 12px; }
dl.kinds { display: grid; grid-template-columns: max-content 1fr; gap: 3px 14px; margin: 6px 0 0;
  font-size: 12.5px; }
dl.kinds dt { font-weight: 700; color: var(--warn); } dl.kinds dd { margin: 0; color: var(--muted); }
p.releases { margin: 2px 0 6px; color: var(--muted); font-size: 12.5px; }
p.releases b { color: var(--ink); }
footer { color: var(--muted); font-size: 12px; padding: 0 32px 30px; }
""".replace("WARNING_COLOUR", WARNING_COLOUR)


def _e(value: object) -> str:
    """Evidence text for HTML: control and format characters spelled out, then escaped (quotes too)."""
    return html.escape(printable(str(value)), quote=True)


def _day(t: datetime | None) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%d %H:%M") if t else ""


def _sha_link(sha256: str | None) -> str:
    if not sha256:
        return ""
    return f'<a href="#a-{_e(sha256)}" title="sha256:{_e(sha256)}">sha256:{_e(sha256[:12])}…</a>'


def _anomaly(anomaly: Anomaly, *, link: bool) -> str:
    meaning = ANOMALY_KINDS.get(anomaly.kind, "")
    return (f'<li class="anomaly" data-kind="{_e(anomaly.kind)}">'
            f'<span class="kind" title="{_e(meaning)}">{_e(anomaly.kind)}</span>'
            f'{_sha_link(anomaly.sha256) if link else ""}{_e(anomaly.message)}'
            + (f'<span class="src">{_e(anomaly.source)}</span>' if anomaly.source else "") + "</li>")


def _pill(step: str, status: str, value: str, note: str = "", title: str = "") -> str:
    mark = {"passed": "✓ ", "anomalous": "⚠ ", "failed": "✕ ", "absent": ""}[status]
    return (f'<li class="{status}"><span class="pill {status}" data-step="{_e(step)}" '
            f'title="{_e(title or value)}">'
            f'<span class="step">{mark}{_e(step)}</span><span class="val">{_e(value)}</span>'
            + (f'<span class="note">{_e(note)}</span>' if note else "") + "</span></li>")


def _status(anomalous: bool, present: bool) -> str:
    return "anomalous" if anomalous else ("passed" if present else "absent")


def _path(artifact: ArtifactHistory) -> str:
    """The artefact's path as a row of pills: its commit, its build, then each stage of the policy."""
    steps = artifact.steps_with_anomalies()
    pills = [_commit_pill(artifact.build, anomalous="source" in steps),
             _build_pill(artifact, anomalous="build" in steps),
             *(_stage_pill(stage) for stage in artifact.stages)]
    return '<ol class="path">' + "".join(pills) + "</ol>"


def _commit_pill(build: BuildRecord | None, *, anomalous: bool) -> str:
    """The commit the build names, with its branch ("unknown" without a build that names one)."""
    if build is None or not build.commit:
        return _pill("commit", _status(anomalous, False), "unknown")
    branch = (build.ref or "").removeprefix("refs/heads/")
    return _pill("commit", _status(anomalous, True), build.commit[:12], branch,
                 f"{build.source or ''} {build.ref or ''} @ {build.commit}")


def _build_pill(artifact: ArtifactHistory, *, anomalous: bool) -> str:
    """The builder, with when it finished and what is known of the build (else who signed the bytes)."""
    build = artifact.build
    if build is None:
        signers = sorted({s for e in artifact.signatures for s in e.signers})
        note = f"signed by {', '.join(signers)}" if signers else ""  # a message signature: bytes, not a build
        return _pill("build", _status(anomalous, False), "no trusted provenance", note)
    builder = build.builder.rstrip("/").rsplit("/", 1)[-1].rsplit(":", 1)[-1] or build.builder
    return _pill("build", _status(anomalous, True), builder, _build_note(build, artifact.reproductions),
                 build.builder)


def _build_note(build: BuildRecord, reproductions: Sequence[Endorsement]) -> str:
    """When the build finished, whether its tree was dirty, and whether it was reproduced."""
    notes = [_day(build.finished_on)]
    if build.dirty:
        notes.append("dirty tree")
    verdicts = {r.result for r in reproductions}
    if verdicts:
        notes.append("not reproducible" if "NOT_REPRODUCIBLE" in verdicts else "reproduced")
    return " · ".join(n for n in notes if n)


def _stage_pill(stage: StageHistory) -> str:
    first = stage.first_passed
    if first is not None:
        value, note = _day(first.time), "by " + ", ".join(first.signers)
    elif stage.vsas:
        value, note = stage.vsas[0].result.lower() or "failed", _day(stage.vsas[0].time)
    else:
        value, note = "not verified", ""
    if stage.approvals:
        count = len({s for a in stage.approvals for s in a.signers})
        note = f"{note} · {count} approval{'s' if count != 1 else ''}".lstrip(" ·")
    return _pill(stage.stage, stage.status, value, note)


def _rows(header: Sequence[str], rows: Iterable[Iterable[object]], *, mono: Collection[int] = (),
          long: Collection[int] = ()) -> str:
    """A table; ``mono`` columns in a fixed-width font, ``long`` ones (hashes, URIs) wrapped anywhere."""
    classes = {i: " ".join(name for name, columns in (("mono", mono), ("long", long)) if i in columns)
               for i in range(len(header))}
    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f'<td class="{classes.get(i, "")}">{_e(c)}</td>' for i, c in enumerate(row))
                   + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>" if body else ""


def _endorsement_rows(items: Iterable[Endorsement]) -> list[list[object]]:
    return [[e.kind, e.stage or "-", e.result, _day(e.time), ", ".join(e.signers), e.attestation]
            for e in items]


def _details(artifact: ArtifactHistory) -> str:
    header = ["name", "commit", "source", "ref", "builder", "finished", "dirty", "signed by", "attestation"]
    builds = _rows(header, [[b.name, b.commit or "-", b.source or "-", b.ref or "-", b.builder,
                             _day(b.finished_on), "yes" if b.dirty else "no", ", ".join(b.signers),
                             b.attestation] for b in artifact.builds], mono=(1, 8), long=(0, 1, 2, 4, 8))
    endorsements = [e for s in artifact.stages for e in (*s.vsas, *s.approvals)]
    endorsements += (*artifact.reproductions, *artifact.signatures, *artifact.releases)
    others = _rows(["kind", "stage", "result", "time", "signed by", "attestation"],
                   _endorsement_rows(endorsements), mono=(5,), long=(2, 5))
    stored = _stored_rows(artifact.stored)
    if not builds and not others and not stored:
        return ""
    return f"<details><summary>evidence</summary>{builds}{others}{stored}</details>"


def _stored_rows(copies: Sequence[StoredCopy]) -> str:
    """Where the artefact's bytes are stored, and whether they hash to their address."""
    said = {"verified": "bytes match the address", "tampered": "bytes differ from the address",
            "unreadable": "cannot be read"}
    return _rows(["stored at", "bytes", "sha256 of the bytes"],
                 [[c.uri, said[c.status], c.sha256 or "-"] for c in copies], mono=(0, 2), long=(0, 2))


def _in_releases(artifact: ArtifactHistory) -> str:
    if not artifact.releases:
        return ""
    names = ", ".join(f"<b>{_e(r.result)}</b> ({_e(_day(r.time))}, by {_e(', '.join(r.signers))})"
                      for r in artifact.releases)
    return f'<p class="releases">in release{"s" if len(artifact.releases) > 1 else ""} {names}</p>'


#: The newest release manifests the page lists (an organisation's thousands are in the JSON report, and each
#: artefact's releases are in the history's search).
RELEASES = 100


def _releases(releases: Sequence[ReleaseRecord]) -> str:
    """The newest :data:`RELEASES` release manifests signed by a release signer (``releases`` oldest first, and so
    shown): one row per component artefact."""
    if not releases:
        return ""
    shown = releases[-RELEASES:]
    rows = "".join(
        "<tr>" + "".join([
            f'<td class="long">{_e(release.name)}</td>', f"<td>{_e(_day(release.created))}</td>",
            f'<td class="long">{_e(", ".join(release.signers))}</td>',
            f'<td class="long">{_e(component.name)}</td>', f'<td class="long">{_e(name)}</td>',
            f'<td class="mono">{_sha_link(sha)}</td>', f'<td class="mono">{_e((component.commit or "-")[:12])}</td>',
            f'<td class="mono long">{_e(release.attestation)}</td>']) + "</tr>"
        for release in shown for component in release.components for name, sha in component.artifacts)
    head = "".join(f"<th>{h}</th>" for h in ("release", "created", "signed by", "component", "artefact",
                                              "sha256", "commit", "manifest"))
    count, older = len(releases), len(releases) - len(shown)
    note = (f'<p class="sub">the newest {len(shown)}; the {older} older are in the JSON report (--format json), and '
            "the history above finds each artefact's releases</p>") if older else ""
    return (f'<section class="panel" id="releases"><h2>{count} release{"s" if count != 1 else ""}</h2>{note}'
            f"<table><tr>{head}</tr>{rows}</table></section>")


def _artifact(artifact: ArtifactHistory) -> str:
    names = (", ".join(_e(n) for n in artifact.names) if artifact.names
             else '<span class="none">no trusted provenance</span>')
    classes = "artifact has-anomaly" if artifact.anomalies else "artifact"
    anomalies = "".join(_anomaly(a, link=False) for a in artifact.anomalies)
    if anomalies:
        anomalies = f'<ul class="anomalies">{anomalies}</ul>'
    return (f'<article class="{classes}" id="a-{_e(artifact.sha256)}" data-sha256="{_e(artifact.sha256)}">'
            f'<div class="head"><h3>{names}</h3><span class="sha">sha256:{_e(artifact.sha256)}</span></div>'
            f"{_path(artifact)}{_in_releases(artifact)}{anomalies}{_details(artifact)}</article>")


#: What the colours of the pills mean.
_LEGEND = ('<span class="legend">'
           + "".join(f'<span class="pill {s}">{label}</span>' for s, label in
                     (("passed", "✓ passed"), ("absent", "absent"), ("anomalous", "⚠ anomalous")))
           + "</span>")


def _header(report: AuditReport, *, title: str, generated_at: datetime | None) -> str:
    """The page's header: its title, the policy, when it was generated, and the counts."""
    count = len(report.anomalies)
    stats = [
        ("", str(len(report.artifacts)), "artefacts"),
        ("", str(report.attestations), "attestations"),
        ("bad" if count else "good", str(count) if count else "✓", "anomalies" if count else "no anomalies"),
    ]
    policy = report.policy_uri + (f" (sha256 {report.policy_digest[:16]}…)" if report.policy_digest else "")
    when = f" · generated {generated_at.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC" if generated_at else ""
    return "".join([
        f'<header><h1>{_e(title)}</h1><p class="sub">policy {_e(policy)}{_e(when)}</p><div class="stats">',
        "".join(f'<div class="stat {c}"><b>{_e(v)}</b><span>{_e(label)}</span></div>'
                for c, v, label in stats),
        "</div></header>",
    ])


def _anomalies(anomalies: Sequence[Anomaly]) -> str:
    """The panel listing every anomaly with a legend of their kinds (or saying there is none)."""
    if not anomalies:
        return ('<section class="panel" id="anomalies"><p class="clean">✓ No anomalies: every '
                "attestation verified and every artefact's path follows the policy.</p></section>")
    count = len(anomalies)
    kinds = sorted({a.kind for a in anomalies})
    legend = "".join(f"<dt>{_e(k)}</dt><dd>{_e(ANOMALY_KINDS.get(k, ''))}</dd>" for k in kinds)
    return (f'<section class="panel alert" id="anomalies"><h2>{count} '
            f'anomal{"y" if count == 1 else "ies"}</h2><ul class="anomalies">'
            + "".join(_anomaly(a, link=True) for a in anomalies)
            + f'</ul><dl class="kinds">{legend}</dl></section>')


def _footer(report: AuditReport) -> str:
    """What was read, and how the signatures were checked."""
    return (f"<footer>{report.files} file(s), {report.attestations} attestation(s) read"
            + (f", {report.stored} stored artefact(s) hashed" if report.stored else "")
            + (f", {report.unread} part(s) not read (see the anomalies)" if report.unread else "")
            + "; signatures checked offline against the policy's pinned keys and Sigstore identities.</footer>")


#: Artefacts shown as cards besides every one with an anomaly: the newest (the rest are in the history).
CARDS = 100


def _cards(ordered: Sequence[ArtifactHistory]) -> str:
    """A card for each artefact with an anomaly and for the newest :data:`CARDS`, newest first (``ordered`` so)."""
    newest = {a.sha256 for a in ordered[:CARDS]}
    shown = [a for a in ordered if a.anomalies or a.sha256 in newest]
    if not shown:
        return '<p class="panel">No artefact found.</p>'
    rest = len(ordered) - len(shown)
    more = f'<p class="panel">{rest} older artefact(s) without anomalies are in the history above.</p>' if rest else ""
    return "".join(_artifact(a) for a in shown) + more


def render_html(report: AuditReport, *, generated_at: datetime | None = None,
                title: str = "attest audit") -> str:
    """The whole report as one HTML document (a string), loading nothing from anywhere: what runs where, the
    delivery figures, the anomalies, the searchable history, the releases, then the artefacts' paths."""
    ordered = newest_first(report.artifacts)  # (each history read back from an index's text once, not per part)
    return "".join([
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">",
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        # nothing may load from anywhere, and no script may run but the page's own (pinned by its hash), even if
        # something slipped through escaping
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; "
        f"style-src 'unsafe-inline'; script-src '{SCRIPT_HASH}'\">",
        f"<title>{_e(title)}</title><style>{_CSS}{DASHBOARD_CSS}</style></head><body>",
        _header(report, title=title, generated_at=generated_at),
        '<input type="checkbox" id="only-anomalous" hidden>',
        "<main>", running_map(report, _e), dora_tiles(report, _e), _anomalies(report.anomalies), history(ordered),
        _releases(report.releases),
        '<div class="toolbar"><h2 style="margin:0">Artefacts</h2>',
        '<label for="only-anomalous">show only artefacts with anomalies</label>', _LEGEND, "</div>",
        _cards(ordered),
        "</main>",
        _footer(report),
        "</body></html>\n",
    ])
