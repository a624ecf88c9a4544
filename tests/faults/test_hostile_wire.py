"""Hostile input as it arrives on the wire (an attack run on encodings, framing, name
resolution and feed shapes): each test replays one finding against servers on
127.0.0.1 and names the docs/faults.md row it proves.

1. comments counted as an item's elements        -> test_an_item_of_many_comments_*
2. 7-bit encodings stored with their escapes      -> test_seven_bit_*
3. a chunked body of 1-byte chunks                -> test_a_body_of_*_chunks_*
4. a name server that never answers               -> test_a_name_server_that_never_answers_*
5. endless chunk extensions or trailers           -> test_chunked_framing_*
6. a body read until the server closes, stalled   -> test_a_body_read_until_close_*, test_a_tls_*
7. a mail server's endless multi-line reply       -> test_a_mail_servers_endless_reply_*
8. a name answering with many dead addresses      -> test_a_name_of_many_addresses_*
9. gzip, chunked / chunk size -1 / HTTP/0.9       -> test_an_answer_http_client_misreads_*
10. a sender address no server without SMTPUTF8 takes -> test_a_sender_with_a_non_ascii_*
11. a feed of 15 MB of comments                   -> test_a_feed_of_comments_*
12. a start tag of 1.25 million attributes        -> test_a_start_tag_over_lxmls_limit_*
13. a refused answer asked for again by urllib3   -> test_an_answer_the_guard_refused_*
"""

from __future__ import annotations

import contextlib
import json
import random
import socket
import ssl
import subprocess
import sys
import threading
import time
from datetime import timedelta
from email.message import EmailMessage
from pathlib import Path

import pytest
import sqlalchemy as sa

from mediamon.alerts.deliver import deliver_pending
from mediamon.alerts.smtp import MailServerRefusal, connection_settings, smtp_sender
from mediamon.alerts.smtp_client import MAX_REPLY_LINES
from mediamon.errors import ConfigError
from mediamon.ingest.decode import decode_html
from mediamon.ingest.feeds import (
    MAX_ATTRIBUTES,
    MAX_ITEM_ELEMENTS,
    FeedError,
    parse_feed,
    within_limits,
)
from mediamon.ingest.fetch import MAX_BODY_READS, Validators, fetch
from mediamon.ingest.netguard import MAX_CHUNK_FRAMING_BYTES, MAX_TRAILER_LINES
from mediamon.ingest.session import make_session
from mediamon.topics.file import parse_topics
from mediamon.topics.store import sync_topics
from tests.integration.ingest.test_netguard import _certificate
from tests.integration.test_alert_stages import AT, alert_on_burst, rows
from tests.integration.test_digests import TOPICS_YAML
from tests.integration.test_mail_transport import plain_sender
from tests.support.dns_server import dns_server, resolver_command
from tests.support.fault_server import Behaviour, Connection, FaultServer, respond
from tests.support.faults import USER_AGENT, item, rss
from tests.support.smtp_server import Sink, serve_smtp


def test_an_item_of_many_comments_is_read_and_the_feed_kept() -> None:
    """An item holding 2,001 comments and processing instructions (a CMS's debug
    markers, or an attacker's) was refused as ``one <item> holds 2,001 elements`` and
    the whole feed with it: lxml counts comments as children. Only elements count."""
    markers = "<!-- cache -->" * MAX_ITEM_ELEMENTS + "<?php x ?>" * 2
    padded = item("https://example.com/a", title="注释很多")
    padded = padded.replace("<title>", markers + "<title>", 1)
    parsed = parse_feed(rss([padded, item("https://example.com/b")]), "https://example.com/feed")
    assert [i.link for i in parsed.items] == ["https://example.com/a", "https://example.com/b"]
    assert parsed.items[0].title == "注释很多"


