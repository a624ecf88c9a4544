"""The unsubscribe page: one FastAPI app the Airflow plugin mounts at
``/mediamon-unsubscribe`` *without* Airflow's login (a recipient has none, and Gmail's
one-click POST comes from Google's servers), so the signed token in its address is the
only authority (:mod:`mediamon.alerts.unsubscribe`).

``GET`` (and ``HEAD``) only shows what the link does and a button: link scanners and
mail clients prefetch links, and a GET that unsubscribed would unsubscribe everyone whose
mail a scanner read. ``POST`` unsubscribes: RFC 8058's ``List-Unsubscribe=One-Click``
from a mail provider, or the page's button. ``/alerts`` ("Manage your alerts") lists the
recipient's topics to turn off or on, opened only by their every-topic token. Never
imports Airflow.
"""

from __future__ import annotations

import html
import logging
import os
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from urllib.parse import parse_qs, quote

import sqlalchemy as sa
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse

from mediamon import limits
from mediamon.alerts import subscriptions
from mediamon.alerts.render import esc
from mediamon.alerts.unsubscribe import (
    ALL_TOPICS,
    Subscription,
    TokenRefused,
    verify,
)
from mediamon.bi.serving import BoundedThreads, LazyEngine, answer_errors_with_pages
from mediamon.bi.webapp import SECURITY_HEADERS
from mediamon.db.tables import mail_subscriptions, topics_table
from mediamon.errors import explain
from mediamon.settings import SettingsError, unsubscribe_secrets
from mediamon.text import one_line
from mediamon.topics.store import stored_topics

logger = logging.getLogger(__name__)

Keys = tuple[str, ...]
Answer = HTMLResponse | RedirectResponse

# A one-click POST's body is "List-Unsubscribe=One-Click" (26 bytes); the page's form adds
# a field. Anything past this is no request of ours: refused unread.
MAX_BODY_BYTES = 4_096
# Search engines must not list a page whose address carries someone's token, and no other
# site may frame it (a page drawn over its button would make a reader press it).
PAGE_HEADERS = SECURITY_HEADERS | {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline';"
    " form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Robots-Tag": "noindex, nofollow",
}
NOT_ENABLED = "unsubscribe links are not enabled here (no MEDIAMON_UNSUBSCRIBE_SECRET)"
# A topic's token leaves that topic (and, from its page, every mail) but never shows or
# changes the recipient's other topics: only their every-topic token opens the list.
NOT_UNSUBSCRIBED = "Not unsubscribed / 未退订"
NOT_CHANGED = "Not changed / 未更改"
ONE_TOPIC_ONLY = (
    "this link is for one topic's mail and cannot show or change your other alerts;"
    ' use the "Manage your alerts" link of a recent mail'
)
MODES = {
    "immediate": "immediate alerts / 即时提醒",
    "daily": "daily digest / 每日摘要",
    "weekly": "weekly digest / 每周摘要",
}
STYLE = (
    "body{margin:0;background:#f3f4f6;font-family:-apple-system,BlinkMacSystemFont,"
    "'Segoe UI',Roboto,'Noto Sans CJK SC','PingFang SC','Microsoft YaHei',sans-serif;"
    "color:#222;line-height:1.5}"
    ".box{max-width:560px;margin:24px auto;background:#fff;padding:20px;box-sizing:border-box;"
    "overflow-wrap:anywhere}"
    "h1{font-size:20px;margin:0 0 12px}"
    "button{font-size:16px;padding:10px 18px;border:0;border-radius:4px;background:#c62828;"
    "color:#fff;cursor:pointer;margin:8px 0}"
    "button.quiet{background:#fff;color:#1a4f8b;border:1px solid #1a4f8b}"
    ".muted{color:#555;font-size:14px}.refused{border-left:4px solid #c62828;padding-left:10px}"
    "ul.topics{list-style:none;padding:0;margin:0}"
    "li.topic{border-top:1px solid #e0e0e0;padding:10px 0}li.topic form{margin:0}"
    ".state{font-weight:bold}.left .state{color:#c62828}.on .state{color:#2e7d32}"
    "@media (max-width:600px){.box{margin:0;min-height:100vh}button{width:100%}}"
)


