"""Candidate article texts of one page, from more than one extractor, on one parse.

The page is parsed once; each extractor works on that tree (trafilatura copies it
itself, readability-lxml gets a copy of its own, since it rewrites the tree it reads):

* ``precision``: trafilatura in precision mode, ``fast`` (without its readability and
  jusText comparison): on news pages it keeps the article and drops the "related
  news", comment and footer blocks balanced mode often appends;
* ``readability``: readability-lxml's article block: it scores blocks by their text and
  commas rather than trafilatura's markup rules, so where one of the two picks the wrong
  block the other usually does not;
* ``balanced``: trafilatura's default mode, run only when neither of the two above
  found any text (see :mod:`mediamon.ingest.choose`).

Besides the texts, :func:`link_texts` collects what the page says inside links: the
navigation, lists of other articles and tag clouds are link text, an article's
paragraphs are not. The chooser uses it as the link density of a candidate's lines.
"""

from __future__ import annotations

import copy
import logging
import re
from collections.abc import Sequence
from functools import lru_cache
from itertools import islice
from typing import Any

from mediamon.ingest.choose import is_credit

logger = logging.getLogger(__name__)

# Links whose text is shorter than this are buttons and tags, never an article line.
_MIN_LINK_TEXT = 4
_SPACE = re.compile(r"\s+")
# Class or id names readability weighs down on top of its own list ("comment", "footer",
# "sidebar"...: 25 points off an element's score; a div, list or table whose score falls
# below zero is dropped from the article): "author", the box with the author's name and
# photo that some sites put under the article ("news-author"), which readability kept as
# part of the article's block. Passed as readability's own negative_keywords option (the
# bench's readability peer runs without it). trafilatura drops such blocks too ("author"
# is among its discarded class and id names). Such elements are also removed from the
# block readability chooses (FastDocument.sanitize). Chosen by cross-validation: see
# docs/extraction.md.
_NOT_ARTICLE_CLASSES = re.compile("author", re.IGNORECASE)
# Class or id names of the blocks that hold readers' comments: a comment list, a reply
# form, a discussion widget. "commentary" is a kind of article, not a comment.
_COMMENT_NAMES = re.compile(r"comment(?!ar)|disqus|\brepl(?:y|ies)|respond", re.IGNORECASE)
# The text of a page's comment blocks kept at most (the chooser compares less still:
# choose.MAX_COMPARED_CHARS).
MAX_COMMENT_CHARS = 200_000
_READABILITY_BLOCKS = frozenset(
    {"p", "div", "br", "li", "h1", "h2", "h3", "h4", "h5", "h6", "tr", "blockquote", "pre"}
)


def parse(html: str) -> Any:
    """The page's lxml tree, shared by every extractor, or None.

    trafilatura refuses a document that does not start like HTML and parses to a single
    element (a page behind junk or a wrapper element, a fragment); such a document is
    parsed again inside ``<html><body>``.
    """
    try:
        tree = _load_html(html)
        if tree is None and "<" in html:
            tree = _load_html(f"<html><body>{html}</body></html>")
    except Exception:
        logger.warning("unparsable HTML", exc_info=True)
        return None
    # Every element of the tree but the few the parser implies (html, body, p) comes from
    # a "<" of the page: a page of no more than MAX_PARAGRAPH_ELEMENTS has no crowded
    # paragraphs, and no row whose cells cost much (4,000 cells: some 35 ms). Most pages
    # (the count is in C) skip the two walks of the tree, 0.35 ms a parse.
    if tree is not None and html.count("<") > MAX_PARAGRAPH_ELEMENTS:
        _split_crowded_paragraphs(tree)
        _split_long_rows(tree)
        _thin_trailing_headings(tree)
    return tree


def parse_was_cut() -> str | None:
    """Why the last :func:`parse` stopped before the page's end, or None. libxml2 stops
    reading a page nested deeper than 256 elements (unclosed ``<font>`` or ``<div>`` of
    old CMS pages; its option for more, XML_PARSE_HUGE, does not lift it for HTML): the
    text before that point is all the extractors see. It also stops at a text or an
    attribute value of more than 10,000,000 characters (its buffer limit, the same
    error): a 10 MB paragraph of a page under the 15 MB cap was reported as nesting."""
    for error in _parser().error_log:
        if error.type_name == "ERR_RESOURCE_LIMIT":
            if "depth" in error.message:
                return "nested deeper than 256 elements: its text after that point was not read"
            return (
                "holds a text or attribute value of more than 10,000,000 characters:"
                " its text from there on was not read"
            )
    return None


