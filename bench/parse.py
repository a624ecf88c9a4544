"""DAG parse time: how long each file in ``dags/`` takes to import once Airflow's SDK is
loaded, as the dag-processor does on every parse loop (best of several runs)."""

from __future__ import annotations

import subprocess
import sys

from mediamon.devtools.airflow_env import dags_folder

PROBE = """
import runpy, sys, time
sys.path.insert(0, {dags!r})
import airflow.sdk  # loaded once by the dag-processor, not per file
def once():
    started = time.perf_counter()
    runpy.run_path({path!r}, run_name="dag_file")
    return time.perf_counter() - started
best = min(once() for _ in range({repeat}))
print(best)
"""


def parse_times(repeat: int = 5) -> dict[str, float]:
    """Seconds per DAG file (best of ``repeat`` imports in a fresh interpreter)."""
    dags = dags_folder()
    times: dict[str, float] = {}
    for path in sorted(dags.glob("*.py")):
        if path.name.startswith("_"):
            continue
        code = PROBE.format(dags=str(dags), path=str(path), repeat=repeat)
        out = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True
        )
        times[path.name] = float(out.stdout.strip().splitlines()[-1])
    return times


def run(repeat: int = 5) -> list[str]:
    lines = ["DAG parse time (import of the file with airflow.sdk loaded; target < 0.2 s)"]
    for name, seconds in parse_times(repeat).items():
        lines.append(f"  {name:<36} : {seconds * 1000:7.1f} ms")
    return lines


if __name__ == "__main__":
    print("\n".join(run()))