def make_unsubscribe_app(
    engine_factory: Callable[[], sa.Engine], keys_factory: Callable[[], Sequence[str]]
) -> FastAPI:
    """The page's app: ``GET /?t=TOKEN`` asks, ``POST /?t=TOKEN`` unsubscribes.

    Args:
        engine_factory: Makes the engine on mediamon's database; called once, at the
            first request that needs it.
        keys_factory: The HMAC keys (``MEDIAMON_UNSUBSCRIBE_SECRET``); called at each
            request (cheap), so a rotated key needs only the api-server's environment.
    """
    app = FastAPI(title="mediamon unsubscribe", docs_url=None, redoc_url=None, openapi_url=None)
    engine = LazyEngine(engine_factory)
    # Its database work on a few of the api-server's threads: the page has no login, and
    # readers held up by a locked table took every thread, Airflow's own endpoints' too.
    threads = BoundedThreads()
    answer_errors_with_pages(app, _error_page, PAGE_HEADERS)

    @app.api_route("/", methods=["GET", "HEAD"], response_class=HTMLResponse, response_model=None)
    async def ask(asked: Request) -> Answer:
        token = asked.query_params.get("t", "")

        async def show(keys: Keys) -> Answer:
            who = verify(keys, token)
            name, left = await threads.run(_topic_and_state, engine(), who)
            return HTMLResponse(_ask_html(who, name, left, token), headers=PAGE_HEADERS)

        return await _answer(NOT_UNSUBSCRIBED, keys_factory, show)

    @app.post("/", response_class=HTMLResponse, response_model=None)
    async def leave(asked: Request) -> Answer:
        token = asked.query_params.get("t", "")
        form = await _form_fields(asked)
        if form is None:
            return _too_large(NOT_UNSUBSCRIBED)
        via = "page" if form.get("from") == "page" else "one-click"
        # Only the page's "undo" button sends this; a one-click POST never does.
        again = via == "page" and form.get("resubscribe") == "1"
        # The topic page's "stop every mail" button: its own token, so the page never
        # hands a topic's reader the every-topic token that opens the recipient's list.
        every = via == "page" and form.get("every") == "1"

        async def change(keys: Keys) -> Answer:
            who = verify(keys, token)
            if every:
                who = Subscription(who.recipient, ALL_TOPICS)
            name = await threads.run(_set_state, engine(), who, again, via)
            done = "subscribed again" if again else "unsubscribed"
            logger.info("%s %s from %s (%s)", done, who.recipient, who.topic, via)
            page = (
                _again_html(who, name, token, every=every)
                if again
                else _done_html(who, name, token, every=every)
            )
            return HTMLResponse(page, headers=PAGE_HEADERS)

        return await _answer(NOT_UNSUBSCRIBED, keys_factory, change)

    @app.api_route(
        "/alerts", methods=["GET", "HEAD"], response_class=HTMLResponse, response_model=None
    )
    async def your_alerts(asked: Request) -> Answer:
        """Every topic the recipient gets, each with its state and a button; GET shows."""
        token = asked.query_params.get("t", "")

        async def show(keys: Keys) -> Answer:
            who = _everything(keys, token)
            own, all_left = await threads.run(_own_topics, engine(), who.recipient)
            return HTMLResponse(_list_html(who, own, all_left, token), headers=PAGE_HEADERS)

        return await _answer("Your alerts / 您的提醒", keys_factory, show)

    @app.post("/alerts", response_class=HTMLResponse, response_model=None)
    async def change_alert(asked: Request) -> Answer:
        """Leave or rejoin one of the recipient's topics (``*``: every mail), then the
        list again (303: a reload does not post twice)."""
        token = asked.query_params.get("t", "")
        form = await _form_fields(asked)
        if form is None:
            return _too_large(NOT_CHANGED)
        topic = form.get("topic", "")
        action = form.get("action", "")

        async def change(keys: Keys) -> Answer:
            who = _everything(keys, token)
            if action not in ("leave", "rejoin"):
                raise TokenRefused(f"action {action[:20]!r}: expected leave or rejoin")
            changed = await threads.run(
                _change_own, engine(), Subscription(who.recipient, topic), action == "rejoin"
            )
            logger.info("%s %s %s (list page)", who.recipient, action, changed)
            target = f"alerts?t={quote(token, safe='')}"
            return RedirectResponse(target, 303, headers=PAGE_HEADERS)

        return await _answer(NOT_CHANGED, keys_factory, change)

    return app


