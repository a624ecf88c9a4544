"""The seed's archive format: header parsing and clear errors for files that differ."""

from __future__ import annotations

import contextlib
import errno
import os
import threading
from datetime import UTC, datetime
from pathlib import Path

import pytest

from mediamon.ingest.archive import (
    ArchiveFormatError,
    archive_files,
    parse_archive_text,
    read_archive_file,
    read_capped,
    shown_name,
    split_title_line,
    why_unreadable,
)


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
        # links the fetcher and URL canonicalization refuse (before: ValueError out of
        # the import, every file of the folder lost, at every run; or stored as written)
        ("<!--1712090701000-->\n[t](http://example.com:99999/x)\n------\n<p>x</p>", "line 2 link"),
        ("<!--1712090701000-->\n[t](http://a:abc/)\n------\n<p>x</p>", "not a valid http(s) URL"),
        ("<!--1712090701000-->\n[t](http://[zz]/)\n------\n<p>x</p>", "not a valid http(s) URL"),
        ("<!--1712090701000-->\n[t](http://[::1]@-]/p)\n------\n<p>x</p>", "not a valid"),
        ("<!--1712090701000-->\n[t](http://a\x1bb/x)\n------\n<p>x</p>", "not a valid"),
        ("<!--1712090701000-->\n[t](http://../x)\n------\n<p>x</p>", "not a valid"),
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


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("[t](https://x.org/a)", ("t", "https://x.org/a")),
        ("[](http://x)", ("", "http://x")),
        ("[a [b] (c)](http://x/y?z=1#f)", ("a [b] (c)", "http://x/y?z=1#f")),
        # The URL starts after the last "](" that leaves a valid one.
        ("[a](http://x](http://y)", ("a](http://x", "http://y")),
        ("[a](http://x](ftp)", ("a", "http://x](ftp")),
        ("[a](http://x](http://)", ("a", "http://x](http://")),
        ("[a](http://x y)", None),
        ("[a](http://x)y)", None),
        ("[a](http://)", None),
        ("[a](ftp://x)", None),
        ("[a](http://x", None),
        ("a](http://x)", None),
    ],
)
def test_title_line_forms(line: str, expected: tuple[str, str] | None) -> None:
    assert split_title_line(line) == expected


def test_title_line_of_many_link_openings_is_parsed_in_linear_time() -> None:
    # 200 KB: the former regex spent about 35 s of CPU here, so a backtracking
    # regression shows as a very slow test.
    openings = "](http://a" * 20_000
    with pytest.raises(ArchiveFormatError, match=r"^hostile\.txt: line 2 must be"):
        parse_archive_text(f"<!--1712090701000-->\n[{openings}\n------\n<p>x</p>", "hostile.txt")
    with pytest.raises(ArchiveFormatError, match="line 2"):
        parse_archive_text(f"<!--1712090701000-->\n[{openings} )\n------\n<p>x</p>", "h.txt")
    item, _ = parse_archive_text(f"<!--1712090701000-->\n[{openings})\n------\n<p>x</p>", "h.txt")
    assert item.link == "http://a"
    assert item.title == "](http://a" * 19_999


def test_a_fifo_is_refused_without_waiting_for_a_writer(tmp_path: Path) -> None:
    # archive_files saw a regular file; by the time it is read the name is a FIFO,
    # whose open() would block until some writer came.
    fifo = tmp_path / "item.txt"
    os.mkfifo(fifo)
    outcome: list[object] = []

    def read() -> None:
        try:
            outcome.append(read_capped(fifo, 1000))
        except Exception as error:  # noqa: BLE001 - handed to the test thread
            outcome.append(error)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(timeout=10)
    if reader.is_alive():  # unblock the reader so the suite can end
        with contextlib.suppress(OSError):
            os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        pytest.fail("read_capped blocked on a FIFO")
    (error,) = outcome
    assert isinstance(error, ArchiveFormatError)
    assert str(error) == "item.txt: not a regular file; not read"


