"""The extraction process pool, started only when there is something to extract.

Most cycles of most sources find nothing new: a pool started up front paid the
extractors' imports, the language model and the forks (1.7 s of CPU for an ingest that
loaded nothing). :class:`LazyExtractionPool` pays them on the first article.
"""

from __future__ import annotations

import functools
import gc
import itertools
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Executor, Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from dataclasses import dataclass
from typing import ParamSpec, TypeVar

from mediamon.ingest import cpulimit, memory
from mediamon.settings import Settings

logger = logging.getLogger(__name__)

P = ParamSpec("P")
T = TypeVar("T")

# A job whose worker died while another job overran its CPU limit runs again on the
# new pool, at most this often (a worker killed for another reason, such as the OOM
# killer, takes every job it had down with it).
MAX_RETRIES = 2


def default_workers() -> int:
    """Extraction processes: ``MEDIAMON_WORKERS``, else one per core."""
    return Settings.from_env().workers or max(1, os.cpu_count() or 1)


@contextmanager
def extraction_pool(workers: int | None = None) -> Iterator[LazyExtractionPool]:
    """A :class:`LazyExtractionPool` of ``workers`` processes (default
    :func:`default_workers`; 0 builds in this process), shut down on leaving."""
    memory.tune_allocator()
    pool = LazyExtractionPool(default_workers() if workers is None else workers)
    try:
        yield pool
    finally:
        pool.shutdown()


