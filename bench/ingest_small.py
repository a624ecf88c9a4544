"""CPU per article of a small ``mediamon ingest``, start-up included, beside
``trafilatura.extract`` on the same pages.

One source's cycle usually brings 5-50 new articles, so what a process pays once
(interpreter start, imports, pool creation, language model) is paid per source per
cycle. This runs the real CLI, ``mediamon ingest``, as a subprocess against one RSS feed
of ``--articles`` items (titles and dates in the feed) on 127.0.0.1, and counts the CPU
time of every mediamon process (the CLI and its extraction workers: they are its
children, so the operating system adds their time to it when they end). PostgreSQL and
the page server are not counted. The baseline is ``trafilatura.extract(raw bytes)`` on
the same pages in a fresh process, extraction calls only. Runs are repeated and the
cheapest counts on each side: on a shared machine the slower runs measure the
neighbours.

    python -m bench.ingest_small [--articles 200] [--repeat 3]
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import resource
import subprocess
import sys
import time
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

from bench.common import corpus_pages, scratch_database, serve_feeds

TARGET_RATIO = 1.35


# A page a feed links is an article: one where plain trafilatura finds this much text
# (the corpora hold a few pages whose text a script loads: WeChat's leaves 123 characters
# of its widgets).
MIN_ARTICLE_CHARS = 200


def sample_pages(articles: int) -> list[bytes]:
    """``articles`` article pages spread over every corpus (a stride, not the first ones;
    pages without article text skipped, see MIN_ARTICLE_CHARS)."""
    import trafilatura

    pages = corpus_pages()
    picked: list[bytes] = []
    for i in range(len(pages) * 2):
        page = pages[(i * len(pages) // articles + i // articles) % len(pages)]
        if len(trafilatura.extract(page, output_format="txt") or "") >= MIN_ARTICLE_CHARS:
            picked.append(page)
            if len(picked) == articles:
                return picked
    raise RuntimeError(f"fewer than {articles} article pages in the corpora")


def trafilatura_seconds(pages: list[bytes]) -> float:
    """CPU seconds of trafilatura.extract(raw bytes) over the pages, calls only."""
    import trafilatura

    trafilatura.extract(pages[0], output_format="txt")  # its lazy imports, not a page
    started = time.process_time()
    for page in pages:
        trafilatura.extract(page, output_format="txt")
    return time.process_time() - started


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def mediamon_seconds(articles: int, port: int, var_dir: Path) -> tuple[float, int]:
    """CPU seconds of one ``mediamon ingest`` of the feed, all its processes, and the
    number of articles it loaded. ``var_dir`` is kept from run to run, as a deployment
    keeps its own (the decompressed language model is cached there)."""
    import json

    with scratch_database("mediamon_small") as url, TemporaryDirectory() as tmp:
        sources = Path(tmp) / "sources.yaml"
        sources.write_text(
            f"sources:\n  - {{name: small, url: 'http://127.0.0.1:{port}/feed/0.xml',"
            " allow_private_network: true, host_max_connections: 4}\n",
            "utf-8",
        )
        env = {
            **os.environ,
            "MEDIAMON_DATABASE_URL": url,
            "MEDIAMON_SOURCES": str(sources),
            "MEDIAMON_VAR_DIR": str(var_dir),
        }
        mediamon = Path(sys.executable).with_name("mediamon")
        before = _children_cpu()
        done = subprocess.run(
            [str(mediamon), "ingest"], env=env, capture_output=True, text=True, check=False
        )
        cpu = _children_cpu() - before
    if done.returncode != 0:
        raise RuntimeError(f"mediamon ingest failed ({done.returncode}): {done.stderr[-2000:]}")
    # `mediamon ingest` prints {"run": totals, "checks_failed": ...} (the run's record).
    totals = json.loads(done.stdout.strip().splitlines()[-1])["run"]
    loaded = int(totals["new"])
    if loaded != articles:
        # A figure per article means nothing if the articles were not all loaded.
        raise RuntimeError(f"mediamon ingest loaded {loaded} of {articles} articles: {totals}")
    return cpu, loaded


def run(articles: int = 200, repeat: int = 3) -> list[str]:
    import compileall

    import mediamon

    # An installed mediamon has its bytecode (pip compiles on install); an editable
    # checkout under PYTHONDONTWRITEBYTECODE would compile ~70 modules in every process.
    compileall.compile_dir(Path(mediamon.__file__).parent, quiet=1)
    pages = sample_pages(articles)
    spawn = multiprocessing.get_context("spawn")
    queue: Any = spawn.Queue()
    # one feed of every article: titles and dates, no summary
    server = spawn.Process(
        target=serve_feeds, args=(pages, len(pages), len(pages), False, queue), daemon=True
    )
    server.start()
    try:
        port = queue.get(timeout=60)
        ingests: list[tuple[float, int]] = []
        baselines: list[float] = []
        # Each side's runs alternate with the other's, so a slower spell of the machine
        # weighs on both.
        with TemporaryDirectory() as var_dir:
            for _ in range(repeat):
                ingests.append(mediamon_seconds(articles, port, Path(var_dir)))
                with spawn.Pool(1) as single:  # a fresh process, as the CLI's workers are
                    baselines.append(single.apply(trafilatura_seconds, (pages,)))
    finally:
        server.terminate()
        server.join()
    loaded = ingests[0][1]
    ingest_ms = min(cpu for cpu, _ in ingests) * 1000 / articles
    baseline_ms = min(baselines) * 1000 / articles
    ratio = ingest_ms / baseline_ms
    verdict = "met" if ratio <= TARGET_RATIO else "NOT met"
    # Each mediamon run beside the baseline run right after it: how far the machine's
    # swings move the figure (the cheapest-of ratio is the one the target reads).
    paired = sorted(cpu / base for (cpu, _), base in zip(ingests, baselines, strict=True))
    return [
        f"Small ingest: `mediamon ingest` of one feed of {articles} articles on 127.0.0.1"
        " (titles and dates in the feed), start-up included, PostgreSQL excluded",
        f"  trafilatura.extract, same pages : {baseline_ms:6.1f} CPU ms per page"
        f" (cheapest of {', '.join(f'{b * 1000 / articles:.1f}' for b in baselines)})",
        f"  mediamon ingest, all processes  : {ingest_ms:6.1f} CPU ms per article"
        f" (cheapest of {', '.join(f'{c * 1000 / articles:.1f}' for c, _ in ingests)});"
        f" {loaded} loaded",
        f"  ratio {ratio:.2f}x (target <= {TARGET_RATIO}x): {verdict};"
        f" run by run {', '.join(f'{r:.2f}' for r in paired)}",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--articles", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    print("\n".join(run(args.articles, args.repeat)))


if __name__ == "__main__":
    main()
