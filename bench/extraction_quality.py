"""Extraction quality and cost: mediamon beside the extractors a user could pick instead.

Run from the repository root::

    .venv/bin/python -m bench.extraction_quality [--corpora DIR] [--limit N] [--workers N]

For every labelled corpus in ``../shared/corpora`` (see its README), plus the generated
short articles of :mod:`bench.short_articles`, it scores with the bag-of-tokens measure
of :mod:`bench.scoring`, on the same pages in the same run:

* ``trafilatura``: ``trafilatura.extract(raw_bytes, output_format="txt")`` (it guesses
  the charset itself);
* ``readability-lxml``: the page decoded with resiliparse's charset detector, then
  ``readability.Document(html).summary()`` as text;
* ``resiliparse``: the same decoding, then ``extract_plain_text(main_content=True)``;
* ``mediamon``: :func:`mediamon.ingest.decode.decode_html`, the shape check before
  parsing (:func:`mediamon.ingest.extract.parser_safe`), then
  :func:`mediamon.ingest.extract.extract` as ingest calls it when the feed gave the
  title and date. Its F1 is given in sample (the shipped chooser, fit on all these
  pages) and cross-validated (leave one site out, see :mod:`bench.extraction_cv`): the
  second is what an unseen site can expect.

and prints F1 and CPU milliseconds per page of each per corpus, the pages where
mediamon (cross-validated) is worse than plain trafilatura, and the charset figures of
issue 5 on cwced (pages whose text has U+FFFD or mojibake).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
import zlib
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from multiprocessing import Pool
from pathlib import Path

from bench import short_articles
from bench.extraction_cv import (
    CrossValidation,
    DevPage,
    ablation,
    cross_validate,
    model_literal,
    site_of,
)
from bench.scoring import (
    PageScore,
    aggregate,
    is_char_language,
    page_language,
    paired_interval,
    score_page,
)
from mediamon.ingest.choose import MODEL, Model
from mediamon.ingest.extract import CLEANED_KINDS, clean_text
from mediamon.ingest.normalize import without_headline

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CORPORA = REPO_ROOT.parent / "shared" / "corpora"
CORPORA = ("aeb", "magic_html_article", "cwced", "readability_zh", "gne_silver")
GENERATED = "generated_short"  # bench.short_articles, not a folder
CHARSET_CORPUS = "cwced"
# Chinese news corpora, where mediamon must beat plain trafilatura by a margin.
CHINESE_NEWS = ("magic_html_article[zh]", "cwced", "readability_zh", "gne_silver")
PEERS = ("trafilatura", "readability", "resiliparse")


@dataclass(frozen=True)
class Page:
    corpus: str
    id: str
    html_path: Path | None  # None: a generated page, ``html`` holds it
    url: str | None
    lang: str
    reference: str
    site: str
    html: bytes = b""

    def raw(self) -> bytes:
        return self.html if self.html_path is None else self.html_path.read_bytes()


@dataclass(frozen=True)
class PageResult:
    corpus: str
    id: str
    lang: str
    site: str
    peers: dict[str, PageScore]  # by name, see PEERS
    mediamon: PageScore
    mode: str  # the candidate mediamon chose
    peer_seconds: dict[str, float]
    decode_seconds: float  # decode_html and the shape check before parsing
    extract_seconds: float  # mediamon.ingest.extract.extract(decoded text)
    plain_on_text_seconds: float  # trafilatura.extract(decoded text, txt): extract()'s yardstick
    baseline_fffd: bool
    baseline_mojibake: bool
    mediamon_fffd: bool
    mediamon_mojibake: bool
    dev: DevPage  # the candidates, for the cross-validation

    @property
    def baseline(self) -> PageScore:
        return self.peers["trafilatura"]


def load_pages(corpora_dir: Path, corpora: Sequence[str], limit: int | None) -> list[Page]:
    """The labelled pages of the corpora (and the generated short articles when GENERATED
    is named), ``limit`` per corpus at most, in id order."""
    pages: list[Page] = []
    for corpus in corpora:
        if corpus == GENERATED:
            generated = list(short_articles.pages())[:limit]
            pages.extend(
                Page(GENERATED, g.id, None, g.url, g.lang, g.reference, g.site, g.html.encode())
                for g in generated
            )
            continue
        gt_dir = corpora_dir / corpus / "gt"
        if not gt_dir.is_dir():
            raise SystemExit(f"{gt_dir} is missing: is {corpora_dir} the shared corpora folder?")
        gt_files = sorted(gt_dir.glob("*.json"))
        if limit is not None:
            gt_files = gt_files[:limit]
        for gt_file in gt_files:
            gt = json.loads(gt_file.read_text(encoding="utf-8"))
            html_path = corpora_dir / corpus / "html" / f"{gt_file.stem}.html"
            url = gt.get("url") or None
            pages.append(
                Page(
                    corpus=corpus,
                    id=gt_file.stem,
                    html_path=html_path,
                    url=url,
                    lang=page_language(gt, corpus),
                    reference=gt.get("articleBody") or "",
                    site=site_of(corpus, gt_file.stem, url, html_path.read_bytes()),
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


def _readability_peer(raw: bytes) -> str:
    """readability-lxml as a user would run it: the page decoded first (resiliparse's
    detector), ``Document(html).summary()``, its text."""
    from readability import Document
    from resiliparse.parse.encoding import bytes_to_str, detect_encoding

    from mediamon.ingest.candidates import html_text

    try:
        return html_text(Document(bytes_to_str(raw, detect_encoding(raw))).summary())
    except Exception:  # readability raises Unparseable on empty or broken pages
        return ""


def _resiliparse_peer(raw: bytes) -> str:
    from resiliparse.extract.html2text import extract_plain_text
    from resiliparse.parse.encoding import bytes_to_str, detect_encoding

    return str(extract_plain_text(bytes_to_str(raw, detect_encoding(raw)), main_content=True))


def run_page(page: Page) -> PageResult:
    """Every extractor on one page, and mediamon's candidates for the cross-validation.

    Times are CPU seconds of this process (steadier than wall time on a shared
    machine), and the order of the calls rotates from page to page so that no extractor
    profits more than another from caches the others warmed (trafilatura and htmldate
    memoize).
    """
    import trafilatura

    from mediamon.ingest.candidates import (
        link_texts,
        parse,
        readability_read,
        trafilatura_text,
    )
    from mediamon.ingest.decode import decode_html
    from mediamon.ingest.extract import extract, parser_safe

    raw = page.raw()
    outputs: dict[str, str] = {}
    seconds: dict[str, float] = {}
    modes: dict[str, str] = {}

    def timed(name: str, run: Callable[[], str]) -> None:
        start = time.process_time()
        outputs[name] = run()
        seconds[name] = time.process_time() - start

    def mediamon() -> None:
        start = time.process_time()
        decoded = decode_html(raw)
        # ingest looks at the page's shape before any parser does (build.py)
        safe = parser_safe(decoded.text)
        seconds["decode"] = time.process_time() - start
        if safe.refused:  # the corpora's pages are real: a refusal is a bug
            raise RuntimeError(f"{page.corpus}/{page.id} refused before parsing: {safe.refused}")
        start = time.process_time()
        # as ingest calls it for a feed item with a title and a date
        extracted = extract(safe.html, page.url, known=("title", "date"))
        seconds["extract"] = time.process_time() - start
        outputs["mediamon"] = extracted.text if extracted else ""
        modes["mediamon"] = extracted.mode if extracted else "none"

    def plain_on_text() -> None:
        # trafilatura on the decoded text: the yardstick of extract() alone
        text = decode_html(raw).text
        start = time.process_time()
        trafilatura.extract(text, url=page.url, output_format="txt")
        seconds["plain_on_text"] = time.process_time() - start

    steps: list[Callable[[], None]] = [
        lambda: timed("trafilatura", lambda: trafilatura.extract(raw, output_format="txt") or ""),
        lambda: timed("readability", lambda: _readability_peer(raw)),
        lambda: timed("resiliparse", lambda: _resiliparse_peer(raw)),
        mediamon,
        plain_on_text,
    ]
    turn = zlib.crc32(page.id.encode()) % len(steps)
    for step in steps[turn:] + steps[:turn]:
        step()

    decoded = decode_html(raw).text
    tree = parse(decoded)
    texts, comments = ("", "", ""), ""
    if tree is not None:
        readability, comments = readability_read(tree)
        texts = (
            trafilatura_text(tree, page.url, precision=True),
            readability,
            trafilatura_text(tree, page.url, precision=False),
        )
    precision, readability, balanced = (clean_text(text) for text in texts)
    # The feed's title, which ingest would have, is the page's own here; the texts are
    # scored as build_article stores them, without a first line repeating it. Untimed,
    # after the timed calls (whose caches it would warm).
    titled = extract(parser_safe(decoded).html, page.url, known=("date",))
    title = titled.title or "" if titled else ""
    dev = DevPage(
        corpus=page.corpus,
        id=page.id,
        lang=page.lang,
        site=page.site,
        reference=page.reference,
        precision=precision,
        readability=readability,
        balanced=balanced,
        link_texts=link_texts(tree) if tree is not None else frozenset(),
        raw=texts,
        title=title,
        comments=comments,
    )
    baseline_text = outputs["trafilatura"]
    # The text of the call that knew the title, as ingest's does (it passes the feed's):
    # the page's link to its own headline is then not navigation. The timed call, which
    # has no title before the page is read, differs from it in that alone.
    mediamon_text = without_headline(titled.text if titled else "", title)
    return PageResult(
        corpus=page.corpus,
        id=page.id,
        lang=page.lang,
        site=page.site,
        peers={name: score_page(outputs[name], page.reference, page.lang) for name in PEERS},
        mediamon=score_page(mediamon_text, page.reference, page.lang),
        mode=titled.mode if titled else "none",
        peer_seconds={name: seconds[name] for name in PEERS},
        decode_seconds=seconds["decode"],
        extract_seconds=seconds["extract"],
        plain_on_text_seconds=seconds["plain_on_text"],
        baseline_fffd="\ufffd" in baseline_text,
        baseline_mojibake=has_mojibake(baseline_text),
        mediamon_fffd="\ufffd" in mediamon_text,
        mediamon_mojibake=has_mojibake(mediamon_text),
        dev=dev,
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
    for corpus in (*CORPORA, GENERATED):
        in_corpus = [r for r in results if r.corpus == corpus]
        if not in_corpus:
            continue
        yield corpus, in_corpus
        if corpus == "magic_html_article":
            zh = [r for r in in_corpus if r.lang.lower().startswith("zh")]
            if zh:
                yield f"{corpus}[zh]", zh
    zh_or_ja = [r for r in results if is_char_language(r.lang)]
    if zh_or_ja:  # none with --only aeb
        yield "all zh/ja pages", zh_or_ja
    yield "all pages", list(results)


@dataclass(frozen=True)
class Report:
    """The cross-validated chooser's output scored beside the peers, per page."""

    results: list[PageResult]
    cv: CrossValidation
    cv_scores: dict[tuple[str, str], PageScore]  # (corpus, id) -> held-out choice's score


