"""Hostile links (attack audit): feeds reaching one story through links of their own,
through the real ingest path (fault servers on 127.0.0.1, a real PostgreSQL). Each test
is one finding and names its docs/faults.md row.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from html import escape
from pathlib import Path

import pytest
import sqlalchemy as sa

from mediamon import service
from mediamon.settings import Settings
from tests.support.fault_server import FaultServer, fault_server, redirect, respond
from tests.support.faults import (
    NOW,
    PARAGRAPH,
    RSS,
    articles,
    feed_source,
    item,
    page,
    rss,
    run_ingest,
)


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


def _by_page(engine: sa.Engine) -> dict[str, dict[str, object]]:
    """Articles by their page's URL (a reused link is the url of several)."""
    query = "select a.*, s.name as source from articles a join sources s using (source_id)"
    with engine.connect() as conn:
        rows = conn.execute(sa.text(query)).mappings().all()
    return {str(r["canonical_url"]): dict(r) for r in rows}


def test_a_reused_tracking_link_is_fetched_again_for_a_new_item_only(
    engine: sa.Engine, server: FaultServer, other_server: FaultServer
) -> None:
    """A tracking link that led to story A is reused for a new feed item that leads to
    story B. The link was known, so it was never fetched again and B was never loaded.
    Now each link remembers the feed item it came from (guid, else title and date): a
    new item under a known link is fetched again, once; the same item is not, over any
    number of polls, nor when only its title changes (a story retitled); A is not loaded
    twice, and the link moves to B."""
    story_a = other_server.route("/a", respond(page("旧报道")))
    story_b = other_server.route("/b", respond(page("新报道", text=PARAGRAPH + "新的内容。")))
    link = server.url("/t/abc")
    source = feed_source("aggr", server.url("/feed.xml"), allow_hosts=(story_a.split("/")[2],))
    day_a, day_b = "Sat, 20 Apr 2024 08:00:00 +0800", "Sun, 21 Apr 2024 08:00:00 +0800"
    # (the feed item's title and date, where the link leads) at each poll
    polls = [("旧报道", day_a, story_a)] * 3 + [("新报道", day_b, story_b)] * 3
    polls += [("新报道（更新）", day_b, story_b)] * 2
    totals = {"new": 0, "updated": 0, "unchanged": 0}
    for poll, (title, date, target) in enumerate(polls):
        server.route("/t/abc", redirect(target))
        built = f"<lastBuildDate>Sun, 21 Apr 2024 {poll}:00:00 +0000</lastBuildDate>"
        feed = rss(built + item(link, title=title, date=date))
        server.route("/feed.xml", respond(feed, content_type=RSS))
        stats = run_ingest(engine, [source], NOW + timedelta(hours=poll), f"faults:{poll}")
        got = stats["aggr"]
        assert got.failed == 0, got.errors
        for name in totals:
            totals[name] += getattr(got, name)
    # The first item and the new one: once each.
    assert server.hits("/t/abc") == 2
    assert (other_server.hits("/a"), other_server.hits("/b")) == (1, 1)
    assert totals == {"new": 2, "updated": 0, "unchanged": 0}
    stored = _by_page(engine)
    assert set(stored) == {story_a, story_b}
    with engine.connect() as conn:
        (row,) = conn.execute(sa.text("select link, article_id from article_links")).all()
    assert tuple(row) == (link, stored[story_b]["article_id"])


def test_the_sites_own_source_takes_the_credit_without_a_refetch(
    engine: sa.Engine, server: FaultServer, other_server: FaultServer, tmp_path: Path
) -> None:
    """An aggregator fetched two of a site's stories first (one through its redirect,
    one by the story's own URL); the site's own source then lists them. It skipped the
    known URLs, so the stories stayed the aggregator's until a refetch. Now the own
    source's sighting moves the credit (and articles.url) to it without fetching the
    pages again; the aggregator's links stay its ways in (article_links), nothing is
    loaded twice, the topic's mentions stay as they were, and the aggregator's next
    poll neither fetches them nor takes them back."""
    story = other_server.route("/story", respond(page("网站报道")))
    direct = other_server.route("/direct", respond(page("直接链接", text=PARAGRAPH + "另一篇。")))
    other_server.route(
        "/feed.xml",
        respond(rss([item(story, title="网站标题"), item(direct, title="直接")]), content_type=RSS),
    )
    tracking = server.route("/r", redirect(story))
    server.route(
        "/feed.xml",
        respond(
            rss([item(tracking, title="聚合"), item(direct, title="聚合二")]), content_type=RSS
        ),
    )
    aggregator = feed_source(
        "aggr", server.url("/feed.xml"), allow_hosts=(f"127.0.0.1:{other_server.port}",)
    )
    site = feed_source("site", other_server.url("/feed.xml"))
    topics = tmp_path / "topics.yaml"
    topics.write_text("version: 1\ntopics:\n  - {key: neixu, name: 内需, terms: [扩大内需]}\n")
    settings = Settings(
        database_url=engine.url.render_as_string(hide_password=False),
        sources_path=tmp_path / "sources.yaml",
        var_dir=tmp_path,
        topics_path=topics,
    )

    def mentions() -> list[tuple[object, ...]]:
        service.match_topics(settings)
        with engine.connect() as conn:
            rows = conn.execute(sa.text("select article_id, topic from mentions order by 1"))
            return [tuple(r) for r in rows]

    for poll, source in enumerate([aggregator, site, aggregator, site]):
        stats = run_ingest(engine, [source], NOW + timedelta(hours=poll), f"faults:{poll}")
        got = stats[source.name]
        assert got.failed == 0, got.errors
        if poll == 0:
            before = mentions()
            assert len(before) == 2
        else:
            assert (got.new, got.updated) == (0, 0), poll
            assert mentions() == before, poll
        credited = {a["canonical_url"]: (a["url"], a["source"]) for a in _by_page(engine).values()}
        expected = "aggr" if poll == 0 else "site"
        assert credited == {
            story: (story, expected) if poll else (tracking, expected),
            direct: (direct, expected),
        }, poll
    assert (other_server.hits("/story"), other_server.hits("/direct")) == (1, 1)
    with engine.connect() as conn:
        ways_in = conn.execute(
            sa.text(
                "select s.name, l.link from article_links l join sources s using (source_id)"
                " order by 1, 2"
            )
        ).all()
    assert [tuple(r) for r in ways_in] == sorted([("aggr", tracking), ("aggr", direct)])
