"""Migration 0036: copy links stored under the rule of before (the shorter text's
sentences alone) decided again by the rule of now, in a real PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa

from mediamon.db import migrate
from mediamon.ingest import load
from mediamon.ingest.sources import Source
from tests.support.articles import text_article

NOW = datetime(2024, 4, 20, tzinfo=UTC)


def story(n: int) -> list[str]:
    return [f"第{n}号新闻的第{k}段讲述一件不同的事情，编号为{n * 7919 + k}号。" for k in range(6)]


def test_migration_0036_frees_the_stories_a_roundup_absorbed(engine: sa.Engine) -> None:
    """A roundup of 5 stories stored before them made each its copy, and a copy of story
    2 (linked to the roundup too, story 2 being no root then). After the migration the
    stories are roots, the copy of story 2 copies story 2, and the roundup's own
    syndicated copy still copies it: the links copy_roots makes today."""
    with engine.begin() as conn:
        sid = load.sync_sources(conn, [Source(name="s", kind="feed", location="https://x/f")])["s"]
    texts = {
        "roundup": [p for n in range(5) for p in story(n)],
        **{f"story{n}": story(n) for n in range(5)},
        "copy2": ["（转载）", *story(2), "本文来源：新闻网。"],
        "roundup-copy": ["今日要闻汇总（转载）", *(p for n in range(5) for p in story(n))],
    }
    ids: dict[str, int] = {}
    for name, paragraphs in texts.items():  # one by one: ids in this order
        with engine.begin() as conn:
            written = load.upsert_articles(
                conn, sid, [text_article(f"https://x/{name}", "\n".join(paragraphs), NOW)], NOW
            )
        ids[name] = written.article_ids[0]
    with engine.begin() as conn:  # the links the rule of before made
        conn.execute(
            sa.text("update articles set duplicate_of = :root where article_id = any(:copies)"),
            {"root": ids["roundup"], "copies": [i for n, i in ids.items() if n != "roundup"]},
        )
        fingerprints = [
            load.Fingerprint(i, bytes(h), frozenset(s))
            for i, h, s in conn.execute(
                sa.text("select article_id, content_hash, sentence_hashes from articles")
            )
        ]
    (sql,) = [m.sql for m in migrate.load_migrations() if m.version == 36]
    with engine.begin() as conn:
        conn.exec_driver_sql(sql)
        links = dict(conn.execute(sa.text("select article_id, duplicate_of from articles")).all())
    assert links == load.copy_roots(fingerprints, [])
    assert links == {
        ids["roundup"]: None,
        **{ids[f"story{n}"]: None for n in range(5)},
        ids["copy2"]: ids["story2"],
        ids["roundup-copy"]: ids["roundup"],
    }
