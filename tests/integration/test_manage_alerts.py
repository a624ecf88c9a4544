"""'Manage your alerts', like Google Alerts' 'View all your alerts': every alert and digest
links the recipient's list of topics (their every-topic token is its key), each to turn
off or on; a topic's token never opens it. Real PostgreSQL, SMTP server, HTTP server
(uvicorn, as the plugin mounts the app) and chromium at phone and desktop widths."""

from __future__ import annotations

import email
import re
from collections.abc import Iterator
from datetime import timedelta
from email.message import EmailMessage
from email.policy import default as default_policy
from html import unescape
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
import sqlalchemy as sa

from mediamon.alerts.deliver import deliver_pending
from mediamon.alerts.digest import run_digests
from mediamon.alerts.subscriptions import still_wants
from mediamon.alerts.unsubscribe import ALL_TOPICS, MANAGE_PATH, sign, verify
from mediamon.spikes.detect import detect
from mediamon.topics.definitions import TopicSet
from mediamon.topics.file import parse_topics
from mediamon.topics.store import sync_topics
from tests.integration.test_alert_stages import AT, T0
from tests.integration.test_unsubscribe import (
    KEY,
    first_burst,
    footer_link,
    options,
    second_burst,
    serving,
    subscription_rows,
)
from tests.support.browser import ARTIFACTS, Chromium, mail_html_file
from tests.support.smtp_server import Sink, serve_smtp, smtp_send

# desk gets two topics (one also as a daily digest); the third is someone else's. The
# second topic's name opens a right-to-left override and holds markup.
TOPICS_YAML = """\
version: 1
defaults:
  thresholds: {min_stories: 4, min_lift: 2.0, max_p_value: 0.0001, cooldown_hours: 6}
  digest: {hour: 8, timezone: UTC}
topics:
  - key: taiwan
    name: 台湾 <b>&amp;
    terms: [台湾, Taiwan]
    recipients:
      - {address: desk@example.org, mode: immediate, locale: zh-CN}
  - key: strait
    name: "\\u202eStrait <i>海峡</i>"
    terms: [台湾, Taiwan]
    recipients:
      - {address: Desk@example.org, mode: immediate, locale: en}
      - {address: desk@example.org, mode: daily, locale: en}
  - key: elsewhere
    name: Someone else's
    terms: [台湾]
    recipients:
      - {address: other@example.org, mode: immediate}
"""
ONE_TOPIC_ONLY = (
    "this link is for one topic's mail and cannot show or change your other alerts;"
    ' use the "Manage your alerts" link of a recent mail'
)
FIND_MANAGE = (
    "[...document.querySelectorAll('.footer a')].find(a => a.textContent === '管理您的提醒')"
)
MANAGE_ANCHOR = f"""(() => {{
  const a = {FIND_MANAGE}, box = a.getBoundingClientRect();
  return {{href: a.href, left: box.left, right: box.right, height: box.height}};
}})()"""
LIST_STATE = """[...document.querySelectorAll('li.topic')].map(li => {
  const b = li.querySelector('button').getBoundingClientRect();
  return [li.dataset.topic, li.querySelector('.state').textContent, b.left, b.right, b.height];
})"""


@pytest.fixture()
def topics(engine: sa.Engine) -> TopicSet:
    parsed = parse_topics(TOPICS_YAML, "topics.yaml")
    sync_topics(engine, parsed)
    return parsed


@pytest.fixture()
def public(engine: sa.Engine) -> Iterator[str]:
    with serving(engine) as url:
        yield url


def mails_by_topic(sink: Sink, start: int = 0) -> dict[tuple[str, str], EmailMessage]:
    """The mails received since ``start``, by recipient and the topic of their footer's
    unsubscribe token."""
    found = {}
    for got in sink.messages[start:]:
        message = email.message_from_bytes(got.content, policy=default_policy)
        assert isinstance(message, EmailMessage)
        token = parse_qs(urlsplit(footer_link(message)).query)["t"][0]
        found[(got.rcpt_tos[0], verify([KEY], token).topic)] = message
    return found


