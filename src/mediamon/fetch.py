"""HTTP fetching with one ``requests.Session`` per task: timeouts, retries, size caps."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

logger = logging.getLogger(__name__)

CONNECT_TIMEOUT_S = 5.0
READ_TIMEOUT_S = 20.0
# requests' read timeout applies to each read, so a slow-drip server could hold a
# download open forever; the deadline bounds the whole body.
DOWNLOAD_DEADLINE_S = 60.0
MAX_BYTES = 15 * 1024 * 1024
CHUNK_BYTES = 64 * 1024


@dataclass
class FetchResult:
    """What one GET produced. ``error`` is None exactly when ``content`` is usable."""

    url: str
    final_url: str
    status: int | None
    content: bytes
    headers: dict[str, str] = field(default_factory=dict)
    elapsed_ms: int = 0
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "").split(";")[0].strip().lower()

    @property
    def charset(self) -> str | None:
        """The charset parameter of the Content-Type header, if any."""
        for part in self.headers.get("content-type", "").split(";")[1:]:
            key, _, value = part.partition("=")
            if key.strip().lower() == "charset" and value.strip():
                return value.strip().strip("\"'")
        return None


def make_session(user_agent: str, retries: int = 3, backoff_s: float = 0.5) -> requests.Session:
    """A session that retries connection errors and 5xx answers with backoff.

    Args:
        user_agent: Sent with every request so sites can identify and contact us.
        retries: Attempts after the first, for connection errors and 500/502/503/504.
        backoff_s: Base of the exponential backoff between attempts.
    """
    session = requests.Session()
    retry = Retry(
        total=retries,
        connect=retries,
        read=retries,
        status=retries,
        backoff_factor=backoff_s,
        status_forcelist=(500, 502, 503, 504),
        allowed_methods=("GET", "HEAD"),
        respect_retry_after_header=True,
        raise_on_status=False,
    )
    adapter = HTTPAdapter(max_retries=retry, pool_maxsize=8)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    session.headers.update(
        {
            "User-Agent": user_agent,
            "Accept": "application/rss+xml, application/atom+xml, application/xml, "
            "text/xml, text/html;q=0.9, */*;q=0.5",
            "Accept-Language": "zh, en;q=0.5",
        }
    )
    return session


def fetch(
    session: requests.Session,
    url: str,
    *,
    max_bytes: int = MAX_BYTES,
    deadline_s: float = DOWNLOAD_DEADLINE_S,
    timeout: tuple[float, float] = (CONNECT_TIMEOUT_S, READ_TIMEOUT_S),
) -> FetchResult:
    """GET ``url``; never raises for network or HTTP failures, which land in ``error``.

    Args:
        session: From :func:`make_session`.
        url: http(s) URL.
        max_bytes: Body size cap (after decompression); larger bodies are an error.
        deadline_s: Bound on the whole download, beside the per-read timeout.
        timeout: Connect and per-read timeouts in seconds.
    """
    started = time.monotonic()

    def done(**kwargs: object) -> FetchResult:
        elapsed = int((time.monotonic() - started) * 1000)
        return FetchResult(url=url, elapsed_ms=elapsed, **kwargs)  # type: ignore[arg-type]

    try:
        response = session.get(url, timeout=timeout, stream=True, allow_redirects=True)
    except requests.RequestException as error:
        return done(final_url=url, status=None, content=b"", error=_describe(error))
    with response:
        headers = {k.lower(): v for k, v in response.headers.items()}
        final_url = response.url
        if response.status_code >= 400:
            return done(
                final_url=final_url,
                status=response.status_code,
                content=b"",
                headers=headers,
                error=f"HTTP {response.status_code} {response.reason or ''}".strip(),
            )
        chunks: list[bytes] = []
        size = 0
        try:
            for chunk in response.iter_content(CHUNK_BYTES):
                size += len(chunk)
                if size > max_bytes:
                    return done(
                        final_url=final_url,
                        status=response.status_code,
                        content=b"",
                        headers=headers,
                        error=f"body larger than {max_bytes} bytes",
                    )
                if time.monotonic() - started > deadline_s:
                    return done(
                        final_url=final_url,
                        status=response.status_code,
                        content=b"",
                        headers=headers,
                        error=f"download took longer than {deadline_s:.0f} s",
                    )
                chunks.append(chunk)
        except requests.RequestException as error:
            return done(
                final_url=final_url,
                status=response.status_code,
                content=b"",
                headers=headers,
                error=_describe(error),
            )
        return done(
            final_url=final_url,
            status=response.status_code,
            content=b"".join(chunks),
            headers=headers,
        )


def _describe(error: requests.RequestException) -> str:
    """A short, stable description of a request failure for the fetch log.

    With retries on, urllib3 wraps the last failure in MaxRetryError; the description
    names that underlying failure, not the wrapper.
    """
    from urllib3 import exceptions as u3

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
        (u3.ProtocolError, "connection broken mid-body"),
        (requests.exceptions.InvalidSchema, "unsupported URL scheme"),
        (requests.exceptions.InvalidURL, "invalid URL"),
        (requests.exceptions.MissingSchema, "invalid URL"),
        (requests.exceptions.ConnectionError, "connection failed"),
    )
    label = next((text for kind, text in kinds if isinstance(reason, kind)), "request failed")
    detail = str(reason)
    if len(detail) > 300:
        detail = detail[:300] + "…"
    return f"{label}: {detail}"
