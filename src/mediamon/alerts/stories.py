"""The list of stories every mail shows, alert and digest alike: ranked by the stated
order, the first :data:`TOP_STORIES` in full with their snippet, the rest compact,
each with its outlet, time and syndicating outlets; as HTML and as plain text.

Pure, as :mod:`mediamon.alerts.compose`, which puts the section in its mails. Everything
a story supplies is cleaned and escaped; only http(s) URLs become links; an outlet or
title that shares its line with other text is isolated (:func:`~mediamon.alerts.render.isolate`).
"""

from __future__ import annotations

import html
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from mediamon.alerts.catalog import Catalog, local_time
from mediamon.alerts.render import (
    MAX_TITLE_CHARS,
    clean,
    cut,
    esc,
    esc_composed,
    isolate,
    safe_link,
)
from mediamon.alerts.snippet import Snippet

# Stories shown in full (with snippet); the rest of the window as a compact list.
TOP_STORIES = 5
# At most this many in the compact list; beyond, a count (and a link if configured).
MAX_LISTED = 100
# Outlets of a story's copies named after their count ("+12 outlets (a, b, c, d, e, …)").
MAX_OUTLETS_NAMED = 5
# Mentions rank a story up to this many: past a few, repeating the topic's words says no
# more about what an article is about. Uncapped, a keyword-stuffed page (the words 1,000
# times) topped every list it was in, above stories carried by as many outlets and newer.
# bi_window_stories (migration 0030) caps them the same, so the page ranks as the mails.
MAX_RANKED_MENTIONS = 5
MARK_STYLE = "background:#fff3a0;color:#222222;padding:0 1px"
# The highlight again on a span inside the <mark>: Outlook.com, its apps and Yahoo strip
# the tags of <mark> (an HTML5 element they do not know) with their style, and Outlook for
# Windows (Word) ignores them; the span, which every client keeps, still highlights the
# hit there. layout.DARK_STYLE darkens both by these names.
HIT_CLASS = "hit"
HIT_STYLE = "background-color:#fff3a0;color:#222222"


@dataclass(frozen=True)
class StoryItem:
    """One story (a root article and its syndicated copies). Text fields are untrusted.

    Attributes:
        story_id: The root article's id.
        title: Its title.
        url: Its URL.
        outlet: Its source's name.
        published_at: The story's time (UTC).
        other_outlets: Sources of syndicated copies, other than ``outlet``.
        title_hits: Occurrences of the topic in the title.
        mentions: Occurrences in title and body, copies included.
        title_snippet: The whole title with its hits marked, if it has any.
        snippet: The sentence(s) around the first hit in the body.
        site: The outlet's site (the domain of its configured feed URL), named beside
            the outlet when the story has no link; None for an archive source.
    """

    story_id: int
    title: str | None
    url: str
    outlet: str
    published_at: datetime | None
    other_outlets: tuple[str, ...] = ()
    title_hits: int = 0
    mentions: int = 0
    title_snippet: Snippet | None = None
    snippet: Snippet | None = None
    site: str | None = None


def rank_stories(stories: Sequence[StoryItem]) -> list[StoryItem]:
    """The order stated in every mail: the topic in the headline first, then the most
    outlets, then the most mentions (counted up to :data:`MAX_RANKED_MENTIONS`), then the
    newest (then the id, for a stable order)."""
    oldest = datetime.min.replace(tzinfo=ZoneInfo("UTC"))
    return sorted(
        stories,
        key=lambda s: (
            s.title_hits > 0,
            len(s.other_outlets),
            min(s.mentions, MAX_RANKED_MENTIONS),
            s.published_at or oldest,
            -s.story_id,
        ),
        reverse=True,
    )


def _snippet_html(snippet: Snippet) -> str:
    parts = [
        (
            f'<mark style="{MARK_STYLE}"><span class="{HIT_CLASS}" style="{HIT_STYLE}">'
            f"{esc(text, 400)}</span></mark>"
        )
        if hit
        else esc(text, 400)
        for text, hit in snippet.parts
    ]
    # esc() strips edge spaces of each piece: put the spaces between Latin words back.
    joined = _join_pieces(snippet.parts, parts)
    return ("…" if snippet.leading else "") + joined + ("…" if snippet.trailing else "")


def _snippet_text(snippet: Snippet) -> str:
    pieces = snippet.parts
    parts = [
        _marked(clean(text, 400), _in_cjk(pieces, index)) if hit else clean(text, 400)
        for index, (text, hit) in enumerate(pieces)
    ]
    joined = _join_pieces(snippet.parts, parts)
    return ("…" if snippet.leading else "") + joined + ("…" if snippet.trailing else "")


def _marked(text: str, cjk: bool) -> str:
    """A hit in the plain text: 【台湾】 among Chinese, Japanese or Korean letters, where
    asterisks would read as part of the text; *Taiwan* among Latin, Cyrillic, Arabic
    and other letters, the emphasis plain-text mail has used for decades (【Taiwan】 in
    an English sentence read as a bracketed label, not a highlighted word)."""
    return f"【{text}】" if cjk else f"*{text}*"


