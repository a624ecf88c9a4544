"""Spike detection maths on synthetic hourly series (pure, no database)."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np
import pytest

from mediamon.spikes.episodes import replay
from mediamon.spikes.model import (
    HOURS_PER_WEEK,
    HourlySeries,
    Spike,
    SpikeParams,
    assess,
    assess_index,
    nbinom_sf,
    poisson_sf,
)

START = datetime(2024, 1, 1, tzinfo=UTC)  # a Monday
WEEK = 168
PARAMS = SpikeParams()


def volume_curve(hours: int, base: float = 200.0, daily: float = 0.6) -> np.ndarray:
    """Expected stories per hour: a daily cycle, and quieter weekends."""
    t = np.arange(hours)
    day = 1 + daily * np.sin(2 * np.pi * ((t % 24) - 6) / 24)
    weekend = np.where((t // 24) % 7 >= 5, 0.6, 1.0)
    return base * day * weekend


def series(counts: np.ndarray, totals: np.ndarray) -> HourlySeries:
    return HourlySeries(START, [int(c) for c in counts], [int(t) for t in totals])


def find_spikes(s: HourlySeries, params: SpikeParams) -> list[Spike]:
    """Every window with a full baseline that fires, tested one by one (no episodes, no
    cooldown: :func:`replay` applies those as detection does)."""
    first = params.window_hours + params.baseline_weeks * HOURS_PER_WEEK
    windows = (assess_index(s, end, params) for end in range(first, len(s.counts) + 1))
    return [spike for spike in windows if spike.fired]


def poisson_background(
    weeks: int, share: float, seed: int, base: float = 200.0
) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    totals = rng.poisson(volume_curve(weeks * WEEK, base))
    return rng.binomial(totals, share), totals


def end_of(hours: int) -> datetime:
    return START + timedelta(hours=hours)


def test_injected_burst_alerts() -> None:
    counts, totals = poisson_background(5, 0.02, seed=1)
    counts[-1] += 15
    totals[-1] += 15
    spike = assess(series(counts, totals), end_of(len(counts)), PARAMS, "taiwan")
    assert spike.fired, spike
    assert spike.status == "spike"
    assert spike.topic == "taiwan"
    assert spike.observed == counts[-1]
    assert 0.3 < spike.expected < 8
    assert spike.lift >= PARAMS.min_lift
    assert spike.p_value < PARAMS.max_p_value
    assert spike.score == pytest.approx(-math.log10(spike.p_value))
    assert spike.window_end == end_of(len(counts))
    assert spike.window_start == spike.window_end - timedelta(hours=1)
    assert spike.details()["params"]["min_stories"] == PARAMS.min_stories


def test_three_hour_window_catches_a_slower_swell() -> None:
    counts, totals = poisson_background(5, 0.02, seed=2)
    counts[-3:] += 5  # +5 stories an hour for three hours: each hour alone is marginal
    params = SpikeParams(window_hours=3)
    assert assess(series(counts, totals), end_of(len(counts)), params).fired


def test_flat_series_is_silent() -> None:
    hours = 6 * WEEK
    counts = np.full(hours, 3)
    totals = np.full(hours, 100)
    found = find_spikes(series(counts, totals), PARAMS)
    assert found == []
    last = assess(series(counts, totals), end_of(hours), PARAMS)
    assert last.status == "quiet"
    assert last.expected == pytest.approx(3.0, rel=0.01)
    assert last.dispersion == 0.0


@pytest.mark.parametrize("share", [0.003, 0.02, 0.1])
@pytest.mark.parametrize("seed", [11, 12, 13])
def test_poisson_noise_is_silent(share: float, seed: int) -> None:
    counts, totals = poisson_background(8, share, seed)
    # Four weeks of hourly detection after a four-week baseline: 672 windows each.
    assert find_spikes(series(counts, totals), PARAMS) == []


def test_overdispersed_noise_is_rarely_alerted_and_measured() -> None:
    """News cycles: the topic's rate wanders from day to day (gamma, variance 0.3), a
    negative binomial background. A hot day (two or three times the usual coverage) may
    open an episode now and then; a Poisson test would fire on most of them."""
    episodes = 0
    for seed in range(10):
        rng = np.random.default_rng(seed)
        hours = 8 * WEEK
        totals = rng.poisson(volume_curve(hours))
        daily_factor = np.repeat(rng.gamma(1 / 0.3, 0.3, hours // 24), 24)
        counts = rng.poisson(totals * 0.02 * daily_factor)
        s = series(counts, totals)
        episodes += len(replay(s, PARAMS))
        assert assess(s, end_of(hours), PARAMS).dispersion > 0.05
    # Ten topics for four weeks (9.2 topic-months, 6720 windows): under 0.7 a topic-month.
    assert episodes <= 6


def test_daily_cycle_is_silent() -> None:
    """A strong day/night cycle in volume and a topic that peaks every morning (a
    daily briefing) are the baseline, not news."""
    rng = np.random.default_rng(7)
    hours = 8 * WEEK
    totals = rng.poisson(volume_curve(hours, base=150, daily=0.9))
    share = np.where(np.isin(np.arange(hours) % 24, (6, 7)), 0.12, 0.02)
    counts = rng.binomial(totals, share)
    assert find_spikes(series(counts, totals), PARAMS) == []
    # Without the hour-of-week baseline the briefing hours would look like spikes.
    blind = SpikeParams(prior_stories=1e6)
    assert find_spikes(series(counts, totals), blind) != []


def test_outage_is_silent() -> None:
    counts, totals = poisson_background(5, 0.02, seed=3)
    before = assess(series(counts, totals), end_of(len(counts)), PARAMS)
    # Most sources fail; the one left writes a lot about the topic: its share jumps.
    totals[-1] = max(1, totals[-1] // 8)
    counts[-1] = min(totals[-1], before.observed + 6)
    spike = assess(series(counts, totals), end_of(len(counts)), PARAMS)
    assert spike.status == "outage"
    assert not spike.fired
    totals[-1] = counts[-1] = 0
    assert assess(series(counts, totals), end_of(len(counts)), PARAMS).status == "outage"


def test_volume_growth_scales_the_expectation() -> None:
    """Twice the usual volume (a new source) doubles the expectation: no alert for a
    topic whose share is unchanged."""
    counts, totals = poisson_background(5, 0.05, seed=4)
    before = assess(series(counts, totals), end_of(len(counts)), PARAMS)
    rng = np.random.default_rng(40)
    totals[-1] *= 2
    counts[-1] = rng.binomial(totals[-1], 0.05)
    spike = assess(series(counts, totals), end_of(len(counts)), PARAMS)
    assert not spike.fired
    assert spike.rate == before.rate  # the baseline is the same: only the volume grew
    assert spike.expected == pytest.approx(spike.rate * (totals[-1] - counts[-1]))
    assert spike.expected > 1.8 * before.expected


def test_a_topic_of_nearly_every_story_is_silent_when_it_has_them_all() -> None:
    """A broad topic (中国 in Chinese news) or one scoped to a source that writes about
    little else: 95 % of the stories. A window of its stories alone, nothing else, was
    expected to hold none (the expectation scales with the other stories) and fired at
    p = 0, lift ∞: 334 windows, 87 episodes in four weeks of plain background. One other
    story at least is expected now, and the topic's usual share of it."""
    rng = np.random.default_rng(21)
    totals = rng.poisson(volume_curve(8 * WEEK, base=8))
    counts = rng.binomial(totals, 0.95)
    s = series(counts, totals)
    alone = [end for end in range(5 * WEEK, 8 * WEEK) if counts[end - 1] == totals[end - 1] >= 4]
    assert len(alone) > 100  # the windows the old expectation called spikes
    assert find_spikes(s, PARAMS) == [] and replay(s, PARAMS) == []
    spike = assess(s, end_of(alone[0]), PARAMS)
    assert spike.status == "quiet" and spike.expected == pytest.approx(spike.rate)


