"""The seed's archive format: header parsing and clear errors for files that differ."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from mediamon.ingest.archive import ArchiveFormatError, archive_files, parse_archive_text


def test_seed_header(shared_dir: Path) -> None:
    (path,) = archive_files(shared_dir / "seeds")
    item, html = parse_archive_text(path.read_text("utf-8"), path.name)
    assert item.title == "拜登习近平通话 在台湾和高技术出口问题上针锋相对"
    assert item.link.startswith("https://www.rfi.fr/cn/")
    assert item.published_at == datetime(2024, 4, 2, 20, 45, 1, tzinfo=UTC)
    assert html.lstrip().startswith("<div>02/04/2024")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[t](https://x.org/a)\n------\n<p>x</p>", "line 1"),
        ("<!--1712090701000-->\nno title here\n------\n<p>x</p>", "line 2"),
        ("<!--1712090701000-->\n[t](ftp://x.org/a)\n------\n<p>x</p>", "line 2"),
        ("<!--1712090701000-->\n[t](https://x.org/a)\n<p>x</p>\n", "line 3"),
        ("<!--1712090701000-->\n[t](https://x.org/a)\n------\n   ", "no HTML"),
    ],
)
def test_malformed_files_are_named(text: str, message: str) -> None:
    with pytest.raises(ArchiveFormatError) as error:
        parse_archive_text(text, "bad.txt")
    assert str(error.value).startswith("bad.txt: ")
    assert message in str(error.value)


def test_epoch_seconds_and_crlf() -> None:
    item, _ = parse_archive_text(
        "<!--1712090701-->\r\n[t](https://x.org/a)\r\n------\r\n<p>x</p>", "a.txt"
    )
    assert item.published_at == datetime(2024, 4, 2, 20, 45, 1, tzinfo=UTC)
