"""Ops mails held in Airflow's own store while both mediamon's database and the mail
server are down: the outage ops most need to hear of. Before, a task-failure mail that
the SMTP server did not take could be kept only in ``ops_outbox``, in mediamon's
database; with that database down too it was one WARNING line and lost (measured: 0
mails once the server was back, until the same error failed a task again).

The caller's store (an Airflow Variable, in Airflow's metadata database, which a failing
task can still write) holds at most :data:`MAX_HELD` mails; past that the oldest is
dropped with one log line, so that an outage of days cannot grow the Variable without
bound. Each mail is kept under its ``ops_outbox`` key (one failed task try).

Who releases them: whoever delivers ``ops_outbox`` (the watchdog every 15 minutes, each
ops mail before itself), first. With mediamon's database back, each held mail is moved
into ``ops_outbox`` (``on conflict do nothing``: moving twice keeps one row), which mails
each key once. With the database still down and the server back, they are mailed from
the store: a release claims them, waits, reads back, and mails only its own claims (as
:mod:`mediamon.ops.failure_mail` claims a cause), removing each once sent.
"""

from __future__ import annotations

import base64
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email.message import EmailMessage
from typing import Any

from mediamon.ops import outbox
from mediamon.ops.failure_mail import CLAIM_STALE, CLAIM_WAIT_SECONDS, StoreUnavailable

logger = logging.getLogger(__name__)

# At most this many mails are held: ops need the first failures of an outage; a mail
# is some 5 kB, so the Variable stays under about 100 kB.
MAX_HELD = 20

Held = list[dict[str, Any]]


@dataclass
class Released:
    """What one :func:`release` did, by mail key."""

    moved: list[str] = field(default_factory=list)  # into ops_outbox
    sent: list[str] = field(default_factory=list)  # mailed from the store
    dropped: list[str] = field(default_factory=list)  # too old
    waiting: str | None = None  # why the rest wait (the mail server's error)


def _time(entry: dict[str, Any], name: str) -> datetime | None:
    try:
        at = datetime.fromisoformat(str(entry[name]))
    except (KeyError, TypeError, ValueError):
        return None
    return at if at.utcoffset() is not None else None


def _mails(value: Any) -> Held:
    """The held mails in ``value``, each checked: the Variable may be edited by hand."""
    mails = value.get("mails") if isinstance(value, dict) else None
    if not isinstance(mails, list):
        return []
    return [
        m
        for m in mails
        if isinstance(m, dict)
        and isinstance(m.get("key"), str)
        and isinstance(m.get("message"), str)
        and _time(m, "at") is not None
    ]


def message_of(entry: dict[str, Any]) -> EmailMessage:
    """The mail held in ``entry``, as it was built."""
    return outbox._message(base64.b64decode(entry["message"]))


def hold(
    key: str,
    message: EmailMessage,
    error: BaseException,
    now: datetime,
    *,
    load: Callable[[], Any],
    store: Callable[[Any], None],
) -> bool:
    """Hold ``message``, which neither the mail server nor ``ops_outbox`` could take;
    return whether it was added (False: ``key`` is held already). The oldest are dropped
    past :data:`MAX_HELD`, in one WARNING line naming them.

    Raises:
        StoreUnavailable: the store cannot be read or written (the mail is then lost).
    """
    mails = _mails(load())
    if any(m["key"] == key for m in mails):
        return False
    mails.append(
        {
            "key": key,
            "at": now.isoformat(),
            "error": outbox._error_text(error),
            "message": base64.b64encode(bytes(message)).decode("ascii"),
        }
    )
    mails.sort(key=lambda m: str(m["at"]))
    dropped, mails = mails[:-MAX_HELD], mails[-MAX_HELD:]
    if dropped:
        logger.warning(
            "%d held ops mail(s) dropped, not sent: over %d held while mediamon's database"
            " and the mail server were both down: %s",
            len(dropped),
            MAX_HELD,
            ", ".join(m["key"] for m in dropped),
        )
    store({"mails": mails})
    return True


