"""Reading a large ``sources.yaml``, as every plan, ``status`` and watchdog run does: the
parse as it was (PyYAML's pure-Python parser with the unique-key check, the cycle
collector on), the baseline, beside the parse now (libyaml with the same check, the
collector paused) and the whole of ``load_sources`` now (parse, alias bound, every
source validated), in the same run on the same file.

    python -m bench.config_parse [--sources 100000]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import yaml

from mediamon import config_yaml
from mediamon.ingest.sources import load_sources


def write_sources(path: Path, count: int) -> None:
    """A sources file of ``count`` feed sources in block style, five fields each (about
    130 bytes a source: 100,000 are 13 MB, under the 16 MiB a file may have)."""
    with path.open("w", encoding="utf-8") as file:
        file.write("# sources written by bench.config_parse\nsources:\n")
        for index in range(count):
            file.write(
                f"  - name: site-{index:06d}\n"
                f"    url: 'https://site-{index}.example/feed.xml?page=1'\n"
                "    language: zh\n    fetch_pages: true\n    max_items: 500\n"
            )


def _seconds(step: Callable[[], object]) -> float:
    started = time.perf_counter()
    step()
    return time.perf_counter() - started


def run(sources: int = 100_000) -> list[str]:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "sources.yaml"
        write_sources(path, sources)
        text = path.read_text("utf-8")
        size = len(text.encode("utf-8"))
        before = _seconds(
            lambda: yaml.load(text, Loader=config_yaml.UniqueKeyLoader)  # noqa: S506 - safe
        )
        parse = _seconds(lambda: config_yaml.parse_config_yaml(text, path))
        whole = _seconds(lambda: load_sources(path))
        broken = text + "  - name: [broken\n"  # one syntax error, on the last line
        error_before = _seconds(lambda: _refused(broken, config_yaml.UniqueKeyLoader))
        error_now = _seconds(lambda: _refused_now(broken, path))
    return [
        f"sources.yaml of {sources:,} sources ({size / 1e6:.1f} MB)",
        f"  parse before (pure-Python PyYAML, baseline) : {before:7.2f} s",
        f"  parse now (libyaml, collector paused)       : {parse:7.2f} s"
        f"   {before / parse:5.1f}x faster",
        f"  load_sources now (parse and validation)     : {whole:7.2f} s"
        f"   {before / whole:5.1f}x faster than the parse alone was",
        f"  a syntax error on the last line, before     : {error_before:7.2f} s"
        " (libyaml, then the pure-Python parser to word it)",
        f"  a syntax error on the last line, now        : {error_now:7.2f} s"
        f"   {error_before / error_now:5.1f}x faster",
    ]


def _refused(text: str, loader: type) -> None:
    """The error's wording as it was: libyaml's parse first, then the pure-Python one."""
    try:
        yaml.load(text, Loader=config_yaml.FastUniqueKeyLoader)  # noqa: S506 - safe
    except yaml.YAMLError:
        try:
            yaml.load(text, Loader=loader)  # noqa: S506 - safe
        except yaml.YAMLError:
            return
    raise AssertionError("the broken file was taken")


def _refused_now(text: str, path: Path) -> None:
    try:
        config_yaml.parse_config_yaml(text, path)
    except config_yaml.ConfigFileProblem:
        return
    raise AssertionError("the broken file was taken")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sources", type=int, default=100_000)
    print("\n".join(run(parser.parse_args().sources)))
