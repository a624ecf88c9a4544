"""Feeds, pages and an ingest runner for the fault-injection suite."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from html import escape

import sqlalchemy as sa

from mediamon.ingest import load
from mediamon.ingest import run as pipeline
from mediamon.ingest.build import ArticleJob
from mediamon.ingest.feeds import FeedItem
from mediamon.ingest.fetch import FetchResult
from mediamon.ingest.session import make_session
from mediamon.ingest.sources import Source
from mediamon.models import IngestStats

USER_AGENT = "mediamon-faults/1.0 (+https://example.org)"
# The fault runs' clock, and the content type of their feeds.
NOW = datetime(2024, 4, 20, 12, 0, tzinfo=UTC)
RSS = "application/rss+xml; charset=utf-8"
PARAGRAPH = (
    "记者从有关部门获悉，今年以来当地经济运行总体平稳，主要指标持续改善。"
    "专家表示，下一阶段应继续扩大内需，稳定就业，推动高质量发展。"
)
TRADITIONAL = (
    "記者從有關部門獲悉，今年以來當地經濟運行總體平穩，主要指標持續改善。"
    "專家表示，下一階段應繼續擴大內需，穩定就業，推動高質量發展。"
)


def item(
    link: str | None,
    title: str = "新闻标题",
    description: str = "摘要：" + PARAGRAPH,
    date: str | None = "Sat, 20 Apr 2024 08:00:00 +0800",
) -> str:
    """One RSS 2.0 item; ``link`` or ``date`` None leaves the element out."""
    parts = [f"<title>{escape(title)}</title>"]
    if link is not None:
        parts.append(f"<link>{escape(link)}</link>")
    if date:
        parts.append(f"<pubDate>{date}</pubDate>")
    parts.append(f"<description>{escape(description)}</description>")
    return "<item>" + "".join(parts) + "</item>"


def rss(items: Sequence[str] | str, prolog: str = "") -> bytes:
    body = items if isinstance(items, str) else "".join(items)
    return (
        f'<?xml version="1.0" encoding="UTF-8"?>{prolog}<rss version="2.0"><channel>'
        f"<title>故障测试</title><link>https://example.com/</link>{body}</channel></rss>"
    ).encode()


def page(title: str, paragraphs: int = 3, charset: str = "utf-8", text: str = PARAGRAPH) -> str:
    """An article page with enough text for extraction."""
    body = "".join(f"<p>{text}（第{n}段）</p>" for n in range(paragraphs))
    return (
        f'<!DOCTYPE html><html><head><meta charset="{charset}"><title>{escape(title)}</title>'
        f"</head><body><article><h1>{escape(title)}</h1>{body}</article></body></html>"
    )


def feed_source(name: str, url: str, **settings: object) -> Source:
    """A feed source on the test servers: private network allowed unless said otherwise."""
    settings.setdefault("allow_private_network", True)
    settings.setdefault("language", "zh")
    return Source(name=name, kind="feed", location=url, **settings)  # type: ignore[arg-type]


def run_ingest(
    engine: sa.Engine,
    sources: Sequence[Source],
    now: datetime,
    run_key: str = "faults:1",
    *,
    refetch_known: bool = False,
    retries: int = 1,
) -> dict[str, IngestStats]:
    """One ingest cycle of ``sources`` in this process, one session, no process pool."""
    with engine.begin() as conn:
        ids = load.sync_sources(conn, sources)
    stats: dict[str, IngestStats] = {}
    with make_session(USER_AGENT, retries=retries, backoff_s=0.01) as session:
        for source in sources:
            stats[source.name] = pipeline.ingest_source(
                engine, source, ids[source.name], session, run_key, now,
                refetch_known=refetch_known,
            )  # fmt: skip
    return stats


def fetch_log(engine: sa.Engine, source: str | None = None) -> dict[str, dict[str, object]]:
    """The fetch log by URL (of one source, or all)."""
    query = "select * from bi.fetch_log" + (" where source = :source" if source else "")
    with engine.connect() as conn:
        rows = conn.execute(sa.text(query), {"source": source}).mappings().all()
    return {str(r["url"]): dict(r) for r in rows}


def articles(engine: sa.Engine, source: str | None = None) -> dict[str, dict[str, object]]:
    """Articles by URL as linked (of one source, or all)."""
    query = "select a.*, s.name as source from articles a join sources s using (source_id)" + (
        " where s.name = :source" if source else ""
    )
    with engine.connect() as conn:
        rows = conn.execute(sa.text(query), {"source": source}).mappings().all()
    return {str(r["url"]): dict(r) for r in rows}


def state(engine: sa.Engine, source: str) -> dict[str, object]:
    with engine.connect() as conn:
        row = (
            conn.execute(
                sa.text(
                    "select st.* from source_state st join sources s using (source_id)"
                    " where s.name = :name"
                ),
                {"name": source},
            )
            .mappings()
            .one()
        )
    return dict(row)


def page_job(
    url: str, html: str, *, title: str | None, summary_html: str | None = None
) -> ArticleJob:
    """The job build_article gets for a feed item (of ``title``, dated 20 April 2024)
    whose UTF-8 HTML page was fetched."""
    return ArticleJob(
        item=FeedItem(
            link=url, title=title, published_at=datetime(2024, 4, 20, tzinfo=UTC),
            summary_html=summary_html,
        ),
        source_language="zh",
        drop_params=(),
        seen_at=NOW,
        page=FetchResult(
            url=url, final_url=url, status=200, content=html.encode("utf-8"),
            headers={"content-type": "text/html; charset=utf-8"},
        ),
    )  # fmt: skip