def evaluate(results: Sequence[PageResult]) -> Report:
    cv = cross_validate([r.dev for r in results])
    scores = {
        (r.corpus, r.id): score_page(text, r.dev.reference, r.lang)
        for r, text in zip(results, cv.held_out_text, strict=True)
    }
    return Report(list(results), cv, scores)


def last_cross_validation(results: Sequence[PageResult]) -> CrossValidation:
    return evaluate(results).cv


def format_quality(results: Sequence[PageResult], report: Report | None = None) -> str:
    report = report or evaluate(results)
    header = (
        f"{'F1':<24} {'pages':>5} {'sites':>5} | {'trafila':>7} {'readab':>7} {'resili':>7} |"
        f" {'mediamon':>8} {'mm CV':>7} | {'CV-best':>7} {'90% (sites)':>16} {'CV-traf':>7}"
    )
    lines = [
        "Extraction F1 (mediamon: in sample = the shipped chooser; CV = leave one site out)",
        header,
        "-" * len(header),
    ]
    for name, group in rows(results):
        peers = {p: aggregate(r.peers[p] for r in group).f1 for p in PEERS}
        mm = aggregate(r.mediamon for r in group).f1
        cv = aggregate(report.cv_scores[(r.corpus, r.id)] for r in group).f1
        best_peer = max(("trafilatura", "readability"), key=peers.__getitem__)
        low, high = paired_interval(
            [report.cv_scores[(r.corpus, r.id)] for r in group],
            [r.peers[best_peer] for r in group],
            [r.site for r in group],
        )
        lines.append(
            f"{name:<24} {len(group):>5} {len({r.site for r in group}):>5} |"
            f" {peers['trafilatura']:7.3f} {peers['readability']:7.3f}"
            f" {peers['resiliparse']:7.3f} | {mm:8.3f} {cv:7.3f} |"
            f" {cv - peers[best_peer]:+7.3f} [{low:+.3f}, {high:+.3f}]"
            f" {cv - peers['trafilatura']:+7.3f}"
        )
    chosen = Counter(report.cv.held_out)
    lines.append(
        f"CV choices over {report.cv.sites} sites: "
        + ", ".join(f"{name} {count}" for name, count in chosen.most_common())
        + "; shipped chooser's choices: "
        + ", ".join(f"{m} {c}" for m, c in Counter(r.mode for r in results).most_common())
    )
    lines.append(
        "90% (sites): where CV-best could fall on other sites of the same kind (a paired"
        " bootstrap drawing whole sites); an interval holding 0 is not a finding"
    )
    lines.append(f"Fit on all sites: {model_literal(report.cv.full_fit)}")
    lines.append(
        f"Shipped         : {model_literal(MODEL)}"
        + ("" if _same_model(report.cv.full_fit, MODEL) else _DIFFERS)
    )
    return "\n".join(lines)


