"""Alert mails and digests as people read them: the reason in plain words first, every
story of the window with a snippet, a chart that explains itself, the statistics below,
and why the recipient got the mail and how to change that.

Pure: :mod:`mediamon.alerts.content` gathers what is shown, :mod:`mediamon.alerts.stories`
lays out the list of stories both mails share, :mod:`mediamon.alerts.digest_mail` builds
the digest from this module's pieces, :mod:`mediamon.alerts.deliver` and
:mod:`mediamon.alerts.digest` send them. The HTML is built for mail clients: one column at most
680 px wide that shrinks to a phone's width, inline styles, the chart as an inline PNG
(``cid:``) at ``max-width:100%``. Everything an article supplies is cleaned (control and
bidi characters dropped) and escaped; only http(s) URLs become links. A name or title with
other text on its line is isolated (:func:`~mediamon.alerts.render.isolate`: FSI ... PDI in
the subject and plain text, ``<bdi>`` in the HTML), so a right-to-left one cannot pull the
count or date next to it to its side.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from typing import Any
from urllib.parse import quote, urlencode
from zoneinfo import ZoneInfo

from mediamon.alerts import unsubscribe
from mediamon.alerts.catalog import (
    Catalog,
    local_span,
    local_time,
    number,
    p_value_text,
    usually_none,
    utc_offset,
)
from mediamon.alerts.chart import (
    CHART_HEIGHT,
    CHART_WIDTH,
    ChartData,
    day_table,
    format_day_table,
    render_chart,
)
from mediamon.alerts.layout import bar, footer, page
from mediamon.alerts.render import (
    InlineImage,
    Rendered,
    build_message,
    esc,
    esc_composed,
    isolate,
    safe_link,
    whole_offsets,
)
from mediamon.alerts.stories import (
    MAX_LISTED,
    MAX_RANKED_MENTIONS,
    TOP_STORIES,
    StoryItem,
    preheader,
    stories_section,
)
from mediamon.settings import DEFAULT_TIMEZONE, DEFAULT_UNSUBSCRIBE, Settings

# A topic name in a subject is cut to this many characters, and a digest's subject names
# at most MAX_SUBJECT_TOPICS topics in SUBJECT_TOPICS_CHARS: what matters (the count) stays
# within what an inbox shows of a subject, about 40 characters on a phone. A 200-character
# topic name, cut at 80, put the count of an alert at character 95.
SUBJECT_TOPIC_CHARS = 30
# An alert mail's heading shows the topic name cut at TOPIC_NAME_CHARS; the reason and
# context lines under it name it again cut as in the subject. A 200-character name shown
# three times cut at 80 made the top of the mail 13 lines at 375 px (now 10).
TOPIC_NAME_CHARS = 80
SUBJECT_TOPICS_CHARS = 48
MAX_SUBJECT_TOPICS = 4
# An alert mailed this long after it was raised (the mail server down, no mediamon_smtp
# connection) says it is late, in its subject and at its top: the time after which the
# watchdog calls pending alerts undelivered (MEDIAMON_HEALTH_ALERT_AGE_MINUTES' default).
# Older than mediamon.alerts.deliver.MAX_ALERT_AGE, it is not mailed at all.
LATE_AFTER = timedelta(hours=1)
# A topic's terms named in its mails, each cut at TERM_CHARS; past MAX_TERMS_SHOWN, a count.
MAX_TERMS_SHOWN = 8
TERM_CHARS = 60
# The most an alert's HTML part may weigh, as a digest's (digest_mail.DIGEST_HTML_BYTES):
# Gmail clips a mail past 102 kB, its footer and unsubscribe link cut off. An alert lists
# up to 105 stories, and titles at their 200 characters with links of 1,900 (as long as
# ingest stores) made 294 kB. Past it, fewer are listed (at most MAX_BUDGET_ROUNDS
# renderings of the list), the rest counted.
ALERT_HTML_BYTES = 90_000
# Renderings of a mail past its weight limit, alert or digest (one constant: each round
# lists fewer stories, scaled by the weight with a margin; two were enough for every mail
# measured).
MAX_BUDGET_ROUNDS = 4


@dataclass(frozen=True)
class MailOptions:
    """Settings every mail needs.

    Attributes:
        timezone: Display zone when the recipient has none (``MEDIAMON_TIMEZONE``).
        unsubscribe_address: The mailbox of ``List-Unsubscribe``.
        base_url: mediamon's web address, for "more stories" links; None: no links.
        public_url: Where recipients reach the unsubscribe page (``MEDIAMON_PUBLIC_URL``);
            None: mails offer the unsubscribe mailbox only.
        unsubscribe_keys: The HMAC keys of unsubscribe links, the first signing; empty:
            mails offer the unsubscribe mailbox only.
    """

    timezone: str = DEFAULT_TIMEZONE
    unsubscribe_address: str = DEFAULT_UNSUBSCRIBE
    base_url: str | None = None
    public_url: str | None = None
    unsubscribe_keys: tuple[str, ...] = field(default=(), repr=False)

    @classmethod
    def from_settings(cls, settings: Settings) -> MailOptions:
        return cls(
            timezone=settings.timezone,
            unsubscribe_address=settings.unsubscribe_address,
            base_url=settings.base_url,
            public_url=settings.public_url,
            unsubscribe_keys=settings.unsubscribe_secrets,
        )

    @property
    def list_domain(self) -> str:
        """The domain of ``List-Id`` values: the unsubscribe mailbox's."""
        domain = self.unsubscribe_address.rpartition("@")[2]
        return re.sub(r"[^A-Za-z0-9.-]", "", domain) or "localhost"


