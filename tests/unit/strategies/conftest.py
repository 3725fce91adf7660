"""Deterministic candles for strategy tests: a seeded geometric random walk."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
import pytest

CandleFactory = Callable[..., pd.DataFrame]


def make_gbm_candles(n: int = 4000, *, seed: int = 42, sigma: float = 0.004, freq: str = "5min") -> pd.DataFrame:
    """Return ``n`` candles of a random walk with volatility regimes and log-normal volume spikes."""
    rng = np.random.default_rng(seed)
    vol = sigma * np.exp(0.6 * np.sin(np.arange(n) / 150.0))
    close = 100.0 * np.exp(np.cumsum(rng.normal(0.0, 1.0, n) * vol))
    open_ = np.concatenate([[100.0], close[:-1]])
    wick = np.abs(rng.normal(0.0, 0.5, (2, n))) * vol
    return pd.DataFrame(
        {
            "date": pd.date_range("2024-01-01", periods=n, freq=freq, tz="UTC"),
            "open": open_,
            "high": np.maximum(open_, close) * (1 + wick[0]),
            "low": np.minimum(open_, close) * (1 - wick[1]),
            "close": close,
            "volume": rng.lognormal(6.0, 0.9, n),
        }
    )


@pytest.fixture
def gbm_candles() -> CandleFactory:
    """Factory of seeded random-walk candle frames (``n``, ``seed``, ``sigma``, ``freq``)."""
    return make_gbm_candles
