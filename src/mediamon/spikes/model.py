"""Pure maths of spike detection: hourly story counts in, tested windows out.

The method is described in ``docs/spikes.md``. In short: the expected number of stories
about a topic in the latest window is the window's total story volume times the topic's
share of stories at the same hour of the week in the trailing weeks (shrunk towards its
share over the whole baseline). The observed count is tested against a negative binomial
whose extra variance combines the uncertainty of that share and the topic's day-to-day
overdispersion, so small counts and bursty topics do not raise false alarms. A window
whose total volume collapsed (an ingest outage) is never reported.
"""

from __future__ import annotations

import logging
import math
import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from functools import cached_property
from itertools import accumulate
from typing import Any

logger = logging.getLogger(__name__)

HOURS_PER_WEEK = 168
MAX_DISPERSION = 10.0
TRIM_FROM = 10  # with this many samples or more, dispersion leaves out the highest one
POISSON_SIZE = 1e8  # above this size the negative binomial is a Poisson to double precision
MIN_P_VALUE = 1e-300


@dataclass(frozen=True)
class SpikeParams:
    """Thresholds of the detector (the ``thresholds`` of a topic in ``topics.yaml``).

    Attributes:
        window_hours: Length of the tested window, ending at the detection time.
        baseline_weeks: Trailing weeks that make the baseline.
        min_stories: Fewer stories than this in the window never alert.
        min_lift: Observed over expected must be at least this.
        max_p_value: The tail probability must be at most this.
        outage_ratio: Silent when the window's total volume is below this fraction of the
            usual volume at that hour of the week.
        min_baseline_hours: Hours with ingested stories needed in the baseline before
            anything can alert (a new installation warms up first).
        prior_stories: How many stories of evidence the topic's overall rate is worth
            when estimating its rate at this hour of the week (shrinkage).
        cooldown_hours: After an alert, no new alert for the topic for this long.
        rearm_p_value: An alert's episode ends (and the topic re-arms) once the window's
            p-value rises above this or the count drops below ``min_stories``.
    """

    window_hours: int = 1
    baseline_weeks: int = 4
    min_stories: int = 4
    min_lift: float = 2.0
    max_p_value: float = 0.0001
    outage_ratio: float = 0.5
    min_baseline_hours: int = 72
    prior_stories: float = 10.0
    cooldown_hours: int = 6
    rearm_p_value: float = 0.05

    def __post_init__(self) -> None:
        if self.window_hours < 1 or self.baseline_weeks < 1:
            raise ValueError("window_hours and baseline_weeks must be at least 1")
        if self.min_stories < 1 or self.min_lift < 1:
            raise ValueError("min_stories and min_lift must be at least 1")
        if not 0 < self.max_p_value <= self.rearm_p_value <= 1:
            raise ValueError("need 0 < max_p_value <= rearm_p_value <= 1")
        if not 0 <= self.outage_ratio <= 1 or self.prior_stories <= 0:
            raise ValueError("outage_ratio must be in [0, 1] and prior_stories > 0")

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class HourlySeries:
    """Stories per hour of one topic beside all stories per hour, from ``start`` on.

    Attributes:
        start: The UTC hour of element 0.
        counts: Distinct stories about the topic, per hour.
        totals: Distinct stories of any topic (in the topic's scope), per hour.
    """

    start: datetime
    counts: Sequence[int]
    totals: Sequence[int]

    def __post_init__(self) -> None:
        if len(self.counts) != len(self.totals):
            raise ValueError("counts and totals must have the same length")
        if self.start.tzinfo is None or self.start != floor_hour(self.start):
            raise ValueError("start must be a timezone-aware whole hour")

    @cached_property
    def _count_sums(self) -> list[int]:
        return [0, *accumulate(self.counts)]

    @cached_property
    def _total_sums(self) -> list[int]:
        return [0, *accumulate(self.totals)]

    @cached_property
    def _live_sums(self) -> list[int]:
        return [0, *accumulate(1 if t > 0 else 0 for t in self.totals)]

    def index(self, moment: datetime) -> int:
        """Hours from ``start`` to ``moment`` (the index just past ``moment``'s hour)."""
        return int((moment - self.start) // timedelta(hours=1))

    def at(self, index: int) -> datetime:
        return self.start + timedelta(hours=index)

    def stories(self, begin: int, end: int) -> int:
        begin, end = max(begin, 0), max(end, 0)
        return self._count_sums[end] - self._count_sums[begin]

    def volume(self, begin: int, end: int) -> int:
        begin, end = max(begin, 0), max(end, 0)
        return self._total_sums[end] - self._total_sums[begin]

    def live_hours(self, begin: int, end: int) -> int:
        begin, end = max(begin, 0), max(end, 0)
        return self._live_sums[end] - self._live_sums[begin]


@dataclass(frozen=True)
class Spike:
    """The test of one window of one topic; ``fired`` says whether it is a spike.

    Attributes:
        topic: The topic's key.
        window_start: First hour of the window (UTC).
        window_end: End of the window (exclusive; the detection time).
        observed: Stories about the topic in the window.
        expected: Stories expected from the window's volume and the baseline share.
        lift: observed / expected.
        p_value: P(X >= observed) under the baseline's negative binomial.
        score: -log10(p_value).
        total_stories: All stories in the window (in the topic's scope).
        expected_total: Usual total volume of this window (median of the trailing weeks).
        rate: Expected topic stories per other story at this hour of the week.
        dispersion: Day-to-day overdispersion of the topic (0 = Poisson).
        size: Size parameter of the negative binomial used for the test.
        baseline_stories: Topic stories in the whole baseline.
        baseline_total: All stories in the whole baseline.
        status: ``spike``, ``quiet``, ``outage`` (volume collapsed: silent) or
            ``no_baseline`` (not enough history yet).
        params: The thresholds used.
    """

    topic: str
    window_start: datetime
    window_end: datetime
    observed: int
    expected: float
    lift: float
    p_value: float
    score: float
    total_stories: int
    expected_total: float
    rate: float
    dispersion: float
    size: float
    baseline_stories: int
    baseline_total: int
    status: str
    params: SpikeParams

    @property
    def fired(self) -> bool:
        return self.status == "spike"

    @property
    def still_elevated(self) -> bool:
        """Whether an ongoing episode continues (the looser re-arm test still holds)."""
        return (
            self.status in ("spike", "quiet")
            and self.observed >= self.params.min_stories
            and self.p_value <= self.params.rearm_p_value
        )

    def details(self) -> dict[str, Any]:
        """Everything needed to see why the window fired (stored with the alert)."""
        return {
            "rate": self.rate,
            "dispersion": self.dispersion,
            "size": self.size,
            "expected_total": self.expected_total,
            "baseline_stories": self.baseline_stories,
            "baseline_total": self.baseline_total,
            "status": self.status,
            "method": "negative binomial tail, volume-normalized hour-of-week baseline",
            "params": self.params.as_dict(),
        }


def floor_hour(moment: datetime) -> datetime:
    """The start of ``moment``'s hour, in UTC (naive values are taken as UTC)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def assess(
    series: HourlySeries,
    at: datetime,
    params: SpikeParams,
    topic: str = "",
    zone: tzinfo | None = None,
) -> Spike:
    """Test the window of ``params.window_hours`` hours that ends at ``at``.

    Args:
        series: Hourly counts; it should reach back ``baseline_weeks`` weeks plus a
            window before ``at`` (shorter histories are used as far as they go).
        at: End of the window (exclusive), a whole hour.
        params: Thresholds.
        topic: The topic's key, copied into the result.
        zone: Where the readers' days are (MEDIAMON_TIMEZONE): the baseline's windows
            are the same hour of the day and of the week there. None: in UTC.

    Returns:
        The test's outcome; its ``status`` is ``spike`` when every threshold is met.
    """
    return assess_index(series, series.index(at), params, topic, zone)


def _days_before(series: HourlySeries, end: int, days: int, zone: tzinfo | None) -> int:
    """The index of the same local hour ``days`` days before ``end``: 24 hours a day in
    UTC, 23 or 25 across a daylight saving change. (In UTC, the news hours of Berlin,
    New York, … moved by an hour for the 4 weeks after a change: the morning's usual
    volume was compared with the hour before it.)"""
    if zone is None:
        return end - 24 * days
    local = series.at(end).astimezone(zone)
    # Aware arithmetic in one zone is on the wall clock: the same local hour that day.
    return series.index((local - timedelta(days=days)).astimezone(UTC))


def assess_index(
    series: HourlySeries,
    end: int,
    params: SpikeParams,
    topic: str = "",
    zone: tzinfo | None = None,
) -> Spike:
    """:func:`assess` with the window's end given as an index into the series."""
    width = params.window_hours
    begin = end - width
    if begin < 0 or end > len(series.counts):
        raise ValueError("the window lies outside the series")
    observed = series.stories(begin, end)
    volume = series.volume(begin, end)
    weeks = params.baseline_weeks
    base_begin = end - weeks * HOURS_PER_WEEK - width
    base_stories = series.stories(base_begin, begin)
    base_total = series.volume(base_begin, begin)
    live = series.live_hours(base_begin, begin)

    # The same window 1..K weeks earlier: same hour of day and day of week.
    slot_stories = 0
    slot_others = 0
    slot_volumes: list[int] = []
    for week in range(1, weeks + 1):
        slot_end = _days_before(series, end, 7 * week, zone)
        if slot_end - width < 0:
            break
        total = series.volume(slot_end - width, slot_end)
        if total > 0:
            stories = series.stories(slot_end - width, slot_end)
            slot_stories += stories
            slot_others += total - stories
            slot_volumes.append(total)

    def result(status: str, expected: float = 0.0, p_value: float = 1.0, **extra: float) -> Spike:
        return Spike(
            topic=topic,
            window_start=series.at(begin),
            window_end=series.at(end),
            observed=observed,
            expected=expected,
            lift=observed / expected if expected > 0 else (math.inf if observed else 0.0),
            p_value=p_value,
            score=-math.log10(max(p_value, MIN_P_VALUE)),
            total_stories=volume,
            expected_total=extra.get("expected_total", 0.0),
            rate=extra.get("rate", 0.0),
            dispersion=extra.get("dispersion", 0.0),
            size=extra.get("size", math.inf),
            baseline_stories=base_stories,
            baseline_total=base_total,
            status=status,
            params=params,
        )

    if live < params.min_baseline_hours or base_total <= 0:
        return result("no_baseline")
    expected_total = statistics.median(slot_volumes) if slot_volumes else base_total / live * width
    if volume <= 0 or volume < params.outage_ratio * expected_total:
        return result("outage", expected_total=expected_total)

    # Normalize by the other stories, not all: a burst must not raise its own expectation.
    # Jeffreys-style half story keeps the rate positive for a topic never seen before.
    overall_rate = (base_stories + 0.5) / max(base_total - base_stories, 1)
    same_hour, whole_days = _daily_samples(series, end, width, weeks, zone)
    # Two gamma-Poisson shrinkage steps, each prior worth prior_stories stories: the
    # overall rate -> the rate at this hour of the day (every earlier day) -> the rate at
    # this hour of the week (the same weekday only). The posterior mean is alpha / beta.
    hour_stories = sum(c for c, _ in same_hour)
    hour_others = sum(t - c for c, t in same_hour)
    hour_rate = (hour_stories + params.prior_stories) / (
        hour_others + params.prior_stories / overall_rate
    )
    alpha = slot_stories + params.prior_stories
    beta = slot_others + params.prior_stories / hour_rate
    rate = alpha / beta
    # At least one other story, as in overall_rate: a window of the topic's stories alone
    # (a broad topic such as 中国 in a quiet hour, a topic scoped to a source that writes
    # about little else) expected none and fired at p = 0 whatever the topic's usual
    # share; one other story expects `rate` of them.
    expected = max(volume - observed, 1) * rate
    dispersion = max(_moments(whole_days), _moments(same_hour))
    # Gamma-Poisson mixture: 1/size is the relative variance of the expectation, from the
    # window's own extra variation (dispersion), the same variation in each week the rate
    # was estimated from (dispersion / weeks) and those weeks' Poisson noise (1 / alpha).
    inverse_size = dispersion * (1 + 1 / max(len(slot_volumes), 1)) + 1.0 / alpha
    size = 1.0 / inverse_size
    p_value = nbinom_sf(observed, expected, size)
    fired = (
        observed >= params.min_stories
        and observed >= params.min_lift * expected
        and p_value <= params.max_p_value
    )
    return result(
        "spike" if fired else "quiet",
        expected,
        p_value,
        expected_total=expected_total,
        rate=rate,
        dispersion=dispersion,
        size=size,
    )


def _daily_samples(
    series: HourlySeries, end: int, width: int, weeks: int, zone: tzinfo | None = None
) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    """(stories, total) of the same window on each earlier day, and of whole earlier days.

    The same-hour samples give the topic's rate at this hour of the day. Both feed the
    method-of-moments dispersion: whole days have many stories per sample, so little
    Poisson noise (they catch day-to-day news cycles); same hours catch bursts within a
    day. Days overlapping the tested window are left out.
    """
    begin = end - width
    days = weeks * 7
    first_day = max(1, math.ceil(width / 24))
    same_ends = [_days_before(series, end, d, zone) for d in range(first_day, days + 1)]
    same_hour = [
        (series.stories(e - width, e), series.volume(e - width, e))
        for e in same_ends
        if e - width >= 0
    ]
    whole_days = [
        (
            series.stories(begin - 24 * (d + 1), begin - 24 * d),
            series.volume(begin - 24 * (d + 1), begin - 24 * d),
        )
        for d in range(days)
        if begin - 24 * (d + 1) >= 0
    ]
    return [x for x in same_hour if x[1] > 0], [x for x in whole_days if x[1] > 0]


def _moments(samples: Sequence[tuple[int, int]]) -> float:
    """NB2 dispersion phi (Var = mu + phi * mu**2) by the method of moments, >= 0."""
    live = [(c, t) for c, t in samples if t > 0]
    if len(live) < 3:
        return 0.0
    others = sum(t - c for c, t in live)
    rate = sum(c for c, _ in live) / others if others > 0 else 0.0
    if rate <= 0:
        return 0.0
    terms = []
    for count, total in live:
        mean = (total - count) * rate
        terms.append(((count - mean) / math.sqrt(mean) if mean > 0 else 0.0, count, mean))
    # Past bursts are in the baseline too: the highest sample is left out, so that one old
    # burst does not make the topic look erratic (and blind the detector for weeks).
    terms.sort()
    kept = terms[:-1] if len(terms) >= TRIM_FROM else terms
    excess = sum((count - mean) ** 2 - mean for _, count, mean in kept)
    scale = sum(mean * mean for _, _, mean in kept)
    if scale <= 0:
        return 0.0
    return min(max(excess / scale, 0.0), MAX_DISPERSION)


# ---------------------------------------------------------------------------------------
# Tail probabilities (no SciPy: the package keeps its dependencies small)


def nbinom_sf(observed: int, mean: float, size: float) -> float:
    """P(X >= observed) for a negative binomial with this mean and size (NB2).

    ``size = inf`` is the Poisson distribution. Var = mean + mean**2 / size.
    """
    if observed <= 0:
        return 1.0
    if mean <= 0:
        return 0.0
    if not math.isfinite(size) or size > POISSON_SIZE:
        return poisson_sf(observed, mean)
    if size <= 0:
        return 1.0
    # P(X >= k) = I_q(k, size) with q = mean / (mean + size).
    return _betainc(float(observed), size, mean / (mean + size))


def poisson_sf(observed: int, mean: float) -> float:
    """P(X >= observed) for a Poisson variable with this mean."""
    if observed <= 0:
        return 1.0
    if mean <= 0:
        return 0.0
    # P(X >= k) = P(k, mean), the regularized lower incomplete gamma function.
    return _gammainc_lower(float(observed), mean)


def _gammainc_lower(a: float, x: float) -> float:
    if x < a + 1:
        term = total = 1.0 / a
        n = a
        for _ in range(10_000):
            n += 1
            term *= x / n
            total += term
            if abs(term) < abs(total) * 1e-15:
                break
        return min(1.0, total * math.exp(-x + a * math.log(x) - math.lgamma(a)))
    return 1.0 - _gammainc_upper_cf(a, x)


def _gammainc_upper_cf(a: float, x: float) -> float:
    tiny = 1e-300
    b = x + 1 - a
    c = 1 / tiny
    d = 1 / b
    h = d
    for i in range(1, 10_000):
        an = -i * (i - a)
        b += 2
        d = an * d + b
        d = tiny if abs(d) < tiny else d
        c = b + an / c
        c = tiny if abs(c) < tiny else c
        d = 1 / d
        delta = d * c
        h *= delta
        if abs(delta - 1) < 1e-15:
            break
    return math.exp(-x + a * math.log(x) - math.lgamma(a)) * h


def _betainc(a: float, b: float, x: float) -> float:
    """Regularized incomplete beta I_x(a, b)."""
    if x <= 0:
        return 0.0
    if x >= 1:
        return 1.0
    log_front = (
        math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    )
    if x < (a + 1) / (a + b + 2):
        return min(1.0, math.exp(log_front) * _betacf(a, b, x) / a)
    return max(0.0, 1.0 - math.exp(log_front) * _betacf(b, a, 1 - x) / b)


def _betacf(a: float, b: float, x: float) -> float:
    tiny = 1e-300
    qab, qap, qam = a + b, a + 1, a - 1
    c = 1.0
    d = 1 - qab * x / qap
    d = tiny if abs(d) < tiny else d
    d = 1 / d
    h = d
    for m in range(1, 10_000):
        m2 = 2 * m
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1 + aa * d
        d = tiny if abs(d) < tiny else d
        c = 1 + aa / c
        c = tiny if abs(c) < tiny else c
        d = 1 / d
        h *= d * c
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1 + aa * d
        d = tiny if abs(d) < tiny else d
        c = 1 + aa / c
        c = tiny if abs(c) < tiny else c
        d = 1 / d
        delta = d * c
        h *= delta
        if abs(delta - 1) < 1e-15:
            break
    return h
