"""Freed memory goes back to the system now and then, not after every page."""

from __future__ import annotations

import pytest

from mediamon.ingest import memory


def test_freed_memory_is_returned_after_every_sixteenth_page(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    trims: list[int] = []
    monkeypatch.setattr(memory, "_pages_since_trim", 0)
    monkeypatch.setattr(memory, "return_freed", lambda: trims.append(1))
    for _ in range(memory.TRIM_EVERY_PAGES * 3 - 1):
        memory.page_done()
    assert len(trims) == 2
    memory.page_done()
    assert len(trims) == 3
