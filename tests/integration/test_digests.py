"""Digests in a real PostgreSQL, mailed to a real SMTP server: every new story of the
period once, grouped by topic, spikes on top, once per recipient and period."""

from __future__ import annotations

import email
import itertools
import json
import re
from datetime import UTC, datetime, time, timedelta
from email.message import EmailMessage
from email.policy import default as default_policy
from email.utils import parsedate_to_datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa

from mediamon.alerts.compose import MailOptions
from mediamon.alerts.content import stories_between
from mediamon.alerts.deliver import deliver_pending
from mediamon.alerts.digest import (
    DigestError,
    build_digest,
    due_digests,
    latest_digest_time,
    run_digests,
)
from mediamon.alerts.digest_mail import DIGEST_FULL_STORIES, DIGEST_STORIES, DIGEST_TOPIC_STORIES
from mediamon.alerts.smtp import connection_settings, smtp_sender
from mediamon.alerts.stories import TOP_STORIES, rank_stories
from mediamon.db.queries import query
from mediamon.models import Article
from mediamon.settings import DEFAULT_CONFIG_DIR
from mediamon.topics.definitions import TopicSet
from mediamon.topics.file import load_topics, parse_topics
from mediamon.topics.match import match_articles
from mediamon.topics.store import sync_topics
from tests.integration.test_alert_stages import (
    ARTICLE_SQL,
    T0,
    add_source,
    alert_on_burst,
    article_row,
    rows,
    scalar,
)
from tests.support.browser import ARTIFACTS, Chromium, mail_html_file
from tests.support.smtp_server import Answering, Picky, Sink, free_port, serve_smtp, smtp_send

OPTIONS = MailOptions(timezone="Asia/Shanghai", unsubscribe_address="leave@mediamon.example")
TOPICS_YAML = """\
version: 1
defaults:
  thresholds: {min_stories: 4, min_lift: 2.0, max_p_value: 0.0001, cooldown_hours: 6}
  digest: {hour: 8, timezone: UTC}
topics:
  - key: taiwan
    name: 台湾
    terms: [台湾, Taiwan]
    recipients:
      - {address: desk@example.org, mode: immediate}
      - {address: editors@example.org, mode: daily, locale: zh-CN}
      - {address: weekly@example.org, mode: weekly, digest_weekday: monday, locale: en}
  - key: export-controls
    name: 出口管制
    terms: [出口管制, (限制|管制) NEAR/8 出口]
    recipients:
      - {address: editors@example.org, mode: daily, locale: zh-CN}
"""
STORY_TIME = "least(coalesce(r.published_at, r.first_seen_at), r.first_seen_at)"


def received(sink: Sink) -> dict[str, EmailMessage]:
    found = {}
    for _, recipients, raw in sink.messages:
        message = email.message_from_bytes(raw, policy=default_policy)
        assert isinstance(message, EmailMessage)
        found[recipients[0]] = message
    return found


def parsed(raw: bytes) -> EmailMessage:
    message = email.message_from_bytes(raw, policy=default_policy)
    assert isinstance(message, EmailMessage)
    return message


def html_of(message: EmailMessage) -> str:
    part = message.get_body(("html",))
    assert part is not None
    return str(part.get_content())


def text_of(message: EmailMessage) -> str:
    part = message.get_body(("plain",))
    assert part is not None
    return str(part.get_content())


def story_ids_between(engine: sa.Engine, topic: str, start: datetime, end: datetime) -> list[int]:
    return sorted(
        r[0]
        for r in rows(
            engine,
            "select distinct r.article_id from mentions m"
            " join articles a on a.article_id = m.article_id"
            " join articles r on r.article_id = coalesce(a.duplicate_of, a.article_id)"
            f" where m.topic = :topic and {STORY_TIME} >= :start and {STORY_TIME} < :end",
            topic=topic,
            start=start,
            end=end,
        )
    )


def listed_ids(html_text: str) -> list[int]:
    return sorted(int(i) for i in re.findall(r'data-story="(\d+)"', html_text))


def look_in_chromium(message: EmailMessage, name: str) -> None:
    """No horizontal scrolling at phone and desktop widths; screenshots for people."""
    with Chromium() as browser:
        for width in (390, 1280):
            page_file = mail_html_file(message, ARTIFACTS / f"{name}-{width}.html")
            page = browser.open(page_file.as_uri(), width=width)
            scroll, client = page.evaluate(
                "[document.documentElement.scrollWidth, document.documentElement.clientWidth]"
            )
            page.screenshot(ARTIFACTS / f"{name}-{width}.png")
            assert scroll <= client <= width


def test_latest_digest_time_is_local_and_weekly() -> None:
    paris = ZoneInfo("Europe/Paris")
    # 2024-03-31: clocks go forward in Paris; the digest stays at 08:00 local.
    before, after = datetime(2024, 3, 30, 9, tzinfo=UTC), datetime(2024, 3, 31, 9, tzinfo=UTC)
    assert latest_digest_time(before, "daily", 8, 0, paris) == datetime(2024, 3, 30, 7, tzinfo=UTC)
    assert latest_digest_time(after, "daily", 8, 0, paris) == datetime(2024, 3, 31, 6, tzinfo=UTC)
    # Before 08:00 local, the latest digest time is yesterday's.
    early = datetime(2024, 3, 30, 6, 59, tzinfo=UTC)
    assert latest_digest_time(early, "daily", 8, 0, paris) == datetime(2024, 3, 29, 7, tzinfo=UTC)
    # Weekly on Monday (0): from Wednesday 2024-04-17 back to Monday 2024-04-15.
    wednesday = datetime(2024, 4, 17, 12, tzinfo=UTC)
    shanghai = ZoneInfo("Asia/Shanghai")
    assert latest_digest_time(wednesday, "weekly", 8, 0, shanghai) == datetime(
        2024, 4, 15, 0, tzinfo=UTC
    )


