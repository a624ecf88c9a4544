"""The end of a mailed task failure (mediamon.ops.failure_mail): mailed once, by a task
that had failed with it, and kept until then; the error mails again if it comes back.
The store is the plain dict the Airflow Variable holds (tests/dags covers the Variable)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from mediamon.ops import failure_mail
from mediamon.ops.failure_mail import REPEAT_AFTER, State, StoreUnavailable, mail_once

DOWN = "database unavailable: connection refused"
START = datetime(2026, 10, 25, 0, 30, tzinfo=UTC)


class Store:
    def __init__(self) -> None:
        self.state: dict[str, Any] = {}
        self.failures: list[tuple[str, datetime | None]] = []
        self.recoveries: list[tuple[str, datetime]] = []

    def load(self) -> dict[str, Any]:
        return {key: dict(entry) for key, entry in self.state.items()}

    def store(self, state: dict[str, Any]) -> None:
        self.state = {key: dict(entry) for key, entry in state.items()}

    def fail(self, task: str, at: datetime, error: str = DOWN) -> bool:
        return failure_mail.mail_once(
            error, f"{task} run@{at:%H%M}", at, task=task, load=self.load, store=self.store,
            send=lambda _quiet, resolved: self.failures.append((error, resolved)),
            sleep=lambda _s: None,
        )  # fmt: skip

    def succeed(self, task: str, at: datetime) -> int:
        return failure_mail.mail_recovery(
            task, f"{task} run@{at:%H%M}", at, load=self.load, store=self.store,
            send=lambda error, mailed: self.recoveries.append((error, mailed)),
            sleep=lambda _s: None,
        )  # fmt: skip


def test_the_end_of_a_mailed_failure_is_mailed_once_by_a_task_that_failed_with_it() -> None:
    mails = Store()
    assert mails.fail("mediamon_ingest.plan_sources", START)
    assert not mails.fail("mediamon_health.watchdog", START + timedelta(minutes=15))
    # A task that never failed with the error says nothing of it.
    assert mails.succeed("mediamon_digests.send_digests", START + timedelta(minutes=20)) == 0
    # The watchdog, held back, was remembered as failing with it: its success ends it.
    assert mails.succeed("mediamon_health.watchdog", START + timedelta(minutes=30)) == 1
    assert mails.succeed("mediamon_ingest.plan_sources", START + timedelta(minutes=45)) == 0
    assert mails.recoveries == [(DOWN, START)]
    # Back again: mailed again at once, not held back by the first mail's four hours,
    # saying when it was mailed as over (it flaps).
    assert mails.fail("mediamon_ingest.plan_sources", START + timedelta(hours=1))
    assert mails.failures == [(DOWN, None), (DOWN, START + timedelta(minutes=30))]


def test_a_flapping_failure_ends_with_one_resolved_mail_once_it_stays_away() -> None:
    """A database restarting every half hour: before this module mailed ends, one failure
    mail in four hours; mailing each end and each return would be four mails an hour.
    Now: the failure, its end, its return saying it flaps, and one end once calm."""
    mails = Store()
    plan, at = "mediamon_ingest.plan_sources", START
    for _ in range(8):  # four hours of down, up, down, up …
        mails.fail(plan, at)
        mails.succeed(plan, at + timedelta(minutes=15))
        at += timedelta(minutes=30)
    last_failure = at - timedelta(minutes=30)
    assert len(mails.failures) == 2 and len(mails.recoveries) == 1
    assert mails.succeed(plan, last_failure + timedelta(hours=3, minutes=59)) == 0
    assert mails.succeed(plan, last_failure + timedelta(hours=4)) == 1
    assert [mailed for _error, mailed in mails.recoveries] == [START, START + timedelta(minutes=30)]


def test_a_failure_lasting_past_the_repeat_keeps_its_tasks_and_its_end_is_mailed() -> None:
    """Entries were dropped four hours after their mail: a database down for five hours
    would never have its end mailed."""
    mails = Store()
    assert mails.fail("mediamon_health.watchdog", START)
    assert mails.fail("mediamon_ingest.plan_sources", START + timedelta(hours=4, minutes=1))
    assert mails.succeed("mediamon_health.watchdog", START + timedelta(hours=5)) == 1
    assert mails.recoveries == [(DOWN, START + timedelta(hours=4, minutes=1))]
    # A week without any success of those tasks: forgotten, the store does not grow.
    assert mails.fail("mediamon_ingest.plan_sources", START + timedelta(days=1, hours=1))
    mails.fail("other.task", START + timedelta(days=9), error="another error")
    assert list(mails.state) == [failure_mail.signature("another error")]


def test_a_resolved_mail_the_server_did_not_take_is_mailed_at_the_next_success() -> None:
    mails = Store()
    assert mails.fail("mediamon_ingest.plan_sources", START)

    def refused(_error: str, _mailed: datetime) -> None:
        raise ConnectionRefusedError("smtp down")

    with pytest.raises(ConnectionRefusedError):
        failure_mail.mail_recovery(
            "mediamon_ingest.plan_sources", "a", START + timedelta(minutes=30),
            load=mails.load, store=mails.store, send=refused, sleep=lambda _s: None,
        )  # fmt: skip
    assert mails.succeed("mediamon_ingest.plan_sources", START + timedelta(minutes=45)) == 1
    assert mails.recoveries == [(DOWN, START)]


def test_tasks_succeeding_together_mail_the_end_once() -> None:
    """Two shards succeeding at once: each claims, waits and reads back; the last mails."""
    mails = Store()
    assert mails.fail("mediamon_ingest.plan_sources", START)
    at = START + timedelta(minutes=30)
    other: list[int] = []

    def meanwhile(_seconds: float) -> None:  # the other success claims during our wait
        if not other:
            other.append(mails.succeed("mediamon_ingest.plan_sources", at))

    mine = failure_mail.mail_recovery(
        "mediamon_ingest.plan_sources", "first", at, load=mails.load, store=mails.store,
        send=lambda error, mailed: mails.recoveries.append((error, mailed)), sleep=meanwhile,
    )  # fmt: skip
    assert (mine, other, len(mails.recoveries)) == (0, [1], 1)


# A store that fails: deduplication may be lost, a mail never, and no failure is mailed
# twice by one call.

NOW = datetime(2024, 5, 7, 12, 0, tzinfo=UTC)


class FailingStore:
    """What was mailed, kept in memory; write number ``fail_write`` (1-based) and every
    read after ``fail_reads_after`` reads fail as an unreachable store does."""

    def __init__(self, fail_write: int = 0, fail_reads_after: int = -1) -> None:
        self.state: State = {}
        self.writes = 0
        self.reads = 0
        self.fail_write = fail_write
        self.fail_reads_after = fail_reads_after

    def load(self) -> State:
        self.reads += 1
        if 0 <= self.fail_reads_after < self.reads:
            raise StoreUnavailable("read refused")
        return {key: dict(entry) for key, entry in self.state.items()}

    def store(self, state: State) -> None:
        self.writes += 1
        if self.writes == self.fail_write:
            raise StoreUnavailable("write refused")
        self.state = {key: dict(entry) for key, entry in state.items()}


def run(store: FailingStore, sent: list[datetime | None], me: str = "dag.task run") -> bool:
    return mail_once("database unavailable", me, NOW, task="dag.task", load=store.load,
                     store=store.store, send=lambda quiet, _back: sent.append(quiet),
                     sleep=lambda _: None)  # fmt: skip


def test_the_record_of_a_sent_mail_failing_does_not_mail_it_again() -> None:
    store, sent = FailingStore(fail_write=2), []  # the claim written, the record refused
    assert run(store, sent) is True
    assert sent == [NOW + REPEAT_AFTER]


def test_an_unreadable_store_mails_without_deduplication() -> None:
    store, sent = FailingStore(fail_reads_after=0), []
    assert run(store, sent) is True
    assert sent == [None]  # no "not mailed again until": nothing holds it back


def test_a_claim_that_cannot_be_written_still_mails_once() -> None:
    store, sent = FailingStore(fail_write=1), []
    assert run(store, sent) is True
    assert sent == [None]


def test_a_recorded_mail_holds_back_the_next() -> None:
    store, sent = FailingStore(), []
    assert run(store, sent, "a") is True
    assert run(store, sent, "b") is False
    assert sent == [NOW + REPEAT_AFTER]


def test_a_failed_send_is_raised_even_when_the_store_fails_too() -> None:
    store = FailingStore(fail_reads_after=3)  # held_back, claim, read back; then gone

    def send(_: datetime | None, __: datetime | None) -> None:
        raise ConnectionRefusedError("smtp down")

    with pytest.raises(ConnectionRefusedError):
        mail_once("database unavailable", "me", NOW, task="dag.task", load=store.load,
                  store=store.store, send=send, sleep=lambda _: None)  # fmt: skip


@pytest.mark.parametrize(
    "at",
    ["2026-10-25T00:00", "2026-10-25", "9999-12-31T00:00:00+00:00"],
    ids=["naive-time", "naive-date", "far-future"],
)
def test_a_hand_edited_time_in_the_store_is_forgotten_in_one_line(
    at: str, caplog: pytest.LogCaptureFixture
) -> None:
    """The store is an Airflow Variable anyone may edit in the UI. Before: a time without
    its UTC offset raised TypeError (naive minus aware) in every failure and recovery
    mail, whatever their cause, so no ops mail went out; one in year 9999 held its cause's
    mails back until then. Now the entry is forgotten, the line naming it."""
    mails = Store()
    mails.state = {
        failure_mail.signature(DOWN): {"at": at, "sent": True, "by": "x", "tasks": ["t"]},
        "other": {"at": at, "sent": True, "by": "x", "tasks": ["u"]},
    }
    assert mails.fail("t", START)
    assert mails.failures == [(DOWN, None)]
    assert mails.succeed("u", START + timedelta(minutes=5)) == 0
    lines = [r.getMessage() for r in caplog.records if "forgotten" in r.getMessage()]
    assert lines and all(
        line.startswith("Variable mediamon_failure_mails (what was mailed): entry ")
        and repr(at) in line
        for line in lines
    )
    assert mails.fail("t", START + timedelta(minutes=10)) is False  # the new record holds
