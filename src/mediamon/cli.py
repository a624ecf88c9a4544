"""The ``mediamon`` command: the same functions the Airflow tasks call, without Airflow."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from mediamon import db, errors, service
from mediamon.bi import access
from mediamon.db import migrate
from mediamon.db.roles import BI_ROLE
from mediamon.errors import EXIT_USAGE, ConfigError, InputError, MailNotSent
from mediamon.ingest.sources import SourceConfigError
from mediamon.settings import Settings, unknown_variables

if TYPE_CHECKING:
    from mediamon.ops.health import HealthResult


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mediamon", description=__doc__.replace("``", ""))
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    parser.add_argument(
        "--debug", action="store_true", help="show the traceback of an error, not one line"
    )
    commands = parser.add_subparsers(dest="command", required=True)

    database = _command(commands, "db", "database administration")
    db_commands = database.add_subparsers(dest="db_command", required=True)
    _command(db_commands, "upgrade", "apply pending SQL migrations")
    url = _command(
        db_commands, "url", "print the database URL, as psql reads it (starts the embedded server)"
    )
    url.add_argument(
        "--database",
        help="a database of the embedded server: mediamon (the default) or airflow",
    )
    url.add_argument(
        "--sqlalchemy", action="store_true", help="SQLAlchemy form (postgresql+psycopg://)"
    )
    bi_user = _command(
        db_commands,
        "bi-user",
        "create a login in the read-only role mediamon_bi and print its URL once"
        " (password: MEDIAMON_BI_PASSWORD, else generated)",
    )
    bi_user.add_argument("name", help="login name (lower-case letters, digits, _)")
    _command(db_commands, "stop", "stop the embedded PostgreSQL server")
    _command(
        db_commands,
        "roles",
        "create or update the tasks' writer role and the BI login named by"
        " MEDIAMON_WRITER_ROLE / MEDIAMON_BI_LOGIN (passwords from *_PASSWORD)",
    )

    ingest = _command(commands, "ingest", "run one ingest cycle without Airflow")
    ingest.add_argument(
        "--source", action="append", default=[], help="only this source (repeatable)"
    )
    ingest.add_argument("--refetch", action="store_true", help="fetch pages already stored")

    archive = _command(commands, "import-archive", "load a folder of archived items")
    archive.add_argument("folder", type=Path)
    archive.add_argument("--source-name", help="source name (default: archive-FOLDER)")
    archive.add_argument("--language", help="language of the archive's articles, e.g. zh")

    extract = _command(commands, "extract", "print one JSON line per local HTML file")
    extract.add_argument("files", nargs="+", type=Path)

    status = _command(
        commands,
        "status",
        "per source: state and why (as bi.source_health), last success, last error",
    )
    status.add_argument("--json", action="store_true", help="JSON for scripts")

    health = _command(commands, "health", "the ops watchdog and its weekly report")
    health_commands = health.add_subparsers(dest="health_command", required=True)
    for name, text in (
        ("run", "find problems, open or close incidents, mail MEDIAMON_OPS_EMAIL"),
        ("report", "mail the weekly source-health report (once per ISO week)"),
    ):
        command = _command(health_commands, name, text)
        command.add_argument(
            "--at", help="the time to judge, ISO 8601 (default: now); naive is UTC"
        )
        command.add_argument(
            "--dry-run", action="store_true", help="show what it finds: write and send nothing"
        )

    topics = _command(commands, "topics", "the topics file")
    topic_commands = topics.add_subparsers(dest="topics_command", required=True)
    _command(topic_commands, "check", "validate topics.yaml (MEDIAMON_TOPICS); exit 2 if bad")
    alerts = _command(commands, "alerts", "topic spike alerts")
    alert_commands = alerts.add_subparsers(dest="alerts_command", required=True)
    alerts_run = _command(
        alert_commands, "run", "match topics, detect spikes and mail alerts (via mediamon_smtp)"
    )
    alerts_run.add_argument("--at", help="detection time, ISO 8601 (default: now); naive is UTC")
    alerts_run.add_argument(
        "--dry-run", action="store_true", help="test only: write and send nothing"
    )
    digest = _command(commands, "digest", "daily and weekly digests of new stories")
    digest_commands = digest.add_subparsers(dest="digest_command", required=True)
    digest_run = _command(
        digest_commands,
        "run",
        "send the digests due now (or at --at), once per recipient and period",
    )
    digest_run.add_argument("--at", help="the run's time, ISO 8601 (default: now); naive is UTC")
    digest_run.add_argument(
        "--dry-run", action="store_true", help="show who is due and how many stories; send nothing"
    )
    _command(commands, "demo", "ingest the bundled sample site through Airflow, offline")
    _command(commands, "run", "start Airflow's services on 127.0.0.1 with mediamon's DAGs")
    _command(
        commands,
        "stop",
        "stop the Airflow services `mediamon run` started, and the embedded database",
    )
    airflow = _command(commands, "airflow", "run an airflow command in mediamon's environment")
    airflow.add_argument("args", nargs=argparse.REMAINDER)
    return parser


def _command(
    group: argparse._SubParsersAction[argparse.ArgumentParser], name: str, text: str
) -> argparse.ArgumentParser:
    """A subcommand whose own ``--help`` begins with what the list of commands says of it
    (before: ``mediamon ingest --help`` showed the usage and options alone)."""
    return group.add_parser(name, help=text, description=text[0].upper() + text[1:] + ".")


# Detection times mediamon accepts: spike detection looks weeks back from them, and
# datetime arithmetic ends at year 1 and 9999.
EARLIEST_AT = datetime(1970, 1, 1, tzinfo=UTC)
LATEST_AT = datetime(2200, 1, 1, tzinfo=UTC)


def _utc_time(value: str) -> datetime:
    """``--at``: an ISO 8601 time (naive is UTC) within EARLIEST_AT … LATEST_AT."""
    try:
        moment = datetime.fromisoformat(value)
        moment = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    except (ValueError, OverflowError):
        raise InputError(
            f"--at: expected an ISO 8601 time such as 2024-04-20T12:00, got {value[:40]!r}"
        ) from None
    if not EARLIEST_AT <= moment < LATEST_AT:
        raise InputError(
            f"--at: {value[:40]} is outside {EARLIEST_AT:%Y-%m-%d} … {LATEST_AT:%Y-%m-%d}"
        )
    return moment


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``mediamon`` command; returns the exit status."""
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    for warning in unknown_variables(os.environ):
        print(f"mediamon: warning: {warning}", file=sys.stderr)
    try:
        status = _run(args, Settings.from_env())
        sys.stdout.flush()  # here, so that a closed pipe is caught below
        return status
    except KeyboardInterrupt:
        # Ctrl-C: one line, not the traceback of wherever the command was (mid-import,
        # inside the demo's DAG test); 130 as a shell reports a command ended by SIGINT.
        if args.debug:
            raise
        print("\nmediamon: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader went away (`mediamon alerts run --dry-run | head`): no traceback, and
        # nothing more to stdout (Python flushes it again on exit; the docs' recipe).
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except (
        SourceConfigError,
        ValueError,
        FileNotFoundError,
        MailNotSent,
    ) as error:
        if args.debug:
            raise
        print(f"mediamon: {_one_line(error)}", file=sys.stderr)
        return getattr(error, "exit_code", EXIT_USAGE)
    except Exception as error:  # noqa: BLE001 - known failures become one line
        explained = errors.explain(error)
        if explained is None or args.debug:
            raise
        print(f"mediamon: {_one_line(explained)}", file=sys.stderr)
        return explained.exit_code


def _bi_user(settings: Settings, name: str) -> int:
    engine = service.engine_for(settings)
    try:
        url = sa.make_url(db.resolve_url(settings))
        if settings.database_url and url.host:
            host, port = url.host, url.port or 5432
        else:
            listener = access.embedded_listener(settings.var_dir / "pgdata")
            if listener is None or not listener.tcp:
                raise ConfigError(
                    "bi-user: the embedded server listens on its socket only"
                    f" (MEDIAMON_PG_PORT={settings.pg_port}; taken by another server?)"
                )
            host, port = access.LOOPBACK, listener.port
        login = access.create_bi_login(
            engine,
            name,
            os.environ.get("MEDIAMON_BI_PASSWORD") or None,
            host,
            port,
            writer=os.environ.get("MEDIAMON_WRITER_ROLE", "").strip() or None,
        )
    finally:
        engine.dispose()
    print(login.url)
    print(
        f"{'created' if login.created else 'new password for'} {login.name} in role"
        f" {BI_ROLE} (reads bi.* only); the password is not stored: keep this URL",
        file=sys.stderr,
    )
    return 0


def _embedded_database(settings: Settings, name: str | None) -> str:
    """``db url --database``: one of the embedded server's databases. The name went into
    the URL as written (``x?host=evil.example&`` gave a URL of two hosts, a line break a
    forged second line), and with MEDIAMON_DATABASE_URL set it was ignored without a
    word: ``--database airflow`` printed mediamon's own database."""
    if name is None:
        return "mediamon"
    if name not in db.EMBEDDED_DATABASES:
        raise InputError(
            f"--database: expected one of {', '.join(db.EMBEDDED_DATABASES)}, got {name[:40]!r}"
        )
    if settings.database_url and name != "mediamon":
        raise ConfigError(
            f"--database {name}: MEDIAMON_DATABASE_URL is set, so there is no embedded"
            " server; the URL printed is mediamon's own database (run without --database)"
        )
    return name


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split()) or type(error).__name__