def format_ablation(report: Report) -> str:
    """CV F1 with each kind of boilerplate line toggled, beside the shipped cleaning."""
    started = time.perf_counter()
    variants = ablation([r.dev for r in report.results])
    names = [name for name, _ in rows(report.results)]

    def f1s(texts: Sequence[str]) -> dict[str, float]:
        scores = {
            (r.corpus, r.id): score_page(t, r.dev.reference, r.lang)
            for r, t in zip(report.results, texts, strict=True)
        }
        return {
            name: aggregate(scores[(r.corpus, r.id)] for r in group).f1
            for name, group in rows(report.results)
        }

    shipped = f1s(report.cv.held_out_text)
    header = f"{'edge lines of the kind':<24}" + "".join(f" {n[:13]:>13}" for n in names)
    lines = [
        "Cleaning rules by cross-validation: CV F1 change when a kind of edge line is toggled"
        " (> 0: the shipped choice costs F1)",
        header,
        f"{'as shipped':<24}" + "".join(f" {shipped[n]:13.3f}" for n in names),
    ]
    for kind, cv in variants.items():
        scores = f1s(cv.held_out_text)
        toggled = f"{'kept' if kind in CLEANED_KINDS else 'stripped'}: {kind}"
        lines.append(f"{toggled:<24}" + "".join(f" {scores[n] - shipped[n]:+13.3f}" for n in names))
    lines.append(f"  ({time.perf_counter() - started:.0f} s)")
    return "\n".join(lines)


