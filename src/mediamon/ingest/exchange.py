"""One HTTP exchange of a fetch: a GET sent to a vetted target and its answer read within
the limits (deadline, size before and after decompression, reads, accepted types), before
:func:`mediamon.ingest.fetch.fetch` decides on redirects and retries.
"""

from __future__ import annotations

import time
from collections.abc import Collection
from dataclasses import dataclass, field

import requests
from urllib3 import exceptions as u3

from mediamon.deadline import watchdog
from mediamon.ingest import netguard, redirects
from mediamon.ingest.content_coding import BodyDecoder, DecodeFailed
from mediamon.ingest.decode import effective_content_type
from mediamon.ingest.fetch_errors import describe, short_error
from mediamon.ingest.session import GuardedSession

CHUNK_BYTES = 64 * 1024
# A read costs ~4 µs of CPU however little it returns, and a chunked body gives one chunk
# a read: 15 MB of 1-byte chunks cost 60 s of CPU, bounded only by the deadline. A 15 MB
# page over a slow link in 1,460-byte segments is about 11,000 reads.
MAX_BODY_READS = 100_000
REDIRECT_STATUSES = (301, 302, 303, 307, 308)
# The answers whose body is the resource asked for (RFC 9110 §15.3). Another success or
# 3xx (206 Partial Content to a request without Range, a 202 bot check, 300 Multiple
# Choices) was read as the page: its part or its stand-in stored as the story's text,
# which a feed's text never replaces and which is never fetched again.
WHOLE_ANSWER_STATUSES = (200, 203)


@dataclass
class Exchange:
    """One request and its response, before redirects and retries are decided."""

    status: int | None = None
    headers: dict[str, str] = field(default_factory=dict)
    content: bytes = b""
    error: str | None = None
    location: str | None = None


def one_exchange(
    session: GuardedSession,
    target: netguard.Target,
    headers: dict[str, str],
    timeout: tuple[float, float],
    deadline_s: float,
    whole_overran: str | None,
    max_bytes: int,
    accept_types: Collection[str] | None,
    any_success: bool,
) -> Exchange:
    """Send one GET to the vetted ``target`` and read its body within the limits.
    ``whole_overran`` is the error when ``deadline_s`` is what the whole fetch has left
    (shorter than a download's deadline)."""
    overran = whole_overran or f"download took longer than {deadline_s:g} s"
    # The pin, not the watchdog's event, says whether the deadline passed: it also
    # shuts down a connection attached after the deadline (see netguard.Pin.attach).
    with netguard.pinned(target) as pin, watchdog(deadline_s, pin.abort):
        started = time.monotonic()
        try:
            response = session.get(
                target.url,
                headers=headers,
                timeout=timeout,
                stream=True,
                allow_redirects=False,
            )
        except requests.RequestException as error:
            return Exchange(error=overran if pin.aborted else describe(error))
        with response:
            result = _read_response(
                response, started, deadline_s, overran, max_bytes, accept_types, any_success
            )
            if result.error is None and result.location is None:
                response.raw.release_conn()  # read to the end: keep the connection alive
        if pin.aborted and result.error is None and result.location is None:
            result.error, result.content = overran, b""
        elif pin.aborted and result.error and result.error.startswith("connection broken"):
            result.error = overran
        return result


def _read_response(
    response: requests.Response,
    started: float,
    deadline_s: float,
    overran: str,
    max_bytes: int,
    accept_types: Collection[str] | None,
    any_success: bool,
) -> Exchange:
    headers = {k.lower(): v for k, v in response.headers.items()}
    if "content-type" in headers:  # sent twice, it arrives joined by a comma
        headers["content-type"] = effective_content_type(headers["content-type"])
    status = response.status_code
    result = Exchange(status=status, headers=headers)
    if status in REDIRECT_STATUSES:
        location, error = redirects.location_of(status, response.raw.headers.getlist("location"))
        result.location, result.error = location, error
        return result
    if status == 304:
        return result
    if status < 200:  # 101: netguard's connections read past every other 1xx
        result.error = f"HTTP {status} {response.reason or ''} (an interim answer; none followed)"
        return result
    if status >= 400:
        result.error = f"HTTP {status} {response.reason or ''}".strip()
        return result
    if status not in WHOLE_ANSWER_STATUSES and not any_success:
        result.error = (
            f"HTTP {status} {response.reason or ''}".strip()
            + ": not the whole resource (only a 200 or 203 answer carries it); not read"
        )
        return result
    content_type = headers.get("content-type", "").split(";")[0].strip().lower()
    if accept_types is not None and not _type_accepted(content_type, accept_types):
        result.error = f"content type {content_type or '(none)'} not accepted"
        return result
    encoding = headers.get("content-encoding", "").strip().lower()
    length = headers.get("content-length", "")
    # ASCII digits only ("²".isdigit() is true), and a length of 16 digits or more is
    # over any cap without converting it (int() refuses more than 4300 digits).
    declared = length.isascii() and length.isdigit()
    if encoding in ("", "identity") and declared and (len(length) > 15 or int(length) > max_bytes):
        result.error = f"body larger than {max_bytes} bytes"
        return result
    try:
        decoder = BodyDecoder(encoding)
    except ValueError as error:
        result.error = f"bad content encoding: {error}"
        return result
    raw = response.raw
    chunks: list[bytes] = []
    size = wire = reads = 0
    try:
        while True:
            if time.monotonic() - started > deadline_s:
                result.error = overran
                return result
            data = raw.read1(CHUNK_BYTES, decode_content=False)
            if not data:
                break
            # The cap holds for the bytes read too: a gzip body of endless empty members
            # decodes to nothing, so the decoded size never reached it, and each request
            # took the whole deadline of CPU (60 s) decoding what the server streamed.
            wire += len(data)
            reads += 1
            if reads > MAX_BODY_READS:
                result.error = (
                    f"body sent in more than {MAX_BODY_READS:,} pieces ({wire / reads:.0f} bytes"
                    " each on average: chunks or writes too small to read); not read further"
                )
                return result
            if wire > max_bytes:
                result.error = f"compressed body larger than {max_bytes} bytes"
                return result
            piece = decoder.feed(data, max_bytes - size)
            size += len(piece)
            if size > max_bytes:
                result.error = f"body larger than {max_bytes} bytes"
                return result
            chunks.append(piece)
        tail = decoder.finish()
        size += len(tail)
        if size > max_bytes:
            result.error = f"body larger than {max_bytes} bytes"
            return result
        chunks.append(tail)
    except DecodeFailed as error:
        result.error = f"bad content encoding: {error}"
        return result
    except (u3.ReadTimeoutError, TimeoutError) as error:
        result.error = f"read timeout: {error}"
        return result
    except (u3.HTTPError, OSError, requests.RequestException) as error:
        refused = netguard.answer_refusal(error)  # netguard's line for what it refused
        result.error = refused or f"connection broken mid-body: {short_error(error)}"
        return result
    result.content = b"".join(chunks)
    return result


def _type_accepted(content_type: str, accepted: Collection[str]) -> bool:
    for pattern in accepted:
        if pattern == content_type:
            return True
        if pattern == "*+xml" and content_type.endswith("+xml"):
            return True
        if pattern == "*/xml" and content_type.endswith("/xml"):
            return True
    return False
