"""A story without a link names its outlet's site, from the source's configured feed URL:
an alert built from the database and delivered through a real SMTP server."""

from __future__ import annotations

import email
from datetime import timedelta
from email.message import EmailMessage
from email.policy import default as default_policy

import sqlalchemy as sa

from mediamon.alerts.deliver import deliver_pending
from mediamon.topics.definitions import TopicSet
from tests.integration.test_alert_stages import AT, alert_on_burst, topics  # noqa: F401
from tests.support.smtp_server import Sink, smtp_send


def test_a_story_without_a_link_names_the_site_of_its_sources_feed(
    engine: sa.Engine,
    topics: TopicSet,  # noqa: F811
    smtp: tuple[Sink, int],
) -> None:
    """The burst's outlet ``cna`` polls https://rss.cna.com.tw/…; one of its stories
    was stored with an ftp:// link (a row older than ingest's URL checks). The mail lists
    that story as "cna (cna.com.tw)", in both parts, and the linked ones as "cna"."""
    sink, port = smtp
    [_alert_id] = alert_on_burst(engine, topics)
    with engine.begin() as conn:
        conn.execute(
            sa.text("update sources set location = :loc where name = 'cna'"),
            {"loc": "https://rss.cna.com.tw/rss/aall.xml"},
        )
        conn.execute(
            sa.text(
                "update articles set canonical_url = 'ftp://burst.example/b1'"
                " where canonical_url = 'https://burst.example/b1'"
            )
        )
    stats = deliver_pending(engine, smtp_send(port), AT + timedelta(minutes=5))
    assert stats.sent == 2
    for _, recipients, raw in sink.messages:
        message = email.message_from_bytes(raw, policy=default_policy)
        assert isinstance(message, EmailMessage)
        text_part, html_part = message.get_body(("plain",)), message.get_body(("html",))
        assert text_part is not None and html_part is not None
        plain, html_text = text_part.get_content(), html_part.get_content()
        assert plain.count("cna (cna.com.tw)") == 1, (recipients, plain)
        assert html_text.count("cna (cna.com.tw)") == 1, recipients
        assert "ftp://" not in plain and "ftp://" not in html_text
        # The story's own line in the plain text: its title, then the outlet and site.
        lines = plain.splitlines()
        at = next(i for i, line in enumerate(lines) if "cna (cna.com.tw)" in line)
        assert "b1" in lines[at - 1] or "b1" in lines[at], lines[at - 1 : at + 1]
