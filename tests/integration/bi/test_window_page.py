"""The mail's "N more stories" link, followed: the alert mail of a window with more stories
than it lists links to ``BASE/mediamon/?topic=…&from=…&to=…``; that page (the app of
``mediamon.bi.webapp``, served by uvicorn as the Airflow plugin mounts it, without
Airflow's login) showed the ordinary page, which lists five stories an alert. Now it lists
every story of the window, ranked as the mail ranks them, 100 a page; and a bad parameter
gets a page saying what is wrong, never a server error."""

from __future__ import annotations

import email
import html
import threading
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager
from datetime import timedelta
from email.message import EmailMessage
from email.policy import default as default_policy
from typing import Any

import pytest
import requests
import sqlalchemy as sa

from mediamon.alerts.compose import MailOptions
from mediamon.alerts.deliver import deliver_pending
from mediamon.bi import dashboard
from mediamon.bi.webapp import make_app
from mediamon.db import make_engine
from mediamon.spikes.detect import detect
from mediamon.topics.file import parse_topics
from mediamon.topics.match import match_articles
from mediamon.topics.store import sync_topics
from tests.integration.test_alert_stages import (
    AT,
    BURST_HOUR,
    add_article,
    add_background,
    add_burst,
)
from tests.support.asgi_server import serve_app
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
    recipients: [{address: desk@example.org, mode: immediate, locale: en}]
"""
BURST = 230  # top 5 + 100 compact in the mail, 125 more: two pages beyond it


@pytest.fixture()
def served(engine: sa.Engine) -> Iterator[str]:
    """The page's app at ``/mediamon`` on a free loopback port; the base URL."""
    with serving(engine) as url:
        yield url


def serving(engine: sa.Engine) -> AbstractContextManager[str]:
    """The page's app on ``engine`` at ``/mediamon`` on a free loopback port; the base URL."""
    return serve_app("/mediamon", make_app(lambda: engine))


def _window_ids(engine: sa.Engine) -> list[int]:
    with engine.connect() as conn:
        return list(
            conn.execute(
                sa.text(
                    "select w.story_id from alerts a cross join lateral"
                    " bi.topic_window_stories(a.topic, a.window_start, a.window_end) w"
                    " order by w.story_rank"
                )
            ).scalars()
        )


STORIES = "[...document.querySelectorAll('li.story')].map(e => Number(e.dataset.story))"
NEXT = "document.querySelector('nav.pages a.next')?.href"
LAYOUT = "[document.documentElement.scrollWidth, document.documentElement.clientWidth]"


