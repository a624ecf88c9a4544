"""Scale: one ``mediamon_ingest`` cycle of N sources × K new articles each, triggered
through a real scheduler (LocalExecutor as ``mediamon run`` sets it up, or two Celery
workers), beside the same articles from one big source and beside one task per source
(the design before shards), all measured in the same run.

Each source is a site on a loopback address of its own (bench.feedfarm), serving pages of
the shared corpora. Figures: cycle time (run queued → run end, from Airflow's metadata),
CPU per article (every Airflow process, its tasks and the PostgreSQL backends of the two
databases), the scheduler's own CPU, peak memory (PSS of all Airflow processes), and the
data database's growth per 100,000 articles.

    python -m bench.scale [--smoke] [--sizes 10,100,1000] [--no-celery]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from tempfile import TemporaryDirectory

import sqlalchemy as sa

from bench import airflow_stack
from bench.common import scratch_database
from bench.feedfarm import serve_farm
from mediamon import db
from mediamon.devtools.airflow_env import airflow_environment, box_parallelism, dags_folder
from mediamon.settings import Settings

DAG_ID = "mediamon_ingest"
# The ingest DAG before shards (main at fa07ce4): one mapped task per source, at most 4
# at once, each parsing the sources file and starting its own extraction pool.
PER_SOURCE_DAG = """
from datetime import timedelta
import pendulum
from airflow.sdk import Asset, Param, TriggerRule, dag, get_current_context, task

@dag(dag_id="mediamon_ingest", schedule="*/15 * * * *", catchup=False, max_active_runs=1,
     start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
     default_args={"retries": 2, "retry_delay": timedelta(minutes=1)},
     params={"sources": Param([], type="array"), "force": Param(False, type="boolean"),
             "refetch": Param(False, type="boolean")})
def mediamon_ingest():
    @task
    def plan_sources():
        from mediamon import service
        from mediamon_airflow import run_time, settings
        context = get_current_context()
        _, now = run_time(context)
        params = context["params"]
        return service.plan_sources(settings(), now, only=params["sources"], force=params["force"])

    @task(max_active_tis_per_dagrun=4)
    def ingest_source(source_name):
        from mediamon import service
        from mediamon_airflow import run_time, settings
        context = get_current_context()
        run_key, now = run_time(context)
        return service.ingest(settings(), [source_name], run_key, now)[0]

    @task(trigger_rule=TriggerRule.ALL_DONE)
    def summarize(summaries):
        from mediamon.ops.runs import summarize as add_up
        return add_up(summaries).as_dict()

    summarize(ingest_source.expand(source_name=plan_sources()))

