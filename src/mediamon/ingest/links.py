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
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert

from mediamon.db.tables import article_links, articles
from mediamon.ingest.normalize import url_hash


def remember(
    conn: sa.Connection, source_id: int, led_to: Iterable[tuple[str, str, str]], seen_at: datetime
) -> int:
    """Upsert ``source_id``'s links on (source_id, link_hash); return how many rows were
    written. ``led_to`` holds (link as written, its canonical URL, the canonical URL of
    the article it led to); links keyed as their article is are skipped, and so are
    articles not stored (the caller loads them first, in the same transaction).

    A link that now leads to another article than before is moved to it: the row says
    where the link leads now. ``first_linked_at`` stays the first time."""
    rows: dict[bytes, dict[str, object]] = {}
    for link, key, article_key in led_to:
        if key != article_key:
            rows[url_hash(key)] = {
                "link_hash": url_hash(key),
                "link": link.replace("\x00", ""),
                "article_hash": url_hash(article_key),
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
                "updated_at": sa.func.now(),
            },
            where=sa.or_(
                article_links.c.link.is_distinct_from(excluded.link),
                article_links.c.article_id.is_distinct_from(excluded.article_id),
            ),
        )
    )
    return result.rowcount


def linked(conn: sa.Connection, source_id: int, keys: Iterable[str]) -> Mapping[str, datetime]:
    """Of the canonical URLs ``keys`` of ``source_id``'s links, those that led to a
    stored article, with the time each first did."""
    by_hash = {url_hash(key): key for key in keys}
    if not by_hash:
        return {}
    rows = conn.execute(
        sa.select(article_links.c.link_hash, article_links.c.first_linked_at).where(
            article_links.c.source_id == source_id,
            article_links.c.link_hash.in_(list(by_hash)),
        )
    )
    return {by_hash[bytes(h)]: first for h, first in rows}
