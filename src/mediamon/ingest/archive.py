"""Archived feed items in the seed format: ``<!--epoch ms-->``, ``[title](url)``,
``------``, then the item's HTML."""

from __future__ import annotations

import errno
import os
import re
import stat
from pathlib import Path

from mediamon.ingest.feeds import MAX_URL_LENGTH, FeedItem, plain_title, usable_link
from mediamon.ingest.normalize import from_epoch_ms
from mediamon.text import one_line

EPOCH_LINE = re.compile(r"^<!--\s*(\d{10,13})\s*-->$")
URL_SCHEMES = ("http://", "https://")
URL_BREAK = re.compile(r"[\s)]")
SEPARATOR = re.compile(r"^-{3,}$")
# A folder named in an error is cut here (a path may be 4,096 bytes; a line should not).
MAX_SHOWN_FOLDER = 200


class ArchiveFormatError(ValueError):
    """A file does not follow the archive format; the message names the file and line."""


def parse_archive_text(
    text: str, name: str, notes: list[str] | None = None
) -> tuple[FeedItem, str]:
    """Parse one archived item.

    Args:
        text: The file's contents.
        name: The file's name, for error messages.
        notes: Gets a line when the link's user name and password were removed (shown
            in mail and BI, ``https://www.example.com:pw@evil.example/`` reads as the
            first host), as a feed's items get.

    Returns:
        The item (link, title, publication time) and its HTML.

    Raises:
        ArchiveFormatError: the header is missing or malformed.
    """
    name = shown_name(name)
    lines = text.lstrip("\ufeff").split("\n", 3)
    header = [line.strip() for line in lines[:3]]
    if len(lines) < 4:
        header += [""] * (3 - len(header))
    epoch = EPOCH_LINE.match(header[0])
    if not epoch:
        raise ArchiveFormatError(f"{name}: line 1 must be <!--epoch milliseconds-->")
    link = split_title_line(header[1])
    if link is None:
        raise ArchiveFormatError(f"{name}: line 2 must be [title](http(s) URL)")
    title, url = link
    if (usable := usable_link(url)) is None:  # as a feed's item links are checked
        raise ArchiveFormatError(f"{name}: line 2 link {url[:80]!r} is not a valid http(s) URL")
    url, had_userinfo = usable
    if len(url) > MAX_URL_LENGTH:  # as a feed item's link: a megabyte URL was stored as is
        raise ArchiveFormatError(
            f"{name}: line 2 link {url[:40]!r}… is longer than {MAX_URL_LENGTH} characters"
            " (a feed item's link may be no longer)"
        )
    if not SEPARATOR.match(header[2]):
        raise ArchiveFormatError(f"{name}: line 3 must be a ------ separator")
    html = lines[3] if len(lines) > 3 else ""
    if not html.strip():
        raise ArchiveFormatError(f"{name}: no HTML after the separator")
    value = int(epoch.group(1))
    # Ten digits are epoch seconds; the format's thirteen are milliseconds.
    published = from_epoch_ms(value * 1000 if value < 10**11 else value)
    item = FeedItem(
        link=url,
        # Written from a feed's title, as escaped as the feed had it: read as a feed's
        # (before: "AT&amp;amp;T" and "<b>要闻</b>" were stored and mailed as typed).
        title=plain_title(title.strip()),
        published_at=published,
        content_html=html,
    )
    if had_userinfo and notes is not None:
        notes.append(f"{name}: link had a user name or password; removed")
    return item, html


def split_title_line(line: str) -> tuple[str, str] | None:
    """``[title](url)`` as (title, url), or None if the line is not one.

    The URL is http(s), without whitespace or ``)``; the title may contain anything,
    ``](`` included, so the URL starts after the last ``](`` that leaves a valid URL
    (what the former ``^\\[(?P<title>.*)\\]\\((?P<url>https?://[^\\s)]+)\\)$`` matched).
    """
    # Scans from the right, each character looked at a bounded number of times: the
    # regex backtracked quadratically (35 s of CPU for a 200 KB line of "](http://a").
    if not (line.startswith("[") and line.endswith(")")):
        return None
    end = len(line) - 1
    clean_from = end  # line[clean_from:end] holds no whitespace and no ")"
    opening = line.rfind("](", 1, end)
    while opening >= 1:
        start = opening + 2
        if URL_BREAK.search(line, start, clean_from):
            return None  # so does every URL starting further left
        clean_from = start
        for scheme in URL_SCHEMES:
            if line.startswith(scheme, start, end) and end - start > len(scheme):
                return line[1:opening], line[start:end]
        opening = line.rfind("](", 1, opening + 1)
    return None


