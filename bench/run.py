"""Every benchmark, one after the other, each beside its baseline measured in the same
run: ``make bench`` (a few minutes) or ``make bench-smoke`` (seconds; CI checks that
the benchmarks run and print, never their timings).

    python -m bench.run [--smoke]
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from collections.abc import Callable


def machine() -> str:
    import psutil

    memory = psutil.virtual_memory().total / 2**30
    return (
        f"{platform.machine()}, {os.cpu_count()} cores, {memory:.0f} GiB,"
        f" Python {platform.python_version()}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--smoke", action="store_true", help="tiny inputs: check that all runs")
    smoke = parser.parse_args().smoke

    from bench import (
        bi_page,
        bi_scale,
        config_parse,
        cost,
        detection,
        extraction_quality,
        ingest_small,
        instructions,
        load,
        matching,
        parse,
        scale,
        throughput,
        topics_scale,
    )

    def printed(lines: list[str]) -> None:
        print("\n".join(lines))

    sections: list[tuple[str, Callable[[], object]]] = [
        ("extraction quality", lambda: extraction_quality.main(["--limit", "3"] if smoke else [])),
        ("ingest throughput", lambda: printed(throughput.run(
            articles=60 if smoke else 10_000, workers=None, baseline_pages=30 if smoke else None
        ))),
        ("small ingest", lambda: printed(ingest_small.run(
            articles=20 if smoke else 200, repeat=1 if smoke else 3
        ))),
        ("extraction instructions", lambda: printed(instructions.run(2 if smoke else 40))),
        ("load", lambda: printed(load.run(500 if smoke else 20_000))),
        ("topic matching", lambda: printed(matching.run(
            20 if smoke else 300, (10, 100) if smoke else (10, 100, 1_000)
        ))),
        ("topic chain at 10 to 3,000 topics", lambda: printed(topics_scale.run(
            200 if smoke else 5_000, (10, 50) if smoke else (10, 1_000, 3_000)
        ))),
        ("cost of hostile input at n and 4n", lambda: printed(cost.run(smoke))),
        ("DAG parse time", lambda: printed(parse.run(repeat=1 if smoke else 5))),
        ("sources.yaml parse", lambda: printed(config_parse.run(2_000 if smoke else 100_000))),
        ("spike detection", lambda: detection.main(["--quick"] if smoke else [])),
        ("mediamon page", lambda: printed(bi_page.run(20_000 if smoke else 1_000_000,
                                                      1 if smoke else 5))),
        # a tenth of `make bench-bi`'s year (2,000,000 articles, half an hour) here
        ("bi views", lambda: printed(bi_scale.run(
            5_000 if smoke else 200_000, 20 if smoke else 100, 1,
            topics=8 if smoke else bi_scale.TOPICS, windows=(7,) if smoke else bi_scale.WINDOWS,
        ))),
        # 10 and 100 sources here; `make bench-scale` adds 1,000, one big source and Celery.
        ("scale", lambda: printed(scale.run(smoke, sizes=(10, 100), celery=False))),
    ]  # fmt: skip
    note = " (smoke run: figures mean nothing)" if smoke else ""
    print(f"mediamon benchmarks on {machine()}{note}")
    for name, section in sections:
        started = time.perf_counter()
        print(flush=True)
        section()
        print(f"  ({name}: {time.perf_counter() - started:.0f} s)", flush=True)


if __name__ == "__main__":
    main()
