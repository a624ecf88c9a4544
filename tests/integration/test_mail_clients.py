"""Alert mails and digests as mail clients show them, on hard cases: a 200-character
topic name, titles of 300 characters without a space (Latin, a URL, Chinese), right to
left, emoji; in a phone's and a desktop's width, in dark mode; and their headers as the
SMTP server received them.

Sent from a real PostgreSQL through a real SMTP server, rendered in headless chromium.
Screenshots are saved to var/test-artifacts/mail-clients-*.png.
"""

from __future__ import annotations

import email
import html
import re
from collections.abc import Iterator
from datetime import UTC, timedelta
from email.message import EmailMessage
from email.policy import default as default_policy
from typing import Any

import pytest
import regex
import sqlalchemy as sa

from mediamon.alerts.compose import AlertMail, MailOptions, Reader, alert_message
from mediamon.alerts.deliver import deliver_pending
from mediamon.alerts.digest_mail import DigestMail, TopicStories, digest_message
from mediamon.alerts.render import MAX_TITLE_CHARS
from mediamon.alerts.smtp import connection_settings, smtp_sender
from mediamon.alerts.snippet import make_snippet, mark_hits
from mediamon.alerts.stories import StoryItem
from mediamon.ops import mail as ops_mail
from mediamon.spikes.detect import detect
from mediamon.topics.file import parse_topics
from mediamon.topics.match import match_articles
from mediamon.topics.rules import parse_rule
from mediamon.topics.store import sync_topics
from tests.integration.test_alert_stages import (
    AT,
    BURST_HOUR,
    add_article,
    add_background,
    add_burst,
)
from tests.integration.test_mail_render import DRAWN
from tests.integration.test_ops_mail import incident, task_failure
from tests.support import awkward
from tests.support.browser import ARTIFACTS, Chromium, mail_html_file
from tests.support.smtp_server import Sink, serve_smtp, smtp_send

TOPICS_YAML = f"""\
version: 1
defaults:
  thresholds: {{min_stories: 4, min_lift: 2.0, max_p_value: 0.0001, cooldown_hours: 6}}
topics:
  - key: taiwan
    name: "{awkward.TOPIC_NAME}"
    terms: [台湾, Taiwan]
    recipients:
      - {{address: desk@example.org, mode: immediate, locale: zh-CN}}
      - {{address: duty@example.org, mode: immediate, locale: en}}
"""
OPTIONS = MailOptions(
    timezone="Asia/Shanghai",
    unsubscribe_address="leave@mediamon.example",
    base_url="https://mediamon.example.org",
)
# What an inbox shows of a subject: about 40 characters on a phone, 70 to 80 on a desktop.
PHONE_SUBJECT_CHARS = 60


@pytest.fixture()
def awkward_alerts(engine: sa.Engine) -> Iterator[dict[str, tuple[EmailMessage, bytes]]]:
    """The burst plus a story for each awkward title, each the topic five times in its
    body (so the awkward ones rank first and are shown in full), alerted under a
    200-character topic name and mailed to a Chinese and an English reader: their mails
    as received, parsed and raw, by address."""
    topics = parse_topics(TOPICS_YAML, "topics.yaml")
    sync_topics(engine, topics)
    ids = add_background(engine)
    add_burst(engine, ids, BURST_HOUR)
    with engine.begin() as conn:
        for index, title in enumerate(awkward.TITLES):
            add_article(
                conn,
                source_id=ids["cna"],
                url=f"https://awkward.example/{index}",
                title=title,
                body="台湾。" * 5 + title,
                published_at=BURST_HOUR + timedelta(minutes=30 + index),
            )
    match_articles(engine, topics)
    assert len(detect(engine, topics, AT)) == 1
    sink = Sink()
    with serve_smtp(sink) as port:
        deliver_pending(
            engine, smtp_send(port), AT + timedelta(minutes=5), topics=topics, options=OPTIONS
        )
    received = {}
    for _, recipients, raw in sink.messages:
        message = email.message_from_bytes(raw, policy=default_policy)
        assert isinstance(message, EmailMessage)
        received[recipients[0]] = (message, raw)
    assert sorted(received) == ["desk@example.org", "duty@example.org"]
    yield received


