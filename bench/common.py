"""Helpers shared by the benchmarks: corpus pages, scratch databases, peak memory."""

from __future__ import annotations

import contextlib
import os
import statistics
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mediamon import db

REPO_ROOT = Path(__file__).resolve().parents[1]

CORPORA = Path(os.environ.get("MEDIAMON_CORPORA") or REPO_ROOT.parent / "shared" / "corpora")
LABELLED = (
    "aeb",
    "magic_html_article",
    "cwced",
    "readability_zh",
    "gne_silver",
    "zh_news_unlabelled",
)


def corpus_pages(limit: int | None = None) -> list[bytes]:
    """Raw bytes of every page in the corpora (280), in a stable order."""
    if not CORPORA.is_dir():
        raise SystemExit(f"{CORPORA} is missing: the benchmarks read ../shared/corpora")
    pages = [
        p.read_bytes() for c in LABELLED for p in sorted((CORPORA / c / "html").glob("*.html"))
    ]
    return pages[:limit] if limit else pages


@contextmanager
def scratch_database(prefix: str) -> Iterator[str]:
    """A fresh database with mediamon's schema (server as for the tests)."""
    from mediamon.db import migrate

    admin = db.scratch_admin_url("MEDIAMON_BENCH_DATABASE_URL", REPO_ROOT / "var" / "bench")
    with db.scratch_database(admin, prefix) as url:
        engine = db.make_engine(url)
        migrate.upgrade(engine)
        engine.dispose()
        yield url


@dataclass
class MemoryPeak:
    """Peak resident memory of this process and all its children, sampled."""

    peak_bytes: int = 0
    by_process: dict[int, int] | None = None  # pid -> PSS at the peak
    # CPU seconds the sampling itself took (reading smaps_rollup walks page tables): the
    # benchmark's, not the measured code's
    sampler_cpu_s: float = 0.0


@contextmanager
def track_memory(
    interval_s: float = 1.0, exclude: frozenset[int] = frozenset()
) -> Iterator[MemoryPeak]:
    """Sample the proportional set size (PSS) of this process and its children: forked
    workers share pages with the parent, which RSS would count once per process.

    Sampling is not free: reading a process's PSS walks its page tables, and listing the
    children reads every process's status. At 10 samples a second it took a tenth of a
    core in the throughput run (3.5 ms per article, billed to the ingest process);
    :attr:`MemoryPeak.sampler_cpu_s` says how much, for the caller to take out.

    Args:
        interval_s: Sampling period (the peak of a long ingest is a plateau).
        exclude: Child pids not to count (the benchmark's own web server).
    """
    import psutil

    peak = MemoryPeak()
    me = psutil.Process()
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            sizes: dict[int, int] = {}
            for process in [me, *me.children(recursive=True)]:
                if process.pid in exclude:
                    continue
                with contextlib.suppress(psutil.Error):  # a worker that just exited
                    sizes[process.pid] = process.memory_full_info().pss
            if sum(sizes.values()) > peak.peak_bytes:
                peak.peak_bytes, peak.by_process = sum(sizes.values()), sizes
            peak.sampler_cpu_s = time.thread_time()
            time.sleep(interval_s)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    try:
        yield peak
    finally:
        stop.set()
        thread.join()


def serve_feeds(
    pages: list[bytes] | None, articles: int, per_feed: int, summaries: bool, port_queue: Any
) -> None:
    """A site of ``articles`` article URLs (``/a/<i>.html``, cycling through ``pages``;
    None: the corpus pages, loaded here so the measured process never holds them) and
    RSS feeds of ``per_feed`` items each (``/feed/<n>.xml``, titles and dates, with a
    one-word summary when ``summaries``). Run it in a process of its own, so it never
    holds the measured process's GIL; it puts its port on ``port_queue``."""
    from datetime import UTC, datetime, timedelta
    from email.utils import format_datetime
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    bodies = corpus_pages() if pages is None else pages
    start = datetime(2024, 4, 1, tzinfo=UTC)
    summary = "<description>summary</description>" if summaries else ""

    class Handler(BaseHTTPRequestHandler):
        # Keep-alive, as news sites' servers do: with http.server's HTTP/1.0 every page
        # cost the measured ingest a new connection (and its address checks).
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            base = f"http://127.0.0.1:{self.server.server_address[1]}"
            number = self.path.rsplit("/", 1)[-1].split(".")[0]
            if self.path.startswith("/feed/") and number.isdigit():
                n = int(number)
                items = "".join(
                    f"<item><title>Article {i}</title><link>{base}/a/{i}.html</link>"
                    f"<pubDate>{format_datetime(start + timedelta(minutes=i))}</pubDate>"
                    f"{summary}</item>"
                    for i in range(n * per_feed, min((n + 1) * per_feed, articles))
                )
                body = f"<rss version='2.0'><channel><title>f</title>{items}</channel></rss>"
                self._send(body.encode(), "application/rss+xml")
            elif self.path.startswith("/a/") and number.isdigit():
                self._send(bodies[int(number) % len(bodies)], "text/html")
            else:
                self.send_error(404)

        def _send(self, body: bytes, content_type: str) -> None:
            self.send_response(200)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    port_queue.put(server.server_address[1])
    server.serve_forever()


def timed(run: Callable[[], object], repeat: int) -> float:
    """Median seconds of ``repeat`` runs after one warm-up (caches as a reader sees them)."""
    run()
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return statistics.median(times)
