"""A misbehaving HTTP server on 127.0.0.1 for the fault-injection suite.

Each path runs a behaviour on the raw socket, so it can do what well-behaved servers
never do: reset the connection mid-body, cut a gzip stream, drip one byte at a time,
lie about Content-Length. Bounded and self-stopping: every behaviour ends within
``MAX_HANDLER_S``, connections are daemon threads, and ``stop()`` closes everything.
"""

from __future__ import annotations

import gzip
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field

MAX_HANDLER_S = 10.0
Behaviour = Callable[["Connection"], None]


@dataclass
class Connection:
    """One accepted connection and the request read from it."""

    sock: socket.socket
    method: str
    path: str
    headers: dict[str, str]
    server: FaultServer

    def send(self, data: bytes) -> bool:
        """Send bytes; False once the client has gone."""
        try:
            self.sock.sendall(data)
            return True
        except OSError:
            return False

    def head(self, status: str, headers: dict[str, str]) -> bytes:
        lines = [f"HTTP/1.1 {status}", *(f"{k}: {v}" for k, v in headers.items())]
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")

    def reset(self) -> None:
        """Abort with a TCP RST instead of a clean close."""
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.sock.close()


@dataclass
class FaultServer:
    """Routes paths to behaviours; records every request as (method, path, headers)."""

    routes: dict[str, Behaviour] = field(default_factory=dict)
    requests: list[tuple[str, str, dict[str, str]]] = field(default_factory=list)
    _sock: socket.socket | None = None
    _stopping: threading.Event = field(default_factory=threading.Event)
    _clients: list[socket.socket] = field(default_factory=list)

    @property
    def port(self) -> int:
        assert self._sock is not None
        return int(self._sock.getsockname()[1])

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}{path}"

    def route(self, path: str, behaviour: Behaviour) -> str:
        self.routes[path] = behaviour
        return self.url(path)

    def hits(self, path: str) -> int:
        return sum(1 for _, p, _ in self.requests if p == path)

    def start(self) -> None:
        self._sock = socket.socket()
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(64)
        self._sock.settimeout(0.2)
        threading.Thread(target=self._accept, name="faultserver", daemon=True).start()

    def stop(self) -> None:
        self._stopping.set()
        if self._sock is not None:
            self._sock.close()
        for client in list(self._clients):
            with suppress(OSError):
                client.close()

    def _accept(self) -> None:
        assert self._sock is not None
        while not self._stopping.is_set():
            try:
                client, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self._clients.append(client)
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        client.settimeout(MAX_HANDLER_S)
        try:
            while not self._stopping.is_set():
                request = _read_request(client)
                if request is None:
                    return
                method, path, headers = request
                self.requests.append((method, path, headers))
                behaviour = self.routes.get(path.split("?", 1)[0], not_found)
                connection = Connection(client, method, path, headers, self)
                behaviour(connection)
                if headers.get("connection", "").lower() == "close" or client.fileno() < 0:
                    return
        except OSError:
            return
        finally:
            with suppress(OSError):
                client.close()


def _read_request(client: socket.socket) -> tuple[str, str, dict[str, str]] | None:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = client.recv(65536)
        if not chunk:
            return None
        data += chunk
        if len(data) > 65536:
            return None
    head = data.split(b"\r\n\r\n", 1)[0].decode("latin-1")
    first, *lines = head.split("\r\n")
    method, path, _ = first.split(" ", 2)
    headers = {}
    for line in lines:
        key, _, value = line.partition(":")
        headers[key.strip().lower()] = value.strip()
    return method, path, headers


@contextmanager
def fault_server() -> Iterator[FaultServer]:
    server = FaultServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()


# ------------------------------------------------------------------------- behaviours


def respond(
    body: bytes | str = b"",
    status: str = "200 OK",
    content_type: str = "text/html; charset=utf-8",
    headers: dict[str, str] | None = None,
) -> Behaviour:
    """A well-formed answer (the base the faults below break)."""
    data = body.encode() if isinstance(body, str) else body

    def behave(conn: Connection) -> None:
        all_headers = {"Content-Type": content_type, "Content-Length": str(len(data))}
        all_headers.update(headers or {})
        if not content_type:
            del all_headers["Content-Type"]
        conn.send(conn.head(status, all_headers) + (b"" if conn.method == "HEAD" else data))

    return behave


