"""Stored candles for clients (dashboards, AI agents, the trading-engine aliases), read-only.

A series is found with the backtests' rule (:func:`tradefleet.services.backtest.data.find_series`): recorded
candles before synthetic ones. An ``exchange`` given by the caller is a filter, not a preference: asking for
``binance`` never answers with another folder's candles.

The listing of stored series is cached and rebuilt only when a candle file is added, removed or rewritten,
so a lookup costs a directory scan, not a read of every file.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pandas as pd

from tradefleet.adapters.data.store import SUFFIX, CandleStore, SeriesInfo, normalize_exchange, normalize_pair
from tradefleet.core.candles import OHLCV, dates_ms, timeframe_to_ms
from tradefleet.core.errors import DataNotFoundError, TradeFleetError
from tradefleet.core.ports import Clock
from tradefleet.services.backtest.data import find_series
from tradefleet.services.market.schemas import Candle, CandlesOut, SeriesOut

DEFAULT_LIMIT = 500
MAX_LIMIT = 5000

_Stamp = tuple[tuple[str, int, int], ...]


class MarketValidationError(TradeFleetError):
    code = "validation_error"
    http_status = 422


class MarketDataService:
    """Candles and series of a :class:`CandleStore`; ``clock`` says what "now" is (default: wall time)."""

    def __init__(self, candles: CandleStore, clock: Clock | None = None) -> None:
        self.store = candles
        self.clock = clock
        self._lock = threading.Lock()
        self._stamp: _Stamp | None = None
        self._listing: list[SeriesInfo] = []

    def candles(
        self,
        pair: str,
        timeframe: str,
        exchange: str | None = None,
        since_ms: int | None = None,
        limit: int = DEFAULT_LIMIT,
    ) -> CandlesOut:
        """Return candles of ``pair``, oldest first, none opening after now.

        Without ``since_ms``: the newest ``limit`` candles. With it: the first ``limit`` candles opening at
        or after ``since_ms`` (page forward by passing the last open time + 1).

        Raises
        ------
        DataNotFoundError
            No stored series of ``pair`` and ``timeframe`` (on ``exchange``, when given).
        ConfigError, MarketValidationError
            A malformed pair, timeframe or exchange, ``limit`` outside 1-5000 or a negative ``since_ms``.
        """
        if not 1 <= limit <= MAX_LIMIT:
            raise MarketValidationError(f"limit must be 1-{MAX_LIMIT}, got {limit}")
        if since_ms is not None and since_ms < 0:
            raise MarketValidationError(f"since_ms must be at least 0, got {since_ms}")
        pair = normalize_pair(pair)
        timeframe_to_ms(timeframe)
        wanted = normalize_exchange(exchange) if exchange is not None else None
        listing = self.listing()
        if not listing:
            raise DataNotFoundError(f"no candles are stored in {self.store.root}")
        info = find_series(self.store, pair, timeframe, wanted, listing)
        if wanted is not None and info.exchange != wanted:
            held = sorted({s.exchange for s in listing if s.pair == pair and s.timeframe == timeframe})
            raise DataNotFoundError(
                f"no {timeframe} candles for {pair} on {wanted}; stored on: {', '.join(held)}",
                hint="leave exchange out to get the stored series (recorded before synthetic)",
            )
        end_ms = self._now_ms() + 1
        frame = self.store.read(info.exchange, pair, timeframe, since_ms, end_ms)
        frame = frame.iloc[:limit] if since_ms is not None else frame.iloc[-limit:]
        columns = [dates_ms(frame["date"]).tolist(), *(frame[c].to_numpy(dtype="float64").tolist() for c in OHLCV)]
        rows: list[Candle] = list(zip(*columns, strict=True))
        return CandlesOut(
            exchange=info.exchange,
            pair=pair,
            timeframe=timeframe,
            synthetic=info.synthetic,
            length=len(rows),
            data=rows,
        )

    def series(self) -> list[SeriesOut]:
        """Describe every stored series, sorted by exchange, pair and timeframe."""
        return [
            SeriesOut(
                exchange=s.exchange,
                pair=s.pair,
                timeframe=s.timeframe,
                rows=s.rows,
                first_ms=_ms(s.start),
                last_ms=_ms(s.end),
                gaps=s.gaps,
                synthetic=s.synthetic,
            )
            for s in self.listing()
        ]

    def listing(self) -> list[SeriesInfo]:
        """Return the store's series, listed again only when a candle file changed since the last call."""
        with self._lock:
            stamp = _stamp(self.store.root)
            if stamp != self._stamp:
                self._listing = self.store.list_series()
                self._stamp = stamp
            return list(self._listing)

    def _now_ms(self) -> int:
        return self.clock.now_ms() if self.clock is not None else time.time_ns() // 1_000_000


def _stamp(root: Path) -> _Stamp:
    """Return (path, mtime, size) of every candle file: the store writes by atomic rename, so a change shows."""
    if not root.is_dir():
        return ()
    found: list[tuple[str, int, int]] = []
    for path in root.glob(f"*/*{SUFFIX}"):
        try:
            stat = path.stat()
        except FileNotFoundError:  # removed while we looked: the next call sees the new state
            continue
        found.append((str(path), stat.st_mtime_ns, stat.st_size))
    return tuple(sorted(found))


def _ms(value: pd.Timestamp | None) -> int | None:
    return None if value is None else int(value.value) // 1_000_000
