"""CPU cost in tests that bound how a step's cost grows (hostile input against ordinary
input measured in the same test, so that a slow machine slows both)."""

from __future__ import annotations

import time
from collections.abc import Callable


def least_cpu(call: Callable[[], object], runs: int = 3) -> float:
    """The least CPU seconds of ``runs`` calls: a slow spell of the machine rarely lasts
    through all of them."""
    least = float("inf")
    for _ in range(runs):
        started = time.process_time()
        call()
        least = min(least, time.process_time() - started)
    return least