def not_found(conn: Connection) -> None:
    respond(b"not here", "404 Not Found")(conn)


def redirect(location: str, status: str = "302 Found") -> Behaviour:
    return respond(b"", status, headers={"Location": location})


def reset_mid_body(body: bytes, after: int) -> Behaviour:
    """Promise the whole body, send ``after`` bytes, then reset the connection."""

    def behave(conn: Connection) -> None:
        head = conn.head("200 OK", {"Content-Type": "text/html", "Content-Length": str(len(body))})
        conn.send(head + body[:after])
        time.sleep(0.05)
        conn.reset()

    return behave


def short_body(body: bytes, declared: int) -> Behaviour:
    """Declare ``declared`` bytes in Content-Length, send fewer, close cleanly."""

    def behave(conn: Connection) -> None:
        head = conn.head("200 OK", {"Content-Type": "text/html", "Content-Length": str(declared)})
        conn.send(head + body)
        conn.sock.shutdown(socket.SHUT_RDWR)
        conn.sock.close()

    return behave


def truncated_gzip(body: bytes, keep: float = 0.5, content_type: str = "text/html") -> Behaviour:
    """A gzip body cut short, with a Content-Length that matches the cut (the HTTP framing
    is fine, the compressed stream is not)."""
    compressed = gzip.compress(body)
    cut = compressed[: int(len(compressed) * keep)]
    return respond(cut, content_type=content_type, headers={"Content-Encoding": "gzip"})


def gzip_bomb(size: int, content_type: str = "text/html") -> Behaviour:
    """``size`` zero bytes, gzip-compressed to about a thousandth of that."""
    return respond(
        gzip.compress(b"\0" * size), content_type=content_type, headers={"Content-Encoding": "gzip"}
    )


def slow_drip(interval: float, limit_s: float = 6.0, in_headers: bool = False) -> Behaviour:
    """Send one byte every ``interval`` seconds: each read succeeds, the download never
    ends (until ``limit_s`` or the client gives up)."""

    def behave(conn: Connection) -> None:
        body = b"<html>" + b"x" * 100_000
        head = conn.head("200 OK", {"Content-Type": "text/html", "Content-Length": str(len(body))})
        data = head + body if in_headers else body
        if not in_headers and not conn.send(head):
            return
        deadline = time.monotonic() + limit_s
        for index in range(len(data)):
            if time.monotonic() > deadline or not conn.send(data[index : index + 1]):
                return
            time.sleep(interval)

    return behave


def silent(limit_s: float = 6.0) -> Behaviour:
    """Accept the request and never answer."""

    def behave(conn: Connection) -> None:
        deadline = time.monotonic() + limit_s
        while time.monotonic() < deadline and not conn.server._stopping.is_set():
            time.sleep(0.05)

    return behave


def delayed(seconds: float, behaviour: Behaviour) -> Behaviour:
    """Wait ``seconds`` (a busy or hostile server answering late), then behave."""

    def behave(conn: Connection) -> None:
        if not conn.server._stopping.wait(seconds):
            behaviour(conn)

    return behave


def counted(behaviours: list[Behaviour]) -> Behaviour:
    """The n-th request gets the n-th behaviour (the last one repeats)."""
    calls = [0]
    lock = threading.Lock()

    def behave(conn: Connection) -> None:
        with lock:
            index = min(calls[0], len(behaviours) - 1)
            calls[0] += 1
        behaviours[index](conn)

    return behave


def conditional(body: bytes | str, etag: str, content_type: str) -> Behaviour:
    """A server that honours If-None-Match."""

    def behave(conn: Connection) -> None:
        if conn.headers.get("if-none-match") == etag:
            respond(b"", "304 Not Modified", headers={"ETag": etag})(conn)
        else:
            respond(body, content_type=content_type, headers={"ETag": etag})(conn)

    return behave
