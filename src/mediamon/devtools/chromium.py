"""Headless Debian chromium for what people look at (a page, a rendered mail, the Superset
dashboard): the tests and ``make superset-check`` drive it.

A small DevTools-protocol client over ``websockets`` (a dev dependency): start
``chromium --headless`` on a free port with its own profile, open a page at a given
viewport width, evaluate JavaScript (layout facts such as ``scrollWidth`` need it) and
save full-page screenshots. Chromium missing is a failure, not a skip: ``make test``
installs it (the ``browser`` target).

    with Chromium() as browser:
        page = browser.open(path.as_uri(), width=390)
        assert page.evaluate("document.documentElement.scrollWidth") <= 390
        page.screenshot(ARTIFACTS / "mail-390.png")
"""

from __future__ import annotations

import base64
import itertools
import json
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

from websockets.sync.client import ClientConnection, connect

CANDIDATES = ("chromium", "chromium-browser", "google-chrome")
START_TIMEOUT_S = 30.0
CALL_TIMEOUT_S = 30.0


class ChromiumMissing(RuntimeError):
    """No chromium to start."""


def chromium_path() -> str:
    """The chromium executable (``MEDIAMON_CHROMIUM`` or the first on PATH).

    Raises:
        ChromiumMissing: there is none.
    """
    configured = os.environ.get("MEDIAMON_CHROMIUM")
    for name in (configured,) if configured else CANDIDATES:
        found = shutil.which(name)
        if found:
            return found
    raise ChromiumMissing("chromium is not installed: run `make browser` (Debian package chromium)")


class Page:
    """One browser tab, through its own DevTools connection."""

    def __init__(self, socket: ClientConnection) -> None:
        self._socket = socket
        self._ids = itertools.count(1)
        self.events: list[dict[str, Any]] = []

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        """Send one command and wait for its answer (events meanwhile are kept)."""
        message_id = next(self._ids)
        self._socket.send(json.dumps({"id": message_id, "method": method, "params": params}))
        deadline = time.monotonic() + CALL_TIMEOUT_S
        while True:
            reply = json.loads(self._socket.recv(timeout=max(0.1, deadline - time.monotonic())))
            if reply.get("id") == message_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return dict(reply.get("result", {}))
            self.events.append(reply)

    def wait_for(self, event: str) -> dict[str, Any]:
        """Wait for the next ``event`` (or return one that already came)."""
        deadline = time.monotonic() + CALL_TIMEOUT_S
        while True:
            for index, seen in enumerate(self.events):
                if seen.get("method") == event:
                    return dict(self.events.pop(index).get("params", {}))
            self.events.append(
                json.loads(self._socket.recv(timeout=max(0.1, deadline - time.monotonic())))
            )

    def evaluate(self, expression: str) -> Any:
        """The JSON value of a JavaScript expression in the page."""
        result = self.call(
            "Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True
        )
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression!r}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def resize(self, width: int, height: int) -> None:
        """Make the viewport ``width`` × ``height`` CSS pixels (desktop emulation)."""
        self.call(
            "Emulation.setDeviceMetricsOverride",
            width=width,
            height=height,
            deviceScaleFactor=1,
            mobile=False,
        )

    def viewport_screenshot(self, path: Path) -> Path:
        """Save what the viewport shows as PNG at ``path``: for pages that draw again when
        resized (Superset's charts do), where :meth:`screenshot`'s capture beyond the
        viewport catches them blank; :meth:`resize` to the page's height first."""
        shot = self.call("Page.captureScreenshot", format="png")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(shot["data"]))
        return path

    def screenshot(self, path: Path) -> Path:
        """Save the whole page (not only the viewport) as PNG at ``path``."""
        metrics = self.call("Page.getLayoutMetrics")
        size = metrics["cssContentSize"]
        shot = self.call(
            "Page.captureScreenshot",
            format="png",
            captureBeyondViewport=True,
            clip={"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1},
        )
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(shot["data"]))
        return path


