"""One ingest cycle of one source: fetch, decode, extract, normalize, load.

Work goes in chunks: each chunk's pages are fetched on a few threads, turned into
articles on a process pool (extraction is CPU-bound), and loaded with its fetch log in
one transaction, so a failure never leaves a half-written chunk and memory stays flat.
The source's polling state (mediamon.ingest.polling) is written last, once every chunk is in:
a run that dies half-way leaves it as it was, and the next run polls the feed again.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, replace
from datetime import datetime
from itertools import islice
from pathlib import Path
from typing import Any

import requests
import sqlalchemy as sa

from mediamon.ingest import archive, cpulimit, links, load, memory, polling, provenance
from mediamon.ingest.build import (
    EARLIEST_PUBLISHED,
    FUTURE_TOLERANCE,
    ArticleJob,
    BuildResult,
    build_article_safely,
)
from mediamon.ingest.decode import decode_html
from mediamon.ingest.feeds import FeedError, FeedItem, parse_feed
from mediamon.ingest.fetch import FEED_TYPES, PAGE_TYPES, FetchResult, fetch
from mediamon.ingest.normalize import canonical_url
from mediamon.ingest.politeness import HostLimits
from mediamon.ingest.site_rules import SiteRule
from mediamon.ingest.sources import DEFAULT_MAX_BYTES, Source
from mediamon.models import Article, FetchRecord, IngestStats

logger = logging.getLogger(__name__)

# Items fetched, built and loaded together. A source keeps two chunks in flight (see
# ingest_source), so its pages held in memory are twice this: 100 lets a command-line
# ingest run two sources at once in the memory one took with 200.
CHUNK_SIZE = 100
PAGE_THREADS = 4
# The pages' bytes one chunk holds before it is handed on (and a new one started): a
# chunk of 100 pages of 15 MB (the download cap) held 1.5 GB, two chunks in flight twice
# that, enough for the kernel to kill the task at every run. Usual pages are 50-500 kB,
# a usual chunk 5-50 MB; with the pages in flight a source's poll now holds some 250 MB.
CHUNK_PAGE_BYTES = 64 * 1024 * 1024


def fetch_options(source: Source) -> dict[str, Any]:
    """The source's limits as keyword arguments of :func:`mediamon.ingest.fetch.fetch`."""
    interval = source.host_min_interval
    return {
        "private_hosts": source.private_hosts,
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
    site_rules: Mapping[str, SiteRule] | None = None,
    deadline: float | None = None,
) -> IngestStats:
    """Run one ingest cycle of one source. Source-level failures (the feed cannot be
    fetched or parsed, an archive file is malformed) are recorded in the fetch log, the
    returned stats and the source's polling state; only database errors raise.

    Args:
        engine: The data database.
        source: What to ingest.
        source_id: Its id in ``sources`` (see :func:`mediamon.ingest.load.sync_sources`).
        session: HTTP session from :func:`mediamon.ingest.session.make_session` (None for archives).
        run_key: Identifies this run in the fetch log, e.g. the DAG run's interval.
        now: The time of the fetch, recorded as first_seen_at.
        pool: Process pool for extraction (:mod:`mediamon.ingest.pool`); None builds here.
        refetch_known: Fetch pages of articles already stored (normally skipped).
        progress: Called with the number of items finished after each chunk.
        site_rules: Per-site extraction rules, loaded once by the caller (None: those of
            the configured file).
        deadline: ``time.monotonic()`` after which no page is started (the shard's time
            budget), when it comes before the source's own budget runs out.
    """
    stats = IngestStats(source=source.name)
    own_deadline = time.monotonic() + source.budget.total_seconds()
    deadline = own_deadline if deadline is None else min(own_deadline, deadline)
    own_site = provenance.site_of(source.location) if source.kind == "feed" else None
    with engine.connect() as conn:
        stored = polling.load_state(conn, source_id)
    state = stored.before(run_key) if stored is not None else None
    job = ArticleJob(
        item=FeedItem(link=""),
        source_language=source.language,
        drop_params=source.drop_query_params,
        seen_at=now,
        site_rules=site_rules,
        own_site=own_site,
    )  # each item's job is this one with its item (and page) in place
    chunks: Iterator[Chunk]
    if source.kind == "archive":
        poll = polling.PollOutcome()
        try:
            files = archive.archive_files(Path(source.location))
        except archive.ArchiveFormatError as error:
            stats.errors.append(str(error))
            poll.outcome, poll.error = "failed", str(error)
            files = []
        chunks = archive_chunks(files, job, source.max_bytes, notes=stats.errors)
        stats.items = poll.items = len(files)
    elif session is None:
        raise ValueError(f"source {source.name}: a feed needs an HTTP session")
    else:
        options = fetch_options(source)
        feed = poll_feed(session, source, state, now, refetch_known=refetch_known, **options)
        poll = feed.poll
        stats.errors.extend(feed.errors)
        with engine.begin() as conn:
            load.write_fetch_log(conn, run_key, source_id, [feed.record])
        items, repeated = _distinct_items(feed.items, source, now)
        stats.errors.extend(repeated)
        stats.items = poll.items = len(items)
        chunks = feed_chunks(
            engine, session, source, items, job, source_id=source_id,
            refetch_known=refetch_known, deadline=deadline, **options,
        )  # fmt: skip
    # Two chunks in flight: the workers build chunk N while this process fetches chunk
    # N+1 and loads chunk N-1, so neither the cores nor the network wait on each other.
    in_flight: deque[tuple[Chunk, list[Any]]] = deque()
    for chunk in chunks:
        stats.already_known += chunk.already_known
        poll.new += chunk.new
        if chunk.left_for_next_poll:
            _left_for_next_poll(source, chunk.left_for_next_poll, stats, poll)
        if not chunk.entries:
            continue
        in_flight.append((chunk, _start_building(pool, chunk.jobs())))
        if len(in_flight) > 1:
            loaded, pending = in_flight.popleft()
            _load_chunk(engine, source_id, own_site, run_key, now, stats, loaded, pending, pool)
            if progress:
                progress(len(loaded.entries))
    while in_flight:
        loaded, pending = in_flight.popleft()
        _load_chunk(engine, source_id, own_site, run_key, now, stats, loaded, pending, pool)
        if progress:
            progress(len(loaded.entries))
    if source.kind == "archive":
        poll.new = stats.new
    stats.poll = poll.outcome
    with engine.begin() as conn:
        polling.record_poll(conn, source, source_id, run_key, now, state, poll)
    if poll.outcome == "failed":
        # WARNING, its reason first: ops read it in the task log, whose viewer does not
        # wrap (the reason sat at the end of the summary's dict, off the screen).
        reason = stats.errors[0] if stats.errors else "no reason recorded"
        logger.warning("source %s failed: %s; %s", source.name, reason, stats.as_dict())
    else:
        logger.info("source %s: %s", source.name, stats.as_dict())
    return stats


