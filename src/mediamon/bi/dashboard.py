"""The mediamon page: topic trends (stories per hour and day, share of all coverage, alert
markers), the alerts with their top stories, source health and ingest volume per source.

It reads only the ``bi`` views and functions, in a read-only transaction as the role
``mediamon_bi`` (what an analyst's login may read), and renders one HTML page with
Jinja2 (autoescape: every title, URL and name an article supplies is escaped, and is in a
``<bdi>`` where other text shares its line) and inline SVG charts (no script, no CDN). The
Airflow plugin serves it; nothing here imports Airflow.
"""

from __future__ import annotations

import logging
from bisect import bisect_right
from collections import defaultdict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from markupsafe import Markup

from mediamon import limits
from mediamon.alerts.catalog import p_value_text
from mediamon.alerts.render import clean, isolate, safe_link
from mediamon.bi.charts import Bar, Marker, bar_chart
from mediamon.db.queries import query
from mediamon.db.roles import BI_ROLE, BI_WORK_MEM_MB

logger = logging.getLogger(__name__)

HOURS_SHOWN = 72
DEFAULT_DAYS = 14
MAX_DAYS = 90
ALERTS_SHOWN = 20
# A reader who gave up does not keep a query running, and a page held up by a lock gets
# an answer: the page's heaviest query (a year of a topic's window stories over two
# million articles) takes about 1.5 s.
STATEMENT_TIMEOUT_S = 30
# Topics charted, those with the most stories in the window: two charts each, so a topics
# file of thousands would make a page of tens of megabytes (the rest are in Superset).
TOPICS_SHOWN = 50
STORIES_PER_ALERT = 5


@dataclass(frozen=True)
class AlertRow:
    """An alert as listed, with its top stories."""

    alert_id: int
    topic: str
    topic_name: str
    window_start: datetime
    window_end: datetime
    window_start_local: datetime
    window_end_local: datetime
    observed: int
    expected: Decimal
    lift: Decimal
    p_value: float
    state: str
    mails_sent: int
    digest_mails_sent: int = 0
    stories: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class TopicTrend:
    """One topic's charts and totals over the page's window."""

    topic: str
    name: str
    stories: int
    total_stories: int
    alerts: int
    hourly_chart: Markup
    daily_chart: Markup

    @property
    def share(self) -> float:
        return self.stories / self.total_stories if self.total_stories else 0.0


@dataclass(frozen=True)
class SourceVolume:
    """One source's articles per day over the page's window."""

    source: str
    enabled: bool
    articles: int
    copies: int
    failed_fetches: int
    chart: Markup


@dataclass(frozen=True)
class Page:
    """Everything the template shows."""

    timezone: str
    data_end: datetime | None
    data_end_local: datetime | None
    days: int
    trends: list[TopicTrend]
    alerts: list[AlertRow]
    sources: list[dict[str, Any]]
    volumes: list[SourceVolume]
    generated_at: datetime
    topics_total: int = 0  # active topics; the TOPICS_SHOWN with the most stories are charted


def clamp_days(value: object) -> int:
    """The page's window in days from a request parameter: 1..MAX_DAYS, default 14."""
    try:
        days = int(str(value))
    except ValueError:
        return DEFAULT_DAYS
    return min(max(days, 1), MAX_DAYS)


@contextmanager
def read_only(engine: sa.Engine) -> Iterator[sa.Connection]:
    """A connection in a read-only transaction as ``mediamon_bi``: the page can read what a
    BI login reads and nothing else, whatever user the engine connects as, without JIT and
    with the work_mem of BI logins (a role's settings do not follow ``set role``); a
    statement ends after :data:`STATEMENT_TIMEOUT_S`, sooner than a BI login's."""
    with engine.connect() as conn:
        conn.exec_driver_sql("set transaction read only")
        conn.exec_driver_sql(f"set local role {BI_ROLE}")
        conn.exec_driver_sql("set local jit = off")
        conn.exec_driver_sql(f"set local work_mem = '{BI_WORK_MEM_MB}MB'")
        conn.exec_driver_sql(f"set local statement_timeout = {int(STATEMENT_TIMEOUT_S * 1000)}")
        try:
            yield conn
        finally:
            conn.rollback()


