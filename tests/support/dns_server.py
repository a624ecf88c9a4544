"""A DNS server on a loopback address (UDP port 53) for resolver faults: names it knows
are answered at once with their A records, every other query is read and never answered.

glibc reads its name servers from /etc/resolv.conf only, without a port, so a process
that is to use this server runs in a mount namespace where a resolv.conf naming it is
bound over /etc/resolv.conf (:func:`resolver_command`). Each server takes its own
127.x.y.z address, so parallel test runs never meet on port 53.
"""

from __future__ import annotations

import random
import socket
import struct
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

TYPE_A = 1


def _question(query: bytes) -> tuple[str, int, int]:
    """Name, type and end offset of a query's first question."""
    labels, offset = [], 12
    while query[offset]:
        length = query[offset]
        labels.append(query[offset + 1 : offset + 1 + length].decode("ascii", "replace"))
        offset += 1 + length
    qtype = struct.unpack("!H", query[offset + 1 : offset + 3])[0]
    return ".".join(labels).lower(), qtype, offset + 5


def _answer(query: bytes, end: int, addresses: Sequence[str]) -> bytes:
    """A response to ``query`` with an A record for each of ``addresses``."""
    header = query[:2] + struct.pack("!HHHHH", 0x8180, 1, len(addresses), 0, 0)
    records = b"".join(
        struct.pack("!HHHIH", 0xC00C, TYPE_A, 1, 60, 4) + socket.inet_aton(address)
        for address in addresses
    )
    return header + query[12:end] + records


@contextmanager
def dns_server(known: Mapping[str, Sequence[str]]) -> Iterator[str]:
    """Serve ``known`` (name -> IPv4 addresses); yields the server's address."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    while True:
        address = f"127.{random.randint(1, 254)}.{random.randint(1, 254)}.{random.randint(2, 254)}"
        try:
            sock.bind((address, 53))
            break
        except OSError:
            continue
    sock.settimeout(0.2)
    stopping = threading.Event()

    def serve() -> None:
        while not stopping.is_set():
            try:
                query, client = sock.recvfrom(4096)
                name, qtype, end = _question(query)
            except (TimeoutError, IndexError, struct.error):
                continue
            except OSError:
                return
            if name in known:  # AAAA and the rest: an empty answer, at once
                reply = _answer(query, end, known[name] if qtype == TYPE_A else ())
                sock.sendto(reply, client)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield address
    finally:
        stopping.set()
        thread.join(2)
        sock.close()


def resolver_command(server: str, folder: Path, argv: list[str], wait_s: int) -> list[str]:
    """``argv`` run with ``server`` as its only name server (waited for ``wait_s`` a try,
    once): in its own mount namespace, /etc/resolv.conf replaced for it alone."""
    conf = folder / "resolv.conf"
    conf.write_text(f"nameserver {server}\noptions timeout:{wait_s} attempts:1\n")
    script = 'mount --bind "$0" /etc/resolv.conf && exec "$@"'
    return ["unshare", "--mount", "--propagation", "private", "sh", "-c", script, str(conf), *argv]