def test_the_mails_more_stories_link_shows_the_rest_of_the_window(
    engine: sa.Engine, served: str
) -> None:
    topics = parse_topics(TOPICS_YAML, "topics.yaml")
    sync_topics(engine, topics)
    ids = add_background(engine)
    add_burst(engine, ids, BURST_HOUR)  # 10 stories, one syndicated, and other news
    with engine.begin() as conn:  # and many more in the same hour
        for i in range(BURST - 10):
            add_article(
                conn,
                source_id=ids["cna" if i % 3 else "rfi"],
                url=f"https://many.example/{i}",
                title=f"两岸 {i}" if i % 4 else f"台湾 {i}",
                body="台湾。" * (1 + i % 5),
                published_at=BURST_HOUR + timedelta(minutes=i % 60, seconds=i // 60),
            )
    match_articles(engine, topics)
    assert len(detect(engine, topics, AT)) == 1
    sink = Sink()
    with serve_smtp(sink) as port:
        deliver_pending(
            engine,
            smtp_send(port),
            AT + timedelta(minutes=5),
            topics=topics,
            options=MailOptions(base_url=served),
        )
    (_, _, raw), *_ = sink.messages
    message = email.message_from_bytes(raw, policy=default_policy)
    assert isinstance(message, EmailMessage)
    window = _window_ids(engine)
    assert len(window) == BURST

    with Chromium() as browser:
        mail = browser.open(
            mail_html_file(message, ARTIFACTS / "alert-more.html").as_uri(), width=390
        )
        in_mail = mail.evaluate(STORIES)
        link = mail.evaluate(
            "[...document.links].map(a => a.href)"
            f".find(h => h.startsWith('{served}/mediamon/?topic=taiwan&from='))"
        )
        assert len(in_mail) == 105 and link, (len(in_mail), link)
        shown: list[int] = []
        pages = 0
        url: str | None = link
        while url:
            pages += 1
            assert pages <= 5, shown
            for width in (390, 1280):
                tab = browser.open(url, width=width)
                tab.screenshot(ARTIFACTS / f"mediamon_window-p{pages}-{width}.png")
                scroll, client = tab.evaluate(LAYOUT)
                assert scroll <= client <= width, (url, width, scroll, client)
            text = tab.evaluate("document.body.innerText")
            shown += tab.evaluate(STORIES)
            url = tab.evaluate(NEXT)
    assert "台湾 (taiwan): 230 stories from 2024-03-04 18:00 to 2024-03-04 19:00" in text, text[
        :300
    ]
    assert pages == 3
    # Every story of the window once, ranked as in the mail: its 105 first, then the rest.
    assert shown == window and shown[:105] == in_mail
    assert set(window) - set(in_mail) <= set(shown)


HOUR = {"from": "2024-03-04T10:00Z", "to": "2024-03-04T11:00Z"}
BAD: dict[str, tuple[dict[str, str], int, str]] = {
    # name: (parameters, status, words the page says)
    "no-times": ({"topic": "taiwan"}, 400, "from: missing"),
    "no-topic": (HOUR, 400, "topic: missing"),
    "bad-topic": ({**HOUR, "topic": "<b>x"}, 400, "&lt;b&gt;x"),
    "not-a-time": ({**HOUR, "topic": "taiwan", "from": "yesterday"}, 400, "from: expected an ISO"),
    # Before: read as 10:00 (CPython's fromisoformat stops at a NUL), the rest ignored.
    "nul": ({**HOUR, "topic": "taiwan", "from": "2024-03-04T10:00Z\x00junk"}, 400, "expected an"),
    "no-offset": ({**HOUR, "topic": "taiwan", "to": "2024-03-04T11:00"}, 400, "UTC offset"),
    "reversed": ({**HOUR, "topic": "taiwan", "to": "2024-03-04T09:00Z"}, 400, "before to"),
    "too-long": ({**HOUR, "topic": "taiwan", "from": "2024-01-01T00:00Z"}, 400, "at most 31 days"),
    "year-one": (
        {"topic": "taiwan", "from": "0001-01-01T00:00+05:00", "to": "0001-01-02T00:00Z"},
        400,
        "from: out of range",
    ),
    # Before: a server error (500), the page's zone (UTC+8) past datetime's year 9999.
    "year-9999": (
        {"topic": "taiwan", "from": "9999-12-31T20:00Z", "to": "9999-12-31T23:00Z"},
        400,
        "from: out of range",
    ),
    "unknown": ({**HOUR, "topic": "nosuch"}, 404, "no stories about a topic"),
}


def test_bad_parameters_get_a_page_saying_what_is_wrong(engine: sa.Engine, served: str) -> None:
    topics = parse_topics(TOPICS_YAML, "topics.yaml")
    sync_topics(engine, topics)
    add_burst(engine, add_background(engine, weeks=1), BURST_HOUR, stories=3)
    match_articles(engine, topics)
    answers: dict[str, Any] = {
        name: requests.get(f"{served}/mediamon/", params=params, timeout=30)
        for name, (params, _, _) in BAD.items()
    }
    for name, (_, status, words) in BAD.items():
        answer = answers[name]
        assert answer.status_code == status and words in answer.text, (name, answer.text[-600:])
        assert answer.headers["Content-Security-Policy"].startswith("default-src 'none'")
    # A page number is a convenience: a bad one shows the first page, one past the end the
    # last; an unencoded "+" of an offset (a space once decoded) is read as "+".
    window = {"topic": "taiwan", "from": "2024-03-04T18:00:00 08:00", "to": "2024-03-04T11:00Z"}
    for page in ("x", "-3", "999", "9" * 20, "9" * 5000, "１２"):
        answer = requests.get(f"{served}/mediamon/", params={**window, "page": page}, timeout=30)
        assert answer.status_code == 200 and answer.text.count('<li class="story"') == 3, page
    empty = {"topic": "taiwan", "from": "2024-01-01T00:00Z", "to": "2024-01-01T01:00Z", "page": "5"}
    answer = requests.get(f"{served}/mediamon/", params=empty, timeout=30)
    assert answer.status_code == 200 and "No stories about this topic in the window." in answer.text
    assert '<li class="story"' not in answer.text
    plain = requests.get(f"{served}/mediamon/", params={"days": "x"}, timeout=30)
    assert plain.status_code == 200 and "Topic trends" in plain.text  # the ordinary page


# URLs a row may hold that are no web page: a browser strips the tab and the leading
# space, and reads the letters' case as one.
NOT_WEB_PAGES = (
    "javascript:alert(1)",
    "java\tscript:alert(2)",
    " JaVaScRiPt:alert(3)",
    "data:text/html,<script>alert(4)</script>",
    "vbscript:msgbox(5)",
)
ALERT_LINKS = "[...document.querySelectorAll('table.alerts a')].map(a => a.protocol)"
ALERT_TITLES = "[...document.querySelectorAll('table.alerts ol.stories li')].map(e => e.innerText)"


def test_the_pages_alert_stories_link_only_to_web_pages(engine: sa.Engine, served: str) -> None:
    """Before: the page's alerts linked each top story to its stored URL as it stood (the
    window page and the mails already checked it): a row loaded before the ingest checks,
    or written by another program, put ``javascript:``, ``data:`` and ``vbscript:`` links
    in front of analysts."""
    topics = parse_topics(TOPICS_YAML, "topics.yaml")
    sync_topics(engine, topics)
    ids = add_background(engine)
    add_burst(engine, ids, BURST_HOUR)
    with engine.begin() as conn:  # the most mentions: the alert's top stories
        for i, url in enumerate(NOT_WEB_PAGES):
            add_article(
                conn,
                source_id=ids["cna"],
                url=url,
                title=f"台湾 not a page {i}",
                body="台湾。" * 80,
                published_at=BURST_HOUR + timedelta(minutes=i),
            )
    match_articles(engine, topics)
    assert len(detect(engine, topics, AT)) == 1
    answer = requests.get(f"{served}/mediamon/", timeout=30)
    assert answer.status_code == 200
    assert "javascript:" not in answer.text.lower() and "vbscript:" not in answer.text
    assert 'href="data:' not in answer.text
    with Chromium() as browser:
        tab = browser.open(f"{served}/mediamon/", width=1280)
        titles = tab.evaluate(ALERT_TITLES)
        protocols = tab.evaluate(ALERT_LINKS)
    # Still listed, by title, without a link; the stories with web pages keep theirs.
    assert sum("not a page" in title for title in titles) == 4, titles
    assert protocols and set(protocols) <= {"http:", "https:"}, protocols


def test_head_answers_as_get_without_the_body(engine: sa.Engine, served: str) -> None:
    """Before: ``405 Method Not Allowed`` (JSON): an uptime monitor or link checker asking
    with HEAD, as many do by default, found the page down."""
    for params in ({}, {"days": "7"}, BAD["unknown"][0], BAD["not-a-time"][0]):
        got = requests.get(f"{served}/mediamon/", params=params, timeout=30)
        head = requests.head(f"{served}/mediamon/", params=params, timeout=30)
        assert (head.status_code, head.content) == (got.status_code, b""), params
        for name in ("Content-Type", "Content-Security-Policy", "Cache-Control"):
            assert head.headers[name] == got.headers[name], (params, name)
        assert int(head.headers["Content-Length"]) > 1000, params


def _timed_get(url: str) -> tuple[int, float]:
    started = time.monotonic()
    answer = requests.get(url, timeout=120)
    return answer.status_code, time.monotonic() - started


def test_a_query_of_thousands_of_keys_costs_what_reading_it_costs(
    engine: sa.Engine, served: str
) -> None:
    """Before: FastAPI looked up each key it was not given in all of the query's items,
    on the api-server's event loop: a 55 kB query of 12,000 keys took seconds, and every
    other request of the server (Airflow's UI too) waited for it."""
    many = "&".join(f"{i:x}" for i in range(12_000))  # 55 kB, under uvicorn's limit
    assert len(many) < 60_000
    for params in ("days=7", "topic=taiwan&from=2024-03-04T10:00Z&to=2024-03-04T11:00Z"):
        plain = min(_timed_get(f"{served}/mediamon/?{params}")[1] for _ in range(3))
        # The least of three, as for the plain query: one run under CI's coverage and a
        # busy spell took 0.73 s against a bound of 0.61 s (the bug it guards: seconds).
        answers = [_timed_get(f"{served}/mediamon/?{many}&{params}") for _ in range(3)]
        spent = min(seconds for _, seconds in answers)
        assert all(status in (200, 404) for status, _ in answers), (params, answers)
        assert spent < 3 * plain + 0.5, (params, spent, plain)


WINDOW = {"topic": "taiwan", "from": "2024-03-04T10:00Z", "to": "2024-03-04T11:00Z"}


def test_a_database_that_does_not_answer_gets_a_page_saying_so() -> None:
    """Before: ``500 Internal Server Error`` as plain text, the page and a mail's "more
    stories" link alike. The why (host, port, the server's words) is the api-server's
    log's, not every reader's."""
    nowhere = sa.create_engine("postgresql+psycopg://nobody@127.0.0.1:1/none")
    try:
        with serving(nowhere) as url:
            for params in ({}, WINDOW):
                answer = requests.get(f"{url}/mediamon/", params=params, timeout=60)
                assert answer.status_code == 503, (params, answer.text[:200])
                assert answer.headers["Content-Type"].startswith("text/html"), params
                assert answer.headers["Retry-After"] == "60"
                assert answer.headers["Content-Security-Policy"].startswith("default-src 'none'")
                shown = html.unescape(answer.text)
                assert "mediamon's database did not answer; try again in a minute" in shown
                assert "127.0.0.1" not in shown and "refused" not in shown
    finally:
        nowhere.dispose()


def test_a_page_held_up_past_the_statement_timeout_says_so(
    engine: sa.Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A maintenance task holding a table the page reads (a migration, a VACUUM FULL):
    before, the page waited as long as the lock was held, and a reader who left kept its
    query waiting. Now each query ends at the statement timeout (30 s; 1 s here) and the
    reader gets a page saying so."""
    monkeypatch.setattr(dashboard, "STATEMENT_TIMEOUT_S", 1, raising=False)
    with serving(engine) as url, engine.connect() as holder:
        holder.exec_driver_sql("lock table bi.settings in access exclusive mode")
        for params in ({}, WINDOW):
            # before: no answer while the lock was held (requests' ReadTimeout here)
            answer = requests.get(f"{url}/mediamon/", params=params, timeout=20)
            assert answer.status_code == 503, params
            assert "its queries took longer than 1 s" in answer.text, params
        holder.rollback()
    with serving(engine) as url:
        assert requests.get(f"{url}/mediamon/", timeout=60).status_code == 200


def test_a_reader_who_finds_every_connection_busy_gets_a_page_saying_so(
    engine: sa.Engine,
) -> None:
    """More readers at once than the api-server's pool has connections (5 and 10 more by
    SQLAlchemy's default), while a maintenance task holds a table the page reads: each
    reader holds a connection up to the statement timeout, and the next waits the pool's
    timeout for one. Before: SQLAlchemy's pool TimeoutError, which is no database error,
    left the page: ``500 Internal Server Error`` as plain text. Here the pool is one
    connection and its wait 1 s; the first reader waits for the lock until it is let go."""
    small = make_engine(
        engine.url.render_as_string(hide_password=False),
        pool_size=1,
        max_overflow=0,
        pool_timeout=1,
    )
    answers: list[requests.Response] = []
    try:
        with serving(small) as url, engine.connect() as holder:
            holder.exec_driver_sql("lock table bi.settings in access exclusive mode")
            first = threading.Thread(
                target=lambda: answers.append(requests.get(f"{url}/mediamon/", timeout=60))
            )
            first.start()
            while small.pool.checkedout() == 0:  # type: ignore[attr-defined]
                time.sleep(0.05)
            for params in ({}, WINDOW):
                answer = requests.get(f"{url}/mediamon/", params=params, timeout=60)
                assert answer.status_code == 503, (params, answer.text[:200])
                assert answer.headers["Content-Type"].startswith("text/html"), params
                assert answer.headers["Retry-After"] == "60"
                assert answer.headers["Content-Security-Policy"].startswith("default-src 'none'")
                assert "every connection to mediamon's database is in use" in html.unescape(
                    answer.text
                ), params
            holder.rollback()
            first.join(timeout=60)
            assert [a.status_code for a in answers] == [200]  # served once the lock went
    finally:
        small.dispose()
