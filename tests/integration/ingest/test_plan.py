"""Task ``plan_sources`` checks the configuration files before any source is fetched."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from pathlib import Path

import pytest

from mediamon import service
from mediamon.settings import Settings

NOW = datetime(2024, 4, 2, 21, tzinfo=UTC)


def settings_with(tmp_path: Path, database_url: str, **files: str) -> Settings:
    paths: dict[str, Path] = {}
    for name, text in files.items():
        paths[name] = tmp_path / f"{name}.yaml"
        paths[name].write_text(text, "utf-8")
    sources = tmp_path / "sources.yaml"
    sources.write_text("sources:\n  - {name: wire, url: 'https://wire.example/feed'}\n", "utf-8")
    return Settings(database_url=database_url, sources_path=sources, var_dir=tmp_path, **paths)


def test_a_bad_extraction_file_fails_planning_at_once(tmp_path: Path, database_url: str) -> None:
    settings = settings_with(
        tmp_path,
        database_url,
        extraction_path="sites:\n  - domain: a.example\n    drop_lines: ['(']\n",
    )
    with pytest.raises(ValueError, match=r"extraction_path\.yaml: site a\.example: bad regular"):
        service.plan_sources(settings, NOW)


def test_a_bad_topics_file_is_logged_and_ingest_still_planned(
    tmp_path: Path, database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    settings = settings_with(tmp_path, database_url, topics_path="topics: [\n")
    with caplog.at_level(logging.ERROR, logger="mediamon.service"):
        assert service.plan_sources(settings, NOW, force=True) == ["wire"]
    assert "topics_path.yaml" in caplog.text and "stored topic definitions" in caplog.text
