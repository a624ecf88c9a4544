"""One article from a feed item and its page (or archived HTML): decode, extract with
trafilatura (:mod:`mediamon.ingest.extract`), normalize (:mod:`mediamon.ingest.normalize`).
Pure and picklable: runs in the extraction process pool."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from html import unescape
from typing import Any, TypeVar

from mediamon import limits
from mediamon.ingest import cpulimit, memory
from mediamon.ingest.decode import decode_html
from mediamon.ingest.extract import (
    Extracted,
    ParserSafe,
    extract,
    parser_safe,
    text_of_costly_html,
)
from mediamon.ingest.feeds import MARKUP_TAG, FeedItem
from mediamon.ingest.fetch import FetchResult
from mediamon.ingest.normalize import (
    canonical_url,
    clean_text,
    detect_language,
    duplicate_keys,
    primary_language,
    to_utc,
    without_headline,
)
from mediamon.ingest.provenance import site_of
from mediamon.ingest.site_rules import SiteRule
from mediamon.ingest.sniff import binary_kind
from mediamon.limits import cap, cap_optional
from mediamon.models import Article
from mediamon.text import fold

T = TypeVar("T")
logger = logging.getLogger(__name__)

MIN_PAGE_TEXT_CHARS = 40  # shorter "articles" are navigation or paywall stubs
FUTURE_TOLERANCE = timedelta(hours=1)
# No news on the web is older. Earlier dates are feed bugs: a CMS without a date writes
# the epoch (1970-01-01), a template year 1000 or 0001. Believed, they put a story of
# today outside every spike window and digest, and at the start of the BI's day series,
# which runs from the oldest story. htmldate applies the same floor to pages.
EARLIEST_PUBLISHED = datetime(1995, 1, 1, tzinfo=UTC)
HTML_TYPES = ("text/html", "application/xhtml+xml", "")


@dataclass(frozen=True)
class ArticleJob:
    """Everything needed to build one article, picklable for the process pool."""

    item: FeedItem
    source_language: str | None
    drop_params: tuple[str, ...]
    seen_at: datetime
    page: FetchResult | None = None
    archived_html: str | None = None
    # Per-site extraction rules, loaded once per run (None: those of the configured file).
    site_rules: Mapping[str, SiteRule] | None = None
    # The site of the source's feed (mediamon.ingest.provenance.site_of; None: an
    # archive): what its feed says of a page on another site comes after the page's own.
    own_site: str | None = None


@dataclass(frozen=True)
class BuildResult:
    article: Article | None
    # why the page's own text was not used or was read in part, or why nothing was built
    note: str | None


def _html2txt(html: str) -> str:
    if "<" not in html:  # plain text, as many feeds' summaries are: trafilatura would
        return unescape(html)  # return "" and log an ERROR for every such item
    safe = parser_safe(html)
    if safe.refused:  # a feed's HTML built to cost the parser minutes
        return text_of_costly_html(html)
    return _all_text(safe.html)


def _all_text(html: str) -> str:
    """All the text of HTML made safe to parse (:func:`parser_safe`)."""
    import trafilatura

    if "<body" not in html.lower():  # a fragment, as feeds' summaries are: html2txt reads
        html = f"<html><body>{html}</body></html>"  # only a body's text ("" and an ERROR)
    return str(trafilatura.html2txt(html) or "")


def html_to_text(html: str) -> str:
    """Plain text of an HTML fragment (feed content blocks): the extracted main text when
    there is one, else all the text. Feeds also put plain text where HTML belongs."""
    if "<" not in html:
        return unescape(html)
    safe = parser_safe(html)
    if safe.refused:  # a feed's HTML built to cost the parser minutes
        return text_of_costly_html(html)
    html = f"<html><body>{safe.html}</body></html>"
    extracted = extract(html, with_metadata=False, fragment=True)
    if extracted and len(extracted.text) >= MIN_PAGE_TEXT_CHARS:
        return extracted.text
    return _all_text(html)


def _extract_bounded(
    html: str, url: str | None, **options: Any
) -> tuple[Extracted | None, str | None]:
    """:func:`extract`, given up after ``cpulimit.MAX_EXTRACTION_CPU_S`` of CPU in an
    extraction worker: (the extraction, None) or (None, why it was given up)."""
    try:
        with cpulimit.cpu_limit(cpulimit.MAX_EXTRACTION_CPU_S):
            return extract(html, url, **options), None
    except cpulimit.ExtractionTimeout as stopped:
        logger.warning("extraction of %s %s", url, stopped)
        return None, f"extraction {stopped} ({len(html):,} characters of HTML)"


def image_url(image: str | None, page_url: str | None) -> str | None:
    """The page's image (``og:image`` …) as an absolute http(s) URL that passes the checks
    an item link passes (mediamon.ingest.netguard's syntax check, at most 2,048
    characters, no user name or password), without spaces and not naming a loopback,
    private, link-local or cloud-metadata address; else None. A ``javascript:``,
    ``data:`` or ``file:`` image, or one at 169.254.169.254, would be a link or a
    request from a reader's browser once a mail or BI view shows it."""
    from urllib.parse import urljoin, urlsplit

    from mediamon.ingest.netguard import BlockedURL, check_url_syntax, names_private_address

    image = (image or "").strip()
    if not image:
        return None
    if page_url and page_url.startswith(("http://", "https://")):
        try:
            image = urljoin(page_url, image)  # relative to the page, as a browser reads it
        except ValueError:
            return None
    try:
        _scheme, host, _port = check_url_syntax(image)
    except BlockedURL:
        return None
    if "@" in urlsplit(image).netloc or any(c.isspace() for c in image):
        return None
    if names_private_address(host):
        return None
    return image