def read_archive_file(path: Path, max_bytes: int) -> bytes:
    """The bytes of one file of an archive folder, as :func:`read_capped` reads them.

    A symbolic link is followed only to a file inside the folder (its subfolders
    included): a link to ``/etc/passwd`` or to another folder's file was read, and such
    a file in the archive format stored as an article of this source. Every file that
    is not read is one line naming it.

    Raises:
        ArchiveFormatError: the file is empty, over ``max_bytes``, no regular file, a
            link that loops, leads nowhere or leads out of the folder, or cannot be read.
    """
    name = shown_name(path.name)
    try:
        target = Path(os.path.realpath(path, strict=True))
    except OSError as error:
        # EINVAL: a link when looked at, no link when read (replaced meanwhile)
        why = "changed while being read" if error.errno == errno.EINVAL else why_unreadable(error)
        raise ArchiveFormatError(f"{name}: {why}; not read") from error
    if not target.is_relative_to(path.parent.resolve()):
        raise ArchiveFormatError(f"{name}: a symbolic link to a file outside the folder; not read")
    try:
        # The checked target is opened without following a link: a file replaced by a
        # link to /etc/passwd between the check and the open (a sync tool's rename, or
        # an attacker's) was followed, and the outside file read (44 of 20,000 reads
        # while a link was swapped in and out).
        data = read_capped(target, max_bytes, shown=name, follow_symlinks=False)
    except OSError as error:
        why = (
            "replaced by a symbolic link while being read"
            if error.errno == errno.ELOOP
            else why_unreadable(error)
        )
        raise ArchiveFormatError(f"{name}: {why}; not read") from error
    if not data:
        raise ArchiveFormatError(f"{name}: empty file; nothing to load")
    return data


def why_unreadable(error: OSError) -> str:
    """Why a file could not be read, in words (the path is named by the caller)."""
    if error.errno == errno.ELOOP:
        return "a symbolic link that loops"
    if error.errno == errno.ENOENT:
        return "gone, or a symbolic link to nothing"
    return f"cannot be read ({error.strerror or error})".lower()


def read_capped(
    path: Path, max_bytes: int, *, shown: str | None = None, follow_symlinks: bool = True
) -> bytes:
    """The file's bytes, refusing a file over ``max_bytes`` before reading it (and, if
    it grows meanwhile, after reading at most one byte more).

    Args:
        shown: The file's name in errors (default: the name of ``path``).
        follow_symlinks: False: a ``path`` that is a symbolic link is not opened
            (OSError ELOOP).

    Raises:
        ArchiveFormatError: the file is larger than ``max_bytes``, or is no regular file
            (a FIFO, a device, a folder).
        OSError: the file cannot be read.
    """
    name = shown or shown_name(path.name)
    too_big = f"{name}: file larger than {max_bytes} bytes; not read"
    # The path may be a FIFO or a device (archive_files lists them, to name them; or it
    # became one since): O_NONBLOCK keeps open() from waiting for a writer, and the
    # checks run on the descriptor that is then read, not on the path, which could
    # change again. Symlinks are followed unless asked (read_archive_file resolves an
    # archive's and opens the target without following).
    no_follow = 0 if follow_symlinks else os.O_NOFOLLOW
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | no_follow)
    try:
        status = os.fstat(fd)
        if not stat.S_ISREG(status.st_mode):
            raise ArchiveFormatError(f"{name}: not a regular file; not read")
        if status.st_size > max_bytes:
            raise ArchiveFormatError(too_big)
        with open(fd, "rb", closefd=False) as file:
            data = file.read(max_bytes + 1)
    finally:
        os.close(fd)
    if len(data) > max_bytes:
        raise ArchiveFormatError(too_big)
    return data


def shown_name(name: str) -> str:
    """A file name as error messages show it: the bytes of a name that is not UTF-8
    (``b-\\xe9t\\xe9.txt``; Python holds them as lone surrogates, which the database
    driver cannot encode: the fetch log of the file's chunk failed, and the import
    with it, at every run) written as escapes, so the line still names the file; and
    the characters that break a line or turn its text around (``\\n``, ``\\r``,
    U+2028, bidi overrides) escaped too: a file named ``x.txt\\nERROR …`` made a second,
    forged line of every log that named it."""
    readable = name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    return one_line(readable)


def resolved_folder(folder: Path) -> Path:
    """``folder`` made absolute, links resolved (an import names its source after it).

    Raises:
        ArchiveFormatError: a folder on the way cannot be entered, or the name is too
            long (before: an OSError traceback from import-archive).
    """
    try:
        return folder.resolve()
    except OSError as error:
        raise ArchiveFormatError(
            f"{_shown_folder(folder)}: {why_unreadable(error)}; not read"
        ) from None


def _shown_folder(folder: Path) -> str:
    shown = shown_name(str(folder))
    return shown if len(shown) <= MAX_SHOWN_FOLDER else shown[: MAX_SHOWN_FOLDER - 1] + "…"


def archive_files(folder: Path) -> list[Path]:
    """The files of an archive folder in name order (hidden files and READMEs skipped).

    Every name of an archive file is listed, whatever it is: a FIFO, a device, a link
    that loops or leads out of the folder were left out without a word, and the import
    said nothing of them; :func:`read_archive_file` now names each with its reason.
    """
    shown = _shown_folder(folder)
    try:
        if not folder.is_dir():
            raise ArchiveFormatError(f"{shown}: not a folder")
        return sorted(
            p
            for p in folder.iterdir()
            if not p.name.startswith(".")
            and p.suffix.lower() in (".txt", ".html")
            and not p.name.lower().startswith("readme")
        )
    except OSError as error:
        # is_dir() lets a name too long, or a folder on the way we may not enter, out as
        # an OSError: a traceback from import-archive, a crashed poll of an archive source.
        raise ArchiveFormatError(f"{shown}: {why_unreadable(error)}; not read") from None
