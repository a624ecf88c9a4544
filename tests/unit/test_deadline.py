"""The total deadline's watchdog (mediamon.deadline), on real sockets."""

from __future__ import annotations

import socket
import threading
from types import SimpleNamespace

from mediamon.deadline import shut_down, watchdog


def test_the_deadline_ends_a_read_that_would_wait_forever() -> None:
    # The peer never writes: without the watchdog, recv() would block for good.
    ours, peer = socket.socketpair()
    holder = SimpleNamespace(sock=ours)
    with ours, peer, watchdog(0.05, lambda: shut_down(holder)) as passed:
        assert ours.recv(1) == b""  # shut down: the read returns, at the end of the stream
        assert passed.is_set()


def test_leaving_before_the_deadline_cuts_nothing() -> None:
    cuts: list[str] = []
    with watchdog(0.05, lambda: cuts.append("cut")) as passed:
        pass
    # Longer than the deadline: a timer that was not cancelled would have fired by now.
    threading.Event().wait(0.3)
    assert cuts == [] and not passed.is_set()


def test_shutting_down_what_has_no_socket_yet_or_a_closed_one_is_harmless() -> None:
    shut_down(SimpleNamespace(sock=None))  # smtplib before connect()
    shut_down(object())  # a urllib3 connection before its socket
    closed, peer = socket.socketpair()
    closed.close()
    peer.close()
    shut_down(SimpleNamespace(sock=closed))
