"""Feed parsing (RSS 2.0, RSS 1.0/RDF, Atom) into plain items, by feedparser.

A feed is decoded by the same decoder as pages (:func:`mediamon.ingest.decode.decode_html`:
BOM, UTF-16/32 without one, UTF-8 with a few bad bytes replaced where they stand, HTTP
charset, XML declaration, detection), and its DTD is removed from the decoded text
before parsing, wherever it stands. Entity declarations can only live in a DTD, so no
reference can expand, whatever the encoding or the comments and processing instructions
around it; the XML parser itself (defusedxml's expat reader) refuses any DTD that would
still arrive, so a way around the removal ends in a refused feed, never an expansion.
"""

from __future__ import annotations

import contextlib
import html
import io
import logging
import re
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from mediamon import limits
from mediamon.ingest.feed_dates import entry_time
from mediamon.ingest.normalize import without_userinfo
from mediamon.ingest.tag_scan import crowded_tag
from mediamon.limits import cap, cap_optional

logger = logging.getLogger(__name__)

MAX_ITEMS = 500
MAX_URL_LENGTH = 2048  # the same cap the fetcher applies (mediamon.ingest.netguard)
NOTE_TITLE_CHARS = 80  # of an item's title, quoted in a note about the item
# Characters expat gathers before handing a text over (its default is 8 KiB; the bytes
# are in memory already, bounded by the size cap).
TEXT_BUFFER_CHARS = 1024 * 1024
# Markup declarations that may define entities: <!DOCTYPE (with its internal subset)
# and, outside one, stray <!ENTITY (invalid XML, but a lenient parser may read it).
DECLARATION = re.compile(r"<!\s*(DOCTYPE|ENTITY)", re.IGNORECASE)
# What matters inside a declaration: quotes, comments, PIs, the internal subset's
# brackets, and the declaration's end (inside the subset, only its end bracket).
DECLARATION_SYNTAX = re.compile(r"""["'\[>]|<!--|<\?""")
SUBSET_SYNTAX = re.compile(r"""["'\]]|<!--|<\?""")
MAX_DECLARATION_TOKENS = 100_000
XML_DECLARATION = re.compile(r"^\s*<\?xml[^>]*\?>")
# Numeric character references. One to a code point XML does not allow (a surrogate, NUL
# or another control, past U+10FFFF) made feedparser raise instead of reporting a bad
# feed, and the source's whole run ended with it.
CHARACTER_REFERENCE = re.compile(r"&#(?:[xX]([0-9a-fA-F]+)|([0-9]+));")
# Shapes whose parsing cost grows with their square in feedparser (attributes and
# namespace declarations are looked up by scanning all of them; an item's tags each
# rescan the item): 100,000 attributes on one tag took 140 s, 100,000 categories in one
# item 240 s. Real feeds stay far below these; a feed beyond them is refused.
MAX_ATTRIBUTES = 256
MAX_NAMESPACES = 256
MAX_ITEM_ELEMENTS = 2_000  # direct children of one item
# feedparser's lenient parser, which recovers items from malformed XML, costs ~70 µs a
# tag (6 MB of tags: 137 s and 1.1 GB); a malformed feed with more tags is refused.
MAX_LENIENT_TAGS = 50_000
# It reads each entity or character reference on its own too, ~9 µs each (1,200,000
# `&lt;` in one description: 10 s; 15 MB of them, half a minute): more are refused.
MAX_LENIENT_REFERENCES = 300_000
ITEM_TAGS = frozenset({"item", "entry"})
# Elements feedparser reads cost ~40 µs each wherever they stand: 15 MB of "<a/>" (3.7
# million elements outside any item, or in one item's child, where MAX_ITEM_ELEMENTS does
# not look) took 185 s and 1 GB. Real feeds have 10 to 25 an item, 500 items of Atom
# XHTML articles about 100,000; elements of the items dropped before feedparser reads
# them (see MAX_PARSED_PER_KEPT) do not count.
MAX_FEED_ELEMENTS = 500_000
# feedparser reads every item (~0.2 ms each: 100,000 tiny items took 19 s) though at most
# max_items are kept: items past this many times max_items are dropped before it reads
# them (room for the items skipped for a bad link or a repeat).
MAX_PARSED_PER_KEPT = 4