# trafilatura counts a table row's cells again for each cell it adds (lxml's len() walks
# the children): a row of 40,000 cells cost 3.4 s, of 49,900 5.8 s. The pages of the
# corpora have at most 41 cells in a row; a row of more is split into rows of this many.
MAX_ROW_CELLS = 250


def _split_long_rows(tree: Any) -> None:
    """Every <tr> of more than MAX_ROW_CELLS children split into rows of that many (of
    the same attributes): the same cells in the same order."""
    for row in [row for row in tree.iter("tr") if len(row) > MAX_ROW_CELLS]:
        _split_children(row, MAX_ROW_CELLS)


def _split_children(element: Any, size: int) -> None:
    """The element's children moved, ``size`` at a time, into siblings of its tag and
    attributes that follow it; its tail goes after the last."""
    children, tail = list(element), element.tail
    element.tail = None
    previous = element
    for start in range(size, len(children), size):
        part = element.makeelement(element.tag, element.attrib)
        part.extend(children[start : start + size])  # their tails go along
        previous.addnext(part)
        previous = part
    previous.tail = tail


# trafilatura in precision mode deletes the headings an element ends with one at a time,
# counting the element's children again for each (lxml's len() walks them): an article
# ending in 40,000 <h1> cost 9 s, with text after each 29 s (past the workers' CPU
# limit); the <summary>s and FAQ questions it reads as headings the same. The pages of
# the corpora have at most 22 headings in a row; a longer run ending an element keeps
# its first MAX_TRAILING_HEADINGS.
MAX_TRAILING_HEADINGS = 50
_HEADING_TAGS = ("h1", "h2", "h3", "h4", "h5", "h6", "summary", "strong")


def _reads_as_heading(element: Any) -> bool:
    """Whether trafilatura turns ``element`` into a heading (its ``convert_tags``)."""
    if element.tag == "strong":  # Yoast's FAQ questions
        return "schema-faq-question" in (element.get("class") or "")
    return element.tag in _HEADING_TAGS


def _thin_trailing_headings(tree: Any) -> None:
    """Every run of more than MAX_TRAILING_HEADINGS headings that ends its element cut to
    its first MAX_TRAILING_HEADINGS; the text after the headings dropped (their tails)
    follows the last one kept, in order."""
    last_children = [
        heading
        for heading in tree.iter(*_HEADING_TAGS)
        if heading.getnext() is None and _reads_as_heading(heading)
    ]
    for last in last_children:
        run = [last]
        previous = last.getprevious()
        while previous is not None and _reads_as_heading(previous):
            run.append(previous)
            previous = previous.getprevious()
        if len(run) <= MAX_TRAILING_HEADINGS:
            continue
        run.reverse()
        kept, dropped = run[MAX_TRAILING_HEADINGS - 1], run[MAX_TRAILING_HEADINGS:]
        kept.tail = (kept.tail or "") + "".join(heading.tail or "" for heading in dropped)
        parent = last.getparent()
        for heading in dropped:
            parent.remove(heading)


# Paragraphs of thousands of elements (spans, links, images, <b>) cost trafilatura time
# growing with the square of their number: it strips them, which leaves as many text
# nodes side by side, and libxml2 sorts the text nodes of its XPath "//p//text()" by
# walking between them (20,000 <span> in one <p>: 16 s, inside one <b>: 19 s; 20,000
# <a>: 26 s; 49 paragraphs of 999 <span>: 9 s). The pages of the corpora have at most
# 668 elements in their paragraphs (457 in one). In a page of more, each paragraph is
# read as its text, links, images and line breaks, in parts of PARAGRAPH_PART children.
MAX_PARAGRAPH_ELEMENTS = 4_000
PARAGRAPH_PART = 250
_KEPT_IN_CROWDED_PARAGRAPHS = frozenset({"a", "br", "img"})


