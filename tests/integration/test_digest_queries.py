"""A digest reads its topics' stories in a few statements, not one per topic (7-11 s of
each recipient's digest at 3,000 topics): the same sections, stories and snippets as
reading them topic by topic, in as many statements for 40 topics as for 4; and its
spikes in as many statements for six as for one, each as an alert mail shows it; and who
is due in as many statements for twenty recipients as for four."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa

from mediamon.alerts.content import alert_mail, stories_between
from mediamon.alerts.digest import PERIODS, DueDigest, build_digest, due_digests
from mediamon.alerts.digest_mail import DigestBudget, TopicStories
from mediamon.db.queries import query
from mediamon.db.tables import alerts_table
from mediamon.topics.definitions import TopicSet
from mediamon.topics.file import parse_topics
from mediamon.topics.match import match_articles
from mediamon.topics.store import sync_topics
from tests.integration.test_alert_stages import ARTICLE_SQL, T0, add_source, article_row
from tests.integration.test_digests import OPTIONS
from tests.support.statements import sent_statements

NOW = T0 + timedelta(days=1, hours=8, minutes=3)


def many_topics(count: int) -> TopicSet:
    """``count`` topics of one daily recipient; a topic ``n`` has ``n % 4`` stories the
    day before NOW (none for every fourth), one of them late (dated the day before the
    period, first seen after the previous digest), and one syndicated copy."""
    text = "version: 1\ndefaults:\n  digest: {hour: 8, timezone: UTC}\ntopics:\n" + "".join(
        f"  - {{key: t{n:03d}, name: 话题{n}, terms: [词{n:03d}号],"
        f" recipients: [{{address: many@example.org, mode: daily}}]}}\n"
        for n in range(count)
    )
    return parse_topics(text, "topics.yaml")


def load_stories(engine: sa.Engine, topics: TopicSet) -> None:
    sync_topics(engine, topics)
    with engine.begin() as conn:
        wire, other = add_source(conn, "wire"), add_source(conn, "other")
        for n in range(len(topics)):
            for k in range(n % 4):
                root = conn.execute(
                    ARTICLE_SQL,
                    article_row(
                        wire,
                        f"https://wire.example/{n}/{k}",
                        f"标题{n}-{k} 词{n:03d}号" if k == 0 else f"标题{n}-{k}",
                        f"今天的新闻提到了词{n:03d}号，第{k}篇。" * (k + 1),
                        T0 + timedelta(hours=9, minutes=n % 50 + k),
                    ),
                ).scalar_one()
            if n % 4:
                conn.execute(
                    ARTICLE_SQL,
                    article_row(
                        other,
                        f"https://other.example/{n}",
                        f"转载 {n}",
                        f"转载：今天的新闻提到了词{n:03d}号。",
                        T0 + timedelta(hours=10),
                        duplicate_of=root,
                    ),
                )
                conn.execute(  # late: of the day before, seen after the last digest
                    ARTICLE_SQL,
                    article_row(
                        wire,
                        f"https://wire.example/{n}/late",
                        f"迟到 {n}",
                        f"迟到的新闻提到了词{n:03d}号。",
                        T0 - timedelta(hours=3),
                        first_seen_at=T0 + timedelta(hours=12),
                    ),
                )
    match_articles(engine, topics)


def topic_by_topic(conn: sa.Connection, plan: DueDigest, topics: TopicSet) -> list[TopicStories]:
    """The sections as build_digest made them before: one stories_between per topic."""
    budget = DigestBudget()
    sections = []
    for key in plan.topics:
        topic = topics.get(key)
        stories = stories_between(
            conn,
            key,
            topic,
            plan.period_start,
            plan.period_end,
            late_since=plan.late_since,
            late_from=plan.late_from or plan.period_start - PERIODS[plan.cadence],
            listed=plan.late_listed,
            exclude=plan.mailed,
            snippets=budget.most_in_full(),
        )
        budget.take(len(stories))
        if stories:
            assert topic is not None
            sections.append(
                TopicStories(key, topic.name, tuple(stories), topic.terms, topic.exclude)
            )
    return sections


def test_a_digests_sections_are_those_read_topic_by_topic(engine: sa.Engine) -> None:
    topics = many_topics(60)  # 45 topics with stories: past the budget of 40 in full
    load_stories(engine, topics)
    (plan,) = due_digests(engine, topics, NOW, OPTIONS)
    with engine.connect() as conn:
        late_ids = conn.execute(
            sa.text("select article_id from articles where url like '%/late' order by 1")
        ).scalars().all()  # fmt: skip
        some = conn.execute(
            sa.text("select article_id from articles where url like '%/0' order by 1 limit 5")
        ).scalars().all()  # fmt: skip
    plans = [
        plan,
        # a previous digest that listed half the late stories; two stories mailed by a
        # digest of another cadence
        replace(
            plan,
            late_since=T0 + timedelta(hours=8),
            late_from=T0 - timedelta(days=1),
            late_listed=tuple(late_ids[::2]),
            mailed=frozenset(some[:2]),
        ),
        # one recorded without its list: late are those seen after it
        replace(plan, late_since=T0 + timedelta(hours=8), late_from=T0 - timedelta(days=1)),
        # a topic no longer in the file, and one twice
        replace(plan, topics=("gone", *plan.topics[:3], plan.topics[1])),
    ]
    for each in plans:
        with engine.connect() as conn:
            built = build_digest(conn, each, topics)
            expected = topic_by_topic(conn, each, topics)
        assert list(built.topics) == expected
    assert sum(s.snippet is not None for t in expected for s in t.stories) > 0


def test_a_digest_reads_as_many_statements_for_many_topics_as_for_few(
    engine: sa.Engine,
) -> None:
    topics = many_topics(40)
    load_stories(engine, topics)
    (plan,) = due_digests(engine, topics, NOW, OPTIONS)
    made = []
    for keys in (plan.topics[:4], plan.topics):
        with engine.connect() as conn, sent_statements(engine) as statements:
            built = build_digest(conn, replace(plan, topics=keys), topics)
        assert built.topics
        made.append(len(statements))
    assert made[0] == made[1], made


def test_the_previous_digests_stories_are_left_out_through_a_hash_for_all_topics(
    engine: sa.Engine,
) -> None:
    """As for one topic (test_digests): `<> all(listed)` compared every late story with
    every listed id; the plan holds for a digest's 3,000 topics too."""
    now = T0
    params = {
        "topics": [f"t{n:03d}" for n in range(3_000)],
        "start": now - timedelta(days=1),
        "end": now,
        "late_since": now - timedelta(days=1),
        "late_from": now - timedelta(days=2),
        "listed": list(range(1, 1001)),
    }
    with engine.connect() as conn:
        plan = "\n".join(
            row[0]
            for row in conn.execute(sa.text(f"explain {query('topic_stories').text}"), params)
        )
    assert "hashed SubPlan" in plan, plan


