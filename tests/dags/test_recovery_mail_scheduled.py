"""The RESOLVED mail as ops get it: runs of ``mediamon_ingest`` made by a real scheduler
(LocalExecutor) and the api-server, each task in its own process reading the failure-mail
Variable through the execution API (``dag.test()`` reads it in the test's process)."""

from __future__ import annotations

import os
from dataclasses import replace
from email import message_from_bytes, policy
from pathlib import Path

import sqlalchemy as sa

from bench import airflow_stack
from mediamon.devtools.airflow_env import airflow_environment
from mediamon.settings import DEMO_DIR, Settings
from tests.dags.airflow_runs import first_run
from tests.support.smtp_server import Sink, connection_json, serve_smtp


def _variable_reads(log: Path) -> int:
    """The api-server's answers to a task reading the failure-mail Variable."""
    # Imported here: at collection, importing Airflow before tests/dags/conftest.py set
    # its configuration fails every test of the folder.
    from mediamon_airflow.task_failure import MAILED_VARIABLE

    read = f"method=GET path=/execution/variables/{MAILED_VARIABLE} "
    return log.read_text("utf-8", "replace").count(read)


def _subjects(sink: Sink) -> list[str]:
    return [
        str(message_from_bytes(m.content, policy=policy.default)["Subject"]).strip()
        for m in sink.messages
    ]


def test_a_failed_then_recovered_task_mails_resolved_once_through_the_scheduler(
    database_url: str, engine: sa.Engine, tmp_path: Path
) -> None:
    """Four runs. A plain success mails nothing; plan_sources failing on a broken sources
    file mails its failure; its next success mails one RESOLVED (summarize, which succeeds
    beside it, none); later successes none. Before: each success read the Variable twice
    once any cause had been mailed (the emptiness check, then the recovery itself): every
    task of every run for the next 4 hours to 7 days."""
    good = f"sources:\n  - {{name: archive, kind: archive, path: '{DEMO_DIR / 'archive'}'}}\n"
    sources = tmp_path / "sources.yaml"
    sources.write_text(good, "utf-8")
    sink = Sink()
    base = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "MEDIAMON_"))}
    with airflow_stack.metadata_database(base) as metadata_url, serve_smtp(sink) as smtp_port:
        settings = replace(
            Settings.from_env(), database_url=database_url, var_dir=tmp_path, sources_path=sources
        )
        env = airflow_environment(settings, {**base, "MEDIAMON_AIRFLOW_DATABASE_URL": metadata_url})
        env = airflow_stack.stack_environment(env, metadata_url, tmp_path)
        env |= {
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",  # only the ingest DAG runs
            "MEDIAMON_OPS_EMAIL": "ops@example.org",
            "AIRFLOW_CONN_MEDIAMON_SMTP": connection_json(smtp_port),
        }
        with airflow_stack.running(env, metadata_url, stop_grace_s=5) as stack:
            stack.start_components()
            stack.wait_for_api()
            stack.wait_for_dag("mediamon_ingest")
            stack.unpause("mediamon_ingest")

            def ended(run_id: str) -> tuple[str, dict[str, object]]:
                state = stack.wait_for_run("mediamon_ingest", run_id, 300).state
                tasks = {str(t["task_id"]): t["state"] for t in
                         stack.task_instances("mediamon_ingest", run_id)}  # fmt: skip
                return state, tasks

            def run(conf: dict[str, object]) -> tuple[str, dict[str, object]]:
                return ended(stack.trigger("mediamon_ingest", conf))

            # The plain success is the run unpausing makes (the archive source is due, never
            # polled), which ran anyway: a triggered one after it cost 25-50 s more of CI.
            metadata = stack.metadata()
            scheduled = first_run(metadata, "mediamon_ingest", 120)
            metadata.dispose()
            state, tasks = ended(scheduled)
            assert (state, tasks["plan_sources"], tasks["summarize"]) == (
                "success", "success", "success",
            ), tasks  # fmt: skip
            plain = _subjects(sink)
            everything = {"sources": [], "force": True, "refetch": False}
            sources.write_text("sources:\n  - {name: x, url: notaurl}\n", "utf-8")
            state, tasks = run(everything)
            assert (state, tasks["plan_sources"]) == ("failed", "failed"), tasks
            failed = _subjects(sink)
            sources.write_text(good, "utf-8")
            state, tasks = run(everything)
            assert (state, tasks["plan_sources"], tasks["summarize"]) == (
                "success", "success", "success",
            ), tasks  # fmt: skip
            recovered = _subjects(sink)
            api_log = stack.logs["api-server"]
            reads_before = _variable_reads(api_log)
            state, tasks = run(everything)
            assert state == "success", tasks
            successes = sum(1 for task_state in tasks.values() if task_state == "success")
            reads = _variable_reads(api_log) - reads_before
    assert plain == [], plain
    assert len(failed) == 1, failed
    assert failed[0].startswith("[mediamon] task failed: mediamon_ingest.plan_sources"), failed
    assert len(recovered) == 2, recovered
    assert recovered[1].startswith("[mediamon] RESOLVED task failure: mediamon_ingest.plan_sources")
    assert _subjects(sink) == recovered  # the run after mailed nothing
    # One read of the Variable per success, with an ended cause still kept in it.
    assert successes >= 3 and reads == successes, (reads, successes, tasks)
