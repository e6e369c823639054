"""The audit page in a real browser: what a person sees, not what the HTML source says.

Headless Chromium (Debian's ``chromium`` package) opens the page written by ``attest audit
--format html``; the test drives it over the DevTools protocol (a minimal WebSocket client below,
to 127.0.0.1 only) and checks the rendered text, the colour of the anomalies, that nothing was
loaded or run, that the browser reported no error, and keeps a screenshot in the test's tmp dir.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests import factory as f
from tests.conftest import AttestRunner, make_keypair, missing_tool
from verify.audit.html import WARNING_COLOUR

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(autouse=True)
def _chromium() -> None:
    if CHROMIUM is None:
        missing_tool("Chromium is not installed (Debian: apt-get install -y chromium)")
H = timedelta(hours=1)


class DevTools:
    """Just enough of RFC 6455 and the Chrome DevTools Protocol to call methods and collect events."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        assert parts.hostname == "127.0.0.1" and parts.port is not None
        self.sock = socket.create_connection((parts.hostname, parts.port), timeout=30)
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall((f"GET {parts.path} HTTP/1.1\r\nHost: 127.0.0.1:{parts.port}\r\nUpgrade: websocket\r\n"
                           f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n")
                          .encode())
        self.buffer = b""
        while b"\r\n\r\n" not in self.buffer:
            self.buffer += self._recv_some()
        head, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
        assert head.split(b"\r\n")[0].split()[1] == b"101", head
        self.next_id = 0
        self.events: list[dict[str, Any]] = []

    def _recv_some(self) -> bytes:
        data = self.sock.recv(65536)
        if not data:
            raise ConnectionError("the browser closed the DevTools connection")
        return data

    def _exactly(self, n: int) -> bytes:
        while len(self.buffer) < n:
            self.buffer += self._recv_some()
        data, self.buffer = self.buffer[:n], self.buffer[n:]
        return data

    def _send_frame(self, opcode: int, data: bytes) -> None:
        header = bytearray([0x80 | opcode])
        if len(data) < 126:
            header.append(0x80 | len(data))
        elif len(data) < 1 << 16:
            header += bytes([0x80 | 126]) + len(data).to_bytes(2, "big")
        else:
            header += bytes([0x80 | 127]) + len(data).to_bytes(8, "big")
        mask = os.urandom(4)  # a client masks every frame
        self.sock.sendall(bytes(header) + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(data)))

    def _message(self) -> dict[str, Any]:
        payload = b""
        while True:
            first, second = self._exactly(2)
            length = second & 0x7F
            if length == 126:
                length = int.from_bytes(self._exactly(2), "big")
            elif length == 127:
                length = int.from_bytes(self._exactly(8), "big")
            mask = self._exactly(4) if second & 0x80 else b""
            data = self._exactly(length)
            if mask:
                data = bytes(b ^ mask[i % 4] for i, b in enumerate(data))
            opcode = first & 0x0F
            if opcode == 0x8:
                raise ConnectionError("the browser closed the DevTools connection")
            if opcode == 0x9:
                self._send_frame(0xA, data)
                continue
            payload += data
            if first & 0x80 and opcode != 0xA:
                message: dict[str, Any] = json.loads(payload)
                return message

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        self.next_id += 1
        self._send_frame(0x1, json.dumps({"id": self.next_id, "method": method, "params": params}).encode())
        while True:
            message = self._message()
            if message.get("id") == self.next_id:
                assert "error" not in message, message
                result: dict[str, Any] = message["result"]
                return result
            self.events.append(message)

    def wait_for(self, event: str, timeout: float = 30) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            message = self._message()
            self.events.append(message)
            if message.get("method") == event:
                return message
        raise TimeoutError(event)

    def evaluate(self, expression: str) -> Any:
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        assert "exceptionDetails" not in result, result
        return result["result"].get("value")


