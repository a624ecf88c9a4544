"""The safe ground under every mail: untrusted text cleaned and escaped, links only to
http(s), and the MIME message (plain text, HTML and its inline images).

Pure. What a mail says is :mod:`mediamon.alerts.compose`'s; this module makes sure that
what an article supplies (title, outlet, URL, snippet) can neither break the HTML nor the
headers: control characters, line breaks and bidirectional controls are dropped and
everything is escaped; only http(s) URLs become links.

The one bidirectional control a mail may hold is mediamon's own: :func:`isolate` puts a
cleaned name that holds right-to-left letters between FIRST STRONG ISOLATE and POP
DIRECTIONAL ISOLATE, so that "عاجل: 10 new stories" does not read "10 :عاجل new stories".
Text composed around such names goes through :func:`clean_composed` (the pairs kept, any
other control dropped) and :func:`esc_composed` (each pair a ``<bdi>`` element).
"""

from __future__ import annotations

import html
import logging
import re
import socket
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid, parseaddr
from typing import Any
from urllib.parse import quote, urlsplit

import regex

from mediamon.text import BREAKS_A_LINE, IGNORABLE

logger = logging.getLogger(__name__)

MAX_TITLE_CHARS = 200
# The longest link a mail gives a story: what web servers take in a request line
# (Apache's LimitRequestLine 8,190, nginx's 8 kB buffers). It was 2,000, below the 2,048
# ingest stores (mediamon.limits.MAX_URL_CHARS), and a link of Chinese letters written
# as a URI grows to nine characters each: such stories were listed with no link at all.
MAX_URL_CHARS = 8000
# Characters that draw as a wide blank but are no space, so nothing collapses them: the
# Hangul fillers and the braille blank (a title of 100 U+3164 was four empty lines).
BLANK = re.compile("[\u115f\u1160\u3164\uffa0\u2800]+")
# Combining marks kept on one base character: Vietnamese, Thai, Hebrew or Devanagari
# need two or three; a "Zalgo" flood of hundreds stacks a tower over the lines above and
# below (the stories around it unreadable).
MAX_MARKS = 4
# The marks past MAX_MARKS in a run: nonspacing and enclosing marks (Mn, Me).
MARK_FLOOD = regex.compile(rf"([\p{{Mn}}\p{{Me}}]{{{MAX_MARKS}}})[\p{{Mn}}\p{{Me}}]+")
# How much of an untrusted text clean() reads: far above a title as ingest stores it
# (mediamon.limits.MAX_TITLE_CHARS, 1,000, blanks included), so blanks before the words
# never hide them; small enough that a row of 10 MB (older than the caps) costs a
# millisecond, not a pass over all of it.
CLEAN_SCAN_CHARS = 65_536
# FIRST STRONG ISOLATE and POP DIRECTIONAL ISOLATE: added only by isolate(), around text
# clean() has already rid of every bidi control, so one pair never nests in another.
FSI, PDI = "\u2068", "\u2069"
# A grapheme cluster (UAX #29): what a reader sees as one character. Python's re has no
# \X; regex (already installed with trafilatura's dependencies) has.
CLUSTER = regex.compile(r"\X")
# How far before a cut its cluster is looked for, at least: further back while the
# characters there may join (a run of flags is read from its start).
CLUSTER_LOOKBEHIND = 32
OWN_ISOLATE = re.compile(f"{FSI}([^{FSI}{PDI}]*){PDI}")
# Bidi classes that can pull the text next to a name to the other side in a left-to-right
# line: right-to-left letters (Hebrew, Arabic) and Arabic digits.
RIGHT_TO_LEFT = frozenset(("R", "AL", "AN"))


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
    """Untrusted text on one line: control characters, line breaks, bidi controls
    (:data:`mediamon.text.BREAKS_A_LINE`) and blank fillers become spaces; a base
    character keeps at most :data:`MAX_MARKS` combining marks.

    Blanked, not escaped as :func:`mediamon.text.one_line` does for a log: a reader of a
    mail or the page wants the title, not ``\\u202e``, and the other characters a log
    escapes (zero-width joiners, odd spaces) stay, as emoji and scripts need them."""
    # Squeezed, then cut: cut first (to limit*4+64), a stored title of 900 blanks before
    # its words was all blanks, and showed "(no title)". A stored title may be any length
    # (rows older than the caps), so only its first CLEAN_SCAN_CHARS are read: each step
    # below is one linear pass over at most that.
    raw = str(value or "")
    raw = raw[: max(CLEAN_SCAN_CHARS, limit * 4 + 64)]
    text = " ".join(_few_marks(BLANK.sub(" ", BREAKS_A_LINE.sub(" ", raw))).split())
    if not IGNORABLE.sub("", text).strip():
        # Zero-width spaces, joiners, a byte order mark alone (rows stored before ingest
        # judged titles cleaned): nothing a reader sees. Kept, a top story's link was a
        # link of no width, which nobody could click, with no "(no title)" in its place.
        return ""
    return text if len(text) <= limit else cut(text, limit - 1) + "…"