async def _answer(
    title: str, keys_factory: Callable[[], Sequence[str]], work: Callable[[Keys], Awaitable[Answer]]
) -> Answer:
    """``work``'s answer with the keys of now; what every handler answers alike when there
    are no keys (503), the token is refused (403, one line) or the database fails (503)."""
    keys = tuple(keys_factory())
    if not keys:
        return _page(title, f"<p>{NOT_ENABLED}</p>", 503)
    try:
        return await work(keys)
    except TokenRefused as refused:
        return _refused(refused, title)
    except (sa.exc.DBAPIError, sa.exc.TimeoutError) as error:
        return _database_trouble(error)


async def _form_fields(asked: Request) -> dict[str, str] | None:
    """A POST's form fields, the first value of each; None when the body is past
    ``MAX_BODY_BYTES`` (refused unread from there on)."""
    body = b""
    async for chunk in asked.stream():
        body += chunk
        if len(body) > MAX_BODY_BYTES:
            return None
    fields = parse_qs(body.decode("utf-8", "replace"), max_num_fields=10)
    return {name: values[0] for name, values in fields.items()}


def _too_large(title: str) -> HTMLResponse:
    return _page(title, "<p>The request is too large.</p>", 413)


def keys_from_env() -> tuple[str, ...]:
    """The keys of ``MEDIAMON_UNSUBSCRIBE_SECRET`` as the api-server's environment holds
    them now; none (the page says links are not enabled) when the value is unusable,
    which the log says in one line without showing it."""
    try:
        return unsubscribe_secrets(os.environ.get("MEDIAMON_UNSUBSCRIBE_SECRET", ""))
    except SettingsError as error:
        logger.warning("unsubscribe page disabled: %s", error)
        return ()


def _topic_and_state(engine: sa.Engine, who: Subscription) -> tuple[str | None, bool]:
    """The topic's name (None: every topic, or a topic no longer configured) and whether
    the recipient has left it already; shown only, never needed to verify."""
    with engine.connect() as conn:
        name = None
        if not who.everything:
            name = conn.execute(
                sa.select(topics_table.c.name).where(topics_table.c.topic == who.topic)
            ).scalar()
        c = mail_subscriptions.c
        state = conn.execute(
            sa.select(c.state).where(c.recipient == who.recipient, c.topic == who.topic)
        ).scalar()
    return name, state == "unsubscribed"


def _everything(keys: Sequence[str], token: str) -> Subscription:
    """The recipient of an every-topic token; a topic's token is refused in one line."""
    who = verify(keys, token)
    if not who.everything:
        raise TokenRefused(ONE_TOPIC_ONLY)
    return who


def _own_topics(
    engine: sa.Engine, recipient: str
) -> tuple[tuple[subscriptions.OwnTopic, ...], bool]:
    # The stored topics: what delivery mails from (the api-server has no topics file).
    topics = stored_topics(engine)
    with engine.connect() as conn:
        return subscriptions.own_topics(conn, topics, recipient)


def _change_own(engine: sa.Engine, who: Subscription, subscribed: bool) -> str:
    """Record the change if ``who.topic`` is every mail or one of the recipient's topics
    (a key posted for any other topic is refused: nothing written)."""
    if not who.everything:
        own, _ = _own_topics(engine, who.recipient)
        if who.topic not in {t.key for t in own}:
            raise TokenRefused(
                f"topic {one_line(who.topic, 80)!r} sends no mail to this address: not changed"
            )
    with engine.begin() as conn:
        subscriptions.set_state(conn, who, subscribed=subscribed, at=datetime.now(UTC), via="page")
    return who.topic


def _set_state(engine: sa.Engine, who: Subscription, subscribed: bool, via: str) -> str | None:
    with engine.begin() as conn:
        subscriptions.set_state(conn, who, subscribed=subscribed, at=datetime.now(UTC), via=via)
    return _topic_and_state(engine, who)[0]


def _what(who: Subscription, name: str | None) -> tuple[str, str]:
    """The mail a token is about, in English and in Chinese (escaped): the reader's
    language is not in the token, and both fit a phone's screen."""
    if who.everything:
        return (
            "every mediamon mail (all topic alerts and digests)",
            "任何 mediamon 邮件（所有话题的提醒和摘要）",
        )
    # The name cleaned as a mail's (an override or U+2028 made a space) and isolated: a
    # right-to-left override in it turned the rest of the sentence around, key and "?".
    name_html = _shown_name(name)
    key = html.escape(who.topic)
    shown = f"<bdi>{name_html}</bdi> ({key})" if name_html else key
    return f"the alerts and digests about {shown}", f"关于 {shown} 的提醒和摘要"


