"""``make superset-check``: import the Superset dashboard into a real Apache Superset and
count what it created. Superset pins SQLAlchemy < 2, so it gets a virtualenv of its own
(``var/superset-venv``, made once) and never shares mediamon's; its metadata lives in a
scratch PostgreSQL database dropped afterwards. Nothing here imports Superset."""

from __future__ import annotations

import logging
import os
import secrets
import subprocess
import sys
import tempfile
from pathlib import Path

import sqlalchemy as sa

from mediamon import db
from mediamon.bi import superset_export
from mediamon.settings import Settings

logger = logging.getLogger(__name__)

# Superset 6.1's wheel misses some of what its importer needs; flask-caching 2.5 breaks it.
SUPERSET_PACKAGES = (
    "apache-superset==6.1.0",
    "flask-caching<2.5",
    "rich",
    "cachetools",
    "psycopg2-binary",
)


def superset_venv(var_dir: Path) -> Path:
    """The ``superset`` command of Superset's own virtualenv, installed on first use."""
    venv = var_dir / "superset-venv"
    command = venv / "bin" / "superset"
    if not command.exists():
        print(f"installing Superset into {venv} (once; a few minutes) ...", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet"]
        subprocess.run([*pip, "--upgrade", "pip"], check=True)
        subprocess.run([*pip, *SUPERSET_PACKAGES], check=True)
    return command


def check(settings: Settings) -> dict[str, int]:
    """Import the zip into a fresh Superset; return how many objects of each kind it made.

    Raises:
        RuntimeError: a Superset command failed, or the import made fewer objects than the
            export holds.
    """
    command = superset_venv(settings.var_dir)
    admin_url = db.scratch_admin_url("MEDIAMON_TEST_DATABASE_URL", settings.var_dir / "bench")
    folder = superset_export.EXPORT_DIR
    with (
        db.scratch_database(admin_url, "superset_meta") as metadata_url,
        tempfile.TemporaryDirectory() as work,
    ):
        config = Path(work) / "superset_config.py"
        secret = secrets.token_urlsafe(32)
        psycopg2_url = sa.make_url(metadata_url).set(drivername="postgresql+psycopg2")
        config.write_text(
            f"SQLALCHEMY_DATABASE_URI = {psycopg2_url.render_as_string(False)!r}\n"
            f"SECRET_KEY = {secret!r}\n",
            encoding="utf-8",
        )
        env = {
            **os.environ,
            "SUPERSET_CONFIG_PATH": str(config),
            "SUPERSET_SECRET_KEY": secret,
            "FLASK_APP": "superset",
        }
        archive = superset_export.build_zip(folder, Path(work) / superset_export.ZIP_NAME)
        steps = [
            ["db", "upgrade"],
            ["fab", "create-admin", "--username", "admin", "--firstname", "mediamon",
             "--lastname", "check", "--email", "admin@example.invalid",
             "--password", secrets.token_urlsafe(16)],
            ["init"],
            ["import-dashboards", "-p", str(archive), "-u", "admin"],
        ]  # fmt: skip
        for step in steps:
            print(f"superset {step[0]} {step[1] if len(step) > 1 else ''} ...", flush=True)
            done = subprocess.run([str(command), *step], env=env, capture_output=True, text=True)
            if done.returncode != 0:
                raise RuntimeError(f"superset {' '.join(step[:2])} failed:\n{done.stderr[-3000:]}")
        engine = db.make_engine(metadata_url)
        try:
            with engine.connect() as conn:
                counts = {
                    kind: int(conn.execute(sa.text(f"select count(*) from {table}")).scalar_one())
                    for kind, table in (
                        ("databases", "dbs"),
                        ("datasets", "tables"),
                        ("charts", "slices"),
                        ("dashboards", "dashboards"),
                    )
                }
        finally:
            engine.dispose()
    expected = {kind: len(superset_export.load(folder, kind)) for kind in counts}
    if counts != expected:
        raise RuntimeError(f"Superset imported {counts}, the export holds {expected}")
    return counts


def main() -> int:
    counts = check(Settings.from_env())
    print("Superset imported " + ", ".join(f"{n} {kind}" for kind, n in counts.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
