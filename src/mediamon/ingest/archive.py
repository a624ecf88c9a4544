"""Archived feed items in the seed format: ``<!--epoch ms-->``, ``[title](url)``,
``------``, then the item's HTML."""

from __future__ import annotations

import re
from pathlib import Path

from mediamon.ingest.feeds import FeedItem
from mediamon.ingest.normalize import from_epoch_ms

EPOCH_LINE = re.compile(r"^<!--\s*(\d{10,13})\s*-->$")
TITLE_LINE = re.compile(r"^\[(?P<title>.*)\]\((?P<url>https?://[^\s)]+)\)$")
SEPARATOR = re.compile(r"^-{3,}$")


class ArchiveFormatError(ValueError):
    """A file does not follow the archive format; the message names the file and line."""


def parse_archive_text(text: str, name: str) -> tuple[FeedItem, str]:
    """Parse one archived item.

    Args:
        text: The file's contents.
        name: The file's name, for error messages.

    Returns:
        The item (link, title, publication time) and its HTML.

    Raises:
        ArchiveFormatError: the header is missing or malformed.
    """
    lines = text.lstrip("\ufeff").split("\n", 3)
    header = [line.strip() for line in lines[:3]]
    if len(lines) < 4:
        header += [""] * (3 - len(header))
    epoch = EPOCH_LINE.match(header[0])
    if not epoch:
        raise ArchiveFormatError(f"{name}: line 1 must be <!--epoch milliseconds-->")
    link = TITLE_LINE.match(header[1])
    if not link:
        raise ArchiveFormatError(f"{name}: line 2 must be [title](http(s) URL)")
    if not SEPARATOR.match(header[2]):
        raise ArchiveFormatError(f"{name}: line 3 must be a ------ separator")
    html = lines[3] if len(lines) > 3 else ""
    if not html.strip():
        raise ArchiveFormatError(f"{name}: no HTML after the separator")
    value = int(epoch.group(1))
    # Ten digits are epoch seconds; the format's thirteen are milliseconds.
    published = from_epoch_ms(value * 1000 if value < 10**11 else value)
    item = FeedItem(
        link=link.group("url"),
        title=link.group("title").strip() or None,
        published_at=published,
        content_html=html,
    )
    return item, html


def read_capped(path: Path, max_bytes: int) -> bytes:
    """The file's bytes, refusing a file over ``max_bytes`` before reading it (and, if
    it grows meanwhile or is no regular file, after reading at most one byte more).

    Raises:
        ArchiveFormatError: the file is larger than ``max_bytes``.
        OSError: the file cannot be read.
    """
    too_big = f"{path.name}: file larger than {max_bytes} bytes; not read"
    if path.stat().st_size > max_bytes:
        raise ArchiveFormatError(too_big)
    with path.open("rb") as file:
        data = file.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise ArchiveFormatError(too_big)
    return data


def archive_files(folder: Path) -> list[Path]:
    """The files of an archive folder in name order (hidden files and READMEs skipped)."""
    if not folder.is_dir():
        raise ArchiveFormatError(f"{folder}: not a folder")
    return sorted(
        p
        for p in folder.iterdir()
        if p.is_file()
        and not p.name.startswith(".")
        and p.suffix.lower() in (".txt", ".html")
        and not p.name.lower().startswith("readme")
    )