def _shown_name(name: str | None) -> str:
    """A topic's name for the page: cleaned as the window page and mails clean it
    (:func:`mediamon.alerts.render.clean`: bidi controls and U+2028 made spaces),
    escaped; "" when nothing of it would show. Escaped only, a right-to-left override
    in it drew "Strait" as "tiartS" and U+2028 broke it in two, and a name of invisible
    characters alone (stored before the topics file refused them) was a bold gap: the
    callers show the key instead."""
    return esc(name, limits.MAX_TITLE_CHARS) if name else ""


def _ask_html(who: Subscription, name: str | None, left: bool, token: str) -> str:
    address = html.escape(who.recipient)
    english, chinese = _what(who, name)
    if left:
        return _page_text(
            "Already unsubscribed / 已退订",
            f"<p><b>{address}</b> no longer gets {english}.</p>"
            f"<p><b>{address}</b> 已不再接收{chinese}。</p>" + _undo(token),
        )
    if who.everything:  # the recipient's key to their list: leave topics one by one
        manage = html.escape(f"alerts?t={quote(token, safe='')}", quote=True)
        everything = (
            f'<p><a href="{manage}" id="manage">Choose topics one by one instead /'
            " 改为逐个选择话题</a></p>"
        )
    else:  # the same reader may leave every topic from here
        everything = _form(
            token, "Stop every mediamon mail / 退订全部", ' class="quiet"', every=True
        )
    return _page_text(
        "Unsubscribe? / 退订？",
        f"<p>Stop sending <b>{address}</b> {english}?</p>"
        f"<p>不再向 <b>{address}</b> 发送{chinese}？</p>"
        + _form(token, "Unsubscribe / 退订")
        + everything
        + '<p class="muted">Nothing changes until you press a button. / 按下按钮后才会退订。</p>',
    )


def _form(
    token: str, label: str, css: str = "", *, resubscribe: bool = False, every: bool = False
) -> str:
    """A button that POSTs to the page with ``token``: RFC 8058's body, marked as the
    page's (and as an undo when ``resubscribe``; about every mail when ``every``)."""
    action = html.escape(f"?t={quote(token, safe='')}", quote=True)
    extra = '<input type="hidden" name="resubscribe" value="1">' if resubscribe else ""
    extra += '<input type="hidden" name="every" value="1">' if every else ""
    return (
        f'<form method="post" action="{action}">'
        '<input type="hidden" name="List-Unsubscribe" value="One-Click">'
        f'<input type="hidden" name="from" value="page">{extra}'
        f'<button type="submit"{css}>{html.escape(label)}</button></form>'
    )


def _undo(token: str, *, every: bool = False) -> str:
    label = "Undo: subscribe again / 撤销，重新订阅"
    return _form(token, label, ' class="quiet"', resubscribe=True, every=every)


def _done_html(who: Subscription, name: str | None, token: str, *, every: bool = False) -> str:
    address = html.escape(who.recipient)
    english, chinese = _what(who, name)
    return _page_text(
        "Unsubscribed / 已退订",
        f"<p><b>{address}</b> will get no more of {english}.</p>"
        f"<p><b>{address}</b> 将不再收到{chinese}。</p>" + _undo(token, every=every),
    )


def _again_html(who: Subscription, name: str | None, token: str, *, every: bool = False) -> str:
    address = html.escape(who.recipient)
    english, chinese = _what(who, name)
    return _page_text(
        "Subscribed again / 已重新订阅",
        f"<p><b>{address}</b> gets {english} again.</p>"
        f"<p><b>{address}</b> 将重新收到{chinese}。</p>"
        + _form(token, "Unsubscribe / 退订", ' class="quiet"', every=every),
    )


