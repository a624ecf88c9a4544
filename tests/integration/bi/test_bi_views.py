"""The bi views as an analyst meets them, on demo data, read as a login in mediamon_bi:
every dataset of the Superset export runs (a renamed column fails here, not in a
dashboard), the charts name only columns and metrics their datasets have, the README's
example queries return rows, every view and column is commented, the local time zone
comes from MEDIAMON_TIMEZONE, and hourly series have no gaps."""

from __future__ import annotations

import re
import uuid
import zipfile
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
import yaml

from mediamon import db, service
from mediamon.bi import access, dashboard, superset_export
from mediamon.settings import Settings, SettingsError, validate_timezone
from tests.support import REPO_ROOT
from tests.support.bi_demo import demo_database

__all__ = ["demo_database"]  # a fixture, used by name

EXPORT = superset_export.EXPORT_DIR


@pytest.fixture(scope="module")
def bi_login(demo_database: str) -> Iterator[sa.Engine]:
    """An engine connected as a fresh login made by ``mediamon db bi-user``'s code."""
    admin = db.make_engine(demo_database)
    name = f"bi_test_{uuid.uuid4().hex[:8]}"
    server = sa.make_url(demo_database)
    login = access.create_bi_login(admin, name, None, server.host or "", server.port or 5432)
    url = sa.make_url(login.url)
    engine = db.make_engine(
        server.set(username=url.username, password=url.password).render_as_string(False)
    )
    yield engine
    engine.dispose()
    with admin.begin() as conn:
        conn.execute(sa.text(f'drop role "{name}"'))
    admin.dispose()


def _datasets() -> list[dict[str, Any]]:
    return superset_export.load(EXPORT, "datasets")


def _dataset_source(dataset: dict[str, Any]) -> str:
    """The SQL a dataset reads: its own query (virtual) or its table (physical)."""
    if dataset.get("sql"):
        return f"({dataset['sql']})"
    return f'"{dataset["schema"]}"."{dataset["table_name"]}"'


def test_every_dataset_runs_as_a_bi_login_and_returns_rows(bi_login: sa.Engine) -> None:
    datasets = _datasets()
    assert len(datasets) >= 6
    with bi_login.connect() as conn:
        for dataset in datasets:
            source = _dataset_source(dataset)
            columns = [c["column_name"] for c in dataset["columns"]]
            quoted = ", ".join(f'"{c}"' for c in columns)
            result = conn.execute(sa.text(f"select {quoted} from {source} as d limit 50"))
            assert list(result.keys()) == columns, dataset["table_name"]
            assert result.fetchall(), f"{dataset['table_name']}: no rows on the demo data"
            metrics = ", ".join(m["expression"] for m in dataset["metrics"])
            conn.execute(sa.text(f"select {metrics} from {source} as d")).one()
            # what Superset reads to list the columns: the view's own, in the same order
            if not dataset.get("sql"):
                actual = conn.execute(
                    sa.text(
                        "select column_name from information_schema.columns"
                        " where table_schema = :s and table_name = :t order by ordinal_position"
                    ),
                    {"s": dataset["schema"], "t": dataset["table_name"]},
                ).scalars()
                assert set(columns) <= set(actual), dataset["table_name"]


def test_charts_use_what_their_datasets_have() -> None:
    datasets = {d["uuid"]: d for d in _datasets()}
    charts = superset_export.load(EXPORT, "charts")
    (dashboard,) = superset_export.load(EXPORT, "dashboards")
    (database,) = superset_export.load(EXPORT, "databases")
    assert {d["database_uuid"] for d in datasets.values()} == {database["uuid"]}
    placed = {
        item["meta"]["uuid"]
        for item in dashboard["position"].values()
        if isinstance(item, dict) and item.get("type") == "CHART"
    }
    assert placed == {c["uuid"] for c in charts}
    for chart in charts:
        dataset = datasets[chart["dataset_uuid"]]
        columns = {c["column_name"] for c in dataset["columns"]}
        metrics = {m["metric_name"] for m in dataset["metrics"]}
        params = chart["params"]
        named = [params.get("x_axis"), *params.get("groupby", []), *params.get("all_columns", [])]
        named += [f["subject"] for f in params.get("adhoc_filters", [])]
        named += [re.match(r'\["(\w+)"', o).group(1) for o in params.get("order_by_cols", [])]  # type: ignore[union-attr]
        assert {n for n in named if n} <= columns, chart["slice_name"]
        assert set(params.get("metrics", [])) <= metrics, chart["slice_name"]
        if "timeseries_limit_metric" in params:  # the series kept under a series limit
            assert params["timeseries_limit_metric"] in metrics, chart["slice_name"]
        assert chart["viz_type"] == params["viz_type"]


