"""Alert mail a recipient can leave, like Google Alerts: RFC 8058 one-click headers and a
footer link in alert and digest mails, the page behind them served by uvicorn as the
api-server's plugin mounts it (no login), and delivery that reads who left before each
mail. Real PostgreSQL, SMTP server, HTTP server and chromium."""

from __future__ import annotations

import email
import secrets
import threading
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager
from datetime import timedelta
from email.message import EmailMessage
from email.policy import default as default_policy
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
import sqlalchemy as sa

from mediamon.alerts.compose import MailOptions
from mediamon.alerts.deliver import deliver_pending, mail_outlook
from mediamon.alerts.digest import run_digests
from mediamon.alerts.subscriptions import still_wants
from mediamon.alerts.unsubscribe import ALL_TOPICS, sign
from mediamon.bi.unsubscribe_page import make_unsubscribe_app
from mediamon.db import make_engine
from mediamon.spikes.detect import detect
from mediamon.topics.definitions import TopicSet
from mediamon.topics.file import parse_topics
from mediamon.topics.match import match_articles
from mediamon.topics.store import sync_topics
from tests.integration.test_alert_stages import (
    AT,
    BURST_HOUR,
    T0,
    add_background,
    add_burst,
    add_quiet_hour,
    rows,
)
from tests.support.asgi_server import serve_app
from tests.support.browser import ARTIFACTS, Chromium, mail_html_file
from tests.support.smtp_server import Sink, serve_smtp, smtp_send

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
      - {address: duty@example.org, mode: immediate, locale: en}
      - {address: editors@example.org, mode: daily, locale: zh-CN}
"""
# Made per run: no key is ever written in the repository.
KEY = secrets.token_urlsafe(32)
ONE_CLICK = {"List-Unsubscribe": "One-Click"}


@pytest.fixture()
def topics(engine: sa.Engine) -> TopicSet:
    parsed = parse_topics(TOPICS_YAML, "topics.yaml")
    sync_topics(engine, parsed)
    return parsed


def serving(engine: sa.Engine, keys: tuple[str, ...] = (KEY,)) -> AbstractContextManager[str]:
    """The unsubscribe app at ``/mediamon-unsubscribe`` (as the plugin mounts it) on a
    free loopback port; the public URL."""
    return serve_app("/mediamon-unsubscribe", make_unsubscribe_app(lambda: engine, lambda: keys))


@pytest.fixture()
def public(engine: sa.Engine) -> Iterator[str]:
    with serving(engine) as url:
        yield url


def options(public_url: str | None) -> MailOptions:
    return MailOptions(
        timezone="Asia/Shanghai",
        unsubscribe_address="leave@mediamon.example",
        public_url=public_url,
        unsubscribe_keys=(KEY,),
    )


def received(sink: Sink) -> dict[str, EmailMessage]:
    found = {}
    for _, recipients, raw in sink.messages:
        message = email.message_from_bytes(raw, policy=default_policy)
        assert isinstance(message, EmailMessage)
        found[recipients[0]] = message
    return found


def one_click_uri(message: EmailMessage) -> str:
    """The https (here: loopback http) URI of ``List-Unsubscribe``, checked to come first
    with the mailto beside it and ``List-Unsubscribe-Post`` present (RFC 8058)."""
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    web, mailto = (part.strip() for part in str(message["List-Unsubscribe"]).split(","))
    assert web.startswith("<http://127.0.0.1:") and web.endswith(">")
    assert mailto.startswith("<mailto:leave@mediamon.example?subject=unsubscribe")
    return web[1:-1]


def footer_link(message: EmailMessage) -> str:
    html_part = message.get_body(("html",))
    assert html_part is not None
    content = str(html_part.get_content())
    # The footer's link is the same page (href escaped: &amp; would show if not).
    start = content.index('href="', content.index('class="muted footer"')) + len('href="')
    return content[start : content.index('"', start)]


def subscription_rows(engine: sa.Engine) -> list[tuple[str, str, str, str]]:
    return [
        tuple(r)
        for r in rows(
            engine, "select recipient, topic, state, via from mail_subscriptions order by 1, 2"
        )
    ]


def first_burst(engine: sa.Engine, topics: TopicSet) -> dict[str, int]:
    """The quiet background and the first burst, matched to the topics; the sources' ids."""
    ids = add_background(engine)
    add_burst(engine, ids, BURST_HOUR, tag="a")
    match_articles(engine, topics)
    return ids


