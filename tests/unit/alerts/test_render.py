"""Alert mails: rendering, escaping, the PNG chart and delivery to a real SMTP server."""

from __future__ import annotations

import email
import struct
import zlib
from datetime import UTC, date, datetime, timedelta
from email.policy import default as default_policy
from typing import Any

import pytest

from mediamon.alerts.render import (
    BAR,
    BAR_HIGHLIGHT,
    AlertContent,
    Story,
    bar_chart_png,
    build_message,
    render_alert,
    render_digest,
    safe_link,
)
from tests.support.smtp_server import Sink, smtp_send

END = datetime(2024, 4, 2, 21, tzinfo=UTC)
EVIL_TITLE = '<script>alert("x")</script> 拜登 & 习近平 <b>通话</b>'


def content(**changes: Any) -> AlertContent:
    base = AlertContent(
        alert_id=42,
        topic_key="taiwan",
        topic_name="台湾",
        window_start=END - timedelta(hours=1),
        window_end=END,
        observed=12,
        expected=2.5,
        p_value=2e-6,
        total_stories=180,
        stories=(
            Story(
                EVIL_TITLE,
                "rfi<img src=x onerror=alert(1)>",
                END - timedelta(minutes=25),
                "javascript:alert(document.cookie)",
            ),
            Story(
                "台湾海峡局势",
                "bbc",
                END - timedelta(minutes=40),
                'https://example.org/a?x=1&y="><script>',
            ),
            Story(None, "cna", None, "https://example.org/b"),
        ),
        history=tuple((i * 7) % 5 for i in range(167)) + (12,),
        history_start=END - timedelta(hours=168),
        params={"min_stories": 4, "min_lift": 2.0, "max_p_value": 0.0001},
    )
    return AlertContent(**{**base.__dict__, **changes})


def _parts(message: email.message.EmailMessage) -> dict[str, Any]:
    found: dict[str, Any] = {"images": []}
    for part in message.walk():
        kind = part.get_content_type()
        if kind == "text/plain":
            found["text"] = part.get_content()
        elif kind == "text/html":
            found["html"] = part.get_content()
        elif kind == "image/png":
            found["images"].append((part["Content-ID"], part.get_content()))
    return found


def test_alert_mail_is_received_parsed_and_escaped(smtp: tuple[Sink, int]) -> None:
    sink, port = smtp
    rendered = render_alert(content(), "Asia/Shanghai")
    message = build_message(
        rendered,
        "mediamon <alerts@example.org>",
        ["desk@example.org"],
        message_id="<alert-42@mediamon.invalid>",
        sent_at=END,
    )
    smtp_send(port)(message)

    assert len(sink.messages) == 1
    mail_from, rcpt_tos, raw = sink.messages[0]
    assert mail_from == "alerts@example.org"
    assert rcpt_tos == ["desk@example.org"]
    received = email.message_from_bytes(raw, policy=default_policy)
    assert isinstance(received, email.message.EmailMessage)
    assert received["Subject"] == "[mediamon] 台湾: 12 stories in 1 h, expected 2.5"
    assert "=?utf-8?" in raw.decode("ascii").split("\r\n\r\n", 1)[0]  # encoded, not raw bytes
    assert received["To"] == "desk@example.org"
    assert received["Message-ID"] == "<alert-42@mediamon.invalid>"
    assert received.get_content_type() == "multipart/alternative"

    parts = _parts(received)
    html_text = parts["html"]
    assert "<script" not in html_text
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; 拜登 &amp; 习近平" in html_text
    assert "onerror=alert(1)&gt;" in html_text and "<img src=x" not in html_text
    assert "javascript:" not in html_text  # not a link, and its text is not shown in HTML
    assert 'href="https://example.org/a?x=1&amp;y=&quot;&gt;&lt;script&gt;"' in html_text
    assert 'href="https://example.org/b"' in html_text
    assert "12 stories in 1 h, expected 2.5" in html_text
    assert "2024-04-03 04:00–05:00 CST" in html_text  # the recipient's timezone

    assert EVIL_TITLE in parts["text"]  # plain text needs no escaping
    assert "(no title)" in parts["text"]

    assert len(parts["images"]) == 1
    cid, png = parts["images"][0]
    assert f'src="cid:{cid.strip("<>")}"' in html_text
    width, height, _ = decode_png(png)
    assert (width, height) == (680, 98)


