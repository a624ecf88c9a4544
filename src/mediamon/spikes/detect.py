"""Detection: every topic's latest window tested against its baseline, and the alert
state (open, extended, cleared) recorded by the one episode rule of
:mod:`mediamon.spikes.episodes`."""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY, insert

from mediamon.db.tables import (
    alerts_table,
    topics_table,
)
from mediamon.spikes.counts import hourly_counts, hourly_totals
from mediamon.spikes.episodes import Decision, decide
from mediamon.spikes.model import HOURS_PER_WEEK, HourlySeries, Spike, assess, floor_hour
from mediamon.topics.definitions import Topic, TopicSet

logger = logging.getLogger(__name__)

# Same constant in every mediamon process; distinct from mediamon.db.migrate's lock.
DETECT_LOCK_KEY = 0x6D6D_616C_6572_7401


def _volume(
    start: datetime,
    hours: int,
    totals: Sequence[tuple[datetime, str, str | None, int]],
    topic: Topic,
) -> list[int]:
    """Stories per hour of the sources and languages in ``topic``'s scope."""
    volume = [0] * hours
    step = timedelta(hours=1)
    for hour, source, language, n in totals:
        index = (hour - start) // step
        if 0 <= index < hours and topic.in_scope(language, source):
            volume[index] += n
    return volume


def _series(
    start: datetime, hours: int, counts: dict[datetime, int], volume: Sequence[int]
) -> HourlySeries:
    story_counts = [0] * hours
    step = timedelta(hours=1)
    for hour, n in counts.items():
        index = (hour - start) // step
        if 0 <= index < hours:
            story_counts[index] += n
    return HourlySeries(start, story_counts, volume)


def assess_topics(
    engine: sa.Engine, topics: TopicSet, at: datetime, zone: tzinfo | None = None
) -> list[Spike]:
    """Test every topic's window ending at ``at`` (read only; the dry run shows these).

    Args:
        engine: The data database.
        topics: The topics to test.
        at: Detection time; the window ends at the start of its hour (UTC).
        zone: MEDIAMON_TIMEZONE: the baseline is the same local hour of the week
            (:func:`mediamon.spikes.model.assess`); None, the same UTC hour.
    """
    end = floor_hour(at)
    if not len(topics):
        return []
    # An hour more than the weeks: the same local hour before a daylight saving change.
    hours = 1 + max(
        t.params.baseline_weeks * HOURS_PER_WEEK + t.params.window_hours for t in topics
    )
    start = end - timedelta(hours=hours)
    with engine.connect() as conn:
        counts = hourly_counts(conn, topics.keys(), start, end)
        totals = hourly_totals(conn, start, end)
    # One volume series per scope: topics of the same scope (most have none) share it.
    # Built per topic, from every (hour, source) of four weeks, 3,000 topics took 50 s of
    # each hourly run with 50 sources.
    volumes: dict[tuple[tuple[str, ...], tuple[str, ...]], list[int]] = {}
    spikes = []
    for t in topics:
        scope = (t.languages, t.sources)
        if scope not in volumes:
            volumes[scope] = _volume(start, hours, totals, t)
        series = _series(start, hours, counts.get(t.key, {}), volumes[scope])
        spikes.append(assess(series, end, t.params, t.key, zone))
    return spikes


# ---------------------------------------------------------------------------------------
# Alerts


def dedupe_key(spike: Spike) -> str:
    """One alert per topic and window: ``taiwan/2024-04-02T20:00Z/1h``."""
    return (
        f"{spike.topic}/{spike.window_start.astimezone(UTC):%Y-%m-%dT%H:%MZ}"
        f"/{spike.params.window_hours}h"
    )


