"""The ops watchdog: finds what is wrong from mediamon's own tables, keeps one incident per
problem episode and mails each once (and once more when it clears;
the mail is :mod:`mediamon.ops.incident_mail`'s).

It reads only the database, so it works from the ``mediamon_health`` DAG and from
``mediamon health run`` alike, and does not depend on task callbacks (a SIGKILLed task
runs none). What it looks for:

- ``source_failing``: a source whose last N polls failed (``source_state``);
  sources no longer in the sources file (``sources.enabled``) are not judged;
- ``source_silent``: a source with no new article for K times its usual interval between
  arrivals, learned from its last weeks (median gap);
- ``volume_drop``: all sources together brought far fewer articles in the last hours than
  in the same hours of past weeks;
- ``alerts_undelivered``: topic alerts pending for over an hour (no SMTP connection, the
  server down);
- ``ingest_stale``: no successful ingest run (``ingest_runs``) for over an hour;
- ``ingest_failed``: the latest ingest run failed (all sources, a config or database
  error); a run that found no source due read nothing and does not count;
- ``quality_check``: a data-quality check failed in the latest checked run.
"""

from __future__ import annotations

import logging
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any

import sqlalchemy as sa

from mediamon.alerts.catalog import local_time
from mediamon.ops import outbox
from mediamon.ops.incident_mail import FLAP_WINDOW, IncidentMailError, Send, notify
from mediamon.ops.runs import CHECKS_FAILED
from mediamon.ops.thresholds import HealthThresholds

logger = logging.getLogger(__name__)

# Ingest runs that tell whether ingest works: failed ones, and those that polled a source.
_TELLING = "(status = 'failed' or sources_due > 0)"
# A source not polled for this long is not judged silent (it was removed, or nothing runs).
POLLED_WITHIN = timedelta(days=1)


@dataclass(frozen=True)
class Finding:
    """One problem the watchdog sees now; ``key`` names the episode (kind:subject)."""

    kind: str
    subject: str
    summary: str
    detail: str
    advice: str
    since: datetime

    @property
    def key(self) -> str:
        return f"{self.kind}:{self.subject}"


@dataclass
class HealthResult:
    """What one watchdog run found and did (sent counts are 0 in a dry run)."""

    findings: list[Finding] = field(default_factory=list)
    opened: list[str] = field(default_factory=list)
    resolved: list[str] = field(default_factory=list)
    mailed: list[str] = field(default_factory=list)
    recoveries_mailed: list[str] = field(default_factory=list)
    unmailed: list[str] = field(default_factory=list)  # open incidents nobody was told of
    note: str | None = None
    # Ops mails kept while the mail server was down, delivered (or dropped) by this run.
    outbox: dict[str, object] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "findings": [f.key for f in self.findings],
            "opened": self.opened,
            "resolved": self.resolved,
            "mailed": self.mailed,
            "recoveries_mailed": self.recoveries_mailed,
            "unmailed": self.unmailed,
            "note": self.note,
            "outbox": self.outbox,
        }


# ---------------------------------------------------------------------------------------
# Findings


def find_problems(
    conn: sa.Connection, at: datetime, limits: HealthThresholds, zone: tzinfo = UTC
) -> list[Finding]:
    """Every problem visible at ``at``, in a stable order; the times in their details
    shown in ``zone`` (MEDIAMON_TIMEZONE) with the UTC offset, as the mails' other times."""
    return [
        *_failing_sources(conn, limits, zone),
        *_silent_sources(conn, at, limits, zone),
        *_volume_drop(conn, at, limits),
        *_undelivered_alerts(conn, at, limits, zone),
        *_ingest_runs(conn, at, limits, zone),
    ]


def _ago(at: datetime, then: datetime) -> str:
    return _duration(at - then)


