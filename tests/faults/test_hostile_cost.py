"""Hostile input whose cost grows worse than linearly (held-out attack on algorithmic
cost): each test is one finding, names a row of docs/faults.md, and compares the hostile
input's cost with that of ordinary input of the same size, measured in the same test, so
that a slow machine slows both. The bounds are generous (many times what the step costs
now) and far under what it cost before.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from mediamon.ingest import load, normalize
from mediamon.ingest.load import Fingerprint
from tests.faults.test_hostile_pages import build
from tests.support.faults import PARAGRAPH


def _least_cpu(call: Callable[[], object], runs: int = 3) -> float:
    """The least CPU seconds of ``runs`` calls: a slow spell of the machine rarely lasts
    through all of them."""
    least = float("inf")
    for _ in range(runs):
        started = time.process_time()
        call()
        least = min(least, time.process_time() - started)
    return least


def test_a_table_line_of_a_long_space_run_is_cleaned_in_linear_time() -> None:
    """A line that starts with a bar (a markdown table's row, as clean_text reads it) and
    holds a long run of spaces that no bar ends: the cells were split on the bar with
    the spaces around it, and the split tried the spaces at each place of the run, reading
    the rest of it each time. A <pre> of "|a", 20,000 spaces and "b" cost the build 3.9 s
    (10,000 each of spaces, tabs and ideographic spaces: 7 s; 60,000: 35 s); now as much
    as a line of letters. The text is the same as before."""
    page = "<html><body><article><p>{}</p><pre>|a{}b</pre></article></body></html>"
    hostile = page.format(PARAGRAPH, " \t\u3000" * 10_000)
    ordinary = page.format(PARAGRAPH, "x" * 30_000)
    build(ordinary)  # warm up (models, folding tables) before anything is measured
    baseline = _least_cpu(lambda: build(ordinary))
    result, seconds = build(hostile)
    assert seconds < 20 * baseline + 0.5, (seconds, baseline)  # before: 7 s
    article = result.article
    assert article is not None and article.content_origin == "page"
    assert article.body_text == f"{PARAGRAPH}\na b"  # the row's one cell, as before


def test_a_chunk_of_long_articles_sharing_half_their_sentences_is_compared_in_linear_time() -> None:
    """Copy detection counts, for each article of a chunk, the sentences it shares with
    each earlier story holding one of them. A site's chunk of 100 pages of 18,000
    sentences each (200,000 characters, the stored body's cap), every other sentence
    the same in all, none a copy of another (half is not 80 %): 100 × 100 / 2 pairs of
    9,000 shared sentences, 9 s in the loader's transaction (200 such pages: 60 s).
    Now the first 1,000 sentences of a text are its keys (the corpora's longest: 650):
    a few times what 100 articles of 1,000 sentences sharing nothing cost. None is a
    copy, as before."""

    def fingerprints(size: int, shared: bool) -> list[Fingerprint]:
        found = []
        for n in range(100):
            text = "".join(
                f"共同的第{k}句话在每篇里都一样。"
                if shared and k % 2
                else f"第{n}篇的第{k}句话只在这篇。"
                for k in range(size)
            )  # already in the matching form: folding 36 MB would take most of the test
            content_hash, sentences = normalize.duplicate_keys(text)
            found.append(Fingerprint(n + 1, content_hash, frozenset(sentences)))
        return found

    hostile, ordinary = fingerprints(18_000, shared=True), fingerprints(1_000, shared=False)
    assert all(len(f.sentences) <= 1_000 for f in hostile)  # before: 18,000 each
    baseline = _least_cpu(lambda: load.copy_roots(ordinary, []))
    started = time.process_time()
    roots = load.copy_roots(hostile, [])
    seconds = time.process_time() - started
    assert seconds < 20 * baseline + 0.3, (seconds, baseline)  # before: 9 s
    assert set(roots.values()) == {None}  # every one a story of its own, as before


def test_two_long_texts_sharing_no_line_are_compared_in_linear_time() -> None:
    """When readability's text is chosen, precision's lines before the first line the two
    share are looked for in it as a missed lead, each by a search of the whole of it:
    two candidates of 450,000 characters that share no line (two blocks of a page, each
    an extractor's pick) cost the chooser 9.5 s, of 1,150,000 (what clean_text keeps)
    a minute. Now the first MAX_COMPARED_CHARS of each are compared, as for the
    chooser's evidence: the cost of texts of that size. Still no lead, as before."""
    from mediamon.ingest.choose import LinkTexts, with_missed_lead

    def texts(lines: int) -> tuple[str, str]:
        precision = "\n".join(
            f"甲乙丙丁戊己庚辛{n}。这是精确提取的一个长句子。" for n in range(lines)
        )
        readability = "\n".join(
            f"子丑寅卯辰巳午未{n}。另一段完全不同的文字内容。" for n in range(lines)
        )
        return precision, readability

    links = LinkTexts(frozenset())
    ordinary, hostile = texts(4_000), texts(16_000)  # 110,000 and 450,000 characters
    baseline = _least_cpu(lambda: with_missed_lead(*ordinary, links, 10))
    started = time.process_time()
    chosen = with_missed_lead(*hostile, links, 10)
    seconds = time.process_time() - started
    assert seconds < 5 * baseline + 0.5, (seconds, baseline)  # before: 17 times it
    assert chosen == hostile[1]
