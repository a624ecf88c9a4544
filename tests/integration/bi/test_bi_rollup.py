"""The gap-free series read a roll-up (migration 0022) and must give what their old
definitions gave (0011/0013: bi.topic_hours and bi.source_days over the whole history;
0021: bi.topic_hourly, which reads the roll-up too since 0025; 0015:
bi.topic_window_stories, which since 0025 reads a long window from the topic's mentions),
row for row, whatever happens to the rows they count and whether or not the roll-up was
refreshed since: new articles, mentions and fetches; copies linked, relinked and
unlinked; topics re-matched; a story moved to another hour; articles deleted; the fetch
log pruned; a re-key; another time zone; a truncated table; and two loaders and a refresh
at once."""

from __future__ import annotations

import hashlib
import re
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from mediamon.alerts.stories import MAX_RANKED_MENTIONS
from mediamon.db import retention
from mediamon.ingest import load
from mediamon.ingest.sources import Source
from mediamon.models import Article
from tests.support import REPO_ROOT
from tests.support.articles import text_article

MIGRATIONS = REPO_ROOT / "src" / "mediamon" / "sql" / "migrations"
T0 = datetime(2024, 4, 1, 0, 10, tzinfo=UTC)
WINDOWS = (
    (T0 - timedelta(days=3), T0 + timedelta(days=4)),
    (T0 + timedelta(hours=5, minutes=30), T0 + timedelta(hours=30)),
)


def _old_function(name: str) -> str:
    """bi.<name> as 0013 defined it, as pg_temp.old_<name>."""
    text = (MIGRATIONS / "0013_bi_series_recent.sql").read_text()
    found = re.search(
        rf"create or replace function bi\.{name}\(.*?\n\$\$;\n", text, flags=re.DOTALL
    )
    assert found, name
    return found.group(0).replace(f"bi.{name}(", f"pg_temp.old_{name}(")


def _old_topic_hourly() -> str:
    """bi.topic_hourly as 0021 defined it (counted from the tables), as a temporary view."""
    text = (MIGRATIONS / "0021_bi_topic_hourly_window.sql").read_text()
    found = re.search(r"create or replace view bi\.topic_hourly as\n.*?;\n", text, flags=re.DOTALL)
    assert found
    return found.group(0).replace(
        "create or replace view bi.topic_hourly", "create temporary view old_topic_hourly"
    )


def _old_window_stories() -> str:
    """bi.topic_window_stories as 0015 defined it (the window's roots first), its
    mentions ranked up to MAX_RANKED_MENTIONS as since 0030."""
    text = (MIGRATIONS / "0015_bi_topic_window_stories.sql").read_text()
    found = re.search(
        r"create function bi\.topic_window_stories\(.*?\n\$fn\$;\n", text, flags=re.DOTALL
    )
    assert found and found.group(0).count("o.mentions desc") == 1
    return (
        found.group(0)
        .replace("bi.topic_window_stories(", "pg_temp.old_topic_window_stories(")
        .replace("o.mentions desc", f"least(o.mentions, {MAX_RANKED_MENTIONS}) desc")
    )


OLD_VIEWS = {
    "topic_hourly_filled": (
        "select * from pg_temp.old_topic_hours("
        " (select min(least(coalesce(published_at, first_seen_at), first_seen_at)) from articles),"
        " (select max(least(coalesce(published_at, first_seen_at), first_seen_at)) from articles)"
        " + interval '1 microsecond')"
    ),
    "source_daily": (
        "select * from pg_temp.old_source_days((select min(first_seen_at) from articles),"
        " (select max(first_seen_at) from articles) + interval '1 microsecond')"
    ),
}
# bi.source_published_daily (0032) has the rows the README's query of bi.articles gives.
OLD_VIEWS["source_published_daily"] = (
    "select source, published_day_local, count(*), count(*) filter (where duplicate_of is null),"
    " count(duplicate_of) from bi.articles group by 1, 2"
)
OLD_VIEWS["topic_daily"] = (
    "select topic, topic_name, day_local, sum(stories) as stories,"
    " sum(total_stories) as total_stories,"
    " round(sum(stories)::numeric / nullif(sum(total_stories), 0), 4) as share"
    f" from ({OLD_VIEWS['topic_hourly_filled']}) h group by topic, topic_name, day_local"
)


