"""The top of the audit page, what a release manager asks first: what runs where, and how delivery goes.

* :func:`running_map`: environments x components, each cell the release the newest succeeded trusted deployment
  record says runs there, since when; an environment the one before it runs a newer release than (or runs
  anything, where it runs nothing) is marked *behind* it, with how many releases (prd 2 releases behind stg).
* :func:`dora_tiles`: per component, the four DORA figures of its last environment, with the weekly deployments
  as a small inline SVG trend; a figure without data says so.
* :func:`history`: the whole history as a compact JSON data island, paged (newest first) and searched by the one
  small script of the page (:data:`SCRIPT`, allowed by its hash in the page's Content-Security-Policy, and
  writing evidence text only through ``textContent``).

Every string from evidence goes through the page's escaping (``escape``), or, spelled out by ``printable``
(control and direction characters named, not obeyed), into JSON made safe for a ``<script>`` element (``<``,
``>`` and ``&`` written as escapes) and shown by the script as text only.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from verify.audit.report import ArtifactHistory, AuditReport, iso_time
from verify.formats.encoding import printable

__all__ = ["CSS", "SCRIPT", "SCRIPT_HASH", "dora_tiles", "duration", "history", "newest_first", "running_map"]

Escape = Callable[[object], str]

#: Rows of the history shown at a time.
PAGE_ROWS = 50

CSS = """
.map td, .map th { text-align: center; white-space: normal; }
.map th:first-child, .map td:first-child { text-align: left; font-weight: 600; }
.cell { display: inline-block; min-width: 120px; border-radius: 10px; padding: 6px 10px;
  background: var(--ok-bg); color: var(--ok); border: 1px solid var(--ok-line); }
