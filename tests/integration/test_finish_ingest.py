"""The verdict ``summarize`` gives an ingest run, with its ``ingest_runs`` row: a shard
task that raised has mailed its own failure, so the verdict does not fail (and mail) for
it again; a shard that said nothing (killed) and every source failing in green shards
still fail it."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from mediamon.ops import runs
from mediamon.ops.service import finish_ingest
from mediamon.settings import Settings

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
PLANNED = [{"sources": ["rfi"], "label": "rfi", "of": 1}]


def test_a_run_whose_only_shard_raised_is_not_failed_again_by_summarize(
    database_url: str, engine: sa.Engine
) -> None:
    settings = replace(Settings.from_env(), database_url=database_url)
    down = runs.shard_failure(["rfi"], "database unavailable: refused", ConnectionError("x"))
    said = finish_ingest(settings, "k:said", NOW, [None], PLANNED, [down])
    killed = finish_ingest(settings, "k:killed", NOW, [None], PLANNED, [None])
    polled = [[{"source": "rfi", "poll": "failed", "errors": ["connection failed"]}]]
    unreachable = finish_ingest(settings, "k:unreachable", NOW, polled, PLANNED, [None])
    # Before: "1 source(s) not ingested, its ingest task ended without reporting": a
    # second mail beside the shard's own.
    assert said.failure is None and said.summary["sources_failed"] == 1, said
    assert killed.failure is not None and killed.failure.startswith("1 source(s) not ingested")
    assert unreachable.failure == "all 1 due source(s) failed: rfi"
    with engine.connect() as conn:
        rows = dict(conn.execute(sa.text("select run_key, sources_failed from ingest_runs")).all())
    assert rows == {"k:said": 1, "k:killed": 1, "k:unreachable": 1}


def test_a_run_red_in_airflow_for_one_failed_shard_says_failed_in_ingest_runs(
    database_url: str, engine: sa.Engine
) -> None:
    """Two of three shards loaded; one raised (its task mailed; the watcher turns the run
    red) or died (summarize fails). Before: the row said ``loaded``, then ``success`` once
    the checks passed; analysts and the watchdog saw a good run the Airflow UI shows red."""
    from mediamon.ingest.shard_runner import ShardIncomplete
    from mediamon.ops import health
    from mediamon.ops.service import check_quality
    from mediamon.ops.thresholds import HealthThresholds

    settings = replace(Settings.from_env(), database_url=database_url)
    planned = [
        {"sources": ["steady", "broken"], "label": "steady +1", "of": 3},
        {"sources": ["rfi"], "label": "rfi", "of": 3},
        {"sources": ["bbc"], "label": "bbc", "of": 3},
    ]
    ok = [[{"source": "rfi", "poll": "ok", "new": 1}], [{"source": "bbc", "poll": "ok"}]]
    crashed = ShardIncomplete(
        {"broken": "disk full"},
        [{"source": "steady", "poll": "ok", "new": 2}, {"source": "broken", "poll": "failed"}],
    )
    raised = runs.shard_failure(["steady", "broken"], "ShardIncomplete: disk full", crashed)
    said = finish_ingest(settings, "k:raised", NOW, [None, *ok], planned, [raised, None, None])
    later = NOW + timedelta(minutes=15)
    killed = finish_ingest(settings, "k:killed", later, [None, *ok], planned, [None] * 3)
    statuses = [check_quality(settings, key, at)["status"] for key, at in
                (("k:raised", NOW), ("k:killed", later))]  # fmt: skip
    assert said.failure is None  # the shard's own mail told ops; summarize stays green
    assert killed.failure is not None and "steady, broken" in killed.failure
    with engine.connect() as conn:
        rows = {
            row.run_key: row
            for row in conn.execute(
                sa.text("select run_key, status, sources_due, sources_failed, error"
                        " from ingest_runs")
            )
        }  # fmt: skip
        found = {f.key: f for f in health.find_problems(conn, later, HealthThresholds())}
    # Before: both success (under Airflow the killed run's checks do not run: `loaded`).
    assert statuses == ["failed", "failed"]
    assert (rows["k:raised"].status, rows["k:raised"].sources_due) == ("failed", 4)
    assert rows["k:raised"].sources_failed == 1
    assert rows["k:raised"].error == (
        "1 ingest task(s) failed (their logs say why): 1 of 4 due source(s) not ingested: broken"
    )
    assert rows["k:killed"].status == "failed" and rows["k:killed"].sources_failed == 2
    assert rows["k:killed"].error == killed.failure  # the line summarize's mail gave
    assert found["ingest_failed:ingest"].detail == f"k:killed: {killed.failure}"


def test_one_source_down_in_shards_that_succeeded_leaves_the_run_good(
    database_url: str, engine: sa.Engine
) -> None:
    """Green in Airflow (one feed down among several is counted, not red): the row too."""
    from mediamon.ops.service import check_quality

    settings = replace(Settings.from_env(), database_url=database_url)
    polled = [
        [{"source": "rfi", "poll": "failed", "errors": ["connection refused"]}],
        [{"source": "bbc", "poll": "ok", "new": 1}],
    ]
    planned = [*PLANNED, {"sources": ["bbc"], "label": "bbc", "of": 2}]
    verdict = finish_ingest(settings, "k:one-down", NOW, polled, planned, [None, None])
    assert verdict.failure is None
    assert check_quality(settings, "k:one-down", NOW)["status"] == "success"
    with engine.connect() as conn:
        row = conn.execute(sa.text("select status, sources_failed, error from ingest_runs")).one()
    assert tuple(row) == ("success", 1, None)
