"""One ingest cycle of one source: fetch, decode, extract, normalize, load.

Work goes in chunks: each chunk's pages are fetched on a few threads, turned into
articles on a process pool (extraction is CPU-bound), and loaded with its fetch log in
one transaction, so a failure never leaves a half-written chunk and memory stays flat.
The source's polling state (mediamon.ingest.polling) is written last, once every chunk is in:
a run that dies half-way leaves it as it was, and the next run polls the feed again.
"""

from __future__ import annotations

import gc
import hashlib
import logging
import os
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Executor, Future, ProcessPoolExecutor, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any

import requests
import sqlalchemy as sa

from mediamon.ingest import archive, load, memory, polling
from mediamon.ingest.build import (
    FUTURE_TOLERANCE,
    ArticleJob,
    BuildResult,
    build_article_safely,
)
from mediamon.ingest.decode import decode_html
from mediamon.ingest.feeds import FeedError, FeedItem, parse_feed
from mediamon.ingest.fetch import FEED_TYPES, PAGE_TYPES, FetchResult, fetch
from mediamon.ingest.normalize import (
    canonical_url,
    warm_up,
)
from mediamon.ingest.politeness import HostLimits
from mediamon.ingest.sources import Source
from mediamon.models import Article, FetchRecord, IngestStats
from mediamon.settings import Settings

logger = logging.getLogger(__name__)

CHUNK_SIZE = 200
PAGE_THREADS = 4


def default_workers() -> int:
    """Extraction processes: ``MEDIAMON_WORKERS``, else one per core."""
    return Settings.from_env().workers or max(1, os.cpu_count() or 1)


@contextmanager
def extraction_pool(workers: int | None = None) -> Iterator[Executor | None]:
    """A process pool for :func:`build_article`, or None to build in this process."""
    workers = default_workers() if workers is None else workers
    memory.tune_allocator()
    if workers <= 1:
        yield None
        return
    import multiprocessing

    import trafilatura  # noqa: F401 - imported before the fork, shared by the workers

    warm_up()
    # fork (not spawn): the workers share the parent's loaded libraries and models; the
    # frozen objects are never scanned by a worker's garbage collector, which would
    # otherwise touch, and so copy, every shared page (Python's gc.freeze advice).
    gc.freeze()
    try:
        context = multiprocessing.get_context("fork")
        with ProcessPoolExecutor(workers, mp_context=context) as pool:
            yield pool
    finally:
        gc.unfreeze()


def fetch_options(source: Source) -> dict[str, Any]:
    """The source's limits as keyword arguments of :func:`mediamon.ingest.fetch.fetch`."""
    interval = source.host_min_interval
    return {
        "allow_private_network": source.allow_private_network,
        "limits": HostLimits(
            interval.total_seconds() if interval is not None else None,
            source.host_max_connections,
        ),
        "max_bytes": source.max_bytes,
        "deadline_s": source.download_deadline.total_seconds(),
        "timeout": (source.connect_timeout.total_seconds(), source.read_timeout.total_seconds()),
    }


def ingest_source(
    engine: sa.Engine,
    source: Source,
    source_id: int,
    session: requests.Session | None,
    run_key: str,
    now: datetime,
    *,
    pool: Executor | None = None,
    refetch_known: bool = False,
    progress: Callable[[int], None] | None = None,
) -> IngestStats:
    """Run one ingest cycle of one source. Source-level failures (the feed cannot be
    fetched or parsed, an archive file is malformed) are recorded in the fetch log, the
    returned stats and the source's polling state; only database errors raise.

    Args:
        engine: The data database.
        source: What to ingest.
        source_id: Its id in ``sources`` (see :func:`mediamon.ingest.load.sync_sources`).
        session: HTTP session from :func:`mediamon.ingest.fetch.make_session` (None for archives).
        run_key: Identifies this run in the fetch log, e.g. the DAG run's interval.
        now: The time of the fetch, recorded as first_seen_at.
        pool: Process pool for extraction, from :func:`extraction_pool`.
        refetch_known: Fetch pages of articles already stored (normally skipped).
        progress: Called with the number of items finished after each chunk.
    """
    stats = IngestStats(source=source.name)
    with engine.connect() as conn:
        stored = polling.load_state(conn, source_id)
    state = stored.before(run_key) if stored is not None else None
    poll = polling.PollOutcome()
    if source.kind == "archive":
        chunks = _archive_chunks(source, now, stats, poll)
    elif session is None:
        raise ValueError(f"source {source.name}: a feed needs an HTTP session")
    else:
        chunks = _feed_chunks(
            engine, source, source_id, session, run_key, now, stats, refetch_known, state, poll
        )
    # Two chunks in flight: the workers build chunk N while this process fetches chunk
    # N+1 and loads chunk N-1, so neither the cores nor the network wait on each other.
    in_flight: deque[tuple[list[ArticleJob], list[FetchRecord], list[Any]]] = deque()
    for jobs, records in chunks:
        in_flight.append((jobs, records, _start_building(pool, jobs)))
        if len(in_flight) > 1:
            _load_chunk(engine, source_id, run_key, now, stats, *in_flight.popleft())
            if progress:
                progress(len(jobs))
    while in_flight:
        jobs, records, pending = in_flight.popleft()
        _load_chunk(engine, source_id, run_key, now, stats, jobs, records, pending)
        if progress:
            progress(len(jobs))
    if source.kind == "archive":
        poll.new = stats.new
    stats.poll = poll.outcome
    with engine.begin() as conn:
        polling.record_poll(conn, source, source_id, run_key, now, state, poll)
    logger.info("source %s: %s", source.name, stats.as_dict())
    return stats


