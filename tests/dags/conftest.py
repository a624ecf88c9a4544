"""Real Airflow in this process, for the DAG tests that call ``dag.test()``.

Airflow reads its configuration from the environment once, when it is first imported:
so it is configured once per process (:func:`airflow_process`, for the session), its
metadata in its own PostgreSQL database made for the session. Each module that uses it
gets the environment set for its tests (:func:`airflow`) and put back after, so the
tests of the other modules (which start Airflow as a subprocess) see the environment
they were given."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from typing import Any

import pytest
import sqlalchemy as sa

from mediamon import db
from mediamon.devtools.airflow_env import airflow_command, airflow_environment, dags_folder
from mediamon.devtools.sitehost import serve_folder
from mediamon.settings import DEMO_DIR, Settings


@contextmanager
def environment(env: dict[str, str]) -> Iterator[None]:
    """``os.environ`` with ``env`` added within the block, as it was after."""
    saved = dict(os.environ)
    os.environ.update(env)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


@pytest.fixture(scope="session", autouse=True)
def _stack_template() -> Iterator[None]:
    """The real-scheduler tests' metadata database template (``bench.airflow_stack``):
    migrated once for the session and dropped at its end. Dropped after each module, it
    was migrated again for each, 18 s of CI a module."""
    yield
    from bench import airflow_stack

    airflow_stack.drop_templates()


@pytest.fixture(scope="session")
def site() -> Iterator[str]:
    """The demo site, served for the session: the session's sources file names it."""
    with serve_folder(DEMO_DIR / "site") as base:
        yield base


@pytest.fixture(scope="session")
def airflow_process(
    database_url: str, site: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[dict[str, str], Any]]:
    """Airflow configured through the environment, which it reads once, when first
    imported: the environment it was configured with, and the DAG files parsed."""
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
    with environment(env):
        migrated = subprocess.run(
            airflow_command(["db", "migrate"]), env=dict(os.environ), capture_output=True, text=True
        )
        assert migrated.returncode == 0, migrated.stderr[-3000:]
        from airflow.dag_processing.dagbag import DagBag

        parsed = DagBag(dag_folder=str(dags_folder()))
    yield env, parsed
    with environment(env):
        from airflow import settings as airflow_settings

        airflow_settings.dispose_orm()  # before its database goes
    admin = sa.create_engine(db.normalize_url(database_url), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        name = sa.make_url(metadata_url).database
        conn.execute(sa.text(f'drop database if exists "{name}" with (force)'))
    admin.dispose()


@pytest.fixture(scope="module")
def airflow(airflow_process: tuple[dict[str, str], Any]) -> Iterator[Any]:
    """The parsed DAG files, with Airflow's environment set for the module's tests."""
    env, parsed = airflow_process
    with environment(env):
        yield parsed


@pytest.fixture(scope="module")
def metadata(airflow: Any) -> Iterator[sa.Engine]:
    """An engine on Airflow's metadata database (the fixture above configured it)."""
    engine = sa.create_engine(os.environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"])
    yield engine
    engine.dispose()


@pytest.fixture()
def quick_failures(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEDIAMON_HTTP_RETRIES", "0")  # a refused connection fails at once