def _split_crowded_paragraphs(tree: Any) -> None:
    """When the page's paragraphs hold more than MAX_PARAGRAPH_ELEMENTS elements, every
    paragraph flattened to its text, links, images and line breaks and split into
    paragraphs of at most PARAGRAPH_PART children (of the same attributes): the same
    text and links, a line break between parts."""
    from lxml import etree

    paragraphs = list(tree.iter("p"))
    elements = (element for paragraph in paragraphs for element in paragraph.iterdescendants())
    if next(islice(elements, MAX_PARAGRAPH_ELEMENTS, None), None) is None:
        return  # the usual case: no more than that many, counted
    for paragraph in paragraphs:
        if len(paragraph) == 0:
            continue
        tags = {e.tag for e in paragraph.iterdescendants()} - _KEPT_IN_CROWDED_PARAGRAPHS
        etree.strip_tags(paragraph, *tags)  # comments and PIs too: they are no text
        # stripping leaves text nodes side by side (the cost above): setting a text joins
        paragraph.text = paragraph.text
        for element in paragraph.iterdescendants():
            element.text, element.tail = element.text, element.tail
        _split_children(paragraph, PARAGRAPH_PART)


def _load_html(html: str) -> Any:
    """trafilatura's ``load_html`` for a decoded page (its repairs, its parser settings,
    its test that the document is HTML at all), on :func:`_parser`."""
    import lxml.html
    from lxml import etree
    from trafilatura.utils import is_dubious_html

    beginning = html[:50].lower()
    html = _repaired(html, beginning)
    # The page goes to lxml as UTF-8 bytes, as load_html does with a string lxml refuses
    # (one with an XML encoding declaration). Given a str, lxml hands libxml2 Python's
    # internal buffer (Latin-1, UCS-2 or UCS-4) to convert, which costs more than
    # encoding first (aeb: 1.95 -> 1.30 ms a parse). The parser's encoding overrides
    # the page's own declaration: the same trees on every corpus page.
    try:
        tree = lxml.html.fromstring(html.encode("utf-8", "surrogatepass"), parser=_parser())
    except (ValueError, etree.LxmlError):
        logger.debug("lxml found no document", exc_info=True)
        return None  # the caller then tries it inside <html><body>, as load_html
    if is_dubious_html(beginning) and len(tree) < 2:
        return None  # one element and no "html" at the start: not a page
    return tree


def _repaired(html: str, beginning: str) -> str:
    """trafilatura's ``repair_faulty_html``: the same string, cheaper on the usual page.

    Its first step removes the characters XML refuses (``INVALID_XML_CHARS``) with a
    regular expression over the whole page: 0.8 ms a page, some 2 % of an extraction,
    for characters almost no page holds (one of the corpora's 280). Whether the page
    holds any is asked in C here; only then does trafilatura's own function run. Its
    other two repairs read the first lines only and are done as it does them (a test
    compares the two functions on the corpora and on pages made to need each repair).
    """
    from trafilatura.utils import DOCTYPE_TAG, FAULTY_HTML, repair_faulty_html

    if _holds_xml_invalid(html):
        return repair_faulty_html(html, beginning)
    if "doctype" in beginning:  # a doctype naming a DTD is removed from the first line
        first_line, newline, rest = html.partition("\n")
        kept = DOCTYPE_TAG.sub("", first_line, count=1)
        if kept != first_line or not newline:
            html = f"{kept}\n{rest}"
    for line in html[:4096].splitlines()[:4]:  # a self-closing <html/> in the first lines
        if "<html" in line and line.endswith("/>"):
            return str(FAULTY_HTML.sub(r"\1>", html, count=1))
    return html


# trafilatura's INVALID_XML_CHARS: the C0 controls but tab, line feed and carriage
# return, and U+FFFE and U+FFFF. In UTF-8 the controls are these bytes and no byte of
# another character is.
_XML_INVALID_CONTROLS = bytes([*range(0x00, 0x09), 0x0B, 0x0C, *range(0x0E, 0x20)])


def _holds_xml_invalid(html: str) -> bool:
    """Whether the page holds a character trafilatura's INVALID_XML_CHARS matches: a
    search in C (0.3 ms a page, where the regular expression takes 0.8)."""
    if "\ufffe" in html or "\uffff" in html:
        return True
    encoded = html.encode("utf-8", "surrogatepass")
    return len(encoded.translate(None, _XML_INVALID_CONTROLS)) != len(encoded)