def test_stories_per_source_and_publication_day_are_charted() -> None:
    """bi.source_published_daily (0032) has a dataset and a time series on the dashboard,
    filtered by the time range and kept to the sources with the most stories."""
    (dataset,) = [d for d in _datasets() if d["table_name"] == "source_published_daily"]
    assert (dataset["schema"], dataset["main_dttm_col"]) == ("bi", "day_local")
    (chart,) = [
        c for c in superset_export.load(EXPORT, "charts") if c["dataset_uuid"] == dataset["uuid"]
    ]
    params = chart["params"]
    assert (params["x_axis"], params["metrics"], params["groupby"]) == (
        "day_local",
        ["stories"],
        ["source"],
    )
    assert [f["operator"] for f in params["adhoc_filters"]] == ["TEMPORAL_RANGE"]
    assert 0 < params["limit"] <= 25


def test_readme_counts_what_the_dashboard_holds() -> None:
    """The README's sentence on ``make superset-check`` names as many datasets and charts
    as the export holds (the check itself compares Superset's counts with the export's)."""
    words = {"six": 6, "seven": 7, "eight": 8, "nine": 9, "ten": 10, "eleven": 11}
    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    found = re.search(r"the database, (\w+) datasets, (\w+)\s+charts and the dashboard", readme)
    assert found, "README: the superset-check sentence is gone"
    stated = (words[found.group(1)], words[found.group(2)])
    assert stated == (len(_datasets()), len(superset_export.load(EXPORT, "charts")))


def test_import_zip_has_superset_layout(tmp_path: Path) -> None:
    built = superset_export.build_zip(EXPORT, tmp_path / "dashboard.zip")
    with zipfile.ZipFile(built) as archive:
        names = archive.namelist()
        metadata = yaml.safe_load(archive.read(f"{superset_export.ZIP_ROOT}/metadata.yaml"))
    assert all(n.startswith(f"{superset_export.ZIP_ROOT}/") for n in names)
    assert metadata["type"] == "Dashboard" and metadata["version"] == "1.0.0"
    for kind in ("databases", "datasets", "charts", "dashboards"):
        assert any(n.startswith(f"{superset_export.ZIP_ROOT}/{kind}/") for n in names), kind
    (database,) = superset_export.load(EXPORT, "databases")
    assert sa.make_url(database["sqlalchemy_uri"]).password is None  # none in the repository
    with_url = superset_export.build_zip(
        EXPORT, tmp_path / "with_url.zip", "postgresql://superset:pw@127.0.0.1:54320/mediamon"
    )
    with zipfile.ZipFile(with_url) as archive:
        inside = yaml.safe_load(archive.read(f"{superset_export.ZIP_ROOT}/databases/mediamon.yaml"))
    assert inside["sqlalchemy_uri"] == "postgresql://superset:pw@127.0.0.1:54320/mediamon"
    assert inside["uuid"] == database["uuid"]


def _sql_queries(path: Path, after: str = "") -> list[str]:
    """The queries of the first ```sql block of ``path`` after the text ``after``."""
    text = path.read_text(encoding="utf-8")
    text = text[text.index(after) :]
    block = text[text.index("```sql") + len("```sql") :]
    block = block[: block.index("```")]
    return [q.strip() for q in re.split(r";\s*(?:\n|$)", block) if q.strip(" \n-")]


def _readme_queries() -> list[str]:
    return _sql_queries(REPO_ROOT / "README.md")


def test_readme_queries_return_rows_on_the_demo_data(bi_login: sa.Engine) -> None:
    queries = _readme_queries()
    assert len(queries) >= 4
    with bi_login.connect() as conn:
        for query in queries:
            sql = "\n".join(line for line in query.splitlines() if not line.startswith("--"))
            assert conn.execute(sa.text(sql)).fetchall(), f"no rows: {query}"


def test_topics_doc_dashboard_queries_run_and_count_local_days(bi_login: sa.Engine) -> None:
    """docs/topics.md's dashboard queries run as a BI login. Before: its daily stories
    were date_trunc('day', hour), days of the session's time zone (UTC in mediamon's own
    sessions) rather than bi.settings.timezone, and none for news older than 30 days."""
    queries = _sql_queries(REPO_ROOT / "docs" / "topics.md", "Dashboard queries")
    assert len(queries) >= 4
    with bi_login.connect() as conn:
        conn.exec_driver_sql("set time zone 'UTC'")  # as in mediamon's own sessions
        results = {}
        for query in queries:
            comment = query.splitlines()[0]
            sql = "\n".join(line for line in query.splitlines() if not line.startswith("--"))
            results[comment] = conn.execute(sa.text(sql)).all()
        (daily,) = [rows for comment, rows in results.items() if "Daily stories" in comment]
        local_days = conn.execute(
            sa.text(
                "select day_local, sum(stories) from bi.topic_hourly where topic_name = '台湾'"
                " and day_local > (select max(day_local) from bi.topic_hourly) - 30"
                " group by 1 having sum(stories) > 0 order by 1"
            )
        ).all()
    assert local_days, "no Taiwan stories in the demo data"
    assert [(day, stories) for day, stories, *_ in daily if stories] == [
        tuple(r) for r in local_days
    ]