@dataclass(frozen=True)
class Reader:
    """Who a mail is for: address, language and time zone."""

    address: str
    locale: str = "en"
    timezone: str | None = None

    def zone(self, options: MailOptions) -> ZoneInfo:
        return ZoneInfo(self.timezone or options.timezone)


@dataclass(frozen=True)
class AlertMail:
    """What an alert mail says (topic level; rendered per reader).

    Attributes:
        alert_id: The alert's id, if stored.
        topic_key: The topic's key.
        topic_name: The topic's display name.
        window_start: Start of the window that fired (UTC).
        window_end: End of the window (exclusive, UTC).
        observed: Stories in the window.
        expected: Stories expected from the baseline.
        p_value: Tail probability of ``observed``.
        total_stories: Stories of all topics and none, from every source, in the window.
        stories: Every story of the window, ranked.
        chart: The 7-day series, or None when there is no history.
        params: The thresholds that were applied.
        raised_at: When the alert was stored (the database's clock).
        raised_ago: Its age when read for this mail, on the same clock (the database's
            ``now()``); :data:`LATE_AFTER` or more says the mail is late. None: the age
            is taken from ``raised_at`` and the time the mail is sent.
        terms: The topic's rules as written (shown as why the stories match).
        exclude: Its exclusions as written.
    """

    alert_id: int | None
    topic_key: str
    topic_name: str
    window_start: datetime
    window_end: datetime
    observed: int
    expected: float
    p_value: float
    total_stories: int
    stories: tuple[StoryItem, ...] = ()
    chart: ChartData | None = None
    params: Mapping[str, Any] = field(default_factory=dict)
    raised_at: datetime | None = None
    raised_ago: timedelta | None = None
    terms: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()

    @property
    def hours(self) -> int:
        return max(1, round((self.window_end - self.window_start) / timedelta(hours=1)))

    @property
    def usually_none(self) -> bool:
        """Whether the usual count is shown as none: an expectation that rounds to 0
        (a topic never seen before) or that is not a number. Then no "×" is shown either:
        "about 13333 times the usual 0" would say nothing true."""
        return usually_none(self.expected)

    @property
    def lift(self) -> float:
        return self.observed / self.expected if self.expected > 0 else float("inf")


