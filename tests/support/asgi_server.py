"""An ASGI app served by uvicorn in a thread on a free loopback port, mounted at the
path the Airflow plugin gives it: the page as a browser or a mail's link reaches it,
without starting the whole api-server."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager

import uvicorn
from fastapi import FastAPI
from starlette.types import ASGIApp

from tests.support.smtp_server import free_port

START_TIMEOUT_S = 30


def serve_app(path: str, app: ASGIApp) -> AbstractContextManager[str]:
    """``app`` mounted at ``path`` on 127.0.0.1; yields the base URL (without ``path``)."""
    return serve_apps({path: app})


@contextmanager
def serve_apps(apps: Mapping[str, ASGIApp]) -> Iterator[str]:
    """Each app mounted at its path on one free loopback port; yields the base URL."""
    root = FastAPI()
    for path, app in apps.items():
        root.mount(path, app)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(root, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + START_TIMEOUT_S
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