mediamon_ingest()
"""


def unscheduled(dag_file: str) -> str:
    """The DAG file with ``schedule=None``: only the triggered run is measured (a
    scheduled run at a quarter hour would otherwise ingest the sources first)."""
    scheduled = 'schedule="*/15 * * * *"'
    if scheduled not in dag_file:
        raise ValueError("the ingest DAG's schedule is no longer */15: update bench.scale")
    return dag_file.replace(scheduled, "schedule=None")


@dataclass(frozen=True)
class Case:
    sources: int
    articles: int  # new articles per source
    design: str  # "shards" or "per-source"
    executor: str = "local"  # or "celery"

    @property
    def name(self) -> str:
        where = "2 Celery workers" if self.executor == "celery" else "LocalExecutor"
        return f"{self.sources} × {self.articles}, {self.design}, {where}"


@dataclass(frozen=True)
class Result:
    case: Case
    state: str
    cycle_s: float
    loaded: int
    tasks: int
    cpu_s: float  # every Airflow process and task, and the PostgreSQL backends
    scheduler_cpu_s: float  # the scheduler process alone (not the tasks it starts)
    peak_mib: float
    db_mb_per_100k: float
    metadata_kb_per_cycle: float
    failed_tasks: tuple[str, ...] = ()  # what made a run fail, so a red run says why

    @property
    def cpu_ms_per_article(self) -> float:
        return 1000 * self.cpu_s / max(self.loaded, 1)

    def line(self) -> str:
        return (
            f"  {self.case.name:<38} {self.state:<7} {self.cycle_s:7.1f} s"
            f" {self.loaded:6d} art {self.tasks:5d} tasks"
            f" {self.cpu_ms_per_article:7.1f} CPU-ms/art"
            f"  scheduler {self.scheduler_cpu_s:6.1f} CPU-s"
            f"  peak {self.peak_mib:6.0f} MiB  data {self.db_mb_per_100k:6.0f} MB/100k art"
            f"  metadata +{self.metadata_kb_per_cycle:.0f} kB"
            + (f"  failed: {', '.join(self.failed_tasks)}" if self.failed_tasks else "")
        )


def _tree_cpu(pids: list[int]) -> float:
    """CPU seconds of these processes and all their descendants, living or reaped
    (Linux adds a waited-for child's time to its parent's children times)."""
    import psutil

    total = 0.0
    for pid in pids:
        with contextlib.suppress(psutil.Error):
            root = psutil.Process(pid)
            for process in [root, *root.children(recursive=True)]:
                with contextlib.suppress(psutil.Error):
                    t = process.cpu_times()
                    total += t.user + t.system + t.children_user + t.children_system
    return total


def _own_cpu(pid: int) -> float:
    import psutil

    t = psutil.Process(pid).cpu_times()
    return float(t.user + t.system)


@dataclass
class _Sampler:
    """PSS of the Airflow processes, and CPU of the PostgreSQL backends serving the
    named databases, sampled every second."""

    roots: list[int]
    databases: tuple[str, ...]
    peak_bytes: int = 0
    backend_cpu: dict[int, tuple[float, float]] | None = None  # pid -> (first, last)

    @contextmanager
    def running(self) -> Iterator[None]:
        stop = threading.Event()
        self.backend_cpu = {}
        thread = threading.Thread(target=self._loop, args=(stop,), daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join()
            self._sample()

    def _loop(self, stop: threading.Event) -> None:
        while not stop.is_set():
            self._sample()
            stop.wait(1.0)

    def _sample(self) -> None:
        import psutil

        pss = 0
        for pid in self.roots:
            with contextlib.suppress(psutil.Error):
                root = psutil.Process(pid)
                for process in [root, *root.children(recursive=True)]:
                    with contextlib.suppress(psutil.Error):
                        pss += process.memory_full_info().pss
        self.peak_bytes = max(self.peak_bytes, pss)
        assert self.backend_cpu is not None
        for process in psutil.process_iter(["name", "cmdline"]):
            if process.info["name"] not in ("postgres", "postmaster"):
                continue
            title = " ".join(process.info["cmdline"] or ())
            if not any(f" {name} " in f" {title} " for name in self.databases):
                continue
            with contextlib.suppress(psutil.Error):
                t = process.cpu_times()
                now = t.user + t.system
                first = self.backend_cpu.get(process.pid, (now, now))[0]
                self.backend_cpu[process.pid] = (first, now)

    @property
    def postgres_cpu_s(self) -> float:
        return sum(last - first for first, last in (self.backend_cpu or {}).values())


def _db_bytes(url: str) -> int:
    engine = sa.create_engine(db.normalize_url(url))
    try:
        with engine.connect() as conn:
            return int(
                conn.execute(sa.text("select pg_database_size(current_database())")).scalar_one()
            )
    finally:
        engine.dispose()


def measure(case: Case, timeout_s: float) -> Result:
    """One cycle of ``case`` on a fresh data database and metadata database."""
    with (
        serve_farm(case.sources, case.articles) as farm,
        scratch_database("mediamon_scale") as data_url,
        TemporaryDirectory(prefix="mediamon-scale-") as tmp,
    ):
        home = Path(tmp)
        dags = home / "dags"
        dags.mkdir()
        dag_file = (dags_folder() / "mediamon_ingest.py").read_text("utf-8")
        if case.design != "shards":
            dag_file = PER_SOURCE_DAG
        (dags / "mediamon_ingest.py").write_text(unscheduled(dag_file), "utf-8")
        sources = home / "sources.yaml"
        farm.sources_yaml(sources, max_items=max(500, case.articles))
        settings = Settings(database_url=data_url, sources_path=sources, var_dir=home)
        base = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
        with airflow_stack.metadata_database(base) as metadata_url:
            env = airflow_environment(
                settings, {**base, "MEDIAMON_AIRFLOW_DATABASE_URL": metadata_url}
            )
            env = airflow_stack.stack_environment(env, metadata_url, home)
            env["AIRFLOW__CORE__DAGS_FOLDER"] = str(dags)
            # The farm's sites serve the same few hundred corpus pages, so at 1,000 sources
            # ~94 % of a cycle's articles are copies by construction, and the duplicate-rate
            # check would rightly fail the run; the bench measures the cycle, not the data.
            env["MEDIAMON_QUALITY_MAX_DUPLICATE_RATE"] = "1"
            if case.executor == "celery":
                env = airflow_stack.celery_environment(env, metadata_url)
            with airflow_stack.running(env, metadata_url) as stack:
                stack.start_components()
                if case.executor == "celery":
                    airflow_stack.start_celery_worker(stack, "worker-ingest", "ingest", 2)
                    airflow_stack.start_celery_worker(stack, "worker-default", "default", 2)
                stack.wait_for_api()
                stack.wait_for_dag(DAG_ID)
                data_before, meta_before = _db_bytes(data_url), _db_bytes(metadata_url)
                roots = [p.pid for p in stack.processes.values()]
                scheduler = stack.processes["scheduler"].pid
                sampler = _Sampler(
                    roots,
                    (
                        sa.make_url(data_url).database or "",
                        sa.make_url(metadata_url).database or "",
                    ),
                )
                cpu_before, sched_before = _tree_cpu(roots), _own_cpu(scheduler)
                with sampler.running():
                    run_id = stack.trigger(DAG_ID)
                    times = stack.wait_for_run(DAG_ID, run_id, timeout_s)
                cpu = _tree_cpu(roots) - cpu_before + sampler.postgres_cpu_s
                scheduler_cpu = _own_cpu(scheduler) - sched_before
                instances = stack.task_instances(DAG_ID, run_id)
                tasks = len(instances)
                failed_tasks = tuple(
                    str(ti["task_id"]) for ti in instances if ti["state"] == "failed"
                )
                engine = sa.create_engine(db.normalize_url(data_url))
                with engine.connect() as conn:
                    loaded = conn.execute(sa.text("select count(*) from articles")).scalar_one()
                engine.dispose()
                data_growth = _db_bytes(data_url) - data_before
                meta_growth = _db_bytes(metadata_url) - meta_before
    return Result(
        case=case,
        state=times.state,
        cycle_s=times.cycle_s,
        loaded=loaded,
        tasks=tasks,
        cpu_s=cpu,
        scheduler_cpu_s=scheduler_cpu,
        peak_mib=sampler.peak_bytes / 2**20,
        db_mb_per_100k=data_growth / max(loaded, 1) * 100_000 / 1e6,
        metadata_kb_per_cycle=meta_growth / 1e3,
        failed_tasks=failed_tasks,
    )


def run(
    smoke: bool = False, sizes: tuple[int, ...] = (10, 100, 1000), celery: bool = True
) -> list[str]:
    if smoke:
        cases = [Case(4, 2, "shards"), Case(4, 2, "per-source")]
    else:
        cases = [Case(n, 5, "shards") for n in sizes]
        cases.append(Case(1, 5 * max(sizes), "shards"))  # the same articles from one source
        cases.append(Case(min(100, max(sizes)), 5, "per-source"))
        if celery:
            cases.append(Case(max(sizes), 5, "shards", "celery"))
    lines = [
        f"Scale: one {DAG_ID} cycle through a real scheduler (parallelism {box_parallelism()},"
        f" {os.cpu_count()} cores), sources on loopback hosts of their own",
    ]
    results: list[Result] = []
    try:
        for case in cases:
            timeout = 600 + 4 * case.sources * case.articles
            result = measure(case, timeout)
            results.append(result)
            lines.append(result.line())
            print(lines[-1], flush=True)
    finally:
        airflow_stack.drop_templates()
    lines += _verdicts(results)
    return lines


def _verdicts(results: list[Result]) -> list[str]:
    by = {(r.case.sources, r.case.articles, r.case.design, r.case.executor): r for r in results}
    lines = []
    biggest = max(
        (
            r
            for r in results
            if r.case.design == "shards" and r.case.sources > 1 and r.case.executor == "local"
        ),
        key=lambda r: r.case.sources,
        default=None,
    )
    if biggest is not None:
        one = by.get((1, biggest.case.sources * biggest.case.articles, "shards", "local"))
        if one is not None:
            ratio = biggest.cpu_ms_per_article / max(one.cpu_ms_per_article, 1e-9)
            lines.append(
                f"  CPU per article, {biggest.case.sources} sources / one source of the same"
                f" articles: {ratio:.2f}× (target ≤ 1.5×)"
            )
        lines.append(
            f"  cycle at {biggest.case.sources} sources: {biggest.cycle_s:.0f} s"
            + (" (target < 240 s at 1,000)" if biggest.case.sources >= 1000 else "")
        )
    for (sources, articles, design, executor), old in by.items():
        new = by.get((sources, articles, "shards", executor))
        if design == "per-source" and new is not None:
            lines.append(
                f"  {sources} sources, one task per source / shards: cycle"
                f" {old.cycle_s / max(new.cycle_s, 1e-9):.1f}×, CPU per article"
                f" {old.cpu_ms_per_article / max(new.cpu_ms_per_article, 1e-9):.1f}×"
            )
    return lines


def main() -> None:
    import signal
    import sys

    # SIGTERM unwinds like Ctrl-C, so every service, server and database is cleaned up.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--sizes", default="10,100,1000", help="numbers of sources")
    parser.add_argument("--no-celery", action="store_true", help="skip the Celery case")
    args = parser.parse_args()
    sizes = tuple(int(n) for n in args.sizes.split(","))
    print("\n".join(run(args.smoke, sizes, celery=not args.no_celery)))


if __name__ == "__main__":
    main()