# ---------------------------------------------------------------------------------------
# Pieces


def more_link(options: MailOptions, topic_key: str, start: datetime, end: datetime) -> str | None:
    if not options.base_url:
        return None
    query = urlencode(
        {"topic": topic_key, "from": start.isoformat(), "to": end.isoformat()}, quote_via=quote
    )
    return safe_link(f"{options.base_url}/mediamon/?{query}")


def reason(
    alert: AlertMail, zone: ZoneInfo, catalog: Catalog, name_chars: int = TOPIC_NAME_CHARS
) -> str:
    """The plain-language reason: "9 stories mentioning 台湾 in the hour to 2024-04-17
    10:00 (UTC+08:00), about 45 times the usual 0.2 for a Wednesday at this hour.", the
    topic name cut at ``name_chars``."""
    end = alert.window_end.astimezone(zone)
    values = {
        "stories": catalog.counted("stories", alert.observed),
        "topic": isolate(alert.topic_name, name_chars),
        "the_hours": catalog.counted("the_hours", alert.hours),
        "end": local_time(alert.window_end, zone),
        "weekday": catalog.weekday(end - timedelta(minutes=1)),
        "expected": number(alert.expected),
        "lift": "" if alert.usually_none else number(alert.lift),
    }
    return catalog("reason_new" if alert.usually_none else "reason", **values)


def terms_line(terms: Sequence[str], exclude: Sequence[str], catalog: Catalog) -> str:
    """What the topic matches, as its rules are written: "Terms: 台湾 · Taiwan; excluding
    台湾海峡" (composed text); "" without terms. A recipient saw the topic's name and key
    only, not why a story was in the mail, where a Google Alerts mail shows its query."""

    def listed(rules: Sequence[str]) -> str:
        shown = " · ".join(isolate(rule, TERM_CHARS) for rule in rules[:MAX_TERMS_SHOWN])
        more = len(rules) - MAX_TERMS_SHOWN
        return catalog("more_terms", terms=shown, n=more) if more > 0 else shown

    if not terms:
        return ""
    line = catalog("topic_terms", terms=listed(terms))
    if exclude:
        line = catalog("topic_terms_exclude", terms=line, exclude=listed(exclude))
    return line


def _lift_phrase(alert: AlertMail, catalog: Catalog) -> str:
    if alert.usually_none:
        return catalog("lift_phrase_new")
    return catalog("lift_phrase", lift=number(alert.lift), expected=number(alert.expected))


def chart_image(
    alert: AlertMail, zone: ZoneInfo, catalog: Catalog, cid_stem: str
) -> InlineImage | None:
    if alert.chart is None or not alert.chart.counts:
        return None
    png = render_chart(alert.chart, zone, catalog)
    cid = re.sub(r"[^A-Za-z0-9.-]", "-", cid_stem) + "@mediamon"
    if alert.usually_none:
        alt = catalog("chart_alt_new", observed=alert.observed)
    else:
        alt = catalog("chart_alt", observed=alert.observed, expected=number(alert.expected))
    return InlineImage(cid, png, alt)


def chart_html(
    image: InlineImage | None, alert: AlertMail, zone: ZoneInfo, catalog: Catalog
) -> str:
    if image is None or alert.chart is None:
        return ""
    caption = catalog(
        "chart_caption",
        zone=utc_offset(alert.window_end.astimezone(zone)),
        weeks=alert.chart.baseline_weeks,
    )
    return (
        f'<h3 style="margin:16px 0 6px;font-size:16px">{esc(catalog("chart_heading"))}</h3>'
        f'<img class="chart" src="cid:{esc(image.cid)}" alt="{esc(image.alt, 400)}" '
        f'width="{CHART_WIDTH}" height="{CHART_HEIGHT}" '
        f'style="display:block;width:100%;max-width:{CHART_WIDTH}px;height:auto;border:0">'
        '<div class="muted" style="color:#666;font-size:12px;margin:4px 0 0">'
        f"{whole_offsets(esc(caption, 400))}</div>"
    )


