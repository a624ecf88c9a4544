"""The alert mail as a recipient sees it: sent through a real SMTP server from a real
PostgreSQL, parsed, and rendered in headless chromium at phone and desktop widths.

Screenshots are saved to var/test-artifacts/ (look at them: the chart must be legible).
"""

from __future__ import annotations

import email
import itertools
import re
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.policy import default as default_policy
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from mediamon.alerts.compose import MailOptions, Reader
from mediamon.alerts.deliver import deliver_pending
from mediamon.alerts.digest_mail import DigestMail, TopicStories, digest_message, render_digest_mail
from mediamon.alerts.render import FSI, PDI
from mediamon.alerts.stories import StoryItem
from mediamon.text import fold
from mediamon.topics.definitions import TopicSet
from mediamon.topics.file import parse_topics
from mediamon.topics.store import sync_topics
from tests.integration.test_alert_stages import AT, EVIL, alert_on_burst, rows
from tests.support import awkward
from tests.support.browser import ARTIFACTS, Chromium, mail_html_file
from tests.support.smtp_server import Sink, serve_smtp, smtp_send

TOPICS_YAML = """\
version: 1
defaults:
  thresholds: {min_stories: 4, min_lift: 2.0, max_p_value: 0.0001, cooldown_hours: 6}
topics:
  - key: taiwan
    name: 台湾
    terms: [台湾, Taiwan]
    recipients:
      - {address: desk@example.org, mode: immediate, locale: zh-CN}
      - {address: duty@example.org, mode: immediate, locale: en, timezone: America/Chicago}
"""
OPTIONS = MailOptions(timezone="Asia/Shanghai", unsubscribe_address="leave@mediamon.example")
TIME_WITH_OFFSET = re.compile(
    r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}(?:–\d{2}:\d{2})? \(UTC[+-]\d{2}:\d{2}\)"
)
CLOCK = re.compile(r"(?<!UTC[+-])\d{2}:\d{2}")  # a clock time, not an offset


@pytest.fixture()
def mails(engine: sa.Engine) -> Iterator[dict[str, EmailMessage]]:
    """The burst's alert, delivered to both recipients; their received mails by address."""
    topics: TopicSet = parse_topics(TOPICS_YAML, "topics.yaml")
    sync_topics(engine, topics)
    assert len(alert_on_burst(engine, topics)) == 1
    sink = Sink()
    with serve_smtp(sink) as port:
        deliver_pending(
            engine, smtp_send(port), AT + timedelta(minutes=5), topics=topics, options=OPTIONS
        )
    received = {}
    for _, recipients, raw in sink.messages:
        message = email.message_from_bytes(raw, policy=default_policy)
        assert isinstance(message, EmailMessage)
        received[recipients[0]] = message
    yield received


def window_story_ids(engine: sa.Engine) -> list[int]:
    """Every story (root article) of the alert window that mentions the topic."""
    return sorted(
        r[0]
        for r in rows(
            engine,
            "select distinct coalesce(a.duplicate_of, a.article_id) from mentions m"
            " join articles a on a.article_id = m.article_id"
            " join articles r on r.article_id = coalesce(a.duplicate_of, a.article_id)"
            " join alerts al on al.topic = m.topic"
            " where least(coalesce(r.published_at, r.first_seen_at), r.first_seen_at)"
            "  >= al.window_start"
            " and least(coalesce(r.published_at, r.first_seen_at), r.first_seen_at)"
            "  < al.window_end",
        )
    )


LAYOUT = """(() => {
  const root = document.documentElement;
  const bar = document.getElementById('alert-bar').getBoundingClientRect();
  const chart = document.querySelector('img.chart');
  const box = chart.getBoundingClientRect();
  return {
    scrollWidth: root.scrollWidth, clientWidth: root.clientWidth, innerWidth: innerWidth,
    bar: [bar.left, bar.right, bar.top, bar.width, bar.height],
    chart: [box.left, box.right, box.width, box.height, chart.naturalWidth, chart.complete],
    stories: [...document.querySelectorAll('li.story')].map(e => Number(e.dataset.story)),
    full: [...document.querySelectorAll('li.story:not(.compact)')].map(
      e => [...e.querySelectorAll('.snippet mark')].map(m => m.textContent)),
    fontSize: parseFloat(getComputedStyle(document.querySelector('.mm-mail')).fontSize),
  };
})()"""


