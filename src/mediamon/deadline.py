"""A total deadline for a conversation over a socket.

A socket timeout bounds each read; a server that trickles a byte a little before each
timeout never trips it, and holds the thread (a download, a mail) for as long as it
likes. :func:`watchdog` runs a timer beside the thread: at the deadline it calls
``cut``, which shuts the connection down (:func:`shut_down`), so the blocked read
returns at once with an error and the thread can tell why from the event it yields.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager


@contextmanager
def watchdog(seconds: float, cut: Callable[[], None]) -> Iterator[threading.Event]:
    """Within the block, ``cut()`` is called once ``seconds`` have passed, from another
    thread; the event yielded is set just before. Leaving the block first calls nothing.

    ``cut`` must be safe to call at any point of the block (before the socket exists,
    after it is closed): the timer does not wait for the thread to be anywhere."""
    passed = threading.Event()

    def expire() -> None:
        passed.set()
        cut()

    timer = threading.Timer(seconds, expire)
    timer.daemon = True  # a process that exits does not wait for a pending deadline
    timer.start()
    try:
        yield passed
    finally:
        timer.cancel()


def shut_down(holder: object) -> None:
    """Shut down ``holder.sock`` (an smtplib client, a urllib3 connection) if it has one
    yet: a read blocked on it returns at once. Shut down, not closed: closing the socket
    from another thread could free its descriptor for a new socket the blocked thread
    would then read."""
    sock = getattr(holder, "sock", None)
    if sock is not None:
        shut_down_socket(sock)


def shut_down_socket(sock: socket.socket) -> None:
    """Shut down ``sock`` (see :func:`shut_down`), if it is still open."""
    with contextlib.suppress(OSError):  # already closed
        sock.shutdown(socket.SHUT_RDWR)
