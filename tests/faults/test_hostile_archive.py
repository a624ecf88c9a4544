"""Hostile archive folders, second round: a file swapped for a symbolic link while the
import reads it. Names the docs/faults.md row it proves."""

from __future__ import annotations

import collections
import os
import threading
from pathlib import Path

from mediamon.ingest.archive import ArchiveFormatError, read_archive_file


def test_a_file_replaced_by_a_link_out_while_read_is_never_followed(tmp_path: Path) -> None:
    """The link's target was checked (inside the folder), then opened by path,
    following links: a file replaced meanwhile by a link to a file outside the folder
    (``/etc/passwd``, another source's item) was read. With a link swapped in and out
    as fast as a thread can, 44 of 20,000 reads returned the outside file. The checked
    target is now opened without following a link: it is read, or refused in one line."""
    folder = tmp_path / "archive"
    folder.mkdir()
    outside = tmp_path / "secret.txt"
    outside.write_bytes(b"outside")
    item = folder / "item.txt"
    item.write_bytes(b"inside")
    stop = threading.Event()

    def swap() -> None:
        file, link = folder / ".file", folder / ".link"
        while not stop.is_set():
            file.write_bytes(b"inside")
            os.replace(file, item)
            link.unlink(missing_ok=True)
            os.symlink(outside, link)
            os.replace(link, item)

    swapper = threading.Thread(target=swap, daemon=True)
    swapper.start()
    seen: collections.Counter[str] = collections.Counter()
    try:
        for _ in range(20_000):
            try:
                seen[read_archive_file(item, 1000).decode()] += 1
            except ArchiveFormatError as error:
                seen[str(error)] += 1
    finally:
        stop.set()
        swapper.join()
    assert "outside" not in seen, seen
    assert seen["inside"] > 0
    assert seen["item.txt: a symbolic link to a file outside the folder; not read"] > 0
    assert set(seen) <= {
        "inside",
        "item.txt: a symbolic link to a file outside the folder; not read",
        "item.txt: replaced by a symbolic link while being read; not read",
        "item.txt: changed while being read; not read",
        "item.txt: gone, or a symbolic link to nothing; not read",
    }, seen
