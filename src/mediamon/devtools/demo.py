"""``make demo``: the bundled sample site served on 127.0.0.1, the seed as an archive
source, one real Airflow run of the ingest DAG on the embedded database, and a summary.
Works offline."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from mediamon import db
from mediamon.devtools.airflow_env import airflow_command, airflow_environment, port_in_use
from mediamon.devtools.demo_history import write_history
from mediamon.devtools.sitehost import serve_folder
from mediamon.settings import DEMO_DIR, Settings

DEMO_PORT = 18765
# The invented history ends with a burst of Taiwan stories in the hour before this.
BURST_END = datetime(2024, 4, 17, 2, 0, tzinfo=UTC)
# The next daily digest after the burst: 08:00 in Asia/Shanghai (config/topics.yaml).
DIGEST_AT = datetime(2024, 4, 18, 0, 0, tzinfo=UTC)
SOURCES_TEMPLATE = """\
# Written by `make demo`: the bundled sample site and the seed archive.
sources:
  - name: demo-news
    kind: feed
    url: {base}/feed.xml
    language: zh
    poll_interval: 15m
    allow_private_network: true   # the demo site is on 127.0.0.1
  - name: rfi-archive
    kind: archive
    path: {archive}
    language: zh
  - name: demo-history
    kind: archive
    path: {history}
    language: zh