def add_alerts(engine: sa.Engine, keys: list[str]) -> None:
    """An alert of each topic, windows ending an hour apart in the digest's period (two of
    the first topic); baseline weeks of 1, 12, none given (the topic's) in turn."""
    weeks: list[dict[str, Any]] = [{"baseline_weeks": 1}, {"baseline_weeks": 12}, {}]
    with engine.begin() as conn:
        for n, key in enumerate([keys[0], *keys]):
            end = T0 + timedelta(hours=10 + n)
            conn.execute(
                sa.insert(alerts_table).values(
                    dedupe_key=f"{key}-{n}",
                    topic=key,
                    topic_version="v1",
                    window_start=end - timedelta(hours=2),
                    window_end=end,
                    observed=3 + n,
                    expected=0.5,
                    lift=6.0,
                    score=4.0,
                    p_value=0.001,
                    total_stories=40,
                    details={"params": weeks[n % 3]},
                    state="notified",
                    last_window_end=end,
                    peak_observed=3 + n,
                    created_at=end,
                )
            )


def test_a_digests_spikes_are_read_in_as_many_statements_for_six_as_for_one(
    engine: sa.Engine,
) -> None:
    """Each spike was read by itself, its row and its chart's counts: 2 statements a
    spike (a weekly digest of 30 spikes, 60). Now the same mails, charts included, in two."""
    topics = many_topics(8)
    load_stories(engine, topics)
    (plan,) = due_digests(engine, topics, NOW, OPTIONS)
    keys = [k for k in plan.topics if int(k[1:]) % 4][:5]
    add_alerts(engine, keys)
    a = alerts_table.c
    shown = ((keys[1], T0, T0 + timedelta(hours=12)),)  # its spike mailed elsewhere
    with engine.connect() as conn:
        by_one = [
            alert_mail(conn, alert_id, topics.get(key), with_stories=False)
            for alert_id, key in conn.execute(
                sa.select(a.alert_id, a.topic)
                .where(a.topic != keys[1])
                .order_by(a.window_end.desc(), a.alert_id.desc())
            )
        ]
        together = build_digest(conn, replace(plan, spikes_shown=shown), topics).spikes
    assert list(together) == by_one and len(by_one) == 5
    assert sum(sum(s.chart.counts) for s in together) > 0
    assert {s.chart.baseline_weeks for s in together} == {1, 12, 4}
    made = []
    for alerting in (keys[:1], keys):
        with engine.connect() as conn, sent_statements(engine) as statements:
            built = build_digest(conn, replace(plan, topics=tuple(alerting)), topics)
        made.append((len(built.spikes), len(statements)))
    assert [spikes for spikes, _ in made] == [2, 6]
    assert made[0][1] == made[1][1], made  # 7 and 15 before


