"""SSRF guard: resolve a URL's host once, refuse addresses mediamon must not reach, and
connect to exactly the address that was checked.

A feed is input from strangers: its item links, and every redirect a server answers
with, may point at the machine mediamon runs on, the office network or a cloud metadata
service. :func:`vet` parses the URL, resolves its host once and refuses it when any
address is loopback, private, link-local, multicast, reserved, shared (CGNAT),
unspecified or a known cloud-metadata address, or when the scheme is not http(s).
:class:`GuardedAdapter` then connects to the vetted address itself, keeping the URL's
host name for the Host header, TLS SNI and certificate checks, so a DNS answer that
changes between the check and the connection (DNS rebinding) cannot redirect it.
"""

from __future__ import annotations

import collections
import concurrent.futures
import functools
import http.client
import ipaddress
import logging
import re
import socket
import threading
import time
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3 import connection as u3connection
from urllib3 import connectionpool as u3pool
from urllib3 import exceptions as u3exceptions
from urllib3.poolmanager import PoolKey, PoolManager, _default_key_normalizer
from urllib3.util import connection as u3util
from urllib3.util.retry import Retry

from mediamon.deadline import shut_down, shut_down_socket

logger = logging.getLogger(__name__)

ALLOWED_SCHEMES = ("http", "https")
MAX_URL_LENGTH = 2048
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
# Metadata services of the big clouds. Most sit in link-local or private space and are
# refused anyway; Azure's wire server (168.63.129.16) is a public address, and these are
# named so the error says what was hit.
CLOUD_METADATA = frozenset(
    ipaddress.ip_address(a)
    for a in (
        "169.254.169.254",  # AWS, GCP, Azure, OpenStack, DigitalOcean, Oracle
        "169.254.170.2",  # AWS ECS task metadata
        "100.100.100.200",  # Alibaba Cloud
        "168.63.129.16",  # Azure wire server
        "192.0.0.192",  # Oracle Cloud (classic)
        "fd00:ec2::254",  # AWS IMDS over IPv6
    )
)
# IPv6 prefixes that carry an IPv4 address: the embedded address is checked too.
NAT64 = ipaddress.ip_network("64:ff9b::/96")


class BlockedURL(requests.RequestException):
    """The URL is refused before any connection: scheme, length or address."""


class ResolutionFailed(requests.ConnectionError):
    """The host name did not resolve."""


@dataclass(frozen=True)
class Target:
    """A URL whose host was resolved and checked: connect to ``address`` only."""

    url: str
    scheme: str
    host: str  # as written in the URL, lowercased (an IP literal without brackets)
    port: int
    addresses: tuple[str, ...]  # every address the host resolved to, all vetted

    @property
    def is_loopback(self) -> bool:
        return all(ipaddress.ip_address(a).is_loopback for a in self.addresses)


def blocked_reason(address: IPAddress) -> str | None:
    """Why an address must not be fetched (e.g. ``loopback``), or None if it is public."""
    if address in CLOUD_METADATA:
        return "cloud metadata"
    if isinstance(address, ipaddress.IPv6Address):
        embedded = address.ipv4_mapped or address.sixtofour
        if address.teredo:
            embedded = address.teredo[1]
        if address in NAT64:
            embedded = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        if embedded is not None:
            inner = blocked_reason(embedded)
            return f"{inner} (IPv4 {embedded} inside IPv6)" if inner else None
    checks = (
        ("unspecified", address.is_unspecified),
        ("loopback", address.is_loopback),
        ("link-local", address.is_link_local),
        ("multicast", address.is_multicast),
        ("reserved", address.is_reserved),
        ("private", address.is_private),
    )
    for name, hit in checks:
        if hit:
            return name
    if not address.is_global:  # 100.64.0.0/10 and the like
        return "not globally routable"
    return None


def is_ip_literal(host: str) -> bool:
    """Whether ``host`` is written as an IP address (dotted IPv4 or IPv6)."""
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


