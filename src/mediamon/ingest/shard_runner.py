"""Ingest one shard (see :mod:`mediamon.ingest.shards`): several sources in one process.

The sources run on a few threads at once, so fetches to different hosts overlap while
each host's requests wait on the one politeness limiter the shared HTTP session carries
(a shard holds every source of its hosts, so the limits are exact). Extraction goes to
one pool for the whole shard, started on the first article that needs it: a shard whose
feeds are all unchanged never imports trafilatura, loads the language model or forks.
Each source keeps its own fetch log, polling state and summary; one that crashes (a
database error, a bug) never stops the others, and is reported once they are done.
"""

from __future__ import annotations

import gc
import logging
import os
import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Executor, Future, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import ParamSpec, TypeVar

import requests
import sqlalchemy as sa

from mediamon.ingest import memory
from mediamon.ingest import run as pipeline
from mediamon.ingest.extract import SiteRule
from mediamon.ingest.sources import Source
from mediamon.models import IngestStats

logger = logging.getLogger(__name__)

P = ParamSpec("P")
T = TypeVar("T")

# Sources ingested at once in one shard. Most of a source's time on a real site is spent
# waiting: for the network, and for its host's 5 s politeness interval. Threads waiting
# cost nothing, and each holds a database connection only for a statement or a chunk.
DEFAULT_SOURCE_THREADS = 16
DB_POOL_SIZE = 4  # connections per shard task: PostgreSQL's 100 are shared by everyone


class ShardIncomplete(RuntimeError):
    """Some sources of a shard crashed (database error or bug); the others were loaded.
    Raised after every source has run, so Airflow retries the shard."""

    def __init__(self, crashed: dict[str, str]) -> None:
        names = ", ".join(crashed)
        details = "; ".join(f"{name}: {error}" for name, error in crashed.items())
        super().__init__(f"{len(crashed)} source(s) crashed ({names}); {details}"[:2000])
        self.crashed = crashed


class LazyExtractionPool(Executor):
    """The shard's extraction pool, started by the first article submitted to it.

    With more than one worker, the first :meth:`submit` imports trafilatura, loads the
    folding table and the language model, freezes the heap (so forked workers share those
    pages, as :func:`mediamon.ingest.run.extraction_pool` does) and forks the workers, on
    a thread of the pool's own that lives until :meth:`shutdown`: the workers' parent-death
    signal (:mod:`mediamon.ingest.parentwatch`) follows the thread that forked them. With
    one worker, articles are built in the calling thread, one at a time: trafilatura
    parses with module-level lxml parsers, which are not thread-safe (two source threads
    extracting at once spun a task for minutes). Thread-safe.
    """

    def __init__(self, workers: int) -> None:
        self.workers = max(1, workers)
        self._lock = threading.Lock()
        self._inline = threading.Lock()  # one build at a time in this process
        self._pool: ProcessPoolExecutor | None = None
        self._owner: threading.Thread | None = None
        self._release = threading.Event()
        self._frozen = False
        self.started = False

    def submit(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> Future[T]:
        with self._lock:
            if not self.started:
                self._start()
        if self._pool is not None:
            return self._pool.submit(fn, *args, **kwargs)
        future: Future[T] = Future()
        try:
            with self._inline:
                future.set_result(fn(*args, **kwargs))
        except BaseException as error:  # noqa: BLE001 - handed to the caller, as a pool would
            future.set_exception(error)
        return future

    def _start(self) -> None:
        self.started = True
        if self.workers <= 1:
            return
        import multiprocessing

        import trafilatura  # noqa: F401 - imported before the fork, shared by the workers

        from mediamon.ingest import parentwatch
        from mediamon.ingest.normalize import warm_up

        warm_up()
        gc.freeze()  # see ingest.run.extraction_pool: workers share, never copy, these pages
        self._frozen = True
        started: Future[ProcessPoolExecutor] = Future()

        def own() -> None:
            try:
                pool = ProcessPoolExecutor(
                    self.workers,
                    mp_context=multiprocessing.get_context("fork"),
                    initializer=parentwatch.die_with_parent,
                    initargs=(os.getpid(),),
                )
                pool.submit(os.getpid).result()  # fork the workers now, on this thread
            except BaseException as error:  # noqa: BLE001 - raised in the submitting thread
                started.set_exception(error)
                return
            started.set_result(pool)
            self._release.wait()

        self._owner = threading.Thread(target=own, name="extraction-pool", daemon=True)
        self._owner.start()
        self._pool = started.result()
        logger.info("extraction pool of %d processes started", self.workers)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        with self._lock:
            if self._pool is not None:
                self._pool.shutdown(wait=wait, cancel_futures=cancel_futures)
                self._pool = None
            self._release.set()
            if self._owner is not None:
                self._owner.join()
                self._owner = None
            if self._frozen:
                gc.unfreeze()
                self._frozen = False


@dataclass(frozen=True)
class ShardOptions:
    """How a shard runs.

    Attributes:
        workers: Extraction processes (1: build in the task's own process).
        source_threads: Sources ingested at once.
        refetch_known: Fetch pages of articles already stored.
    """

    workers: int = 1
    source_threads: int = DEFAULT_SOURCE_THREADS
    refetch_known: bool = False


def pool_size(cores: int, concurrent_shards: int, configured: int | None = None) -> int:
    """Extraction processes for one shard: ``configured`` (``MEDIAMON_WORKERS``) when set,
    else the cores divided among the shards that run at once. Two shards on two cores
    build in their own processes: a pool would only add forks and pickling."""
    if configured is not None:
        return max(1, configured)
    return max(1, cores // max(1, concurrent_shards))


def ingest_sources(
    engine: sa.Engine,
    sources: Sequence[Source],
    ids: dict[str, int],
    session: requests.Session,
    run_key: str,
    now: datetime,
    options: ShardOptions,
    site_rules: Mapping[str, SiteRule] | None = None,
) -> list[dict[str, object]]:
    """Ingest ``sources`` concurrently; return one summary per source, in their order.

    Raises:
        ShardIncomplete: one or more sources raised (after all of them have run); the
            others' articles, fetch log and polling state are stored.
    """
    pool = LazyExtractionPool(options.workers)
    memory.tune_allocator()
    crashed: dict[str, str] = {}

    def one(source: Source) -> dict[str, object]:
        try:
            stats = pipeline.ingest_source(
                engine, source, ids[source.name], session, run_key, now,
                pool=pool, refetch_known=options.refetch_known, site_rules=site_rules,
            )  # fmt: skip
            return stats.as_dict()
        except Exception as error:  # noqa: BLE001 - isolated per source, reported below
            logger.exception("source %s crashed", source.name)
            crashed[source.name] = f"{type(error).__name__}: {error}"[:300]
            failed = IngestStats(source=source.name, poll="failed")
            failed.errors.append(crashed[source.name])
            return failed.as_dict()

    try:
        threads = max(1, min(options.source_threads, len(sources)))
        with ThreadPoolExecutor(threads, thread_name_prefix="source") as runner:
            summaries = list(runner.map(one, sources))
    finally:
        pool.shutdown()
    logger.info(
        "shard of %d sources done; extraction pool %s",
        len(sources),
        "used" if pool.started else "never started (nothing to extract)",
    )
    if crashed:
        raise ShardIncomplete(crashed)
    return summaries


def make_shard_engine(url: str) -> sa.Engine:
    """An engine sized for one shard task: a few connections, waited for when busy."""
    from mediamon import db

    return db.make_engine(url, pool_size=DB_POOL_SIZE, max_overflow=DB_POOL_SIZE, pool_timeout=600)
