"""Topics in a real PostgreSQL: definitions, mentions, counts, alerts and mail delivery."""

from __future__ import annotations

import email
import hashlib
import smtplib
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.policy import default as default_policy
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import sqlalchemy as sa

from mediamon import db, service
from mediamon.alerts.catalog import number
from mediamon.alerts.deliver import DELIVERY_LOCK_KEY, DeliveryError, deliver_pending
from mediamon.alerts.smtp import connection_settings, smtp_sender
from mediamon.db.engine import session_lock
from mediamon.models import Article
from mediamon.settings import DEFAULT_CONFIG_DIR, Settings
from mediamon.spikes.counts import hourly_counts, hourly_totals
from mediamon.spikes.detect import assess_topics, detect
from mediamon.text import fold
from mediamon.topics.definitions import Recipient, TopicSet
from mediamon.topics.file import load_topics, parse_topics
from mediamon.topics.match import MATCH_LOCK_KEY, match_articles
from mediamon.topics.store import refresh_topics, stored_topics, sync_topics
from tests.support.smtp_server import Picky, Sink, free_port, serve_smtp, smtp_send

T0 = datetime(2024, 3, 4, tzinfo=UTC)  # a Monday; background runs five weeks before it
BURST_HOUR = T0 + timedelta(hours=10)
AT = BURST_HOUR + timedelta(hours=1)
EVIL = "<script>alert('x')</script>台湾突发"

TOPICS_YAML = """\
version: 1
defaults:
  thresholds: {min_stories: 4, min_lift: 2.0, max_p_value: 0.0001, cooldown_hours: 6}
  digest: {hour: 8, timezone: UTC}
  recipients:
    - {address: desk@example.org, mode: immediate}
    - {address: duty@example.org, mode: immediate}
    - {address: editors@example.org, mode: digest}
topics:
  - key: taiwan
    name: 台湾
    terms: [台湾, Taiwan]
  - key: export-controls
    name: 出口管制
    terms: [出口管制, 出口管理, (限制|管制) NEAR/8 出口]
    recipients: [{address: trade@example.org, mode: immediate}]
"""


# --- fixtures and helpers -----------------------------------------------------------------


@pytest.fixture()
def topics(engine: sa.Engine) -> TopicSet:
    parsed = parse_topics(TOPICS_YAML, "topics.yaml")
    sync_topics(engine, parsed)
    return parsed


def add_source(conn: sa.Connection, name: str, language: str = "zh") -> int:
    return int(
        conn.execute(
            sa.text(
                "insert into sources (name, kind, location, language, poll_interval)"
                " values (:n, 'feed', :loc, :lang, interval '15 minutes') returning source_id"
            ),
            {"n": name, "loc": f"https://{name}.example/feed", "lang": language},
        ).scalar_one()
    )


ARTICLE_SQL = sa.text(
    "insert into articles (url_hash, canonical_url, url, source_id, title, published_at,"
    " first_seen_at, language, body_text, match_text, content_origin, content_hash,"
    " duplicate_of)"
    " values (:url_hash, :url, :url, :source_id, :title, :published_at, :first_seen_at,"
    " :language, :body, :match_text, 'page', :content_hash, :duplicate_of)"
    " returning article_id"
)


def article_row(
    source_id: int,
    url: str,
    title: str | None,
    body: str,
    published_at: datetime | None,
    *,
    first_seen_at: datetime | None = None,
    language: str = "zh",
    duplicate_of: int | None = None,
) -> dict[str, Any]:
    seen = first_seen_at or (published_at or T0) + timedelta(minutes=5)
    return {
        "url_hash": hashlib.sha256(url.encode()).digest(),
        "url": url,
        "source_id": source_id,
        "title": title,
        "published_at": published_at,
        "first_seen_at": seen,
        "language": language,
        "body": body,
        "match_text": fold(body),
        "content_hash": hashlib.sha256(body.encode()).digest(),
        "duplicate_of": duplicate_of,
    }


def add_article(conn: sa.Connection, **row: Any) -> int:
    return int(conn.execute(ARTICLE_SQL, article_row(**row)).scalar_one())


def add_background(engine: sa.Engine, *, weeks: int = 5, seed: int = 3) -> dict[str, int]:
    """Five weeks of hourly news up to the burst hour: ~8 stories an hour, of which
    ~0.6 mention 台湾 (Poisson)."""
    rng = np.random.default_rng(seed)
    rows: list[dict[str, Any]] = []
    with engine.begin() as conn:
        ids = {"rfi": add_source(conn, "rfi"), "cna": add_source(conn, "cna")}
        hour = BURST_HOUR - timedelta(weeks=weeks)
        n = 0
        while hour < BURST_HOUR:
            for i in range(int(rng.poisson(8))):
                n += 1
                rows.append(
                    article_row(
                        ids["rfi" if i % 2 else "cna"],
                        f"https://news.example/{n}",
                        f"经济新闻 {n}",
                        f"今日股市消息 {n}。央行维持利率。",
                        hour + timedelta(minutes=int(rng.integers(0, 60))),
                    )
                )
            for _ in range(int(rng.poisson(0.6))):
                n += 1
                rows.append(
                    article_row(
                        ids["cna"],
                        f"https://news.example/{n}",
                        f"两岸新闻 {n}",
                        f"台湾方面今日表示 {n}。",
                        hour + timedelta(minutes=int(rng.integers(0, 60))),
                    )
                )
            hour += timedelta(hours=1)
        conn.execute(ARTICLE_SQL, rows)
    return ids