# Colours as drawn, for contrast: an element's text colour and the background it is
# drawn on (the nearest ancestor's that is not transparent).
COLOURS = """(() => {
  const rgb = (value) => value.match(/[\\d.]+/g).map(Number);
  const background = (element) => {
    for (let e = element; e; e = e.parentElement) {
      const [r, g, b, a] = rgb(getComputedStyle(e).backgroundColor);
      if (a === undefined || a > 0) return [r, g, b];
    }
    return [255, 255, 255];
  };
  const pair = (element) => element && [rgb(getComputedStyle(element).color).slice(0, 3),
                                       background(element)];
  return {
    column: pair(document.querySelector('#alert-bar').parentElement),
    muted: pair(document.querySelector('li.story > div')),  // outlet and time, in grey
    link: pair(document.querySelector('li.story a')),
    mark: pair(document.querySelector('li.story mark')),
    footer: pair(document.querySelector('#alert-bar').parentElement.lastElementChild),
  };
})()"""
TOP_TITLES = "[...document.querySelectorAll('li.story:not(.compact) > a')].map(a => a.innerText)"
SIZES = "[document.documentElement.scrollWidth, document.documentElement.clientWidth]"


def luminance(colour: list[float]) -> float:
    """WCAG relative luminance of an sRGB colour (0-255 channels)."""
    linear = [
        c / 255 / 12.92 if c / 255 <= 0.04045 else ((c / 255 + 0.055) / 1.055) ** 2.4
        for c in colour
    ]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def contrast(pair: list[list[float]]) -> float:
    lighter, darker = sorted((luminance(pair[0]), luminance(pair[1])), reverse=True)
    return (lighter + 0.05) / (darker + 0.05)


def look(message: EmailMessage, name: str, width: int, *, dark: bool = False) -> dict[str, Any]:
    """What a reader sees of ``message`` at ``width`` (in dark mode if ``dark``): widths,
    the top stories' titles, the mailto links and the colours (screenshot saved)."""
    with Chromium() as browser:
        page_file = mail_html_file(message, ARTIFACTS / f"{name}.html")
        page = browser.open(page_file.as_uri(), width=width)
        if dark:
            page.call(
                "Emulation.setEmulatedMedia",
                features=[{"name": "prefers-color-scheme", "value": "dark"}],
            )
        seen: dict[str, Any] = page.evaluate(
            f"({{sizes: {SIZES}, titles: {TOP_TITLES}, colours: {COLOURS},"
            " mailto: [...document.querySelectorAll('a[href^=\"mailto:\"]')].map(a => a.href)})"
        )
        page.screenshot(ARTIFACTS / f"{name}.png")
    return seen


@pytest.mark.parametrize("width", [375, 1280])
def test_top_story_titles_are_cut_at_200_characters(
    awkward_alerts: dict[str, tuple[EmailMessage, bytes]], width: int
) -> None:
    """A top story's title (marked, so composed piece by piece) was shown whole: 310 and
    342 characters, 15 lines on a phone, where the plain text and the compact list cut
    every title at 200."""
    for address, (message, _) in sorted(awkward_alerts.items()):
        seen = look(message, f"mail-clients-{address.split('@')[0]}-{width}", width)
        scroll, client = seen["sizes"]
        assert scroll <= client <= width
        titles = seen["titles"]
        # The awkward stories rank first; each title at most 200 characters.
        assert len(titles) == 5 and any(len(t) > 150 for t in titles), titles
        assert all(len(t) <= MAX_TITLE_CHARS for t in titles), [len(t) for t in titles]
        assert all(t.endswith("…") for t in titles if len(t) == MAX_TITLE_CHARS), titles


def test_the_footer_links_the_unsubscribe_address(
    awkward_alerts: dict[str, tuple[EmailMessage, bytes]],
) -> None:
    """The footer wrote the 90-character ``mailto:`` URI out as text (two lines on a
    phone, and no link in most clients); it is a link reading "unsubscribe" / "退订" to
    the URI of the List-Unsubscribe header, and the plain text keeps the URI."""
    for address, (message, _) in sorted(awkward_alerts.items()):
        seen = look(message, f"mail-clients-footer-{address.split('@')[0]}", 375)
        uri = str(message["List-Unsubscribe"]).strip("<>")
        assert seen["mailto"] == [uri]
        html_part = message.get_body(("html",))
        text_part = message.get_body(("plain",))
        assert html_part is not None and text_part is not None
        assert re.search(
            r'<a href="mailto:[^"]+"[^>]*>(unsubscribe|退订)</a>', html_part.get_content()
        )
        assert uri in text_part.get_content()