def _is_cjk(char: str) -> bool:
    """A letter of a script written without spaces in full-width cells (Han, kana,
    Hangul)."""
    return char.isalpha() and unicodedata.east_asian_width(char) in ("W", "F")


def _in_cjk(pieces: Sequence[tuple[str, bool]], index: int) -> bool:
    """Whether the hit ``pieces[index]`` sits in CJK text: it holds a CJK letter, or the
    nearest letter before or after it is one (Taiwan inside a Chinese sentence). Decided
    hit by hit from the words around it: one mail lists Chinese and English articles."""
    if any(_is_cjk(c) for c in pieces[index][0]):
        return True
    before = "".join(text for text, _ in pieces[:index])
    after = "".join(text for text, _ in pieces[index + 1 :])
    nearest = [
        next((c for c in reversed(before) if c.isalpha()), ""),
        next((c for c in after if c.isalpha()), ""),
    ]
    return any(_is_cjk(c) for c in nearest if c)


def _join_pieces(raw: Sequence[tuple[str, bool]], shown: Sequence[str]) -> str:
    out = ""
    for (text, _), piece in zip(raw, shown, strict=True):
        if out and text[:1].isspace():
            out += " "
        out += piece
        if text[-1:].isspace():
            out += " "
    return re.sub(" {2,}", " ", out).strip()


def _capped(snippet: Snippet, limit: int) -> Snippet:
    """``snippet`` cut to ``limit`` characters in all (then ending in "…"). A title with
    its hits marked is a snippet of the whole title, each piece escaped on its own: a
    310-character title was shown whole, 15 lines on a phone, where the plain text and
    the compact list cut every title at 200."""
    kept: list[tuple[str, bool]] = []
    left = limit - 1
    for text, hit in snippet.parts:
        if len(text) > left:
            if left > 0:
                kept.append((cut(text, left), hit))
            return Snippet(tuple(kept), snippet.leading, trailing=True)
        kept.append((text, hit))
        left -= len(text)
    return snippet


def _title_html(story: StoryItem, catalog: Catalog) -> str:
    if story.title_snippet is not None:
        label = _snippet_html(_capped(story.title_snippet, MAX_TITLE_CHARS))
    else:
        label = esc(story.title) or esc(catalog("no_title"))
    target = safe_link(story.url)
    # dir="auto": a title takes the direction of its first letter, as its own paragraph
    # would. In the list's left-to-right line, "מתיחות סביב טייוואן!" drew its "!" at the
    # right, where a Hebrew reader starts.
    if target is None:
        return f'<b dir="auto">{label}</b>'
    return (
        f'<a dir="auto" href="{html.escape(target, quote=True)}" style="color:#1a4f8b">'
        f"<b>{label}</b></a>"
    )


def _when(moment: datetime | None, zone: ZoneInfo, catalog: Catalog, stated: str | None) -> str:
    return local_time(moment, zone, stated) if moment is not None else catalog("unknown_time")


def _meta(story: StoryItem, zone: ZoneInfo, catalog: Catalog, stated: str | None) -> list[str]:
    outlet = isolate(story.outlet, 80)
    if story.site and safe_link(story.url) is None:
        # No link (missing, not http(s), too long): the reader still learns where to look,
        # as Google Alerts names a result's domain. Plain text, escaped with the line.
        outlet = f"{outlet} ({isolate(story.site, 80)})"
    items = [outlet, _when(story.published_at, zone, catalog, stated)]
    if story.other_outlets:
        names = ", ".join(isolate(o, 40) for o in story.other_outlets[:MAX_OUTLETS_NAMED])
        if len(story.other_outlets) > MAX_OUTLETS_NAMED:
            # "+12 outlets (a, b, c, d, e)" read as if those five were the twelve.
            names += ", …"
        items.append(f"{catalog.counted('more_outlets', len(story.other_outlets))} ({names})")
    return items


def _story_html(story: StoryItem, zone: ZoneInfo, catalog: Catalog, stated: str | None) -> str:
    meta = " · ".join(esc_composed(m, 400) for m in _meta(story, zone, catalog, stated))
    snippet = (
        f'<div class="snippet" dir="auto" style="margin:2px 0 0">'
        f"{_snippet_html(story.snippet)}</div>"
        if story.snippet is not None
        else ""
    )
    return (
        f'<li class="story" data-story="{story.story_id}" style="margin:0 0 12px">'
        f"{_title_html(story, catalog)}"
        f'<div class="muted" style="color:#666;font-size:13px">{meta}</div>{snippet}</li>'
    )


def _compact_html(story: StoryItem, zone: ZoneInfo, catalog: Catalog, stated: str | None) -> str:
    title = esc_composed(isolate(story.title), 210) or esc(catalog("no_title"))
    target = safe_link(story.url)
    if target is not None:
        title = f'<a href="{html.escape(target, quote=True)}" style="color:#1a4f8b">{title}</a>'
    meta = " · ".join(esc_composed(m, 400) for m in _meta(story, zone, catalog, stated))
    return (
        f'<li class="story compact" data-story="{story.story_id}" style="margin:0 0 6px">'
        f'{title} <span class="muted" style="color:#666;font-size:13px">· {meta}</span></li>'
    )


