"""A real SMTP server (aiosmtpd) on a free 127.0.0.1 port for the mail tests, and a
plain sender to it. Each test module keeps its own handler: what it records differs."""

from __future__ import annotations

import smtplib
import socket
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from email.message import EmailMessage
from typing import Any

from aiosmtpd.controller import Controller


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def serve_smtp(handler: Any) -> Iterator[int]:
    """Run ``handler`` (an aiosmtpd handler) on a free loopback port; yield the port."""
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield port
    finally:
        controller.stop()


def smtp_send(port: int, timeout: float = 10) -> Callable[[EmailMessage], None]:
    """A ``send`` callable delivering to the server on ``port`` without TLS."""

    def send(message: EmailMessage) -> None:
        with smtplib.SMTP("127.0.0.1", port, timeout=timeout) as client:
            client.send_message(message)

    return send