# A tag in a title: "<" then a letter, "/" or "!" and no other "<" or ">" up to its ">"
# (linear; "5 < 6 > 4" is no tag).
MARKUP_TAG = re.compile(r"<[A-Za-z/!][^<>]*>")


class FeedError(ValueError):
    """The document is not a usable feed."""


@dataclass(frozen=True)
class FeedItem:
    """One entry of a feed, or one archived item; HTML fields are as the feed gave them."""

    link: str
    title: str | None = None
    published_at: datetime | None = None
    author: str | None = None
    summary_html: str | None = None
    content_html: str | None = None
    language: str | None = None
    categories: tuple[str, ...] = field(default_factory=tuple)
    guid: str | None = None  # RSS guid / Atom id: which item this is, whatever its link


@dataclass(frozen=True)
class ParsedFeed:
    items: list[FeedItem]
    skipped: list[str]  # why entries were left out, for the fetch log
    title: str | None = None


def parse_feed(
    content: bytes,
    url: str,
    content_type: str | None = None,
    *,
    max_items: int = MAX_ITEMS,
    language: str | None = None,
) -> ParsedFeed:
    """Parse a feed document.

    Entries without a usable link (none, not http(s), too long), repeats of an earlier
    entry's link and entries past ``max_items`` are left out; ``skipped`` says why.

    Args:
        content: The raw bytes, decoded here like a page (see the module documentation).
        url: The feed's URL, to resolve relative links.
        content_type: The HTTP Content-Type header, if any.
        max_items: Keep at most this many items (the first ones, usually the newest).
        language: The source's configured language, a hint for an undeclared charset.

    Raises:
        FeedError: the document is not XML, is not a feed, or has no usable entries.
    """
    import feedparser
    import feedparser.api
    from defusedxml import DefusedXmlException

    from mediamon.ingest import feed_authors
    from mediamon.ingest.decode import content_type_charset, decode_html

    decoded = decode_html(content, content_type_charset(content_type), language=language, xml=True)
    text, declarations = without_declarations(decoded.text)
    text = valid_character_references(text)
    # The text is handed over as UTF-8 saying so: feedparser must not decode it again.
    data = ('<?xml version="1.0" encoding="utf-8"?>' + XML_DECLARATION.sub("", text)).encode()
    data, removed = within_limits(data, keep=MAX_PARSED_PER_KEPT * max_items)
    headers = {"content-location": url, "content-type": "application/xml; charset=utf-8"}
    # The strict parser is defusedxml's expat reader (see create_parser below).
    feedparser.api.PREFERRED_XML_PARSERS = [__name__]
    feed_authors.install()  # its search of an author's text for an address is quadratic
    try:
        # No sanitizing, no absolute links: mediamon keeps only the text of an item's
        # HTML, read later by the extraction (under its limits), which drops scripts and
        # styles itself. feedparser did both in this process for every item: 50,000
        # links in one description took 3.3 s, a 1 MB style attribute held 200 MB.
        parsed = feedparser.parse(
            data, response_headers=headers, sanitize_html=False, resolve_relative_uris=False
        )
    except DefusedXmlException as error:  # a DTD got past without_declarations
        raise FeedError(f"feed declares a DTD or entities; refused: {error}") from error
    except Exception as error:  # noqa: BLE001 - feedparser's own failure on odd input
        # One source's feed, never the run: the poll fails with this line.
        raise FeedError(f"feed could not be parsed: {type(error).__name__}: {error}") from error
    if not parsed.entries:
        if not parsed.get("version"):
            problem = f": {parsed.bozo_exception}" if parsed.bozo else ""
            raise FeedError(f"not a feed: no RSS or Atom root element{problem}")
        if parsed.bozo:
            raise FeedError(f"malformed feed: {parsed.bozo_exception}")
        raise FeedError("feed has no items")
    feed_language = parsed.feed.get("language")
    items: list[FeedItem] = []
    skipped: list[str] = []
    if declarations:
        skipped.append(
            "feed declares a DTD or XML entities; removed before parsing, nothing expanded"
        )
    if decoded.replaced:
        skipped.append(
            f"feed has {decoded.replaced} undecodable byte sequence(s) in {decoded.encoding};"
            " shown as U+FFFD where they stand"
        )
    if parsed.bozo:
        # feedparser's lenient parser recovered entries from invalid XML: keep them, say so.
        skipped.append(
            f"malformed feed, {len(parsed.entries)} items recovered: {parsed.bozo_exception}"
        )
    seen: set[str] = set()
    for index, entry in enumerate(parsed.entries):
        if len(items) >= max_items:
            past = len(parsed.entries) - index + removed
            skipped.append(f"{past} items past the cap of {max_items}")
            break
        # Notes quote the title, cut: they go to the fetch log, the run's summary and its
        # WARNING line, and 20 items of 600 kB titles without a link made a 12 MB summary.
        title = cap(str(entry.get("title") or "untitled"), NOTE_TITLE_CHARS)
        raw_link = entry.get("link") or (entry.get("id") if entry.get("guidislink") else None)
        usable = _link(entry)
        if not usable:
            if isinstance(raw_link, str) and raw_link.strip():
                written = raw_link.strip()[:80]
                skipped.append(
                    f"item {index} ({title!r}) link {written!r} is not a valid http(s) URL"
                )
            else:
                skipped.append(f"item {index} ({title!r}) has no link")
            continue
        link, had_userinfo = usable
        if len(link) > MAX_URL_LENGTH:
            skipped.append(
                f"item {index} ({title!r}) link is longer than {MAX_URL_LENGTH} characters"
            )
            continue
        if had_userinfo:
            skipped.append(f"item {index} ({title!r}) link had a user name or password; removed")
        if link in seen:
            skipped.append(f"item {index} ({title!r}) repeats an earlier item's link {link}")
            continue
        seen.add(link)
        published_at, date_problem = entry_time(entry)
        if date_problem:
            skipped.append(f"item {index} ({title!r}) {date_problem}; first-seen time used")
        feed_item = _capped(
            FeedItem(
                link=link,
                title=plain_title(entry.get("title")),
                published_at=published_at,
                author=entry.get("author") or None,
                summary_html=entry.get("summary") or None,
                content_html=_content(entry),
                language=(entry.get("language") or feed_language) or None,
                categories=tuple(t["term"] for t in entry.get("tags", []) if t.get("term")),
                guid=entry.get("id") or None,
            )
        )
        if decoded.replaced and "\ufffd" in " ".join(
            filter(None, (feed_item.title, feed_item.summary_html, feed_item.content_html))
        ):
            skipped.append(f"item {index} ({title!r}) has undecodable bytes (shown as U+FFFD)")
        items.append(feed_item)
    if removed and len(items) < max_items:
        skipped.append(f"{removed} items past the first {len(parsed.entries)} not read")
    if not items:
        raise FeedError("feed has no usable items: " + "; ".join(skipped)[:500])
    return ParsedFeed(items=items, skipped=skipped, title=parsed.feed.get("title"))