SEVEN_BIT_TITLE = {
    "hz": "中文新闻标题",
    "iso2022_jp": "日本語のニュース",
    "iso2022_kr": "한국어 뉴스",
    "utf-7": "日本語のニュース",
}
LABEL = {"hz": "hz-gb-2312", "iso2022_jp": "iso-2022-jp", "iso2022_kr": "iso-2022-kr"}
LABEL["utf-7"] = "utf-7"


@pytest.mark.parametrize("encoding", sorted(SEVEN_BIT_TITLE))
@pytest.mark.parametrize("labelled", ["declared", "labelled utf-8", "unlabelled"])
def test_seven_bit_feeds_are_decoded_not_stored_with_their_escapes(
    encoding: str, labelled: str
) -> None:
    """A feed in HZ, ISO-2022-JP/KR or UTF-7 is pure ASCII, so it passed as UTF-8 and
    its titles were stored as ``~{VPND~}``, ``$BF|K\\8l``, ``+ZeVnLIqe-`` (HZ's label
    was even widened to gb18030). It is decoded with the encoding it declares, or the one
    its escapes prove when it says UTF-8 or nothing."""
    title = SEVEN_BIT_TITLE[encoding]
    declaration = f' encoding="{LABEL[encoding]}"' if labelled == "declared" else ""
    document = (
        f'<?xml version="1.0"{declaration}?><rss version="2.0"><channel><title>{title}</title>'
        f"<item><title>{title}</title><link>https://example.com/a</link>"
        f"<description>{title}。{title}</description></item></channel></rss>"
    ).encode(encoding)
    assert document.isascii()
    charset = "; charset=utf-8" if labelled == "labelled utf-8" else ""
    content_type = "application/rss+xml" + charset
    parsed = parse_feed(document, "https://example.com/feed", content_type=content_type)
    assert parsed.items[0].title == title
    assert parsed.items[0].summary_html == f"{title}。{title}"


def test_seven_bit_hz_label_is_read_as_hz_not_gb18030() -> None:
    """``hz-gb-2312`` was widened to gb18030, which reads HZ's ASCII as ASCII."""
    decoded = decode_html("<p>中文新闻</p>".encode("hz"), "hz-gb-2312")
    assert (decoded.text, decoded.encoding) == ("<p>中文新闻</p>", "hz")


@pytest.mark.parametrize(
    "text",
    [
        "<p>1+1-2, C++ and Google+ users; a +abc- x</p>",  # "+" that is no UTF-7
        "<p>if ($x =~{ foo }) ~} ok</p>",  # "~{" that is no HZ
        "<p>a +ADw-script+AD4- b</p>",  # UTF-7 for ASCII, never taken undeclared
    ],
)
def test_seven_bit_lookalikes_in_ascii_stay_as_written(text: str) -> None:
    decoded = decode_html(text.encode())
    assert (decoded.text, decoded.encoding, decoded.replaced) == (text, "utf-8", 0)


def test_seven_bit_escapes_no_codec_reads_are_never_stored_as_text() -> None:
    """ISO-2022-CN (no Python codec): its shifted runs become U+FFFD, its escapes go."""
    document = b"<p>\x1b$)A\x0e<:Ky\x0f ok \x0e<:Ky\x0f</p>"
    decoded = decode_html(document)
    assert (decoded.text, decoded.replaced) == ("<p>\ufffd ok \ufffd</p>", 2)


def chunked(framed: bytes) -> Behaviour:
    """A 200 answer whose body is ``framed`` as written (chunk sizes included)."""
    head = b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nTransfer-Encoding: chunked\r\n\r\n"

    def behave(conn: Connection) -> None:
        conn.send(head + framed)

    return behave