@lru_cache(maxsize=1)
def _parser() -> Any:
    """trafilatura's HTML parser settings, with lxml's built-in element classes.

    lxml.html's own parser finds the Python class of an element by calling Python code
    each time an element is touched from Python, some 5,000 times a page for the
    extractors here; lxml's built-in lookup makes every element an ``HtmlElement`` (the
    form-field classes, which no extractor uses, are not assigned). The same texts on
    every corpus page, 1.5 ms (5 %) less per page. One parser per process: builds run
    one at a time in a process (see :mod:`mediamon.ingest.pool`).
    """
    from lxml import etree
    from lxml import html as lxml_html

    parser = lxml_html.HTMLParser(
        collect_ids=False,
        default_doctype=False,
        encoding="utf-8",
        remove_comments=True,
        remove_pis=True,
    )
    parser.set_element_class_lookup(
        etree.ElementDefaultClassLookup(
            element=lxml_html.HtmlElement,
            comment=lxml_html.HtmlComment,
            pi=lxml_html.HtmlProcessingInstruction,
            entity=lxml_html.HtmlEntity,
        )
    )
    return parser


def trafilatura_text(
    tree: Any, url: str | None, *, precision: bool, prune: list[str] | None = None
) -> str:
    """One trafilatura run on the tree (which it copies): its text, "" without any.

    Precision mode runs ``fast``: on news pages the comparison with readability and
    jusText mostly re-adds the boilerplate precision mode dropped, and readability-lxml
    is a candidate of its own here.
    """
    from trafilatura import bare_extraction

    try:
        document = bare_extraction(
            tree,
            url=url,
            fast=precision,
            favor_precision=precision,
            include_comments=False,
            include_tables=True,
            deduplicate=False,
            prune_xpath=prune,
        )
    except Exception:  # trafilatura raises on some malformed trees; treat as no text
        logger.warning("trafilatura failed on %s", url, exc_info=True)
        return ""
    text = getattr(document, "text", None)
    return text.strip() if isinstance(text, str) else ""


def readability_text(
    tree: Any, prune: list[str] | None = None, *, taking_over: str | None = None
) -> str:
    """readability-lxml's article text from a copy of the tree, "" when it finds none
    (see :func:`readability_read`)."""
    return readability_read(tree, prune, taking_over=taking_over)[0]


def readability_read(
    tree: Any, prune: list[str] | None = None, *, taking_over: str | None = None
) -> tuple[str, str]:
    """readability-lxml's article text ("" when it finds none), and the whitespace-free
    text of the page's comment blocks, one block a line ("" when it has none).

    Args:
        tree: The parsed page.
        prune: XPath expressions of elements removed first (a site's configured rule).
        taking_over: The HTML ``tree`` was parsed from, when this is the tree's last
            reader: readability then rewrites the tree itself instead of a copy (a copy
            costs 2 % of an extraction), and the rare second pass readability makes
            with looser rules reads a new parse of the HTML.

    The comment blocks are the outermost elements whose class or id names readers'
    comments (_COMMENT_NAMES) and that hold no headline, ``article`` or ``main`` (a body
    "with-comments" wraps the page, not a comment). They are found in readability's own
    walk of the elements with a class or id, before it drops any: readers' comments
    read as prose, and the chooser asks which side's own lines lie in them.
    """
    from readability.readability import Unparseable

    document = _readability_document()(tree, negative_keywords=_NOT_ARTICLE_CLASSES)
    try:
        document.prune = prune or ()
        document.taking_over = taking_over
        html = document.summary(html_partial=True)
    except (Unparseable, ValueError, TypeError):
        logger.debug("readability found no article", exc_info=True)
        return "", "\n".join(document.comments)
    return html_text(html), "\n".join(document.comments)