def names_private_address(host: str) -> bool:
    """Whether a host written in a URL names a non-public address by itself: an IP
    literal in any spelling the resolver takes (``2130706433``, ``0x7f.1``) or
    ``localhost``. Host names are not looked up: for URLs kept, not fetched (a page's
    image)."""
    host = host.strip("[]").rstrip(".")
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        address: IPAddress = ipaddress.ip_address(host)
    except ValueError:
        try:  # the forms inet_aton reads: decimal, hex, octal, fewer than four parts
            address = ipaddress.IPv4Address(socket.inet_aton(host))
        except (OSError, ValueError):
            return False
    return blocked_reason(address) is not None


# getaddrinfo has no timeout of its own: a resolver that never answers held a source for
# glibc's own limits (5 s a try, then the next server, then again; 30 s and more with
# `options timeout:` set), for every URL of the host. The lookup runs in a thread waited
# for this long; a host whose lookup timed out is not asked again for a while.
DNS_TIMEOUT_S = 10.0
DNS_TIMED_OUT_MEMORY_S = 300.0
_timed_out: dict[str, float] = {}  # host -> until when (monotonic) it is not asked again
_timed_out_lock = threading.Lock()


def resolve(host: str, port: int) -> list[str]:
    """The addresses ``host`` resolves to, in the resolver's order, without repeats.

    Raises:
        ResolutionFailed: the name does not resolve, or not within DNS_TIMEOUT_S.
    """
    timeout_s = DNS_TIMEOUT_S
    with _timed_out_lock:
        until = _timed_out.get(host)
        if until is not None and until <= time.monotonic():
            del _timed_out[host]
            until = None
    if until is not None:
        raise ResolutionFailed(
            f"DNS lookup failed: {host}: no answer within {timeout_s:g} s (an earlier lookup"
            f" timed out; not asked again for {until - time.monotonic():.0f} s)"
        )
    lookup: concurrent.futures.Future[list[Any]] = concurrent.futures.Future()

    def run() -> None:
        try:
            lookup.set_result(socket.getaddrinfo(host, port, type=socket.SOCK_STREAM))
        except BaseException as error:  # noqa: BLE001 - handed to the waiting thread
            lookup.set_exception(error)

    # A daemon thread, not a pool: one stuck in the resolver must not hold the pool's
    # next lookups, nor the process at exit.
    threading.Thread(target=run, name=f"dns {host}", daemon=True).start()
    try:
        infos = lookup.result(timeout=timeout_s)
    except concurrent.futures.TimeoutError:
        with _timed_out_lock:
            _timed_out[host] = time.monotonic() + DNS_TIMED_OUT_MEMORY_S
        raise ResolutionFailed(
            f"DNS lookup failed: {host}: no answer within {timeout_s:g} s"
        ) from None
    except (socket.gaierror, UnicodeError) as error:
        raise ResolutionFailed(f"DNS lookup failed: {host}: {error}") from error
    addresses: list[str] = []
    for _family, _type, _proto, _name, sockaddr in infos:
        address = str(sockaddr[0]).split("%", 1)[0]  # drop an IPv6 zone index
        if address not in addresses:
            addresses.append(address)
    if not addresses:
        raise ResolutionFailed(f"DNS lookup failed: {host}: no addresses")
    return addresses


# A URL is refused, not shown escaped (mediamon.text.one_line): it is about to be fetched.
# C0 and DEL only: a C1 or other non-ASCII character in a path or query is percent-encoded
# on the way out (requests), so it reaches no header or request line raw.
CONTROL = re.compile("[\x00-\x1f\x7f]")


