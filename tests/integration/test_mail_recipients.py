"""An alert mail as its recipient meets it, on stories stored before ingest cleaned them
(or from an archive): titles of invisible characters alone, URLs with quotes, spaces,
Chinese letters or a ``javascript:`` scheme. Every story shown must be a link one can see
and click, to the page it names, in the HTML and in the plain text alike.

Stored in a real PostgreSQL, mailed through a real SMTP server, rendered in headless
chromium at a phone's and a desktop's width (screenshots in var/test-artifacts/).
"""

from __future__ import annotations

import email
import re
from collections.abc import Iterator
from datetime import timedelta
from email.message import EmailMessage
from email.policy import default as default_policy

import pytest
import sqlalchemy as sa

from mediamon.alerts.compose import MailOptions
from mediamon.alerts.deliver import deliver_pending
from mediamon.spikes.detect import detect
from mediamon.topics.file import parse_topics
from mediamon.topics.match import match_articles
from mediamon.topics.store import sync_topics
from tests.integration.test_alert_stages import AT, BURST_HOUR, add_article, add_background
from tests.support.browser import ARTIFACTS, Chromium, mail_html_file
from tests.support.smtp_server import Sink, serve_smtp, smtp_send

TOPICS_YAML = """\
version: 1
defaults:
  thresholds: {min_stories: 4, min_lift: 2.0, max_p_value: 0.0001, cooldown_hours: 6}
topics:
  - key: taiwan
    name: Taiwan
    terms: [台湾, Taiwan]
    recipients:
      - {address: duty@example.org, mode: immediate, locale: en}
"""
OPTIONS = MailOptions(timezone="Asia/Shanghai", unsubscribe_address="leave@mediamon.example")
INVISIBLE = "\u200b\u200b\u2060\ufeff\u200b"  # zero-width spaces, a word joiner, a BOM
# A stored URL and the link a reader's click must open (None: no link).
URLS = {
    'https://quotes.example/a"b<c>?q="x"': "https://quotes.example/a%22b%3Cc%3E?q=%22x%22",
    "https://space.example/two words": "https://space.example/two%20words",
    "https://例子.中国/新闻?q=台湾": (
        "https://xn--fsqu00a.xn--fiqs8s/%E6%96%B0%E9%97%BB?q=%E5%8F%B0%E6%B9%BE"
    ),
    "javascript:alert(document.cookie)": None,
    "https://plain.example/invisible-title": "https://plain.example/invisible-title",
}
# What a plain-text mail client makes a link of: a run from "http" to the first space,
# quote, angle bracket or letter outside ASCII (Gmail, Outlook and Thunderbird stop there).
AUTOLINK = re.compile(r"https?://[!#-;=?-~]+")
# Each story link as drawn: its box, its text and where it goes.
LINKS = """[...document.querySelectorAll('li.story')].map(li => {
  const a = li.querySelector('a');
  if (!a) return {text: li.innerText, href: null};
  const box = a.getBoundingClientRect();
  return {text: a.innerText.trim(), href: a.href, width: box.width, height: box.height};
})"""


@pytest.fixture()
def awkward_mail(engine: sa.Engine) -> Iterator[EmailMessage]:
    """A burst of 台湾 stories, among them one of each awkward URL (the last under a title
    of invisible characters), mailed to duty@: the mail as received."""
    topics = parse_topics(TOPICS_YAML, "topics.yaml")
    sync_topics(engine, topics)
    ids = add_background(engine)
    with engine.begin() as conn:
        for index, url in enumerate(URLS):
            title = INVISIBLE if "invisible" in url else f"台湾 awkward link {index}"
            add_article(
                conn,
                source_id=ids["cna"],
                url=url,
                title=title,
                body="台湾。" * 5,
                published_at=BURST_HOUR + timedelta(minutes=10 + index),
            )
        for index in range(4):
            add_article(
                conn,
                source_id=ids["rfi"],
                url=f"https://burst.example/{index}",
                title=f"台湾局势 {index}",
                body="台湾海峡紧张。",
                published_at=BURST_HOUR + timedelta(minutes=30 + index),
            )
    match_articles(engine, topics)
    assert len(detect(engine, topics, AT)) == 1
    sink = Sink()
    with serve_smtp(sink) as port:
        deliver_pending(
            engine, smtp_send(port), AT + timedelta(minutes=5), topics=topics, options=OPTIONS
        )
    assert len(sink.messages) == 1
    message = email.message_from_bytes(sink.messages[0][2], policy=default_policy)
    assert isinstance(message, EmailMessage)
    yield message


@pytest.mark.parametrize("width", [390, 1280])
def test_every_story_is_a_link_one_can_see_and_click(
    awkward_mail: EmailMessage, width: int
) -> None:
    """Before: a title of zero-width characters alone was a link of no width (nothing to
    click, no "(no title)"); a URL with quotes or Chinese letters was printed as stored
    in the plain text, where a client's link ended at the first quote or Chinese letter
    (``https://quotes.example/a``), and one with a space was no link anywhere."""
    with Chromium() as browser:
        page_file = mail_html_file(awkward_mail, ARTIFACTS / f"mail-recipients-{width}.html")
        page = browser.open(page_file.as_uri(), width=width)
        links = page.evaluate(LINKS)
        page.screenshot(ARTIFACTS / f"mail-recipients-{width}.png")
    assert len(links) == 9, links
    hrefs = [link["href"] for link in links if link["href"]]
    for link in links:
        if link["href"]:
            assert link["width"] > 0 and link["height"] > 0 and link["text"], link
            assert link["href"].startswith(("https://", "http://")), link
    for stored, expected in URLS.items():
        if expected is None:
            assert not any("alert(" in href for href in hrefs)
        else:
            assert expected in hrefs, (stored, hrefs)
    invisible = next(
        link for link in links if link["href"] == URLS["https://plain.example/invisible-title"]
    )
    assert invisible["text"] == "(no title)", invisible
    # The plain text: each story's link, as a client finds it, opens the same page.
    text_part = awkward_mail.get_body(("plain",))
    assert text_part is not None
    found = set(AUTOLINK.findall(text_part.get_content()))
    for expected in URLS.values():
        if expected is not None:
            assert expected in found, (expected, sorted(found))
    assert "javascript:" not in text_part.get_content()
    assert "(no title)" in text_part.get_content()


def test_the_plain_text_lists_the_stories_before_the_day_table(
    awkward_mail: EmailMessage,
) -> None:
    """The plain part (what a client showing text, a watch or a screen reader reads)
    gave the 7-day table's 12 lines after the reason, and the first story at line 19,
    past a phone's screen; the HTML shows a chart of a few lines there. Now the stories
    follow the reason, the table after them, before the statistics; every line within
    RFC 5322's 998 characters (quoted-printable or base64 on the wire)."""
    text_part = awkward_mail.get_body(("plain",))
    assert text_part is not None
    lines = text_part.get_content().splitlines()
    first_story = lines.index(next(line for line in lines if line.startswith("1. ")))
    table = lines.index(next(line for line in lines if line.startswith("Stories per hour")))
    statistics = lines.index("Statistics")
    assert first_story < 10 < table < statistics, (first_story, table, statistics)
    raw = awkward_mail.as_bytes()
    assert max(len(line) for line in raw.split(b"\n")) <= 998
