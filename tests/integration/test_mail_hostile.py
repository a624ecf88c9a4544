"""Alert mails as a recipient reads them, audited next to Google Alerts with hostile
article data and awkward delivery: sent through a real SMTP server, rendered in headless
chromium at a phone's (390 px) and a desktop's (1280 px) width, light and dark.
Screenshots are saved to var/test-artifacts/mail-hostile-*.png.
"""

from __future__ import annotations

import email
import re
from datetime import timedelta
from email.message import EmailMessage
from email.policy import default as default_policy
from typing import Any

import pytest

from mediamon.alerts.compose import AlertMail, Reader, alert_message
from mediamon.alerts.snippet import make_snippet, mark_hits
from mediamon.alerts.stories import StoryItem
from mediamon.topics.rules import parse_rule
from tests.integration.test_alert_stages import AT
from tests.integration.test_mail_clients import OPTIONS, contrast
from tests.support.browser import ARTIFACTS, Chromium, mail_html_file
from tests.support.smtp_server import Sink, serve_smtp, smtp_send

TAIWAN = [parse_rule("台湾")]
END = AT + timedelta(hours=2)

# Every piece of text as drawn: its colour, the background it is drawn on (the nearest
# ancestor's that is not transparent), its element's right edge and its first letters.
TEXTS = """(() => {
  const rgb = (value) => value.match(/[\\d.]+/g).map(Number);
  const background = (element) => {
    for (let e = element; e; e = e.parentElement) {
      const [r, g, b, a] = rgb(getComputedStyle(e).backgroundColor);
      if (a === undefined || a > 0) return [r, g, b];
    }
    return [255, 255, 255];
  };
  const seen = [];
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  while (walker.nextNode()) {
    const node = walker.currentNode, element = node.parentElement;
    const box = element.getBoundingClientRect();
    if (!node.data.trim() || box.width === 0 || box.height <= 1) continue;  // the preheader
    seen.push({text: node.data.trim().slice(0, 40),
               colours: [rgb(getComputedStyle(element).color).slice(0, 3), background(element)]});
  }
  return {texts: seen, scrollWidth: document.documentElement.scrollWidth, innerWidth};
})()"""


def story(index: int, title: str, **changes: Any) -> StoryItem:
    base: dict[str, Any] = {
        "story_id": index,
        "title": title,
        "url": f"https://example.org/{index}",
        "outlet": "cna",
        "published_at": END - timedelta(minutes=index),
        "title_hits": 1,
        "mentions": 2,
        "title_snippet": mark_hits(TAIWAN, title),
        "snippet": make_snippet(TAIWAN, f"{title}。台湾局势。"),
    }
    return StoryItem(**{**base, **changes})


def alert(*stories: StoryItem, **changes: Any) -> AlertMail:
    base: dict[str, Any] = {
        "alert_id": 1,
        "topic_key": "taiwan",
        "topic_name": "台湾",
        "window_start": END - timedelta(hours=1),
        "window_end": END,
        "observed": len(stories),
        "expected": 0.1,
        "p_value": 1e-5,
        "total_stories": 30,
        "stories": stories,
    }
    return AlertMail(**{**base, **changes})


def received(mail: AlertMail, **sending: Any) -> dict[str, EmailMessage]:
    """``mail`` sent to an English and a Chinese reader through a real SMTP server: the
    messages as received, by locale."""
    sink = Sink()
    with serve_smtp(sink) as port:
        for locale in ("en", "zh-CN"):
            reader = Reader(f"{locale}@example.org", locale)
            smtp_send(port)(alert_message(mail, reader, OPTIONS, sender="m@x.org", **sending))
    got = {}
    for _, recipients, raw in sink.messages:
        message = email.message_from_bytes(raw, policy=default_policy)
        assert isinstance(message, EmailMessage)
        got[recipients[0].split("@")[0]] = message
    return got


