"""Operations for the ops team, shared by the CLI and the Airflow tasks: recording how an
ingest run went, its data-quality checks, the watchdog, the weekly report and the status
table. Each takes plain values, opens what it needs and returns a small summary."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa

from mediamon.bi import rollup
from mediamon.db.queries import query
from mediamon.ops import health, quality, runs
from mediamon.ops import report as source_report
from mediamon.ops.mail import failure_text
from mediamon.service import engine_for
from mediamon.settings import Settings
from mediamon.text import one_line

logger = logging.getLogger(__name__)

Send = Callable[[EmailMessage], None]


@dataclass(frozen=True)
class RunVerdict:
    """How an ingest run ended: its summary (XCom-sized) and the reason it failed, if so."""

    summary: dict[str, object]
    failure: str | None


def finish_ingest(
    settings: Settings,
    run_key: str,
    run_at: datetime,
    summaries: Iterable[Any],
    planned: Any = None,
    failures: Iterable[Any] = (),
) -> RunVerdict:
    """Sum the run's per-source summaries (however its tasks grouped them), record the
    run in ``ingest_runs`` and say whether it failed: a shard of ``planned`` (the planned
    shards) died without reporting, its sources then counted failed and named, or every
    due source failed and no failed shard task has mailed that already.

    ``failures`` is what the shard tasks that raised left (:func:`runs.shard_failure`):
    the sources they had loaded count as loaded, the rest as failed, and the run's
    verdict does not repeat their failure (each task's own mail tells ops; the watcher
    turns the run red): one mail for a failed shard, not its and summarize's."""
    outcomes = runs.shard_outcomes(planned, summaries, failures)
    run = runs.summarize([*outcomes.summaries, *runs.died_summaries(outcomes.died)])
    # Every source failed, each with its shard task (mailed): nothing new to tell.
    mailed = set(run.failed_sources) <= outcomes.in_failed_tasks
    died = runs.died_reason(outcomes.died)
    reason = died or (None if mailed else runs.failure_reason(run))
    # The row says failed whenever the Airflow run is red (a shard task failed: the
    # watcher; one died: summarize), though only a death fails summarize: the failed
    # task has mailed, and the row is what the watchdog, BI and the CLI read.
    causes = (died, runs.failed_tasks_reason(run, outcomes))
    engine = engine_for(settings)
    try:
        with engine.begin() as conn:
            runs.record(conn, run_key, run_at, run, error="\n".join(filter(None, causes)))
        rollup.refresh(engine)  # the run's articles and fetches into the BI roll-up
    finally:
        engine.dispose()
    if outcomes.failed_in_task:
        logger.warning(
            "%d source(s) not ingested, their ingest task failed (its mail and log say why): %s",
            len(outcomes.failed_in_task),
            ", ".join(outcomes.failed_in_task),
        )
    if run.sources_failed and not reason:
        logger.warning(
            "%d of %d source(s) failed: %s",
            run.sources_failed,
            run.sources,
            ", ".join(run.failed_sources),
        )
    return RunVerdict(run.as_dict(), reason)


def record_failed_run(settings: Settings, run_key: str, run_at: datetime, error: str) -> None:
    """Record a run that failed before ingesting (a config error in planning), so the
    watchdog reports it; a database that cannot be reached is only logged.

    Only in a configured database (``MEDIAMON_DATABASE_URL``, where a watchdog reads):
    without one, recording meant starting the embedded PostgreSQL for a command that
    had already failed, and its start-up lines came before the error the user needs."""
    if not settings.database_url:
        return
    try:
        engine = engine_for(settings)
        try:
            with engine.begin() as conn:
                runs.record(conn, run_key, run_at, runs.RunSummary(), error=error)
        finally:
            engine.dispose()
    except Exception as db_error:  # noqa: BLE001 - the configuration error is what to report
        # One line, as the command line says it: SQLAlchemy's text of the error went on
        # with the statement, its parameters and a link, four lines before the one the
        # user needs (a read-only database and a broken sources file).
        logger.error(
            "could not record the failed run %s: %s",
            run_key,
            one_line(failure_text(db_error), 500),
        )


def check_quality(settings: Settings, run_key: str, run_at: datetime) -> dict[str, Any]:
    """Run the data-quality checks on the run's articles, store the results on its
    ``ingest_runs`` row and return ``{"status", "checks", "failed"}``."""
    limits = settings.quality
    engine = engine_for(settings)
    try:
        with engine.begin() as conn:
            results = quality.run_checks(conn, run_key, run_at, limits)
            status = runs.record_checks(conn, run_key, run_at, [r.as_dict() for r in results])
    finally:
        engine.dispose()
    for result in results:
        log = logger.info if result.passed else logger.error
        log("check %s %s: %s", result.name, "passed" if result.passed else "FAILED", result.detail)
    return {
        "status": status,
        "checks": [r.as_dict() for r in results],
        "failed": [r.name for r in results if not r.passed],
    }


