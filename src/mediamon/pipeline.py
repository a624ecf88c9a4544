"""One ingest cycle of one source: fetch, decode, extract, normalize, load.

Work goes in chunks: each chunk's pages are fetched on a few threads, turned into
articles on a process pool (extraction is CPU-bound), and loaded with its fetch log in
one transaction, so a failure never leaves a half-written chunk and memory stays flat.
The source's polling state (mediamon.polling) is written last, once every chunk is in:
a run that dies half-way leaves it as it was, and the next run polls the feed again.
"""

from __future__ import annotations

import gc
import hashlib
import logging
import os
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Executor, Future, ProcessPoolExecutor, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from html import unescape
from pathlib import Path
from typing import Any

import requests
import sqlalchemy as sa

from mediamon import archive, candidates, load, memory, polling
from mediamon.decode import decode_html
from mediamon.extract import extract
from mediamon.feeds import FeedError, FeedItem, parse_feed
from mediamon.fetch import FEED_TYPES, PAGE_TYPES, FetchResult, fetch
from mediamon.models import Article, FetchRecord, IngestStats
from mediamon.normalize import (
    canonical_url,
    clean_text,
    content_hash,
    detect_language,
    fold,
    primary_language,
    sentence_hashes,
    to_utc,
    warm_up,
)
from mediamon.politeness import HostLimits
from mediamon.sources import Source

logger = logging.getLogger(__name__)

CHUNK_SIZE = 200
PAGE_THREADS = 4
MIN_PAGE_TEXT_CHARS = 40  # shorter "articles" are navigation or paywall stubs
FUTURE_TOLERANCE = timedelta(hours=1)
HTML_TYPES = ("text/html", "application/xhtml+xml", "")


@dataclass(frozen=True)
class ArticleJob:
    """Everything needed to build one article, picklable for the process pool."""

    item: FeedItem
    source_language: str | None
    drop_params: tuple[str, ...]
    seen_at: datetime
    page: FetchResult | None = None
    archived_html: str | None = None


@dataclass(frozen=True)
class BuildResult:
    article: Article | None
    note: str | None  # why the page's own text was not used, or why nothing was built


def default_workers() -> int:
    """Extraction processes: ``MEDIAMON_WORKERS``, else one per core."""
    return max(1, int(os.environ.get("MEDIAMON_WORKERS") or os.cpu_count() or 1))


@contextmanager
def extraction_pool(workers: int | None = None) -> Iterator[Executor | None]:
    """A process pool for :func:`build_article`, or None to build in this process."""
    workers = default_workers() if workers is None else workers
    memory.tune_allocator()
    if workers <= 1:
        yield None
        return
    import multiprocessing

    candidates.warm_up()  # the extractors, imported before the fork and shared by the workers
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


def _html2txt(html: str) -> str:
    import trafilatura

    return str(trafilatura.html2txt(html) or "")


def html_to_text(html: str) -> str:
    """Plain text of an HTML fragment (feed content blocks): the extracted main text when
    there is one, else all the text. Feeds also put plain text where HTML belongs."""
    if "<" not in html:
        return unescape(html)
    html = f"<html><body>{html}</body></html>"
    extracted = extract(html, with_metadata=False)
    if extracted and len(extracted.text) >= MIN_PAGE_TEXT_CHARS:
        return extracted.text
    return _html2txt(html)


def _feed_text(item: FeedItem) -> tuple[str, str] | None:
    """The feed's own text for an item, full content before summary, with its origin."""
    for origin, html in (("feed_content", item.content_html), ("feed_summary", item.summary_html)):
        if html and (text := html_to_text(html).strip()):
            return origin, text
    return None


def _known_metadata(item: FeedItem) -> list[str]:
    """What the feed item already says, so the page need not be searched for it (the
    feed's own values are used first anyway)."""
    given = {
        "title": item.title,
        "author": item.author,
        "date": item.published_at,
        "categories": item.categories,
    }
    return [name for name, value in given.items() if value]


