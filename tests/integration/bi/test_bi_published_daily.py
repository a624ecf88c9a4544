"""bi.source_published_daily (migration 0032) reads stories per source and publication
day from a roll-up; before, analysts counted them from bi.articles (the README's first
example query), 2.7 s for a year of two million articles. Its rows must be that query's,
on thousands of articles made to hit the edges: sources silent on some days and one
never heard from, syndicated copies (of another source's story, of another day's),
articles without a publication time, published after they were first seen, and at the
instants where local and UTC days turn (and a microsecond either side). Compared with the
marks counted live, after the refresh, in another zone (the roll-up not in force), after
it is rebuilt there, after changes, and after a backfill large enough to rebuild it."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from mediamon.bi import dashboard

START = datetime(2024, 3, 1, tzinfo=UTC)
DAYS = 20

# The README's query (copies counted once), and all of the view's columns, from bi.articles.
OLD_STORIES = (
    "select source, published_day_local, count(*) from bi.articles"
    " where duplicate_of is null group by 1, 2"
)
NEW_STORIES = "select source, day_local, stories from bi.source_published_daily where stories > 0"
OLD_ALL = (
    "select source, published_day_local, count(*),"
    " count(*) filter (where duplicate_of is null), count(duplicate_of)"
    " from bi.articles group by 1, 2"
)
NEW_ALL = "select * from bi.source_published_daily"

# Articles written by the server: source i % 7 + 1 of 8 sources (source-8 never
# publishes), every source silent on the local days where (day + source) % 5 = 0, one in six a copy
# of an earlier article (of any source, any day), one in eleven without a publication
# time, one in thirteen first seen a day before its publication time. Times step
# 7 minutes 13 seconds, and 300 more sit on the turns of local (16:00 UTC in Shanghai)
# and UTC days, and a microsecond either side.
SEED = """
insert into sources (name, kind, location, poll_interval)
select 'source-' || s, 'feed', 'https://s' || s || '.example/feed', interval '15 minutes'
from generate_series(1, 8) s;

insert into articles (article_id, url_hash, canonical_url, url, source_id, title, published_at,
                      first_seen_at, language, body_text, match_text, content_origin,
                      content_hash)
overriding system value
select i, sha256(('u' || i)::bytea), 'https://x.example/' || i, 'https://x.example/' || i,
       src.id, 't', case when i % 11 = 0 then null else t.at end,
       t.at + case when i % 13 = 0 then interval '-1 day' else interval '4 minutes' end,
       'zh', 'b', 'b', 'page', sha256(('c' || i)::bytea)
from (
    select i, :start + i * interval '7 minutes 13 seconds' as at
    from generate_series(1, :regular) i
    union all
    select :regular + 3 * d + k + 1,
           :start + d * interval '1 day' + case when d % 2 = 0 then interval '16 hours'
                                                else interval '0 hours' end
           + (k - 1) * interval '1 microsecond'
    from generate_series(0, :days - 1) d cross join generate_series(0, 2) k
    union all
    select :regular + 3 * :days + 3 * d + k + 1,
           :start + d * interval '1 day' + case when d % 2 = 1 then interval '16 hours'
                                                else interval '0 hours' end
           + (k - 1) * interval '1 microsecond'
    from generate_series(0, :days - 1) d cross join generate_series(0, 2) k
) as t (i, at)
cross join lateral (select t.i % 7 + 1 as id) as src
where ((t.at at time zone 'Asia/Shanghai')::date - date '2024-03-01' + src.id) % 5 <> 0;

update articles set duplicate_of = (
    select max(r.article_id) from articles r
    where r.article_id < articles.article_id and r.duplicate_of is null
      and r.article_id % 17 = articles.article_id % 17)
where article_id % 6 = 0;

