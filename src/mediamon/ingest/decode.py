"""Bytes to text before extraction: HTTP charset, meta charset, UTF-8, then detection.

Chinese pages often declare gb2312 while using characters only GBK/GB18030 have, and
Big5 pages use HKSCS characters; labels are widened to the superset encodings so those
characters decode instead of turning into U+FFFD. A document that declares nothing is
detected, among the Chinese encodings alone when it or its source says it is Chinese.
"""

from __future__ import annotations

import codecs
import logging
import re
from dataclasses import dataclass

from mediamon.ingest import seven_bit
from mediamon.ingest.normalize import primary_language

logger = logging.getLogger(__name__)

# Labels widened to the encoding browsers actually use for them (WHATWG Encoding).
WIDER_ENCODING = {
    "gb2312": "gb18030",
    "gbk": "gb18030",
    "x-gbk": "gb18030",
    "gb_2312-80": "gb18030",
    "csgb2312": "gb18030",
    "chinese": "gb18030",
    "euc-cn": "gb18030",
    "big5": "big5hkscs",
    "big5-hkscs": "big5hkscs",
    "cn-big5": "big5hkscs",
    "x-x-big5": "big5hkscs",
    "iso-8859-1": "cp1252",
    "latin1": "cp1252",
    "latin-1": "cp1252",
    "us-ascii": "cp1252",
    "ascii": "cp1252",
    "utf8": "utf-8",
}
META_SCAN_BYTES = 4096
META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([a-zA-Z0-9_:.-]+)""", re.IGNORECASE)
XML_ENCODING = re.compile(rb"""^\s*<\?xml[^>]+encoding\s*=\s*["']([a-zA-Z0-9_.-]+)""")
BOMS = (
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF32_LE, "utf-32-le"),  # before UTF-16 LE, whose BOM it starts with
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)
# An XML document without a BOM still shows its encoding family in its first bytes,
# "<?" written in UTF-32 or UTF-16 (XML 1.0, appendix F).
XML_START = (
    (b"<\0\0\0", "utf-32-le"),
    (b"\0\0\0<", "utf-32-be"),
    (b"<\0?\0", "utf-16-le"),
    (b"\0<\0?", "utf-16-be"),
)
# Text that is UTF-8 but for a few bad bytes (a truncated character, one stray Latin-1
# byte) is read as UTF-8 with those bytes replaced, when valid multi-byte characters
# outnumber them this many times; a document in another encoding read as UTF-8 has
# more bad sequences than good ones. Re-decoding a whole Chinese feed as a single-byte
# encoding because of one bad byte turned every character into mojibake.
UTF8_REPAIR_RATIO = 20
# When the document or HTTP declares UTF-8, fewer valid characters will do: it is UTF-8
# unless its bad sequences are many of its non-ASCII bytes. Read as UTF-8, a GBK, Big5
# or Shift_JIS document has a bad sequence for nearly every one of them (0.7-1.0); a
# UTF-8 feed with one stray cp1252 byte and a few accents has one for ten. Before, a
# French feed of six accents and one stray byte lost its declaration for the detector,
# which read it as Korean (Caf챕).
UTF8_DECLARED_MAX_BAD = 0.25


@dataclass(frozen=True)
class Decoded:
    """Decoded text and how it was decoded."""

    text: str
    encoding: str
    replaced: int  # U+FFFD characters introduced by decoding


# Python codecs a document may name that are no character encoding of a document: they
# turn "\x00" in the text into a NUL (unicode-escape) or fail on any input (idna,
# undefined). Codecs that are not text encodings at all (rot-13, base64, zlib …) are
# refused by their own flag.
NOT_DOCUMENT_ENCODINGS = frozenset(
    {"idna", "punycode", "undefined", "unicode-escape", "raw-unicode-escape"}
)


def canonical_encoding(label: str | None) -> str | None:
    """Python codec name for a charset label, widened per WIDER_ENCODING; None if unknown
    or not a character encoding a document can be written in."""
    if not label:
        return None
    label = label.strip().strip("\"'").lower()
    label = WIDER_ENCODING.get(label, label)
    try:
        codec = codecs.lookup(label)
    except LookupError:
        return None
    # `_is_text_encoding` is how str.encode itself tells rot-13 from a charset.
    if not getattr(codec, "_is_text_encoding", True) or codec.name in NOT_DOCUMENT_ENCODINGS:
        return None
    return WIDER_ENCODING.get(codec.name, codec.name)


def content_type_charset(content_type: str | None) -> str | None:
    """The charset parameter of a Content-Type header value, if any."""
    for part in (content_type or "").split(";")[1:]:
        key, _, value = part.partition("=")
        if key.strip().lower() == "charset" and value.strip():
            return value.strip().strip("\"'")
    return None


