"""The sources file: valid definitions load, invalid ones name file, source and field."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from mediamon.ingest.sources import SourceConfigError, load_sources
from mediamon.settings import DEFAULT_CONFIG_DIR


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "sources.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_default_config_is_valid() -> None:
    sources = load_sources(DEFAULT_CONFIG_DIR / "sources.yaml")
    assert len(sources) >= 3
    assert all(s.kind == "feed" and s.location.startswith("https://") for s in sources)
    assert {s.language for s in sources} == {"zh"}


def test_feed_and_archive(tmp_path: Path) -> None:
    (tmp_path / "items").mkdir()
    path = write(
        tmp_path,
        "sources:\n"
        "  - {name: rfi, url: 'https://www.rfi.fr/cn/rss', language: zh-CN, poll_interval: 30m}\n"
        "  - {name: old, kind: archive, path: items}\n"
        "  - {name: paused, url: 'https://example.com/f', enabled: false}\n",
    )
    rfi, old = load_sources(path)
    assert rfi.poll_interval == timedelta(minutes=30)
    assert rfi.language == "zh-cn"
    assert old.location == str(tmp_path / "items")


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ("{name: a, url: 'ftp://x/f'}", "source 'a'.url"),
        ("{name: a, url: 'https://x/f', poll_interval: soon}", "source 'a'.poll_interval"),
        ("{name: a, url: 'https://x/f', colour: red}", "unknown field(s) colour"),
        ("{name: 'Bad Name', url: 'https://x/f'}", "sources[0].name"),
        ("{name: a, kind: archive}", "source 'a'.path"),
        ("{name: a, kind: podcast, url: 'https://x/f'}", "source 'a'.kind"),
    ],
)
def test_invalid_entries_are_named(tmp_path: Path, entry: str, message: str) -> None:
    path = write(tmp_path, f"sources:\n  - {entry}\n")
    with pytest.raises(SourceConfigError) as error:
        load_sources(path)
    assert str(path) in str(error.value)
    assert message in str(error.value)


def test_duplicate_names_and_bad_yaml(tmp_path: Path) -> None:
    path = write(
        tmp_path, "sources:\n  - {name: a, url: 'https://x/1'}\n  - {name: a, url: 'https://x/2'}\n"
    )
    with pytest.raises(SourceConfigError, match="used twice"):
        load_sources(path)
    with pytest.raises(SourceConfigError, match="not valid YAML"):
        load_sources(write(tmp_path, "sources: [\n"))
    with pytest.raises(SourceConfigError, match="not found"):
        load_sources(tmp_path / "missing.yaml")