def test_digest_lists_every_alert_with_its_chart(smtp: tuple[Sink, int]) -> None:
    sink, port = smtp
    alerts = [
        content(),
        content(
            alert_id=43,
            topic_key="export-controls",
            topic_name="出口管制",
            window_start=END,
            window_end=END + timedelta(hours=1),
            observed=6,
            expected=1.0,
        ),
    ]
    rendered = render_digest(alerts, date(2024, 4, 3), "Asia/Shanghai")
    message = build_message(rendered, "alerts@example.org", ["editors@example.org"])
    smtp_send(port)(message)
    received = email.message_from_bytes(sink.messages[0][2], policy=default_policy)
    assert received["Subject"] == "[mediamon] digest 2024-04-03: 2 alerts (出口管制, 台湾)"
    parts = _parts(received)
    assert parts["html"].index("出口管制") < parts["html"].index("台湾")  # newest first
    assert "<script" not in parts["html"]
    assert len(parts["images"]) == 2
    for cid, _ in parts["images"]:
        assert f"cid:{cid.strip('<>')}" in parts["html"]


def test_subject_cannot_be_split_by_a_topic_name() -> None:
    rendered = render_alert(content(topic_name="台湾\r\nBcc: everyone@example.org"))
    message = build_message(rendered, "a@example.org", ["b@example.org"])
    assert "\n" not in message["Subject"]
    assert message["Bcc"] is None


@pytest.mark.parametrize(
    ("url", "ok"),
    [
        ("https://www.rfi.fr/cn/a", True),
        ("HTTP://example.org/", True),
        ("javascript:alert(1)", False),
        ("data:text/html,<script>", False),
        ("//example.org/a", False),
        ("https://exa mple.org/", False),
        ("https:///nohost", False),
        ("", False),
    ],
)
def test_only_http_links(url: str, ok: bool) -> None:
    assert (safe_link(url) is not None) is ok


def decode_png(data: bytes) -> tuple[int, int, bytes]:
    """A strict reader for the writer's output: checks every CRC; returns RGB rows."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    position = 8
    chunks: dict[bytes, bytes] = {}
    while position < len(data):
        (length,) = struct.unpack(">I", data[position : position + 4])
        kind = data[position + 4 : position + 8]
        body = data[position + 8 : position + 8 + length]
        (crc,) = struct.unpack(">I", data[position + 8 + length : position + 12 + length])
        assert zlib.crc32(kind + body) & 0xFFFFFFFF == crc, kind
        chunks[kind] = chunks.get(kind, b"") + body
        position += 12 + length
    assert set(chunks) == {b"IHDR", b"IDAT", b"IEND"}
    width, height, depth, colour, _, _, _ = struct.unpack(">IIBBBBB", chunks[b"IHDR"])
    assert (depth, colour) == (8, 2)
    raw = zlib.decompress(chunks[b"IDAT"])
    assert len(raw) == height * (1 + 3 * width)
    rows = b"".join(raw[y * (1 + 3 * width) + 1 : (y + 1) * (1 + 3 * width)] for y in range(height))
    return width, height, rows


def test_bar_chart_png_draws_bars() -> None:
    png = bar_chart_png([0, 5, 10], highlight=[2])
    width, height, rgb = decode_png(png)

    def pixel(x: int, y: int) -> tuple[int, ...]:
        offset = (y * width + x) * 3
        return tuple(rgb[offset : offset + 3])

    bottom = height - 5  # the row just above the axis
    assert pixel(4, bottom) == (255, 255, 255)  # zero: no bar
    assert pixel(8, bottom) == BAR
    assert pixel(8, 10) == (255, 255, 255)  # half height: no ink near the top
    assert pixel(12, bottom) == BAR_HIGHLIGHT
    assert pixel(12, 5) == BAR_HIGHLIGHT  # the tallest bar reaches the top
