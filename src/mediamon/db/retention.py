"""Retention: what mediamon and Airflow keep, and for how long.

At 1,000 sources Airflow's metadata grows ~0.3 GB a day and task logs ~1 GB; ``fetch_log``
gains a row per fetch. The ``mediamon_maintenance`` DAG prunes all three daily:
Airflow's metadata with ``airflow db clean`` (the command Airflow provides; run in a
subprocess given the metadata database explicitly, since Airflow 3 keeps tasks out of
it), task log files by age, and ``fetch_log`` rows by age, in batches.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import sqlalchemy as sa

from mediamon import db
from mediamon.bi import rollup

logger = logging.getLogger(__name__)

FETCH_LOG_BATCH = 10_000  # rows per delete: short transactions, no long lock on the table


@dataclass(frozen=True)
class PrunedLogs:
    files: int
    bytes: int
    folders: int

    def as_dict(self) -> dict[str, int]:
        return {"files": self.files, "bytes": self.bytes, "folders": self.folders}


def prune_log_files(folder: Path, before: datetime) -> PrunedLogs:
    """Delete log files under ``folder`` last written before ``before``, then the folders
    left empty (as the official Airflow image's ``clean-logs`` does). Symlinks are never
    followed."""
    cutoff = before.timestamp()
    files = size = folders = 0
    if not folder.is_dir():
        return PrunedLogs(0, 0, 0)
    for root, dirnames, filenames in os.walk(folder, topdown=False):
        for name in filenames:
            path = Path(root) / name
            try:
                status = path.lstat()
                if status.st_mtime < cutoff and not path.is_symlink():
                    path.unlink()
                    files, size = files + 1, size + status.st_size
            except OSError as error:  # a file written or removed meanwhile
                logger.warning("log file %s not pruned: %s", path, error)
        for name in dirnames:
            path = Path(root) / name
            if not path.is_symlink() and not any(path.iterdir()):
                path.rmdir()
                folders += 1
    logger.info("pruned %d log files (%d bytes), %d folders under %s", files, size, folders, folder)
    return PrunedLogs(files, size, folders)


def prune_fetch_log(engine: sa.Engine, before: datetime, batch: int = FETCH_LOG_BATCH) -> int:
    """Delete ``fetch_log`` rows fetched before ``before``, ``batch`` at a time; return
    how many. Articles are kept: only the record of each fetch ages out."""
    deleted = 0
    statement = sa.text(
        "delete from fetch_log where fetch_id in (select fetch_id from fetch_log"
        " where fetched_at < :before limit :batch)"
    )
    while True:
        with engine.begin() as conn:
            count = conn.execute(statement, {"before": before, "batch": batch}).rowcount
        deleted += count
        if count < batch:
            break
    logger.info("pruned %d fetch_log rows before %s", deleted, before.isoformat())
    if deleted:
        rollup.refresh(engine)  # the pruned days' fetch counts in the BI roll-up
    return deleted


def clean_airflow_metadata(
    metadata_url: str, before: datetime, environ: Mapping[str, str] | None = None
) -> str:
    """Run ``airflow db clean`` on the metadata database at ``metadata_url`` for rows
    older than ``before`` (no archive tables kept); return its output.

    Raises:
        RuntimeError: the command failed; the message holds the end of its output.
    """
    env = dict(os.environ if environ is None else environ)
    env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = db.normalize_url(metadata_url)
    env.pop("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_CMD", None)
    env.pop("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_SECRET", None)
    command = [
        str(Path(sys.executable).parent / "airflow"),
        *("db", "clean", "--clean-before-timestamp", before.isoformat()),
        *("--skip-archive", "--yes", "--error-on-cleanup-failure"),
    ]
    result = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    output = result.stdout + result.stderr
    if result.returncode:
        raise RuntimeError(f"airflow db clean exited {result.returncode}: {output[-2000:]}")
    return output
