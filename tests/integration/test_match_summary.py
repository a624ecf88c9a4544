"""The match_topics task's summary (its XCom, a row in Airflow's database every run) is
counts and a few keys, whatever the number of topics: it carried every topic's key, 150
kB an hour at 10,000 topics."""

from __future__ import annotations

import json
from pathlib import Path

import sqlalchemy as sa

from mediamon import service
from mediamon.settings import Settings
from mediamon.topics.match import MAX_KEYS_SHOWN


def topics_file(keys: range) -> str:
    return "version: 1\ntopics:\n" + "".join(
        f"  - {{key: topic-{n:04d}, name: 话题{n}, terms: [词{n:04d}号]}}\n" for n in keys
    )


def test_the_match_summary_counts_the_topics_and_names_a_few(
    engine: sa.Engine, tmp_path: Path
) -> None:
    path = tmp_path / "topics.yaml"
    settings = Settings(
        database_url=engine.url.render_as_string(hide_password=False),
        sources_path=tmp_path / "sources.yaml",
        var_dir=tmp_path,
        topics_path=path,
    )
    path.write_text(topics_file(range(2_000)), "utf-8")
    first = service.match_topics(settings)
    path.write_text(topics_file(range(5, 2_000)), "utf-8")  # five removed
    second = service.match_topics(settings)
    assert len(json.dumps(first)) < 2_000, len(json.dumps(first))
    assert first["matched"]["full_rematch"] == 2_000
    topics = first["topics"]
    assert (topics["topics"], topics["changed"], topics["removed"]) == (2_000, 2_000, 0)
    assert topics["changed_keys"] == [f"topic-{n:04d}" for n in range(MAX_KEYS_SHOWN)]
    again = second["topics"]
    assert (again["topics"], again["changed"], again["removed"]) == (1_995, 0, 5)
    assert again["removed_keys"] == [f"topic-{n:04d}" for n in range(5)]
    with engine.connect() as conn:  # what the next tasks read
        active = conn.execute(sa.text("select count(*) from topics where active")).scalar_one()
    assert active == 1_995
