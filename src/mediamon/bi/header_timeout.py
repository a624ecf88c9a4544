"""A time limit on a request's headers for the uvicorn server that serves the mediamon
page (Airflow's api-server, which starts uvicorn itself with options of its own).

uvicorn has no such limit: a connection that sends its headers a byte at a time, or
not at all, is kept for as long as the client likes (its keep-alive timeout starts only
after a response, and any byte cancels it). A slowloris client opening such connections
by the thousand holds the server's file descriptors until no one else is accepted.
Apache's mod_reqtimeout (header=20-40) and nginx's ``client_header_timeout`` (60 s)
close such connections; so does this, at :data:`DEFAULT_HEADER_TIMEOUT_S`.

The limit applies from the connection's start, and again from the end of each response
(the next request's headers on a kept-alive connection): a connection whose headers are
not complete by then is closed.

A request's body gets the same limit from the end of its headers, a second more for
every :data:`BODY_MIN_RATE` bytes received (mod_reqtimeout's ``body=20,MinRate=500``):
a client dripping the body of a POST a byte a second (Airflow's ``/auth/token`` reads
it before any login) held the connection, and the handler awaiting it, for as long as it
dripped. A request whose body arrived is not limited here (its handler, the
api-server's and the database's timeouts bound it).

uvicorn is given the limit by wrapping its httptools protocol's methods (the one it
picks when httptools is installed, as mediamon's lock has it), once per process.
"""

from __future__ import annotations

import asyncio
import logging
import os
from typing import Any

logger = logging.getLogger(__name__)

DEFAULT_HEADER_TIMEOUT_S = 20.0
# A setting read from the environment: at least a second, at most ten minutes.
HEADER_TIMEOUT_ENV = "MEDIAMON_HEADER_TIMEOUT_S"
MIN_HEADER_TIMEOUT_S, MAX_HEADER_TIMEOUT_S = 1.0, 600.0

_TIMER = "_mediamon_header_timer"
_BODY_TIMER = "_mediamon_body_timer"
_BODY_DEADLINE = "_mediamon_body_deadline"
# Bytes a second a body must average past the first limit, as mod_reqtimeout's MinRate:
# a 10 MB upload over a slow link of 4 Mbit/s (500 kB/s) is not cut.
BODY_MIN_RATE = 500


def header_timeout_s(env: dict[str, str] | None = None) -> float:
    """``MEDIAMON_HEADER_TIMEOUT_S``, clamped; the default when unset or not a number."""
    raw = (env if env is not None else os.environ).get(HEADER_TIMEOUT_ENV, "")
    try:
        value = float(raw) if raw.strip() else DEFAULT_HEADER_TIMEOUT_S
    except ValueError:
        logger.warning("%s=%r is not a number of seconds: %s s", HEADER_TIMEOUT_ENV, raw,
                       DEFAULT_HEADER_TIMEOUT_S)  # fmt: skip
        value = DEFAULT_HEADER_TIMEOUT_S
    if value != value:  # NaN
        value = DEFAULT_HEADER_TIMEOUT_S
    return min(max(value, MIN_HEADER_TIMEOUT_S), MAX_HEADER_TIMEOUT_S)


def _cancel(protocol: Any) -> None:
    timer = getattr(protocol, _TIMER, None)
    if timer is not None:
        timer.cancel()
        setattr(protocol, _TIMER, None)


def _start(protocol: Any, timeout_s: float) -> None:
    _cancel(protocol)
    loop = asyncio.get_running_loop()
    setattr(protocol, _TIMER, loop.call_later(timeout_s, _expire, protocol, timeout_s))


def _expire(protocol: Any, timeout_s: float) -> None:
    setattr(protocol, _TIMER, None)
    cycle = getattr(protocol, "cycle", None)
    if cycle is not None and not cycle.response_complete:
        return  # a request is being answered: its headers came in time
    transport = getattr(protocol, "transport", None)
    if transport is not None and not transport.is_closing():
        client = getattr(protocol, "client", None)
        logger.info("closed a connection from %s: no complete request headers in %g s",
                    client, timeout_s)  # fmt: skip
        transport.close()


