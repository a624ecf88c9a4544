"""Extraction quality: plain trafilatura on raw bytes versus mediamon's decode + extract.

Run from the repository root::

    .venv/bin/python -m bench.extraction_quality [--corpora DIR] [--limit N] [--workers N]

For every labelled corpus in ``../shared/corpora`` (see its README) it scores, with the
bag-of-tokens measure of :mod:`bench.scoring`,

* ``trafilatura``: ``trafilatura.extract(raw_bytes, output_format="txt")`` (trafilatura
  guesses the charset itself), and
* ``mediamon``: :func:`mediamon.decode.decode_html` then :func:`mediamon.extract.extract`
  with the page's URL, scoring ``.text``,

and prints precision, recall and F1 side by side with the F1 delta, the time per page of
each, and the charset figures of issue 5 on cwced (pages whose text has U+FFFD or mojibake).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
import zlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from multiprocessing import Pool
from pathlib import Path

from bench.scoring import (
    CorpusScore,
    PageScore,
    aggregate,
    is_char_language,
    page_language,
    score_page,
)

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CORPORA = REPO_ROOT.parent / "shared" / "corpora"
CORPORA = ("aeb", "magic_html_article", "cwced", "readability_zh", "gne_silver")
CHARSET_CORPUS = "cwced"


@dataclass(frozen=True)
class Page:
    corpus: str
    id: str
    html_path: Path
    url: str | None
    lang: str
    reference: str


@dataclass(frozen=True)
class PageResult:
    corpus: str
    id: str
    lang: str
    baseline: PageScore
    mediamon: PageScore
    baseline_seconds: float  # trafilatura.extract(raw bytes)
    decode_seconds: float  # decode_html
    extract_seconds: float  # mediamon.extract.extract(decoded text)
    plain_on_text_seconds: float  # trafilatura.extract(decoded text, txt): extract()'s yardstick
    baseline_fffd: bool
    baseline_mojibake: bool
    mediamon_fffd: bool
    mediamon_mojibake: bool


def load_pages(corpora_dir: Path, corpora: Sequence[str], limit: int | None) -> list[Page]:
    """The labelled pages of the corpora, ``limit`` per corpus at most, in id order."""
    pages: list[Page] = []
    for corpus in corpora:
        gt_dir = corpora_dir / corpus / "gt"
        if not gt_dir.is_dir():
            raise SystemExit(f"{gt_dir} is missing: is {corpora_dir} the shared corpora folder?")
        gt_files = sorted(gt_dir.glob("*.json"))
        if limit is not None:
            gt_files = gt_files[:limit]
        for gt_file in gt_files:
            gt = json.loads(gt_file.read_text(encoding="utf-8"))
            pages.append(
                Page(
                    corpus=corpus,
                    id=gt_file.stem,
                    html_path=corpora_dir / corpus / "html" / f"{gt_file.stem}.html",
                    url=gt.get("url") or None,
                    lang=page_language(gt, corpus),
                    reference=gt.get("articleBody") or "",
                )
            )
    return pages


# --- mojibake ---------------------------------------------------------------------------

# Runs of Latin, Greek and Cyrillic characters (with the cp1252 punctuation): what GBK or
# UTF-8 bytes read in a single-byte encoding look like ("ÖÐ¹ú", "ЪзвГ", "å¤§").
_FOREIGN_RUN = re.compile(
    r"[\u0080-\u024f\u0370-\u052f\u02c6\u02dc\u2013\u2014\u2018-\u201e\u2020-\u2022"
    r"\u2026\u2030\u2039\u203a\u20ac\u2122]{2,}"
)
# Letters of such runs, not NBSP, the middle dot (Chinese names) or punctuation.
_FOREIGN_LETTER = re.compile(r"[\u00a1-\u00b6\u00b8-\u024f\u0370-\u052f]")
# Single-byte encodings a wrong guess picks for Chinese pages.
_SINGLE_BYTE = ("cp1252", "latin-1", "cp1251", "koi8-r", "kz1048", "cp1250", "cp1253", "cp1254")
# Runs of non-ASCII text (UTF-8 read as GBK gives CJK, box drawing, Greek, Cyrillic...).
_NON_ASCII_RUN = re.compile(r"[^\x00-\x7f\s]{4,}")
_CJK_CHAR = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff]")
# Characters a correct decoding of ordinary Chinese news almost never yields: CJK
# extension A and the private-use area (GBK's user-defined rows map there in GB18030).
_RARE_CJK = re.compile(r"[\u3400-\u4dbf\ue000-\uf8ff]")


def has_mojibake(text: str) -> bool:
    """Whether the text of a Chinese page shows a wrong decoding (U+FFFD apart).

    * multi-byte text read in a single-byte encoding: runs of Latin, Greek or Cyrillic
      letters whose bytes in that encoding are GB18030, UTF-8 or Big5 for Chinese
      ("ÖÐ" is GBK 中 read as Latin-1, "å¤§" UTF-8 大, "ЪзвГ" GBK read as cp1251);
    * UTF-8 read as GBK: runs of non-ASCII characters whose GB18030 bytes are mostly
      valid UTF-8 for Chinese ("鍙戝竷" is UTF-8 发布 read as GBK), which real GBK text
      almost never is;
    * many characters from CJK extension A or the private-use area.

    Three or more Chinese characters recovered by re-decoding runs count as mojibake.
    Meant for Chinese pages: Russian or Greek text would pass for GBK read as cp1251.
    """
    recovered = 0
    for match in _FOREIGN_RUN.finditer(text):
        run = match.group()
        if len(_FOREIGN_LETTER.findall(run)) < 2:
            continue  # "——", "“”", "……" are Chinese punctuation, not mojibake
        best = 0
        for single_byte in _SINGLE_BYTE:
            try:
                raw = run.encode(single_byte)
            except UnicodeEncodeError:
                continue
            for multi_byte in ("gb18030", "utf-8", "big5hkscs"):
                best = max(best, _recovered_cjk(raw, multi_byte))
        recovered += best
    for match in _NON_ASCII_RUN.finditer(text):
        recovered += _recovered_cjk(match.group().encode("gb18030", "replace"), "utf-8")
    if recovered >= 3:
        return True
    cjk_total = len(_CJK_CHAR.findall(text))
    rare = len(_RARE_CJK.findall(text))
    return rare >= 3 and rare * 50 > cjk_total


def _recovered_cjk(raw: bytes, encoding: str) -> int:
    """Chinese characters in ``raw`` decoded as ``encoding``, if it decodes mostly cleanly."""
    decoded = raw.decode(encoding, "replace")
    cjk = len(_CJK_CHAR.findall(decoded))
    return cjk if cjk >= 2 and decoded.count("\ufffd") * 4 <= cjk else 0


# --- per page ---------------------------------------------------------------------------


def run_page(page: Page) -> PageResult:
    """Both systems on one page.

    Times are CPU seconds of this process (steadier than wall time on a shared
    machine), and the order of the calls alternates from page to page so that neither
    side profits more from caches the other warmed (trafilatura and htmldate memoize).
    """
    import trafilatura

    from mediamon.ingest.decode import decode_html
    from mediamon.ingest.extract import extract

    raw = page.html_path.read_bytes()
    outputs: dict[str, str] = {}
    seconds: dict[str, float] = {}

    def baseline() -> None:
        start = time.process_time()
        outputs["baseline"] = trafilatura.extract(raw, output_format="txt") or ""
        seconds["baseline"] = time.process_time() - start

    def mediamon() -> None:
        start = time.process_time()
        decoded = decode_html(raw)
        seconds["decode"] = time.process_time() - start
        start = time.process_time()
        extracted = extract(decoded.text, page.url)
        seconds["extract"] = time.process_time() - start
        outputs["mediamon"] = extracted.text if extracted else ""

    def plain_on_text() -> None:
        # trafilatura on the decoded text: the yardstick of extract() alone
        text = decode_html(raw).text
        start = time.process_time()
        trafilatura.extract(text, url=page.url, output_format="txt")
        seconds["plain_on_text"] = time.process_time() - start

    steps = [baseline, mediamon, plain_on_text]
    turn = zlib.crc32(page.id.encode()) % len(steps)
    for step in steps[turn:] + steps[:turn]:
        step()
    baseline_text, mediamon_text = outputs["baseline"], outputs["mediamon"]
    return PageResult(
        corpus=page.corpus,
        id=page.id,
        lang=page.lang,
        baseline=score_page(baseline_text, page.reference, page.lang),
        mediamon=score_page(mediamon_text, page.reference, page.lang),
        baseline_seconds=seconds["baseline"],
        decode_seconds=seconds["decode"],
        extract_seconds=seconds["extract"],
        plain_on_text_seconds=seconds["plain_on_text"],
        baseline_fffd="\ufffd" in baseline_text,
        baseline_mojibake=has_mojibake(baseline_text),
        mediamon_fffd="\ufffd" in mediamon_text,
        mediamon_mojibake=has_mojibake(mediamon_text),
    )


def run_pages(pages: Sequence[Page], workers: int) -> list[PageResult]:
    """All pages, on a pool of ``workers`` processes (1: in this process)."""
    if workers <= 1:
        return [run_page(page) for page in pages]
    with Pool(workers) as pool:
        return list(pool.imap(run_page, pages, chunksize=4))


# --- report -----------------------------------------------------------------------------


def rows(results: Sequence[PageResult]) -> Iterator[tuple[str, list[PageResult]]]:
    """Report rows: each corpus, magic_html_article's zh pages on their own, and all."""
    for corpus in CORPORA:
        in_corpus = [r for r in results if r.corpus == corpus]
        if not in_corpus:
            continue
        yield corpus, in_corpus
        if corpus == "magic_html_article":
            zh = [r for r in in_corpus if r.lang.lower().startswith("zh")]
            if zh:
                yield f"{corpus}[zh]", zh
    zh_or_ja = [r for r in results if is_char_language(r.lang)]
    yield "all zh/ja pages", zh_or_ja
    yield "all pages", list(results)