Chunk = tuple[list[ArticleJob], list[FetchRecord]]


def _start_building(pool: Executor | None, jobs: list[ArticleJob]) -> list[Any]:
    """Futures of the chunk's articles on the pool, or the results themselves without one."""
    if pool is None:
        return [build_article_safely(job) for job in jobs]
    return [pool.submit(build_article_safely, job) for job in jobs]


def _load_chunk(
    engine: sa.Engine,
    source_id: int,
    run_key: str,
    now: datetime,
    stats: IngestStats,
    jobs: list[ArticleJob],
    records: list[FetchRecord],
    pending: list[Any],
) -> None:
    """Wait for a chunk's articles and load them with its fetch log in one transaction."""
    results: list[BuildResult] = [p.result() if isinstance(p, Future) else p for p in pending]
    built: list[Article] = []
    # records[i] belongs to jobs[i]; records past the jobs are files that failed early.
    for index, (job, result) in enumerate(zip(jobs, results, strict=True)):
        if result.article is None:
            stats.failed += 1
            stats.errors.append(f"{job.item.link}: {result.note}")
        else:
            built.append(result.article)
        if result.note:  # the note includes the fetch error, if there was one
            records[index] = replace(records[index], error=result.note)
    with engine.begin() as conn:
        load.write_fetch_log(conn, run_key, source_id, records)
        written = load.upsert_articles(conn, source_id, built, now)
    stats.new += written.inserted
    stats.updated += written.updated
    stats.duplicates += written.copies
    stats.unchanged += len({a.canonical_url for a in built}) - len(written.article_ids)
    memory.return_freed()  # the chunk's pages and articles


