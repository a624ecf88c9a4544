"""bi.article_links (migration 0037): through which sources and links a story reached
mediamon. article_links (0035) keeps the links of other sources and tracking links that
led to a stored article, but had no view: a BI login, which reads ``bi`` only, could not
answer "through which outlets did this story reach us". Read here as a fresh login made
by ``mediamon db bi-user``'s code, on links written by the ingest's own code."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa

from mediamon import db
from mediamon.bi import access
from mediamon.ingest import links

SEEN = datetime(2024, 4, 2, 1, 30, tzinfo=UTC)
LATER = datetime(2024, 4, 2, 17, 0, tzinfo=UTC)  # the next local day in Asia/Shanghai

SEED = """
insert into sources (source_id, name, kind, location, poll_interval)
overriding system value
values (1, 'xinhua', 'feed', 'https://x.example/feed', interval '15 minutes'),
       (2, 'aggregator', 'feed', 'https://agg.example/feed', interval '15 minutes'),
       (3, 'proxy', 'feed', 'https://proxy.example/feed', interval '15 minutes');

insert into articles (article_id, url_hash, canonical_url, url, source_id, title, published_at,
                      first_seen_at, language, body_text, match_text, content_origin,
                      content_hash, duplicate_of)
overriding system value
values (10, sha256('https://x.example/a'::bytea), 'https://x.example/a', 'https://x.example/a',
        1, 'Story A', :seen, :seen, 'zh', 'b', 'b', 'page', sha256('c10'::bytea), null),
       (11, sha256('https://y.example/a'::bytea), 'https://y.example/a', 'https://y.example/a',
        3, 'Story A, copied', :seen, :seen, 'zh', 'b', 'b', 'page', sha256('c11'::bytea), 10),
       (12, sha256('https://x.example/b'::bytea), 'https://x.example/b',
        'https://t.example/click?id=b', 1, 'Story B', :seen, :seen, 'zh', 'b', 'b', 'page',
        sha256('c12'::bytea), null);
"""


@pytest.fixture()
def bi_login(engine: sa.Engine) -> Iterator[sa.Engine]:
    """A fresh login in mediamon_bi on the test database."""
    name = f"bi_links_{uuid.uuid4().hex[:8]}"
    server = engine.url
    login = access.create_bi_login(engine, name, None, server.host or "", server.port or 5432)
    url = sa.make_url(login.url)
    reader = db.make_engine(
        server.set(username=url.username, password=url.password).render_as_string(False)
    )
    yield reader
    reader.dispose()
    with engine.begin() as conn:
        conn.execute(sa.text(f'drop role "{name}"'))


def _seed(engine: sa.Engine) -> None:
    with engine.begin() as conn:
        for statement in SEED.split(";\n\n"):
            conn.execute(sa.text(statement), {"seen": SEEN})
        conn.execute(sa.text("update bi.settings set timezone = 'Asia/Shanghai'"))
        # the aggregator reached story A through a tracking link, and B through the
        # credited source's own tracking link (kept by the ingest as the article's url)
        links.remember(
            conn,
            2,
            [
                (
                    "https://agg.example/r?u=A",
                    "https://agg.example/r?u=A",
                    "https://x.example/a",
                    None,
                )
            ],
            LATER,
        )
        links.remember(
            conn,
            1,
            [
                (
                    "https://t.example/click?id=b",
                    "https://t.example/click?id=b",
                    "https://x.example/b",
                    None,
                )
            ],
            SEEN,
        )


def test_a_bi_login_reads_every_way_a_story_reached_us(
    engine: sa.Engine, bi_login: sa.Engine
) -> None:
    _seed(engine)
    with bi_login.connect() as conn:
        rows = conn.execute(
            sa.text(
                "select article_id, story_id, source, link, url, title, credited,"
                " first_linked_at, first_linked_at_local::text"
                " from bi.article_links order by story_id, article_id, source"
            )
        ).all()
    assert [tuple(r) for r in rows] == [
        (10, 10, "aggregator", "https://agg.example/r?u=A", "https://x.example/a", "Story A",
         False, LATER, "2024-04-03 01:00:00"),
        (10, 10, "xinhua", "https://x.example/a", "https://x.example/a", "Story A",
         True, SEEN, "2024-04-02 09:30:00"),
        (11, 10, "proxy", "https://y.example/a", "https://y.example/a", "Story A, copied",
         True, SEEN, "2024-04-02 09:30:00"),
        # the credited link kept both in articles.url and in article_links: one row
        (12, 12, "xinhua", "https://t.example/click?id=b", "https://x.example/b", "Story B",
         True, SEEN, "2024-04-02 09:30:00"),
    ]  # fmt: skip


def test_a_story_filter_reaches_the_indexes(engine: sa.Engine) -> None:
    """Dashboards filter one story: the plan reads articles and article_links by key,
    not every row (analysts' statements end after 60 s on a year of data)."""
    _seed(engine)
    with engine.connect() as conn:
        conn.execute(sa.text("set local enable_seqscan = off"))
        plan = "\n".join(
            conn.execute(
                sa.text("explain select * from bi.article_links where article_id = 10")
            ).scalars()
        )
    assert "Seq Scan on articles" not in plan and "Seq Scan on article_links" not in plan, plan
