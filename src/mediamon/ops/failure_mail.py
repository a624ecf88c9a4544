"""One ops mail per cause of task failures, not one per failed task.

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
next failure mails it. A store that cannot be read or written costs deduplication, never
the mail, and never mails one failure twice.
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

State = dict[str, dict[str, Any]]


class StoreUnavailable(Exception):
    """What was mailed could not be read or written (the caller's ``load`` or ``store``)."""


def signature(error_text: str) -> str:
    """The key of a cause: a hash of the error's one-line text (the failure mail's
    ``Error`` line), short enough to keep many in one small Variable."""
    return hashlib.sha256(error_text.encode("utf-8", "replace")).hexdigest()[:16]


def _pruned(state: State, now: datetime) -> State:
    keep: State = {}
    for key, entry in state.items():
        try:
            at = datetime.fromisoformat(str(entry["at"]))
        except (KeyError, TypeError, ValueError):
            continue  # a value someone edited by hand: forget it
        if now - at < REPEAT_AFTER:
            keep[key] = entry
    return keep


def held_back(state: State, key: str, now: datetime) -> str | None:
    """Why a failure with this cause is not mailed now (it was, or another task is
    mailing it), or None."""
    entry = _pruned(state, now).get(key)
    if entry is None:
        return None
    at = datetime.fromisoformat(str(entry["at"]))
    if entry.get("sent"):
        return f"the same error was mailed at {at:%Y-%m-%d %H:%M} UTC by {entry.get('by')}"
    if now - at < CLAIM_STALE:
        return f"{entry.get('by')} is mailing the same error"
    return None


def mail_once(
    error_text: str,
    me: str,
    now: datetime,
    *,
    load: Callable[[], State],
    store: Callable[[State], None],
    send: Callable[[datetime | None], None],
    sleep: Callable[[float], None] = time.sleep,
) -> bool:
    """Mail a failure unless its cause was mailed within :data:`REPEAT_AFTER`; return
    whether this call mailed it.

    Args:
        error_text: The failure's one-line error, which names its cause.
        me: Who fails (``dag.task[map index] run``), for the store and the log.
        now: The clock's time.
        load, store: Read and write what was mailed (shared by every task); they raise
            :class:`StoreUnavailable` when they cannot.
        send: Mails the failure; given the time until which its cause is not mailed
            again, or None when the store is unavailable and nothing holds it back.
        sleep: Waits between the claim and its check.

    Raises:
        Whatever ``send`` raised; the claim is given up first, so the next failure mails.
    """
    key = signature(error_text)
    try:
        if not _claimed(key, me, now, load=load, store=store, sleep=sleep):
            return False
    except StoreUnavailable as error:
        # Better a mail twice than none: nothing was sent yet, so mail without the store.
        logger.warning("cannot read or write what was mailed (%s): mailing", error)
        send(None)
        return True
    try:
        send(now + REPEAT_AFTER)
    except BaseException:
        with contextlib.suppress(StoreUnavailable):  # the send's error is the one to see
            state = load()
            if state.get(key, {}).get("by") == me:
                del state[key]
                store(state)
        raise
    try:
        state = _pruned(load(), now)
        state[key] = {"at": now.isoformat(), "by": me, "sent": True}
        store(state)
    except StoreUnavailable as error:
        # Mailed: sending it again would be the duplicate the store exists to prevent.
        logger.warning("failure mailed, but not recorded (%s): a later failure may repeat it",
                       error)  # fmt: skip
    return True


def _claimed(
    key: str,
    me: str,
    now: datetime,
    *,
    load: Callable[[], State],
    store: Callable[[State], None],
    sleep: Callable[[float], None],
) -> bool:
    """Claim the mailing of ``key``: False if it was mailed or another task mails it."""
    reason = held_back(load(), key, now)
    if reason is not None:
        logger.warning("failure mail not sent: %s (mailed at most every %s)", reason, REPEAT_AFTER)
        return False
    state = _pruned(load(), now)
    state[key] = {"at": now.isoformat(), "by": me, "sent": False}
    store(state)
    sleep(CLAIM_WAIT_SECONDS)
    claimed = load().get(key, {})
    if claimed.get("by") != me:
        logger.warning("failure mail not sent: %s mails the same error", claimed.get("by"))
        return False
    return True