# Every UTC offset in the mail's text that the browser drew across two lines.
SPLIT_OFFSETS = r"""(() => {
  const walker = document.createTreeWalker(
    document.querySelector('.mm-mail'), NodeFilter.SHOW_TEXT);
  const split = [];
  while (walker.nextNode()) {
    const node = walker.currentNode;
    for (const found of node.data.matchAll(/UTC[+-]\d{2}:\d{2}/g)) {
      const range = document.createRange();
      range.setStart(node, found.index);
      range.setEnd(node, found.index + found[0].length);
      const tops = new Set([...range.getClientRects()].map(r => Math.round(r.top)));
      if (tops.size > 1) split.push(node.parentElement.textContent);
    }
  }
  return split;
})()"""


@pytest.mark.parametrize("width", [390, 1280])
def test_alert_mail_in_chromium(
    engine: sa.Engine, mails: dict[str, EmailMessage], width: int, tmp_path: Path
) -> None:
    expected_ids = window_story_ids(engine)
    assert len(expected_ids) == 10  # the burst's stories; its syndicated copies fold in
    with Chromium() as browser:
        for address, message in sorted(mails.items()):
            name = f"alert-{address.split('@')[0]}-{width}"
            page_file = mail_html_file(message, ARTIFACTS / f"{name}.html")
            page = browser.open(page_file.as_uri(), width=width)
            layout: dict[str, Any] = page.evaluate(LAYOUT)
            page.screenshot(ARTIFACTS / f"{name}.png")
            # "(times UTC-06:00)" under the stories' heading was broken after the hyphen
            # at 390 px: "UTC-" on one line, "06:00)" on the next.
            assert page.evaluate(SPLIT_OFFSETS) == [], name

            # No horizontal scrolling (a desktop scroll bar may take a few pixels).
            assert layout["scrollWidth"] <= layout["clientWidth"] <= width, layout
            left, right, top, bar_width, bar_height = layout["bar"]
            assert left >= 0 and right <= width and top >= 0 and bar_width > 0 and bar_height > 0
            c_left, c_right, c_width, c_height, natural, complete = layout["chart"]
            assert complete and c_left >= 0 and c_right <= width, layout["chart"]
            # Shown at most at half its pixel width: crisp on a 2x screen; and the whole
            # chart (its red alert bar is at the right end) is on screen at 390 px too.
            assert natural >= 2 * c_width - 1 and c_width >= min(560, width - 40) - 1
            assert c_height > 100
            assert sorted(layout["stories"]) == expected_ids  # each story once
            assert len(layout["full"]) == 5  # the top five in full, the rest compact
            for marks in layout["full"]:
                assert marks and all(fold(m) in ("台湾", "taiwan") for m in marks), marks
            assert layout["fontSize"] >= 14


def test_mails_are_dated_when_sent_not_at_the_runs_time(mails: dict[str, EmailMessage]) -> None:
    """The delivery ran for 2024-03-04 (a past hour: Airflow's clear on an old run, or
    ``alerts run --at``). Its mails were dated that hour, so mail clients sorted them
    days back in the inbox, under everything since; the Date header is the send time."""
    assert len(mails) == 2
    for message in mails.values():
        sent = parsedate_to_datetime(str(message["Date"]))
        assert abs(sent - datetime.now(UTC)) < timedelta(minutes=5), message["Date"]


