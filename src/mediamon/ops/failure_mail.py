"""One ops mail per cause of task failures, not one per failed task, and one when it ends.

With mediamon's database down, every task that needs it fails with the same error:
``plan_sources`` and ``summarize`` (which runs whatever its upstream did) in each ingest
run, the watchdog in each of its runs, the digests each hour. Mailed per task, that was
two mails per ingest run and one per watchdog run, about 13 an hour saying the same line
(measured: one ingest run and one watchdog run, 3 mails). Like Alertmanager, which groups
alerts and repeats a group at most every ``repeat_interval`` (4 h by default), a failure
whose error text was mailed within :data:`REPEAT_AFTER` is not mailed again; the task is
red in the Airflow UI all the same and its log says why no mail went out. The mail says
until when its error is not mailed again, so that silence is not read as "fixed".

What was mailed is kept where a failure can still write when mediamon's database cannot
be reached: the caller's store (an Airflow Variable). Tasks that fail at once (mapped
shards losing the database together) each claim the error, wait, and read back: only the
last claim mails. A claim whose mail failed (the SMTP server down) is given up, so the
next failure mails it.

A mailed cause also remembers the tasks that failed with it. When one of them next
succeeds, the cause is over (the database is back): one RESOLVED mail says so, as the
watchdog's incidents get one. Before, a database down for half an hour got its failure
mail and then nothing: the watchdog, which mails recoveries, reads that database and had
seen no incident; ops could not tell "fixed" from "still down, held back". A cause back
within :data:`REPEAT_AFTER` of its RESOLVED mail flaps (a database restarting over and
over): it is mailed again, saying so, and its next end only once no task has failed with
it for :data:`REPEAT_AFTER`, as the watchdog holds a flapping incident's recovery; the
last word ops get is not a RESOLVED mail for a problem that is back.

A store that cannot be read or written costs deduplication, never the mail, and never
mails one failure twice.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

logger = logging.getLogger(__name__)

REPEAT_AFTER = timedelta(hours=4)
# How long a claim waits before reading the store back: far longer than a read and a
# write through Airflow's API, so tasks failing together see each other's claims.
CLAIM_WAIT_SECONDS = 2.0
# A claim older than this whose mail is not marked sent: its task died while sending.
CLAIM_STALE = timedelta(minutes=5)
# A mailed cause whose end no task has seen is kept this long for its RESOLVED mail (as
# the watchdog mails the end of episodes resolved within a week), then forgotten.
KEEP_UNRESOLVED = timedelta(days=7)
# The error's text kept for the RESOLVED mail, which names what ended.
ERROR_CHARS = 500

State = dict[str, dict[str, Any]]


class StoreUnavailable(Exception):
    """What was mailed could not be read or written (the caller's ``load`` or ``store``)."""


def signature(error_text: str) -> str:
    """The key of a cause: a hash of the error's one-line text (the failure mail's
    ``Error`` line), short enough to keep many in one small Variable."""
    return hashlib.sha256(error_text.encode("utf-8", "replace")).hexdigest()[:16]


def _time(entry: Any, field: str, now: datetime) -> datetime | None:
    """``entry[field]`` as a time, or None when it is absent or not one this module wrote:
    the store is an Airflow Variable anyone may edit. A time without its UTC offset
    (``2026-10-25T00:00``) cannot be compared with ``now`` (before: TypeError in every
    failure and recovery mail, all causes' mails lost); one after ``now`` (more than a
    clock's skew between workers) would hold its cause's mails back until then."""
    try:
        at = datetime.fromisoformat(str(entry[field]))
    except (KeyError, TypeError, ValueError):
        return None
    if at.utcoffset() is None or at - now > CLAIM_STALE:
        return None
    return at


def _unreadable(key: str, entry: Any) -> str:
    """The one line saying which hand-edited entry of the store is forgotten, and why."""
    shown = repr(entry.get("at"))[:60] if isinstance(entry, dict) else type(entry).__name__
    return (
        f"Variable mediamon_failure_mails (what was mailed): entry {key[:40]!r} forgotten:"
        f" its 'at' {shown} is not an ISO time with its UTC offset, no later than now"
    )


def _pruned(state: State, now: datetime) -> State:
    """The entries still of use: those holding a cause back, mailed causes whose end is
    still to be mailed, and ended causes that would flap if they came back now."""
    keep: State = {}
    for key, entry in state.items():
        at = _time(entry, "at", now)
        if at is None or not isinstance(entry, dict):
            logger.warning(_unreadable(key, entry))
            continue  # forget it
        ended = _time(entry, "resolved_at", now)
        if ended is not None:
            if now - ended < REPEAT_AFTER:
                keep[key] = entry
        elif now - at < REPEAT_AFTER or (entry.get("sent") and now - at < KEEP_UNRESOLVED):
            keep[key] = entry
    return keep


def held_back(state: State, key: str, now: datetime) -> str | None:
    """Why a failure with this cause is not mailed now (it was, or another task is
    mailing it), or None."""
    entry = state.get(key)
    at = None if entry is None else _time(entry, "at", now)
    if entry is None or at is None or now - at >= REPEAT_AFTER or "resolved_at" in entry:
        return None
    if entry.get("sent"):
        return f"the same error was mailed at {at:%Y-%m-%d %H:%M} UTC by {entry.get('by')}"
    if now - at < CLAIM_STALE:
        return f"{entry.get('by')} is mailing the same error"
    return None


def _with_tasks(entry: Any, *tasks: str) -> list[str]:
    known = entry.get("tasks") if isinstance(entry, dict) else None
    listed = [str(t) for t in known] if isinstance(known, list) else []
    return listed + [t for t in dict.fromkeys(tasks) if t not in listed]


def mail_once(
    error_text: str,
    me: str,
    now: datetime,
    *,
    task: str,
    load: Callable[[], State],
    store: Callable[[State], None],
    send: Callable[[datetime | None, datetime | None], None],
    sleep: Callable[[float], None] = time.sleep,
) -> bool:
    """Mail a failure unless its cause was mailed within :data:`REPEAT_AFTER`; return
    whether this call mailed it. Either way ``task`` is remembered as failing with it.

    Args:
        error_text: The failure's one-line error, which names its cause.
        me: Who fails (``dag.task[map index] run``), for the store and the log.
        now: The clock's time.
        task: The failing task (``dag.task``), whose next success ends the cause.
        load, store: Read and write what was mailed (shared by every task); they raise
            :class:`StoreUnavailable` when they cannot.
        send: Mails the failure; given the time until which its cause is not mailed
            again (None when the store is unavailable and nothing holds it back), and
            when its RESOLVED mail went out if it is back since (flapping).
        sleep: Waits between the claim and its check.

    Raises:
        Whatever ``send`` raised; the claim is given up first, so the next failure mails.
    """
    key = signature(error_text)
    try:
        state = load()
        reason = held_back(state, key, now)
        if reason is not None:
            entry = state[key]
            state[key] = {**entry, "tasks": _with_tasks(entry, task), "failed_at": now.isoformat()}
            with contextlib.suppress(StoreUnavailable):  # costs only the RESOLVED mail's list
                store(state)
            logger.warning("failure mail not sent: %s (mailed at most every %s)",
                           reason, REPEAT_AFTER)  # fmt: skip
            return False
        state = _pruned(load(), now)
        before = state.get(key)  # mailed over REPEAT_AFTER ago, or ended a while ago
        ended = None if before is None else _time(before, "resolved_at", now)
        claim = {
            "by": me,
            "tasks": [task] if ended is not None else _with_tasks(before, task),
            "error": error_text[:ERROR_CHARS],
            "failed_at": now.isoformat(),
            "flapping": ended is not None or bool(before and before.get("flapping")),
        }
        state[key] = {"at": now.isoformat(), **claim, "sent": False}
        store(state)
        sleep(CLAIM_WAIT_SECONDS)
        claimed = load().get(key, {})
    except StoreUnavailable as error:
        # Better a mail twice than none: nothing was sent yet, so mail without the store.
        logger.warning("cannot read or write what was mailed (%s): mailing", error)
        send(None, None)
        return True
    if claimed.get("by") != me:
        logger.warning("failure mail not sent: %s mails the same error", claimed.get("by"))
        return False
    try:
        send(now + REPEAT_AFTER, ended)
    except BaseException:
        with contextlib.suppress(StoreUnavailable):  # the send's error is the one to see
            state = load()
            if state.get(key, {}).get("by") == me:
                if before is None:
                    del state[key]
                else:
                    state[key] = before
                store(state)
        raise
    try:
        state = _pruned(load(), now)
        meanwhile = state.get(key, {})  # tasks held back while this one mailed
        state[key] = {
            **meanwhile,
            "at": now.isoformat(),
            **claim,
            "tasks": _with_tasks(claim, *_with_tasks(meanwhile)),
            "sent": True,
        }
        store(state)
    except StoreUnavailable as error:
        # Mailed: sending it again would be the duplicate the store exists to prevent.
        logger.warning("failure mailed, but not recorded (%s): a later failure may repeat it",
                       error)  # fmt: skip
    return True


def recoveries_due(state: State, task: str, now: datetime) -> list[str]:
    """The causes whose end ``task``'s success makes due for a RESOLVED mail: mailed,
    not ended, failed by ``task``, and (when flapping) quiet for :data:`REPEAT_AFTER`.
    Usually none: the caller then needs neither its mail connection nor another read."""

    def over(entry: dict[str, Any]) -> bool:
        if not entry.get("sent") or "resolved_at" in entry or task not in entry.get("tasks", []):
            return False
        last = _time(entry, "failed_at", now) or _time(entry, "at", now)
        return not entry.get("flapping") or last is None or now - last >= REPEAT_AFTER

    return [key for key, entry in _pruned(state, now).items() if over(entry)]


def mail_recovery(
    task: str,
    me: str,
    now: datetime,
    *,
    load: Callable[[], State],
    store: Callable[[State], None],
    send: Callable[[str, datetime], None],
    sleep: Callable[[float], None] = time.sleep,
    state: State | None = None,
) -> int:
    """After ``task`` succeeded: mail the end of each cause whose failure was mailed and
    that ``task`` had failed with; return how many were mailed. An ended cause is kept
    for :data:`REPEAT_AFTER` (to tell a flap), without holding its error back.

    A flapping cause's end waits until no task has failed with it for
    :data:`REPEAT_AFTER`. Tasks succeeding at once (an ingest run's shards) each claim the
    cause, wait and read back, as :func:`mail_once` does: only the last claim mails. A
    RESOLVED mail the server did not take leaves the cause kept: the next success mails it.

    Args:
        task: The task that succeeded (``dag.task``).
        me: Who succeeded (``dag.task[map index] run``), for the store and the log.
        now: The clock's time.
        load, store: Read and write what was mailed.
        send: Mails one cause's end: given its error's text and when it was mailed.
        sleep: Waits between the claim and its check.
        state: What ``load`` returned just before, when the caller read it already
            (:func:`recoveries_due`): not read again.
    """
    state = load() if state is None else state
    ended = recoveries_due(state, task, now)
    if not ended:
        return 0  # the common case: one read, nothing written
    for key in ended:
        state[key] = {**state[key], "ending": me}
    store(state)
    sleep(CLAIM_WAIT_SECONDS)
    mailed = 0
    for key in ended:
        entry = load().get(key, {})
        if entry.get("ending") != me:
            continue  # another task mails it (or has)
        send(str(entry.get("error", "")), _time(entry, "at", now) or now)
        state = load()
        state[key] = {"at": entry["at"], "resolved_at": now.isoformat()}
        store(_pruned(state, now))
        mailed += 1
    return mailed
