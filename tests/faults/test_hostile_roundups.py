"""Hostile roundups (copy detection): a page holding several stories whole, through the
real ingest path (fault servers on 127.0.0.1, a real PostgreSQL), then topic matching
and the spikes' hourly story counts. Names its docs/faults.md row.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from html import escape

import pytest
import sqlalchemy as sa

from mediamon.spikes.counts import hourly_counts
from mediamon.topics.file import parse_topics
from mediamon.topics.match import match_articles
from mediamon.topics.store import sync_topics
from tests.support.fault_server import FaultServer, fault_server, respond
from tests.support.faults import NOW, RSS, articles, feed_source, item, rss, run_ingest

TOPICS = "version: 1\ntopics:\n  - {key: taiwan, name: 台湾, terms: [台湾]}\n"
PUBLISHED = "Sat, 20 Apr 2024 08:00:00 +0000"  # in the hour NOW - 4 h


def story(n: int) -> list[str]:
    """The paragraphs of story ``n``: ten distinct stories, each about Taiwan."""
    return [
        f"台湾第{n}号新闻的第{k}段报道了一件与其他新闻都不相同的事情，编号为{n * 7919 + k}号。"
        for k in range(6)
    ]


def html(title: str, paragraphs: list[str]) -> str:
    body = "".join(f"<p>{escape(p)}</p>" for p in paragraphs)
    return (
        f'<!DOCTYPE html><html><head><meta charset="utf-8"><title>{escape(title)}</title>'
        f"</head><body><article><h1>{escape(title)}</h1>{body}</article></body></html>"
    )


@pytest.fixture()
def origin() -> Iterator[FaultServer]:
    """The stories' own site, apart from the aggregator's (another port, another site)."""
    with fault_server() as running:
        yield running


def site_feed(origin: FaultServer, links: list[str]) -> None:
    items = [item(link, title=f"新闻{n}", date=PUBLISHED) for n, link in enumerate(links)]
    origin.route("/feed.xml", respond(rss(items), content_type=RSS))


@pytest.mark.parametrize("stored_before", [0, 4], ids=["before-all", "between"])
def test_a_roundup_stored_before_its_stories_absorbs_none_of_them(
    engine: sa.Engine, server: FaultServer, origin: FaultServer, stored_before: int
) -> None:
    """An aggregator, polled faster than the stories' site, publishes a daily roundup
    holding the full texts of 10 stories. Before, the roundup was stored first and each
    story, sharing all its sentences with it (the shorter text's 100 %), became its copy:
    topic counts, alerts and BI saw 1 story where there were 10 (stored after 4 of them,
    the roundup was the first one's copy, and the 6 after it roots: which text counted as
    what depended on the order of polls). Now a copy must also share more than half of
    the longer text: 10 stories and the roundup, 11 in all, in either order."""
    roundup = server.route(
        "/roundup", respond(html("今日要闻汇总", [p for n in range(10) for p in story(n)]))
    )
    server.route(
        "/feed.xml",
        respond(rss(item(roundup, title="今日要闻汇总", date=PUBLISHED)), content_type=RSS),
    )
    links = [origin.route(f"/story/{n}", respond(html(f"新闻{n}", story(n)))) for n in range(10)]
    aggregator = feed_source("aggregator", server.url("/feed.xml"))
    site = feed_source("site", origin.url("/feed.xml"))
    if stored_before:
        site_feed(origin, links[:stored_before])
        run_ingest(engine, [site], NOW - timedelta(minutes=45), "faults:0")
    run_ingest(engine, [aggregator], NOW - timedelta(minutes=30), "faults:1")
    site_feed(origin, links)
    stats = run_ingest(engine, [site], NOW, "faults:2")
    assert stats["site"].new == 10 - stored_before and not stats["site"].failed
    topics = parse_topics(TOPICS, "topics.yaml")
    sync_topics(engine, topics)
    match_articles(engine, topics)
    hour = NOW - timedelta(hours=4)
    with engine.connect() as conn:
        counts = hourly_counts(conn, ["taiwan"], hour, NOW)
        stories = conn.execute(
            sa.text("select count(distinct story_id) from bi.topic_mentions where topic = 'taiwan'")
        ).scalar_one()
    # the 10 stories and the roundup (before: 1, the roundup with its 10 "copies")
    assert counts == {"taiwan": {hour: 11}}
    assert stories == 11
    stored = articles(engine)
    assert stored[roundup]["content_origin"] == "page"
    assert {url: a["duplicate_of"] for url, a in stored.items()} == dict.fromkeys(stored)

    # A syndicated copy of one story (its own credit line) still counts as that story.
    copy = server.route(
        "/copy", respond(html("转载新闻3", ["（转载自新闻网）", *story(3), "本文来源：新闻网"]))
    )
    server.route(
        "/feed.xml",
        respond(rss(item(copy, title="转载新闻3", date=PUBLISHED)), content_type=RSS),
    )
    run_ingest(engine, [aggregator], NOW + timedelta(minutes=30), "faults:3")
    assert articles(engine)[copy]["duplicate_of"] == articles(engine)[links[3]]["article_id"]
    match_articles(engine, topics)
    with engine.connect() as conn:
        assert hourly_counts(conn, ["taiwan"], hour, NOW) == {"taiwan": {hour: 11}}