def drawn(message: EmailMessage, name: str, width: int, *, dark: bool) -> dict[str, Any]:
    """What a reader sees of ``message`` at ``width``, light or dark (screenshot saved)."""
    with Chromium() as browser:
        page_file = mail_html_file(message, ARTIFACTS / f"mail-hostile-{name}.html")
        page = browser.open(page_file.as_uri(), width=width)
        if dark:
            page.call(
                "Emulation.setEmulatedMedia",
                features=[{"name": "prefers-color-scheme", "value": "dark"}],
            )
        seen: dict[str, Any] = page.evaluate(TEXTS)
        page.screenshot(ARTIFACTS / f"mail-hostile-{name}.png")
    return seen


@pytest.mark.parametrize("width", [390, 1280])
def test_a_late_alerts_note_reads_in_dark_mode(width: int) -> None:
    """An alert mailed hours late (the mail server down) says so in a note on a pale
    amber background set inline; in dark mode the mail's text turns light (#e8eaed) and
    the note's background stayed pale: light grey on cream, a contrast of about 1.2:1, so
    the one line saying the news is old could not be read. Every text of the mail now
    reads at 4.5:1 or more (WCAG AA), light and dark."""
    late = alert(story(1, "台湾新闻"), raised_at=END, raised_ago=timedelta(hours=3, minutes=5))
    for locale, message in received(late, sent_at=END + timedelta(hours=3)).items():
        assert "3" in str(message["Subject"])  # "(sent 3 hours late)"
        for dark in (False, True):
            name = f"late-{locale}-{width}{'-dark' if dark else ''}"
            seen = drawn(message, name, width, dark=dark)
            assert seen["scrollWidth"] <= seen["innerWidth"], name
            faint = [
                (t["text"], round(contrast(t["colours"]), 2))
                for t in seen["texts"]
                if contrast(t["colours"]) < 4.5
            ]
            assert faint == [], (name, faint)


# What Gmail shows of a mail's HTML before it clips it ("[Message clipped]  View entire
# message"): 102 kB; past it, the footer and its unsubscribe link are not shown.
GMAIL_CLIPS_AT = 102 * 1024
# The footer's unsubscribe link and the list's count of what it leaves out, as drawn.
FOOTER = """(() => ({
  unsubscribe: [...document.querySelectorAll('.footer a[href^="mailto:"]')].length,
  stories: document.querySelectorAll('li.story').length,
}))()"""


@pytest.mark.parametrize("width", [390, 1280])
def test_an_alert_of_long_titles_and_links_is_not_clipped_by_gmail(width: int) -> None:
    """An alert lists up to 105 stories; each title cut at 200 characters and each link
    as long as ingest stores (1,900 characters, a tracking URL) made 294 kB of HTML, so
    Gmail showed "[Message clipped]" a third of the way down: the stories after it, the
    statistics, the footer and its unsubscribe link hidden. The list is cut to fit in
    90 kB, the top five in full, and the rest counted with the page's link."""
    stories = tuple(
        story(i, "台湾 " + "长标题" * 100, url=f"https://example.org/{i}/" + "y" * 1900)
        for i in range(1, 106)
    )
    for locale, message in received(alert(*stories)).items():
        html_part = message.get_body(("html",))
        text_part = message.get_body(("plain",))
        assert html_part is not None and text_part is not None
        assert len(html_part.get_content().encode("utf-8")) <= GMAIL_CLIPS_AT
        more = [line for line in text_part.get_content().splitlines() if "mediamon/?topic=" in line]
        # "77 more stories: https://…" (the stories not listed), "另有 77 篇报道：https://…"
        assert more and 50 <= int(re.findall(r"\d+", more[0])[0]) < 100, more
        name = f"long-{locale}-{width}"
        seen = drawn(message, name, width, dark=False)
        assert seen["scrollWidth"] <= seen["innerWidth"], name
        with Chromium() as browser:
            page = browser.open((ARTIFACTS / f"mail-hostile-{name}.html").as_uri(), width=width)
            footer = page.evaluate(FOOTER)
        assert footer["unsubscribe"] >= 1 and 5 <= footer["stories"] < 105, footer


