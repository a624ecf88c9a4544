"""Shards: due sources grouped by host into at most 1,024 task-sized groups; plain-text
feed summaries kept (they were lost with a trafilatura ERROR line each)."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import pytest

from mediamon.ingest.shard_runner import pool_size
from mediamon.ingest.shards import (
    MAX_SHARDS,
    host_key,
    plan_shards,
    requested_shards,
    shard_count,
    shard_label,
)
from mediamon.ingest.sources import Source

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def feed_source(name: str, host: str) -> Source:
    return Source(name=name, kind="feed", location=f"https://{host}/{name}.xml")


def test_each_hosts_sources_stay_in_one_shard_and_shards_come_out_even() -> None:
    sources = [feed_source(f"big-{i}", "big.example") for i in range(6)]
    sources += [feed_source(f"s{i}", f"h{i}.example") for i in range(10)]
    sources.append(Source(name="folder", kind="archive", location="/data/folder"))
    shards = plan_shards(sources, 4)
    assert len(shards) == 4
    by_name = {s.name: s for s in sources}
    for shard in shards:  # a host never spans two shards
        hosts = {host_key(by_name[n]) for n in shard.sources}
        others = [o for o in shards if o is not shard]
        assert not hosts & {host_key(by_name[n]) for o in others for n in o.sources}
    sizes = sorted(len(s.sources) for s in shards)
    assert sum(sizes) == len(sources) and sizes == [3, 4, 4, 6]
    assert shards[0].sources == tuple(f"big-{i}" for i in range(6))  # longest first
    assert shards[0].label == "big-0, big-1 +4"


def test_one_host_written_several_ways_is_one_shard() -> None:
    """The politeness limit of a host holds only if all its sources share one process: a
    host written in Unicode, in the IDNA form the fetcher sends, with full-width dots, in
    capitals or with the root's trailing dot was split over several shards, each with a
    limit of its own (2 connections each, where 2 in all were meant)."""
    spellings = [
        "例子.中国",
        "xn--fsqu00a.xn--fiqs8s",
        "例子。中国",
        "例子.中国.",
        "XN--FSQU00A.xn--fiqs8s:8443",
    ]
    sources = [feed_source(f"idn-{i}", host) for i, host in enumerate(spellings)]
    sources += [feed_source("plain", "Example.com."), feed_source("plain-2", "example.com")]
    assert {host_key(s) for s in sources} == {"xn--fsqu00a.xn--fiqs8s", "example.com"}
    shards = plan_shards(sources, 10)
    assert sorted(len(s.sources) for s in shards) == [2, 5]
    # a URL the fetcher refuses (its fetch log says why) is a group of its own
    for location in ("ftp://files.example/feed", "http://[::1/feed", "http://a.example:0x1/"):
        broken = Source(name="broken", kind="feed", location=location)
        assert host_key(broken) == f"unfetchable:{location}"


def test_never_more_shards_than_hosts_or_airflow_can_map() -> None:
    assert len(plan_shards([feed_source(f"s{i}", "one.example") for i in range(50)], 8)) == 1
    many = [feed_source(f"s{i}", f"h{i}.example") for i in range(5000)]
    shards = plan_shards(many, 10_000)
    assert len(shards) == MAX_SHARDS == 1024
    assert sorted(n for s in shards for n in s.sources) == sorted(s.name for s in many)
    assert plan_shards([], 4) == []
    assert shard_count(None, 32) == 32 and shard_count(5000, 32) == 1024
    assert shard_count(0, None) == 1


def test_shards_setting_and_pool_size() -> None:
    assert requested_shards({}) is None and requested_shards({"MEDIAMON_SHARDS": "12"}) == 12
    for bad in ("many", "²", "0", "9" * 5000):  # a Unicode digit; int() of 5,000 digits
        with pytest.raises(
            ValueError, match="^MEDIAMON_SHARDS=.*: expected a whole number above 0"
        ):
            requested_shards({"MEDIAMON_SHARDS": bad})
    assert pool_size(2, 4) == 1 and pool_size(8, 2) == 4 and pool_size(2, 4, configured=3) == 3
    assert shard_label(["a"]) == "a" and shard_label(["a", "b", "c"]) == "a, b +1"


def test_plain_text_feed_summary_is_kept_without_trafilatura_errors(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Many feeds' summaries are plain text: trafilatura's html2txt returned "" for them
    and logged an ERROR each (~5,000 lines per cycle at 1,000 sources)."""
    from mediamon.ingest.build import ArticleJob, build_article
    from mediamon.ingest.feeds import FeedItem

    item = FeedItem(
        link="https://example.org/a.html",
        title="标题",
        summary_html="第一段摘要 &amp; more",
        content_html="<p>" + "正文内容很长。" * 20 + "</p>",
    )
    job = ArticleJob(item=item, source_language="zh", drop_params=(), seen_at=NOW)
    with caplog.at_level(logging.ERROR):
        article = build_article(job).article
    assert article is not None and article.summary == "第一段摘要 & more"
    assert not [r for r in caplog.records if r.name.startswith("trafilatura")]


@pytest.mark.parametrize(
    "summary_html",
    ["<p>第一段摘要 &amp; more</p>", "<div><p>第一段摘要</p> <p>&amp; more</p></div>"],
)
def test_html_feed_summary_is_kept_without_trafilatura_errors(
    caplog: pytest.LogCaptureFixture, summary_html: str
) -> None:
    """An HTML summary is a fragment, without <html> or <body>: html2txt returned "" for
    it too, with an ERROR line ("parsed tree length: 0"), and the article kept the
    page's meta description, or no summary, instead of the feed's."""
    from mediamon.ingest.build import ArticleJob, build_article
    from mediamon.ingest.feeds import FeedItem

    item = FeedItem(
        link="https://example.org/a.html",
        title="标题",
        summary_html=summary_html,
        content_html="<p>" + "正文内容很长。" * 20 + "</p>",
    )
    job = ArticleJob(item=item, source_language="zh", drop_params=(), seen_at=NOW)
    with caplog.at_level(logging.ERROR):
        article = build_article(job).article
    assert article is not None
    assert " ".join((article.summary or "").split()) == "第一段摘要 & more"
    assert not [r for r in caplog.records if r.name.startswith("trafilatura")]
