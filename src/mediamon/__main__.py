"""The ``mediamon`` command as a process of its own (the console script, and
``python -m mediamon``): :func:`mediamon.cli.main`, with Python's garbage collector kept
out of the two moments where it only costs.

* Importing the command's libraries (SQLAlchemy, psycopg, requests and the rest) makes
  some 400,000 objects and next to no garbage; the collector, run every 700 new
  objects, spent 0.08 s of CPU on them. Once imported they are frozen too: left
  tracked in the youngest generation, the command's first collections walked all of
  them again (the first young collection, then the first middle one), to find no
  garbage among them: in a 200-article ingest the collector's CPU in the ``mediamon``
  process was 0.06-0.15 s before, 0.02-0.03 s after (0.2-0.6 ms an article).
* When the command is done, every object still alive goes with the process. Python's
  finalization would first walk them all with the collector: 0.2 s of CPU, 1 ms an
  article of a 200-article ingest, for memory the operating system takes back anyway.
  Frozen, they are left to it; the atexit handlers still run, and the log and the
  standard streams are flushed and closed as before.

In-process callers (tests, the Airflow tasks) call :func:`mediamon.cli.main` itself and
keep the collector as it is.
"""

from __future__ import annotations

import gc
import sys


def main() -> int:
    gc.disable()
    try:
        from mediamon.cli import main as command
    finally:
        gc.freeze()  # the libraries' objects live as long as the process: never walk them
        gc.enable()
    try:
        return command()
    finally:
        gc.freeze()


if __name__ == "__main__":
    sys.exit(main())
