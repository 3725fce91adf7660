"""Synthetic markets: deterministic, realistic-looking candles for demos, paper trading and tests.

The model, per candle of length ``dt`` (in years):

- log return ``r = drift(regime) * dt + sigma_t * z_t`` with ``z_t`` Student-t (fat tails, unit variance);
- ``sigma_t^2 = omega + (alpha * z_{t-1}^2 + beta) * sigma_{t-1}^2`` (GARCH(1,1): volatility clusters);
- regimes (up, down, sideways) last a geometric number of candles and switch to another regime, with a
  pull back towards the start price so very long series stay in a sane range;
- rare jumps move a candle's open away from the previous close;
- high and low are drawn from the exact law of a Brownian bridge's maximum and minimum between open and
  close, so the wicks scale with the candle's volatility;
- volume grows with volatility, with the size of the move and with jumps.

Everything is vectorised with numpy; the GARCH recursion is solved in closed form per block.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass

import numpy as np
import pandas as pd

from tradefleet.core.candles import timeframe_to_ms, timeframe_to_seconds
from tradefleet.core.errors import ConfigError

_YEAR_S = 365.0 * 86400.0
_BLOCK = 512  # GARCH block length: keeps the cumulative products far from under/overflow


@dataclass(frozen=True, slots=True)
class MarketModel:
    """Parameters of the synthetic market; the defaults look like a liquid crypto pair."""

    annual_vol: float = 0.65
    garch_alpha: float = 0.08
    garch_beta: float = 0.90
    tail_df: float = 5.0
    regime_days: float = 12.0
    drift_up: float = 1.2
    drift_down: float = -1.0
    jumps_per_year: float = 12.0
    jump_size: float = 0.03
    daily_quote_volume: float = 50e6


DEFAULT_MODEL = MarketModel()


def generate_market(
    pair: str,
    timeframe: str,
    *,
    start_ms: int,
    candles: int,
    seed: int,
    start_price: float | None = None,
    model: MarketModel = DEFAULT_MODEL,
) -> pd.DataFrame:
    """Return ``candles`` synthetic candles of ``pair`` opening at ``start_ms``, the same for the same seed.

    The pair is mixed into the seed, so two pairs generated with one seed do not move in lockstep.
    """
    step_s = timeframe_to_seconds(timeframe)
    if candles <= 0:
        raise ConfigError(f"cannot generate {candles} candles", hint="ask for at least one candle")
    if seed < 0:
        raise ConfigError(f"invalid seed {seed}", hint="use a seed of 0 or more")
    price0 = _default_price(pair) if start_price is None else float(start_price)
    if not math.isfinite(price0) or price0 <= 0:
        raise ConfigError(f"invalid start price {start_price}", hint="use a positive price")
    rng = np.random.default_rng([seed, zlib.crc32(pair.upper().encode())])
    dt = step_s / _YEAR_S
    n = int(candles)

    z = rng.standard_t(model.tail_df, n) / math.sqrt(model.tail_df / (model.tail_df - 2.0))
    np.clip(z, -12.0, 12.0, out=z)
    sigma = np.sqrt(_garch_variance(z, model.annual_vol**2 * dt, model.garch_alpha, model.garch_beta))
    drift = _regime_drift(rng, n, step_s, dt, model)
    ret = drift + sigma * z

    jump_hit = rng.random(n) < model.jumps_per_year * dt
    jump_hit[0] = False
    jump = np.where(jump_hit, rng.normal(0.0, model.jump_size, n), 0.0)

    log_close = math.log(price0) + np.cumsum(jump + ret)
    log_open = np.empty(n)
    log_open[0] = math.log(price0)
    log_open[1:] = log_close[:-1]
    log_open += jump
    open_, close = np.exp(log_open), np.exp(log_close)

    # max and min of a Brownian bridge from 0 to ret with variance sigma^2 over the candle
    var2 = 2.0 * sigma**2
    up = 0.5 * (ret + np.sqrt(ret**2 - var2 * np.log1p(-rng.random(n))))
    down = 0.5 * (ret - np.sqrt(ret**2 - var2 * np.log1p(-rng.random(n))))
    high = np.maximum(open_ * np.exp(up), np.maximum(open_, close))
    low = np.minimum(open_ * np.exp(down), np.minimum(open_, close))

    typical = model.daily_quote_volume * step_s / 86400.0
    activity = (sigma / sigma.mean()) ** 1.2 * (1.0 + 0.5 * np.abs(z)) * (1.0 + 30.0 * np.abs(jump))
    quote_volume = typical * activity * rng.lognormal(0.0, 0.35, n)
    volume = quote_volume / (0.5 * (open_ + close))

    ms = np.int64(start_ms) + np.arange(n, dtype=np.int64) * np.int64(timeframe_to_ms(timeframe))
    dates = pd.Series(pd.DatetimeIndex(ms.astype("datetime64[ms]")).tz_localize("UTC"), name="date")
    return pd.DataFrame({"date": dates, "open": open_, "high": high, "low": low, "close": close, "volume": volume})


def generate_days(
    pair: str,
    timeframe: str,
    *,
    days: float,
    seed: int,
    start_ms: int,
    start_price: float | None = None,
    model: MarketModel = DEFAULT_MODEL,
) -> pd.DataFrame:
    """Return ``days`` worth of synthetic candles opening at ``start_ms``."""
    if not days > 0:
        raise ConfigError(f"cannot generate {days} days", hint="ask for a positive number of days")
    candles = max(1, round(days * 86400 / timeframe_to_seconds(timeframe)))
    return generate_market(
        pair, timeframe, start_ms=start_ms, candles=candles, seed=seed, start_price=start_price, model=model
    )


def _default_price(pair: str) -> float:
    """Return a start price between 1 and 10,000 that depends only on the pair name."""
    return float(round(10 ** (zlib.crc32(pair.upper().encode()) % 4000 / 1000.0), 4))


def _garch_variance(z: np.ndarray, target: float, alpha: float, beta: float) -> np.ndarray:
    """Solve ``s_t = omega + (alpha * z_{t-1}^2 + beta) * s_{t-1}`` block by block in closed form.

    Within a block, with ``L_k`` the running sum of ``log(coef)``,
    ``s_k = exp(L_k) * (s_prev + omega * sum_{j<=k} exp(-L_j))``.
    """
    omega = target * (1.0 - alpha - beta)
    coef = np.empty_like(z)
    coef[0] = 1.0
    coef[1:] = alpha * z[:-1] ** 2 + beta
    log_coef = np.log(coef)
    out = np.empty_like(z)
    prev = target
    for start in range(0, len(z), _BLOCK):
        if start == 0:
            out[0] = target
            lo = 1
        else:
            lo = start
        hi = min(start + _BLOCK, len(z))
        if lo >= hi:
            continue
        cum = np.cumsum(log_coef[lo:hi])
        out[lo:hi] = np.exp(cum) * (prev + omega * np.cumsum(np.exp(-cum)))
        prev = out[hi - 1]
    return out


def _regime_drift(rng: np.random.Generator, n: int, step_s: float, dt: float, model: MarketModel) -> np.ndarray:
    """Return the per-candle drift of a regime path: up, down or sideways, never the same twice in a row."""
    mean_len = max(5.0, model.regime_days * 86400.0 / step_s)
    lengths = rng.geometric(1.0 / mean_len, size=int(n / mean_len * 2) + 8)
    while lengths.sum() < n:
        lengths = np.concatenate([lengths, rng.geometric(1.0 / mean_len, size=len(lengths))])
    lengths = lengths[: int(np.searchsorted(np.cumsum(lengths), n)) + 1]
    picks = rng.random(len(lengths))
    drifts = np.array([model.drift_up, model.drift_down, 0.0]) * dt
    chosen = np.empty(len(lengths))
    level, previous = 0.0, 2
    for i, (length, pick) in enumerate(zip(lengths, picks, strict=True)):
        # pull towards the start price: favour down after a long climb, up after a long fall
        weights = np.array([math.exp(-level), math.exp(level), 1.0])
        weights[previous] = 0.0
        previous = int(np.searchsorted(np.cumsum(weights) / weights.sum(), pick, side="right"))
        previous = min(previous, 2)
        chosen[i] = drifts[previous]
        level += drifts[previous] * length
    return np.repeat(chosen, lengths)[:n]
