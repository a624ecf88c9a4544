"""The safe ground under every mail: untrusted text cleaned and escaped, links only to
http(s), and the MIME message (plain text, HTML and its inline images).

Pure. What a mail says is :mod:`mediamon.alerts.compose`'s; this module makes sure that
what an article supplies (title, outlet, URL, snippet) can neither break the HTML nor the
headers: control characters, line breaks and bidirectional controls are dropped and
everything is escaped; only http(s) URLs become links.
"""

from __future__ import annotations

import html
import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from urllib.parse import urlsplit

logger = logging.getLogger(__name__)

MAX_TITLE_CHARS = 200
MAX_URL_CHARS = 2000
# Control characters, line and paragraph separators, and the bidirectional controls that
# can reorder what a reader sees (U+202E turns "gpj.exe" into "exe.jpg").
CONTROL = re.compile(
    r"[\x00-\x1f\x7f-\x9f\u2028\u2029\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]+"
)


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
    # Cut before cleaning: a stored title may be any length (rows older than the caps).
    text = " ".join(CONTROL.sub(" ", str(value or "")[: limit * 4 + 64]).split())
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
        rendered: From :func:`mediamon.alerts.compose.render_alert_mail` or
            :func:`mediamon.alerts.compose.render_digest_mail`.
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
