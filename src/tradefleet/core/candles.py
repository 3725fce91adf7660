"""Candle frame conventions, timeframes and validation.

A candle frame is a pandas DataFrame with columns ``date`` (tz-aware UTC, candle *open* time), ``open``,
``high``, ``low``, ``close``, ``volume`` (float64), sorted by date with unique dates.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import pandas as pd

from tradefleet.core.errors import CandleValidationError, ConfigError

OHLCV = ("open", "high", "low", "close", "volume")
COLUMNS = ("date", *OHLCV)

_TF_RE = re.compile(r"^(\d+)([smhdw])$")
_TF_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def timeframe_to_seconds(timeframe: str) -> int:
    """Return the length of a timeframe such as ``5m`` or ``1h`` in seconds."""
    match = _TF_RE.match(timeframe)
    if not match or int(match.group(1)) <= 0:
        raise ConfigError(
            f"invalid timeframe {timeframe!r}",
            hint="use a number and a unit: 1m, 5m, 15m, 1h, 4h, 1d",
        )
    return int(match.group(1)) * _TF_UNIT[match.group(2)]


def timeframe_to_ms(timeframe: str) -> int:
    """Return the length of a timeframe in milliseconds."""
    return timeframe_to_seconds(timeframe) * 1000


def validate_pair(pair: str) -> str:
    """Return ``pair`` if it looks like ``BASE/QUOTE``; raise a ConfigError otherwise."""
    parts = pair.split("/")
    if len(parts) != 2 or not all(p and p.isalnum() for p in parts):
        raise ConfigError(f"invalid pair {pair!r}", hint="write pairs as BASE/QUOTE, for example BTC/USDT")
    return pair.upper()


def _bad_rows(frame: pd.DataFrame, mask: np.ndarray | pd.Series, reason: str, limit: int = 5) -> str:
    rows = frame[np.asarray(mask)].head(limit)
    return f"{int(np.asarray(mask).sum())} row(s) {reason}: " + rows.to_string(index=True, max_cols=6)


def validate_candles(frame: pd.DataFrame, *, name: str = "candles") -> pd.DataFrame:
    """Check a candle frame against the conventions and return it with canonical dtypes.

    Raises
    ------
    CandleValidationError
        With the offending rows in ``details`` (list of row indexes) and the first few in the message.
    """
    missing = [c for c in COLUMNS if c not in frame.columns]
    if missing:
        raise CandleValidationError(f"{name}: missing column(s) {', '.join(missing)}")
    out = frame.loc[:, list(COLUMNS)].copy()
    date = out["date"]
    if not isinstance(date.dtype, pd.DatetimeTZDtype):
        raise CandleValidationError(f"{name}: 'date' must be timezone-aware UTC timestamps, got {date.dtype}")
    out["date"] = date.dt.tz_convert("UTC").astype("datetime64[ms, UTC]")
    for col in OHLCV:
        try:
            out[col] = out[col].astype("float64")
        except (TypeError, ValueError) as exc:
            raise CandleValidationError(f"{name}: column {col!r} is not numeric ({exc})") from exc
    problems: list[tuple[np.ndarray, str]] = []
    nan = out[["open", "high", "low", "close"]].isna().any(axis=1).to_numpy()
    problems.append((nan, "with NaN in open/high/low/close"))
    vals = out[list(OHLCV)].to_numpy()
    with np.errstate(invalid="ignore"):
        nonpos = (vals[:, :4] <= 0).any(axis=1) | (vals[:, 4] < 0)
        high_bad = vals[:, 1] < np.maximum(vals[:, 0], vals[:, 3])
        low_bad = vals[:, 2] > np.minimum(vals[:, 0], vals[:, 3])
    problems.append((nonpos, "with non-positive price or negative volume"))
    problems.append((high_bad, "with high below max(open, close)"))
    problems.append((low_bad, "with low above min(open, close)"))
    ts = dates_ms(out["date"])
    if len(ts) > 1:
        step = np.diff(ts)
        unsorted = np.concatenate([[False], step < 0])
        dup = np.concatenate([[False], step == 0])
        problems.append((unsorted, "out of date order"))
        problems.append((dup, "with duplicate dates"))
    for mask, reason in problems:
        if mask.any():
            raise CandleValidationError(
                f"{name}: {_bad_rows(out, mask, reason)}", details=np.flatnonzero(mask).tolist()
            )
    return out.reset_index(drop=True)


def find_gaps(frame: pd.DataFrame, timeframe: str) -> list[tuple[pd.Timestamp, pd.Timestamp]]:
    """Return (last candle before, first candle after) for every hole in a validated frame."""
    if len(frame) < 2:
        return []
    step_ms = timeframe_to_ms(timeframe)
    ts = dates_ms(frame["date"])
    idx = np.flatnonzero(np.diff(ts) > step_ms)
    dates = frame["date"]
    return [(dates.iloc[i], dates.iloc[i + 1]) for i in idx]


def dates_ms(dates: pd.Series) -> np.ndarray:
    """Return tz-aware UTC dates as int64 epoch milliseconds."""
    return np.asarray(dates.to_numpy(dtype="datetime64[ms]").astype("int64"))


def empty_frame() -> pd.DataFrame:
    """Return an empty frame with the canonical columns and dtypes."""
    frame = pd.DataFrame({c: pd.Series(dtype="float64") for c in OHLCV})
    frame.insert(0, "date", pd.Series(dtype="datetime64[ms, UTC]"))
    return frame


def ohlcv_rows_frame(rows: list[list[Any]], lo: int, hi: int) -> pd.DataFrame:
    """Return exchange OHLCV rows ``[ms, o, h, l, c, v]`` opening in ``[lo, hi)`` as a candle frame.

    Rows come as ccxt's ``fetch_ohlcv`` gives them; a repeated open time keeps its last copy.
    """
    if not rows:
        return empty_frame()
    frame = pd.DataFrame([row[:6] for row in rows], columns=["ms", *OHLCV])
    frame = frame[(frame["ms"] >= lo) & (frame["ms"] < hi)]
    frame = frame.drop_duplicates(subset="ms", keep="last").sort_values("ms")
    date = pd.to_datetime(frame["ms"].astype("int64"), unit="ms", utc=True)
    out = frame.drop(columns="ms").astype("float64")
    out.insert(0, "date", date.astype("datetime64[ms, UTC]"))
    return out.reset_index(drop=True)