def chart_lines(
    alert: AlertMail, zone: ZoneInfo, catalog: Catalog, *, named: bool = False
) -> list[str]:
    """The chart as a day table for the plain text; ``named``: its heading names the
    topic (a digest's tables stand after its stories, away from their spike's line)."""
    if alert.chart is None or not alert.chart.counts:
        return []
    heading = f"{catalog('chart_heading')} ({utc_offset(alert.window_end.astimezone(zone))})"
    if named:
        heading = f"{isolate(alert.topic_name, TOPIC_NAME_CHARS)} · {heading}"
    window = local_span(alert.window_start, alert.window_end, zone)
    return [
        heading,
        *format_day_table(day_table(alert.chart, zone), catalog),
        catalog("table_window_new", window=window, observed=alert.observed)
        if alert.usually_none
        else catalog(
            "table_window", window=window, observed=alert.observed, expected=number(alert.expected)
        ),
        "",
    ]


def _details(alert: AlertMail, catalog: Catalog) -> str:
    text = catalog(
        "details",
        p_value=p_value_text(alert.p_value),
        stories=catalog.counted("stories", alert.observed),
        expected_exact=f"{alert.expected:.3g}" if math.isfinite(alert.expected) else "–",
    )
    keys = ("min_stories", "min_lift", "max_p_value", "window_hours", "baseline_weeks")
    shown = ", ".join(f"{k}={alert.params[k]}" for k in keys if k in alert.params)
    return text + (" " + catalog("thresholds", thresholds=shown) if shown else "")


def unsubscribe_uri(options: MailOptions, list_name: str, recipient: str) -> str:
    """``mailto:`` URI asking to take ``recipient`` off ``list_name``."""
    subject = quote(f"unsubscribe {list_name} {recipient}", safe="")
    # RFC 6068: a "?", "#", "%" or "&" of the address (atext allows them) would end it or
    # start a header field, a "," start a second address; they are percent-encoded.
    address = quote(options.unsubscribe_address, safe="!$'()*+@")
    return f"mailto:{address}?subject={subject}"


def footer_unsubscribe_uri(options: MailOptions, list_name: str, recipient: str, topic: str) -> str:
    """What the footer's "unsubscribe" opens: the page that unsubscribes ``recipient``
    from ``topic`` (:data:`~mediamon.alerts.unsubscribe.ALL_TOPICS`: every mail) when
    the public URL and key are set, else the mailbox."""
    page = unsubscribe.page_link(options.public_url, options.unsubscribe_keys, recipient, topic)
    return page or unsubscribe_uri(options, list_name, recipient)


