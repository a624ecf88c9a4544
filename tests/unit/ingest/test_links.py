"""What tells a new feed item behind a reused link (mediamon.ingest.links.new_item)."""

from __future__ import annotations

from datetime import UTC, datetime

from mediamon.ingest.feeds import FeedItem, parse_feed
from mediamon.ingest.links import item_key, new_item

LINK = "https://t.example/abc"
DAY = datetime(2024, 4, 20, 8, tzinfo=UTC)
NEXT_DAY = datetime(2024, 4, 21, 8, tzinfo=UTC)


def _new(before: FeedItem, now: FeedItem) -> bool:
    return new_item(item_key(before), item_key(now))


def test_another_guid_is_another_item_whatever_the_title() -> None:
    first = FeedItem(LINK, "标题", DAY, guid="item-1")
    assert _new(first, FeedItem(LINK, "标题", DAY, guid="item-2"))
    assert not _new(first, FeedItem(LINK, "新标题", NEXT_DAY, guid="item-1"))


def test_without_a_guid_the_title_and_the_date_must_both_differ() -> None:
    first = FeedItem(LINK, "旧报道", DAY)
    assert _new(first, FeedItem(LINK, "新报道", NEXT_DAY))
    assert not _new(first, FeedItem(LINK, "旧报道（更新）", DAY))  # retitled
    assert not _new(first, FeedItem(LINK, "旧报道", NEXT_DAY))  # re-dated every build
    # A permalink guid names the link, not the item: the title and date decide.
    assert _new(FeedItem(LINK, "旧", DAY, guid=LINK), FeedItem(LINK, "新", NEXT_DAY, guid=LINK))
    # Undated items: the title alone.
    assert _new(FeedItem(LINK, "旧"), FeedItem(LINK, "新"))


def test_no_key_is_no_evidence() -> None:
    assert not new_item(None, item_key(FeedItem(LINK, "标题")))
    assert item_key(FeedItem(LINK)) is None
    assert not new_item(item_key(FeedItem(LINK, "标题")), None)


def test_the_feed_gives_each_item_its_guid() -> None:
    feed = (
        b"<rss><channel><item><title>a</title><link>https://x.example/a</link>"
        b"<guid isPermaLink='false'>tag:x,1</guid></item>"
        b"<item><title>b</title><link>https://x.example/b</link></item></channel></rss>"
    )
    items = parse_feed(feed, "https://x.example/feed.xml").items
    assert [i.guid for i in items] == ["tag:x,1", None]
