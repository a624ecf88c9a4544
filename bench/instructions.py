"""Extraction counted in instructions, beside ``trafilatura.extract`` on the same pages.

CPU seconds swing with the machine: on some machines the same work costs half as much
again from one run to the next, and a ratio of seconds needs many alternating runs.
valgrind's callgrind counts the instructions a process executes instead, the same for
the same work whatever its neighbours do. Each side (mediamon's extract as ingest calls
it, after decoding and the shape check; trafilatura on the same decoded text) runs in
processes of its own under callgrind, twice: once with only the set-up (imports, the
pages read and decoded, one call to warm the caches), once with the set-up and then the
pages; the difference is what the pages cost. Only user-space instructions are counted
(not the kernel's work, nor what an instruction costs in cache misses): a steady
yardstick for a change to the extraction, run before and after it, not a replacement
for the CPU-time benchmarks. Against trafilatura it reads high: trafilatura's
instructions are cheaper (on two sets of 40 pages the instruction ratio ran 0.05-0.13
above the CPU-time ratio of the same pages). About 15 s a page under valgrind, two
processes at a time.

    python -m bench.instructions [--pages 40]
"""

from __future__ import annotations

import argparse
import compileall
import re
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

SIDES = ("mediamon", "trafilatura")
_COLLECTED = re.compile(r"Collected : (\d+)")


def _pages(count: int) -> list[tuple[str, str | None]]:
    """``count`` labelled corpus pages, spread over the corpora, decoded and
    shape-checked as ingest has them before extraction."""
    from bench.extraction_quality import CORPORA, DEFAULT_CORPORA, load_pages
    from mediamon.ingest.decode import decode_html
    from mediamon.ingest.extract import parser_safe

    pages = load_pages(DEFAULT_CORPORA, CORPORA, None)
    picked = [pages[i * len(pages) // count] for i in range(min(count, len(pages)))]
    return [(parser_safe(decode_html(p.raw()).text).html, p.url) for p in picked]


def child(side: str, count: int, work: bool) -> None:
    """One measured process: the set-up, then the pages when ``work``."""
    import trafilatura

    from mediamon.ingest.extract import extract

    def mediamon(html: str, url: str | None) -> object:
        return extract(html, url, known=("title", "date"))

    def plain(html: str, url: str | None) -> object:
        return trafilatura.extract(html, url=url, output_format="txt")

    run = mediamon if side == "mediamon" else plain
    pages = _pages(count)
    run(*pages[0])  # lazy imports and caches, on either side
    if work:
        for html, url in pages:
            run(html, url)


def _instructions(side: str, count: int, work: bool) -> int:
    command = [
        "valgrind",
        "--tool=callgrind",
        "--callgrind-out-file=/dev/null",
        sys.executable,
        "-m",
        "bench.instructions",
        "--child",
        side,
        "--pages",
        str(count),
        *(["--work"] if work else []),
    ]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    found = _COLLECTED.search(done.stderr)
    if done.returncode != 0 or found is None:
        raise RuntimeError(f"callgrind run of {side} failed: {done.stderr[-2000:]}")
    return int(found.group(1))


def run(count: int = 40) -> list[str]:
    if shutil.which("valgrind") is None:
        return ["instructions: valgrind is not installed (apt-get install valgrind)"]
    import mediamon

    # every process loads the same bytecode: none compiles a module the other did not
    compileall.compile_dir(Path(mediamon.__file__).parent, quiet=1)
    jobs = [(side, work) for side in SIDES for work in (False, True)]
    with ThreadPoolExecutor(2) as pool:
        counts = dict(
            zip(jobs, pool.map(lambda job: _instructions(job[0], count, job[1]), jobs), strict=True)
        )
    per_page = {side: (counts[side, True] - counts[side, False]) / count for side in SIDES}
    ratio = per_page["mediamon"] / per_page["trafilatura"]
    return [
        f"Instructions per page (callgrind, user space), {count} corpus pages, decoded:",
        f"  trafilatura.extract(decoded text, txt) : {per_page['trafilatura'] / 1e6:8.1f} M",
        f"  mediamon extract(decoded text)         : {per_page['mediamon'] / 1e6:8.1f} M",
        f"  ratio {ratio:.2f}x (instructions, not seconds: see bench/instructions.py)",
    ]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--pages", type=int, default=40)
    parser.add_argument("--child", choices=SIDES, help=argparse.SUPPRESS)
    parser.add_argument("--work", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(args.child, args.pages, args.work)
    else:
        print("\n".join(run(args.pages)))


if __name__ == "__main__":
    main()