def _fmt(score: CorpusScore) -> str:
    return f"{score.precision:6.3f} {score.recall:6.3f} {score.f1:6.3f}"


def format_quality(results: Sequence[PageResult]) -> str:
    header = (
        f"{'corpus':<24} {'pages':>5} | {'trafilatura raw bytes':^20} | "
        f"{'mediamon decode+extract':^23} | {'dF1':>7}\n"
        f"{'':<24} {'':>5} | {'P':>6} {'R':>6} {'F1':>6} | {'P':>6} {'R':>6} {'F1':>6}"
        f"{'':>2} | {'':>7}"
    )
    lines = [header, "-" * len(header.splitlines()[0])]
    for name, group in rows(results):
        base = aggregate(r.baseline for r in group)
        mm = aggregate(r.mediamon for r in group)
        lines.append(
            f"{name:<24} {len(group):>5} | {_fmt(base)} | {_fmt(mm)}{'':>2} | "
            f"{mm.f1 - base.f1:+7.3f}"
        )
    return "\n".join(lines)


def _mean(values: Iterable[float]) -> float:
    values = list(values)
    return sum(values) / len(values) if values else 0.0


def format_speed(results: Sequence[PageResult]) -> str:
    base = _mean(r.baseline_seconds for r in results) * 1000
    decode = _mean(r.decode_seconds for r in results) * 1000
    ext = _mean(r.extract_seconds for r in results) * 1000
    plain = _mean(r.plain_on_text_seconds for r in results) * 1000
    return "\n".join(
        [
            "Mean CPU time per page (ms; each worker process times its own calls):",
            f"  trafilatura.extract(raw bytes, txt)          {base:7.1f}",
            f"  trafilatura.extract(decoded text, txt)       {plain:7.1f}",
            f"  mediamon decode_html                         {decode:7.1f}",
            f"  mediamon extract(decoded text)               {ext:7.1f}"
            f"   ratio to trafilatura on the same text: {ext / plain:.2f}x",
            f"  mediamon decode + extract                    {decode + ext:7.1f}"
            f"   ratio to trafilatura on raw bytes:     {(decode + ext) / base:.2f}x",
        ]
    )