def build_article(job: ArticleJob) -> BuildResult:
    """Turn a feed item (and its page, or archived HTML) into a normalized article."""
    item = job.item
    text: str | None = None
    origin = "page"
    note: str | None = None
    meta = None
    raw: bytes | None = None
    final_url = item.link
    if job.archived_html is not None:
        origin = "archive"
        raw = job.archived_html.encode("utf-8")
        meta = extract(job.archived_html, item.link, known=_known_metadata(item))
        text = meta.text if meta else html_to_text(job.archived_html) or None
        if not text:
            return BuildResult(None, "archived HTML holds no text")
    elif job.page is not None and job.page.ok:
        raw = job.page.content
        final_url = job.page.final_url
        if job.page.content_type not in HTML_TYPES:
            note = f"page is {job.page.content_type}, not HTML"
        else:
            decoded = decode_html(job.page.content, job.page.charset)
            meta = extract(decoded.text, final_url, known=_known_metadata(item))
            if meta and len(meta.text) >= MIN_PAGE_TEXT_CHARS:
                text = meta.text
            else:
                note = "no article text found in the page"
    elif job.page is not None:
        note = f"page not fetched ({job.page.error})"
    if text is None:
        fallback = _feed_text(item)
        if fallback is None:
            return BuildResult(None, (note + "; " if note else "") + "feed item has no text")
        origin, text = fallback
        note = (note + f"; used {origin}") if note else None

    body = clean_text(text)
    title = clean_text(item.title or (meta.title if meta else "") or "") or None
    match_text = fold(body)  # the title stays out: syndicated copies often retitle
    published = item.published_at or (meta.published_at if meta else None)
    if published is not None:
        published = to_utc(published)
        if published > job.seen_at + FUTURE_TOLERANCE:
            published = None  # a date in the future is a feed bug, not news from tomorrow
    language = (
        primary_language(item.language)
        or primary_language(meta.language if meta else None)
        or job.source_language
        or detect_language(body)
    )
    summary = None
    if item.summary_html and origin != "feed_summary":
        summary = clean_text(_html2txt(item.summary_html)) or None
    article = Article(
        canonical_url=canonical_url(final_url, job.drop_params),
        url=item.link,
        title=title,
        author=item.author or (meta.author if meta else None),
        published_at=published,
        language=language,
        body_text=body,
        match_text=match_text,
        summary=summary or (meta.description if meta else None),
        image_url=meta.image if meta else None,
        categories=item.categories or (meta.categories if meta else ()),
        content_origin=origin,
        content_hash=content_hash(match_text),
        sentence_hashes=sentence_hashes(match_text),
        raw_sha256=hashlib.sha256(raw).digest() if raw is not None else None,
        raw_bytes=len(raw) if raw is not None else None,
    )
    return BuildResult(article, note)


def build_article_safely(job: ArticleJob) -> BuildResult:
    """:func:`build_article`, with a crash on one hostile page turned into that item's
    failure instead of the whole source's (the traceback goes to the log)."""
    try:
        return build_article(job)
    except Exception as error:  # noqa: BLE001 - recorded per item, never fatal to the run
        logger.exception("building %s failed", job.item.link)
        return BuildResult(None, f"extraction failed: {type(error).__name__}: {error}"[:300])
    finally:
        memory.return_freed()  # the page's parse trees


def fetch_options(source: Source) -> dict[str, Any]:
    """The source's limits as keyword arguments of :func:`mediamon.fetch.fetch`."""
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
        source_id: Its id in ``sources`` (see :func:`mediamon.load.sync_sources`).
        session: HTTP session from :func:`mediamon.fetch.make_session` (None for archives).
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


def due_sources(
    conn: sa.Connection, configured: Sequence[Source], ids: dict[str, int], now: datetime
) -> list[Source]:
    """Sources whose next poll is due, by their adaptive polling state (see
    :func:`mediamon.polling.due`); a source never polled is due."""
    return polling.due(conn, configured, ids, now)