@dataclass(frozen=True)
class Entry:
    """One item of a chunk: its fetch-log row, and the article to build (None when the
    item failed before that, e.g. an unreadable archive file)."""

    record: FetchRecord
    job: ArticleJob | None = None


@dataclass(frozen=True)
class Chunk:
    """Items fetched together, loaded in one transaction.

    Attributes:
        entries: The items to load (may be empty when every item was already stored).
        already_known: Items skipped because their article is stored.
        new: Items never seen before (they drive adaptive polling).
        left_for_next_poll: Items not started because the source's time budget ran out
            (this chunk's and every later one's: the chunk is then the last).
    """

    entries: list[Entry]
    already_known: int = 0
    new: int = 0
    left_for_next_poll: int = 0

    def jobs(self) -> list[ArticleJob]:
        return [e.job for e in self.entries if e.job is not None]


@dataclass
class FeedPoll:
    """One fetch of a source's feed: its fetch-log row, its items and how the poll went.

    Attributes:
        record: The feed's fetch-log row (with the fetch or parse error, if any).
        items: The feed's items (none when it failed, was not modified or is unchanged).
        poll: The poll's outcome so far (items and new items are counted later).
        errors: Lines for the run's summary: skipped items, the feed's error.
    """

    record: FetchRecord
    items: list[FeedItem]
    poll: polling.PollOutcome
    errors: list[str]


