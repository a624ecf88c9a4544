"""Loading: upserts on natural keys, atomic batches, duplicate links; migrations."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa

from mediamon import load, migrate, normalize
from mediamon.models import Article, FetchRecord
from mediamon.sources import Source

NOW = datetime(2024, 4, 20, tzinfo=UTC)
BODY = "\n".join(f"第{n}句话讲述了一件完全不同的新闻事件，编号为{n * 7919}。" for n in range(10))


def article(url: str, body: str = BODY) -> Article:
    match = normalize.fold(body)
    return Article(
        canonical_url=url, url=url, title="标题", author=None, published_at=NOW, language="zh",
        body_text=body, match_text=match, summary=None, image_url=None, categories=(),
        content_origin="page", content_hash=normalize.content_hash(match),
        sentence_hashes=normalize.sentence_hashes(match), raw_sha256=None, raw_bytes=None,
    )  # fmt: skip


def source_id(engine: sa.Engine) -> int:
    with engine.begin() as conn:
        ids = load.sync_sources(conn, [Source(name="s", kind="feed", location="https://x/f")])
    return ids["s"]


def test_upsert_inserts_updates_and_leaves_unchanged_rows_alone(engine: sa.Engine) -> None:
    sid = source_id(engine)
    with engine.begin() as conn:
        assert load.upsert_articles(conn, sid, [article("https://x/1")], NOW)[:2] == (1, 0)
    with engine.begin() as conn:
        assert load.upsert_articles(conn, sid, [article("https://x/1")], NOW)[:2] == (0, 0)
        changed = dataclasses.replace(article("https://x/1"), title="新标题")
        assert load.upsert_articles(conn, sid, [changed], NOW)[:2] == (0, 1)
        count = conn.execute(sa.text("select count(*) from articles")).scalar_one()
    assert count == 1


def test_a_failing_batch_leaves_nothing_behind(engine: sa.Engine) -> None:
    sid = source_id(engine)
    bad = dataclasses.replace(article("https://x/2"), content_origin="not-an-origin")
    with pytest.raises(sa.exc.IntegrityError), engine.begin() as conn:
        load.write_fetch_log(
            conn, "run", sid, [FetchRecord(url="https://x/f", kind="feed", fetched_at=NOW)]
        )
        load.upsert_articles(conn, sid, [article("https://x/1"), bad], NOW)
    with engine.connect() as conn:
        assert conn.execute(sa.text("select count(*) from articles")).scalar_one() == 0
        assert conn.execute(sa.text("select count(*) from fetch_log")).scalar_one() == 0


def test_copies_link_to_the_first_article_and_short_texts_do_not(engine: sa.Engine) -> None:
    sid = source_id(engine)
    with engine.begin() as conn:
        _, _, ids = load.upsert_articles(
            conn, sid,
            [
                article("https://a/1"),
                article("https://b/1", "（本报讯）" + BODY + "\n责任编辑：王五"),  # syndicated copy
                article("https://c/1", BODY.replace("\n", "")),  # same text, other layout
                article("https://d/1", "图片"), article("https://e/1", "图片"),  # too short
                article("https://f/1", BODY[::-1]),  # other text
            ],
            NOW,
        )  # fmt: skip
        assert load.mark_duplicates(conn, ids) == 2
        links = dict(
            conn.execute(sa.text("select canonical_url, duplicate_of from articles")).all()
        )
    assert links["https://b/1"] == links["https://c/1"] == ids[0]
    assert links["https://a/1"] is None and links["https://f/1"] is None
    assert links["https://d/1"] is None and links["https://e/1"] is None


def test_migrations_are_recorded_once_and_guarded(engine: sa.Engine, tmp_path: Path) -> None:
    assert migrate.upgrade(engine) == []  # the fixture applied them all already
    with engine.connect() as conn:
        versions = (
            conn.execute(sa.text("select version from schema_migrations order by 1"))
            .scalars()
            .all()
        )
    assert versions == [m.version for m in migrate.load_migrations()]

    folder = tmp_path / "migrations"
    folder.mkdir()
    for m in migrate.load_migrations():
        (folder / f"{m.name}.sql").write_text(m.sql + "\n-- edited", "utf-8")
    with pytest.raises(RuntimeError, match="changed after it was applied"):
        migrate.upgrade(engine, folder)
    (folder / "readme.txt").write_text("x", "utf-8")
    with pytest.raises(ValueError, match="NNNN_description.sql"):
        migrate.load_migrations(folder)


def test_batches_in_one_transaction_each_write_only_their_own_rows(engine: sa.Engine) -> None:
    sid = source_id(engine)
    with engine.begin() as conn:
        first = load.upsert_articles(conn, sid, [article("https://x/1")], NOW)
        second = load.upsert_articles(conn, sid, [article("https://x/2", BODY[::-1])], NOW)
        staged = conn.execute(sa.text("select count(*) from stg_articles")).scalar_one()
    assert first[:2] == second[:2] == (1, 0)
    assert first[2] != second[2]
    assert staged == 0
