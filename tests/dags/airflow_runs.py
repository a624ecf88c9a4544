"""Reading what a ``dag.test()`` run left: its conf, its state and each task's as
Airflow's metadata database stores them (what the UI shows), not return values; and
sources files with sources that are down."""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path
from typing import Any

import sqlalchemy as sa


def conf(**params: object) -> dict[str, object]:
    """A run's conf naming every param: ``dag.test`` keeps conf values on the DAG's params
    for later runs in the same process, so a test must not rely on defaults."""
    return {"sources": [], "force": False, "refetch": False, **params}


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


def first_run(metadata: sa.Engine, dag_id: str, timeout_s: float) -> str:
    """The id of ``dag_id``'s first run (the one unpausing it makes), once it exists. (The
    DAG is idle before it is made: waiting for no run going can pass before it starts.)"""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with metadata.connect() as conn:
            run_id = conn.execute(
                sa.text("select min(run_id) from dag_run where dag_id = :d"), {"d": dag_id}
            ).scalar()
        if run_id is not None:
            return str(run_id)
        time.sleep(1)
    raise TimeoutError(f"no run of {dag_id} in {timeout_s} s")


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
