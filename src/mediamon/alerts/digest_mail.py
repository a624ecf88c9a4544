"""Digests as people read them: the period's spikes on top, then each topic's new
stories (the top ones in full, the rest compact), within what a mail may weigh: a story
budget, topics past it named together, so that Gmail, which clips past 102 kB, still
shows the footer and its unsubscribe link.

Pure, as :mod:`mediamon.alerts.compose`, whose pieces (reason, charts, terms, list
headers) the alert mail and the digest share; :mod:`mediamon.alerts.digest` sends it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.message import EmailMessage

from mediamon.alerts import unsubscribe
from mediamon.alerts.catalog import Catalog, local_time, utc_offset
from mediamon.alerts.compose import (
    MAX_BUDGET_ROUNDS,
    MAX_SUBJECT_TOPICS,
    SUBJECT_TOPIC_CHARS,
    SUBJECT_TOPICS_CHARS,
    AlertMail,
    MailOptions,
    Reader,
    chart_html,
    chart_image,
    chart_lines,
    footer_unsubscribe_uri,
    list_headers,
    more_link,
    reason,
    terms_line,
)
from mediamon.alerts.layout import bar, footer, page
from mediamon.alerts.render import (
    InlineImage,
    Rendered,
    build_message,
    esc,
    esc_composed,
    isolate,
    whole_offsets,
)
from mediamon.alerts.stories import (
    MAX_RANKED_MENTIONS,
    TOP_STORIES,
    StoryItem,
    preheader,
    stories_section,
)

# Charts in one digest (one per spike, newest first).
MAX_DIGEST_CHARTS = 3
# Stories a digest lists, per topic and in all (the top ones of each topic, in the topics'
# order); the rest are counted, with a link to the mediamon page's window when
# MEDIAMON_BASE_URL is set. Without a cap, 300 busy topics of 105 listed stories each made a
# 20 MB mail, over most mail servers' size limit: refused, and retried every hour.
DIGEST_TOPIC_STORIES = 50
DIGEST_STORIES = 200
# Topics past the story budget each had a heading and a "N more stories" link in the HTML,
# 310 bytes a topic: a recipient of 300 topics got 153 kB of HTML, 3,000 topics 945 kB,
# and Gmail clips at 102 kB ("[Message clipped]"), footer and unsubscribe link included.
# Past DIGEST_UNLISTED_SECTIONS of them, the HTML names the next DIGEST_UNLISTED_NAMES in
# one paragraph and counts the rest; the plain text still gives each its count and link.
DIGEST_UNLISTED_SECTIONS = 10
DIGEST_UNLISTED_NAMES = 100
# Stories a digest shows in full (title, outlet, snippet), the first of each topic's top
# TOP_STORIES in the topics' order; the others it lists are compact. Many topics of a few
# stories each had all 200 in full, 600 bytes each: 120 kB of HTML, past Gmail's 102 kB.
DIGEST_FULL_STORIES = 40
# Topics a digest names one by one where it could name them all (the footer, the contents
# at the top, a page link after every list); past these it counts the rest.
DIGEST_NAMED_TOPICS = 20
# The most a digest's HTML part may weigh. Gmail clips a mail past 102 kB (what it shows
# ends in "[Message clipped]", the footer and its unsubscribe link cut off); the caps
# above count stories, not bytes, and 200 stories of 200-character Chinese titles (600
# bytes of UTF-8 each), long links and outlets made 150 kB. Past this, fewer stories are
# listed (at most compose.MAX_BUDGET_ROUNDS renderings, as an alert), each topic counting
# the rest.
DIGEST_HTML_BYTES = 90_000


@dataclass(frozen=True)
class TopicStories:
    """A digest's section: one topic and its new stories, ranked (and the topic's
    rules as written: ``terms``, ``exclude``)."""

    topic_key: str
    topic_name: str
    stories: tuple[StoryItem, ...]
    terms: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()


@dataclass(frozen=True)
class DigestMail:
    """What a digest says.

    Attributes:
        cadence: ``daily`` or ``weekly``.
        period_start: Start of the period (UTC).
        period_end: End of the period (UTC, exclusive).
        spikes: The period's alerts of the reader's topics, newest first.
        topics: The reader's topics with new stories (topics without any are left out).
    """

    cadence: str
    period_start: datetime
    period_end: datetime
    spikes: tuple[AlertMail, ...]
    topics: tuple[TopicStories, ...]

    @property
    def story_count(self) -> int:
        """Distinct stories (one that mentions two topics is listed under both)."""
        return len({s.story_id for t in self.topics for s in t.stories})


def render_digest_mail(digest: DigestMail, reader: Reader, options: MailOptions) -> Rendered:
    """One digest for one reader: the period's spikes on top, then every new story of
    each topic (top ones in full, the rest compact), its HTML within
    :data:`DIGEST_HTML_BYTES`: past it, fewer stories are listed (each topic then
    counts the rest, with its link to the page) until it fits."""
    budget = DigestBudget()
    rendered = _render_digest(digest, reader, options, budget)
    for _ in range(MAX_BUDGET_ROUNDS):
        size = len(rendered.html.encode("utf-8"))
        if size <= DIGEST_HTML_BYTES or budget.listed == 0:
            break
        # Scaled by what the listed stories weigh, with a margin: each round lists
        # fewer, so it ends; two rounds are enough for the digests measured.
        share = DIGEST_HTML_BYTES / size * 0.9
        budget = DigestBudget(
            listed=max(0, min(budget.listed - 1, int(budget.listed * share))),
            full=max(0, int(budget.full * share)),
        )
        rendered = _render_digest(digest, reader, options, budget)
    return rendered


def _render_digest(
    digest: DigestMail, reader: Reader, options: MailOptions, budget: DigestBudget
) -> Rendered:
    """The digest with at most ``budget``'s stories listed and in full."""
    catalog = Catalog.for_locale(reader.locale)
    zone = reader.zone(options)
    names = [isolate(t.topic_name, 40) for t in digest.topics]
    shown_names = _subject_names(digest.topics, catalog)
    count = catalog.counted("new_stories", digest.story_count)
    last_day = (digest.period_end - timedelta(minutes=1)).astimezone(zone)
    first_day = digest.period_start.astimezone(zone)
    if digest.cadence == "weekly":
        subject = catalog(
            "subject_digest_weekly",
            first=f"{first_day:%m-%d}",
            last=f"{last_day:%m-%d}",
            count=count,
            topics=shown_names,
        )
    else:
        subject = catalog(
            "subject_digest_daily", day=f"{last_day:%Y-%m-%d}", count=count, topics=shown_names
        )
    start, end = local_time(digest.period_start, zone), local_time(digest.period_end, zone)
    # The zone is said once, in the heading; the stories' times below go without it.
    stated = utc_offset(digest.period_end.astimezone(zone))
    heading = catalog(
        "with_zone",
        text=catalog(
            "digest_heading",
            count=count,
            start=local_time(digest.period_start, zone, stated),
            end=local_time(digest.period_end, zone, stated),
        ),
        zone=stated,
    )
    parts = [
        bar(subject.removeprefix("[mediamon] ")),
        f'<p style="margin:12px 0"><b>{whole_offsets(esc(heading, 400))}</b></p>',
    ]
    text = [subject.removeprefix("[mediamon] "), heading]
    overall = budget.listed
    limits = _digest_limits(digest, budget)
    # Distinct stories, as the count in the subject (one may be listed under two topics).
    listed = {
        s.story_id for t, (n, _) in zip(digest.topics, limits, strict=True) for s in t.stories[:n]
    }
    if len(listed) < digest.story_count:
        capped = catalog(
            "digest_capped",
            shown=len(listed),
            total=digest.story_count,
            per_topic=min(DIGEST_TOPIC_STORIES, overall),
            overall=overall,
        )
        parts.append(f'<p class="muted" style="color:#555;margin:0 0 12px">{esc(capped, 400)}</p>')
        text.append(capped)
    if len(digest.topics) > 1:
        contents_html, contents_lines = _contents(
            digest.topics, _sectioned([n for n, _ in limits]), catalog
        )
        parts.append(contents_html)
        text += ["", *contents_lines]
    text.append("")
    images: list[InlineImage] = []
    # The spikes' day tables go after the stories in the plain text: three tables of 12
    # lines came before the first story (at line 50), where the HTML shows three charts.
    tables: list[str] = []
    if digest.spikes:
        parts.append(
            f'<h2 style="margin:16px 0 4px;font-size:18px">{esc(catalog("spikes_heading"))}</h2>'
        )
        text += [catalog("spikes_heading"), ""]
        for index, spike in enumerate(digest.spikes):
            why = reason(spike, zone, catalog)
            parts.append(f'<p style="margin:8px 0 4px"><b>{esc_composed(why, 1000)}</b></p>')
            text.append("* " + why)
            if index < MAX_DIGEST_CHARTS:
                image = chart_image(spike, zone, catalog, f"chart-{index}-{spike.topic_key}")
                if image is not None:
                    images.append(image)
                    parts.append(chart_html(image, spike, zone, catalog))
                tables += chart_lines(spike, zone, catalog, named=True)
        text.append("")
    sectioned = _sectioned([n for n, _ in limits])
    unlisted: list[TopicStories] = []  # past the budget and DIGEST_UNLISTED_SECTIONS
    rule_said = False
    for index, (section, (limit, full)) in enumerate(zip(digest.topics, limits, strict=True)):
        title = catalog(
            "topic_heading",
            topic=isolate(section.topic_name, 80),
            count=catalog.counted("new_stories", len(section.stories)),
        )
        link = more_link(options, section.topic_key, digest.period_start, digest.period_end)
        # Each list ends with a link to the page; past DIGEST_NAMED_TOPICS topics only
        # where stories were left out (it then says how many): 77 links were 16 kB of 102.
        if index >= DIGEST_NAMED_TOPICS and limit >= len(section.stories):
            link = None
        html_part, lines = stories_section(
            section.stories, zone, catalog, link, limit=limit, full=full, stated=stated
        )
        # The order is stated where stories are listed, not above a count alone; once, at
        # the first topic listed: the same 200 bytes under each of 67 topics took 13 kB.
        rule = catalog("order_rule", cap=MAX_RANKED_MENTIONS) if limit and not rule_said else ""
        rule_said = rule_said or bool(rule)
        matches = terms_line(section.terms, section.exclude, catalog)
        text += ["== " + title, *([matches] if matches else []), *([rule, ""] if rule else [])]
        text += lines
        if not sectioned[index]:
            unlisted.append(section)
            continue
        parts += [
            f'<h2 class="topic" id="topic-{index}" style="margin:20px 0 2px;font-size:18px">'
            f"{esc_composed(title, 200)}</h2>",
            f'<div class="muted terms" style="color:#555;font-size:13px">'
            f"{esc_composed(matches, 1000)}</div>"
            if matches
            else "",
            f'<div class="muted" style="color:#666;font-size:12px">{esc(rule, 400)}</div>'
            if rule
            else "",
            html_part,
        ]
    if unlisted:
        parts.append(f"<p>{esc_composed(_unlisted_topics(unlisted, catalog), 20_000)}</p>")
    cadence = catalog(f"cadence_{digest.cadence}")
    # The footer names the first DIGEST_NAMED_TOPICS topics and counts the others: it
    # named them all, cut at 2,000 characters, twice, and their keys: 10 kB at 300 topics.
    shown = DIGEST_NAMED_TOPICS
    more = len(digest.topics) - shown
    keys = ", ".join(t.topic_key for t in digest.topics[:shown])
    all_names = (" 、" if catalog.is_chinese else ", ").join(names[:shown]) or "–"
    if more > 0:
        all_names = catalog("more_topics", names=all_names, n=more)
        keys = catalog("more_topics", names=keys, n=more)
    footer_lines, footer_html = footer(
        catalog,
        catalog("why_digest", cadence=cadence, address=reader.address, topics=all_names),
        catalog("period", start=start, end=end),
        contact=options.unsubscribe_address,
        topic=all_names,
        key=keys,
        # A digest gathers all the reader's topics: its link leaves every mediamon mail.
        uri=footer_unsubscribe_uri(
            options, f"digest-{digest.cadence}", reader.address, unsubscribe.ALL_TOPICS
        ),
        manage=unsubscribe.manage_link(
            options.public_url, options.unsubscribe_keys, reader.address
        ),
    )
    parts.append(footer_html)
    text += [*tables, "-- ", *footer_lines]
    return Rendered(
        subject,
        "\n".join(text) + "\n",
        page(
            subject,
            "".join(parts),
            catalog.locale,
            preheader(
                [t.stories[:n] for t, (n, _) in zip(digest.topics, limits, strict=True)], catalog
            ),
        ),
        tuple(images),
    )