@pytest.fixture()
def topics(engine: sa.Engine) -> TopicSet:
    parsed = parse_topics(TOPICS_YAML, "topics.yaml")
    sync_topics(engine, parsed)
    return parsed


def test_digest_lists_every_new_story_once_per_period(engine: sa.Engine, topics: TopicSet) -> None:
    alert_on_burst(engine, topics)  # five weeks of news, a burst at BURST_HOUR, an alert
    now = T0 + timedelta(days=1, hours=8, minutes=3)  # Tuesday 08:03 UTC
    sink = Sink()
    with serve_smtp(sink) as port:
        stats = run_digests(
            engine, topics, now, smtp_send(port), sender="m@example.org", options=OPTIONS
        )
        assert (stats.sent, stats.failed) == (2, 0)
        mails = received(sink)
        assert sorted(mails) == ["editors@example.org", "weekly@example.org"]

        daily = mails["editors@example.org"]
        period = (T0 + timedelta(hours=8), T0 + timedelta(days=1, hours=8))
        expected = story_ids_between(engine, "taiwan", *period)
        assert len(expected) >= 10  # the burst (the background ends with it)
        html_text = html_of(daily)
        assert listed_ids(html_text) == expected  # every story of the period, once
        assert daily["Subject"] == (
            f"[mediamon] 每日摘要 2024-03-05：{len(expected)} 篇新报道（台湾）"
        )
        assert daily["List-Unsubscribe"] == (
            "<mailto:leave@mediamon.example?subject=unsubscribe%20digest-daily%20"
            "editors%40example.org>"
        )
        assert daily["List-Id"] == "mediamon digest-daily <digest-daily.mediamon.mediamon.example>"
        # The spike of the period on top, with its chart; then the topic's stories.
        assert html_text.index("本期报道高峰") < html_text.index('class="topic"')
        assert sum(p.get_content_type() == "image/png" for p in daily.walk()) == 1
        assert "2024-03-04 08:00 (UTC+00:00) 至 2024-03-05 08:00 (UTC+00:00)" in text_of(daily)

        look_in_chromium(daily, "digest-daily")
        weekly = mails["weekly@example.org"]  # Monday 08:00 UTC: the week before the burst
        week = (T0 + timedelta(days=-7, hours=8), T0 + timedelta(hours=8))
        # The week's busiest topic is cut at the digest's cap, the rest counted.
        with engine.connect() as conn:
            ranked = [s.story_id for s in stories_between(conn, "taiwan", None, *week)]
        assert sorted(ranked) == story_ids_between(engine, "taiwan", *week)
        assert len(ranked) > DIGEST_TOPIC_STORIES
        assert listed_ids(html_of(weekly)) == sorted(ranked[:DIGEST_TOPIC_STORIES])
        assert f"{len(ranked) - DIGEST_TOPIC_STORIES} more stories are not listed here." in (
            text_of(weekly)
        )
        assert weekly["Subject"].startswith("[mediamon] Weekly digest 02-26–03-04: ")

        # A second run for the same periods sends nothing.
        again = run_digests(
            engine, topics, now + timedelta(minutes=30), smtp_send(port),
            sender="m@example.org", options=OPTIONS,
        )  # fmt: skip
        assert (again.due, again.sent) == (0, 0)
        assert len(sink.messages) == 2

        # The next day nothing is new (the data ends at the burst): nothing is sent.
        quiet = run_digests(
            engine, topics, now + timedelta(days=1), smtp_send(port),
            sender="m@example.org", options=OPTIONS,
        )  # fmt: skip
        assert (quiet.due, quiet.sent, quiet.empty) == (1, 0, 1)
        assert len(sink.messages) == 2
    assert rows(
        engine, "select recipient, cadence, status from digest_deliveries order by period_end, 1"
    ) == [
        ("weekly@example.org", "weekly", "sent"),
        ("editors@example.org", "daily", "sent"),
        ("editors@example.org", "daily", "empty"),
    ]


def test_a_digest_made_while_the_clock_ran_ahead_holds_back_no_later_digest(
    engine: sa.Engine, topics: TopicSet
) -> None:
    """Before: a digest run while the clock was a year ahead (a bad NTP step, a VM
    restored) recorded its period, empty, and every run after the clock was set right
    took it for the latest digest: nothing was mailed, for a year. What such a digest
    mailed is not mailed again."""
    alert_on_burst(engine, topics)
    ahead = datetime.now(UTC) + timedelta(days=365)
    now = T0 + timedelta(days=1, hours=8, minutes=3)  # the clock set right: Tuesday 08:03
    sink = Sink()
    with serve_smtp(sink) as port:
        early = run_digests(
            engine, topics, ahead, smtp_send(port), sender="m@example.org", options=OPTIONS
        )
        assert (early.sent, early.empty) == (0, 2)  # no news a year on
        period = (T0 + timedelta(hours=8), T0 + timedelta(days=1, hours=8))
        stories = story_ids_between(engine, "taiwan", *period)
        with engine.begin() as conn:  # one sent with the clock an hour ahead, of 3 stories
            conn.execute(
                sa.text(
                    "insert into digest_deliveries (recipient, cadence, period_start,"
                    " period_end, status, stories, topics, sent_at, story_ids)"
                    " values ('editors@example.org', 'daily', :start, :end, 'sent', 3,"
                    " '{taiwan}', :end, :ids)"
                ),
                {"start": ahead - timedelta(days=2), "end": ahead - timedelta(days=1),
                 "ids": stories[:3]},
            )  # fmt: skip
        stats = run_digests(
            engine, topics, now, smtp_send(port), sender="m@example.org", options=OPTIONS
        )
        assert (stats.sent, stats.failed) == (2, 0)
        daily = received(sink)["editors@example.org"]
    assert listed_ids(html_of(daily)) == stories[3:]  # nothing mailed twice