def add_burst(
    engine: sa.Engine,
    ids: dict[str, int],
    hour: datetime,
    stories: int = 10,
    copies: int = 3,
    tag: str = "b",
) -> list[int]:
    """A burst of 台湾 stories in ``hour`` (the first with syndicated copies), plus the
    hour's usual other news."""
    made = []
    with engine.begin() as conn:
        for i in range(stories):
            made.append(
                add_article(
                    conn,
                    source_id=ids["cna"],
                    url=f"https://burst.example/{tag}{i}",
                    title=EVIL if i == 0 else f"台湾局势 {tag}{i}",
                    body=f"台湾海峡紧张。台湾 {tag}{i}。",
                    published_at=hour + timedelta(minutes=5 + i),
                )
            )
        for c in range(copies):
            add_article(
                conn,
                source_id=ids["rfi"],
                url=f"https://copy.example/{tag}{c}",
                title=f"转载：台湾局势 {tag}0",
                body=f"台湾海峡紧张。台湾 {tag}0。转载 {c}",
                published_at=hour + timedelta(minutes=30 + c),
                duplicate_of=made[0],
            )
        for i in range(8):
            add_article(
                conn,
                source_id=ids["rfi"],
                url=f"https://news.example/{tag}-other-{i}",
                title=f"经济新闻 {tag}{i}",
                body=f"今日股市消息 {tag}{i}。",
                published_at=hour + timedelta(minutes=2 * i),
            )
    return made


def alert_on_burst(engine: sa.Engine, topics: TopicSet) -> list[int]:
    """Background news, a burst at BURST_HOUR, matched and detected at AT: the ids of
    the alerts that opened."""
    ids = add_background(engine)
    add_burst(engine, ids, BURST_HOUR)
    match_articles(engine, topics)
    return detect(engine, topics, AT)


def add_quiet_hour(engine: sa.Engine, ids: dict[str, int], hour: datetime, tag: str) -> None:
    with engine.begin() as conn:
        for i in range(8):
            add_article(
                conn,
                source_id=ids["rfi"],
                url=f"https://news.example/{tag}-quiet-{i}",
                title=f"经济新闻 {tag}{i}",
                body=f"今日股市消息 {tag}{i}。",
                published_at=hour + timedelta(minutes=3 * i),
            )


def scalar(engine: sa.Engine, sql: str, **params: Any) -> Any:
    with engine.connect() as conn:
        return conn.execute(sa.text(sql), params).scalar()


def rows(engine: sa.Engine, sql: str, **params: Any) -> list[Any]:
    with engine.connect() as conn:
        return list(conn.execute(sa.text(sql), params).all())


# --- topics and mentions ------------------------------------------------------------------


def test_seed_article_counts_for_both_default_topics(
    engine: sa.Engine, built_seed: Article
) -> None:
    article = built_seed
    assert article is not None and article.published_at is not None
    defaults = load_topics(DEFAULT_CONFIG_DIR / "topics.yaml")
    sync_topics(engine, defaults)
    with engine.begin() as conn:
        source = add_source(conn, "rfi-archive")
        conn.execute(
            ARTICLE_SQL,
            {
                **article_row(
                    source,
                    article.canonical_url,
                    article.title,
                    article.body_text,
                    article.published_at,
                    first_seen_at=datetime(2024, 4, 3, tzinfo=UTC),
                ),
                "match_text": article.match_text,
            },
        )
    stats = match_articles(engine, defaults)
    assert stats.articles == 1
    found = rows(engine, "select topic, title_hits, body_hits from mentions order by topic")
    assert found == [("export-controls", 0, 5), ("taiwan", 1, 8)]
    hour = datetime(2024, 4, 2, 20, tzinfo=UTC)  # published 20:45 UTC
    with engine.connect() as conn:
        counts = hourly_counts(conn, ["taiwan", "export-controls"], hour, hour + timedelta(hours=1))
    assert counts == {"taiwan": {hour: 1}, "export-controls": {hour: 1}}
    named = rows(
        engine, "select topic_name, stories, total_stories from bi.topic_hourly order by topic_name"
    )
    assert named == [("出口管制", 1, 1), ("台湾", 1, 1)]


def test_variants_match_in_the_database(engine: sa.Engine, topics: TopicSet) -> None:
    with engine.begin() as conn:
        source = add_source(conn, "cna")
        add_article(
            conn,
            source_id=source,
            url="https://a.example/1",
            title="臺灣總統就職",
            body="新聞內容。",
            published_at=T0,
        )
        add_article(
            conn,
            source_id=source,
            url="https://a.example/2",
            title=None,
            body="ＴＡＩＷＡＮ ｓｔｒａｉｔ",
            published_at=T0,
        )
        add_article(
            conn,
            source_id=source,
            url="https://a.example/3",
            title="天氣",
            body="今日晴。",
            published_at=T0,
        )
    match_articles(engine, topics)
    assert rows(
        engine,
        "select a.url, m.title_hits, m.body_hits from mentions m"
        " join articles a using (article_id) order by a.url",
    ) == [
        ("https://a.example/1", 1, 0),
        ("https://a.example/2", 0, 1),
    ]


def test_duplicates_count_once_at_the_roots_hour(engine: sa.Engine, topics: TopicSet) -> None:
    with engine.begin() as conn:
        source = add_source(conn, "cna")
        other = add_source(conn, "rfi")
        root = add_article(
            conn,
            source_id=source,
            url="https://a.example/root",
            title="台湾",
            body="台湾新闻",
            published_at=T0 + timedelta(minutes=50),
        )
        for i in range(3):  # syndicated copies, published in the next hours
            add_article(
                conn,
                source_id=other,
                url=f"https://b.example/{i}",
                title="台湾",
                body="台湾新闻 转载",
                published_at=T0 + timedelta(hours=1 + i),
                duplicate_of=root,
            )
    match_articles(engine, topics)
    assert scalar(engine, "select count(*) from mentions") == 4
    with engine.connect() as conn:
        counts = hourly_counts(conn, ["taiwan"], T0, T0 + timedelta(hours=6))
        totals = hourly_totals(conn, T0, T0 + timedelta(hours=6))
    assert counts == {"taiwan": {T0: 1}}
    assert totals == [(T0, "cna", "zh", 1)]
    assert scalar(engine, "select count(distinct story_id) from bi.topic_mentions") == 1


