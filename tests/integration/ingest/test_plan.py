"""Task ``plan_sources`` checks the configuration files before any source is fetched."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

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
    with pytest.raises(
        ValueError,
        match=r"extraction_path\.yaml: site 'a\.example'\.drop_lines\[0\]: not a regular",
    ):
        service.plan_sources(settings, NOW)


@pytest.mark.parametrize(
    ("topics", "problem"),
    [
        ("topics: [\n", "YAML syntax error"),
        # Before: int() of the 5,000 digits raised a plain ValueError out of the rule's
        # parser, which planning did not expect: `mediamon ingest` and the Airflow plan
        # task failed on a topics file, and no source was polled.
        (
            "topics:\n  - {key: t, name: T, terms: ['a NEAR/" + "9" * 5000 + " b']}\n",
            "NEAR distance must be 0 to 200",
        ),
    ],
    ids=["not-yaml", "near-of-5000-digits"],
)
def test_a_bad_topics_file_is_logged_and_ingest_still_planned(
    tmp_path: Path, database_url: str, caplog: pytest.LogCaptureFixture, topics: str, problem: str
) -> None:
    settings = settings_with(tmp_path, database_url, topics_path=topics)
    with caplog.at_level(logging.ERROR, logger="mediamon.service"):
        assert service.plan_sources(settings, NOW, force=True) == ["wire"]
    assert "topics_path.yaml" in caplog.text and "stored topic definitions" in caplog.text
    assert problem in caplog.text and len(caplog.text) < 1000


def test_sources_named_twice_are_planned_once(tmp_path: Path, database_url: str) -> None:
    # A DAG run's params or --source twice: 1,000 copies made 1,000 feed requests.
    settings = settings_with(tmp_path, database_url)
    assert service.plan_sources(settings, NOW, only=["wire"] * 1000, force=True) == ["wire"]
    shards = service.plan_shards(settings, NOW, only=["wire"] * 100_000, force=True, shards=4)
    assert [list(s.sources) for s in shards] == [["wire"]]


@pytest.mark.parametrize(
    ("only", "message"),
    [
        ("wire", "sources must be a list of source names, got 'wire'"),  # was read as w, i, r, e
        ([1, None], "sources must be a list of source names, got 1, None"),
        ([["wire"]], "sources must be a list of source names, got ['wire']"),
        ([f"n{i}" for i in range(100_000)],
         "unknown source(s): n0, n1, n2, n3, n4, n5, n6, n7, n8, n9 and 99990 more;"
         " configured: wire"),
        # A line break or a bidi control in a name from the trigger form is escaped: the
        # message stays one line and shows the name as given (before: a forged second
        # log line; U+202E before 'eriw' displayed it as 'wire', a configured name).
        (["台湾新闻\n[INFO] all sources ok"],
         "unknown source(s): 台湾新闻\\n[INFO] all sources ok; configured: wire"),
        (["\u202eeriw"], "unknown source(s): \\u202eeriw; configured: wire"),
    ],
)  # fmt: skip
def test_sources_that_are_not_a_list_of_known_names_are_one_short_line(
    tmp_path: Path, database_url: str, only: Any, message: str
) -> None:
    from mediamon.errors import ConfigError

    settings = settings_with(tmp_path, database_url)
    with pytest.raises(ConfigError) as refused:
        service.plan_shards(settings, NOW, only=only, force=True, shards=4)
    assert str(refused.value) == message