def _duration(span: timedelta) -> str:
    minutes = int(span.total_seconds() // 60)
    if minutes < 120:
        return f"{minutes} min"
    hours = minutes / 60
    return f"{hours:.0f} h" if hours < 48 else f"{hours / 24:.1f} days"


def _failing_sources(conn: sa.Connection, limits: HealthThresholds, zone: tzinfo) -> list[Finding]:
    rows = conn.execute(
        sa.text(
            "select s.name, s.location, st.consecutive_failures, st.last_error,"
            "       st.last_success_at, st.last_polled_at,"
            "       (select min(f.fetched_at) from fetch_log f"
            "         where f.source_id = s.source_id and f.kind in ('feed', 'file')"
            "           and f.error is not null"
            "           and f.fetched_at > coalesce(st.last_success_at, '-infinity')"
            "       ) as first_failure"
            " from source_state st join sources s using (source_id)"
            # A source removed from the sources file (or disabled there) is not polled
            # again: its failure streak is history, not a problem to keep open.
            " where st.consecutive_failures >= :n and s.enabled order by s.name"
        ),
        {"n": limits.failing_polls},
    ).all()
    findings = []
    for row in rows:
        since = row.first_failure or row.last_polled_at
        last_ok = (
            f"last success {local_time(row.last_success_at, zone)}"
            if row.last_success_at
            else "never succeeded"
        )
        findings.append(
            Finding(
                kind="source_failing",
                subject=row.name,
                summary=f"source {row.name} failed its last {row.consecutive_failures} polls",
                detail=f"{row.location}: {row.last_error or 'no error text'} ({last_ok})",
                advice=(
                    f"Open {row.location} from the worker host; if it moved or is gone, fix"
                    f" or disable '{row.name}' in the sources file. The ingest task's log and"
                    " `mediamon status` show each failed poll."
                ),
                since=since,
            )
        )
    return findings


def _silent_sources(
    conn: sa.Connection, at: datetime, limits: HealthThresholds, zone: tzinfo
) -> list[Finding]:
    # An arrival: a moment (a run's time) at which the source brought new articles.
    rows = conn.execute(
        sa.text(
            "with arrivals as ("
            "  select source_id, first_seen_at as t from articles"
            "   where first_seen_at > :start and first_seen_at <= :at group by 1, 2),"
            " gaps as ("
            "  select source_id, t, t - lag(t) over (partition by source_id order by t) as gap"
            "   from arrivals)"
            " select s.name, s.location, count(g.gap) as gaps, max(g.t) as last_arrival,"
            "  percentile_cont(0.5) within group (order by extract(epoch from g.gap))"
            "   filter (where g.gap is not null) as usual_s,"
            "  (select max(f.fetched_at) from fetch_log f where f.source_id = s.source_id"
            "    and f.kind in ('feed', 'file') and f.fetched_at <= :at) as last_poll"
            " from gaps g join sources s using (source_id) where s.enabled"
            " group by s.source_id, s.name, s.location order by s.name"
        ),
        {"start": at - limits.history, "at": at},
    ).all()
    findings = []
    for row in rows:
        if row.gaps < limits.min_arrivals - 1 or row.usual_s is None:
            continue
        usual = timedelta(seconds=float(row.usual_s))
        allowed = max(usual * limits.silent_factor, limits.min_silence)
        quiet = at - row.last_arrival
        # Silent means: polled while overdue, and nothing new. A source no longer polled
        # (removed from the file, or the scheduler stopped) is not silent; ingest_stale
        # and source_failing cover the rest.
        polled_while_overdue = (
            row.last_poll is not None
            and row.last_poll > row.last_arrival + allowed
            and row.last_poll > at - POLLED_WITHIN
        )
        if quiet <= allowed or not polled_while_overdue:
            continue
        findings.append(
            Finding(
                kind="source_silent",
                subject=row.name,
                summary=f"source {row.name} has brought no new article for {_duration(quiet)}",
                detail=(
                    f"Usually a new article every {_duration(usual)} (median over"
                    f" {row.gaps} gaps in the last {_duration(limits.history)}); silent for"
                    f" more than {limits.silent_factor:g}x that. Last new article first seen"
                    f" {local_time(row.last_arrival, zone)}. Feed: {row.location}"
                ),
                advice=(
                    f"Check that {row.location} still lists recent articles and that polls"
                    f" of '{row.name}' succeed (`mediamon status`); a feed that stopped"
                    " updating or moved needs a new URL in the sources file."
                ),
                since=row.last_arrival,
            )
        )
    return findings


def _volume_drop(conn: sa.Connection, at: datetime, limits: HealthThresholds) -> list[Finding]:
    weeks = max(1, limits.history // timedelta(days=7))
    first = conn.execute(
        sa.text("select min(first_seen_at) from articles where first_seen_at <= :at"), {"at": at}
    ).scalar_one()
    if first is None:
        return []
    counts: dict[int, int] = {}
    for week in range(weeks + 1):
        end = at - timedelta(days=7 * week)
        if week and end - limits.volume_window < first:
            break  # before mediamon ran: no baseline, not zero
        counts[week] = int(
            conn.execute(
                sa.text(
                    "select count(*) from articles where first_seen_at > :start"
                    " and first_seen_at <= :end"
                ),
                {"start": end - limits.volume_window, "end": end},
            ).scalar_one()
        )
    past = [n for week, n in counts.items() if week > 0]
    if not past:
        return []
    baseline = statistics.median(past)
    now_count = counts[0]
    if baseline < limits.min_volume or now_count >= limits.volume_ratio * baseline:
        return []
    window = _duration(limits.volume_window)
    return [
        Finding(
            kind="volume_drop",
            subject="all",
            summary=f"{now_count} new articles in the last {window}, usually {baseline:g}",
            detail=(
                f"The same {window} of the past {len(past)} week(s) brought"
                f" {', '.join(str(n) for n in past)} articles (median {baseline:g}); a cliff is"
                f" under {limits.volume_ratio:.0%} of that."
            ),
            advice=(
                "Look for many sources failing at once (network, DNS, proxy, a blocked user"
                " agent) in `mediamon status` and the last mediamon_ingest runs."
            ),
            since=at - limits.volume_window,
        )
    ]


def _undelivered_alerts(
    conn: sa.Connection, at: datetime, limits: HealthThresholds, zone: tzinfo
) -> list[Finding]:
    row = conn.execute(
        sa.text(
            "select count(*) as pending, min(created_at) as oldest from alerts"
            " where state = 'open' and created_at <= :limit"
        ),
        {"limit": at - limits.alert_age},
    ).one()
    if not row.pending:
        return []
    return [
        Finding(
            kind="alerts_undelivered",
            subject="alerts",
            summary=f"{row.pending} topic alert(s) pending for over {_duration(limits.alert_age)}",
            detail=(
                f"The oldest was detected {local_time(row.oldest, zone)} and is still not mailed."
            ),
            advice=(
                "Check the Airflow connection mediamon_smtp (defined? server reachable?) and"
                " the log of the last mediamon_alerts.deliver_alerts task; pending alerts go"
                " out on the next run once mail works."
            ),
            since=row.oldest,
        )
    ]


def _ingest_runs(
    conn: sa.Connection, at: datetime, limits: HealthThresholds, zone: tzinfo
) -> list[Finding]:
    runs = conn.execute(
        sa.text(
            "select count(*) as runs, min(run_at) as first,"
            "       max(run_at) filter (where status = 'success') as last_success"
            " from ingest_runs where run_at <= :at"
        ),
        {"at": at},
    ).one()
    if not runs.runs:
        return []  # never run under the scheduler (or the CLI): nothing to expect
    findings = []
    since = runs.last_success or runs.first
    if at - since > limits.stale_after:
        findings.append(
            Finding(
                kind="ingest_stale",
                subject="ingest",
                summary=f"no successful ingest run for {_ago(at, since)}",
                detail=(
                    f"Last successful run: {local_time(runs.last_success, zone)}"
                    if runs.last_success
                    else f"No run has succeeded since the first, {local_time(runs.first, zone)}."
                ),
                advice=(
                    "Is the scheduler running and mediamon_ingest unpaused? Look at its last"
                    " runs in the Airflow UI (Grid view) and their failed tasks' logs."
                ),
                since=since,
            )
        )
    # A run that found no source due (all backing off after failures, or none configured)
    # succeeds without reading anything: it says nothing about whether ingest works, and
    # must not close an ingest_failed incident while the sources are still down.
    latest = conn.execute(
        sa.text(
            "select run_key, run_at, status, error, checks from ingest_runs"
            f" where run_at <= :at and {_TELLING} order by run_at desc, finished_at desc limit 1"
        ),
        {"at": at},
    ).one_or_none()
    if latest is None:
        return findings
    failed_checks = [c for c in latest.checks or [] if not c.get("passed")]
    # A run failed by its checks alone is reported per check below, not twice.
    causes = [
        line for line in (latest.error or "").splitlines() if not line.startswith(CHECKS_FAILED)
    ]
    if latest.status == "failed" and (causes or not failed_checks):
        streak_start = conn.execute(
            sa.text(
                f"select min(run_at) from ingest_runs where run_at <= :at and {_TELLING}"
                " and run_at > coalesce((select max(run_at) from ingest_runs"
                f"  where run_at <= :at and status <> 'failed' and {_TELLING}), '-infinity')"
            ),
            {"at": at},
        ).scalar_one()
        findings.append(
            Finding(
                kind="ingest_failed",
                subject="ingest",
                summary="the latest ingest run failed",
                detail=f"{latest.run_key}: {'; '.join(causes) or 'no error recorded'}",
                advice=(
                    "Open the run in the Airflow UI (mediamon_ingest, Grid view): the red task's"
                    " log names the cause. A config error needs the sources file fixed; then"
                    " trigger the DAG again."
                ),
                since=streak_start or latest.run_at,
            )
        )
    for check in failed_checks:
        findings.append(
            Finding(
                kind="quality_check",
                subject=str(check.get("name")),
                summary=f"data-quality check {check.get('name')} failed",
                detail=f"{latest.run_key}: {check.get('detail')}",
                advice=(
                    "Look at the articles of that run (bi.articles, first_seen_at = the run's"
                    " time) and the check_quality task's log; a source whose pages changed"
                    " layout needs its extraction looked at."
                ),
                since=latest.run_at,
            )
        )
    return findings


# ---------------------------------------------------------------------------------------
# Incidents


def open_incidents(conn: sa.Connection) -> dict[str, Any]:
    """The open incidents by dedupe key."""
    rows = conn.execute(
        sa.text("select * from incidents where resolved_at is null order by incident_id")
    ).all()
    return {row.dedupe_key: row for row in rows}


def _changes(
    conn: sa.Connection, findings: Sequence[Finding], at: datetime
) -> tuple[list[Finding], list[str], list[str]]:
    """What a run at ``at`` changes: the findings to record, the keys it opens and the
    keys it resolves. A later run's judgement stands: a run at an earlier time (Airflow's
    "clear task" on a past run, ``health run --at`` a past time) neither opens again a
    problem a later run found cleared nor resolves one a later run still found.

    A run stamped after the clock's time now was no later run: the clock ran ahead
    (a bad NTP step, a VM restored) and was set right, or ``--at`` named a time to come.
    Believed, its stamps kept every later run from resolving or opening those incidents
    until the clock caught up with them, a year later for a clock a year ahead."""
    clock = datetime.now(UTC)
    before = open_incidents(conn)
    cleared_later = set(
        conn.execute(
            sa.text(
                "select dedupe_key from incidents where resolved_at > :at and resolved_at <= :clock"
            ),
            {"at": at, "clock": clock},
        ).scalars()
    )

    def judged_later(moment: datetime) -> bool:
        return at < moment <= clock

    current = [
        f
        for f in findings
        if (f.key in before and not judged_later(before[f.key].last_seen_at))
        or (f.key not in before and f.key not in cleared_later)
    ]
    opened = [f.key for f in current if f.key not in before]
    found = {f.key for f in findings}
    resolved = [
        key
        for key, row in before.items()
        if key not in found and not judged_later(row.last_seen_at)
    ]
    return current, opened, resolved


def reconcile(
    conn: sa.Connection,
    findings: Sequence[Finding],
    at: datetime,
    flap_window: timedelta = FLAP_WINDOW,
) -> tuple[list[str], list[str]]:
    """Open an incident per new finding, refresh the open ones still found and resolve
    the rest; return the keys opened and resolved. What a later run judged stays (see
    :func:`_changes`). A finding whose flapping incident cleared within ``flap_window``
    and is still held back (its recovery not mailed) opens that incident again; one whose
    last episode cleared within ``flap_window`` opens a flapping one."""
    current, opened, resolved = _changes(conn, findings, at)
    for key in opened:
        _reopen_held(conn, key, at, flap_window)
    for finding in current:
        conn.execute(
            sa.text(
                "insert into incidents (dedupe_key, kind, subject, summary, detail, advice,"
                " since, opened_at, last_seen_at, flapping)"
                " values (:key, :kind, :subject, :summary, :detail, :advice, :since, :at, :at,"
                "  exists (select 1 from incidents where dedupe_key = :key"
                "          and resolved_at > :flapped_since and resolved_at <= :at))"
                " on conflict (dedupe_key) where resolved_at is null do update set"
                " summary = excluded.summary, detail = excluded.detail,"
                " last_seen_at = case when incidents.last_seen_at > :clock"
                " then excluded.last_seen_at"  # stamped by a clock that ran ahead
                " else greatest(incidents.last_seen_at, excluded.last_seen_at) end"
            ),
            {
                "key": finding.key,
                "kind": finding.kind,
                "subject": finding.subject,
                "summary": finding.summary,
                "detail": finding.detail,
                "advice": finding.advice,
                "since": finding.since,
                "at": at,
                "clock": max(at, datetime.now(UTC)),
                "flapped_since": at - flap_window,
            },
        )
    if resolved:
        conn.execute(
            sa.text(
                "update incidents set resolved_at = :at"
                " where resolved_at is null and dedupe_key = any(:keys)"
            ),
            {"at": at, "keys": resolved},
        )
    return opened, resolved


def _reopen_held(conn: sa.Connection, key: str, at: datetime, flap_window: timedelta) -> None:
    """Open again the flapping incident of ``key`` that cleared within ``flap_window``
    and whose recovery is still held back: the same episode goes on, and nothing is
    mailed (its INCIDENT mail went out, no RESOLVED mail did)."""
    conn.execute(
        sa.text(
            "update incidents set resolved_at = null where incident_id = ("
            " select incident_id from incidents where dedupe_key = :key and flapping"
            "  and resolved_at > :since and resolved_at <= :at"
            "  and recovery_notified_at is null"
            " order by resolved_at desc limit 1)"
        ),
        {"key": key, "since": at - flap_window, "at": at},
    )


def run(
    engine: sa.Engine,
    at: datetime,
    *,
    send: Send | None,
    sender: str,
    recipients: Sequence[str],
    limits: HealthThresholds,
    zone: tzinfo = UTC,
    dry_run: bool = False,
    also: Sequence[Finding] = (),
) -> HealthResult:
    """One watchdog pass at ``at``: find, record, mail. A dry run finds and reports what
    it would open and resolve, and writes and sends nothing. Times in the details and mails
    are shown in ``zone`` (MEDIAMON_TIMEZONE). ``also``: problems found outside the
    database (configuration files), treated as the others.

    Raises:
        IncidentMailError: some mails were not sent; the incidents are recorded all the
            same, the error's ``result`` says what the run found and did.
    """
    result = HealthResult()
    failure: IncidentMailError | None = None
    with engine.begin() as conn:
        result.findings = [*find_problems(conn, at, limits, zone), *also]
        if dry_run:
            _, result.opened, result.resolved = _changes(conn, result.findings, at)
            result.note = "dry run: nothing written, nothing sent"
            return result
        result.opened, result.resolved = reconcile(conn, result.findings, at, limits.flap_window)
    for key in result.opened:
        logger.warning("incident opened: %s", key)
    if send is None or not recipients:
        result.note = (
            "no mediamon_smtp connection" if send is None else "MEDIAMON_OPS_EMAIL is not set"
        ) + ": incidents are recorded (bi.incidents) but not mailed"
    else:
        # Mails kept while the server was down go first (mediamon.ops.outbox): the
        # watchdog runs whatever else fails. They do not turn the run red: each was a
        # failure already shown, and a server still down fails the incident mails below.
        result.outbox = outbox.deliver_pending(engine, send).as_dict()
        try:
            result.mailed, result.recoveries_mailed = notify(
                engine, send, sender, recipients, at, zone, limits.flap_window
            )
        except IncidentMailError as error:
            failure = error
            result.mailed, result.recoveries_mailed = error.mailed, error.recovered
            result.note = str(error)
    with engine.connect() as conn:
        result.unmailed = list(
            conn.execute(
                sa.text(
                    "select dedupe_key from incidents where resolved_at is null"
                    " and notified_at is null and mail_refused is null order by incident_id"
                )
            ).scalars()
        )
    if failure is not None:
        failure.result = result
        raise failure
    return result
