"""Rounding to a venue's tick and step sizes, robust to binary floating point."""

from __future__ import annotations

import math


def _decimals(step: float) -> int:
    return max(0, -math.floor(math.log10(step)) + 2)


def floor_to_step(value: float, step: float) -> float:
    """Floor ``value`` to a multiple of ``step``; a value already on the step stays unchanged."""
    if step <= 0:
        return value
    ratio = value / step
    nearest = round(ratio)
    # A value on the step can land a few ulps below it after division; treat that as on the step.
    tolerance = max(1e-6, abs(ratio) * 1e-14)
    units = nearest if abs(ratio - nearest) < tolerance else math.floor(ratio)
    return round(units * step, _decimals(step))


def round_to_tick(value: float, tick: float) -> float:
    """Round ``value`` to the nearest multiple of ``tick``."""
    if tick <= 0:
        return value
    return round(round(value / tick) * tick, _decimals(tick))