def _list_form(token: str, topic: str, action: str, label: str, css: str = "") -> str:
    """A button that POSTs ``action`` (leave, rejoin) for ``topic`` to the list page."""
    target = html.escape(f"alerts?t={quote(token, safe='')}", quote=True)
    return (
        f'<form method="post" action="{target}">'
        f'<input type="hidden" name="topic" value="{html.escape(topic, quote=True)}">'
        f'<input type="hidden" name="action" value="{action}">'
        f'<button type="submit"{css}>{html.escape(label)}</button></form>'
    )


def _list_html(
    who: Subscription, own: Sequence[subscriptions.OwnTopic], all_left: bool, token: str
) -> str:
    """The recipient's topics, each with its state and a button to leave or rejoin it;
    names (an admin's file, maybe HTML or right-to-left text) escaped inside <bdi>."""
    address = html.escape(who.recipient)
    body = f"<p>Mail to <b>{address}</b> / 发往 <b>{address}</b> 的邮件</p>"
    if all_left:
        body += (
            '<p class="refused" id="all-left">Every mediamon mail to this address is stopped;'
            " the topics below send nothing until you turn mail back on. /"
            " 已退订全部邮件，重新接收前以下话题均不发送。</p>"
            + _list_form(
                token, ALL_TOPICS, "rejoin", "Receive mail again / 重新接收", ' class="quiet"'
            )
        )
    if not own:
        body += (
            '<p class="muted">No topic sends mail to this address now. /'
            " 目前没有话题向此地址发送邮件。</p>"
        )
    items = []
    for topic in own:
        name, key = _shown_name(topic.name), html.escape(topic.key)
        after = f' <span class="muted">(<bdi>{key}</bdi>)</span>' if name else ""
        modes = ", ".join(MODES.get(mode, html.escape(mode)) for mode in topic.modes)
        state, button = (
            (
                "Left / 已退订",
                _list_form(token, topic.key, "rejoin", "Turn on / 重新订阅", ' class="quiet"'),
            )
            if topic.left
            else (
                "Receiving / 接收中",
                _list_form(token, topic.key, "leave", "Turn off / 退订", ' class="quiet"'),
            )
        )
        items.append(
            f'<li class="topic {"left" if topic.left else "on"}"'
            f' data-topic="{html.escape(topic.key, quote=True)}">'
            f"<b><bdi>{name or key}</bdi></b>{after}<br>"
            f'<span class="muted">{modes}</span><br><span class="state">{state}</span>'
            f"{button}</li>"
        )
    if items:
        body += f'<ul class="topics">{"".join(items)}</ul>'
    if not all_left:
        body += _list_form(
            token, ALL_TOPICS, "leave", "Stop every mediamon mail / 退订全部", ' class="quiet"'
        )
    body += '<p class="muted">Nothing changes until you press a button. / 按下按钮后才会更改。</p>'
    return _page_text("Your mediamon alerts / 您的 mediamon 提醒", body)


def _page_text(title: str, body: str) -> str:
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        f"<title>{html.escape(title)}</title><style>{STYLE}</style></head>"
        f'<body><main class="box"><h1>{html.escape(title)}</h1>{body}</main></body></html>'
    )


def _error_page(status: int, message: str) -> str:
    """An address or method the app does not serve, or a burst past its queue."""
    title = "Not found / 未找到" if status == 404 else "Not unsubscribed / 未退订"
    return _page_text(title, f'<p class="refused" id="reason">{html.escape(message)}.</p>')


def _page(title: str, body: str, status: int) -> HTMLResponse:
    return HTMLResponse(_page_text(title, body), status, headers=PAGE_HEADERS)


def _refused(refused: TokenRefused, title: str) -> HTMLResponse:
    """A token that is not ours or was changed: one line, nothing written."""
    logger.warning("unsubscribe refused: %s", refused)
    return _page(
        title,
        f'<p class="refused" id="reason">{html.escape(str(refused))}</p>',
        403,
    )


def _database_trouble(error: sa.exc.DBAPIError | sa.exc.TimeoutError) -> HTMLResponse:
    """503: the database failed, or no connection came free within the pool's timeout
    (SQLAlchemy's pool error is no DBAPIError; uncaught, it was a bare 500)."""
    logger.warning("unsubscribe page: %s", one_line(explain(error) or error, 500))
    return HTMLResponse(
        _page_text(
            NOT_UNSUBSCRIBED,
            "<p>mediamon's database did not answer; try again in a minute.</p>",
        ),
        503,
        headers=PAGE_HEADERS | {"Retry-After": "60"},
    )
