"""Article text and metadata from decoded HTML, by trafilatura and readability-lxml.

The page is parsed once and read by two extractors (:mod:`mediamon.ingest.candidates`):
trafilatura in precision mode and readability-lxml. Each text is cleaned: markdown
table markup removed, boilerplate lines (copyright, share and QR-code prompts, platform
disclaimers) stripped where they stand at the start or end,
everything after an end-of-article marker ("相关阅读", "Related articles"...) in the
second half dropped, and a line repeated right after itself kept once. Then
:mod:`mediamon.ingest.choose` picks one by evidence (agreement, link text, sentence shape),
with a model fit by cross-validation across sites. Only when neither found any text does
trafilatura's balanced mode run.

Per-site rules a user may write (XPath to prune, extra boilerplate lines, read by
:mod:`mediamon.ingest.site_rules`) live in
``default_config/extraction.yaml`` or the file named by ``MEDIAMON_EXTRACTION_CONFIG``
(:class:`mediamon.settings.Settings`); the ingest task loads them once, before any page.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from html import unescape
from typing import Any

from mediamon.ingest.candidates import (
    link_texts,
    parse,
    parse_was_cut,
    readability_read,
    trafilatura_text,
)
from mediamon.ingest.choose import CREDIT_PATTERNS, choose
from mediamon.ingest.site_rules import SiteRule, configured_site_rules, elements_only, site_rule

logger = logging.getLogger(__name__)


# Lines stripped from each end of the text at most.
MAX_EDGE_LINES = 8
# The characters of an extractor's text that are cleaned: five times the stored body
# (mediamon.limits.MAX_BODY_CHARS; the corpora's longest article has 40,000). Cleaning
# goes line by line in Python: 9.5 MB of one-letter lines cost 4 s in clean_text alone.
MAX_CLEANED_CHARS = 1_000_000

# Possessive: two space runs side by side (the leading ones and a cell's, the trailing
# ones) were tried at every split, so a line of 20,000 spaces and then "x|" cost 4 s
# (the time grows with the square of the spaces). No match changes: each run is
# followed by what it cannot hold.
_TABLE_RULE = re.compile(r"^\s*+\|?(?:\s*+:?-{3,}+:?\s*+\|)++\s*+:?-*+:?\s*+$")
# The bar between cells alone; the cells are stripped after. A split on the bar with the
# spaces around it tried the spaces at each place of a run that no bar ends, reading the
# rest of the run each time ("|a", 20,000 spaces, "b": 3 s; 60,000 tabs and U+3000: 35 s).
_TABLE_CELL_SEP = re.compile(r"(?<!\\)\|")
_SPACES = re.compile(r"[ \t\u3000\xa0]+")

# Boilerplate lines, stripped only at the start or end of the text, by kind. The bench
# measures each kind's worth by cross-validation (bench/extraction_cv.py); only the kinds
# in CLEANED_KINDS are stripped.
EDGE_PATTERNS: dict[str, tuple[str, ...]] = {
    # editor, source and byline-like credits of Chinese news (kept: see CREDIT_PATTERNS)
    "credits": CREDIT_PATTERNS,
    # copyright and reprint notices
    "copyright": (
        r"^\W{0,3}(copyright|©|\(c\)\s*\d{4})|all rights reserved|版权所有|保留所有权利|"
        r"版权声明|无断转载|무단전재|reproduction without|non-commercial use only|"
        r"may not be (re)?published|without (the )?(prior )?written permission",
        r"未经.{0,30}(授权|许可|同意).{0,12}(转载|使用|复制|摘编)|转载请注明|禁止转载|"
        r"不得转载|谢绝转载|转载须",
    ),
    # platform disclaimers (网易号, 搜狐号, 大风号, 百家号...)
    "disclaimers": (
        r"^[“\"【\[(（]?\s*(特别声明|免责声明|郑重声明)\s*[】\])）:：]",
        r"^本文仅代表作者(本人|个人)?(的)?观点",
        r"^notice: the content above",
        r"本平台仅提供信息存储",
    ),
    # share, follow, QR code, app prompts
    "prompts": (
        r"^(分享到|分享至|分享|转发到|扫描二维码|扫一扫|扫码|长按(识别)?二维码|关注我们|点击关注|"
        r"打开.{0,12}(app|客户端)|下载.{0,12}(app|客户端)|举报|反馈|举报\s*/\s*反馈|查看更多|"
        r"加载更多|点击加载更多|查看原文|阅读原文|返回顶部|返回首页|上一篇|下一篇|打印|"
        r"关闭窗口|收藏|点赞|评论)\s*[:：]?\s*$",
        r"^(share|share this( article| story)?|tweet|email|print|follow us|advertisement|"
        r"sign up for .{0,60}newsletters?.*|subscribe( now)?|read more|load more|"
        r"comments?)\s*[:.]?$",
        r"^.{0,12}((微信|微博|二维码|公众号).{0,20}(扫描|扫一扫|关注|分享)|"
        r"(扫描|扫一扫|关注|分享).{0,20}(微信|微博|二维码|公众号)).{0,12}$",
    ),
}


def edge_pattern(kinds: Collection[str]) -> re.Pattern[str]:
    """One regular expression of the boilerplate lines of the given kinds."""
    patterns = [p for kind in kinds for p in EDGE_PATTERNS[kind]]
    return re.compile("|".join(f"(?:{p})" for p in patterns) or "(?!)", re.IGNORECASE)


# "credits" stay: on the labelled corpora, stripping editor and source lines raised no
# corpus's cross-validated F1 and lowered two (the references keep them; "本文来源：新京报"
# also tells an analyst where a copy came from).
CLEANED_KINDS = ("copyright", "disclaimers", "prompts")
_EDGE_RE = edge_pattern(CLEANED_KINDS)
# Labels that are never article text, dropped wherever they are.
_LABEL_LINES = re.compile(
    r"^(advertisement|advertisements|ad|sponsored|广告|推广|赞助内容|\[?广告\]?|"
    r"分享到\s*[:：]?|分享\s*[:：]|scroll to continue with content)$",
    re.IGNORECASE,
)
# Headings after which a news page has only related links, comments or recommendations.
_END_MARKERS = re.compile(
    r"^[【\[]?\s*(相关(阅读|新闻|文章|报道|推荐|链接|专题|资讯)|推荐阅读|延伸阅读|热门(推荐|文章|新闻|阅读)|"
    r"猜你喜欢|为您推荐|为你推荐|大家都在看|更多(精彩|阅读|新闻|资讯)|精彩推荐|热点推荐|"
    r"网友评论|最新评论|热门评论|发表评论|我要评论|评论区|"
    r"related( articles| stories| posts| news| content| coverage)?|more (stories|from .{1,40})|"
    r"recommended( for you| stories| articles)?|you may also like|most popular|most read|"
    r"trending( now)?|latest (news|stories))\s*[】\]]?\s*[:：]?$",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Extracted:
    """What trafilatura found in a page. Any field may be missing except ``text``.

    ``mode`` says which extraction the text came from: ``precision``, ``readability``
    or ``balanced`` (the fallback, see the module documentation).
    """

    text: str
    title: str | None = None
    author: str | None = None
    published_at: datetime | None = None
    language: str | None = None
    image: str | None = None
    description: str | None = None
    sitename: str | None = None
    categories: tuple[str, ...] = field(default_factory=tuple)
    mode: str = "precision"
    cut: str | None = None  # why the page was read only in part (parse_was_cut)


def extract(
    html: str,
    url: str | None = None,
    *,
    with_metadata: bool = True,
    known: Collection[str] = (),
    rules: Mapping[str, SiteRule] | None = None,
    fragment: bool = False,
    title: str | None = None,
) -> Extracted | None:
    """Extract the main text and metadata of an article page.

    Args:
        html: The page, already decoded (see :mod:`mediamon.ingest.decode`): trafilatura
            guessing the charset itself garbles many GBK pages.
        url: The page's URL, which helps trafilatura resolve links and dates, and
            selects the per-site rules of the configuration.
        with_metadata: Look for metadata at all (not for fragments of a feed).
        known: Metadata the caller already has, from the feed, and so not looked for in
            the page (any of "title", "author", "date", "categories"): the byline search
            alone costs a fifth of an extraction.
        rules: Per-site rules by domain (:func:`load_site_rules`); None means those of
            the configured file.
        fragment: The HTML is an article's own markup (an archived feed item, a feed's
            content block), not a page: there is no page around it to choose against,
            so trafilatura's precision text is taken whole. It keeps a lead set apart
            from the body, which readability's pick of one block drops (the seed
            article's); the chooser's corpora hold pages only.
        title: The article's title when the caller has it (the feed's); else the
            page's own is used. A link on the page with this text is the page's own
            headline, not navigation (:func:`mediamon.ingest.choose.not_the_headline`).

    Returns:
        The extraction, or None when the page has no article text.
    """
    tree = parse(html)
    if tree is None:
        return None
    cut = parse_was_cut()
    rule = site_rule(url, configured_site_rules() if rules is None else rules) if url else None
    # Metadata first: readability rewrites the page's tree as the candidates' last reader.
    meta = _metadata(tree, url, frozenset(known), len(html)) if with_metadata else {}
    language = _str(meta.get("language")) or _declared_language(tree)
    if fragment:
        text = trafilatura_cleaned(tree, url, rule, precision=True)
        mode = "precision" if text else "none"
    else:
        found = read_candidates(tree, url, rule, taking_over=html)
        choice = choose(
            found.precision,
            found.readability,
            found.link_texts,
            comments=found.comments,
            title=_str(meta.get("title")) or title or "",
        )
        text, mode = choice.text, choice.name
    if mode == "none":  # neither extractor found text: the evidence that a pass missed it
        unread = tree if fragment else parse(html)  # readability rewrote a page's tree
        text = trafilatura_cleaned(unread, url, rule, precision=False)
        mode = "balanced"
    if not text:
        return None
    return Extracted(
        text=text,
        title=_str(meta.get("title")),
        author=_str(meta.get("author")),
        published_at=_date(meta.get("date")),
        language=language,
        image=_str(meta.get("image")),
        description=_str(meta.get("description")),
        sitename=_str(meta.get("sitename")),
        categories=_categories(meta.get("categories")),
        mode=mode,
        cut=cut,
    )


@dataclass(frozen=True)
class Candidates:
    """The cleaned texts of both extractors, the page's link texts and the text of its
    comment blocks (for the chooser)."""

    precision: str
    readability: str
    link_texts: frozenset[str]
    comments: str = ""


def read_candidates(
    tree: Any, url: str | None, rule: SiteRule | None = None, *, taking_over: str | None = None
) -> Candidates:
    """Both extractors' cleaned texts of a parsed page (see :mod:`mediamon.ingest.candidates`).
    ``taking_over``: the page's HTML, when the tree may be rewritten (its last use, see
    :func:`mediamon.ingest.candidates.readability_read`)."""
    precision = trafilatura_cleaned(tree, url, rule, precision=True)
    links = link_texts(tree)
    readability, comments = readability_read(tree, prune=_prune(rule), taking_over=taking_over)
    return Candidates(precision, clean_text(readability, rule), links, comments)


def trafilatura_cleaned(
    tree: Any, url: str | None, rule: SiteRule | None, *, precision: bool
) -> str:
    """trafilatura's text of a parsed page (precision or balanced mode), cleaned, with
    the site's rule applied."""
    return clean_text(trafilatura_text(tree, url, precision=precision, prune=_prune(rule)), rule)