def test_changed_rules_rematch_past_articles(engine: sa.Engine, tmp_path: Path) -> None:
    path = tmp_path / "topics.yaml"
    path.write_text(TOPICS_YAML, encoding="utf-8")
    first = refresh_topics(engine, path)
    assert set(first.changed) == set(first.rematch) == {"taiwan", "export-controls"}
    with engine.begin() as conn:
        source = add_source(conn, "cna")
        add_article(
            conn,
            source_id=source,
            url="https://a.example/1",
            title=None,
            body="台海局势紧张",
            published_at=T0,
        )
        add_article(
            conn,
            source_id=source,
            url="https://a.example/2",
            title=None,
            body="台湾选举",
            published_at=T0,
        )
    match_articles(engine, first.topics)
    assert scalar(engine, "select count(*) from mentions where topic = 'taiwan'") == 1

    # A threshold change is a new version, but matching stays as it is.
    path.write_text(TOPICS_YAML.replace("min_lift: 2.0", "min_lift: 3.0"), encoding="utf-8")
    second = refresh_topics(engine, path)
    assert set(second.changed) == {"taiwan", "export-controls"} and second.rematch == ()
    assert match_articles(engine, second.topics).full_rematch == []

    # A new term re-matches every past article of that topic.
    edited = TOPICS_YAML.replace("min_lift: 2.0", "min_lift: 3.0").replace(
        "terms: [台湾, Taiwan]", "terms: [台湾, Taiwan, 台海]"
    )
    path.write_text(edited, encoding="utf-8")
    third = refresh_topics(engine, path)
    assert third.rematch == ("taiwan",)
    stats = match_articles(engine, third.topics)
    assert stats.full_rematch == ["taiwan"]
    assert scalar(engine, "select count(*) from mentions where topic = 'taiwan'") == 2
    new_version = third.topics.get("taiwan").match_version  # type: ignore[union-attr]
    assert rows(engine, "select distinct match_version from mentions") == [(new_version,)]
    assert scalar(engine, "select count(*) from topic_versions where topic = 'taiwan'") == 3

    # Removing the term removes the mention it made.
    path.write_text(TOPICS_YAML, encoding="utf-8")
    fourth = refresh_topics(engine, path)
    match_articles(engine, fourth.topics)
    assert scalar(engine, "select count(*) from mentions where topic = 'taiwan'") == 1


def test_two_rematches_under_different_rules_at_once_lose_no_mention(
    engine: sa.Engine, database_url: str
) -> None:
    # Before: the file edited twice while a full re-match ran; a second run re-matched
    # under the newer rules beside the first, the first (finishing) deleted the second's
    # fresh mentions as "old rules", and the second marked the topic matched: 549 stories
    # matched, 283 to 327 kept their mention, the rest lost for good (incremental runs
    # only look at changed rows), so counts, spikes and digests missed them.
    add_background(engine, weeks=5)
    with engine.begin() as conn:  # stored long ago: incremental runs skip them
        conn.execute(sa.text("update articles set updated_at = now() - interval '1 day'"))
    topic = "version: 1\ntopics:\n  - {{key: taiwan, name: 台湾, terms: [{}]}}\n"
    old, first, second = (
        parse_topics(topic.format(terms), "topics.yaml")
        for terms in ("台湾方面", "台湾, 两岸", "台湾, 两岸新闻")
    )
    sync_topics(engine, old)
    match_articles(engine, old)
    sync_topics(engine, first)
    version = first.get("taiwan").match_version  # type: ignore[union-attr]
    errors: list[str] = []

    def rematch(topics: TopicSet) -> None:
        own = db.make_engine(database_url)  # its own connections, like another process
        try:
            if topics is second:
                sync_topics(own, second)  # the file changed again
            # The second in smaller batches: it stays behind the first, which ends first.
            match_articles(own, topics, batch_size=50 if topics is first else 20)
        except Exception as error:  # noqa: BLE001 - the test shows it
            errors.append(repr(error))
        finally:
            own.dispose()

    running = threading.Thread(target=rematch, args=(first,))
    running.start()
    deadline = time.monotonic() + 30  # the first run is part-way through its pass
    while not scalar(engine, f"select count(*) from mentions where match_version = '{version}'"):
        assert time.monotonic() < deadline
        time.sleep(0.01)
    overlapping = threading.Thread(target=rematch, args=(second,))
    overlapping.start()
    running.join(120)
    overlapping.join(120)
    assert errors == []
    match_articles(engine, second)  # the next run
    after = scalar(engine, "select count(*) from mentions")
    with engine.begin() as conn:
        conn.execute(sa.text("update topics set matched_version = null"))
    match_articles(engine, second)  # every article against the rules in force
    assert after == scalar(engine, "select count(*) from mentions")


def test_a_topics_file_synced_again_while_a_run_waits_to_match_is_matched_not_a_crash(
    engine: sa.Engine, tmp_path: Path
) -> None:
    # Before: the run synced the file, the file was edited and synced by another run
    # before this one matched: ValueError `topic 'taiwan' is not synced: call sync_topics
    # first` (`alerts run` and `digest run` exited 2 with it, the task failed).
    path = tmp_path / "topics.yaml"
    path.write_text(TOPICS_YAML, encoding="utf-8")
    with engine.begin() as conn:
        source = add_source(conn, "cna")
        for n, body in enumerate(("台海局势紧张", "台湾选举")):
            add_article(
                conn, source_id=source, url=f"https://a.example/{n}", title=None, body=body,
                published_at=T0,
            )  # fmt: skip
    settings = Settings(
        database_url=engine.url.render_as_string(hide_password=False),
        sources_path=tmp_path / "sources.yaml",
        var_dir=tmp_path,
        topics_path=path,
    )
    outcome: list[object] = []

    def alerts_run_matching() -> None:
        try:
            outcome.append(service.match_topics(settings))
        except Exception as error:  # noqa: BLE001 - the test shows it
            outcome.append(repr(error))

    with session_lock(engine, MATCH_LOCK_KEY) as got:  # another run is matching
        assert got
        waiting = threading.Thread(target=alerts_run_matching)
        waiting.start()
        deadline = time.monotonic() + 30
        while not scalar(
            engine, "select count(*) from pg_stat_activity where wait_event = 'advisory'"
        ):
            assert time.monotonic() < deadline, outcome
            time.sleep(0.01)
        # Meanwhile the file gets a new term, and a third run syncs it.
        path.write_text(TOPICS_YAML.replace("[台湾, Taiwan]", "[台湾, Taiwan, 台海]"), "utf-8")
        refresh_topics(engine, path)
    waiting.join(60)
    assert isinstance(outcome[0], dict), outcome
    # Matched under the definition in force, the newer one: both articles.
    assert scalar(engine, "select count(*) from mentions where topic = 'taiwan'") == 2