def test_replay_opens_one_alert_per_episode() -> None:
    counts, totals = poisson_background(5, 0.02, seed=8)
    counts[-10:-4] += 25  # six elevated hours: one episode
    totals[-10:-4] += 25
    s = series(counts, totals)
    assert len(find_spikes(s, PARAMS)) >= 5
    opened = replay(s, PARAMS)
    assert len(opened) == 1
    assert opened[0].window_end == end_of(len(counts) - 9)


def test_small_counts_need_min_stories() -> None:
    hours = 5 * WEEK
    totals = np.full(hours, 50)
    counts = np.zeros(hours, dtype=int)
    counts[-1] = PARAMS.min_stories - 1
    below = assess(series(counts, totals), end_of(hours), PARAMS)
    assert not below.fired and below.p_value < PARAMS.max_p_value  # rare, but too few
    counts[-1] = PARAMS.min_stories + 1
    assert assess(series(counts, totals), end_of(hours), PARAMS).fired  # a new topic


def test_short_history_never_alerts() -> None:
    counts = np.zeros(48, dtype=int)
    totals = np.full(48, 100)
    counts[-1] = 50
    spike = assess(series(counts, totals), end_of(48), PARAMS)
    assert spike.status == "no_baseline" and not spike.fired


def test_cooldown_drops_repeats() -> None:
    counts, totals = poisson_background(5, 0.02, seed=6)
    for hour in (-30, -29, -3):
        counts[hour] += 20
        totals[hour] += 20
    s = series(counts, totals)
    found = find_spikes(s, PARAMS)
    assert len(found) == 3
    # -30 and -29 are one episode; -3 is a new one, 27 hours after the alert at -30
    assert [a.window_end for a in replay(s, PARAMS)] == [found[0].window_end, found[2].window_end]
    longer = SpikeParams(cooldown_hours=30)
    assert [a.window_end for a in replay(s, longer)] == [found[0].window_end]


