"""An ingest shard killed by the kernel (SIGKILL: out of memory), each of its three
tries, under a real scheduler (LocalExecutor). Before: no mail at all (Airflow runs no
failure callback for a process killed with SIGKILL; apache/airflow#60858), the shard's
source missing from the run's counts, and summarize green: its earlier failure mailed
RESOLVED. Now summarize fails naming the shard's sources, and counts them failed."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from email import message_from_bytes, policy
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import sqlalchemy as sa

from bench import airflow_stack
from mediamon.devtools.airflow_env import airflow_environment
from mediamon.settings import DEMO_DIR, Settings
from tests.support.smtp_server import Sink, connection_json, serve_smtp


@pytest.fixture(scope="module", autouse=True)
def _drop_templates() -> Iterator[None]:
    yield
    airflow_stack.drop_templates()


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


def test_a_shard_killed_out_of_memory_mails_ops_naming_its_sources(
    database_url: str, engine: sa.Engine, tmp_path: Path
) -> None:
    sink = Sink()
    base = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "MEDIAMON_"))}
    with (
        hanging_feed() as feed,
        airflow_stack.metadata_database(base) as metadata_url,
        serve_smtp(sink) as smtp_port,
    ):
        sources = tmp_path / "sources.yaml"
        sources.write_text(  # the scheduled run that unpausing makes: green, no mail
            f"sources:\n  - {{name: archive, kind: archive, path: '{DEMO_DIR / 'archive'}'}}\n",
            "utf-8",
        )
        settings = replace(
            Settings.from_env(), database_url=database_url, var_dir=tmp_path, sources_path=sources
        )
        env = airflow_environment(settings, {**base, "MEDIAMON_AIRFLOW_DATABASE_URL": metadata_url})
        env = airflow_stack.stack_environment(env, metadata_url, tmp_path)
        env |= {
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
            "MEDIAMON_OPS_EMAIL": "ops@example.org",
            "MEDIAMON_HTTP_RETRIES": "0",
            "AIRFLOW_CONN_MEDIAMON_SMTP": connection_json(smtp_port),
        }
        with airflow_stack.running(env, metadata_url) as stack:
            stack.start_components()
            stack.wait_for_api()
            stack.wait_for_dag("mediamon_ingest")
            unpaused = subprocess.run(
                [airflow_stack.airflow_bin(), "dags", "unpause", "mediamon_ingest"],
                env=env, capture_output=True, text=True,
            )  # fmt: skip
            assert unpaused.returncode == 0, unpaused.stderr[-2000:]
            stack.wait_until_idle("mediamon_ingest")
            sources.write_text(
                f"sources:\n  - {{name: heavy-news, url: '{feed}', allow_private_network: true}}\n",
                "utf-8",
            )
            run_id = stack.trigger("mediamon_ingest", {"sources": [], "force": True})
            metadata = stack.metadata()
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
            final = stack.wait_for_run("mediamon_ingest", run_id, 300)
            tasks = stack.task_instances("mediamon_ingest", run_id)
            metadata.dispose()
    subjects = [
        str(message_from_bytes(m.content, policy=policy.default)["Subject"]).strip()
        for m in sink.messages
    ]
    assert final.state == "failed", tasks
    assert killed == [1, 2, 3], killed
    states = {str(t["task_id"]): t["state"] for t in tasks}
    assert states["ingest_shard"] == "failed" and states["summarize"] == "failed", states
    # Airflow runs no failure callback for a task process killed with SIGKILL: the only
    # mail is summarize's, which names the shard's sources.
    assert len(sink.messages) == 1, subjects
    assert subjects[0].startswith(f"[mediamon] task failed: mediamon_ingest.summarize ({run_id})")
    body = message_from_bytes(sink.messages[0].content, policy=policy.default)
    text = body.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert "1 source(s) not ingested" in text and "heavy-news" in text, text
    assert "SIGKILL" in text and "out of memory" in text, text
    with engine.connect() as conn:  # the run's record counts the source, failed
        row = conn.execute(
            sa.text("select sources_due, sources_failed, error from ingest_runs"
                    " where run_key like 'mediamon_ingest:%' order by run_at desc limit 1")
        ).one()  # fmt: skip
    assert (row.sources_due, row.sources_failed) == (1, 1), row