def _parser_safe(html: str, url: str | None) -> ParserSafe:
    """The page as an HTML parser may read it (:func:`parser_safe`: a parse of it as it
    is could cost minutes); a refusal is logged."""
    safe = parser_safe(html)
    if safe.refused:
        logger.warning("page %s refused before parsing: %s", url, safe.refused)
    elif safe.escaped:  # mostly in scripts, which read like such tags: no news
        logger.debug("page %s: %d run(s) read as text, not as tags", url, safe.escaped)
    return safe


def _feed_text(item: FeedItem) -> tuple[str, str] | None:
    """The feed's own text for an item, full content before summary, with its origin."""
    for origin, html in (("feed_content", item.content_html), ("feed_summary", item.summary_html)):
        if html and (text := html_to_text(html).strip()):
            return origin, text
    return None


def _on_another_site(job: ArticleJob, final_url: str) -> bool:
    """Whether the page read is on another site than the source's feed (a link to it, or
    a redirect to it). Any feed may list any site's story: what it says of that page
    (title, date, author, categories, summary, language) is its word, not the site's. A
    hostile feed listing another site's story with a headline of its own had that
    headline stored over the site's text, its date too, and the site's own source then
    skipped the story as known: its own title never replaced the fake one."""
    return job.own_site is not None and site_of(final_url) != job.own_site


def _known_metadata(item: FeedItem) -> list[str]:
    """What the feed item already says, so the page need not be searched for it (the
    feed's own values are used first anyway)."""
    given = {
        # a title of invisible characters alone (zero-width spaces, bidi controls) is none
        "title": clean_text(item.title or ""),
        "author": item.author,
        "date": item.published_at,
        "categories": item.categories,
    }
    return [name for name, value in given.items() if value]


