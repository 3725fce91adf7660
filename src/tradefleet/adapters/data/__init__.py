"""Market data adapters: the candle store, importers, the market generator and the downloader."""

from tradefleet.adapters.data.generator import generate_days, generate_market
from tradefleet.adapters.data.store import CandleStore, SeriesInfo, StoreCandleSource

__all__ = [
    "CandleStore",
    "SeriesInfo",
    "StoreCandleSource",
    "generate_days",
    "generate_market",
]