def check_url_syntax(url: str, check_length: bool = True) -> tuple[str, str, int]:
    """Scheme, host and port of ``url``, refusing what is never fetched.

    Raises:
        BlockedURL: too long, not http(s), no host, or a bad port.
    """
    if check_length and len(url) > MAX_URL_LENGTH:
        raise BlockedURL(f"blocked: URL longer than {MAX_URL_LENGTH} characters")
    if CONTROL.search(url):  # from a Location header or a feed: NUL, ESC … never belong
        raise BlockedURL("blocked: URL contains a control character")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as error:
        raise BlockedURL(f"blocked: invalid URL: {error}") from error
    scheme = parts.scheme.lower()
    if scheme not in ALLOWED_SCHEMES:
        raise BlockedURL(f"blocked: scheme {scheme or '(none)'!r} is not http or https")
    host = (parts.hostname or "").lower()
    if not host.strip("."):  # "http://../p": canonicalized, it was "http:///p"
        raise BlockedURL("blocked: URL has no host")
    if parts.netloc.rpartition("@")[2].startswith("[") and ":" not in host:
        # an IPvFuture literal ("[v1.example.com]"): no client speaks it, and without its
        # brackets it named another host
        raise BlockedURL("blocked: invalid URL: a bracketed host that is not IPv6")
    if not host.isascii():
        # The form requests sends (IDNA 2008, UTS 46), so both sides name the same host.
        import idna

        try:
            host = idna.encode(host, uts46=True).decode("ascii")
        except idna.IDNAError as error:
            raise BlockedURL(f"blocked: invalid host name: {error}") from error
    return scheme, host, port or (443 if scheme == "https" else 80)


