"""The mediamon page on a year of data: one million articles (20 sources, 10 % syndicated
copies, topic mentions, a million fetch-log rows, 50 alerts), each of the page's queries
timed as the page runs them (read-only, as mediamon_bi), beside a baseline in the same
run: the same 14 days of a topic's hourly counts read from the sparse view
``bi.topic_hourly``, which counts the whole history before it can filter.

    python -m bench.bi_page [--articles N]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from bench.common import scratch_database, timed
from mediamon import db
from mediamon.bi import dashboard, rollup
from mediamon.bi import window as window_page
from mediamon.db.queries import query

END = datetime(2026, 1, 1, tzinfo=UTC)
DAYS = 14

# One year of invented rows, written by the server itself (generate_series): the benchmark
# measures reading, not loading. Texts are distinct per row (md5), about 1 kB each.
SEED = """
insert into sources (name, kind, location, language, poll_interval)
select 'source-' || s, 'feed', 'https://example.invalid/' || s || '/feed', 'zh',
       interval '15 minutes'
from generate_series(1, 20) s;

insert into topics (topic, name, version, match_version, definition)
values ('taiwan', '台湾', 'v', 'm', '{}'), ('export-controls', '出口管制', 'v', 'm', '{}');

insert into articles (article_id, url_hash, canonical_url, url, source_id, title, published_at,
                      first_seen_at, language, body_text, match_text, content_origin,
                      content_hash, duplicate_of)
overriding system value
select i, sha256(i::text::bytea), 'https://example.invalid/a/' || i,
       'https://example.invalid/a/' || i,
       1 + i % 20, '新闻 ' || i,
       :end - (interval '365 days') * (i::float8 / :n),
       :end - (interval '365 days') * (i::float8 / :n) + interval '5 minutes',
       'zh', repeat(md5(i::text), 16), repeat(md5(i::text), 16), 'page',
       sha256(('c' || i)::bytea),
       case when i % 10 = 0 and i < :n then i + 1 end  -- i + 1 is older: the original
from generate_series(1, :n) i;

insert into mentions (article_id, topic, match_version, title_hits, body_hits)
select i, 'taiwan', 'm', (i % 3), 1 + i % 4 from generate_series(1, :n) i where i % 20 in (0, 3)
union all
select i, 'export-controls', 'm', 0, 1 from generate_series(1, :n) i where i % 50 = 7;

insert into fetch_log (run_key, source_id, url, kind, fetched_at, status, bytes, elapsed_ms, error)
select 'r' || i, 1 + i % 20, 'https://example.invalid/a/' || i, 'page',
       :end - (interval '365 days') * (i::float8 / :n), 200, 20000, 150,
       case when i % 50 = 0 then 'HTTP 500' end
from generate_series(1, :n) i;

insert into alerts (dedupe_key, topic, topic_version, window_start, window_end, observed,
                    expected, lift, score, p_value, total_stories, details, last_window_end,
                    peak_observed)
select 'k' || d, 'taiwan', 'v', :end - d * interval '7 days' - interval '1 hour',
       :end - d * interval '7 days', 20, 4.123456789, 4.85, 6.2, 6e-7, 300, '{}',
       :end - d * interval '7 days', 20
from generate_series(0, 49) d;
"""


def seed(url: str, articles: int) -> float:
    engine = db.make_engine(url)
    started = time.perf_counter()
    with engine.begin() as conn:
        for statement in SEED.split(";\n"):
            if statement.strip():
                conn.execute(sa.text(statement), {"n": articles, "end": END})
    # The history was loaded by runs that each refreshed the BI roll-up (migration 0022).
    # Without it every hour of the year is marked and the page counts them all live: the
    # topic trends took 16.2 s, the ingest volume 6.9 s (1,000,000 articles).
    rollup.refresh(engine)
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.exec_driver_sql("vacuum analyze")
    engine.dispose()
    return time.perf_counter() - started


def run(articles: int = 1_000_000, repeat: int = 5) -> list[str]:
    with scratch_database("bench_bi") as url:
        seconds = seed(url, articles)
        engine = db.make_engine(url)
        end = END
        window = {"window_start": end - timedelta(days=DAYS), "window_end": end}
        longest = window_page.WindowRequest("taiwan", end - window_page.MAX_WINDOW, end)

        def page_query(name: str, params: dict[str, object]) -> Callable[[], object]:
            def go() -> object:
                with dashboard.read_only(engine) as conn:
                    return conn.execute(query(name), params).fetchall()

            return go

        def top_stories() -> object:
            with dashboard.read_only(engine) as conn:
                return dashboard._alerts(conn)

        def window_of_a_month() -> object:
            with dashboard.read_only(engine) as conn:
                return window_page.load_window(conn, longest, end)

        def baseline() -> object:
            with dashboard.read_only(engine) as conn:
                return conn.execute(
                    sa.text(
                        "select topic, hour, stories, total_stories from bi.topic_hourly"
                        " where hour >= :window_start and hour < :window_end"
                    ),
                    window,
                ).fetchall()

        def whole_page() -> object:
            with dashboard.read_only(engine) as conn:
                return dashboard.render(dashboard.load_page(conn, end, DAYS))

        figures = {
            "topic trends (bi.topic_hours, 14 days)": timed(
                page_query(
                    "dashboard_topic_hours", {**window, "topics_shown": dashboard.TOPICS_SHOWN}
                ),
                repeat,
            ),
            "ingest volume (bi.source_days, 14 days)": timed(
                page_query("dashboard_source_days", window), repeat
            ),
            "source health (bi.source_health)": timed(
                page_query("dashboard_source_health", {}), repeat
            ),
            "alerts (bi.alerts, 20 newest)": timed(
                page_query("dashboard_alerts", {"limit": dashboard.ALERTS_SHOWN}), repeat
            ),
            "top stories of 20 alerts (bi.topic_window_stories)": timed(top_stories, repeat),
            # the mails' "more stories" page at its longest window, read as the page reads it
            "a window page of 31 days (bi.topic_window_stories)": timed(window_of_a_month, repeat),
        }
        page = timed(whole_page, repeat)
        base = timed(baseline, max(repeat // 2, 1))
        engine.dispose()
    heaviest = max(figures, key=lambda k: figures[k])
    lines = [
        f"mediamon page on {articles:,} articles over a year"
        f" (seeded in {seconds:.0f} s; median of {repeat} runs, warm):"
    ]
    lines += [f"  {name:<48} {1000 * value:8.1f} ms" for name, value in figures.items()]
    lines += [
        f"  {'whole page (all queries + render)':<48} {1000 * page:8.1f} ms",
        f"  baseline: 14 days of hourly counts from bi.topic_hourly {1000 * base:8.1f} ms",
        f"  heaviest page query: {heaviest}, {base / figures[heaviest]:.0f}x faster than"
        " the baseline",
    ]
    return lines


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--articles", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args(argv)
    print("\n".join(run(args.articles, args.repeat)))


if __name__ == "__main__":
    main()