def test_invalid_file_keeps_the_previous_definition(engine: sa.Engine, tmp_path: Path) -> None:
    path = tmp_path / "topics.yaml"
    path.write_text(TOPICS_YAML, encoding="utf-8")
    good = refresh_topics(engine, path)
    path.write_text(TOPICS_YAML.replace("terms: [台湾, Taiwan]", "terms: [台湾, Taiwan"), "utf-8")
    bad = refresh_topics(engine, path)
    assert bad.error is not None
    assert bad.error.startswith(f"{path}:") and "YAML syntax error" in bad.error
    assert [t.version for t in bad.topics] == [t.version for t in stored_topics(engine)]
    assert {t.key: t.version for t in bad.topics} == {t.key: t.version for t in good.topics}
    path.write_text(TOPICS_YAML.replace("Taiwan]", "Taiwan near/3 x]"), encoding="utf-8")
    still = refresh_topics(engine, path)
    assert still.error is not None and ":12: " in still.error and "capitals" in still.error
    assert scalar(engine, "select count(*) from topic_versions") == 2


def test_incremental_matching_follows_edits(engine: sa.Engine, topics: TopicSet) -> None:
    with engine.begin() as conn:
        source = add_source(conn, "cna")
        first = add_article(
            conn,
            source_id=source,
            url="https://a.example/1",
            title=None,
            body="台湾新闻",
            published_at=T0,
        )
    match_articles(engine, topics)
    with engine.begin() as conn:
        add_article(
            conn,
            source_id=source,
            url="https://a.example/2",
            title="Taiwan",
            body="news",
            published_at=T0,
        )
        conn.execute(
            sa.text(
                "update articles set body_text = 'x', match_text = 'x', updated_at = now()"
                " where article_id = :id"
            ),
            {"id": first},
        )
    stats = match_articles(engine, topics)
    assert stats.full_rematch == []
    assert rows(engine, "select a.url from mentions join articles a using (article_id)") == [
        ("https://a.example/2",)
    ]


# --- detection and alerts -----------------------------------------------------------------


def test_burst_alerts_once_and_rerun_creates_nothing(engine: sa.Engine, topics: TopicSet) -> None:
    ids = add_background(engine)
    add_burst(engine, ids, BURST_HOUR)
    match_articles(engine, topics)
    spikes = {s.topic: s for s in assess_topics(engine, topics, AT)}
    taiwan = spikes["taiwan"]
    assert taiwan.fired and taiwan.observed == 10  # ten stories; the copies count once
    assert taiwan.total_stories == 18
    assert not spikes["export-controls"].fired

    created = detect(engine, topics, AT + timedelta(minutes=7))  # any time in the hour
    assert len(created) == 1
    assert detect(engine, topics, AT) == []  # a retry or re-run
    assert detect(engine, topics, AT + timedelta(minutes=59)) == []
    alert = rows(
        engine,
        "select topic, observed, state, window_start, window_end, dedupe_key,"
        " details->'params'->>'min_stories' from alerts",
    )[0]
    assert alert == ("taiwan", 10, "open", BURST_HOUR, AT, "taiwan/2024-03-04T10:00Z/1h", "4")
    view = rows(engine, "select topic_name, observed, state, mails_sent from bi.alerts")
    assert view == [("台湾", 10, "open", 0)]


def test_quiet_hour_and_outage_do_not_alert(engine: sa.Engine, topics: TopicSet) -> None:
    ids = add_background(engine)
    add_quiet_hour(engine, ids, BURST_HOUR, "q")
    match_articles(engine, topics)
    assert detect(engine, topics, AT) == []
    # Next hour most sources are down, and the one left writes about Taiwan.
    with engine.begin() as conn:
        for i in range(2):
            add_article(
                conn,
                source_id=ids["cna"],
                url=f"https://o.example/{i}",
                title="台湾",
                body="台湾",
                published_at=AT + timedelta(minutes=i),
            )
    match_articles(engine, topics)
    outage = {s.topic: s for s in assess_topics(engine, topics, AT + timedelta(hours=1))}
    assert outage["taiwan"].status == "outage"
    assert detect(engine, topics, AT + timedelta(hours=1)) == []
    assert scalar(engine, "select count(*) from alerts") == 0


def test_cooldown_and_rearm(engine: sa.Engine, topics: TopicSet) -> None:
    ids = add_background(engine)
    add_burst(engine, ids, BURST_HOUR, tag="a")
    add_burst(engine, ids, BURST_HOUR + timedelta(hours=1), tag="b")  # still elevated
    add_quiet_hour(engine, ids, BURST_HOUR + timedelta(hours=2), "c")  # over: re-armed
    add_burst(engine, ids, BURST_HOUR + timedelta(hours=3), tag="d")  # inside the cooldown
    for h in range(4, 8):
        add_quiet_hour(engine, ids, BURST_HOUR + timedelta(hours=h), f"q{h}")
    add_burst(engine, ids, BURST_HOUR + timedelta(hours=8), tag="e")  # after the cooldown
    match_articles(engine, topics)
    created = [detect(engine, topics, AT + timedelta(hours=h)) for h in range(9)]
    assert [len(c) for c in created] == [1, 0, 0, 0, 0, 0, 0, 0, 1]
    episodes = rows(
        engine,
        "select window_end, last_window_end, peak_observed, cleared_at"
        " from alerts order by alert_id",
    )
    assert episodes[0] == (AT, AT + timedelta(hours=1), 10, AT + timedelta(hours=2))
    assert episodes[1][0] == AT + timedelta(hours=8) and episodes[1][3] is None