def test_mail_headers_times_and_locale(mails: dict[str, EmailMessage]) -> None:
    chinese, english = mails["desk@example.org"], mails["duty@example.org"]
    assert chinese["Subject"].startswith("[mediamon] 台湾：1 小时内 10 篇报道，约为平常")
    assert english["Subject"].startswith("[mediamon] 台湾: 10 stories in 1 hour, about")
    for message, address in ((chinese, "desk"), (english, "duty")):
        assert message["List-Id"] == "mediamon taiwan <taiwan.mediamon.mediamon.example>"
        assert message["List-Unsubscribe"] == (
            "<mailto:leave@mediamon.example?subject=unsubscribe%20taiwan%20"
            f"{address}%40example.org>"
        )
        assert message["Auto-Submitted"] == "auto-generated"
    parts = {
        m["To"]: (m.get_body(("plain",)).get_content(), m.get_body(("html",)).get_content())
        for m in (chinese, english)
    }
    text, html_text = parts["desk@example.org"]
    # The recipient's zone with its offset: Shanghai for desk, Chicago (CDT) for duty.
    assert "截至 2024-03-04 19:00 (UTC+08:00) 的 1 小时内，有 10 篇报道提到「台湾」" in text
    assert "2024-03-04 05:00 (UTC-06:00)" in parts["duty@example.org"][0]
    # Every clock time shown in the HTML carries its offset, or comes under the stories'
    # heading, which says the zone once for the times of the list.
    inline = re.sub(r"</?(span|bdi)\b[^>]*>", "", html_text)  # inline: no break in the text
    visible = re.sub(r"<[^>]+>", " ", inline)
    stated = visible.index("篇报道（时间为 UTC+08:00）")  # "本时段的 N 篇报道", the heading
    listed = visible.index("统计细节")  # the list ends where the statistics start
    visible = visible[:stated] + visible[listed:]
    with_offset = {
        m.start()
        for t in TIME_WITH_OFFSET.finditer(visible)
        for m in CLOCK.finditer(visible, t.start(), t.end())
    }
    bare = [m.group() for m in CLOCK.finditer(visible) if m.start() not in with_offset]
    assert not bare, bare
    # Snippets in the plain text: the term in 【】.
    assert "【台湾】海峡紧张。【台湾】" in text
    # Why you got it and how to change it.
    assert "desk@example.org" in text and "key: taiwan" in text and "leave@mediamon.example" in text
    assert "<script" not in html_text and "&lt;script&gt;" in html_text
    assert "+1 outlet" in parts["duty@example.org"][0]  # the syndicated copies, folded


def test_the_day_table_is_seven_local_days_agreeing_with_bi(
    engine: sa.Engine, mails: dict[str, EmailMessage]
) -> None:
    """The table had 8 rows, the first a partial day (from the window's hour 7 days back)
    whose count was not bi.topic_daily's for that day. Now 7: whole local days, then the
    alert's day up to its window, marked so."""
    daily = dict(
        rows(engine, "select day_local, stories from bi.topic_daily where topic = 'taiwan'")
    )
    for address, heading, mark in (
        ("desk@example.org", "最近 7 天每小时报道数", "（至 19:00）"),
        ("duty@example.org", "Stories per hour, last 7 days", "(to 05:00)"),
    ):
        text = mails[address].get_body(("plain",)).get_content()
        after = text.split(heading, 1)[1].splitlines()
        table = after[2 : after.index("") - 1]  # the header, the days, the window's line
        assert len(table) == 7, table
        assert mark in table[-1] and not any(mark in line for line in table[:-1]), table
        if address == "desk@example.org":  # the bi views' zone, Asia/Shanghai
            for line in table[:-1]:
                day, count = line.split()[0], int(line.split()[2])
                assert daily[datetime.fromisoformat(day).date()] == count, line


def test_story_links_are_the_canonical_urls(engine: sa.Engine) -> None:
    """A feed's link with tracking parameters and a fragment: the mail linked it as given
    (``?utm_source=rss#comments``) while bi.articles shows the canonical URL; the mail
    links the canonical one too."""
    topics: TopicSet = parse_topics(TOPICS_YAML, "topics.yaml")
    sync_topics(engine, topics)
    assert len(alert_on_burst(engine, topics)) == 1
    with engine.begin() as conn:  # as the feed gave them; canonical_url stays clean
        conn.execute(
            sa.text(
                "update articles set url = canonical_url || '?utm_source=rss#comments'"
                " where canonical_url like 'https://burst.example/%'"
            )
        )
    sink = Sink()
    with serve_smtp(sink) as port:
        deliver_pending(
            engine, smtp_send(port), AT + timedelta(minutes=5), topics=topics, options=OPTIONS
        )
    canonical = [r[0] for r in rows(engine, "select url from bi.articles where url like '%burst%'")]
    assert len(canonical) == 10 and len(sink.messages) == 2
    with Chromium() as browser:
        for _, recipients, raw in sink.messages:
            message = email.message_from_bytes(raw, policy=default_policy)
            assert isinstance(message, EmailMessage)
            text = message.get_body(("plain",)).get_content()
            page = browser.open(
                mail_html_file(message, ARTIFACTS / "alert-canonical.html").as_uri(), width=390
            )
            links = page.evaluate("[...document.querySelectorAll('li.story a')].map(a => a.href)")
            assert sorted(links) == sorted(canonical), links
            assert "utm_source" not in text and "#comments" not in text
            assert all(url in text for url in canonical), recipients


