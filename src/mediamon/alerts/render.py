"""Pure rendering of alert and digest mails: subject, text, HTML and an inline PNG chart.

Nothing here sends mail or reads the database: :mod:`mediamon.alerts.deliver` gathers the
content and hands the finished :class:`email.message.EmailMessage` to a send callable.
Every string that comes from an article (title, source, URL) is escaped in the HTML, and
only http(s) URLs become links.
"""

from __future__ import annotations

import html
import logging
import re
import struct
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

logger = logging.getLogger(__name__)

SUBJECT_PREFIX = "[mediamon]"
MAX_TITLE_CHARS = 200
MAX_URL_CHARS = 2000
CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]+")
# Chart geometry (pixels) and colours (RGB).
BAR_WIDTH = 3
BAR_GAP = 1
CHART_HEIGHT = 90
CHART_PAD = 4
BACKGROUND = (255, 255, 255)
BAR = (110, 140, 180)
BAR_HIGHLIGHT = (200, 40, 40)
GRID = (225, 225, 225)
AXIS = (120, 120, 120)


@dataclass(frozen=True)
class Story:
    """One article shown as evidence. Every field is untrusted text from a source."""

    title: str | None
    source: str
    published_at: datetime | None
    url: str


@dataclass(frozen=True)
class AlertContent:
    """What an alert mail says.

    Attributes:
        alert_id: The alert's id (shown for reference), if stored.
        topic_key: The topic's key.
        topic_name: The topic's display name.
        window_start: Start of the window that fired (UTC).
        window_end: End of the window (exclusive, UTC).
        observed: Stories in the window.
        expected: Stories expected from the baseline.
        p_value: Tail probability of ``observed``.
        total_stories: All stories in the window.
        stories: The top stories of the window.
        history: Stories per bucket over the chart's period, oldest first.
        history_start: Start of the first bucket.
        bucket_hours: Hours per bucket (1: hourly bars, 24: daily bars).
        params: The thresholds that were applied.
    """

    alert_id: int | None
    topic_key: str
    topic_name: str
    window_start: datetime
    window_end: datetime
    observed: int
    expected: float
    p_value: float
    total_stories: int
    stories: tuple[Story, ...] = ()
    history: tuple[int, ...] = ()
    history_start: datetime | None = None
    bucket_hours: int = 1
    params: Mapping[str, Any] = field(default_factory=dict)

    @property
    def lift(self) -> float:
        return self.observed / self.expected if self.expected > 0 else float("inf")


@dataclass(frozen=True)
class InlineImage:
    """A PNG shown in the HTML part through ``cid:``."""

    cid: str  # without angle brackets
    data: bytes
    alt: str


@dataclass(frozen=True)
class Rendered:
    """A finished mail body, ready for :func:`build_message`."""

    subject: str
    text: str
    html: str
    images: tuple[InlineImage, ...] = ()


# ---------------------------------------------------------------------------------------
# Escaping