select setval(pg_get_serial_sequence('articles', 'article_id'), max(article_id)) from articles;
"""


def _rows(conn: sa.Connection, sql: str, params: dict[str, Any] | None = None) -> list[tuple]:
    return sorted(tuple(r) for r in conn.execute(sa.text(sql), params or {}))


def assert_same(engine: sa.Engine) -> int:
    """The view's rows, read as a BI login, are bi.articles' counts, over all days and over
    windows from a local midnight (the one the dashboards' year starts at among them);
    returns how many rows were compared."""
    with dashboard.read_only(engine) as conn:
        new = _rows(conn, NEW_ALL)
        assert new == _rows(conn, OLD_ALL)
        assert _rows(conn, NEW_STORIES) == _rows(conn, OLD_STORIES)
        zone = conn.execute(sa.text("select timezone from bi.settings")).scalar_one()
        for first_day in (date(2024, 3, 2), date(2024, 3, 11), date(2024, 3, 20)):
            window = {"day": first_day, "zone": zone}
            old = _rows(
                conn,
                "select source, published_day_local, count(*) from bi.articles"
                " where published_at >= (:day)::timestamp at time zone :zone"
                " and duplicate_of is null group by 1, 2",
                window,
            )
            assert old, first_day
            assert old == _rows(conn, f"{NEW_STORIES} and day_local >= :day", window)
    return len(new)


def _marks(engine: sa.Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(sa.text("select count(*) from bi_rollup_source_marks")).scalar())


def _refresh(engine: sa.Engine) -> None:
    with engine.begin() as conn:
        conn.execute(sa.text("select refresh_bi_rollup()"))


@pytest.fixture()
def seeded(engine: sa.Engine) -> Iterator[sa.Engine]:
    with engine.begin() as conn:
        for statement in SEED.split(";\n"):
            if statement.strip():
                conn.execute(sa.text(statement), {"start": START, "regular": 4000, "days": DAYS})
    yield engine
    with engine.begin() as conn:
        conn.execute(sa.text("update bi.settings set timezone = 'Asia/Shanghai'"))


def test_stories_per_source_and_publication_day_are_bi_articles_counts(
    seeded: sa.Engine,
) -> None:
    engine = seeded
    with engine.connect() as conn:
        counts = conn.execute(
            sa.text(
                "select count(*), count(duplicate_of), count(*) - count(published_at),"
                " count(*) filter (where published_at > first_seen_at),"
                " count(distinct source_id) from articles"
            )
        ).one()
        silent = conn.execute(
            sa.text(
                "select count(*) from sources s cross join generate_series(2, 19) d"
                " where not exists (select from bi.articles a where a.source = s.name"
                " and a.published_day_local = date '2024-03-01' + d)"
            )
        ).scalar_one()
    assert counts[0] > 3000 and counts[1] > 400 and counts[2] > 200 and counts[3] > 200
    assert counts[4] == 7 and silent > 20  # source-8 and the silent days: no rows
    # loaded, marks pending: the marked days counted live
    assert _marks(engine) > 0
    assert assert_same(engine) > 100
    _refresh(engine)
    assert _marks(engine) == 0
    assert assert_same(engine) > 100
    # A zone whose days turn elsewhere: counted from the tables until the refresh
    # rebuilds the roll-up in it.
    with engine.begin() as conn:
        conn.execute(sa.text("update bi.settings set timezone = 'America/New_York'"))
    assert assert_same(engine) > 100
    _refresh(engine)
    assert assert_same(engine) > 100
    # Changes after the refresh: copies unlinked and relinked, publication times moved
    # over a day's turn, a source's articles deleted; live, then folded.
    with engine.begin() as conn:
        conn.execute(sa.text("update articles set duplicate_of = null where article_id % 12 = 0"))
        conn.execute(
            sa.text(
                "update articles set published_at = published_at + interval '9 hours',"
                " source_id = 1 + source_id % 7 where article_id % 29 = 0"
            )
        )
        conn.execute(
            sa.text(
                "delete from articles a where source_id = 3 and article_id % 2 = 0"
                " and not exists (select from articles c where c.duplicate_of = a.article_id)"
            )
        )
    assert assert_same(engine) > 100
    _refresh(engine)
    assert assert_same(engine) > 100


def test_a_refresh_after_a_big_backfill_rebuilds_the_same_rows(seeded: sa.Engine) -> None:
    """An archive of eight years: more than 20,000 marked days, counted live a day at a
    time, then rebuilt from the tables by the refresh."""
    engine = seeded
    _refresh(engine)
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "insert into articles (url_hash, canonical_url, url, source_id, title,"
                " published_at, first_seen_at, language, body_text, match_text,"
                " content_origin, content_hash)"
                " select sha256(('b' || i)::bytea), 'https://b.example/' || i,"
                " 'https://b.example/' || i, 1 + i % 7, 't',"
                " :start - i / 7 * interval '1 day', :start, 'zh', 'b', 'b', 'page',"
                " sha256(('bc' || i)::bytea) from generate_series(1, 21000) i"
            ),
            {"start": START + timedelta(days=DAYS)},
        )
    assert assert_same(engine) > 20000
    _refresh(engine)
    assert _marks(engine) == 0
    assert assert_same(engine) > 20000