VISIBLE = "[document.body.innerText, document.title]"


def test_a_topic_never_seen_before_and_an_underflowed_p_value_read_plainly(
    engine: sa.Engine,
) -> None:
    """A topic that was next to never mentioned (its expectation rounds to 0) bursting so
    far that the p-value underflows to 0.0: the mail says "usually none" / "平常几乎没有"
    instead of "about 13333× the usual 0" / "约为平常 0 篇的 13333 倍", and "p < 1e-300"
    instead of "p-value 0"; no "inf" or "nan" anywhere a person reads."""
    topics: TopicSet = parse_topics(TOPICS_YAML, "topics.yaml")
    sync_topics(engine, topics)
    assert len(alert_on_burst(engine, topics)) == 1
    with engine.begin() as conn:  # what the detector stores for such a burst
        conn.execute(
            sa.text("update alerts set expected = 0.003, lift = observed / 0.003, p_value = 0")
        )
    sink = Sink()
    with serve_smtp(sink) as port:
        deliver_pending(
            engine, smtp_send(port), AT + timedelta(minutes=5), topics=topics, options=OPTIONS
        )
    assert len(sink.messages) == 2
    with Chromium() as browser:
        for _, recipients, raw in sink.messages:
            message = email.message_from_bytes(raw, policy=default_policy)
            assert isinstance(message, EmailMessage)
            name = f"alert-usually-none-{recipients[0].split('@')[0]}"
            page = browser.open(
                mail_html_file(message, ARTIFACTS / f"{name}.html").as_uri(), width=390
            )
            shown, title = page.evaluate(VISIBLE)
            alt = page.evaluate("document.querySelector('img.chart').alt")
            page.screenshot(ARTIFACTS / f"{name}.png")
            text = message.get_body(("plain",)).get_content()
            # The chart (its alt text and the plain part's table) says it as the text does.
            for read in (shown, title, text, str(message["Subject"]), alt):
                assert not re.search(
                    r"\binf\b|\bnan\b|平常 0 篇|预期 0 篇|usual 0\b|\b0 expected|p-value 0\b"
                    r"|p 值 0",
                    read,
                ), read
            assert "平常几乎没有" in alt or "usually none" in alt, alt
            if recipients[0] == "desk@example.org":
                assert "平常几乎没有" in message["Subject"] and "平常周一这个时段几乎没有" in shown
                assert "p 值 < 1e-300" in shown and "p 值 < 1e-300" in text
            else:
                assert message["Subject"].endswith("usually none")
                assert "at this hour there are usually none" in shown
                assert "p-value < 1e-300" in shown and "p-value < 1e-300" in text


ARABIC_TOPIC = "أخبار عاجلة"  # "breaking news"
# Where each piece of an element's text is drawn: [left, right, top, bottom] over its
# rectangles; the element's text and what of it is in <bdi> elements.
DRAWN = """((selector, pieces) => {
  const element = document.querySelector(selector);
  const walker = document.createTreeWalker(element, NodeFilter.SHOW_TEXT);
  const nodes = [];
  let text = '';
  while (walker.nextNode()) {
    nodes.push([walker.currentNode, text.length]);
    text += walker.currentNode.data;
  }
  const at = (offset) => {
    const [node, start] = nodes.findLast(([, start]) => start <= offset);
    return [node, offset - start];
  };
  const drawn = (piece) => {
    const start = text.indexOf(piece);
    if (start < 0) return null;
    const range = document.createRange();
    range.setStart(...at(start));
    range.setEnd(...at(start + piece.length));
    const rects = [...range.getClientRects()].filter(r => r.width > 0);
    return [Math.min(...rects.map(r => r.left)), Math.max(...rects.map(r => r.right)),
            Math.min(...rects.map(r => r.top)), Math.max(...rects.map(r => r.bottom))];
  };
  return {text: element.textContent, isolated: [...element.querySelectorAll('bdi')].map(
    b => b.textContent), drawn: pieces.map(drawn)};
})"""


