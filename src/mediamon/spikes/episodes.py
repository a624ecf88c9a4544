"""The episode rule, the one place it lives: what a topic's newly tested window does to
its alerts. Detection (:mod:`mediamon.spikes.detect`) applies it to the stored alerts,
:func:`replay` to a whole series (tests and the detection benchmark).

An alert opens an episode that lasts while the windows stay elevated
(:attr:`Spike.still_elevated`); a new alert needs the episode over and no other alert of
the topic within the cooldown. Outages and windows without a baseline decide nothing. An
episode whose last elevated window is more than :data:`STALE_EPISODE` old (the counts
stopped, e.g. a long outage) is cleared at that window.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from mediamon.spikes.model import HOURS_PER_WEEK, HourlySeries, Spike, SpikeParams, assess_index

STALE_EPISODE = timedelta(hours=24)

Action = Literal["nothing", "extend", "clear", "open"]


@dataclass(frozen=True)
class Decision:
    """What one tested window does.

    Attributes:
        action: ``extend`` the open episode, ``clear`` it (at this window), ``open`` a new
            alert, or ``nothing``.
        clear_stale: The open episode is stale: clear it at its own last window first.
    """

    action: Action
    clear_stale: bool = False


def decide(
    spike: Spike,
    episode_end: datetime | None,
    nearest_alert: datetime | None,
    cooldown: timedelta,
) -> Decision:
    """Apply the episode rule to one tested window.

    Args:
        spike: The window's test.
        episode_end: Last window of the topic's open (uncleared) episode, if any.
        nearest_alert: Window end of the topic's alert nearest to this window, if any.
        cooldown: The topic's cooldown.
    """
    at = spike.window_end
    if spike.status not in ("spike", "quiet"):
        return Decision("nothing")
    stale = episode_end is not None and at - episode_end > STALE_EPISODE
    if episode_end is not None and not stale:
        return Decision("extend" if spike.still_elevated or spike.fired else "clear")
    if not spike.fired:
        return Decision("nothing", stale)
    if nearest_alert is not None and abs(at - nearest_alert) < cooldown:
        return Decision("nothing", stale)
    return Decision("open", stale)


def replay(
    series: HourlySeries, params: SpikeParams, topic: str = "", *, first: int | None = None
) -> list[Spike]:
    """Run hourly detection over a series the way :mod:`mediamon.spikes.detect` does
    (the same :func:`decide`), and return the spikes that would open an alert.

    Args:
        series: Hourly counts.
        params: Thresholds.
        topic: Copied into the results.
        first: Index of the first window end tested (default: the first with a full
            baseline).
    """
    start = params.window_hours + params.baseline_weeks * HOURS_PER_WEEK
    cooldown = timedelta(hours=params.cooldown_hours)
    opened: list[Spike] = []
    episode_end: datetime | None = None  # last window of the open episode
    last_alert: datetime | None = None
    for end in range(
        start if first is None else max(first, params.window_hours), len(series.counts) + 1
    ):
        spike = assess_index(series, end, params, topic)
        decision = decide(spike, episode_end, last_alert, cooldown)
        if decision.clear_stale:
            episode_end = None
        if decision.action == "extend":
            episode_end = spike.window_end
        elif decision.action == "clear":
            episode_end = None
        elif decision.action == "open":
            opened.append(spike)
            episode_end = last_alert = spike.window_end
    return opened
