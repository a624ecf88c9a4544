"""Whose text an article carries: a page's text wins over any feed's, and a feed's text
about another site's URL stays that feed's claim.

A feed may link any URL with any text. When the page behind a link can be fetched, its
text is the article's, attributed to the source that fetched it. When it cannot, the
feed's own text stands in only for the source's own site; for a URL on another site it
is stored as the source's claim (table ``article_claims``), never in ``articles``: it
cannot overwrite the site's page, and the site's own source still fetches the URL.
"""

from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import urlsplit

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert

from mediamon.db.tables import article_claims
from mediamon.ingest.normalize import fetched_host, url_hash
from mediamon.models import Article

FEED_ORIGINS = ("feed_content", "feed_summary")
PAGE_ORIGINS = ("page", "archive")


def site_of(url: str) -> str:
    """The site a URL belongs to: its registrable domain (``news.example.co.uk`` and
    ``www.example.co.uk`` are one site), or host and port for an IP address or a name
    without a public suffix (``127.0.0.1:8080``, ``localhost:81``)."""
    from courlan import extract_domain

    parts = urlsplit(url)
    # The host as the fetcher requests it and canonical_url keys it (IDNA 2008 with
    # UTS 46): a source written as http://www.新华网.cn/rss had the site 新华网.cn, its
    # articles (keyed xn--xkrr14bows.cn) another one, so every item whose page could not
    # be fetched was stored as a claim on another site, never as an article.
    host = fetched_host(parts.hostname or "").lower().rstrip(".")
    domain = (
        extract_domain(f"http://{host}/")
        if host and not host.replace(".", "").isdigit() and ":" not in host
        else None
    )
    if domain:
        return str(domain).lower()
    try:
        port = parts.port
    except ValueError:
        port = None
    default = 443 if parts.scheme.lower() == "https" else 80
    return f"{host}:{port or default}"


def is_claim(article: Article, source_site: str | None) -> bool:
    """Whether the article's text is a feed's word about another site's URL."""
    return (
        source_site is not None
        and article.content_origin in FEED_ORIGINS
        and site_of(article.canonical_url) != source_site
    )


def store_claims(
    conn: sa.Connection, source_id: int, claims: Sequence[Article], seen_at: object
) -> int:
    """Upsert the source's claims on (source_id, url_hash); return how many were written."""
    rows = {
        url_hash(a.canonical_url): {
            "source_id": source_id,
            "url_hash": url_hash(a.canonical_url),
            "canonical_url": a.canonical_url,
            "url": a.url,
            "title": a.title,
            "body_text": a.body_text,
            "published_at": a.published_at,
            "language": a.language,
            "content_origin": a.content_origin,
            "first_claimed_at": seen_at,
        }
        for a in claims
    }
    if not rows:
        return 0
    statement = insert(article_claims).values(list(rows.values()))
    excluded = statement.excluded
    changed = ("url", "title", "body_text", "published_at", "language", "content_origin")
    result = conn.execute(
        statement.on_conflict_do_update(
            index_elements=[article_claims.c.source_id, article_claims.c.url_hash],
            set_={**{c: excluded[c] for c in changed}, "updated_at": sa.func.now()},
            where=sa.or_(*(article_claims.c[c].is_distinct_from(excluded[c]) for c in changed)),
        )
    )
    return int(result.rowcount or 0)
