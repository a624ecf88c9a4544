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

import logging
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import requests
import sqlalchemy as sa

from mediamon.ingest import memory
from mediamon.ingest import run as pipeline
from mediamon.ingest.pool import LazyExtractionPool
from mediamon.ingest.site_rules import SiteRule
from mediamon.ingest.sources import Source
from mediamon.models import IngestStats
from mediamon.settings import DEFAULT_SHARD_TIME_BUDGET_S

logger = logging.getLogger(__name__)

# Sources ingested at once in one shard. Most of a source's time on a real site is spent
# waiting: for the network, and for its host's 5 s politeness interval. Threads waiting
# cost nothing, and each holds a database connection only for a statement or a chunk.
DEFAULT_SOURCE_THREADS = 16
DB_POOL_SIZE = 4  # connections per shard task: PostgreSQL's 100 are shared by everyone
# A shard starts no source, and its running sources start no page, this long after the
# shard began: by default 10 of the cycle's 15 minutes (MEDIAMON_SHARD_TIME_BUDGET_S for
# another schedule). A source's own budget (half its poll interval) counts from its own
# start, so sources queued behind 16 slow ones each got a fresh 7.5 minutes: a shard of 33
# slow sources ran two budgets and more, past the next cycle (which max_active_runs=1
# then skipped) and into the task's 30-minute timeout.
SHARD_TIME_BUDGET_S = DEFAULT_SHARD_TIME_BUDGET_S


class ShardIncomplete(RuntimeError):
    """Some sources of a shard (or of a command-line run) crashed (database error or
    bug); the others were loaded. Raised after every source has run, so Airflow retries
    the shard. ``summaries`` holds every source's, the crashed ones as failed polls."""

    def __init__(
        self, crashed: dict[str, str], summaries: list[dict[str, object]] | None = None
    ) -> None:
        names = ", ".join(crashed)
        details = "; ".join(f"{name}: {error}" for name, error in crashed.items())
        super().__init__(f"{len(crashed)} source(s) crashed ({names}); {details}"[:2000])
        self.crashed = crashed
        self.summaries = summaries or []


@dataclass(frozen=True)
class ShardOptions:
    """How a shard runs.

    Attributes:
        workers: Extraction processes (0: build in the task's own process).
        source_threads: Sources ingested at once.
        refetch_known: Fetch pages of articles already stored.
        time_budget_s: Seconds after the shard's start past which no source and no page
            is started (those left are polled next cycle); None: no bound (a command
            run by hand has no cycle to keep to).
    """

    workers: int = 1
    source_threads: int = DEFAULT_SOURCE_THREADS
    refetch_known: bool = False
    time_budget_s: float | None = field(default_factory=lambda: SHARD_TIME_BUDGET_S)


def pool_size(cores: int, concurrent_shards: int, configured: int | None = None) -> int:
    """Extraction processes for one shard: ``configured`` (``MEDIAMON_WORKERS``) when set,
    else the cores divided among the shards that run at once, and at least one: a page
    too costly to extract can then be stopped, and the task goes on (a pool of one costs
    a fork, about 0.1 s of CPU, when a shard has something to build)."""
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
    A source not started within ``options.time_budget_s`` of the call is not polled
    (its summary says so; its polling state is untouched, so it is due next cycle), and
    a running one starts no page after it.

    Raises:
        ShardIncomplete: one or more sources raised (after all of them have run); the
            others' articles, fetch log and polling state are stored.
    """
    pool = LazyExtractionPool(options.workers)
    memory.tune_allocator()
    crashed: dict[str, str] = {}
    budget = options.time_budget_s
    deadline = None if budget is None else time.monotonic() + max(0.0, budget)

    def one(source: Source) -> dict[str, object]:
        if deadline is not None and time.monotonic() > deadline:
            return not_started(source, budget or 0.0)
        return ingest_isolated(
            engine, source, ids[source.name], session, run_key, now, crashed,
            pool=pool, refetch_known=options.refetch_known, site_rules=site_rules,
            deadline=deadline,
        )  # fmt: skip

    try:
        threads = max(1, min(options.source_threads, len(sources)))
        with ThreadPoolExecutor(threads, thread_name_prefix="source") as runner:
            started = {
                source.name: runner.submit(one, source)
                for source in longest_waiting_first(engine, sources, ids)
            }
            summaries = [started[source.name].result() for source in sources]
    finally:
        pool.shutdown()
    logger.info(
        "shard of %d sources done; extraction pool %s",
        len(sources),
        "used" if pool.started else "never started (nothing to extract)",
    )
    if crashed:
        raise ShardIncomplete(crashed, summaries)
    return summaries


def longest_waiting_first(
    engine: sa.Engine, sources: Sequence[Source], ids: Mapping[str, int]
) -> list[Source]:
    """``sources`` in the order they start: never polled first, then by how long they
    have been due (``source_state.next_poll_at``), the configured order among equals.
    In the configured order, the sources a shard's time budget left unstarted were last
    again next cycle, behind the same slow sources: left out cycle after cycle."""
    with engine.connect() as conn:
        due_since: dict[int, datetime] = dict(
            conn.execute(
                sa.text(
                    "select source_id, next_poll_at from source_state"
                    " where source_id = any(cast(:ids as integer[]))"
                ),
                {"ids": [ids[source.name] for source in sources]},
            ).all()
        )
    never = datetime.min.replace(tzinfo=UTC)
    return sorted(sources, key=lambda source: due_since.get(ids[source.name]) or never)


def not_started(source: Source, budget_s: float) -> dict[str, object]:
    """The summary of a source the shard's time budget left no time for."""
    logger.warning(
        "source %s not started: the shard's time budget of %g s was used up; it is polled"
        " next cycle",
        source.name,
        budget_s,
    )
    stats = IngestStats(source=source.name, poll="not_started")
    stats.errors.append(
        f"not started: the shard's time budget of {budget_s:g} s was used up by slower"
        " sources; polled next cycle"
    )
    return stats.as_dict()


def ingest_isolated(
    engine: sa.Engine,
    source: Source,
    source_id: int,
    session: requests.Session,
    run_key: str,
    now: datetime,
    crashed: dict[str, str],
    **options: Any,
) -> dict[str, object]:
    """:func:`mediamon.ingest.run.ingest_source`'s summary; if it raises, the error is
    logged with its traceback, noted in ``crashed`` and the source counted as a failed
    poll, so the sources after it still run."""
    try:
        stats = pipeline.ingest_source(engine, source, source_id, session, run_key, now, **options)
        return stats.as_dict()
    except Exception as error:  # noqa: BLE001 - isolated per source, reported by the caller
        logger.exception("source %s crashed", source.name)
        crashed[source.name] = f"{type(error).__name__}: {error}"[:300]
        failed = IngestStats(source=source.name, poll="failed")
        failed.errors.append(crashed[source.name])
        return failed.as_dict()


def make_shard_engine(url: str) -> sa.Engine:
    """An engine sized for one shard task: a few connections, waited for when busy."""
    from mediamon import db

    return db.make_engine(url, pool_size=DB_POOL_SIZE, max_overflow=DB_POOL_SIZE, pool_timeout=600)