.cell b { display: block; font-family: var(--mono); font-size: 13px; }
.cell span { font-size: 11.5px; opacity: .85; }
.cell.behind { background: #fffaeb; color: #b54708; border-color: #fec84b; }
.cell.none { background: var(--no-bg); color: var(--no); border: 1px dashed var(--no-line); }
.tiles { display: grid; grid-template-columns: repeat(auto-fill, minmax(230px, 1fr)); gap: 12px; }
.tile { border: 1px solid #eaecf0; border-radius: 12px; padding: 10px 14px; }
.tile h4 { margin: 0 0 2px; font-size: 12px; color: var(--muted); font-weight: 600; text-transform: uppercase;
  letter-spacing: .4px; }
.tile b { font-size: 22px; display: block; }
.tile span { font-size: 12px; color: var(--muted); }
.tile.nodata b { color: var(--no); font-size: 15px; font-weight: 500; }
.tile svg { display: block; margin-top: 6px; }
.search { display: flex; gap: 10px; align-items: center; flex-wrap: wrap; margin-bottom: 8px; }
.search input { font: inherit; padding: 6px 10px; border: 1px solid #d0d5dd; border-radius: 8px; width: 360px;
  max-width: 100%; }
.search button { font: inherit; padding: 5px 12px; border: 1px solid #d0d5dd; border-radius: 8px;
  background: #fff; cursor: pointer; }
table.history td { white-space: normal; overflow-wrap: anywhere; }
table.history td.st { white-space: nowrap; }
.st i { font-style: normal; display: inline-block; border-radius: 6px; padding: 0 6px; margin-right: 3px;
  font-size: 11.5px; border: 1px solid var(--no-line); color: var(--no); }
.st i.passed { color: var(--ok); border-color: var(--ok-line); background: var(--ok-bg); }
.st i.anomalous, .st i.failed { color: var(--warn); border-color: var(--warn); background: var(--warn-bg); }
"""

#: The page's one script: the history, paged and searched. It reads the JSON data island and writes text only
#: through textContent (never HTML), so evidence cannot become markup.
SCRIPT = """(function () {
  var data = JSON.parse(document.getElementById('history-data').textContent);
  var rows = data.rows, size = data.page, query = '', page = 0;
  var body = document.getElementById('history-rows'), shown = document.getElementById('history-shown');
  var search = document.getElementById('history-search');
  function matches(r) {
    if (!query) return true;
    return (r.n + ' ' + r.s + ' ' + r.c + ' ' + r.k.join(' ') + ' ' + r.r.join(' ')).toLowerCase()
      .indexOf(query) >= 0;
  }
  function cell(tr, text, cls) {
    var td = document.createElement('td'); td.textContent = text; if (cls) td.className = cls;
    tr.appendChild(td); return td;
  }
  function draw() {
    var found = rows.filter(matches), pages = Math.max(1, Math.ceil(found.length / size));
    page = Math.min(page, pages - 1);
    var from = page * size, to = Math.min(found.length, from + size);
    body.textContent = '';
    found.slice(from, to).forEach(function (r) {
      var tr = document.createElement('tr'); tr.dataset.sha256 = r.s;
      cell(tr, r.t); cell(tr, r.n); cell(tr, r.s.slice(0, 12), 'mono'); cell(tr, r.c, 'mono');
      var st = cell(tr, '', 'st');
      r.p.forEach(function (p) {
        var i = document.createElement('i'); i.className = p[1]; i.textContent = p[0]; st.appendChild(i);
      });
      cell(tr, r.k.join(', ')); cell(tr, r.r.join(', '));
      body.appendChild(tr);
    });
    shown.textContent = found.length ? (from + 1) + '-' + to + ' of ' + found.length : 'nothing matches';
  }
  search.addEventListener('input', function () { query = search.value.trim().toLowerCase(); page = 0; draw(); });
  document.getElementById('history-prev').addEventListener('click', function () {
    page = Math.max(0, page - 1); draw();
  });
  document.getElementById('history-next').addEventListener('click', function () { page += 1; draw(); });
  draw();
})();"""
SCRIPT_HASH = "sha256-" + base64.b64encode(hashlib.sha256(SCRIPT.encode()).digest()).decode()


def _environments(report: AuditReport) -> list[str]:
    """The environments with a deployment record, in the policy's order (others after, by name)."""
    seen = {env for envs in report.running.values() for env in envs}
    return [s for s in report.stages if s in seen] + sorted(seen - set(report.stages))


def running_map(report: AuditReport, escape: Escape) -> str:
    """Environments x components: what runs where, since when, and which environment is behind the one before."""
    environments = _environments(report)
    if not environments:
        return ('<section class="panel" id="map"><h2>What runs where</h2><p class="none">No trusted deployment '
                "record: nothing is known to run anywhere (attest deploy record signs what an environment "
                "deployed).</p></section>")
    head = "".join(f"<th>{escape(env)}</th>" for env in environments)
    rows = []
    for component, runs in sorted(report.running.items()):
        cells = []
        for before, env in itertools.pairwise(["", *environments]):  # each with the one before it, if any
            here = runs.get(env)
            if here is None:  # behind when the environment before runs it
                late = f"behind {before}: {before} runs {runs[before]['release']}" if before in runs else ""
                cells.append(f'<td data-env="{escape(env)}"><span class="cell none{" behind" if late else ""}" '
                             f'title="{escape(late)}">not deployed{" · behind " + escape(before) if late else ""}'
                             '</span></td>')
                continue
            ahead = here.get("behind")
            cells.append(f'<td data-env="{escape(env)}"><span class="cell{" behind" if ahead else ""}" '
                         f'title="{escape(_cell_title(env, here, ahead, runs))}"><b>{escape(here["release"])}</b>'
                         f'<span>since {escape((here["since"] or "")[:16].replace("T", " "))}'
                         f'{" · " + _how_far(here) + " " + escape(ahead) if ahead else ""}</span></span></td>')
        rows.append(f'<tr data-component="{escape(component)}"><td>{escape(component)}</td>{"".join(cells)}</tr>')
    return (f'<section class="panel" id="map"><h2>What runs where</h2><table class="map"><thead><tr>'
            f'<th>component</th>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table></section>')


def _how_far(here: Mapping[str, Any]) -> str:
    """``behind``, ``1 release behind``, ``3 releases behind``: how far a cell's environment is behind the one before
    (the count unknown when a release's manifest is not among the sources)."""
    far = here.get("releasesBehind")
    return "behind" if not isinstance(far, int) else f"{far} release{'' if far == 1 else 's'} behind"


def _cell_title(env: str, here: Mapping[str, Any], ahead: str | None, runs: Mapping[str, Any]) -> str:
    if not ahead:
        return f"{here['kind']} at {here['since']}"
    return f"{_how_far(here)} {ahead}: {ahead} runs {runs[ahead]['release']}, {env} still {here['release']}"


def duration(seconds: float | None) -> str:
    """A length of time as people read it (min, h, d); empty for none."""
    if seconds is None:
        return ""
    if seconds < 3600:
        return f"{seconds / 60:.0f} min"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"


def _trend(weekly: Sequence[int]) -> str:
    """The weekly deployments as a small line (inline SVG, nothing loaded)."""
    if not weekly:
        return ""
    width, height, top = 200, 36, max(max(weekly), 1)
    step = width / max(len(weekly) - 1, 1)
    points = " ".join(f"{i * step:.1f},{height - 2 - (v / top) * (height - 4):.1f}" for i, v in enumerate(weekly))
    return (f'<svg width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img" '
            f'aria-label="deployments per week"><polyline fill="none" stroke="#067647" stroke-width="2" '
            f'points="{points}"/></svg>')


def _tile(kind: str, title: str, value: str, note: str, extra: str = "") -> str:
    nodata = not value
    return (f'<div class="tile{" nodata" if nodata else ""}" data-figure="{kind}"><h4>{title}</h4>'
            f'<b>{value or "no data"}</b><span>{note}</span>{extra}</div>')


def dora_tiles(report: AuditReport, escape: Escape) -> str:
    """Per component, the DORA figures of its last environment (prd, when it has records), as tiles."""
    dora = report.dora
    if dora is None:
        return ""
    window = dora["window"]
    parts = [f'<section class="panel" id="dora"><h2>Delivery, {escape(window["since"][:10])} to '
             f'{escape(window["until"][:10])}</h2>']
    if not dora["components"]:
        parts.append('<p class="none">No trusted deployment record: no delivery figure to show.</p>')
    for component, environments in sorted(dora["components"].items()):
        env = next((s for s in reversed(report.stages) if s in environments), sorted(environments)[-1])
        figures: Mapping[str, Any] = environments[env]
        frequency, lead = figures["deploymentFrequency"], figures["leadTime"]
        failures, restore = figures["changeFailureRate"], figures["timeToRestore"]
        tiles = [
            _tile("frequency", "deployments", f'{frequency["perWeek"]:.1f}/week' if frequency["deployments"] else "",
                  f'{frequency["deployments"]} in the window', _trend(frequency["weekly"])),
            _tile("lead-time", "lead time", duration(lead["medianSeconds"]),
                  f'median; p90 {duration(lead["p90Seconds"])}; {lead["changes"]} change(s)'
                  if lead["medianSeconds"] is not None else escape(lead.get("note", ""))),
            _tile("failure-rate", "change failure rate",
                  f'{failures["rate"]:.0%}' if failures["rate"] is not None else "",
                  f'{failures["failures"]} of {failures["deployments"]} deployment(s)'
                  if failures["rate"] is not None else escape(failures.get("note", ""))),
            _tile("restore", "time to restore", duration(restore["medianSeconds"]),
                  f'median of {restore["incidents"]} incident(s)' if restore["medianSeconds"] is not None
                  else escape(restore.get("note", ""))),
        ]
        parts.append(f'<h3 data-component="{escape(component)}">{escape(component)} in {escape(env)}</h3>'
                     f'<div class="tiles">{"".join(tiles)}</div>')
    return "".join(parts) + "</section>"


def newest_first(artifacts: Sequence[ArtifactHistory]) -> list[ArtifactHistory]:
    """The artefacts by their build's finish time, newest first (those without a build last, by digest)."""
    return sorted(artifacts, key=lambda a: (a.build is None, -(a.build.finished_on.timestamp())
                                            if a.build is not None and a.build.finished_on else 0.0, a.sha256))


def _row(artifact: ArtifactHistory) -> dict[str, Any]:
    steps = artifact.steps_with_anomalies()
    build = artifact.build
    path = [["build", "anomalous" if "build" in steps else ("passed" if build else "absent")],
            *[[s.stage, s.status] for s in artifact.stages]]
    return {"s": artifact.sha256, "n": printable(artifact.names[0]) if artifact.names else "(no trusted provenance)",
            "c": printable((build.commit or "")[:12]) if build else "",
            "t": (iso_time(build.finished_on) or "")[:16].replace("T", " ") if build else "", "p": path,
            "k": sorted({a.kind for a in artifact.anomalies}),
            "r": sorted({printable(r.result) for r in artifact.releases})}


def history(ordered: Sequence[ArtifactHistory]) -> str:
    """The searchable, paged history of the artefacts ``ordered`` newest first (:func:`newest_first`): a table the
    page's script fills from a JSON data island."""
    rows = [_row(a) for a in ordered]
    data = json.dumps({"page": PAGE_ROWS, "rows": rows}, separators=(",", ":"), ensure_ascii=False)
    data = data.replace("&", "\\u0026").replace("<", "\\u003c").replace(">", "\\u003e")
    return ('<section class="panel" id="history"><h2>History</h2><div class="search">'
            '<input id="history-search" type="search" placeholder="search: name, sha256, commit, anomaly, release" '
            'aria-label="search the history"><button id="history-prev" type="button">newer</button>'
            '<button id="history-next" type="button">older</button><span id="history-shown"></span></div>'
            '<noscript><p>The history needs the page\'s script; the artefacts below, and the JSON report, have it '
            'all.</p></noscript><table class="history"><thead><tr><th>built</th><th>artefact</th><th>sha256</th>'
            '<th>commit</th><th>path</th><th>anomalies</th><th>releases</th></tr></thead>'
            f'<tbody id="history-rows"></tbody></table><script type="application/json" id="history-data">{data}'
            f"</script><script>{SCRIPT}</script></section>")