def detect(
    engine: sa.Engine, topics: TopicSet, at: datetime, zone: tzinfo | None = None
) -> list[int]:
    """Test each topic's latest window and record alerts.

    A firing window opens an alert unless one exists for the same topic and window (a
    re-run), the topic's episode is still open (the topic has not re-armed), or another
    alert of the topic lies within its cooldown. An episode ends when its window is no
    longer elevated (see :attr:`mediamon.spikes.Spike.still_elevated`); an outage neither
    opens nor ends one. The open episode of a topic taken out of the topics file (inactive,
    and not among ``topics``) ends at this call's window: none of its windows is tested
    again.

    Args:
        engine: The data database (mentions up to date: see :func:`match_articles`).
        topics: The topics in force.
        at: Detection time; the window ends at the start of its hour (UTC).
        zone: MEDIAMON_TIMEZONE, whose hours of the week the baseline compares.

    Returns:
        Ids of the alerts this call created (empty on a re-run).
    """
    spikes = assess_topics(engine, topics, at, zone)
    created: list[int] = []
    with engine.begin() as conn:
        # Concurrent runs (a retry beside a late run) take turns.
        conn.execute(sa.text("select pg_advisory_xact_lock(:key)"), {"key": DETECT_LOCK_KEY})
        _end_removed(conn, topics, floor_hour(at))
        # What the alerts say of every tested window, read in a few statements: three
        # to four queries per topic took most of each hourly run at 3,000 topics.
        known = KnownAlerts.read(conn, spikes, topics)
        for spike in spikes:
            topic = topics.get(spike.topic)
            if topic is None:  # assess_topics tests exactly the given topics
                raise ValueError(f"spike of unknown topic {spike.topic!r}")
            alert_id = _record(conn, spike, topic, known)
            if alert_id is not None:
                created.append(alert_id)
    if created:
        logger.info("alerts created: %s", created)
    return created


@dataclass(frozen=True)
class Outlook:
    """What recording a tested window would do, read without writing (the dry run).

    Attributes:
        decision: ``recorded`` (this window's alert exists: a re-run), ``open`` (a new
            alert), ``extend`` / ``clear`` (the open episode of ``alert_id`` goes on /
            ends), ``cooldown`` (it fired within the cooldown of ``alert_id``: no alert),
            ``nothing``.
        alert_id: The alert concerned (None for ``open`` and ``nothing``).
    """

    decision: str
    alert_id: int | None = None


def outlook(
    conn: sa.Connection, spike: Spike, topic: Topic, known: KnownAlerts | None = None
) -> Outlook:
    """What :func:`detect` would do with ``spike``, by the same reads and rule; writes
    nothing. ``known``: the alerts read for every window at once (None: read for this
    one)."""
    if spike.status not in ("spike", "quiet"):
        return Outlook("nothing")
    if known is None:
        known = KnownAlerts.read(conn, [spike], TopicSet((topic,)))
    existing = known.recorded(spike)
    if existing is not None:
        return Outlook("recorded", existing)
    episode, nearest, decision = known.situation(spike, topic)
    if decision.action in ("extend", "clear") and episode is not None:
        return Outlook(decision.action, episode.alert_id)
    if decision.action == "open":
        return Outlook("open")
    if spike.fired and nearest is not None:
        return Outlook("cooldown", nearest.alert_id)
    return Outlook("nothing")


@dataclass(frozen=True)
class AlertAt:
    """An alert as the episode rule sees it: its id and a window end (the episode's last
    window, or the alert's own window)."""

    alert_id: int
    window_end: datetime