def test_a_body_of_one_byte_chunks_is_refused_at_a_bound_on_reads(server: FaultServer) -> None:
    """Each chunk of a chunked body is one read, ~4 µs of CPU however small: a page of
    1-byte chunks cost 60 s of CPU for 15 MB, bounded only by the deadline, and was
    stored. Past MAX_BODY_READS reads the fetch stops with one line."""
    server.route("/p", chunked(b"1\r\na\r\n" * (MAX_BODY_READS + 20_000) + b"0\r\n\r\n"))
    with make_session(USER_AGENT, retries=0) as session:
        result = fetch(session, server.url("/p"), allow_private_network=True)
    assert result.error == (
        f"body sent in more than {MAX_BODY_READS:,} pieces (1 bytes each on average: chunks"
        " or writes too small to read); not read further"
    )
    assert result.content == b""


def test_a_body_of_large_chunks_is_read_whole(server: FaultServer) -> None:
    chunk = b"x" * 1000
    server.route("/p", chunked((b"3e8\r\n" + chunk + b"\r\n") * 2000 + b"0\r\n\r\n"))
    with make_session(USER_AGENT, retries=0) as session:
        result = fetch(session, server.url("/p"), allow_private_network=True)
    assert result.error is None
    assert result.content == chunk * 2000


# Run under a name server of the test's own (see tests.support.dns_server): fetches of a
# name it answers, of one it never answers, and of that one again.
FETCH_UNDER_A_SLOW_RESOLVER = """
import json, sys
from mediamon.ingest import netguard
from mediamon.ingest.fetch import fetch
from mediamon.ingest.session import make_session

netguard.DNS_TIMEOUT_S = 1.0
port = sys.argv[1]
with make_session("mediamon-faults/1.0", retries=0) as session:
    results = [
        fetch(session, f"http://{host}:{port}/feed", allow_private_network=True)
        for host in ("fast.test", "slow.test", "slow.test")
    ]
print(json.dumps([[r.error, r.content.decode()] for r in results]))
"""


def test_a_name_server_that_never_answers_fails_that_fetch_within_its_bound(
    server: FaultServer, tmp_path: Path
) -> None:
    """getaddrinfo has no timeout of its own: with a name server that never answers, a
    source waited glibc's own limits (here 20 s, set by resolv.conf's ``options``) for
    each of its URLs, then failed with ``Temporary failure in name resolution``. The
    lookup is now waited for DNS_TIMEOUT_S (1 s here), and the host is not asked again
    for a while; a name the server answers still loads."""
    server.route("/feed", respond("ok", content_type="text/plain"))
    with dns_server({"fast.test": ["127.0.0.1"]}) as name_server:
        argv = [sys.executable, "-c", FETCH_UNDER_A_SLOW_RESOLVER, str(server.port)]
        command = resolver_command(name_server, tmp_path, argv, wait_s=20)
        done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=True)
    fast, slow, again = json.loads(done.stdout)
    assert fast == [None, "ok"]
    assert slow == ["DNS lookup failed: slow.test: no answer within 1 s", ""]
    assert again[0].startswith(
        "DNS lookup failed: slow.test: no answer within 1 s (an earlier lookup timed out;"
        " not asked again for "
    )


def endless_chunked(start: bytes, block: bytes) -> Behaviour:
    """A chunked answer: ``start``, then ``block`` again and again for up to 8 s."""
    head = b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nTransfer-Encoding: chunked\r\n\r\n"

    def behave(conn: Connection) -> None:
        if conn.send(head + start):
            deadline = time.monotonic() + 8
            while time.monotonic() < deadline and conn.send(block * 16):
                pass

    return behave


@pytest.mark.parametrize(
    ("start", "block"),
    [
        (b"", b"1;" + b"x" * 65_000 + b"\r\na\r\n"),  # a 64 kB extension on each 1-byte chunk
        (b"1\r\na\r\n0\r\n", b"X-Trailer: " + b"y" * 65_000 + b"\r\n"),  # an endless trailer
    ],
    ids=["extensions", "trailer"],
)
def test_chunked_framing_is_bounded_like_the_body(
    server: FaultServer, start: bytes, block: bytes
) -> None:
    """A chunked body's framing is read outside the body, so the size cap never saw it:
    endless chunk extensions or trailer lines were read at wire speed until the deadline
    (60 s by default, gigabytes; 3 s here)."""
    server.route("/p", endless_chunked(start, block))
    with make_session(USER_AGENT, retries=0) as session:
        result = fetch(session, server.url("/p"), allow_private_network=True, deadline_s=3)
    assert result.error == (
        "body refused: chunked framing (chunk sizes, extensions, trailers) larger than"
        f" {MAX_CHUNK_FRAMING_BYTES} bytes"
    )