def _contents(
    sections: Sequence[TopicStories], sectioned: Sequence[bool], catalog: Catalog
) -> tuple[str, list[str]]:
    """A digest's topics and their counts, on top, each linked to its section: the
    subject named four topics at most and the total only, and a weekly digest of several
    busy topics is metres long on a phone. The HTML lists the topics it gives a section
    (the others are named in one paragraph at the end); the text lists all. (HTML, text
    lines)"""
    items = [
        catalog(
            "topic_heading",
            topic=isolate(section.topic_name, 40),
            count=catalog.counted("new_stories", len(section.stories)),
        )
        for section in sections
    ]
    linked = [index for index in range(len(items)) if sectioned[index]]
    links = " · ".join(
        f'<a href="#topic-{index}" style="color:#1a4f8b">{esc_composed(items[index], 200)}</a>'
        for index in linked[:DIGEST_NAMED_TOPICS]
    )
    if len(linked) > DIGEST_NAMED_TOPICS:  # as the footer: 67 links were 6 kB of 102
        links = catalog("more_topics", names=links, n=len(linked) - DIGEST_NAMED_TOPICS)
    heading = catalog("contents_heading")
    html_part = (
        f'<p class="contents" style="margin:0 0 12px;font-size:14px">{esc(heading)} {links}</p>'
    )
    return html_part, [heading, *(f"- {item}" for item in items)]


