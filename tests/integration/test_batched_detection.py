"""Detection reads the alerts of every tested window in a few statements: the same
alerts as testing the topics one by one, and a number of statements that does not grow
with the topics (three to four a topic took most of each hourly run at 3,000 topics)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from mediamon import service
from mediamon.settings import Settings
from mediamon.spikes.detect import assess_topics, detect, outlook
from mediamon.topics.definitions import TopicSet
from mediamon.topics.file import parse_topics
from mediamon.topics.match import match_articles
from mediamon.topics.store import sync_topics
from tests.integration.test_alert_stages import (
    AT,
    BURST_HOUR,
    TOPICS_YAML,
    add_background,
    add_burst,
    add_quiet_hour,
)
from tests.support.statements import sent_statements

# Beside the two topics of test_alert_stages: one renamed (`taiwan` as `strait`, its
# old key's alert holds the cooldown), one whose words no article has (no counts), one
# added after the first run (new), and more of each for the batch.
MORE_TOPICS = """\
  - key: nothing-{n}
    name: nothing {n}
    terms: [无人提及{n}]
  - key: isle-{n}
    name: isle {n}
    terms: [台湾海峡, 无关{n}]
"""


def topics_file(renamed: bool, new: bool, copies: int = 3) -> TopicSet:
    text = TOPICS_YAML.replace("key: taiwan", "key: strait") if renamed else TOPICS_YAML
    text += "".join(MORE_TOPICS.format(n=n) for n in range(copies))
    if new:
        text += "  - key: late\n    name: late\n    terms: [台湾局势]\n"
    return parse_topics(text, "topics.yaml")


def alert_rows(engine: sa.Engine) -> list[tuple[Any, ...]]:
    with engine.connect() as conn:
        return [
            tuple(row)
            for row in conn.execute(
                sa.text(
                    "select topic, window_end, state, last_window_end, peak_observed,"
                    " cleared_at, observed, dedupe_key from alerts order by topic, window_end"
                )
            )
        ]


def run_history(engine: sa.Engine, one_by_one: bool) -> list[tuple[Any, ...]]:
    """Bursts, a quiet hour, a rename and a new topic, detected hour by hour: together, or
    one topic at a time (each its own call, so each reads only its own alerts)."""
    ids = add_background(engine)
    add_burst(engine, ids, BURST_HOUR, tag="a0")
    add_burst(engine, ids, BURST_HOUR + timedelta(hours=1), tag="a1")
    add_quiet_hour(engine, ids, BURST_HOUR + timedelta(hours=2), "c")
    add_burst(engine, ids, BURST_HOUR + timedelta(hours=3), tag="a2")
    for hour in range(5):
        topics = topics_file(renamed=hour >= 2, new=hour >= 3)
        sync_topics(engine, topics)
        match_articles(engine, topics)
        at = AT + timedelta(hours=hour, minutes=7)
        if one_by_one:
            for topic in topics:
                detect(engine, TopicSet((topic,)), at)
        else:
            detect(engine, topics, at)
    return alert_rows(engine)


def test_detection_of_all_topics_at_once_records_what_one_by_one_does(
    engine: sa.Engine,
) -> None:
    together = run_history(engine, one_by_one=False)
    with engine.begin() as conn:  # as the engine fixture empties it
        tables = conn.execute(
            sa.text(
                "select quote_ident(tablename) from pg_tables"
                " where schemaname = 'public' and tablename <> 'schema_migrations'"
            )
        ).scalars()
        conn.execute(sa.text(f"truncate {', '.join(tables)} restart identity cascade"))
    alone = run_history(engine, one_by_one=True)
    assert together == alone
    topics_alerted = {row[0] for row in together}
    assert {"taiwan", "isle-0"} <= topics_alerted  # spikes opened: the test tests something
    assert "strait" not in topics_alerted  # the renamed key: held by its old key's alert
    assert not any(row[0].startswith("nothing") for row in together)


def test_detection_reads_the_alerts_in_statements_that_do_not_grow_with_the_topics(
    engine: sa.Engine,
) -> None:
    ids = add_background(engine, weeks=5)
    add_burst(engine, ids, BURST_HOUR, tag="a0")
    few, many = topics_file(False, False, copies=1), topics_file(False, False, copies=20)
    sync_topics(engine, many)
    match_articles(engine, many)
    made = []
    for topics in (few, many):
        with engine.begin() as conn:
            conn.execute(sa.text("delete from alerts"))
        with sent_statements(engine) as statements:
            detect(engine, topics, AT)
        made.append(len(statements))
    # Each alert opened is one insert; the reads are the same few for 4 or 42 topics.
    with engine.connect() as conn:
        opened = conn.execute(sa.text("select count(*) from alerts")).scalar_one()
    assert opened >= 2
    assert made[1] - made[0] <= opened, made


def test_the_dry_run_outlook_reads_as_detection_decides(engine: sa.Engine) -> None:
    ids = add_background(engine)
    add_burst(engine, ids, BURST_HOUR, tag="a0")
    topics = topics_file(False, False)
    sync_topics(engine, topics)
    match_articles(engine, topics)
    spikes = assess_topics(engine, topics, AT)
    with engine.connect() as conn:
        before = {s.topic: outlook(conn, s, topics.get(s.topic)) for s in spikes}  # type: ignore[arg-type]
    created = detect(engine, topics, AT)
    with engine.connect() as conn:
        after = {s.topic: outlook(conn, s, topics.get(s.topic)) for s in spikes}  # type: ignore[arg-type]
    assert sum(o.decision == "open" for o in before.values()) == len(created) >= 2
    assert {o.alert_id for o in after.values() if o.decision == "recorded"} == set(created)


def test_the_dry_run_reads_the_alerts_in_statements_that_do_not_grow_with_the_topics(
    engine: sa.Engine, tmp_path: Path
) -> None:
    ids = add_background(engine, weeks=5)
    add_burst(engine, ids, BURST_HOUR, tag="a0")
    made = []
    for copies in (1, 20):
        path = tmp_path / f"topics-{copies}.yaml"
        path.write_text(
            TOPICS_YAML + "".join(MORE_TOPICS.format(n=n) for n in range(copies)), "utf-8"
        )
        settings = Settings(
            database_url=engine.url.render_as_string(hide_password=False),
            sources_path=tmp_path / "sources.yaml",
            var_dir=tmp_path,
            topics_path=path,
        )
        service.match_topics(settings)
        with sent_statements(sa.engine.Engine) as statements:  # the dry run's own engine
            dry = service.run_alerts(settings, AT, dry_run=True)
        assert len(dry["windows"]) == 2 + 2 * copies
        made.append(len(statements))
    assert made[0] == made[1], made
