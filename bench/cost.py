"""How the cost of steps an outsider's text reaches grows with its size: each step on a
hostile shape of input at n and at 4n, in CPU seconds. A ratio near 4 is linear; near 16
is the square of the size (docs/faults.md lists the shapes that once were).

    python -m bench.cost [--smoke]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import Any

# A ratio above this between 4n and n is worse than linear (4 is linear; 16 the square).
WORSE_THAN_LINEAR = 8.0


def _cpu(step: Callable[[Any], object], given: Any) -> float:
    started = time.process_time()
    step(given)
    return time.process_time() - started


def _table_line(n: int) -> str:
    return "|a" + " \t\u3000" * n + "b"


def _long_chunk(n: int) -> list[Any]:
    """Fingerprints of a chunk of 50 articles of ``n`` sentences, every other one shared."""
    from mediamon.ingest.load import Fingerprint
    from mediamon.ingest.normalize import duplicate_keys

    found = []
    for article in range(50):
        text = "".join(
            f"共同的第{k}句话在每篇里都一样。" if k % 2 else f"第{article}篇的第{k}句话只在这篇。"
            for k in range(n)
        )
        content_hash, sentences = duplicate_keys(text)
        found.append(Fingerprint(article + 1, content_hash, frozenset(sentences)))
    return found


def _disjoint_texts(n: int) -> tuple[str, str]:
    precision = "\n".join(f"甲乙丙丁戊己庚辛{k}。这是精确提取的一个长句子。" for k in range(n))
    readability = "\n".join(f"子丑寅卯辰巳午未{k}。另一段完全不同的文字内容。" for k in range(n))
    return precision, readability


def cases() -> list[tuple[str, Callable[[int], Any], Callable[[Any], object], int]]:
    """(name, input of size n, the step, n) for each shape measured."""
    from mediamon.alerts.snippet import make_snippet
    from mediamon.ingest.choose import LinkTexts, with_missed_lead
    from mediamon.ingest.extract import clean_text, parser_safe
    from mediamon.ingest.load import copy_roots
    from mediamon.ingest.normalize import canonical_url, duplicate_keys
    from mediamon.topics.rules import parse_rule

    rules = [parse_rule("台湾")]
    no_links = LinkTexts(frozenset())
    return [
        ("clean_text: '|a', n spaces, tabs, U+3000, 'b'", _table_line, clean_text, 10_000),
        ("copy detection: 50 articles of n sentences", _long_chunk,
         lambda chunk: copy_roots(chunk, []), 2_000),
        ("missed lead: two texts of n lines, none shared", _disjoint_texts,
         lambda t: with_missed_lead(t[0], t[1], no_links, 10), 2_000),
        ("canonical URL: n query parameters", lambda n: "http://a.example/p?" + "&".join(
            f"k{i}=v" for i in range(n)), canonical_url, 2_000),
        ("sentence keys: n sentences", lambda n: "一二三四五六七八九十。" * n,
         duplicate_keys, 20_000),
        ("snippet: n hits in one sentence", lambda n: "台湾" * n,
         lambda text: make_snippet(rules, text), 10_000),
        ("parser_safe: n open quoted attributes", lambda n: "<a b='" * n, parser_safe, 20_000),
    ]  # fmt: skip


def run(smoke: bool = False) -> list[str]:
    lines = [f"{'step and input':58} {'n':>8} {'cost(n)':>9} {'cost(4n)':>9} {'ratio':>6}"]
    for name, make, step, n in cases():
        n = max(1, n // 20) if smoke else n
        small, large = make(n), make(4 * n)
        step(small)  # warm up (tables, models) before anything is measured
        cost_n, cost_4n = _cpu(step, small), _cpu(step, large)
        ratio = cost_4n / max(cost_n, 1e-6)
        flag = "  worse than linear" if ratio > WORSE_THAN_LINEAR and cost_4n > 0.05 else ""
        lines.append(f"{name:58} {n:>8,} {cost_n:>8.3f}s {cost_4n:>8.3f}s {ratio:>6.1f}{flag}")
    return lines


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--smoke", action="store_true", help="tiny inputs: check that all runs")
    print("\n".join(run(parser.parse_args(argv).smoke)))


if __name__ == "__main__":
    main()
