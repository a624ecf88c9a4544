"""The watchdog's and the quality checks' thresholds from MEDIAMON_HEALTH_* / _QUALITY_*."""

from __future__ import annotations

from datetime import timedelta

import pytest

from mediamon.errors import ConfigError
from mediamon.ops.thresholds import HealthThresholds, QualityLimits


@pytest.mark.parametrize("value", ["nan", " NaN ", "inf", "-inf"])
@pytest.mark.parametrize(
    "name", ["SILENT_FACTOR", "VOLUME_RATIO", "FAILING_POLLS", "MIN_SILENCE_MINUTES"]
)
def test_health_thresholds_refuse_non_finite_values(name: str, value: str) -> None:
    key = f"MEDIAMON_HEALTH_{name}"
    with pytest.raises(ConfigError) as caught:
        HealthThresholds.from_env({key: value})
    assert str(caught.value) == f"{key}={value.strip()!r}: expected a finite number"


@pytest.mark.parametrize("value", ["nan", "inf", "-Infinity"])
@pytest.mark.parametrize(
    "name", ["MAX_EMPTY_RATE", "MAX_DUPLICATE_RATE", "MIN_ITEMS", "FUTURE_TOLERANCE_MINUTES"]
)
def test_quality_limits_refuse_non_finite_values(name: str, value: str) -> None:
    key = f"MEDIAMON_QUALITY_{name}"
    with pytest.raises(ConfigError) as caught:
        QualityLimits.from_env({key: value})
    assert str(caught.value) == f"{key}={value!r}: expected a finite number"


def test_finite_values_are_still_clamped_and_words_still_refused() -> None:
    health = HealthThresholds.from_env(
        {"MEDIAMON_HEALTH_VOLUME_RATIO": "7", "MEDIAMON_HEALTH_MIN_SILENCE_MINUTES": "1e12"}
    )
    assert (health.volume_ratio, health.min_silence) == (1, timedelta(days=30))
    quality = QualityLimits.from_env({"MEDIAMON_QUALITY_MAX_DUPLICATE_RATE": "-1"})
    assert quality.max_duplicate_rate == 0
    with pytest.raises(ConfigError, match="^MEDIAMON_QUALITY_MIN_ITEMS='many': expected a number$"):
        QualityLimits.from_env({"MEDIAMON_QUALITY_MIN_ITEMS": "many"})