def format_feature_effect(report: Report, feature: str) -> str:
    """A feature's own effect: F1 per corpus in sample and cross-validated, without the
    feature and with it, the second both with the grid searched again and with the
    grid's picks held at those made without it (only the weights refit: the grid's
    picks flip for sites whose texts did not change, see docs/extraction.md)."""
    pages = [r.dev for r in report.results]
    before = cross_validate(pages, without=(feature,))
    held = cross_validate(pages, picks=before.picks)
    variants = {
        "in w/o": before.in_sample_text,
        "in with": report.cv.in_sample_text,
        "CV w/o": before.held_out_text,
        "CV with": report.cv.held_out_text,
        "CV held": held.held_out_text,
    }
    scores = {
        name: {
            (r.corpus, r.id): score_page(t, r.dev.reference, r.lang)
            for r, t in zip(report.results, texts, strict=True)
        }
        for name, texts in variants.items()
    }
    header = f"{'F1':<24} {'pages':>5} | {'trafila':>7} | " + " ".join(
        f"{name:>8}" for name in variants
    )
    lines = [
        f"The feature {feature!r}: F1 without it and with it (in sample, CV with the grid"
        " searched, CV with the grid's picks held at those without it)",
        header,
        "-" * len(header),
    ]
    for name, group in rows(report.results):
        traf = aggregate(r.baseline for r in group).f1
        figures = " ".join(
            f"{aggregate(scores[v][(r.corpus, r.id)] for r in group).f1:8.4f}" for v in variants
        )
        lines.append(f"{name:<24} {len(group):>5} | {traf:7.4f} | {figures}")
    for variant in ("CV w/o", "CV held"):
        worse = sum(
            scores[variant][(r.corpus, r.id)].f1 < r.baseline.f1 - 0.01 for r in report.results
        )
        lines.append(f"{variant}: {worse} pages worse than plain trafilatura by > 0.01")
    lines.append("Pages whose CV F1 the feature changes (grid held):")
    for r in report.results:
        old, new = (scores[v][(r.corpus, r.id)].f1 for v in ("CV w/o", "CV held"))
        if abs(new - old) > 1e-9:
            lines.append(
                f"  {new - old:+.3f}  {r.corpus:<20} {r.id[:40]:<40} {old:.3f} -> {new:.3f}"
                f"  (trafilatura {r.baseline.f1:.3f})"
            )
    lines.append(f"Fit on all sites without it: {model_literal(before.full_fit)}")
    return "\n".join(lines)


_DIFFERS = "  (differs: a partial run, or copy the fit into mediamon/ingest/choose.py)"


def _same_model(a: Model, b: Model) -> bool:
    return model_literal(a) == model_literal(b)