def test_delivery_sends_once_and_escapes(
    engine: sa.Engine, topics: TopicSet, smtp: tuple[Sink, int]
) -> None:
    sink, port = smtp
    [alert_id] = alert_on_burst(engine, topics)
    now = AT + timedelta(minutes=5)
    stats = deliver_pending(engine, smtp_send(port), now, sender="mediamon <alerts@example.org>")
    assert (stats.sent, stats.failed, stats.notified) == (2, 0, [alert_id])
    assert sorted(r for _, r, _ in sink.messages) == [["desk@example.org"], ["duty@example.org"]]
    message = email.message_from_bytes(sink.messages[0][2], policy=default_policy)
    expected = scalar(engine, "select expected from alerts")
    assert 0.3 < expected < 1.5  # ~0.6 stories an hour in the background
    assert message["Subject"] == (
        f"[mediamon] 台湾: 10 stories in 1 hour, about {number(10 / expected)}× the usual"
        f" {number(expected)}"
    )
    assert message["From"] == "mediamon <alerts@example.org>"
    assert message["X-Mediamon-Alert"] == str(alert_id)
    html_part = message.get_body(("html",))
    assert html_part is not None
    html_text = html_part.get_content()
    # Escaped, with the topic's term highlighted.
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;<mark" in html_text
    assert "<script" not in html_text
    assert 'href="https://burst.example/b0"' in html_text
    assert any(p.get_content_type() == "image/png" for p in message.walk())

    # A retry, a re-run of detection and another delivery send nothing new.
    assert detect(engine, topics, AT) == []
    again = deliver_pending(engine, smtp_send(port), now + timedelta(minutes=10))
    assert (again.sent, again.notified) == (0, [])
    assert len(sink.messages) == 2
    assert scalar(engine, "select state from alerts") == "notified"
    assert scalar(engine, "select mails_sent from bi.alerts") == 2


def test_an_overlapping_delivery_sends_nothing_and_the_next_sends_once(
    engine: sa.Engine, topics: TopicSet, smtp: tuple[Sink, int]
) -> None:
    sink, port = smtp
    alert_on_burst(engine, topics)
    now = AT + timedelta(minutes=5)
    with session_lock(engine, DELIVERY_LOCK_KEY) as got:  # another delivery is running
        assert got
        busy = deliver_pending(engine, smtp_send(port), now)
    assert busy.busy and busy.sent == 0 and sink.messages == []
    assert scalar(engine, "select state from alerts") == "open"
    after = deliver_pending(engine, smtp_send(port), now)  # the lock was released
    assert not after.busy and after.sent == 2 and len(sink.messages) == 2


def test_smtp_down_leaves_alert_pending_then_sends_once(
    engine: sa.Engine, topics: TopicSet, smtp: tuple[Sink, int]
) -> None:
    sink, port = smtp
    alert_on_burst(engine, topics)
    closed = free_port()  # nothing listens here: connection refused
    with pytest.raises(DeliveryError) as failure:
        deliver_pending(engine, smtp_send(closed), AT + timedelta(minutes=5))
    assert failure.value.stats.failed == 2 and failure.value.stats.sent == 0
    assert scalar(engine, "select state from alerts") == "open"
    assert scalar(engine, "select count(*) from alert_deliveries") == 0

    # Half-broken: the first recipient's mail goes through, the second fails.
    calls = {"n": 0}

    def flaky(message: EmailMessage) -> None:
        calls["n"] += 1
        if calls["n"] == 2:
            raise smtplib.SMTPServerDisconnected("lost")
        smtp_send(port)(message)

    with pytest.raises(DeliveryError):
        deliver_pending(engine, flaky, AT + timedelta(minutes=10))
    assert scalar(engine, "select state from alerts") == "open"
    assert len(sink.messages) == 1

    stats = deliver_pending(engine, smtp_send(port), AT + timedelta(minutes=15))
    assert stats.sent == 1 and stats.failed == 0
    assert sorted(r[0] for _, r, _ in sink.messages) == ["desk@example.org", "duty@example.org"]
    assert scalar(engine, "select state from alerts") == "notified"
    deliver_pending(engine, smtp_send(port), AT + timedelta(minutes=20))
    assert len(sink.messages) == 2


def test_an_alert_mailed_hours_after_it_was_raised_says_it_is_late(
    engine: sa.Engine, topics: TopicSet, smtp: tuple[Sink, int]
) -> None:
    """The mail server down for five hours, then back: the alert is mailed once, saying
    it is late (before: it read as news, "10 stories in the hour to 11:00" received at
    16:00, dated then). Older than a day it is not mailed (the test above and below)."""
    sink, port = smtp
    alert_on_burst(engine, topics)
    with pytest.raises(DeliveryError):  # the server down when the alert is raised
        deliver_pending(engine, smtp_send(free_port()), AT + timedelta(minutes=5))
    # Five hours and ten minutes pass (the alert's stored time is moved back by as much).
    with engine.begin() as conn:
        conn.execute(sa.text("update alerts set created_at = now() - interval '5 h 10 min'"))
        raised = conn.execute(sa.text("select created_at from alerts")).scalar_one()
    stats = deliver_pending(engine, smtp_send(port), AT + timedelta(hours=5, minutes=15))
    assert (stats.sent, stats.failed) == (2, 0)
    assert deliver_pending(engine, smtp_send(port), AT + timedelta(hours=5, minutes=30)).sent == 0
    assert len(sink.messages) == 2
    for _, recipients, raw in sink.messages:
        message = email.message_from_bytes(raw, policy=default_policy)
        assert isinstance(message, EmailMessage)
        assert str(message["Subject"]).endswith(" (sent 5 hours late)"), message["Subject"]
        plain = message.get_body(("plain",))
        assert isinstance(plain, EmailMessage)
        shown = raised.astimezone(UTC).strftime("%Y-%m-%d %H:%M")  # these readers' zone
        assert (
            f"Sent late: this alert was raised at {shown} (UTC+00:00) and could not be mailed"
            " until now, 5 hours later." in plain.get_content()
        ), recipients
        html_part = message.get_body(("html",))
        assert isinstance(html_part, EmailMessage)
        assert "Sent late: this alert was raised at" in html_part.get_content()


