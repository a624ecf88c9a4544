"""Which article each source's link led to (table ``article_links``, migration 0035).

A feed's link may redirect (HTTP 30x or a meta refresh: a tracking link, a feed proxy)
to a story's page, and the article is stored under the page's final URL; ``articles.url``
keeps the first link that led there, and only that one. A second source linking the same
story through a link of its own was known by neither link after each other's fetch: both
fetched the story again at every poll, and the article's url and credited source swapped
each time. Every (source, link) whose page turned out to be a stored article under
another key is kept here, so the source knows the link at its next poll, as Miniflux and
Media Cloud remember a feed's entries by the feed and its link. A link whose key is its
article's own needs no row: the article is found by that key.

A link may be reused (a tracking link that led to story A yesterday leads to story B
today): each row keeps which feed item it last came from (``item_key``), and the source
fetches the link again when another item shows it. A story an aggregator fetched first
moves to its site's own source when that source lists it (:func:`credit_own_site`).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import NamedTuple

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert

from mediamon.db.tables import article_links, articles, sources
from mediamon.ingest.feeds import FeedItem
from mediamon.ingest.normalize import canonical_url, url_hash
from mediamon.ingest.provenance import PAGE_ORIGINS, site_of

logger = logging.getLogger(__name__)


class Linked(NamedTuple):
    """What a source's link is known to have led to."""

    first_linked_at: datetime
    item_key: bytes | None  # the feed item it last came from (None: not recorded)


def item_key(item: FeedItem) -> bytes | None:
    """The identity of the feed item behind a link, for :func:`new_item`: ``g`` and the
    hash of its guid; or, when the guid is missing or the link itself (a permalink guid
    names the link, not the item: a reused link keeps it), ``t`` and the hashes of its
    title and its date. None when the item has neither guid nor title."""
    if item.guid and item.guid != item.link:
        return b"g" + hashlib.sha256(item.guid.encode("utf-8", "replace")).digest()
    if item.title:
        date = item.published_at.isoformat() if item.published_at else ""
        return b"t" + _sha256(item.title) + _sha256(date)
    return None


def new_item(stored: bytes | None, current: bytes | None) -> bool:
    """Whether a link's current feed item (``current``, its :func:`item_key`) is another
    item than the one it led from before (``stored``). Without a guid, the title and the
    date must both differ: a story retitled keeps its date, and a feed that dates every
    item by its build time keeps the titles; either alone would have the link fetched
    again at every poll of such a feed. No key (rows written before 0038, an item with
    neither guid nor title) is no evidence: not a new item."""
    if stored is None or current is None or stored == current:
        return False
    if stored[:1] != current[:1] or current[:1] == b"g":
        return True  # another guid (or the feed took to guids: one more fetch per link)
    no_date = _sha256("")
    title_differs = stored[1:33] != current[1:33]
    dates = stored[33:], current[33:]
    return title_differs and (dates[0] != dates[1] or no_date in dates)


def _sha256(text: str) -> bytes:
    return hashlib.sha256(text.encode("utf-8", "replace")).digest()


def remember(
    conn: sa.Connection,
    source_id: int,
    led_to: Iterable[tuple[str, str, str, bytes | None]],
    seen_at: datetime,
) -> int:
    """Upsert ``source_id``'s links on (source_id, link_hash); return how many rows were
    written. ``led_to`` holds (link as written, its canonical URL, the canonical URL of
    the article it led to, :func:`item_key` of its feed item); links keyed as their
    article is are skipped, and so are articles not stored (the caller loads them first,
    in the same transaction).

    A link that now leads to another article than before is moved to it: the row says
    where the link leads now, and from which item. ``first_linked_at`` stays the first
    time."""
    rows: dict[bytes, dict[str, object]] = {}
    for link, key, article_key, item in led_to:
        if key != article_key:
            rows[url_hash(key)] = {
                "link_hash": url_hash(key),
                "link": link.replace("\x00", ""),
                "article_hash": url_hash(article_key),
                "item_key": item,
            }
    if not rows:
        return 0
    found = dict(
        conn.execute(
            sa.select(articles.c.url_hash, articles.c.article_id).where(
                articles.c.url_hash.in_({r["article_hash"] for r in rows.values()})
            )
        ).all()
    )
    values = [
        {
            "source_id": source_id,
            "link_hash": r["link_hash"],
            "link": r["link"],
            "article_id": found[r["article_hash"]],
            "first_linked_at": seen_at,
            "item_key": r["item_key"],
        }
        for _, r in sorted(rows.items())  # in key order: concurrent writers never deadlock
        if r["article_hash"] in found
    ]
    if not values:
        return 0
    statement = insert(article_links).values(values)
    excluded = statement.excluded
    result = conn.execute(
        statement.on_conflict_do_update(
            index_elements=[article_links.c.source_id, article_links.c.link_hash],
            set_={
                "link": excluded.link,
                "article_id": excluded.article_id,
                "item_key": excluded.item_key,
                "updated_at": sa.func.now(),
            },
            where=sa.or_(
                article_links.c.link.is_distinct_from(excluded.link),
                article_links.c.article_id.is_distinct_from(excluded.article_id),
                article_links.c.item_key.is_distinct_from(excluded.item_key),
            ),
        )
    )
    return result.rowcount


