"""What the mediamon page and the unsubscribe page answer besides their pages, over real
HTTP (uvicorn, the apps mounted as the Airflow plugin mounts them): an address or a method
they do not serve gets a small page with the headers of every other page (before:
FastAPI's bare JSON, without Content-Security-Policy, nosniff or Referrer-Policy), and a
burst of readers past the page's threads and queue is told at once that it is busy
(before: queued without bound)."""

from __future__ import annotations

import threading
import time

import requests
import sqlalchemy as sa

from mediamon.alerts.unsubscribe import sign
from mediamon.bi import serving
from mediamon.bi.unsubscribe_page import PAGE_HEADERS, make_unsubscribe_app
from mediamon.bi.webapp import SECURITY_HEADERS, make_app
from mediamon.db import make_engine
from tests.support.asgi_server import serve_apps

# The headers every page of both apps sends (the unsubscribe page's CSP differs).
SHARED = ("Content-Security-Policy", "X-Content-Type-Options", "Referrer-Policy", "Cache-Control")


def _headers(answer: requests.Response) -> dict[str, str]:
    return {name: answer.headers.get(name, "(missing)") for name in SHARED}


def test_unknown_addresses_and_methods_get_a_page_with_the_pages_headers(
    engine: sa.Engine,
) -> None:
    apps = {
        "/mediamon": make_app(lambda: engine),
        "/mediamon-unsubscribe": make_unsubscribe_app(lambda: engine, lambda: ("k" * 32,)),
    }
    with serve_apps(apps) as url:
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


def test_an_unexpected_error_gets_a_page_with_the_pages_headers() -> None:
    """An error the page does not expect (here the api-server's database URL has a port
    that is no number: ValueError from the engine) was Starlette's bare
    ``Internal Server Error`` as text/plain without the page's headers; the traceback
    stays in the server's log, not on the page."""
    apps = {
        "/mediamon": make_app(lambda: make_engine("postgresql://127.0.0.1:notaport/x")),
        "/mediamon-unsubscribe": make_unsubscribe_app(
            lambda: make_engine("postgresql://127.0.0.1:notaport/x"), lambda: ("k" * 32,)
        ),
    }
    link = f"/mediamon-unsubscribe/?t={sign(['k' * 32], 'desk@example.org', 'taiwan')}"
    with serve_apps(apps) as url:
        for path, headers in (("/mediamon/", SECURITY_HEADERS), (link, PAGE_HEADERS)):
            answer = requests.get(url + path, timeout=30)
            assert answer.status_code == 500, (path, answer.text[:200])
            assert answer.headers["Content-Type"].startswith("text/html"), answer.text
            assert all(answer.headers.get(k) == v for k, v in headers.items()), answer.headers
            assert serving.SERVER_FAILED in answer.text and "notaport" not in answer.text


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
    with serve_apps({"/mediamon": make_app(slow_engine)}) as url:
        answers, first = _burst(f"{url}/mediamon/", 1)
        assert asked.wait(30)
        more, readers = _burst(f"{url}/mediamon/", burst - 1)
        try:
            told_busy = _until_busy(more, past)
            # Before the threads came free: only the readers past the queue are answered.
            assert len(told_busy) == past == len(answers + more), [a.status_code for a in more]
        finally:
            release.set()
            for thread in first + readers:
                thread.join(timeout=120)
        answers += more
    statuses = sorted(a.status_code for a in answers)
    assert statuses == [200] * (burst - past) + [503] * past, statuses
    busy = next(a for a in answers if a.status_code == 503)
    assert busy.headers["Retry-After"] == str(serving.BUSY_RETRY_S)
    assert all(busy.headers[name] == value for name, value in SECURITY_HEADERS.items())
    assert "more readers at once than this page serves" in busy.text


def _burst(url: str, readers: int) -> tuple[list[requests.Response], list[threading.Thread]]:
    """``readers`` GETs of ``url`` at once, each on a thread of its own."""
    answers: list[requests.Response] = []
    threads = [
        threading.Thread(target=lambda: answers.append(requests.get(url, timeout=120)))
        for _ in range(readers)
    ]
    for thread in threads:
        thread.start()
    return answers, threads


def _until_busy(answers: list[requests.Response], count: int) -> list[requests.Response]:
    """The 503 answers once ``count`` came, or after 30 s."""
    deadline = time.monotonic() + 30
    while sum(a.status_code == 503 for a in list(answers)) < count:
        if time.monotonic() > deadline:
            break
        time.sleep(0.05)
    return [a for a in list(answers) if a.status_code == 503]


def test_unsubscribe_readers_past_the_queue_are_told_busy_at_once(engine: sa.Engine) -> None:
    """The unsubscribe page (no login: anyone with a mail's link) shares the bound: every
    thread waiting for a locked ``mail_subscriptions``, PAGE_QUEUE readers queued, the
    next told 503 at once on the page's own page, its ``X-Robots-Tag`` included."""
    key = "k" * 32
    pooled = make_engine(
        engine.url.render_as_string(hide_password=False),
        pool_size=serving.PAGE_THREADS,
        max_overflow=0,
        pool_timeout=60,
    )
    link = f"/mediamon-unsubscribe/?t={sign([key], 'desk@example.org', 'taiwan')}"
    past = 5
    app = make_unsubscribe_app(lambda: pooled, lambda: (key,))
    try:
        with serve_apps({"/mediamon-unsubscribe": app}) as url, engine.connect() as holder:
            holder.exec_driver_sql("lock table mail_subscriptions in access exclusive mode")
            answers, readers = _burst(url + link, serving.PAGE_THREADS + serving.PAGE_QUEUE + past)
            try:
                told_busy = _until_busy(answers, past)
                assert len(told_busy) == past == len(answers), [a.status_code for a in answers]
            finally:
                holder.rollback()
                for reader in readers:
                    reader.join(timeout=120)
    finally:
        pooled.dispose()
    statuses = sorted(a.status_code for a in answers)
    assert statuses == [200] * (serving.PAGE_THREADS + serving.PAGE_QUEUE) + [503] * past
    busy = next(a for a in answers if a.status_code == 503)
    assert busy.headers["Retry-After"] == str(serving.BUSY_RETRY_S)
    assert all(busy.headers[name] == value for name, value in PAGE_HEADERS.items())
    assert "more readers at once than this page serves" in busy.text