def _start_building(pool: Executor | None, jobs: list[ArticleJob]) -> list[Any]:
    """Futures of the chunk's articles on the pool, or the results themselves without one."""
    if pool is None:
        return [build_article_safely(job) for job in jobs]
    return [pool.submit(build_article_safely, job) for job in jobs]


def _built(
    pool: Executor | None, job: ArticleJob, pending: Future[BuildResult] | BuildResult
) -> BuildResult:
    """A build's result. If its page cost the worker its CPU limit, the article is built
    again from the feed's text alone: a hostile page never costs the item."""
    if not isinstance(pending, Future):
        return pending
    try:
        return pending.result()
    except BrokenProcessPool as error:
        return BuildResult(None, f"extraction failed: {error}")
    except cpulimit.WorkerKilled as error:
        if job.page is None:  # an archived file: nothing simpler to build from
            return BuildResult(None, f"extraction failed: {error}")
        assert pool is not None, "a future comes from the pool"
        note = f"page extraction failed: {error}"
        again = pool.submit(build_article_safely, replace(job, page=None)).result()
        if again.article is None:
            return BuildResult(None, f"{note}; {again.note}")
        return BuildResult(again.article, f"{note}; used {again.article.content_origin}")


def _left_for_next_poll(
    source: Source, count: int, stats: IngestStats, poll: polling.PollOutcome
) -> None:
    """Note that ``count`` items wait for the next poll; forget the feed's validators
    and hash so that poll reads the feed again instead of finding it unchanged."""
    stats.left_for_next_poll += count
    stats.errors.append(
        f"time budget of {source.budget.total_seconds():g} s used up:"
        f" {count} item(s) left for the next poll"
    )
    poll.validators = None
    poll.body_sha256 = None


def _load_chunk(
    engine: sa.Engine,
    source_id: int,
    own_site: str | None,
    run_key: str,
    now: datetime,
    stats: IngestStats,
    chunk: Chunk,
    pending: list[Any],
    pool: Executor | None = None,
) -> None:
    """Wait for a chunk's articles and load them with its fetch log in one transaction."""
    results = iter([_built(pool, j, p) for j, p in zip(chunk.jobs(), pending, strict=True)])
    built: list[Article] = []
    claims: list[Article] = []
    records: list[FetchRecord] = []
    # link, its key, its article's key, its feed item's key
    led_to: list[tuple[str, str, str, bytes | None]] = []
    for entry in chunk.entries:
        record = entry.record
        if entry.job is None:  # failed before building: the record says why
            stats.failed += 1
            stats.errors.append(record.error or f"{record.url}: failed")
            records.append(record)
            continue
        result: BuildResult = next(results)
        article, note = result.article, result.note
        if article is None:
            stats.failed += 1
            stats.errors.append(f"{entry.job.item.link}: {note}")
        elif provenance.is_claim(article, own_site):
            claims.append(article)
            note = f"{note or 'feed text'}; another site's URL: kept as this source's claim"
        else:
            built.append(article)
            item = entry.job.item
            key = canonical_url(item.link, entry.job.drop_params)
            led_to.append((item.link, key, article.canonical_url, links.item_key(item)))
        if note:  # the note includes the fetch error, if there was one
            record = replace(record, error=note)
        records.append(record)
    with engine.begin() as conn:
        load.write_fetch_log(conn, run_key, source_id, records)
        written = load.upsert_articles(conn, source_id, built, now, own_site=own_site)
        links.remember(conn, source_id, led_to, now)
        provenance.store_claims(conn, source_id, claims, now)
    stats.claims += len(claims)
    stats.new += written.inserted
    stats.updated += written.updated
    stats.duplicates += written.copies
    stats.unchanged += len({a.canonical_url for a in built}) - len(written.article_ids)
    memory.return_freed()  # the chunk's pages and articles


