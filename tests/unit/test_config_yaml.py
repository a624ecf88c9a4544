"""mediamon.config_yaml.read_config_bytes: only a regular file of bounded size is read."""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

import pytest

from mediamon.config_yaml import MAX_CONFIG_BYTES, UnusableConfigFile, read_config_bytes


def test_only_a_regular_file_of_bounded_size_is_read(tmp_path: Path) -> None:
    fine = tmp_path / "sources.yaml"
    fine.write_text("sources: []\n", "utf-8")
    assert read_config_bytes(fine) == b"sources: []\n"
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    huge = tmp_path / "huge.yaml"
    with huge.open("wb") as sparse:  # 2 GB without writing them
        sparse.truncate(2 * 1024**3)
    started = time.monotonic()
    for path, problem in [
        (fifo, "not a regular file (a FIFO, device or socket)"),  # before: waited for ever
        (Path("/dev/zero"), "not a regular file (a FIFO, device or socket)"),
        (tmp_path, "not a regular file (a folder)"),
        (huge, f"larger than {MAX_CONFIG_BYTES} bytes; not read"),
    ]:
        with pytest.raises(UnusableConfigFile, match=re.escape(problem)):
            read_config_bytes(path)
    assert time.monotonic() - started < 2
    with pytest.raises(FileNotFoundError):
        read_config_bytes(tmp_path / "missing.yaml")