def format_charset(results: Sequence[PageResult]) -> str:
    group = [r for r in results if r.corpus == CHARSET_CORPUS]
    if not group:
        return f"Charset figures: no {CHARSET_CORPUS} pages in this run."
    n = len(group)

    def share(flags: Iterable[bool]) -> str:
        count = sum(flags)
        return f"{count:>3}/{n} {count / n:6.1%}"

    base_f1 = aggregate(r.baseline for r in group).f1
    mm_f1 = aggregate(r.mediamon for r in group).f1
    return "\n".join(
        [
            f"Charset figures (issue 5) on {CHARSET_CORPUS}, {n} pages, extracted text:",
            f"{'':<34} {'trafilatura raw bytes':>22} {'mediamon decode+extract':>24}",
            f"{'  pages with U+FFFD':<34} {share(r.baseline_fffd for r in group):>22}"
            f" {share(r.mediamon_fffd for r in group):>24}",
            f"{'  pages with mojibake':<34} {share(r.baseline_mojibake for r in group):>22}"
            f" {share(r.mediamon_mojibake for r in group):>24}",
            f"{'  pages with either':<34}"
            f" {share(r.baseline_fffd or r.baseline_mojibake for r in group):>22}"
            f" {share(r.mediamon_fffd or r.mediamon_mojibake for r in group):>24}",
            f"{'  F1':<34} {base_f1:>22.3f} {mm_f1:>24.3f}",
        ]
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--corpora", type=Path, default=DEFAULT_CORPORA, help="corpora folder")
    parser.add_argument("--limit", type=int, default=None, help="pages per corpus at most")
    parser.add_argument("--workers", type=int, default=2, help="processes (default 2)")
    parser.add_argument("--per-page", action="store_true", help="also print per-page F1")
    args = parser.parse_args(argv)

    if not args.corpora.is_dir():
        print(f"{args.corpora} is missing (give --corpora)", file=sys.stderr)
        return 2
    pages = load_pages(args.corpora, CORPORA, args.limit)
    start = time.perf_counter()
    results = run_pages(pages, args.workers)
    elapsed = time.perf_counter() - start

    if args.per_page:
        for r in results:
            print(
                f"{r.corpus:<20} {r.lang:<7} {r.baseline.f1:6.3f} {r.mediamon.f1:6.3f} "
                f"{r.mediamon.f1 - r.baseline.f1:+.3f}  {r.id}"
            )
        print()
    print(f"{len(pages)} pages from {args.corpora} in {elapsed:.1f} s on {args.workers} workers\n")
    print(format_quality(results))
    print()
    print(format_speed(results))
    print()
    print(format_charset(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
