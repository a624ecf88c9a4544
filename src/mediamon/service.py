"""The operations the CLI and the Airflow tasks share: each takes plain values, opens
what it needs and returns a small summary."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa

from mediamon import db
from mediamon.bi import rollup
from mediamon.bi import settings as bi_settings
from mediamon.db import migrate
from mediamon.errors import ConfigError, InputError
from mediamon.ingest import build, load, plan
from mediamon.ingest import run as pipeline
from mediamon.ingest.decode import decode_html
from mediamon.ingest.feeds import FeedItem
from mediamon.ingest.pool import default_workers, extraction_pool
from mediamon.ingest.session import GuardedSession, make_session
from mediamon.ingest.shard_runner import ShardOptions
from mediamon.ingest.shards import Shard
from mediamon.ingest.site_rules import load_site_rules
from mediamon.ingest.sources import Source, load_sources
from mediamon.settings import Settings
from mediamon.spikes import detect
from mediamon.spikes.model import Spike
from mediamon.text import one_line
from mediamon.topics import match, store
from mediamon.topics.definitions import TopicConfigError
from mediamon.topics.file import load_topics

logger = logging.getLogger(__name__)

# Sources a command-line ingest runs at once. One at a time, the extraction workers sat
# idle between sources while the next feed and its first pages were fetched (about 1 s
# in 8 with 500-item feeds); a second source keeps them busy. Few, unlike a shard's 16:
# each source holds up to two chunks of pages (see mediamon.ingest.run.CHUNK_SIZE).
COMMAND_SOURCE_THREADS = 2


def engine_for(settings: Settings) -> sa.Engine:
    """Engine on the configured database (or the embedded one), schema up to date and the
    ``bi`` views on the configured time zone."""
    engine = db.make_engine(db.resolve_url(settings))
    migrate.upgrade(engine)
    with engine.begin() as conn:
        bi_settings.sync_timezone(conn, settings.timezone)
    return engine


def plan_sources(
    settings: Settings, now: datetime, *, only: Sequence[str] = (), force: bool = False
) -> list[str]:
    """Task ``plan_sources`` of one task per source (the CLI's ``ingest``): check the
    configuration files, upgrade the schema, sync the sources file into ``sources``, and
    name the sources due.

    A bad sources or extraction file fails here, before any source is fetched; a bad
    topics file is logged (the alerts run keeps the stored topics, see
    :func:`mediamon.topics.store.refresh_topics`) and does not stop ingestion.

    Args:
        settings: Where the database and configuration files are.
        now: The run's time; a source is due when its poll interval has passed.
        only: Restrict to these source names (unknown names are an error).
        force: Treat every selected source as due.

    Raises:
        SourceConfigError: the sources file is invalid.
        ConfigError: the extraction file is invalid, or ``only`` names a source that is
            not configured.
    """
    return [s.name for s in due_sources(settings, now, only=only, force=force)]


def plan_shards(
    settings: Settings,
    now: datetime,
    *,
    only: Sequence[str] = (),
    force: bool = False,
    shards: int,
) -> list[Shard]:
    """Task ``plan_sources``: as :func:`plan_sources`, then split the due sources into
    at most ``shards`` shards (never more than Airflow's 1,024), each host's sources in
    one shard (see :mod:`mediamon.ingest.shards`).

    Raises:
        SourceConfigError: the sources file is invalid.
        ValueError: the extraction file is invalid, or ``only`` names a source that is
            not configured.
    """
    from mediamon.ingest.shards import plan_shards as split

    due = due_sources(settings, now, only=only, force=force)
    planned = split(due, shards)
    logger.info("%d sources due, in %d shards", len(due), len(planned))
    return planned


def due_sources(
    settings: Settings, now: datetime, *, only: Sequence[str] = (), force: bool = False
) -> list[Source]:
    """As :func:`plan_sources`, the due sources as the sources file defined them when it
    was read here: hand them to :func:`ingest_sources`, which reads no file again."""
    in_file = load_sources(settings.sources_path)
    configured = _select(in_file, only)
    try:
        load_site_rules(str(settings.extraction_path))
    except ConfigError:
        raise
    except ValueError as error:  # a bad extraction file: fix the file, do not retry
        raise ConfigError(str(error)) from error
    try:
        load_topics(settings.topics_path)
    except TopicConfigError as error:
        logger.error("%s; the alerts run keeps the stored topic definitions", error)
    engine = engine_for(settings)
    try:
        due = plan.plan_sources(engine, configured, now, force=force)
        with engine.begin() as conn:
            bi_settings.mark_enabled_sources(conn, [s.name for s in in_file])
    finally:
        engine.dispose()
    return due


def ingest_shard(
    settings: Settings,
    source_names: Sequence[str],
    run_key: str,
    now: datetime,
    options: ShardOptions,
) -> list[dict[str, object]]:
    """Task ``ingest_shard``: ingest one shard's sources as :func:`plan_shards` stored
    them (no sources file is read), with one HTTP session, one extraction pool started
    by the first new article, and robots.txt cached in the database. Returns one summary
    per source.

    Raises:
        ShardIncomplete: a source crashed; the others were ingested first.
    """
    from mediamon.ingest import shard_runner
    from mediamon.ingest.robots_store import DatabaseRobotsStore
    from mediamon.ingest.source_store import stored_sources

    site_rules = load_site_rules(str(settings.extraction_path))
    engine = shard_runner.make_shard_engine(db.resolve_url(settings))
    try:
        with engine.connect() as conn:
            configured, ids = stored_sources(conn, source_names)
        with make_session(
            settings.user_agent, settings.http_retries, settings.http_backoff_s
        ) as session:
            if isinstance(session, GuardedSession):
                session.robots_store = DatabaseRobotsStore(engine)
            return shard_runner.ingest_sources(
                engine, configured, ids, session, run_key, now, options, site_rules
            )
    finally:
        engine.dispose()


def ingest(
    settings: Settings,
    source_names: Iterable[str],
    run_key: str,
    now: datetime,
    *,
    refetch_known: bool = False,
    workers: int | None = None,
) -> list[dict[str, object]]:
    """Ingest the named sources, :data:`COMMAND_SOURCE_THREADS` at a time, as a shard
    does; a failing source never stops the others (its errors are in the fetch log and
    the returned summaries, which follow ``source_names``' order).

    Raises:
        ShardIncomplete: a source crashed (a bug, the database); raised after every
            source has run, with all their summaries.
    """
    names = list(source_names)
    configured = _select(load_sources(settings.sources_path), names)
    return ingest_sources(
        settings, configured, run_key, now, refetch_known=refetch_known, workers=workers
    )


def ingest_sources(
    settings: Settings,
    configured: Sequence[Source],
    run_key: str,
    now: datetime,
    *,
    refetch_known: bool = False,
    workers: int | None = None,
) -> list[dict[str, object]]:
    """As :func:`ingest`, the sources given as :func:`due_sources` read them (the
    command's plan): the sources file is not read a second time, so an edit saved
    between the plan and the ingestion neither fails the run unrecorded nor ingests
    another list than the one planned.

    Raises:
        ShardIncomplete: as :func:`ingest`.
    """
    from mediamon.ingest import shard_runner

    # After due_sources, the rules it checked (cached, the file is not read again);
    # otherwise a bad file fails here.
    site_rules = load_site_rules(str(settings.extraction_path))
    options = ShardOptions(
        workers=default_workers() if workers is None else workers,
        source_threads=COMMAND_SOURCE_THREADS,
        refetch_known=refetch_known,
        time_budget_s=None,  # run by hand: every source named is polled
    )
    engine = engine_for(settings)
    try:
        with engine.begin() as conn:
            ids = load.sync_sources(conn, configured)
        with make_session(
            settings.user_agent, settings.http_retries, settings.http_backoff_s
        ) as session:
            return shard_runner.ingest_sources(
                engine, configured, ids, session, run_key, now, options, site_rules
            )
    finally:
        engine.dispose()


def prune_fetch_log(settings: Settings, before: datetime) -> int:
    """Delete the fetch-log rows older than ``before``; return how many."""
    from mediamon.db import retention

    engine = engine_for(settings)
    try:
        return retention.prune_fetch_log(engine, before)
    finally:
        engine.dispose()


def import_archive(
    settings: Settings,
    folder: Path,
    *,
    source_name: str | None = None,
    language: str | None = None,
    progress: Callable[[int], None] | None = None,
    total: Callable[[int], None] | None = None,
) -> dict[str, object]:
    """Load a folder of seed-format files as an archive source (backfill).

    The source is named after the folder unless ``source_name`` is given; importing the
    same folder again changes nothing.
    """
    from mediamon.ingest.archive import archive_files, resolved_folder
    from mediamon.ingest.sources import LANGUAGE, NAME_PATTERN, quoted

    folder = resolved_folder(folder)
    name = (
        source_name
        or "archive-"
        + "".join(c if c.isalnum() or c in "_.-" else "-" for c in folder.name.lower()).strip("-")[
            :50
        ]
    )
    if not NAME_PATTERN.match(name):
        hint = "" if source_name else "; pass --source-name"
        raise InputError(
            f"{quoted(name)} is not a valid source name (letters, digits, _ . -, at most 64){hint}"
        )
    # As sources.yaml's language is checked: before, any text was stored as the source's
    # language, a line break or 5,000 characters included, and shown in status and BI.
    if language is not None and not LANGUAGE.match(language):
        raise InputError(
            f"--language: expected a language tag such as zh or zh-CN, got {quoted(language)}"
        )
    source = Source(name=name, kind="archive", location=str(folder), language=language)
    site_rules = load_site_rules(str(settings.extraction_path))  # a bad file fails here
    files = len(archive_files(folder))
    if not files:
        # A mistyped or parent folder: before, "items": 0, exit 0, and a source named after
        # the wrong folder stayed in the sources table, shown in every status from then on.
        raise InputError(
            f"{folder}: no archive files in this folder (*.txt or *.html; subfolders are not"
            " read); nothing imported"
        )
    if total:
        total(files)
    engine = engine_for(settings)
    try:
        with engine.begin() as conn:
            ids = load.sync_sources(conn, [source])
        now = datetime.now(UTC)
        with extraction_pool() as pool:
            stats = pipeline.ingest_source(
                engine, source, ids[name], None, f"import:{folder}", now,
                pool=pool, progress=progress, site_rules=site_rules,
            )  # fmt: skip
        rollup.refresh(engine)  # a backfill marks many hours: fold them once, here
    finally:
        engine.dispose()
    return stats.as_dict()


# The bytes of a file name that are not UTF-8 (a GBK name from an old archive), as Python
# holds them in a str (PEP 383).
UNDECODABLE_BYTE = re.compile("[\udc80-\udcff]")


def _json_line(value: dict[str, Any]) -> str:
    """``value`` as one JSON line of UTF-8 text: a file name's undecodable byte 0xNN is
    written as the escape ``\\udcNN``, which ``json.loads`` and ``os.fsencode`` turn
    back into the name (written as it stood, the line was no UTF-8: a strict reader of
    the output failed, and with ``PYTHONIOENCODING=utf-8`` the command itself did)."""
    line = json.dumps(value, ensure_ascii=False)
    return UNDECODABLE_BYTE.sub(lambda byte: f"\\u{ord(byte.group()):04x}", line)


def extract_files(paths: Iterable[Path]) -> Iterable[str]:
    """One JSON line per local HTML file: path, title, text, published_at, language —
    the same decode, extract and normalize steps an article page goes through."""
    from mediamon.ingest.archive import ArchiveFormatError, read_capped
    from mediamon.ingest.sources import DEFAULT_MAX_BYTES

    for path in paths:
        try:
            if not path.exists():
                raise InputError(f"{path}: no such file")
            if not path.is_file():  # /dev/zero, a FIFO or a folder would never end
                raise InputError(f"{path}: not a regular file")
            decoded = decode_html(read_capped(path, DEFAULT_MAX_BYTES))
        except (OSError, ArchiveFormatError, InputError) as error:
            message = str(error) if isinstance(error, ValueError) else f"{path}: {error}"
            yield _json_line({"path": str(path), "error": message})
            continue
        job = build.ArticleJob(
            item=FeedItem(link=path.resolve().as_uri()),
            source_language=None,
            drop_params=(),
            seen_at=datetime.now(UTC),
            archived_html=decoded.text,
        )
        article = build.build_article(job).article
        published = article.published_at if article else None
        yield _json_line(
            {
                "path": str(path),
                "title": article.title if article else None,
                "text": article.body_text if article else "",
                "published_at": published.isoformat() if published else None,
                "language": article.language if article else None,
                "encoding": decoded.encoding,
            }
        )


def run_alerts(
    settings: Settings,
    at: datetime,
    *,
    send: Callable[[EmailMessage], None] | None = None,
    sender: str | None = None,
    dry_run: bool = False,
) -> dict[str, Any]:
    """``mediamon alerts run``: the ``mediamon_alerts`` DAG's three tasks in one call —
    :func:`match_topics` → :func:`detect_spikes` at ``at`` → :func:`deliver_alerts`
    through ``send`` (default: the ``mediamon_smtp`` connection from the environment; no
    connection means alerts stay pending).

    With ``dry_run`` nothing is written or sent: the topics file is validated (the stored
    definitions are used if it is invalid) and the windows are tested on the mentions as
    they are.
    """
    if dry_run:
        return _dry_run(settings, at)
    # the mail stack is imported where mail is sent: `mediamon ingest` never loads it
    from mediamon.alerts import smtp

    if send is None:
        smtp_settings = smtp.settings_from_env()
        if smtp_settings is not None:
            send = smtp.smtp_sender(smtp_settings)
            sender = sender or smtp_settings.sender
        else:
            logger.warning("no %s connection: alerts stay pending", smtp.SMTP_CONN_ID)
    matched = match_topics(settings)
    summary: dict[str, Any] = {
        "topics": matched["topics"],
        "matched": matched["matched"],
        "alerts_created": detect_spikes(settings, at),
    }
    if send is not None:
        summary["delivery"] = deliver_alerts(settings, send, at, sender)
    return summary


def _dry_run(settings: Settings, at: datetime) -> dict[str, Any]:
    """The windows as tested, and for each what the run would record and mail.

    ``status`` is the test's verdict only: ``spike`` for a window whose alert was mailed
    an hour ago too (a re-run, ``--at`` a past hour), so an operator could not tell it
    from a new alert. Each window also says ``decision`` (see
    :class:`mediamon.spikes.detect.Outlook`), the ``alert_id`` concerned and its ``mail``
    (see :func:`mediamon.alerts.deliver.mail_outlook`: would_send, sent, would_skip,
    skipped, no_recipients; null when no alert is concerned); ``pending`` lists every
    alert whose mail is still pending, from any window, with what the run would do with
    it. Keys are only added, never renamed: scripts read ``status``.
    """
    from mediamon.alerts import deliver, subscriptions

    engine = engine_for(settings)
    try:
        try:
            topics = load_topics(settings.topics_path)
            error = None
        except TopicConfigError as problem:
            topics, error = store.stored_topics(engine), str(problem)
        spikes = detect.assess_topics(engine, topics, at, ZoneInfo(settings.timezone))
        windows = []
        pending = []
        with engine.connect() as conn:
            # Read for every window at once, as detect does (not three reads a topic).
            known = detect.KnownAlerts.read(conn, spikes, topics)
            # Who left which topic, once for every topic (not a read per alert).
            left = subscriptions.left_topics(
                conn, (r.address for topic in topics for r in topic.recipients)
            )
            for spike in spikes:
                topic = topics.get(spike.topic)
                outlook = (
                    detect.outlook(conn, spike, topic, known)
                    if topic is not None
                    else detect.Outlook("nothing")
                )
                mail = None
                if outlook.decision == "open" or outlook.alert_id is not None:
                    # the run delivers at its own time (`at`), as run_alerts does
                    mail = deliver.mail_outlook(
                        conn, outlook.alert_id, topics, spike.topic, at, left=left
                    )
                windows.append(
                    {
                        **_spike_summary(spike),
                        "decision": outlook.decision,
                        "alert_id": outlook.alert_id,
                        **(mail or {"mail": None}),
                    }
                )
            for alert_id, topic_key, window_end in deliver.pending_alerts(conn):
                pending.append(
                    {
                        "alert_id": alert_id,
                        "topic": topic_key,
                        "window_end": window_end.isoformat(),
                        **deliver.mail_outlook(conn, alert_id, topics, topic_key, at, left=left),
                    }
                )
    finally:
        engine.dispose()
    return {"dry_run": True, "topics_error": error, "windows": windows, "pending": pending}


def _spike_summary(spike: Spike) -> dict[str, Any]:
    return {
        "topic": spike.topic,
        "window_end": spike.window_end.isoformat(),
        "status": spike.status,
        "observed": int(spike.observed),
        "expected": round(float(spike.expected), 3),
        "p_value": float(spike.p_value),
    }


def match_topics(settings: Settings) -> dict[str, Any]:
    """Task ``match_topics``: load the topics file (an invalid one keeps the stored
    definitions) and match the articles that are new, or all of them for topics whose
    rules changed."""
    engine = engine_for(settings)
    try:
        refresh = store.refresh_topics(engine, settings.topics_path)
        matched = match.match_articles(engine, refresh.topics)
    finally:
        engine.dispose()
    return {"topics": refresh.as_dict(), "matched": matched.as_dict()}


def detect_spikes(settings: Settings, at: datetime) -> list[int]:
    """Task ``detect_spikes``: test each active topic's window ending at ``at``; return
    the new alerts' ids."""
    engine = engine_for(settings)
    try:
        return detect.detect(engine, store.stored_topics(engine), at, ZoneInfo(settings.timezone))
    finally:
        engine.dispose()


def deliver_alerts(
    settings: Settings,
    send: Callable[[EmailMessage], None],
    now: datetime,
    sender: str | None = None,
) -> dict[str, Any]:
    """Task ``deliver_alerts``: send every pending alert once; failures stay pending
    (:class:`mediamon.alerts.deliver.DeliveryError`)."""
    from mediamon.alerts import deliver
    from mediamon.alerts.compose import MailOptions

    engine = engine_for(settings)
    try:
        stats = deliver.deliver_pending(
            engine,
            send,
            now,
            sender=sender or deliver.DEFAULT_SENDER,
            options=MailOptions.from_settings(settings),
        )
    finally:
        engine.dispose()
    return dict(stats.as_dict())


def run_digests(
    settings: Settings,
    at: datetime,
    *,
    send: Callable[[EmailMessage], None] | None = None,
    sender: str | None = None,
    dry_run: bool = False,
    clock: datetime | None = None,
) -> dict[str, Any]:
    """``mediamon digest run`` and the ``mediamon_digests`` DAG's task: send the digests
    due at ``at`` (``clock``: the real time, for a late run; see
    :func:`mediamon.alerts.digest.run_digests`). The topics file is synced and new
    articles matched first, so a digest lists every story loaded before it; a dry run
    only reads (the file, or the stored topics if it is invalid) and says who is due with
    how many stories.

    Raises:
        MailConfigError: a real run without a ``mediamon_smtp`` connection (digests would
            silently never go out).
        DigestError: some digests could not be sent (they are due again next run).
    """
    from mediamon.alerts import deliver, digest, smtp
    from mediamon.alerts.compose import MailOptions

    if send is None and not dry_run:
        smtp_settings = smtp.settings_from_env()
        if smtp_settings is None:
            raise smtp.MailConfigError(
                f"no {smtp.SMTP_CONN_ID} connection (AIRFLOW_CONN_MEDIAMON_SMTP): nothing sent"
            )
        send = smtp.smtp_sender(smtp_settings)
        sender = sender or smtp_settings.sender
    engine = engine_for(settings)
    try:
        if dry_run:
            try:
                topics = load_topics(settings.topics_path)
            except TopicConfigError:
                topics = store.stored_topics(engine)
        else:
            topics = store.refresh_topics(engine, settings.topics_path).topics
            match.match_articles(engine, topics)
        stats = digest.run_digests(
            engine,
            topics,
            at,
            send,
            sender=sender or deliver.DEFAULT_SENDER,
            options=MailOptions.from_settings(settings),
            dry_run=dry_run,
            clock=clock,
        )
    finally:
        engine.dispose()
    return {"dry_run": dry_run, **stats.as_dict()}


def digests_waiting(settings: Settings, at: datetime, clock: datetime | None = None) -> int:
    """How many digests are due at ``at`` and would be mailed (a dry run; stale ones left
    out): when mail is not set up, these are the readers who get nothing."""
    summary = run_digests(settings, at, dry_run=True, clock=clock)
    return int(summary["due"]) - int(summary["stale"])


def _select(configured: list[Source], only: Iterable[str]) -> list[Source]:
    """The configured sources named in ``only`` (all when it is empty), each once, in
    the order named. ``only`` comes from the command line or a DAG run's params, which
    a user or the API may fill with anything: a name twice was polled twice (1,000
    copies, 1,000 feed requests), a string was read as its letters.

    Raises:
        ConfigError: ``only`` is not a list of names, or names an unknown source.
    """
    if isinstance(only, str | bytes) or not isinstance(only, Iterable):
        raise ConfigError(f"sources must be a list of source names, got {_shown(only)}")
    names = list(only)
    if not all(isinstance(n, str) for n in names):
        raise ConfigError(f"sources must be a list of source names, got {_shown(names)}")
    wanted = list(dict.fromkeys(names))  # each once, first mention first
    if not wanted:
        return configured
    by_name = {s.name: s for s in configured}
    unknown = [n for n in wanted if n not in by_name]
    if unknown:
        raise ConfigError(
            f"unknown source(s): {_shown(unknown)}; configured: {_shown(list(by_name))}"
        )
    return [by_name[n] for n in wanted]


def _shown(names: object, most: int = 10) -> str:
    """Names for a one-line message: the first ``most``, each cut, and how many more."""
    if not isinstance(names, list | tuple):
        return repr(names)[:100]
    # Escaped, not printed: a name from a DAG run's params with a line break, or a bidi
    # control, broke the one line (also the run's error in ingest_runs)
    # or showed another name than the one given. Printable CJK stays as it is.
    shown = ", ".join(one_line(n, limit=60) for n in names[:most])
    return shown + (f" and {len(names) - most} more" if len(names) > most else "")
