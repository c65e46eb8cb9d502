"""A real browser for the tests: headless Chromium driven over the DevTools protocol.

Used by the demo's test (the Streamlit app) and the highlights report's (a page with a video
player). The `websockets` client comes with Streamlit; .ci/run installs Chromium, and the tests
that need it are skipped where it is missing.
"""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def wait_for(check, seconds: float, what: str):
    deadline = time.monotonic() + seconds
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < deadline, f"{what}: not within {seconds:g} s"
        time.sleep(0.5)


class DevTools:
    """A page of headless Chromium, driven over the DevTools protocol. The events that
    arrive (console messages, exceptions, dialogs: after `Runtime.enable`, `Log.enable`,
    `Page.enable`) are kept in `events`."""

    def __init__(self, socket) -> None:
        self.socket, self.ids, self.events = socket, 0, []

    def call(self, method: str, **params):
        self.ids += 1
        self.socket.send(json.dumps({"id": self.ids, "method": method, "params": params}))
        while True:
            reply = json.loads(self.socket.recv(timeout=60))
            if reply.get("id") == self.ids:
                assert "error" not in reply, reply
                return reply["result"]
            if "method" in reply:
                self.events.append(reply)

    def evaluate(self, expression: str, user_gesture: bool = False):
        """The expression's value; None if it threw (e.g. before the page's body exists)."""
        return self.call("Runtime.evaluate", expression=expression, returnByValue=True,
                         awaitPromise=True, userGesture=user_gesture)["result"].get("value")

    def click(self, x: float, y: float) -> None:
        """A real mouse click at viewport coordinates (x, y)."""
        for kind in ("mousePressed", "mouseReleased"):
            self.call("Input.dispatchMouseEvent", type=kind, x=x, y=y, button="left",
                      clickCount=1)

    def errors(self) -> list[str]:
        """Exceptions, console errors and error log entries seen so far."""
        out = []
        for ev in self.events:
            p = ev.get("params", {})
            if ev["method"] == "Runtime.exceptionThrown":
                out.append(json.dumps(p.get("exceptionDetails", {}))[:500])
            elif ev["method"] == "Runtime.consoleAPICalled" and p.get("type") == "error":
                out.append(json.dumps(p.get("args", []))[:500])
            elif ev["method"] == "Log.entryAdded" and p["entry"].get("level") == "error":
                out.append(p["entry"].get("text", ""))
            elif ev["method"] == "Page.javascriptDialogOpening":
                out.append(f"a dialog opened: {p.get('message')!r}")
        return out

    def screenshot(self, path: Path) -> Path:
        shot = self.call("Page.captureScreenshot", format="png")
        path.write_bytes(base64.b64decode(shot["data"]))
        return path


@contextmanager
def headless_chromium(profile: Path, width: int, height: int,
                      flags: tuple[str, ...] = ()) -> Iterator[DevTools]:
    """Headless Chromium with one page (`flags`: further command-line switches).

    `chromium --headless --screenshot --virtual-time-budget=...` fast-forwards the page's timers
    and here shot Streamlit's loading skeleton in 5 of 6 tries; over the DevTools protocol the
    test waits in real time until the app's text is on the page, then takes the screenshot.
    """
    from websockets.sync.client import connect

    process = subprocess.Popen(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
         "--remote-debugging-port=0", f"--user-data-dir={profile}",
         f"--window-size={width},{height}", *flags, "about:blank"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        active = profile / "DevToolsActivePort"
        port = wait_for(lambda: active.is_file() and active.read_text().split("\n")[0],
                        60, "Chromium's DevTools port")
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as r:
            page = next(t for t in json.loads(r.read()) if t["type"] == "page")
        with connect(page["webSocketDebuggerUrl"], max_size=2**26) as socket_:
            tools = DevTools(socket_)
            tools.call("Emulation.setDeviceMetricsOverride", width=width, height=height,
                       deviceScaleFactor=1, mobile=False)
            yield tools
    finally:
        process.terminate()
        process.wait(timeout=20)
