"""``DIR/report.html`` rendered by a real headless Chromium: every plot decodes to a non-empty
image, nothing is logged to the console as an error, and a screenshot is saved in the test's
temp dir.

Chromium is driven over the DevTools protocol (a WebSocket on 127.0.0.1) with the
``websockets`` client we already depend on. It is not skipped when Chromium is missing: the
test fails and says how to install it (``make test`` installs Debian's ``chromium``).
"""

from __future__ import annotations

import base64
import json
import queue
import re
import shutil
import struct
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from websockets.sync.client import ClientConnection, connect

from backtests.cli import main

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "config" / "demo.yaml"
SAMPLE = ROOT / "backtests" / "data" / "single.jsonl.gz"
PNG = b"\x89PNG\r\n\x1a\n"
#: Generous bounds for a loaded 2-core machine; they are deadlines, never synchronisation.
START_TIMEOUT_S = 60.0
STEP_TIMEOUT_S = 60.0
#: The flags /work/.library/env/machines/python.md lists as known to work here (as root, on a
#: closed network: no background connections, no sandbox, no GPU).
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--hide-scrollbars", "--window-size=1280,2400")


def _chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome", "chrome"):
        path = shutil.which(name)
        if path:
            return path
    pytest.fail("headless Chromium not found on PATH: `make test` installs Debian's chromium "
                "(as root: apt-get install chromium); this test does not skip")


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[str]:
    """A headless Chromium on 127.0.0.1; yields its browser DevTools WebSocket URL."""
    proc = subprocess.Popen(
        [_chromium(), *FLAGS, f"--user-data-dir={tmp_path / 'profile'}",
         "--remote-debugging-address=127.0.0.1", "--remote-debugging-port=0", "about:blank"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    assert proc.stderr is not None
    stderr = proc.stderr
    lines: queue.Queue[bytes] = queue.Queue()

    def drain() -> None:
        # Read stderr to its end, so a chatty Chromium never blocks on a full pipe.
        for line in stderr:
            lines.put(line)
        lines.put(b"")

    reader = threading.Thread(target=drain, name="chromium-stderr", daemon=True)
    reader.start()
    try:
        seen = b""
        while True:
            try:
                line = lines.get(timeout=START_TIMEOUT_S)
            except queue.Empty:
                pytest.fail(f"Chromium did not open DevTools in {START_TIMEOUT_S} s: {seen!r}")
            if not line:
                pytest.fail(f"Chromium exited ({proc.wait()}): {seen[-2000:]!r}")
            seen += line
            found = re.search(rb"DevTools listening on (ws://127\.0\.0\.1:\d+/\S+)", line)
            if found:
                break
        yield found.group(1).decode()
    finally:
        proc.kill()
        proc.wait()
        reader.join(timeout=STEP_TIMEOUT_S)
        stderr.close()


class _Cdp:
    """A minimal DevTools client: one browser connection, one flattened page session."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.events: list[dict[str, Any]] = []
        self._id = 0
        self.session: str | None = None

    def call(self, method: str, params: dict[str, Any] | None = None, *,
             session: bool = True) -> dict[str, Any]:
        self._id += 1
        msg: dict[str, Any] = {"id": self._id, "method": method, "params": params or {}}
        if session and self.session is not None:
            msg["sessionId"] = self.session
        self.ws.send(json.dumps(msg))
        while True:
            reply = json.loads(self.ws.recv(timeout=STEP_TIMEOUT_S))
            if reply.get("id") == self._id:
                assert "error" not in reply, (method, reply["error"])
                result: dict[str, Any] = reply["result"]
                return result
            self.events.append(reply)

    def wait_for(self, method: str) -> dict[str, Any]:
        for event in self.events:
            if event.get("method") == method:
                return event
        while True:
            event = json.loads(self.ws.recv(timeout=STEP_TIMEOUT_S))
            self.events.append(event)
            if event.get("method") == method:
                return event


def _png_size(data: bytes) -> tuple[int, int]:
    assert data.startswith(PNG)
    width, height = struct.unpack(">II", data[16:24])  # the IHDR chunk
    return width, height


def test_the_report_renders_in_headless_chromium_with_its_plots(
        browser: str, tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert main(["run", "--config", str(DEMO), "--input", str(SAMPLE), "--out", str(out),
                 "--no-progress"]) == 0
    page = out / "report.html"
    with connect(browser, max_size=64 * 2**20, open_timeout=STEP_TIMEOUT_S) as ws:
        cdp = _Cdp(ws)
        target = cdp.call("Target.createTarget", {"url": "about:blank"}, session=False)
        attached = cdp.call("Target.attachToTarget",
                            {"targetId": target["targetId"], "flatten": True}, session=False)
        cdp.session = attached["sessionId"]
        for domain in ("Page", "Runtime", "Log"):
            cdp.call(f"{domain}.enable")
        cdp.call("Page.navigate", {"url": page.as_uri()})
        cdp.wait_for("Page.loadEventFired")
        probe = cdp.call("Runtime.evaluate", {"awaitPromise": True, "returnByValue": True,
                                              "expression": """(async () => {
            const imgs = [...document.querySelectorAll('img.plot')];
            await Promise.all(imgs.map(i => i.decode()));
            return {title: document.title, tables: document.querySelectorAll('table').length,
                    images: imgs.map(i => ({alt: i.alt, w: i.naturalWidth, h: i.naturalHeight,
                                            shown: i.getBoundingClientRect().width}))};
        })()"""})
        assert "exceptionDetails" not in probe, probe
        shot = cdp.call("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True})
    info = probe["result"]["value"]
    images = info["images"]
    assert [i["alt"] for i in images] == [
        "PnL over time", "Fills: contracts filled over time",
        "Markouts by horizon (against the mid)",
        "Markouts by horizon (against the mid and against our fair)",
        "Inventory over time", "Worst-case exposure over time",
        "Win rate against our edge over the mid",
        "Latency: RFQ to quote and accept to confirm (virtual time)",
        "Latency: round trips by request type"]
    for image in images:
        assert image["w"] > 100, image  # decoded by the browser, a real plot's size
        assert image["h"] > 100, image
        assert image["shown"] > 0, image  # laid out on the page, not hidden
    assert info["tables"] >= 1
    errors = [e for e in cdp.events if e.get("method") == "Runtime.exceptionThrown"
              or (e.get("method") == "Runtime.consoleAPICalled"
                  and e["params"]["type"] in ("error", "assert"))
              or (e.get("method") == "Log.entryAdded"
                  and e["params"]["entry"]["level"] == "error")]
    assert errors == []
    png = base64.b64decode(shot["data"])
    screenshot = tmp_path / "report.png"
    screenshot.write_bytes(png)
    width, height = _png_size(png)
    assert width >= 800
    assert height > 1_000  # the whole page: figures, tables, plots below the fold