# A feed item's link as long as ingest takes it (mediamon.limits.MAX_URL_CHARS: 2,048),
# a tracking URL; and one of Chinese words, each letter nine characters as a URI.
LONG_LINK = "https://news.example.org/a?utm=" + "x" * (2040 - 31)
CHINESE_LINK = "https://例子.中国/新闻/" + "台湾海峡局势最新消息" * 25
LINKS = """[...document.querySelectorAll('li.story')].map(
  li => (li.querySelector('a[href]') || {}).href || null)"""


@pytest.mark.parametrize("width", [390, 1280])
def test_stories_with_links_as_long_as_ingest_stores_are_linked(width: int) -> None:
    """The mail made a link of at most 2,000 characters, and ingest stores links of up
    to 2,048: a story whose feed gave a 2,040-character tracking link, or a link of 250
    Chinese letters (2,264 characters written as a URI), was listed with no link at
    all, its title plain text in the HTML and no URL in the plain text: the reader had
    no way to the story. Both are links now, in both parts."""
    stories = (
        story(1, "台湾新闻 长链接", url=LONG_LINK),
        story(2, "台湾新闻 中文链接", url=CHINESE_LINK),
        story(3, "台湾新闻 普通链接"),
    )
    for locale, message in received(alert(*stories)).items():
        text_part = message.get_body(("plain",))
        assert text_part is not None
        urls = [line.strip() for line in text_part.get_content().splitlines()]
        assert LONG_LINK in urls, locale
        assert any(u.startswith("https://xn--fsqu00a.xn--fiqs8s/%E6%96%B0") for u in urls)
        name = f"links-{locale}-{width}"
        seen = drawn(message, name, width, dark=False)
        assert seen["scrollWidth"] <= seen["innerWidth"], name
        with Chromium() as browser:
            page = browser.open((ARTIFACTS / f"mail-hostile-{name}.html").as_uri(), width=width)
            links = page.evaluate(LINKS)
        assert links[0] == LONG_LINK, links
        assert links[1] is not None and links[1].startswith("https://xn--fsqu00a.xn--fiqs8s/")
        assert links[2] == "https://example.org/3"


# Each story's snippet and meta line, as drawn.
STORY_TEXTS = """[...document.querySelectorAll('li.story')].map(li => ({
  title: (li.querySelector('b') || li).innerText,
  meta: (li.querySelector('.muted') || {}).innerText || '',
  snippet: (li.querySelector('.snippet') || {}).innerText || '',
  link: (li.querySelector('a[href]') || {}).href || null}))"""


def drawn_stories(message: EmailMessage, name: str, width: int) -> list[dict[str, Any]]:
    """Each story of ``message`` as chromium draws it at ``width`` (screenshot saved)."""
    seen = drawn(message, name, width, dark=False)
    assert seen["scrollWidth"] <= seen["innerWidth"], name
    with Chromium() as browser:
        page = browser.open((ARTIFACTS / f"mail-hostile-{name}.html").as_uri(), width=width)
        stories: list[dict[str, Any]] = page.evaluate(STORY_TEXTS)
    return stories


# Text as published that holds semicolons inside its sentences: an entity escaped twice
# by a feed (text of "台湾 &amp; 美国"), and a Chinese sentence whose clauses a "；" joins.
ENTITY_SENTENCE = (
    "台湾 &amp;amp; 美国官员周二在华盛顿举行第三轮会谈，双方讨论了芯片出口管制和两岸局势。"
)
ENTITY_BODY = ENTITY_SENTENCE + "下一句不在摘要里。"
CLAUSE_BODY = (
    "他们建议，台湾海峡两岸应恢复和扩大各层级交流，增进互信，减少误判风险；"
    "国际社会也应发挥建设性作用。"
)