def test_the_mail_reads_in_dark_mode(
    awkward_alerts: dict[str, tuple[EmailMessage, bytes]],
) -> None:
    """A reader in dark mode got the white page; the mail is dark for them now, with
    every kind of text (body, muted, links, highlighted terms) at a contrast of 4.5 or
    more, and white as before for the others."""
    message, _ = awkward_alerts["duty@example.org"]
    light = look(message, "mail-clients-light", 375)["colours"]
    dark = look(message, "mail-clients-dark", 375, dark=True)["colours"]
    for colours in (light, dark):
        for what, pair in colours.items():
            assert pair is not None and contrast(pair) >= 4.5, (what, pair)
    assert luminance(light["column"][1]) > 0.9  # white by default
    assert luminance(dark["column"][1]) < 0.05, dark  # dark when the reader is


# Where the first "台湾" of the stories' snippets is drawn: its text colour and the
# background behind it (the nearest ancestor's that is not transparent), and the column's.
HIT_DRAWN = """(() => {
  const rgb = (value) => value.match(/[\\d.]+/g).map(Number);
  const background = (element) => {
    for (let e = element; e; e = e.parentElement) {
      const [r, g, b, a] = rgb(getComputedStyle(e).backgroundColor);
      if (a === undefined || a > 0) return [r, g, b];
    }
    return [255, 255, 255];
  };
  for (const snippet of document.querySelectorAll('li.story .snippet')) {
    const walker = document.createTreeWalker(snippet, NodeFilter.SHOW_TEXT);
    for (let node = walker.nextNode(); node; node = walker.nextNode()) {
      if (!node.data.includes('台湾')) continue;
      const element = node.parentElement;
      return {hit: [rgb(getComputedStyle(element).color).slice(0, 3), background(element)],
              column: background(document.querySelector('#alert-bar').parentElement)};
    }
  }
  return null;
})()"""
# What clients do to the mail's HTML: Outlook.com, its apps and Yahoo strip the tags of
# HTML5 elements they do not know, <mark> among them (caniemail, "HTML5 semantics");
# Outlook for Windows ignores them.
CLIENTS = {
    "as-sent": lambda html: html,
    "mark-stripped": lambda html: re.sub(r"</?mark\b[^>]*>", "", html),
}


@pytest.mark.parametrize("width", [375, 1280])
def test_the_topics_highlight_survives_clients_that_strip_mark(
    awkward_alerts: dict[str, tuple[EmailMessage, bytes]], width: int
) -> None:
    """The topic's hits in a snippet were a <mark> carrying the highlight's style; the
    clients that strip <mark> (Outlook.com, Outlook's apps, Yahoo) or ignore it (Outlook
    for Windows) dropped its style with it: the hits read as the text around them. The
    highlight is carried by a span inside the mark now: drawn where the mark is gone, in
    light and dark mode, at a contrast of 4.5 or more."""
    message, _ = awkward_alerts["duty@example.org"]
    sent = mail_html_file(message, ARTIFACTS / "mail-clients-hit.html").read_text("utf-8")
    for client, rewrite in CLIENTS.items():
        for dark in (False, True):
            name = f"mail-clients-hit-{client}-{'dark' if dark else 'light'}-{width}"
            page_file = ARTIFACTS / f"{name}.html"
            page_file.write_text(rewrite(sent), "utf-8")
            with Chromium() as browser:
                page = browser.open(page_file.as_uri(), width=width)
                if dark:
                    page.call(
                        "Emulation.setEmulatedMedia",
                        features=[{"name": "prefers-color-scheme", "value": "dark"}],
                    )
                drawn = page.evaluate(HIT_DRAWN)
                page.screenshot(ARTIFACTS / f"{name}.png")
            assert drawn is not None, name
            text, behind = drawn["hit"]
            assert behind != drawn["column"], (name, drawn)  # highlighted
            assert contrast([text, behind]) >= 4.5, (name, drawn)


