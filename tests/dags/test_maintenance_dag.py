"""The maintenance DAG prunes Airflow's metadata, task logs and the fetch log; without
its metadata URL, or with a retention it cannot keep, it says so at once."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from mediamon import db
from tests.dags.airflow_runs import run_state


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
