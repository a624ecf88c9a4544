"""The ``mediamon`` process (console script and ``python -m mediamon``): the command's
exit status and output, with the garbage collector out of its imports and its exit."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

# At exit: whether the collector is on, and how many objects it was told to leave alone.
PROBE = textwrap.dedent(
    """
    import atexit, gc, sys
    atexit.register(lambda: print("gc", gc.isenabled(), gc.get_freeze_count(), file=sys.stderr))
    sys.argv = ["mediamon", *sys.argv[1:]]
    from mediamon.__main__ import main
    sys.exit(main())
    """
)


def _probe(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str, int]:
    done = subprocess.run(
        [sys.executable, "-c", PROBE, *args],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, **(env or {})},
    )
    enabled, frozen = done.stderr.strip().splitlines()[-1].split()[1:]
    assert enabled == "True"  # collection is on again once the imports are done
    return done.returncode, done.stdout, done.stderr, int(frozen)


def test_the_console_script_is_the_launcher() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    assert project["project"]["scripts"]["mediamon"] == "mediamon.__main__:main"


def test_the_process_leaves_its_objects_to_the_system_at_exit() -> None:
    status, out, _, frozen = _probe("--help")
    assert status == 0 and "ingest" in out
    assert frozen > 50_000  # the imported libraries' objects: no collection walks them


def test_the_command_starts_with_the_imported_objects_frozen() -> None:
    # Left in the youngest generation, the libraries' objects were walked by the
    # command's first collections (up to 0.15 s of a 200-article ingest), to find no
    # garbage.
    probe = textwrap.dedent(
        """
        import gc, sys
        import mediamon.cli
        mediamon.cli.main = lambda: print("frozen", gc.get_freeze_count()) or 0
        from mediamon.__main__ import main
        sys.exit(main())
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    assert int(done.stdout.split()[-1]) > 50_000


def test_a_failing_command_keeps_its_status_and_one_line(tmp_path: Path) -> None:
    # No database configured: the command fails on its file before any database is
    # started (recording the failed run once started the embedded PostgreSQL, whose
    # warnings came before the error).
    env = {"MEDIAMON_SOURCES": "/nonexistent/sources.yaml", "MEDIAMON_VAR_DIR": str(tmp_path)}
    status, out, err, frozen = _probe("ingest", env={**env, "MEDIAMON_DATABASE_URL": ""})
    assert status == 2 and out == ""
    assert err.startswith("mediamon: /nonexistent/sources.yaml: ") and "Traceback" not in err
    assert not (tmp_path / "pgdata").exists()
    assert frozen > 50_000