def release(
    me: str,
    now: datetime,
    *,
    load: Callable[[], Any],
    store: Callable[[Any], None],
    move: Callable[[str, EmailMessage, str, datetime], None] | None,
    send: Callable[[EmailMessage], None],
    sleep: Callable[[float], None] = time.sleep,
) -> Released:
    """Move the held mails into ``ops_outbox`` (``move``), or, when it cannot be written
    (or there is none, ``move`` None), mail them, oldest first, each once. One read when
    none is held (the common case).

    Args:
        me: Who releases (a task try), for the claims.
        now: The clock's time.
        load, store: Read and write the held mails.
        move: Keeps one mail in ``ops_outbox`` (key, message, last error, when held).
        send: Mails one message.
        sleep: Waits between the claim and its check.

    Raises:
        StoreUnavailable: the store cannot be read or written.
    """
    done = Released()
    mails = _mails(load())
    if not mails:
        return done
    old = [m for m in mails if now - (_time(m, "at") or now) > outbox.MAX_AGE]
    if old:
        done.dropped = [m["key"] for m in old]
        logger.warning(
            "%d held ops mail(s) dropped, not sent: held over %g h: %s",
            len(old),
            outbox.MAX_AGE / timedelta(hours=1),
            ", ".join(done.dropped),
        )
        _remove(done.dropped, load, store)
        mails = [m for m in mails if m not in old]
    if move is not None:
        for entry in mails:
            try:
                move(entry["key"], message_of(entry), str(entry.get("error", "")),
                     _time(entry, "at") or now)  # fmt: skip
            except Exception as error:  # noqa: BLE001 - still down: mail them from here
                logger.info("held ops mails not moved into ops_outbox: %s", error)
                break
            done.moved.append(entry["key"])
        _remove(done.moved, load, store)
        if len(done.moved) == len(mails):
            return done  # ops_outbox mails them, each once
        mails = mails[len(done.moved) :]
    _claim([m["key"] for m in mails], me, now, load, store)
    sleep(CLAIM_WAIT_SECONDS)
    for entry in _mails(load()):
        if entry.get("by") != me:
            continue  # another release mails it (or has)
        try:
            send(outbox.late(message_of(entry), now - (_time(entry, "at") or now)))
        except Exception as error:
            _claim([], me, now, load, store)  # given up: the next release mails them
            if not outbox.may_succeed_later(error):
                raise
            done.waiting = outbox._error_text(error)
            break
        try:
            _remove([entry["key"]], load, store)
        except StoreUnavailable as store_error:
            logger.warning("held ops mail %s sent, but not removed (%s): it may be sent again",
                           entry["key"], store_error)  # fmt: skip
            raise
        done.sent.append(entry["key"])
    if done.sent:
        logger.info("%d held ops mail(s) sent: %s", len(done.sent), ", ".join(done.sent))
    return done


def _claim(keys: list[str], me: str, now: datetime, load: Callable[[], Any],
           store: Callable[[Any], None]) -> None:  # fmt: skip
    """Claim ``keys`` for ``me`` (those unclaimed, or claimed over :data:`CLAIM_STALE`
    ago: their release died); give up ``me``'s other claims."""
    mails = _mails(load())
    for entry in mails:
        claimed_at = _time(entry, "claimed_at")
        free = entry.get("by") is None or claimed_at is None or now - claimed_at > CLAIM_STALE
        if entry["key"] in keys and (free or entry.get("by") == me):
            entry.update(by=me, claimed_at=now.isoformat())
        elif entry.get("by") == me:
            entry.pop("by", None)
            entry.pop("claimed_at", None)
    store({"mails": mails})


def _remove(keys: list[str], load: Callable[[], Any], store: Callable[[Any], None]) -> None:
    if keys:
        store({"mails": [m for m in _mails(load()) if m["key"] not in keys]})