def _rows(conn: sa.Connection, sql: str, params: dict[str, Any] | None = None) -> list[tuple]:
    return sorted(tuple(r) for r in conn.execute(sa.text(sql), params or {}))


def assert_same_as_old(engine: sa.Engine) -> int:
    """Every series, and the functions over a few windows, equal their old definitions;
    returns how many rows were compared."""
    compared = 0
    with engine.connect() as conn:
        # The tests' tables are tiny and never analysed: the planner's default estimates
        # make JIT compile each query for a second. Results are the same without.
        conn.execute(sa.text("set jit = off"))
        conn.execute(sa.text(_old_function("topic_hours")))
        conn.execute(sa.text(_old_function("source_days")))
        conn.execute(sa.text(_old_topic_hourly()))
        conn.execute(sa.text(_old_window_stories()))
        new_rows = _rows(conn, "select * from bi.topic_hourly")
        assert new_rows == _rows(conn, "select * from old_topic_hourly"), "topic_hourly"
        compared += len(new_rows)
        for view, old in OLD_VIEWS.items():
            new_rows = _rows(conn, f"select * from bi.{view}")
            assert new_rows == _rows(conn, old), view
            compared += len(new_rows)
        for start, end in WINDOWS:
            window = {"f": start, "t": end}
            for function in ("topic_hours", "source_days"):
                new_rows = _rows(conn, f"select * from bi.{function}(:f, :t)", window)
                assert new_rows == _rows(
                    conn, f"select * from pg_temp.old_{function}(:f, :t)", window
                ), (function, start, end)
                compared += len(new_rows)
            # as a dashboard asks: one topic (one source); the filter reaches the
            # functions' reads since 0025
            for function, column, key in (
                ("topic_hours", "topic", "taiwan"),
                ("source_days", "source", "cna"),
            ):
                filtered = f" where {column} = :key"
                asked = {**window, "key": key}
                new_rows = _rows(conn, f"select * from bi.{function}(:f, :t){filtered}", asked)
                assert new_rows == _rows(
                    conn, f"select * from pg_temp.old_{function}(:f, :t){filtered}", asked
                ), (function, key, start, end)
                compared += len(new_rows)
        # the top stories, ranked: a window read from its roots and from the topic's
        # mentions give the same rows (and the function picks either)
        for topic in ("taiwan", "chips", "old"):
            for start, end in (*WINDOWS, (T0 - timedelta(days=400), T0 + timedelta(days=400))):
                asked = {"topic": topic, "f": start, "t": end}
                old = conn.execute(
                    sa.text("select * from pg_temp.old_topic_window_stories(:topic, :f, :t)"),
                    asked,
                ).all()
                for new in (
                    "bi.topic_window_stories(:topic, :f, :t)",
                    "bi_window_stories(:topic, :f, :t, true)",
                    "bi_window_stories(:topic, :f, :t, false)",
                ):
                    rows = conn.execute(sa.text(f"select * from {new}"), asked).all()
                    assert rows == old, (new, topic, start, end)
                compared += len(old)
        conn.rollback()
    return compared


def refresh(engine: sa.Engine) -> int:
    with engine.begin() as conn:
        return int(conn.execute(sa.text("select refresh_bi_rollup()")).scalar_one())


def _marks(engine: sa.Engine) -> int:
    with engine.connect() as conn:
        return int(
            conn.execute(
                sa.text(
                    "select (select count(*) from bi_rollup_story_marks)"
                    " + (select count(*) from bi_rollup_source_marks)"
                )
            ).scalar_one()
        )


def check(engine: sa.Engine) -> None:
    """Equal before the refresh (marked hours counted live) and after (all rolled up)."""
    assert _marks(engine) > 0, "the change left no mark"
    assert assert_same_as_old(engine) > 0
    refresh(engine)
    assert _marks(engine) == 0
    assert assert_same_as_old(engine) > 0


