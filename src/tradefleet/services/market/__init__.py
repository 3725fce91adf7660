"""Market data as a service: stored candles and series for API clients (:class:`MarketDataService`).

Compose it in the composition root over the candle store::

    market = MarketDataService(platform.candles)
"""

from tradefleet.services.market.schemas import CandlesOut, SeriesOut
from tradefleet.services.market.service import MarketDataService, MarketValidationError

__all__ = ["CandlesOut", "MarketDataService", "MarketValidationError", "SeriesOut"]