def valid_character_references(text: str) -> str:
    """``text`` with every numeric character reference XML allows kept as written, the
    two UTF-16 halves of one character that old CMSs write (``&#55357;&#56832;``)
    joined into it, and any other (a lone half, NUL, a control, past U+10FFFF) written
    as U+FFFD."""
    if "&#" not in text:
        return text

    def replace(match: re.Match[str]) -> str:
        digits = match.group(1) or match.group(2)
        if len(digits.lstrip("0")) > 7:  # past U+10FFFF in either base; int() not needed
            return "&#xFFFD;"
        code = int(digits, 16 if match.group(1) else 10)
        if 0xD800 <= code <= 0xDFFF:
            return chr(code)  # a half: joined with its other half below, or replaced
        if code in (0x9, 0xA, 0xD) or 0x20 <= code <= 0xFFFD or 0x10000 <= code <= 0x10FFFF:
            return match.group()
        return "&#xFFFD;"

    halves = CHARACTER_REFERENCE.sub(replace, text)
    # UTF-16 round trip: a high half followed by a low half is one character again; a
    # lone half becomes U+FFFD (the decoder's "replace").
    return halves.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")


# Comments and PIs are tree nodes read by nobody: 15 MB of "<!---->" built 2 million,
# 457 MB at the peak against 168 MB for as much text. The trees here leave them out.
WITHOUT_COMMENTS = {"remove_comments": True, "remove_pis": True}