def format_losses(report: Report, margin: float = 0.01) -> str:
    """Pages where mediamon (cross-validated) scores below plain trafilatura."""
    losses = sorted(
        (
            (report.cv_scores[(r.corpus, r.id)].f1 - r.baseline.f1, r, choice)
            for r, choice in zip(report.results, report.cv.held_out, strict=True)
        ),
        key=lambda item: item[0],
    )
    worse = [(d, r, c) for d, r, c in losses if d < -margin]
    better = sum(1 for d, _, _ in losses if d > margin)
    lines = [
        f"Per-page losses against plain trafilatura (mediamon CV F1 lower by > {margin}):"
        f" {len(worse)} pages worse, {better} better, of {len(losses)}"
    ]
    for delta, r, choice in worse:
        lines.append(
            f"  {delta:+.3f}  {r.corpus:<20} {r.id[:40]:<40} trafilatura {r.baseline.f1:.3f}"
            f"  mediamon {report.cv_scores[(r.corpus, r.id)].f1:.3f} ({choice})"
        )
    return "\n".join(lines)


def _mean(values: Iterable[float]) -> float:
    values = list(values)
    return sum(values) / len(values) if values else 0.0


def format_speed(results: Sequence[PageResult]) -> str:
    lines = [
        "Mean CPU ms per page (each worker process times its own calls; mediamon ="
        " decode_html, shape check and extract as ingest calls them)",
        f"{'corpus':<24} {'trafila':>7} {'readab':>7} {'resili':>7} {'mediamon':>8} {'ratio':>6}",
    ]
    for name, group in rows(results):
        peer = {p: _mean(r.peer_seconds[p] for r in group) * 1000 for p in PEERS}
        mm = _mean(r.decode_seconds + r.extract_seconds for r in group) * 1000
        lines.append(
            f"{name:<24} {peer['trafilatura']:7.1f} {peer['readability']:7.1f}"
            f" {peer['resiliparse']:7.1f} {mm:8.1f} {mm / peer['trafilatura']:5.2f}x"
        )
    base = _mean(r.peer_seconds["trafilatura"] for r in results) * 1000
    plain = _mean(r.plain_on_text_seconds for r in results) * 1000
    ext = _mean(r.extract_seconds for r in results) * 1000
    decode = _mean(r.decode_seconds for r in results) * 1000
    lines += [
        f"  trafilatura.extract(raw bytes, txt)          {base:7.1f}",
        f"  trafilatura.extract(decoded text, txt)       {plain:7.1f}",
        f"  mediamon decode_html + shape check           {decode:7.1f}",
        f"  mediamon extract(decoded text)               {ext:7.1f}"
        f"   ratio to trafilatura on the same text: {ext / plain:.2f}x",
        f"  mediamon decode + extract                    {decode + ext:7.1f}"
        f"   ratio to trafilatura on raw bytes:     {(decode + ext) / base:.2f}x"
        " (target <= 1.1x)",
    ]
    return "\n".join(lines)


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
    parser.add_argument("--only", nargs="*", default=None, help="corpora to run (default all)")
    parser.add_argument("--limit", type=int, default=None, help="pages per corpus at most")
    parser.add_argument("--workers", type=int, default=2, help="processes (default 2)")
    parser.add_argument("--per-page", action="store_true", help="also print per-page F1")
    parser.add_argument(
        "--feature-effect",
        metavar="FEATURE",
        help="CV and in-sample F1 without and with one of the chooser's features",
    )
    parser.add_argument(
        "--ablation", action="store_true", help="cross-validate each cleaning rule (slow)"
    )
    args = parser.parse_args(argv)

    if not args.corpora.is_dir():
        print(f"{args.corpora} is missing (give --corpora)", file=sys.stderr)
        return 2
    pages = load_pages(args.corpora, args.only or (*CORPORA, GENERATED), args.limit)
    start = time.perf_counter()
    results = run_pages(pages, args.workers)
    elapsed = time.perf_counter() - start
    report = evaluate(results)

    if args.per_page:
        for r in results:
            cv = report.cv_scores[(r.corpus, r.id)].f1
            print(
                f"{r.corpus:<20} {r.lang:<7} {r.baseline.f1:6.3f} {r.mediamon.f1:6.3f} "
                f"{cv:6.3f} {r.mode:<11} {r.id}"
            )
        print()
    print(f"{len(pages)} pages from {args.corpora} in {elapsed:.1f} s on {args.workers} workers\n")
    print(format_quality(results, report))
    print()
    print(format_losses(report))
    print()
    if args.feature_effect:
        print(format_feature_effect(report, args.feature_effect))
        print()
    if args.ablation:
        print(format_ablation(report))
        print()
    print(format_speed(results))
    print()
    print(format_charset(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