def test_chunked_framing_of_many_trailer_lines_is_refused(server: FaultServer) -> None:
    server.route("/p", endless_chunked(b"1\r\na\r\n0\r\n", b"X-T: 1\r\n"))
    with make_session(USER_AGENT, retries=0) as session:
        result = fetch(session, server.url("/p"), allow_private_network=True, deadline_s=3)
    assert result.error == f"body refused: more than {MAX_TRAILER_LINES} trailer lines"


def test_chunked_framing_of_an_ordinary_body_is_read(server: FaultServer) -> None:
    """Extensions and a few trailer lines, as the RFC allows, are read past."""
    framed = b"5;name=value\r\nhello\r\n1\r\n!\r\n0\r\nX-Checksum: 1\r\nX-Other: 2\r\n\r\n"
    server.route("/p", chunked(framed))
    with make_session(USER_AGENT, retries=0) as session:
        result = fetch(session, server.url("/p"), allow_private_network=True)
    assert (result.error, result.content) == (None, b"hello!")


def test_a_body_read_until_close_is_broken_at_the_deadline(server: FaultServer) -> None:
    """An answer without Content-Length or chunking is read until the server closes, and
    http.client then hands the socket from the connection to the response: the watchdog
    found no socket to shut down, so a server that sent a little and then nothing held
    the fetch until the read timeout, past the deadline (here the read timeout's
    ``read timeout: …`` after 6 s, for a deadline of 2 s)."""
    head = b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nConnection: close\r\n\r\n<p>a"

    def stall(conn: Connection) -> None:
        if conn.send(head):
            time.sleep(8)

    server.route("/p", stall)
    with make_session(USER_AGENT, retries=0) as session:
        result = fetch(
            session, server.url("/p"), allow_private_network=True, deadline_s=2, timeout=(2, 6)
        )
    assert (result.error, result.content) == ("download took longer than 2 s", b"")


def test_a_tls_body_read_until_close_is_broken_at_the_deadline(tmp_path: Path) -> None:
    """The same over TLS: the socket to shut down is the wrapped one."""
    cert, key = _certificate(tmp_path, "localhost")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def serve() -> None:
        client, _ = listener.accept()
        with context.wrap_socket(client, server_side=True) as tls:
            tls.recv(65536)
            tls.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n\r\n<p>a")
            time.sleep(8)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        with make_session(USER_AGENT, retries=0) as session:
            session.verify = str(cert)
            result = fetch(
                session,
                f"https://localhost:{port}/p",
                allow_private_network=True,
                deadline_s=2,
                timeout=(2, 6),
            )
    finally:
        listener.close()
    assert (result.error, result.content) == ("download took longer than 2 s", b"")