def _feed_chunks(
    engine: sa.Engine,
    source: Source,
    source_id: int,
    session: requests.Session,
    run_key: str,
    now: datetime,
    stats: IngestStats,
    refetch_known: bool,
    state: polling.SourceState | None,
    poll: polling.PollOutcome,
) -> Iterator[Chunk]:
    options = fetch_options(source)
    # ``state`` is what the last completed poll left (the state is written only once a
    # poll has loaded everything), so an unchanged feed holds nothing left to load.
    validators = None
    if state is not None and not source.ignore_validators and not refetch_known:
        validators = state.validators_for(source.location)
    response = fetch(
        session,
        source.location,
        configured_url=True,
        validators=validators,
        accept_types=FEED_TYPES,
        **options,
    )
    record = _record(response, "feed", now)
    poll.feed_url = source.location
    poll.retry_after_s = response.retry_after_s
    items: list[FeedItem] = []
    if response.not_modified and validators is None:
        record = replace(record, error="HTTP 304 Not Modified to a request without validators")
    elif response.not_modified:
        poll.outcome = "not_modified"
        poll.validators = response.validators if response.validators.etag else validators
    elif response.ok:
        body_hash = hashlib.sha256(response.content).digest()
        poll.validators = None if source.ignore_validators else response.validators
        poll.body_sha256 = body_hash
        if (
            state is not None
            and not refetch_known
            and state.feed_url == source.location
            and state.body_sha256 == body_hash
        ):
            poll.outcome = "unchanged"  # same bytes as last time: nothing new to read
        else:
            try:
                parsed = parse_feed(
                    response.content,
                    response.final_url,
                    response.headers.get("content-type"),
                    max_items=source.max_items,
                )
                items = parsed.items
                if parsed.skipped:
                    stats.errors.extend(parsed.skipped)
            except FeedError as error:
                record = replace(record, error=str(error))
    if record.error:
        stats.errors.append(f"{source.location}: {record.error}")
        poll.outcome = "deferred" if response.retry_after_s else "failed"
        poll.error = record.error
    with engine.begin() as conn:
        load.write_fetch_log(conn, run_key, source_id, [record])
    items = _distinct_items(items, source, now, stats)
    stats.items = poll.items = len(items)
    if not items:
        return
    for start in range(0, len(items), CHUNK_SIZE):
        chunk = items[start : start + CHUNK_SIZE]
        urls = {i.link: canonical_url(i.link, source.drop_query_params) for i in chunk}
        with engine.connect() as conn:
            known, earlier = polling.seen_before(conn, urls.values(), now)
        poll.new += sum(1 for i in chunk if urls[i.link] not in earlier)
        if not refetch_known:
            fresh = [i for i in chunk if urls[i.link] not in known]
            stats.already_known += len(chunk) - len(fresh)
            chunk = fresh
        if not chunk:
            continue
        job = ArticleJob(
            item=chunk[0],
            source_language=source.language,
            drop_params=source.drop_query_params,
            seen_at=now,
        )
        if source.fetch_pages:

            def page(item: FeedItem) -> FetchResult:
                return fetch(
                    session,
                    item.link,
                    accept_types=PAGE_TYPES,
                    check_robots=source.respect_robots_txt,
                    **options,
                )

            with ThreadPoolExecutor(max_workers=PAGE_THREADS) as threads:
                pages = list(threads.map(page, chunk))
            jobs = [replace(job, item=i, page=p) for i, p in zip(chunk, pages, strict=True)]
            records = [_record(p, "page", now) for p in pages]
        else:
            jobs = [replace(job, item=i) for i in chunk]
            records = [
                FetchRecord(url=i.link, kind="page", fetched_at=now, error="feed only")
                for i in chunk
            ]
        yield jobs, records


def _distinct_items(
    items: list[FeedItem], source: Source, now: datetime, stats: IngestStats
) -> list[FeedItem]:
    """Drop items whose canonical URL repeats an earlier item's (tracking parameters
    differ); note dates in the future, which build_article replaces by first-seen time."""
    kept: list[FeedItem] = []
    seen: set[str] = set()
    for item in items:
        key = canonical_url(item.link, source.drop_query_params)
        if key in seen:
            stats.errors.append(f"{item.link}: same article as an earlier item ({key})")
            continue
        seen.add(key)
        if item.published_at is not None and item.published_at > now + FUTURE_TOLERANCE:
            stats.errors.append(
                f"{item.link}: date {item.published_at.isoformat()} is in the future;"
                " first-seen time used"
            )
        kept.append(item)
    return kept


def _archive_chunks(
    source: Source, now: datetime, stats: IngestStats, poll: polling.PollOutcome
) -> Iterator[Chunk]:
    folder = Path(source.location)
    try:
        files = archive.archive_files(folder)
    except archive.ArchiveFormatError as error:
        stats.errors.append(str(error))
        poll.outcome, poll.error = "failed", str(error)
        return
    stats.items = poll.items = len(files)
    for start in range(0, len(files), CHUNK_SIZE):
        jobs: list[ArticleJob] = []
        records: list[FetchRecord] = []
        bad: list[FetchRecord] = []
        for path in files[start : start + CHUNK_SIZE]:
            url = path.as_uri()
            try:
                data = path.read_bytes()
                item, html = archive.parse_archive_text(decode_html(data).text, path.name)
            except (OSError, archive.ArchiveFormatError) as error:
                stats.failed += 1
                stats.errors.append(str(error))
                bad.append(FetchRecord(url=url, kind="file", fetched_at=now, error=str(error)))
                continue
            jobs.append(
                ArticleJob(
                    item=item,
                    source_language=source.language,
                    drop_params=source.drop_query_params,
                    seen_at=now,
                    archived_html=html,
                )
            )
            records.append(FetchRecord(url=url, kind="file", fetched_at=now, bytes=len(data)))
        yield jobs, records + bad


def _record(response: FetchResult, kind: str, now: datetime) -> FetchRecord:
    return FetchRecord(
        url=response.url,
        kind=kind,
        fetched_at=now,
        status=response.status,
        bytes=len(response.content),
        elapsed_ms=response.elapsed_ms,
        error=response.error,
    )
