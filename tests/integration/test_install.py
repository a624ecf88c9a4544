"""``pip install .`` (not editable) gives a working ``mediamon`` outside the checkout:
SQL, default configuration and demo data come from the installed package."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from mediamon import db
from mediamon.settings import DEMO_DIR
from tests.support import REPO_ROOT


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh virtualenv holding mediamon built from the checkout as a wheel. Its
    dependencies are the project virtualenv's (a path line, not a site directory, so the
    project's editable install is not seen): the wheel is what is tested, not PyPI."""
    venv = tmp_path_factory.mktemp("install") / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    site = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    (Path(site) / "project_dependencies.pth").write_text(
        sysconfig.get_paths()["purelib"] + "\n", "utf-8"
    )
    build = tmp_path_factory.mktemp("source")
    shutil.copytree(
        REPO_ROOT,
        build / "mediamon",
        symlinks=True,
        ignore=shutil.ignore_patterns(".venv", "var", "build", "*.egg-info", ".git", "__pycache__"),
    )
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet",
         "--no-deps", str(build / "mediamon")],
        check=True,
    )  # fmt: skip
    return venv


@pytest.fixture()
def scratch_url(tmp_path: Path) -> Iterator[str]:
    admin_url = db.scratch_admin_url("MEDIAMON_TEST_DATABASE_URL", tmp_path / "pg")
    with db.scratch_database(admin_url, "mediamon_install") as url:
        yield url
    db.stop_embedded(tmp_path / "pg")


def test_plain_install_runs_outside_the_checkout(
    installed: Path, scratch_url: str, tmp_path: Path
) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    archive = elsewhere / "seed-archive"
    shutil.copytree(DEMO_DIR / "archive", archive)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MEDIAMON_", "PYTHON"))}
    env["MEDIAMON_DATABASE_URL"] = scratch_url

    def mediamon(*args: str) -> str:
        result = subprocess.run(
            [str(installed / "bin" / "mediamon"), *args],
            cwd=elsewhere,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 0, result.stderr
        return result.stdout

    where = subprocess.run(
        [installed / "bin" / "python", "-c", "import mediamon; print(mediamon.__file__)"],
        cwd=elsewhere, env=env, capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    assert where.startswith(str(installed)), where  # the wheel, not the checkout

    assert mediamon("db", "upgrade").startswith("applied: 0001_core_tables")
    assert mediamon("db", "upgrade").strip() == "schema is up to date"
    imported = json.loads(mediamon("import-archive", str(archive)))
    assert imported["new"] == 1 and imported["failed"] == 0
    dry = json.loads(mediamon("alerts", "run", "--dry-run"))
    assert dry["dry_run"] is True and dry["topics_error"] is None
    assert {w["topic"] for w in dry["windows"]}  # the packaged default topics were read

    engine = db.make_engine(scratch_url)
    with engine.connect() as conn:
        assert conn.execute(sa.text("select count(*) from articles")).scalar_one() == 1
        assert conn.execute(sa.text("select count(*) from alerts")).scalar_one() == 0
    engine.dispose()
