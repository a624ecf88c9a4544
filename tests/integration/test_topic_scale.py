"""Many topics (500–3,000: what Media Cloud and Google Alerts power users track) in a
real PostgreSQL: syncing the topics file and matching cost a few statements per run,
not some per topic."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from mediamon.topics import definitions
from mediamon.topics.definitions import TopicConfigError, TopicSet, topic_from_dict
from mediamon.topics.match import match_articles
from mediamon.topics.rules import parse_rule
from mediamon.topics.store import refresh_topics, stored_topics, sync_topics
from tests.integration.test_alert_stages import ARTICLE_SQL, T0, add_source, article_row, rows
from tests.support.cpu import least_cpu
from tests.support.statements import sent_statements


def many_topics(count: int, edited: frozenset[int] = frozenset()) -> TopicSet:
    return TopicSet(
        tuple(
            topic_from_dict({
                "key": f"t{n:04d}",
                "name": f"话题{n}",
                "terms": [f"词{n:04d}号" if n not in edited else f"新词{n:04d}号"],
            })
            for n in range(count)
        )
    )  # fmt: skip


def test_syncing_and_matching_many_topics_costs_a_few_statements_not_some_per_topic(
    engine: sa.Engine,
) -> None:
    """Before, a sync upserted each new or changed topic, and kept its version, one
    statement each (a first sync of 3,000 topics, or any change of every topic's version:
    6,000 round trips, 15 s), and each match run marked each topic matched one statement
    at a time (3,000 a run, new articles or not), the topics re-matched one delete each.
    Now each is one statement for all topics; what is stored is the same."""
    with engine.begin() as conn:
        source = add_source(conn, "wire")
        for n in (0, 1, 599):
            conn.execute(
                ARTICLE_SQL,
                article_row(source, f"https://wire.example/{n}", None, f"提到词{n:04d}号。", T0),
            )
    counts = {}
    for count in (6, 600):
        with engine.begin() as conn:
            conn.execute(sa.text("truncate topics, topic_versions, mentions cascade"))
        topics = many_topics(count)
        with sent_statements(engine) as synced:
            refresh = sync_topics(engine, topics)
        assert len(refresh.changed) == len(refresh.rematch) == count
        with sent_statements(engine) as matched:
            stats = match_articles(engine, topics)
        assert stats.full_rematch == topics.keys()
        counts[count] = (len(synced), len(matched))
    assert counts[600][0] <= counts[6][0] + 2, counts  # before: 1,201 against 13
    assert counts[600][1] <= counts[6][1] + 2, counts  # before: 1,209 against 21
    assert rows(engine, "select topic, title_hits, body_hits from mentions order by 1") == [
        ("t0000", 0, 1), ("t0001", 0, 1), ("t0599", 0, 1),
    ]  # fmt: skip
    assert rows(
        engine, "select count(*), count(matched_version), count(matched_through) from topics"
    ) == [(600, 600, 600)]
    assert rows(engine, "select count(*) from topic_versions") == [(600,)]

    # Two topics' rules edited: their mentions under the old rules dropped, counted.
    edited = many_topics(600, frozenset({0, 599}))
    refresh = sync_topics(engine, edited)
    assert refresh.rematch == ("t0000", "t0599")
    with sent_statements(engine) as rematched:
        stats = match_articles(engine, edited)
    assert (stats.full_rematch, stats.removed) == (["t0000", "t0599"], 2)
    assert len(rematched) <= counts[6][1] + 5, rematched  # and the incremental pass
    assert rows(engine, "select topic from mentions") == [("t0001",)]
    assert rows(engine, "select count(*) from topic_versions") == [(602,)]
    assert rows(
        engine,
        "select count(*) from topics where matched_version = match_version"
        " and definition->>'terms' like '%新词%'",
    ) == [(2,)]


def test_a_first_match_of_thousands_of_topics_costs_cpu_in_proportion(engine: sa.Engine) -> None:
    """Which topics to match incrementally was found by looking each topic up in the
    list of those to match in full, comparing whole topics field by field: a first sync
    of 3,000 topics (or a matcher revision: every topic re-matched) cost 4.5 million
    comparisons, seconds of CPU before any article was read. Now 3,000 topics cost about
    ten times what 300 do, not 33."""
    topics = many_topics(3_000)
    sync_topics(engine, topics)
    few = TopicSet(topics.topics[:300])

    def first_match(chosen: TopicSet) -> None:
        with engine.begin() as conn:
            conn.execute(sa.text("update topics set matched_version = null"))
        stats = match_articles(engine, chosen)
        assert len(stats.full_rematch) == len(chosen)

    first_match(few)  # warm up (statement caches, connections)
    baseline = least_cpu(lambda: first_match(few))
    seconds = least_cpu(lambda: first_match(topics))
    assert seconds < 12 * baseline + 0.1, (seconds, baseline)  # before: 33 times, 1.8 s


def test_reading_the_stored_topics_compiles_only_the_rules_used(
    engine: sa.Engine, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Detection and delivery read the stored topics every cycle and use the thresholds
    and recipients of each, the rules of few or none; every rule was compiled at each
    read (3,000 topics: 15,000 rules, three quarters of the read's 0.5-0.7 s). Now a rule
    is compiled on first use, except where the stored topics are matched next (a rejected
    topics file), where a rule that no longer compiles fails the read itself."""
    sync_topics(engine, many_topics(50))
    compiled: list[str] = []

    def counting(text: str) -> Any:
        compiled.append(text)
        return parse_rule(text)  # the real compiler: this only counts its calls

    monkeypatch.setattr(definitions, "parse_rule", counting)
    stored = stored_topics(engine)
    assert len(stored) == 50 and compiled == []
    topic = stored.get("t0007")
    assert topic is not None and [r.canonical() for r in topic.rules] == [
        parse_rule("词0007号").canonical()
    ]
    assert compiled == ["词0007号"]
    compiled.clear()
    assert len(stored_topics(engine, compile_rules=True)) == 50 and len(compiled) == 50

    with engine.begin() as conn:  # a stored rule the compiler no longer accepts
        conn.execute(
            sa.text(
                "update topics set definition = jsonb_set(definition, '{terms}', '[\"\"]')"
                " where topic = 't0003'"
            )
        )
    assert len(stored_topics(engine)) == 50  # nothing compiled, nothing refused
    with pytest.raises(TopicConfigError, match="stored topic definition is invalid"):
        stored_topics(engine, compile_rules=True)
    rejected = tmp_path / "topics.yaml"
    rejected.write_text("version: 1\ntopics: [", encoding="utf-8")
    with pytest.raises(TopicConfigError, match="stored topic definition is invalid"):
        refresh_topics(engine, rejected)  # matched next: refused before matching
