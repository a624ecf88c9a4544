"""Hostile input as it arrives on the wire (an attack run on encodings, framing, name
resolution and feed shapes): each test replays one finding against servers on
127.0.0.1 and names the docs/faults.md row it proves.

1. comments counted as an item's elements        -> test_an_item_of_many_comments_*
"""

from __future__ import annotations

from mediamon.ingest.feeds import MAX_ITEM_ELEMENTS, parse_feed
from tests.support.faults import item, rss


def test_an_item_of_many_comments_is_read_and_the_feed_kept() -> None:
    """An item holding 2,001 comments and processing instructions (a CMS's debug
    markers, or an attacker's) was refused as ``one <item> holds 2,001 elements`` and
    the whole feed with it: lxml counts comments as children. Only elements count."""
    markers = "<!-- cache -->" * MAX_ITEM_ELEMENTS + "<?php x ?>" * 2
    padded = item("https://example.com/a", title="注释很多").replace("<title>", markers + "<title>", 1)
    parsed = parse_feed(rss([padded, item("https://example.com/b")]), "https://example.com/feed")
    assert [i.link for i in parsed.items] == ["https://example.com/a", "https://example.com/b"]
    assert parsed.items[0].title == "注释很多"
