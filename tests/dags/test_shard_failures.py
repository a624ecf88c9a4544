"""Ingest shards failing under a real scheduler (LocalExecutor), with their retries
(Airflow caps their delay at 1 s here): one mail per failure, each source counted once.

- A shard whose task raises (a real database error for one of its sources). Before:
  two mails, the shard's own and summarize's ("not ingested, its ingest task ended
  without reporting"), and the source it had loaded counted failed with the crashed one.
  Now one mail, the shard's; the loaded source counts loaded; the run is red (watcher).
- A shard killed by the kernel (SIGKILL: out of memory), each of its three tries.
  Before: no mail at all (Airflow runs no failure callback for a process killed with
  SIGKILL; apache/airflow#60858), the shard's source missing from the run's counts, and
  summarize green: its earlier failure mailed RESOLVED. Now summarize fails naming the
  shard's sources, and counts them failed.

One stack for the module (its start and stop cost half a minute each)."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from email import message_from_bytes, policy
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import sqlalchemy as sa
from pytest_httpserver import HTTPServer

from bench import airflow_stack
from mediamon.devtools.airflow_env import airflow_environment
from mediamon.settings import Settings
from tests.dags.airflow_runs import first_run
from tests.integration.ingest.test_shard_runner import feeds_on
from tests.support.smtp_server import Sink, connection_json, serve_smtp


@dataclass
class IngestStack:
    """The module's Airflow, its sources file and the mail its tasks sent."""

    stack: airflow_stack.Stack
    sources: Path
    sink: Sink

    def run(self, sources: str) -> tuple[str, sa.Engine]:
        """Trigger a run over ``sources`` (a sources file's body): its id, and an engine
        on the metadata database for the caller to dispose of."""
        self.sources.write_text(sources, "utf-8")
        return self.stack.trigger("mediamon_ingest", {"sources": [], "force": True}), (
            self.stack.metadata()
        )

    def mails_since(self, count: int) -> list[EmailMessage]:
        return [
            message_from_bytes(m.content, policy=policy.default) for m in self.sink.messages[count:]
        ]


@pytest.fixture(scope="module")
def ingest(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[IngestStack]:
    """Airflow's services with ``mediamon_ingest`` unpaused, its first (scheduled) run
    over no sources done."""
    home = tmp_path_factory.mktemp("stack")
    sources = home / "sources.yaml"
    sources.write_text("sources: []\n", "utf-8")
    sink = Sink()
    base = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "MEDIAMON_"))}
    with airflow_stack.metadata_database(base) as metadata_url, serve_smtp(sink) as smtp_port:
        settings = replace(
            Settings.from_env(), database_url=database_url, var_dir=home, sources_path=sources
        )
        env = airflow_environment(settings, {**base, "MEDIAMON_AIRFLOW_DATABASE_URL": metadata_url})
        env = airflow_stack.stack_environment(env, metadata_url, home)
        env |= {
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
            "MEDIAMON_OPS_EMAIL": "ops@example.org",
            "MEDIAMON_HTTP_RETRIES": "0",
            "AIRFLOW_CONN_MEDIAMON_SMTP": connection_json(smtp_port),
            # Airflow's cap on a backed-off retry's delay (the ingest DAG's retries back
            # off): the retries come after 1 s, not the DAG's 1 and 2 minutes (288 s of
            # the killed shard's test). The tries and the scheduler's handling stay real.
            "AIRFLOW__CORE__MAX_TASK_RETRY_DELAY": "1",
        }
        with airflow_stack.running(env, metadata_url, stop_grace_s=5) as stack:
            stack.start_components()
            stack.wait_for_api()
            stack.wait_for_dag("mediamon_ingest")
            stack.unpause("mediamon_ingest")
            metadata = stack.metadata()
            first = first_run(metadata, "mediamon_ingest", 120)
            metadata.dispose()
            assert stack.wait_for_run("mediamon_ingest", first, 120).state == "success"
            yield IngestStack(stack, sources, sink)


@pytest.fixture()
def fetch_log_refusing_broken(engine: sa.Engine) -> Iterator[None]:
    """A real database error for the source named ``broken`` only (its fetch-log row)."""
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "create function refuse_broken() returns trigger language plpgsql as $$"
                " begin if exists (select from sources where source_id = new.source_id"
                " and name = 'broken') then raise exception 'disk full'; end if;"
                " return new; end $$;"
                " create trigger refuse_broken before insert on fetch_log for each row"
                " execute function refuse_broken()"
            )
        )
    try:
        yield
    finally:
        with engine.begin() as conn:
            conn.execute(sa.text("drop trigger refuse_broken on fetch_log"))
            conn.execute(sa.text("drop function refuse_broken"))


def _last_run(engine: sa.Engine) -> sa.Row[tuple[int, int, list[str], str, str]]:
    with engine.connect() as conn:
        return conn.execute(
            sa.text("select sources_due, sources_failed, failed_sources, status, error"
                    " from ingest_runs"
                    " where run_key like 'mediamon_ingest:%' order by finished_at desc limit 1")
        ).one()  # fmt: skip


def _plain(message: EmailMessage) -> str:
    return message.get_body(("plain",)).get_content()  # type: ignore[union-attr]