@contextmanager
def database_clock_behind(engine: sa.Engine, hours: int) -> Iterator[sa.Engine]:
    """An engine on the same database whose server clock runs ``hours`` behind this
    process's: its ``now()`` (schema ``clock_skew``, searched before pg_catalog) is
    PostgreSQL's own minus that much, as a database host with a wrong clock gives."""
    with engine.begin() as conn:
        conn.execute(sa.text("create schema if not exists clock_skew"))
        conn.execute(sa.text(
            "create or replace function clock_skew.now() returns timestamptz language sql"
            f" stable as $$ select pg_catalog.now() - interval '{int(hours)} hours' $$"
        ))  # fmt: skip
    skewed = sa.create_engine(
        engine.url,
        connect_args={
            "prepare_threshold": None,
            "options": "-c search_path=clock_skew,public,pg_catalog",
        },
    )
    try:
        yield skewed
    finally:
        skewed.dispose()
        with engine.begin() as conn:
            conn.execute(sa.text("drop schema clock_skew cascade"))


def test_an_alert_mailed_at_once_is_not_late_whatever_the_workers_clock(
    engine: sa.Engine, topics: TopicSet, smtp: tuple[Sink, int]
) -> None:
    """The database's clock three hours behind the worker's: the alert it stamps and the
    mail sent the same minute. Before: its age was the worker's clock minus the database's
    stamp, and the mail said "(sent 3 hours late)". Its age is now read on the clock that
    stamped it."""
    sink, port = smtp
    with database_clock_behind(engine, 3) as skewed:
        assert alert_on_burst(skewed, topics)
        stats = deliver_pending(skewed, smtp_send(port), AT + timedelta(minutes=5))
        raised = scalar(skewed, "select now() - created_at from alerts")
    assert stats.sent == 2 and raised < timedelta(minutes=1)
    for _, _, raw in sink.messages:
        message = email.message_from_bytes(raw, policy=default_policy)
        assert "late" not in str(message["Subject"]), message["Subject"]
        plain = message.get_body(("plain",))
        assert isinstance(plain, EmailMessage) and "Sent late" not in plain.get_content()


def test_an_address_the_mail_library_refuses_fails_its_mail_only(
    engine: sa.Engine, topics: TopicSet, smtp: tuple[Sink, int]
) -> None:
    # Stored before the topics file refused such addresses: an encoded word that the mail
    # library decodes into CR LF. Building its message raised out of the whole run, so
    # the recipients after it never got the alert, run after run.
    sink, port = smtp
    alert_on_burst(engine, topics)
    hostile = Recipient("=?utf-8?q?a=0D=0Abcc=3Aevil?=@example.org", "immediate")
    stored = TopicSet(tuple(replace(t, recipients=(hostile, *t.recipients)) for t in topics))
    with pytest.raises(DeliveryError) as failure:
        deliver_pending(engine, smtp_send(port), AT + timedelta(minutes=5), topics=stored)
    assert failure.value.stats.failed == 1 and failure.value.stats.sent == 2
    assert "=?utf-8?q?a=0D=0Abcc=3Aevil?=@example.org: ValueError" in failure.value.stats.errors[0]
    assert sorted(r[0] for _, r, _ in sink.messages) == ["desk@example.org", "duty@example.org"]


def test_backfilled_alerts_are_not_mailed_late(
    engine: sa.Engine, topics: TopicSet, smtp: tuple[Sink, int]
) -> None:
    sink, port = smtp
    alert_on_burst(engine, topics)
    stats = deliver_pending(engine, smtp_send(port), AT + timedelta(days=3))
    assert (stats.skipped, stats.sent) == (2, 0)  # digests still list it: test_digests.py
    assert sink.messages == []
    assert scalar(engine, "select state from alerts") == "notified"


def test_an_alert_pending_when_its_topic_is_removed_is_not_mailed(
    engine: sa.Engine, topics: TopicSet, smtp: tuple[Sink, int]
) -> None:
    """Before: an alert waiting for the SMTP server (down for hours) whose topic was then
    taken out of the topics file was mailed to the topic's former recipients once mail
    worked again, about a topic nobody followed any more, its "why you got it" pointing to
    a topics.yaml entry that no longer existed."""
    sink, port = smtp
    alert_on_burst(engine, topics)
    closed = free_port()  # nothing listens here: connection refused
    with pytest.raises(DeliveryError):
        deliver_pending(engine, smtp_send(closed), AT + timedelta(minutes=5))
    sync_topics(engine, TopicSet(tuple(t for t in topics if t.key != "taiwan")))
    stats = deliver_pending(engine, smtp_send(port), AT + timedelta(hours=3))
    assert (stats.sent, stats.skipped, stats.failed) == (0, 2, 0)
    assert sink.messages == []
    assert scalar(engine, "select state from alerts") == "notified"  # not pending for ever
    assert rows(engine, "select distinct status, note from alert_deliveries") == [
        ("skipped", "topic no longer in the topics file when due: not mailed")
    ]


def test_a_topic_renamed_to_a_new_key_does_not_alert_again_for_the_spike_it_mailed(
    engine: sa.Engine, topics: TopicSet, smtp: tuple[Sink, int]
) -> None:
    """`taiwan` renamed `taiwan-strait` in the topics file after its alert went out, its
    terms and recipients unchanged (before: the next run matched the past articles under
    the new key, found the same window a spike, and mailed both recipients the same
    "10 stories in 1 hour" again, as alert 2 of the same hour)."""
    sink, port = smtp
    alert_on_burst(engine, topics)
    deliver_pending(engine, smtp_send(port), AT + timedelta(minutes=5))
    assert len(sink.messages) == 2
    renamed = parse_topics(TOPICS_YAML.replace("key: taiwan", "key: taiwan-strait"), "t.yaml")
    sync_topics(engine, renamed)
    match_articles(engine, renamed)
    assert detect(engine, renamed, AT + timedelta(minutes=15)) == []
    stats = deliver_pending(engine, smtp_send(port), AT + timedelta(minutes=20), topics=renamed)
    assert (stats.sent, len(sink.messages)) == (0, 2)
    assert rows(engine, "select topic, state from bi.alerts") == [("taiwan", "resolved")]


