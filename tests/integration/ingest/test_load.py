"""Loading: upserts on natural keys, atomic batches, duplicate links; migrations."""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from mediamon.db import migrate
from mediamon.db.queries import query
from mediamon.errors import SchemaMismatch
from mediamon.ingest import load, normalize, polling
from mediamon.ingest.provenance import site_of
from mediamon.ingest.sources import Source
from mediamon.models import Article, FetchRecord
from tests.support.articles import text_article

NOW = datetime(2024, 4, 20, tzinfo=UTC)
BODY = "\n".join(f"第{n}句话讲述了一件完全不同的新闻事件，编号为{n * 7919}。" for n in range(10))


def article(url: str, body: str = BODY) -> Article:
    return text_article(url, body, NOW)


def source_id(engine: sa.Engine) -> int:
    with engine.begin() as conn:
        ids = load.sync_sources(conn, [Source(name="s", kind="feed", location="https://x/f")])
    return ids["s"]


def test_upsert_inserts_updates_and_leaves_unchanged_rows_alone(engine: sa.Engine) -> None:
    sid = source_id(engine)
    with engine.begin() as conn:
        written = load.upsert_articles(conn, sid, [article("https://x/1")], NOW)
        assert (written.inserted, written.updated) == (1, 0)
    with engine.begin() as conn:
        written = load.upsert_articles(conn, sid, [article("https://x/1")], NOW)
        assert (written.inserted, written.updated, written.article_ids) == (0, 0, [])
        changed = dataclasses.replace(article("https://x/1"), title="新标题")
        written = load.upsert_articles(conn, sid, [changed], NOW)
        assert (written.inserted, written.updated) == (0, 1)
        count = conn.execute(sa.text("select count(*) from articles")).scalar_one()
    assert count == 1


