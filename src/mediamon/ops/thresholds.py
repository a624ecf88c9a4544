"""The thresholds of the watchdog (:mod:`mediamon.ops.health`) and of the data-quality
checks (:mod:`mediamon.ops.quality`), read by :meth:`mediamon.settings.Settings.from_env`
from ``MEDIAMON_HEALTH_*`` and ``MEDIAMON_QUALITY_*``; every value is clamped to a sane
range, a value that is not a (finite) number is a :class:`~mediamon.errors.ConfigError`
naming the variable."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta

from mediamon.errors import ConfigError


@dataclass(frozen=True)
class HealthThresholds:
    """When the watchdog calls something a problem; ``MEDIAMON_HEALTH_*`` variables
    override each (see :meth:`from_env`).

    Attributes:
        failing_polls: Consecutive failed polls that make a source ``source_failing``.
        silent_factor: A source is silent after this many times its usual interval (and
            a poll since then found nothing new).
        min_silence: ... and never before this long (a source that publishes every 15
            minutes may pause for an hour at night).
        history: How far back the usual interval and volume are learned.
        min_arrivals: Arrivals (runs that brought new articles) needed to learn an interval.
        volume_window: The hours compared for the volume cliff.
        volume_ratio: A cliff: fewer than this share of the past weeks' median.
        min_volume: ... and only when that median has at least this many articles.
        alert_age: Alerts pending longer than this are ``alerts_undelivered``.
        stale_after: No successful ingest run for this long is ``ingest_stale``.
        flap_window: An incident found again within this long of its last episode's
            recovery is flapping: its recovery is mailed once it stays clear this long.
    """

    failing_polls: int = 3
    silent_factor: float = 4.0
    min_silence: timedelta = timedelta(hours=2)
    history: timedelta = timedelta(days=28)
    min_arrivals: int = 5
    volume_window: timedelta = timedelta(hours=3)
    volume_ratio: float = 0.3
    min_volume: int = 20
    alert_age: timedelta = timedelta(hours=1)
    stale_after: timedelta = timedelta(hours=1)
    flap_window: timedelta = timedelta(hours=6)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> HealthThresholds:
        """Thresholds with ``MEDIAMON_HEALTH_<NAME>`` overrides (durations in minutes:
        ``MEDIAMON_HEALTH_MIN_SILENCE_MINUTES``); every value is clamped to a sane range."""
        env = os.environ if environ is None else environ
        d = cls()

        def number(name: str, default: float, low: float, high: float) -> float:
            return _number(env, f"MEDIAMON_HEALTH_{name}", default, low, high)

        def minutes(name: str, default: timedelta, high_days: float) -> timedelta:
            value = number(f"{name}_MINUTES", default.total_seconds() / 60, 1, high_days * 1440)
            return timedelta(minutes=value)

        return cls(
            failing_polls=int(number("FAILING_POLLS", d.failing_polls, 1, 1000)),
            silent_factor=number("SILENT_FACTOR", d.silent_factor, 1, 1000),
            min_silence=minutes("MIN_SILENCE", d.min_silence, 30),
            history=minutes("HISTORY", d.history, 365),
            min_arrivals=int(number("MIN_ARRIVALS", d.min_arrivals, 2, 10_000)),
            volume_window=minutes("VOLUME_WINDOW", d.volume_window, 2),
            volume_ratio=number("VOLUME_RATIO", d.volume_ratio, 0, 1),
            min_volume=int(number("MIN_VOLUME", d.min_volume, 1, 1e9)),
            alert_age=minutes("ALERT_AGE", d.alert_age, 30),
            stale_after=minutes("STALE_AFTER", d.stale_after, 30),
            flap_window=minutes("FLAP", d.flap_window, 7),
        )


@dataclass(frozen=True)
class QualityLimits:
    """Thresholds of the checks; ``MEDIAMON_QUALITY_*`` environment variables override them.

    Attributes:
        future_tolerance: Publication times this far past the run's time are tolerated
            (clock skew); later ones fail ``no_future_publication``.
        max_empty_rate: Highest share of a source's items that may yield no article
            (no text extracted, page not fetched) before ``empty_extraction_rate`` fails.
        max_duplicate_rate: Highest share of the run's new articles that may be copies of
            stored ones before ``duplicate_rate`` fails (near 1: deduplication gone wild,
            or a source republishing its archive).
        min_items: Rates are judged only from this many items up (a source with 2 items,
            one empty, is not 50 % broken).
    """

    future_tolerance: timedelta = timedelta(hours=1)
    max_empty_rate: float = 0.5
    max_duplicate_rate: float = 0.9
    min_items: int = 5

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> QualityLimits:
        env = os.environ if environ is None else environ
        defaults = cls()
        return cls(
            future_tolerance=timedelta(
                minutes=_number(
                    env,
                    "MEDIAMON_QUALITY_FUTURE_TOLERANCE_MINUTES",
                    defaults.future_tolerance.total_seconds() / 60,
                    0,
                    7 * 24 * 60,
                )
            ),  # fmt: skip
            max_empty_rate=_number(
                env, "MEDIAMON_QUALITY_MAX_EMPTY_RATE", defaults.max_empty_rate, 0, 1
            ),
            max_duplicate_rate=_number(
                env, "MEDIAMON_QUALITY_MAX_DUPLICATE_RATE", defaults.max_duplicate_rate, 0, 1
            ),
            min_items=int(_number(env, "MEDIAMON_QUALITY_MIN_ITEMS", defaults.min_items, 1, 1e6)),
        )


def _number(env: Mapping[str, str], name: str, default: float, low: float, high: float) -> float:
    """A number from ``env``, clamped to [low, high]; not a number is a config error.

    NaN and infinity are refused rather than clamped: ``min(max(nan, low), high)`` is NaN,
    every comparison with it is false (the check it sets never fires), and ``int(nan)``
    fails without naming the variable.
    """
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError as error:
        raise ConfigError(f"{name}={raw!r}: expected a number") from error
    if not math.isfinite(value):
        raise ConfigError(f"{name}={raw!r}: expected a finite number")
    return min(max(value, low), high)