def _run(args: argparse.Namespace, settings: Settings) -> int:
    if args.command == "db":
        if args.db_command == "upgrade":
            engine = db.make_engine(db.resolve_url(settings))
            applied = migrate.upgrade(engine)
            print("applied: " + ", ".join(applied) if applied else "schema is up to date")
        elif args.db_command == "url":
            url = db.resolve_url(settings, _embedded_database(settings, args.database))
            print(url if args.sqlalchemy else access.standard_url(url))
        elif args.db_command == "bi-user":
            return _bi_user(settings, args.name)
        elif args.db_command == "roles":
            from mediamon.db import roles

            engine = db.make_engine(db.resolve_url(settings))
            named = roles.ensure_roles(engine, *roles.logins_from_env())
            for line in named or [
                "nothing to do: set MEDIAMON_WRITER_ROLE and MEDIAMON_WRITER_PASSWORD, or"
                " MEDIAMON_BI_LOGIN and MEDIAMON_BI_PASSWORD, to create those roles"
            ]:
                print(line)
            engine.dispose()
        else:
            print(_stop_database(settings))
        return 0
    if args.command == "ingest":
        from mediamon.ingest.shard_runner import ShardIncomplete
        from mediamon.ops import runs
        from mediamon.ops import service as ops

        now = datetime.now(UTC)
        run_key = f"cli:{now.isoformat()}"
        try:
            # Read once: an edit to the sources file between the plan and the ingestion
            # made the second reading fail the run, which nothing then recorded.
            due = service.due_sources(settings, now, only=args.source, force=True)
        except ConfigError as error:  # recorded as the Airflow task records it, so
            # the watchdog reports this run failed, and why, not hours later that none ran
            ops.record_failed_run(settings, run_key, now, f"configuration error: {error}")
            raise
        crashed = None
        crash_reports: list[dict[str, Any]] = []
        try:
            summaries = service.ingest_sources(
                settings, due, run_key, now, refetch_known=args.refetch
            )
        except ShardIncomplete as incomplete:  # the other sources ran: record the run
            summaries, crashed = incomplete.summaries, str(incomplete)
            # As a failed shard task's: the row says failed, as the exit status does
            # (it said success once the checks passed).
            names = [source.name for source in due]
            crash_reports = [runs.shard_failure(names, crashed, incomplete)]
        for summary in summaries:
            print(json.dumps(summary, ensure_ascii=False))
        # A crash's summaries come with its failure, counted once.
        reported = [] if crash_reports else summaries
        verdict = ops.finish_ingest(settings, run_key, now, reported, failures=crash_reports)
        checks = ops.check_quality(settings, run_key, now)
        print(json.dumps({"run": verdict.summary, "checks_failed": checks["failed"]}))
        failures = (
            verdict.failure,
            crashed,
            checks["failed"] and f"checks failed: {checks['failed']}",
        )
        for reason in filter(None, failures):
            print(f"mediamon: run failed: {reason}", file=sys.stderr)
        return 1 if any(failures) else 0
    if args.command == "import-archive":
        from tqdm import tqdm

        # delay: no bar for an import that fails at once (not a folder) or ends quickly
        with tqdm(unit="file", desc=str(args.folder), file=sys.stderr, delay=0.5) as bar:
            summary = service.import_archive(
                settings,
                args.folder,
                source_name=args.source_name,
                language=args.language,
                progress=bar.update,
                total=lambda n: setattr(bar, "total", n),
            )
        print(json.dumps(summary, ensure_ascii=False))
        return 0 if not summary["failed"] else 1
    if args.command == "extract":
        failed = 0
        for line in service.extract_files(args.files):
            print(line)
            failed += "error" in json.loads(line)
        return 1 if failed else 0
    if args.command == "alerts":
        at = _utc_time(args.at) if args.at is not None else datetime.now(UTC)
        summary = service.run_alerts(settings, at, dry_run=args.dry_run)
        print(json.dumps(summary, ensure_ascii=False, default=str, indent=2))
        if summary.get("topics_error"):
            # as the real run logs it: a dry run tried after editing the file otherwise
            # showed the old rules' windows with the reason only inside its JSON
            print(
                f"mediamon: warning: {summary['topics_error']}; the dry run used the"
                " stored topic definitions",
                file=sys.stderr,
            )
        return 0
    if args.command == "digest":
        summary = service.run_digests(
            settings,
            _utc_time(args.at) if args.at is not None else datetime.now(UTC),
            dry_run=args.dry_run,
        )
        print(json.dumps(summary, ensure_ascii=False, default=str, indent=2))
        return 0
    if args.command == "demo":
        from mediamon.devtools import demo

        return demo.main()
    if args.command == "run":
        from mediamon.devtools.airflow_env import run_services

        return run_services(settings)
    if args.command == "stop":
        from mediamon.devtools.airflow_env import stop_services

        stopped = stop_services(settings)
        print(f"Airflow: stopped {stopped} service(s)" if stopped else "Airflow: not running")
        print(f"database: {_stop_database(settings)}")
        return 0
    if args.command == "health":
        return _health(args, settings)
    if args.command == "topics":
        from mediamon.topics.file import load_topics

        topic_set = load_topics(settings.topics_path)
        topic_names = ", ".join(topic_set.keys())
        print(f"{settings.topics_path}: valid, {len(topic_set)} topic(s): {topic_names}")
        return 0
    if args.command == "airflow":
        from mediamon.devtools.airflow_env import run_airflow

        return run_airflow(settings, args.args)
    from mediamon.ops import service as ops

    report = ops.source_status(settings, datetime.now(UTC))
    if args.json:
        print(json.dumps(report, ensure_ascii=False, default=_json_value, indent=2))
    else:
        print(_status_table(report))
    for problem in report["config_problems"]:
        print(f"mediamon: warning: {' '.join(problem.split())}", file=sys.stderr)
    return 0