def _article(conn: sa.Connection, n: int, source: int, at: datetime, **extra: Any) -> int:
    url = f"https://news.example/{n}"
    row = {
        "hash": hashlib.sha256(url.encode()).digest(),
        "url": url,
        "source": source,
        "at": at,
        "seen": extra.pop("seen", at + timedelta(minutes=7)),
        "dup": extra.pop("duplicate_of", None),
    }
    return int(
        conn.execute(
            sa.text(
                "insert into articles (url_hash, canonical_url, url, source_id, title,"
                " published_at, first_seen_at, language, body_text, match_text,"
                " content_origin, content_hash, duplicate_of)"
                " values (:hash, :url, :url, :source, 't', :at, :seen, 'zh', 'b', 'b',"
                " 'page', :hash, :dup) returning article_id"
            ),
            row,
        ).scalar_one()
    )


def _mention(conn: sa.Connection, article: int, topic: str) -> None:
    conn.execute(
        sa.text(
            "insert into mentions (article_id, topic, match_version, title_hits, body_hits)"
            " values (:a, :t, 'm', 1, 2)"
        ),
        {"a": article, "t": topic},
    )


@pytest.fixture()
def stories(engine: sa.Engine) -> Iterator[dict[str, int]]:
    """Two sources, three topics (one inactive), roots and copies over two days, some
    fetches; the roll-up refreshed. Returns article ids by name."""
    ids: dict[str, int] = {}
    with engine.begin() as conn:
        for name in ("cna", "rfi"):
            ids[name] = conn.execute(
                sa.text(
                    "insert into sources (name, kind, location, poll_interval)"
                    " values (:n, 'feed', :loc, interval '15 minutes') returning source_id"
                ),
                {"n": name, "loc": f"https://{name}.example/feed"},
            ).scalar_one()
        conn.execute(
            sa.text(
                "insert into topics (topic, name, version, match_version, definition, active)"
                " values ('taiwan', '台湾', 'v', 'm', '{}', true),"
                " ('chips', '芯片', 'v', 'm', '{}', true), ('old', '旧', 'v', 'm', '{}', false)"
            )
        )
        for n in range(12):
            at = T0 + timedelta(hours=3 * n, minutes=11 * n)
            ids[f"r{n}"] = _article(conn, n, ids["cna" if n % 2 else "rfi"], at)
            if n % 3 == 0:
                _mention(conn, ids[f"r{n}"], "taiwan")
            if n % 4 == 1:
                _mention(conn, ids[f"r{n}"], "chips")
            if n == 5:
                _mention(conn, ids[f"r{n}"], "old")
        for n in range(12, 18):  # copies, some mentioning what their root does not
            root = ids[f"r{n - 12}"]
            ids[f"c{n}"] = _article(
                conn, n, ids["cna"], T0 + timedelta(days=1, hours=n), duplicate_of=root
            )
            _mention(conn, ids[f"c{n}"], "chips" if n % 2 else "taiwan")
        # a story published in the future is counted when first seen
        ids["future"] = _article(conn, 40, ids["rfi"], T0 + timedelta(days=9), seen=T0)
        _mention(conn, ids["future"], "taiwan")
        conn.execute(
            sa.text(
                "insert into fetch_log (run_key, source_id, url, kind, fetched_at, status,"
                " bytes, error) select 'r' || i, :s, 'https://x/' || i, 'page',"
                " :t0 + i * interval '97 minutes', 200, 1000 + i,"
                " case when i % 5 = 0 then 'HTTP 500' end from generate_series(1, 40) i"
            ),
            {"s": ids["cna"], "t0": T0 - timedelta(days=1)},
        )
    check(engine)
    yield ids


