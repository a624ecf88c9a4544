"""mail_once with a store that fails: deduplication may be lost, a mail never, and no
failure is mailed twice by one call."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from mediamon.ops.failure_mail import REPEAT_AFTER, State, StoreUnavailable, mail_once

NOW = datetime(2024, 5, 7, 12, 0, tzinfo=UTC)


class Store:
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


def run(store: Store, sent: list[datetime | None], me: str = "dag.task run") -> bool:
    return mail_once("database unavailable", me, NOW, load=store.load, store=store.store,
                     send=sent.append, sleep=lambda _: None)  # fmt: skip


def test_the_record_of_a_sent_mail_failing_does_not_mail_it_again() -> None:
    store, sent = Store(fail_write=2), []  # the claim written, the record refused
    assert run(store, sent) is True
    assert sent == [NOW + REPEAT_AFTER]


def test_an_unreadable_store_mails_without_deduplication() -> None:
    store, sent = Store(fail_reads_after=0), []
    assert run(store, sent) is True
    assert sent == [None]  # no "not mailed again until": nothing holds it back


def test_a_claim_that_cannot_be_written_still_mails_once() -> None:
    store, sent = Store(fail_write=1), []
    assert run(store, sent) is True
    assert sent == [None]


def test_a_recorded_mail_holds_back_the_next() -> None:
    store, sent = Store(), []
    assert run(store, sent, "a") is True
    assert run(store, sent, "b") is False
    assert sent == [NOW + REPEAT_AFTER]


def test_a_failed_send_is_raised_even_when_the_store_fails_too() -> None:
    store = Store(fail_reads_after=3)  # held_back, claim, read-back; then the store is gone

    def send(_: datetime | None) -> None:
        raise ConnectionRefusedError("smtp down")

    with pytest.raises(ConnectionRefusedError):
        mail_once("database unavailable", "me", NOW, load=store.load, store=store.store,
                  send=send, sleep=lambda _: None)  # fmt: skip
