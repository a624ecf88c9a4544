"""The short, stable lines a failed fetch leaves in the fetch log: a request failure
described by what failed (not urllib3's wrappers), and anything a server sent made safe
to store and print."""

from __future__ import annotations

import re

import requests
from urllib3 import exceptions as u3

from mediamon.ingest import netguard
from mediamon.text import BREAKS_A_LINE

# urllib3 starts its messages with the connection object's repr; the fetch log's line
# already names the URL, and the class name is ours (netguard's pinned connection).
_CONNECTION_REPR = re.compile(r"^<?\w*Connection(?:Pool)?\(host='[^']*', port=\d+\)>?: ")


def printable(text: str) -> str:
    """``text`` (an error that may quote what a server sent) with every character of
    :data:`mediamon.text.BREAKS_A_LINE` shown as U+FFFD: safe for the database, the logs
    and a terminal.

    A server's reason phrase ("500 A\\x00B", "500 \\x1b]0;…\\x07") went into the fetch
    log (PostgreSQL refused the NUL, and the chunk with it) and, raw, to the operator's
    terminal; a U+202E or U+2028 in it turned ``mediamon status``'s line around or broke it
    in two. One for one, not escaped as :func:`mediamon.text.one_line` does: the error
    is cut to MAX_ERROR_CHARS first, and the cut must still hold for what is stored."""
    return BREAKS_A_LINE.sub("\ufffd", text)


def short_error(error: BaseException) -> str:
    detail = _CONNECTION_REPR.sub("", str(error))
    return detail[:300] + "…" if len(detail) > 300 else detail


def describe(error: requests.RequestException) -> str:
    """A short, stable description of a request failure for the fetch log.

    With retries on, urllib3 wraps the last failure in MaxRetryError; the description
    names that underlying failure, not the wrapper.
    """
    if isinstance(error, netguard.BlockedURL | netguard.ResolutionFailed):
        return str(error)  # already a complete description
    if refused := netguard.answer_refusal(error):  # an answer netguard will not read
        return refused
    reason: BaseException = error
    if error.args and isinstance(error.args[0], u3.MaxRetryError) and error.args[0].reason:
        reason = error.args[0].reason
    kinds: tuple[tuple[type[BaseException], str], ...] = (
        # NewConnectionError subclasses ConnectTimeoutError: test it first.
        (u3.NameResolutionError, "DNS lookup failed"),
        (u3.NewConnectionError, "connection failed"),
        (requests.exceptions.ConnectTimeout, "connect timeout"),
        (u3.ConnectTimeoutError, "connect timeout"),
        (requests.exceptions.ReadTimeout, "read timeout"),
        (u3.ReadTimeoutError, "read timeout"),
        (requests.exceptions.TooManyRedirects, "too many redirects"),
        (requests.exceptions.SSLError, "TLS error"),
        (u3.SSLError, "TLS error"),
        (requests.exceptions.ContentDecodingError, "bad content encoding"),
        (requests.exceptions.ChunkedEncodingError, "connection broken mid-body"),
        (u3.ProtocolError, "connection broken"),
        (requests.exceptions.InvalidSchema, "unsupported URL scheme"),
        (requests.exceptions.InvalidURL, "invalid URL"),
        (requests.exceptions.MissingSchema, "invalid URL"),
        (requests.exceptions.ConnectionError, "connection failed"),
    )
    label = next((text for kind, text in kinds if isinstance(reason, kind)), "request failed")
    return f"{label}: {short_error(reason)}"
