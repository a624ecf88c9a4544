"""The per-page CPU limit of the extraction workers (mediamon.ingest.cpulimit)."""

from __future__ import annotations

import contextlib
import signal
import threading
import time

import pytest

from mediamon.ingest import cpulimit


def _spin(seconds: float) -> None:
    """Use ``seconds`` of this process's CPU, swallowing ordinary exceptions as a
    careless library would."""
    started = time.process_time()
    while time.process_time() - started < seconds:
        with contextlib.suppress(Exception):  # the point: the timeout must get through
            sum(range(1000))


@pytest.fixture()
def enabled(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cpulimit, "_enabled", True)


@pytest.mark.usefixtures("enabled")
def test_a_block_over_its_cpu_time_is_stopped_and_the_timer_disarmed() -> None:
    handler = signal.getsignal(signal.SIGPROF)
    started = time.process_time()
    with (
        pytest.raises(cpulimit.ExtractionTimeout, match="gave up after 0.2 s of CPU"),
        cpulimit.cpu_limit(0.2),
    ):
        _spin(5)
    assert time.process_time() - started < 2
    assert signal.getitimer(signal.ITIMER_PROF) == (0.0, 0.0)
    assert signal.getsignal(signal.SIGPROF) == handler


@pytest.mark.usefixtures("enabled")
def test_a_block_within_its_time_runs_to_the_end() -> None:
    with cpulimit.cpu_limit(5):
        _spin(0.05)
    assert signal.getitimer(signal.ITIMER_PROF) == (0.0, 0.0)


def test_nothing_is_limited_where_not_enabled() -> None:
    with cpulimit.cpu_limit(0.05):
        _spin(0.3)


@pytest.mark.usefixtures("enabled")
def test_nothing_is_limited_off_the_main_thread() -> None:
    # A process-wide timer's signal reaches the main thread, not the one that armed it.
    failures: list[BaseException] = []

    def work() -> None:
        try:
            with cpulimit.cpu_limit(0.05):
                _spin(0.3)
        except BaseException as error:  # noqa: BLE001 - reported to the test
            failures.append(error)

    thread = threading.Thread(target=work)
    thread.start()
    thread.join()
    assert failures == []
    assert signal.getitimer(signal.ITIMER_PROF) == (0.0, 0.0)
