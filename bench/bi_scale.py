"""Every bi view and function on a year of an analyst's data: 1,000 sources (a few loud,
most quiet), two million articles (10 % syndicated copies), 50 topics whose mentions
range from one story in 20 to one in 216, a spike per topic, two million fetches, a
thousand alerts. Each query is asked with the filters a dashboard gives it (one topic;
the last 7, 30 and 365 days), read-only as mediamon_bi without JIT (as BI logins and the
page read since migration 0023) and with BI logins' work_mem (64 MB, migration 0027), and
timed beside a baseline
measured in the same run: a full count of ``articles`` (what any query that cannot use
an index pays). The history is loaded as runs load it, the BI roll-up refreshed after
(migration 0022). Then a run's worth of new stories is loaded and the series are timed
again before the refresh that ends the run (their newest hours counted live), the
refresh is timed, and retention prunes the fetch log to 90 days.

    python -m bench.bi_scale [--articles N] [--sources N] [--topics N] [--explain]

``--explain`` prints EXPLAIN ANALYZE of every query slower than a second.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import sqlalchemy as sa

from bench.common import scratch_database, timed
from mediamon import db
from mediamon.bi import dashboard, rollup

END = datetime(2026, 1, 1, tzinfo=UTC)
TOPICS = 50
RETENTION_DAYS = 90
TOPIC = "topic-07"  # a middling topic: one story in 48, and its spike

# Rows are written by the server itself (generate_series feeding COPY-speed inserts): the
# benchmark measures reading. Times are spread over the year with a day's rhythm (fewer
# stories at night); hashint4 gives every row a stable pseudo-random draw.
SEED = """
insert into sources (name, kind, location, language, poll_interval)
select 'source-' || lpad(s::text, 4, '0'), 'feed', 'https://example.invalid/' || s || '/feed',
       'zh', interval '15 minutes'
from generate_series(1, :sources) s;

insert into source_state (source_id, base_interval, poll_interval, next_poll_at,
                          last_polled_at, last_success_at, last_outcome,
                          consecutive_failures, last_error, run_key)
select source_id, interval '15 minutes', interval '15 minutes', :end,
       :end - interval '10 minutes',
       case when source_id % 97 = 0 then :end - interval '3 days'
            else :end - interval '10 minutes' end,
       case when source_id % 97 = 0 then 'failed' else 'polled' end,
       case when source_id % 97 = 0 then 5 else 0 end,
       case when source_id % 97 = 0 then 'HTTP 503' end, 'r'
from sources;

insert into topics (topic, name, version, match_version, definition)
select 'topic-' || lpad(t::text, 2, '0'), '话题 ' || t, 'v', 'm', '{}'
from generate_series(1, :topics) t;

insert into articles (article_id, url_hash, canonical_url, url, source_id, title, published_at,
                      first_seen_at, language, body_text, match_text, content_origin,
                      content_hash, duplicate_of)
overriding system value
select i, sha256(i::text::bytea), 'https://example.invalid/a/' || i,
       'https://example.invalid/a/' || i,
       -- a few loud sources: the square of a uniform draw
       1 + floor(:sources * power((hashint4(i::int) & 1048575) / 1048576.0, 2))::int,
       '新闻 ' || i, t.at, t.at + interval '5 minutes',
       'zh', repeat(md5(i::text), 8), repeat(md5(i::text), 8), 'page',
       sha256(('c' || i)::bytea),
       case when i % 10 = 0 and i < :n then i + 1 end  -- i + 1 is older: the original
from generate_series(1, :n) i
cross join lateral (
    select :end - interval '365 days' * (i::float8 / :n)
           - interval '1 hour' * (4 * sin(i::float8 / :n * 365 * 2 * pi())) as at
) t;

-- topic k (1..50) is in one story of 16 + 4k; in its spike week (the k-th week back from
-- the end, 6 hours on its Tuesday) in one story of 3 besides
insert into mentions (article_id, topic, match_version, title_hits, body_hits)
select a.article_id, 'topic-' || lpad(k::text, 2, '0'), 'm', (a.article_id % 3)::int,
       1 + (a.article_id % 4)::int
