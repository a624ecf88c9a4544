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

    from bench import detection, extraction_quality, load, parse, throughput

    sections = [
        ("extraction quality", lambda: extraction_quality.run(limit=3 if smoke else None)),
        ("ingest throughput", lambda: throughput.run(
            articles=60 if smoke else 10_000, workers=None, baseline_pages=30 if smoke else None
        )),
        ("load", lambda: load.run(500 if smoke else 20_000)),
        ("DAG parse time", lambda: parse.run(repeat=1 if smoke else 5)),
        ("spike detection", lambda: detection.run(quick=smoke)),
    ]  # fmt: skip
    print(
        f"mediamon benchmarks on {machine()}{' (smoke run: figures mean nothing)' if smoke else ''}"
    )
    for name, section in sections:
        started = time.perf_counter()
        print()
        print("\n".join(section()))
        print(f"  ({name}: {time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