def cut(text: str, at: int) -> str:
    """``text[:at]``, or shorter so as not to split a character that takes several code
    points (an extended grapheme cluster, UAX #29): a flag (two regional indicators), an
    emoji sequence joined by ZWJ, with a skin tone or a variation selector, a letter and
    its marks, a Hangul syllable written as jamo. A topic name of flags cut at 30
    characters in a subject ended in half a flag, a lone "🇹"; one of jamo in "가" where
    "각" was written. The one cut for every line of a mail (titles, names, subjects,
    composed lines, snippets)."""
    if at >= len(text):
        return text
    start = cluster_start(text, max(at, 0))
    return text[:start] if start > 0 else text[: max(at, 0)]  # one cluster past the limit


def cluster_start(text: str, index: int) -> int:
    """Where the grapheme cluster holding ``text[index]`` starts (``index`` itself when a
    cut there splits nothing). The clusters are the regex module's ``\\X`` (UAX #29),
    read from the nearest point before ``index`` that is surely a cluster boundary, so a
    cut in a 50,000-character body does not read the body from its start."""
    if index <= 0 or index >= len(text):
        return max(0, min(index, len(text)))
    scan = max(0, index - CLUSTER_LOOKBEHIND)
    # Between two characters that never join (ASCII, Chinese, a space, a Latin letter)
    # is a boundary; anywhere else \X could start inside a cluster and read a flag's
    # regional indicators in the wrong pairs.
    while scan > 0 and not (_stands_alone(text[scan - 1]) and _stands_alone(text[scan])):
        scan -= 1
    for match in CLUSTER.finditer(text, scan):
        if match.end() > index:
            return int(match.start())
    return index  # not reached: the clusters cover the text


def joins_previous(text: str, index: int) -> bool:
    """Whether ``text[index]`` belongs to the character before it (a cut there splits it:
    a ZWJ sequence, a flag, a letter and its marks, Hangul jamo)."""
    return 0 < index < len(text) and cluster_start(text, index) != index


def _stands_alone(char: str) -> bool:
    """Whether ``char`` is a grapheme cluster on its own whatever stands beside it (no
    mark, joiner, regional indicator, jamo or prepended sign; not CR or LF)."""
    if char.isascii():
        return char not in "\r\n"
    return (
        "\u4e00" <= char <= "\u9fff"
        or "\u3400" <= char <= "\u4dbf"
        or unicodedata.category(char) in ("Ll", "Lu", "Zs")
    )


def _few_marks(text: str) -> str:
    """``text`` with each run of combining marks cut to :data:`MAX_MARKS` (one regular
    expression pass, not a Python loop: it reads up to :data:`CLEAN_SCAN_CHARS`)."""
    if text.isascii():
        return text
    return str(MARK_FLOOD.sub(r"\1", text))


def esc(value: object, limit: int = MAX_TITLE_CHARS) -> str:
    """Untrusted text for HTML: cleaned, then escaped (quotes too, for attributes)."""
    return html.escape(clean(value, limit), quote=True)


def isolate(value: object, limit: int = MAX_TITLE_CHARS) -> str:
    """Untrusted text (a topic or source name, a title) cleaned, for a line where other
    text comes before or after it: between FSI and PDI if it holds right-to-left letters
    (the line around it then keeps its order; the name keeps its own), else as it is.

    Compose the line with it, then pass the line through :func:`clean_composed` or
    :func:`esc_composed`, not :func:`clean` or :func:`esc` (they drop the isolates).
    """
    text = clean(value, limit)
    if any(unicodedata.bidirectional(c) in RIGHT_TO_LEFT for c in text):
        return f"{FSI}{text}{PDI}"
    return text