def second_burst(engine: sa.Engine, ids: dict[str, int], topics: TopicSet) -> list[int]:
    """Quiet hours after the first burst, then another burst after the cooldown: the next
    alert cycle's alert."""
    for h in range(1, 8):
        add_quiet_hour(engine, ids, BURST_HOUR + timedelta(hours=h), f"q{h}")
    add_burst(engine, ids, BURST_HOUR + timedelta(hours=8), tag="e")
    match_articles(engine, topics)
    for h in range(1, 8):
        detect(engine, topics, AT + timedelta(hours=h))
    return detect(engine, topics, AT + timedelta(hours=8))


def test_one_click_unsubscribes_and_the_next_cycle_mails_nobody_who_left(
    engine: sa.Engine, topics: TopicSet, public: str
) -> None:
    ids = first_burst(engine, topics)
    assert len(detect(engine, topics, AT)) == 1
    sink = Sink()
    with serve_smtp(sink) as port:
        stats = deliver_pending(
            engine, smtp_send(port), AT + timedelta(minutes=5), options=options(public)
        )
        assert stats.sent == 2
        mails = received(sink)
        uri = one_click_uri(mails["desk@example.org"])
        assert footer_link(mails["desk@example.org"]) == uri
        # As received: both URIs written as they are (never RFC 2047 encoded words),
        # folded only at a space, every line within RFC 5322's 998 characters.
        for got in sink.messages:
            raw = got.content.decode("ascii")
            assert max(len(line) for line in raw.split("\r\n")) <= 998
            head = raw[: raw.index("\r\n\r\n")].replace("\r\n ", " ").split("\r\n")
            [header] = [line for line in head if line.startswith("List-Unsubscribe:")]
            web = one_click_uri(mails[got.rcpt_tos[0]])
            assert header.startswith(f"List-Unsubscribe: <{web}>, <mailto:") and "=?" not in header
        assert (
            parse_qs(urlsplit(uri).query)["t"]
            != parse_qs(urlsplit(one_click_uri(mails["duty@example.org"])).query)["t"]
        )

        # GET (a link scanner, a mail client's preview) only asks: nothing changes.
        for _ in range(2):
            asked = requests.get(uri, timeout=30)
            assert asked.status_code == 200 and '<form method="post"' in asked.text
            assert "desk@example.org" in asked.text and "&lt;b&gt;&amp;amp;" in asked.text
            assert requests.head(uri, timeout=30).status_code == 200
        assert subscription_rows(engine) == []

        # A forged token (duty's address with desk's MAC) is refused in one line.
        token = parse_qs(urlsplit(uri).query)["t"][0]
        version, _, mac = token.split(".")
        forged_payload = sign([KEY], "duty@example.org", "taiwan").split(".")[1]
        forged = f"{uri.split('?')[0]}?t={version}.{forged_payload}.{mac}"
        refused = requests.post(forged, data=ONE_CLICK, timeout=30)
        assert refused.status_code == 403
        assert (
            "this unsubscribe link was altered or its key retired: its signature does not"
            " match; use the link of a recent mail"
        ) in refused.text
        assert subscription_rows(engine) == []

        # RFC 8058's POST, as Gmail sends it: desk leaves taiwan; twice is once. A one-click
        # POST that claims to resubscribe (only the page's undo may) unsubscribes all the same.
        for body in (ONE_CLICK, ONE_CLICK | {"resubscribe": "1"}):
            done = requests.post(uri, data=body, timeout=30, allow_redirects=False)
            assert done.status_code == 200 and "Unsubscribed" in done.text
        assert "Already unsubscribed" in requests.get(uri, timeout=30).text
        assert subscription_rows(engine) == [
            ("desk@example.org", "taiwan", "unsubscribed", "one-click")
        ]

        # The next alert cycle mails duty only (and its dry run says so).
        [next_alert] = second_burst(engine, ids, topics)
        with engine.connect() as conn:
            outlook = mail_outlook(conn, next_alert, topics, "taiwan", AT + timedelta(hours=8))
        assert outlook["would_mail_to"] == ["duty@example.org"]
        before = len(sink.messages)
        again = deliver_pending(
            engine, smtp_send(port), AT + timedelta(hours=8, minutes=5), options=options(public)
        )
        assert [m[1] for m in sink.messages[before:]] == [["duty@example.org"]]
        assert (again.sent, again.unsubscribed) == (1, 1)
    assert rows(
        engine,
        "select recipient, status, note from alert_deliveries"
        " where alert_id = (select max(alert_id) from alerts) order by 1",
    ) == [
        ("desk@example.org", "skipped", "unsubscribed: the recipient left this topic's mail"),
        ("duty@example.org", "sent", None),
    ]