def test_a_nul_that_reached_the_loader_is_dropped_not_the_chunk(engine: sa.Engine) -> None:
    # PostgreSQL text cannot hold NUL: one in any field failed the chunk's COPY, and with
    # it up to 200 articles, run after run.
    sid = source_id(engine)
    hostile = dataclasses.replace(
        article("https://x/\x001"), title="标\x00题", author="A\x00B", categories=("Wo\x00rld",)
    )
    with engine.begin() as conn:
        written = load.upsert_articles(conn, sid, [hostile, article("https://x/2")], NOW)
        assert written.inserted == 2
        row = conn.execute(
            sa.text("select canonical_url, title, author, categories from articles"
                    " where canonical_url <> 'https://x/2'")
        ).one()  # fmt: skip
    assert tuple(row) == ("https://x/1", "标题", "AB", ["World"])


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
        written = load.upsert_articles(
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
        assert written.copies == 2
        ids = written.article_ids
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
    with pytest.raises(SchemaMismatch, match="changed after it was applied"):
        migrate.upgrade(engine, folder)
    (folder / "readme.txt").write_text("x", "utf-8")
    with pytest.raises(ValueError, match="NNNN_description.sql"):
        migrate.load_migrations(folder)


def test_copies_of_stored_articles_are_linked_and_relinked_when_they_change(
    engine: sa.Engine,
) -> None:
    sid = source_id(engine)
    with engine.begin() as conn:
        original = load.upsert_articles(conn, sid, [article("https://a/1")], NOW)
    with engine.begin() as conn:
        copy = load.upsert_articles(conn, sid, [article("https://b/1", BODY + "\n（新华社）")], NOW)
        assert copy.copies == 1
        # the copy is rewritten as a story of its own: its link goes
        rewritten = article("https://b/1", BODY[::-1])
        assert load.upsert_articles(conn, sid, [rewritten], NOW).copies == 0
        links = dict(
            conn.execute(sa.text("select canonical_url, duplicate_of from articles")).all()
        )
    assert links == {"https://a/1": None, "https://b/1": None}
    assert original.article_ids[0] < copy.article_ids[0]


def _story(tag: str) -> str:
    return "\n".join(f"台湾{tag}报道第{n}句，内容各不相同，编号{n * 104729}。" for n in range(10))


@pytest.mark.parametrize(
    ("new_text", "links"),
    [
        # the page's text replaces the feed's: r is a copy of e now, c (the feed's text)
        # is a story of its own (it copies nothing stored)
        (_story("甲") + "\n（编辑）", {"r": "e", "c": None}),
        # r is rewritten as a story of its own: c, a copy of r's old text, is a root too
        (_story("丁"), {"r": None, "c": None}),
        # r is corrected a little: c still copies it
        (_story("乙") + "\n（更正）", {"r": None, "c": "r"}),
    ],
)
def test_the_copies_of_a_root_whose_text_changed_are_linked_again(
    engine: sa.Engine, new_text: str, links: dict[str, str | None]
) -> None:
    """A stored root r with a copy c gets a new text. Before, c kept its link to r whatever
    r became; when r became a copy of e (e ← r ← c), c was counted by the spikes as a story
    of its own (they group by the article a copy links to) but listed nowhere: the BI
    views, the mails and the page start from roots, and r is none."""
    from mediamon.spikes.counts import hourly_counts
    from mediamon.topics.file import parse_topics
    from mediamon.topics.match import match_articles
    from mediamon.topics.store import sync_topics

    sid = source_id(engine)
    ids: dict[str, int] = {}
    for name, body in (
        ("e", _story("甲")),
        ("r", _story("乙")),
        ("c", _story("乙") + "\n（新华社）"),  # a copy of r
        ("r", new_text),
    ):
        with engine.begin() as conn:
            written = load.upsert_articles(conn, sid, [article(f"https://{name}/1", body)], NOW)
            ids[name] = written.article_ids[0]
    names = {article_id: name for name, article_id in ids.items()}
    with engine.connect() as conn:
        stored = dict(
            conn.execute(sa.text("select canonical_url, duplicate_of from articles")).all()
        )
    assert {
        url.split("/")[2]: names.get(root) for url, root in stored.items() if "/e/" not in url
    } == links
    topics = parse_topics("version: 1\ntopics:\n  - {key: tw, name: 台湾, terms: [台湾]}\n")
    sync_topics(engine, topics)
    match_articles(engine, topics)
    start, end = NOW - timedelta(days=1), NOW + timedelta(days=1)
    with engine.connect() as conn:
        counted = sum(hourly_counts(conn, ["tw"], start, end)["tw"].values())
        listed = conn.execute(
            sa.text("select count(*) from bi.topic_window_stories('tw', :s, :e)"),
            {"s": start, "e": end},
        ).scalar_one()
    assert counted == listed == sum(1 for root in links.values() if root is None) + 1


def test_stored_originals_are_found_by_either_key_alone(engine: sa.Engine) -> None:
    """The lookup of stored roots (``root_candidates.sql``) by the same text alone (one
    long sentence: too few for the sentence rule) and by shared sentences alone (a copy
    with a credit line, so another text hash), each in a later transaction."""
    sid = source_id(engine)
    one_sentence = "这是一条只有一句话但是足够长的简讯，讲的是同一件新闻事件的经过和结果。"
    with engine.begin() as conn:
        roots = load.upsert_articles(
            conn, sid, [article("https://a/1", one_sentence), article("https://a/2")], NOW
        ).article_ids
    with engine.begin() as conn:
        later = [
            article("https://b/1", one_sentence),
            article("https://b/2", BODY + "\n（新华社）"),
        ]
        assert load.upsert_articles(conn, sid, later, NOW).copies == 2
        links = dict(
            conn.execute(sa.text("select canonical_url, duplicate_of from articles")).all()
        )
    assert links == {
        "https://a/1": None, "https://a/2": None,
        "https://b/1": roots[0], "https://b/2": roots[1],
    }  # fmt: skip


def test_a_url_stored_by_another_transaction_meanwhile_is_updated_not_doubled(
    engine: sa.Engine,
) -> None:
    sid = source_id(engine)
    results: list[load.Upserted] = []

    def second_writer() -> None:
        with engine.begin() as conn:
            # Does not see the first writer's row yet, so its COPY waits on the unique
            # key, then fails when the first commits: the batch is written again.
            results.append(load.upsert_articles(conn, sid, [article("https://x/1")], NOW))

    with engine.begin() as conn:
        load.upsert_articles(conn, sid, [article("https://x/1")], NOW)
        thread = threading.Thread(target=second_writer)
        thread.start()
        time.sleep(0.5)  # let the second writer reach the unique key
    thread.join(timeout=30)
    assert [(r.inserted, r.updated) for r in results] == [(0, 0)]
    with engine.connect() as conn:
        assert conn.execute(sa.text("select count(*) from articles")).scalar_one() == 1


def fingerprint(
    article_id: int, sentences: Iterable[int], text: bytes | None = None
) -> load.Fingerprint:
    return load.Fingerprint(article_id, text, frozenset(sentences))


def test_copy_roots_follow_the_shared_sentence_rule() -> None:
    stored = [fingerprint(1, range(10)), fingerprint(2, range(100, 103))]
    batch = [
        fingerprint(5, range(2, 10)),  # 8 of its 8 sentences are in 1: a copy
        fingerprint(6, range(100, 120)),  # all 3 of 2's, but 3 of its 20: another story
        fingerprint(7, range(3, 13)),  # 7 of 10 shared with 1: under 80 %
        fingerprint(8, range(300, 302)),  # two sentences: too few to tell
        fingerprint(9, range(3, 13)),  # a copy of 7, a root of this batch
        fingerprint(3, range(0, 10)),  # stored before 5 but after 1: copies 1
    ]
    roots = load.copy_roots(batch, stored)
    assert roots == {3: 1, 5: 1, 6: None, 7: None, 8: None, 9: 7}


def test_a_roundup_holding_ten_stories_whole_is_the_root_of_none() -> None:
    """A daily roundup (an aggregator's digest, a hostile page) holds the full texts of 10
    stories and was stored before them (it was polled faster). Before, each story shared
    all its sentences with it, the shorter one's 100 %, and became its copy: 10 stories
    counted as one in topic counts, alerts and BI. Now the shared sentences must also be
    more than half of the longer text: each story is a root of its own, and so is the
    roundup, whether it came before all of them, in between, or after."""
    stories = [range(10 * n, 10 * n + 10) for n in range(10)]
    roundup = fingerprint(1, range(100))
    batch = [fingerprint(2 + n, s) for n, s in enumerate(stories)]
    assert load.copy_roots(batch, [roundup]) == {2 + n: None for n in range(10)}
    # stored after three of them and before the others, in one batch
    mixed = [fingerprint(n + (n >= 3) + 1, s) for n, s in enumerate(stories)]
    assert load.copy_roots([*mixed, fingerprint(4, range(100))], []) == {
        i: None for i in range(1, 12)
    }
    # a copy of one of them with its own byline and credit still copies it
    copy = fingerprint(20, [*stories[4], 500, 501])
    assert load.copy_roots([copy], [roundup, *batch]) == {20: 6}


def test_a_text_holding_more_than_half_of_another_copies_it() -> None:
    """Two stories that share nothing cannot both hold more than half of one text: a
    story with a few short items around it is still that story's copy, the items no."""
    story = fingerprint(1, range(30))
    page = fingerprint(2, [*range(30), *range(100, 120)])  # 30 of its 50
    briefs = [fingerprint(3 + n, range(100 + 5 * n, 105 + 5 * n)) for n in range(4)]
    assert load.copy_roots([page, *briefs], [story]) == {2: 1, 3: None, 4: None, 5: None, 6: None}


def test_copy_roots_link_only_to_earlier_roots_with_the_same_text() -> None:
    same = b"x" * 32
    batch = [fingerprint(4, range(0), same), fingerprint(9, range(0), same)]
    assert load.copy_roots(batch, [fingerprint(7, range(0), same)]) == {4: None, 9: 4}


def test_batches_in_one_transaction_each_write_only_their_own_rows(engine: sa.Engine) -> None:
    sid = source_id(engine)
    with engine.begin() as conn:
        first = load.upsert_articles(conn, sid, [article("https://x/1")], NOW)
        second = load.upsert_articles(conn, sid, [article("https://x/2", BODY[::-1])], NOW)
    assert (first.inserted, second.inserted) == (1, 1)
    assert first.article_ids != second.article_ids


def test_a_footer_every_stored_story_holds_is_not_looked_up(engine: sa.Engine) -> None:
    """A site's disclaimer closes each of its stories: every stored root shares that
    sentence with every new article. Before, each batch read all of them and compared each
    article with each (10,000 stored: 1.6 s a batch of 200, growing with the history);
    now a sentence more than COMMON_SENTENCE_ROOTS roots hold finds none, and copies are
    still found by their own sentences."""
    footer = "免责声明：本文仅代表作者个人观点，与本网站无关。"

    def story(n: int) -> str:
        lines = (f"第{n}篇第{k}句讲述一件不同的新闻事件，编号{n * 7919 + k}。" for k in range(6))
        return "\n".join(lines)

    sid = source_id(engine)
    stored = [article(f"https://a/{n}", story(n) + "\n" + footer) for n in range(120)]
    with engine.begin() as conn:
        first = load.upsert_articles(conn, sid, stored, NOW)
    assert first.copies == 0
    batch = [
        article("https://b/copy", "（转载）" + story(7) + "\n" + footer),
        article("https://b/new", story(500) + "\n" + footer),
    ]
    fingerprints = [load._fingerprint(1000 + i, dataclasses.asdict(a)) for i, a in enumerate(batch)]
    with engine.begin() as conn:
        candidates = load._root_candidates(conn, fingerprints)
        assert [c.article_id for c in candidates] == [first.article_ids[7]]
        written = load.upsert_articles(conn, sid, batch, NOW)
        links = dict(
            conn.execute(
                sa.text("select canonical_url, duplicate_of from articles where source_id = :s"),
                {"s": sid},
            ).all()
        )
    assert written.copies == 1
    assert links["https://b/copy"] == first.article_ids[7] and links["https://b/new"] is None


def index_scans(node: dict[str, Any], *, repeated: bool = False) -> set[str]:
    """The indexes a plan (EXPLAIN ANALYZE's JSON) reads (``repeated``: more than once)."""
    read = "Index Name" in node and (node["Actual Loops"] > 1 or not repeated)
    found = {node["Index Name"]} if read else set()
    for child in node.get("Plans", ()):
        found |= index_scans(child, repeated=repeated)
    return found


def test_each_sentence_is_probed_through_its_own_index_alone(engine: sa.Engine) -> None:
    """A batch probes each of its sentence hashes (how many roots hold it, so that a
    footer is not looked up). With the table's statistics stale, as in a new database
    or a first big load, the planner ANDed each probe with the partial index of roots
    (articles_story_hour) and read every root's entry once per hash: 600 times a batch,
    the load at 0.13x of COPY's rate and falling as the table grew (bench.load), and
    every root's entry twice more for the batch's texts and sentences. Now each lookup
    reads its own index alone."""

    def story(n: int) -> str:
        lines = (f"第{n}篇第{k}句讲述一件不同的新闻事件，编号{n * 7919 + k}。" for k in range(6))
        return "\n".join(lines)

    sid = source_id(engine)
    for start in range(0, 1_000, 100):
        with engine.begin() as conn:
            made = [article(f"https://a/{n}", story(n)) for n in range(start, start + 100)]
            load.upsert_articles(conn, sid, made, NOW)
    batch = [article(f"https://b/{n}", story(n)) for n in range(5_000, 5_100)]
    with engine.connect() as conn:
        plan = conn.execute(
            sa.text("explain (analyze, format json) " + query("root_candidates").text),
            {
                "content_hashes": load._hex_array(a.content_hash for a in batch if a.content_hash),
                "sentence_hashes": load._bigint_array(
                    sorted({h for a in batch for h in a.sentence_hashes})
                ),
                "min_sentences": load.DUPLICATE_MIN_SENTENCES,
                "common_roots": load.COMMON_SENTENCE_ROOTS,
            },
        ).scalar_one()
    assert index_scans(plan[0]["Plan"], repeated=True) == {"articles_sentence_hashes"}
    assert index_scans(plan[0]["Plan"]) == {"articles_sentence_hashes", "articles_content_hash"}


# Keys stored before migration 0019: each path as a feed, page or file spelled it.
SPELLED_BEFORE_0019 = [
    "https://example.com/新闻",
    "https://example.com/%e6%96%b0%e9%97%bb/2",
    "https://example.com/%7Ea/%41%2d%5f%2e%2E/x",
    "https://example.com/a/%2e%2e/b",
    'https://example.com/a b|{c}^`"<>\\',
    "https://example.com/100%/a%zz%%41",
    "https://example.com/é/%00%ff%C3?q=%E5%8C%97&x=%E5",
    "http://[::1]:8080/%c3%a9",
    "https://example.com/emoji😀/ＡＢ",
    "https://example.com/plain/-_.~!$&'()*+,;=:@/%E6%96%B0",
]


def apply_migration(engine: sa.Engine, version: int) -> None:
    """Run one migration's SQL again, on rows stored as before it."""
    (sql,) = [m.sql for m in migrate.load_migrations() if m.version == version]
    with engine.begin() as conn:
        conn.exec_driver_sql(sql)


def test_migration_0019_spells_stored_keys_as_canonical_url_now_does(engine: sa.Engine) -> None:
    """Keys of articles stored before canonical_url spelled a path's bytes one way: the
    migration's SQL re-keys each as the Python does, character for character; the
    article is then found, and written, under the key a link to it now gets."""
    sid = source_id(engine)
    bodies = [BODY.replace("编号", f"编号{n}号") for n in range(len(SPELLED_BEFORE_0019))]
    with engine.begin() as conn:
        load.upsert_articles(
            conn,
            sid,
            [dataclasses.replace(article(u, b), sentence_hashes=()) for u, b in
             zip(SPELLED_BEFORE_0019, bodies, strict=True)],
            NOW,
        )  # fmt: skip
    apply_migration(engine, 19)
    with engine.connect() as conn:
        stored = dict(conn.execute(sa.text("select url, canonical_url from articles")).all())
        hashes = dict(conn.execute(sa.text("select canonical_url, url_hash from articles")).all())
    assert stored == {u: normalize.canonical_url(u) for u in SPELLED_BEFORE_0019}
    assert all(bytes(hashes[key]) == normalize.url_hash(key) for key in stored.values())
    assert stored["https://example.com/新闻"] == "https://example.com/%E6%96%B0%E9%97%BB"
    with engine.begin() as conn:
        spelled = "https://example.com/%e6%96%b0%e9%97%bb"  # the third spelling
        found, _ = polling.seen_before(conn, {spelled: normalize.canonical_url(spelled)}, NOW)
        assert found == {spelled}
        again = article(normalize.canonical_url(spelled), bodies[0])
        written = load.upsert_articles(conn, sid, [again], NOW + timedelta(hours=1))
    assert written.inserted == 0
    assert count_articles(engine) == len(SPELLED_BEFORE_0019)


def count_articles(engine: sa.Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(sa.text("select count(*) from articles")).scalar_one())


def test_migration_0019_merges_a_page_stored_under_several_spellings(engine: sa.Engine) -> None:
    """One page stored under three spellings (the copy detection had seen two as copies
    of the first): one key holder, nothing deleted, one story (the others copies of its
    root, and a copy of the holder follows it there)."""
    sid = source_id(engine)
    other = BODY.replace("新闻事件", "体育比赛")
    urls = {
        "raw": "https://example.com/新闻",
        "lower": "https://example.com/%e6%96%b0%e9%97%bb",
        "upper": "https://example.com/%E6%96%B0%E9%97%BB",  # the new spelling already
        "copy": "https://example.com/copy",
    }
    ids = {}
    for name, body in [("raw", BODY), ("lower", BODY), ("upper", other), ("copy", other)]:
        with engine.begin() as conn:
            ids[name] = load.upsert_articles(
                conn, sid, [article(urls[name], body)], NOW
            ).article_ids[0]
    with engine.connect() as conn:
        before = dict(conn.execute(sa.text("select article_id, duplicate_of from articles")).all())
    assert before[ids["lower"]] == ids["raw"] and before[ids["copy"]] == ids["upper"]
    apply_migration(engine, 19)
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text("select article_id, canonical_url, duplicate_of from articles")
        ).all()
    by_id = {row.article_id: row for row in rows}
    assert len(rows) == 4
    assert by_id[ids["upper"]].canonical_url == urls["upper"]  # kept its key
    assert by_id[ids["raw"]].canonical_url == urls["raw"]  # old keys no link spells now
    assert by_id[ids["raw"]].duplicate_of is None  # the story's root: the first stored
    for name in ("lower", "upper", "copy"):
        assert by_id[ids[name]].duplicate_of == ids["raw"], name
    with engine.begin() as conn:
        again = article(normalize.canonical_url(urls["raw"]), other)  # now "upper"'s key
        written = load.upsert_articles(conn, sid, [again], NOW)
    assert written.inserted == 0 and count_articles(engine) == 4