def poll_feed(
    session: requests.Session,
    source: Source,
    state: polling.SourceState | None,
    now: datetime,
    *,
    refetch_known: bool = False,
    **options: Any,
) -> FeedPoll:
    """Fetch and parse the source's feed, conditionally when the last poll left
    validators (``state`` is what the last completed poll left: the state is written only
    once a poll has loaded everything, so an unchanged feed holds nothing left to load).

    Args:
        session: HTTP session.
        source: The feed source.
        state: The source's polling state before this run, if any.
        now: The time of the fetch.
        refetch_known: Read the feed even when it is unchanged.
        options: :func:`fetch_options` of the source.
    """
    poll = polling.PollOutcome(feed_url=source.location)
    errors: list[str] = []
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
                    language=source.language,
                )
                items = parsed.items
                errors.extend(parsed.skipped)
            except FeedError as error:
                record = replace(record, error=str(error))
    if record.error:
        errors.append(f"{source.location}: {record.error}")
        poll.outcome = "deferred" if response.retry_after_s else "failed"
        poll.error = record.error
    return FeedPoll(record, items, poll, errors)


def feed_chunks(
    engine: sa.Engine,
    session: requests.Session,
    source: Source,
    items: list[FeedItem],
    job: ArticleJob,
    *,
    source_id: int | None = None,
    refetch_known: bool = False,
    deadline: float | None = None,
    **options: Any,
) -> Iterator[Chunk]:
    """The feed's items in chunks, each page fetched (a few threads) unless the source
    reads only the feed; items whose article is stored are skipped (unless
    ``refetch_known``); an item ``source_id`` claimed before is not new. ``job`` is the
    template every item's job is made from. No page
    is started after ``deadline`` (``time.monotonic()``, the source's time budget): the
    chunk then says how many items wait for the next poll, and is the last."""
    now = job.seen_at

    def over_budget() -> bool:
        return deadline is not None and time.monotonic() > deadline

    for start in range(0, len(items), CHUNK_SIZE):
        if over_budget():
            yield Chunk([], left_for_next_poll=len(items) - start)
            return
        chunk = items[start : start + CHUNK_SIZE]
        urls = {i.link: canonical_url(i.link, source.drop_query_params) for i in chunk}
        item_keys = {i.link: links.item_key(i) for i in chunk}
        with engine.connect() as conn:
            known, earlier = polling.seen_before(conn, urls, now, source_id, item_keys)
        new = sum(1 for i in chunk if i.link not in earlier)
        already_known = 0
        if not refetch_known:
            fresh = [i for i in chunk if i.link not in known]
            already_known = len(chunk) - len(fresh)
            if job.own_site is not None and source_id is not None and already_known:
                seen = {i.link: urls[i.link] for i in chunk if i.link in known}
                with engine.begin() as conn:  # its site's stories, fetched by others first
                    links.credit_own_site(conn, source_id, job.own_site, seen)
            chunk = fresh
        if not chunk:
            yield Chunk([], already_known, new)
            continue
        if source.fetch_pages:

            def page(item: FeedItem) -> FetchResult | None:
                if over_budget():
                    return None  # over the source's time budget: the next poll takes it
                fetched = fetch(
                    session,
                    item.link,
                    accept_types=PAGE_TYPES,
                    check_robots=source.respect_robots_txt,
                    follow_refresh=True,
                    start_by=deadline,  # not after waiting for its host past the budget
                    **options,
                )
                return None if fetched.not_started else fetched

            entries: list[Entry] = []
            held = not_started = 0
            with ThreadPoolExecutor(max_workers=PAGE_THREADS) as threads:
                for position, (i, p) in enumerate(_fetched_in_order(threads, page, chunk)):
                    if p is None:
                        not_started += 1
                        continue
                    entries.append(Entry(_record(p, "page", now), replace(job, item=i, page=p)))
                    held += len(p.content)
                    if held >= CHUNK_PAGE_BYTES and position < len(chunk) - 1:
                        # handed on now; the chunk's counts go with its first part
                        yield Chunk(entries, already_known, new)
                        entries, held, already_known, new = [], 0, 0, 0
            if not_started:
                left = not_started + max(0, len(items) - start - CHUNK_SIZE)
                yield Chunk(entries, already_known, new, left_for_next_poll=left)
                return
        else:
            entries = [
                Entry(
                    FetchRecord(url=i.link, kind="page", fetched_at=now, error="feed only"),
                    replace(job, item=i),
                )
                for i in chunk
            ]
        yield Chunk(entries, already_known, new)