def test_a_recipient_who_leaves_while_the_run_mails_others_gets_nothing_more(
    engine: sa.Engine, topics: TopicSet, public: str
) -> None:
    first_burst(engine, topics)
    assert len(detect(engine, topics, AT)) == 1
    sink = Sink()
    with serve_smtp(sink) as port:
        deliver = smtp_send(port)

        def send(message: EmailMessage) -> None:
            deliver(message)
            if len(sink.messages) == 1:  # the other recipient clicks meanwhile
                other = (
                    "duty@example.org"
                    if message["To"] == "desk@example.org"
                    else "desk@example.org"
                )
                page = f"{public}/mediamon-unsubscribe/?t={sign([KEY], other, 'taiwan')}"
                assert requests.post(page, data=ONE_CLICK, timeout=30).status_code == 200

        stats = deliver_pending(engine, send, AT + timedelta(minutes=5), options=options(public))
    assert len(sink.messages) == 1
    assert (stats.sent, stats.unsubscribed) == (1, 1)


def test_a_digests_link_leaves_every_mail_and_no_digest_follows(
    engine: sa.Engine, topics: TopicSet, public: str
) -> None:
    ids = first_burst(engine, topics)
    now = T0 + timedelta(days=1, hours=8, minutes=3)
    sink = Sink()
    with serve_smtp(sink) as port:
        first = run_digests(
            engine, topics, now, smtp_send(port), sender="m@example.org", options=options(public)
        )
        assert first.sent == 1
        digest = received(sink)["editors@example.org"]
        uri = one_click_uri(digest)
        assert footer_link(digest) == uri
        page = requests.get(uri, timeout=30).text
        assert "every mediamon mail" in page and "Stop every" not in page  # no second button
        assert requests.post(uri, data=ONE_CLICK, timeout=30).status_code == 200
        assert subscription_rows(engine) == [
            ("editors@example.org", ALL_TOPICS, "unsubscribed", "one-click")
        ]
        add_burst(engine, ids, now + timedelta(hours=2), tag="n")  # news for the next day
        match_articles(engine, topics)
        later = run_digests(
            engine,
            topics,
            now + timedelta(days=1),
            smtp_send(port),
            sender="m@example.org",
            options=options(public),
        )
    assert (later.due, later.sent, len(sink.messages)) == (0, 0, 1)


def test_without_the_public_url_mails_offer_the_mailbox_only(
    engine: sa.Engine, topics: TopicSet
) -> None:
    first_burst(engine, topics)
    assert len(detect(engine, topics, AT)) == 1
    sink = Sink()
    with serve_smtp(sink) as port:
        deliver_pending(engine, smtp_send(port), AT + timedelta(minutes=5), options=options(None))
    for message in received(sink).values():
        header = str(message["List-Unsubscribe"])
        assert header.startswith("<mailto:leave@mediamon.example?subject=") and "," not in header
        assert message["List-Unsubscribe-Post"] is None
        assert footer_link(message).startswith("mailto:leave@mediamon.example?subject=")


FOOTER_LINK = """(() => {
  const a = document.querySelector('.footer a');
  const box = a.getBoundingClientRect();
  return {href: a.href, text: a.textContent, left: box.left, right: box.right,
          width: box.width, height: box.height,
          scroll: document.documentElement.scrollWidth,
          client: document.documentElement.clientWidth};
})()"""


