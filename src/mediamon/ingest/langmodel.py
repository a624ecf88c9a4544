"""py3langid's language model, read from a decompressed copy.

py3langid ships its model compressed with xz and decompresses it in every process that
asks: 0.6 s of CPU, which an ingest task of 200 articles (about 6 s of extraction) paid
on every run. The decompressed arrays are kept in ``<var>/cache`` as one ``.npy`` file
each (written once, atomically, in a folder named after the packaged file's size and
time, so an upgrade writes a new one) and memory-mapped from there: loading costs a few
milliseconds instead of the 0.1 s of reading a copy, the pages the classifier touches
are read on demand, and every process on the machine shares them through the page
cache. Without a writable cache folder, or with a damaged copy, py3langid's own loader
is used: slower, never wrong.
"""

from __future__ import annotations

import logging
import lzma
import os
import shutil
import tempfile
from functools import cache
from pathlib import Path
from typing import Any, Literal

import numpy as np
from py3langid.langid import MODEL_DIR, MODEL_FILE, LanguageIdentifier

from mediamon.settings import Settings

logger = logging.getLogger(__name__)

_PACKAGED = MODEL_DIR / MODEL_FILE
# numpy's unsigned integer sizes -> the memoryview format of the same size
_TYPECODE: dict[int, Literal["H", "I", "L"]] = {2: "H", 4: "I", 8: "L"}


@cache
def identifier() -> LanguageIdentifier:
    """The process's language identifier (loaded once; forked workers inherit it)."""
    try:
        cached = cache_path(Settings.from_env().var_dir / "cache")
        if not cached.exists():
            _write_decompressed(cached)
        return _load(cached)
    except (OSError, ValueError, KeyError, EOFError) as error:
        logger.warning("language model: no usable decompressed copy (%s); decompressing", error)
        return LanguageIdentifier.from_model_file(_PACKAGED)


def cache_path(folder: Path) -> Path:
    """The folder of the decompressed copy of the packaged model in ``folder``."""
    packaged = _PACKAGED.stat()
    return folder / f"py3langid-model-{packaged.st_size}-{int(packaged.st_mtime)}"


_ARRAYS = ("ptc", "pc", "classes", "nextmove", "nextmove_row", "out_feat")


def _write_decompressed(target: Path) -> None:
    """Decompress the packaged model into ``target``, one ``.npy`` per array, atomically:
    written in a folder of its own and renamed (processes may race; the first wins)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=target.parent, suffix=".part"))
    try:
        with lzma.open(_PACKAGED) as packaged, np.load(packaged, allow_pickle=False) as model:
            for name in _ARRAYS:
                np.save(staging / f"{name}.npy", model[name], allow_pickle=False)
        try:
            os.rename(staging, target)
        except OSError:
            if not target.is_dir():
                raise  # not a lost race: a real failure
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    for stale in target.parent.glob("py3langid-model-*.npz"):  # the copies of 2026-11
        stale.unlink(missing_ok=True)


def _load(folder: Path) -> LanguageIdentifier:
    """The identifier from a decompressed model, as py3langid's own loader builds it
    (never unpickles: the files are plain arrays). The two large tables stay mapped:
    the scores' table is indexed by numpy, the tokenizer's state table through a
    memoryview, which indexes to plain ints as the stdlib array py3langid builds does."""

    def array_of(name: str, mmap: bool = False) -> Any:
        return np.load(folder / f"{name}.npy", mmap_mode="r" if mmap else None, allow_pickle=False)

    return LanguageIdentifier(
        array_of("ptc", mmap=True),
        array_of("pc"),
        array_of("classes").tolist(),
        _int_view(array_of("nextmove", mmap=True)),
        array_of("out_feat").tolist(),
        tk_row=_int_view(array_of("nextmove_row")),
    )


def _int_view(values: Any) -> memoryview[int]:
    """``values`` (unsigned integers) as a memoryview that indexes to Python ints."""
    octets = memoryview(np.ascontiguousarray(values).data).cast("B")
    return octets.cast(_TYPECODE[values.dtype.itemsize])