def test_a_mail_servers_endless_reply_is_cut_off_without_filling_memory() -> None:
    """smtplib reads a multi-line reply (``220-…`` until a line without the dash) into a
    list bounded only by the 8 kB of a line: a server greeting with endless 8 kB lines
    filled memory at wire speed until the message's deadline (848 MB in 4 s; a message
    may take 120 s). Past MAX_REPLY_LINES lines the connection is closed and the mail is
    not sent, in one line naming the server."""
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def flood() -> None:
        client, _ = listener.accept()
        lines = (b"220-" + b"x" * 8000 + b"\r\n") * 64
        ends = time.monotonic() + 8
        with client, contextlib.suppress(OSError):  # the mailer hung up
            while time.monotonic() < ends:
                client.sendall(lines)

    threading.Thread(target=flood, daemon=True).start()
    message = EmailMessage()
    message["Subject"], message["From"] = "[mediamon] taiwan", "m@example.org"
    message["To"] = "reader@example.org"
    message.set_content("a spike")
    fields = {"host": "127.0.0.1", "port": port,
              "extra": {"disable_ssl": True, "disable_tls": True, "timeout": 1}}  # fmt: skip
    try:
        with pytest.raises(OSError) as raised:
            smtp_sender(connection_settings(fields))(message)
    finally:
        listener.close()
    assert str(raised.value) == (
        f"the SMTP server 127.0.0.1:{port} sent a reply of more than {MAX_REPLY_LINES:,}"
        " lines: connection closed, not sent"
    )


def listeners_that_never_accept(count: int) -> tuple[list[str], int, list[socket.socket]]:
    """``count`` loopback addresses listening on one port, each with its backlog full,
    so a connection to them waits for its connect timeout (SYNs are dropped); the
    addresses, the port and the sockets to close."""
    while True:
        prefix = f"127.{random.randint(1, 254)}.{random.randint(1, 254)}"
        addresses = [f"{prefix}.{n}" for n in range(10, 10 + count)]
        sockets: list[socket.socket] = []
        try:
            port = 0
            for address in addresses:
                listener = socket.socket()
                sockets.append(listener)
                listener.bind((address, port))
                listener.listen(0)
                port = listener.getsockname()[1]
                for _ in range(3):  # fill the backlog
                    filler = socket.socket()
                    sockets.append(filler)
                    filler.setblocking(False)
                    with contextlib.suppress(BlockingIOError):
                        filler.connect((address, port))
            return addresses, port, sockets
        except OSError:  # the port is taken on one of the addresses: another prefix
            for sock in sockets:
                sock.close()


FETCH_MANY_ADDRESSES = """
import json, sys
from mediamon.ingest.fetch import fetch
from mediamon.ingest.session import make_session

with make_session("mediamon-faults/1.0", retries=0) as session:
    result = fetch(session, f"http://many.test:{sys.argv[1]}/p", allow_private_network=True,
                   deadline_s=3, timeout=(1, 5))
print(json.dumps([result.error, result.elapsed_ms]))
"""


def test_a_name_of_many_addresses_that_never_accept_stops_at_the_deadline(
    tmp_path: Path,
) -> None:
    """A hostile domain's DNS answers with 20 addresses none of which accepts: each
    was tried for the connect timeout, which the watchdog cannot break, so the fetch
    took 20 timeouts (20 s here, 100 s at the default 5 s), past its deadline (3 s),
    and ended as ``download took longer than 3 s`` only then. No address is tried once
    the deadline passed. The bound below is no race: the code before could not take less
    than 20 connect timeouts (20 s); now it takes the deadline and at most one timeout."""
    addresses, port, sockets = listeners_that_never_accept(20)
    try:
        with dns_server({"many.test": addresses}) as name_server:
            argv = [sys.executable, "-c", FETCH_MANY_ADDRESSES, str(port)]
            command = resolver_command(name_server, tmp_path, argv, wait_s=5)
            done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=True)
    finally:
        for sock in sockets:
            sock.close()
    error, elapsed_ms = json.loads(done.stdout)
    assert error == "download took longer than 3 s"
    assert elapsed_ms < 12_000


def kept_open(answer: bytes) -> Behaviour:
    """``answer`` as written, then the connection held open for 8 s (keep-alive)."""

    def behave(conn: Connection) -> None:
        if conn.send(answer):
            time.sleep(8)

    return behave