def test_the_mails_link_and_the_page_work_in_a_browser_at_phone_and_desktop_widths(
    engine: sa.Engine, topics: TopicSet, public: str
) -> None:
    first_burst(engine, topics)
    assert len(detect(engine, topics, AT)) == 1
    sink = Sink()
    with serve_smtp(sink) as port:
        deliver_pending(engine, smtp_send(port), AT + timedelta(minutes=5), options=options(public))
        run_digests(
            engine,
            topics,
            T0 + timedelta(days=1, hours=8, minutes=3),
            smtp_send(port),
            sender="m@example.org",
            options=options(public),
        )
    mails = received(sink)
    with Chromium() as browser:
        for name, address in (("alert", "desk@example.org"), ("digest", "editors@example.org")):
            for width in (390, 1280):
                path = mail_html_file(
                    mails[address], ARTIFACTS / f"unsubscribe-{name}-{width}.html"
                )
                tab = browser.open(path.as_uri(), width=width)
                link = tab.evaluate(FOOTER_LINK)
                assert link["scroll"] <= link["client"] <= width
                assert link["text"] == "退订" and link["width"] > 0 and link["height"] > 0
                assert link["left"] >= 0 and link["right"] <= width
                assert link["href"] == one_click_uri(mails[address])
                tab.screenshot(ARTIFACTS / f"unsubscribe-{name}-{width}.png")
        # The alert's link, followed on a phone: the page asks, the button unsubscribes.
        page = browser.open(one_click_uri(mails["desk@example.org"]), width=390)
        buttons = page.evaluate(
            "[...document.querySelectorAll('button')].map(b => {const r ="
            " b.getBoundingClientRect(); return [b.textContent, r.left, r.right, r.height]})"
        )
        assert [b[0] for b in buttons] == [
            "Unsubscribe / 退订",
            "Stop every mediamon mail / 退订全部",
        ]
        assert all(
            left >= 0 and right <= 390 and height >= 40 for _, left, right, height in buttons
        )
        assert page.evaluate("document.documentElement.scrollWidth") <= 390
        page.screenshot(ARTIFACTS / "unsubscribe-page-390.png")
        assert subscription_rows(engine) == []  # the browser's GET changed nothing
        page.evaluate("document.querySelector('button').click()")
        page.wait_for("Page.loadEventFired")
        assert page.evaluate("document.querySelector('h1').textContent") == "Unsubscribed / 已退订"
        page.screenshot(ARTIFACTS / "unsubscribe-done-390.png")
        assert subscription_rows(engine) == [("desk@example.org", "taiwan", "unsubscribed", "page")]
        # Pressed by mistake: the page's undo subscribes them again.
        page.evaluate("document.querySelector('button').click()")
        page.wait_for("Page.loadEventFired")
        heading = page.evaluate("document.querySelector('h1').textContent")
        assert heading == "Subscribed again / 已重新订阅"
    assert subscription_rows(engine) == [("desk@example.org", "taiwan", "subscribed", "page")]
    with engine.connect() as conn:
        assert still_wants(conn, "desk@example.org", "taiwan")


def test_the_page_refuses_without_a_key_and_a_missing_token(
    engine: sa.Engine, topics: TopicSet
) -> None:
    with serving(engine, keys=()) as url:
        answer = requests.post(f"{url}/mediamon-unsubscribe/?t=x", data=ONE_CLICK, timeout=30)
        assert answer.status_code == 503 and "not enabled" in answer.text
    with serving(engine) as url:
        answer = requests.get(f"{url}/mediamon-unsubscribe/", timeout=30)
        assert answer.status_code == 403 and "(malformed)" in answer.text
        big = requests.post(
            f"{url}/mediamon-unsubscribe/?t={sign([KEY], 'desk@example.org', 'taiwan')}",
            data=b"x" * 10_000,
            timeout=30,
        )
        assert big.status_code == 413
    assert subscription_rows(engine) == []


def test_a_reader_who_finds_every_connection_busy_gets_a_page_saying_so(
    engine: sa.Engine, topics: TopicSet
) -> None:
    """More readers of the page (anyone with a mail's link) at once than the api-server's
    pool has connections, while a maintenance task holds the table it reads. Before:
    SQLAlchemy's pool TimeoutError, which is no database error, left the page as a bare
    ``500 Internal Server Error``. Here the pool is one connection and its wait 1 s; the
    first reader waits for the lock until it is let go, and is answered then."""
    small = make_engine(
        engine.url.render_as_string(hide_password=False),
        pool_size=1,
        max_overflow=0,
        pool_timeout=1,
    )
    link = f"/mediamon-unsubscribe/?t={sign([KEY], 'desk@example.org', 'taiwan')}"
    answers: list[requests.Response] = []
    try:
        with serving(small) as url, engine.connect() as holder:
            holder.exec_driver_sql("lock table mail_subscriptions in access exclusive mode")
            first = threading.Thread(
                target=lambda: answers.append(requests.get(url + link, timeout=60))
            )
            first.start()
            while small.pool.checkedout() == 0:  # type: ignore[attr-defined]
                time.sleep(0.05)
            for method in ("GET", "POST"):
                answer = requests.request(method, url + link, timeout=60)
                assert answer.status_code == 503, (method, answer.text[:200])
                assert answer.headers["Retry-After"] == "60", method
                assert "did not answer" in answer.text, method
            holder.rollback()
            first.join(timeout=60)
            assert [a.status_code for a in answers] == [200]  # answered once the lock went
    finally:
        small.dispose()
    with engine.connect() as conn:
        assert still_wants(conn, "desk@example.org", "taiwan")  # nothing written
