"""CPU-time limits on one article's build, in the extraction workers.

Some pages make the extractors' work grow with the square of their size: a 4 MB
paragraph of 50,000 ``<span>`` elements costs trafilatura itself 20 s of CPU, and the
15 MB a source may send would hold a worker for many minutes while its source's other
pages wait. A news page takes about 0.03 s, the slowest page of the corpora under 1 s.
Two limits, both counted in the worker's CPU time:

* :func:`cpu_limit` (soft, :data:`MAX_EXTRACTION_CPU_S` per extraction): a ``SIGPROF``
  timer whose handler raises :class:`ExtractionTimeout`; the build goes on with the
  feed's text. Python runs signal handlers between bytecodes only, so a single long call
  into C (lxml joining 30,000 text nodes: 90 s) is not interrupted;
* :func:`hard_limit` (:data:`MAX_JOB_CPU_S` per article): ``RLIMIT_CPU``, which the
  kernel enforces by ending the worker (``SIGXCPU``) wherever it is. The pool
  (:mod:`mediamon.ingest.pool`) starts new workers, fails that article with
  :class:`WorkerKilled` and runs the others again.

Both count the CPU time of the whole process, which is only right in a process that
builds one article at a time and does nothing else: the extraction pool's workers
(:func:`enable` is their initializer's job), which every ingest and shard has, one at
least. Where articles are built in the calling process (a pool of 0 workers, tests
only), fetch threads share that clock and the signal would reach another thread, so
neither limit applies there.
"""

from __future__ import annotations

import math
import resource
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

MAX_EXTRACTION_CPU_S = 20.0
MAX_JOB_CPU_S = 60.0
# If a library swallows the first signal's exception, the timer fires again this often.
_REPEAT_S = 1.0

_enabled = False


class ExtractionTimeout(BaseException):  # noqa: N818 - reads as what happened
    """A page's extraction used up its CPU time. A BaseException, like
    KeyboardInterrupt, so the extractors' own ``except Exception`` cannot swallow it."""


class WorkerKilled(Exception):  # noqa: N818 - reads as what happened
    """An article's build used up :data:`MAX_JOB_CPU_S` and its worker was ended."""

    def __init__(self, seconds: float) -> None:
        super().__init__(f"extraction worker ended after {seconds:g} s of CPU on this page")


def enable() -> None:
    """Let the limits apply in this process (an extraction worker); a worker the kernel
    ends for its CPU time leaves no core file."""
    global _enabled  # noqa: PLW0603 - a per-process switch, set once by the initializer
    _enabled = True
    resource.setrlimit(resource.RLIMIT_CORE, (0, resource.getrlimit(resource.RLIMIT_CORE)[1]))


@contextmanager
def hard_limit(seconds: float) -> Iterator[None]:
    """End this process (``SIGXCPU``) if the block uses more than ``seconds`` of CPU
    (rounded up to whole seconds); nothing happens unless :func:`enable` was called."""
    if not _enabled:
        yield
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_CPU)
    limit = math.ceil(time.process_time() + seconds)
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_CPU, (limit, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_CPU, (soft, hard))


@contextmanager
def cpu_limit(seconds: float) -> Iterator[None]:
    """Raise :class:`ExtractionTimeout` in the block once this process has used
    ``seconds`` of CPU in it; nothing happens unless :func:`enable` was called in this
    process and the block runs on its main thread."""
    if not _enabled or threading.current_thread() is not threading.main_thread():
        yield
        return

    def expired(signum: int, frame: FrameType | None) -> None:
        raise ExtractionTimeout(f"gave up after {seconds:g} s of CPU")

    previous = signal.signal(signal.SIGPROF, expired)
    signal.setitimer(signal.ITIMER_PROF, seconds, _REPEAT_S)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_PROF, 0)
        signal.signal(signal.SIGPROF, previous)
