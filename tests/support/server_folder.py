"""A folder for an embedded PostgreSQL (pgserver) outside pytest's temporary folders.

Run as root, pgserver runs the server as user ``pgserver`` and opens the folder's
parents to it; but every pytest session on the machine resets /tmp/pytest-of-root to
mode 0700, which locks that user out mid-test (initdb's "could not open file
…/global/pg_control: Permission denied", or a restart that never comes back)."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from mediamon import db


@contextmanager
def server_folder(prefix: str = "mediamon-pg-") -> Iterator[Path]:
    """A new folder in the system's temporary directory; on leaving, any embedded server
    mediamon started in it is stopped and the folder removed."""
    folder = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield folder
    finally:
        db.stop_embedded(folder)
        shutil.rmtree(folder, ignore_errors=True)
