"""The gap-free series behind the dashboards (bi.topic_hourly_filled, bi.topic_daily,
bi.source_daily and the functions they call) show the most recent data when the history
is longer than their cap of 1,100 days (their columns: test_bi_contract)."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa

CAP = timedelta(days=1100)
OLD = datetime(2015, 6, 1, 8, tzinfo=UTC)  # an archive import, or nine years of history
RECENT = (datetime(2024, 4, 20, 10, 15, tzinfo=UTC), datetime(2024, 4, 21, 3, 40, tzinfo=UTC))
LATEST_HOUR = datetime(2024, 4, 21, 3, tzinfo=UTC)


def _add_history(engine: sa.Engine) -> None:
    """One story about Taiwan nine years ago, two in April 2024."""
    with engine.begin() as conn:
        source = conn.execute(
            sa.text(
                "insert into sources (name, kind, location, language, poll_interval)"
                " values ('cna', 'feed', 'https://cna.example/feed', 'zh',"
                " interval '15 minutes') returning source_id"
            )
        ).scalar_one()
        conn.execute(
            sa.text(
                "insert into topics (topic, name, version, match_version, definition)"
                " values ('taiwan', '台湾', 'v', 'm', '{}')"
            )
        )
        for n, when in enumerate((OLD, *RECENT)):
            url = f"https://cna.example/{n}"
            row: dict[str, Any] = {
                "hash": hashlib.sha256(url.encode()).digest(),
                "url": url,
                "source": source,
                "at": when,
                "seen": when + timedelta(minutes=5),
                "body": f"台湾 {n}",
            }
            article = conn.execute(
                sa.text(
                    "insert into articles (url_hash, canonical_url, url, source_id, title,"
                    " published_at, first_seen_at, language, body_text, match_text,"
                    " content_origin, content_hash)"
                    " values (:hash, :url, :url, :source, :body, :at, :seen, 'zh', :body,"
                    " :body, 'page', :hash) returning article_id"
                ),
                row,
            ).scalar_one()
            conn.execute(
                sa.text(
                    "insert into mentions (article_id, topic, match_version, title_hits,"
                    " body_hits) values (:a, 'taiwan', 'm', 1, 1)"
                ),
                {"a": article},
            )


def test_series_longer_than_the_cap_end_at_the_newest_data(engine: sa.Engine) -> None:
    """Before: the series covered the 1,100 days after the OLDEST story (June 2015 to June
    2018 here), so one old story or a history of more than three years hid every recent
    story from the dashboards: bi.topic_daily had no day of 2024."""
    _add_history(engine)
    with engine.connect() as conn:
        tz = conn.execute(sa.text("select timezone from bi.settings")).scalar_one()
        first, last, first_local, hours, stories = conn.execute(
            sa.text(
                "select min(hour), max(hour), min(hour_local), count(*), sum(stories)"
                " from bi.topic_hourly_filled where topic = 'taiwan'"
            )
        ).one()
        days = conn.execute(
            sa.text(
                "select day_local, stories from bi.topic_daily"
                " where topic = 'taiwan' order by day_local"
            )
        ).all()
        latest_day = conn.execute(
            sa.text("select (cast(:t as timestamptz) at time zone :tz)::date"),
            {"t": RECENT[-1], "tz": tz},
        ).scalar_one()
        story_days = [
            tuple(row)
            for row in conn.execute(
                sa.text(
                    "select (t at time zone :tz)::date, count(*) from unnest(cast(:ts as"
                    " timestamptz[])) t group by 1 order by 1"
                ),
                {"tz": tz, "ts": list(RECENT)},
            )
        ]
        volume = conn.execute(
            sa.text(
                "select min(day_local), max(day_local), count(*), sum(articles)"
                " from bi.source_daily where source = 'cna'"
            )
        ).one()
        called = conn.execute(
            sa.text("select min(hour), max(hour) from bi.topic_hours(:a, :b)"),
            {"a": OLD, "b": LATEST_HOUR + timedelta(hours=1)},
        ).one()
    # the series ends at the newest story and reaches back at most the cap
    assert last == LATEST_HOUR
    assert last - first < CAP and hours == (last - first) // timedelta(hours=1) + 1
    assert first_local.time() == datetime.min.time()  # from a local midnight: whole days
    assert stories == len(RECENT)  # the old story lies before the cap
    # every day of bi.topic_daily is a whole local day of the last 1,100
    assert days[-1][0] == latest_day and len(days) == (latest_day - days[0][0]).days + 1
    assert len(days) <= CAP.days
    assert [(d, s) for d, s in days if s] == story_days
    # ingest volume: the same window, by first-seen day
    assert volume[1] == latest_day and volume[2] == (volume[1] - volume[0]).days + 1
    assert volume[2] <= CAP.days and volume[3] == len(RECENT)
    # called directly with a longer window, a function keeps its most recent part too
    assert called == (first, last)


def test_series_within_the_cap_are_whole(engine: sa.Engine) -> None:
    """A window shorter than the cap is returned whole, from its first hour."""
    _add_history(engine)
    start = datetime(2023, 1, 1, 5, 30, tzinfo=UTC)
    with engine.connect() as conn:
        first, last, n = conn.execute(
            sa.text("select min(hour), max(hour), count(*) from bi.topic_hours(:a, :b)"),
            {"a": start, "b": LATEST_HOUR + timedelta(hours=1)},
        ).one()
        day_first, day_last = conn.execute(
            sa.text("select min(day_local), max(day_local) from bi.source_days(:a, :b)"),
            {"a": start, "b": LATEST_HOUR + timedelta(hours=1)},
        ).one()
        tz = conn.execute(sa.text("select timezone from bi.settings")).scalar_one()
        local_start = conn.execute(
            sa.text("select cast(:t as timestamptz) at time zone :tz"), {"t": start, "tz": tz}
        ).scalar_one()
    assert first <= start < first + timedelta(hours=1) and last == LATEST_HOUR
    assert n == (last - first) // timedelta(hours=1) + 1
    assert day_first == local_start.date()
    assert day_last >= LATEST_HOUR.date()
    with engine.connect() as conn:  # no window: no rows, as before
        assert (
            conn.execute(sa.text("select count(*) from bi.topic_hours(null, now())")).scalar() == 0
        )
        assert (
            conn.execute(sa.text("select count(*) from bi.source_days(null, now())")).scalar() == 0
        )