def test_the_count_is_within_what_an_inbox_shows_of_the_subject(
    awkward_alerts: dict[str, tuple[EmailMessage, bytes]],
) -> None:
    """A 200-character topic name was cut at 80 in the subject, which put the count at
    character 95: past what any inbox shows. The name is cut at 30 now. The headers as
    received: UTF-8 encoded words read back exactly, no line over 78, and the list, date
    and identity headers."""
    for address, (message, raw) in awkward_alerts.items():
        subject = str(message["Subject"])
        count = re.search(r"\d+ (?:stories|篇报道)", subject)
        assert count is not None and count.start() < PHONE_SUBJECT_CHARS, subject
        assert len(subject) <= 100 and "\n" not in subject and "\r" not in subject
        head = raw.split(b"\r\n\r\n", 1)[0].decode("ascii")  # all ASCII: encoded words
        # No line over 78 but the unsubscribe URI's, which may not be broken (see
        # test_headers_as_received_follow_the_rfcs_bulk_senders_are_held_to).
        assert all(
            len(line) <= 78 or line.startswith("List-Unsubscribe: <mailto:")
            for line in head.split("\r\n")
        ), head
        assert "=?utf-8?" in head.split("Subject:", 1)[1].split("\r\n")[0]
        assert message["To"] == address and message["Date"] and message["Message-ID"]
        assert message["List-Id"] == "mediamon taiwan <taiwan.mediamon.mediamon.example>"
        assert str(message["List-Unsubscribe"]).startswith("<mailto:leave@mediamon.example?")


def test_a_digest_of_topics_with_long_names_keeps_its_subject_short() -> None:
    """Five topics of long names: the subject named four of 40 characters each, 215
    characters in all. Now those that fit in 48 characters, each cut at 30, and how many
    more; the received subject says the count first."""
    end = AT + timedelta(hours=2)
    sections = tuple(
        TopicStories(
            f"t{k}",
            f"{k} {awkward.TOPIC_NAME}",
            (
                StoryItem(
                    story_id=k,
                    title=f"台湾新闻 {k}",
                    url=f"https://example.org/{k}",
                    outlet="cna",
                    published_at=end - timedelta(minutes=k),
                ),
            ),
        )
        for k in range(5)
    )
    digest = DigestMail("daily", end - timedelta(days=1), end, (), sections)
    sink = Sink()
    with serve_smtp(sink) as port:
        for locale in ("en", "zh-CN"):
            smtp_send(port)(
                digest_message(
                    digest, Reader(f"{locale}@example.org", locale), OPTIONS, sender="m@x.org"
                )
            )
    for _, _, raw in sink.messages:
        subject = str(email.message_from_bytes(raw, policy=default_policy)["Subject"])
        assert len(subject) <= 100, (len(subject), subject)
        assert subject.endswith(("and 4 more)", "及另外 4 个话题）")), subject
        assert re.search(r"5 (new stories|篇新报道)", subject[:PHONE_SUBJECT_CHARS]), subject


HEBREW = "מתיחות סביב טייוואן!"  # "tension around Taiwan!"
ARABIC = "ما الذي يحدث في تايوان؟"  # "what is happening in Taiwan?"
# The left and right of an element's text as drawn, and of the element.
TEXT_EDGES = """((selector) => {
  const element = document.querySelector(selector);
  const range = document.createRange();
  range.selectNodeContents(element);
  const text = range.getBoundingClientRect(), box = element.getBoundingClientRect();
  return [text.left, text.right, box.left, box.right];
})"""