def test_the_series_equal_their_old_definitions_through_every_change(
    engine: sa.Engine, stories: dict[str, int]
) -> None:
    """Before: the series counted every hour from the tables at every query (8 to 23 s
    on a year of two million articles). Each change here is made the way mediamon (or
    an operator) makes it; after each, the views equal the old definitions, first with
    the change's hours counted live, then rolled up."""
    ids = stories
    # New articles and mentions through the load path (COPY, ids drawn beforehand).
    with engine.begin() as conn:
        written = load.upsert_articles(
            conn, ids["rfi"], [_built(100 + n, T0 + timedelta(hours=n)) for n in range(5)], T0
        )
        for article in written.article_ids[:3]:
            _mention(conn, article, "taiwan")
    check(engine)
    # A root becomes a copy of a story in another hour (its copies follow it, as
    # load._relink_copies_of_changed_roots does); a copy is relinked; a copy unlinked.
    with engine.begin() as conn:
        conn.execute(
            sa.text("update articles set duplicate_of = :r where article_id in (:a, :c)"),
            {"r": ids["r7"], "a": ids["r0"], "c": ids["c12"]},
        )
        conn.execute(
            sa.text("update articles set duplicate_of = :r where article_id = :c"),
            {"r": ids["r9"], "c": ids["c13"]},
        )
        conn.execute(
            sa.text("update articles set duplicate_of = null where article_id = :c"),
            {"c": ids["c14"]},
        )
    check(engine)
    # Topics re-matched after an edit of topics.yaml: a topic's mentions deleted and
    # others inserted; an upsert that changes only the hits marks nothing and moves
    # nothing.
    with engine.begin() as conn:
        conn.execute(sa.text("delete from mentions where topic = 'taiwan' and article_id % 2 = 0"))
        for name in ("r2", "r10", "c15"):
            conn.execute(
                sa.text(
                    "insert into mentions (article_id, topic, match_version, title_hits,"
                    " body_hits) values (:a, 'taiwan', 'm2', 0, 1)"
                    " on conflict (article_id, topic) do update set body_hits = 3"
                ),
                {"a": ids[name]},
            )
    check(engine)
    with engine.begin() as conn:
        conn.execute(sa.text("update mentions set title_hits = title_hits + 1"))
    assert _marks(engine) == 0
    # An upsert moves stories to other hours and days: a root with copies republished,
    # an article first seen (so its story time and its source day) a day later.
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "update articles set published_at = published_at - interval '2 days 5 hours'"
                " where article_id = :a"
            ),
            {"a": ids["r1"]},
        )
        conn.execute(
            sa.text(
                "update articles set first_seen_at = first_seen_at + interval '1 day',"
                " published_at = null, source_id = :s where article_id = :a"
            ),
            {"a": ids["r4"], "s": ids["cna"]},
        )
    check(engine)
    # A migration's re-key (0019): a new key and a link to the story's root.
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "update articles set url_hash = sha256(url_hash), duplicate_of = :r"
                " where article_id = :a"
            ),
            {"a": ids["r11"], "r": ids["r3"]},
        )
    check(engine)
    # Articles deleted (their mentions with them), fetches rewritten by a re-run,
    # retention pruning the fetch log.
    with engine.begin() as conn:
        conn.execute(
            sa.text("delete from articles where article_id in (:a, :b)"),
            {"a": ids["c16"], "b": ids["future"]},
        )
        conn.execute(
            sa.text(
                "update fetch_log set error = null, bytes = 7,"
                " fetched_at = fetched_at + interval '20 hours' where run_key = 'r10'"
            )
        )
    check(engine)
    with engine.begin() as conn:  # a delete by hand leaves its days marked
        conn.execute(sa.text("delete from fetch_log where run_key in ('r3', 'r33')"))
    check(engine)
    # Retention prunes in batches, then folds what it marked.
    assert retention.prune_fetch_log(engine, T0 + timedelta(hours=12), batch=7) > 0
    assert _marks(engine) == 0
    assert assert_same_as_old(engine) > 0