def load_page(conn: sa.Connection, now: datetime, days: int = DEFAULT_DAYS) -> Page:
    """Read the page's data. Topic charts end at the newest story (so an archive or a
    stalled feed still shows its last days); ingest volume ends now."""
    days = clamp_days(days)
    timezone = conn.execute(sa.text("select timezone from bi.settings")).scalar_one()
    latest = conn.execute(sa.text("select bi.latest_story_at()")).scalar_one()
    data_end = min(latest, now) if latest is not None else None
    trends: list[TopicTrend] = []
    topics_total = 0
    alerts = _alerts(conn)
    if data_end is not None:
        end = data_end.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
        rows = conn.execute(
            query("dashboard_topic_hours"),
            {
                "window_start": end - timedelta(days=days),
                "window_end": end,
                "topics_shown": TOPICS_SHOWN,
            },
        ).mappings()
        by_topic: dict[str, list[Any]] = defaultdict(list)
        for row in rows:
            by_topic[row["topic"]].append(row)
            topics_total = int(row["topics"])
        trends = [_trend(hours, alerts, end) for hours in by_topic.values()]
        trends.sort(key=lambda t: (-t.stories, t.name))
    volume_end = now.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    volume_rows = conn.execute(
        query("dashboard_source_days"),
        {"window_start": volume_end - timedelta(days=days), "window_end": volume_end},
    ).mappings()
    sources = [dict(r) for r in conn.execute(query("dashboard_source_health")).mappings()]
    local_end = (
        conn.execute(
            sa.text("select cast(:t as timestamptz) at time zone :tz"),
            {"t": data_end, "tz": timezone},
        ).scalar_one()
        if data_end is not None
        else None
    )
    return Page(
        timezone=timezone,
        data_end=data_end,
        data_end_local=local_end,
        days=days,
        trends=trends,
        alerts=alerts,
        sources=sources,
        volumes=_volumes(list(volume_rows)),
        generated_at=now,
        topics_total=topics_total,
    )


def _alerts(conn: sa.Connection) -> list[AlertRow]:
    rows = conn.execute(query("dashboard_alerts"), {"limit": ALERTS_SHOWN}).mappings().all()
    alerts = [
        AlertRow(**{k: r[k] for k in AlertRow.__dataclass_fields__ if k != "stories"}) for r in rows
    ]
    for alert in alerts:
        stories = conn.execute(
            query("dashboard_alert_stories"),
            {
                "topic": alert.topic,
                "window_start": alert.window_start,
                "window_end": alert.window_end,
                "per_alert": STORIES_PER_ALERT,
            },
        ).mappings()
        # Only an absolute http(s) URL becomes a link, as on the window page and in the
        # mails: a row loaded before the ingest checks, or by another writer, may hold a
        # ``javascript:``, ``data:`` or ``vbscript:`` one.
        alert.stories.extend({**story, "link": safe_link(story["url"])} for story in stories)
    return alerts


def _hour_tick(hour_local: datetime, index: int) -> str:
    return f"{hour_local:%m-%d %H:%M}" if index % 12 == 0 else ""


