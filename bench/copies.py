"""Copy links on the shared corpora: true copies found, roundups that absorb stories.

Run from the repository root::

    .venv/bin/python -m bench.copies [--corpora ../shared/corpora]

Every page of the corpora with a reference text is one story. Its true copies:

* ``page``: mediamon's own extraction of the page (the story with whatever of the page's
  furniture the extractors kept: captions, related links, a credit line);
* ``syndicated``: the reference with a byline, a credit line and a footer of its own;
* ``rebroken``: the reference with its line breaks removed (a CMS that joins paragraphs).

Each copy is weighed against its story by :func:`mediamon.ingest.load.copy_roots`,
under the rule in force and under the rule of before (the shorter text's sentences
alone, ``DUPLICATE_MIN_SHARED_OF_LONGER = 0``). Then the roundups: pages holding the
full texts of 10 stories, stored before them; a link from a story to its roundup is a
story lost (it counts as the roundup's copy).
"""

from __future__ import annotations

import argparse
import json
import random
from collections.abc import Iterator
from pathlib import Path

from mediamon.ingest import load
from mediamon.ingest.decode import decode_html
from mediamon.ingest.extract import extract
from mediamon.ingest.normalize import duplicate_keys
from mediamon.text import fold

FOOTER = "本文版权归原作者所有，转载请注明出处。"
CORPORA = Path(__file__).resolve().parents[2] / "shared" / "corpora"


def stories(corpora: Path) -> Iterator[tuple[str, str, bytes]]:
    """(id, reference text, page bytes) of every page with a reference."""
    for gt in sorted(corpora.glob("*/gt/*.json")):
        page = gt.parent.parent / "html" / f"{gt.stem}.html"
        reference = json.loads(gt.read_text(encoding="utf-8")).get("articleBody") or ""
        if reference.strip() and page.exists():
            yield f"{gt.parent.parent.name}/{gt.stem}", reference, page.read_bytes()


def fingerprint(article_id: int, text: str) -> load.Fingerprint:
    match = fold(text)
    content_hash, sentences = duplicate_keys(match)
    long_enough = len(match) >= load.DUPLICATE_MIN_CHARS
    return load.Fingerprint(article_id, content_hash if long_enough else None, frozenset(sentences))


def linked(original: load.Fingerprint, copy: load.Fingerprint) -> bool:
    return load.copy_roots([copy], [original])[copy.article_id] == original.article_id


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpora", type=Path, default=CORPORA)
    args = parser.parse_args()
    texts: list[str] = []
    copies: dict[str, list[tuple[load.Fingerprint, load.Fingerprint]]] = {
        "page": [], "syndicated": [], "rebroken": [],
    }  # fmt: skip
    for n, (_, reference, raw) in enumerate(stories(args.corpora)):
        original = fingerprint(2 * n, reference)
        if len(original.sentences) < load.DUPLICATE_MIN_SENTENCES:
            continue  # too short to be told by its sentences
        texts.append(reference)
        page = extract(decode_html(raw).text)
        if page is not None:
            copies["page"].append((original, fingerprint(2 * n + 1, page.text)))
        syndicated = f"记者 张三 报道\n{reference}\n（来源：新华社）\n{FOOTER}"
        copies["syndicated"].append((original, fingerprint(2 * n + 1, syndicated)))
        copies["rebroken"].append((original, fingerprint(2 * n + 1, reference.replace("\n", " "))))

    rng = random.Random(7)
    roundups = []
    for r in range(50):
        chosen = rng.sample(range(len(texts)), 10)
        first = 10_000 * (r + 1)  # the roundup's id; its stories come after it
        roundup = fingerprint(first, "\n".join(texts[i] for i in chosen))
        batch = [fingerprint(first + 1 + k, texts[i]) for k, i in enumerate(chosen)]
        roundups.append((roundup, batch))

    rules = {"now": load.DUPLICATE_MIN_SHARED_OF_LONGER, "before": 0.0}
    print(f"{len(texts)} stories of 3 sentences or more in {args.corpora}")
    for name, value in rules.items():
        load.DUPLICATE_MIN_SHARED_OF_LONGER = value
        found = {kind: sum(linked(o, c) for o, c in pairs) for kind, pairs in copies.items()}
        absorbed = sum(
            sum(1 for root in load.copy_roots(batch, [roundup]).values() if root is not None)
            for roundup, batch in roundups
        )
        cross = sum(linked(copies["syndicated"][i][0], copies["syndicated"][i + 1][1])
                    for i in range(len(copies["syndicated"]) - 1))  # fmt: skip
        print(
            f"rule {name:6}: copies linked "
            + ", ".join(f"{kind} {found[kind]}/{len(copies[kind])}" for kind in copies)
            + f"; stories absorbed by 50 roundups of 10: {absorbed}/500"
            + f"; neighbouring stories linked: {cross}"
        )
    load.DUPLICATE_MIN_SHARED_OF_LONGER = rules["now"]


if __name__ == "__main__":
    main()
