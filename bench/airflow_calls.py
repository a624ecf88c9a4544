"""CI time of the Airflow calls the DAG tests make: one ``airflow dags trigger`` command
(an interpreter and Airflow's import per call) against one request to the api-server's
REST API (``Stack.trigger``), alternated on the same stack in the same run.

    python -m bench.airflow_calls [--calls 4]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from dataclasses import replace
from pathlib import Path
from tempfile import TemporaryDirectory

from bench import airflow_stack
from bench.common import scratch_database
from mediamon.devtools.airflow_env import airflow_environment
from mediamon.settings import Settings

DAG_ID = "mediamon_health"  # small, and triggering it starts nothing without a scheduler


def measure(calls: int) -> dict[str, float]:
    """Seconds per trigger by command and by REST (medians), the stack left without a
    scheduler so no run starts and loads the machine meanwhile."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "MEDIAMON_"))}
    with (
        TemporaryDirectory() as home,
        scratch_database("calls") as database_url,
        airflow_stack.metadata_database(base) as metadata_url,
    ):
        settings = replace(Settings.from_env(), database_url=database_url)
        env = airflow_environment(settings, {**base, "MEDIAMON_AIRFLOW_DATABASE_URL": metadata_url})
        env = airflow_stack.stack_environment(env, metadata_url, Path(home))
        with airflow_stack.running(env, metadata_url, stop_grace_s=5) as stack:
            stack.start("api-server", ["api-server", "-H", "127.0.0.1", "-p",
                                       env["AIRFLOW__API__PORT"]])  # fmt: skip
            stack.start("dag-processor", ["dag-processor"])
            stack.wait_for_api()
            stack.wait_for_dag(DAG_ID)
            cli, rest = [], []
            for _ in range(calls):
                started = time.monotonic()
                stack.trigger_with_cli(DAG_ID)
                cli.append(time.monotonic() - started)
                started = time.monotonic()
                stack.trigger(DAG_ID)
                rest.append(time.monotonic() - started)
    return {
        "cli_s": statistics.median(cli),
        "rest_s": statistics.median(rest),
        "cli_max_s": max(cli),
        "rest_max_s": max(rest),
        "ratio": statistics.median(cli) / max(statistics.median(rest), 1e-6),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=4)
    args = parser.parse_args()
    figures = measure(max(1, min(args.calls, 50)))
    print(
        f"trigger per call: airflow command {figures['cli_s']:.2f} s (max"
        f" {figures['cli_max_s']:.2f}), REST {figures['rest_s']:.3f} s (max"
        f" {figures['rest_max_s']:.3f}): {figures['ratio']:.0f}x"
    )


if __name__ == "__main__":
    main()
