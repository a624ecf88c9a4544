"""One ranking of a window's stories: the mails' (mediamon.alerts.stories.rank_stories) and
bi.topic_window_stories', which the page and the Superset dataset alert_top_stories read.
The page ranked by title hits, then body hits, then the oldest first, and counted an
article by its own time: its "top stories" of an alert were not the mail's."""

from __future__ import annotations

import re
from datetime import timedelta

import sqlalchemy as sa

from mediamon.alerts.compose import AlertMail, MailOptions, Reader, render_alert_mail
from mediamon.alerts.content import stories_between
from mediamon.alerts.stories import MAX_RANKED_MENTIONS
from mediamon.bi import dashboard
from mediamon.db.queries import query
from mediamon.topics.definitions import TopicSet
from mediamon.topics.match import match_articles
from tests.integration.test_alert_stages import BURST_HOUR, add_article, add_source, topics

__all__ = ["topics"]  # a fixture, used by name

START, END = BURST_HOUR, BURST_HOUR + timedelta(hours=1)


def _stories(engine: sa.Engine) -> dict[str, int]:
    """Stories in one hour, each pair decided by one key of the rule, and one outside."""
    at = START + timedelta(minutes=10)
    made: dict[str, int] = {}
    with engine.begin() as conn:
        cna, bbc, dw = (add_source(conn, n) for n in ("cna", "bbc", "dw"))

        def story(name: str, title: str, body: str, minutes: int, source: int = cna) -> int:
            made[name] = add_article(
                conn,
                source_id=source,
                url=f"https://example.org/{name}",
                title=title,
                body=body,
                published_at=at + timedelta(minutes=minutes),
            )
            return made[name]

        story("headline", "台湾新闻", "台湾。", 0)  # the topic in the headline: first
        root = story("outlets", "新闻二", "台湾。", 1)  # carried by two other outlets
        for source, minutes in ((bbc, 40), (dw, 41)):
            add_article(
                conn,
                source_id=source,
                url=f"https://copy.example/{source}",
                title="转载",
                body="台湾。转载",
                published_at=at + timedelta(minutes=minutes),
                duplicate_of=root,
            )
        story("mentions", "新闻三", "台湾。台湾。台湾。台湾。", 2)  # the most mentions
        story("newest", "新闻四", "台湾。", 30)  # then the newest
        story("older", "新闻五", "台湾。", 5)
        story("tie", "新闻六", "台湾。", 5)  # as old as "older": the smaller id first
        story("before", "台湾旧闻", "台湾。", -20)  # before the window: not listed
    return made


def test_the_page_and_the_mail_rank_a_window_alike(engine: sa.Engine, topics: TopicSet) -> None:
    made = _stories(engine)
    match_articles(engine, topics)
    expected = [made[n] for n in ("headline", "outlets", "mentions", "newest", "older", "tie")]
    with engine.connect() as conn:
        mail = [s.story_id for s in stories_between(conn, "taiwan", None, START, END)]
    with dashboard.read_only(engine) as conn:  # as the page reads, role mediamon_bi
        ranked = conn.execute(
            sa.text(
                "select story_id, story_rank, outlets, mentions"
                " from bi.topic_window_stories('taiwan', :s, :e)"
            ),
            {"s": START, "e": END},
        ).all()
        alert_top = conn.execute(
            query("dashboard_alert_stories"),
            {"topic": "taiwan", "window_start": START, "window_end": END, "per_alert": 5},
        ).all()
    assert mail == expected
    assert [r.story_id for r in ranked] == expected
    assert [r.story_rank for r in ranked] == [1, 2, 3, 4, 5, 6]
    assert (ranked[1].outlets, ranked[2].mentions) == (3, 4)
    assert [r.story_id for r in alert_top] == expected[:5]


def test_a_keyword_stuffed_story_does_not_top_the_list(engine: sa.Engine, topics: TopicSet) -> None:
    """Mentions rank a story up to MAX_RANKED_MENTIONS: a page repeating the topic 1,000
    times ranked first in the mail and on the page, above a story as widely carried that
    is about the topic throughout and newer. Its mentions are still shown as counted."""
    at = START + timedelta(minutes=10)
    made: dict[str, int] = {}
    with engine.begin() as conn:
        cna = add_source(conn, "cna")
        for name, title, repeats, minutes in (
            ("stuffed", "台湾快讯", 1000, 0),
            ("in_depth", "台湾观察", 2 * MAX_RANKED_MENTIONS, 20),
            ("brief", "台湾简讯", 1, 30),
        ):
            made[name] = add_article(
                conn,
                source_id=cna,
                url=f"https://example.org/{name}",
                title=title,
                body="台湾。" * repeats,
                published_at=at + timedelta(minutes=minutes),
            )
    match_articles(engine, topics)
    expected = [made[n] for n in ("in_depth", "stuffed", "brief")]
    topic = topics.get("taiwan")
    with engine.connect() as conn:
        stories = stories_between(conn, "taiwan", topic, START, END)
    assert [s.story_id for s in stories] == expected
    assert stories[1].mentions > 1000  # counted as found, ranked as MAX_RANKED_MENTIONS
    with dashboard.read_only(engine) as conn:
        ranked = conn.execute(
            sa.text(
                "select story_id, mentions from bi.topic_window_stories('taiwan', :s, :e)"
                " order by story_rank"
            ),
            {"s": START, "e": END},
        ).all()
    assert [r.story_id for r in ranked] == expected
    assert ranked[1].mentions == stories[1].mentions

    # As the recipient reads it: the in-depth story first, the rule saying the cap.
    mail = AlertMail(
        alert_id=None, topic_key="taiwan", topic_name="台湾", window_start=START,
        window_end=END, observed=3, expected=0.5, p_value=1e-6, total_stories=3,
        stories=tuple(stories),
    )  # fmt: skip
    for locale, rule in (("en", "the most mentions (up to 5)"), ("zh-CN", "（最多计 5 次）")):
        rendered = render_alert_mail(mail, Reader("r@example.org", locale), MailOptions())
        listed = [int(i) for i in re.findall(r'data-story="(\d+)"', rendered.html)]
        assert listed == expected
        assert "1. 台湾观察" in rendered.text and "3. 台湾简讯" in rendered.text
        assert rule in rendered.text and rule in rendered.html
