"""Both backtest engines give the same trades and the same equity curve, to the last bit.

The event engine is the live engine (bot runtime, hub, fleet, simulated venue, SQLite store) on a sim clock;
the fast engine is the compiled kernel. Every built-in strategy runs, tuned so that ROI, stoploss, trailing
stop and exit signals all fire, over synthetic and real candles, with one and two open trades, percent and
fixed stakes and the protections on.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tradefleet.adapters.data.generator import generate_market
from tradefleet.core.risk import RiskSettings
from tradefleet.core.strategy import IStrategy
from tradefleet.engine.backtest import BacktestConfig, BacktestResult, run_fast_backtest
from tradefleet.services.backtest import run_backtest, run_event_backtest
from tradefleet.strategies.loader import builtin_strategies

T0 = int(pd.Timestamp("2024-01-01", tz="UTC").value // 1_000_000)
TF_MS = 300_000
WARMUP = 400  # candles before the start: covers every built-in's startup_candle_count
PAIRS = ("ETH/BTC", "ADA/BTC")
REASONS = {"roi", "exit_signal", "stop_loss", "trailing_stop_loss"}


def tuned(name: str) -> type[IStrategy]:
    """Return the built-in ``name`` with a trailing stop and a tight ROI table, so every exit reason occurs."""
    base = builtin_strategies()[name]
    return type(
        f"Tuned{name}",
        (base,),
        {
            "trailing_stop": True,
            "trailing_stop_positive": 0.004,
            "trailing_stop_positive_offset": 0.008,
            "trailing_only_offset_is_reached": True,
            "minimal_roi": {"0": 0.02, "60": 0.01, "240": 0.004},
            "stoploss": -0.015,
        },
    )


RISKS = {
    "one_trade_percent_cooldown": RiskSettings(
        stake_mode="percent", stake_amount=90.0, max_open_trades=1, cooldown={"candles": 3}
    ),
    "two_trades_fixed_guarded": RiskSettings(
        stake_mode="fixed",
        stake_amount=0.3,
        max_open_trades=2,
        stoploss=-0.01,
        cooldown={"candles": 2},
        stoploss_guard={"enabled": True, "lookback_candles": 24, "trade_limit": 2, "stop_candles": 6},
        max_drawdown={"enabled": True, "max_drawdown": 0.03, "stop_candles": 24},
    ),
    "two_trades_percent": RiskSettings(stake_mode="percent", stake_amount=45.0, max_open_trades=2),
}


def config(name: str, risk: RiskSettings, start_ms: int, engine: str = "fast") -> BacktestConfig:
    return BacktestConfig(
        strategy=name,
        pairs=PAIRS,
        timeframe="5m",
        start_ms=start_ms,
        risk=risk,
        starting_balance=1.0,
        quote_currency="BTC",
        engine=engine,  # type: ignore[arg-type]
    )


@pytest.fixture(scope="module")
def synthetic() -> dict[str, pd.DataFrame]:
    return {p: generate_market(p, "5m", start_ms=T0, candles=3000, seed=11) for p in PAIRS}


_REAL: dict[str, pd.DataFrame] = {}


@pytest.fixture
def real(real_data_dir: Path) -> dict[str, pd.DataFrame]:
    """ETH/BTC and ADA/BTC 5m candles of the shared real data set (their gaps differ: a misaligned timeline)."""
    if _REAL:
        return _REAL
    folder = real_data_dir
    frames = {}
    for pair in PAIRS:
        path = folder / f"{pair.replace('/', '_')}-5m.feather"
        if not path.is_file():
            pytest.skip(f"real candles {path.name} not found in {folder}")
        frame = pd.read_feather(path)
        frame["date"] = frame["date"].astype("datetime64[ms, UTC]")
        frames[pair] = frame
    _REAL.update(frames)
    return _REAL


def start_of(frames: dict[str, pd.DataFrame]) -> int:
    return int(frames[PAIRS[0]]["date"].iloc[WARMUP].value // 1_000_000)


def assert_same(fast: BacktestResult, event: BacktestResult) -> None:
    fast_keys = [t.key() for t in fast.trades]
    event_keys = [t.key() for t in event.trades]
    for k, (a, b) in enumerate(zip(fast_keys, event_keys, strict=False)):
        assert a == b, f"trade {k} differs:\n fast  {a}\n event {b}"
    assert fast_keys == event_keys
    assert [t.enter_tag for t in fast.trades] == [t.enter_tag for t in event.trades]
    assert [t.is_open for t in fast.trades] == [t.is_open for t in event.trades]
    np.testing.assert_array_equal(fast.equity_ms, event.equity_ms)
    np.testing.assert_array_equal(fast.equity, event.equity)  # exact, not approximate
    assert fast.candles == event.candles


CASES = [(s, r) for s in builtin_strategies() for r in RISKS]


@pytest.mark.parametrize(("strategy", "risk"), CASES)
def test_fast_and_event_engines_trade_identically_on_synthetic_candles(
    synthetic: dict[str, pd.DataFrame], strategy: str, risk: str
) -> None:
    cfg = config(strategy, RISKS[risk], start_of(synthetic))
    fast = run_fast_backtest(cfg, synthetic, tuned(strategy)())
    event = run_event_backtest(cfg, synthetic, tuned(strategy)())
    assert len(event.trades) > 5, "the case should trade"
    assert_same(fast, event)


@pytest.mark.realdata
@pytest.mark.parametrize(("strategy", "risk"), CASES)
def test_fast_and_event_engines_trade_identically_on_real_candles(
    real: dict[str, pd.DataFrame], strategy: str, risk: str
) -> None:
    cfg = config(strategy, RISKS[risk], start_of(real))
    fast = run_fast_backtest(cfg, real, tuned(strategy)())
    event = run_event_backtest(cfg, real, tuned(strategy)())
    assert len(event.trades) > 0
    assert_same(fast, event)


@pytest.mark.parametrize("strategy", list(builtin_strategies()))
def test_untuned_builtins_trade_identically(synthetic: dict[str, pd.DataFrame], strategy: str) -> None:
    cls = builtin_strategies()[strategy]
    cfg = config(strategy, RISKS["two_trades_percent"], start_of(synthetic))
    assert_same(run_fast_backtest(cfg, synthetic, cls()), run_event_backtest(cfg, synthetic, cls()))


def test_every_exit_reason_occurs_in_the_parity_cases(synthetic: dict[str, pd.DataFrame]) -> None:
    reasons: Counter[str] = Counter()
    for strategy, risk in CASES:
        result = run_fast_backtest(config(strategy, RISKS[risk], start_of(synthetic)), synthetic, tuned(strategy)())
        reasons.update(t.exit_reason for t in result.trades if not t.is_open)
    assert set(reasons) >= REASONS, reasons


def test_run_backtest_dispatches_on_the_engine_name(synthetic: dict[str, pd.DataFrame]) -> None:
    cls = tuned("SmaCross")
    start = start_of(synthetic)
    fast = run_backtest(config("SmaCross", RISKS["two_trades_percent"], start, "fast"), synthetic, cls())
    event = run_backtest(config("SmaCross", RISKS["two_trades_percent"], start, "event"), synthetic, cls())
    assert_same(fast, event)
    assert fast.data_fingerprint == event.data_fingerprint != ""