def clean_composed(value: object, limit: int) -> str:
    """Text mediamon composed around :func:`isolate` names, on one line: as :func:`clean`,
    except that balanced FSI ... PDI pairs stay (any other bidi control, a lone FSI or
    PDI among them, is dropped); a name cut by ``limit`` is closed."""
    pieces = OWN_ISOLATE.split(str(value or ""))
    # Even pieces: the text around the names; odd ones: the inside of a pair.
    text = " ".join(
        "".join(
            BREAKS_A_LINE.sub(" ", piece)
            if index % 2 == 0
            else f"{FSI}{BREAKS_A_LINE.sub(' ', piece)}{PDI}"
            for index, piece in enumerate(pieces)
        ).split()
    )
    if len(text) <= limit:
        return text
    kept = cut(text, limit - 1)
    if kept.rfind(FSI) > kept.rfind(PDI):  # cut inside a name: close it
        kept = kept[:-1] if kept.endswith(FSI) else cut(kept, len(kept) - 1) + PDI
    return kept + "…"


def esc_composed(value: object, limit: int) -> str:
    """Text mediamon composed around :func:`isolate` names, for HTML: cleaned by
    :func:`clean_composed`, escaped, and each FSI ... PDI pair a ``<bdi>`` element (what
    mail clients that ignore the isolate characters still honour); element text only,
    each UTC offset kept on one line (:func:`whole_offsets`)."""
    escaped = html.escape(clean_composed(value, limit), quote=True)
    return whole_offsets(escaped.replace(FSI, "<bdi>").replace(PDI, "</bdi>"))


UTC_OFFSET = re.compile(r"UTC[+-]\d{2}:\d{2}")


def whole_offsets(escaped: str) -> str:
    """Escaped HTML text with each ``UTC+08:00`` kept on one line (a browser breaks a
    line after the hyphen of ``UTC-06:00``: a heading on a phone read "(times UTC-" and
    "06:00)" on the next line). For element text only, not attributes."""
    return UTC_OFFSET.sub(lambda m: f'<span style="white-space:nowrap">{m.group()}</span>', escaped)


# What a URI may hold as written (RFC 3986: unreserved, reserved and "%"); any other
# character is percent-encoded as UTF-8 by :func:`safe_link`.
URI_CHARS = "-._~:/?#[]@!$&'()*+,;=%"


def safe_link(url: str | None) -> str | None:
    """``url`` as an absolute http(s) URI fit to be a link, else None.

    Written as a URI (RFC 3986): the host in IDNA, every character a URI cannot hold as
    written (a space, ``"``, ``<``, ``>``, a letter not in ASCII) percent-encoded; spaces
    around it dropped. A stored URL of quotes or Chinese was printed as it was in the
    plain text, where a client's link ends at the first ``"``, ``<`` or space, or at the
    first Chinese letter (``https://ex.org/a"b`` linked ``https://ex.org/a``), and one
    with a space in its path was no link at all."""
    url = (url or "").strip()
    if not url or len(url) > MAX_URL_CHARS or BREAKS_A_LINE.search(url):
        return None
    try:
        parts = urlsplit(url)
        host = parts.hostname
        port = parts.port
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not host:
        return None
    netloc = parts.netloc
    if not netloc.isascii() or "@" in netloc:
        # A user name and password (rows stored before ingest removed them) are dropped,
        # as ingest drops them: "https://www.example.com:pw@evil.example" reads as the
        # first host and goes to the second.
        host = _ascii_host(host)
        if host is None:
            return None
        netloc = (f"[{host}]" if ":" in host else host) + (f":{port}" if port else "")
    elif any(c.isspace() for c in netloc):
        return None
    rest = url[len(parts.scheme) + 3 + len(parts.netloc) :]
    link = f"{url[: len(parts.scheme)]}://{netloc}{quote(rest, safe=URI_CHARS)}"
    return link if len(link) <= MAX_URL_CHARS else None


def _ascii_host(host: str) -> str | None:
    """``host`` as DNS reads it (IDNA 2008 with UTS 46), None if it cannot be one."""
    if host.isascii():
        return host if all(c.isprintable() and not c.isspace() for c in host) else None
    import idna

    try:
        return str(idna.encode(host, uts46=True).decode("ascii"))
    except (idna.IDNAError, UnicodeError):
        return None


# ---------------------------------------------------------------------------------------
# The message


# Headers whose values hold ``<...>`` that a program reads: an identifier or URIs
# (RFC 2919, RFC 2369), never an RFC 2047 encoded word.
ANGLE_BRACKET_HEADERS = frozenset({"list-id", "list-unsubscribe"})
MAX_HEADER_LINE = 998  # RFC 5322's limit on a line, CRLF aside


