"""Cross-validation of the extraction chooser (mediamon.ingest.choose) across sites.

Every parameter of the chooser is chosen here, never by hand on the pages at hand: the
logistic model's weights, its ridge penalty and the navigation-line threshold. The
development pages are the labelled corpora plus the generated short articles
(:mod:`bench.short_articles`); a page's site is the registrable domain of its URL (the
reference's ``url``, else the page's ``og:url``, else the page id's prefix: gne_silver's
``163_1`` is 163).

* **Cross-validated F1**: leave one site out. For each site, the parameters are chosen
  on the other sites alone (the penalty and threshold by an inner 5-fold
  cross-validation by site, then the weights fit on all of them) and applied to the
  held-out site's pages. What a new site can expect.
* **In-sample F1**: the parameters fit on every site, as shipped in
  ``mediamon.ingest.choose.MODEL``.

    python -m bench.extraction_quality [--only CORPUS ...] [--limit N]

prints the fit on all sites as a ``Model(...)`` literal, to be copied into
``mediamon/ingest/choose.py`` when it differs from the shipped one.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, replace
from urllib.parse import urlsplit

import numpy as np

from mediamon.ingest.choose import (
    FEATURES,
    LinkTexts,
    Model,
    choose,
    not_the_headline,
    with_missed_lead,
)
from mediamon.ingest.extract import CLEANED_KINDS, EDGE_PATTERNS, clean_text, edge_pattern
from mediamon.ingest.normalize import without_headline

NAVIGATION_GRID: tuple[float | None, ...] = (None, 0.5, 0.7, 0.9)
# The least length of a lead paragraph put back in front of readability's text (None:
# the rule off): choose.with_missed_lead.
LEAD_GRID: tuple[int | None, ...] = (None, 20, 40, 80)
L2_GRID = (0.3, 1.0, 3.0)
INNER_FOLDS = 5
# Pages where the candidates' F1 differ by less than this teach the model nothing.
MIN_F1_GAP = 0.005
_OG_URL = re.compile(
    rb"""<meta[^>]+(?:property|name)=["']og:url["'][^>]+content=["']([^"']+)""", re.IGNORECASE
)
_SECOND_LEVEL = frozenset({"com", "net", "org", "gov", "edu", "co", "ac", "or", "ne"})


def site_of(corpus: str, page_id: str, url: str | None, raw: bytes = b"") -> str:
    """The site a page belongs to: the registrable domain of its URL or ``og:url``
    (``biz.163.com`` -> ``163.com``, ``news.bbc.co.uk`` -> ``bbc.co.uk``), else the
    page id's prefix within its corpus."""
    if not url and (match := _OG_URL.search(raw[:200_000])):
        url = match.group(1).decode("ascii", "replace")
    host = (urlsplit(url or "").hostname or "").removeprefix("www.")
    if not host:
        return f"{corpus}:{page_id.split('_')[0]}"
    labels = host.split(".")
    keep = 3 if len(labels) >= 3 and labels[-2] in _SECOND_LEVEL and len(labels[-1]) == 2 else 2
    return ".".join(labels[-keep:])


@dataclass(frozen=True)
class DevPage:
    """One development page's candidates, as :func:`mediamon.ingest.extract.read_candidates`
    gives them, with what is needed to score them."""

    corpus: str
    id: str
    lang: str
    site: str
    reference: str
    precision: str
    readability: str
    balanced: str  # the fallback's text (the bench runs it on every page)
    link_texts: frozenset[str]
    raw: tuple[str, str, str] = ("", "", "")  # the three before cleaning
    # The title ingest would store (the feed's; here the page's own): a first line
    # repeating it leaves the text as build_article stores it (normalize.without_headline).
    title: str = ""
    comments: str = ""  # the page's comment blocks (candidates.readability_read)


def clean_page(page: DevPage, edge_lines: re.Pattern[str]) -> DevPage:
    """The page with its candidates cleaned again with other boilerplate lines."""
    precision, readability, balanced = (clean_text(t, edge_lines=edge_lines) for t in page.raw)
    return replace(page, precision=precision, readability=readability, balanced=balanced)


@dataclass
class _Table:
    """Per page, for one navigation threshold and lead length: features, forced choices
    and the F1 of each candidate, as arrays (the cross-validation refits thousands of
    times)."""

    x: np.ndarray  # features (pages x FEATURES)
    forced: np.ndarray  # -1 model decides, 0 precision, 1 readability, 2 balanced
    f1: np.ndarray  # pages x (precision, readability, balanced)


Setting = tuple[float | None, int | None]  # (navigation threshold, lead length)


def _tables(pages: Sequence[DevPage]) -> dict[Setting, _Table]:
    from bench.scoring import score_page

    def f1(text: str, page: DevPage) -> float:
        return score_page(without_headline(text, page.title), page.reference, page.lang).f1

    tables: dict[Setting, _Table] = {}
    for navigation in NAVIGATION_GRID:
        probe = Model(intercept=0.0, weights=(0.0,) * len(FEATURES), navigation=navigation)
        xs, forced, p_scores, b_scores = [], [], [], []
        for page in pages:
            choice = choose(
                page.precision, page.readability, page.link_texts, probe, page.comments, page.title
            )
            # the texts the model would weigh: after the navigation lines are dropped
            p_text = choose(page.precision, "", page.link_texts, probe, title=page.title).text
            if choice.features is not None:
                xs.append(choice.features)
                forced.append(-1)
            else:
                xs.append((0.0,) * len(FEATURES))
                forced.append({"precision": 0, "readability": 1, "none": 2}[choice.name])
            p_scores.append(f1(p_text, page))
            b_scores.append(f1(page.balanced, page))
        for lead in LEAD_GRID:
            scores = [
                (p, f1(_chosen_text(page, "readability", (navigation, lead)), page), b)
                for page, p, b in zip(pages, p_scores, b_scores, strict=True)
            ]
            tables[navigation, lead] = _Table(np.array(xs), np.array(forced), np.array(scores))
    return tables


def _fit(table: _Table, rows: np.ndarray, l2: float, setting: Setting) -> Model:
    """Weighted ridge logistic regression (IRLS): readability over precision, each page
    weighted by how much the choice matters to its F1."""
    use = rows[(table.forced[rows] == -1)]
    gap = table.f1[use, 1] - table.f1[use, 0]
    use, gap = use[np.abs(gap) > MIN_F1_GAP], gap[np.abs(gap) > MIN_F1_GAP]
    n_features = table.x.shape[1]
    if len(use) == 0:
        return Model(0.0, (0.0,) * n_features, setting[0], l2, setting[1])
    x = np.hstack([np.ones((len(use), 1)), table.x[use]])
    y = (gap > 0).astype(float)
    weight = np.abs(gap) / np.abs(gap).mean()
    penalty = l2 * np.diag([0.0] + [1.0] * n_features)
    beta = np.zeros(n_features + 1)
    for _ in range(30):
        p = 1 / (1 + np.exp(-(x @ beta)))
        gradient = x.T @ (weight * (p - y)) + penalty @ beta
        hessian = (x * (weight * p * (1 - p))[:, None]).T @ x + penalty + 1e-9 * np.eye(len(beta))
        step = np.linalg.solve(hessian, gradient)
        beta -= step
        if np.abs(step).max() < 1e-6:
            break
    weights = tuple(float(b) for b in beta[1:])
    return Model(float(beta[0]), weights, setting[0], l2, setting[1])


def _chosen(table: _Table, rows: np.ndarray, model: Model) -> np.ndarray:
    """Index of the chosen candidate (0 precision, 1 readability, 2 balanced) per row."""
    scores = model.intercept + table.x[rows] @ np.array(model.weights)
    return np.where(table.forced[rows] >= 0, table.forced[rows], (scores > 0).astype(int))


def _page_f1(table: _Table, rows: np.ndarray, model: Model) -> float:
    return float(table.f1[rows, _chosen(table, rows, model)].mean()) if len(rows) else 0.0


def _fold(site: str, folds: int) -> int:
    return zlib.crc32(site.encode()) % folds


Pick = tuple[Setting, float]  # the grid's pick: (navigation, lead) and the penalty


def select(
    tables: dict[Setting, _Table], sites: np.ndarray, rows: np.ndarray, pick: Pick | None = None
) -> Model:
    """The model for the pages ``rows``: the penalty, navigation threshold and lead
    length with the best inner cross-validated mean page F1 (folds by site), then fit
    on all ``rows``. ``pick``: those three given instead of searched (only the weights
    are fit), to read a change's own effect apart from the grid's."""
    if pick is None:
        pick = _grid_pick(tables, sites, rows)
    setting, l2 = pick
    return _fit(tables[setting], rows, l2, setting)


def _grid_pick(tables: dict[Setting, _Table], sites: np.ndarray, rows: np.ndarray) -> Pick:
    folds = np.array([_fold(s, INNER_FOLDS) for s in sites[rows]])
    best: tuple[float, Setting, float] | None = None
    for setting, table in tables.items():
        for l2 in L2_GRID:
            total = 0.0
            for fold in range(INNER_FOLDS):
                train, test = rows[folds != fold], rows[folds == fold]
                total += _page_f1(table, test, _fit(table, train, l2, setting)) * len(test)
            if best is None or total > best[0] + 1e-9:
                best = (total, setting, l2)
    assert best is not None
    _, setting, l2 = best
    return setting, l2


@dataclass(frozen=True)
class CrossValidation:
    """Per page (in the order given): the candidate chosen and its text, out of sample
    (leave one site out) and in sample (the fit on all sites)."""

    held_out: list[str]
    held_out_text: list[str]
    full_fit: Model
    sites: int
    picks: dict[str, Pick]  # the grid's pick for each held-out site
    in_sample_text: list[str]  # the text full_fit chooses


_NAMES = ("precision", "readability", "balanced")


def cross_validate(
    pages: Sequence[DevPage],
    *,
    without: Collection[str] = (),
    picks: Mapping[str, Pick] | None = None,
) -> CrossValidation:
    """Leave one site out. ``without``: features left out (their column zeroed, which
    the ridge fit gives a weight of 0); ``picks``: the grid's picks per held-out site
    held at these (an earlier run's ``picks``) instead of searched again."""
    tables = _tables(pages)
    if without:
        kept = np.array([name not in without for name in FEATURES], dtype=float)
        tables = {key: replace(table, x=table.x * kept) for key, table in tables.items()}
    sites = np.array([p.site for p in pages])
    all_rows = np.arange(len(pages))
    held_out = [""] * len(pages)
    held_out_text = [""] * len(pages)
    used: dict[str, Pick] = {}
    for site in sorted(set(sites)):
        train, test = all_rows[sites != site], all_rows[sites == site]
        used[site] = picks[site] if picks is not None else _grid_pick(tables, sites, train)
        model = select(tables, sites, train, used[site])
        setting = (model.navigation, model.lead)
        for row, index in zip(test, _chosen(tables[setting], test, model), strict=True):
            held_out[row] = _NAMES[index]
            held_out_text[row] = _text_of(pages[row], _NAMES[index], setting)
    full_fit = select(tables, sites, all_rows)
    full_setting = (full_fit.navigation, full_fit.lead)
    in_sample_text = [
        _text_of(page, _NAMES[index], full_setting)
        for page, index in zip(
            pages, _chosen(tables[full_setting], all_rows, full_fit), strict=True
        )
    ]
    return CrossValidation(held_out, held_out_text, full_fit, len(set(sites)), used, in_sample_text)


def ablation(pages: Sequence[DevPage]) -> dict[str, CrossValidation]:
    """The cross-validation again with each kind of boilerplate line (see
    ``mediamon.ingest.extract.EDGE_PATTERNS``) toggled: a shipped kind left in the text, a
    kind not shipped stripped too. A kind whose removal does not raise the cross-validated
    F1 is a rule the data does not support."""
    results = {}
    for kind in EDGE_PATTERNS:
        kinds = set(CLEANED_KINDS) ^ {kind}
        edge = edge_pattern([k for k in EDGE_PATTERNS if k in kinds])
        results[kind] = cross_validate([clean_page(page, edge) for page in pages])
    return results


def _text_of(page: DevPage, name: str, setting: Setting) -> str:
    """The text stored when ``name`` is chosen (as build_article stores it)."""
    return without_headline(_chosen_text(page, name, setting), page.title)


def _chosen_text(page: DevPage, name: str, setting: Setting) -> str:
    navigation, lead = setting
    if name == "balanced":
        return page.balanced
    probe = Model(0.0, (0.0,) * len(FEATURES), navigation)
    precision = choose(page.precision, "", page.link_texts, probe, title=page.title).text
    if name == "precision":
        return precision
    readability = choose("", page.readability, page.link_texts, probe, title=page.title).text
    links = LinkTexts(not_the_headline(page.link_texts, page.title))
    return with_missed_lead(precision, readability, links, lead)


def model_literal(model: Model) -> str:
    weights = ", ".join(f"{w:.3f}" for w in model.weights)
    return (
        f"Model(intercept={model.intercept:.3f}, weights=({weights}), "
        f"navigation={model.navigation}, l2={model.l2}, lead={model.lead})"
    )


if __name__ == "__main__":  # the report lives with the other extraction figures
    from bench import extraction_quality

    raise SystemExit(extraction_quality.main())