def _stop_database(settings: Settings) -> str:
    """What stopping the embedded database did, in words. With MEDIAMON_DATABASE_URL the
    data lives on a server mediamon does not run: "not running" read as if it were down."""
    if db.stop_embedded(settings.var_dir):
        return "stopped"
    if settings.database_url:
        server = db.server_of(settings.database_url)
        return f"not mediamon's to stop: {server} (MEDIAMON_DATABASE_URL)"
    return "not running"


def _health(args: argparse.Namespace, settings: Settings) -> int:
    from mediamon.ops import service as ops

    at = _utc_time(args.at) if args.at is not None else datetime.now(UTC)
    if args.health_command == "report":
        outcome = ops.health_report(settings, at, dry_run=args.dry_run)
        print(json.dumps(outcome.as_dict(), ensure_ascii=False))
        if args.dry_run:
            print(_table(outcome.rows, ("source", "polls", "failures", "articles",
                                        "median_latency_ms", "trend")))  # fmt: skip
        return 0 if outcome.sent or outcome.already_sent or args.dry_run else 1
    from mediamon.ops.incident_mail import IncidentMailError

    try:
        result = ops.health_run(settings, at, dry_run=args.dry_run)
    except IncidentMailError as unsent:
        if unsent.result is None:
            raise
        _print_findings(unsent.result)  # what was found, then the one line (main)
        raise
    return _print_findings(result, dry_run=args.dry_run)