class AngleBracketed(str):
    """A header value written as it is, folded only at its spaces. The email package
    folds a header line longer than 78 characters, and a word it cannot break there, such
    as List-Unsubscribe's 80-character ``<mailto:…>``, it wrote as RFC 2047 encoded
    words (``=?utf-8?q?=3Cmailto=3Aleave=40…?=``): no URI to Gmail, Yahoo or Outlook, so
    no unsubscribe button, and no List-Id to filter on. A word that does not fit stays
    whole on a longer line (RFC 5322: a line SHOULD be at most 78 characters and MUST be
    at most 998; the caller keeps the value under). The first word stays on the name's
    line: folded right after the colon, readers such as Python's own kept the fold's
    space in front of the value."""

    name: str

    def __new__(cls, name: str, value: str) -> AngleBracketed:
        header = super().__new__(cls, value)
        header.name = name
        return header

    def fold(self, *, policy: Any) -> str:
        """The header as the email package's generator writes it (``policy.fold``)."""
        width = int(policy.max_line_length or MAX_HEADER_LINE)
        linesep = str(policy.linesep)
        words = self.split() or [""]
        lines = [f"{self.name}: {words[0]}"]
        for word in words[1:]:
            if len(lines[-1]) + 1 + len(word) > width:
                lines.append("")  # folded at a space (RFC 5322 2.2.3)
            lines[-1] += " " + word
        return linesep.join(lines) + linesep


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
            :func:`mediamon.alerts.digest_mail.render_digest_mail`.
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
    # UTF-8 encoded words (RFC 2047) carry the isolates around a right-to-left name.
    message["Subject"] = clean_composed(rendered.subject, 250)
    message["From"] = ascii_sender(sender)
    message["To"] = ", ".join(ascii_domain(r) for r in recipients)
    message["Date"] = format_datetime(sent_at or datetime.now(UTC))
    message["Message-ID"] = message_id or make_msgid(domain=message_id_domain(sender))
    # Tells vacation responders and ticket systems not to answer a machine (RFC 3834);
    # Exchange and Outlook read their own header for it (out-of-office replies, receipts).
    message["Auto-Submitted"] = "auto-generated"
    message["X-Auto-Response-Suppress"] = "All"
    for name, value in (headers or {}).items():
        if name.lower() in ANGLE_BRACKET_HEADERS:
            message[name] = AngleBracketed(name, clean(value, MAX_HEADER_LINE - len(name) - 2))
        else:
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


def ascii_sender(sender: str) -> str:
    """``sender`` (``name <address>`` or an address) with the address's domain in IDNA
    (:func:`ascii_domain`). Written in Unicode, the domain went into the From header as
    an RFC 2047 encoded word (``m@=?utf-8?b?…?=``, no address to any reader), and
    smtplib took it for the envelope sender too: every mail refused by a server without
    SMTPUTF8, and tried again every run."""
    address = parseaddr(sender)[1]
    if not address or address.isascii():
        return sender
    return sender.replace(address, ascii_domain(address))


def ascii_domain(address: str) -> str:
    """``address`` with its domain as DNS and every mail server read it: IDNA 2008 with
    the UTS 46 mapping (``desk@例子.中国`` is ``desk@xn--fsqu00a.xn--fiqs8s``). Written in
    Unicode, the address needs the server's SMTPUTF8, which many relays do not offer:
    smtplib refused the mail, and the recipient's digest was due again, and failed, every
    hour. A local part that is not ASCII still needs SMTPUTF8 (no encoding exists for it);
    a domain IDNA refuses is left as written."""
    local, _, domain = address.rpartition("@")
    if domain.isascii():
        return address
    import idna

    try:
        return f"{local}@{idna.encode(domain, uts46=True).decode('ascii')}"
    except (idna.IDNAError, UnicodeError):
        return address


# A host name as the right side of a Message-ID may hold it (RFC 5322's dot-atom, as DNS
# names are written): letters, digits and hyphens, in labels of 1-63 separated by dots.
HOST_NAME = re.compile(r"(?=.{1,253}$)([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.?)+")


def message_id_domain(sender: str) -> str:
    """The domain of mediamon's Message-IDs: the From address's (``mediamon@例子.中国``
    gives ``xn--fsqu00a.xn--fiqs8s``), lower case, as the mail is the sender domain's;
    a sender without a usable domain falls back to this host's name, as the email
    package does, and ``localhost`` past that. (Every id ended in ``@mediamon.invalid``,
    a domain that cannot exist: spam filters score an id unrelated to the From domain,
    and a reader's client threads nothing on it.)"""
    address = parseaddr(sender)[1]
    domain = ascii_domain(address).rpartition("@")[2].rstrip(".").lower() if "@" in address else ""
    if HOST_NAME.fullmatch(domain):
        return domain
    host = socket.getfqdn().rstrip(".").lower()
    return host if HOST_NAME.fullmatch(host) else "localhost"