def drawn_in_order(found: dict[str, Any]) -> bool:
    """The pieces on one line, each to the right of the one before (a left-to-right line)."""
    boxes = found["drawn"]
    if any(b is None for b in boxes):
        return False
    top, bottom = boxes[0][2], boxes[0][3]
    on_the_line = all(b[2] < bottom and b[3] > top for b in boxes)
    return on_the_line and all(a[1] <= b[0] + 0.5 for a, b in itertools.pairwise(boxes))


def test_a_right_to_left_topic_and_title_keep_the_count_and_the_date_in_place(
    tmp_path: Path,
) -> None:
    """A digest of an Arabic topic with an Arabic title: the heading reads "أخبار عاجلة:
    10 new stories" with the name on the left and the count after it (before, "10" was
    drawn left of the name), a compact story's date after its title; the subject and the
    plain text carry the name between FSI and PDI, and the page title shows the same."""
    end = AT + timedelta(hours=2)
    stories = tuple(
        StoryItem(
            story_id=i,
            title=awkward.RTL if i == 1 else ("خبر عاجل" if i == 7 else f"台湾新闻 {i}"),
            url=f"https://example.org/{i}",
            outlet="cna",
            published_at=end - timedelta(minutes=i),
            mentions=1,
        )
        for i in range(1, 11)
    )
    digest = DigestMail(
        "daily",
        end - timedelta(days=1),
        end,
        spikes=(),
        topics=(TopicStories("breaking", ARABIC_TOPIC, stories),),
    )
    message = digest_message(
        digest, Reader("duty@example.org", "en"), OPTIONS, sender="m@example.org"
    )
    parsed = email.message_from_bytes(message.as_bytes(), policy=default_policy)
    isolated = f"{FSI}{ARABIC_TOPIC}{PDI}"
    assert parsed["Subject"].endswith(f": 10 new stories ({isolated})")
    text = parsed.get_body(("plain",)).get_content()
    assert f"== {isolated}: 10 new stories\n" in text
    assert f"- {FSI}خبر عاجل{PDI} · cna · " in text
    assert isinstance(parsed, EmailMessage)
    with Chromium() as browser:
        page = browser.open(
            mail_html_file(parsed, ARTIFACTS / "digest-right-to-left.html").as_uri(), width=1280
        )
        heading = page.evaluate(f"{DRAWN}('h2.topic', [{ARABIC_TOPIC!r}, '10', 'new stories'])")
        compact = page.evaluate(
            f"{DRAWN}('li.story.compact[data-story=\"7\"]', ['خبر عاجل', 'cna', '2024-'])"
        )
        title = page.evaluate("document.title")
        page.screenshot(ARTIFACTS / "digest-right-to-left.png")
    assert heading["text"] == f"{ARABIC_TOPIC}: 10 new stories"
    assert heading["isolated"] == [ARABIC_TOPIC]
    assert drawn_in_order(heading), heading
    assert compact["isolated"] == ["خبر عاجل"] and drawn_in_order(compact), compact
    assert title == parsed["Subject"]


LONG_TOPIC = (
    "Taiwan Strait shipping, semiconductors, export controls and the coast guard patrols"
    " around Kinmen and Matsu, with reactions of Beijing, Washington, Tokyo, Manila"
    " and the European Union to each of them"
)
TOP_OF_MAIL = """(() => [
  document.getElementById('alert-bar').innerText,
  ...[...document.querySelectorAll('#alert-bar ~ p')].slice(0, 2).map(p => p.innerText),
])()"""