def _story_lines(
    story: StoryItem, index: int, zone: ZoneInfo, catalog: Catalog, stated: str | None
) -> list[str]:
    title = isolate(story.title) or catalog("no_title")
    lines = [f"{index}. {title}", "   " + " · ".join(_meta(story, zone, catalog, stated))]
    if story.snippet is not None:
        lines.append("   " + _snippet_text(story.snippet))
    link = safe_link(story.url)
    if link is not None:
        lines.append("   " + link)
    return lines


def stories_section(
    stories: Sequence[StoryItem],
    zone: ZoneInfo,
    catalog: Catalog,
    more_link: str | None,
    *,
    limit: int = TOP_STORIES + MAX_LISTED,
    full: int = TOP_STORIES,
    stated: str | None = None,
) -> tuple[str, list[str]]:
    """The first ``full`` stories in full and the compact rest, ``limit`` in all (the
    others counted, with ``more_link``): (HTML, text lines). ``stated``: the UTC offset
    the mail says once above the list (``UTC+08:00``); a story's time in it is shown
    without it."""
    shown = list(stories[: max(0, limit)])
    top, listed = shown[: max(0, full)], shown[max(0, full) :]
    hidden = len(stories) - len(shown)
    parts = (
        [
            '<ol style="padding-left:22px;margin:8px 0">'
            + "".join(_story_html(s, zone, catalog, stated) for s in top)
            + "</ol>"
        ]
        if top
        else []
    )
    lines: list[str] = []
    for index, story in enumerate(top, 1):
        lines += _story_lines(story, index, zone, catalog, stated) + [""]
    if listed:
        parts.append(f'<h4 style="margin:12px 0 4px">{esc(catalog("more_heading"))}</h4>')
        parts.append(
            '<ul style="padding-left:22px;margin:4px 0">'
            + "".join(_compact_html(s, zone, catalog, stated) for s in listed)
            + "</ul>"
        )
        lines.append(catalog("more_heading"))
        for story in listed:
            meta = " · ".join(_meta(story, zone, catalog, stated))
            title = isolate(story.title) or catalog("no_title")
            link = safe_link(story.url)
            lines.append(f"- {title} · {meta}" + (f"  {link}" if link else ""))
        lines.append("")
    if more_link and stories and not hidden:
        # Every story is listed, and the page shows them too, with the chart and the
        # other topics: a Google Alerts reader looks for "See more results" under the
        # list. Without it the mail linked the page only when it left stories out.
        words = esc(catalog("all_link_text"))
        parts.append(
            '<p class="all-stories" style="margin:4px 0 8px;font-size:14px">'
            f'<a href="{html.escape(more_link, quote=True)}" style="color:#1a4f8b">{words}</a></p>'
        )
        lines += [catalog("all_elsewhere", link=more_link), ""]
    if hidden:
        if more_link:
            # Words, not the URL: its 150 characters of query took four lines at 390 px,
            # under every topic of a long digest. The plain text keeps the URL.
            words = esc(catalog("more_link_text"))
            link = f'<a href="{html.escape(more_link, quote=True)}">{words}</a>'
            parts.append(f"<p>{catalog('more_elsewhere', n=hidden, link=link)}</p>")
            lines.append(catalog("more_elsewhere", n=hidden, link=more_link))
        else:
            parts.append(f"<p>{esc(catalog('more_not_shown', n=hidden))}</p>")
            lines.append(catalog("more_not_shown", n=hidden))
        lines.append("")  # as after every other block: the next heading stands apart
    return "".join(parts), lines


# What an inbox shows of a preview beside the subject: about 90 characters on a phone,
# 140 on a desktop. Headlines are added while they fit (the first one always, cut).
PREHEADER_CHARS = 140
PREHEADER_TITLE_CHARS = 80


def preheader(sections: Sequence[Sequence[StoryItem]], catalog: Catalog) -> str:
    """The top headlines with their outlets, for the inbox's preview: the first story of
    each section (a digest's topics, in their order), then the second of each, and so on,
    as many as fit in :data:`PREHEADER_CHARS`. Composed text (titles isolated); "" when
    there is no story. A Google Alerts reader sees the first headline under the subject."""
    separator = " · "
    picked: list[str] = []
    deepest = max((len(s) for s in sections), default=0)
    for depth in range(deepest):
        for section in sections:
            if depth >= len(section):
                continue
            story = section[depth]
            title = isolate(story.title, PREHEADER_TITLE_CHARS) or catalog("no_title")
            item = catalog("preheader_story", title=title, outlet=isolate(story.outlet, 40))
            if picked and len(separator.join([*picked, item])) > PREHEADER_CHARS:
                return separator.join(picked)
            picked.append(item)
    return separator.join(picked)