@pytest.mark.parametrize("width", [390, 1280])
def test_a_snippet_runs_on_past_semicolons_to_the_sentences_end(width: int) -> None:
    """A snippet stopped at every ";" or "；", as if it ended a sentence: a body of
    "台湾 &amp;amp; 美国官员……" (an entity a feed escaped twice) had the snippet
    "台湾 &amp;amp;", and a Chinese sentence whose two clauses a "；" joins lost its
    second half. A snippet is the sentence around the hit, as Google Alerts shows it."""
    stories = (
        story(1, "台湾新闻", snippet=make_snippet(TAIWAN, ENTITY_BODY)),
        story(2, "台湾新闻 二", snippet=make_snippet(TAIWAN, CLAUSE_BODY)),
    )
    for locale, message in received(alert(*stories)).items():
        text_part = message.get_body(("plain",))
        assert text_part is not None
        plain = text_part.get_content()
        # The hit marked 【台湾】 in the plain text.
        assert (
            "】 &amp;amp; 美国官员周二在华盛顿举行第三轮会谈，双方讨论了芯片出口管制和两岸局势。"
            in plain
        )
        assert "下一句" not in plain
        drawn_list = drawn_stories(message, f"semicolon-{locale}-{width}", width)
        assert drawn_list[0]["snippet"].replace("\n", "") == ENTITY_SENTENCE, locale
        assert drawn_list[1]["snippet"].replace("\n", "") == CLAUSE_BODY


@pytest.mark.parametrize("width", [390, 1280])
def test_a_title_after_900_blanks_shows_its_words(width: int) -> None:
    """A title was cut to 864 characters before its blanks were squeezed: one stored
    with 900 spaces, tabs or line breaks before its words (a row older than ingest's
    clean-up) was all blanks, and the mail listed "(no title)", in the top stories and
    in the compact list alike."""
    title = " \t\n" * 300 + "台湾海峡 新闻标题"
    stories = tuple(
        story(i, title, title_snippet=None, url=f"https://example.org/{i}") for i in range(1, 8)
    )
    for locale, message in received(alert(*stories)).items():
        text_part = message.get_body(("plain",))
        assert text_part is not None
        plain = text_part.get_content()
        assert plain.count("台湾海峡 新闻标题") == 7, locale
        assert "(no title)" not in plain and "无标题" not in plain
        for drawn_story in drawn_stories(message, f"blank-title-{locale}-{width}", width):
            assert drawn_story["title"].startswith("台湾海峡 新闻标题"), drawn_story


@pytest.mark.parametrize("width", [390, 1280])
def test_a_story_without_a_link_names_its_outlets_site(width: int) -> None:
    """A story whose link is missing, not http(s) or longer than a mail links was listed
    with its outlet's name alone: no way to the story. Google Alerts names a result's
    domain; the mail names the outlet's site (the domain of its feed's URL, escaped)
    beside the outlet where the story has no link, and only there."""
    stories = (
        story(1, "台湾新闻 无链接", url="", site="dw.com"),
        story(2, "台湾新闻 FTP", url="ftp://files.example.org/a", site="dw.com"),
        story(3, "台湾新闻 超长", url="https://example.org/" + "y" * 9000, site="dw.com"),
        story(4, "台湾新闻 <b>", url="", site="<b>x.org</b>"),
        story(5, "台湾新闻 有链接", site="dw.com"),
    )
    for locale, message in received(alert(*stories)).items():
        text_part = message.get_body(("plain",))
        html_part = message.get_body(("html",))
        assert text_part is not None and html_part is not None
        plain = text_part.get_content()
        assert plain.count("cna (dw.com)") == 3, locale
        assert "<b>x.org</b>" not in html_part.get_content()
        drawn_list = drawn_stories(message, f"site-{locale}-{width}", width)
        for drawn_story in drawn_list[:3]:
            assert drawn_story["link"] is None
            assert drawn_story["meta"].startswith("cna (dw.com)"), drawn_story
        assert drawn_list[3]["meta"].startswith("cna (<b>x.org</b>)")
        assert drawn_list[4]["link"] == "https://example.org/5"
        assert "dw.com" not in drawn_list[4]["meta"]