def recipients_topics(count: int, only: int | None = None) -> TopicSet:
    """A topic for each of ``count`` recipients, daily at 08:00 UTC (``only``: that
    recipient's alone)."""
    text = "version: 1\ndefaults:\n  digest: {hour: 8, timezone: UTC}\ntopics:\n" + "".join(
        f"  - {{key: r{n:03d}, name: 话题{n}, terms: [词{n:03d}号],"
        f" recipients: [{{address: r{n:03d}@example.org, mode: daily}}]}}\n"
        for n in range(count)
        if only in (None, n)
    )
    return parse_topics(text, "topics.yaml")


def add_histories(engine: sa.Engine, count: int) -> None:
    """Recipient n's digests so far, by n % 3: none; yesterday's daily one (caught up
    from); a weekly one ended 12 hours ago (the other cadence: its stories and spikes left out).
    Recipient 3 has a weekly one recorded without its list (before migration 0012), and
    every recipient a daily one stamped while the clock ran a year ahead."""
    end = NOW.replace(hour=8, minute=0)
    ahead = datetime.now(UTC).replace(microsecond=0) + timedelta(days=365)
    insert = sa.text(
        "insert into digest_deliveries (recipient, cadence, period_start, period_end, status,"
        " stories, topics, sent_at, selected_at, story_ids)"
        " values (:r, :c, :s, :e, 'sent', 1, :t, :e, :e, :ids)"
    )
    with engine.begin() as conn:
        for n in range(count):
            rows: list[tuple[str, datetime, datetime, list[int] | None]] = [
                ("daily", ahead, ahead + timedelta(days=1), [900 + n])
            ]
            if n % 3 == 1:
                rows.append(("daily", end - timedelta(days=2), end - timedelta(days=1), [n]))
            elif n % 3 == 2:
                rows.append(
                    ("weekly", end - timedelta(days=7, hours=12), end - timedelta(hours=12), [n])
                )
            if n == 3:
                rows.append(
                    ("weekly", end - timedelta(days=7, hours=12), end - timedelta(hours=12), None)
                )
            for cadence, start, stop, ids in rows:
                conn.execute(
                    insert,
                    {"r": f"r{n:03d}@example.org", "c": cadence, "s": start, "e": stop,
                     "t": [f"r{n:03d}"], "ids": ids},
                )  # fmt: skip


def test_due_digests_reads_as_many_statements_for_twenty_recipients_as_for_four(
    engine: sa.Engine,
) -> None:
    """Each recipient and cadence read its digests so far in 1-4 statements of its own
    (1,000 recipients, 4,000 statements a run); now every recipient's in one, the one
    recorded without its list in one more, and the topics they left (mail_subscriptions)
    in a third. The plans are those each recipient gets alone."""
    topics = recipients_topics(20)
    load_stories(engine, topics)  # stories, so the digest without a list finds some again
    add_histories(engine, 20)
    made = []
    for count in (4, 20):
        with sent_statements(engine) as statements:
            plans = due_digests(engine, recipients_topics(count), NOW, OPTIONS)
        made.append(len(statements))
    assert made[0] == made[1] == 3, made
    alone = [
        p for n in range(20) for p in due_digests(engine, recipients_topics(20, n), NOW, OPTIONS)
    ]
    assert plans == alone and len(plans) == 20
    assert {bool(p.mailed) for p in plans} == {True}  # the year-ahead digests' stories
    assert sum(p.late_since is not None for p in plans) == 14  # caught up, other cadence
    assert sum(bool(p.spikes_shown) for p in plans) == 7  # the weekly ones' topics
    # the year-ahead digest's story; the weekly one's; the unlisted one's found again
    assert [len(p.mailed) for p in plans[:4]] == [1, 1, 2, 5]