def test_only_the_top_stories_are_given_a_snippet(engine: sa.Engine, topics: TopicSet) -> None:
    """Mails show a snippet for their top stories only; a busy week's thousands of other
    bodies are not read (the whole window's were, 50,000 characters each)."""
    alert_on_burst(engine, topics)
    everything = (datetime(2000, 1, 1, tzinfo=UTC), datetime(2100, 1, 1, tzinfo=UTC))
    with engine.connect() as conn:
        stories = stories_between(conn, "taiwan", topics.get("taiwan"), *everything)
    assert [s.story_id for s in stories] == [s.story_id for s in rank_stories(stories)], (
        "still ranked"
    )
    assert sorted(s.story_id for s in stories) == story_ids_between(engine, "taiwan", *everything)
    assert len(stories) > TOP_STORIES
    for story in stories[:TOP_STORIES]:
        assert story.snippet is not None and "台湾" in story.snippet.hits, story
    assert all(story.snippet is None for story in stories[TOP_STORIES:])


def test_a_digest_of_many_topics_cuts_snippets_only_for_the_stories_it_lists(
    engine: sa.Engine,
) -> None:
    """A digest lists DIGEST_STORIES stories at most, DIGEST_FULL_STORIES of them in full
    with a snippet; a topic after that budget shows its count and link only. Before,
    every topic's top stories were cut from their bodies all the same: a recipient of
    1,000 topics had 5,000 bodies read and cut, 5 s of the digest's 8 (3,000 topics: 15 s
    per recipient, each run). Now only those it shows in full."""
    count = DIGEST_STORIES // 3 + 20  # three stories each: the budget ends at topic 67
    yaml_text = "version: 1\ndefaults:\n  digest: {hour: 8, timezone: UTC}\ntopics:\n" + "".join(
        f"  - {{key: t{n:03d}, name: 话题{n}, terms: [词{n:03d}号],"
        f" recipients: [{{address: many@example.org, mode: daily}}]}}\n"
        for n in range(count)
    )
    topics = parse_topics(yaml_text, "topics.yaml")
    sync_topics(engine, topics)
    with engine.begin() as conn:
        source = add_source(conn, "wire")
        for n in range(count):
            for k in range(3):
                conn.execute(
                    ARTICLE_SQL,
                    article_row(
                        source, f"https://wire.example/{n}/{k}", f"标题{n}-{k}",
                        f"今天的新闻提到了词{n:03d}号，第{k}篇。",
                        T0 + timedelta(hours=9, minutes=n % 50 + k),
                    ),
                )  # fmt: skip
    match_articles(engine, topics)
    now = T0 + timedelta(days=1, hours=8, minutes=3)
    (plan,) = due_digests(engine, topics, now, OPTIONS)
    with engine.connect() as conn:
        digest = build_digest(conn, plan, topics)
    assert [t.topic_key for t in digest.topics] == topics.keys()  # every topic, 3 stories
    for index, section in enumerate(digest.topics):  # 40 in full: 13 topics and one
        in_full = max(0, min(3, DIGEST_FULL_STORIES - 3 * index))
        snipped = [s.snippet is not None for s in section.stories]
        assert snipped == [True] * in_full + [False] * (3 - in_full), section.topic_key
    sink = Sink()
    with serve_smtp(sink) as port:
        stats = run_digests(
            engine, topics, now, smtp_send(port), sender="m@example.org", options=OPTIONS
        )
    assert (stats.sent, stats.stories) == (1, 3 * count)
    html_text = html_of(received(sink)["many@example.org"])
    assert len(listed_ids(html_text)) == DIGEST_STORIES
    assert html_text.count("<mark") == DIGEST_FULL_STORIES  # the hit of each shown in full


def test_failed_digest_is_due_again(engine: sa.Engine, topics: TopicSet) -> None:
    alert_on_burst(engine, topics)
    now = T0 + timedelta(days=1, hours=8, minutes=3)
    with pytest.raises(DigestError) as failure:
        run_digests(
            engine, topics, now, smtp_send(free_port()), sender="m@example.org", options=OPTIONS
        )
    assert failure.value.stats.failed == 2
    assert scalar(engine, "select count(*) from digest_deliveries") == 0
    sink = Sink()
    with serve_smtp(sink) as port:
        stats = run_digests(
            engine, topics, now + timedelta(hours=1), smtp_send(port),
            sender="m@example.org", options=OPTIONS,
        )  # fmt: skip
    assert stats.sent == 2 and len(sink.messages) == 2


REFUSED_DIGEST = {
    # name: (the server, the server's answer as recorded)
    "no-such-mailbox-at-rcpt": (
        lambda: Picky({"weekly@example.org": "550 5.1.1 no such mailbox"}),
        "550 5.1.1 no such mailbox",
    ),
    "too-large-at-data": (
        lambda: Answering(data={"weekly@example.org": "552 5.3.4 Message size exceeds limit"}),
        "552 5.3.4 Message size exceeds limit (to DATA)",
    ),
}