def _trend(hours: Sequence[Any], alerts: Sequence[AlertRow], end: datetime) -> TopicTrend:
    first = hours[0]
    topic = first["topic"]
    name = first["topic_name"]
    recent = [h for h in hours if h["hour"] >= end - timedelta(hours=HOURS_SHOWN)]
    topic_alerts = [a for a in alerts if a.topic == topic]
    starts = [h["hour"] for h in recent]
    markers = []
    for alert in topic_alerts:
        # The flag stands on the bar holding the window's last moment (local hours start
        # off the UTC hour in zones such as Asia/Kolkata, so look it up, not match it).
        last = alert.window_end - timedelta(microseconds=1)
        index = bisect_right(starts, last) - 1
        if index >= 0 and last < starts[index] + timedelta(hours=1):
            markers.append(
                Marker(
                    index=index,
                    label=f"{alert.observed} / {alert.expected}",
                    tooltip=f"alert: {alert.observed} stories, {alert.expected} expected"
                    f" (lift {alert.lift}, p = {p_value_text(alert.p_value)})",
                )
            )
    hourly = bar_chart(
        [
            Bar(
                h["stories"],
                _hour_tick(h["hour_local"], i),
                f"{h['hour_local']:%Y-%m-%d %H:00}: {h['stories']} of {h['total_stories']}",
            )
            for i, h in enumerate(recent)
        ],  # fmt: skip
        title=f"{isolate(name)}: stories per hour",
        y_label="stories per hour (alert: observed / expected)",
        markers=markers,
    )
    days: dict[date, list[int]] = defaultdict(lambda: [0, 0])
    for h in hours:
        days[h["day_local"]][0] += h["stories"]
        days[h["day_local"]][1] += h["total_stories"]
    ordered = sorted(days.items())
    daily = bar_chart(
        [
            Bar(
                stories,
                f"{day:%m-%d}" if i % max(len(ordered) // 7, 1) == 0 else "",
                f"{day:%Y-%m-%d}: {stories} of {total} stories ({stories / total:.1%} of coverage)"
                if total
                else f"{day:%Y-%m-%d}: 0",
            )
            for i, (day, (stories, total)) in enumerate(ordered)
        ],  # fmt: skip
        title=f"{isolate(name)}: stories per day and share of all coverage",
        y_label="stories per day",
        line=[stories / total if total else None for _, (stories, total) in ordered],
        line_label="share of all coverage",
    )
    stories = sum(h["stories"] for h in hours)
    total = sum(h["total_stories"] for h in hours)
    in_window = [a for a in topic_alerts if a.window_end > hours[0]["hour"]]
    return TopicTrend(topic, name, stories, total, len(in_window), hourly, daily)


def _volumes(rows: Sequence[Any]) -> list[SourceVolume]:
    by_source: dict[str, list[Any]] = defaultdict(list)
    for row in rows:
        by_source[row["source"]].append(row)
    volumes = []
    for source, days in by_source.items():
        step = max(len(days) // 7, 1)
        chart = bar_chart(
            [
                Bar(
                    d["articles"],
                    f"{d['day_local']:%m-%d}" if i % step == 0 else "",
                    f"{d['day_local']:%Y-%m-%d}: {d['articles']} articles"
                    f" ({d['copies']} copies), {d['fetches']} fetches,"
                    f" {d['failed_fetches']} failed",
                )
                for i, d in enumerate(days)
            ],  # fmt: skip
            title=f"{isolate(source)}: articles stored per day",
            y_label="articles stored per day",
            width=380,
            height=130,
        )
        volumes.append(
            SourceVolume(
                source=source,
                enabled=days[0]["enabled"],
                articles=sum(d["articles"] for d in days),
                copies=sum(d["copies"] for d in days),
                failed_fetches=sum(d["failed_fetches"] for d in days),
                chart=chart,
            )
        )
    volumes.sort(key=lambda v: (not v.enabled, -v.articles, v.source))
    return volumes


def templates() -> Any:
    """The Jinja2 environment of the page and the window's page: autoescaped, with their
    filters. ``shown`` is for the text an article supplies (a title): cleaned as a mail
    cleans it (:func:`mediamon.alerts.render.clean`: control characters and blank fillers
    made spaces, at most a few combining marks on a letter), but as long as it is
    stored. A "Zalgo" title of 200 marks on one letter drew a tower over the stories
    listed above and below it on the page, as it did in mail before the cap. A topic's
    name is ``shown`` too (a right-to-left override in the topics file drew "Strait" as
    "tiartS", U+2028 broke it in two), in a ``<bdi>``; ``isolated`` is for where no
    element can be, the document's title: cleaned and between FSI and PDI when it holds
    right-to-left letters, as a mail's subject (:func:`mediamon.alerts.render.isolate`)."""
    from jinja2 import Environment, PackageLoader, select_autoescape

    environment = Environment(
        loader=PackageLoader("mediamon.bi", "templates"),
        autoescape=select_autoescape(default=True, default_for_string=True),
    )
    environment.filters["local"] = _local
    environment.filters["p_value"] = p_value_text
    environment.filters["percent"] = lambda v: "–" if v is None else f"{float(v):.1%}"
    environment.filters["shown"] = lambda v: clean(v, limits.MAX_TITLE_CHARS)
    environment.filters["isolated"] = lambda v: isolate(v, limits.MAX_TITLE_CHARS)
    return environment


def render(page: Page) -> str:
    """The page as HTML (Jinja2, autoescaped)."""
    return str(templates().get_template("dashboard.html").render(page=page))


def _local(value: datetime | None) -> str:
    return "–" if value is None else f"{value:%Y-%m-%d %H:%M}"


def page_html(engine: sa.Engine, now: datetime | None = None, days: int = DEFAULT_DAYS) -> str:
    """Read and render the page (what the plugin's route returns)."""
    with read_only(engine) as conn:
        page = load_page(conn, now or datetime.now(UTC), days)
    return render(page)
