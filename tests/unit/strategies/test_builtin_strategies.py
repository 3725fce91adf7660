"""The four built-in strategies: real indicator maths, tunable parameters, trades on real and random data."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tradefleet.core.indicators import bollinger, ema, macd, rsi
from tradefleet.core.strategy import DecimalParameter, IntParameter, IStrategy
from tradefleet.strategies import (
    BollingerBreakout,
    MacdTrend,
    RsiMeanReversion,
    SmaCross,
    builtin_strategies,
    validate_strategy,
)

CandleFactory = Callable[..., pd.DataFrame]
BUILTINS = [SmaCross, RsiMeanReversion, BollingerBreakout, MacdTrend]
REAL_FILES = ["ETH_BTC-5m.feather", "ADA_BTC-5m.feather"]


def test_builtin_strategies_lists_the_four_classes_by_name() -> None:
    assert builtin_strategies() == {cls.__name__: cls for cls in BUILTINS}


@pytest.mark.parametrize("cls", BUILTINS, ids=lambda c: c.__name__)
def test_builtin_declares_sensible_risk_settings_and_tunable_parameters(cls: type[IStrategy]) -> None:
    assert -1 < cls.stoploss < 0
    assert cls.minimal_roi and all(int(k) >= 0 and 0 <= v < 1 for k, v in cls.minimal_roi.items())
    assert cls.startup_candle_count > 0
    params = cls.parameters()
    assert params and all(isinstance(p, IntParameter | DecimalParameter) for p in params.values())
    assert any(p.optimize for p in params.values())


@pytest.mark.parametrize("cls", BUILTINS, ids=lambda c: c.__name__)
def test_builtin_trades_on_random_walk_candles(cls: type[IStrategy], gbm_candles: CandleFactory) -> None:
    out = cls().analyze(gbm_candles(6000, seed=5))
    entries = out["enter_long"] == 1
    assert entries.sum() >= 5
    assert out["exit_long"].sum() >= 5
    assert (out.loc[entries, "enter_tag"] != "").all()
    assert (out.loc[~entries, "enter_tag"] == "").all()
    assert not entries.iloc[:10].any()  # no signal while every indicator is still warming up


@pytest.mark.realdata
@pytest.mark.parametrize("file", REAL_FILES)
@pytest.mark.parametrize("cls", BUILTINS, ids=lambda c: c.__name__)
def test_builtin_trades_on_real_candles(cls: type[IStrategy], file: str, real_data_dir: Path) -> None:
    candles = pd.read_feather(real_data_dir / file)
    out = cls().analyze(candles, pair=file.split("-", maxsplit=1)[0].replace("_", "/"))
    assert out["enter_long"].sum() >= 20, f"{cls.__name__} hardly trades on {file}"
    assert out["exit_long"].sum() >= 20
    assert len(out) == len(candles)


@pytest.mark.realdata
@pytest.mark.parametrize("cls", BUILTINS, ids=lambda c: c.__name__)
def test_builtin_validates_on_real_candles(cls: type[IStrategy], real_data_dir: Path) -> None:
    candles = pd.read_feather(real_data_dir / "ETH_BTC-5m.feather")
    report = validate_strategy(cls, candles)
    assert report.entries > 0 and report.exits > 0
    assert not report.synthetic and report.candles == len(candles)


def test_sma_cross_enters_exactly_where_sma10_crosses_above_sma50(gbm_candles: CandleFactory) -> None:
    candles = gbm_candles(3000, seed=9)
    out = SmaCross().analyze(candles)
    fast = candles["close"].rolling(10).mean()
    slow = candles["close"].rolling(50).mean()
    above = fast > slow
    crossed_up = above & ~above.shift(1, fill_value=True)
    crossed_down = ~above & above.shift(1, fill_value=False) & slow.notna()
    assert crossed_up.sum() > 5
    np.testing.assert_array_equal(out["enter_long"].to_numpy(), crossed_up.astype("int8").to_numpy())
    np.testing.assert_array_equal(out["exit_long"].to_numpy(), crossed_down.astype("int8").to_numpy())
    assert set(out.loc[crossed_up, "enter_tag"]) == {"sma_cross"}


def test_sma_cross_has_a_trailing_stop_configured_but_off_by_default() -> None:
    assert SmaCross.trailing_stop is False
    assert SmaCross.trailing_stop_positive is not None and 0 < SmaCross.trailing_stop_positive < 1
    assert SmaCross.trailing_stop_positive_offset > SmaCross.trailing_stop_positive

    class TrailingSmaCross(SmaCross):
        trailing_stop = True

    assert validate_strategy(TrailingSmaCross).entries > 0


def test_sma_cross_parameters_change_the_signals(gbm_candles: CandleFactory) -> None:
    candles = gbm_candles(3000, seed=9)
    default = SmaCross().analyze(candles)["enter_long"].sum()
    quick = SmaCross({"fast": 5, "slow": 20}).analyze(candles)["enter_long"].sum()
    assert quick > default > 0


def test_rsi_mean_reversion_buys_below_and_sells_above_its_thresholds(gbm_candles: CandleFactory) -> None:
    candles = gbm_candles(3000, seed=2)
    strategy = RsiMeanReversion({"buy_rsi": 25, "sell_rsi": 75})
    out = strategy.analyze(candles)
    value = rsi(candles["close"], 14)
    np.testing.assert_array_equal(out["enter_long"].to_numpy(), (value < 25).astype("int8"))
    np.testing.assert_array_equal(out["exit_long"].to_numpy(), (value > 75).astype("int8"))
    assert out["enter_long"].sum() > 0 and out["exit_long"].sum() > 0


def test_bollinger_breakout_needs_a_break_above_the_band_on_loud_volume(gbm_candles: CandleFactory) -> None:
    candles = gbm_candles(6000, seed=5)
    out = BollingerBreakout().analyze(candles)
    bands = bollinger(candles["close"], 20, 2.0)
    entries = out["enter_long"].to_numpy() == 1
    assert entries.sum() > 0
    assert (candles["close"].to_numpy()[entries] > bands.upper[entries]).all()
    prior_volume = candles["volume"].rolling(20).mean().shift(1).to_numpy()
    assert (candles["volume"].to_numpy()[entries] > 1.5 * prior_volume[entries]).all()
    below_mid = candles["close"].to_numpy() < bands.mid
    np.testing.assert_array_equal(out["exit_long"].to_numpy() == 1, below_mid)


def test_macd_trend_enters_on_signal_crosses_above_the_trend_ema(gbm_candles: CandleFactory) -> None:
    candles = gbm_candles(6000, seed=5)
    out = MacdTrend().analyze(candles)
    lines = macd(candles["close"])
    trend = ema(candles["close"], 200)
    entries = np.flatnonzero(out["enter_long"].to_numpy() == 1)
    assert entries.size > 0
    assert (candles["close"].to_numpy()[entries] > trend[entries]).all()
    assert (lines.macd[entries] > lines.signal[entries]).all()
    assert (lines.macd[entries - 1] <= lines.signal[entries - 1]).all()


@pytest.mark.parametrize("cls", BUILTINS, ids=lambda c: c.__name__)
def test_builtin_passes_validation_on_synthetic_candles(cls: type[IStrategy]) -> None:
    report = validate_strategy(cls)
    assert report.warnings == []
    assert report.synthetic
    assert report.entries > 0