"""


def write_demo_sources(path: Path, base: str, history: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        SOURCES_TEMPLATE.format(base=base, archive=DEMO_DIR / "archive", history=history),
        encoding="utf-8",
    )
    return path


class MailSink:
    """An SMTP server on 127.0.0.1 that saves each message it receives as an .eml file,
    numbered after those already in the folder (earlier runs' mails are kept)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.saved: list[Path] = []
        numbers = [int(p.stem) for p in folder.glob("*.eml") if p.stem.isdigit()]
        self.next_number = max(numbers, default=0) + 1

    async def handle_DATA(self, server: object, session: object, envelope: Any) -> str:  # noqa: N802 - aiosmtpd's name
        from email import message_from_bytes
        from email.header import decode_header, make_header

        message = message_from_bytes(envelope.content)
        subject = str(make_header(decode_header(message.get("Subject", ""))))
        path = self.folder / f"{self.next_number:02d}.eml"
        self.next_number += 1
        path.write_bytes(envelope.content)
        self.saved.append(path)
        print(
            f"  mail to {', '.join(envelope.rcpt_tos)}: {subject}  -> {path}",
            file=sys.stderr,
            flush=True,
        )
        return "250 OK"


@contextmanager
def mail_sink(folder: Path) -> Iterator[tuple[MailSink, int]]:
    """Run a :class:`MailSink` on a free loopback port; yield it and the port."""
    import socket

    from aiosmtpd.controller import Controller

    folder.mkdir(parents=True, exist_ok=True)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    sink = MailSink(folder)
    controller = Controller(sink, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield sink, port
    finally:
        controller.stop()


def _airflow(env: dict[str, str], args: list[str], log: Path) -> None:
    with log.open("ab") as out:
        start = out.tell()
        result = subprocess.run(airflow_command(args), env=env, stdout=out, stderr=out, check=False)
    if result.returncode != 0:
        with log.open("rb") as read:
            read.seek(start)
            text = read.read().decode("utf-8", "replace")
        # The log's last lines were Airflow's bookkeeping after the run (the watcher's
        # traceback, "DagRun failed"): the cause, a task's error, was far above them.
        lines = failure_lines(text) or text.splitlines()[-30:]
        raise SystemExit(
            f"mediamon: airflow {' '.join(args)} failed:\n"
            + "\n".join(f"  {line}" for line in lines)
            + f"\nthe whole log: {log}"
        )


# A log record at ERROR ("2024-…Z [error    ] MESSAGE    [logger] loc=…") and the last
# line of a traceback ("airflow.sdk.exceptions.AirflowFailException: MESSAGE").
ERROR_RECORD = re.compile(r"^\S+Z \[(?:error|critical) *\] (?P<message>.*?) +\[[\w.]+\] loc=")
EXCEPTION = re.compile(r"^(?:[A-Za-z_]\w*\.)*(?P<name>\w+(?:Error|Exception)): (?P<message>.+)$")
# what the watcher (it fails the run when a task failed) and the task runner say about
# every failure: no cause of their own
ECHOES = ("a task of this run failed", "Task failed with exception")


def failure_lines(log: str) -> list[str]:
    """Why an ``airflow dags test`` failed: the ERROR records and the failed tasks'
    exceptions in its log, each once, in order (at most the last 10). Of a chain of
    exceptions (a ConfigError raised as AirflowFailException) the last says it all."""
    found: dict[str, str] = {}  # line: its message
    for line in log.splitlines():
        record = ERROR_RECORD.match(line)
        exception = EXCEPTION.match(line)
        if record:
            found[record["message"]] = record["message"]
        elif exception:
            found[f"{exception['name']}: {exception['message']}"] = exception["message"]
    lines = [line for line in found if not any(echo in line for echo in ECHOES)]
    return [
        line
        for i, line in enumerate(lines)
        if not any(found[line] in later for later in lines[i + 1 :])
    ][-10:]


def summary(engine: sa.Engine) -> str:
    """What was loaded, what failed and what was deduplicated, per source."""
    with engine.connect() as conn:
        loaded = (
            conn.execute(
                sa.text(
                    "select source, count(*) as articles, count(duplicate_of) as copies,"
                    " string_agg(distinct language, ',') as languages"
                    " from bi.articles group by source order by source"
                )
            )
            .mappings()
            .all()
        )
        failures = (
            conn.execute(
                sa.text(
                    "select source, url, error from bi.fetch_log where not ok"
                    " and fetched_at = (select max(fetched_at) from bi.fetch_log)"
                    " order by source, url"
                )
            )
            .mappings()
            .all()
        )
        copies = (
            conn.execute(
                sa.text(
                    "select c.url as copy, o.url as original from bi.articles c"
                    " join bi.articles o on o.article_id = c.duplicate_of order by c.url"
                )
            )
            .mappings()
            .all()
        )
        titles = (
            conn.execute(
                sa.text(
                    "select source, published_at, language, title from bi.articles"
                    " where source <> 'demo-history' order by published_at"
                )
            )
            .mappings()
            .all()
        )
    lines = ["", "== mediamon demo: what was loaded =="]
    for row in loaded:
        syndicated = f"{row['copies']} syndicated {'copy' if row['copies'] == 1 else 'copies'}"
        articles = f"{row['articles']} article{'' if row['articles'] == 1 else 's'}"
        lines.append(
            f"  {row['source']:<12} {articles} ({syndicated}), languages {row['languages']}"
        )
    lines.append(
        "\n  articles from the sample site and the seed (demo-history is invented background):"
    )
    for row in titles:
        lines.append(f"  {row['published_at']:%Y-%m-%d %H:%M}Z [{row['language']}] {row['title']}")
    lines += ["", f"== failed fetches in the last run: {len(failures)} =="]
    lines += [f"  {r['source']}: {r['url']}\n      {r['error']}" for r in failures]
    lines += ["", f"== deduplicated: {len(copies)} =="]
    lines += [f"  {r['copy']}\n      is a copy of {r['original']}" for r in copies]
    return "\n".join(lines)


def _alert_line(alert: Mapping[Any, Any]) -> str:
    """One alert as a person reads it: the topic, what was seen against what was usual,
    how unlikely that is, and what became of it."""
    mails = alert["mails_sent"]
    return (
        f"{alert['topic_name']}: {alert['observed']} stories from"
        f" {alert['window_start']:%Y-%m-%d %H:%M} to {alert['window_end']:%H:%M}Z,"
        f" {alert['expected']:.2g} expected"
        f" (p = {alert['p_value']:.1e}); {alert['state']}, {mails} mail{'s' * (mails != 1)} sent"
    )


def alert_summary(engine: sa.Engine, mails: Sequence[Path], earlier: Sequence[Path] = ()) -> str:
    """The alerts recorded, the mails the sink saved and those of earlier runs."""
    with engine.connect() as conn:
        alerts = conn.execute(sa.text("select * from bi.alerts order by 1")).mappings().all()
    lines = ["", f"== alerts: {len(alerts)} =="]
    lines += [f"  {_alert_line(alert)}" for alert in alerts]
    lines += ["", f"== mails delivered to the local SMTP sink in this run: {len(mails)} =="]
    lines += [f"  {path}  (open it in a mail client, or read it as text)" for path in mails]
    if earlier:
        lines.append(f"  earlier runs' mails, kept: {', '.join(p.name for p in earlier)}")
    return "\n".join(lines)


def _demo_port(sources: Path) -> int:
    """The port of the sample site: the one the earlier demo on this var dir used (its
    ``sources.yaml`` names it), else :data:`DEMO_PORT`; any free port on a first run
    that finds that one taken. The article URLs, their natural keys, hold the port: on
    another port a second run loaded the six articles again, as copies of the first's,
    and failed the data-quality check.

    Raises:
        UserError: the earlier demo's port is taken.
    """
    from mediamon.errors import UserError

    earlier = None
    if sources.is_file():
        found = re.search(r"url: http://127\.0\.0\.1:(\d+)/", sources.read_text("utf-8"))
        earlier = int(found.group(1)) if found else None
    port = earlier or DEMO_PORT
    # as the site's HTTPServer binds: a port whose last connections wait out TIME_WAIT
    # (the previous run's, a minute ago) is free
    if port_in_use(port):
        if earlier is None:
            return 0
        raise UserError(
            f"127.0.0.1:{port} is in use by another program; the demo serves its sample"
            f" site there, as its earlier run on {sources.parent.parent} did (on another"
            " port its articles would be loaded again, as copies): free the port"
        )
    return port


@contextmanager
def only_demo(demo_var: Path) -> Iterator[None]:
    """Hold ``demo_var``'s lock for the demo's run (the kernel drops it when the process
    ends, however it ends).

    A second demo beside the first found the sample site's port taken and served it on
    another, so its six articles were new URLs: loaded again as copies of the first
    run's, the data-quality check failed, and both rewrote the same sources file, log
    and history folder under each other.

    Raises:
        UserError: another demo holds the lock.
    """
    import fcntl
    import os

    from mediamon.errors import UserError

    with (demo_var / "demo.lock").open("a+", encoding="utf-8") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.seek(0)
            holder = lock.read().strip() or "?"
            raise UserError(
                f"another `mediamon demo` is running on {demo_var.parent} (pid {holder});"
                " wait for it to end"
            ) from None
        lock.truncate(0)
        lock.write(f"{os.getpid()}\n")
        lock.flush()
        yield


def main() -> int:
    settings = Settings.from_env()
    demo_var = settings.var_dir / "demo"
    demo_var.mkdir(parents=True, exist_ok=True)
    with only_demo(demo_var):
        return _run(settings, demo_var)


def _run(settings: Settings, demo_var: Path) -> int:
    log = demo_var / "airflow.log"
    port = _demo_port(demo_var / "sources.yaml")  # before anything is written
    log.write_text("")
    history = demo_var / "history"
    files = write_history(history, BURST_END)
    print(f"wrote {files} invented background stories (4 weeks, then a burst) to {history}")
    with (
        serve_folder(DEMO_DIR / "site", port=port) as base,
        mail_sink(demo_var / "mail") as (sink, smtp_port),
    ):
        sources = write_demo_sources(demo_var / "sources.yaml", base, history)
        settings = replace(settings, sources_path=sources)
        print(f"demo site on {base}; sources in {sources}")
        env = airflow_environment(settings)
        env["AIRFLOW_CONN_MEDIAMON_SMTP"] = json.dumps(
            {
                "conn_type": "smtp",
                "host": "127.0.0.1",
                "port": smtp_port,
                "extra": {"disable_ssl": True, "disable_tls": True,
                          "from_email": "mediamon demo <mediamon@localhost>"},
            }
        )  # fmt: skip
        print(f"Airflow home {env['AIRFLOW_HOME']}; log in {log}")
        print("migrating Airflow's metadata database ...")
        _airflow(env, ["db", "migrate"], log)
        print("running the mediamon_ingest DAG (airflow dags test) ...")
        _airflow(
            env,
            ["dags", "test", "mediamon_ingest", "--conf", json.dumps({"force": True})],
            log,
        )
        print(
            f"running the mediamon_alerts DAG at {BURST_END:%Y-%m-%d %H:%M}Z"
            " (airflow dags test) ..."
        )
        _airflow(env, ["dags", "test", "mediamon_alerts", BURST_END.isoformat()], log)
        print(
            f"running the mediamon_digests DAG at {DIGEST_AT:%Y-%m-%d %H:%M}Z"
            " (the next morning's daily digest) ..."
        )
        _airflow(env, ["dags", "test", "mediamon_digests", DIGEST_AT.isoformat()], log)
        mails = list(sink.saved)
    engine = db.make_engine(db.resolve_url(settings))
    try:
        print(summary(engine))
        earlier = sorted(p for p in (demo_var / "mail").glob("*.eml") if p not in mails)
        print(alert_summary(engine, mails, earlier))
    finally:
        engine.dispose()
    print(closing_line(settings))
    return 0


def closing_line(settings: Settings) -> str:
    """Where the demo's data stays, and how to stop the embedded server if it ran one."""
    if settings.database_url:
        return f"\nThe data stays in {db.server_of(settings.database_url)} (MEDIAMON_DATABASE_URL)."
    return (
        f"\nThe database keeps running ({settings.var_dir / 'pgdata'});"
        f" `{sys.argv[0]} db stop` stops it."
    )


if __name__ == "__main__":
    sys.exit(main())