def within_limits(data: bytes, keep: int) -> tuple[bytes, int]:
    """The feed document as feedparser may read it, and how many items were dropped from
    it (those past the first ``keep``, when it is well-formed XML).

    Raises:
        FeedError: its shape would cost feedparser minutes (see MAX_ATTRIBUTES,
            MAX_LENIENT_TAGS).
    """
    from lxml import etree

    # Elements are at most the tags, namespace declarations at most the "xmlns" written,
    # both counted in C; only a document that may pass a bound is read for them, by a
    # parser that builds no tree (the tree of 3.7 million elements alone is 400 MB).
    tags = _outside_cdata(data, b"<")
    counted = None
    if tags > MAX_FEED_ELEMENTS or data.count(b"xmlns") > MAX_NAMESPACES:
        counted = _count_read(data, keep)
        if counted.elements > MAX_FEED_ELEMENTS:
            raise FeedError(
                f"feed refused: more than {MAX_FEED_ELEMENTS:,} elements for feedparser to"
                f" read (in its first {keep:,} items and outside items)"
            )
    # Counted on the bytes first: lxml's tree leaves out a start tag over 10 MB.
    if crowded := crowded_tag(data, MAX_ATTRIBUTES):
        raise FeedError(f"feed refused: {crowded}")
    root, well_formed, removed = _kept_items_tree(data, keep)
    if not well_formed and tags > MAX_LENIENT_TAGS:
        raise FeedError(
            f"feed refused: malformed XML with {tags:,} tags, too many to recover items from"
            f" (at most {MAX_LENIENT_TAGS:,})"
        )
    if not well_formed and (references := _outside_cdata(data, b"&")) > MAX_LENIENT_REFERENCES:
        raise FeedError(
            f"feed refused: malformed XML with {references:,} entity references, too many"
            f" to recover items from (at most {MAX_LENIENT_REFERENCES:,})"
        )
    if not well_formed:
        # feedparser's lenient parser reads the whole document, dropped items included:
        # all of it is checked (its tree is small: at most MAX_LENIENT_TAGS elements).
        parser = etree.XMLParser(
            recover=True, resolve_entities=False, no_network=True, load_dtd=False,
            huge_tree=False, **WITHOUT_COMMENTS,
        )  # fmt: skip
        try:
            root, removed = etree.fromstring(data, parser), 0
        except etree.XMLSyntaxError:  # nothing XML in it ("Document is empty")
            root = None
    if root is None:
        return data, 0  # nothing XML in it: feedparser says what is wrong
    # An element's nsmap would be rebuilt from all its ancestors' declarations, costing
    # their number times the elements.
    if counted is not None and counted.namespaces > MAX_NAMESPACES:
        raise FeedError(f"feed refused: more than {MAX_NAMESPACES} namespace declarations")
    if refused := _costly_element(root):
        raise FeedError(f"feed refused: {refused}")
    if not removed:
        return data, 0
    return etree.tostring(root, encoding="utf-8", xml_declaration=True), removed