@pytest.mark.parametrize(
    ("answer", "error"),
    [
        (
            b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nTransfer-Encoding: gzip, chunked"
            b"\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
            "answer refused: Transfer-Encoding 'gzip, chunked' (only chunked is read)",
        ),
        (
            b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"5\r\nhello\r\n-1\r\nworld\r\n",
            "body refused: chunk size '-1' is not a hexadecimal number",
        ),
        (
            b"<html><body><p>an HTTP/0.9 answer: a body without a status line</p>",
            "answer refused: no HTTP status line (an HTTP/0.9 answer, or another protocol):"
            " it starts '<html><body><p>an HTTP/0.9 answer: a bod'…",
        ),
        (
            b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: -1\r\n\r\nhello",
            "answer refused: Content-Length '-1' is not one number of bytes",
        ),
    ],
    ids=["gzip-chunked", "chunk-size-minus-one", "http-0.9", "length-minus-one"],
)
def test_an_answer_http_client_misreads_fails_at_once(
    server: FaultServer, answer: bytes, error: str
) -> None:
    """Three answers http.client reads as something else, on a connection the server
    keeps open: ``Transfer-Encoding: gzip, chunked`` (not exactly "chunked": read until
    the server closes), a chunk size of ``-1`` (int(…, 16) takes it: "until the server
    closes" again; so is a Content-Length of ``-1``) and an HTTP/0.9 answer (no status
    line: the first line's end waited for). Each held the fetch until its deadline (60 s;
    4 s here) and ended as ``download took longer than 4 s``. Each is refused as it
    arrives, in one line; the test's 4 s deadline is the old code's only way out, so the
    error line tells them apart."""
    server.route("/p", kept_open(answer))
    with make_session(USER_AGENT, retries=0) as session:
        result = fetch(session, server.url("/p"), allow_private_network=True, deadline_s=4)
    assert (result.error, result.content) == (error, b"")


def sent_and_closed(answer: bytes) -> Behaviour:
    """``answer`` as written, then the connection closed."""

    def behave(conn: Connection) -> None:
        conn.send(answer)

    return behave