def _sectioned(limits: Sequence[int]) -> list[bool]:
    """Which topics a digest's HTML gives a section: those with stories listed, and the
    first :data:`DIGEST_UNLISTED_SECTIONS` of the others (the rest are named together)."""
    shown, unlisted = [], 0
    for limit in limits:
        unlisted += not limit
        shown.append(bool(limit) or unlisted <= DIGEST_UNLISTED_SECTIONS)
    return shown


def _unlisted_topics(sections: Sequence[TopicStories], catalog: Catalog) -> str:
    """One paragraph for the topics a digest's HTML gives no section: the first
    :data:`DIGEST_UNLISTED_NAMES` named (each cut at 40 characters), the others counted."""
    separator = "、" if catalog.is_chinese else ", "
    names = separator.join(isolate(s.topic_name, 40) for s in sections[:DIGEST_UNLISTED_NAMES])
    more = len(sections) - DIGEST_UNLISTED_NAMES
    if more > 0:
        names = catalog("more_topics", names=names, n=more)
    stories = sum(len(s.stories) for s in sections)
    return catalog(
        "unlisted_topics",
        n=len(sections),
        count=catalog.counted("new_stories", stories),
        names=names,
    )


def _subject_names(sections: Sequence[TopicStories], catalog: Catalog) -> str:
    """The topics a digest's subject names: each cut to :data:`SUBJECT_TOPIC_CHARS`, at
    most :data:`MAX_SUBJECT_TOPICS` and as many as fit in :data:`SUBJECT_TOPICS_CHARS` (at
    least one), then how many more. Four names of 40 characters made a subject of 215,
    its end past any inbox's column."""
    separator = "、" if catalog.is_chinese else ", "
    shown: list[str] = []
    for section in sections[:MAX_SUBJECT_TOPICS]:
        name = isolate(section.topic_name, SUBJECT_TOPIC_CHARS)
        if shown and len(separator.join([*shown, name])) > SUBJECT_TOPICS_CHARS:
            break
        shown.append(name)
    names = separator.join(shown)
    more = len(sections) - len(shown)
    if not more:
        return names
    return catalog("more_topics", names=names, n=more)