def test_right_to_left_titles_and_snippets_read_from_the_right() -> None:
    """A Hebrew or Arabic title shown in full took the list's left-to-right direction:
    "מתיחות סביב טייוואן!" drew its "!" at the right, where a Hebrew reader starts, and
    the Arabic "؟" likewise; its snippet, a line of its own, began at the left. Each
    takes the direction of its first letter now."""
    end = AT + timedelta(hours=2)
    rules = [parse_rule("טייוואן"), parse_rule("تايوان")]
    stories = tuple(
        StoryItem(
            story_id=index,
            title=title,
            url=f"https://example.org/{index}",
            outlet="ynet",
            published_at=end - timedelta(minutes=index),
            title_hits=1,
            mentions=2,
            title_snippet=mark_hits(rules, title),
            snippet=make_snippet(rules, f"{title} {title}"),
        )
        for index, title in enumerate((HEBREW, ARABIC), 1)
    )
    mail = AlertMail(
        alert_id=1,
        topic_key="taiwan",
        topic_name="טייוואן",
        window_start=end - timedelta(hours=1),
        window_end=end,
        observed=2,
        expected=0.1,
        p_value=1e-5,
        total_stories=9,
        stories=stories,
    )
    sink = Sink()
    with serve_smtp(sink) as port:
        smtp_send(port)(alert_message(mail, Reader("duty@example.org"), OPTIONS, sender="m@x.org"))
    message = email.message_from_bytes(sink.messages[0].content, policy=default_policy)
    assert isinstance(message, EmailMessage)
    with Chromium() as browser:
        page = browser.open(
            mail_html_file(message, ARTIFACTS / "mail-clients-rtl.html").as_uri(), width=375
        )
        hebrew = page.evaluate(f"{DRAWN}('li.story[data-story=\"1\"] > a', ['מתיחות', '!'])")
        arabic = page.evaluate(f"{DRAWN}('li.story[data-story=\"2\"] > a', ['ما', '؟'])")
        snippet = page.evaluate(f"{TEXT_EDGES}('li.story[data-story=\"1\"] .snippet')")
        page.screenshot(ARTIFACTS / "mail-clients-rtl.png")
    for found in (hebrew, arabic):
        first_word, mark = found["drawn"]
        assert mark[1] <= first_word[0] + 0.5, found  # the closing mark left of the start
    text_left, text_right, box_left, box_right = snippet
    assert abs(text_right - box_right) < 2 and text_left - box_left > 20, snippet


FLAGS = "台湾" + "🇹🇼" * 20  # a topic name of flags, two code points each
FAMILIES = "台湾" + "👨\u200d👩\u200d👧\u200d👦" * 40  # seven code points each


def test_a_cut_never_splits_an_emoji() -> None:
    """A name or title is cut at a number of code points, which split what a reader sees
    as one character: a topic name of flags cut at 30 in the subject ended in half a flag
    (a lone regional indicator, drawn as a letter in a box), a title of emoji families cut
    at 200 in a joiner (a family of two). Cuts fall between characters now."""
    end = AT + timedelta(hours=2)
    story = StoryItem(
        story_id=1,
        title=FAMILIES,
        url="https://example.org/1",
        outlet="cna",
        published_at=end - timedelta(minutes=1),
        title_hits=1,
        mentions=2,
        title_snippet=mark_hits([parse_rule("台湾")], FAMILIES),
    )
    mail = AlertMail(
        alert_id=1,
        topic_key="flags",
        topic_name=FLAGS,
        window_start=end - timedelta(hours=1),
        window_end=end,
        observed=1,
        expected=0.1,
        p_value=1e-5,
        total_stories=9,
        stories=(story,),
    )
    sink = Sink()
    with serve_smtp(sink) as port:
        smtp_send(port)(alert_message(mail, Reader("duty@example.org"), OPTIONS, sender="m@x.org"))
    message = email.message_from_bytes(sink.messages[0].content, policy=default_policy)
    assert isinstance(message, EmailMessage)
    subject = str(message["Subject"])
    flags = re.findall("[\U0001f1e6-\U0001f1ff]+", subject)
    assert flags and all(len(run) % 2 == 0 for run in flags), subject  # whole flags
    assert "…:" in subject  # the name was cut
    html_part, text_part = message.get_body(("html",)), message.get_body(("plain",))
    assert html_part is not None and text_part is not None
    for part in (html_part.get_content(), text_part.get_content()):
        cut = re.search("[\U0001f466\u200d](?=…)", part)  # what precedes the cut's "…"
        assert cut is not None and cut.group() == "👦", part[:300]