def test_a_long_topic_name_is_shown_in_full_once_at_the_top(engine: sa.Engine) -> None:
    """A 200-character topic name: the heading shows it (cut at 80); the reason and the
    context lines below it name it in short, so the top of the mail is not the name three
    times (at 375 px it made the top of the mail 13 lines; now 10)."""
    assert len(LONG_TOPIC) == 200
    topics: TopicSet = parse_topics(
        TOPICS_YAML.replace("name: 台湾", f"name: {LONG_TOPIC}"), "topics.yaml"
    )
    sync_topics(engine, topics)
    assert len(alert_on_burst(engine, topics)) == 1
    sink = Sink()
    with serve_smtp(sink) as port:
        deliver_pending(
            engine, smtp_send(port), AT + timedelta(minutes=5), topics=topics, options=OPTIONS
        )
    assert len(sink.messages) == 2
    heading_name = LONG_TOPIC[:79]  # cut at 80 with "…"
    with Chromium() as browser:
        for (_, recipients, raw), width in itertools.product(sink.messages, (375, 1280)):
            message = email.message_from_bytes(raw, policy=default_policy)
            assert isinstance(message, EmailMessage)
            name = f"alert-long-topic-{recipients[0].split('@')[0]}-{width}"
            page = browser.open(
                mail_html_file(message, ARTIFACTS / f"{name}.html").as_uri(), width=width
            )
            heading, reason, context = page.evaluate(TOP_OF_MAIL)
            page.screenshot(ARTIFACTS / f"{name}.png")
            assert heading_name + "…" in heading, heading
            assert heading_name not in reason and heading_name not in context, (reason, context)
            assert LONG_TOPIC[:20] in reason and LONG_TOPIC[:20] in context, (reason, context)
            shown = page.evaluate("document.body.innerText")
            top = shown[: shown.index("10")]  # up to the first count
            assert top.count(LONG_TOPIC[:20]) == 1, top
            bar_line, _, why, context_line = (
                message.get_body(("plain",)).get_content().splitlines()[:4]
            )
            assert heading_name + "…" in bar_line, bar_line
            assert heading_name not in why and heading_name not in context_line, (why, context_line)


PREVIEW = """(() => {
  const first = document.body.firstElementChild;
  const box = first.getBoundingClientRect();
  return {
    className: first.className,
    drawn: [box.width, box.height, getComputedStyle(first).display],
    // what an inbox reads for its preview: the HTML's text, styles ignored
    preview: document.body.textContent.replace(/[\\s\\u200c]+/g, ' ').trim().slice(0, 140),
    visible: document.body.innerText,
  };
})()"""


def test_the_inbox_preview_shows_the_top_headlines(
    engine: sa.Engine, mails: dict[str, EmailMessage]
) -> None:
    """Under the subject an inbox previews the mail's first text: it was the red bar
    ("Alert: 台湾", a digest's the subject word for word). Now a hidden preheader leads:
    the top headlines with their outlets, as a Google Alerts reader sees the first
    headline; a digest's take each topic's first story in turn. Nothing of it is drawn."""
    top = f"{EVIL} (cna) · 台湾局势 b9 (cna)"
    top_zh = f"{EVIL}（cna） · 台湾局势 b9（cna）"
    end = AT + timedelta(hours=2)

    def story(i: int, title: str) -> StoryItem:
        return StoryItem(
            story_id=i,
            title=title,
            url=f"https://example.org/{i}",
            outlet="rfi" if i > 10 else "cna",
            published_at=end - timedelta(minutes=i),
            title_hits=1,
            mentions=1,
        )

    digest = DigestMail(
        "daily",
        end - timedelta(days=1),
        end,
        spikes=(),
        topics=(
            TopicStories("taiwan", "台湾", (story(1, "台湾一"), story(2, "台湾二"))),
            TopicStories("chips", "芯片", (story(11, "芯片一"), story(12, "芯片二"))),
        ),
    )
    digest_mail = digest_message(
        digest, Reader("editors@example.org", "en"), OPTIONS, sender="m@example.org"
    )
    cases = [
        ("preview-alert-duty", mails["duty@example.org"], top),
        ("preview-alert-desk", mails["desk@example.org"], top_zh),
        (
            "preview-digest",
            digest_mail,
            "台湾一 (cna) · 芯片一 (rfi) · 台湾二 (cna) · 芯片二 (rfi)",
        ),
    ]
    with Chromium() as browser:
        for name, message, expected in cases:
            parsed = email.message_from_bytes(message.as_bytes(), policy=default_policy)
            assert isinstance(parsed, EmailMessage)
            page = browser.open(
                mail_html_file(parsed, ARTIFACTS / f"{name}.html").as_uri(), width=375
            )
            found: dict[str, Any] = page.evaluate(PREVIEW)
            page.screenshot(ARTIFACTS / f"{name}-375.png")
            assert found["className"] == "preheader", name
            assert found["drawn"] == [0, 0, "none"], name
            assert found["preview"].startswith(expected), (name, found["preview"])
            assert expected not in found["visible"]  # shown in the list, not twice
            # the plain text is unchanged: it starts with the bar's words
            text = parsed.get_body(("plain",)).get_content()
            assert not text.startswith(expected)


