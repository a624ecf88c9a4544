"""Hostile links (attack audit): feeds reaching one story through links of their own,
through the real ingest path (fault servers on 127.0.0.1, a real PostgreSQL). Each test
is one finding and names its docs/faults.md row.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from html import escape

import pytest
import sqlalchemy as sa

from tests.support.fault_server import FaultServer, fault_server, redirect, respond
from tests.support.faults import NOW, RSS, articles, feed_source, item, page, rss, run_ingest


@pytest.fixture()
def other_server() -> Iterator[FaultServer]:
    """The story's own site, apart from the feeds' (another port is another site)."""
    with fault_server() as running:
        yield running


def _refresh_stub(target: str) -> str:
    """A tracking link's page that sends its reader on with a meta refresh."""
    return (
        '<!DOCTYPE html><html><head><meta charset="utf-8">'
        f'<meta http-equiv="refresh" content="0; url={escape(target)}">'
        "<title>跳转中</title></head><body>正在跳转……</body></html>"
    )


def test_two_feeds_linking_one_story_through_their_own_redirects(
    engine: sa.Engine, server: FaultServer, other_server: FaultServer
) -> None:
    """Two feeds each list one story through a tracking link of their own: one answers
    302, the other is a page with a meta refresh. articles.url kept one link per article,
    so after each source's fetch the other's link was unknown: over 4 polls the story's
    page was fetched 8 times, the article `updated` at every fetch, and its url and
    credited source swapped between the two sources at every poll. Now each source's
    link is remembered as leading to the article (table article_links): the story is
    fetched once per source, never again; the article keeps its first link and source,
    and is never updated by the second source's fetch."""
    story = other_server.route("/story", respond(page("同一篇报道")))
    server.route("/a/track", redirect(story))
    server.route("/b/go", respond(_refresh_stub(story)))
    link_a, link_b = server.url("/a/track"), server.url("/b/go")
    story_site = (f"127.0.0.1:{other_server.port}",)
    sources = [
        feed_source("aggr_a", server.url("/a/feed.xml"), allow_hosts=story_site),
        feed_source("aggr_b", server.url("/b/feed.xml"), allow_hosts=story_site),
    ]
    updated = {"aggr_a": 0, "aggr_b": 0}
    known = {"aggr_a": 0, "aggr_b": 0}
    for poll in range(4):
        # The feeds change at every poll (a new build date), so both are read again.
        built = f"<lastBuildDate>Sat, 20 Apr 2024 {12 + poll}:00:00 +0000</lastBuildDate>"
        for path, link in (("/a/feed.xml", link_a), ("/b/feed.xml", link_b)):
            server.route(
                path, respond(rss(built + item(link, title="同一篇报道")), content_type=RSS)
            )
        stats = run_ingest(engine, sources, NOW + timedelta(hours=poll), f"faults:{poll}")
        for name, got in stats.items():
            assert got.failed == 0, got.errors
            updated[name] += got.updated
            known[name] += got.already_known
        (article,) = articles(engine).values()
        assert (article["url"], article["source"]) == (link_a, "aggr_a"), poll
        assert article["canonical_url"] == story and article["content_origin"] == "page"
    assert other_server.hits("/story") == 2  # once per source, at the first poll
    assert updated == {"aggr_a": 0, "aggr_b": 0}
    assert known == {"aggr_a": 3, "aggr_b": 3}
    with engine.connect() as conn:
        linked = conn.execute(
            sa.text(
                "select s.name, l.link, l.article_id from article_links l"
                " join sources s using (source_id) order by s.name"
            )
        ).all()
    assert linked == [
        ("aggr_a", link_a, article["article_id"]),
        ("aggr_b", link_b, article["article_id"]),
    ]


def test_the_sites_own_source_still_takes_its_story_over(
    engine: sa.Engine, server: FaultServer, other_server: FaultServer
) -> None:
    """The first source to fetch a page keeps it (the finding above), but not against
    the page's own site: when the site's own source fetches the story an aggregator
    fetched first through its redirect (a refetch: the story is known by its URL), the
    story is the site's, under its feed's title; the aggregator's next poll neither
    fetches the story again nor takes it back."""
    story = other_server.route("/story", respond(page("网站标题")))
    own = rss(item(story, title="网站自己的标题"))
    other_server.route("/feed.xml", respond(own, content_type=RSS))
    server.route("/r", redirect(story))
    allowed = (f"127.0.0.1:{other_server.port}",)
    aggregator = feed_source("aggr", server.url("/feed.xml"), allow_hosts=allowed)
    site = feed_source("site", other_server.url("/feed.xml"))
    polls = [(aggregator, False, "aggr"), (site, True, "site"), (aggregator, False, "site")]
    for poll, (source, refetch, credited) in enumerate(polls):
        feed = rss(item(server.url("/r"), title=f"聚合标题{poll}"))
        server.route("/feed.xml", respond(feed, content_type=RSS))
        moment = NOW + timedelta(hours=poll)
        stats = run_ingest(engine, [source], moment, f"faults:{poll}", refetch_known=refetch)
        assert stats[source.name].failed == 0, stats
        (article,) = articles(engine).values()
        assert article["source"] == credited, poll
    assert (article["url"], article["title"]) == (story, "网站自己的标题")
    assert other_server.hits("/story") == 2  # the aggregator's first fetch, the site's
