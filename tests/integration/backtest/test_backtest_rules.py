"""The fast kernel's rules on hand-built candles, each price known exactly, checked against the event engine."""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import pandas as pd
import pytest

from tradefleet.core.precision import floor_to_step, round_to_tick
from tradefleet.core.risk import RiskSettings
from tradefleet.core.strategy import IStrategy
from tradefleet.engine.backtest import BacktestConfig, BacktestResult, BacktestTrade, run_fast_backtest
from tradefleet.engine.backtest._kernel import floor_to_step as jit_floor
from tradefleet.engine.backtest._kernel import round_to_tick as jit_round
from tradefleet.services.backtest import run_event_backtest

PAIR = "TST/USDT"
TF_MS = 300_000
T0 = int(pd.Timestamp("2024-01-01", tz="UTC").value // 1_000_000)
SLIP = 5 / 10_000
FEE = 0.001

Row = tuple[float, float, float, float]


def frame(rows: list[Row]) -> pd.DataFrame:
    arr = np.array(rows, dtype="float64")
    dates = pd.to_datetime(T0 + TF_MS * np.arange(len(rows)), unit="ms", utc=True).astype("datetime64[ms, UTC]")
    return pd.DataFrame(
        {"date": dates, "open": arr[:, 0], "high": arr[:, 1], "low": arr[:, 2], "close": arr[:, 3], "volume": 1.0}
    )


def flat(n: int, price: float = 100.0) -> list[Row]:
    return [(price, price + 0.5, price - 0.5, price)] * n


def at(i: int) -> int:
    return T0 + i * TF_MS


def scripted(entries: list[int], exits: list[int] = (), **attrs: object) -> IStrategy:  # type: ignore[assignment]
    """Return a strategy whose signals fire on the given candle indexes."""

    class Scripted(IStrategy):
        minimal_roi: ClassVar[dict[str, float]] = {"0": 10.0}
        stoploss = -0.05

        def populate_entry_trend(self, df: pd.DataFrame) -> pd.DataFrame:
            df["enter_long"] = np.isin(np.arange(len(df)), entries).astype("int8")
            df["enter_tag"] = "scripted"
            return df

        def populate_exit_trend(self, df: pd.DataFrame) -> pd.DataFrame:
            df["exit_long"] = np.isin(np.arange(len(df)), exits).astype("int8")
            return df

    for key, value in attrs.items():
        setattr(Scripted, key, value)
    return Scripted()


def run_both(rows: list[Row], strategy: IStrategy, **risk: object) -> list[BacktestTrade]:
    cfg = BacktestConfig(
        strategy="Scripted",
        pairs=(PAIR,),
        timeframe="5m",
        start_ms=T0,
        quote_currency="USDT",
        risk=RiskSettings(**{"stake_mode": "fixed", "stake_amount": 500.0, **risk}),  # type: ignore[arg-type]
    )
    candles = {PAIR: frame(rows)}
    fast: BacktestResult = run_fast_backtest(cfg, candles, strategy)
    event = run_event_backtest(cfg, candles, strategy)
    assert [t.key() for t in fast.trades] == [t.key() for t in event.trades]
    np.testing.assert_array_equal(fast.equity, event.equity)
    return fast.trades


def test_entry_buys_at_next_open_with_slippage_and_fee_sized_on_the_signal_close() -> None:
    rows = flat(10)
    rows[4] = (101.0, 101.5, 100.5, 101.0)
    (trade,) = run_both(rows, scripted([3]))
    price = 101.0 * (1 + SLIP)
    assert trade.is_open and trade.open_ms == at(4)
    assert trade.amount == floor_to_step(500.0 / 100.0, 1e-8)
    assert trade.open_rate == pytest.approx(price, rel=1e-15)
    assert trade.fee_open == trade.amount * price * FEE


def test_stoploss_fills_at_stop_price_when_candle_trades_through_it() -> None:
    rows = flat(12)
    rows[7] = (100.0, 100.2, 90.0, 95.0)
    (trade,) = run_both(rows, scripted([3]))
    stop = round_to_tick(100.0 * (1 + SLIP) * 0.95, 1e-8)
    assert trade.exit_reason == "stop_loss" and trade.close_ms == at(8)
    assert trade.close_rate == pytest.approx(stop * (1 - SLIP), rel=1e-15)


def test_stoploss_fills_at_open_when_candle_gaps_down_below_it() -> None:
    rows = flat(12)
    rows[7] = (80.0, 81.0, 79.0, 80.5)
    (trade,) = run_both(rows, scripted([3]))
    assert trade.exit_reason == "stop_loss"
    assert trade.close_rate == pytest.approx(80.0 * (1 - SLIP), rel=1e-15)


def test_stop_guards_the_entry_candle_itself() -> None:
    rows = flat(12)
    rows[4] = (100.0, 100.1, 90.0, 99.0)  # the fill candle trades through the stop
    (trade,) = run_both(rows, scripted([3]))
    assert trade.exit_reason == "stop_loss" and trade.close_ms == at(5)


def test_roi_is_checked_on_the_close_and_exits_at_the_next_open() -> None:
    rows = flat(14)
    rows[6] = (100.0, 104.0, 100.0, 103.5)
    rows[7] = (103.0, 103.5, 102.5, 103.0)
    (trade,) = run_both(rows, scripted([3], minimal_roi={"0": 0.03}))
    assert trade.exit_reason == "roi" and trade.close_ms == at(7)
    assert trade.close_rate == pytest.approx(103.0 * (1 - SLIP), rel=1e-15)


def test_roi_table_steps_down_with_the_age_of_the_trade() -> None:
    rows = flat(20)
    for i in range(5, 20):
        rows[i] = (101.0, 101.2, 100.8, 101.0)
    (trade,) = run_both(rows, scripted([3], minimal_roi={"0": 0.05, "30": 0.005}))
    assert trade.exit_reason == "roi" and trade.close_ms == at(10)


def test_exit_signal_sells_at_next_open_and_blocks_a_same_candle_entry() -> None:
    rows = flat(14)
    rows[8] = (99.0, 99.5, 98.5, 99.0)
    trades = run_both(rows, scripted([3, 7, 9], exits=[7]))
    assert [t.exit_reason for t in trades] == ["exit_signal", ""]
    assert trades[0].close_rate == pytest.approx(99.0 * (1 - SLIP), rel=1e-15)
    assert trades[1].open_ms == at(10)  # the entry signal on the exit candle was ignored


def test_trailing_stop_follows_the_high_and_exits_as_trailing_stop_loss() -> None:
    rows = flat(16)
    rows[5] = (100.0, 120.0, 99.8, 119.0)  # stop moves to 120 × 0.95 = 114, resting from candle 6
    rows[6] = (119.0, 119.5, 110.0, 112.0)
    (trade,) = run_both(rows, scripted([3], trailing_stop=True))
    assert trade.exit_reason == "trailing_stop_loss" and trade.close_ms == at(7)
    assert trade.close_rate == pytest.approx(114.0 * (1 - SLIP), rel=1e-15)


def test_trailing_stop_above_the_next_open_fills_at_once_at_that_open() -> None:
    rows = flat(16)
    rows[5] = (100.0, 120.0, 99.8, 119.0)  # new stop 114 is placed after candle 5 closes…
    rows[6] = (110.0, 111.0, 109.0, 110.0)  # …while the price (next open) is already 110
    (trade,) = run_both(rows, scripted([3], trailing_stop=True))
    assert trade.exit_reason == "trailing_stop_loss" and trade.close_ms == at(6)
    assert trade.close_rate == pytest.approx(110.0 * (1 - SLIP), rel=1e-15)


def test_cooldown_skips_entries_right_after_an_exit() -> None:
    rows = flat(20)
    rows[8] = (99.0, 99.5, 98.5, 99.0)
    trades = run_both(rows, scripted([3, 8, 9, 12], exits=[7]), cooldown={"candles": 4})
    assert [t.open_ms for t in trades] == [at(4), at(13)]


def test_open_trade_stays_open_and_equity_marks_it_at_the_last_close() -> None:
    rows = flat(8)
    rows[-1] = (100.0, 110.5, 99.5, 110.0)
    cfg = BacktestConfig(
        strategy="S",
        pairs=(PAIR,),
        timeframe="5m",
        start_ms=T0,
        quote_currency="USDT",
        risk=RiskSettings(stake_mode="fixed", stake_amount=500.0),
    )
    result = run_fast_backtest(cfg, {PAIR: frame(rows)}, scripted([3]))
    (trade,) = result.trades
    assert trade.is_open and trade.close_rate is None
    cash = 1000.0 - (trade.amount * trade.open_rate + trade.fee_open)
    assert result.equity[-1] == cash + trade.amount * 110.0
    assert len(result.equity) == len(rows) and result.equity_ms[-1] == at(8)


@pytest.mark.parametrize("step", [1e-8, 1e-5, 0.001, 0.01, 1.0, 1e-3])
def test_compiled_rounding_equals_core_precision(step: float) -> None:
    rng = np.random.default_rng(5)
    decimals = max(0, -int(np.floor(np.log10(step))) + 2)
    p10 = 10.0**decimals
    values = np.concatenate(
        [
            rng.lognormal(0.0, 4.0, 20_000),
            np.round(rng.uniform(0, 1000, 5_000) / step) * step,  # values on the step
        ]
    )
    for v in values:
        assert jit_floor(float(v), step, p10) == floor_to_step(float(v), step), v
        assert jit_round(float(v), step, p10) == round_to_tick(float(v), step), v
