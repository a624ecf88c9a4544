"""What a page's bytes are, whatever its Content-Type says: binary, or a redirect stub.

A CMS serving its attachments as ``text/html`` (a PDF of a ministry's report, a press
photo, a zipped dossier linked from a feed), or a server sending no type at all, hands
the extractor bytes that are no text: decoded, they read as 100 kB of random CJK
characters (the detector takes high bytes for GBK), which were stored as the article in
place of the feed's clean text and matched against the topics. The rules are those of
the WHATWG MIME Sniffing standard: the signatures of §6 (images, audio and video,
archives, PDF and PostScript) and, for the rest, §7.1's binary data bytes in
the resource header, which no text holds.
"""

from __future__ import annotations

import codecs
import re

from mediamon.ingest.decode import XML_START

# The resource header the standard reads (§5.2): enough for every signature.
HEADER_BYTES = 1445

# (signature, what it is), each at the body's start. Signatures of letters alone that a
# text may start with ("BM", "ID3", "OTTO") are left to the binary bytes their files
# hold in the header; RIFF and MP4 boxes, with bytes of any value, are read below.
SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"%PDF-", "a PDF document"),
    (b"%!PS-Adobe-", "a PostScript document"),
    (b"\x89PNG\r\n\x1a\n", "a PNG image"),
    (b"GIF87a", "a GIF image"),
    (b"GIF89a", "a GIF image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"II*\x00", "a TIFF image"),
    (b"MM\x00*", "a TIFF image"),
    (b"PK\x03\x04", "a ZIP archive (or an Office document)"),
    (b"\x1f\x8b\x08", "gzip data"),
    (b"Rar!\x1a\x07", "a RAR archive"),
    (b"7z\xbc\xaf\x27\x1c", "a 7-Zip archive"),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "an old Office document"),
    (b"OggS\x00", "an Ogg file"),
    (b"\x1a\x45\xdf\xa3", "a WebM or Matroska video"),
)

# §7.1: bytes no text holds (tab, line feed, form feed, carriage return and escape are
# text). The standard takes one for binary; real pages hold a few (a 2005 Yahoo China
# page of the corpora separates ad fields with 0x02: 17 in its header, 1.2 %), while
# compressed or encrypted data, of bytes of every value, holds them at 30 in 256 (12 %).
# More than one in twenty of the header's bytes is binary.
BINARY_DATA_BYTES = frozenset([*range(0x00, 0x09), 0x0B, *range(0x0E, 0x1B), *range(0x1C, 0x20)])
UNICODE_BOMS = (codecs.BOM_UTF8, codecs.BOM_UTF16_BE, codecs.BOM_UTF16_LE)


def binary_kind(content: bytes, charset: str | None = None) -> str | None:
    """What ``content`` is when it is no text (``"a PDF document"``, ``"binary data"``),
    else None. A body starting with a byte order mark or an XML declaration in UTF-16 or
    UTF-32, or sent with such a charset (whose characters hold such bytes), is text."""
    head = content[:HEADER_BYTES]
    for signature, kind in SIGNATURES:
        if head.startswith(signature):
            return kind
    if head[:4] == b"RIFF" and head[8:12] in (b"WEBP", b"WAVE", b"AVI "):
        return {b"WEBP": "a WebP image", b"WAVE": "a WAV audio file"}.get(
            head[8:12], "an AVI video"
        )
    if head[4:8] == b"ftyp":
        return "an MP4 video or audio file"
    if head.startswith(UNICODE_BOMS) or head.startswith(tuple(s for s, _ in XML_START)):
        return None  # decode_html reads these as UTF-16 or UTF-32, whose text holds NULs
    if "utf-16" in (charset or "").lower() or "utf-32" in (charset or "").lower():
        return None
    binary = sum(1 for byte in head if byte in BINARY_DATA_BYTES)
    return "binary data" if binary * 20 > len(head) else None


# A redirect written into a page: <meta http-equiv="refresh" content="0; url=/story">,
# as aggregators' and Chinese CMSs' tracking links answer (a stub of a few hundred
# bytes). Read only in the first bytes of the page, as a stub holds it; a page that
# reloads itself or sends its reader on after more than REFRESH_FOLLOWED_S is a page.
REFRESH_SCAN_BYTES = 8192
REFRESH_FOLLOWED_S = 5
_META_TAG = re.compile(rb"<meta\b[^>]*>", re.IGNORECASE)
_ATTRIBUTE = re.compile(
    rb"""([a-zA-Z-]+)\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s"'>]+))""", re.IGNORECASE
)
# The HTML standard's shared declarative refresh steps: a delay, then ; or , and url=.
# Possessive: the delay's digits split between the two runs were tried every way, with
# the square of their number (8,000 digits and an "x": 1.5 s).
_REFRESH_CONTENT = re.compile(
    r"""\s*+(\d++)[\d.]*+\s*+(?:[;,]\s*+(?:url\s*+=\s*+)?(["']?)(.*))?$""",
    re.IGNORECASE | re.DOTALL,
)


def refresh_target(content: bytes) -> str | None:
    """The URL a page's ``<meta http-equiv="refresh">`` sends its reader to at once
    (within REFRESH_FOLLOWED_S), as written (relative or not), or None."""
    for tag in _META_TAG.finditer(_applied_markup(content[:REFRESH_SCAN_BYTES])):
        attributes = {
            name.lower(): next((v for v in values if v), b"")
            for name, *values in _ATTRIBUTE.findall(tag.group())
        }
        if attributes.get(b"http-equiv", b"").strip().lower() != b"refresh":
            continue
        raw = attributes.get(b"content", b"")
        text = raw.decode("utf-8") if raw.isascii() or _is_utf8(raw) else raw.decode("latin-1")
        found = _REFRESH_CONTENT.match(text)
        if found is None or found.group(3) is None:
            return None
        delay = found.group(1).lstrip("0")  # a delay of 5,000 digits is no int() to read
        if len(delay) > 3 or int(delay or "0") > REFRESH_FOLLOWED_S:
            return None
        quote, url = found.group(2), found.group(3)
        if quote and quote in url:
            url = url[: url.index(quote)]
        return url.strip() or None
    return None


def _applied_markup(head: bytes) -> bytes:
    """``head`` without its comments and ``<noscript>`` blocks, whose tags a browser
    does not apply: news pages send old browsers on with a refresh in an IE conditional
    comment (``<!--[if lte IE 8]><meta http-equiv="refresh" content="0; url=/upgrade.htm">``,
    qq.com; CNN's likewise), which is no redirect of the page."""
    lower = head.lower()
    kept: list[bytes] = []
    at = 0
    while True:
        comment, noscript = lower.find(b"<!--", at), lower.find(b"<noscript", at)
        if comment < 0 and noscript < 0:
            kept.append(head[at:])
            break
        start = comment if noscript < 0 or 0 <= comment < noscript else noscript
        kept.append(head[at:start])
        end_marker = b"-->" if start == comment else b"</noscript"
        end = lower.find(end_marker, start + 4)
        if end < 0:  # left open: the rest is inside it
            break
        at = end + len(end_marker)
    return b"".join(kept)


def _is_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True
