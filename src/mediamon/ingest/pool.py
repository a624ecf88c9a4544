"""The extraction process pool, started only when there is something to extract.

Most cycles of most sources find nothing new: a pool started up front paid the
extractors' imports, the language model and the forks (1.7 s of CPU for an ingest that
loaded nothing). :class:`LazyExtractionPool` pays them on the first article.
"""

from __future__ import annotations

import gc
import logging
import os
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Executor, Future, ProcessPoolExecutor
from contextlib import contextmanager
from typing import ParamSpec, TypeVar

from mediamon.ingest import memory
from mediamon.settings import Settings

logger = logging.getLogger(__name__)

P = ParamSpec("P")
T = TypeVar("T")


def default_workers() -> int:
    """Extraction processes: ``MEDIAMON_WORKERS``, else one per core."""
    return Settings.from_env().workers or max(1, os.cpu_count() or 1)


@contextmanager
def extraction_pool(workers: int | None = None) -> Iterator[LazyExtractionPool]:
    """A :class:`LazyExtractionPool` of ``workers`` processes (default
    :func:`default_workers`; 1 builds in this process), shut down on leaving."""
    memory.tune_allocator()
    pool = LazyExtractionPool(default_workers() if workers is None else workers)
    try:
        yield pool
    finally:
        pool.shutdown()


class LazyExtractionPool(Executor):
    """An extraction pool started by the first article submitted to it.

    With more than one worker, the first :meth:`submit` imports the extractors, loads the
    folding table and the language model, freezes the heap (so forked workers share those
    pages) and forks the workers, on
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

        from mediamon.ingest import candidates, normalize, parentwatch

        candidates.warm_up()  # imported before the fork: the workers share them
        normalize.warm_up()
        # The workers fork (not spawn) to share the parent's loaded libraries and models;
        # frozen objects are never scanned by a worker's garbage collector, which would
        # otherwise touch, and so copy, every shared page (Python's gc.freeze advice).
        gc.freeze()
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