class Chromium:
    """A headless chromium process with a throw-away profile."""

    def __init__(self) -> None:
        # Twice at most: on a loaded machine chromium now and then exits at start-up
        # before it opens its DevTools port (a CI run lost a mail's check to it); a
        # second failure is reported with chromium's own last words.
        for attempt in (1, 2):
            self._profile = tempfile.mkdtemp(prefix="mediamon-chromium-")
            self._sockets = ExitStack()
            self._process = self._launch()
            port = self._wait_for_port()
            if port is not None:
                self.port = port
                return
            status, said = self._process.poll(), self._last_words()
            self.close()
            if attempt == 2 or status is None:  # still running after the timeout: no retry
                raise RuntimeError(
                    f"chromium did not start (no DevToolsActivePort; exit status {status}): {said}"
                )

    def _launch(self) -> subprocess.Popen[bytes]:
        command = [
            chromium_path(),
            "--headless",
            "--disable-gpu",
            "--no-first-run",
            "--no-default-browser-check",
            "--remote-debugging-address=127.0.0.1",
            "--remote-debugging-port=0",
            f"--user-data-dir={self._profile}",
            "about:blank",
        ]
        if os.geteuid() == 0:
            command.insert(1, "--no-sandbox")  # chromium refuses to run as root otherwise
        with open(Path(self._profile) / "stderr.log", "wb") as stderr:
            return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=stderr)

    def _wait_for_port(self) -> int | None:
        """The DevTools port, or None when chromium exited or START_TIMEOUT_S passed."""
        marker = Path(self._profile) / "DevToolsActivePort"
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if marker.exists() and marker.read_text().strip():
                return int(marker.read_text().split()[0])
            if self._process.poll() is not None:
                return None
            time.sleep(0.05)
        return None

    def _last_words(self) -> str:
        try:
            lines = (Path(self._profile) / "stderr.log").read_text("utf-8", "replace").splitlines()
        except OSError:
            return "(no output)"
        return " | ".join(line.strip() for line in lines[-3:] if line.strip()) or "(no output)"

    def open(
        self,
        url: str,
        *,
        width: int,
        height: int = 900,
        scale: float = 1,
        cookies: Sequence[Mapping[str, Any]] = (),
    ) -> Page:
        """A new tab showing ``url`` at a viewport ``width`` CSS pixels wide (phone
        emulation below 600 px), once the page has loaded; ``cookies`` (DevTools'
        ``Network.setCookie`` parameters: name, value, url) are set before it is asked for,
        so a logged-in session's cookie opens a page behind a login."""
        with connect(self._browser_url(), max_size=None) as browser:
            browser_page = Page(browser)
            target = browser_page.call("Target.createTarget", url="about:blank")["targetId"]
        socket = self._sockets.enter_context(
            connect(f"ws://127.0.0.1:{self.port}/devtools/page/{target}", max_size=None)
        )
        page = Page(socket)
        page.call(
            "Emulation.setDeviceMetricsOverride",
            width=width,
            height=height,
            deviceScaleFactor=scale,
            mobile=width < 600,
        )
        for cookie in cookies:
            page.call("Network.setCookie", **cookie)
        page.call("Page.enable")
        page.call("Page.navigate", url=url)
        page.wait_for("Page.loadEventFired")
        return page

    def _browser_url(self) -> str:
        marker = Path(self._profile) / "DevToolsActivePort"
        path = marker.read_text().split()[1]
        return f"ws://127.0.0.1:{self.port}{path}"

    def close(self) -> None:
        self._sockets.close()
        if self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        shutil.rmtree(self._profile, ignore_errors=True)

    def __enter__(self) -> Chromium:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@contextmanager
def chromium() -> Iterator[Chromium]:
    browser = Chromium()
    try:
        yield browser
    finally:
        browser.close()
