"""The synthetic market: deterministic, always valid, and with the stylised facts of real crypto prices."""

from __future__ import annotations

import time
from itertools import pairwise

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tradefleet.adapters.data.generator import (
    DEFAULT_MODEL,
    _garch_variance,
    _regime_drift,
    generate_days,
    generate_market,
)
from tradefleet.core.candles import timeframe_to_ms, validate_candles
from tradefleet.core.errors import ConfigError

START = 1_704_067_200_000


def log_returns(frame: pd.DataFrame) -> np.ndarray:
    return np.diff(np.log(frame["close"].to_numpy()))


def autocorr(x: np.ndarray, lag: int) -> float:
    return float(np.corrcoef(x[:-lag], x[lag:])[0, 1])


@pytest.fixture(scope="module")
def hourly() -> pd.DataFrame:
    return generate_market("SYN/USDT", "1h", start_ms=START, candles=50_000, seed=7)


def test_same_seed_same_market_and_other_seeds_or_pairs_differ():
    a = generate_market("SYN/USDT", "5m", start_ms=START, candles=500, seed=7)
    b = generate_market("SYN/USDT", "5m", start_ms=START, candles=500, seed=7)
    c = generate_market("SYN/USDT", "5m", start_ms=START, candles=500, seed=8)
    d = generate_market("ALT/USDT", "5m", start_ms=START, candles=500, seed=7, start_price=a["open"].iloc[0])

    pd.testing.assert_frame_equal(a, b)
    assert not np.allclose(a["close"], c["close"])
    assert not np.allclose(a["close"], d["close"])


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    timeframe=st.sampled_from(["1m", "5m", "15m", "1h", "4h", "1d", "1w"]),
    candles=st.integers(1, 3_000),
    price=st.one_of(st.none(), st.floats(1e-6, 1e6)),
)
def test_every_generated_market_is_valid_and_on_its_grid(seed, timeframe, candles, price):
    frame = generate_market("SYN/USDT", timeframe, start_ms=START, candles=candles, seed=seed, start_price=price)

    valid = validate_candles(frame)
    assert len(valid) == candles
    step = pd.Timedelta(milliseconds=timeframe_to_ms(timeframe))
    assert (valid["date"].diff().dropna() == step).all()
    assert valid["date"].iloc[0] == pd.Timestamp(START, unit="ms", tz="UTC")
    if price is not None:
        assert valid["open"].iloc[0] == pytest.approx(price)


def test_volatility_clusters(hourly):
    r = log_returns(hourly)
    shuffled = np.random.default_rng(0).permutation(r)

    assert autocorr(np.abs(r), 1) > 0.1
    assert autocorr(np.abs(r), 24) > 0.05
    assert abs(autocorr(np.abs(shuffled), 1)) < 0.03
    assert abs(autocorr(r, 1)) < 0.05  # but returns themselves are not predictable


def test_returns_have_fat_tails_and_a_crypto_like_volatility(hourly):
    r = log_returns(hourly)

    assert pd.Series(r).kurt() > 3
    annual_vol = r.std() * np.sqrt(365 * 24)
    assert 0.3 < annual_vol < 1.5


def test_jumps_open_candles_away_from_the_previous_close_but_rarely(hourly):
    gap = np.abs(np.log(hourly["open"].to_numpy()[1:] / hourly["close"].to_numpy()[:-1]))

    jumps = int((gap > 0).sum())
    assert 5 <= jumps <= 0.01 * len(gap)
    assert np.median(gap[gap > 0]) > 5 * np.median(np.abs(log_returns(hourly)))


def test_wicks_are_realistic(hourly):
    body_top = hourly[["open", "close"]].max(axis=1)
    body_bottom = hourly[["open", "close"]].min(axis=1)

    assert (hourly["high"] > body_top).mean() > 0.9
    assert (hourly["low"] < body_bottom).mean() > 0.9
    assert ((hourly["high"] - hourly["low"]) / hourly["close"]).median() < 0.05


def test_volume_rises_with_volatility(hourly):
    r = np.abs(log_returns(hourly))
    volume = hourly["volume"].to_numpy()[1:] * hourly["close"].to_numpy()[1:]

    assert np.corrcoef(r, volume)[0, 1] > 0.2
    assert (hourly["volume"] > 0).all()


def test_regimes_trend_up_down_and_sideways_without_repeating():
    rng = np.random.default_rng(1)
    drift = _regime_drift(rng, 200_000, 3600.0, 3600.0 / (365 * 86400), DEFAULT_MODEL)

    changes = np.flatnonzero(np.diff(drift) != 0) + 1
    segments = np.split(drift, changes)
    kinds = [np.sign(s[0]) for s in segments]
    assert set(kinds) == {-1.0, 0.0, 1.0}
    assert all(a != b for a, b in pairwise(kinds))
    mean_hours = np.mean([len(s) for s in segments])
    assert 0.5 * DEFAULT_MODEL.regime_days * 24 < mean_hours < 2 * DEFAULT_MODEL.regime_days * 24


def test_block_solution_of_the_garch_recursion_matches_the_plain_loop():
    z = np.random.default_rng(5).standard_normal(2_000)
    target, alpha, beta = 1e-4, 0.08, 0.9

    expected = np.empty_like(z)
    expected[0] = target
    for t in range(1, len(z)):
        expected[t] = target * (1 - alpha - beta) + (alpha * z[t - 1] ** 2 + beta) * expected[t - 1]

    np.testing.assert_allclose(_garch_variance(z, target, alpha, beta), expected, rtol=1e-9)


def test_a_million_candles_take_well_under_a_few_seconds():
    began = time.perf_counter()
    frame = generate_market("SYN/USDT", "1m", start_ms=START, candles=1_000_000, seed=1)
    elapsed = time.perf_counter() - began

    assert len(frame) == 1_000_000
    assert elapsed < 3.0
    assert np.isfinite(frame[["open", "high", "low", "close", "volume"]].to_numpy()).all()


def test_very_long_daily_history_stays_finite_and_positive():
    frame = generate_market("SYN/USDT", "1d", start_ms=0, candles=200_000, seed=2)

    prices = frame[["open", "high", "low", "close"]].to_numpy()
    assert np.isfinite(prices).all() and (prices > 0).all()


def test_generate_days_covers_the_days_asked_for():
    frame = generate_days("SYN/USDT", "1h", days=3, seed=1, start_ms=START)

    assert len(frame) == 72
    assert frame["date"].iloc[-1] == pd.Timestamp(START, unit="ms", tz="UTC") + pd.Timedelta(hours=71)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"candles": 0}, "cannot generate 0 candles"),
        ({"seed": -1}, "invalid seed"),
        ({"start_price": 0.0}, "invalid start price"),
        ({"start_price": float("nan")}, "invalid start price"),
    ],
)
def test_nonsense_arguments_are_config_errors(kwargs, message):
    args = {"start_ms": START, "candles": 10, "seed": 1, **kwargs}
    with pytest.raises(ConfigError, match=message):
        generate_market("SYN/USDT", "1m", **args)


def test_bad_timeframe_and_non_positive_days_are_config_errors():
    with pytest.raises(ConfigError, match="invalid timeframe"):
        generate_market("SYN/USDT", "7x", start_ms=START, candles=10, seed=1)
    with pytest.raises(ConfigError, match="cannot generate -1 days"):
        generate_days("SYN/USDT", "1h", days=-1, seed=1, start_ms=START)