@contextmanager
def hanging_feed() -> Iterator[str]:
    """A feed server on 127.0.0.1 that holds every request until the block ends (the
    shard is busy with it when it is killed); its feed URL."""
    release = threading.Event()

    class Hold(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            release.wait(600)
            self.send_response(503)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Hold)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/feed.xml"
    finally:
        release.set()
        server.shutdown()
        server.server_close()


def _running_pid(metadata: sa.Engine, run_id: str, timeout_s: float) -> tuple[int, int]:
    """The task process of the running shard, and its try, once Airflow has recorded it."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with metadata.connect() as conn:
            row = conn.execute(
                sa.text(
                    "select pid, try_number from task_instance where run_id = :r"
                    " and task_id = 'ingest_shard' and state = 'running' and pid is not null"
                ),
                {"r": run_id},
            ).first()
        if row is not None:
            return int(row.pid), int(row.try_number)
        time.sleep(1)
    raise TimeoutError(f"no running ingest_shard in {timeout_s} s")


@pytest.mark.usefixtures("fetch_log_refusing_broken")
def test_a_shard_that_raises_is_mailed_once_and_its_loaded_source_counted_loaded(
    ingest: IngestStack, engine: sa.Engine, httpserver: HTTPServer
) -> None:
    before = len(ingest.sink.messages)
    run_id, metadata = ingest.run(feeds_on(httpserver, ["steady", "broken"], 2))  # one host
    final = ingest.stack.wait_for_run("mediamon_ingest", run_id, 120)
    with metadata.connect() as conn:
        tries = conn.execute(
            sa.text("select try_number from task_instance where run_id = :r"
                    " and task_id = 'ingest_shard'"),
            {"r": run_id},
        ).scalar_one()  # fmt: skip
    metadata.dispose()
    tasks = ingest.stack.task_instances("mediamon_ingest", run_id)
    states = {str(t["task_id"]): t["state"] for t in tasks}
    assert final.state == "failed", tasks
    assert states["ingest_shard"] == "failed" and states["summarize"] == "success", states
    assert states["watcher"] == "failed" and tries == 3, (states, tries)
    mails = ingest.mails_since(before)
    subjects = [str(m["Subject"]).strip() for m in mails]
    assert len(mails) == 1, subjects  # before: the shard's and summarize's
    assert subjects[0].startswith("[mediamon] task failed: mediamon_ingest.ingest_shard"), subjects
    text = _plain(mails[0])
    assert "1 source(s) crashed (broken)" in text and "disk full" in text, text
    with engine.connect() as conn:
        loaded = conn.execute(
            sa.text("select count(*) from bi.articles where source = 'steady'")
        ).scalar_one()
    # Before: (2, 2, [steady, broken]), steady's two articles stored all the same.
    row = _last_run(engine)
    assert (row.sources_due, row.sources_failed, row.failed_sources) == (2, 1, ["broken"]), row
    assert loaded == 2
    # As red as the run (before: success, check_quality having passed).
    assert row.status == "failed", row
    assert row.error.endswith("1 of 2 due source(s) not ingested: broken"), row


def test_a_shard_killed_out_of_memory_mails_ops_naming_its_sources(
    ingest: IngestStack, engine: sa.Engine
) -> None:
    before = len(ingest.sink.messages)
    with hanging_feed() as feed:
        run_id, metadata = ingest.run(
            f"sources:\n  - {{name: heavy-news, url: '{feed}', allow_private_network: true}}\n"
        )
        killed = []
        for _ in range(3):  # the first try and its two retries
            pid, try_number = _running_pid(metadata, run_id, 400)
            os.kill(pid, signal.SIGKILL)  # what the kernel's OOM killer sends
            killed.append(try_number)
            with metadata.connect() as conn:
                deadline = time.monotonic() + 120
                while time.monotonic() < deadline:
                    state = conn.execute(
                        sa.text(
                            "select state from task_instance where run_id = :r"
                            " and task_id = 'ingest_shard'"
                        ),
                        {"r": run_id},
                    ).scalar_one()
                    conn.rollback()
                    if state != "running":
                        break
                    time.sleep(1)
            if state == "failed":
                break
        final = ingest.stack.wait_for_run("mediamon_ingest", run_id, 300)
        tasks = ingest.stack.task_instances("mediamon_ingest", run_id)
        metadata.dispose()
    mails = ingest.mails_since(before)
    subjects = [str(m["Subject"]).strip() for m in mails]
    assert final.state == "failed", tasks
    assert killed == [1, 2, 3], killed
    states = {str(t["task_id"]): t["state"] for t in tasks}
    assert states["ingest_shard"] == "failed" and states["summarize"] == "failed", states
    # Airflow runs no failure callback for a task process killed with SIGKILL: the only
    # mail is summarize's, which names the shard's sources.
    assert len(mails) == 1, subjects
    assert subjects[0].startswith(f"[mediamon] task failed: mediamon_ingest.summarize ({run_id})")
    text = _plain(mails[0])
    assert "1 source(s) not ingested" in text and "heavy-news" in text, text
    assert "SIGKILL" in text and "out of memory" in text, text
    row = _last_run(engine)  # the run's record counts the source, failed
    assert (row.sources_due, row.sources_failed) == (1, 1), row