def _kept_items_tree(data: bytes, keep: int) -> tuple[Any, bool, int]:
    """``data`` as lxml reads it (in C, in linear time): its tree without the items past
    the first ``keep`` (None if nothing in it is XML), whether it is well-formed, and
    how many items were dropped.

    The document is read as a stream and each item past those kept is dropped as soon
    as it ends, so the tree held is the kept items', whatever the feed's length (the
    whole tree was built before: a 13 MB feed of 7,000 Atom items peaked at 251 MB here,
    now 106 MB, for the 2,000 items feedparser reads). recover: a malformed feed is read as
    far as it goes, as feedparser's lenient parser will read it."""
    from lxml import etree

    # Only the items' events reach Python (lxml filters by tag in C).
    events = etree.iterparse(
        io.BytesIO(data), events=("start", "end"), tag=[f"{{*}}{t}" for t in ITEM_TAGS],
        recover=True, resolve_entities=False, no_network=True, load_dtd=False,
        huge_tree=False, **WITHOUT_COMMENTS,
    )  # fmt: skip
    items = 0
    dropping: list[Any] = []  # the items past those kept that are open, innermost last
    try:
        for event, item in events:
            if event == "start":
                items += 1
                if items > keep:
                    dropping.append(item)
            elif dropping and dropping[-1] is item:
                dropping.pop()
                parent = item.getparent()
                item.clear()
                if parent is not None:
                    parent.remove(item)
    except etree.XMLSyntaxError:
        pass  # nothing XML in it, or recovery gave up: the root (if any) says which
    well_formed = not events.error_log.filter_from_errors()
    return events.root, well_formed, max(items - keep, 0)


def _costly_element(root: Any) -> str | None:
    """Why an element of the tree would cost feedparser minutes, or None."""
    from lxml import etree

    for element in root.iter(etree.Element):  # elements only: no comments or PIs
        name = element.tag.rpartition("}")[2]
        if len(element.attrib) > MAX_ATTRIBUTES:
            return f"<{name}> has {len(element.attrib):,} attributes (at most {MAX_ATTRIBUTES})"
        # Its direct children (categories, links …): an Atom entry's XHTML content is
        # one child however long the article.
        # len() counts comments and processing instructions too, which feedparser
        # skips at no cost: an item of 2,001 comments refused the whole feed.
        if name in ITEM_TAGS and len(element) > MAX_ITEM_ELEMENTS:
            children = sum(1 for _ in element.iterchildren(etree.Element))
            if children > MAX_ITEM_ELEMENTS:
                return f"one <{name}> holds {children:,} elements (at most {MAX_ITEM_ELEMENTS:,})"
    return None


class _Counted(Exception):
    """Raised by :class:`_Counter` to stop the parse: the count is over its bound."""


class _Counter:
    """An lxml parser target (no tree is built) counting namespace declarations and the
    elements feedparser would read: none inside the items past the first ``keep``. It
    stops the parse once there are more than MAX_FEED_ELEMENTS."""

    def __init__(self, keep: int) -> None:
        self.keep = keep
        self.items = self.elements = self.namespaces = self.depth = 0
        self.skipped_from: int | None = None  # the depth of an item past those kept

    def start_ns(self, prefix: str | None, uri: str) -> None:
        self.namespaces += 1

    def start(self, tag: str, attrib: Any) -> None:
        self.depth += 1
        if self.skipped_from is not None:
            return
        if tag.rpartition("}")[2] in ITEM_TAGS:
            self.items += 1
            if self.items > self.keep:
                self.skipped_from = self.depth
                return
        self.elements += 1
        if self.elements > MAX_FEED_ELEMENTS:
            raise _Counted

    def end(self, tag: str) -> None:
        if self.skipped_from == self.depth:
            self.skipped_from = None
        self.depth -= 1

    def close(self) -> None:
        return None


