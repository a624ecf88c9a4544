"""``make demo``: the bundled sample site served on 127.0.0.1, the seed as an archive
source, one real Airflow run of the ingest DAG on the embedded database, and a summary.
Works offline."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import sqlalchemy as sa

from mediamon import db
from mediamon.airflow_env import airflow_command, airflow_environment
from mediamon.config import PROJECT_ROOT, Settings
from mediamon.sitehost import serve_folder

DEMO_DIR = PROJECT_ROOT / "demo"
DEMO_PORT = 18765
SOURCES_TEMPLATE = """\
# Written by `make demo`: the bundled sample site and the seed archive.
sources:
  - name: demo-news
    kind: feed
    url: {base}/feed.xml
    language: zh
    poll_interval: 15m
    allow_private_network: true   # the demo site is on 127.0.0.1
  - name: rfi-archive
    kind: archive
    path: {archive}
    language: zh
"""


def write_demo_sources(path: Path, base: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        SOURCES_TEMPLATE.format(base=base, archive=DEMO_DIR / "archive"), encoding="utf-8"
    )
    return path


def _airflow(env: dict[str, str], args: list[str], log: Path) -> None:
    with log.open("ab") as out:
        result = subprocess.run(airflow_command(args), env=env, stdout=out, stderr=out, check=False)
    if result.returncode != 0:
        tail = log.read_text("utf-8", "replace").splitlines()[-30:]
        raise SystemExit(
            f"airflow {' '.join(args)} failed; last lines of {log}:\n" + "\n".join(tail)
        )


def summary(engine: sa.Engine) -> str:
    """What was loaded, what failed and what was deduplicated, per source."""
    with engine.connect() as conn:
        loaded = (
            conn.execute(
                sa.text(
                    "select source, count(*) as articles, count(duplicate_of) as copies,"
                    " string_agg(distinct language, ',') as languages"
                    " from bi.articles group by source order by source"
                )
            )
            .mappings()
            .all()
        )
        failures = (
            conn.execute(
                sa.text(
                    "select source, url, error from bi.fetch_log where not ok"
                    " and fetched_at = (select max(fetched_at) from bi.fetch_log)"
                    " order by source, url"
                )
            )
            .mappings()
            .all()
        )
        copies = (
            conn.execute(
                sa.text(
                    "select c.url as copy, o.url as original from bi.articles c"
                    " join bi.articles o on o.article_id = c.duplicate_of order by c.url"
                )
            )
            .mappings()
            .all()
        )
        titles = (
            conn.execute(
                sa.text(
                    "select source, published_at, language, title from bi.articles"
                    " order by published_at"
                )
            )
            .mappings()
            .all()
        )
    lines = ["", "== mediamon demo: what was loaded =="]
    for row in loaded:
        lines.append(
            f"  {row['source']:<12} {row['articles']} articles ({row['copies']} syndicated copies),"
            f" languages {row['languages']}"
        )
    lines.append("")
    for row in titles:
        lines.append(f"  {row['published_at']:%Y-%m-%d %H:%M}Z [{row['language']}] {row['title']}")
    lines += ["", f"== failed fetches in the last run: {len(failures)} =="]
    lines += [f"  {r['source']}: {r['url']}\n      {r['error']}" for r in failures]
    lines += ["", f"== deduplicated: {len(copies)} =="]
    lines += [f"  {r['copy']}\n      is a copy of {r['original']}" for r in copies]
    return "\n".join(lines)


def _demo_port() -> int:
    """A fixed port, so the demo's article URLs (their natural keys) are the same each
    run and a second run loads nothing twice; any free port if it is taken."""
    import socket

    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", DEMO_PORT))
        except OSError:
            return 0
    return DEMO_PORT


def main() -> int:
    settings = Settings.from_env()
    demo_var = settings.var_dir / "demo"
    demo_var.mkdir(parents=True, exist_ok=True)
    log = demo_var / "airflow.log"
    log.write_text("")
    with serve_folder(DEMO_DIR / "site", port=_demo_port()) as base:
        sources = write_demo_sources(demo_var / "sources.yaml", base)
        settings = replace(settings, sources_path=sources)
        print(f"demo site on {base}; sources in {sources}")
        env = airflow_environment(settings)
        print(f"Airflow home {env['AIRFLOW_HOME']}; log in {log}")
        print("migrating Airflow's metadata database ...")
        _airflow(env, ["db", "migrate"], log)
        print("running the mediamon_ingest DAG (airflow dags test) ...")
        _airflow(
            env,
            ["dags", "test", "mediamon_ingest", "--conf", json.dumps({"force": True})],
            log,
        )
    engine = db.make_engine(db.resolve_url(settings))
    try:
        print(summary(engine))
    finally:
        engine.dispose()
    print(f"\nThe database keeps running (var/pgdata); `{sys.argv[0]} db stop` stops it.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
