"""Many news sites on this machine: one RSS feed per site, each site on a loopback address
of its own (127.0.1.1, 127.0.1.2, …: Linux routes all of 127.0.0.0/8 to lo), so that
mediamon sees as many hosts as sources, as it would on the web. Served by one asyncio
loop in a process of its own, so it never holds the measured process's GIL.

    with serve_farm(sources=1000, articles=5) as farm:
        farm.sources_yaml(path)
"""

from __future__ import annotations

import asyncio
import functools
import multiprocessing
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any

HOSTS_PER_OCTET = 250
MAX_REQUEST_HEAD = 16 * 1024


def host_address(index: int) -> str:
    """The loopback address of site ``index`` (127.0.1.1 onwards; 127.0.0.x is left to
    the servers other programs start on 127.0.0.1)."""
    return f"127.0.{1 + index // HOSTS_PER_OCTET}.{1 + index % HOSTS_PER_OCTET}"


@dataclass(frozen=True)
class Farm:
    """The running farm: site ``i`` answers at ``urls[i]``."""

    urls: list[str]
    pid: int

    def sources_yaml(self, path: Path, *, fetch_pages: bool = True, max_items: int = 500) -> None:
        """Write a sources file with one feed source per site (names ``site-0001``…)."""
        lines = ["sources:"]
        for index, url in enumerate(self.urls):
            lines.append(
                f"  - {{name: site-{index:04d}, url: '{url}/feed.xml', language: zh,"
                f" allow_private_network: true, fetch_pages: {str(fetch_pages).lower()},"
                f" max_items: {max_items}}}"
            )
        path.write_text("\n".join(lines) + "\n", "utf-8")


def _serve(sources: int, articles: int, pages: bool, ready: Any) -> None:
    page_bodies: list[bytes] = []
    if pages:
        from bench.common import corpus_pages

        page_bodies = corpus_pages()
    start = datetime(2024, 4, 1, tzinfo=UTC)

    def feed(index: int, base: str) -> bytes:
        items = []
        for j in range(articles):
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

    async def handle(
        index: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        host, port = writer.get_extra_info("sockname")[:2]
        base = f"http://{host}:{port}"
        try:
            while True:  # keep-alive: one connection, many requests
                head = await reader.readuntil(b"\r\n\r\n")
                if len(head) > MAX_REQUEST_HEAD:
                    break
                path = head.split(b" ", 2)[1].decode("latin-1")
                status, kind, body = answer(index, base, path)
                writer.write(
                    f"HTTP/1.1 {status} X\r\nContent-Type: {kind}\r\n"
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
def serve_farm(sources: int, articles: int, *, pages: bool = True) -> Iterator[Farm]:
    """Serve ``sources`` sites with ``articles`` items each; ``pages`` serves each item's
    page (pages of the shared corpora, cycled), else only the feeds (items carry text)."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < sources + 1024:  # one listening socket per site, in the child too
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, sources + 4096), hard))
    context = multiprocessing.get_context("spawn")
    ready = context.Queue()
    process = context.Process(target=_serve, args=(sources, articles, pages, ready), daemon=True)
    process.start()
    try:
        urls = ready.get(timeout=120)
        yield Farm(urls=urls, pid=process.pid or 0)
    finally:
        process.terminate()
        process.join(10)
