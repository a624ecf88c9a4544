"""A real SMTP server (aiosmtpd) on a free 127.0.0.1 port for the mail tests, the sink
that records what it receives (fixture ``smtp`` in tests/conftest.py), and a plain
sender to it."""

from __future__ import annotations

import json
import smtplib
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from email.message import EmailMessage
from typing import Any, NamedTuple

from aiosmtpd.controller import Controller


class Received(NamedTuple):
    """One message as the server got it."""

    mail_from: str
    rcpt_tos: list[str]
    content: bytes


class Sink:
    """aiosmtpd handler that keeps every message it receives."""

    def __init__(self) -> None:
        self.messages: list[Received] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        self.messages.append(
            Received(envelope.mail_from, list(envelope.rcpt_tos), envelope.content)
        )
        return "250 OK"


class Picky(Sink):
    """A sink that answers ``RCPT TO`` for some addresses with a refusal instead of 250:
    ``refuse[address]`` is the reply (``550 5.1.1 no such mailbox`` for good, ``451 4.2.0
    try again later`` for now); a temporary one only ``tries_left[address]`` times, then
    the address is accepted. ``asked`` counts every ``RCPT TO`` per address."""

    def __init__(self, refuse: dict[str, str], tries_left: dict[str, int] | None = None) -> None:
        super().__init__()
        self.refuse = refuse
        self.tries_left = dict(tries_left or {})
        self.asked: dict[str, int] = {}

    async def handle_RCPT(  # noqa: N802
        self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: list[str]
    ) -> str:
        self.asked[address] = self.asked.get(address, 0) + 1
        reply = self.refuse.get(address)
        if reply is not None and self.tries_left.get(address, 1) > 0:
            if address in self.tries_left:
                self.tries_left[address] -= 1
            return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"


class Answering(Picky):
    """A picky sink that may also refuse the sender or the message: ``mail_from`` is the
    reply to every ``MAIL FROM`` (``530 5.7.0 Authentication required``; None: 250), and
    ``data[address]`` the reply to the end of ``DATA`` of a message to ``address``
    (``554 5.7.1 rejected as spam`` for good, ``452 4.3.1 out of storage`` for now; a
    temporary one only ``data_tries_left[address]`` times). ``mail_froms`` counts every
    ``MAIL FROM``, ``offered`` every message offered per recipient."""

    def __init__(
        self,
        *,
        mail_from: str | None = None,
        data: dict[str, str] | None = None,
        data_tries_left: dict[str, int] | None = None,
        refuse: dict[str, str] | None = None,
    ) -> None:
        super().__init__(refuse or {})
        self.mail_from_reply = mail_from
        self.data = data or {}
        self.data_tries_left = dict(data_tries_left or {})
        self.mail_froms = 0
        self.offered: dict[str, int] = {}

    async def handle_MAIL(  # noqa: N802
        self, server: Any, session: Any, envelope: Any, address: str, mail_options: list[str]
    ) -> str:
        self.mail_froms += 1
        if self.mail_from_reply is not None:
            return self.mail_from_reply
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        for address in envelope.rcpt_tos:
            self.offered[address] = self.offered.get(address, 0) + 1
        for address in envelope.rcpt_tos:
            reply = self.data.get(address)
            if reply is not None and self.data_tries_left.get(address, 1) > 0:
                if address in self.data_tries_left:
                    self.data_tries_left[address] -= 1
                return reply
        return await super().handle_DATA(server, session, envelope)


class SevenBitOnly(Sink):
    """A sink that does not offer 8BITMIME (RFC 6152) in its EHLO answer, as some relays
    and appliances do not: a client may then send only 7-bit bytes. ``ehlo`` keeps the
    lines it answered with; the messages are kept byte for byte, as they came."""

    def __init__(self) -> None:
        super().__init__()
        self.ehlo: list[str] = []

    async def handle_EHLO(  # noqa: N802
        self, server: Any, session: Any, envelope: Any, hostname: str, responses: list[str]
    ) -> list[str]:
        session.host_name = hostname
        self.ehlo = [line for line in responses if "8BITMIME" not in line.upper()]
        return self.ehlo


def password_check(login: str, password: str) -> Callable[..., Any]:
    """An aiosmtpd ``authenticator`` taking ``login`` with ``password`` only (AUTH PLAIN
    or LOGIN; anything else gets ``535 5.7.8 Authentication credentials invalid``)."""
    from aiosmtpd.smtp import AuthResult, LoginPassword

    def check(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> Any:
        good = isinstance(data, LoginPassword) and (data.login, data.password) == (
            login.encode(),
            password.encode(),
        )
        return AuthResult(success=good, handled=False)

    return check


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def serve_smtp(handler: Any, **server_options: Any) -> Iterator[int]:
    """Run ``handler`` (an aiosmtpd handler) on a free loopback port; yield the port.
    ``server_options`` go to aiosmtpd's SMTP (``authenticator``, ``auth_require_tls``...).
    Without them the server offers neither STARTTLS nor AUTH."""
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port, **server_options)
    controller.start()
    try:
        yield port
    finally:
        controller.stop()


@contextmanager
def serve_trickle(gap_s: float, for_s: float) -> Iterator[int]:
    """A server on a free loopback port that greets every client one byte every ``gap_s``
    seconds (an endless multi-line ``220-`` greeting, as a tarpit does) for ``for_s``
    seconds, then closes: every read succeeds, so a per-read timeout never fires."""
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def trickle(conn: socket.socket) -> None:
        ends = time.monotonic() + for_s
        line = b"220-slow.example.org please wait\r\n"
        with conn:
            while not stop.is_set() and time.monotonic() < ends:
                for byte in line:
                    try:
                        conn.sendall(bytes([byte]))
                    except OSError:  # the client hung up
                        return
                    if stop.wait(gap_s):
                        return

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:  # closed at the end
                return
            threading.Thread(target=trickle, args=(conn,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    try:
        yield int(listener.getsockname()[1])
    finally:
        stop.set()
        listener.close()


def smtp_send(port: int, timeout: float = 10) -> Callable[[EmailMessage], None]:
    """A ``send`` callable delivering to the server on ``port`` without TLS."""

    def send(message: EmailMessage) -> None:
        with smtplib.SMTP("127.0.0.1", port, timeout=timeout) as client:
            client.send_message(message)

    return send


def connection_json(port: int) -> str:
    """The ``mediamon_smtp`` Airflow connection (``AIRFLOW_CONN_MEDIAMON_SMTP``) for the
    server on ``port``: plain SMTP, as the smtp provider reads the JSON form."""
    return json.dumps(
        {
            "conn_type": "smtp",
            "host": "127.0.0.1",
            "port": port,
            "extra": {"disable_ssl": True, "disable_tls": True},
        }
    )