class LazyExtractionPool(Executor):
    """An extraction pool started by the first article submitted to it.

    The first :meth:`submit` imports the extractors, loads the folding table and the
    language model, freezes the heap (so forked workers share those pages) and forks the
    workers, on a thread of the pool's own that lives until :meth:`shutdown`: the
    workers' parent-death signal (:mod:`mediamon.ingest.parentwatch`) follows the thread
    that forked them. Even one worker is a process of its own: there a page's CPU
    limits (:mod:`mediamon.ingest.cpulimit`) can stop it, and if the kernel has to end
    the worker, the pool starts another and runs the other jobs again. With 0 workers
    (tests), articles are built in the calling thread, one at a time: trafilatura parses
    with module-level lxml parsers, which are not thread-safe (two source threads
    extracting at once spun a task for minutes). Thread-safe.
    """

    def __init__(self, workers: int) -> None:
        self.workers = max(0, workers)
        self._lock = threading.Lock()
        self._inline = threading.Lock()  # one build at a time in this process
        self._pool: _Workers | None = None
        self._owners: list[threading.Thread] = []
        self._release = threading.Event()
        self._frozen = False
        self._closed = False
        self._jobs = itertools.count()
        self.started = False

    def submit(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> Future[T]:
        with self._lock:
            if not self.started:
                self._start()
            pool = self._pool
        if pool is not None:
            outer: Future[T] = Future()
            self._send(pool, outer, functools.partial(fn, *args, **kwargs), tries=0)
            return outer
        future: Future[T] = Future()
        try:
            with self._inline:
                future.set_result(fn(*args, **kwargs))
        except BaseException as error:  # noqa: BLE001 - handed to the caller, as a pool would
            future.set_exception(error)
        return future

    def _send(self, pool: _Workers, outer: Future[T], call: Callable[[], T], tries: int) -> None:
        """Run ``call`` on ``pool``; its outcome goes to ``outer``, or, if a worker dies
        meanwhile, ``call`` runs again on a new pool (see :meth:`_settle`)."""
        job = next(self._jobs)
        try:
            inner = pool.executor.submit(_tracked, job, call)
        except BrokenProcessPool as error:  # broke after this job's pool was looked up
            inner = Future()
            inner.set_exception(error)
        inner.add_done_callback(lambda done: self._settle(pool, job, done, outer, call, tries))

    def _settle(
        self,
        pool: _Workers,
        job: int,
        inner: Future[T],
        outer: Future[T],
        call: Callable[[], T],
        tries: int,
    ) -> None:
        error = inner.exception()
        if not isinstance(error, BrokenProcessPool):
            if error is None:
                outer.set_result(inner.result())
            else:
                outer.set_exception(error)
            return
        # A worker died: every job of its pool fails with BrokenProcessPool. The job
        # that used up its CPU limit fails for good; the others run again.
        if job in pool.tracker.overrunning(cpulimit.MAX_JOB_CPU_S):
            outer.set_exception(cpulimit.WorkerKilled(cpulimit.MAX_JOB_CPU_S))
            return
        replacement = self._replace(pool)
        if replacement is None or tries >= MAX_RETRIES:
            outer.set_exception(error)
            return
        self._send(replacement, outer, call, tries + 1)

    def _start(self) -> None:
        self.started = True
        if self.workers == 0:
            return
        from mediamon.ingest import candidates, normalize

        candidates.warm_up()  # imported before the fork: the workers share them
        normalize.warm_up()
        # The workers fork (not spawn) to share the parent's loaded libraries and models;
        # frozen objects are never scanned by a worker's garbage collector, which would
        # otherwise touch, and so copy, every shared page (Python's gc.freeze advice).
        gc.freeze()
        self._frozen = True
        self._pool = self._fork()
        logger.info("extraction pool of %d processes started", self.workers)

    def _fork(self) -> _Workers:
        """New worker processes, forked on a thread of their own that lives until
        :meth:`shutdown` (the workers' parent-death signal follows the forking thread)."""
        import multiprocessing

        # Celery's prefork workers are daemonic processes, and multiprocessing refuses a
        # daemonic process children lest they be orphaned when it is ended: the shard
        # crashed. These workers die with their parent (parentwatch), so the refusal
        # protects nothing here.
        multiprocessing.current_process().daemon = False
        tracker = _Tracker(self.workers)
        started: Future[_Workers] = Future()

        def own() -> None:
            try:
                executor = ProcessPoolExecutor(
                    self.workers,
                    mp_context=multiprocessing.get_context("fork"),
                    initializer=_start_worker,
                    initargs=(os.getpid(), tracker),
                )
                executor.submit(os.getpid).result()  # fork the workers now, on this thread
            except BaseException as error:  # noqa: BLE001 - raised in the submitting thread
                started.set_exception(error)
                return
            started.set_result(_Workers(executor, tracker))
            self._release.wait()

        owner = threading.Thread(target=own, name="extraction-pool", daemon=True)
        owner.start()
        self._owners.append(owner)
        return started.result()

    def _replace(self, broken: _Workers) -> _Workers | None:
        """The pool that replaces ``broken`` (started by the first job to ask), or None
        once the pool is shut down."""
        with self._lock:
            if self._pool is broken:
                broken.executor.shutdown(wait=False, cancel_futures=True)
                self._pool = None
                if not self._closed:
                    self._pool = self._fork()
                    logger.warning("an extraction worker died: pool of %d restarted", self.workers)
            return self._pool

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        with self._lock:
            self._closed = True
            pool, self._pool = self._pool, None
        # Waited for outside the lock: a job of a pool breaking now takes the lock in
        # _replace on that pool's own thread, which this wait would otherwise block.
        if pool is not None:
            pool.executor.shutdown(wait=wait, cancel_futures=cancel_futures)
        with self._lock:
            self._release.set()
            for owner in self._owners:
                owner.join()
            self._owners.clear()
            if self._frozen:
                gc.unfreeze()
                self._frozen = False


@dataclass(frozen=True)
class _Workers:
    executor: ProcessPoolExecutor
    tracker: _Tracker


class _Tracker:
    """Which job each worker of a pool runs, and since when, in memory the workers share
    with the parent: when a worker dies, the job it was running is known."""

    def __init__(self, workers: int) -> None:
        import multiprocessing

        context = multiprocessing.get_context("fork")
        self._next = context.Value("i", 0)
        self._jobs = context.RawArray("q", [-1] * workers)
        self._since = context.RawArray("d", [0.0] * workers)

    def claim(self) -> int:
        """A worker's slot (once, in its initializer)."""
        with self._next.get_lock():
            slot = int(self._next.value)
            self._next.value += 1
        return slot

    def running(self, slot: int, job: int) -> None:
        self._since[slot] = time.monotonic()  # one clock for every process of the machine
        self._jobs[slot] = job

    def done(self, slot: int) -> None:
        self._jobs[slot] = -1

    def overrunning(self, seconds: float) -> set[int]:
        """The jobs running for ``seconds`` or more: no job gets that much CPU in less
        wall-clock time, so a worker killed for its CPU was running one of these."""
        now = time.monotonic()
        return {
            job
            for job, since in zip(self._jobs, self._since, strict=True)
            if job >= 0 and now - since >= seconds
        }


_worker_slot: tuple[_Tracker, int] | None = None


def _start_worker(parent_pid: int, tracker: _Tracker) -> None:
    """A worker's first steps: die with the ingest, limit each page's CPU time, take a
    slot in the pool's tracker, leave Ctrl-C to the ingest."""
    global _worker_slot  # noqa: PLW0603 - set once per worker process
    import signal

    from mediamon.ingest import parentwatch

    parentwatch.die_with_parent(parent_pid)
    # A terminal's Ctrl-C reaches every process of the command: each worker printed its
    # own KeyboardInterrupt traceback under the command's one line. The ingest stops
    # the pool, and the workers die with it in any case.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    cpulimit.enable()
    _worker_slot = (tracker, tracker.claim())


def _tracked(job: int, call: Callable[[], T]) -> T:
    """``call`` in a worker, its job number in the tracker and a hard limit on its CPU."""
    assert _worker_slot is not None, "runs in a worker started by _start_worker"
    tracker, slot = _worker_slot
    tracker.running(slot, job)
    try:
        with cpulimit.hard_limit(cpulimit.MAX_JOB_CPU_S):
            return call()
    finally:
        tracker.done(slot)
