"""A small two-pair backtest result, its metrics and candles, shared by the report tests."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
import pytest

from tradefleet.adapters.reports import backtest_metrics
from tradefleet.core.metrics import Metrics
from tradefleet.core.risk import RiskSettings
from tradefleet.engine.backtest.types import BacktestConfig, BacktestResult, BacktestTrade

T0 = 1_704_067_200_000  # 2024-01-01 00:00 UTC
HOUR = 3_600_000
CANDLES = 72  # three days of 1h candles


@pytest.fixture
def result() -> BacktestResult:
    config = BacktestConfig(
        strategy="SmaCross",
        pairs=("BTC/USDT", "ETH/USDT", "SOL/USDT"),
        timeframe="1h",
        start_ms=T0,
        end_ms=T0 + CANDLES * HOUR,
        strategy_params={"fast": 10, "slow": 30},
        risk=RiskSettings(stake_mode="fixed", stake_amount=100.0, max_open_trades=2),
        starting_balance=1000.0,
        quote_currency="USDT",
    )
    trades = [
        # 1 BTC bought at 100, sold at 110: +10 − fees 0.1 + 0.11
        BacktestTrade("BTC/USDT", T0 + 2 * HOUR, T0 + 8 * HOUR, 100.0, 110.0, 1.0, 0.1, 0.11, "roi", "golden"),
        BacktestTrade("BTC/USDT", T0 + 20 * HOUR, T0 + 30 * HOUR, 105.0, 107.0, 1.0, 0.105, 0.107, "exit_signal", ""),
        BacktestTrade("ETH/USDT", T0 + 5 * HOUR, T0 + 9 * HOUR, 10.0, 9.5, 5.0, 0.05, 0.0475, "stop_loss", "golden"),
        BacktestTrade("ETH/USDT", T0 + 60 * HOUR, None, 10.0, None, 5.0, 0.05, 0.0, "", "golden", is_open=True),
    ]
    ms = T0 + HOUR * np.arange(CANDLES, dtype=np.int64)
    equity = 1000.0 + np.concatenate([np.linspace(0.0, 9.8, 24), np.linspace(9.8, 5.0, 24), np.linspace(5.0, 11.2, 24)])
    return BacktestResult(config, trades, ms, equity, candles=3 * CANDLES, elapsed_s=0.25, data_fingerprint="abc123")


@pytest.fixture
def metrics(result: BacktestResult) -> Metrics:
    return backtest_metrics(result, market_change=0.0425)


def candle_frame(n: int, start_ms: int = T0, step_ms: int = HOUR, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    close = 100.0 * np.exp(np.cumsum(rng.normal(0.0, 0.01, n)))
    frame = pd.DataFrame(
        {
            "date": pd.to_datetime(start_ms + step_ms * np.arange(n, dtype=np.int64), unit="ms", utc=True),
            "open": close,
            "high": close * 1.01,
            "low": close * 0.99,
            "close": close,
            "volume": 1.0,
        }
    )
    frame["sma_fast"] = frame["close"].rolling(5).mean()
    frame["rsi"] = 50.0 + 10.0 * np.sin(np.arange(n) / 5.0)
    return frame


@pytest.fixture
def make_candles() -> Callable[..., pd.DataFrame]:
    """Return the candle frame builder: ``make_candles(n, start_ms=T0, step_ms=HOUR, seed=0)``."""
    return candle_frame


@pytest.fixture
def candles() -> dict[str, pd.DataFrame]:
    return {"BTC/USDT": candle_frame(CANDLES, seed=1), "ETH/USDT": candle_frame(CANDLES, seed=2)}