def list_headers(
    options: MailOptions, list_name: str, recipient: str, topic: str
) -> dict[str, str]:
    """``List-Id`` and ``List-Unsubscribe`` (RFC 2919, RFC 2369) for one list, and
    ``Precedence: list``, which vacation responders that predate RFC 3834's
    ``Auto-Submitted`` read as "do not answer" (Sendmail's, procmail's, Exchange's).

    With the unsubscribe page configured, ``List-Unsubscribe`` names it first and
    ``List-Unsubscribe-Post: List-Unsubscribe=One-Click`` says it takes RFC 8058's POST:
    Gmail and Yahoo ask bulk senders for both and show their own "unsubscribe" button,
    which then works without the reader writing a mail."""
    label = re.sub(r"[^a-z0-9-]", "-", list_name.lower())
    mailto = f"<{unsubscribe_uri(options, list_name, recipient)}>"
    page = unsubscribe.page_link(options.public_url, options.unsubscribe_keys, recipient, topic)
    headers = {
        "List-Id": f"mediamon {label} <{label}.mediamon.{options.list_domain}>",
        "List-Unsubscribe": f"<{page}>, {mailto}" if page else mailto,
        "Precedence": "list",
    }
    if page:
        headers["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    return headers


# ---------------------------------------------------------------------------------------
# Alert mail


def render_alert_mail(
    alert: AlertMail, reader: Reader, options: MailOptions, sent_at: datetime | None = None
) -> Rendered:
    """One alert for one reader: subject, plain text and HTML with the chart; sent at
    ``sent_at`` (default: now), :data:`LATE_AFTER` or more after it was raised, it says so."""
    catalog = Catalog.for_locale(reader.locale)
    zone = reader.zone(options)
    topic = isolate(alert.topic_name, TOPIC_NAME_CHARS)
    short_topic = isolate(alert.topic_name, SUBJECT_TOPIC_CHARS)
    subject = catalog(
        "subject_alert",
        topic=short_topic,
        stories=catalog.counted("stories", alert.observed),
        hours=catalog.counted("hours", alert.hours),
        lift_phrase=_lift_phrase(alert, catalog),
    )
    late = _late_note(alert, sent_at or datetime.now(UTC), zone, catalog)
    if late is not None:
        subject = catalog("subject_late", subject=subject, delay=late[0])
    # The heading names the topic (cut at 80); the two lines under it, short (cut as in the
    # subject, which the reader has just seen), so the name is not read three times.
    why = reason(alert, zone, catalog, SUBJECT_TOPIC_CHARS)
    total = catalog.counted("stories", alert.total_stories)
    context = catalog("context", total=total, observed=alert.observed, topic=short_topic)
    image = chart_image(alert, zone, catalog, f"chart-{alert.topic_key}")
    link = more_link(options, alert.topic_key, alert.window_start, alert.window_end)
    # The zone is said once, in the list's heading, not after each story's time.
    stated = utc_offset(alert.window_end.astimezone(zone))
    stories_html, story_lines = stories_section(alert.stories, zone, catalog, link, stated=stated)
    heading = catalog.counted("stories_heading", len(alert.stories))
    if alert.stories:
        heading = catalog("with_zone", text=heading, zone=stated)
    # The window's stories as they are now: a story merged into an earlier one, or no
    # longer matching after a rules change, is gone from the list though it was counted.
    # Said, rather than "The 0 stories of the window" under "6 stories mentioning ...".
    gone = alert.observed - len(alert.stories)
    note = catalog("stories_gone", gone=gone, observed=alert.observed) if gone > 0 else ""
    rule = catalog("order_rule", cap=MAX_RANKED_MENTIONS) if alert.stories else ""
    window = local_span(alert.window_start, alert.window_end, zone)
    reference = catalog(
        "reference", alert_id=alert.alert_id if alert.alert_id is not None else "–", window=window
    )
    # Who can change it and what to name, not a file on the server: a recipient cannot
    # edit the topics file (the mail named its path on the server).
    why_mail = catalog("why_alert", address=reader.address, topic=topic, key=alert.topic_key)
    matches = terms_line(alert.terms, alert.exclude, catalog)
    footer_lines, footer_html = footer(
        catalog,
        why_mail + (catalog("sentence_gap") + matches if matches else ""),
        reference,
        contact=options.unsubscribe_address,
        topic=topic,
        key=alert.topic_key,
        uri=footer_unsubscribe_uri(options, alert.topic_key, reader.address, alert.topic_key),
        manage=unsubscribe.manage_link(
            options.public_url, options.unsubscribe_keys, reader.address
        ),
    )
    late_lines = ["", late[1]] if late is not None else []
    late_html = (
        '<p class="note" style="background:#fffaeb;color:#222222;border-left:4px solid #dc6803;'
        f'padding:6px 10px;margin:12px 0 0">{esc_composed(late[1], 1000)}</p>'
        if late is not None
        else ""
    )

    def assemble(stories_html: str, story_lines: list[str]) -> Rendered:
        text = [
            catalog("alert_bar", topic=topic),
            *late_lines,
            "",
            why,
            context,
            "",
            # The stories right after the reason, the day table after them: read as text (a
            # client showing the plain part, a watch, a screen reader), the table's 12 lines
            # came first and the first story at line 19, past a phone's screen.
            heading,
            *[line for line in (note, rule) if line],
            "",
            *story_lines,
            *chart_lines(alert, zone, catalog),
            catalog("details_heading"),
            _details(alert, catalog),
            "",
            "-- ",
            *footer_lines,
        ]
        body = "".join(
            [
                bar(catalog("alert_bar", topic=topic)),
                late_html,
                f'<p style="font-size:17px;margin:14px 0 6px"><b>{esc_composed(why, 1000)}</b></p>',
                '<p class="muted" style="color:#555;margin:0 0 8px">'
                f"{esc_composed(context, 1000)}</p>",
                chart_html(image, alert, zone, catalog),
                f'<h3 style="margin:18px 0 2px;font-size:16px">{whole_offsets(esc(heading))}</h3>',
                "".join(
                    f'<div class="muted" style="color:#666;font-size:12px">{esc(line, 400)}</div>'
                    for line in (note, rule)
                    if line
                ),
                stories_html,
                f'<h4 style="margin:16px 0 2px">{esc(catalog("details_heading"))}</h4>',
                '<p class="muted" style="color:#555;font-size:13px;margin:0">'
                f"{esc(_details(alert, catalog), 2000)}</p>",
                footer_html,
            ]
        )
        return Rendered(
            subject,
            "\n".join(text) + "\n",
            page(subject, body, catalog.locale, preheader([alert.stories], catalog)),
            (image,) if image else (),
        )

    rendered = assemble(stories_html, story_lines)
    # Past ALERT_HTML_BYTES fewer stories are listed (the rest counted, with the page's
    # link): the top ones in full stay. Scaled by the weight, with a margin, as digests.
    listed = min(len(alert.stories), TOP_STORIES + MAX_LISTED)
    for _ in range(MAX_BUDGET_ROUNDS):
        size = len(rendered.html.encode("utf-8"))
        if size <= ALERT_HTML_BYTES or listed <= TOP_STORIES:
            break
        listed = max(TOP_STORIES, min(listed - 1, int(listed * ALERT_HTML_BYTES / size * 0.9)))
        rendered = assemble(
            *stories_section(alert.stories, zone, catalog, link, limit=listed, stated=stated)
        )
    return rendered


def _late_note(
    alert: AlertMail, sent_at: datetime, zone: ZoneInfo, catalog: Catalog
) -> tuple[str, str] | None:
    """(the delay, the note) for an alert mailed :data:`LATE_AFTER` or more after it was
    raised (the mail server down for hours); None when it is not late. Before, such a
    mail read as news: "10 stories in the hour to 11:00", received at 17:00."""
    if alert.raised_at is None:
        return None
    # One clock: the database's when it gave the age (it stamped raised_at).
    age = alert.raised_ago if alert.raised_ago is not None else sent_at - alert.raised_at
    if age < LATE_AFTER:
        return None
    delay = catalog.counted("hours", int(age / timedelta(hours=1)))
    raised = local_time(alert.raised_at, zone)
    return delay, catalog("late_note", raised=raised, delay=delay)


def alert_message(
    alert: AlertMail,
    reader: Reader,
    options: MailOptions,
    *,
    sender: str,
    message_id: str | None = None,
    sent_at: datetime | None = None,
) -> EmailMessage:
    """The finished alert mail for one reader, list headers included; dated ``sent_at``
    (default: now), which also decides whether it says it is late."""
    sent_at = sent_at or datetime.now(UTC)
    headers = {
        **list_headers(options, alert.topic_key, reader.address, alert.topic_key),
        "X-Mediamon-Topic": alert.topic_key,
    }
    if alert.alert_id is not None:
        headers["X-Mediamon-Alert"] = str(alert.alert_id)
    return build_message(
        render_alert_mail(alert, reader, options, sent_at),
        sender,
        [reader.address],
        message_id=message_id,
        sent_at=sent_at,
        headers=headers,
    )