@dataclass
class KnownAlerts:
    """The alerts that decide the tested windows, read for all of them at once.

    Attributes:
        by_dedupe_key: Windows already decided (a re-run): dedupe key -> alert id.
        episodes: Each tested topic's open episode (its latest uncleared alert before the
            window), with its last window.
        nearby: Alerts within reach of a cooldown, by topic: the tested topics' and those
            of topics taken out of the file with the same matching rules (renamed).
        former_keys: Match version -> keys of inactive topics with it.
    """

    by_dedupe_key: dict[str, int]
    episodes: dict[str, AlertAt]
    nearby: dict[str, list[AlertAt]]
    former_keys: dict[str, list[str]]

    @classmethod
    def read(cls, conn: sa.Connection, spikes: Sequence[Spike], topics: TopicSet) -> KnownAlerts:
        """The alerts deciding ``spikes`` (of ``topics``), in four statements."""
        a = alerts_table.c
        t = topics_table.c
        tested = [s for s in spikes if s.status in ("spike", "quiet")]
        definitions = {s.topic: topics.get(s.topic) for s in tested}
        of = {key: topic for key, topic in definitions.items() if topic is not None}
        tested = [s for s in tested if s.topic in of]
        known = cls({}, {}, {}, {})
        if not tested:
            return known
        keys = [dedupe_key(s) for s in tested]
        known.by_dedupe_key = {
            str(key): int(alert_id)
            for key, alert_id in conn.execute(
                sa.select(a.dedupe_key, a.alert_id).where(a.dedupe_key.in_(keys))
            )
        }
        windows = (
            sa.func.unnest(
                sa.cast([s.topic for s in tested], ARRAY(sa.Text)),
                sa.cast([s.window_end for s in tested], ARRAY(sa.DateTime(timezone=True))),
            )
            .table_valued("topic", "at")
            .render_derived(name="w")
        )
        latest = (
            sa.select(a.alert_id, a.last_window_end)
            .where(a.topic == windows.c.topic, a.cleared_at.is_(None), a.window_end < windows.c.at)
            .order_by(a.window_end.desc())
            .limit(1)
            .lateral("e")
        )
        known.episodes = {
            str(topic): AlertAt(int(alert_id), last)
            for topic, alert_id, last in conn.execute(
                sa.select(windows.c.topic, latest.c.alert_id, latest.c.last_window_end)
                .select_from(windows)
                .join(latest, sa.true())
            )
        }
        versions = sorted({of[s.topic].match_version for s in tested})
        for topic, version in conn.execute(
            sa.select(t.topic, t.match_version).where(~t.active, t.match_version.in_(versions))
        ):
            known.former_keys.setdefault(str(version), []).append(str(topic))
        reach = max(timedelta(hours=of[s.topic].params.cooldown_hours) for s in tested)
        owners = sorted(
            {s.topic for s in tested} | {k for ks in known.former_keys.values() for k in ks}
        )
        for alert_id, topic, window_end in conn.execute(
            sa.select(a.alert_id, a.topic, a.window_end).where(
                a.topic.in_(owners),
                a.window_end > min(s.window_end for s in tested) - reach,
                a.window_end < max(s.window_end for s in tested) + reach,
            )
        ):
            known.nearby.setdefault(str(topic), []).append(AlertAt(int(alert_id), window_end))
        return known

    def recorded(self, spike: Spike) -> int | None:
        """This window's alert, if it was decided already (a re-run)."""
        return self.by_dedupe_key.get(dedupe_key(spike))

    def situation(
        self, spike: Spike, topic: Topic
    ) -> tuple[AlertAt | None, AlertAt | None, Decision]:
        """The topic's open episode, its nearest alert within the cooldown (its former
        keys' alerts included: before, a renamed topic's first run alerted again for the
        very window its old key had just mailed, to the same recipients), and the episode
        rule's decision for ``spike``."""
        at = spike.window_end
        episode = self.episodes.get(topic.key)
        cooldown = timedelta(hours=topic.params.cooldown_hours)
        owners = [
            topic.key,
            *(k for k in self.former_keys.get(topic.match_version, ()) if k != topic.key),
        ]
        nearest = next(
            (
                alert
                for owner in owners
                for alert in self.nearby.get(owner, ())
                if at - cooldown < alert.window_end < at + cooldown
            ),
            None,
        )
        decision = decide(
            spike,
            episode.window_end if episode is not None else None,
            nearest.window_end if nearest is not None else None,
            cooldown,
        )
        return episode, nearest, decision

    def opened(self, spike: Spike, alert_id: int) -> None:
        """Note the alert just opened for ``spike``: it holds the cooldown of a topic
        whose former key is its topic."""
        self.by_dedupe_key[dedupe_key(spike)] = alert_id
        self.nearby.setdefault(spike.topic, []).append(AlertAt(alert_id, spike.window_end))