def linked(conn: sa.Connection, source_id: int, keys: Iterable[str]) -> Mapping[str, Linked]:
    """Of the canonical URLs ``keys`` of ``source_id``'s links, those that led to a
    stored article, with the time each first did and the item it last came from."""
    by_hash = {url_hash(key): key for key in keys}
    if not by_hash:
        return {}
    rows = conn.execute(
        sa.select(
            article_links.c.link_hash, article_links.c.first_linked_at, article_links.c.item_key
        ).where(
            article_links.c.source_id == source_id,
            article_links.c.link_hash.in_(list(by_hash)),
        )
    )
    return {
        by_hash[bytes(h)]: Linked(first, None if item is None else bytes(item))
        for h, first, item in rows
    }


def credit_own_site(
    conn: sa.Connection, source_id: int, own_site: str, links: Mapping[str, str]
) -> int:
    """Credit to ``source_id``, a feed of ``own_site``, the stored pages of that site
    its feed lists (``links``: each link as written, with its canonical URL) that
    another source fetched first; return how many moved. The source skips a known URL,
    so a story an aggregator fetched first stayed the aggregator's until a refetch; the
    page is the site's own whoever fetched it, so nothing is fetched again for this.
    The page's text, dates and ``first_seen_at`` stay (credit is no new story), and the
    link that brought it first stays the earlier source's way in, as an
    ``article_links`` row (even one keyed as the article: ``articles.url`` now holds
    this source's link). A feed's text is left alone: it is the other feed's words."""
    mine = {url_hash(key): link for link, key in links.items() if site_of(key) == own_site}
    if not mine:
        return 0
    taken = conn.execute(
        sa.select(
            articles.c.article_id,
            articles.c.url_hash,
            articles.c.url,
            articles.c.source_id,
            articles.c.first_seen_at,
            sources.c.kind,
            sources.c.location,
        )
        .join(sources, sources.c.source_id == articles.c.source_id)
        .where(
            articles.c.url_hash.in_(list(mine)),
            articles.c.source_id != source_id,
            articles.c.content_origin.in_(PAGE_ORIGINS),
        )
        .order_by(articles.c.url_hash)  # key order, as every chunk locks: no deadlock
        .with_for_update(of=articles)
    ).all()
    # Only from feeds of other sites: two feeds of one site (its sections) would pass
    # a story back and forth at every poll, and an archive's import keeps its credit.
    taken = [r for r in taken if r.kind == "feed" and site_of(r.location) != own_site]
    if not taken:
        return 0
    earlier = [
        {
            "source_id": r.source_id,
            # Without that source's drop_query_params: its next poll may then fetch a
            # link that carried them once more, which records it under its own key.
            "link_hash": url_hash(canonical_url(r.url)),
            "link": r.url,
            "article_id": r.article_id,
            "first_linked_at": r.first_seen_at,
        }
        for r in taken
    ]
    conn.execute(insert(article_links).values(earlier).on_conflict_do_nothing())
    for r in taken:
        conn.execute(
            sa.update(articles)
            .where(articles.c.article_id == r.article_id)
            .values(
                source_id=source_id,
                url=mine[bytes(r.url_hash)].replace("\x00", ""),
                updated_at=sa.func.now(),
            )
        )
    logger.info("source %s: credit for %d of its site's stories moved to it", source_id, len(taken))
    return len(taken)