def test_migration_0019_keeps_one_claim_per_source_and_new_key(engine: sa.Engine) -> None:
    """A feed's claims on another site's page under two spellings of its path: one is
    kept, the latest, under the key the page's links now get."""
    sid = source_id(engine)
    insert = sa.text(
        "insert into article_claims (source_id, url_hash, canonical_url, url, body_text,"
        " content_origin, first_claimed_at, updated_at)"
        " values (:sid, :hash, :url, :url, :text, 'feed_summary', :at, :at)"
    )
    spelled = [
        ("https://other.example/新闻", "较早"),
        ("https://other.example/%e6%96%b0%e9%97%bb", "较新"),
    ]
    with engine.begin() as conn:
        for hours, (url, text) in enumerate(spelled):
            at = NOW + timedelta(hours=hours)
            conn.execute(
                insert,
                {"sid": sid, "hash": normalize.url_hash(url), "url": url, "text": text, "at": at},
            )
    apply_migration(engine, 19)
    with engine.connect() as conn:
        claims = conn.execute(
            sa.text("select url_hash, canonical_url, body_text from article_claims")
        ).all()
    key = "https://other.example/%E6%96%B0%E9%97%BB"
    assert [(bytes(h), u, t) for h, u, t in claims] == [(normalize.url_hash(key), key, "较新")]


