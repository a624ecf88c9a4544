"""Loading the same articles again counts nothing twice in any bi view or function: a run
retried after a failure (its fetch log and articles written again under the same run
key), and the same pages loaded by a later run (a refetch, an archive imported twice),
each followed by the topic match and its refresh of the roll-up, as runs do. Every
relation of the bi schema, and the functions over windows across day turns, read as a BI
login, before and after; then the views are checked against the tables once more with
the roll-up rebuilt from scratch."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from mediamon.bi import dashboard
from mediamon.ingest import load
from mediamon.models import Article, FetchRecord
from mediamon.topics.definitions import TopicSet
from mediamon.topics.file import parse_topics
from mediamon.topics.match import match_articles
from mediamon.topics.store import sync_topics
from tests.support.articles import text_article

# 16:00 UTC is midnight in Shanghai: stories either side of local and UTC day turns
T0 = datetime(2024, 4, 1, 15, 58, tzinfo=UTC)
TOPICS_YAML = """\
version: 1
topics:
  - key: taiwan
    name: 台湾
    terms: [台湾]
  - key: chips
    name: 芯片
    terms: [芯片]
"""
WINDOWS = (
    (T0 - timedelta(days=2), T0 + timedelta(days=3)),
    (T0 + timedelta(minutes=2), T0 + timedelta(hours=8, minutes=2)),
)


def _article(n: int, at: datetime | None, body: str) -> Article:
    url = f"https://reload.example/{n}"
    return text_article(url, body, at, title=f"标题 {n}", seen_url=f"{url}?utm_source=feed")


def _batches() -> dict[str, list[Article]]:
    """Two sources' articles: stories about each topic, both or neither, every 37 minutes
    across two day turns; one without a time; rfi's copies of some of cna's stories."""
    cna, rfi = [], []
    for n in range(40):
        topic = ("台湾", "芯片", "台湾和芯片", "天气")[n % 4]
        body = f"第{n}条新闻说{topic}的消息。" + f"这是第{n}条新闻的第二句话，讲{topic}。" * 5
        at = None if n == 7 else T0 + timedelta(minutes=37 * n - 600)
        (cna if n % 3 else rfi).append(_article(n, at, body))
        if n % 5 == 0:  # syndicated: the same text under another URL, seen later
            rfi.append(_article(100 + n, at, body))
    return {"cna": cna, "rfi": rfi}


def _records(batch: list[Article], at: datetime) -> list[FetchRecord]:
    return [
        FetchRecord(
            a.url, "page", at, 200 if i % 6 else 503, 900 + i, 80, None if i % 6 else "HTTP 503"
        )
        for i, a in enumerate(batch)
    ]


def _load(engine: sa.Engine, sources: dict[str, int], run_key: str, now: datetime,
          fetch_log: bool = True) -> int:  # fmt: skip
    """A run's load of every source's batch (its fetch log with it), then the topic match
    and its refresh of the roll-up, as an ingest run and the match after it do; returns
    the articles inserted."""
    inserted = 0
    for name, batch in _batches().items():
        with engine.begin() as conn:
            if fetch_log:
                load.write_fetch_log(conn, run_key, sources[name], _records(batch, now))
            inserted += load.upsert_articles(conn, sources[name], batch, now).inserted
    return inserted


def _snapshot(engine: sa.Engine) -> dict[str, list[tuple[Any, ...]]]:
    """Every bi relation and function, as a BI login reads them."""
    with dashboard.read_only(engine) as conn:
        relations = conn.execute(
            sa.text(
                "select c.relname from pg_class c join pg_namespace n on n.oid = c.relnamespace"
                " where n.nspname = 'bi' and c.relkind in ('v', 'r', 'm') order by 1"
            )
        ).scalars()
        seen = {
            name: sorted(map(tuple, conn.execute(sa.text(f'select * from bi."{name}"'))))
            for name in relations
        }
        for n, (start, end) in enumerate(WINDOWS):
            window = {"f": start, "t": end}
            for call in (
                "bi.topic_hours(:f, :t)",
                "bi.source_days(:f, :t)",
                "bi.topic_window_stories('taiwan', :f, :t)",
                "bi.topic_window_stories('chips', :f, :t)",
            ):
                rows = conn.execute(sa.text(f"select * from {call}"), window)
                seen[f"{call} #{n}"] = sorted(map(tuple, rows))
    return seen


@pytest.fixture()
def loaded(engine: sa.Engine) -> tuple[sa.Engine, dict[str, int], TopicSet]:
    with engine.begin() as conn:
        sources = load.sync_sources(conn, [])  # none configured: added below
        for name in ("cna", "rfi"):
            sources[name] = conn.execute(
                sa.text(
                    "insert into sources (name, kind, location, poll_interval)"
                    " values (:n, 'feed', :loc, interval '15 minutes') returning source_id"
                ),
                {"n": name, "loc": f"https://{name}.example/feed"},
            ).scalar_one()
    topics = parse_topics(TOPICS_YAML, "topics.yaml")
    sync_topics(engine, topics)
    assert _load(engine, sources, "run-1", T0 + timedelta(hours=9)) == 48
    match_articles(engine, topics)
    return engine, sources, topics


def test_loading_the_same_articles_again_counts_nothing_twice(
    loaded: tuple[sa.Engine, dict[str, int], TopicSet],
) -> None:
    engine, sources, topics = loaded
    first = _snapshot(engine)
    counted = {name: len(rows) for name, rows in first.items()}
    assert counted["articles"] == 48 and counted["topic_mentions"] > 20
    assert counted["source_published_daily"] > 2 and counted["source_daily"] == 2
    with dashboard.read_only(engine) as conn:
        copies = conn.execute(
            sa.text("select count(*) from bi.articles where duplicate_of is not null")
        ).scalar_one()
    assert copies == 8
    # the run retried: the same run key, fetch log and articles
    assert _load(engine, sources, "run-1", T0 + timedelta(hours=9)) == 0
    assert _snapshot(engine) == first
    match_articles(engine, topics)
    assert _snapshot(engine) == first
    # a later run loading the same pages (an archive imported again): no fetch log, so
    # every view is as it was
    assert _load(engine, sources, "run-2", T0 + timedelta(days=1), fetch_log=False) == 0
    match_articles(engine, topics)
    assert _snapshot(engine) == first
    # and the roll-up rebuilt from the tables gives the same
    with engine.begin() as conn:
        conn.execute(sa.text("delete from bi_rollup_state"))
        conn.execute(sa.text("select refresh_bi_rollup()"))
    assert _snapshot(engine) == first
