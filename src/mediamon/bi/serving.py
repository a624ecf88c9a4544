"""What the api-server's mediamon apps (the page, the unsubscribe page) share: one engine
made at the first request, a bound on the api-server threads their blocking work takes
and on the readers waiting for one, and their error answers (404, 405, 503) as pages
with the apps' own headers. Nothing here imports Airflow."""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from typing import TypeVar

import anyio
import anyio.to_thread
import sqlalchemy as sa
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse
from starlette.exceptions import HTTPException

T = TypeVar("T")

# Threads an app's blocking work runs on at once, fewer than the connection pool holds
# (5 + 10): the api-server's thread pool (anyio's, 40) is Airflow's too, its health check
# and UI included; readers held up by a locked table or a busy database took every thread.
PAGE_THREADS = 10
# Readers that may wait for one of those threads: past them a reader is told at once that
# the page is busy (503), not queued. Without a bound a burst was queued whole, and each
# reader's queries ran when its turn came, long after it had given up (500 readers of a
# page taking 1 s: 50 s of queries for the last, every one of them still run).
PAGE_QUEUE = 40
BUSY_RETRY_S = 10
SERVER_FAILED = "it failed on the server (the api-server log says why)"


class PagesBusy(HTTPException):
    """Every page thread is taken and :data:`PAGE_QUEUE` readers wait for one."""

    def __init__(self) -> None:
        super().__init__(
            503,
            "more readers at once than this page serves; try again in a few seconds",
            headers={"Retry-After": str(BUSY_RETRY_S)},
        )


class LazyEngine:
    """The engine ``factory`` makes, made once, at the first call: the api-server imports
    plugins before any database is needed. A mounted app gets no lifespan events, so its
    connections close with the api-server's process."""

    def __init__(self, factory: Callable[[], sa.Engine]) -> None:
        self._factory = factory
        self._lock = threading.Lock()
        self._engine: sa.Engine | None = None

    def __call__(self) -> sa.Engine:
        with self._lock:
            if self._engine is None:
                self._engine = self._factory()
            return self._engine


class BoundedThreads:
    """Runs blocking calls off the event loop on at most ``threads`` threads: a request
    past them waits for one without holding any, up to ``queue`` of them; past those,
    :class:`PagesBusy` (the apps answer 503 with ``Retry-After``)."""

    def __init__(self, threads: int = PAGE_THREADS, queue: int = PAGE_QUEUE) -> None:
        self._limiter = anyio.CapacityLimiter(threads)
        self._most = threads + queue
        self._admitted = 0  # running or waiting for a thread

    async def run(self, call: Callable[..., T], *args: object) -> T:
        # Counted, not read off the limiter: run_sync yields to the event loop before it
        # takes a token, so requests checked meanwhile all saw a free one (a burst of 55
        # let 51 in). Checked and counted with no await between, on the loop's one thread.
        if self._admitted >= self._most:
            raise PagesBusy()
        self._admitted += 1
        try:
            return await anyio.to_thread.run_sync(call, *args, limiter=self._limiter)
        finally:
            self._admitted -= 1


def answer_errors_with_pages(
    app: FastAPI, page: Callable[[int, str], str], headers: Mapping[str, str]
) -> None:
    """Have ``app`` answer every HTTP error (an address it does not serve: 404; a method it
    does not take: 405; :class:`PagesBusy`; a refusal by a dependency, such as Airflow's
    login) with ``page(status, message)`` and ``headers``, as its other pages, plus the
    error's own (``Allow``, ``Retry-After``, ``WWW-Authenticate``). FastAPI's default is
    bare JSON without the apps' Content-Security-Policy, nosniff or Referrer-Policy.
    An unexpected error (a database URL with a bad port in the api-server's settings)
    gets a 500 page the same way, not Starlette's bare text; its traceback still goes
    to the api-server's log (Starlette raises it again once the page is sent), never to
    the reader."""

    async def answer(request: Request, error: Exception) -> HTMLResponse:
        if not isinstance(error, HTTPException):  # pragma: no cover - registered for these
            raise error
        status = error.status_code
        return HTMLResponse(
            page(status, what_went_wrong(error, request.method)),
            status,
            headers={**headers, **(error.headers or {})},
        )

    async def failed(request: Request, error: Exception) -> HTMLResponse:
        return HTMLResponse(page(500, SERVER_FAILED), 500, headers=dict(headers))

    app.add_exception_handler(HTTPException, answer)
    app.add_exception_handler(Exception, failed)


def what_went_wrong(error: HTTPException, method: str) -> str:
    """One line for a reader: what was wrong with the address or method, not FastAPI's
    phrase alone."""
    if error.status_code == 404:
        return "there is no page at this address"
    if error.status_code == 405:
        allowed = (error.headers or {}).get("Allow", "GET")
        return f"it takes only {allowed} requests, not {method[:20]}"
    # Starlette's detail is the status's phrase unless the raiser gave one.
    return str(error.detail).lower() if error.detail else "the request was refused"
