"""Candles for a backtest: find each pair's series in the candle store, cut it to a time range, fingerprint it.

A time range uses Freqtrade's syntax: ``20180110-20180130``, ``20180110-`` or ``-20180130`` (UTC days; the
end day is excluded), or Unix timestamps in seconds such as ``1515542400-1517270400``.

Every pair keeps ``startup_candle_count`` candles of history before the first traded candle, plus a
generous extra warm-up where the store has it, so slowly converging indicators (EMA, Wilder's RSI) settle.
When the stored data starts too late for that, the first traded candle moves forward, as in Freqtrade.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np
import pandas as pd

from tradefleet.adapters.data.store import CandleStore, SeriesInfo, normalize_exchange, normalize_pair
from tradefleet.core.candles import OHLCV, dates_ms, timeframe_to_ms
from tradefleet.core.errors import ConfigError, DataError, DataNotFoundError

_DAY = re.compile(r"^\d{8}$")
_STAMP = re.compile(r"^\d{10}$|^\d{13}$")
EXTRA_WARMUP = 100  # candles loaded beyond startup_candle_count, where the store has them


@dataclass(frozen=True)
class TimeRange:
    """A parsed ``--timerange``: open ends are None; ``end_ms`` is exclusive."""

    start_ms: int | None = None
    end_ms: int | None = None
    text: str = ""

    def describe(self) -> str:
        return f"{_when(self.start_ms) if self.start_ms else '…'} → {_when(self.end_ms) if self.end_ms else '…'}"


def _edge(part: str, text: str) -> int | None:
    if not part:
        return None
    if _DAY.match(part):
        try:
            day = datetime.strptime(part, "%Y%m%d").replace(tzinfo=UTC)
        except ValueError:
            raise _bad_timerange(text, f"{part} is not a date") from None
        return int(day.timestamp() * 1000)
    if _STAMP.match(part):
        return int(part) * (1000 if len(part) == 10 else 1)
    raise _bad_timerange(text, f"cannot read {part!r}")


def _bad_timerange(text: str, why: str) -> ConfigError:
    return ConfigError(
        f"--timerange {text!r}: {why}",
        hint="write YYYYMMDD-YYYYMMDD (either side may be left open, e.g. 20180110-), or Unix seconds",
    )


def parse_timerange(text: str | None) -> TimeRange:
    """Parse Freqtrade's ``--timerange`` syntax; None or an empty string means all stored candles."""
    if text is None or not text.strip():
        return TimeRange()
    text = text.strip()
    if text.count("-") != 1:
        raise _bad_timerange(text, "expected one '-' between start and end")
    head, tail = text.split("-")
    start, end = _edge(head, text), _edge(tail, text)
    if start is None and end is None:
        raise _bad_timerange(text, "give a start, an end or both")
    if start is not None and end is not None and end <= start:
        raise _bad_timerange(text, "the end must be after the start")
    return TimeRange(start, end, text)


def warmup_candles(startup_candle_count: int) -> int:
    """Return how many candles of history to load before the first traded candle, where available."""
    return startup_candle_count + max(startup_candle_count, EXTRA_WARMUP)


@dataclass(frozen=True)
class BacktestData:
    """Candles of every pair (warm-up included) and where trading starts and ends."""

    timeframe: str
    candles: dict[str, pd.DataFrame]
    exchanges: dict[str, str]
    start_ms: int  # open time of the first traded candle, the same for every pair
    end_ms: int | None  # exclusive; None: up to the last stored candle
    timerange: TimeRange
    fingerprint: str
    notes: list[str] = field(default_factory=list)
    synthetic: tuple[str, ...] = ()

    def traded_candles(self) -> int:
        """Return the number of candle steps after the warm-up, over all pairs."""
        total = 0
        for frame in self.candles.values():
            ms = dates_ms(frame["date"])
            total += int(np.count_nonzero(ms >= self.start_ms))
        return total


def find_series(
    store: CandleStore, pair: str, timeframe: str, exchange: str | None = None, series: Sequence[SeriesInfo] = ()
) -> SeriesInfo:
    """Return the stored series of ``pair`` and ``timeframe``: ``exchange`` first, then real before synthetic."""
    listed = list(series) or store.list_series()
    found = [s for s in listed if s.pair == pair and s.timeframe == timeframe]
    if not found:
        others = sorted({s.timeframe for s in listed if s.pair == pair}, key=timeframe_to_ms)
        have = f"; stored timeframes of {pair}: {', '.join(others)}" if others else ""
        raise DataNotFoundError(
            f"no {timeframe} candles for {pair} in {store.root}{have}",
            hint=f"import or download them first: tradefleet data import|download --pair {pair} -t {timeframe}",
        )
    preferred = normalize_exchange(exchange) if exchange else None
    found.sort(key=lambda s: (s.exchange != preferred, s.synthetic, s.exchange))
    return found[0]