@lru_cache(maxsize=1)
def _readability_document() -> Any:
    """readability-lxml's Document on an already parsed tree, made cheaper.

    The same algorithm, with its slow steps done the fast way (two thirds of its time
    went to them):

    * no HTML cleaner: lxml_html_clean costs half of readability's time, mostly
      rewriting ``javascript:`` links; only the article's text is kept here, so dropping
      scripts, styles and hidden elements is all the cleaning it needs;
    * unlikely candidates looked for among elements with a class or id only (the others
      never match), each class name tested once;
    * a div's block children found by walking them instead of serializing the div;
    * text lengths without three regular-expression passes per element.

    The tree is copied: readability rewrites the tree it reads, and the other
    extractors share it.
    """
    from lxml import etree
    from lxml.html import fragment_fromstring
    from readability import Document
    from readability.readability import REGEXES

    unlikely, maybe = REGEXES["unlikelyCandidatesRe"], REGEXES["okMaybeItsACandidateRe"]

    # the elements under a node whose class or id says "author" (_NOT_ARTICLE_CLASSES),
    # asked in C
    named_for_author = etree.XPath(
        ".//*[contains(translate(@class, 'AUTHOR', 'author'), 'author')"
        " or contains(translate(@id, 'AUTHOR', 'author'), 'author')]"
    )

    @lru_cache(maxsize=8192)  # class names repeat within a page and across a site's pages
    def name_kinds(names: str) -> tuple[bool, bool]:
        """(unlikely candidate, comment block): one cached call per element."""
        is_unlikely = bool(unlikely.search(names)) and not maybe.search(names)
        return is_unlikely, bool(_COMMENT_NAMES.search(names))

    class FastDocument(Document):  # type: ignore[misc]
        prune: Sequence[str] = ()
        taking_over: str | None = None  # see readability_read
        comments: tuple[str, ...] = ()  # see readability_read

        def _parse(self, input: Any) -> Any:  # noqa: A002 - readability's name
            if self.taking_over is None:
                doc = copy.deepcopy(input)
            elif isinstance(input, str):  # a second pass (readability reads self.input)
                doc = parse(input)
            else:  # the caller's tree; a second pass, if any, parses the HTML again then
                # (parsing it up front cost a parse on every page, about 8 % of an extraction,
                # for a pass that seldom runs)
                doc, self.input = input, self.taking_over
            for expression in self.prune:
                for element in doc.xpath(expression):
                    if element.getparent() is not None:
                        element.drop_tree()
            etree.strip_elements(doc, "script", "style", "noscript", with_tail=False)
            for element in doc.xpath("//body//*[@hidden or @style]"):
                style = _SPACE.sub("", element.get("style") or "").lower()
                if element.get("hidden") is not None or "display:none" in style:
                    element.drop_tree()  # the xpath keeps the root out: it has a parent
            self.encoding = "utf-8"
            return doc

        def sanitize(self, node: Any, *args: Any, **kwargs: Any) -> Any:
            # Blocks named for the author leave the chosen block whole, paragraphs too:
            # readability's sanitize drops only divs, lists and tables by their weight,
            # and kept an author's biography written as a paragraph (see
            # _NOT_ARTICLE_CLASSES).
            # An editor's credit in such a block stays (Sina's <p class="show_author">
            # 责任编辑：张申</p>): the references keep credits (choose.CREDIT_PATTERNS).
            for elem in named_for_author(node):
                if not is_credit(elem.text_content()):
                    elem.drop_tree()
            return super().sanitize(node, *args, **kwargs)

        def get_link_density(self, elem: Any) -> float:
            links = sum(_text_length(link) for link in elem.iterfind(".//a"))
            return links / max(_text_length(elem), 1)

        def remove_unlikely_candidates(self) -> None:
            # readability's ".//*[@class or @id]", walked (half the XPath's time); the
            # comment blocks are read on the way (see readability_read)
            unlikely_elements, commented = [], []
            for elem in self.html.iterdescendants(etree.Element):
                if elem.get("class") is None and elem.get("id") is None:
                    continue
                is_unlikely, is_comment = name_kinds(
                    f"{elem.get('class', '')} {elem.get('id', '')}"
                )
                if is_comment:
                    commented.append(elem)
                if is_unlikely and elem.tag not in ("html", "body"):
                    unlikely_elements.append(elem)
            if commented:
                self.comments = _comment_blocks(commented)
            if not unlikely_elements:
                return
            # readability keeps an unlikely element that lies in a pre or code block or
            # holds a main, article or math element, and asked two XPath questions per
            # element (a third of its time). Both sets are collected once instead: the
            # elements are visited in document order, so an element dropped earlier is
            # neither an ancestor nor a descendant of one still in the tree, and the
            # answers do not change as elements are dropped.
            in_code = {node for block in self.html.iter("pre", "code") for node in block.iter()}
            holds_article = {
                node
                for found in self.html.iter("main", "article", "math")
                for node in (found, *found.iterancestors())
            }
            for elem in unlikely_elements:
                if elem not in in_code and elem not in holds_article:
                    elem.drop_tree()

        def transform_misused_divs_into_paragraphs(self) -> None:
            for elem in self.tags(self.html, "div"):
                if not _has_block(elem):
                    elem.tag = "p"  # a div of inline content is a paragraph
            for elem in self.tags(self.html, "div"):
                children = list(elem)
                paragraph = None
                if elem.text and elem.text.strip():
                    p = fragment_fromstring("<p/>")
                    p.text = elem.text
                    elem.text = None
                    elem.insert(0, p)
                    paragraph = p
                for child in children:
                    if child.tag == "br":
                        paragraph = None
                        continue
                    if child.tag not in _INLINE_TAGS or _has_block(child):
                        paragraph = None
                        continue
                    if paragraph is None:
                        paragraph = fragment_fromstring("<p/>")
                        child.addprevious(paragraph)
                    paragraph.append(child)
                for pos, child in reversed(list(enumerate(elem))):
                    if child.tail and child.tail.strip():
                        p = fragment_fromstring("<p/>")
                        p.text = child.tail
                        child.tail = None
                        elem.insert(pos + 1, p)
                    if child.tag == "br":
                        child.drop_tree()

    return FastDocument