@pytest.mark.parametrize("mailed", [True, False], ids=["notified", "mail-pending"])
def test_an_episode_open_when_its_topic_is_removed_ends_at_the_next_run(
    engine: sa.Engine, topics: TopicSet, smtp: tuple[Sink, int], mailed: bool
) -> None:
    """Before: a topic taken out of the topics file (or renamed) while its spike episode
    was open was never tested again, so nothing ended the episode: its alert stayed
    ``notified`` with no ``cleared_at`` in bi.alerts for good (or ``open``, then
    ``notified`` once its mail was skipped). The first detection run that finds the topic
    gone now ends the episode at its window, as a quiet window would."""
    sink, port = smtp
    [alert_id] = alert_on_burst(engine, topics)
    if mailed:
        deliver_pending(engine, smtp_send(port), AT + timedelta(minutes=5))
    remaining = TopicSet(tuple(t for t in topics if t.key != "taiwan"))
    episode = "select state, cleared_at, resolved_at from bi.alerts where alert_id = :a"
    # a caller testing some topics only ends nothing of the others
    assert detect(engine, remaining, AT + timedelta(minutes=30)) == []
    assert rows(engine, episode, a=alert_id) == [("notified" if mailed else "open", None, None)]

    sync_topics(engine, remaining)
    later = AT + timedelta(hours=2, minutes=7)
    assert detect(engine, remaining, later) == []
    ended = AT + timedelta(hours=2)  # the window that run tested
    assert rows(engine, episode, a=alert_id) == [
        ("resolved", ended, ended) if mailed else ("open", ended, None)
    ]
    if not mailed:  # its mail is skipped (nobody follows the topic) and it is resolved
        stats = deliver_pending(engine, smtp_send(port), later)
        assert (stats.sent, stats.skipped) == (0, 2) and sink.messages == []
        assert rows(engine, episode, a=alert_id) == [("resolved", ended, later)]
    before = rows(engine, "select * from alerts")
    assert detect(engine, remaining, later + timedelta(hours=1)) == []  # later runs: as is
    assert detect(engine, remaining, AT) == []  # an earlier run executed again: as is
    assert rows(engine, "select * from alerts") == before


# --- BI -----------------------------------------------------------------------------------


def test_bi_views_and_role(engine: sa.Engine, topics: TopicSet) -> None:
    with engine.begin() as conn:
        source = add_source(conn, "cna")
        add_article(
            conn,
            source_id=source,
            url="https://a.example/1",
            title="台湾",
            body="台湾",
            published_at=T0 + timedelta(minutes=10),
        )
        add_article(
            conn,
            source_id=source,
            url="https://a.example/2",
            title="x",
            body="y",
            published_at=T0 + timedelta(minutes=20),
        )
        conn.execute(
            sa.text(
                "insert into fetch_log (run_key, source_id, url, kind, fetched_at, status, error)"
                " values ('r1', :s, 'https://cna.example/feed', 'feed', now() - interval '1 hour',"
                " 200, null), ('r2', :s, 'https://cna.example/feed', 'feed',"
                " now() - interval '10 minutes', 503, 'HTTP 503')"
            ),
            {"s": source},
        )
    match_articles(engine, topics)
    assert rows(
        engine, "select topic, hour, stories, total_stories from bi.topic_hourly order by topic"
    ) == [("export-controls", T0, 0, 2), ("taiwan", T0, 1, 2)]
    health = rows(
        engine,
        "select source, fetches_24h, errors_24h, error_rate_24h,"
        " last_success < last_fetch from bi.source_health",
    )
    assert health == [("cna", 2, 1, 0.5, True)]
    assert scalar(engine, "select count(*) from bi.topic_source_hourly") == 1
    for view in ("topic_mentions", "topic_hourly", "alerts", "source_health", "articles"):
        assert scalar(engine, f"select has_table_privilege('mediamon_bi', 'bi.{view}', 'select')")
    assert not scalar(
        engine, "select has_table_privilege('mediamon_bi', 'public.articles', 'select')"
    )
    assert scalar(engine, "select has_schema_privilege('mediamon_bi', 'bi', 'usage')")


def test_run_alerts_end_to_end(engine: sa.Engine, tmp_path: Path, smtp: tuple[Sink, int]) -> None:
    sink, port = smtp
    path = tmp_path / "topics.yaml"
    path.write_text(TOPICS_YAML, encoding="utf-8")
    refresh_topics(engine, path)
    ids = add_background(engine)
    add_burst(engine, ids, BURST_HOUR)
    settings = Settings(
        database_url=engine.url.render_as_string(hide_password=False),
        sources_path=tmp_path / "sources.yaml",
        var_dir=tmp_path,
        topics_path=path,
    )
    dry = service.run_alerts(settings, AT, dry_run=True)
    assert dry["dry_run"] and scalar(engine, "select count(*) from alerts") == 0
    summary = service.run_alerts(settings, AT, send=smtp_send(port))
    assert len(summary["alerts_created"]) == 1
    assert summary["delivery"]["sent"] == 2
    repeat = service.run_alerts(settings, AT, send=smtp_send(port))
    assert repeat["alerts_created"] == [] and repeat["delivery"]["sent"] == 0
    assert len(sink.messages) == 2