def test_a_batch_of_own_and_other_sites_stored_pages_updates_only_its_own(
    engine: sa.Engine,
) -> None:
    """An aggregator (a) stored a page of b's site and one of c's; b refetches both,
    changed. b's own page is taken over, c's stays a's (linkQ's rule), and the two kinds
    are written after one lock of all the rows in key order (no deadlock between two
    writers taking them in two runs)."""
    with engine.begin() as conn:
        ids = load.sync_sources(
            conn,
            [
                Source(name="a", kind="feed", location="https://a.example/f"),
                Source(name="b", kind="feed", location="https://b.example/f"),
            ],
        )
        stored = [article(f"https://{site}.example/{n}") for n in range(3) for site in "bc"]
        load.upsert_articles(conn, ids["a"], stored, NOW)
    changed = [dataclasses.replace(a, title="改过的标题") for a in stored]
    with engine.begin() as conn:
        written = load.upsert_articles(
            conn, ids["b"], changed, NOW, own_site=site_of("https://b.example/f")
        )
        rows = conn.execute(
            sa.text("select canonical_url, source_id, title from articles order by 1")
        ).all()
    assert written.updated == 3
    for url, source, title in rows:
        mine = url.startswith("https://b.example/")
        assert (source, title) == ((ids["b"], "改过的标题") if mine else (ids["a"], "标题")), url