def build_article(job: ArticleJob) -> BuildResult:
    """Turn a feed item (and its page, or archived HTML) into a normalized article."""
    item = job.item
    text: str | None = None
    origin = "page"
    note: str | None = None
    meta = None
    raw: bytes | None = None
    final_url = item.link
    page_first = False  # the page's own title, date … before the feed's (_on_another_site)
    if job.archived_html is not None:
        origin = "archive"
        raw = job.archived_html.encode("utf-8")
        safe = _parser_safe(job.archived_html, item.link)
        if safe.refused:
            return BuildResult(None, f"archived HTML refused before parsing: {safe.refused}")
        meta, stopped = _extract_bounded(
            safe.html,
            item.link,
            known=_known_metadata(item),
            rules=job.site_rules,
            fragment=True,
        )
        if stopped:
            return BuildResult(None, f"archived HTML: {stopped}")
        text = meta.text if meta else html_to_text(job.archived_html) or None
        if not text:
            return BuildResult(None, "archived HTML holds no text")
    elif job.page is not None and job.page.ok:
        raw = job.page.content
        final_url = job.page.final_url
        page_first = _on_another_site(job, final_url)
        if job.page.content_type not in HTML_TYPES:
            note = f"page is {job.page.content_type}, not HTML"
        elif kind := binary_kind(job.page.content, job.page.charset):
            # a CMS's attachment served as text/html, or without a type: decoded it is
            # 100 kB of random CJK characters, which were stored as the article
            served = job.page.content_type or "no content type"
            note = f"page is {kind}, not HTML (served as {served})"
        else:
            decoded = decode_html(job.page.content, job.page.charset, language=job.source_language)
            safe = _parser_safe(decoded.text, final_url)
            if safe.refused:
                note = f"page refused before parsing: {safe.refused}"
            else:
                meta, stopped = _extract_bounded(
                    safe.html,
                    final_url,
                    known=[] if page_first else _known_metadata(item),
                    rules=job.site_rules,
                    title=item.title,
                )
                if meta and len(meta.text) >= MIN_PAGE_TEXT_CHARS:
                    text = meta.text
                    note = f"page {meta.cut}" if meta.cut else None
                else:
                    note = f"page {stopped}" if stopped else "no article text found in the page"
    elif job.page is not None:
        note = f"page not fetched ({job.page.error})"
    if text is None:
        page_first = False  # the feed's text: the feed's word on every field, or a claim
        fallback = _feed_text(item)
        if fallback is None:
            return BuildResult(None, (note + "; " if note else "") + "feed item has no text")
        origin, text = fallback
        note = (note + f"; used {origin}") if note else None

    # The feed's title, else the page's (for a page on another site, the other way
    # round): a feed title of invisible characters alone (zero-width spaces, bidi or
    # other controls) cleans to nothing, and it hid the page's own title.
    title = cap(
        _first(
            page_first,
            clean_text(item.title or ""),
            clean_text(_page_title(meta.title if meta else None)),
        ),
        limits.MAX_TITLE_CHARS,
    )
    body = without_headline(cap(clean_text(text), limits.MAX_BODY_CHARS), title)
    # The title stays out: syndicated copies often retitle. Folding may lengthen the text
    # (NFKC spells out ligatures and ellipses): the cap holds after it too.
    match_text = fold(body)[: limits.MAX_BODY_CHARS]
    published = _published(page_first, item.published_at, meta.published_at if meta else None)
    if published is not None:
        published = to_utc(published)
        if not EARLIEST_PUBLISHED <= published <= job.seen_at + FUTURE_TOLERANCE:
            published = None  # a date in the future is a feed bug, not news from tomorrow
    # the page's declared language is checked against the script (templates declare
    # "en" on Chinese pages), so it comes after the feed's and the source's. The
    # source's is a tag as written in sources.yaml: "zh-CN" was stored as "zh-cn", which
    # no topic scoped to languages [zh] matched, nor the BI's language filters. Neither
    # says what another site's page is written in.
    language = (
        None
        if page_first
        else primary_language(item.language) or primary_language(job.source_language)
    ) or detect_language(body, declared=meta.language if meta else None)
    feed_summary = None
    if item.summary_html and origin != "feed_summary":
        feed_summary = clean_text(_html2txt(item.summary_html)) or None
    summary = _first(page_first, feed_summary, meta.description if meta else None)
    text_hash, sentences = duplicate_keys(match_text)
    article = Article(
        canonical_url=canonical_url(final_url, job.drop_params),
        url=item.link,
        title=title or None,
        author=cap_optional(
            clean_text(_first(page_first, item.author, meta.author if meta else None) or "")
            or None,
            limits.MAX_AUTHOR_CHARS,
        ),
        published_at=published,
        language=language,
        body_text=body,
        match_text=match_text,
        summary=cap_optional(summary, limits.MAX_SUMMARY_CHARS),
        image_url=image_url(meta.image, final_url) if meta else None,
        categories=tuple(
            cap(cleaned, limits.MAX_CATEGORY_CHARS)
            for c in (_first(page_first, item.categories, meta.categories if meta else ()) or ())[
                : limits.MAX_CATEGORIES
            ]
            if (cleaned := clean_text(c))
        ),
        content_origin=origin,
        content_hash=text_hash,
        sentence_hashes=sentences,
        raw_sha256=hashlib.sha256(raw).digest() if raw is not None else None,
        raw_bytes=len(raw) if raw is not None else None,
    )
    return BuildResult(article, note)


def _page_title(title: str | None) -> str:
    """A page's title as text: pages escape markup once too often as feeds do
    (``&amp;lt;b&amp;gt;要闻&amp;lt;/b&amp;gt;`` in ``<title>`` or ``og:title``), and the
    parser's one reading left ``<b>要闻</b>``, shown as typed in mails, BI and the page.
    Tags are dropped as from a feed's title; ``5 < 6 > 4`` is no tag and stays."""
    if not title:
        return ""
    return MARKUP_TAG.sub("", title) if "<" in title else title


def _first(page_first: bool, feed_value: T, page_value: T) -> T:
    """The feed's value unless it is empty, then the page's; the other way round when
    ``page_first`` (a page on another site than the feed's)."""
    if page_first:
        return page_value or feed_value
    return feed_value or page_value


# A page's date is read to the day: a feed's time within this of it is the same date.
SAME_DATE_SLACK = timedelta(days=2)


def _published(
    page_first: bool, feed_date: datetime | None, page_date: datetime | None
) -> datetime | None:
    """The publication time: the feed's, else the page's. For a page on another site the
    page's date decides, but it is read to the day only: the feed's time stands when it
    falls on that date (give or take the zones), so an aggregator's stories keep their
    hour for the hourly spike windows."""
    if not page_first or page_date is None:
        return feed_date or page_date
    if feed_date is not None and abs(to_utc(feed_date) - to_utc(page_date)) <= SAME_DATE_SLACK:
        return feed_date
    return page_date


def build_article_safely(job: ArticleJob) -> BuildResult:
    """:func:`build_article`, with a crash on one hostile page turned into that item's
    failure instead of the whole source's (the traceback goes to the log)."""
    try:
        return build_article(job)
    except Exception as error:  # noqa: BLE001 - recorded per item, never fatal to the run
        logger.exception("building %s failed", job.item.link)
        return BuildResult(None, f"extraction failed: {type(error).__name__}: {error}"[:300])
    finally:
        memory.page_done()  # its parse trees go back to the system now and then