def load_backtest_data(
    store: CandleStore,
    pairs: Sequence[str],
    timeframe: str,
    timerange: TimeRange,
    *,
    startup_candle_count: int,
    strategy: str = "the strategy",
    exchange: str | None = None,
) -> BacktestData:
    """Load and cut the candles of ``pairs`` for a backtest.

    Raises
    ------
    DataNotFoundError
        A pair has no stored series of that timeframe, or none of its candles lies in the time range.
    DataError
        The range holds too few candles to warm up ``startup_candle_count`` and still trade one.
    """
    timeframe_to_ms(timeframe)
    pairs = list(dict.fromkeys(normalize_pair(p) for p in pairs))
    if not pairs:
        raise ConfigError("no pairs to backtest", hint="pass --pairs ETH/BTC ADA/BTC")
    listed = store.list_series()
    frames: dict[str, pd.DataFrame] = {}
    exchanges: dict[str, str] = {}
    synthetic: list[str] = []
    bounds: dict[str, tuple[np.ndarray, int, int]] = {}
    wanted: list[int] = []  # first candle of each pair inside the range
    for pair in pairs:
        info = find_series(store, pair, timeframe, exchange, listed)
        exchanges[pair] = info.exchange
        if info.synthetic:
            synthetic.append(pair)
        frame = store.read(info.exchange, pair, timeframe)
        ms = dates_ms(frame["date"])
        lo = 0 if timerange.start_ms is None else int(np.searchsorted(ms, timerange.start_ms, side="left"))
        hi = len(ms) if timerange.end_ms is None else int(np.searchsorted(ms, timerange.end_ms, side="left"))
        if hi <= lo:
            stored = f"{_when(int(ms[0]))} → {_when(int(ms[-1]))}" if len(ms) else "nothing"
            raise DataNotFoundError(
                f"no {pair} {timeframe} candles in --timerange {timerange.text or 'all'} "
                f"({timerange.describe()}); {info.exchange} has {stored}",
                hint="choose a --timerange inside the stored data, or download the missing period",
            )
        first = max(lo, startup_candle_count)
        if first >= hi:
            raise DataError(
                f"{pair} {timeframe}: only {hi} candle(s) up to the end of the range, but {strategy} needs "
                f"{startup_candle_count} startup candles before the first traded one",
                hint="widen --timerange or download earlier candles",
            )
        frames[pair] = frame
        bounds[pair] = (ms, first, hi)
        wanted.append(int(ms[lo]))
    start_ms = max(int(ms[first]) for ms, first, _ in bounds.values())
    notes: list[str] = []
    if timerange.start_ms is not None and start_ms > max(wanted):
        notes.append(
            f"start moved to {_when(start_ms)} so that {startup_candle_count} startup candles precede it "
            "(no earlier candles stored)"
        )
    candles: dict[str, pd.DataFrame] = {}
    extra = warmup_candles(startup_candle_count)
    for pair, (ms, _, hi) in bounds.items():
        begin = int(np.searchsorted(ms, start_ms, side="left"))
        if begin >= hi:
            raise DataError(
                f"{pair} {timeframe}: no candles left to trade after {_when(start_ms)}, where every pair has "
                f"{startup_candle_count} startup candles",
                hint="widen --timerange, or backtest the pairs whose data overlap",
            )
        candles[pair] = frames[pair].iloc[max(0, begin - extra) : hi].reset_index(drop=True)
    end_ms = timerange.end_ms
    return BacktestData(
        timeframe=timeframe,
        candles=candles,
        exchanges=exchanges,
        start_ms=start_ms,
        end_ms=end_ms,
        timerange=timerange,
        fingerprint=fingerprint(candles, timeframe, start_ms, end_ms),
        notes=notes,
        synthetic=tuple(synthetic),
    )


def fingerprint(candles: dict[str, pd.DataFrame], timeframe: str, start_ms: int, end_ms: int | None) -> str:
    """Return the sha256 (hex) of the pairs, the range and every date and OHLCV array a backtest reads."""
    digest = hashlib.sha256()
    digest.update(f"{timeframe}|{start_ms}|{end_ms}".encode())
    for pair in sorted(candles):
        frame = candles[pair]
        digest.update(f"|{pair}|{len(frame)}|".encode())
        digest.update(np.ascontiguousarray(dates_ms(frame["date"]), dtype="<i8").tobytes())
        for column in OHLCV:
            digest.update(np.ascontiguousarray(frame[column].to_numpy(dtype=np.float64), dtype="<f8").tobytes())
    return digest.hexdigest()


def _when(ms: int | None) -> str:
    if ms is None:
        return "…"
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M")