def test_the_top_stories_list_other_outlets_as_before(
    engine: sa.Engine, stories: dict[str, int]
) -> None:
    """Since 0028 each story's other outlets are listed in one join for the window, not a
    subquery per story: a story carried by three other outlets (one of them twice) and
    by its own, ties broken by outlets, then mentions, as 0015's function ranks them."""
    ids = stories
    with engine.begin() as conn:
        for name in ("dw", "bbc", "voa"):
            ids[name] = conn.execute(
                sa.text(
                    "insert into sources (name, kind, location, poll_interval)"
                    " values (:n, 'feed', :loc, interval '15 minutes') returning source_id"
                ),
                {"n": name, "loc": f"https://{name}.example/feed"},
            ).scalar_one()
        # r3 (cna, mentions taiwan): copies by dw twice, bbc, voa and cna itself;
        # r6 (rfi, taiwan): by dw and bbc; r9 (cna, taiwan): by its own source only
        for n, (root, source) in enumerate(
            [
                ("r3", "dw"),
                ("r3", "dw"),
                ("r3", "bbc"),
                ("r3", "voa"),
                ("r3", "cna"),
                ("r6", "bbc"),
                ("r6", "dw"),
                ("r9", "cna"),
            ]
        ):
            copy = _article(
                conn, 200 + n, ids[source], T0 + timedelta(days=1, hours=n),
                duplicate_of=ids[root],
            )  # fmt: skip
            if n % 3 == 0:
                _mention(conn, copy, "taiwan")
    with engine.connect() as conn:
        listed = conn.execute(
            sa.text(
                "select story_id, outlets, other_outlets from bi.topic_window_stories("
                " 'taiwan', :f, :t) where story_id in (:r3, :r6, :r9) order by story_rank"
            ),
            {"f": T0 - timedelta(days=400), "t": T0 + timedelta(days=400), **ids},
        ).all()
    assert [tuple(row) for row in listed] == [
        (ids["r3"], 4, ["bbc", "dw", "voa"]),
        (ids["r6"], 3, ["bbc", "dw"]),
        (ids["r9"], 1, []),
    ]
    check(engine)


def test_another_time_zone_is_counted_live_until_the_refresh_rebuilds(
    engine: sa.Engine, stories: dict[str, int]
) -> None:
    """The roll-up's hours are local hours: in a half-hour zone they are other hours."""
    with engine.begin() as conn:
        conn.execute(sa.text("update bi.settings set timezone = 'Asia/Kolkata'"))
    try:
        assert assert_same_as_old(engine) > 0
        with engine.begin() as conn:
            _mention(conn, stories["r1"], "taiwan")
        assert assert_same_as_old(engine) > 0
        refresh(engine)
        with engine.connect() as conn:
            zone = conn.execute(sa.text("select timezone from bi_rollup_state")).scalar_one()
        assert zone == "Asia/Kolkata"
        assert assert_same_as_old(engine) > 0
    finally:
        with engine.begin() as conn:
            conn.execute(sa.text("update bi.settings set timezone = 'Asia/Shanghai'"))


def _hours_are_utc(engine: sa.Engine) -> bool:
    with engine.connect() as conn:
        return bool(conn.execute(sa.text("select bi_rollup_hours_are_utc()")).scalar_one())


@pytest.mark.parametrize(
    ("zone", "changes", "rolled_up"),
    [
        # summer time starts and ends on whole UTC hours: every local hour is a UTC hour
        (
            "America/New_York",
            (datetime(2024, 3, 10, 7, tzinfo=UTC), datetime(2024, 11, 3, 6, tzinfo=UTC)),
            True,
        ),
        # +10:30 in winter, +11 in summer: half the year's local hours straddle UTC hours
        (
            "Australia/Lord_Howe",
            (datetime(2024, 4, 6, 15, tzinfo=UTC), datetime(2024, 10, 5, 15, 30, tzinfo=UTC)),
            False,
        ),
    ],
)
def test_utc_hours_read_the_roll_up_only_where_local_hours_are_utc_hours(
    engine: sa.Engine,
    stories: dict[str, int],
    zone: str,
    changes: tuple[datetime, ...],
    rolled_up: bool,
) -> None:
    """bi.topic_hourly counts UTC hours; the roll-up local ones. Stories every 20 minutes
    around a zone's changes of offset: the view equals its old definition (0021) in
    every zone, and reads the roll-up only where each local hour is a UTC hour."""  # fmt: skip
    with engine.begin() as conn:
        for change in changes:
            for k in range(-9, 9):
                at = change + timedelta(minutes=20 * k + 3)
                article = _article(conn, 1000 + k + 100 * change.month, stories["rfi"], at)
                if k % 2 == 0:
                    _mention(conn, article, "taiwan")
        conn.execute(sa.text("update bi.settings set timezone = :z"), {"z": zone})
    try:
        assert assert_same_as_old(engine) > 0
        refresh(engine)
        assert _hours_are_utc(engine) is rolled_up
        assert assert_same_as_old(engine) > 0
        with engine.begin() as conn:  # a new story, counted live until the next refresh
            _mention(conn, _article(conn, 3000, stories["cna"], changes[0]), "chips")
        assert assert_same_as_old(engine) > 0
    finally:
        with engine.begin() as conn:
            conn.execute(sa.text("update bi.settings set timezone = 'Asia/Shanghai'"))
    refresh(engine)
    assert _hours_are_utc(engine)
    assert assert_same_as_old(engine) > 0