class _RudeGoodbye(Sink):
    """Accepts every message, then answers QUIT with an error, as some relays and
    proxies do when they close the session first."""

    async def handle_QUIT(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        return "421 4.3.2 closing, see you"


def test_a_mail_accepted_before_a_failed_goodbye_is_sent_and_not_sent_again(
    engine: sa.Engine, topics: TopicSet
) -> None:
    # Before: the server's 250 for the message was followed by a 421 to QUIT; smtplib's
    # `with` block raised it, the mail counted as not sent, and every run mailed the
    # alert again (3 runs, 6 mails to 2 recipients) while it stayed open.
    alert_on_burst(engine, topics)
    sink = _RudeGoodbye()
    with serve_smtp(sink) as port:
        fields = {"host": "127.0.0.1", "port": port, "extra": {"disable_ssl": True,
                  "disable_tls": True}}  # fmt: skip
        send = smtp_sender(connection_settings(fields))
        errors = []
        for minutes in (5, 10, 15):
            try:
                deliver_pending(engine, send, AT + timedelta(minutes=minutes))
            except DeliveryError as error:
                errors.append(str(error))
    assert sorted(r[0] for _, r, _ in sink.messages) == ["desk@example.org", "duty@example.org"]
    assert errors == []
    assert scalar(engine, "select state from alerts") == "notified"


def test_a_recipient_refused_for_good_is_recorded_and_one_refused_for_now_is_mailed_later(
    engine: sa.Engine, topics: TopicSet
) -> None:
    """A server answering RCPT TO with 550 (no such mailbox) for one recipient and 451
    (try later) for another. Before: both were left pending alike, so every run (each
    ingest cycle) asked the server about the dead mailbox again and failed, the alert stayed
    open and its other recipients' task red until it went stale a day later. Now the 5xx
    one is recorded `refused` with the server's answer and never tried again; the 4xx one
    is mailed by the next run; nobody gets the alert twice."""
    alert_on_burst(engine, topics)
    gone, busy = "gone@example.org", "busy@example.org"
    extra = (Recipient(gone, "immediate"), Recipient(busy, "immediate"))
    stored = TopicSet(tuple(replace(t, recipients=(*t.recipients, *extra)) for t in topics))
    sink = Picky(
        {gone: "550 5.1.1 <gone@example.org>: no such mailbox", busy: "451 4.2.0 try later"},
        tries_left={busy: 1},
    )
    with serve_smtp(sink) as port:
        fields = {"host": "127.0.0.1", "port": port, "extra": {"disable_ssl": True,
                  "disable_tls": True}}  # fmt: skip
        send = smtp_sender(connection_settings(fields))
        with pytest.raises(DeliveryError) as first:
            deliver_pending(engine, send, AT + timedelta(minutes=5), topics=stored)
        assert (first.value.stats.sent, first.value.stats.failed) == (2, 1)
        assert first.value.stats.refused == 1
        assert any("gone@example.org: refused for good: 550" in e for e in first.value.stats.errors)
        assert scalar(engine, "select state from alerts") == "open"  # busy@ is still due
        later = deliver_pending(engine, send, AT + timedelta(minutes=20), topics=stored)
        assert (later.sent, later.failed, later.refused) == (1, 0, 0)
        again = deliver_pending(engine, send, AT + timedelta(minutes=35), topics=stored)
        assert (again.sent, again.failed, again.refused) == (0, 0, 0)
    delivered = sorted(r[0] for _, r, _ in sink.messages)
    assert delivered == [busy, "desk@example.org", "duty@example.org"]  # each once
    assert sink.asked[gone] == 1  # never asked again
    assert scalar(engine, "select state from alerts") == "notified"
    assert rows(
        engine, "select recipient, status, note from alert_deliveries order by recipient"
    ) == [
        (busy, "sent", None),
        ("desk@example.org", "sent", None),
        ("duty@example.org", "sent", None),
        (gone, "refused", "refused for good: 550 5.1.1 <gone@example.org>: no such mailbox"),
    ]


def test_the_dry_run_says_which_alerts_were_mailed_and_which_would_be(
    engine: sa.Engine, tmp_path: Path, smtp: tuple[Sink, int]
) -> None:
    """`alerts run --dry-run` showed "status": "spike" for the window of an alert mailed
    already, the same as for one about to be mailed. It says what the run would do."""
    sink, port = smtp
    path = tmp_path / "topics.yaml"
    path.write_text(TOPICS_YAML, encoding="utf-8")
    refresh_topics(engine, path)
    add_burst(engine, add_background(engine), BURST_HOUR)
    settings = Settings(
        database_url=engine.url.render_as_string(hide_password=False),
        sources_path=tmp_path / "sources.yaml",
        var_dir=tmp_path,
        topics_path=path,
    )
    service.match_topics(settings)

    def taiwan(summary: dict[str, Any]) -> dict[str, Any]:
        (window,) = [w for w in summary["windows"] if w["topic"] == "taiwan"]
        return window

    new = taiwan(service.run_alerts(settings, AT, dry_run=True))
    assert (new["status"], new["decision"], new["alert_id"], new["mail"]) == (
        "spike", "open", None, "would_send",
    )  # fmt: skip
    assert new["would_mail_to"] == ["desk@example.org", "duty@example.org"]

    # The server refuses desk@ for now (4xx): the alert is mailed to duty@ and stays pending.
    def send(message: EmailMessage) -> None:
        if message["To"] == "desk@example.org":
            raise smtplib.SMTPRecipientsRefused({"desk@example.org": (451, b"try later")})
        smtp_send(port)(message)

    with pytest.raises(DeliveryError):
        service.run_alerts(settings, AT, send=send)
    (alert_id,) = [r[0] for r in rows(engine, "select alert_id from alerts")]
    dry = service.run_alerts(settings, AT, dry_run=True)
    half = taiwan(dry)
    assert (half["status"], half["decision"], half["alert_id"], half["mail"]) == (
        "spike", "recorded", alert_id, "would_send",
    )  # fmt: skip
    assert (half["mailed_to"], half["would_mail_to"]) == (
        ["duty@example.org"],
        ["desk@example.org"],
    )
    assert [(p["alert_id"], p["mail"]) for p in dry["pending"]] == [(alert_id, "would_send")]

    service.run_alerts(settings, AT, send=smtp_send(port))
    dry = service.run_alerts(settings, AT, dry_run=True)
    done = taiwan(dry)
    assert (done["status"], done["decision"], done["alert_id"], done["mail"]) == (
        "spike", "recorded", alert_id, "sent",
    )  # fmt: skip
    assert (done["mailed_to"], done["would_mail_to"]) == (
        ["desk@example.org", "duty@example.org"], [],
    )  # fmt: skip
    assert dry["pending"] == []
    assert len(sink.messages) == 2
