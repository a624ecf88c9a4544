"""The Superset dashboard kept in the repository (``src/mediamon/bi/superset``, in
Superset's own export layout: metadata.yaml, databases/, datasets/, charts/, dashboards/)
and the import zip built from it: ``python -m mediamon.bi.superset_export [FOLDER] [ZIP]`` (``make
superset-zip``). Superset itself is never imported: it needs SQLAlchemy < 2.

The repository's database URL has no password. ``MEDIAMON_SUPERSET_DB_URL`` (the URL
``mediamon db bi-user superset`` printed) goes into the zip only, so that Superset's
``import-dashboards`` needs no further step; without it, give the password in Superset
(edit the database "mediamon") after the import."""

from __future__ import annotations

import logging
import sys
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from mediamon.settings import PACKAGE_DIR, Settings

logger = logging.getLogger(__name__)

# Package data, so an installed mediamon can build the zip too.
EXPORT_DIR = PACKAGE_DIR / "bi" / "superset"
ZIP_NAME = "mediamon_dashboard.zip"
# Superset reads an export zip as one folder of YAML files
ZIP_ROOT = "mediamon_dashboard"


def load(folder: Path, kind: str) -> list[dict[str, Any]]:
    """Every YAML file of one kind (``databases``, ``datasets``, ``charts``,
    ``dashboards``), parsed, in name order."""
    return [
        yaml.safe_load(path.read_text(encoding="utf-8"))
        for path in sorted((folder / kind).rglob("*.yaml"))
    ]


def build_zip(folder: Path, destination: Path, database_url: str | None = None) -> Path:
    """Zip ``folder`` the way Superset exports: every file under one top folder; with
    ``database_url``, the database's URL is replaced by it in the zip."""
    if not (folder / "metadata.yaml").is_file():
        raise ValueError(f"{folder}: no metadata.yaml; not a Superset export folder")
    destination.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(destination, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(folder.rglob("*.yaml")):
            name = f"{ZIP_ROOT}/{path.relative_to(folder).as_posix()}"
            if database_url and path.parent.name == "databases":
                database = yaml.safe_load(path.read_text(encoding="utf-8"))
                database["sqlalchemy_uri"] = database_url
                text = yaml.safe_dump(database, allow_unicode=True, sort_keys=False)
                archive.writestr(name, text)
            else:
                archive.write(path, name)
    return destination


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    folder = Path(args[0]) if args else EXPORT_DIR
    import os

    settings = Settings.from_env()
    default = settings.var_dir / "superset" / ZIP_NAME
    destination = Path(args[1]) if len(args) > 1 else default
    database_url = os.environ.get("MEDIAMON_SUPERSET_DB_URL") or None
    print(build_zip(folder, destination, database_url))
    return 0


if __name__ == "__main__":
    sys.exit(main())
