"""Clocks: the only thing that differs between a test, a paper run and live trading."""

from __future__ import annotations

import time


class SimClock:
    """A clock moved by hand (tests, event-driven backtests)."""

    def __init__(self, start_ms: int = 0) -> None:
        self._now = start_ms

    def now_ms(self) -> int:
        return self._now

    def set(self, now_ms: int) -> None:
        if now_ms < self._now:
            raise ValueError(f"clock cannot go back from {self._now} to {now_ms}")
        self._now = now_ms


class AcceleratedClock:
    """Wall clock running ``speed`` times faster from ``start_ms`` (paper trading on replayed markets)."""

    def __init__(self, start_ms: int, speed: float) -> None:
        if speed <= 0:
            raise ValueError(f"speed must be positive, got {speed}")
        self.start_ms = start_ms
        self.speed = speed
        self._wall0 = time.monotonic()

    def now_ms(self) -> int:
        return self.start_ms + int((time.monotonic() - self._wall0) * 1000 * self.speed)

    def wall_seconds_until(self, sim_ms: int) -> float:
        """Return wall seconds until the simulated time reaches ``sim_ms``."""
        return max(0.0, (sim_ms - self.now_ms()) / 1000 / self.speed)


class AnchoredClock:
    """Market time shared by processes: ``market_origin_ms`` at wall time ``wall_origin_ms``, ``speed`` x faster.

    Unlike :class:`AcceleratedClock` (anchored to this process's monotonic clock), every process given the
    same anchor computes the same market time, so a bot taken over by another gateway continues on the
    same timeline.
    """

    def __init__(self, wall_origin_ms: int, market_origin_ms: int, speed: float) -> None:
        if speed <= 0:
            raise ValueError(f"speed must be positive, got {speed}")
        self.wall_origin_ms = wall_origin_ms
        self.market_origin_ms = market_origin_ms
        self.speed = speed

    def now_ms(self) -> int:
        return self.market_origin_ms + int((time.time_ns() // 1_000_000 - self.wall_origin_ms) * self.speed)

    def wall_seconds_until(self, sim_ms: int) -> float:
        """Return wall seconds until market time reaches ``sim_ms``."""
        return max(0.0, (sim_ms - self.now_ms()) / 1000 / self.speed)


class WallClock:
    """Real time (live trading)."""

    def now_ms(self) -> int:
        return time.time_ns() // 1_000_000