def _fetched_in_order(
    threads: ThreadPoolExecutor,
    fetch_one: Callable[[FeedItem], FetchResult | None],
    items: list[FeedItem],
) -> Iterator[tuple[FeedItem, FetchResult | None]]:
    """Each item with its page, in order, fetched by ``threads`` at most PAGE_THREADS
    ahead of the one handed out: ``map`` fetched them all at once and held every page
    until the last one came (see CHUNK_PAGE_BYTES)."""
    waiting = iter(items)
    pending = deque((i, threads.submit(fetch_one, i)) for i in islice(waiting, PAGE_THREADS))
    while pending:
        item, future = pending.popleft()
        for following in islice(waiting, 1):
            pending.append((following, threads.submit(fetch_one, following)))
        yield item, future.result()


def _distinct_items(
    items: list[FeedItem], source: Source, now: datetime
) -> tuple[list[FeedItem], list[str]]:
    """Drop items whose canonical URL repeats an earlier item's (tracking parameters
    differ); note dates in the future or before 1995, which build_article replaces by
    first-seen time. Returns the items kept and a line for each item dropped or noted."""
    kept: list[FeedItem] = []
    notes: list[str] = []
    seen: set[str] = set()
    for item in items:
        key = canonical_url(item.link, source.drop_query_params)
        if key in seen:
            notes.append(f"{item.link}: same article as an earlier item ({key})")
            continue
        seen.add(key)
        if note := _date_note(item, now):
            notes.append(f"{item.link}: {note}")
        kept.append(item)
    return kept, notes


def _date_note(item: FeedItem, now: datetime) -> str | None:
    """Why build_article will date the item by its first-seen time, if it will: a date
    in the future or before 1995."""
    if item.published_at is None:
        return None
    if item.published_at > now + FUTURE_TOLERANCE:
        return f"date {item.published_at.isoformat()} is in the future; first-seen time used"
    if item.published_at < EARLIEST_PUBLISHED:
        return (
            f"date {item.published_at.isoformat()} is before {EARLIEST_PUBLISHED.year};"
            " first-seen time used"
        )
    return None


def archive_chunks(
    files: list[Path],
    job: ArticleJob,
    max_bytes: int = DEFAULT_MAX_BYTES,
    notes: list[str] | None = None,
) -> Iterator[Chunk]:
    """An archive folder's files in chunks; a file that cannot be read or parsed, or is
    larger than ``max_bytes`` (refused before reading), is an entry without a job, its
    error in its fetch-log row. ``notes`` gets a line for each file that repeats an
    earlier file's article (the later file's text is stored, as a refetch would) and
    for each date build_article will not believe, as a feed's items get."""
    now = job.seen_at
    first_file: dict[str, str] = {}  # canonical URL -> the file that gave it first
    for start in range(0, len(files), CHUNK_SIZE):
        entries: list[Entry] = []
        bad: list[Entry] = []
        held = 0  # the files' bytes: handed on at CHUNK_PAGE_BYTES, as a feed's pages
        for path in files[start : start + CHUNK_SIZE]:
            if held >= CHUNK_PAGE_BYTES:
                yield Chunk(entries + bad)
                entries, bad, held = [], [], 0
            url = path.as_uri()
            try:
                data = archive.read_archive_file(path, max_bytes)
                text = decode_html(data, language=job.source_language).text
                item, html = archive.parse_archive_text(text, path.name, notes)
            except (OSError, ValueError) as error:  # ArchiveFormatError, or a bad file
                bad.append(
                    Entry(FetchRecord(url=url, kind="file", fetched_at=now, error=str(error)))
                )
                continue
            record = FetchRecord(url=url, kind="file", fetched_at=now, bytes=len(data))
            entries.append(Entry(record, replace(job, item=item, archived_html=html)))
            held += len(data)
            if notes is None:
                continue
            name = archive.shown_name(path.name)
            key = canonical_url(item.link, job.drop_params)
            if (earlier := first_file.setdefault(key, name)) != name:
                notes.append(f"{name}: same article as {earlier} ({key}); this file's text kept")
            if note := _date_note(item, now):
                notes.append(f"{name}: {note}")
        yield Chunk(entries + bad)


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
