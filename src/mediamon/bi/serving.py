"""What the api-server's mediamon apps (the page, the unsubscribe page) share: one engine
made at the first request, and a bound on the api-server threads their blocking work
takes. Nothing here imports Airflow."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TypeVar

import anyio
import anyio.to_thread
import sqlalchemy as sa

T = TypeVar("T")

# Threads an app's blocking work runs on at once, fewer than the connection pool holds
# (5 + 10): the api-server's thread pool (anyio's, 40) is Airflow's too, its health check
# and UI included; readers held up by a locked table or a busy database took every thread.
PAGE_THREADS = 10


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
    """Runs blocking calls off the event loop on at most PAGE_THREADS threads: a request
    past them waits for one without holding any."""

    def __init__(self, threads: int = PAGE_THREADS) -> None:
        self._limiter = anyio.CapacityLimiter(threads)

    async def run(self, call: Callable[..., T], *args: object) -> T:
        return await anyio.to_thread.run_sync(call, *args, limiter=self._limiter)