@pytest.mark.parametrize("case", list(REFUSED_DIGEST))
def test_a_digest_refused_for_good_is_recorded_and_not_sent_again(
    engine: sa.Engine, topics: TopicSet, case: str
) -> None:
    """The server answers RCPT TO for one digest recipient with 550 (no such mailbox),
    or the end of its DATA with 552 (message too large). Before: the digest was never
    recorded, so every hourly run offered it again and failed (raising DigestError, the
    task red) for ever, and after 14 days its stories were dropped unsaid (the 552 was
    not final even once a refusal at RCPT TO was). Now it is recorded `refused` with the
    server's answer, the run fails once in one line, the other digest is sent, and later
    runs are quiet."""
    alert_on_burst(engine, topics)
    now = T0 + timedelta(days=1, hours=8, minutes=3)
    make_server, answer = REFUSED_DIGEST[case]
    sink = make_server()
    with serve_smtp(sink) as port:
        fields = {"host": "127.0.0.1", "port": port, "extra": {"disable_ssl": True,
                  "disable_tls": True}}  # fmt: skip
        send = smtp_sender(connection_settings(fields))
        with pytest.raises(DigestError) as failure:
            run_digests(engine, topics, now, send, sender="m@example.org", options=OPTIONS)
        assert str(failure.value) == (
            f"1 refused for good, not tried again: weekly@example.org: refused for good: {answer}"
        )
        assert (failure.value.stats.sent, failure.value.stats.refused) == (1, 1)
        for hours in (1, 2):
            later = run_digests(
                engine, topics, now + timedelta(hours=hours), send,
                sender="m@example.org", options=OPTIONS,
            )  # fmt: skip
            assert (later.due, later.sent, later.failed, later.refused) == (0, 0, 0, 0)
    assert sink.asked["weekly@example.org"] == 1
    assert [r for _, r, _ in sink.messages] == [["editors@example.org"]]
    assert rows(
        engine, "select recipient, status, note from digest_deliveries order by recipient"
    ) == [
        ("editors@example.org", "sent", None),
        ("weekly@example.org", "refused", f"refused for good: {answer}"),
    ]


def test_a_recipient_at_an_internationalized_domain_gets_its_digest_from_any_server(
    engine: sa.Engine,
) -> None:
    """A recipient at a domain written in Unicode (`weekly@例子.中国`, as topics.yaml
    takes it) and a mail server that does not offer SMTPUTF8 (many relays and mail
    services do not). Before: smtplib refused to send it (SMTPNotSupportedError), the
    digest was due again, and failed, every hour (the task red), and after 14 days its
    stories were dropped unsaid. Now the domain is written as DNS reads it (IDNA,
    `xn--fsqu00a.xn--fiqs8s`), in the envelope and the To header: sent once, recorded
    under the address as written."""
    topics = parse_topics(TOPICS_YAML.replace("weekly@example.org", "weekly@例子.中国"))
    sync_topics(engine, topics)
    alert_on_burst(engine, topics)
    now = T0 + timedelta(days=1, hours=8, minutes=3)
    sink = Sink()
    with serve_smtp(sink, enable_SMTPUTF8=False) as port:
        fields = {"host": "127.0.0.1", "port": port, "extra": {"disable_ssl": True,
                  "disable_tls": True}}  # fmt: skip
        send = smtp_sender(connection_settings(fields))
        stats = run_digests(engine, topics, now, send, sender="m@example.org", options=OPTIONS)
        assert (stats.sent, stats.failed) == (2, 0)
        later = run_digests(
            engine, topics, now + timedelta(hours=1), send, sender="m@example.org", options=OPTIONS
        )
        assert (later.due, later.sent, later.failed) == (0, 0, 0)
    ascii_address = "weekly@xn--fsqu00a.xn--fiqs8s"
    assert sorted(r for _, r, _ in sink.messages) == [["editors@example.org"], [ascii_address]]
    assert received(sink)[ascii_address]["To"] == ascii_address
    assert rows(engine, "select recipient, status from digest_deliveries order by recipient") == [
        ("editors@example.org", "sent"),
        ("weekly@例子.中国", "sent"),
    ]


def test_seed_article_in_export_controls_digest(engine: sa.Engine, built_seed: Article) -> None:
    """The seed never writes 出口管制; its snippet shows where the rule matched."""
    defaults = load_topics(DEFAULT_CONFIG_DIR / "topics.yaml")
    sync_topics(engine, defaults)
    with engine.begin() as conn:
        source = add_source(conn, "rfi-archive")
        conn.execute(
            ARTICLE_SQL,
            {
                **article_row(
                    source,
                    built_seed.canonical_url,
                    built_seed.title,
                    built_seed.body_text,
                    built_seed.published_at,
                    first_seen_at=datetime(2024, 4, 3, tzinfo=UTC),
                ),
                "match_text": built_seed.match_text,
            },
        )
    match_articles(engine, defaults)
    sink = Sink()
    with serve_smtp(sink) as port:
        # The seed was published 2024-04-03 04:45 in Shanghai; the digest goes at 08:00.
        at = datetime(2024, 4, 3, 0, 30, tzinfo=UTC)
        stats = run_digests(
            engine, defaults, at, smtp_send(port), sender="m@example.org", options=OPTIONS
        )
    assert stats.sent == 1
    [message] = received(sink).values()
    # dated when sent, not at the run's time (2024: it sorted years back in the inbox)
    sent = parsedate_to_datetime(str(message["Date"]))
    assert abs(sent - datetime.now(UTC)) < timedelta(minutes=5), message["Date"]
    html_text, text = html_of(message), text_of(message)
    section = html_text[html_text.index("出口管制：") :]
    assert re.search(r'<mark[^>]*><span class="hit"[^>]*>限制高科技出口</span></mark>', section), (
        section[:2000]
    )
    assert "【限制高科技出口】" in text
    assert message["Subject"].startswith("[mediamon] 每日摘要 2024-04-03：")
    # The story's time in the reader's zone, said once in the heading.
    assert "篇新报道（时间为 UTC+08:00）" in text and "2024-04-03 04:45\n" in text


