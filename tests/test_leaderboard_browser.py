"""The leaderboard page in headless Chromium: a header click sorts, a category tab opens, the page renders.

Chromium is driven through the DevTools protocol over ``--remote-debugging-pipe`` (JSON messages
separated by NUL bytes on file descriptors 3 and 4), so no driver package is needed.  Without a
``chromium`` binary the test skips and says how to enable it; CI (``.ci/run``) installs Debian's
``chromium`` first, so there it runs.
"""
from __future__ import annotations

import base64
import io
import json
import os
import select
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from javisbench.cli import main
from test_leaderboard import make_submission, weightless, write

REPO = Path(__file__).resolve().parent.parent


def _chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        exe = shutil.which(name)
        if exe:
            return exe
    return None


needs_chromium = pytest.mark.skipif(
    _chromium() is None,
    reason="headless Chromium not found: install it to run the browser tests (Debian/Ubuntu: apt-get install -y "
           "chromium); .ci/run installs it in CI")


class Browser:
    """A headless Chromium page driven over the DevTools pipe."""

    def __init__(self, exe: str, profile: Path, log: Path, width: int = 1280, height: int = 1600) -> None:
        cmd_r, self._cmd_w = os.pipe()       # we write commands; Chromium reads fd 3
        self._res_r, res_w = os.pipe()       # Chromium writes fd 4; we read
        args = [exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--remote-debugging-pipe",
                "--no-first-run", "--no-default-browser-check", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--disable-extensions", f"--user-data-dir={profile}",
                "about:blank"]
        self._log = log.open("wb")
        self.proc = subprocess.Popen([shutil.which("bash") or "/bin/bash", "-c", f'exec "$0" "$@" 3<&{cmd_r} 4>&{res_w} {cmd_r}<&- {res_w}>&-', *args],
                                     pass_fds=(cmd_r, res_w), stdin=subprocess.DEVNULL, stdout=self._log, stderr=self._log)
        os.close(cmd_r)
        os.close(res_w)
        self._buf = b""
        self._id = 0
        self.events: list[dict[str, Any]] = []
        target = self.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        self.session = self.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        self.send("Page.enable", session=True)
        self.send("Emulation.setDeviceMetricsOverride",
                  {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False}, session=True)

    def _read_message(self, deadline: float) -> dict[str, Any]:
        while b"\0" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self._res_r], [], [], left)[0]:
                raise TimeoutError("no answer from Chromium")
            chunk = os.read(self._res_r, 1 << 20)
            if not chunk:
                raise RuntimeError(f"Chromium closed the pipe (exit {self.proc.poll()})")
            self._buf += chunk
        msg, self._buf = self._buf.split(b"\0", 1)
        return json.loads(msg)

    def send(self, method: str, params: dict[str, Any] | None = None, session: bool = False, timeout: float = 60) -> dict[str, Any]:
        self._id += 1
        msg: dict[str, Any] = {"id": self._id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = self.session
        os.write(self._cmd_w, json.dumps(msg).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            m = self._read_message(deadline)
            if m.get("id") == self._id:
                if "error" in m:
                    raise RuntimeError(f"{method}: {m['error']}")
                return m.get("result", {})
            self.events.append(m)

    def wait_event(self, method: str, timeout: float = 60) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            for i, e in enumerate(self.events):
                if e.get("method") == method:
                    return self.events.pop(i)
            self.events.append(self._read_message(deadline))

    def open(self, url: str) -> None:
        self.events.clear()
        self.send("Page.navigate", {"url": url}, session=True)
        self.wait_event("Page.loadEventFired")

    def js(self, expression: str) -> Any:
        r = self.send("Runtime.evaluate", {"expression": expression, "returnByValue": True}, session=True)
        if "exceptionDetails" in r:
            raise RuntimeError(f"{expression}: {r['exceptionDetails']}")
        return r["result"].get("value")

    def click(self, selector: str) -> None:
        """A real mouse click (press + release) at the centre of the element."""
        box = self.js(f"(function(){{var e=document.querySelector({json.dumps(selector)}); e.scrollIntoView({{block:'center'}});"
                      "var r=e.getBoundingClientRect(); return [r.left+r.width/2, r.top+r.height/2, r.width, r.height];})()")
        assert box[2] > 0 and box[3] > 0, f"{selector} is not visible"
        for kind in ("mousePressed", "mouseReleased"):
            self.send("Input.dispatchMouseEvent", {"type": kind, "x": box[0], "y": box[1], "button": "left", "clickCount": 1},
                      session=True)

    def screenshot(self) -> np.ndarray:
        from PIL import Image

        data = base64.b64decode(self.send("Page.captureScreenshot", {"format": "png"}, session=True)["data"])
        return np.asarray(Image.open(io.BytesIO(data)).convert("RGB")).astype(np.int16)

    def close(self) -> None:
        try:
            self.send("Browser.close", timeout=10)
        except (RuntimeError, TimeoutError, OSError):
            pass
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        for fd in (self._cmd_w, self._res_r):
            try:
                os.close(fd)
            except OSError:
                pass
        self._log.close()


@pytest.fixture()
def browser(tmp_path: Path):  # noqa: ANN201
    exe = _chromium()
    assert exe is not None
    b = Browser(exe, tmp_path / "profile", tmp_path / "chromium.log")
    try:
        yield b
    finally:
        b.close()


# (name, family, overall value of the first weight-free metric, its value in category "urban")
ENTRIES = [("delta", "T2AV", 0.42, 0.10), ("alpha", "T2A+A2V", 0.81, 0.30), ("charlie", "T2V+V2A", 0.15, 0.90),
           ("bravo", "T2AV", 0.63, 0.50)]


@needs_chromium
def test_leaderboard_page_sorts_opens_tabs_and_renders(browser: Browser, tmp_path: Path) -> None:
    from javisbench.suite import METRICS

    w0 = weightless()[0]
    board = tmp_path / "board"
    for name, fam, v, urban in ENTRIES:
        sub = make_submission(name, values={w0: (v, v - 0.01, v + 0.01)}, family=fam,
                              categories={"natural": {}, "urban": {w0: urban - v}})
        assert main(["leaderboard", "add", str(write(sub, tmp_path / f"{name}.json")), "--out", str(board)]) == 0
    assert main(["leaderboard", "build", "--out", str(board), "--reported-dir", str(REPO / "leaderboard" / "reported")]) == 0
    browser.open((board / "index.html").resolve().as_uri())
    assert browser.js("document.title") == "javisbench leaderboard"

    def column(table: str, col: int) -> list[str]:
        return browser.js(f"Array.from(document.querySelectorAll('#{table} tbody tr')).map(r => r.cells[{col}].textContent)")

    def values(table: str, col: int) -> list[str]:
        return browser.js(f"Array.from(document.querySelectorAll('#{table} tbody tr')).map(r => r.cells[{col}].getAttribute('data-v'))")

    names = column("g1-t0", 1)
    assert names == ["alpha", "charlie", "bravo", "delta"]           # family order, then name
    head = browser.js("Array.from(document.querySelectorAll('#g1-t0 thead th')).map(h => h.textContent)")
    col = head.index(f"{w0} {METRICS[w0].arrow}")
    best_first = sorted(ENTRIES, key=lambda e: -e[2] if METRICS[w0].higher_is_better else e[2])
    # a click on the metric's header: best first
    browser.click(f"#g1-t0 thead th:nth-child({col + 1})")
    assert column("g1-t0", 1) == [e[0] for e in best_first]
    assert browser.js(f"document.querySelector('#g1-t0 thead th:nth-child({col + 1})').getAttribute('aria-sort')") in (
        "ascending", "descending")
    # a second click reverses
    browser.click(f"#g1-t0 thead th:nth-child({col + 1})")
    assert column("g1-t0", 1) == [e[0] for e in reversed(best_first)]
    # the model column sorts by name
    browser.click("#g1-t0 thead th:nth-child(2)")
    assert column("g1-t0", 1) == sorted(e[0] for e in ENTRIES)
    # the family column sorts in the papers' order, not alphabetically
    browser.click("#g1-t0 thead th:nth-child(1)")
    assert column("g1-t0", 0) == ["T2A+A2V", "T2V+V2A", "T2AV", "T2AV"]

    # the category tab "urban": its panel shows, the overall panel hides, values are the category's
    tabs = browser.js("Array.from(document.querySelectorAll('#g1 [role=tab]')).map(t => t.textContent)")
    assert tabs[0] == "Overall" and "event_scenario: urban" in tabs
    i = tabs.index("event_scenario: urban")
    assert browser.js(f"document.getElementById('g1-p{i}').hidden") is True
    browser.click(f"#g1-tab{i}")
    assert browser.js(f"document.getElementById('g1-p{i}').hidden") is False
    assert browser.js("document.getElementById('g1-p0').hidden") is True
    assert browser.js(f"document.getElementById('g1-tab{i}').getAttribute('aria-selected')") == "true"
    shown = dict(zip(column(f"g1-t{i}", 1), map(float, values(f"g1-t{i}", col))))
    assert shown == pytest.approx({e[0]: e[3] for e in ENTRIES}, abs=1e-12)
    browser.click(f"#g1-t{i} thead th:nth-child({col + 1})")
    urban_best = sorted(ENTRIES, key=lambda e: -e[3] if METRICS[w0].higher_is_better else e[3])
    assert column(f"g1-t{i}", 1) == [e[0] for e in urban_best]
    # a reported table sorts too (FVD: lower is better, so the first click puts the lowest first)
    fvd = browser.js("Array.from(document.querySelectorAll('#r4-t thead th')).map(h => h.textContent)").index("fvd ↓")
    browser.click(f"#r4-t thead th:nth-child({fvd + 1})")
    got = values("r4-t", fvd)
    nums = [float(x) for x in got if x != ""]
    assert len(nums) >= 3 and nums == sorted(nums) and got[len(nums):] == [""] * (len(got) - len(nums))

    # radar charts drawn, one per measured model, and the page is not blank
    assert browser.js("Array.from(document.querySelectorAll('#g1 figure.radar svg'))"
                      ".filter(s => s.getBoundingClientRect().width > 100).length") == len(ENTRIES)
    browser.js("window.scrollTo(0, 0)")
    img = browser.screenshot()
    assert img.shape == (1600, 1280, 3)
    non_white = (img.min(axis=2) < 235).mean()
    assert img.std() > 20 and non_white > 0.03, (img.std(), non_white)
    # the tables' header colour is on screen
    th = (np.abs(img - np.array([0xee, 0xf1, 0xf6])).max(axis=2) <= 2).mean()
    assert th > 0.001, th
