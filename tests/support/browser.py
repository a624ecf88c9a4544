"""Headless Debian Chromium driven over the DevTools protocol (websockets, no Selenium):
set a cookie the way a login does, open a page, read the rendered DOM, take a full-page
screenshot. Used by the page test."""

from __future__ import annotations

import base64
import itertools
import json
import re
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import requests
from websockets.sync.client import connect


def chromium() -> str:
    """Debian's chromium (``make test`` installs it); its absence fails the test."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if not found:
        pytest.fail("chromium is not installed: `make test` installs it (apt-get install chromium)")
    return found


class Tab:
    """One page target of a running headless Chromium."""

    def __init__(self, websocket: Any) -> None:
        self._ws = websocket
        self._ids = itertools.count(1)

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        """Send one command and return its result (events on the way are skipped)."""
        number = next(self._ids)
        self._ws.send(json.dumps({"id": number, "method": method, "params": params}))
        while True:
            message = json.loads(self._ws.recv(timeout=120))
            if message.get("id") == number:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return dict(message.get("result", {}))

    def open(self, url: str, timeout: float = 60) -> None:
        """Navigate and wait until the document has loaded."""
        self.call("Page.navigate", url=url)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            state = self.evaluate("document.readyState + ' ' + location.href")
            if state.startswith("complete ") and not state.endswith("about:blank"):
                return
            time.sleep(0.2)
        raise TimeoutError(f"{url} did not load within {timeout} s")

    def evaluate(self, expression: str) -> Any:
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        return result["result"].get("value")

    def screenshot(self, path: Path, width: int = 1280) -> None:
        """A full-page PNG at ``width`` CSS pixels."""
        height = int(self.evaluate("document.documentElement.scrollHeight"))
        self.call(
            "Emulation.setDeviceMetricsOverride",
            width=width,
            height=height,
            deviceScaleFactor=1,
            mobile=False,
        )
        shot = self.call("Page.captureScreenshot", format="png", captureBeyondViewport=True)
        path.write_bytes(base64.b64decode(shot["data"]))


@contextmanager
def headless_chromium(profile: Path) -> Iterator[Tab]:
    """Start Chromium on a DevTools port on 127.0.0.1 and yield its first tab."""
    process = subprocess.Popen(
        [
            chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
            "--remote-debugging-address=127.0.0.1", "--remote-debugging-port=0",
            f"--user-data-dir={profile}", "--window-size=1280,900", "about:blank",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        assert process.stderr is not None
        endpoint = None
        for line in process.stderr:
            found = re.search(r"DevTools listening on ws://([\d.]+:\d+)/", line)
            if found:
                endpoint = found.group(1)
                break
        assert endpoint, "chromium did not open its DevTools port"
        # keep reading its log, or chromium blocks once the pipe is full
        threading.Thread(target=process.stderr.read, daemon=True).start()
        targets = requests.get(f"http://{endpoint}/json/list", timeout=30).json()
        page = next(t for t in targets if t["type"] == "page")
        with connect(page["webSocketDebuggerUrl"], max_size=64 * 2**20) as websocket:
            tab = Tab(websocket)
            tab.call("Page.enable")
            tab.call("Network.enable")
            yield tab
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