def test_a_folder_is_refused_as_not_a_regular_file(tmp_path: Path) -> None:
    (tmp_path / "item.txt").mkdir()
    with pytest.raises(ArchiveFormatError, match=r"^item\.txt: not a regular file"):
        read_capped(tmp_path / "item.txt", 1000)


def test_symlinks_to_regular_files_are_still_read(tmp_path: Path) -> None:
    (tmp_path / "target.txt").write_bytes(b"<p>x</p>")
    (tmp_path / "item.txt").symlink_to(tmp_path / "target.txt")
    assert archive_files(tmp_path) == [tmp_path / "item.txt", tmp_path / "target.txt"]
    assert read_capped(tmp_path / "item.txt", 1000) == b"<p>x</p>"


def test_files_over_the_cap_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "item.txt"
    path.write_bytes(b"x" * 1001)
    with pytest.raises(ArchiveFormatError, match="file larger than 1000 bytes; not read"):
        read_capped(path, 1000)
    path.write_bytes(b"x" * 1000)
    assert read_capped(path, 1000) == b"x" * 1000


def test_a_user_name_and_password_are_removed_from_the_link_with_a_note() -> None:
    notes: list[str] = []
    item, _ = parse_archive_text(
        "<!--1712090701000-->\n[t](https://www.example.com:pw@evil.example/p)\n------\n<p>x</p>",
        "a.txt",
        notes,
    )
    assert item.link == "https://evil.example/p"
    assert notes == ["a.txt: link had a user name or password; removed"]


@pytest.mark.parametrize(
    ("written", "title"),
    [
        ("AT&amp;amp;T 财报", "AT&amp;T 财报"),  # escaped once too often, as feeds do
        ("&lt;b&gt;要闻&lt;/b&gt; 台湾", "要闻 台湾"),
        ("<b>要闻</b> 台湾", "要闻 台湾"),
        ("台湾 &amp; 出口管制", "台湾 & 出口管制"),
        ("1 < 2 and 3 > 2", "1 < 2 and 3 > 2"),  # no tag: kept
        ("  ", None),
    ],
)
def test_an_archive_title_is_read_as_a_feeds(written: str, title: str | None) -> None:
    item, _ = parse_archive_text(
        f"<!--1712090701000-->\n[{written}](https://x.org/a)\n------\n<p>x</p>", "a.txt"
    )
    assert item.title == title


@pytest.mark.parametrize(
    ("name", "shown"),
    [
        ("a.txt\nERROR forged.txt", "a.txt\\nERROR forged.txt"),
        ("a\r\x1b[2K.txt", "a\\r\\x1b[2K.txt"),
        ("a\u2028b\x85.txt", "a\\u2028b\\x85.txt"),  # line breaks to str.splitlines
        ("txt.\u202eevil.html", "txt.\\u202eevil.html"),  # a bidi override turns it around
        ("新闻 2024.txt", "新闻 2024.txt"),  # printable text stays as written
    ],
)
def test_file_names_are_shown_on_one_line_as_they_read(name: str, shown: str) -> None:
    # A file named "a.txt\nERROR forged.txt" made its error two lines of the log, the
    # second forged.
    assert shown_name(name) == shown


def test_a_file_that_cannot_be_read_is_named_with_the_reason(tmp_path: Path) -> None:
    # As root (the test machine) no file is unreadable; the reason is the errno's.
    assert why_unreadable(OSError(errno.EACCES, "Permission denied")) == (
        "cannot be read (permission denied)"
    )
    (tmp_path / "a.txt").symlink_to(tmp_path / "b.txt")
    (tmp_path / "b.txt").symlink_to(tmp_path / "a.txt")
    with pytest.raises(ArchiveFormatError, match=r"^a\.txt: a symbolic link that loops; not"):
        read_archive_file(tmp_path / "a.txt", 1000)
    assert archive_files(tmp_path) == [tmp_path / "a.txt", tmp_path / "b.txt"]
