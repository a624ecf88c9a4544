"""py3langid's language model, read from a decompressed copy.

py3langid ships its model compressed with xz and decompresses it in every process that
asks: 0.6 s of CPU, which an ingest task of 200 articles (about 8 s of extraction) paid
on every run. The decompressed arrays are kept in ``<var>/cache`` (written once,
atomically, named after the packaged file's size and time, so an upgrade writes a new
one) and read from there in a third of the time. Without a writable cache folder, or
with a damaged copy, py3langid's own loader is used: slower, never wrong.
"""

from __future__ import annotations

import logging
import lzma
import os
import shutil
import tempfile
from array import array
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
from py3langid.langid import MODEL_DIR, MODEL_FILE, LanguageIdentifier

from mediamon.settings import Settings

logger = logging.getLogger(__name__)

_PACKAGED = MODEL_DIR / MODEL_FILE
# numpy's unsigned integer sizes -> the stdlib array type py3langid's tokenizer indexes
_TYPECODE = {2: "H", 4: "I", 8: "L"}


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
    """Where the decompressed copy of the packaged model lives in ``folder``."""
    packaged = _PACKAGED.stat()
    return folder / f"py3langid-model-{packaged.st_size}-{int(packaged.st_mtime)}.npz"


def _write_decompressed(target: Path) -> None:
    """Decompress the packaged model to ``target``, atomically (processes may race)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=target.parent, suffix=".part")
    try:
        with os.fdopen(handle, "wb") as out, lzma.open(_PACKAGED) as packaged:
            shutil.copyfileobj(packaged, out, length=1 << 20)
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _load(path: Path) -> LanguageIdentifier:
    """The identifier from a decompressed model, as py3langid's own loader builds it
    (never unpickles: the file is plain arrays)."""
    with np.load(path, allow_pickle=False) as data:
        return LanguageIdentifier(
            np.asarray(data["ptc"]),
            np.asarray(data["pc"]),
            data["classes"].tolist(),
            _stdlib_array(data["nextmove"]),
            data["out_feat"].tolist(),
            tk_row=_stdlib_array(data["nextmove_row"]),
        )


def _stdlib_array(values: Any) -> array[int]:
    out = array(_TYPECODE[values.dtype.itemsize])
    out.frombytes(np.ascontiguousarray(values).tobytes())
    return out