def _prune(rule: SiteRule | None) -> list[str] | None:
    if not rule or not rule.prune_xpath:
        return None
    return [elements_only(expression) for expression in rule.prune_xpath]


def _metadata(tree: Any, url: str | None, known: frozenset[str], page_chars: int) -> dict[str, Any]:
    """Metadata as trafilatura's ``extract_metadata`` finds it, at a fraction of the cost.

    The same steps, except: the date comes from the markup and the URL only. htmldate's
    extensive search of the text costs ten times more (1.6 s on one 21 kB page of the
    corpora), and where the markup has no date its guesses are often a bare year read
    as 1 January; the feed's date comes first anyway. Tags and the licence, which
    mediamon does not keep, are skipped, and so is the category-link search on pages
    with structured data (JSON-LD or Open Graph) that names no section.

    The author comes from the feed or the page's metadata (meta tags, JSON-LD), never
    from trafilatura's search of the page's text for a byline: on the 82 corpus pages
    where it would run, it named 17 "authors", of which at most three are people and
    most are page furniture ("我已授权", "版权声明 来源：…", "中国广州发布 关注",
    a column title); and it cost 5 ms on each such page, 5 % of all extraction.
    """
    try:
        from htmldate import find_date
        from trafilatura.metadata import (
            examine_meta,
            extract_catstags,
            extract_meta_json,
            extract_sitename,
            extract_title,
            extract_url,
        )
        from trafilatura.settings import set_date_params
    except ImportError:  # trafilatura reorganised its internals: the slow, public way
        from trafilatura.metadata import extract_metadata

        return dict(extract_metadata(tree, url).as_dict())
    try:
        meta = examine_meta(tree)
        if meta.author and " " not in meta.author:
            meta.author = None
        try:
            # a block of more than MAX_JSON_LD_CHARS needs a page of more: most pages
            # skip the search for such blocks (a walk of the tree, 0.2 ms)
            if page_chars > MAX_JSON_LD_CHARS:
                meta = _meta_json(tree, meta, extract_meta_json)
            else:
                meta = extract_meta_json(tree, meta)
        except Exception:  # trafilatura's JSON-LD parsing has bugs on odd pages
            logger.debug("JSON-LD metadata failed on %s", url, exc_info=True)
        for name in _TEXT_FIELDS:
            setattr(meta, name, _first_text(getattr(meta, name, None)))
        if "title" not in known:
            meta.title = meta.title or extract_title(tree)
        meta.url = meta.url or extract_url(tree, url)
        if "date" not in known:
            params = set_date_params(False)
            params["url"] = meta.url
            meta.date = find_date(tree, **params)
        meta.sitename = (meta.sitename or extract_sitename(tree) or "").lstrip("@") or None
        # a page whose structured data names no section seldom has category links
        if "categories" not in known and not meta.categories and not _has_structured_data(tree):
            meta.categories = extract_catstags("category", tree)
        meta.clean_and_trim()
        return dict(meta.as_dict())
    except Exception:
        logger.warning("metadata extraction failed on %s", url, exc_info=True)
        return {}