def manage_link(message: EmailMessage) -> str:
    """The footer's "Manage your alerts" link, checked to be the plain text's too."""
    html_part, text_part = message.get_body(("html",)), message.get_body(("plain",))
    assert html_part is not None and text_part is not None
    found = re.search(
        r'<a href="([^"]*)"[^>]*>(Manage your alerts|管理您的提醒)</a>',
        str(html_part.get_content()),
    )
    assert found is not None
    link = unescape(found[1])
    assert link in str(text_part.get_content())
    return link


def test_the_list_from_a_mail_turns_one_topic_off_and_the_next_cycle_mails_the_other(
    engine: sa.Engine, topics: TopicSet, public: str
) -> None:
    ids = first_burst(engine, topics)
    assert len(detect(engine, topics, AT)) == 3
    sink = Sink()
    with serve_smtp(sink) as port:
        deliver_pending(engine, smtp_send(port), AT + timedelta(minutes=5), options=options(public))
        mails = mails_by_topic(sink)
        assert set(mails) == {
            ("desk@example.org", "taiwan"),
            ("desk@example.org", "strait"),
            ("other@example.org", "elsewhere"),
        }
        link = manage_link(mails[("desk@example.org", "taiwan")])
        assert link.startswith(f"{public}{MANAGE_PATH}?t=")
        assert verify([KEY], parse_qs(urlsplit(link).query)["t"][0]).everything
        assert manage_link(mails[("desk@example.org", "strait")]) == link

        # GET (a link scanner, a preview) only shows: names escaped and isolated.
        for _ in range(2):
            page = requests.get(link, timeout=30)
            assert page.status_code == 200
            assert "<bdi>台湾 &lt;b&gt;&amp;amp;</bdi>" in page.text
            assert "<bdi>Strait &lt;i&gt;海峡&lt;/i&gt;</bdi>" in page.text
            assert "immediate alerts / 即时提醒, daily digest / 每日摘要" in page.text
            assert "elsewhere" not in page.text and "Someone else" not in page.text
        assert subscription_rows(engine) == []

        with Chromium() as browser:
            mail = mail_html_file(
                mails[("desk@example.org", "taiwan")], ARTIFACTS / "manage-alerts-mail.html"
            )
            for width in (1280, 390):
                # The mail as a reader sees it; its footer's link followed by a click.
                tab = browser.open(mail.as_uri(), width=width)
                anchor = tab.evaluate(MANAGE_ANCHOR)
                assert anchor["href"] == link and anchor["height"] > 0
                assert anchor["left"] >= 0 and anchor["right"] <= width
                tab.screenshot(ARTIFACTS / f"manage-alerts-mail-{width}.png")
                tab.evaluate(f"{FIND_MANAGE}.click()")
                tab.wait_for("Page.loadEventFired")
                assert tab.evaluate("location.href") == link
                listed = tab.evaluate(LIST_STATE)
                assert [row[:2] for row in listed] == [
                    ["strait", "Receiving / 接收中"],
                    ["taiwan", "Receiving / 接收中"],
                ]
                assert all(
                    left >= 0 and right <= width and height >= 40
                    for *_, left, right, height in listed
                )
                assert tab.evaluate("document.documentElement.scrollWidth") <= width
                tab.screenshot(ARTIFACTS / f"manage-alerts-{width}.png")
            assert subscription_rows(engine) == []  # the browser's GETs changed nothing
            # On the phone: turn taiwan off.
            tab.evaluate("document.querySelector('li[data-topic=taiwan] button').click()")
            tab.wait_for("Page.loadEventFired")
            assert [row[:2] for row in tab.evaluate(LIST_STATE)] == [
                ["strait", "Receiving / 接收中"],
                ["taiwan", "Left / 已退订"],
            ]
            tab.screenshot(ARTIFACTS / "manage-alerts-off-390.png")
        assert subscription_rows(engine) == [("desk@example.org", "taiwan", "unsubscribed", "page")]

        # The next alert cycle mails desk strait's alert, not taiwan's.
        assert len(second_burst(engine, ids, topics)) == 3
        before = len(sink.messages)
        again = deliver_pending(
            engine, smtp_send(port), AT + timedelta(hours=8, minutes=5), options=options(public)
        )
        assert set(mails_by_topic(sink, before)) == {
            ("desk@example.org", "strait"),
            ("other@example.org", "elsewhere"),
        }
        assert (again.sent, again.unsubscribed) == (2, 1)

    # Turned back on from the same list.
    back = requests.post(link, data={"topic": "taiwan", "action": "rejoin"}, timeout=30)
    assert back.status_code == 200 and back.url == link  # 303 to the list
    assert 'class="topic on" data-topic="taiwan"' in back.text and "Left / 已退订" not in back.text
    with engine.connect() as conn:
        assert still_wants(conn, "desk@example.org", "taiwan")


