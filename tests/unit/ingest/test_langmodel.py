"""The language model read from its decompressed copy answers as py3langid's own."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import py3langid
import pytest

from mediamon.ingest import langmodel

SAMPLES = (
    "The central bank raised its interest rate for the third time this year.",
    "Le gouvernement a présenté mardi son projet de budget pour l'année prochaine.",
    "Die Regierung hat am Dienstag ihren Haushaltsentwurf für das kommende Jahr vorgelegt.",
    "El gobierno presentó el martes su proyecto de presupuesto para el próximo año.",
    "Правительство во вторник представило проект бюджета на следующий год.",
)


@pytest.fixture()
def var_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setenv("MEDIAMON_VAR_DIR", str(tmp_path))
    langmodel.identifier.cache_clear()
    yield tmp_path
    langmodel.identifier.cache_clear()


def test_the_decompressed_copy_is_written_once_and_answers_as_py3langid(var_dir: Path) -> None:
    cached = langmodel.cache_path(var_dir / "cache")
    assert not cached.exists()
    first = langmodel.identifier()
    assert cached.exists()
    written = cached.stat().st_mtime_ns
    for sample in SAMPLES:
        assert first.classify(sample) == py3langid.classify(sample)

    langmodel.identifier.cache_clear()
    again = langmodel.identifier()  # read from the copy, not written again
    assert cached.stat().st_mtime_ns == written
    assert [again.classify(s)[0] for s in SAMPLES] == ["en", "fr", "de", "es", "ru"]
    assert not list((var_dir / "cache").glob("*.part"))


def test_a_damaged_copy_falls_back_to_the_packaged_model(
    var_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    cached = langmodel.cache_path(var_dir / "cache")
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"not a model")
    with caplog.at_level(logging.WARNING, logger="mediamon.ingest.langmodel"):
        identifier = langmodel.identifier()
    assert identifier.classify(SAMPLES[1])[0] == "fr"
    assert "no usable decompressed copy" in caplog.text


def test_the_copy_is_mapped_not_read_and_replaces_the_old_single_file_copy(
    var_dir: Path,
) -> None:
    cache = var_dir / "cache"
    cache.mkdir()
    old_copy = cache / "py3langid-model-4586720-1795998863.npz"  # as written before 2026-12
    old_copy.write_bytes(b"old")
    identifier = langmodel.identifier()
    assert not old_copy.exists()
    # the two large tables stay on disk, shared by every process through the page cache
    assert isinstance(identifier.nb_ptc, np.memmap)
    assert isinstance(identifier.tk_nextmove, memoryview)
    assert identifier.tk_nextmove.obj is not None
    assert identifier.classify(SAMPLES[0])[0] == "en"