from articles a
cross join generate_series(1, :topics) k
where (a.article_id + 7 * k) % (16 + 4 * k) = 0
   or (a.article_id % 3 = 0
       and a.published_at >= :end - k * interval '7 days' + interval '1 day'
       and a.published_at < :end - k * interval '7 days' + interval '30 hours');

insert into fetch_log (run_key, source_id, url, kind, fetched_at, status, bytes, elapsed_ms, error)
select 'r' || i, 1 + i % :sources, 'https://example.invalid/a/' || i, 'page',
       :end - (interval '365 days') * (i::float8 / :n), 200, 20000, 150,
       case when i % 50 = 0 then 'HTTP 500' end
from generate_series(1, :n) i;

insert into alerts (dedupe_key, topic, topic_version, window_start, window_end, observed,
                    expected, lift, score, p_value, total_stories, details, last_window_end,
                    peak_observed, state, cleared_at)
select 'k' || k || '-' || d, 'topic-' || lpad(k::text, 2, '0'), 'v',
       :end - (k + 7 * d) * interval '7 days' + interval '1 day' + interval '5 hours',
       :end - (k + 7 * d) * interval '7 days' + interval '1 day' + interval '6 hours',
       20, 4.123456789, 4.85, 6.2, 6e-7, 300, '{}',
       :end - (k + 7 * d) * interval '7 days' + interval '1 day' + interval '6 hours', 20,
       'resolved', :end - (k + 7 * d) * interval '7 days' + interval '2 days'
from generate_series(1, :topics) k cross join generate_series(0, 19) d;

insert into incidents (dedupe_key, kind, subject, summary, detail, advice, since, opened_at,
                       last_seen_at, resolved_at)
select 'source_silent:source-' || d, 'source_silent', 'source-' || d, 's', 'd', 'a',
       :end - d * interval '1 day', :end - d * interval '1 day',
       :end - d * interval '1 day' + interval '2 hours',
       :end - d * interval '1 day' + interval '2 hours'
from generate_series(1, 300) d;
"""


# An ingest run's worth of new stories in the last half hour (with their mentions and
# fetches), loaded after the roll-up was refreshed: the views count their hours live
# until the next refresh.
RUN = """
insert into articles (article_id, url_hash, canonical_url, url, source_id, title, published_at,
                      first_seen_at, language, body_text, match_text, content_origin,
                      content_hash)
overriding system value
select :n + i, sha256(('run' || i)::bytea), 'https://example.invalid/run/' || i,
       'https://example.invalid/run/' || i, 1 + i % :sources, '新闻', t.at, t.at,
       'zh', 'x', 'x', 'page', sha256(('run-c' || i)::bytea)
from generate_series(1, :k) i
cross join lateral (select :end - interval '30 minutes' + i * interval '1 second' as at) t;

insert into mentions (article_id, topic, match_version, title_hits, body_hits)
select :n + i, 'topic-' || lpad((1 + i % :topics)::text, 2, '0'), 'm', 1, 1
from generate_series(1, :k) i where i % 3 = 0;

insert into fetch_log (run_key, source_id, url, kind, fetched_at, status, bytes, elapsed_ms)
select 'run', 1 + i % :sources, 'https://example.invalid/run/' || i, 'page',
       :end - interval '30 minutes' + i * interval '1 second', 200, 20000, 150