def test_bi_login_reads_bi_and_nothing_else(bi_login: sa.Engine) -> None:
    with bi_login.connect() as conn:
        assert conn.execute(sa.text("select count(*) from bi.articles")).scalar_one() > 0
        for statement in (
            "select count(*) from public.articles",
            "select count(*) from public.sources",
            "set transaction read write; insert into bi.settings (timezone) values ('UTC')",
            "set transaction read write; update bi.settings set timezone = 'UTC'",
            "set transaction read write; create table public.grab (x int)",
        ):
            with pytest.raises(sa.exc.ProgrammingError, match="permission denied"):
                conn.exec_driver_sql(statement)
            conn.rollback()
        with pytest.raises(sa.exc.InternalError, match="read-only transaction"):
            conn.exec_driver_sql("create temp table grab (x int)")


def test_every_bi_view_and_column_is_commented(demo_database: str) -> None:
    engine = db.make_engine(demo_database)
    with engine.connect() as conn:
        missing = (
            conn.execute(
                sa.text(
                    "select c.relname || coalesce('.' || a.attname, '') from pg_class c"
                    " join pg_namespace n on n.oid = c.relnamespace"
                    " left join pg_attribute a on a.attrelid = c.oid and a.attnum > 0"
                    "  and not a.attisdropped"
                    " where n.nspname = 'bi' and c.relkind in ('v', 'r', 'm')"
                    "  and (obj_description(c.oid, 'pg_class') is null"
                    "  or (a.attname is not null and col_description(c.oid, a.attnum) is null))"
                )
            )
            .scalars()
            .all()
        )
        functions = (
            conn.execute(
                sa.text(
                    "select p.proname from pg_proc p join pg_namespace n on n.oid = p.pronamespace"
                    " where n.nspname = 'bi' and obj_description(p.oid, 'pg_proc') is null"
                )
            )
            .scalars()
            .all()
        )
        counted = conn.execute(
            sa.text("select count(*) from information_schema.columns where table_schema = 'bi'")
        ).scalar_one()
    engine.dispose()
    assert counted > 100
    assert missing == [] and functions == []


def test_timezone_setting_moves_local_days(demo_database: str, tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="MEDIAMON_TIMEZONE: 'Mars/Olympus' is not an IANA"):
        Settings.from_env({"MEDIAMON_TIMEZONE": "Mars/Olympus"})
    assert Settings.from_env({}).timezone == "Asia/Shanghai"
    assert validate_timezone("Europe/Paris") == "Europe/Paris"
    settings = replace(Settings.from_env(), database_url=demo_database, var_dir=tmp_path)
    query = sa.text(
        "select published_at, published_at_local, published_day_local from bi.articles"
        " order by article_id limit 1"
    )
    try:
        for zone in ("UTC", "America/New_York", "Asia/Kolkata", "Asia/Shanghai"):
            engine = service.engine_for(replace(settings, timezone=zone))
            with engine.connect() as conn:
                utc, local, day = conn.execute(query).one()
            # the alert's flag finds its hour even where local hours start at :30 UTC
            page = dashboard.page_html(engine, datetime.now(UTC))
            engine.dispose()
            assert page.count('class="alert-marker"') == 1, zone
            assert f"Local time: {zone}" in page
            assert local == utc.astimezone(ZoneInfo(zone)).replace(tzinfo=None), zone
            assert day == local.date()
    finally:
        service.engine_for(settings).dispose()  # back to the default for the other tests


def test_hourly_series_have_no_gaps(demo_database: str) -> None:
    engine = db.make_engine(demo_database)
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text("select topic, hour, stories from bi.topic_hourly_filled order by topic, hour")
        ).all()
        sparse = conn.execute(sa.text("select count(*) from bi.topic_hourly")).scalar_one()
        window = conn.execute(
            sa.text("select count(*) from bi.topic_hours(:a, :b) where topic = 'taiwan'"),
            {
                "a": datetime(2024, 4, 16, 20, 30, tzinfo=UTC),
                "b": datetime(2024, 4, 17, 2, tzinfo=UTC),
            },
        ).scalar_one()
    engine.dispose()
    by_topic: dict[str, list[datetime]] = {}
    for topic, hour, _ in rows:
        by_topic.setdefault(topic, []).append(hour)
    for hours in by_topic.values():
        assert all(b - a == timedelta(hours=1) for a, b in pairwise(hours))
    assert len(rows) > sparse  # the filled series has the empty hours the sparse one lacks
    assert any(stories == 0 for *_, stories in rows)
    assert window == 6  # 20:00 (the hour 20:30 falls in) to 01:00