def _comment_blocks(elements: list[Any]) -> tuple[str, ...]:
    """The whitespace-free texts of the outermost of ``elements`` (in document order)
    that hold no headline, ``article`` or ``main``: see readability_read."""
    blocks: list[str] = []
    taken: set[Any] = set()
    size = 0
    for element in elements:
        if any(ancestor in taken for ancestor in element.iterancestors()):
            continue
        if next(element.iterdescendants("h1", "article", "main"), None) is not None:
            continue
        taken.add(element)
        if text := _SPACE.sub("", element.text_content() or ""):
            blocks.append(text[: MAX_COMMENT_CHARS - size])
            size += len(blocks[-1])
            if size >= MAX_COMMENT_CHARS:
                break
    return tuple(blocks)


_BLOCK_TAGS = frozenset({"blockquote", "dl", "div", "img", "ol", "table", "ul"})


def _has_block(element: Any) -> bool:
    """readability's test for an element holding block elements: its regular expression
    on the serialized children ("<p" also matches pre, param...), without serializing."""
    for descendant in element.iterdescendants():
        tag = descendant.tag
        if isinstance(tag, str) and (tag[:1] == "p" or tag in _BLOCK_TAGS):
            return True
    return False


_INLINE_TAGS = frozenset(
    {"a", "b", "cite", "code", "em", "font", "i", "small", "span", "strong", "sub", "sup", "u"}
)


def _text_length(element: Any) -> int:
    """Length of an element's text with whitespace runs counted as one character."""
    return len(" ".join((element.text_content() or "").split()))


def warm_up() -> None:
    """Import the extractors now, in a parent process, so that forked workers share them
    instead of each importing its own."""
    import trafilatura  # noqa: F401

    _readability_document()


def html_text(html: str) -> str:
    """Plain text of an HTML fragment (readability's article), one line per block."""
    import lxml.html

    if not html.strip():
        return ""
    try:
        root = lxml.html.fragment_fromstring(html, create_parent="div")
    except (AssertionError, IndexError):
        # readability gave a document without a body, as it does when libxml2 stopped
        # parsing the page at a text or value of more than 10,000,000 characters before
        # the body: lxml asserts there is one (IndexError under python -O)
        return ""
    lines: list[str] = []
    current: list[str] = []

    def flush() -> None:
        line = _SPACE.sub(" ", "".join(current)).strip()
        if line:
            lines.append(line)
        current.clear()

    def walk(element: Any) -> None:
        if element.tag == "iframe":
            # readability writes "VIDEO" into an iframe of a video site to keep it in its
            # output: a placeholder, not the page's text (no reference of the corpora has
            # it, six of readability's texts had it); a browser shows no iframe text either
            return
        block = isinstance(element.tag, str) and element.tag in _READABILITY_BLOCKS
        if block:
            flush()
        if element.text:
            current.append(element.text)
        for child in element:
            walk(child)
            if child.tail:
                current.append(child.tail)
        if block:
            flush()

    walk(root)
    flush()
    return "\n".join(lines)


def link_texts(tree: Any) -> frozenset[str]:
    """Whitespace-free texts of the page's links (and of list items made of one link)."""
    texts: set[str] = set()
    for anchor in tree.iter("a"):
        text = _SPACE.sub("", anchor.text_content() or "")
        if len(text) >= _MIN_LINK_TEXT:
            texts.add(text)
    return frozenset(texts)