# Metadata that must be text. JSON-LD gives what the page wrote: a headline as a list
# (common), a number or an object; trafilatura keeps it, and a truthy non-text title
# stopped the fallback to <title>, so the article was stored without one.
_TEXT_FIELDS = ("title", "author", "description", "sitename", "url", "image")


def _first_text(value: object) -> str | None:
    """``value`` if it is text, the first text of a list, else None."""
    if isinstance(value, list | tuple):
        value = next((v for v in value if isinstance(v, str) and v.strip()), None)
    return value if isinstance(value, str) and value.strip() else None


# trafilatura minifies a JSON-LD block with a regular expression whose string-literal
# loop keeps a backtracking entry per character: some 110 bytes of memory for each
# character of the block's longest string (a block of 9.5 MB held 1.1 GB at once, in
# every worker that read such a page). Blocks of the corpora: 29,000 characters at most.
MAX_JSON_LD_CHARS = 1_000_000
_JSON_LD = '//script[@type="application/ld+json" or @type="application/settings+json"]'


def _meta_json(tree: Any, meta: Any, extract_meta_json: Any) -> Any:
    """trafilatura's ``extract_meta_json``, blind to blocks of more than
    MAX_JSON_LD_CHARS characters: their text is set aside while it reads the others."""
    large = [(e, e.text) for e in tree.xpath(_JSON_LD) if len(e.text or "") > MAX_JSON_LD_CHARS]
    for element, _ in large:
        element.text = None
    try:
        return extract_meta_json(tree, meta)
    finally:
        for element, text in large:
            element.text = text