def test_a_changed_digest_hour_or_zone_mails_no_story_twice(
    engine: sa.Engine, topics: TopicSet
) -> None:
    # editors@ gets the daily digest at 08:00 UTC, then moves it to 20:00 New York time
    # (01:00 UTC: EST until the 10th): the next period starts where the last digest
    # ended, not a day before its own end (that re-sent 7 hours of stories).
    alert_on_burst(engine, topics)
    sent_at = T0 + timedelta(days=1, hours=8, minutes=3)
    with serve_smtp(Sink()) as port:
        run_digests(engine, topics, sent_at, smtp_send(port), sender="m@x.org", options=OPTIONS)
    moved = parse_topics(
        TOPICS_YAML.replace(
            "{address: editors@example.org, mode: daily, locale: zh-CN}",
            "{address: editors@example.org, mode: daily, locale: zh-CN, digest_hour: 20,"
            " timezone: America/New_York}",
        ),
        "topics.yaml",
    )
    later = T0 + timedelta(days=2, hours=1, minutes=3)
    (plan,) = [p for p in due_digests(engine, moved, later, OPTIONS) if p.cadence == "daily"]
    assert (plan.period_start, plan.period_end) == (
        T0 + timedelta(days=1, hours=8),  # the previous digest's end
        T0 + timedelta(days=2, hours=1),  # 20:00 in New York
    )


def test_missed_days_are_caught_up_and_late_stories_listed(
    engine: sa.Engine, topics: TopicSet
) -> None:
    """Nothing lost: a day without a run is covered by the next digest, and a story
    loaded after its period's digest went out comes in the next one."""
    ids = alert_on_burst(engine, topics)
    assert ids
    sink = Sink()
    with serve_smtp(sink) as port:
        send = smtp_send(port)
        first = T0 + timedelta(hours=8, minutes=3)  # Monday 08:03: the day before
        run_digests(engine, topics, first, send, sender="m@example.org", options=OPTIONS)
        assert len(sink.messages) == 2
        with engine.begin() as conn:
            source = add_source(conn, "late-news")
            late_id = conn.execute(
                ARTICLE_SQL,
                article_row(
                    source,
                    "https://late.example/1",
                    "迟到的台湾新闻",
                    "一篇晚到的台湾报道。",
                    T0 + timedelta(hours=7),  # in the first digest's period ...
                    first_seen_at=datetime.now(UTC),  # ... but loaded after it was sent
                ),
            ).scalar_one()
        match_articles(engine, topics)
        # No run on Tuesday: Wednesday's digest covers Monday 08:00 to Wednesday 08:00.
        third = T0 + timedelta(days=2, hours=8, minutes=3)
        stats = run_digests(engine, topics, third, send, sender="m@example.org", options=OPTIONS)
        assert (stats.due, stats.sent) == (1, 1)  # the weekly recipient is not due
        _, recipients, raw = sink.messages[-1]
        assert recipients == ["editors@example.org"]
        digest = email.message_from_bytes(raw, policy=default_policy)
        assert isinstance(digest, EmailMessage)
    period = (T0 + timedelta(hours=8), T0 + timedelta(days=2, hours=8))
    expected = sorted({*story_ids_between(engine, "taiwan", *period), late_id})
    assert listed_ids(html_of(digest)) == expected
    assert "2024-03-04 08:00 (UTC+00:00) 至 2024-03-06 08:00 (UTC+00:00)" in text_of(digest)