@pytest.mark.parametrize(
    "answer",
    [
        b"<html><body><p>an HTTP/0.9 answer: a body without a status line</p>",
        b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: abc\r\n\r\nhello",
        b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nTransfer-Encoding: gzip, chunked"
        b"\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    ],
    ids=["http-0.9", "length-abc", "gzip-chunked"],
)
def test_an_answer_the_guard_refused_is_not_asked_for_again(
    server: FaultServer, answer: bytes
) -> None:
    """urllib3 took a refused answer for a broken connection and asked again, with its
    backoff: 4 requests and 3.5 s (0.5 + 1 + 2) for each such URL, to be refused the
    same way each time. The refusal is the answer: one request."""
    server.route("/p", sent_and_closed(answer))
    with make_session(USER_AGENT, retries=3, backoff_s=0.5) as session:
        result = fetch(session, server.url("/p"), allow_private_network=True, deadline_s=30)
    assert result.error is not None and result.error.startswith("answer refused: "), result.error
    assert server.hits("/p") == 1


HEAD = "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 5\r\n"


@pytest.mark.parametrize(
    ("answer", "line"),
    [
        (
            HEAD + "".join(f"Set-Cookie: c{i}=v\r\n" for i in range(1_000)) + "\r\nhello",
            "answer refused: more than 100 header lines",
        ),
        (
            HEAD + "X-Big: " + "a" * 70_000 + "\r\n\r\nhello",
            "answer refused: a header line longer than 65536 bytes",
        ),
        (
            "HTTP/1.1 2000000 OK\r\nContent-Length: 0\r\n\r\n",
            "answer refused: 'HTTP/1.1 2000000 OK\\r\\n' is no HTTP/1.x status line",
        ),
        ("HTTP/2.0 200 OK\r\n\r\n", "answer refused: 'HTTP/2.0' is no HTTP/1.x status line"),
    ],
    ids=["1000-set-cookie", "64k-header-line", "status-2000000", "http-2.0"],
)
def test_a_head_http_client_will_not_read_is_refused_once_in_one_line(
    server: FaultServer, answer: str, line: str
) -> None:
    """A header flood (1,000 Set-Cookie: http.client reads at most 100 header lines), a
    header line over 64 KiB, a status line no HTTP/1.x one: the server sends the same
    again if asked. Before: urllib3 took each for a broken connection and asked 4 times,
    with 3 s of backoff, for each such URL, ending as ``connection broken:
    ('Connection aborted.', HTTPException('got more than 100 headers'))``."""
    server.route("/p", sent_and_closed(answer.encode()))
    with make_session(USER_AGENT, retries=3, backoff_s=0.5) as session:
        result = fetch(session, server.url("/p"), allow_private_network=True, deadline_s=30)
    assert (result.error, server.hits("/p")) == (line, 1)


@pytest.mark.parametrize("encoding", ["chunked", "Chunked", "CHUNKED"])
def test_chunked_in_any_spelling_http_client_reads_is_read(
    server: FaultServer, encoding: str
) -> None:
    """Chunk sizes with spaces, leading zeros and extensions stay readable."""
    answer = (
        f"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nTransfer-Encoding: {encoding}\r\n\r\n"
    ).encode() + b"5 \r\nhello\r\n00A;x=1\r\n0123456789\r\n0\r\n\r\n"
    server.route("/p", chunked_as_written(answer))
    with make_session(USER_AGENT, retries=0) as session:
        result = fetch(session, server.url("/p"), allow_private_network=True)
    assert (result.error, result.content) == (None, b"hello0123456789")


def test_one_content_length_sent_twice_is_one_length(server: FaultServer) -> None:
    """``Content-Length: 5`` from two layers arrives as ``5, 5``: still read, not
    refused with the lengths that are no number."""
    head = b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n"
    server.route("/p", kept_open(head + b"Content-Length: 5\r\nContent-Length: 5\r\n\r\nhello"))
    with make_session(USER_AGENT, retries=0) as session:
        result = fetch(session, server.url("/p"), allow_private_network=True, deadline_s=4)
    assert (result.error, result.content) == (None, b"hello")


def test_a_content_length_that_is_no_number_on_an_answer_without_body_is_read(
    server: FaultServer,
) -> None:
    """A 304 has no body whatever its Content-Length says: the poll reads it as before."""
    head = b'HTTP/1.1 304 Not Modified\r\nETag: "a"\r\nContent-Length: -1\r\n\r\n'
    server.route("/p", kept_open(head))
    with make_session(USER_AGENT, retries=0) as session:
        result = fetch(
            session, server.url("/p"), allow_private_network=True, deadline_s=4,
            validators=Validators(etag='"a"'),
        )  # fmt: skip
    assert (result.error, result.status) == (None, 304)


def chunked_as_written(answer: bytes) -> Behaviour:
    def behave(conn: Connection) -> None:
        conn.send(answer)

    return behave


def test_a_sender_with_a_non_ascii_local_part_without_smtputf8_is_a_setting_said_once(
    engine: sa.Engine,
) -> None:
    """A From address `警报@example.org` can only be written to a server that offers
    SMTPUTF8. To one that does not, smtplib raised SMTPNotSupportedError for every mail,
    taken for a passing failure: each alert stayed pending and was tried again at every
    run, the task retried. It is a setting to change: the run stops at the first mail
    with one line naming the server and the sender, nothing recorded, nothing sent."""
    topics = parse_topics(TOPICS_YAML)
    sync_topics(engine, topics)
    alert_on_burst(engine, topics)
    sink = Sink()
    sender = "mediamon <警报@example.org>"
    with (
        serve_smtp(sink, enable_SMTPUTF8=False) as port,
        pytest.raises(MailServerRefusal) as raised,
    ):
        send = plain_sender(port)
        deliver_pending(engine, send, AT + timedelta(minutes=5), topics=topics, sender=sender)
    assert isinstance(raised.value, ConfigError)
    said = str(raised.value)
    assert "\n" not in said
    assert said.startswith(
        f"the SMTP server 127.0.0.1:{port} does not offer SMTPUTF8, without which the sender"
        " '警报@example.org' (a local part not in ASCII) cannot be written: set the"
        " mediamon_smtp connection's extra.from_email to an ASCII address, or use a server"
        " that offers SMTPUTF8"
    )
    assert sink.messages == []
    assert rows(engine, "select recipient, status from alert_deliveries") == []
    assert rows(engine, "select state from alerts") == [("open",)]


# Parses a feed of about 15 MB, its bulk either comments or an ordinary description's
# text, and prints the process's peak memory (ru_maxrss, kB on Linux).
PARSE_AND_MEASURE = """
import resource, sys
from mediamon.ingest.feeds import parse_feed

size = 15_000_000
items = "".join(
    f"<item><title>t{i}</title><link>https://example.com/{i}</link></item>" for i in range(20)
)
if sys.argv[1] == "comments":
    bulk = "<!---->" * (size // 7)
else:
    bulk = "<description>" + "a" * size + "</description>"
document = (
    '<?xml version="1.0"?><rss version="2.0"><channel><title>c</title>'
    + bulk + items + "</channel></rss>"
).encode()
parsed = parse_feed(document, "https://example.com/feed")
print(len(parsed.items), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def test_a_feed_of_comments_costs_no_more_memory_than_one_of_text() -> None:
    """15 MB of ``<!---->`` built an lxml tree of 2 million comment nodes, read by
    nobody: 457 MB at its peak, 2.7 times a feed of the same size in text (168 MB).
    The trees are built without comments or processing instructions: 131 MB, less than
    the text's. Measured in a process each, as ratios."""
    peaks = {}
    for bulk in ("comments", "text"):
        argv = [sys.executable, "-c", PARSE_AND_MEASURE, bulk]
        done = subprocess.run(argv, capture_output=True, text=True, timeout=300, check=True)
        items, peaks[bulk] = map(int, done.stdout.split())
        assert items == 20
    assert peaks["comments"] < 1.3 * peaks["text"], peaks


def test_a_start_tag_over_lxmls_limit_is_counted_and_refused() -> None:
    """A ``<channel>`` of 1.25 million attributes (15 MB): lxml stops at a start tag over
    10 MB and its recovering parser leaves the element out, so the tree showed none of
    its attributes and the feed went to feedparser's lenient parser, which looks each
    attribute up by scanning all of them (more than 2 minutes; the check itself passed
    in 0.8 s, and that is what this test calls). The attributes are counted on the
    bytes: refused in one line."""
    count = 1_250_000
    attributes = "".join(f' a{i:07d}=""' for i in range(count))
    document = (
        f'<?xml version="1.0"?><rss version="2.0"><channel{attributes}><title>c</title>'
        "<item><title>t</title><link>https://example.com/a</link></item></channel></rss>"
    ).encode()
    with pytest.raises(FeedError) as refused:
        within_limits(document, keep=2000)
    assert str(refused.value) == (
        f"feed refused: <channel> has {count:,} attributes (at most {MAX_ATTRIBUTES})"
    )


def test_attributes_in_ordinary_numbers_and_namespaces_are_not_counted_as_many() -> None:
    """Links with queries (``=`` inside values) and namespace declarations do not add
    up to the bound."""
    namespaces = "".join(f' xmlns:n{i}="urn:{i}"' for i in range(200))
    links = "".join(
        f"<item><title>t</title><link>https://example.com/a?x={i}&amp;y=1</link>"
        f'<enclosure url="https://example.com/{i}.mp3?a=1&amp;b=2" length="1" type="audio/mpeg"/>'
        "</item>"
        for i in range(300)
    )
    document = f'<rss version="2.0"{namespaces}><channel><title>c</title>{links}</channel></rss>'
    parsed = parse_feed(document.encode(), "https://example.com/feed")
    assert len(parsed.items) == 300