def _declared_language(tree: Any) -> str | None:
    """The language the page declares: ``<html lang>``, else a Content-Language meta."""
    declared = tree.get("lang") or tree.get("{http://www.w3.org/XML/1998/namespace}lang")
    if not declared:
        found = tree.xpath('//meta[@http-equiv="content-language"]/@content')
        declared = found[0] if found else None
    return _str(declared)


def _has_structured_data(tree: Any) -> bool:
    return bool(
        tree.xpath('boolean(//script[@type="application/ld+json"] | //meta[@property="og:type"])')
    )


# --- page shape -------------------------------------------------------------------------

# Pages whose parse costs far more than their size. libxml2's HTML parser checks each
# attribute of a tag against all the tag's earlier ones, so its cost grows with the
# square of their number (100,000 attributes on one tag, 1.1 MB: 317 s in-process);
# trafilatura's and readability's passes cost some 45 µs an element (1,000,000 <br>:
# 27 s). The feeds' equivalent is mediamon.ingest.feeds.within_limits.
# Margins, on the 280 pages of the evaluation corpora (../shared/corpora) and the tests'
# pages: at most 40 attributes on one tag (a <meta>; 256 is 6x that, and 256 attributes
# cost libxml2 well under a millisecond), at most 7,778 start tags in one page, scripts
# included (50,000 is 6x that; 15,397 "<" at most; such a page costs some 2 s to extract).
MAX_TAG_ATTRIBUTES = 256
MAX_PAGE_TAGS = 50_000
# A start tag as the HTML tokenizer reads it (WHATWG §13.2.5; libxml2 2.14 follows it):
# "<" and a letter, the name, then attributes up to a ">" outside quoted values. An
# attribute name runs to a space, "/", ">" or "=" (it may start with "=" or a quote),
# its value is quoted or runs to a space or ">"; a quoted value left open runs to the
# end of the page (libxml2 then drops the tag: no attributes to check), so no scan ever
# reads past where the match ends. Each part is possessive: the scan never backtracks.
_TAG_OPEN = re.compile(r"<[A-Za-z]")
_ATTRIBUTE = r"""[^\s/>][^\s/>=]*+(?:\s*+=\s*+(?:"[^"]*+(?:"|\Z)|'[^']*+(?:'|\Z)|[^\s>]*+))?+"""
# From a "<" and a letter: up to MAX_TAG_ATTRIBUTES attributes, each after its spaces
# or "/", then one more in the group "many" (every tag with more attributes than that
# sets it, wherever it is), else the spaces that end the run. The spaces and each
# attribute are atomic, so a shorter run fails without trying other ways to split it;
# the match stops at the count, never reading a long tag to its end, and ends where
# the scan stopped, so what it read is known.
_RUN = re.compile(
    rf"<[A-Za-z][^\s/>]*+(?:[\s/]*+(?>{_ATTRIBUTE})){{0,{MAX_TAG_ATTRIBUTES}}}+"
    rf"(?:(?P<many>[\s/]*+(?>{_ATTRIBUTE}))|[\s/]*+)"
)
# Every "<" and letter is read as a tag, so runs overlap: a tag name, a name or a value
# running over many of them is read once for each ("<a" 1,000 times and 1 MB without a
# space: 6 s; 50,000 and 15 MB: hours). What the runs may read in all is bounded; a
# page that needs more is refused. On the corpora's pages they read at most 3.1 times
# the page (minified JavaScript; 1.8 MB for a page of 585 kB).
MAX_RUNS_READ_PER_CHAR = 8
MAX_RUNS_READ_FIXED = 8_000_000
# Most runs are plain: no "<" after the run's own before its ">", quoted values closed,
# and at most MAX_TAG_ATTRIBUTES attributes. Such a run is read as _RUN reads it (a
# name never starts with "=" here, and a value opened by a quote must close, so the
# two readings cannot part), and no other run starts inside it. One search finds the
# runs that are not plain, reading each run only up to the next "<": the whole page
# about once, in C. Only those runs are read by _RUN, within the budget above.
_PLAIN_ATTRIBUTE = (
    r"""[^\s/><=][^\s/>=<]*+(?:\s*+=\s*+(?:"[^"<]*+"|'[^'<]*+'|[^\s><"'][^\s><]*+|(?=>|\Z)))?+"""
)
_NOT_PLAIN = re.compile(
    rf"<[A-Za-z][^\s/><]*+(?:[\s/]*+{_PLAIN_ATTRIBUTE}){{0,{MAX_TAG_ATTRIBUTES}}}+"
    r"[\s/]*+(?!>|\Z)"
)


