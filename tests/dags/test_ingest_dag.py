"""``dag.test()`` runs of the ingest DAG against the demo site and loopback feeds: it
loads into PostgreSQL, a re-run changes nothing, and each failure (every source down, a
configuration error, a failed quality check) shows in the run's state as stored."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from mediamon.devtools.sitehost import serve_folder
from mediamon.settings import DEMO_DIR, Settings
from tests.dags.airflow_runs import conf, down_source, run_state, stored_xcom, write_sources

MORE_THAN_MAP_LIMIT = 1030  # Airflow maps over at most 1,024 values


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


def test_a_database_a_newer_mediamon_upgraded_fails_the_run_with_one_try(
    airflow: Any, metadata: sa.Engine, engine: sa.Engine
) -> None:
    """A deploy rolled back after its migration ran: plan_sources refuses the database in
    one line and fails at once (before: it ran on against tables it does not know; a
    retry would run the same code)."""
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "insert into schema_migrations (version, name, checksum)"
                " values (9999, '9999_from_the_future', 'x')"
            )
        )
    try:
        run = airflow.dags["mediamon_ingest"].test(
            logical_date=datetime(2024, 5, 2, 13, 0, tzinfo=UTC), run_conf=conf()
        )
    finally:
        with engine.begin() as conn:
            conn.execute(sa.text("delete from schema_migrations where version = 9999"))
    state, tasks = run_state(metadata, "mediamon_ingest", run.run_id)
    assert (state, tasks["plan_sources"]) == ("failed", ("failed", 1)), tasks
    assert tasks["summarize"] == ("failed", 1)  # it runs whatever plan_sources did


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


@pytest.mark.parametrize(
    ("dag_id", "task_id", "when"),
    [
        ("mediamon_ingest", "plan_sources", datetime(2300, 1, 1, tzinfo=UTC)),
        ("mediamon_health", "watchdog", datetime(9999, 12, 31, 22, 0, tzinfo=UTC)),
    ],
    ids=["ingest-2300", "watchdog-9999"],
)
def test_a_run_given_a_time_after_the_clock_fails_at_once_storing_nothing(
    airflow: Any, engine: sa.Engine, metadata: sa.Engine, dag_id: str, task_id: str,
    when: datetime,
) -> None:  # fmt: skip
    """The trigger form's logical date (or the API's data_interval_end) takes any time,
    and a manual run starts at once. Before: an ingest run "at" 2300 stored its 7
    articles as first seen on 2300-01-01 and pushed each source's next poll there; a
    watchdog run in 9999 opened `ingest_stale:ingest: no successful ingest run for
    2812366.9 days`, an incident mailed to ops. Now the first task fails on its first
    try, in one line naming the run's time, and nothing is stored."""
    params = conf(force=True) if dag_id == "mediamon_ingest" else None
    run = airflow.dags[dag_id].test(logical_date=when, run_conf=params)
    state, tasks = run_state(metadata, dag_id, run.run_id)
    assert (state, tasks[task_id]) == ("failed", ("failed", 1)), tasks
    with engine.connect() as conn:
        stored = [
            conn.execute(sa.text(f"select count(*) from {table}")).scalar_one()
            for table in ("articles", "source_state", "incidents")
        ]
    assert stored == [0, 0, 0]
