"""The ops team's mails: an incident, its recovery, the weekly source-health report.
Plain text and HTML; everything that came from outside (source names, URLs, error texts)
is cleaned and escaped by :mod:`mediamon.alerts`' helpers. Times are shown in
MEDIAMON_TIMEZONE with their UTC offset, as in the alert mails."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta, tzinfo
from email.message import EmailMessage
from typing import Any

from mediamon.alerts.catalog import local_time
from mediamon.alerts.render import Rendered, build_message, clean, esc
from mediamon.ops.failure_mail import REPEAT_AFTER

DETAIL_CHARS = 2000


def _when(moment: datetime | None, zone: tzinfo) -> str:
    """``2024-06-10 10:00 (UTC+08:00)``; ``-`` for no time."""
    return local_time(moment, zone) if moment else "-"


def _flapping_note(recovery: bool, flap_window: timedelta) -> str:
    hours = f"{flap_window.total_seconds() / 3600:g} h"
    if recovery:
        return f"It came back soon after clearing before; it has now stayed clear for {hours}."
    return (
        f"It cleared less than {hours} ago and is back. Until it stays clear for {hours},"
        " it is not mailed again; its recovery is mailed then (MEDIAMON_HEALTH_FLAP_MINUTES)."
    )


def incident_message(
    incident: Any,
    recovery: bool,
    sender: str,
    recipients: Sequence[str],
    *,
    zone: tzinfo,
    unannounced: bool = False,
    flap_window: timedelta | None = None,
) -> EmailMessage:
    """The mail for one ``incidents`` row: the problem, or that it cleared; dated when it
    is built (sent), whatever the run's time; its times in ``zone``. ``unannounced``: a
    recovery whose INCIDENT mail never went out (it opened and cleared while no mail could
    be sent), said in the subject and first line, so ops do not look for a first mail that
    does not exist."""
    state = "RESOLVED" if recovery else "INCIDENT"
    unannounced = unannounced and recovery
    subject = f"[mediamon] {state}: {clean(incident.summary, 200)}"
    if unannounced:
        subject += " (opened and cleared while mail was down)"
    fields = [
        ("What", clean(incident.summary, 300)),
        ("Since", _when(incident.since, zone)),
        ("Found", _when(incident.opened_at, zone)),
    ]
    if recovery:
        fields.append(("Cleared", _when(incident.resolved_at, zone)))
    if unannounced:
        fields.append(("Mailed", "Never: no mail could be sent while it was open."))
    if getattr(incident, "flapping", False) and flap_window is not None:
        fields.append(("Flapping", _flapping_note(recovery, flap_window)))
    fields += [
        ("Detail", clean(incident.detail, DETAIL_CHARS)),
        ("What to do", "Nothing: it cleared." if recovery else clean(incident.advice, 600)),
        ("Incident", f"{incident.incident_id} ({clean(incident.dedupe_key, 200)})"),
    ]
    lead = "This problem has cleared." if recovery else "The mediamon watchdog found a problem."
    if unannounced:
        lead = (
            "This problem opened and cleared while no mail could be sent (the mail server"
            " was down or mail was not set up): you were not told when it opened."
        )
    text = (
        lead
        + "\n\n"
        + "\n".join(f"{name}: {value}" for name, value in fields)
        + "\n\nAll incidents: the bi.incidents view; `mediamon health run --dry-run` shows"
        " what the watchdog sees now.\n"
    )
    rows = _field_rows(fields)
    colour = "#1a7f37" if recovery else "#b42318"
    html = _page(
        subject,
        f'<h2 style="color:{colour};font-size:18px">{esc(state)}: {esc(incident.summary)}</h2>'
        f"<p>{esc(lead)}</p>"
        f'<table style="border-collapse:collapse;max-width:100%">{rows}</table>'
        '<p style="color:#555">All incidents: the <code>bi.incidents</code> view;'
        " <code>mediamon health run --dry-run</code> shows what the watchdog sees now.</p>",
    )
    return build_message(
        Rendered(subject=subject, text=text, html=html),
        sender,
        recipients,
        headers={"X-Mediamon-Incident": f"{incident.dedupe_key} {state.lower()}"},
    )


REPORT_COLUMNS = (
    ("source", "Source"),
    ("polls", "Polls"),
    ("failures", "Failures"),
    ("articles", "Articles"),
    ("median_latency_ms", "Median latency (ms)"),
    ("trend", "Trend vs week before"),
)


def report_message(
    rows: Sequence[Mapping[str, Any]],
    start: datetime,
    end: datetime,
    sender: str,
    recipients: Sequence[str],
    *,
    zone: tzinfo,
) -> EmailMessage:
    """The weekly source-health report: one row per source; its times in ``zone``."""
    subject = f"[mediamon] source health, week to {end.astimezone(zone):%Y-%m-%d}"
    head = f"Source health from {_when(start, zone)} to {_when(end, zone)}."
    # str() first: clean() turns a falsy value (a count of 0) into "".
    cells = [[clean(str(row.get(key, "")), 80) for key, _ in REPORT_COLUMNS] for row in rows]
    widths = [
        max(len(title), *(len(c[i]) for c in cells)) if cells else len(title)
        for i, (_, title) in enumerate(REPORT_COLUMNS)
    ]
    lines = [
        "  ".join(title.ljust(w) for (_, title), w in zip(REPORT_COLUMNS, widths, strict=True)),
        *("  ".join(c.ljust(w) for c, w in zip(cell, widths, strict=True)) for cell in cells),
    ]
    text = head + "\n\n" + "\n".join(lines) + "\n" + ("" if rows else "(no sources)\n")
    header = "".join(
        f'<th style="text-align:left;padding:4px 8px;border-bottom:1px solid #ccc">{esc(t)}</th>'
        for _, t in REPORT_COLUMNS
    )
    body_rows = "".join(
        "<tr>" + "".join(f'<td style="padding:4px 8px">{esc(c)}</td>' for c in cell) + "</tr>"
        for cell in cells
    )
    html = _page(
        subject,
        f'<h2 style="font-size:18px">{esc(subject)}</h2><p>{esc(head)}</p>'
        '<div style="overflow-x:auto"><table style="border-collapse:collapse">'
        f"<thead><tr>{header}</tr></thead><tbody>{body_rows}</tbody></table></div>",
    )
    return build_message(Rendered(subject=subject, text=text, html=html), sender, recipients)


def _field_rows(fields: Sequence[tuple[str, str]], markup: Mapping[str, str] | None = None) -> str:
    """An HTML table's rows, one a field: its name, then its value escaped (or the
    markup given for it, already safe)."""
    return "".join(
        f'<tr><th style="text-align:left;vertical-align:top;padding:4px 12px 4px 0">'
        f'{esc(name)}</th><td style="padding:4px 0;overflow-wrap:anywhere">'
        f"{(markup or {}).get(name) or esc(value, DETAIL_CHARS)}</td></tr>"
        for name, value in fields
    )


def _page(title: str, body: str) -> str:
    return (
        '<!DOCTYPE html><html><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{esc(title)}</title></head>"
        '<body style="font-family:sans-serif;font-size:14px;color:#222;margin:12px">'
        f"{body}</body></html>"
    )


def failure_text(error: BaseException | None) -> str:
    """What a failed task's mail says of its error: one line. A database error is what
    the command line says of it (``database unavailable: terminating connection due to
    administrator command``): SQLAlchemy's text of it went on with the statement and its
    parameters (``[SQL: COPY articles …] [parameters: …]``), 2,000 characters of an
    article's text in the mail when the database went away mid-load. Other errors keep
    their type and message."""
    if error is None:
        return ""
    from mediamon.errors import explain

    explained = explain(error)
    if explained is not None:
        return str(explained)
    import sqlalchemy as sa

    if isinstance(error, sa.exc.StatementError) and error.orig is not None:
        error = error.orig  # the driver's message, without the statement and parameters
    return f"{type(error).__name__}: {error}"


def task_failure_message(
    failure: Mapping[str, str],
    sender: str,
    recipients: Sequence[str],
) -> EmailMessage:
    """The mail for an Airflow task that failed after its retries: which task of which
    run, the error it failed with and the link to its log, in plain text and HTML.

    Args:
        failure: ``dag_id``, ``task_id``, ``run_id``, ``tries`` (how many were made),
            ``error`` (the exception as text, ``""`` when Airflow gave none),
            ``log_url`` (the task's page in the Airflow UI) and, optionally,
            ``quiet_until`` (until when failures with the same error are not mailed) and
            ``resolved_at`` (when the error was mailed as over, if it is back since).
        sender, recipients: From and To.
    """
    task = clean(f"{failure['dag_id']}.{failure['task_id']}", 300)
    subject = f"[mediamon] task failed: {task} ({clean(failure['run_id'], 200)})"
    fields = [
        ("Task", task),
        ("Run", clean(failure["run_id"], 300)),
        ("Tries", clean(failure["tries"], 20)),
        ("Error", clean(failure["error"], DETAIL_CHARS) or "(Airflow gave no error text)"),
    ]
    if failure.get("resolved_at"):
        fields.append(
            (
                "Again",
                f"This error was mailed as over at {clean(failure['resolved_at'], 60)} and is"
                " back: it flaps. Its end is mailed once no task has failed with it for"
                f" {REPEAT_AFTER.total_seconds() / 3600:g} hours.",
            )
        )
    if failure.get("quiet_until"):
        fields.append(
            (
                "Repeats",
                "Failures with this same error are not mailed again until"
                f" {clean(failure['quiet_until'], 60)}; they still show red in the Airflow UI.",
            )
        )
    fields.append(("Log", clean(failure["log_url"], 2000)))
    lead = "An Airflow task of mediamon failed after its retries."
    text = (
        lead
        + "\n\n"
        + "\n".join(f"{name}: {value}" for name, value in fields)
        + "\n\nThe run's other tasks and its summary are on the run's page in the Airflow UI.\n"
    )
    log_url = fields[-1][1]
    # Only an http(s) link is made a link; anything else is shown as text.
    link = (
        f'<a href="{esc(log_url, 2000)}">{esc(log_url, 2000)}</a>'
        if log_url.startswith(("http://", "https://"))
        else esc(log_url, 2000)
    )
    rows = _field_rows(fields, {"Log": link})
    html = _page(
        subject,
        f'<h2 style="color:#b42318;font-size:18px">Task failed: {esc(task)}</h2>'
        f"<p>{esc(lead)}</p>"
        f'<table style="border-collapse:collapse;max-width:100%">{rows}</table>'
        "<p style=\"color:#555\">The run's other tasks and its summary are on the run's page"
        " in the Airflow UI.</p>",
    )
    return build_message(
        Rendered(subject=subject, text=text, html=html),
        sender,
        recipients,
        headers={"X-Mediamon-Task-Failure": f"{failure['dag_id']}.{failure['task_id']}"},
    )


def task_recovery_message(
    recovery: Mapping[str, str],
    sender: str,
    recipients: Sequence[str],
) -> EmailMessage:
    """The mail saying that a task failure mailed to ops is over: a task that had failed
    with its error succeeded (:mod:`mediamon.ops.failure_mail`).

    Args:
        recovery: ``dag_id``, ``task_id``, ``run_id`` (of the run that succeeded),
            ``error`` (the error that was mailed), ``mailed_at`` and ``back_at`` (shown
            times) and ``log_url``.
        sender, recipients: From and To.
    """
    task = clean(f"{recovery['dag_id']}.{recovery['task_id']}", 300)
    error = clean(recovery["error"], DETAIL_CHARS) or "(Airflow gave no error text)"
    subject = f"[mediamon] RESOLVED task failure: {task} ({clean(recovery['error'], 80)})"
    fields = [
        ("Task", task),
        ("Error", error),
        ("Mailed", clean(recovery["mailed_at"], 60)),
        ("Back", f"{clean(recovery['back_at'], 60)}, run {clean(recovery['run_id'], 300)}"),
        ("Log", clean(recovery["log_url"], 2000)),
    ]
    lead = (
        "A task that failed with this error has succeeded: the failure mailed earlier is"
        " over. Failures with this error are mailed again if it comes back."
    )
    text = lead + "\n\n" + "\n".join(f"{name}: {value}" for name, value in fields) + "\n"
    log_url = fields[-1][1]
    link = (
        f'<a href="{esc(log_url, 2000)}">{esc(log_url, 2000)}</a>'
        if log_url.startswith(("http://", "https://"))
        else esc(log_url, 2000)
    )
    html = _page(
        subject,
        f'<h2 style="color:#067647;font-size:18px">Resolved: {esc(task)}</h2>'
        f"<p>{esc(lead)}</p>"
        f'<table style="border-collapse:collapse;max-width:100%">'
        f"{_field_rows(fields, {'Log': link})}</table>",
    )
    return build_message(
        Rendered(subject=subject, text=text, html=html),
        sender,
        recipients,
        headers={"X-Mediamon-Task-Recovery": f"{recovery['dag_id']}.{recovery['task_id']}"},
    )
