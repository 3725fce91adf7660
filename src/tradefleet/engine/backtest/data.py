"""Candles as both backtest engines see them: the same frames, the same start, the same merged timeline."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pandas as pd

from tradefleet.core.candles import dates_ms
from tradefleet.core.errors import DataNotFoundError
from tradefleet.engine.backtest.types import BacktestConfig

IntArray = npt.NDArray[np.int64]


def prepare_frames(config: BacktestConfig, candles: dict[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    """Return each configured pair's candles before ``config.end_ms``, re-indexed from 0, in pair order."""
    frames: dict[str, pd.DataFrame] = {}
    for pair in config.pairs:
        frame = candles.get(pair)
        if frame is None or frame.empty:
            raise DataNotFoundError(f"no {config.timeframe} candles for {pair}")
        if config.end_ms is not None:
            frame = frame.loc[dates_ms(frame["date"]) < config.end_ms]
        frames[pair] = frame.reset_index(drop=True)
    return frames


def resolve_start(config: BacktestConfig, frames: dict[str, pd.DataFrame]) -> int:
    """Return the open time of the first traded candle: ``config.start_ms``, else the earliest candle."""
    if config.start_ms is not None:
        return config.start_ms
    return min(int(dates_ms(f["date"])[0]) for f in frames.values() if len(f))


def merged_timeline(open_ms: list[IntArray], start_ms: int) -> tuple[IntArray, IntArray]:
    """Return (pair index, row) of every traded candle in delivery order: open time, then pair order.

    This is the hub's order: candles sorted by open time, ties broken by the order the pairs were subscribed.
    """
    pairs: list[IntArray] = []
    rows: list[IntArray] = []
    for p, ms in enumerate(open_ms):
        first = int(np.searchsorted(ms, start_ms, side="left"))
        idx = np.arange(first, len(ms), dtype=np.int64)
        rows.append(idx)
        pairs.append(np.full(len(idx), p, dtype=np.int64))
    pair_idx = np.concatenate(pairs) if pairs else np.zeros(0, dtype=np.int64)
    row_idx = np.concatenate(rows) if rows else np.zeros(0, dtype=np.int64)
    if len(open_ms) == 1:
        return pair_idx, row_idx
    times = np.concatenate([ms[r] for ms, r in zip(open_ms, rows, strict=True)])
    order = np.argsort(times, kind="stable")  # stable: equal times keep the pairs' order
    return pair_idx[order], row_idx[order]
