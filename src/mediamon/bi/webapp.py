"""The web app behind the page: one FastAPI app the Airflow plugin mounts at ``/mediamon``.
The caller passes the engine factory and the authentication dependencies (the plugin
passes Airflow's own), so the app itself never imports Airflow."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

import sqlalchemy as sa
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse

from mediamon.bi import dashboard, window
from mediamon.bi.serving import BoundedThreads, LazyEngine, answer_errors_with_pages
from mediamon.errors import explain
from mediamon.text import one_line

logger = logging.getLogger(__name__)

QUERY_CANCELED = "57014"  # PostgreSQL's SQLSTATE for a statement timeout (or a cancel)
POOL_BUSY = (
    "every connection to mediamon's database is in use by other readers of this page"
    " (the database is busy or a maintenance task holds a table); try again in a minute"
)

# Nothing on the page loads from elsewhere, and nothing may: no script at all, inline
# styles and SVG only, framed only by Airflow's own UI (the external view's iframe).
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
    "img-src data:; form-action 'self'; frame-ancestors 'self'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


def make_app(engine_factory: Callable[[], sa.Engine], dependencies: Sequence[Any] = ()) -> FastAPI:
    """The page's app: ``GET /`` (and ``HEAD /``) renders the page (``?days=N``, 1–90), or with
    ``?topic=KEY&from=TIME&to=TIME[&page=N]`` every story of that topic's window (where a
    mail's "N more stories" link leads; :mod:`mediamon.bi.window`).

    Args:
        engine_factory: Makes the engine on mediamon's database; called once, at the
            first request (the api-server imports plugins before any database is needed).
        dependencies: FastAPI dependencies applied to every route (authentication).
    """
    app = FastAPI(
        title="mediamon",
        dependencies=list(dependencies),
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    engine = LazyEngine(engine_factory)
    threads = BoundedThreads()
    # An address or method the app does not serve, a burst past the page's queue: a page
    # with the headers of every other, not FastAPI's bare JSON.
    answer_errors_with_pages(
        app,
        lambda _status, message: window.error_html(message, about_window=False),
        SECURITY_HEADERS,
    )

    # The blocking queries run on the thread pool, so they never hold up the api-server's
    # event loop, and on at most PAGE_THREADS of its threads: a reader past them waits
    # for one without holding any.
    # Every parameter is taken as text and checked here: a value FastAPI refused itself
    # would get its JSON error, not a page that says what is wrong. They are read from the
    # query here, not declared: FastAPI, given declared ones, looks up every other key of
    # the query in all of its items, on the event loop (a 62 kB query of 8,000 keys held
    # every request of the api-server for 1.6 s).
    # HEAD as GET without the body (RFC 9110 §9.3.2): uptime monitors and link checkers
    # ask with HEAD, and a 405 read as the page being down.
    @app.api_route("/", methods=["GET", "HEAD"], response_class=HTMLResponse)
    async def page(asked: Request) -> HTMLResponse:
        return await threads.run(respond, asked)

    def respond(asked: Request) -> HTMLResponse:
        try:
            return answer(asked)
        except sa.exc.DBAPIError as error:
            # The reader gets a page saying so, not a bare 500; the why (host, port, the
            # server's words) goes to the api-server's log, not to every reader.
            logger.warning("mediamon page: %s", one_line(explain(error) or error, 500))
            return HTMLResponse(
                window.error_html(database_trouble(error), about_window=False),
                503,
                headers=SECURITY_HEADERS | {"Retry-After": "60"},
            )
        except sa.exc.TimeoutError as error:
            # No connection came free within the pool's timeout: more readers at once than
            # the pool holds, each held up (a table locked by maintenance). SQLAlchemy's
            # pool error is no DBAPIError; uncaught, it was a bare 500.
            logger.warning("mediamon page: %s", one_line(str(error), 500))
            return HTMLResponse(
                window.error_html(POOL_BUSY, about_window=False),
                503,
                headers=SECURITY_HEADERS | {"Retry-After": "60"},
            )

    def answer(asked: Request) -> HTMLResponse:
        query = asked.query_params  # a repeated key: its last value, as FastAPI took it
        topic, start, end = query.get("topic"), query.get("from"), query.get("to")
        if topic is None and start is None and end is None:
            days = dashboard.clamp_days(query.get("days", dashboard.DEFAULT_DAYS))
            html = dashboard.page_html(engine(), days=days)
            return HTMLResponse(html, headers=SECURITY_HEADERS)
        try:
            request = window.parse_request(topic, start, end, query.get("page"))
            return HTMLResponse(window.window_html(engine(), request), headers=SECURITY_HEADERS)
        except window.WindowRequestError as error:
            message, status = str(error), 400
        except window.UnknownTopicError:
            message, status = f"no stories about a topic with the key {topic!r}", 404
        return HTMLResponse(window.error_html(message), status, headers=SECURITY_HEADERS)

    return app


def database_trouble(error: sa.exc.DBAPIError) -> str:
    """What a reader is told when mediamon's database failed the page."""
    if getattr(error.orig, "sqlstate", None) == QUERY_CANCELED:
        return (
            f"its queries took longer than {dashboard.STATEMENT_TIMEOUT_S} s (the database"
            " is busy or a maintenance task holds a table); try again in a minute"
        )
    return "mediamon's database did not answer; try again in a minute"