@dataclass
class DigestBudget:
    """What a digest lists, given out topic by topic in the topics' order: at most
    :data:`DIGEST_TOPIC_STORIES` of a topic and :data:`DIGEST_STORIES` in all, of which
    each topic's first :data:`~mediamon.alerts.stories.TOP_STORIES` in full while
    :data:`DIGEST_FULL_STORIES` last (a topic after the budget is spent shows its count
    and link only). One rule for the snippets cut (:func:`mediamon.alerts.digest.
    build_digest`) and the stories shown (:func:`render_digest_mail`)."""

    listed: int = DIGEST_STORIES
    full: int = DIGEST_FULL_STORIES

    def most_in_full(self) -> int:
        """How many of the next topic's stories at most are shown in full."""
        return max(0, min(TOP_STORIES, self.listed, self.full))

    def take(self, stories: int) -> tuple[int, int]:
        """(listed, in full) of the next topic, of ``stories`` stories."""
        limit = max(0, min(stories, DIGEST_TOPIC_STORIES, self.listed))
        full = max(0, min(limit, TOP_STORIES, self.full))
        self.listed -= limit
        self.full -= full
        return limit, full


def _digest_limits(digest: DigestMail, budget: DigestBudget) -> list[tuple[int, int]]:
    """(listed, in full) of each topic of the digest, from a copy of ``budget``
    (:class:`DigestBudget`)."""
    budget = DigestBudget(budget.listed, budget.full)
    return [budget.take(len(section.stories)) for section in digest.topics]


def digest_message(
    digest: DigestMail,
    reader: Reader,
    options: MailOptions,
    *,
    sender: str,
    message_id: str | None = None,
    sent_at: datetime | None = None,
) -> EmailMessage:
    """The finished digest for one reader, list headers included."""
    headers = {
        **list_headers(options, f"digest-{digest.cadence}", reader.address, unsubscribe.ALL_TOPICS),
        "X-Mediamon-Digest": f"{digest.cadence} {digest.period_end.isoformat()}",
    }
    return build_message(
        render_digest_mail(digest, reader, options),
        sender,
        [reader.address],
        message_id=message_id,
        sent_at=sent_at,
        headers=headers,
    )