def test_a_digests_list_link_and_stopping_every_mail(
    engine: sa.Engine, topics: TopicSet, public: str
) -> None:
    first_burst(engine, topics)
    sink = Sink()
    with serve_smtp(sink) as port:
        run_digests(
            engine,
            topics,
            T0 + timedelta(days=1, hours=8, minutes=3),
            smtp_send(port),
            sender="m@example.org",
            options=options(public),
        )
    [digest] = mails_by_topic(sink).values()
    link = manage_link(digest)
    # The digest's unsubscribe page (its every-topic token) leads to the list as well.
    asked = requests.get(footer_link(digest), timeout=30).text
    assert f'href="alerts?t={parse_qs(urlsplit(link).query)["t"][0]}"' in asked
    stop = requests.post(link, data={"topic": ALL_TOPICS, "action": "leave"}, timeout=30)
    assert 'id="all-left"' in stop.text and "Receive mail again" in stop.text
    assert subscription_rows(engine) == [("desk@example.org", ALL_TOPICS, "unsubscribed", "page")]


def test_a_topics_token_cannot_open_or_change_the_list_and_a_forged_one_is_refused(
    engine: sa.Engine, topics: TopicSet, public: str
) -> None:
    desk_taiwan = sign([KEY], "desk@example.org", "taiwan")
    refused = requests.get(f"{public}{MANAGE_PATH}?t={desk_taiwan}", timeout=30)
    assert refused.status_code == 403 and ONE_TOPIC_ONLY in unescape(refused.text)
    assert "strait" not in refused.text and "Strait" not in refused.text
    changed = requests.post(
        f"{public}{MANAGE_PATH}?t={desk_taiwan}",
        data={"topic": "strait", "action": "leave"},
        timeout=30,
    )
    assert changed.status_code == 403 and ONE_TOPIC_ONLY in unescape(changed.text)
    assert subscription_rows(engine) == []

    # desk's every-topic token with other's address put in: refused, nothing shown.
    version, _, mac = sign([KEY], "desk@example.org", ALL_TOPICS).split(".")
    payload = sign([KEY], "other@example.org", ALL_TOPICS).split(".")[1]
    forged = requests.get(f"{public}{MANAGE_PATH}?t={version}.{payload}.{mac}", timeout=30)
    assert forged.status_code == 403 and "its signature does not match" in forged.text
    assert "elsewhere" not in forged.text
    # desk's own key posting a topic that is not theirs: refused, nothing written.
    desk_all = sign([KEY], "desk@example.org", ALL_TOPICS)
    foreign = requests.post(
        f"{public}{MANAGE_PATH}?t={desk_all}",
        data={"topic": "elsewhere", "action": "leave"},
        timeout=30,
    )
    assert foreign.status_code == 403
    assert "topic 'elsewhere' sends no mail to this address: not changed" in unescape(foreign.text)
    assert subscription_rows(engine) == []