def _mail_from_env(send: Send | None, sender: str | None) -> tuple[Send | None, str]:
    """``send``, or a sender through the ``mediamon_smtp`` connection from the environment
    (None when it is not defined)."""
    from mediamon.alerts import smtp as mail
    from mediamon.alerts.deliver import DEFAULT_SENDER

    if send is None:
        smtp = mail.settings_from_env()
        if smtp is not None:
            send, sender = mail.smtp_sender(smtp), sender or smtp.sender
    return send, sender or DEFAULT_SENDER


def health_run(
    settings: Settings,
    at: datetime,
    *,
    send: Send | None = None,
    sender: str | None = None,
    dry_run: bool = False,
) -> health.HealthResult:
    """One watchdog pass at ``at`` (see :mod:`mediamon.ops.health`); mails go to
    ``MEDIAMON_OPS_EMAIL`` through ``send`` (default: the ``mediamon_smtp`` connection)."""
    if not dry_run:
        send, sender = _mail_from_env(send, sender)
    engine = engine_for(settings)
    try:
        return health.run(
            engine,
            at,
            send=send,
            sender=sender or "",
            recipients=settings.ops_emails,
            limits=settings.health,
            zone=ZoneInfo(settings.timezone),
            dry_run=dry_run,
            also=config_findings(settings, at),
        )
    finally:
        engine.dispose()


def health_report(
    settings: Settings,
    at: datetime,
    *,
    send: Send | None = None,
    sender: str | None = None,
    dry_run: bool = False,
) -> source_report.ReportOutcome:
    """The weekly source-health report for the week ending at ``at``, mailed once."""
    if not dry_run:
        send, sender = _mail_from_env(send, sender)
    engine = engine_for(settings)
    try:
        return source_report.send_weekly(
            engine,
            at,
            send=send,
            sender=sender or "",
            recipients=settings.ops_emails,
            zone=ZoneInfo(settings.timezone),
            dry_run=dry_run,
        )
    finally:
        engine.dispose()


INGEST_FAILS = "ingest runs fail until it is fixed"
TOPICS_KEPT = "alerts and digests keep the stored topics until it is fixed"


def _config_errors(settings: Settings) -> list[tuple[str, Path, str, str]]:
    """The configuration files that cannot be read now: (name, path, error, effect)."""
    from mediamon.errors import ConfigError
    from mediamon.ingest.site_rules import load_site_rules
    from mediamon.ingest.sources import load_sources
    from mediamon.topics.definitions import TopicConfigError
    from mediamon.topics.file import load_topics

    errors = []
    try:
        load_sources(settings.sources_path)
    except ConfigError as error:
        errors.append(("sources", settings.sources_path, str(error), INGEST_FAILS))
    try:
        load_site_rules(str(settings.extraction_path))
    except ValueError as error:
        errors.append(("extraction", settings.extraction_path, str(error), INGEST_FAILS))
    try:
        load_topics(settings.topics_path)
    except TopicConfigError as error:
        errors.append(("topics", settings.topics_path, str(error), TOPICS_KEPT))
    return errors


def config_problems(settings: Settings) -> list[str]:
    """What is wrong with the configuration files now, one line each with what it does
    to the runs. The status table shows the sources as the last run synced them; a file
    edited into invalid YAML since showed nothing amiss there until runs failed."""
    return [f"{error} ({effect})" for _, _, error, effect in _config_errors(settings)]


def config_findings(settings: Settings, at: datetime) -> list[health.Finding]:
    """The watchdog's findings for configuration files that cannot be read, since the
    file was last written. An unreadable topics file left the alerts task green (the
    stored topics stay in force) and was in no mail: ops never heard of it."""
    findings = []
    for name, path, error, effect in _config_errors(settings):
        try:
            since = min(at, datetime.fromtimestamp(path.stat().st_mtime, UTC))
        except OSError:  # missing: the error says so
            since = at
        except (OverflowError, ValueError):
            # A modification time past datetime's years (tmpfs keeps 64 bits: `touch -d
            # @100000000000000`): before, ValueError ended the watchdog run, so the file's
            # incident was never opened. Its time is no use: the finding is from now.
            since = at
        findings.append(
            health.Finding(
                kind="config_invalid",
                subject=name,
                summary=f"the {name} file cannot be read",
                detail=" ".join(error.split()),
                advice=f"Fix {path} ({effect}); `mediamon status` checks it.",
                since=since,
            )
        )
    return findings


def source_status(settings: Settings, now: datetime) -> dict[str, Any]:
    """Per source: its state and why (``bi.source_health``'s status and reason, so the
    command and the dashboards agree), last success, last error text, articles in the
    last 24 h; the open incidents; and what is wrong with the configuration files."""
    engine = engine_for(settings)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                query("source_status"),
                {"since": now - timedelta(days=1)},
            ).mappings()
            sources = [dict(row) for row in rows]
            incidents = [
                dict(row)
                for row in conn.execute(
                    sa.text(
                        "select kind, subject, summary, since from incidents"
                        " where resolved_at is null order by since"
                    )
                ).mappings()
            ]
    finally:
        engine.dispose()
    return {
        "sources": sources,
        "open_incidents": incidents,
        "config_problems": config_problems(settings),
    }
