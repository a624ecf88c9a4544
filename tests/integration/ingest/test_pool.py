"""The extraction pool survives a worker the kernel ends for its CPU time
(mediamon.ingest.pool, mediamon.ingest.cpulimit): real forked workers, real RLIMIT_CPU."""

from __future__ import annotations

import multiprocessing
import os
from typing import Any

import pytest

from mediamon.ingest import cpulimit
from mediamon.ingest.pool import LazyExtractionPool


def double(n: int) -> int:
    return 2 * n


def spin_in_c() -> int:
    # One long call into C: no Python signal handler runs until it returns.
    return sum(range(10**12))


def worker_pid() -> int:
    return os.getpid()


@pytest.fixture()
def short_limits(monkeypatch: pytest.MonkeyPatch) -> None:
    # Set before the pool forks: the workers inherit them.
    monkeypatch.setattr(cpulimit, "MAX_JOB_CPU_S", 1.0)


@pytest.mark.usefixtures("short_limits")
def test_a_job_over_its_cpu_limit_fails_alone_and_the_pool_goes_on() -> None:
    pool = LazyExtractionPool(2)
    try:
        before = {pool.submit(worker_pid).result() for _ in range(8)}
        jobs = [pool.submit(double, n) for n in range(4)]
        runaway = pool.submit(spin_in_c)
        jobs += [pool.submit(double, n) for n in range(4, 12)]
        with pytest.raises(cpulimit.WorkerKilled, match="ended after 1 s of CPU"):
            runaway.result(timeout=60)
        assert [job.result(timeout=60) for job in jobs] == [2 * n for n in range(12)]
        after = {pool.submit(worker_pid).result() for _ in range(8)}
        assert after and not after & before, "the pool runs on new workers"
    finally:
        pool.shutdown()


def test_jobs_within_their_limit_run_on_the_same_workers() -> None:
    pool = LazyExtractionPool(2)
    try:
        pids = {pool.submit(worker_pid).result() for _ in range(20)}
        assert [pool.submit(double, n).result() for n in range(20)] == [2 * n for n in range(20)]
        assert len(pids | {pool.submit(worker_pid).result() for _ in range(20)}) <= 2
    finally:
        pool.shutdown()


def _pool_in_this_process(results: Any) -> None:
    pool = LazyExtractionPool(1)
    try:
        results.put(pool.submit(double, 21).result(timeout=60))
    except BaseException as error:  # noqa: BLE001 - reported to the test
        results.put(repr(error))
    finally:
        pool.shutdown()


def test_a_daemonic_process_starts_its_pool() -> None:
    """Celery's prefork workers are daemonic: multiprocessing refused their Airflow task
    processes a pool ("daemonic processes are not allowed to have children")."""
    context = multiprocessing.get_context("fork")
    results = context.Queue()
    task = context.Process(target=_pool_in_this_process, args=(results,), daemon=True)
    task.start()
    try:
        assert results.get(timeout=120) == 42
    finally:
        task.join(30)