def test_a_topics_page_hands_out_no_every_topic_token(
    engine: sa.Engine, topics: TopicSet, public: str
) -> None:
    """Its "stop every mail" button carried desk's every-topic token, the key to their
    list: now it posts the topic's own token, and still stops every mail."""
    page = f"{public}/mediamon-unsubscribe/"
    desk_taiwan = sign([KEY], "desk@example.org", "taiwan")
    asked = requests.get(f"{page}?t={desk_taiwan}", timeout=30).text
    tokens = [unescape(t) for t in re.findall(r'action="\?t=([^"]*)"', asked)]
    assert len(tokens) == 2
    assert all(not verify([KEY], requests.utils.unquote(t)).everything for t in tokens)
    stopped = requests.post(
        f"{page}?t={desk_taiwan}",
        data={"List-Unsubscribe": "One-Click", "from": "page", "every": "1"},
        timeout=30,
    )
    assert stopped.status_code == 200 and "every mediamon mail" in stopped.text
    assert subscription_rows(engine) == [("desk@example.org", ALL_TOPICS, "unsubscribed", "page")]
    # Its undo, the same token again, takes every mail back.
    undo = requests.post(
        f"{page}?t={desk_taiwan}",
        data={"List-Unsubscribe": "One-Click", "from": "page", "every": "1", "resubscribe": "1"},
        timeout=30,
    )
    assert undo.status_code == 200 and "Subscribed again" in undo.text
    assert subscription_rows(engine) == [("desk@example.org", ALL_TOPICS, "subscribed", "page")]


def test_without_the_public_url_the_footer_has_no_list_link(
    engine: sa.Engine, topics: TopicSet
) -> None:
    first_burst(engine, topics)
    detect(engine, topics, AT)
    sink = Sink()
    with serve_smtp(sink) as port:
        deliver_pending(engine, smtp_send(port), AT + timedelta(minutes=5), options=options(None))
    assert len(sink.messages) == 3
    for got in sink.messages:
        message = email.message_from_bytes(got.content, policy=default_policy)
        assert isinstance(message, EmailMessage)
        for kind in ("html", "plain"):
            part = message.get_body((kind,))
            assert part is not None
            text = str(part.get_content())
            assert "Manage your alerts" not in text and "管理您的提醒" not in text
            assert "mediamon-unsubscribe" not in text


# Where "Strait" and "(strait)" are drawn in the question's first paragraph.
QUESTION = """(() => {
  const p = document.querySelector('main p');
  const walk = document.createTreeWalker(p, NodeFilter.SHOW_TEXT);
  const place = (word, k) => {
    for (let node = walk.currentNode; node; node = walk.nextNode()) {
      const i = node.nodeType === 3 ? node.data.indexOf(word) : -1;
      if (i < 0) continue;
      const r = document.createRange();
      r.setStart(node, i + k); r.setEnd(node, i + k + 1);
      const box = r.getBoundingClientRect();
      return [box.left, box.top];
    }
    return null;
  };
  const s = place('Strait', 0), t = place('Strait', 1);
  walk.currentNode = p;
  const key = place('(strait)', 0);
  return {text: p.textContent, s, t, key};
})()"""


def test_a_topics_question_keeps_its_sentence_in_order_around_an_overridden_name(
    engine: sa.Engine, topics: TopicSet, public: str
) -> None:
    """The one-topic page asked "Stop sending desk@… the alerts and digests about NAME
    (key)?" with the name as written: its right-to-left override turned "Strait" into
    "tiartS" and everything after it in the sentence, the key and the "?", to its left.
    The name is now cleaned as a mail's and in a ``<bdi>``, as the list shows names."""
    link = f"{public}/mediamon-unsubscribe/?t={sign([KEY], 'desk@example.org', 'strait')}"
    with Chromium() as browser:
        tab = browser.open(link, width=1280)
        drawn = tab.evaluate(QUESTION)
        tab.screenshot(ARTIFACTS / "unsubscribe-overridden-name.png")
    (s_left, s_top), (t_left, _), (key_left, key_top) = drawn["s"], drawn["t"], drawn["key"]
    assert s_left < t_left, drawn  # "Strait" reads left to right
    assert key_top > s_top or key_left > t_left, drawn  # the key after the name
    assert "\u202e" not in drawn["text"], drawn
    asked = requests.get(link, timeout=30).text
    assert "<bdi>Strait &lt;i&gt;海峡&lt;/i&gt;</bdi> (strait)" in asked


