"""Live candles from a ccxt venue: the candle source of live market-data hubs."""

from __future__ import annotations

from typing import Any

import pandas as pd

from tradefleet.adapters.exchanges.ccxt import CcxtExchange
from tradefleet.core.candles import ohlcv_rows_frame, timeframe_to_ms


class CcxtCandleSource:
    """Closed candles of a ccxt venue, paged through ``fetch_ohlcv``: the candle source of live hubs.

    The still-forming candle is never returned, so a bot only ever sees candles that have closed. A candle
    counts as closed when both clocks say so: the local clock has passed its close, and the venue has
    already started a newer one (a local clock running ahead of the venue's cannot cut a candle short).
    """

    def __init__(self, exchange: CcxtExchange, *, page_limit: int = 1000, max_pages: int = 10) -> None:
        self.exchange = exchange
        self.page_limit = page_limit
        self.max_pages = max_pages

    def candles(self, pair: str, timeframe: str, start_ms: int, end_ms: int) -> pd.DataFrame:
        step = timeframe_to_ms(timeframe)
        end = min(end_ms, self.exchange.milliseconds() // step * step)  # the forming candle opens here
        rows: list[list[Any]] = []
        cursor = start_ms
        venue_newest = -1
        for _ in range(self.max_pages):
            if cursor >= end:
                break
            page = self.exchange.fetch_ohlcv(pair, timeframe, cursor, self.page_limit)
            newest = max((int(row[0]) for row in page), default=None)
            rows.extend(page)
            if newest is None or newest < cursor:
                break  # nothing more on the venue
            venue_newest = max(venue_newest, newest)
            cursor = newest + step
        # the venue's newest candle may still be forming, whatever the local clock says
        return ohlcv_rows_frame(rows, start_ms, min(end, venue_newest))