ALL_LINKS = """(() => [...document.querySelectorAll('p.all-stories a')].map(a => {
  const box = a.getBoundingClientRect();
  const list = a.parentElement.previousElementSibling.getBoundingClientRect();
  const next = a.parentElement.nextElementSibling;
  return {href: a.href, text: a.innerText, box: [box.left, box.right, box.top, box.height],
          listBottom: list.bottom, nextTop: next ? next.getBoundingClientRect().top : null};
}))()"""


def test_each_list_of_stories_links_the_mediamon_page(tmp_path: Path) -> None:
    """With a base URL configured, the page was linked only when a list left stories
    out: under a digest topic's 12 stories (or an alert's 10) no way led to the page,
    where a Google Alerts reader looks for "See more results". Now each list ends with
    the link to its topic and period, drawn under its stories, on screen at 375 px."""
    end = AT + timedelta(hours=2)
    options = MailOptions(
        timezone="Asia/Shanghai",
        unsubscribe_address="leave@mediamon.example",
        base_url="https://mediamon.example.org",
    )

    def stories(first: int, count: int) -> tuple[StoryItem, ...]:
        return tuple(
            StoryItem(
                story_id=i,
                title=f"新闻 {i}",
                url=f"https://example.org/{i}",
                outlet="cna",
                published_at=end - timedelta(minutes=i),
                mentions=1,
            )
            for i in range(first, first + count)
        )

    digest = DigestMail(
        "daily",
        end - timedelta(days=1),
        end,
        spikes=(),
        topics=(
            TopicStories("taiwan", "台湾", stories(1, 12)),
            TopicStories("chips", "芯片", stories(20, 3)),
        ),
    )
    for locale, words in (
        ("en", "See these stories on the mediamon page"),
        ("zh-CN", "在 mediamon 页面查看这些报道"),
    ):
        message = digest_message(
            digest, Reader("editors@example.org", locale), options, sender="m@example.org"
        )
        parsed = email.message_from_bytes(message.as_bytes(), policy=default_policy)
        assert isinstance(parsed, EmailMessage)
        text = parsed.get_body(("plain",)).get_content()
        for key in ("taiwan", "chips"):
            colon = "：" if locale == "zh-CN" else ": "
            assert f"{words}{colon}https://mediamon.example.org/mediamon/?topic={key}&from=" in (
                text
            )
        with Chromium() as browser:
            name = f"digest-page-links-{locale}"
            page = browser.open(
                mail_html_file(parsed, ARTIFACTS / f"{name}.html").as_uri(), width=375
            )
            links: list[dict[str, Any]] = page.evaluate(ALL_LINKS)
            page.screenshot(ARTIFACTS / f"{name}-375.png")
        assert [link["href"].split("&")[0] for link in links] == [
            "https://mediamon.example.org/mediamon/?topic=taiwan",
            "https://mediamon.example.org/mediamon/?topic=chips",
        ]
        for link in links:
            left, right, top, height = link["box"]
            assert link["text"] == words and 0 <= left < right <= 375 and height > 0, link
            assert top >= link["listBottom"], link  # under the topic's stories
            assert link["nextTop"] is None or top < link["nextTop"], link