def test_params_are_validated() -> None:
    with pytest.raises(ValueError):
        SpikeParams(max_p_value=0.1, rearm_p_value=0.01)
    with pytest.raises(ValueError):
        SpikeParams(window_hours=0)


# --- tail probabilities ----------------------------------------------------------------


def _poisson_tail(k: int, mean: float) -> float:
    return sum(math.exp(-mean + j * math.log(mean) - math.lgamma(j + 1)) for j in range(k, k + 400))


def _nbinom_tail(k: int, mean: float, size: float) -> float:
    p = size / (size + mean)
    return sum(
        math.exp(
            math.lgamma(j + size)
            - math.lgamma(size)
            - math.lgamma(j + 1)
            + size * math.log(p)
            + j * math.log1p(-p)
        )
        for j in range(k, k + 2000)
    )


@pytest.mark.parametrize("mean", [0.05, 1.0, 4.5, 30.0])
@pytest.mark.parametrize("k", [1, 3, 8, 40])
def test_poisson_tail(mean: float, k: int) -> None:
    assert poisson_sf(k, mean) == pytest.approx(_poisson_tail(k, mean), rel=1e-9, abs=1e-300)


@pytest.mark.parametrize("mean", [0.05, 1.0, 4.5, 30.0])
@pytest.mark.parametrize("k", [1, 3, 8, 40])
@pytest.mark.parametrize("size", [0.7, 3.0, 50.0])
def test_negative_binomial_tail(mean: float, k: int, size: float) -> None:
    assert nbinom_sf(k, mean, size) == pytest.approx(_nbinom_tail(k, mean, size), rel=1e-8)


def test_tail_edges() -> None:
    assert nbinom_sf(0, 3.0, 2.0) == 1.0
    assert nbinom_sf(2, 0.0, 2.0) == 0.0
    assert nbinom_sf(5, 2.0, math.inf) == pytest.approx(poisson_sf(5, 2.0))
    # More dispersion, fatter tail.
    assert nbinom_sf(10, 2.0, 1.0) > nbinom_sf(10, 2.0, 100.0) > poisson_sf(10, 2.0)


@pytest.mark.parametrize(
    ("zone", "change"),
    [
        ("Europe/Berlin", datetime(2026, 3, 29, 1, tzinfo=UTC)),  # 02:00 CET to 03:00 CEST
        ("America/New_York", datetime(2026, 11, 1, 6, tzinfo=UTC)),  # 02:00 EDT to 01:00 EST
    ],
)
def test_the_baseline_is_the_same_local_hour_across_a_daylight_saving_change(
    zone: str, change: datetime
) -> None:
    """A topic of the 08:00 local news (ten stories in that hour each day, of 100 an
    hour), tested at 08:00 the morning after a daylight saving change. Before: the
    baseline was the same UTC hour of earlier weeks, which was 07:00 or 09:00 local
    before the change and held none of its stories: expected 0.3, p = 3e-11, an alert
    for the usual morning. Now the same local hour: expected 8.5, quiet. In UTC (no
    zone) it still fires."""
    local = ZoneInfo(zone)
    start = change - timedelta(weeks=5)
    hours = 5 * HOURS_PER_WEEK + 4 * 24
    moments = [start + timedelta(hours=i) for i in range(hours)]
    counts = [10 if m.astimezone(local).hour == 8 else 0 for m in moments]
    series = HourlySeries(start, counts, [100] * hours)
    after = (change + timedelta(days=1)).astimezone(local).replace(hour=9, minute=0)
    at = after.astimezone(UTC)  # the end of the 08:00 local hour, the next morning
    assert series.counts[series.index(at) - 1] == 10
    params = SpikeParams()
    assert assess(series, at, params, "morning", ZoneInfo(zone)).status == "quiet"
    assert assess(series, at, params, "morning").status == "spike"  # in UTC
    # The same local hour far from any change: the two agree.
    calm = (change - timedelta(days=5)).astimezone(local).replace(hour=9).astimezone(UTC)
    assert assess(series, calm, params, "morning", ZoneInfo(zone)).status == "quiet"