def host_key(host: str, port: int) -> str:
    """``host:port`` as the network allowance names it (IPv6 literals in brackets)."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def url_host_key(url: str) -> str:
    """The ``host:port`` of an http(s) URL, spelled as :func:`vet` compares it.

    Raises:
        BlockedURL: the URL is not a usable http(s) URL.
    """
    _scheme, host, port = check_url_syntax(url, check_length=False)
    return host_key(host, port)


def vet(url: str, *, private_ok: Collection[str] = (), literal_ok: bool = False) -> Target:
    """Resolve ``url``'s host once and check every address it resolves to.

    Args:
        url: The URL about to be fetched (a feed item's link, a redirect target ...).
        private_ok: ``host:port`` pairs (see :func:`host_key`) that may be loopback or
            private: a source's own host and port when it sets ``allow_private_network``,
            and its ``allow_hosts``. The pair is compared as the URL spells it, so
            another spelling of the same address (``localhost``, ``2130706433``,
            ``[::1]``, another 127.x address) or another port is refused.
        literal_ok: The URL was written by the operator (a source's own URL): a host
            written as an IP address, or ``localhost``, is taken as intended, even when
            private; a host name is resolved and checked like any other.

    Cloud-metadata addresses are refused whatever ``private_ok`` and ``literal_ok`` say.

    Returns:
        The target, with the address to connect to.

    Raises:
        BlockedURL: the URL or one of its addresses is refused.
        ResolutionFailed: the host does not resolve.
    """
    scheme, host, port = check_url_syntax(url)
    addresses = resolve(host, port)
    written_out = is_ip_literal(host) or (
        host == "localhost" and all(ipaddress.ip_address(a).is_loopback for a in addresses)
    )
    key = host_key(host, port)
    allowed = key in private_ok or (literal_ok and written_out)
    for address in addresses:
        reason = blocked_reason(ipaddress.ip_address(address))
        if reason is None or (allowed and not reason.startswith("cloud metadata")):
            continue
        what = address if host == address else f"{host} resolves to {address}, which"
        if reason.startswith("cloud metadata"):
            why = "never fetched, whatever the configuration"
        elif private_ok:
            why = f"only {', '.join(sorted(private_ok))} may be private for this source"
        else:
            why = "the source does not allow private networks"
        raise BlockedURL(f"blocked: {what} is {reason} ({why})")
    written = urlsplit(url)
    if not (written.hostname or "").isascii():
        # Requested as vetted: urllib3 parses the URL before requests maps the host
        # (IDNA 2008 without UTS 46), and refused a full-width "ａｂｃ．com" outright.
        userinfo, _, _ = written.netloc.rpartition("@")
        netloc = f"{userinfo}@" if userinfo else ""
        netloc += host if written.port is None else f"{host}:{written.port}"
        url = urlunsplit(written._replace(netloc=netloc))
    return Target(url=url, scheme=scheme, host=host, port=port, addresses=tuple(addresses))


@dataclass
class Pin:
    """The vetted target of the request in flight on this thread, and its connection
    once one is chosen (so a watchdog can abort a download that overruns its deadline)."""

    target: Target
    connection: Any = None
    aborted: bool = False
    # The sockets of the exchange, as well as the connection: an answer read until the
    # server closes (no Content-Length, not chunked) takes the socket from the connection
    # (http.client sets its ``sock`` to None), so the watchdog found nothing to shut down
    # and the read waited for the read timeout (20 s) past the deadline.
    sockets: list[socket.socket] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def attach(self, conn: Any) -> None:
        with self._lock:
            self.connection = conn
            if getattr(conn, "sock", None) is not None:
                self.sockets.append(conn.sock)
            if self.aborted:
                shut_down(conn)

    def attach_socket(self, sock: socket.socket) -> bool:
        """Record a socket of the exchange; False (and the socket shut down) if the
        deadline already passed."""
        with self._lock:
            self.sockets.append(sock)
            if self.aborted:
                shut_down_socket(sock)
            return not self.aborted

    def abort(self) -> None:
        """Break the connection: a blocked read returns at once with an error."""
        with self._lock:
            self.aborted = True
            if self.connection is not None:
                shut_down(self.connection)
            for sock in self.sockets:
                shut_down_socket(sock)


_PIN: ContextVar[Pin | None] = ContextVar("mediamon_netguard_pin", default=None)


@contextmanager
def pinned(target: Target) -> Iterator[Pin]:
    """Within the block, requests on this thread to ``target``'s host connect to its
    vetted address (see :class:`GuardedAdapter`)."""
    pin = Pin(target)
    token = _PIN.set(pin)
    try:
        yield pin
    finally:
        _PIN.reset(token)


# Interim (1xx) answers a server may send ahead of its answer, each with its own headers:
# 103 Early Hints (Node's writeEarlyHints, H2O, some CDNs), 102 Processing. RFC 9110
# §15.2 asks a client to read past any of them; http.client reads past 100 only.
MAX_INTERIM_RESPONSES = 20


# A chunked body's framing (chunk-size lines with their extensions, trailer lines) is
# read outside the body, so the size cap never saw it: endless 64 kB chunk extensions
# on 1-byte chunks, or an endless trailer, were read at wire speed until the deadline
# (60 s, gigabytes). Real framing is a few bytes a chunk ("2000\r\n") and no trailer;
# 100,000 chunks (exchange.MAX_BODY_READS) take 600 kB.
MAX_CHUNK_FRAMING_BYTES = 2 * 1024 * 1024
MAX_TRAILER_LINES = 100  # as many as http.client takes header lines
HEX_DIGITS = re.compile(rb"[0-9A-Fa-f]+")
HTTP_VERSION_PREFIX = b"HTTP/"


def printable_bytes(data: bytes) -> str:
    """Bytes from the wire quoted for a one-line error (at most 40, escaped)."""
    shown = repr(data[:40].decode("latin-1"))
    return shown + ("…" if len(data) > 40 else "")


class AnswerRefused(http.client.HTTPException):
    """An answer mediamon will not read further; its message is the whole line."""


class ChunkFramingTooLarge(AnswerRefused):
    """A chunked body's framing passed MAX_CHUNK_FRAMING_BYTES or MAX_TRAILER_LINES."""


def answer_refusal(error: BaseException) -> str | None:
    """The line of an :class:`AnswerRefused` that ``error`` wraps, or None. urllib3 and
    requests wrap it as an argument (ProtocolError, MaxRetryError's reason) or a cause."""
    pending: list[object] = [error]
    for _ in range(20):  # a few levels of wrapping; never a loop
        if not pending:
            return None
        seen = pending.pop(0)
        if isinstance(seen, AnswerRefused):
            return str(seen)
        if isinstance(seen, BaseException):
            pending += [seen.__cause__, seen.__context__, getattr(seen, "reason", None)]
            pending += seen.args
    return None


class RefusalsFinal(Retry):
    """urllib3's retries, but none for an answer the guard refused: urllib3 read it as a
    broken connection (a ProtocolError) and asked again, with its backoff, 4 requests and
    3.5 s a refused URL to get the same answer refused. The error stays the shape the
    retries give (MaxRetryError), so callers read it as before."""

    def increment(
        self,
        method: str | None = None,
        url: str | None = None,
        response: Any = None,
        error: Exception | None = None,
        _pool: Any = None,
        _stacktrace: Any = None,
    ) -> RefusalsFinal:
        if error is not None and answer_refusal(error) is not None:
            raise u3exceptions.MaxRetryError(_pool, url or "", error) from error
        return super().increment(method, url, response, error, _pool, _stacktrace)


class _FinalResponse(http.client.HTTPResponse):
    """An HTTP response that reads past every interim answer but 101 (a protocol switch,
    never asked for): http.client took a 103 for the answer, an empty body, so the page
    was lost (the feed's text used) and a feed's poll failed as ``not a feed``. Its
    chunked framing is bounded (see MAX_CHUNK_FRAMING_BYTES)."""

    _framing_bytes = 0

    def _framing_line(self, what: str) -> bytes:
        line: bytes = self.fp.readline(http.client._MAXLINE + 1)  # type: ignore[attr-defined]
        if len(line) > http.client._MAXLINE:  # type: ignore[attr-defined]
            raise http.client.LineTooLong(what)
        self._framing_bytes += len(line)
        if self._framing_bytes > MAX_CHUNK_FRAMING_BYTES:
            self._close_conn()  # type: ignore[attr-defined]
            raise ChunkFramingTooLarge(
                f"body refused: chunked framing (chunk sizes, extensions, trailers) larger than"
                f" {MAX_CHUNK_FRAMING_BYTES} bytes"
            )
        return line

    def _read_next_chunk_size(self) -> int:
        line = self._framing_line("chunk size")
        size = line.split(b";", 1)[0].strip(b" \t\r\n")  # extensions dropped
        if not HEX_DIGITS.fullmatch(size):
            # int(…, 16) also takes "-1", "+a", "0x10", "1_0": http.client read a chunk of
            # -1 as "until the server closes", so a server keeping the connection open
            # held the fetch until its deadline (60 s). A cut line ("") is a broken
            # connection, as before.
            self._close_conn()  # type: ignore[attr-defined]
            if not line:
                raise ValueError("connection closed before a chunk size")
            raise AnswerRefused(
                f"body refused: chunk size {printable_bytes(size)} is not a hexadecimal number"
            )
        return int(size, 16)

    def _read_and_discard_trailer(self) -> None:
        for _ in range(MAX_TRAILER_LINES + 1):
            line = self._framing_line("trailer line")
            if line in (b"\r\n", b"\n", b""):
                return
        self._close_conn()  # type: ignore[attr-defined]
        raise ChunkFramingTooLarge(f"body refused: more than {MAX_TRAILER_LINES} trailer lines")

    def begin(self) -> None:
        try:
            super().begin()
        except http.client.RemoteDisconnected:
            raise  # closed before any answer: a broken connection, retried as one
        except http.client.HTTPException as error:
            if (refusal := _head_refusal(error)) is None:
                raise
            self._close_conn()  # type: ignore[attr-defined]
            raise AnswerRefused(refusal) from error
        # http.client reads a body as chunked only when Transfer-Encoding is exactly
        # "chunked"; any other list of codings ("gzip, chunked", never asked for) was read
        # until the server closed, framing and all, so a server keeping the connection
        # open held the fetch until its deadline (60 s). Only what it reads is taken.
        written = ", ".join(self.msg.get_all("transfer-encoding") or ())
        codings = [c.strip().lower() for c in written.split(",") if c.strip()]
        if codings not in ([], ["chunked"], ["identity"]):
            self._close_conn()  # type: ignore[attr-defined]
            raise AnswerRefused(
                f"answer refused: Transfer-Encoding {printable_bytes(written.encode())}"
                " (only chunked is read)"
            )
        if not self.chunked and self.length is None:  # a body (not HEAD, 204, 304) of no
            self._check_content_length()  # length http.client could read

    def _check_content_length(self) -> None:
        """http.client reads a Content-Length that is no number (``-1``, ``abc``) as
        none: the body was read until the server closed, so one keeping the connection
        open held the fetch until its deadline (60 s). The same number given twice
        (``5, 5``, two layers each adding it) is one length, as RFC 9110 §8.6 allows
        (urllib3 reads it so); anything else is refused."""
        written = ", ".join(self.msg.get_all("content-length") or ())
        values = {v.strip() for v in written.split(",")} if written else set()
        if not values:
            return
        value = values.pop()
        if values or not (value.isascii() and value.isdigit()) or len(value) > 18:
            self._close_conn()  # type: ignore[attr-defined]
            raise AnswerRefused(
                f"answer refused: Content-Length {printable_bytes(written.encode())}"
                " is not one number of bytes"
            )

    def _read_status(self) -> tuple[str, int, str]:
        # An answer without a status line (HTTP/0.9, or no HTTP at all) was read as one:
        # http.client waits for the first line's end, so a body without a line break on
        # a connection kept open held the fetch until its deadline (60 s). Its first
        # bytes say it at once.
        start = self.fp.peek(1)
        if start and not HTTP_VERSION_PREFIX.startswith(start[:5]):
            self._close_conn()  # type: ignore[attr-defined]
            raise AnswerRefused(
                "answer refused: no HTTP status line (an HTTP/0.9 answer, or another"
                f" protocol): it starts {printable_bytes(start)}"
            )
        for _ in range(MAX_INTERIM_RESPONSES):
            version, status, reason = super()._read_status()  # type: ignore[misc]
            if not 100 <= status < 200 or status == 101:
                return version, status, reason
            http.client.parse_headers(self.fp)  # the interim answer's headers: not needed
        raise http.client.HTTPException(
            f"more than {MAX_INTERIM_RESPONSES} interim (1xx) answers before the answer"
        )


def _head_refusal(error: http.client.HTTPException) -> str | None:
    """The line for a head http.client will not read (more than 100 header lines, a header
    or status line over 64 KiB, a status line no HTTP/1.x one), else None. Sent again if
    asked: urllib3's 4 tries and 3 s of backoff, ending as ``connection broken:
    ('Connection aborted.', HTTPException('got more than 100 headers'))``, were wasted."""
    if isinstance(error, http.client.LineTooLong):  # it names the line: "header line", …
        what = str(error).removeprefix("got more than 65536 bytes when reading ")[:20]
        return f"answer refused: a {what} longer than {http.client._MAXLINE} bytes"  # type: ignore[attr-defined]
    if isinstance(error, http.client.BadStatusLine | http.client.UnknownProtocol):
        line = error.args[0] if error.args and isinstance(error.args[0], str) else ""
        shown = printable_bytes(line.encode("latin-1", "replace"))
        return f"answer refused: {shown} is no HTTP/1.x status line"
    if str(error).startswith("got more than"):  # "… 100 headers"
        return f"answer refused: more than {http.client._MAXHEADERS} header lines"  # type: ignore[attr-defined]
    return None


class _PinnedConnectionMixin:
    """Connects to the vetted ``pinned_addresses`` (in order, the first that answers)
    instead of resolving the host name again; reads past interim answers."""

    response_class: type[http.client.HTTPResponse] = _FinalResponse

    def __init__(self, *args: Any, pinned_addresses: tuple[str, ...] = (), **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._pinned_addresses = pinned_addresses

    def _new_conn(self) -> socket.socket:
        if not self._pinned_addresses:  # never: the adapter always pins
            raise BlockedURL("blocked: connection without a vetted address")
        conn: Any = self
        failure: OSError | None = None
        pin = _PIN.get()
        for address in self._pinned_addresses:
            # A name may answer with many addresses that never accept (a hostile domain's
            # DNS): each try waits for the connect timeout, and the watchdog cannot break
            # a connect in progress, so 20 addresses held the fetch 20 timeouts, past
            # the deadline. No address is tried once it has passed.
            if pin is not None and pin.aborted:
                raise u3exceptions.NewConnectionError(conn, "download deadline passed")
            try:
                sock = u3util.create_connection(
                    (address, conn.port),
                    conn.timeout,
                    source_address=conn.source_address,
                    socket_options=conn.socket_options,
                )
            except OSError as error:
                failure = error
                continue
            if pin is not None and not pin.attach_socket(sock):  # the deadline passed
                sock.close()
                raise u3exceptions.NewConnectionError(conn, "download deadline passed")
            return sock
        if isinstance(failure, TimeoutError):
            raise u3exceptions.ConnectTimeoutError(
                conn, f"Connection to {conn.host} timed out. (connect timeout={conn.timeout})"
            ) from failure
        raise u3exceptions.NewConnectionError(
            conn, f"Failed to establish a new connection: {failure}"
        ) from failure

    def connect(self) -> None:
        # HTTPS pools connect (TLS handshake included) before request(): attach first,
        # so the deadline watchdog can break a handshake that drips too.
        pin = _PIN.get()
        if pin is not None:
            pin.attach(self)
        super().connect()  # type: ignore[misc]

    def request(self, *args: Any, **kwargs: Any) -> None:
        pin = _PIN.get()
        if pin is not None:
            pin.attach(self)
        super().request(*args, **kwargs)  # type: ignore[misc]


class _PinnedHTTPConnection(_PinnedConnectionMixin, u3connection.HTTPConnection):
    pass


class _PinnedHTTPSConnection(_PinnedConnectionMixin, u3connection.HTTPSConnection):
    pass


class _PinnedHTTPConnectionPool(u3pool.HTTPConnectionPool):
    ConnectionCls = _PinnedHTTPConnection


class _PinnedHTTPSConnectionPool(u3pool.HTTPSConnectionPool):
    ConnectionCls = _PinnedHTTPSConnection


# Pools are keyed by the vetted address too, so a pooled connection is only reused for
# the address it was opened to.
_PinnedPoolKey = collections.namedtuple(  # type: ignore[misc]
    "_PinnedPoolKey", [*PoolKey._fields, "key_pinned_addresses"]
)


class GuardedAdapter(HTTPAdapter):
    """An adapter that connects only to vetted addresses.

    The address comes from the :func:`pinned` target set by :func:`mediamon.ingest.fetch.fetch`;
    a request sent without one (someone calling ``session.get``) is vetted here under the
    strict policy, so the session never reaches an unchecked address.
    """

    def init_poolmanager(
        self, connections: int, maxsize: int, block: bool = False, **pool_kwargs: Any
    ) -> None:
        super().init_poolmanager(connections, maxsize, block, **pool_kwargs)
        manager: PoolManager = self.poolmanager
        manager.pool_classes_by_scheme = {
            "http": _PinnedHTTPConnectionPool,
            "https": _PinnedHTTPSConnectionPool,
        }
        key_fn = functools.partial(_default_key_normalizer, _PinnedPoolKey)  # type: ignore[arg-type]
        manager.key_fn_by_scheme = {"http": key_fn, "https": key_fn}

    def build_connection_pool_key_attributes(
        self,
        request: requests.PreparedRequest,
        verify: bool | str,
        cert: str | tuple[str, str] | None = None,
    ) -> tuple[Any, Any]:
        host_params, pool_kwargs = super().build_connection_pool_key_attributes(
            request, verify, cert
        )
        url = request.url or ""
        pin = _PIN.get()
        target = pin.target if pin is not None else None
        # The prepared URL is percent-encoded, often longer than the link as written:
        # its length was checked before encoding.
        scheme, host, port = check_url_syntax(url, check_length=False)
        if target is None or (target.scheme, target.host, target.port) != (scheme, host, port):
            target = vet(url)
        pool_kwargs["pinned_addresses"] = target.addresses  # type: ignore[typeddict-unknown-key]
        return host_params, pool_kwargs

    def get_connection_with_tls_context(
        self,
        request: requests.PreparedRequest,
        verify: bool | str | None,
        proxies: Any = None,
        cert: tuple[str, str] | str | None = None,
    ) -> Any:
        if proxies and requests.utils.select_proxy(request.url or "", proxies):
            # A proxy resolves names itself: the guard could not pin the address.
            raise BlockedURL("blocked: proxies are not supported by the SSRF guard")
        return super().get_connection_with_tls_context(request, verify, None, cert)