@contextlib.contextmanager
def chromium(profile: Path) -> Iterator[DevTools]:
    """A headless Chromium with its DevTools on a free port of 127.0.0.1, and a connection to its page."""
    assert CHROMIUM is not None
    process = subprocess.Popen([
        CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--disable-extensions", "--hide-scrollbars", "--window-size=1400,900", f"--user-data-dir={profile}",
        "--remote-debugging-address=127.0.0.1", "--remote-debugging-port=0", "about:blank",
    ], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + 60
        while not (port_file.exists() and port_file.read_text().strip()):
            assert process.poll() is None, "chromium exited before it opened its DevTools port"
            assert time.monotonic() < deadline, "chromium did not open its DevTools port within 60 s"
            time.sleep(0.1)
        port = int(port_file.read_text().split()[0])
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=30) as response:
            pages = [t for t in json.load(response) if t["type"] == "page"]
        devtools = DevTools(pages[0]["webSocketDebuggerUrl"])
        try:
            yield devtools
        finally:
            devtools.sock.close()
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def test_the_page_shows_the_paths_and_highlights_the_anomalies(tmp_path: Path, attest: AttestRunner) -> None:
    keys = {name: make_keypair(tmp_path, name) for name in ("dev", "stg", "prd", "other")}
    (tmp_path / "policy.yaml").write_text(f"""version: 1
identities:
  dev-build: {{keys: [{keys['dev'].public}]}}
  stg-verifier: {{keys: [{keys['stg'].public}]}}
  prd-verifier: {{keys: [{keys['prd'].public}]}}
provenance: {{signed-by: [dev-build]}}
stages:
  stg: {{verifier: stg-verifier}}
  prd: {{verifier: prd-verifier, require-vsa: [{{stage: stg, signed-by: stg-verifier}}]}}
""")
    store = tmp_path / "store"
    released, skipped = b"released", b"skipped stg"
    provenance = f.provenance(keys["dev"].private, subjects={"dist/app.tar.gz": released})
    f.publish(store, provenance)
    made = [("provenance", f.line_sha256(provenance))]
    f.publish(store, f.vsa(keys["stg"].private, name="dist/app.tar.gz", artifact=released, stage="stg", at=f.T0 + H,
                           inputs=made))
    f.publish(store, f.vsa(keys["prd"].private, name="dist/app.tar.gz", artifact=released, stage="prd",
                           at=f.T0 + 2 * H))
    f.publish(store, f.provenance(keys["dev"].private, subjects={"dist/hotfix.tar.gz": skipped}, commit="b" * 40))
    f.publish(store, f.vsa(keys["prd"].private, name="dist/hotfix.tar.gz", artifact=skipped, stage="prd",
                           at=f.T0 + H))
    f.publish(store, f.provenance(keys["other"].private,
                                  subjects={'dist/<img src=x onerror="document.title=1">.tar.gz': b"evil"}))
    result = attest("audit", "store", "--policy", "policy.yaml", "--format", "html", "-o", "audit.html",
                    cwd=tmp_path)
    assert result.code == 1, result
    shas = {name: f.digests(data)["sha256"] for name, data in
            (("released", released), ("skipped", skipped), ("evil", b"evil"))}

    with chromium(tmp_path / "profile") as page:
        page.call("Runtime.enable")
        page.call("Log.enable")
        page.call("Page.enable")
        page.call("Page.navigate", url=(tmp_path / "audit.html").as_uri())
        page.wait_for("Page.loadEventFired")

        # what a person reads
        text = page.evaluate("document.body.innerText")
        for name in ("dist/app.tar.gz", "dist/hotfix.tar.gz", "no trusted provenance"):
            assert name in text
        for sha in shas.values():
            assert f"sha256:{sha}" in text
        assert "without the VSA from stage 'stg' that it requires" in text
        assert "a provenance for 'dist/<img src=x onerror=\"document.title=1\">.tar.gz' is signed by no key" in text

        # the anomalies stand out: drawn in the warning colour, and the path's pills say where
        colour = tuple(int(c, 16) for c in (WARNING_COLOUR[1:3], WARNING_COLOUR[3:5], WARNING_COLOUR[5:7]))
        assert page.evaluate("document.querySelectorAll('.anomaly').length") == 4
        assert page.evaluate("[...document.querySelectorAll('.anomaly')].map(e => getComputedStyle(e).color)") == \
            ["rgb({}, {}, {})".format(*colour)] * 4
        pills = page.evaluate(f"""[...document.querySelectorAll('#a-{shas["skipped"]} .pill')]
            .map(p => [p.dataset.step, p.className, getComputedStyle(p).color])""")
        assert [(step, cls) for step, cls, _ in pills] == [("commit", "pill passed"), ("build", "pill passed"),
                                                          ("stg", "pill absent"), ("prd", "pill anomalous")]
        assert pills[3][2] == "rgb({}, {}, {})".format(*colour) != pills[0][2]
        released_pills = page.evaluate(f"[...document.querySelectorAll('#a-{shas['released']} .pill')]"
                                       ".map(p => p.className)")
        assert released_pills == ["pill passed"] * 4

        # the CSS-only filter hides the clean artefact
        visible = "[...document.querySelectorAll('.artifact')].filter(a => a.offsetParent !== null).length"
        assert page.evaluate(visible) == 3
        page.evaluate("document.getElementById('only-anomalous').click()")
        assert page.evaluate(visible) == 2
        page.evaluate("document.getElementById('only-anomalous').click()")

        # nothing ran but the page's own script (the history), nothing was fetched, nothing went wrong
        assert page.evaluate("document.title") == "attest audit"
        assert page.evaluate("document.images.length") == 0
        assert page.evaluate("[...document.scripts].map(s => s.type || 'js')") == ["application/json", "js"]
        assert page.evaluate("performance.getEntriesByType('resource').length") == 0
        errors = [e for e in page.events
                  if e.get("method") == "Runtime.exceptionThrown"
                  or (e.get("method") == "Runtime.consoleAPICalled" and e["params"]["type"] in ("error", "warning"))
                  or (e.get("method") == "Log.entryAdded" and e["params"]["entry"]["level"] in ("error", "warning"))]
        assert errors == []

        shot = page.call("Page.captureScreenshot", format="png", captureBeyondViewport=True)
        (tmp_path / "audit.png").write_bytes(base64.b64decode(shot["data"]))
    assert (tmp_path / "audit.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# --- the dashboard: what runs where, the delivery figures, the history ------------------------------------------

def _open(page: DevTools, path: Path) -> float:
    """Open ``path``; the seconds until its load event."""
    page.call("Runtime.enable")
    page.call("Log.enable")
    page.call("Page.enable")
    started = time.monotonic()
    page.call("Page.navigate", url=path.as_uri())
    page.wait_for("Page.loadEventFired")
    return time.monotonic() - started


def _problems(page: DevTools) -> list[dict[str, Any]]:
    """Errors and warnings the browser reported (a script the CSP blocked would be one)."""
    return [e for e in page.events
            if e.get("method") == "Runtime.exceptionThrown"
            or (e.get("method") == "Runtime.consoleAPICalled" and e["params"]["type"] in ("error", "warning"))
            or (e.get("method") == "Log.entryAdded" and e["params"]["entry"]["level"] in ("error", "warning"))]


def test_the_page_opens_on_what_runs_where_and_the_delivery_figures(tmp_path: Path, attest: AttestRunner) -> None:
    from tests.dora.history import history_with_dora, write_policy

    keys = {n: make_keypair(tmp_path, n) for n in ("dev", "release", "stg", "prd", "mallory")}
    write_policy(tmp_path, keys)
    history_with_dora(tmp_path, keys)
    ran = attest("audit", "store", "--policy", "policy.yaml", "--format", "html", "-o", "audit.html", "--no-index",
                 cwd=tmp_path)
    assert ran.code == 1, ran  # mallory's record
    with chromium(tmp_path / "profile") as page:
        _open(page, tmp_path / "audit.html")
        order = page.evaluate("[...document.querySelectorAll('main > section')].map(s => s.id)")
        assert order[:4] == ["map", "dora", "anomalies", "history"]  # what a release manager asks first
        cells = page.evaluate("""[...document.querySelectorAll('#map tr[data-component=app] td[data-env]')]
            .map(td => [td.dataset.env, td.innerText.replace(/\\s+/g, ' ').trim(),
                        td.querySelector('.cell').className])""")
        assert [(env, text.split(" ")[0], cls) for env, text, cls in cells] == [
            ("stg", "r1", "cell"), ("prd", "r3", "cell")]  # stg runs r1, which prd ran before r3: not behind
        tiles = page.evaluate("""Object.fromEntries([...document.querySelectorAll('#dora .tile')]
            .map(t => [t.dataset.figure, t.querySelector('b').innerText]))""")
        assert tiles == {"frequency": "0.3/week", "lead-time": "4.0 h", "failure-rate": "33%", "restore": "2.5 h"}
        assert page.evaluate("document.querySelectorAll('#dora .tile svg polyline').length") == 1
        assert page.evaluate("document.querySelectorAll('#history-rows tr').length") == 3
        assert page.evaluate("document.getElementById('history-shown').innerText") == "1-3 of 3"
        newest = page.evaluate("document.querySelector('#history-rows tr').cells[1].innerText")
        assert newest == "app.zip" and "r3" in page.evaluate("document.querySelector('#history-rows tr').innerText")
        assert page.evaluate("document.documentElement.scrollWidth") <= 1400
        assert _problems(page) == []
        shot = page.call("Page.captureScreenshot", format="png")
        (tmp_path / "dashboard.png").write_bytes(base64.b64decode(shot["data"]))


def _synthetic(count: int) -> Any:
    """An audit report of ``count`` builds of 20 components through stg and prd (made directly: the page is a
    function of the report, and signing 30,000 attestations would only slow the test)."""
    from datetime import UTC, datetime

    from verify.audit.report import ArtifactHistory, AuditReport, BuildRecord, Endorsement, StageHistory

    now = datetime.now(UTC)
    artifacts = []
    for n in range(count):
        sha = f"{n:064x}"
        built = now - timedelta(minutes=30 * n)
        build = BuildRecord(name=f"dist/svc-{n % 20}-{n}.zip", commit=f"{n:040x}", source="https://github.com/acme/app",
                            ref="refs/heads/main", builder="arn:aws:codebuild:eu-west-1:1:project/app",
                            started_on=built - timedelta(minutes=5), finished_on=built, dirty=False,
                            invocation_id=f"build/{n}", lockfiles=(), signers=("dev-build",),
                            attestation=f"store/sha256/{sha}/provenance-x.intoto.jsonl")
        stages = tuple(StageHistory(stage=stage, status="passed", vsas=(Endorsement(
            kind="vsa", stage=stage, result="PASSED", time=built + timedelta(hours=h), signers=(f"{stage}-verifier",),
            attestation=f"store/sha256/{sha}/vsa-{stage}.intoto.jsonl"),), approvals=())
            for stage, h in (("stg", 1), ("prd", 2)))
        artifacts.append(ArtifactHistory(sha256=sha, names=(build.name,), builds=(build,), stages=stages,
                                         reproductions=(), anomalies=()))
    weekly = [n % 7 for n in range(13)]
    figures = {"deploymentFrequency": {"deployments": sum(weekly), "weekly": weekly, "perWeek": 3.0},
               "leadTime": {"changes": 40, "medianSeconds": 7200.0, "p90Seconds": 86400.0},
               "changeFailureRate": {"deployments": 39, "failures": 2, "rate": 0.0513},
               "timeToRestore": {"incidents": 0, "medianSeconds": None, "note": "nothing failed"}, "records": 39}
    running = {f"svc-{c}": {"stg": {"release": "2026.12.2", "since": "2026-12-01T10:00:00Z", "kind": "deploy",
                                    "artifacts": [], "behind": None, "releasesBehind": None},
                            "prd": {"release": "2026.12.1", "since": "2026-11-30T10:00:00Z", "kind": "deploy",
                                    "artifacts": [], "behind": "stg", "releasesBehind": 1}}
                for c in range(20)}
    dora = {"window": {"since": "2026-09-07T00:00:00Z", "until": "2026-12-06T00:00:00Z", "days": 90},
            "from": "signed deployment records",
            "components": {f"svc-{c}": {"stg": figures, "prd": figures} for c in range(20)}}
    return AuditReport(artifacts=tuple(artifacts), anomalies=(), stages=("stg", "prd"), files=3 * count,
                       attestations=3 * count, policy_uri="policy.yaml", policy_digest="ab" * 32, dora=dora,
                       running=running)


def test_the_page_of_ten_thousand_builds_is_small_quick_and_searchable(tmp_path: Path) -> None:
    from verify.audit.html import render_html

    page_file = tmp_path / "audit.html"
    page_file.write_text(render_html(_synthetic(10_000)))
    assert page_file.stat().st_size < 5 * 1024 * 1024, page_file.stat().st_size
    with chromium(tmp_path / "profile") as page:
        seconds = _open(page, page_file)
        assert seconds < 2.0, f"the page took {seconds:.2f} s to load"
        assert page.evaluate("document.documentElement.scrollWidth") <= 1400  # no horizontal scroll at 1400 px
        assert page.evaluate("document.querySelectorAll('#map tbody tr').length") == 20
        assert page.evaluate("document.querySelectorAll('#map .cell.behind').length") == 20  # prd behind stg
        assert page.evaluate("document.querySelectorAll('#dora .tiles').length") == 20
        assert page.evaluate("document.querySelector('#dora .tile[data-figure=restore] b').innerText") == "no data"
        assert page.evaluate("document.querySelectorAll('#history-rows tr').length") == 50
        assert page.evaluate("document.getElementById('history-shown').innerText") == "1-50 of 10000"
        first = page.evaluate("document.querySelector('#history-rows tr').cells[1].innerText")
        assert first == "dist/svc-0-0.zip"  # newest first
        page.evaluate("document.getElementById('history-next').click()")
        assert page.evaluate("document.getElementById('history-shown').innerText") == "51-100 of 10000"
        page.evaluate("""(() => { const s = document.getElementById('history-search'); s.value = 'svc-7-9987';
                          s.dispatchEvent(new Event('input')); })()""")
        assert page.evaluate("[...document.querySelectorAll('#history-rows tr')].map(r => r.cells[1].innerText)") \
            == ["dist/svc-7-9987.zip"]
        assert page.evaluate("document.querySelectorAll('article.artifact').length") == 100  # the newest as cards
        assert _problems(page) == []
        shot = page.call("Page.captureScreenshot", format="png")
        (tmp_path / "dashboard-10k.png").write_bytes(base64.b64decode(shot["data"]))
