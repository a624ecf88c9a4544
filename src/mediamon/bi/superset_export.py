"""The Superset dashboard kept in the repository (``bi/superset``, Superset's own export
layout: metadata.yaml, databases/, datasets/, charts/, dashboards/) and the import zip
built from it: ``python -m mediamon.bi.superset_export [FOLDER] [ZIP]`` (``make
superset-zip``). Superset itself is never imported: it needs SQLAlchemy < 2."""

from __future__ import annotations

import logging
import sys
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from mediamon.config import PROJECT_ROOT

logger = logging.getLogger(__name__)

EXPORT_DIR = PROJECT_ROOT / "bi" / "superset"
DEFAULT_ZIP = PROJECT_ROOT / "var" / "superset" / "mediamon_dashboard.zip"
# Superset reads an export zip as one folder of YAML files
ZIP_ROOT = "mediamon_dashboard"


def load(folder: Path, kind: str) -> list[dict[str, Any]]:
    """Every YAML file of one kind (``databases``, ``datasets``, ``charts``,
    ``dashboards``), parsed, in name order."""
    return [
        yaml.safe_load(path.read_text(encoding="utf-8"))
        for path in sorted((folder / kind).rglob("*.yaml"))
    ]


def dataset_source(dataset: dict[str, Any]) -> str:
    """The SQL a dataset reads: its own query (virtual) or its table (physical)."""
    if dataset.get("sql"):
        return f"({dataset['sql']})"
    return f'"{dataset["schema"]}"."{dataset["table_name"]}"'


def build_zip(folder: Path = EXPORT_DIR, destination: Path = DEFAULT_ZIP) -> Path:
    """Zip ``folder`` the way Superset exports: every file under one top folder."""
    if not (folder / "metadata.yaml").is_file():
        raise ValueError(f"{folder}: no metadata.yaml; not a Superset export folder")
    destination.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(destination, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(folder.rglob("*.yaml")):
            archive.write(path, f"{ZIP_ROOT}/{path.relative_to(folder).as_posix()}")
    return destination


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    folder = Path(args[0]) if args else EXPORT_DIR
    destination = Path(args[1]) if len(args) > 1 else DEFAULT_ZIP
    print(build_zip(folder, destination))
    return 0


if __name__ == "__main__":
    sys.exit(main())