def _record(conn: sa.Connection, spike: Spike, topic: Topic, known: KnownAlerts) -> int | None:
    a = alerts_table.c
    at = spike.window_end
    if spike.status not in ("spike", "quiet"):
        logger.info("topic %s at %s: %s, nothing decided", topic.key, at, spike.status)
        return None
    if known.recorded(spike) is not None:
        return None  # this window was already decided
    episode, nearest, decision = known.situation(spike, topic)
    if decision.clear_stale and episode is not None:
        _clear(conn, episode.alert_id, episode.window_end)
    if decision.action == "extend" and episode is not None:
        conn.execute(
            alerts_table.update()
            .where(a.alert_id == episode.alert_id)
            .values(
                last_window_end=sa.func.greatest(a.last_window_end, at),
                peak_observed=sa.func.greatest(a.peak_observed, spike.observed),
            )
        )
        return None
    if decision.action == "clear" and episode is not None:
        _clear(conn, episode.alert_id, at)
        return None
    if decision.action != "open":
        if spike.fired and nearest is not None:  # fired, no episode: the cooldown held it
            logger.info(
                "topic %s at %s: spike within cooldown of alert %s", topic.key, at, nearest.alert_id
            )
        return None
    statement = (
        insert(alerts_table)
        .values(
            dedupe_key=dedupe_key(spike),
            topic=topic.key,
            topic_version=topic.version,
            window_start=spike.window_start,
            window_end=spike.window_end,
            observed=int(spike.observed),
            expected=float(spike.expected),
            lift=float(spike.lift),
            score=float(spike.score),
            p_value=float(spike.p_value),
            total_stories=int(spike.total_stories),
            details=_jsonable(spike.details()),
            state="open",
            last_window_end=spike.window_end,
            peak_observed=int(spike.observed),
            created_at=sa.func.now(),
        )
        .on_conflict_do_nothing(index_elements=[a.dedupe_key])
        .returning(a.alert_id)
    )
    alert_id: int | None = conn.execute(statement).scalar_one_or_none()
    if alert_id is not None:
        known.opened(spike, alert_id)
    return alert_id


def _end_removed(conn: sa.Connection, topics: TopicSet, end: datetime) -> None:
    """End the open episodes of topics taken out of the topics file (or renamed: a new
    key), at the window ending at ``end`` (never before the episode's own last window).
    No later window of such a topic is tested, so nothing else would end them: their alerts
    stayed ``notified`` without ``cleared_at`` for good. As for a quiet window, a notified
    alert is resolved and one whose mail is pending stays open for
    :func:`mediamon.alerts.deliver.deliver_pending`, which skips it (the topic is gone).
    A topic still active is left alone even when ``topics`` lacks it (a caller testing
    some topics only)."""
    a = alerts_table.c
    t = topics_table.c
    episodes = conn.execute(
        sa.select(a.alert_id, a.topic, a.last_window_end)
        .join(topics_table, t.topic == a.topic)
        .where(a.cleared_at.is_(None), ~t.active, a.topic.not_in(topics.keys()))
        .order_by(a.alert_id)
    ).all()
    for alert_id, topic, last_window_end in episodes:
        when = max(end, last_window_end)
        logger.info(
            "topic %s is no longer in the topics file: alert %s ends at %s", topic, alert_id, when
        )
        _clear(conn, alert_id, when)


def _clear(conn: sa.Connection, alert_id: int, when: datetime) -> None:
    a = alerts_table.c
    conn.execute(
        alerts_table.update()
        .where(a.alert_id == alert_id, a.cleared_at.is_(None))
        .values(
            cleared_at=when,
            # Resolved only once notified: a cleared alert whose mail is still pending
            # stays open and is sent (then resolved) by deliver_pending.
            state=sa.case((a.state == "notified", "resolved"), else_=a.state),
            resolved_at=sa.case((a.state == "notified", when), else_=a.resolved_at),
        )
    )


def _jsonable(value: Any) -> Any:
    """JSON for jsonb: infinities and NaN become null, numpy scalars plain numbers."""
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if hasattr(value, "item"):  # numpy scalars, from callers' series
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
