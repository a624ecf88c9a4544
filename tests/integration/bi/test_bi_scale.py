"""A year of data filtered as dashboards filter it (a topic; the last days): the views
read the window through indexes, not the whole history. The timings on two million
articles are bench/bi_scale.py's (``make bench-bi``); here, the plans that give them."""

from __future__ import annotations

from datetime import timedelta

import pytest
import sqlalchemy as sa

from bench import bi_scale
from mediamon.bi import dashboard


@pytest.fixture()
def year(engine: sa.Engine, database_url: str) -> sa.Engine:
    """20,000 articles over a year from 50 sources, 50 topics, a fetch log (analysed)."""
    bi_scale.seed(database_url, 20_000, 50)
    return engine


def _plan(engine: sa.Engine, sql: str, params: dict[str, object]) -> str:
    with dashboard.read_only(engine) as conn:
        return "\n".join(conn.execute(sa.text(f"explain {sql}"), params).scalars())


def test_bi_articles_by_date_read_the_window_through_an_index(year: sa.Engine) -> None:
    """Before: bi.articles.published_at (the source's date, else first seen) had no index,
    so a dashboard's last 7 days of stories per source, or its 100 newest, read every
    article: 1.4 s and 0.7 s on two million."""
    asked = bi_scale.queries(bi_scale.END)
    for name in ("articles per source and day, 7 d", "latest 100 articles"):
        plan = _plan(year, *asked[name])
        assert "Seq Scan on articles" not in plan, f"{name}:\n{plan}"
        assert "articles_shown_at" in plan, f"{name}:\n{plan}"


def test_bi_topic_hourly_for_a_topic_and_a_week_reads_that_topic_and_week(
    year: sa.Engine,
) -> None:
    """Before: bi.topic_hourly computed every story's hour (a CTE used twice, so built in
    full) before a dashboard's filter applied: 3.4 to 5.4 s for a topic's week on two
    million articles. Its rows are bi.topic_hours' hours that have stories."""
    sql, params = bi_scale.queries(bi_scale.END)["topic_hourly, a topic, 7 d"]
    plan = _plan(year, sql, params)
    assert "CTE Scan" not in plan, plan
    assert "articles_story_hour" in plan, plan
    with dashboard.read_only(year) as conn:
        rows = conn.execute(sa.text(sql), params).all()
        gap_free = conn.execute(
            sa.text(
                "select hour, stories, share from bi.topic_hours(:from, :to)"
                " where topic = :topic and total_stories > 0 order by hour"
            ),
            params,
        ).all()
    assert len(rows) > 100 and sum(r.stories for r in rows) > 0
    assert [tuple(r) for r in rows] == [tuple(r) for r in gap_free]


def _executed(engine: sa.Engine, sql: str, params: dict[str, object]) -> list[str]:
    """The plan's nodes that ran (a branch behind a false one-time filter never does)."""
    with dashboard.read_only(engine) as conn:
        plan = conn.execute(
            sa.text(f"explain (analyze, costs off, timing off) {sql}"), params
        ).scalars()
        return [line for line in plan if "never executed" not in line]


@pytest.mark.parametrize(
    ("name", "rolled_up"),
    [
        ("topic_hourly_filled, a topic, 7 d", "bi_rollup_topic_hours"),
        ("topic_daily, a topic, 7 d", "bi_rollup_topic_hours"),
        ("Superset topic_hours_alerts, a topic, 7 d", "bi_rollup_topic_hours"),
        ("source_daily, 7 d", "bi_rollup_source_days"),
    ],
)
def test_the_gap_free_series_read_the_roll_up_not_every_article(
    year: sa.Engine, name: str, rolled_up: str
) -> None:
    """Before: these views called bi.topic_hours / bi.source_days over the whole history
    and filtered afterwards (a function scan of every hour of every topic, or of every
    source and day, from the tables): 8 to 23 s a query on two million articles. Now
    they read the roll-up (0022); the tables only for the hours and days marked since
    its last refresh, through indexes."""
    sql, params = bi_scale.queries(bi_scale.END)[name]
    ran = "\n".join(_executed(year, sql, params))
    assert "Function Scan on topic_hours" not in ran and "Function Scan on source_days" not in ran
    assert "Seq Scan on articles" not in ran, ran
    assert "Seq Scan on mentions" not in ran, ran
    assert "Seq Scan on fetch_log" not in ran, ran
    assert rolled_up in ran, ran


def _ran(engine: sa.Engine, sql: str, params: dict[str, object]) -> str:
    return "\n".join(_executed(engine, sql, params))


def test_a_year_of_stories_per_source_and_day_is_read_from_an_index_alone(
    year: sa.Engine,
) -> None:
    """Before: a year of bi.articles counted by source and day read every article's row,
    texts and all (2.8 s on two million). The index on published_at carries the
    columns the count needs since 0025."""
    ran = _ran(year, *bi_scale.queries(bi_scale.END)["articles per source and day, 365 d"])
    assert "Index Only Scan using articles_shown_at" in ran, ran
    assert "Seq Scan on articles" not in ran, ran