def _print_findings(result: HealthResult, *, dry_run: bool = True) -> int:
    """The watchdog run's findings and its JSON on stdout; 1 when incidents wait for mail."""
    for finding in result.findings:
        print(f"{finding.key}: {finding.summary} (since {finding.since:%Y-%m-%d %H:%M} UTC)")
    if not result.findings:
        print("no problems found")
    print(json.dumps(result.as_dict(), ensure_ascii=False))
    if result.unmailed and not dry_run:
        print(f"mediamon: {len(result.unmailed)} open incident(s) not mailed: {result.note}",
              file=sys.stderr)  # fmt: skip
        return 1
    return 0


def _json_value(value: object) -> str:
    """A value JSON has no type for: times in ISO 8601 (``2026-12-01T04:54:16+00:00``), as
    every other command prints them, anything else as text."""
    return value.isoformat() if isinstance(value, datetime) else str(value)


def _when(moment: object) -> str:
    """A time of the status table, in UTC (the table's headings say so)."""
    return f"{moment.astimezone(UTC):%Y-%m-%d %H:%M}" if isinstance(moment, datetime) else "-"


# The last error column: a line of the table stays readable on a wide terminal.
ERROR_CHARS = 70


def _cut(text: str, limit: int) -> str:
    """``text`` in at most ``limit`` characters: cut at a word when one ends near the
    limit, and marked with "…" when anything was cut."""
    if len(text) <= limit:
        return text
    head = text[: limit - 1]
    space = head.rfind(" ")
    if space >= limit * 2 // 3:
        head = head[:space]
    return head.rstrip() + "…"


