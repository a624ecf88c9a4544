"""Ops mails held while mediamon's database and the mail server are both down: bounded,
released once each."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from typing import Any

import pytest

from mediamon.ops import held_mail


def _message(n: int) -> EmailMessage:
    message = EmailMessage()
    message["Subject"] = f"[mediamon] task failed: t{n}"
    message.set_content(f"failure {n}")
    return message


class Store:
    def __init__(self) -> None:
        self.value: Any = None

    def load(self) -> Any:
        return self.value

    def store(self, value: Any) -> None:
        self.value = value


def test_at_most_max_held_are_held_the_oldest_dropped_in_one_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    store = Store()
    start = datetime(2024, 1, 1, tzinfo=UTC)
    with caplog.at_level(logging.WARNING):
        for n in range(held_mail.MAX_HELD + 2):
            at = start + timedelta(minutes=n)
            held_mail.hold(f"k{n}", _message(n), ConnectionError("down"), at,
                           load=store.load, store=store.store)  # fmt: skip
    keys = [m["key"] for m in store.value["mails"]]
    assert keys == [f"k{n}" for n in range(2, held_mail.MAX_HELD + 2)]
    dropped = [r.getMessage() for r in caplog.records if "dropped" in r.getMessage()]
    assert len(dropped) == 2 and dropped[0].endswith(": k0"), dropped
    # The same key again (a retry of the callback): held once.
    assert not held_mail.hold("k5", _message(5), ConnectionError("down"), start,
                              load=store.load, store=store.store)  # fmt: skip


def test_released_mails_are_sent_once_oldest_first_and_kept_when_the_server_is_down() -> None:
    store = Store()
    now = datetime(2024, 1, 1, tzinfo=UTC)
    for n in range(3):
        held_mail.hold(f"k{n}", _message(n), ConnectionError("down"), now,
                       load=store.load, store=store.store)  # fmt: skip
    sent: list[str] = []

    def refuse(message: EmailMessage) -> None:
        raise ConnectionRefusedError(111, "Connection refused")

    done = held_mail.release("me", now, load=store.load, store=store.store, move=None,
                             send=refuse, sleep=lambda _: None)  # fmt: skip
    assert done.sent == [] and done.waiting and len(store.value["mails"]) == 3
    assert all("by" not in m for m in store.value["mails"])  # the claims given up

    def send(message: EmailMessage) -> None:
        sent.append(str(message["Subject"]))

    for _ in range(2):
        held_mail.release("me", now, load=store.load, store=store.store, move=None,
                          send=send, sleep=lambda _: None)  # fmt: skip
    assert sent == [f"[mediamon] task failed: t{n}" for n in range(3)]
    assert store.value["mails"] == []