@dataclass(frozen=True)
class ParserSafe:
    """A page as an HTML parser may read it (:func:`parser_safe`)."""

    html: str  # the page, every run read as a start tag of too many attributes escaped
    escaped: int  # how many such runs were escaped
    refused: str | None  # why no parser may read the page at all, else None


def parser_safe(html: str) -> ParserSafe:
    """The page with the ``<`` of every run that reads as a start tag of more than
    MAX_TAG_ATTRIBUTES attributes written ``&lt;``, so that no parser reads it as a tag;
    refused when it holds more than MAX_PAGE_TAGS start tags. Most such runs are in
    scripts (minified JavaScript reads like tags of hundreds of attributes: up to 84 on
    a page of the corpora); their number is not capped, as what reading them costs is.

    Escaping needs no knowledge of where the run is, which a scan short of a full HTML
    tokenizer gets wrong (a ``<script>`` inside a comment or a ``<title>`` is text, not a
    script): in a script, a style or a comment the text is not the article's; in a
    quoted value or a title, ``&lt;`` reads as ``<`` again. A run inside an escaped one
    may now start a tag, so every "<" and letter is read as a run's start: the plain
    ones (see _NOT_PLAIN) in one search, the others one by one, within a bound on what
    they read in all (MAX_RUNS_READ_PER_CHAR, MAX_RUNS_READ_FIXED): a page whose runs
    need more is refused."""
    if html.count("<") > MAX_PAGE_TAGS:  # an upper bound, counted in C
        tags = _TAG_OPEN.subn("", html)[1]  # every start tag, and a few that are not
        if tags > MAX_PAGE_TAGS:
            return ParserSafe(html, 0, f"{tags:,} tags (at most {MAX_PAGE_TAGS:,})")
    found = _NOT_PLAIN.search(html)
    if found is None:  # the usual case: every run is plain
        return ParserSafe(html, 0, None)
    budget = MAX_RUNS_READ_PER_CHAR * len(html) + MAX_RUNS_READ_FIXED
    pieces: list[str] = []
    written = 0
    while found is not None:
        start = found.start()
        # the scan stops at what is left of the budget: the run reads no more than that
        stop = min(len(html), start + budget)
        run = _RUN.match(html, start, stop)  # None: not even "<" and a letter were left
        if run is None or run["many"] is None and run.end() == stop < len(html):
            # cut short by the budget: the run may have more attributes than was read
            read = MAX_RUNS_READ_PER_CHAR * len(html) + MAX_RUNS_READ_FIXED
            refused = f"its start tags overlap: they read more than {read:,} characters"
            return ParserSafe(html, 0, f"{refused} ({MAX_RUNS_READ_PER_CHAR} times the page)")
        if run["many"] is not None:
            pieces += (html[written:start], "&lt;")
            written = start + 1
        budget -= run.end() - start
        found = _NOT_PLAIN.search(html, start + 1)
    if not pieces:  # the usual case
        return ParserSafe(html, 0, None)
    pieces.append(html[written:])
    return ParserSafe("".join(pieces), len(pieces) // 2, None)


def text_of_costly_html(html: str) -> str:
    """The text of HTML refused by :func:`parser_safe`, without parsing it: tags
    removed, entities read, spaces collapsed. Linear: a tag runs to the next "<" or ">"."""
    return _SPACES.sub(" ", unescape(_ANY_TAG.sub(" ", html))).strip()


_ANY_TAG = re.compile(r"<[^<>]*>?")


# --- cleaning ---------------------------------------------------------------------------


def clean_text(
    text: str, rule: SiteRule | None = None, edge_lines: re.Pattern[str] = _EDGE_RE
) -> str:
    """Plain article text from an extractor's: see the module documentation.
    ``edge_lines``: the built-in boilerplate lines (the bench leaves kinds out)."""
    edge = (edge_lines, *rule.boilerplate) if rule else (edge_lines,)
    drop = rule.drop_lines if rule else ()
    text = text[:MAX_CLEANED_CHARS]  # what is stored and compared comes from the start
    lines = [line for line in (_plain_line(raw) for raw in text.splitlines()) if line]
    lines = [
        line
        for line in lines
        if not _LABEL_LINES.match(line) and not any(p.search(line) for p in drop)
    ]
    lines = _cut_at_end_marker(lines)
    lines = _strip_edges(lines, edge)
    return "\n".join(_dedup(lines))


def _plain_line(line: str) -> str:
    """A line without markdown table markup and with spaces collapsed."""
    if "|" in line:
        if _TABLE_RULE.match(line):
            return ""
        if line.lstrip().startswith("|"):
            cells = [c.strip() for c in _TABLE_CELL_SEP.split(line) if c.strip()]
            line = " ".join(cells).replace("\\|", "|")
    return _SPACES.sub(" ", line).strip()


def _cut_at_end_marker(lines: list[str]) -> list[str]:
    """Drop everything from an end-of-article heading in the second half of the text."""
    total = sum(len(line) for line in lines)
    seen = 0
    for index, line in enumerate(lines):
        if seen >= total / 2 and len(line) <= 30 and _END_MARKERS.match(line):
            return lines[:index]
        seen += len(line)
    return lines


def _strip_edges(lines: list[str], patterns: tuple[re.Pattern[str], ...]) -> list[str]:
    def boilerplate(line: str) -> bool:
        return len(line) <= 300 and any(p.search(line) for p in patterns)

    start = 0
    while start < min(len(lines), MAX_EDGE_LINES) and boilerplate(lines[start]):
        start += 1
    end = len(lines)
    while end > max(start, len(lines) - MAX_EDGE_LINES) and boilerplate(lines[end - 1]):
        end -= 1
    return lines[start:end]


def _dedup(lines: list[str]) -> list[str]:
    """Lines without immediate repeats (a caption or notice rendered twice in a row).

    Only neighbours: repeats further apart are often real structure (the same heading
    in each section of a recipe or a schedule).
    """
    return [line for index, line in enumerate(lines) if index == 0 or line != lines[index - 1]]


# --- metadata ---------------------------------------------------------------------------


def _str(value: object) -> str | None:
    return value.strip() or None if isinstance(value, str) else None


def _categories(value: object) -> tuple[str, ...]:
    items = value.split(";") if isinstance(value, str) else value
    if not isinstance(items, list | tuple):
        return ()
    return tuple(c.strip() for c in items if isinstance(c, str) and c.strip())


def _date(value: object) -> datetime | None:
    """trafilatura gives a day (YYYY-MM-DD); midnight UTC stands for it."""
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.strptime(value[:10], "%Y-%m-%d").replace(tzinfo=UTC)
    except ValueError:
        return None
