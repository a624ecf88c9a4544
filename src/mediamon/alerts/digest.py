"""Digests like Google Alerts: per recipient, daily or weekly at a local hour, every new
story of their topics in the period, grouped by topic, the period's spikes on top.

``mediamon digest run`` and the ``mediamon_digests`` DAG (hourly) call :func:`run_digests`;
it decides who is due. A recipient's period ends at their latest digest time at or
before ``now`` and starts where their previous digest ended (a missed run is caught up,
at most :data:`MAX_CATCH_UP` back) or one period earlier. Each (recipient, cadence,
period end) is recorded in ``digest_deliveries`` once its mail was sent, or found empty
(nothing is sent then), so a second run for the same period sends nothing.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, time, timedelta
from email.message import EmailMessage
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert

from mediamon.alerts import subscriptions
from mediamon.alerts.compose import MailOptions, Reader
from mediamon.alerts.content import (
    digest_spikes,
    topics_stories_between,
    with_top_snippets,
)
from mediamon.alerts.digest_mail import DigestBudget, DigestMail, TopicStories, digest_message
from mediamon.alerts.render import clean, message_id_domain
from mediamon.alerts.smtp import MailServerRefusal, refused_for_good, server_refusal
from mediamon.alerts.stories import StoryItem
from mediamon.db.engine import session_lock
from mediamon.db.queries import query
from mediamon.db.tables import digest_deliveries
from mediamon.errors import MailNotSent
from mediamon.topics.definitions import Topic, TopicSet

logger = logging.getLogger(__name__)

# Distinct from mediamon.db.migrate's and mediamon.alerts.deliver's locks.
DIGEST_LOCK_KEY = 0x6D6D_616C_6572_7403
MAX_CATCH_UP = timedelta(days=14)
# A row of digest_deliveries, of whatever columns were selected
Record = sa.Row[*tuple[Any, ...]]

PERIODS = {"daily": timedelta(days=1), "weekly": timedelta(days=7)}


@dataclass(frozen=True)
class DueDigest:
    """One recipient's digest that is due.

    Attributes:
        address: The recipient.
        cadence: ``daily`` or ``weekly``.
        locale: Language of the mail.
        timezone: The recipient's zone (None: the display zone).
        topics: Keys of the topics the recipient follows with this cadence.
        period_start: Start of the period (UTC).
        period_end: End of the period (UTC, exclusive): the digest time.
        late_since: When the previous digest picked its stories; None: no previous.
            Stories dated in the period before ``period_start`` that it did not list are
            listed too (loaded or matched after it was made).
        late_listed: The story ids the previous digest listed (None: not recorded, then
            the late stories are those first seen after ``late_since``).
        late_from: Where those late stories start: the previous digest's start, of this
            cadence or another (None: one period before ``period_start``).
        mailed: Story ids the recipient's digests of another cadence listed (a cadence
            change): left out.
        spikes_shown: (topic, start, end) of those digests' periods that had the topic's
            stories: their spikes were on top of them, so they are not shown again.
        superseded_at: For a late run (an Airflow run cleared days later), the digest
            time after ``period_end`` that has passed by the clock: this digest is stale
            (see :func:`run_digests`); None when it is still the latest.
    """

    address: str
    cadence: str
    locale: str
    timezone: str | None
    topics: tuple[str, ...]
    period_start: datetime
    period_end: datetime
    late_since: datetime | None = None
    late_listed: tuple[int, ...] | None = None
    late_from: datetime | None = None
    mailed: frozenset[int] = frozenset()
    spikes_shown: tuple[tuple[str, datetime, datetime], ...] = ()
    superseded_at: datetime | None = None

    @property
    def key(self) -> str:
        return f"{self.cadence}-{self.period_end.astimezone(UTC):%Y%m%dT%H%MZ}"


@dataclass
class DigestStats:
    """What one :func:`run_digests` call did."""

    due: int = 0
    sent: int = 0
    empty: int = 0
    failed: int = 0
    refused: int = 0  # recipients the server refused for good (5xx): recorded, not retried
    unsubscribed: int = 0  # digests whose recipient left every topic during the run
    stale: int = 0  # a late run's digests a later one supersedes: neither sent nor recorded
    stories: int = 0
    busy: bool = False
    digests: list[dict[str, Any]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "due": self.due,
            "sent": self.sent,
            "empty": self.empty,
            "failed": self.failed,
            "refused": self.refused,
            "stale": self.stale,
            "unsubscribed": self.unsubscribed,
            "stories": self.stories,
            "busy": self.busy,
            "digests": self.digests,
            "errors": self.errors[:20],
        }


class DigestError(MailNotSent):
    """Some digests could not be sent (they are tried again by the next run) or were
    refused for good (recorded ``refused``, not tried again)."""

    def __init__(self, message: str, stats: DigestStats) -> None:
        super().__init__(message)
        self.stats = stats


def latest_digest_time(
    now: datetime, cadence: str, hour: int, weekday: int, zone: ZoneInfo
) -> datetime:
    """The latest digest time at or before ``now``: ``hour`` o'clock local, every day or
    on ``weekday`` (0 = Monday); returned in UTC. Local calendar arithmetic, so a digest
    stays at 08:00 across a daylight-saving change."""
    local = now.astimezone(zone)
    day = local.date()
    while True:
        candidate = datetime.combine(day, time(hour), tzinfo=zone)
        if candidate <= local and (cadence == "daily" or day.weekday() == weekday):
            return candidate.astimezone(UTC)
        day -= timedelta(days=1)


def _previous_period_start(end: datetime, cadence: str, zone: ZoneInfo) -> datetime:
    local = end.astimezone(zone)
    days = PERIODS[cadence].days
    start = datetime.combine(local.date() - timedelta(days=days), local.time(), tzinfo=zone)
    return start.astimezone(UTC)


def due_digests(
    engine: sa.Engine,
    topics: TopicSet,
    now: datetime,
    options: MailOptions,
    clock: datetime | None = None,
) -> list[DueDigest]:
    """The digests due at ``now``: one per (recipient, cadence) whose latest period has
    not been recorded yet; with ``clock`` (a late run), each says whether a later digest
    time has passed by then (``superseded_at``)."""
    schedules: dict[tuple[str, str], DueDigest] = {}
    # Who left which topics (the unsubscribe page), in one statement: a recipient who left
    # every topic of a cadence has no digest due at all.
    with engine.connect() as conn:
        left = subscriptions.left_topics(
            conn, (r.address for topic in topics for r in topic.recipients if r.cadence)
        )
    for topic in topics:
        for recipient in topic.recipients:
            cadence = recipient.cadence
            if cadence is None or not subscriptions.wants(left, recipient.address, topic.key):
                continue
            zone = ZoneInfo(recipient.timezone or options.timezone)
            end = latest_digest_time(
                now, cadence, recipient.digest_hour, recipient.digest_weekday, zone
            )
            latest = end
            if clock is not None:
                latest = latest_digest_time(
                    clock, cadence, recipient.digest_hour, recipient.digest_weekday, zone
                )
            slot = (recipient.address, cadence)
            if slot in schedules:
                earlier = schedules[slot]
                schedules[slot] = replace(earlier, topics=(*earlier.topics, topic.key))
                continue
            schedules[slot] = DueDigest(
                address=recipient.address,
                cadence=cadence,
                locale=recipient.locale,
                timezone=recipient.timezone,
                topics=(topic.key,),
                period_start=_previous_period_start(end, cadence, zone),
                period_end=end,
                superseded_at=latest if latest > end else None,
            )
    d = digest_deliveries.c
    due: list[DueDigest] = []
    # A digest recorded for a period that had not ended by the clock's time now was made
    # while the clock ran ahead (a bad NTP step, a VM restored), then set right. Taken
    # for the latest digest it held every later one back until the clock caught up (a
    # year ahead: no digest for a year, its empty period recorded too). It is no later
    # digest; the stories it mailed stay mailed (_without_mailed_elsewhere).
    clock = max(now, datetime.now(UTC))
    if not schedules:
        return due
    with engine.connect() as conn:
        # Every record the plans below can read, in one statement (1-4 a recipient and
        # cadence before). A previous digest ended more than MAX_CATCH_UP before a plan's
        # end neither holds it back nor is caught up from: as good as none.
        since = min(plan.period_end for plan in schedules.values()) - MAX_CATCH_UP
        history: dict[str, list[Record]] = {}
        for row in conn.execute(
            sa.select(
                d.recipient,
                d.cadence,
                d.period_start,
                d.period_end,
                d.status,
                d.topics,
                d.selected_at,
                d.story_ids,
            )
            .where(
                d.recipient.in_(sorted({address for address, _ in schedules})),
                d.period_end >= since,
            )
            .order_by(d.recipient, d.period_end.desc())
        ):
            history.setdefault(row.recipient, []).append(row)
        for (address, cadence), plan in sorted(schedules.items()):
            records = history.get(address, [])
            last = next(
                (r for r in records if r.cadence == cadence and r.period_end <= clock), None
            )
            if last is not None and last.period_end >= plan.period_end:
                continue  # this period (or a later one: a run --at in the past) is done
            start = plan.period_start
            late_since = None
            late_listed = None
            if last is not None and plan.period_end - last.period_end <= MAX_CATCH_UP:
                # From where the previous digest ended: earlier catches up on missed
                # periods; later, after the recipient's hour or zone changed, keeps the
                # stories of the previous digest out of this one (min() mailed them twice).
                start = last.period_end
                late_since = last.selected_at
                # What it listed, not what was first seen after it: an ingest run stamps
                # its articles with the run's time and commits them minutes later, and
                # those committed after the previous pick were in no digest.
                late_listed = tuple(last.story_ids) if last.story_ids is not None else None
                # Late stories are looked for over the previous digest's own period, which
                # its list covers: one period back from this start was 24 hours, an hour
                # into the digest before it after a 23-hour day (the clocks going forward),
                # whose stories were then listed again; an hour short after a 25-hour day.
                plan = replace(
                    plan,
                    period_start=start,
                    late_since=late_since,
                    late_listed=late_listed,
                    late_from=last.period_start,
                )
            else:
                plan = _after_other_cadence(records, plan)
            due.append(_without_mailed_elsewhere(conn, records, plan, clock))
    return due


def _after_other_cadence(records: list[Record], plan: DueDigest) -> DueDigest:
    """A recipient's first digest of a cadence (none within :data:`MAX_CATCH_UP`): where
    it starts and what it leaves out, given their digests of the other cadence.

    A digest is keyed by (recipient, cadence), so after a switch from daily to weekly the
    first weekly digest found no weekly record and covered the whole week, whose stories
    the daily digests had already mailed. Like Google Alerts after a change of "how
    often", the recipient's mail continues where it was: the digest covers its usual
    period, or from where their latest digest of the other cadence ended if that is
    earlier (weekly -> daily: the days since the last weekly digest were mailed by none),
    and leaves out every story a digest of the other cadence listed. Left out by story,
    not by moving the start to the other digest's end: a recipient who keeps a daily
    digest for one topic and adds a weekly one for another has never been mailed the new
    topic's week, and gets it. ``records``: the recipient's digests, newest first.
    """
    other = next(  # records are newest first
        (
            r
            for r in records
            if r.cadence != plan.cadence
            and plan.period_end - MAX_CATCH_UP <= r.period_end <= plan.period_end
        ),
        None,
    )
    if other is None:
        return plan  # a new recipient: one period back, as ever
    return replace(
        plan,
        period_start=min(plan.period_start, other.period_end),
        # Stories of the other digest's period that it did not list (loaded after it
        # picked them) and that fall before this start: listed here, as the next digest
        # of its own cadence would have.
        late_since=other.selected_at,
        late_from=other.period_start,
        late_listed=tuple(other.story_ids) if other.story_ids is not None else None,
    )


def _without_mailed_elsewhere(
    conn: sa.Connection, records: list[Record], plan: DueDigest, clock: datetime
) -> DueDigest:
    """``plan`` leaving out the stories and spikes the recipient's digests of another
    cadence mailed in its period: after a switch, and after a switch back (daily ->
    weekly -> daily within :data:`MAX_CATCH_UP` continues the daily digests from their
    last one, across the weekly one's period); and the stories its digests stamped
    after ``clock`` (the clock ran ahead) mailed. ``records``: the recipient's digests
    ending within :data:`MAX_CATCH_UP` of the plan's end or later."""
    elsewhere = [
        r
        for r in records
        if r.cadence != plan.cadence and r.status == "sent" and r.period_end > plan.period_start
    ]
    ahead = [
        r
        for r in records
        if r.cadence == plan.cadence
        and r.status == "sent"
        and r.period_end > clock
        and r.story_ids is not None
    ]
    mailed = frozenset(
        int(story_id) for r in [*elsewhere, *ahead] for story_id in (r.story_ids or ())
    )
    if any(r.story_ids is None for r in elsewhere):
        # recorded before migration 0012, without its list: its stories are found again
        mailed |= frozenset(
            int(story_id)
            for (story_id,) in conn.execute(
                query("digest_mailed_elsewhere"),
                {"recipient": plan.address, "cadence": plan.cadence, "start": plan.period_start},
            )
        )
    # A digest's `topics` are those it listed stories of, so those whose spikes it showed
    # (an alert's window has its stories, in that digest's period).
    shown = tuple(
        (str(topic), r.period_start, r.period_end) for r in elsewhere for topic in r.topics
    )
    return replace(plan, mailed=mailed, spikes_shown=shown)


def build_digest(conn: sa.Connection, plan: DueDigest, topics: TopicSet) -> DigestMail:
    """The content of one due digest."""
    length = PERIODS[plan.cadence]
    # Every topic's stories in one query and the shown ones' bodies in one more: a query
    # per topic took 7-11 s of each recipient's digest at 3,000 topics.
    found = topics_stories_between(
        conn,
        [(key, topics.get(key)) for key in plan.topics],
        plan.period_start,
        plan.period_end,
        late_since=plan.late_since,
        late_from=plan.late_from or plan.period_start - length,
        listed=plan.late_listed,
        exclude=plan.mailed,
    )
    # The stories the mail shows in full, given out as render_digest_mail does: only
    # those need a snippet. Every topic's top stories were cut from their bodies: a
    # digest of 1,000 topics that lists 200 stories read and cut 5,000 bodies (5 s of its
    # 8; 3,000 topics, 15 s per recipient).
    budget = DigestBudget()
    listed: list[tuple[str, Topic | None, list[StoryItem], int]] = []
    for key in plan.topics:
        stories = found.get(key, [])
        in_full = budget.most_in_full()
        budget.take(len(stories))
        if stories:
            listed.append((key, topics.get(key), stories, in_full))
    snipped = with_top_snippets(conn, [(topic, stories, n) for _, topic, stories, n in listed])
    sections = [
        TopicStories(
            key,
            topic.name if topic else key,
            tuple(stories),
            terms=topic.terms if topic else (),
            exclude=topic.exclude if topic else (),
        )
        for (key, topic, _, _), stories in zip(listed, snipped, strict=True)
    ]
    spikes = digest_spikes(
        conn, topics.get, plan.topics, plan.period_start, plan.period_end, shown=plan.spikes_shown
    )
    return DigestMail(plan.cadence, plan.period_start, plan.period_end, spikes, tuple(sections))


def digest_message_id(plan: DueDigest, sender: str) -> str:
    """A stable Message-ID, so a digest sent again after a crash can be recognized, at
    the sender's domain (:func:`~mediamon.alerts.render.message_id_domain`)."""
    digest = hashlib.sha256(plan.address.lower().encode("utf-8")).hexdigest()[:12]
    return f"<digest-{plan.key}.{digest}@{message_id_domain(sender)}>"


def run_digests(
    engine: sa.Engine,
    topics: TopicSet,
    now: datetime,
    send: Callable[[EmailMessage], None] | None,
    *,
    sender: str,
    options: MailOptions,
    dry_run: bool = False,
    clock: datetime | None = None,
) -> DigestStats:
    """Send every digest due at ``now`` once.

    A late run (an Airflow run cleared days after its hour) passes the
    real time as ``clock``: a digest whose recipient's next digest time has passed by
    then is stale. It is neither sent nor recorded, so the recipient's current digest
    lists its stories, from where the previous digest ended, as Google Alerts would (a
    run of last Monday, cleared on Wednesday, mailed Monday's digest beside Wednesday's).

    Args:
        engine: The data database.
        topics: The topics in force (recipients and snippets come from here).
        now: The time of this run (``--at``): decides who is due and the periods.
        send: Sends one message and raises on failure; None with ``dry_run``.
        sender: The From address.
        options: Display zone, unsubscribe address, base URL.
        dry_run: Say what is due and how many stories each digest would list (the
            totals ``stories`` and ``empty`` too: what the run would list and find
            empty); send and record nothing.
        clock: The real time, for a late run; None: ``now`` is the real time.

    Raises:
        DigestError: at least one send failed (after every other digest was tried);
            the failed ones are due again at the next run.
        MailServerRefusal: the server refuses every mail (530 authentication required,
            a refused sender, a relay denial): the run stops at the first, the digests
            not sent stay due.
    """
    now = now.astimezone(UTC)
    stats = DigestStats()
    # One digest run at a time: two overlapping runs must not both send.
    with session_lock(engine, DIGEST_LOCK_KEY) as got:
        if not got:
            logger.warning("another digest run is in progress; nothing sent")
            stats.busy = True
            return stats
        try:
            _run(engine, topics, now, send, sender, options, dry_run, stats, clock)
        except MailServerRefusal as refusal:
            raise MailServerRefusal(
                f"{refusal}; nothing more sent ({stats.sent} digest(s) before it): the"
                " digests stay due until the mediamon_smtp connection or the relay is fixed"
            ) from refusal
    if stats.failed or stats.refused:
        said = [f"{stats.failed} digest(s) not sent, due again"] if stats.failed else []
        if stats.refused:
            said.append(f"{stats.refused} refused for good, not tried again")
        raise DigestError(", ".join(said) + ": " + "; ".join(stats.errors[:3]), stats)
    return stats


def _run(
    engine: sa.Engine,
    topics: TopicSet,
    now: datetime,
    send: Callable[[EmailMessage], None] | None,
    sender: str,
    options: MailOptions,
    dry_run: bool,
    stats: DigestStats,
    clock: datetime | None,
) -> None:
    plans = due_digests(engine, topics, now, options, clock)
    stats.due = len(plans)
    for plan in plans:
        if plan.superseded_at is not None:
            stats.stale += 1
            stats.digests.append(
                {
                    "recipient": plan.address,
                    "cadence": plan.cadence,
                    "period_end": plan.period_end.isoformat(),
                    "stale": True,
                }
            )
            logger.info(
                "%s digest to %s for the period ending %s not sent: stale, the digest of %s"
                " lists its stories",
                plan.cadence,
                plan.address,
                plan.period_end.isoformat(),
                plan.superseded_at.isoformat(),
            )
            continue
        with engine.connect() as conn:
            # Read again just before this digest: a recipient who unsubscribed while the
            # run mailed others gets nothing more (nothing recorded: the topics they keep
            # are listed by their next digest).
            kept = _still_wanted(conn, plan)
            if not kept:
                stats.unsubscribed += 1
                logger.info("digest to %s not sent: unsubscribed meanwhile", plan.address)
                continue
            plan = replace(plan, topics=kept)
            selected_at = conn.execute(sa.select(sa.func.clock_timestamp())).scalar_one()
            digest = build_digest(conn, plan, topics)
        summary = {
            "recipient": plan.address,
            "cadence": plan.cadence,
            "period_start": plan.period_start.isoformat(),
            "period_end": plan.period_end.isoformat(),
            "stories": digest.story_count,
            "spikes": len(digest.spikes),
        }
        stats.digests.append(summary)
        nothing_new = digest.story_count == 0 and not digest.spikes
        if dry_run:
            # The totals say what the run would do, as the list does: "stories" 0 beside
            # a digest of 14 read as if the digests listed nothing. Nothing is sent.
            stats.stories += digest.story_count
            stats.empty += nothing_new
            continue
        record = {
            "recipient": plan.address,
            "cadence": plan.cadence,
            "period_start": plan.period_start,
            "period_end": plan.period_end,
            "stories": digest.story_count,
            "topics": [t.topic_key for t in digest.topics],
            "sent_at": now,
            "selected_at": selected_at,
            "story_ids": sorted({s.story_id for t in digest.topics for s in t.stories}),
            # The spikes it shows: bi.alerts.digest_mails_sent counts the digests of each.
            "alert_ids": [s.alert_id for s in digest.spikes if s.alert_id is not None],
        }
        if nothing_new:
            _record(engine, {**record, "status": "empty", "message_id": None})
            stats.empty += 1
            continue
        mid = digest_message_id(plan, sender)
        assert send is not None
        try:
            # Built inside the try: an address the mail library refuses in a header
            # fails this digest, not the others of the run.
            send(
                digest_message(
                    digest,
                    Reader(plan.address, plan.locale, plan.timezone),
                    options,
                    sender=sender,
                    message_id=mid,
                )  # dated when it is sent, not at the run's time
            )
        except Exception as error:  # noqa: BLE001 - any failure means "not sent": retried later
            refusal = server_refusal(error)
            if refusal is not None:  # every other digest would get the same answer
                logger.error("digest to %s not sent: %s", plan.address, refusal)
                raise refusal from error
            answer = refused_for_good(error)
            if answer is not None:
                # A dead mailbox stays dead: asking again failed every hourly run for ever.
                note = clean(f"refused for good: {answer}", 500)
                _record(engine, {**record, "status": "refused", "message_id": None, "note": note})
                stats.refused += 1
                stats.errors.append(f"{plan.address}: {note}")
                logger.warning(
                    "digest to %s refused for good, not tried again: %s", plan.address, answer
                )
                continue
            stats.failed += 1
            stats.errors.append(f"{plan.address}: {type(error).__name__}: {error}")
            logger.warning("digest to %s not sent: %s", plan.address, error)
            continue
        _record(engine, {**record, "status": "sent", "message_id": mid})
        stats.sent += 1
        stats.stories += digest.story_count


def _still_wanted(conn: sa.Connection, plan: DueDigest) -> tuple[str, ...]:
    """The plan's topics the recipient has not left (read now)."""
    left = subscriptions.left_topics(conn, [plan.address])
    return tuple(key for key in plan.topics if subscriptions.wants(left, plan.address, key))


def _record(engine: sa.Engine, row: dict[str, Any]) -> None:
    with engine.begin() as conn:
        conn.execute(insert(digest_deliveries).values(row).on_conflict_do_nothing())