def _start_body(protocol: Any, timeout_s: float) -> None:
    _cancel_body(protocol)
    loop = asyncio.get_running_loop()
    setattr(protocol, _BODY_DEADLINE, loop.time() + timeout_s)
    setattr(protocol, _BODY_TIMER, loop.call_later(timeout_s, _expire_body, protocol))


def _cancel_body(protocol: Any) -> None:
    timer = getattr(protocol, _BODY_TIMER, None)
    if timer is not None:
        timer.cancel()
        setattr(protocol, _BODY_TIMER, None)


def _extend_body(protocol: Any, received: int) -> None:
    deadline = getattr(protocol, _BODY_DEADLINE, None)
    if deadline is not None:
        setattr(protocol, _BODY_DEADLINE, deadline + received / BODY_MIN_RATE)


def _expire_body(protocol: Any) -> None:
    setattr(protocol, _BODY_TIMER, None)
    loop = asyncio.get_running_loop()
    left = getattr(protocol, _BODY_DEADLINE, 0.0) - loop.time()
    if left > 0:  # the body came fast enough to earn more time
        setattr(protocol, _BODY_TIMER, loop.call_later(left, _expire_body, protocol))
        return
    cycle = getattr(protocol, "cycle", None)
    if cycle is None or cycle.response_complete or not cycle.more_body:
        return  # answered, or the body is all there
    transport = getattr(protocol, "transport", None)
    if transport is not None and not transport.is_closing():
        logger.info("closed a connection from %s: request body not complete in time",
                    getattr(protocol, "client", None))  # fmt: skip
        transport.close()  # the handler awaiting the body gets http.disconnect


def bound_header_time(timeout_s: float | None = None) -> bool:
    """Give uvicorn's httptools protocol a limit of ``timeout_s`` seconds (default:
    :func:`header_timeout_s`) on each request's headers, and on its body (more for a
    long one); True once installed (again a
    no-op), False when uvicorn or httptools is not installed."""
    try:
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
    except ImportError:
        return False
    if getattr(HttpToolsProtocol, "_mediamon_header_timeout", None) is not None:
        return True
    limit = header_timeout_s() if timeout_s is None else timeout_s
    made = HttpToolsProtocol.connection_made
    lost = HttpToolsProtocol.connection_lost
    headers_complete = HttpToolsProtocol.on_headers_complete
    response_complete = HttpToolsProtocol.on_response_complete
    read_body = HttpToolsProtocol.on_body
    message_complete = HttpToolsProtocol.on_message_complete

    def connection_made(self: Any, transport: asyncio.Transport) -> None:
        made(self, transport)
        _start(self, limit)

    def connection_lost(self: Any, exc: Exception | None) -> None:
        _cancel(self)
        _cancel_body(self)
        lost(self, exc)

    def on_headers_complete(self: Any) -> None:
        _cancel(self)
        _start_body(self, limit)  # a request without a body completes at once
        headers_complete(self)

    def on_body(self: Any, body: bytes) -> None:
        _extend_body(self, len(body))
        read_body(self, body)

    def on_message_complete(self: Any) -> None:
        _cancel_body(self)
        message_complete(self)

    def on_response_complete(self: Any) -> None:
        response_complete(self)
        if not self.transport.is_closing():
            _start(self, limit)  # the next request's headers, on a kept-alive connection

    HttpToolsProtocol.connection_made = connection_made  # type: ignore[method-assign]
    HttpToolsProtocol.connection_lost = connection_lost  # type: ignore[method-assign]
    HttpToolsProtocol.on_headers_complete = on_headers_complete  # type: ignore[method-assign]
    HttpToolsProtocol.on_response_complete = on_response_complete  # type: ignore[method-assign]
    HttpToolsProtocol.on_body = on_body  # type: ignore[method-assign]
    HttpToolsProtocol.on_message_complete = on_message_complete  # type: ignore[method-assign]
    HttpToolsProtocol._mediamon_header_timeout = limit  # type: ignore[attr-defined]
    return True
