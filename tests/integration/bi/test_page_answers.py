"""What the mediamon page and the unsubscribe page answer besides their pages, over real
HTTP (uvicorn, the apps mounted as the Airflow plugin mounts them): an address or a method
they do not serve gets a small page with the headers of every other page (before:
FastAPI's bare JSON, without Content-Security-Policy, nosniff or Referrer-Policy), and a
burst of readers past the page's threads and queue is told at once that it is busy
(before: queued without bound)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

import requests
import sqlalchemy as sa
import uvicorn
from fastapi import FastAPI

from mediamon.bi import serving
from mediamon.bi.unsubscribe_page import make_unsubscribe_app
from mediamon.bi.webapp import SECURITY_HEADERS, make_app
from tests.support.smtp_server import free_port

# The headers every page of both apps sends (the unsubscribe page's CSP differs).
SHARED = ("Content-Security-Policy", "X-Content-Type-Options", "Referrer-Policy", "Cache-Control")


@contextmanager
def mounted(apps: Mapping[str, FastAPI]) -> Iterator[str]:
    """``apps`` mounted at their paths on a free loopback port; the base URL."""
    root = FastAPI()
    for path, app in apps.items():
        root.mount(path, app)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(root, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def _headers(answer: requests.Response) -> dict[str, str]:
    return {name: answer.headers.get(name, "(missing)") for name in SHARED}


def test_unknown_addresses_and_methods_get_a_page_with_the_pages_headers(
    engine: sa.Engine,
) -> None:
    apps = {
        "/mediamon": make_app(lambda: engine),
        "/mediamon-unsubscribe": make_unsubscribe_app(lambda: engine, lambda: ("k" * 32,)),
    }
    with mounted(apps) as url:
        page = requests.get(f"{url}/mediamon/", timeout=30)
        # A token not made with the key: the unsubscribe page's own 403 page.
        refusal = requests.get(f"{url}/mediamon-unsubscribe/?t=x", timeout=30)
        assert page.status_code == 200 and refusal.status_code == 403
        assert all(page.headers[name] == value for name, value in SECURITY_HEADERS.items())
        for normal, path, method, status, says in (
            (page, "/mediamon/nothing-here", "GET", 404, "no page at this address"),
            (page, "/mediamon/", "POST", 405, "requests, not POST"),
            (page, "/mediamon/", "DELETE", 405, "requests, not DELETE"),
            (refusal, "/mediamon-unsubscribe/nothing-here", "GET", 404, "no page at this"),
            (refusal, "/mediamon-unsubscribe/alerts", "PUT", 405, "requests, not PUT"),
        ):
            answer = requests.request(method, url + path, timeout=30)
            assert answer.status_code == status, (method, path, answer.text[:200])
            assert answer.headers["Content-Type"].startswith("text/html"), (path, answer.text)
            assert _headers(answer) == _headers(normal), (method, path)
            assert says in answer.text and "<!doctype html>" in answer.text.lower(), answer.text
            if status == 405:
                allowed = {m.strip() for m in answer.headers["Allow"].split(",")}
                assert {"GET", "HEAD"} <= allowed, answer.headers
                assert f"it takes only {answer.headers['Allow']} requests" in answer.text
        head = requests.head(f"{url}/mediamon/nothing-here", timeout=30)
        assert head.status_code == 404 and head.content == b""
        assert _headers(head) == _headers(page)
        missing = requests.get(f"{url}/mediamon-unsubscribe/nothing-here", timeout=30)
        assert missing.headers["X-Robots-Tag"] == "noindex, nofollow"


def test_a_burst_past_the_pages_threads_and_queue_is_told_busy_at_once(
    engine: sa.Engine,
) -> None:
    """Every page thread held up (here: the first request's engine is slow to come, the
    others wait for it) and PAGE_QUEUE readers waiting: the next ones get 503 with
    ``Retry-After`` at once, those queued are served once the threads come free. Before:
    every reader of the burst was queued, however many."""
    release, asked = threading.Event(), threading.Event()

    def slow_engine() -> sa.Engine:
        asked.set()
        release.wait(60)
        return engine

    past = 5
    burst = serving.PAGE_THREADS + serving.PAGE_QUEUE + past
    answers: list[requests.Response] = []
    with mounted({"/mediamon": make_app(slow_engine)}) as url:
        first = threading.Thread(
            target=lambda: answers.append(requests.get(f"{url}/mediamon/", timeout=120))
        )
        first.start()
        assert asked.wait(30)
        readers = [
            threading.Thread(
                target=lambda: answers.append(requests.get(f"{url}/mediamon/", timeout=120))
            )
            for _ in range(burst - 1)
        ]
        try:
            for reader in readers:
                reader.start()
            deadline = time.monotonic() + 30
            while (
                sum(a.status_code == 503 for a in list(answers)) < past
                and time.monotonic() < deadline
            ):
                time.sleep(0.05)
            told_busy = [a for a in list(answers) if a.status_code == 503]
            # Before the threads came free: only the readers past the queue are answered.
            assert len(told_busy) == past == len(answers), [a.status_code for a in answers]
        finally:
            release.set()
            for thread in (first, *readers):
                thread.join(timeout=120)
    statuses = sorted(a.status_code for a in answers)
    assert statuses == [200] * (burst - past) + [503] * past, statuses
    busy = next(a for a in answers if a.status_code == 503)
    assert busy.headers["Retry-After"] == str(serving.BUSY_RETRY_S)
    assert all(busy.headers[name] == value for name, value in SECURITY_HEADERS.items())
    assert "more readers at once than this page serves" in busy.text