def _status_table(report: dict[str, object]) -> str:
    from mediamon.ingest.fetch_errors import printable

    sources = report["sources"]
    assert isinstance(sources, list)
    rows = [
        {
            "source": s["source"],
            "state": s["state"],
            "why": s["state_reason"] or "-",
            "last success (UTC)": _when(s["last_success"]),
            "articles 24h": s["articles_24h"],
            # printable: the error may quote a server's reason phrase (ESC sequences)
            "last error": _cut(
                printable(" ".join(str(s["last_error"] or "-").split())), ERROR_CHARS
            ),
        }
        for s in sources
    ]
    text = _table(
        rows, ("source", "state", "why", "last success (UTC)", "articles 24h", "last error")
    )
    incidents = report["open_incidents"]
    assert isinstance(incidents, list)
    if incidents:
        text += "\n\nopen incidents:\n" + "\n".join(
            f"  {i['kind']}: {i['summary']} (since {_when(i['since'])} UTC)" for i in incidents
        )
    return text


def _table(rows: Sequence[dict[str, object]], columns: Sequence[str]) -> str:
    """A plain text table; the last column is left ragged."""
    if not rows:
        return "(no sources yet: run `mediamon ingest` or the mediamon_ingest DAG)"
    cells = [[str(row[c]) for c in columns] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(columns)]
    lines = [[c.upper() for c in columns], *cells]
    return "\n".join(
        "  ".join(v.ljust(w) for v, w in zip(line, widths, strict=True)).rstrip() for line in lines
    )


if __name__ == "__main__":
    sys.exit(main())