def test_the_mail_says_which_terms_the_topic_matches(mails: dict[str, EmailMessage]) -> None:
    """Why a story is in the mail: the footer named the topic and its key only, not what
    it matches (a Google Alerts mail shows its query). Now it lists the rules as written,
    in the plain text and drawn in the HTML footer."""
    for address, words in (
        ("duty@example.org", "Terms: 台湾 · Taiwan"),
        ("desk@example.org", "匹配词：台湾 · Taiwan"),
    ):
        message = mails[address]
        lines = message.get_body(("plain",)).get_content().splitlines()
        footer = lines[lines.index("-- ") + 1 :]
        assert words in footer[0], footer
        with Chromium() as browser:
            name = f"alert-terms-{address.split('@')[0]}"
            page = browser.open(
                mail_html_file(message, ARTIFACTS / f"{name}.html").as_uri(), width=375
            )
            drawn = page.evaluate("document.querySelector('.footer').innerText")
        assert words in drawn, drawn


def test_a_digest_of_several_topics_opens_with_their_counts_linked(tmp_path: Path) -> None:
    """A digest of three topics of 30 stories each is about 4,000 px at 375: the subject
    named the total only, and the third topic was found by scrolling. Now the counts of
    each topic lead, each a link that scrolls to its section; a digest of one topic
    (whose count is the heading's) has none."""
    end = AT + timedelta(hours=2)

    def stories(first: int) -> tuple[StoryItem, ...]:
        return tuple(
            StoryItem(
                story_id=i,
                title=f"新闻 {i}",
                url=f"https://example.org/{i}",
                outlet="cna",
                published_at=end - timedelta(minutes=i),
                mentions=1,
            )
            for i in range(first, first + 30)
        )

    names = (("taiwan", "台湾"), ("chips", "芯片"), ("breaking", ARABIC_TOPIC))
    sections = tuple(
        TopicStories(key, name, stories(100 * n)) for n, (key, name) in enumerate(names, 1)
    )
    digest = DigestMail("weekly", end - timedelta(days=7), end, spikes=(), topics=sections)
    message = digest_message(
        digest, Reader("editors@example.org", "en"), OPTIONS, sender="m@example.org"
    )
    parsed = email.message_from_bytes(message.as_bytes(), policy=default_policy)
    assert isinstance(parsed, EmailMessage)
    text = parsed.get_body(("plain",)).get_content()
    assert (
        "In this digest:\n- 台湾: 30 new stories\n- 芯片: 30 new stories\n"
        f"- {FSI}{ARABIC_TOPIC}{PDI}: 30 new stories\n"
    ) in text
    with Chromium() as browser:
        page = browser.open(
            mail_html_file(parsed, ARTIFACTS / "digest-contents.html").as_uri(), width=375
        )
        links = page.evaluate(
            "[...document.querySelectorAll('p.contents a')].map(a => [a.innerText,"
            " a.getAttribute('href'), document.querySelector(a.getAttribute('href'))?.innerText])"
        )
        page.screenshot(ARTIFACTS / "digest-contents-375.png")
        page.evaluate("document.querySelectorAll('p.contents a')[2].click()")
        scrolled = page.evaluate(
            "[scrollY, document.getElementById('topic-2').getBoundingClientRect().top]"
        )
    assert links == [
        ["台湾: 30 new stories", "#topic-0", "台湾: 30 new stories"],
        ["芯片: 30 new stories", "#topic-1", "芯片: 30 new stories"],
        [f"{ARABIC_TOPIC}: 30 new stories", "#topic-2", f"{ARABIC_TOPIC}: 30 new stories"],
    ]
    assert scrolled[0] > 2000 and abs(scrolled[1]) < 2, scrolled  # the third at the top
    one = replace(digest, topics=sections[:1])
    single = render_digest_mail(one, Reader("editors@example.org", "en"), OPTIONS)
    assert "In this digest" not in single.text and 'class="contents"' not in single.html