def test_the_command_line_says_in_one_line_that_digests_were_not_sent(
    engine: sa.Engine,
    topics: TopicSet,
    database_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # the mail error types live in mediamon.errors, so the CLI needs no mail stack to
    # name them: a refused SMTP server is one line and a non-zero exit, no traceback
    from mediamon.cli import main

    alert_on_burst(engine, topics)
    (tmp_path / "topics.yaml").write_text(TOPICS_YAML, "utf-8")
    monkeypatch.setenv("MEDIAMON_DATABASE_URL", database_url)
    monkeypatch.setenv("MEDIAMON_TOPICS", str(tmp_path / "topics.yaml"))
    monkeypatch.setenv("MEDIAMON_VAR_DIR", str(tmp_path / "var"))
    smtp = {"conn_type": "smtp", "host": "127.0.0.1", "port": free_port()}
    smtp["extra"] = {"disable_ssl": True, "disable_tls": True}
    monkeypatch.setenv("AIRFLOW_CONN_MEDIAMON_SMTP", json.dumps(smtp))
    at = (T0 + timedelta(days=1, hours=8, minutes=3)).isoformat()
    assert main(["digest", "run", "--at", at]) == 2
    err = capsys.readouterr().err
    assert err.startswith("mediamon: ") and len(err.strip().splitlines()) == 1
    assert "Traceback" not in err
    assert scalar(engine, "select count(*) from digest_deliveries") == 0


def test_a_story_an_ingest_commits_while_the_digest_runs_is_in_the_next_digest(
    engine: sa.Engine, topics: TopicSet
) -> None:
    """An ingest run stamps its articles with the run's time and commits them later; a
    story it commits after the digest picked its stories goes into the next digest."""
    # Before: the next digest listed late stories first seen after the previous digest's
    # selection; this one was first seen before it (the run's time) but committed after,
    # so no digest ever listed it (the 08:00 digest and the 08:00 ingest run together).
    now = datetime.now(UTC)
    end = latest_digest_time(now, "daily", 8, 0, ZoneInfo("UTC"))
    with engine.begin() as conn:
        source = add_source(conn, "wire")
        listed = conn.execute(
            ARTICLE_SQL,
            article_row(source, "https://wire.example/1", "台湾新闻一", "台湾消息。",
                        end - timedelta(hours=2), first_seen_at=now - timedelta(hours=1)),
        ).scalar_one()  # fmt: skip
    sink = Sink()
    with serve_smtp(sink) as port, engine.connect() as ingest:
        send = smtp_send(port)
        ingest.begin()  # an ingest transaction loading a chunk, not committed yet
        late = ingest.execute(
            ARTICLE_SQL,
            article_row(source, "https://wire.example/2", "台湾新闻二", "台湾消息二。",
                        end - timedelta(minutes=10), first_seen_at=now - timedelta(minutes=1)),
        ).scalar_one()  # fmt: skip
        match_articles(engine, topics)  # the digest run: match, then select and send
        first = run_digests(engine, topics, end + timedelta(minutes=3), send,
                            sender="m@example.org", options=OPTIONS)  # fmt: skip
        ingest.commit()  # the chunk is in
        match_articles(engine, topics)
        second = run_digests(engine, topics, end + timedelta(days=1, minutes=3), send,
                             sender="m@example.org", options=OPTIONS)  # fmt: skip
    assert not first.failed and not second.failed
    digests = [
        email.message_from_bytes(raw, policy=default_policy)
        for _, to, raw in sink.messages
        if to == ["editors@example.org"]
    ]
    listed_by = [listed_ids(html_of(d)) for d in digests if isinstance(d, EmailMessage)]
    assert listed_by == [[listed], [late]]  # each story once, none lost


def test_the_previous_digests_stories_are_left_out_through_a_hash(engine: sa.Engine) -> None:
    """The stories a digest listed are looked up in a hash, not compared one by one:
    `article_id <> all(listed)` compared every late story with every listed id (100,000
    of each, measured on a plain series: 43 s, for one topic of one recipient's digest)."""
    now = datetime.now(UTC)
    params = {
        "topics": ["taiwan"],  # one topic, as an alert mail asks
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


def test_a_changed_cadence_mails_no_story_twice_and_skips_none(
    engine: sa.Engine, topics: TopicSet
) -> None:
    """A digest is keyed by (recipient, cadence): the first weekly digest of a recipient
    who got daily ones covered the whole week again. It lists what no digest did (a story
    of the week the dailies did not list, one loaded late); the daily ones' stories and
    spike stay out. Switching weekly -> daily, the first daily covers the days since the
    last weekly digest, not just one day."""
    alert_on_burst(engine, topics)
    sink = Sink()
    with serve_smtp(sink) as port:
        send = smtp_send(port)
        for day in (0, 1):  # Monday's and Tuesday's digests; Tuesday's has the burst
            at = T0 + timedelta(days=day, hours=8, minutes=3)
            run_digests(engine, topics, at, send, sender="m@example.org", options=OPTIONS)
        daily = received(sink)["editors@example.org"]
        assert sum(p.get_content_type() == "image/png" for p in daily.walk()) == 1  # the spike
        with engine.begin() as conn:
            source = add_source(conn, "later-news")
            late_id, new_id = (
                conn.execute(ARTICLE_SQL, article_row(source, url, title, body, when, **seen))
                .scalar_one()
                for url, title, body, when, seen in (
                    # dated in Tuesday's digest's period, loaded after it was sent
                    ("https://later.example/1", "迟到的台湾新闻", "晚到的台湾报道。",
                     T0 + timedelta(hours=9), {"first_seen_at": datetime.now(UTC)}),
                    # Thursday: after the last daily digest
                    ("https://later.example/2", "周四台湾新闻", "周四的台湾报道。",
                     T0 + timedelta(days=3), {}),
                )
            )  # fmt: skip
        switched = parse_topics(
            TOPICS_YAML.replace(
                "{address: editors@example.org, mode: daily, locale: zh-CN}",
                "{address: editors@example.org, mode: weekly, digest_weekday: monday}",
                1,  # taiwan's; export-controls stays daily
            ),
            "topics.yaml",
        )
        sync_topics(engine, switched)
        match_articles(engine, switched)
        monday = T0 + timedelta(days=7, hours=8, minutes=3)
        run_digests(engine, switched, monday, send, sender="m@example.org", options=OPTIONS)
        weekly = [
            message
            for _, recipients, raw in sink.messages
            if recipients == ["editors@example.org"]
            and (message := email.message_from_bytes(raw, policy=default_policy))[
                "Subject"
            ].startswith("[mediamon] Weekly digest")
        ]
    assert len(weekly) == 1
    assert isinstance(weekly[0], EmailMessage)
    assert listed_ids(html_of(weekly[0])) == sorted([late_id, new_id])
    assert not any(p.get_content_type() == "image/png" for p in weekly[0].walk())

    # weekly@ gets Monday's weekly digest (above), then switches to daily on Wednesday:
    # Thursday's first daily digest starts where that weekly digest ended.
    to_daily = parse_topics(
        TOPICS_YAML.replace("mode: weekly, digest_weekday: monday, locale: en", "mode: daily"),
        "topics.yaml",
    )
    thursday = T0 + timedelta(days=3, hours=8, minutes=3)
    (plan,) = [
        p
        for p in due_digests(engine, to_daily, thursday, OPTIONS)
        if p.address == "weekly@example.org"
    ]
    assert (plan.cadence, plan.period_start, plan.period_end) == (
        "daily",
        T0 + timedelta(hours=8),
        T0 + timedelta(days=3, hours=8),
    )


def test_bi_alerts_counts_the_digests_that_showed_an_alert(
    engine: sa.Engine, topics: TopicSet
) -> None:
    """bi.alerts.mails_sent's comment said "immediate and digest" while it counted the
    immediate mails only; it keeps counting those (its comment now says so), and
    digest_mails_sent counts the digests that showed the alert among their spikes."""
    (alert_id,) = alert_on_burst(engine, topics)
    now = T0 + timedelta(days=1, hours=8, minutes=3)  # Tuesday 08:03 UTC
    sink = Sink()
    with serve_smtp(sink) as port:
        deliver_pending(engine, smtp_send(port), T0 + timedelta(hours=11), topics=topics)
        stats = run_digests(
            engine, topics, now, smtp_send(port), sender="m@example.org", options=OPTIONS
        )
    assert stats.sent == 2  # the daily one shows the spike; the weekly one ended before it
    shown = "select mails_sent, digest_mails_sent from bi.alerts where alert_id = :a"
    assert rows(engine, shown, a=alert_id) == [(1, 1)]
    assert rows(engine, "select recipient, alert_ids from digest_deliveries order by 1") == [
        ("editors@example.org", [alert_id]),
        ("weekly@example.org", []),
    ]
    with engine.begin() as conn:  # a digest recorded before its spikes were
        conn.execute(
            sa.text(
                "insert into digest_deliveries (recipient, cadence, period_start, period_end,"
                " status, stories, topics, sent_at)"
                " values ('old@example.org', 'daily', :s, :e, 'sent', 3, '{taiwan}', :e)"
            ),
            {"s": T0, "e": T0 + timedelta(days=1)},
        )
    assert rows(engine, shown, a=alert_id) == [(1, 2)]
    comment = scalar(
        engine, "select col_description('bi.alerts'::regclass, attnum) from pg_attribute"
        " where attrelid = 'bi.alerts'::regclass and attname = 'mails_sent'"
    )  # fmt: skip
    assert comment.startswith("Immediate alert mails") and "digest_mails_sent" in comment


def test_a_late_run_sends_no_stale_digest_and_the_next_one_lists_its_stories(
    engine: sa.Engine, topics: TopicSet
) -> None:
    """Tuesday's digests run failed (mail down); on Thursday ops clear it (a late run: the
    clock is passed). Before, it mailed Tuesday's digest on Thursday, and Thursday's went
    out beside it. Now Tuesday's is stale: not sent, not recorded, and Thursday's digest
    lists every story since Monday's, the burst of Tuesday included."""
    alert_on_burst(engine, topics)
    sink = Sink()
    with serve_smtp(sink) as port:
        send = smtp_send(port)
        monday = T0 + timedelta(hours=8, minutes=3)
        run_digests(engine, topics, monday, send, sender="m@example.org", options=OPTIONS)
        assert len(sink.messages) == 2  # the daily and the weekly
        tuesday = T0 + timedelta(days=1, hours=8, minutes=3)
        with pytest.raises(DigestError):
            run_digests(
                engine, topics, tuesday, smtp_send(free_port()), sender="m@example.org",
                options=OPTIONS,
            )  # fmt: skip
        thursday = T0 + timedelta(days=3, hours=10)
        late = run_digests(
            engine, topics, tuesday, send, sender="m@example.org", options=OPTIONS,
            clock=thursday,
        )  # fmt: skip
        assert (late.due, late.stale, late.sent) == (1, 1, 0)
        assert len(sink.messages) == 2
        assert scalar(engine, "select count(*) from digest_deliveries") == 2
        current = run_digests(engine, topics, thursday, send, sender="m@example.org",
                              options=OPTIONS)  # fmt: skip
        assert (current.stale, current.sent) == (0, 1)
    daily = received(sink)["editors@example.org"]
    since_monday = (T0 + timedelta(hours=8), T0 + timedelta(days=3, hours=8))
    assert len(story_ids_between(engine, "taiwan", *since_monday)) >= 10  # the burst
    assert listed_ids(html_of(daily)) == story_ids_between(engine, "taiwan", *since_monday)


@pytest.mark.parametrize(
    ("zone", "hour", "switch"),
    [
        ("Europe/Berlin", 2, datetime(2026, 10, 25, tzinfo=UTC)),  # 02:00–03:00 twice
        ("America/New_York", 1, datetime(2026, 11, 1, 4, tzinfo=UTC)),  # 01:00–02:00 twice
        ("Europe/Berlin", 2, datetime(2026, 3, 29, tzinfo=UTC)),  # 02:00 does not exist
    ],
    ids=["berlin-autumn", "new-york-autumn", "berlin-spring"],
)
def test_a_daylight_saving_change_mails_one_digest_per_local_day_covering_every_story(
    engine: sa.Engine, zone: str, hour: int, switch: datetime
) -> None:
    """Hourly runs across the night the clocks change, the digest hour in the hour that
    repeats (or does not exist): one digest per local day, each from where the last ended
    (the night's day 25 or 23 hours long), every story in exactly one of them, a story
    loaded after the night's digest went out in the next (before: late stories were looked
    for 24 hours back: after a 23-hour day a story of the hour before it was mailed again,
    after a 25-hour day one of its first hour, loaded late, was never mailed)."""
    topics = parse_topics(
        TOPICS_YAML.replace(
            "{address: editors@example.org, mode: daily, locale: zh-CN}",
            f"{{address: editors@example.org, mode: daily, digest_hour: {hour}, timezone: {zone}}}",
        ),
        "topics.yaml",
    )
    sync_topics(engine, topics)
    start, end = switch - timedelta(days=2), switch + timedelta(days=3)
    with engine.begin() as conn:
        source = add_source(conn, "dst-news")
        moment = start + timedelta(minutes=20)
        while moment < end:  # a story every 40 minutes, through both of the hours
            conn.execute(
                ARTICLE_SQL,
                article_row(source, f"https://dst.example/{moment:%m%d%H%M}", "台湾 news",
                            f"台湾 {moment:%m%d%H%M}", moment, first_seen_at=moment),
            )  # fmt: skip
            moment += timedelta(minutes=40)
    match_articles(engine, topics)
    sink = Sink()
    late = None
    with serve_smtp(sink) as port:
        send, run = smtp_send(port), start
        while run < end:  # the hourly DAG, at five past each UTC hour
            run += timedelta(hours=1)
            run_digests(engine, topics, run + timedelta(minutes=5), send, sender="m@x.org",
                        options=OPTIONS)  # fmt: skip
            night = rows(
                engine,
                "select period_start from digest_deliveries where recipient ="
                " 'editors@example.org' and period_end - period_start <> interval '1 day'"
                " and period_end - period_start < interval '26 hours'",
            )
            if night and late is None:  # its digest went out; a story of its first hour comes
                with engine.begin() as conn:
                    late = conn.execute(
                        ARTICLE_SQL,
                        article_row(source, "https://dst.example/late", "台湾 late", "台湾 迟到",
                                    night[0][0] + timedelta(minutes=30),
                                    first_seen_at=datetime.now(UTC)),
                    ).scalar_one()  # fmt: skip
                match_articles(engine, topics)
    assert late is not None
    local = ZoneInfo(zone)
    periods = rows(
        engine,
        "select period_start, period_end, status from digest_deliveries"
        " where recipient = 'editors@example.org' order by period_end",
    )
    mails = [raw for _, to, raw in sink.messages if to == ["editors@example.org"]]
    assert len(mails) == sum(status == "sent" for *_, status in periods) >= 3
    ends = [period_end.astimezone(local) for _, period_end, _ in periods]
    assert len({e.date() for e in ends}) == len(ends) >= 4, ends  # one per local day
    for e in ends:  # at the digest hour (its first occurrence; 03:00 when 02:00 is skipped)
        digest_time = datetime.combine(e.date(), time(hour), tzinfo=local)
        assert e.astimezone(UTC) == digest_time.astimezone(UTC), e  # (== refuses a fold)
    lengths = []
    for (_, previous_end, _), (period_start, period_end, _) in itertools.pairwise(periods):
        assert period_start == previous_end  # nothing between two digests
        lengths.append(period_end - period_start)
    night = timedelta(hours=23 if switch.month == 3 else 25)
    assert sorted(set(lengths)) == sorted({timedelta(days=1), night}), lengths
    listed = [i for raw in mails for i in listed_ids(html_of(parsed(raw)))]
    assert len(listed) == len(set(listed))  # no story twice
    first, last = periods[0][0], periods[-1][1]
    assert sorted(listed) == story_ids_between(engine, "taiwan", first, last)  # none missed


def test_each_digest_topic_says_which_terms_it_matches(engine: sa.Engine, topics: TopicSet) -> None:
    """Under each topic's heading, the rules it matches as written: a digest named the
    topic only, and a story matched by a NEAR rule read as if it were off topic."""
    alert_on_burst(engine, topics)
    sink = Sink()
    with serve_smtp(sink) as port:
        run_digests(
            engine, topics, T0 + timedelta(days=1, hours=8, minutes=3), smtp_send(port),
            sender="m@example.org", options=OPTIONS,
        )  # fmt: skip
    daily = received(sink)["editors@example.org"]
    assert "\n== 台湾：10 篇新报道\n匹配词：台湾 · Taiwan\n排序：" in text_of(daily)
    with Chromium() as browser:
        page = browser.open(
            mail_html_file(daily, ARTIFACTS / "digest-terms-375.html").as_uri(), width=375
        )
        heading, terms = page.evaluate(
            "[...document.querySelectorAll('h2.topic, h2.topic + .terms')].map(e => {"
            " const b = e.getBoundingClientRect(); return [e.innerText, b.top, b.bottom]; })"
        )
        page.screenshot(ARTIFACTS / "digest-terms-375.png")
    assert heading[0] == "台湾：10 篇新报道" and terms[0] == "匹配词：台湾 · Taiwan"
    assert heading[2] <= terms[1] < terms[2]  # drawn, right under the heading


def test_a_digests_plain_text_lists_the_stories_before_the_day_tables(
    engine: sa.Engine, topics: TopicSet
) -> None:
    """Read as text, a digest with a spike gave the spike's 12-line day table before the
    first story (up to three tables, 40 lines); the HTML shows a chart there. Now the
    spike's line stays on top, the stories follow, and each table comes after them,
    named by its topic."""
    alert_on_burst(engine, topics)
    now = T0 + timedelta(days=1, hours=8, minutes=3)
    sink = Sink()
    with serve_smtp(sink) as port:
        run_digests(engine, topics, now, smtp_send(port), sender="m@example.org", options=OPTIONS)
    lines = text_of(received(sink)["editors@example.org"]).splitlines()
    spike = next(i for i, line in enumerate(lines) if line.startswith("* "))
    story = next(i for i, line in enumerate(lines) if line.startswith("1. "))
    table = next(i for i, line in enumerate(lines) if "最近 7 天每小时报道数" in line)
    assert spike < story < 15 < table < lines.index("-- "), (spike, story, table)
    assert lines[table].startswith("台湾 · 最近 7 天每小时报道数"), lines[table]