def _count_read(data: bytes, keep: int) -> _Counter:
    """The namespace declarations of ``data`` and the elements feedparser would read
    (the count stops past MAX_FEED_ELEMENTS)."""
    from lxml import etree

    counter = _Counter(keep)
    parser = etree.XMLParser(
        target=counter, recover=True, resolve_entities=False, no_network=True,
        load_dtd=False, huge_tree=False,
    )  # fmt: skip
    # Nothing XML in it: the tree's own reading says what is wrong.
    with contextlib.suppress(_Counted, etree.XMLSyntaxError):
        etree.fromstring(data, parser)
    return counter


def _outside_cdata(data: bytes, mark: bytes) -> int:
    """How many ``mark`` stand outside CDATA sections: ``<`` the tags, ``&`` the
    references feedparser's lenient parser reads one by one (a CDATA section's HTML is
    one piece of text to it). One pass: an unterminated section takes the rest of the
    document."""
    found, position = 0, 0
    while (start := data.find(b"<![CDATA[", position)) >= 0:
        found += data.count(mark, position, start)
        end = data.find(b"]]>", start + 9)
        if end < 0:
            return found
        position = end + 3
    return found + data.count(mark, position)


def create_parser(*args: Any, **kwargs: Any) -> Any:
    """The SAX parser feedparser uses for feeds (``xml.sax.make_parser`` calls this by
    module name): expat that refuses any DTD, entity declaration or external reference,
    and hands over a text in one piece.

    Expat reports every entity reference and every line of a text as a piece of its own,
    and feedparser spends about 20 µs on each: a feed of 15 MB of ``&lt;`` (or of short
    lines) in one description was 3.75 million pieces, a minute of the ingest thread's
    CPU, where 15 MB of plain text is a few seconds. Expat's ``buffer_text`` joins them."""
    from defusedxml.expatreader import DefusedExpatParser

    class TextInOnePiece(DefusedExpatParser):  # type: ignore[misc]
        def reset(self) -> None:
            super().reset()
            self._parser.buffer_text = True
            self._parser.buffer_size = TEXT_BUFFER_CHARS

    return TextInOnePiece(*args, forbid_dtd=True, **kwargs)


def without_declarations(text: str) -> tuple[str, int]:
    """``text`` without any ``<!DOCTYPE …>`` (internal subset included) or stray
    ``<!ENTITY …>`` declaration, wherever it stands; and how many were removed.

    Quoted strings, comments and processing instructions inside a declaration are
    skipped as a unit, so a ``]`` or ``>`` inside them does not end it early; a
    declaration that never ends takes the rest of the document with it (the feed is
    then refused, never expanded). Each declaration is replaced by a space, so the
    pieces around it cannot join into a new ``<!DOCTYPE``; one pass, linear in the text.
    """
    pieces: list[str] = []
    position = 0
    while match := DECLARATION.search(text, position):
        pieces.append(text[position : match.start()])
        position = _declaration_end(text, match.end())
    if not pieces:
        return text, 0
    return " ".join([*pieces, text[position:]]), len(pieces)


def _declaration_end(text: str, position: int) -> int:
    """Index just past the ``>`` that closes the declaration whose body starts at
    ``position`` (its ``[ … ]`` internal subset, quotes, comments and PIs skipped). A
    declaration that does not end, or takes more than MAX_DECLARATION_TOKENS steps
    (real DTDs take dozens), runs to the end of the text."""
    in_subset = False
    for _ in range(MAX_DECLARATION_TOKENS):
        pattern = SUBSET_SYNTAX if in_subset else DECLARATION_SYNTAX
        match = pattern.search(text, position)
        if match is None:
            break
        token = match.group()
        position = match.end()
        closing = {'"': '"', "'": "'", "<!--": "-->", "<?": "?>"}.get(token)
        if closing is not None:
            close = text.find(closing, position)
            if close < 0:
                break
            position = close + len(closing)
        elif token in "[]":
            in_subset = token == "["
        else:  # ">" outside the subset
            return position
    return len(text)