from generate_series(1, :k) i;
"""


def _execute(url: str, script: str, params: dict[str, object]) -> None:
    engine = db.make_engine(url)
    with engine.begin() as conn:
        for statement in script.split(";\n"):
            if statement.strip():
                conn.execute(sa.text(statement), params)
    engine.dispose()


def refresh_rollup(url: str) -> float:
    """Fold the marked hours and days into the BI roll-up, as the end of a run does;
    return the seconds it took."""
    engine = db.make_engine(url)
    started = time.perf_counter()
    rollup.refresh(engine)
    engine.dispose()
    return time.perf_counter() - started


def seed(url: str, articles: int, sources: int, topics: int = TOPICS) -> float:
    started = time.perf_counter()
    params = {"n": articles, "sources": sources, "topics": topics, "end": END}
    _execute(url, SEED, params)
    refresh_rollup(url)  # the history was loaded by runs that each refreshed it
    engine = db.make_engine(url)
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.exec_driver_sql("vacuum analyze")
    engine.dispose()
    return time.perf_counter() - started


WINDOWS = (7, 30, 365)
# The series read from the roll-up, timed again while a run's marks are pending.
PENDING = (
    "topic_hourly_filled",
    "topic_daily",
    "source_daily",
    "source_published_daily",
    "topic_hours()",
    "source_days()",
    "Superset topic_hours_alerts",
)


def queries(
    end: datetime, windows: tuple[int, ...] = WINDOWS
) -> dict[str, tuple[str, dict[str, object]]]:
    """What dashboards ask, by name: SQL and parameters (a topic; the last 7/30/365 days)."""
    asked: dict[str, tuple[str, dict[str, object]]] = {}
    for days in windows:
        since = {
            "topic": TOPIC,
            "from": end - timedelta(days=days),
            "from_day": (end - timedelta(days=days)).date(),
            "to": end,
        }
        by = f"{days} d"
        asked |= {
            f"topic_hourly, a topic, {by}": (
                "select hour, stories, share from bi.topic_hourly"
                " where topic = :topic and hour >= :from order by hour",
                since,
            ),
            f"topic_hourly_filled, a topic, {by}": (
                "select hour_local, stories from bi.topic_hourly_filled"
                " where topic = :topic and hour >= :from order by hour",
                since,
            ),
            f"topic_daily, a topic, {by}": (
                "select day_local, stories, share from bi.topic_daily"
                " where topic = :topic and day_local >= :from_day order by day_local",
                since,
            ),
            f"topic_daily, all topics, {by}": (
                "select topic, sum(stories) from bi.topic_daily"
                " where day_local >= :from_day group by topic",
                since,
            ),
            f"topic_source_hourly, a topic, {by}": (
                "select source, sum(stories) from bi.topic_source_hourly"
                " where topic = :topic and hour >= :from group by source",
                since,
            ),
            f"topic_mentions, a topic, {by}": (
                "select count(distinct story_id) from bi.topic_mentions"
                " where topic = :topic and published_at >= :from",
                since,
            ),
            f"articles per source and day, {by}": (
                "select source, published_day_local, count(*) from bi.articles"
                " where published_at >= :from and duplicate_of is null group by 1, 2",
                since,
            ),
            f"source_published_daily, {by}": (
                "select source, day_local, stories from bi.source_published_daily"
                " where day_local >= :from_day and stories > 0",
                since,
            ),
            f"fetch_log failures, {by}": (
                "select source, count(*) from bi.fetch_log where not ok"
                " and fetched_at >= :from group by source",
                since,
            ),
            f"source_daily, {by}": (
                "select source, sum(articles), sum(failed_fetches) from bi.source_daily"
                " where day_start >= :from group by source",
                since,
            ),
            f"alerts, {by}": (
                "select topic_name, window_start_local, observed, state from bi.alerts"
                " where window_end >= :from order by window_end desc",
                since,
            ),
            f"topic_hours(), {by}": (
                "select * from bi.topic_hours(:from, :to) where topic = :topic",
                since,
            ),
            f"source_days(), {by}": ("select * from bi.source_days(:from, :to)", since),
            f"topic_window_stories(), {by}": (
                "select * from bi.topic_window_stories(:topic, :from, :to) where story_rank <= 20",
                since,
            ),
            f"Superset topic_hours_alerts, a topic, {by}": (
                "select h.hour, h.stories, a.observed from bi.topic_hourly_filled h"
                " left join bi.alerts a on a.topic = h.topic"
                " and a.window_end - interval '1 hour' = h.hour"
                " where h.topic = :topic and h.hour >= :from",
                since,
            ),
        }
    asked |= {
        "latest 100 articles": (
            "select source, title, url from bi.articles order by published_at desc limit 100",
            {},
        ),
        "articles of a source, latest 100": (
            "select title, url from bi.articles where source = 'source-0500'"
            " order by published_at desc limit 100",
            {},
        ),
        "source_health": ("select * from bi.source_health", {}),
        "incidents open or last 30": (
            "select * from bi.incidents order by opened_at desc limit 30",
            {},
        ),
        "latest_story_at()": ("select bi.latest_story_at()", {}),
        "Superset alert_top_stories, a topic": (
            "select al.alert_id, top.story_rank, top.title from bi.alerts al"
            " cross join lateral bi.topic_window_stories(al.topic, al.window_start,"
            " al.window_end) top where top.story_rank <= 5 and al.topic = :topic",
            {"topic": TOPIC},
        ),
    }
    return asked


# Before and after in one run: each year-long window as analysts asked it before and as
# they ask it now, from the same local midnight (the rows must be equal, and are
# compared), timed as the client sees it and as the server runs it (EXPLAIN ANALYZE
# without per-node timing), beside what the client alone takes for as many rows of the
# same types made by generate_series: the part no view can save.
BEFORE_AFTER = {
    "stories per source and publication day": (
        "select source, published_day_local, count(*) from bi.articles"
        " where published_at >= :from_midnight and duplicate_of is null group by 1, 2",
        "select source, day_local, stories from bi.source_published_daily"
        " where day_local >= :from_day and stories > 0",
        "select 'source-' || lpad((g % 1000)::text, 4, '0'), date '2025-01-01' + g % 366,"
        " g::bigint from generate_series(1, :rows) g",
    ),
}


# Year-long windows whose rows are the contract, not changed: where their time goes, the
# server's part against the client's, and the client's for as many rows of the same types.
AS_THEY_ARE = {
    "source_days()": (
        "select * from bi.source_days(:from, :to)",
        "select 'source-' || lpad((g % 1000)::text, 4, '0'), true, date '2025-01-01' + g % 366,"
        " timestamptz '2025-01-01 00:00+08' + (g % 366) * interval '1 day', g::bigint,"
        " g::bigint, (g % 7)::bigint, (g % 5)::bigint, (g % 3)::bigint, 20000 * g::bigint"
        " from generate_series(1, :rows) g",
    ),
}


def _server_ms(conn: sa.Connection, sql: str, params: dict[str, object]) -> float:
    plan = conn.execute(sa.text(f"explain (analyze, timing off) {sql}"), params).scalars().all()
    return float(next(line for line in plan if line.startswith("Execution Time")).split()[2])


def before_after(
    engine: sa.Engine, end: datetime, days: int, repeat: int, base: float
) -> list[str]:
    """The year-long windows before and after (0032), as ratios of the same run."""
    with dashboard.read_only(engine) as conn:
        zone = conn.execute(sa.text("select timezone from bi.settings")).scalar_one()
    from_day = (end.astimezone(ZoneInfo(zone)) - timedelta(days=days)).date()
    params: dict[str, object] = {
        "from_day": from_day,
        "from_midnight": datetime.combine(from_day, datetime.min.time(), ZoneInfo(zone)),
    }
    lines = [f"  before -> after, {days} days from a local midnight ({zone}), same rows:"]
    for name, (old, new, floor) in BEFORE_AFTER.items():
        with dashboard.read_only(engine) as conn:
            old_rows = sorted(tuple(r) for r in conn.execute(sa.text(old), params))
            new_rows = sorted(tuple(r) for r in conn.execute(sa.text(new), params))
            if old_rows != new_rows:
                raise SystemExit(f"{name}: the rows differ ({len(old_rows)} -> {len(new_rows)})")
            server = [_server_ms(conn, sql, params) for sql in (old, new)]
        floor_params = {**params, "rows": len(new_rows)}
        client = [
            timed(lambda sql=sql, p=p: _fetch(engine, sql, p), repeat)
            for sql, p in ((old, params), (new, params), (floor, floor_params))
        ]
        lines += [
            f"    {name} ({len(new_rows):,} rows): client {1000 * client[0]:,.0f} ->"
            f" {1000 * client[1]:,.0f} ms ({client[1] / client[0]:.2f}x; {client[0] / base:.2f}x"
            f" -> {client[1] / base:.2f}x of the baseline), server {server[0]:,.0f} ->"
            f" {server[1]:,.0f} ms ({server[1] / server[0]:.2f}x); as many rows from"
            f" generate_series {1000 * client[2]:,.0f} ms",
        ]
    window = {"from": end - timedelta(days=days), "to": end}
    for name, (sql, floor) in AS_THEY_ARE.items():
        with dashboard.read_only(engine) as conn:
            rows = len(conn.execute(sa.text(sql), window).all())
            server = _server_ms(conn, sql, window)
        client = timed(lambda sql=sql: _fetch(engine, sql, window), repeat)
        asked = {"rows": rows}
        floor_s = timed(lambda floor=floor, asked=asked: _fetch(engine, floor, asked), repeat)
        lines.append(
            f"    {name} ({rows:,} rows, unchanged): client {1000 * client:,.0f} ms"
            f" ({client / base:.2f}x of the baseline), server {server:,.0f} ms; as many rows"
            f" from generate_series {1000 * floor_s:,.0f} ms"
        )
    return lines


def _fetch(engine: sa.Engine, sql: str, params: dict[str, object]) -> object:
    with dashboard.read_only(engine) as conn:
        return conn.execute(sa.text(sql), params).fetchall()


def run(
    articles: int = 2_000_000,
    sources: int = 1_000,
    repeat: int = 3,
    explain: bool = False,
    topics: int = TOPICS,
    windows: tuple[int, ...] = WINDOWS,
) -> list[str]:
    from mediamon.db import retention

    with scratch_database("bench_bi_scale") as url:
        seconds = seed(url, articles, sources, topics)
        engine = db.make_engine(url)

        def asked(sql: str, params: dict[str, object]) -> Callable[[], object]:
            def go() -> object:
                with dashboard.read_only(engine) as conn:
                    return conn.execute(sa.text(sql), params).fetchall()

            return go

        base = timed(asked("select count(*) from bi.articles", {}), repeat)
        figures = {
            name: timed(asked(sql, params), repeat)
            for name, (sql, params) in queries(END, windows).items()
        }
        compared = before_after(engine, END, windows[-1], repeat, base)
        plans = []
        if explain:
            for name, (sql, params) in queries(END, windows).items():
                if figures[name] > 1.0:
                    with dashboard.read_only(engine) as conn:
                        rows = conn.execute(sa.text(f"explain analyze {sql}"), params)
                        plans += [f"-- {name}", *(r[0] for r in rows)]
        # A run's stories loaded and not yet folded into the roll-up: the latest hours
        # counted live; then the refresh that ends the run.
        run_size = max(100, articles // 2000)
        _execute(url, RUN, {"n": articles, "k": run_size, "sources": sources,
                            "topics": topics, "end": END})  # fmt: skip
        pending = {
            name: timed(asked(sql, params), repeat)
            for name, (sql, params) in queries(END, windows[:1]).items()
            if name.split(",")[0] in PENDING
        }
        refresh_s = refresh_rollup(url)
        started = time.perf_counter()
        pruned = retention.prune_fetch_log(engine, END - timedelta(days=RETENTION_DAYS))
        retention_s = time.perf_counter() - started
        engine.dispose()
    lines = [
        f"bi views on {articles:,} articles, {sources:,} sources, {topics} topics over a year"
        f" (seeded in {seconds:.0f} s; median of {repeat} runs, warm, as mediamon_bi):",
        f"  baseline: a full count of bi.articles {1000 * base:8.1f} ms",
    ]
    lines += [
        f"  {name:<52} {1000 * value:8.1f} ms {value / base:6.2f}x of the baseline"
        for name, value in figures.items()
    ]
    slowest = max(figures, key=lambda k: figures[k])
    lines += [
        f"  slowest: {slowest}, {1000 * figures[slowest]:.0f} ms"
        f" ({figures[slowest] / base:.2f}x of the baseline)",
        f"  after a run of {run_size:,} new stories, before the roll-up's refresh:",
        *(
            f"    {name:<50} {1000 * value:8.1f} ms {value / base:6.2f}x of the baseline"
            for name, value in pending.items()
        ),
        f"  the refresh that ends the run: {1000 * refresh_s:.0f} ms"
        f" ({refresh_s / base:.2f}x of the baseline)",
        *compared,
        f"  retention: {pruned:,} fetch_log rows older than {RETENTION_DAYS} days pruned"
        f" (and the roll-up refreshed) in {retention_s:.1f} s"
        f" ({retention_s / base:.0f}x of the baseline)",
        *plans,
    ]
    return lines


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--articles", type=int, default=2_000_000)
    parser.add_argument("--sources", type=int, default=1_000)
    parser.add_argument("--topics", type=int, default=TOPICS)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--explain", action="store_true")
    args = parser.parse_args(argv)
    print("\n".join(run(args.articles, args.sources, args.repeat, args.explain, args.topics)))


if __name__ == "__main__":
    main()
