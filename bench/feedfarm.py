"""Many news sites on this machine: one RSS feed per site, each site on a loopback address
of its own (127.0.1.1, 127.0.1.2, …: Linux routes all of 127.0.0.0/8 to lo), so that
mediamon sees as many hosts as sources, as it would on the web. Served by one asyncio
loop in a process of its own, so it never holds the measured process's GIL.

    with serve_farm(sources=1000, articles=5) as farm:
        farm.sources_yaml(path)

``hostile`` makes some sites misbehave as sites on the web do (see :data:`BEHAVIOURS`).
"""

from __future__ import annotations

import asyncio
import functools
import multiprocessing
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any

HOSTS_PER_OCTET = 250
MAX_REQUEST_HEAD = 16 * 1024
# What a hostile site does (a site not named is healthy):
BEHAVIOURS = (
    "drip-feed",  # sends its feed a byte a second, never ending
    "drip-pages",  # a good feed; its article pages come a byte a second
    "hang",  # accepts the connection, reads the request, never answers
    "defer",  # 503 with Retry-After: 86400 to everything
    "many",  # MANY_ARTICLES new items, behind a 5 s politeness interval (sources_yaml)
)
MANY_ARTICLES = 200
MANY_INTERVAL = "5s"  # the politeness interval of a public host (loopback's is 0)
DRIP_INTERVAL_S = 1.0


def host_address(index: int) -> str:
    """The loopback address of site ``index`` (127.0.1.1 onwards; 127.0.0.x is left to
    the servers other programs start on 127.0.0.1)."""
    return f"127.0.{1 + index // HOSTS_PER_OCTET}.{1 + index % HOSTS_PER_OCTET}"


@dataclass(frozen=True)
class Farm:
    """The running farm: site ``i`` answers at ``urls[i]``."""

    urls: list[str]
    pid: int
    hostile: Mapping[int, str]

    def sources_yaml(self, path: Path, *, fetch_pages: bool = True, max_items: int = 500) -> None:
        """Write a sources file with one feed source per site (names ``site-0001``…)."""
        lines = ["sources:"]
        for index, url in enumerate(self.urls):
            many = self.hostile.get(index) == "many"
            lines.append(
                f"  - {{name: site-{index:04d}, url: '{url}/feed.xml', language: zh,"
                f" allow_private_network: true, fetch_pages: {str(fetch_pages).lower()},"
                f" max_items: {max(max_items, MANY_ARTICLES) if many else max_items}"
                + (f", host_min_interval: {MANY_INTERVAL}" if many else "")
                + "}"
            )
        path.write_text("\n".join(lines) + "\n", "utf-8")


def _serve(
    sources: int, articles: int, pages: bool, hostile: Mapping[int, str], ready: Any
) -> None:
    page_bodies: list[bytes] = []
    if pages:
        from bench.common import corpus_pages

        page_bodies = corpus_pages()
    start = datetime(2024, 4, 1, tzinfo=UTC)

    def feed(index: int, base: str) -> bytes:
        items = []
        for j in range(MANY_ARTICLES if hostile.get(index) == "many" else articles):
            serial = index * articles + j
            when = format_datetime(start + timedelta(minutes=serial))
            # Distinct text per item: the farm's articles are news, not syndicated copies.
            text = f"第{index}号站点的第{j}篇报道。" * 3 + f"Item {serial} of site {index}."
            items.append(
                f"<item><title>Site {index} story {j}</title><link>{base}/a/{j}.html</link>"
                f"<guid>{base}/a/{j}.html</guid><pubDate>{when}</pubDate>"
                f"<description>{text}</description></item>"
            )
        body = f"<rss version='2.0'><channel><title>site {index}</title>{''.join(items)}"
        return (body + "</channel></rss>").encode()

    def answer(index: int, base: str, path: str) -> tuple[int, str, bytes]:
        if path == "/feed.xml":
            return 200, "application/rss+xml", feed(index, base)
        if path.startswith("/a/") and page_bodies:
            j = int(path[3:].split(".")[0])
            return 200, "text/html", page_bodies[(index * articles + j) % len(page_bodies)]
        return 404, "text/plain", b"not found"

    async def drip(writer: asyncio.StreamWriter, kind: str, body: bytes) -> None:
        """The head at once, then the body a byte every DRIP_INTERVAL_S, until the
        client gives up (the connection breaks) or, after hours, the body ends."""
        head = f"HTTP/1.1 200 OK\r\nContent-Type: {kind}\r\nContent-Length: {len(body)}\r\n\r\n"
        writer.write(head.encode())
        for index in range(len(body)):
            writer.write(body[index : index + 1])
            await writer.drain()
            if writer.is_closing():
                raise ConnectionError("client gone")
            await asyncio.sleep(DRIP_INTERVAL_S)

    async def handle(
        index: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        host, port = writer.get_extra_info("sockname")[:2]
        base = f"http://{host}:{port}"
        behaviour = hostile.get(index, "")
        try:
            while True:  # keep-alive: one connection, many requests
                head = await reader.readuntil(b"\r\n\r\n")
                if len(head) > MAX_REQUEST_HEAD:
                    break
                path = head.split(b" ", 2)[1].decode("latin-1")
                if behaviour == "hang":
                    await reader.read()  # until the client closes
                    break
                status, kind, body = answer(index, base, path)
                if (
                    behaviour == "drip-feed"
                    and path == "/feed.xml"
                    or (behaviour == "drip-pages" and path.startswith("/a/"))
                ):
                    await drip(writer, kind, body)
                    break
                extra = ""
                if behaviour == "defer":
                    status, kind, body = 503, "text/plain", b"busy"
                    extra = "Retry-After: 86400\r\n"
                writer.write(
                    f"HTTP/1.1 {status} X\r\nContent-Type: {kind}\r\n{extra}"
                    f"Content-Length: {len(body)}\r\n\r\n".encode()
                    + body
                )
                await writer.drain()
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
            pass
        finally:
            writer.close()

    async def main() -> None:
        servers = []
        urls = []
        for index in range(sources):
            server = await asyncio.start_server(
                functools.partial(handle, index), host_address(index), 0
            )
            servers.append(server)
            host, port = server.sockets[0].getsockname()[:2]
            urls.append(f"http://{host}:{port}")
        ready.put(urls)
        await asyncio.Event().wait()

    asyncio.run(main())


@contextmanager
def serve_farm(
    sources: int, articles: int, *, pages: bool = True, hostile: Mapping[int, str] | None = None
) -> Iterator[Farm]:
    """Serve ``sources`` sites with ``articles`` items each; ``pages`` serves each item's
    page (pages of the shared corpora, cycled), else only the feeds (items carry text).
    ``hostile`` maps a site's index to its misbehaviour (one of :data:`BEHAVIOURS`)."""
    hostile = dict(hostile or {})
    if unknown := set(hostile.values()) - set(BEHAVIOURS):
        raise ValueError(f"unknown behaviours {sorted(unknown)}; expected {BEHAVIOURS}")
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < sources + 1024:  # one listening socket per site, in the child too
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, sources + 4096), hard))
    context = multiprocessing.get_context("spawn")
    ready = context.Queue()
    process = context.Process(
        target=_serve, args=(sources, articles, pages, hostile, ready), daemon=True
    )
    process.start()
    try:
        urls = ready.get(timeout=120)
        yield Farm(urls=urls, pid=process.pid or 0, hostile=hostile)
    finally:
        process.terminate()
        process.join(10)