def test_a_truncated_table_rebuilds_the_roll_up(engine: sa.Engine, stories: dict[str, int]) -> None:
    with engine.begin() as conn:
        conn.execute(sa.text("truncate mentions"))
    assert assert_same_as_old(engine) > 0
    with engine.connect() as conn:
        assert conn.execute(sa.text("select count(*) from bi_rollup_topic_hours")).scalar() == 0


def _built(n: int, at: datetime, body: str | None = None) -> Article:
    text = body or f"第{n}条新闻。" * 6
    return text_article(f"https://load.example/{n}", text, at, title=f"标题 {n}")


def test_two_loaders_and_a_refresh_at_once_lose_no_count(engine: sa.Engine) -> None:
    """Two ingest shards load articles of the same hours (and mention topics, and log
    fetches) while a refresh runs again and again: no deadlock, no error, and every
    count is there, before and after the last refresh."""
    with engine.begin() as conn:
        sources = load.sync_sources(
            conn,
            [Source(name=n, kind="feed", location=f"https://{n}.example/") for n in "ab"],
        )
        conn.execute(
            sa.text(
                "insert into topics (topic, name, version, match_version, definition)"
                " values ('taiwan', '台湾', 'v', 'm', '{}')"
            )
        )
    errors: list[BaseException] = []
    done = threading.Event()

    def loader(shard: int) -> None:
        try:
            for chunk in range(12):
                batch = [
                    _built(
                        10_000 * shard + 10 * chunk + k,
                        T0 + timedelta(minutes=37 * k + 5 * chunk),
                        # every third article copies the other shard's text of that slot
                        body=f"共同的新闻 {chunk}-{k}。" * 6 if k % 3 == 0 else None,
                    )
                    for k in range(10)
                ]
                with engine.begin() as conn:
                    written = load.upsert_articles(conn, sources["ab"[shard]], batch, T0)
                    conn.execute(
                        sa.text(
                            "insert into fetch_log (run_key, source_id, url, kind, fetched_at,"
                            " status, bytes) select :run, :s, 'https://f/' || i, 'page',"
                            " :at + i * interval '1 minute', 200, 10"
                            " from generate_series(1, 5) i"
                        ),
                        {"run": f"run-{chunk}", "s": sources["ab"[shard]], "at": T0},
                    )
                    conn.execute(
                        sa.text(
                            "insert into mentions (article_id, topic, match_version,"
                            " title_hits, body_hits) select a, 'taiwan', 'm', 1, 1"
                            " from unnest(cast(:ids as bigint[])) a where a % 2 = 0"
                            " on conflict do nothing"
                        ),
                        {"ids": written.article_ids},
                    )
        except BaseException as error:  # reported by the test, not lost in the thread
            errors.append(error)

    def refresher() -> None:
        try:
            while not done.is_set():
                refresh(engine)
        except BaseException as error:
            errors.append(error)

    loaders = [threading.Thread(target=loader, args=(shard,)) for shard in (0, 1)]
    background = threading.Thread(target=refresher)
    background.start()
    for thread in loaders:
        thread.start()
    for thread in loaders:
        thread.join()
    done.set()
    background.join()
    assert errors == []
    with engine.connect() as conn:
        stored = conn.execute(sa.text("select count(*) from articles")).scalar_one()
    assert stored == 240
    assert assert_same_as_old(engine) > 0
    refresh(engine)
    assert assert_same_as_old(engine) > 0