def clean(value: object, limit: int = MAX_TITLE_CHARS) -> str:
    """Untrusted text on one line: control characters and line breaks become spaces."""
    text = " ".join(CONTROL.sub(" ", str(value or "")).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def esc(value: object, limit: int = MAX_TITLE_CHARS) -> str:
    """Untrusted text for HTML: cleaned, then escaped (quotes too, for attributes)."""
    return html.escape(clean(value, limit), quote=True)


def safe_link(url: str | None) -> str | None:
    """``url`` if it is an absolute http(s) URL fit to be a link, else None."""
    if not url or len(url) > MAX_URL_CHARS or CONTROL.search(url) or any(c.isspace() for c in url):
        return None
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        return None
    return url


def _link(url: str | None, label: str) -> str:
    """An escaped link, or the escaped label alone when the URL is not http(s)."""
    target = safe_link(url)
    if target is None:
        return label
    return f'<a href="{html.escape(target, quote=True)}">{label}</a>'


# ---------------------------------------------------------------------------------------
# Rendering


def _zone(timezone: str) -> ZoneInfo:
    return ZoneInfo(timezone)


def _when(moment: datetime | None, zone: ZoneInfo) -> str:
    if moment is None:
        return "time unknown"
    return moment.astimezone(zone).strftime("%Y-%m-%d %H:%M %Z")


def _window(alert: AlertContent, zone: ZoneInfo) -> str:
    start = alert.window_start.astimezone(zone)
    end = alert.window_end.astimezone(zone)
    same_day = start.date() == (end - timedelta(microseconds=1)).date()
    end_text = end.strftime("%H:%M %Z") if same_day else end.strftime("%Y-%m-%d %H:%M %Z")
    return f"{start:%Y-%m-%d %H:%M}–{end_text}"


def _hours(alert: AlertContent) -> int:
    return max(1, round((alert.window_end - alert.window_start) / timedelta(hours=1)))


def _summary(alert: AlertContent) -> str:
    lift = f"{alert.lift:.1f}×" if alert.expected > 0 else "new"
    return (
        f"{alert.observed} stories in {_hours(alert)} h, expected {alert.expected:.1f} "
        f"({lift}, p = {alert.p_value:.1e})"
    )


def render_alert(alert: AlertContent, timezone: str = "UTC") -> Rendered:
    """Render one alert: subject, plain text, HTML and the chart of the last 7 days.

    Args:
        alert: The alert and its evidence.
        timezone: IANA zone for the times shown.

    Returns:
        The mail's parts; the HTML refers to the chart as ``cid:``.
    """
    zone = _zone(timezone)
    name = clean(alert.topic_name, 80)
    subject = f"{SUBJECT_PREFIX} {name}: {alert.observed} stories in {_hours(alert)} h"
    subject += f", expected {alert.expected:.1f}"
    chart = _chart(alert, f"chart-{alert.topic_key}")
    text = "\n".join(
        [
            f"Topic: {name} ({clean(alert.topic_key, 64)})",
            f"Window: {_window(alert, zone)}",
            f"Coverage: {_summary(alert)}",
            f"All stories in the window: {alert.total_stories}",
            "",
            "Top stories:",
            *_story_lines(alert.stories, zone),
            "",
            _why_text(alert),
            _reference(alert),
        ]
    )
    body = "".join(
        [
            f'<h2 style="margin:0 0 8px">{esc(name)}</h2>',
            f'<p style="margin:0 0 4px"><b>{esc(_summary(alert))}</b></p>',
            f'<p style="margin:0 0 12px;color:#555">{esc(_window(alert, zone))} · '
            f"{alert.total_stories} stories in all</p>",
            _chart_html(chart, alert),
            '<h3 style="margin:16px 0 4px">Top stories</h3>',
            _stories_html(alert.stories, zone),
            f'<p style="color:#777;font-size:12px">{esc(_why_text(alert), 2000)}<br>'
            f"{esc(_reference(alert))}</p>",
        ]
    )
    return Rendered(subject, text + "\n", _page(subject, body), (chart,) if chart else ())


def render_digest(alerts: Sequence[AlertContent], day: date, timezone: str = "UTC") -> Rendered:
    """Render a daily digest of several alerts (newest first), each with its chart.

    Args:
        alerts: The alerts since the previous digest.
        day: The digest's date (in ``timezone``).
        timezone: IANA zone for the times shown.
    """
    zone = _zone(timezone)
    ordered = sorted(alerts, key=lambda a: a.window_end, reverse=True)
    topics = sorted({clean(a.topic_name, 80) for a in ordered})
    subject = f"{SUBJECT_PREFIX} digest {day.isoformat()}: {len(ordered)} alert"
    subject += ("s" if len(ordered) != 1 else "") + " (" + ", ".join(topics[:5])
    subject += ", …)" if len(topics) > 5 else ")"
    lines: list[str] = [f"mediamon digest for {day.isoformat()}", ""]
    parts: list[str] = [f'<h2 style="margin:0 0 8px">Digest {esc(day.isoformat())}</h2>']
    images: list[InlineImage] = []
    for index, alert in enumerate(ordered):
        name = clean(alert.topic_name, 80)
        chart = _chart(alert, f"chart-{index}-{alert.topic_key}")
        if chart:
            images.append(chart)
        lines += [
            f"== {name}: {_summary(alert)}",
            f"   {_window(alert, zone)}",
            *_story_lines(alert.stories[:3], zone),
            "",
        ]
        parts += [
            f'<h3 style="margin:16px 0 4px">{esc(name)}</h3>',
            f'<p style="margin:0 0 4px">{esc(_summary(alert))}<br>'
            f'<span style="color:#555">{esc(_window(alert, zone))}</span></p>',
            _chart_html(chart, alert),
            _stories_html(alert.stories[:3], zone),
        ]
    return Rendered(subject, "\n".join(lines) + "\n", _page(subject, "".join(parts)), tuple(images))


def _story_lines(stories: Sequence[Story], zone: ZoneInfo) -> list[str]:
    if not stories:
        return ["  (none)"]
    lines = []
    for story in stories:
        lines.append(f"- {clean(story.title) or '(no title)'}")
        lines.append(f"  {clean(story.source, 80)}, {_when(story.published_at, zone)}")
        lines.append(f"  {clean(story.url, MAX_URL_CHARS)}")
    return lines


def _stories_html(stories: Sequence[Story], zone: ZoneInfo) -> str:
    if not stories:
        return "<p>(none)</p>"
    items = []
    for story in stories:
        title = _link(story.url, esc(story.title) or "(no title)")
        meta = f"{esc(story.source, 80)} · {esc(_when(story.published_at, zone))}"
        items.append(
            f'<li style="margin:0 0 6px">{title}<br>'
            f'<span style="color:#666;font-size:12px">{meta}</span></li>'
        )
    return '<ol style="padding-left:20px">' + "".join(items) + "</ol>"


def _why_text(alert: AlertContent) -> str:
    params = alert.params
    keys = ("min_stories", "min_lift", "max_p_value", "window_hours", "baseline_weeks")
    shown = ", ".join(f"{k}={params[k]}" for k in keys if k in params)
    return (
        "Why: the count is compared with the topic's share of all stories at this hour "
        "of the week over the trailing weeks (negative binomial tail)"
        + (f"; thresholds {shown}" if shown else "")
        + "."
    )


def _reference(alert: AlertContent) -> str:
    return f"Alert {alert.alert_id}" if alert.alert_id is not None else "Alert (not stored)"


def _page(title: str, body: str) -> str:
    return (
        '<!DOCTYPE html><html><head><meta charset="utf-8">'
        f"<title>{esc(title)}</title></head>"
        '<body style="font-family:sans-serif;font-size:14px;color:#222">'
        f"{body}</body></html>"
    )


def _chart(alert: AlertContent, cid_stem: str) -> InlineImage | None:
    if not alert.history or alert.history_start is None:
        return None
    bucket = timedelta(hours=alert.bucket_hours)
    first = max(0, int((alert.window_start - alert.history_start) // bucket))
    highlight = range(first, len(alert.history))
    # Midnight UTC boundaries, as faint lines, when bars are hourly.
    days = [
        i
        for i in range(1, len(alert.history))
        if alert.bucket_hours == 1 and (alert.history_start + i * bucket).hour == 0
    ]
    png = bar_chart_png(alert.history, highlight=highlight, separators=days)
    cid = re.sub(r"[^A-Za-z0-9.-]", "-", cid_stem) + "@mediamon"
    unit = "hour" if alert.bucket_hours == 1 else f"{alert.bucket_hours} h"
    alt = f"Stories per {unit} over the last {len(alert.history) * alert.bucket_hours // 24} days"
    alt += f" (highest {max(alert.history)}); the alert window in red"
    return InlineImage(cid, png, alt)


def _chart_html(chart: InlineImage | None, alert: AlertContent) -> str:
    if chart is None:
        return ""
    return (
        f'<img src="cid:{esc(chart.cid)}" alt="{esc(chart.alt)}" '
        f'width="{_chart_width(len(alert.history))}" height="{CHART_HEIGHT + 2 * CHART_PAD}" '
        'style="display:block;border:1px solid #ddd">'
        f'<div style="color:#777;font-size:12px">{esc(chart.alt)}</div>'
    )


# ---------------------------------------------------------------------------------------
# A tiny PNG writer (zlib + struct): mail clients often block SVG, and Pillow is not needed
# for bars.


def _chart_width(bars: int) -> int:
    return max(1, bars) * (BAR_WIDTH + BAR_GAP) + 2 * CHART_PAD


def bar_chart_png(
    values: Sequence[int | float],
    *,
    highlight: Sequence[int] | range = (),
    separators: Sequence[int] = (),
) -> bytes:
    """Draw a bar chart as an RGB PNG.

    Args:
        values: Bar heights, left to right (negative values draw as zero).
        highlight: Indexes of bars drawn in red (the alert window).
        separators: Indexes before which a faint vertical line is drawn (day breaks).

    Returns:
        The PNG file's bytes.
    """
    width = _chart_width(len(values))
    height = CHART_HEIGHT + 2 * CHART_PAD
    pixels = bytearray(bytes(BACKGROUND) * (width * height))

    def fill(x0: int, y0: int, x1: int, y1: int, colour: tuple[int, int, int]) -> None:
        row = bytes(colour) * (x1 - x0)
        for y in range(y0, y1):
            offset = (y * width + x0) * 3
            pixels[offset : offset + len(row)] = row

    top, bottom = CHART_PAD, CHART_PAD + CHART_HEIGHT
    for index in separators:
        x = CHART_PAD + index * (BAR_WIDTH + BAR_GAP) - 1
        if 0 <= x < width:
            fill(x, top, x + 1, bottom, GRID)
    peak = max((float(v) for v in values), default=0.0)
    marked = set(highlight)
    for index, value in enumerate(values):
        if peak <= 0 or value <= 0:
            continue
        bar_height = max(1, round(float(value) / peak * CHART_HEIGHT))
        x = CHART_PAD + index * (BAR_WIDTH + BAR_GAP)
        colour = BAR_HIGHLIGHT if index in marked else BAR
        fill(x, bottom - bar_height, x + BAR_WIDTH, bottom, colour)
    fill(CHART_PAD, bottom, width - CHART_PAD, bottom + 1, AXIS)
    return encode_png(width, height, bytes(pixels))


def encode_png(width: int, height: int, rgb: bytes) -> bytes:
    """Encode 8-bit RGB pixels (rows top to bottom) as a PNG file."""
    if len(rgb) != width * height * 3:
        raise ValueError("pixel data does not match the size")
    stride = width * 3
    raw = b"".join(b"\x00" + rgb[y * stride : (y + 1) * stride] for y in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw, 9))
        + chunk(b"IEND", b"")
    )


# ---------------------------------------------------------------------------------------
# The message


def build_message(
    rendered: Rendered,
    sender: str,
    recipients: Sequence[str],
    *,
    message_id: str | None = None,
    sent_at: datetime | None = None,
    headers: Mapping[str, str] | None = None,
) -> EmailMessage:
    """Assemble the mail: multipart/alternative (text, then HTML with its related PNGs).

    Args:
        rendered: From :func:`render_alert` or :func:`render_digest`.
        sender: The From address.
        recipients: The To addresses.
        message_id: A stable Message-ID (``<...>``), so a resent mail can be recognized.
        sent_at: The Date header (default: now).
        headers: Extra headers (e.g. ``X-Mediamon-Alert``).

    Returns:
        The message; the subject is encoded as UTF-8 by the email package.
    """
    if not recipients:
        raise ValueError("a message needs at least one recipient")
    message = EmailMessage()
    message["Subject"] = clean(rendered.subject, 250)
    message["From"] = sender
    message["To"] = ", ".join(recipients)
    message["Date"] = format_datetime(sent_at or datetime.now(UTC))
    message["Message-ID"] = message_id or make_msgid(domain="mediamon.invalid")
    # Tells vacation responders and ticket systems not to answer a machine.
    message["Auto-Submitted"] = "auto-generated"
    for name, value in (headers or {}).items():
        message[name] = clean(value, 250)
    message.set_content(rendered.text, subtype="plain", charset="utf-8")
    message.add_alternative(rendered.html, subtype="html", charset="utf-8")
    if rendered.images:
        html_part = message.get_body(("html",))
        if not isinstance(html_part, EmailMessage):
            raise RuntimeError("the HTML part is missing")  # set just above: cannot happen
        for image in rendered.images:
            html_part.add_related(
                image.data,
                maintype="image",
                subtype="png",
                cid=f"<{image.cid}>",
                filename=f"{image.cid.split('@')[0]}.png",
                disposition="inline",
            )
    return message
