"""Real Airflow: the DAG files parse, follow our policies, and a ``dag.test()`` run of the
ingest DAG loads the demo site into PostgreSQL; a second run of the interval changes
nothing. Airflow's metadata lives in its own PostgreSQL database, made for the session."""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from mediamon import db
from mediamon.devtools.airflow_env import airflow_command, airflow_environment, dags_folder
from mediamon.devtools.sitehost import serve_folder
from mediamon.models import Article
from mediamon.settings import DEMO_DIR, Settings

DAG_IDS = {
    "mediamon_ingest",
    "mediamon_alerts",
    "mediamon_digests",
    "mediamon_health",
    "mediamon_health_report",
    "mediamon_maintenance",
}
# Tasks that must not retry: the watcher only re-states a failure upstream.
NO_RETRIES = {("mediamon_ingest", "watcher")}
MORE_THAN_MAP_LIMIT = 1030  # Airflow maps over at most 1,024 values


@pytest.fixture(scope="module")
def site() -> Iterator[str]:
    with serve_folder(DEMO_DIR / "site") as base:
        yield base


@pytest.fixture(scope="module")
def airflow(
    database_url: str, site: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Any]:
    """Airflow configured through the environment, which it reads once, when first imported."""
    assert "airflow" not in sys.modules, "Airflow was imported before its configuration was set"
    home = tmp_path_factory.mktemp("airflow")
    sources = home / "sources.yaml"
    sources.write_text(
        "sources:\n"
        f"  - {{name: demo-news, url: '{site}/feed.xml', language: zh,"
        " allow_private_network: true}\n"
        f"  - {{name: archive, kind: archive, path: '{DEMO_DIR / 'archive'}'}}\n",
        "utf-8",
    )
    metadata_url = db.ensure_database(database_url, f"airflow_test_{uuid.uuid4().hex[:8]}")
    settings = replace(
        Settings.from_env(), database_url=database_url, sources_path=sources, var_dir=home
    )
    env = airflow_environment(settings, {"MEDIAMON_AIRFLOW_DATABASE_URL": metadata_url})
    env["AIRFLOW_HOME"] = str(home)
    saved = dict(os.environ)
    os.environ.update(env)
    migrated = subprocess.run(
        airflow_command(["db", "migrate"]), env={**saved, **env}, capture_output=True, text=True
    )
    assert migrated.returncode == 0, migrated.stderr[-3000:]
    from airflow.dag_processing.dagbag import DagBag

    yield DagBag(dag_folder=str(dags_folder()))
    from airflow import settings as airflow_settings

    airflow_settings.dispose_orm()  # before its database goes
    os.environ.clear()
    os.environ.update(saved)
    admin = sa.create_engine(db.normalize_url(database_url), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        name = sa.make_url(metadata_url).database
        conn.execute(sa.text(f'drop database if exists "{name}" with (force)'))
    admin.dispose()


def conf(**params: object) -> dict[str, object]:
    """A run's conf naming every param: ``dag.test`` keeps conf values on the DAG's params
    for later runs in the same process, so a test must not rely on defaults."""
    return {"sources": [], "force": False, "refetch": False, **params}


def test_dag_files_import_cleanly(airflow: Any) -> None:
    assert airflow.import_errors == {}
    assert set(airflow.dags) == DAG_IDS


def test_dag_policies(airflow: Any) -> None:
    for dag_id in DAG_IDS:
        dag = airflow.dags[dag_id]
        assert dag.tags and "mediamon" in dag.tags
        assert dag.doc_md
        assert not dag.catchup
        assert dag.owner == "mediamon"
        for task in dag.tasks:
            if (dag_id, task.task_id) in NO_RETRIES:
                assert task.retries == 0
            else:
                assert task.retries >= 2, f"{dag_id}.{task.task_id} needs retries"


def test_ingest_dag_shape(airflow: Any) -> None:
    dag = airflow.dags["mediamon_ingest"]
    assert {t.task_id: sorted(t.downstream_task_ids) for t in dag.tasks} == {
        "plan_sources": ["ingest_shard", "watcher"],
        "ingest_shard": ["summarize", "watcher"],
        "summarize": ["check_quality", "publish_articles", "watcher"],
        "check_quality": ["publish_articles", "watcher"],
        "publish_articles": ["watcher"],
        "watcher": [],
    }
    assert [o.name for o in dag.get_task("publish_articles").outlets] == ["mediamon_articles"]
    assert dag.get_task("summarize").trigger_rule == "all_done"
    assert dag.get_task("watcher").trigger_rule == "one_failed"
    assert dag.timetable.expression == "*/15 * * * *"
    # The trigger form offers the configured sources (read at parse time) as a multi-select.
    sources = dag.params.get_param("sources")
    assert sources.schema["type"] == "array"
    assert sources.schema["examples"] == ["demo-news", "archive"]


def test_dag_run_loads_and_a_rerun_changes_nothing(airflow: Any, engine: sa.Engine) -> None:
    dag = airflow.dags["mediamon_ingest"]
    logical_date = datetime(2024, 4, 20, 12, 0, tzinfo=UTC)
    run = dag.test(logical_date=logical_date, run_conf=conf(force=True))
    assert run.state == "success"
    with engine.connect() as conn:
        articles = conn.execute(sa.text("select * from articles order by article_id")).all()
        log_rows = conn.execute(sa.text("select count(*) from fetch_log")).scalar_one()
        sources = conn.execute(sa.text("select source, count(*) from bi.articles group by 1")).all()
    assert dict(sources) == {"demo-news": 6, "archive": 1}

    rerun = dag.test(logical_date=logical_date, run_conf=conf(force=True, refetch=True))
    assert rerun.state == "success"
    with engine.connect() as conn:
        assert conn.execute(sa.text("select * from articles order by article_id")).all() == articles
        assert conn.execute(sa.text("select count(*) from fetch_log")).scalar_one() == log_rows


def test_ops_failure_mail_is_opt_in(airflow: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    import mediamon_airflow

    monkeypatch.delenv("MEDIAMON_OPS_EMAIL", raising=False)
    assert mediamon_airflow.failure_mail() == {}
    monkeypatch.setenv("MEDIAMON_OPS_EMAIL", "ops@example.org, oncall@example.org")
    notifier = mediamon_airflow.failure_mail()["on_failure_callback"]
    assert notifier.recipients == ["ops@example.org", "oncall@example.org"]
    # The watcher re-states a failure another task already mailed: no second mail.
    from airflow.dag_processing.dagbag import DagBag

    parsed = DagBag(dag_folder=str(dags_folder()))  # with MEDIAMON_OPS_EMAIL set
    for task in parsed.dags["mediamon_ingest"].tasks:
        callbacks = task.on_failure_callback
        assert (not callbacks) is (task.task_id == "watcher"), task.task_id


def test_a_task_failing_for_good_mails_ops_its_error_and_log(
    airflow: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The provider's SmtpNotifier mailed an HTML part only, without the error, and its
    log link named localhost:8080 whatever port the UI was on."""
    from airflow.dag_processing.dagbag import DagBag

    from tests.integration.test_health import Mailbox
    from tests.support.smtp_server import Sink, connection_json, serve_smtp

    broken = tmp_path / "sources.yaml"
    broken.write_text("sources:\n  - {name: x, url: notaurl}\n", "utf-8")
    monkeypatch.setenv("MEDIAMON_SOURCES", str(broken))
    monkeypatch.setenv("MEDIAMON_OPS_EMAIL", "ops@example.org")
    monkeypatch.setenv("AIRFLOW__API__BASE_URL", "http://127.0.0.1:18099/")
    dag = DagBag(dag_folder=str(dags_folder())).dags["mediamon_ingest"]  # reads OPS_EMAIL
    mailbox = Mailbox(Sink())
    with serve_smtp(mailbox.sink) as port:
        monkeypatch.setenv("AIRFLOW_CONN_MEDIAMON_SMTP", connection_json(port))
        run = dag.test(logical_date=datetime(2024, 5, 6, 12, 0, tzinfo=UTC), run_conf=conf())
    assert run.state == "failed"
    [message] = mailbox.messages  # plan_sources; the watcher does not mail it again
    assert message["Subject"].startswith("[mediamon] task failed: mediamon_ingest.plan_sources")
    plain = message.get_body(("plain",))
    assert plain is not None and message.get_body(("html",)) is not None
    text = plain.get_content()
    assert "source 'x'.url" in text, text
    assert "Log: http://127.0.0.1:18099/dags/mediamon_ingest/runs/" in text, text


def test_alerts_dag_shape(airflow: Any) -> None:
    dag = airflow.dags["mediamon_alerts"]
    assert {t.task_id: sorted(t.downstream_task_ids) for t in dag.tasks} == {
        "match_topics": ["detect_spikes"],
        "detect_spikes": ["deliver_alerts"],
        "deliver_alerts": [],
    }


def test_more_due_sources_than_airflow_can_map_are_all_ingested(
    airflow: Any, engine: sa.Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """1,030 sources on 1,030 loopback hosts, one item each: one task per source would
    fail on Airflow's max_map_length (1,024); shards ingest every one of them."""
    from bench.feedfarm import serve_farm

    sources_file = Settings.from_env().sources_path
    original = sources_file.read_text("utf-8")
    monkeypatch.setenv("MEDIAMON_SHARDS", "6")
    dag = airflow.dags["mediamon_ingest"]
    with serve_farm(MORE_THAN_MAP_LIMIT, 1, pages=False) as farm:
        farm.sources_yaml(sources_file, fetch_pages=False)
        try:
            run = dag.test(logical_date=datetime(2024, 5, 1, 12, 0, tzinfo=UTC))
        finally:
            sources_file.write_text(original, "utf-8")
    assert run.state == "success"
    with engine.connect() as conn:
        per_source = dict(
            conn.execute(sa.text("select source, count(*) from bi.articles group by 1")).all()
        )
        feeds = conn.execute(
            sa.text("select count(*) from fetch_log where kind = 'feed' and error is null")
        ).scalar_one()
    assert len(per_source) == MORE_THAN_MAP_LIMIT and set(per_source.values()) == {1}
    assert feeds == MORE_THAN_MAP_LIMIT
    shards = [ti for ti in run.get_task_instances() if ti.task_id == "ingest_shard"]
    assert len(shards) == 6 and all(ti.state == "success" for ti in shards)
    labels = {ti.rendered_map_index for ti in shards}
    assert all(label and label.startswith("site-") and " +" in label for label in labels), labels


def test_maintenance_prunes_old_metadata_logs_and_fetch_log(
    airflow: Any, engine: sa.Engine
) -> None:
    from airflow.sdk import conf

    logs = Path(conf.get("logging", "base_log_folder")) / "dag_id=old" / "run_id=x"
    logs.mkdir(parents=True, exist_ok=True)
    old_log, new_log = logs / "old.log", logs / "new.log"
    old_log.write_text("old"), new_log.write_text("new")
    long_ago = datetime(2024, 1, 1, tzinfo=UTC).timestamp()
    os.utime(old_log, (long_ago, long_ago))
    metadata = sa.create_engine(db.normalize_url(os.environ["MEDIAMON_AIRFLOW_DATABASE_URL"]))
    with metadata.begin() as conn:
        conn.execute(
            sa.text("insert into log (dttm, event) values (:at, 'mediamon-test-old')"),
            {"at": datetime(2024, 1, 1, tzinfo=UTC)},
        )
    with engine.begin() as conn:
        source = conn.execute(
            sa.text(
                "insert into sources (name, kind, location, poll_interval)"
                " values ('old', 'feed', 'https://old.example/', '15 minutes')"
                " returning source_id"
            )
        ).scalar_one()
        for run, at in (
            ("r-old", datetime(2024, 1, 1, tzinfo=UTC)),
            ("r-new", datetime(2024, 5, 30, tzinfo=UTC)),
        ):
            conn.execute(
                sa.text(
                    "insert into fetch_log (run_key, source_id, url, kind, fetched_at)"
                    " values (:run, :source, 'https://old.example/', 'feed', :at)"
                ),
                {"run": run, "source": source, "at": at},
            )
    run = airflow.dags["mediamon_maintenance"].test(logical_date=datetime(2024, 6, 1, tzinfo=UTC))
    assert run.state == "success"
    assert not old_log.exists() and new_log.exists()
    with metadata.connect() as conn:
        left = conn.execute(
            sa.text("select count(*) from log where event = 'mediamon-test-old'")
        ).scalar_one()
    metadata.dispose()
    assert left == 0
    with engine.connect() as conn:
        assert conn.execute(sa.text("select run_key from fetch_log")).scalars().all() == ["r-new"]


@pytest.mark.parametrize(
    ("dag_id", "task_id"),
    [
        ("mediamon_alerts", "deliver_alerts"),
        ("mediamon_digests", "send_digests"),
        ("mediamon_health", "watchdog"),
    ],
)
def test_a_malformed_mail_connection_fails_the_task_at_once(
    airflow: Any, metadata: sa.Engine, engine: sa.Engine, monkeypatch: pytest.MonkeyPatch,
    dag_id: str, task_id: str,
) -> None:  # fmt: skip
    """`mediamon_smtp` with port 99999: mediamon refuses it in one line (`configuration
    error: mediamon_smtp: port: expected a whole number from 1 to 65535, got 99999`).
    Before, that line came as an exception every try: 3 retries with backoff (2, 4 and
    8 minutes) for the alerts and digests, 2 for the watchdog, to the same end. Now the
    task fails on its first try, as a bad sources file does."""
    from mediamon.settings import DEFAULT_CONFIG_DIR
    from mediamon.topics.file import load_topics
    from mediamon.topics.store import sync_topics

    sync_topics(engine, load_topics(DEFAULT_CONFIG_DIR / "topics.yaml"))
    monkeypatch.setenv("MEDIAMON_OPS_EMAIL", "ops@example.org")  # the watchdog has a mail
    monkeypatch.setenv(
        "AIRFLOW_CONN_MEDIAMON_SMTP",
        json.dumps({"conn_type": "smtp", "host": "127.0.0.1", "port": 99999}),
    )
    run = airflow.dags[dag_id].test(logical_date=datetime(2024, 4, 5, 0, 0, tzinfo=UTC))
    state, tasks = run_state(metadata, dag_id, run.run_id)
    assert (state, tasks[task_id]) == ("failed", ("failed", 1)), tasks


def test_a_topics_file_never_valid_fails_match_topics_at_once(
    airflow: Any, metadata: sa.Engine, engine: sa.Engine, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    """No valid topics file was ever stored (a new deployment with a typo): before, the
    file's one-line error was retried 3 times with backoff; now the first try fails."""
    with engine.connect() as conn:  # nothing stored to fall back on (``engine`` empties it)
        assert conn.execute(sa.text("select count(*) from topics")).scalar() == 0
    topics = tmp_path / "topics.yaml"
    topics.write_text("version: 1\ntopics: [{key: taiwan}]\n", "utf-8")  # no name, no terms
    monkeypatch.setenv("MEDIAMON_TOPICS", str(topics))
    run = airflow.dags["mediamon_alerts"].test(logical_date=datetime(2024, 4, 6, tzinfo=UTC))
    state, tasks = run_state(metadata, "mediamon_alerts", run.run_id)
    assert (state, tasks["match_topics"]) == ("failed", ("failed", 1)), tasks


def test_maintenance_without_the_metadata_url_fails_at_once(
    airflow: Any, metadata: sa.Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """MEDIAMON_AIRFLOW_DATABASE_URL unset (a deployment that forgot it): before, the
    RuntimeError was retried twice, 10 minutes apart, to the same end, and the run stayed
    running for 20 minutes before turning red. Now it is a configuration error: the task
    fails on its first try, and the other retention tasks still run."""
    monkeypatch.delenv("MEDIAMON_AIRFLOW_DATABASE_URL")
    run = airflow.dags["mediamon_maintenance"].test(logical_date=datetime(2024, 6, 3, tzinfo=UTC))
    state, tasks = run_state(metadata, "mediamon_maintenance", run.run_id)
    assert (state, tasks) == (
        "failed",
        {
            "clean_airflow_metadata": ("failed", 1),
            "prune_task_logs": ("success", 1),
            "prune_fetch_log": ("success", 1),
        },
    )


@pytest.mark.parametrize(
    ("conf", "said"),
    [
        ({"fetch_log_keep_days": 10**12}, "1000000000000 is greater than the maximum of 36500"),
        ({"airflow_keep_days": 1e30}, "1e+30 is greater than the maximum of 36500"),
        ({"fetch_log_keep_days": -5}, "-5 is less than the minimum of 1"),
        ({"airflow_keep_days": "ninety"}, "'ninety' is not of type 'integer'"),
    ],
    ids=["huge", "huge-float", "negative", "text"],
)
def test_the_maintenance_form_refuses_a_retention_it_cannot_keep(
    airflow: Any, conf: dict[str, object], said: str
) -> None:
    """The trigger form's values are checked before any task runs, in one line naming the
    param. Before: a huge value passed the schema (only a minimum) and every task failed
    with `OverflowError: Python int too large to convert to C int`, a traceback, after 2
    retries 10 minutes apart."""
    from airflow.sdk.exceptions import ParamValidationError

    with pytest.raises(ParamValidationError) as refused:
        airflow.dags["mediamon_maintenance"].test(
            logical_date=datetime(2024, 6, 2, tzinfo=UTC), run_conf=conf
        )
    (name,) = conf
    assert str(refused.value).splitlines()[0] == f"Invalid input for param {name}: {said}"


def test_digests_dag_sends_each_digest_once(
    airflow: Any, engine: sa.Engine, built_seed: Article, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Hourly; the run after 08:00 in Shanghai mails the daily digest of
    config/topics.yaml (the seed article), a re-run of the hour mails nothing."""
    from email import message_from_bytes, policy

    from mediamon.settings import DEFAULT_CONFIG_DIR
    from mediamon.topics.file import load_topics
    from mediamon.topics.store import sync_topics
    from tests.integration.test_alert_stages import ARTICLE_SQL, add_source, article_row
    from tests.support.smtp_server import Sink, connection_json, serve_smtp

    dag = airflow.dags["mediamon_digests"]
    assert [t.task_id for t in dag.tasks] == ["send_digests"]
    assert dag.timetable.expression in ("@hourly", "0 * * * *")
    sync_topics(engine, load_topics(DEFAULT_CONFIG_DIR / "topics.yaml"))
    with engine.begin() as conn:
        source = add_source(conn, "rfi-archive")
        row = article_row(
            source, built_seed.canonical_url, built_seed.title, built_seed.body_text,
            built_seed.published_at, first_seen_at=datetime(2024, 4, 3, tzinfo=UTC),
        )  # fmt: skip
        conn.execute(ARTICLE_SQL, {**row, "match_text": built_seed.match_text})
    sink = Sink()
    with serve_smtp(sink) as port:
        monkeypatch.setenv("AIRFLOW_CONN_MEDIAMON_SMTP", connection_json(port))
        hour = datetime(2024, 4, 3, 0, 0, tzinfo=UTC)  # the run ending 09:00 in Shanghai
        assert dag.test(logical_date=hour).state == "success"
        assert dag.test(logical_date=hour).state == "success"
    assert [r for _, r, _ in sink.messages] == [["editors@example.org"]]
    message = message_from_bytes(sink.messages[0].content, policy=policy.default)
    assert message["Subject"].startswith("[mediamon] 每日摘要 2024-04-03：1 篇新报道")
    with engine.connect() as conn:
        recorded = conn.execute(sa.text("select status, stories from digest_deliveries")).all()
    assert [tuple(r) for r in recorded] == [("sent", 1)]  # the seed, listed under both topics


def test_digests_due_without_a_mail_connection_make_a_red_run(
    airflow: Any, metadata: sa.Engine, engine: sa.Engine, built_seed: Article,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    """No `mediamon_smtp` connection while the editors' daily digest is due. Before: the
    task returned {"sent": 0, ...} and the run was green, every hour, while no reader got
    a digest and nothing watched for it. Now it fails at once (no retries: a retry cannot
    define the connection), saying so; the digest stays due and goes out once mail works.
    An hour with no digest due stays green."""
    from mediamon.settings import DEFAULT_CONFIG_DIR
    from mediamon.topics.file import load_topics
    from mediamon.topics.store import sync_topics
    from tests.integration.test_alert_stages import ARTICLE_SQL, add_source, article_row
    from tests.support.smtp_server import Sink, connection_json, serve_smtp

    sync_topics(engine, load_topics(DEFAULT_CONFIG_DIR / "topics.yaml"))
    with engine.begin() as conn:
        row = article_row(
            add_source(conn, "rfi-archive"), built_seed.canonical_url, built_seed.title,
            built_seed.body_text, built_seed.published_at,
            first_seen_at=datetime(2024, 4, 3, tzinfo=UTC),
        )  # fmt: skip
        conn.execute(ARTICLE_SQL, {**row, "match_text": built_seed.match_text})
    dag = airflow.dags["mediamon_digests"]
    monkeypatch.delenv("AIRFLOW_CONN_MEDIAMON_SMTP", raising=False)
    hour = datetime(2024, 4, 3, 0, 0, tzinfo=UTC)  # the run ending 09:00 in Shanghai
    unmailed = dag.test(logical_date=hour)
    assert run_state(metadata, "mediamon_digests", unmailed.run_id) == (
        "failed", {"send_digests": ("failed", 1)},
    )  # fmt: skip
    with engine.connect() as conn:
        assert conn.execute(sa.text("select count(*) from digest_deliveries")).scalar() == 0
    sink = Sink()
    with serve_smtp(sink) as port:
        monkeypatch.setenv("AIRFLOW_CONN_MEDIAMON_SMTP", connection_json(port))
        assert dag.test(logical_date=hour + timedelta(hours=1)).state == "success"
    assert [r for _, r, _ in sink.messages] == [["editors@example.org"]]
    monkeypatch.delenv("AIRFLOW_CONN_MEDIAMON_SMTP")
    nothing_due = dag.test(logical_date=hour + timedelta(hours=2))
    assert run_state(metadata, "mediamon_digests", nothing_due.run_id)[0] == "success"


# ---------------------------------------------------------------------------------------
# Run states, read from Airflow's metadata database (what the UI shows), not return values.


@pytest.fixture(scope="module")
def metadata(airflow: Any) -> Iterator[sa.Engine]:
    """An engine on Airflow's metadata database (the fixture above configured it)."""
    engine = sa.create_engine(os.environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"])
    yield engine
    engine.dispose()


def run_state(metadata: sa.Engine, dag_id: str, run_id: str) -> tuple[str, dict[str, Any]]:
    """The run's state and each task's (state, try_number), as stored."""
    with metadata.connect() as conn:
        state = conn.execute(
            sa.text("select state from dag_run where dag_id = :d and run_id = :r"),
            {"d": dag_id, "r": run_id},
        ).scalar_one()
        tasks = conn.execute(
            sa.text(
                "select task_id, map_index, state, try_number from task_instance"
                " where dag_id = :d and run_id = :r"
            ),
            {"d": dag_id, "r": run_id},
        ).all()
    by_task: dict[str, Any] = {}
    for task_id, map_index, task_state, tries in tasks:
        key = task_id if map_index < 0 else f"{task_id}[{map_index}]"
        by_task[key] = (task_state, tries)
    return state, by_task


def stored_xcom(metadata: sa.Engine, dag_id: str, run_id: str, task_id: str) -> Any:
    with metadata.connect() as conn:
        value = conn.execute(
            sa.text(
                "select value from xcom where dag_id = :d and run_id = :r and task_id = :t"
                " and key = 'return_value'"
            ),
            {"d": dag_id, "r": run_id, "t": task_id},
        ).scalar_one()
    return json.loads(value) if isinstance(value, str) else value


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])  # closed again when the block ends


def write_sources(path: Path, entries: list[str]) -> Path:
    path.write_text("sources:\n" + "".join(f"  - {e}\n" for e in entries), "utf-8")
    return path


def down_source(name: str) -> str:
    return (
        f"{{name: {name}, url: 'http://127.0.0.1:{closed_port()}/feed.xml',"
        " allow_private_network: true}"
    )


@pytest.fixture()
def quick_failures(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEDIAMON_HTTP_RETRIES", "0")  # a refused connection fails at once


def test_every_source_failing_fails_the_run(
    airflow: Any,
    metadata: sa.Engine,
    engine: sa.Engine,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    quick_failures: None,
) -> None:
    sources = write_sources(
        tmp_path / "sources.yaml", [down_source("down-a"), down_source("down-b")]
    )
    monkeypatch.setenv("MEDIAMON_SOURCES", str(sources))
    run = airflow.dags["mediamon_ingest"].test(
        logical_date=datetime(2024, 5, 1, 12, 0, tzinfo=UTC), run_conf=conf(force=True)
    )
    state, tasks = run_state(metadata, "mediamon_ingest", run.run_id)
    assert state == "failed"
    # The ingest tasks (however the sources are grouped into them) did their job: green.
    ingest_states = {v[0] for k, v in tasks.items() if k.startswith("ingest_")}
    assert ingest_states == {"success"}
    assert tasks["summarize"] == ("failed", 1)  # no retries: re-summing changes nothing
    assert tasks["publish_articles"][0] == "upstream_failed"  # no asset event, no alerts
    assert tasks["watcher"][0] == "failed"
    with engine.connect() as conn:
        row = conn.execute(sa.text("select * from ingest_runs")).one()
    assert row.status == "failed" and row.sources_due == 2 and row.sources_failed == 2
    assert row.error.startswith("all 2 due source(s) failed")


def test_a_run_with_no_source_due_is_green_but_does_not_clear_the_failure(
    airflow: Any,
    metadata: sa.Engine,
    engine: sa.Engine,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    quick_failures: None,
    capfd: pytest.CaptureFixture[str],
) -> None:
    from mediamon.ops import health
    from mediamon.ops.thresholds import HealthThresholds

    monkeypatch.setenv(
        "MEDIAMON_SOURCES", str(write_sources(tmp_path / "sources.yaml", [down_source("gone")]))
    )
    dag = airflow.dags["mediamon_ingest"]
    first = datetime(2024, 5, 6, 12, 0, tzinfo=UTC)
    assert dag.test(logical_date=first, run_conf=conf(force=True)).state == "failed"
    # A quarter of an hour later the source is backing off: nothing is due, nothing fails.
    capfd.readouterr()
    later = first + timedelta(minutes=15)
    run = dag.test(logical_date=later, run_conf=conf())
    state, tasks = run_state(metadata, "mediamon_ingest", run.run_id)
    assert state == "success"
    assert tasks["summarize"][0] == "success"
    assert tasks["publish_articles"][0] == "skipped"
    # Airflow's client logs an ERROR when a task reads past the end of a mapped output.
    assert "XCom not found" not in capfd.readouterr().out
    with engine.connect() as conn:
        idle = conn.execute(
            sa.text("select status, sources_due from ingest_runs where run_at = :at"),
            {"at": later},
        ).one()
        assert tuple(idle) == ("success", 0)
        found = {f.key for f in health.find_problems(conn, later, HealthThresholds())}
    assert "ingest_failed:ingest" in found  # the source is still down


def test_a_config_error_fails_the_run_with_one_try(
    airflow: Any, metadata: sa.Engine, engine: sa.Engine
) -> None:
    run = airflow.dags["mediamon_ingest"].test(
        logical_date=datetime(2024, 5, 2, 12, 0, tzinfo=UTC), run_conf=conf(sources=["nope"])
    )
    state, tasks = run_state(metadata, "mediamon_ingest", run.run_id)
    assert state == "failed"
    assert tasks["plan_sources"] == ("failed", 1)
    assert tasks["watcher"][0] == "failed"
    with engine.connect() as conn:
        row = conn.execute(sa.text("select status, error from ingest_runs")).one()
    assert row.status == "failed"
    assert row.error.startswith("configuration error: unknown source(s): nope")


def test_one_failing_source_of_three_is_counted_and_the_run_stands(
    airflow: Any,
    metadata: sa.Engine,
    engine: sa.Engine,
    site: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    quick_failures: None,
    caplog: pytest.LogCaptureFixture,
) -> None:
    sources = write_sources(
        tmp_path / "sources.yaml",
        [
            f"{{name: demo-news, url: '{site}/feed.xml', language: zh,"
            " allow_private_network: true}",
            f"{{name: archive, kind: archive, path: '{DEMO_DIR / 'archive'}'}}",
            down_source("down"),
        ],
    )
    monkeypatch.setenv("MEDIAMON_SOURCES", str(sources))
    with caplog.at_level(logging.WARNING):
        run = airflow.dags["mediamon_ingest"].test(
            logical_date=datetime(2024, 5, 3, 12, 0, tzinfo=UTC), run_conf=conf(force=True)
        )
    state, tasks = run_state(metadata, "mediamon_ingest", run.run_id)
    assert state == "success"
    assert tasks["publish_articles"][0] == "success"  # 7 new articles: the asset event
    assert tasks["watcher"][0] == "skipped"
    summary = stored_xcom(metadata, "mediamon_ingest", run.run_id, "summarize")
    assert summary["sources"] == 3 and summary["sources_failed"] == 1
    assert summary["failed_sources"] == ["down"] and summary["new"] == 7
    assert any(
        r.levelno == logging.WARNING and "source down failed" in r.getMessage()
        for r in caplog.records
    )
    with engine.connect() as conn:
        row = conn.execute(sa.text("select status, checks from ingest_runs")).one()
    assert row.status == "success" and all(check["passed"] for check in row.checks)


def test_a_failed_quality_check_fails_the_run(
    airflow: Any,
    metadata: sa.Engine,
    engine: sa.Engine,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A feed whose items have text but no title: loaded, then caught by the check.
    site = tmp_path / "site"
    site.mkdir()
    items = "".join(
        f"<item><link>{{{{BASE}}}}/a{n}.html</link><pubDate>Mon, 01 Apr 2024 0{n}:00:00"
        f" +0000</pubDate><description>第{n}篇没有标题的文章正文，内容足够长以便保存。"
        "</description></item>"
        for n in range(3)
    )
    (site / "feed.xml").write_text(
        f'<?xml version="1.0" encoding="UTF-8"?><rss version="2.0"><channel><title>t</title>'
        f"<link>http://127.0.0.1/</link>{items}</channel></rss>",
        "utf-8",
    )
    with serve_folder(site) as base:
        sources = write_sources(
            tmp_path / "sources.yaml",
            [
                f"{{name: untitled, url: '{base}/feed.xml', language: zh, fetch_pages: false,"
                " allow_private_network: true}"
            ],
        )
        monkeypatch.setenv("MEDIAMON_SOURCES", str(sources))
        run = airflow.dags["mediamon_ingest"].test(
            logical_date=datetime(2024, 5, 4, 12, 0, tzinfo=UTC), run_conf=conf(force=True)
        )
    state, tasks = run_state(metadata, "mediamon_ingest", run.run_id)
    assert state == "failed"
    assert tasks["summarize"][0] == "success"
    assert tasks["check_quality"] == ("failed", 1)
    assert tasks["publish_articles"][0] == "upstream_failed"  # no alerts on bad data
    with engine.connect() as conn:
        row = conn.execute(sa.text("select status, checks, error from ingest_runs")).one()
    assert row.status == "failed"
    failed = {c["name"]: c["detail"] for c in row.checks if not c["passed"]}
    assert list(failed) == ["urls_and_titles_present"]
    assert "3 without title" in failed["urls_and_titles_present"]


def test_health_dag_mails_an_incident_and_is_red_while_it_cannot(
    airflow: Any,
    metadata: sa.Engine,
    engine: sa.Engine,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    quick_failures: None,
) -> None:
    from tests.integration.test_health import Mailbox
    from tests.support.smtp_server import Sink, connection_json, serve_smtp

    # A failed ingest run an hour and a half ago: two incidents (failed, stale).
    sources = write_sources(tmp_path / "sources.yaml", [down_source("down")])
    monkeypatch.setenv("MEDIAMON_SOURCES", str(sources))
    ingest_at = datetime(2024, 5, 5, 12, 0, tzinfo=UTC)
    airflow.dags["mediamon_ingest"].test(logical_date=ingest_at, run_conf=conf(force=True))
    health = airflow.dags["mediamon_health"]
    monkeypatch.setenv("MEDIAMON_OPS_EMAIL", "ops@example.org")
    monkeypatch.delenv("AIRFLOW_CONN_MEDIAMON_SMTP", raising=False)
    unmailed = health.test(logical_date=ingest_at + timedelta(minutes=75))
    assert run_state(metadata, "mediamon_health", unmailed.run_id)[0] == "failed"

    mailbox = Mailbox(Sink())
    with serve_smtp(mailbox.sink) as port:
        monkeypatch.setenv("AIRFLOW_CONN_MEDIAMON_SMTP", connection_json(port))
        mailed = health.test(logical_date=ingest_at + timedelta(minutes=90))
    assert run_state(metadata, "mediamon_health", mailed.run_id)[0] == "success"
    assert sorted(m["Subject"] for m in mailbox.messages) == [
        "[mediamon] INCIDENT: no successful ingest run for 90 min",
        "[mediamon] INCIDENT: the latest ingest run failed",
    ]