# Characters of several code points that are neither emoji nor a letter and its marks:
# Hangul written as jamo (각 = ᄀ + ᅡ + ᆨ), half-width katakana and its voiced mark
# (ｶﾞ), Thai with SARA AM (ก + ำ), a keycap (1 + VS16 + U+20E3).
SPLIT_PRONE = {
    "jamo": "\u1100\u1161\u11a8",
    "kana": "\uff76\uff9e",
    "thai": "\u0e01\u0e33",
    "keycap": "1\ufe0f\u20e3",
}


@pytest.mark.parametrize("kind", sorted(SPLIT_PRONE))
def test_every_cut_in_a_mail_falls_between_grapheme_clusters(kind: str) -> None:
    """The cut knew emoji, flags and combining marks only: a topic name or title of
    Hangul jamo was cut in the middle of a syllable ("가…" where "각" was written), of
    half-width katakana before its voiced mark ("ｶ…" for "ｶﾞ"), in the subject, the
    heading, the plain text and the HTML. Every cut now falls between grapheme clusters
    (UAX #29), the regex module's ``\\X``."""
    unit = SPLIT_PRONE[kind]
    name, title = "台湾" + unit * 60, "台湾 " + unit * 150
    end = AT + timedelta(hours=2)
    stories = tuple(
        StoryItem(
            story_id=i,
            title=title,
            url=f"https://example.org/{i}",
            outlet="cna",
            published_at=end - timedelta(minutes=i),
            title_hits=1,
            mentions=2,
            title_snippet=mark_hits([parse_rule("台湾")], title),
            snippet=make_snippet([parse_rule("台湾")], ("台湾 " + unit * 100 + "。") * 3),
        )
        for i in range(1, 12)
    )
    mail = AlertMail(
        alert_id=1,
        topic_key="split",
        topic_name=name,
        window_start=end - timedelta(hours=1),
        window_end=end,
        observed=11,
        expected=0.1,
        p_value=1e-5,
        total_stories=30,
        stories=stories,
    )
    sink = Sink()
    with serve_smtp(sink) as port:
        for locale in ("en", "zh-CN"):
            reader = Reader(f"{locale}@example.org", locale)
            smtp_send(port)(alert_message(mail, reader, OPTIONS, sender="m@x.org"))
    assert len(sink.messages) == 2
    for received in sink.messages:
        message = email.message_from_bytes(received.content, policy=default_policy)
        assert isinstance(message, EmailMessage)
        html_part, text_part = message.get_body(("html",)), message.get_body(("plain",))
        assert html_part is not None and text_part is not None
        parts = {
            "subject": str(message["Subject"]),
            "text": text_part.get_content(),
            "html": html.unescape(html_part.get_content()),
        }
        assert "…" in parts["subject"]  # the name was cut
        for where, content in parts.items():
            before_cuts = regex.findall(r"(\X)(?=…)", content)
            assert before_cuts and set(before_cuts) <= {unit, "台湾"[-1], " "}, (
                where,
                {c for c in before_cuts if c != unit},
            )


LONG_UNSUBSCRIBE = "unsubscribe-requests@mediamon-alerts.newsroom.example.org"
CHINESE_SENDER = "媒体监测 台湾组 <alerts@example.org>"


def unfolded_headers(raw: bytes) -> list[tuple[str, str]]:
    """The header fields as received, each unfolded (RFC 5322 2.2.3) and not decoded."""
    head = raw.split(b"\r\n\r\n", 1)[0].decode("ascii")
    fields = re.sub(r"\r\n(?=[ \t])", "", head).split("\r\n")
    return [(name, value.strip()) for name, _, value in (f.partition(":") for f in fields)]