# A media type's essence (RFC 9110 tokens), and a header value's comma-separated parts,
# quoted strings kept whole.
MEDIA_TYPE = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+/[!#$%&'*+.^_`|~0-9A-Za-z-]+")
HEADER_PART = re.compile(r'(?:[^,"]|"(?:[^"\\]|\\.)*"?)+')


def effective_content_type(value: str) -> str:
    """The one Content-Type a header value stands for. A server sending the header twice
    (a CMS's and the web server's, or a proxy's; common enough that browsers read it)
    arrives as one value joined by commas, ``text/html, text/html; charset=gbk``, which
    read as one type was refused for pages (``content type text/html, text/html not
    accepted``: the page lost, the feed's text used) and gave no charset. As the Fetch
    standard reads it: the last valid type wins, keeping an earlier part's charset when
    it is the same type without one of its own; a value without a comma is as it came."""
    if "," not in value:
        return value
    chosen, essence, charset = None, None, None
    for match in HEADER_PART.finditer(value):
        part = match.group().strip()
        kind = part.split(";", 1)[0].strip().lower()
        if not MEDIA_TYPE.fullmatch(kind) or kind == "*/*":
            continue
        own = content_type_charset(part)
        if kind != essence:
            essence, charset = kind, own
        charset = own or charset
        chosen = part if own or not charset else f"{part}; charset={charset}"
    return value if chosen is None else chosen


def declared_charsets(content: bytes, http_charset: str | None, *, xml: bool = False) -> list[str]:
    """Charsets the response declares, most authoritative first (HTTP, then document).

    In an HTML page the meta tag comes before an XML declaration (an XHTML template's,
    which browsers ignore in text/html): a Big5 page whose template said
    ``encoding="gbk"`` and whose meta said big5 was read as GBK, which reads any Big5
    bytes without an error, into mojibake. In a feed (``xml``) only the XML
    declaration counts, as feed readers read it: a meta tag there is an item's HTML's
    (a page carried whole in CDATA), which said big5 in a GBK feed.
    """
    labels: list[str | None] = [http_charset]
    head = content[:META_SCAN_BYTES]
    for pattern in (XML_ENCODING,) if xml else (META_CHARSET, XML_ENCODING):
        match = pattern.search(head)
        if match:
            labels.append(match.group(1).decode("ascii", "replace"))
    # A document in UTF-16 or UTF-32 has NUL bytes in its markup (``<`` is ``<\0``); a
    # label saying so on one without any is a lie (a CMS's template, a server's default):
    # read as UTF-16, a French page in cp1252 became a page of CJK-looking mojibake
    # without one replacement character, so no other charset was tried. WHATWG reads a
    # meta's UTF-16 as UTF-8 for the same reason.
    wide_possible = b"\0" in head
    found: list[str] = []
    for label in labels:
        encoding = canonical_encoding(label)
        if encoding and encoding.startswith(("utf-16", "utf-32")) and not wide_possible:
            continue
        if encoding and encoding not in found:
            found.append(encoding)
    return found


def decode_html(
    content: bytes,
    http_charset: str | None = None,
    *,
    language: str | None = None,
    xml: bool = False,
) -> Decoded:
    """Decode an HTML or XML document.

    Order: a BOM; strict UTF-8 (a long run of valid multi-byte UTF-8 is almost never
    another encoding, and it catches UTF-8 pages mislabelled as GBK; pure ASCII may be
    a 7-bit encoding, see :mod:`mediamon.ingest.seven_bit`); the declared
    charsets (HTTP header, then meta tag and XML declaration, see
    :func:`declared_charsets`); charset detection. The
    first that decodes without error wins; failing that, the one with the fewest
    replacement characters.

    ``language`` is the source's configured language; the document's own (``<html
    lang>``, a feed's ``<language>``, ``xml:lang``) comes before it. A Chinese one has
    the detector choose among the Chinese encodings only: on 20-300 characters of GBK
    it guessed Korean (EUC-KR) or UTF-16 as often as Chinese. ``xml``: the document is
    a feed, whose XML declaration alone declares its charset, not a meta tag.
    """
    for bom, encoding in BOMS:
        if content.startswith(bom):
            text = content[len(bom) :].decode(encoding, "replace")
            return Decoded(text, encoding, text.count("\ufffd"))
    for start, encoding in XML_START:
        if content.startswith(start):
            text = content.decode(encoding, "replace")
            return Decoded(text, encoding, text.count("\ufffd"))
    try:
        text = content.decode("utf-8")
    except UnicodeDecodeError:
        pass
    else:
        if content.isascii():
            declared = declared_charsets(content, http_charset, xml=xml)
            return Decoded(*seven_bit.decode_ascii(content, text, declared))
        return Decoded(text, "utf-8", 0)
    declared = declared_charsets(content, http_charset, xml=xml)
    repaired = _mostly_utf8(content, declared=declared[:1] == ["utf-8"])
    if repaired is not None:
        return repaired
    candidates = [e for e in declared if e != "utf-8"]
    detected = _detect(content, _document_language(content) or language)
    candidates += [e for e in (detected, "gb18030") if e and e not in candidates]
    best: Decoded | None = None
    for encoding in candidates:
        text = content.decode(encoding, "replace")
        decoded = Decoded(text, encoding, text.count("\ufffd"))
        if decoded.replaced == 0:
            return decoded
        if best is None or decoded.replaced < best.replaced:
            best = decoded
    if best is None or best.replaced > 0:
        utf8 = content.decode("utf-8", "replace")
        fallback = Decoded(utf8, "utf-8", utf8.count("\ufffd"))
        if best is None or fallback.replaced < best.replaced:
            best = fallback
    logger.debug("decoded with %d replacement characters as %s", best.replaced, best.encoding)
    return best


def _mostly_utf8(content: bytes, *, declared: bool) -> Decoded | None:
    """UTF-8 with its few bad bytes replaced, if the document is UTF-8 but for them
    (``declared``: the first charset the response declares is UTF-8)."""
    text = content.decode("utf-8", "replace")
    replaced = text.count("\ufffd") - content.count("\ufffd".encode())
    non_ascii = len(text) - len(text.encode("ascii", "ignore")) - replaced
    non_ascii_bytes = len(content) - len(content.translate(None, _NON_ASCII_BYTES))
    if declared and 0 < replaced <= UTF8_DECLARED_MAX_BAD * non_ascii_bytes:
        logger.debug("declared UTF-8 with %d bad byte sequence(s) replaced", replaced)
        return Decoded(text, "utf-8", replaced)
    if replaced > 0 and non_ascii >= UTF8_REPAIR_RATIO * replaced:
        logger.debug("UTF-8 with %d bad byte sequence(s) replaced", replaced)
        return Decoded(text, "utf-8", replaced)
    return None


# charset_normalizer reads this much of the document (the whole of a large one costs
# seconds), from the first byte that is not ASCII: a page whose head (scripts, styles)
# fills the first 64 kB with ASCII was read as ASCII, and its GBK body as cp1252.
DETECT_SAMPLE_BYTES = 65536
_NOT_ASCII = re.compile(rb"[\x80-\xff]")
_NON_ASCII_BYTES = bytes(range(0x80, 0x100))


def _detect(content: bytes, language: str | None = None) -> str | None:
    """The detected encoding; ``language`` (a BCP 47 tag) narrows the choice."""
    from charset_normalizer import from_bytes

    sample = content[:DETECT_SAMPLE_BYTES]
    if sample.isascii() and (found := _NOT_ASCII.search(content, DETECT_SAMPLE_BYTES)):
        sample = content[found.start() : found.start() + DETECT_SAMPLE_BYTES]
    if language and TRADITIONAL_CHINESE.match(language) and _reads_as(sample, "big5hkscs"):
        # Four characters of Big5 read as GBK without an error too, and the detector
        # chose GBK for some (臺灣總統 as 籓芖羆参); a Traditional source is Big5 first.
        return "big5hkscs"
    isolated = LANGUAGE_ENCODINGS.get(primary_language(language) or "")
    if isolated:
        # Only when one of the language's encodings reads the bytes: a source that says
        # zh and serves a Japanese page still gets it detected as Japanese.
        for narrowed in from_bytes(sample, cp_isolation=list(isolated)):
            return canonical_encoding(narrowed.encoding)
    match = from_bytes(sample).best()
    return canonical_encoding(match.encoding) if match else None


# Encodings a document in the language is written in when it declares none; the
# detector, asked to choose among them alone, reads short texts right (it told GBK
# from EUC-KR by character frequencies it cannot gather from 20 characters).
LANGUAGE_ENCODINGS = {"zh": ("gb18030", "big5hkscs")}
# Chinese as written in Taiwan, Hong Kong and Macau, or in Traditional characters.
TRADITIONAL_CHINESE = re.compile(r"zh(?:[-_][a-z0-9]+)*[-_](?:tw|hk|mo|hant)\b", re.IGNORECASE)
# The document's own language, in its first bytes: ``<html lang="zh-CN">``, a feed's
# ``<language>zh-tw</language>`` or ``<dc:language>``, ``xml:lang="zh"``.
DOCUMENT_LANGUAGE = re.compile(
    rb"""<html\b[^>]*?\slang\s*=\s*["']?\s*([a-zA-Z]{2,3}(?:[-_][a-zA-Z0-9]{1,8})*)"""
    rb"""|\sxml:lang\s*=\s*["']\s*([a-zA-Z]{2,3}(?:[-_][a-zA-Z0-9]{1,8})*)"""
    rb"""|<(?:dc:)?language>\s*([a-zA-Z]{2,3}(?:[-_][a-zA-Z0-9]{1,8})*)""",
    re.IGNORECASE,
)


def _document_language(content: bytes) -> str | None:
    """The language tag the document states of itself near its start, if any."""
    match = DOCUMENT_LANGUAGE.search(content[:META_SCAN_BYTES])
    if match is None:
        return None
    tag = next(group for group in match.groups() if group is not None)
    return tag.decode("ascii").lower()


def _reads_as(sample: bytes, encoding: str) -> bool:
    """Whether the bytes are text in ``encoding`` (no byte it cannot read; the sample may
    end inside a character, cut at DETECT_SAMPLE_BYTES)."""
    try:
        codecs.getincrementaldecoder(encoding)().decode(sample, final=False)
    except UnicodeDecodeError:
        return False
    return True