def test_bi_topic_hourly_over_a_year_reads_the_roll_up(year: sa.Engine) -> None:
    """Before: bi.topic_hourly counted a topic's year from the tables (1.3 s on two
    million articles). While the roll-up's local hours are UTC hours, it reads that."""
    ran = _ran(year, *bi_scale.queries(bi_scale.END)["topic_hourly, a topic, 365 d"])
    assert "bi_rollup_topic_hours" in ran, ran
    assert "articles" not in ran and "mentions" not in ran, ran


@pytest.mark.parametrize(
    ("sql", "series"),
    [
        (
            "select * from bi.topic_hours(:from, :to) where topic = :topic",
            " on bi_topic_hour_series",
        ),
        (
            "select * from bi.source_days(:from, :to) where source = 'source-0007'",
            " on bi_rollup_source_days",
        ),
    ],
)
def test_a_dashboards_filter_reaches_the_functions(year: sa.Engine, sql: str, series: str) -> None:
    """Before: bi.topic_hours and bi.source_days were computed for every topic (source)
    and the dashboard's filter applied after (1.0 and 2.0 s for a year on two million
    articles). They are inlined since 0025: only the asked topic's (source's) series is
    read."""
    _, params = bi_scale.queries(bi_scale.END)["topic_hours(), 365 d"]
    ran = _ran(year, sql, params)
    assert "Function Scan on topic_hours" not in ran, ran
    assert "Function Scan on source_days" not in ran, ran
    read = [line for line in ran.splitlines() if series in line]
    assert read and all("loops=1)" in line for line in read), ran


def test_a_years_top_stories_are_read_from_the_topics_mentions(year: sa.Engine) -> None:
    """Before: bi.topic_window_stories read every root of the window, then each one's
    copies and mentions: a year's 1.8 million roots for a topic's 45,000 stories (7.8 s
    on two million articles). A window with more stories than the topic has in all is
    read from the topic's mentions since 0025."""
    sql, params = bi_scale.queries(bi_scale.END)["topic_window_stories(), 365 d"]
    counted = (
        "select coalesce(sum(seq_tup_read), 0) + coalesce(sum(idx_tup_fetch), 0)"
        " from pg_stat_xact_user_tables where relname = 'articles'"
    )
    with year.connect() as conn:
        conn.execute(sa.text("set local jit = off"))
        stories = conn.execute(sa.text(sql.replace("select *", "select story_id")), params).all()
        read = conn.execute(sa.text(counted)).scalar_one()
        conn.rollback()
    assert len(stories) == 20
    with year.connect() as conn:
        roots = conn.execute(
            sa.text(
                "select count(*) from articles where duplicate_of is null"
                " and least(coalesce(published_at, first_seen_at), first_seen_at) >= :from"
            ),
            params,
        ).scalar_one()
        mentions = conn.execute(
            sa.text("select count(*) from mentions where topic = :topic"), params
        ).scalar_one()
    assert roots > 10 * mentions
    assert read < 3 * mentions + 100, (read, roots, mentions)


def test_a_years_other_outlets_are_listed_once_a_story(year: sa.Engine) -> None:
    """Before: each story's other outlets (a subquery on the copies' index) ran three times
    a story, once for each use of the list (the ranking, the count, the list itself): a
    third of bi.topic_window_stories' 1.5 s over a year of two million articles. Since
    0028 they are listed in one join."""
    sql, params = bi_scale.queries(bi_scale.END)["topic_window_stories(), 365 d"]
    looked_up = (
        "select coalesce(sum(idx_scan), 0) from pg_stat_xact_user_tables where relname = 'articles'"
    )
    with year.connect() as conn:
        conn.execute(sa.text("set local jit = off"))
        ranked = conn.execute(
            sa.text("select count(*) from bi.topic_window_stories(:topic, :from, :to)"), params
        ).scalar_one()
        scans = conn.execute(sa.text(looked_up)).scalar_one()
        conn.rollback()
    assert ranked > 100, ranked
    # each story's root read once (by its id), its other outlets at most once more;
    # before, four times in all
    assert scans <= 2 * ranked + 5, (scans, ranked)


def test_a_year_of_stories_per_source_and_publication_day_reads_the_roll_up(
    year: sa.Engine,
) -> None:
    """Before (0032), analysts counted bi.articles by source and publication day: every
    story of the year read and converted to its local day, 2.7 s on two million. The view
    made for it reads the roll-up, and no article while nothing is marked."""
    _old, new, _floor = bi_scale.BEFORE_AFTER["stories per source and publication day"]
    params = {"from_day": (bi_scale.END - timedelta(days=365)).date()}
    executed = _executed(year, new, params)
    assert any("bi_rollup_source_published_days" in line for line in executed), executed
    assert not any(" on articles" in line for line in executed), executed
    with dashboard.read_only(year) as conn:
        assert len(conn.execute(sa.text(new), params).all()) > 10_000
