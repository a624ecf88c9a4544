"""Run one ingest of every configured source in chunks of 2 items (the SIGKILL fault
test kills this process mid-way). Usage: ingest_child.py RUN_KEY NOW_ISO [WORKERS]
(extraction processes, default 1: build in this process)."""

from __future__ import annotations

import json
import sys
from datetime import datetime

from mediamon import service
from mediamon.ingest import run as pipeline
from mediamon.ingest.sources import load_sources
from mediamon.settings import Settings


def main() -> int:
    run_key, now = sys.argv[1], datetime.fromisoformat(sys.argv[2])
    workers = int(sys.argv[3]) if len(sys.argv) > 3 else 1
    pipeline.CHUNK_SIZE = 2  # many small transactions: the kill lands between or inside one
    settings = Settings.from_env()
    names = [s.name for s in load_sources(settings.sources_path)]
    for summary in service.ingest(settings, names, run_key, now, workers=workers):
        print(json.dumps(summary, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