NAMES_YAML = """\
version: 1
topics:
  - key: strait
    name: "\\u202eStrait"
    terms: [Taiwan]
    recipients: [{address: desk@example.org, mode: immediate}]
  - key: taiwan
    name: 台湾 Taiwan
    terms: [台湾]
    recipients: [{address: desk@example.org, mode: immediate}]
  - key: elsewhere
    name: Elsewhere
    terms: [台湾]
    recipients: [{address: desk@example.org, mode: immediate}]
"""
# How each listed topic's name is drawn: its text, its lines, and where "S" and "t" of
# "Strait" are, left to right.
LIST_NAMES = """[...document.querySelectorAll('li.topic')].map(li => {
  const b = li.querySelector('b'), text = b.textContent;
  const range = document.createRange(), node = b.querySelector('bdi').firstChild;
  const at = (k) => { range.setStart(node, k); range.setEnd(node, k + 1);
                      return range.getBoundingClientRect().left; };
  const i = text.indexOf('Strait');
  return {topic: li.dataset.topic, text, lines: b.getClientRects().length,
          height: b.getBoundingClientRect().height,
          order: i < 0 ? null : at(text.indexOf('S')) < at(text.indexOf('t'))};
})"""


def test_the_list_cleans_names_as_the_window_page_does(engine: sa.Engine, public: str) -> None:
    """The list escaped names but drew them as written: a right-to-left override
    reversed "Strait" ("tiartS"), U+2028 broke a name over two lines, and a name stored
    before the topics file refused invisible ones showed nothing, a bold gap. Names are
    now cleaned as the window page and mails clean them, and an invisible one shows its
    key (the one-topic page too)."""
    sync_topics(engine, parse_topics(NAMES_YAML, "topics.yaml"))
    # Names the topics file refuses now; stored by an older mediamon, as written.
    stored = {"taiwan": "台湾\u2028Taiwan", "elsewhere": "\u200b\u2060\ufeff"}
    with engine.begin() as conn:
        for key, name in stored.items():
            conn.execute(
                sa.text(
                    "update topics set name = :name,"
                    " definition = jsonb_set(definition, '{name}', to_jsonb(cast(:name as text)))"
                    " where topic = :key"
                ),
                {"key": key, "name": name},
            )
    link = f"{public}{MANAGE_PATH}?t={sign([KEY], 'desk@example.org', ALL_TOPICS)}"
    with Chromium() as browser:
        tab = browser.open(link, width=390)
        names = {row.pop("topic"): row for row in tab.evaluate(LIST_NAMES)}
        tab.screenshot(ARTIFACTS / "manage-alerts-names-390.png")
    assert names["strait"]["order"] is True, names  # "Strait" reads left to right
    assert "\u202e" not in names["strait"]["text"], names
    assert names["taiwan"]["text"] == "台湾 Taiwan", names  # one line, not two
    assert names["taiwan"]["lines"] == 1, names
    assert names["elsewhere"]["text"] == "elsewhere", names  # the key, not a gap
    assert names["elsewhere"]["height"] > 0, names
    one = f"{public}/mediamon-unsubscribe/?t={sign([KEY], 'desk@example.org', 'elsewhere')}"
    asked = requests.get(one, timeout=30).text
    assert "the alerts and digests about elsewhere?" in asked and "<bdi></bdi>" not in asked