def _capped(item: FeedItem) -> FeedItem:
    """The item with every field cut to the caps of :mod:`mediamon.limits`."""
    return replace(
        item,
        title=cap_optional(item.title, limits.MAX_TITLE_CHARS),
        author=cap_optional(item.author, limits.MAX_AUTHOR_CHARS),
        summary_html=cap_optional(item.summary_html, limits.MAX_FEED_HTML_CHARS),
        content_html=cap_optional(item.content_html, limits.MAX_FEED_HTML_CHARS),
        language=cap_optional(item.language, 35),  # the longest sensible BCP 47 tag
        guid=cap_optional(item.guid, limits.MAX_URL_CHARS),  # often a URL; only hashed
        categories=tuple(
            cap(c, limits.MAX_CATEGORY_CHARS) for c in item.categories[: limits.MAX_CATEGORIES]
        ),
    )


def _link(entry: Any) -> tuple[str, bool] | None:
    """The entry's link as :func:`usable_link` keeps it."""
    link = entry.get("link")
    if not link and entry.get("guidislink"):
        link = entry.get("id")
    return usable_link(link) if isinstance(link, str) else None


def usable_link(link: str) -> tuple[str, bool] | None:
    """An item's http(s) link without user name and password, if the fetcher could use
    it, and whether it had them; None if not. netguard's syntax check (a port of 99999
    or "abc", a control character, no host) runs on the link as kept: one it would
    refuse made URL canonicalization raise outside any one item's handling, and checked
    before the user name went, ``http://[::1]@-]/p`` passed and left ``http://-]/p``.
    The length is checked by the caller, with its own note."""
    from mediamon.ingest.netguard import BlockedURL, check_url_syntax

    # A scheme is case-insensitive (RFC 3986 §3.1): "Http://" and "HTTP://", as editors
    # type them, were skipped as no http(s) URL (the item lost); kept in lower case.
    scheme, colon, rest = link.strip().partition(":")
    link = f"{scheme.lower()}{colon}{rest}"
    if not link.startswith(("http://", "https://")):
        return None
    try:
        link, had_userinfo = _without_userinfo(link)
        check_url_syntax(link, check_length=False)
    except (BlockedURL, ValueError):  # ValueError: a netloc urlsplit cannot read
        return None
    return link, had_userinfo


def plain_title(title: Any) -> str | None:
    """A title as text. Feeds escape markup once too often (``&amp;lt;b&amp;gt;``,
    ``AT&amp;amp;T``, ``<![CDATA[AT&amp;T]]>``), so feedparser's title can still hold
    tags and entity references: shown as typed in mails, BI and the page they read
    ``<b>Bold</b> news`` and ``AT&amp;T``. References are read once more, then tags
    dropped (readers do the same: Miniflux, Google Alerts). An archive's ``[title](url)``
    line is Markdown, whose inline text reads references and tags alike."""
    if not isinstance(title, str) or not title:
        return None
    if "&" in title:
        title = html.unescape(title)
    if "<" in title:
        title = MARKUP_TAG.sub("", title)
    return title or None


def _without_userinfo(link: str) -> tuple[str, bool]:
    """``link`` without a user name and password, and whether it had them. A feed's
    ``https://www.example.com@evil.example/`` leads to evil.example: shown whole, in
    mail and BI, it reads as the first host (and credentials were sent to the second)."""
    kept = without_userinfo(link)
    return kept, kept != link


def _content(entry: Any) -> str | None:
    """The longest full-content block (content:encoded, Atom content)."""
    blocks = [c.get("value", "") for c in entry.get("content", [])]
    blocks = [b for b in blocks if b and b.strip()]
    return max(blocks, key=len) if blocks else None
