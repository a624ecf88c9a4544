"""What alert mails and digests show, read from the database: every story of a window
(syndicated copies folded into their root, with their outlets), snippets, and the 7-day
series with its usual range.

Read only. A story is a root article (``duplicate_of`` is null) at its story time, as in
:func:`mediamon.spikes.counts.hourly_counts`, so the mail lists exactly the stories counted.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa

from mediamon.alerts.chart import ChartData
from mediamon.alerts.compose import AlertMail
from mediamon.alerts.render import safe_link
from mediamon.alerts.snippet import MAX_SEARCH_CHARS, make_snippet, mark_hits
from mediamon.alerts.stories import TOP_STORIES, StoryItem, rank_stories
from mediamon.db.queries import query
from mediamon.db.tables import alerts_table
from mediamon.ingest.provenance import site_of
from mediamon.spikes.counts import hourly_counts
from mediamon.spikes.model import HOURS_PER_WEEK
from mediamon.topics.definitions import Topic

# The chart shows the last 7 local days of its reader's zone (mediamon.alerts.chart.
# local_days): a day more is read, so that every zone's first local midnight is in it.
CHART_HOURS = HOURS_PER_WEEK + 24


def stories_between(
    conn: sa.Connection,
    topic_key: str,
    topic: Topic | None,
    start: datetime,
    end: datetime,
    *,
    late_since: datetime | None = None,
    late_from: datetime | None = None,
    listed: Sequence[int] | None = None,
    exclude: Collection[int] = (),
    snippets: int = TOP_STORIES,
) -> list[StoryItem]:
    """Every story mentioning the topic with its story time in [start, end), ranked; the
    first ``snippets`` (at most :data:`~mediamon.alerts.stories.TOP_STORIES`) with a
    snippet of their body.

    Args:
        conn: A connection to the data database.
        topic_key: The topic.
        topic: Its definition, for snippets (None: no snippets).
        start: Start of the period (UTC).
        end: End of the period (UTC, exclusive).
        late_since: When the previous digest picked its stories (None: no previous).
            Stories with their story time in [late_from, start) that it did not list
            (``listed``) are listed too: they arrived after it was made; without
            ``listed``, those first seen after ``late_since``.
        late_from: See ``late_since``.
        listed: The story ids the previous digest listed (None: not recorded).
        exclude: Story ids left out: already mailed to the digest's recipient by a
            digest of another cadence (see :func:`mediamon.alerts.digest.due_digests`).
        snippets: How many of the top stories the mail shows in full (a digest's topic
            past its story budget: none).
    """
    ranked = topics_stories_between(
        conn,
        [(topic_key, topic)],
        start,
        end,
        late_since=late_since,
        late_from=late_from,
        listed=listed,
        exclude=exclude,
    ).get(topic_key, [])
    (with_snippets,) = with_top_snippets(conn, [(topic, ranked, snippets)])
    return with_snippets


def topics_stories_between(
    conn: sa.Connection,
    topics: Sequence[tuple[str, Topic | None]],
    start: datetime,
    end: datetime,
    *,
    late_since: datetime | None = None,
    late_from: datetime | None = None,
    listed: Sequence[int] | None = None,
    exclude: Collection[int] = (),
) -> dict[str, list[StoryItem]]:
    """:func:`stories_between` of many topics (key, definition) in one query, without
    snippets (:func:`with_top_snippets` adds them, in one more): a digest of 3,000
    topics ran one query per topic, 7-11 s a recipient. Topics without stories are
    absent."""
    rows = conn.execute(
        query("topic_stories"),
        {
            "topics": [key for key, _ in topics],
            **_late_params(start, end, late_since, late_from, listed),
        },
    ).all()
    by_topic: dict[str, list[sa.Row[Any]]] = {}
    for row in rows:
        by_topic.setdefault(row.topic, []).append(row)
    found: dict[str, list[StoryItem]] = {}
    for key, topic in topics:
        ranked = _ranked(by_topic.get(key, ()), topic, exclude)
        if ranked:
            found[key] = ranked
    return found


def _late_params(
    start: datetime,
    end: datetime,
    late_since: datetime | None,
    late_from: datetime | None,
    listed: Sequence[int] | None,
) -> dict[str, Any]:
    return {
        "start": start,
        "end": end,
        "late_since": late_since if late_from is not None else None,
        "late_from": late_from,
        "listed": list(listed) if listed is not None else None,
    }


def _ranked(
    rows: Iterable[sa.Row[Any]], topic: Topic | None, exclude: Collection[int]
) -> list[StoryItem]:
    rules = topic.rules if topic is not None else ()
    rows = list(rows)
    # One site a source, not one a story: a digest lists hundreds of one outlet's.
    sites = {location: outlet_site(location) for location in {r.outlet_location for r in rows}}
    return rank_stories(
        [
            StoryItem(
                story_id=row.article_id,
                title=row.title,
                url=row.url,
                outlet=row.outlet,
                published_at=row.story_time.astimezone(UTC) if row.story_time else None,
                other_outlets=tuple(row.other_outlets or ()),
                title_hits=int(row.title_hits or 0),
                mentions=int(row.mentions or 0),
                title_snippet=mark_hits(rules, row.title) if rules else None,
                site=sites[row.outlet_location],
            )
            for row in rows
            # Left out here, not in the query: a few ids at most a period's stories, and
            # the query's parameters stay those its plan was tuned for.
            if row.article_id not in exclude
        ]
    )


def outlet_site(location: str | None) -> str | None:
    """The site of a feed source's configured URL, as a mail names it beside the outlet
    of a story without a link: its registrable domain (``rss.dw.com`` is ``dw.com``;
    host and port for an IP address), in ASCII (IDNA), so that a look-alike Unicode
    domain cannot pass for another; None without an http(s) URL (an archive source)."""
    link = safe_link(location)
    if link is None:
        return None
    site = site_of(link)
    if site.startswith(":"):
        return None
    # site_of keys a host without a public suffix with its port; a reader needs no ":443".
    default = ":443" if link.startswith("https:") else ":80"
    return site.removesuffix(default)


def with_top_snippets(
    conn: sa.Connection, sections: Sequence[tuple[Topic | None, list[StoryItem], int]]
) -> list[list[StoryItem]]:
    """Each (topic, ranked stories, how many shown in full) with a snippet of the body
    of its first ones (at most :data:`~mediamon.alerts.stories.TOP_STORIES`), the bodies
    of every section read in one query."""
    tops = [
        ranked[: max(0, min(snippets, TOP_STORIES))] if topic is not None and topic.rules else []
        for topic, ranked, snippets in sections
    ]
    # Mails show a snippet for the top stories only: a busy topic's week has thousands
    # of stories, whose bodies (50,000 characters each at most) were all read and cut.
    wanted = sorted({story.story_id for top in tops for story in top})
    bodies: dict[int, str] = {}
    if wanted:
        found = conn.execute(query("story_bodies"), {"ids": wanted, "body_chars": MAX_SEARCH_CHARS})
        bodies = {row.article_id: row.body for row in found}
    done = []
    for (topic, ranked, _), top in zip(sections, tops, strict=True):
        if not top or topic is None:
            done.append(ranked)
            continue
        rules = topic.rules
        done.append(
            [replace(s, snippet=make_snippet(rules, bodies.get(s.story_id))) for s in top]
            + ranked[len(top) :]
        )
    return done


def _chart_span(window_end: datetime, baseline_weeks: int) -> tuple[int, datetime, datetime]:
    """(weeks, the chart's first hour, the first hour its baseline reads) of an alert."""
    weeks = max(1, baseline_weeks)
    start = window_end - timedelta(hours=CHART_HOURS)
    return weeks, start, start - timedelta(hours=HOURS_PER_WEEK * weeks)


def chart_data(
    conn: sa.Connection,
    topic_key: str,
    window_start: datetime,
    window_end: datetime,
    *,
    observed: int,
    expected: float,
    baseline_weeks: int,
) -> ChartData:
    """The 8 days of hourly stories ending at ``window_end``, and for each hour the range
    and mean of the same hour of the week in the ``baseline_weeks`` weeks before it."""
    _, _, first = _chart_span(window_end, baseline_weeks)
    counts = hourly_counts(conn, [topic_key], first, window_end).get(topic_key, {})
    return _chart_from_counts(
        counts,
        window_start,
        window_end,
        observed=observed,
        expected=expected,
        baseline_weeks=baseline_weeks,
    )


def _chart_from_counts(
    counts: Mapping[datetime, int],
    window_start: datetime,
    window_end: datetime,
    *,
    observed: int,
    expected: float,
    baseline_weeks: int,
) -> ChartData:
    """:func:`chart_data` from the topic's stories per UTC hour over the alert's span."""
    weeks, start, _ = _chart_span(window_end, baseline_weeks)
    hour = timedelta(hours=1)
    series = tuple(counts.get(start + i * hour, 0) for i in range(CHART_HOURS))
    low: list[float] = []
    high: list[float] = []
    mean: list[float] = []
    for i in range(CHART_HOURS):
        moment = start + i * hour
        samples = [counts.get(moment - timedelta(weeks=k), 0) for k in range(1, weeks + 1)]
        low.append(float(min(samples)))
        high.append(float(max(samples)))
        mean.append(sum(samples) / len(samples))
    return ChartData(
        start=start,
        counts=series,
        usual_low=tuple(low),
        usual_high=tuple(high),
        usual_mean=tuple(mean),
        window_start=window_start,
        window_end=window_end,
        observed=observed,
        expected=expected,
        baseline_weeks=weeks,
    )


def _raised_ago() -> sa.Label[Any]:
    """An alert's age on the clock that stamped it (the database's): against the
    worker's clock, a worker 3 hours ahead of the database called every alert "sent 3
    hours late"."""
    return (sa.func.now() - alerts_table.c.created_at).label("raised_ago")


def _baseline_weeks(row: sa.Row[Any], topic: Topic | None) -> int:
    """The baseline weeks the alert was raised with (its details), else the topic's."""
    params = (row.details or {}).get("params", {})
    return int(params.get("baseline_weeks") or (topic.params.baseline_weeks if topic else 4))


def _alert_mail_of(
    row: sa.Row[Any], topic: Topic | None, stories: Sequence[StoryItem], chart: ChartData
) -> AlertMail:
    return AlertMail(
        alert_id=row.alert_id,
        topic_key=row.topic,
        topic_name=topic.name if topic else row.topic,
        window_start=row.window_start,
        window_end=row.window_end,
        observed=row.observed,
        expected=row.expected,
        p_value=row.p_value,
        total_stories=row.total_stories,
        stories=tuple(stories),
        chart=chart,
        params=dict((row.details or {}).get("params", {})),
        raised_at=row.created_at,
        raised_ago=row.raised_ago,
        terms=topic.terms if topic else (),
        exclude=topic.exclude if topic else (),
    )


def alert_mail(
    conn: sa.Connection, alert_id: int, topic: Topic | None, *, with_stories: bool = True
) -> AlertMail:
    """Everything an alert mail shows, for the alert ``alert_id`` (without its stories
    for a digest, which lists them under their topic)."""
    row = conn.execute(
        sa.select(alerts_table, _raised_ago()).where(alerts_table.c.alert_id == alert_id)
    ).one()
    chart = chart_data(
        conn,
        row.topic,
        row.window_start,
        row.window_end,
        observed=row.observed,
        expected=row.expected,
        baseline_weeks=_baseline_weeks(row, topic),
    )
    stories = (
        stories_between(conn, row.topic, topic, row.window_start, row.window_end)
        if with_stories
        else []
    )
    return _alert_mail_of(row, topic, stories, chart)


def digest_spikes(
    conn: sa.Connection,
    topics: Callable[[str], Topic | None],
    topic_keys: Sequence[str],
    start: datetime,
    end: datetime,
    *,
    shown: Sequence[tuple[str, datetime, datetime]] = (),
) -> tuple[AlertMail, ...]:
    """The alerts of these topics whose window ended in (start, end], newest first, as a
    digest shows them (without their stories, listed under their topic); without those
    ``shown`` already: (topic, start, end) of a digest of another cadence that had the
    topic's stories, the alert's window ending in (start, end]. ``topics`` gives a key's
    definition.

    Two statements whatever the number of alerts: their rows, then every chart's hourly
    counts over the alert's own span (a row and a count per alert before, 2 statements
    a spike).
    """
    a = alerts_table.c
    rows = [
        row
        for row in conn.execute(
            sa.select(alerts_table, _raised_ago())
            .where(a.topic.in_(list(topic_keys)), a.window_end > start, a.window_end <= end)
            .order_by(a.window_end.desc(), a.alert_id.desc())
        )
        if not any(t == row.topic and s < row.window_end <= e for t, s, e in shown)
    ]
    if not rows:
        return ()
    weeks = {row.alert_id: _baseline_weeks(row, topics(row.topic)) for row in rows}
    counts: dict[int, dict[datetime, int]] = {row.alert_id: {} for row in rows}
    for alert_id, hour, stories in conn.execute(
        query("alert_chart_counts"),
        {
            "alert_ids": [row.alert_id for row in rows],
            "topics": [row.topic for row in rows],
            "starts": [_chart_span(row.window_end, weeks[row.alert_id])[2] for row in rows],
            "ends": [row.window_end for row in rows],
        },
    ):
        counts[int(alert_id)][hour.astimezone(UTC)] = int(stories)
    return tuple(
        _alert_mail_of(
            row,
            topics(row.topic),
            (),
            _chart_from_counts(
                counts[row.alert_id],
                row.window_start,
                row.window_end,
                observed=row.observed,
                expected=row.expected,
                baseline_weeks=weeks[row.alert_id],
            ),
        )
        for row in rows
    )
