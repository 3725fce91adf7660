"""Indicators against hand-computed values, against pandas, and for causality."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pandas as pd
import pytest

from tradefleet.core.indicators import (
    atr,
    bollinger,
    crossed_above,
    crossed_below,
    ema,
    macd,
    rolling_std,
    rsi,
    sma,
    true_range,
    wilder,
)

NAN = math.nan


def gbm(n: int = 3000, seed: int = 3) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    close = 50.0 * np.exp(np.cumsum(rng.normal(0.0, 0.01, n)))
    open_ = np.concatenate([[50.0], close[:-1]])
    high = np.maximum(open_, close) * (1 + np.abs(rng.normal(0, 0.003, n)))
    low = np.minimum(open_, close) * (1 - np.abs(rng.normal(0, 0.003, n)))
    return pd.DataFrame({"open": open_, "high": high, "low": low, "close": close})


def pandas_ema(series: pd.Series, period: int) -> np.ndarray:
    return series.ewm(span=period, adjust=False, min_periods=period, ignore_na=True).mean().to_numpy()


def pandas_wilder(values: pd.Series, period: int) -> np.ndarray:
    """Wilder smoothing written with pandas: SMA seed, then ewm(alpha=1/period) from the seed on."""
    valid = values.dropna()
    seed_pos = valid.index[period - 1]
    seeded = valid.loc[seed_pos:].copy()
    seeded.iloc[0] = valid.iloc[:period].mean()
    smoothed = seeded.ewm(alpha=1.0 / period, adjust=False).mean()
    return smoothed.reindex(values.index).to_numpy()


def test_sma_of_a_short_series_matches_hand_computed_values() -> None:
    np.testing.assert_allclose(sma([1.0, 2.0, 3.0, 4.0, 5.0], 3), [NAN, NAN, 2.0, 3.0, 4.0])


@pytest.mark.parametrize("period", [1, 5, 50, 200])
def test_sma_matches_pandas_rolling_mean(period: int) -> None:
    close = gbm()["close"]
    np.testing.assert_allclose(sma(close, period), close.rolling(period).mean().to_numpy(), rtol=1e-12)


def test_sma_window_containing_nan_is_nan_like_pandas() -> None:
    values = pd.Series([1.0, 2.0, NAN, 4.0, 5.0, 6.0, 7.0])
    np.testing.assert_array_equal(np.isnan(sma(values, 3)), values.rolling(3).mean().isna().to_numpy())


def test_sma_of_series_shorter_than_period_is_all_nan() -> None:
    out = sma([1.0, 2.0], 5)
    assert out.shape == (2,)
    assert np.isnan(out).all()


def test_ema_of_a_short_series_matches_hand_computed_values() -> None:
    # alpha = 2 / (3 + 1) = 0.5; recursion 1 → 1.5 → 2.25 → 3.125, first two hidden by the warm-up
    np.testing.assert_allclose(ema([1.0, 2.0, 3.0, 4.0], 3), [NAN, NAN, 2.25, 3.125])


@pytest.mark.parametrize("period", [2, 12, 26, 200])
def test_ema_matches_pandas_ewm(period: int) -> None:
    close = gbm()["close"]
    np.testing.assert_allclose(ema(close, period), pandas_ema(close, period), rtol=1e-12)


def test_ema_skips_leading_and_holds_over_interior_nan_like_pandas_ignore_na() -> None:
    values = gbm(300)["close"].copy()
    values.iloc[:7] = NAN
    values.iloc[[40, 41, 120]] = NAN
    np.testing.assert_allclose(ema(values, 10), pandas_ema(values, 10), rtol=1e-12)


def test_rsi_of_a_short_series_matches_hand_computed_values() -> None:
    # deltas 1, 1, -1, 2; seed gain 2/3 loss 1/3 → 66.67; then gain 10/9 loss 2/9 → 83.33
    np.testing.assert_allclose(rsi([10.0, 11.0, 12.0, 11.0, 13.0], 3), [NAN, NAN, NAN, 200 / 3, 250 / 3])


def test_rsi_matches_wilder_smoothing_built_from_pandas() -> None:
    close = gbm()["close"]
    delta = close.diff()
    gain = pandas_wilder(delta.clip(lower=0), 14)
    loss = pandas_wilder((-delta).clip(lower=0), 14)
    expected = 100.0 - 100.0 / (1.0 + gain / loss)
    np.testing.assert_allclose(rsi(close, 14), expected, rtol=1e-10)


def test_rsi_is_100_when_prices_only_rise_and_50_when_they_do_not_move() -> None:
    assert rsi(np.arange(1.0, 30.0), 14)[-1] == 100.0
    assert rsi(np.full(30, 7.0), 14)[-1] == 50.0
    out = rsi(gbm()["close"], 14)
    assert np.nanmin(out) >= 0.0
    assert np.nanmax(out) <= 100.0


def test_wilder_starts_with_the_mean_of_the_first_period_values() -> None:
    np.testing.assert_allclose(wilder([NAN, 2.0, 4.0, 6.0, 10.0], 3), [NAN, NAN, NAN, 4.0, 6.0])


def test_bollinger_of_a_short_series_matches_hand_computed_values() -> None:
    bands = bollinger([1.0, 2.0, 3.0], 3, 2.0)
    std = math.sqrt(2.0 / 3.0)
    np.testing.assert_allclose(bands.mid, [NAN, NAN, 2.0])
    np.testing.assert_allclose(bands.upper, [NAN, NAN, 2.0 + 2 * std])
    np.testing.assert_allclose(bands.lower, [NAN, NAN, 2.0 - 2 * std])


def test_bollinger_matches_pandas_rolling_population_std() -> None:
    close = gbm()["close"]
    bands = bollinger(close, 20, 2.5)
    mid = close.rolling(20).mean()
    dev = close.rolling(20).std(ddof=0) * 2.5
    np.testing.assert_allclose(bands.mid, mid.to_numpy(), rtol=1e-12)
    np.testing.assert_allclose(bands.upper, (mid + dev).to_numpy(), rtol=1e-10)
    np.testing.assert_allclose(bands.lower, (mid - dev).to_numpy(), rtol=1e-10)


def test_rolling_std_with_ddof_1_matches_pandas_default() -> None:
    close = gbm()["close"]
    np.testing.assert_allclose(rolling_std(close, 30, ddof=1), close.rolling(30).std().to_numpy(), rtol=1e-9)


def test_macd_matches_pandas_ewm() -> None:
    close = gbm()["close"]
    line = pd.Series(pandas_ema(close, 12) - pandas_ema(close, 26))
    signal = pandas_ema(line, 9)
    out = macd(close, 12, 26, 9)
    np.testing.assert_allclose(out.macd, line.to_numpy(), rtol=1e-12)
    np.testing.assert_allclose(out.signal, signal, rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(out.hist, line.to_numpy() - signal, rtol=1e-9, atol=1e-14)
    assert np.isnan(out.macd[:25]).all() and not np.isnan(out.macd[25])
    assert np.isnan(out.signal[:33]).all() and not np.isnan(out.signal[33])


def test_true_range_and_atr_match_hand_computed_values() -> None:
    high = [10.0, 12.0, 11.0, 15.0]
    low = [9.0, 10.0, 8.0, 13.0]
    close = [9.5, 11.0, 9.0, 14.0]
    # TR: -, max(2, 2.5, 0.5)=2.5, max(3, 0, 3)=3, max(2, 6, 4)=6
    np.testing.assert_allclose(true_range(high, low, close), [NAN, 2.5, 3.0, 6.0])
    # ATR(2): seed (2.5 + 3) / 2 = 2.75 at index 2, then (2.75 + 6) / 2 = 4.375
    np.testing.assert_allclose(atr(high, low, close, 2), [NAN, NAN, 2.75, 4.375])


def test_atr_matches_wilder_smoothing_of_pandas_true_range() -> None:
    frame = gbm()
    prev = frame["close"].shift(1)
    tr = pd.concat(
        [frame["high"] - frame["low"], (frame["high"] - prev).abs(), (frame["low"] - prev).abs()], axis=1
    ).max(axis=1, skipna=False)
    expected = pandas_wilder(tr, 14)
    np.testing.assert_allclose(atr(frame["high"], frame["low"], frame["close"], 14), expected, rtol=1e-10)


@pytest.mark.parametrize("cut", [1, 2, 30, 250, 1777, 2998])
def test_every_indicator_on_a_prefix_equals_the_prefix_of_the_full_run(cut: int) -> None:
    frame = gbm()
    part = frame.iloc[:cut]
    runs: dict[str, Callable[[pd.DataFrame], np.ndarray]] = {
        "sma": lambda f: sma(f["close"], 20),
        "ema": lambda f: ema(f["close"], 20),
        "rsi": lambda f: rsi(f["close"], 14),
        "bb_upper": lambda f: bollinger(f["close"], 20).upper,
        "macd_signal": lambda f: macd(f["close"]).signal,
        "atr": lambda f: atr(f["high"], f["low"], f["close"], 14),
    }
    for name, run in runs.items():
        np.testing.assert_array_equal(run(part), run(frame)[:cut], err_msg=name)


def test_crossings_fire_only_on_the_candle_that_crosses() -> None:
    a = [1.0, 2.0, 3.0, 3.0, 2.0, 1.0, NAN, 3.0]
    assert crossed_above(a, 2.5).tolist() == [False, False, True, False, False, False, False, False]
    assert crossed_below(a, 2.5).tolist() == [False, False, False, False, True, False, False, False]
    assert crossed_above([1.0, 3.0], [2.0, 2.0]).tolist() == [False, True]


def test_inputs_may_be_series_lists_or_arrays_and_outputs_are_float64() -> None:
    close = gbm(100)["close"]
    for values in (close, close.tolist(), close.to_numpy()):
        out = sma(values, 5)
        assert out.dtype == np.float64
        assert out.shape == (100,)


@pytest.mark.parametrize("period", [0, -3, 2.5, True])
def test_invalid_periods_are_rejected(period: object) -> None:
    with pytest.raises(ValueError, match="positive integer"):
        sma([1.0, 2.0, 3.0], period)  # type: ignore[arg-type]


def test_macd_needs_fast_below_slow_and_inputs_one_dimensional() -> None:
    with pytest.raises(ValueError, match="below slow"):
        macd([1.0] * 50, 26, 12)
    with pytest.raises(ValueError, match="one-dimensional"):
        ema(np.ones((3, 3)), 2)