def test_headers_as_received_follow_the_rfcs_bulk_senders_are_held_to() -> None:
    """Every kind of mail (alert, digest, incident, task failure, weekly report) as the
    SMTP server received it through the mediamon_smtp sender, From a Chinese name.
    Before: List-Unsubscribe, a word of 80 characters and more that the email package
    cannot fold at 78, was written as RFC 2047 encoded words
    (`=?utf-8?q?=3Cmailto=3Aleave=40…?=`), which no client reads as a URI: no unsubscribe
    button in Gmail or Yahoo, which ask bulk senders for one; List-Id the same with a long
    domain. No Precedence and no X-Auto-Response-Suppress, which responders older than
    RFC 3834's Auto-Submitted, and Exchange's, read. Now the angle-bracketed values are
    written as they are (folded at a space), the list mails say `Precedence: list`, all
    say `X-Auto-Response-Suppress: All`; and, as before, one Date and Message-ID each,
    the Chinese name as an encoded word, no line over 998, no bare CR or LF."""
    end = AT + timedelta(hours=2)
    options = MailOptions(timezone="Asia/Shanghai", unsubscribe_address=LONG_UNSUBSCRIBE)
    story = StoryItem(
        story_id=1,
        title="台湾" * 300,
        url="https://example.org/1",
        outlet="cna",
        published_at=end,
        title_hits=1,
        mentions=3,
        title_snippet=mark_hits([parse_rule("台湾")], "台湾" * 300),
        snippet=make_snippet([parse_rule("台湾")], "台湾" * 2000),
    )
    alert = AlertMail(
        alert_id=7,
        topic_key="taiwan",
        topic_name="台湾",
        window_start=end - timedelta(hours=1),
        window_end=end,
        observed=9,
        expected=0.5,
        p_value=1e-6,
        total_stories=1,
        stories=(story,),
    )
    digest = DigestMail(
        "daily", end - timedelta(days=1), end, (), (TopicStories("taiwan", "台湾", (story,)),)
    )
    reader = Reader("desk.editor.on.duty@newsroom.example.org", "zh-CN")
    ops = ["ops@example.org"]
    mails = {
        "alert": alert_message(alert, reader, options, sender=CHINESE_SENDER),
        "digest": digest_message(digest, reader, options, sender=CHINESE_SENDER),
        "incident": ops_mail.incident_message(incident(), False, CHINESE_SENDER, ops, zone=UTC),
        "task-failure": ops_mail.task_failure_message(task_failure(), CHINESE_SENDER, ops),
        "report": ops_mail.report_message(
            [{"source": "cna", "polls": 672}], end - timedelta(days=7), end, CHINESE_SENDER,
            ops, zone=UTC,
        ),
    }  # fmt: skip
    sink = Sink()
    with serve_smtp(sink) as port:
        send = smtp_sender(
            connection_settings(
                {"host": "127.0.0.1", "port": port,
                 "extra": {"disable_ssl": True, "disable_tls": True}}
            )
        )  # fmt: skip
        for message in mails.values():
            send(message)
    assert len(sink.messages) == len(mails)
    for kind, (_, _, raw) in zip(mails, sink.messages, strict=True):
        lines = raw.split(b"\r\n")
        assert not any(b"\r" in line or b"\n" in line for line in lines), kind  # bare CR/LF
        assert max(len(line) for line in lines) <= 998, kind
        fields = unfolded_headers(raw)
        names = [name.lower() for name, _ in fields]
        values = {name.lower(): value for name, value in fields}
        if kind in ("alert", "digest"):
            list_name = "taiwan" if kind == "alert" else "digest-daily"
            assert values["list-unsubscribe"] == (
                f"<mailto:{LONG_UNSUBSCRIBE}?subject=unsubscribe%20{list_name}%20"
                "desk.editor.on.duty%40newsroom.example.org>"
            ), kind
            assert values["list-id"] == (
                f"mediamon {list_name} <{list_name}.mediamon.mediamon-alerts.newsroom.example.org>"
            ), kind
            assert values["precedence"] == "list", kind
        else:
            assert "list-unsubscribe" not in values and "precedence" not in values, kind
        assert names.count("date") == 1 and names.count("message-id") == 1, kind
        assert re.fullmatch(r"<[^<>@\s]+@[^<>@\s]+>", values["message-id"]), kind
        assert values["auto-submitted"] == "auto-generated", kind
        assert values["x-auto-response-suppress"] == "All", kind
        assert values["from"].startswith("=?utf-8?"), kind  # the name an encoded word
        parsed = email.message_from_bytes(raw, policy=default_policy)
        assert parsed["From"].addresses[0].display_name == "媒体监测 台湾组", kind
