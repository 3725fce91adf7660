"""HTTP routes of the market-data service under ``/api/v1/market`` (viewers and up).

The service is ``app.state.market_service``, set by the composition root (``bootstrap.build_api``).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request

from tradefleet.api.deps import RequireViewer
from tradefleet.core.errors import StorageError
from tradefleet.services.market.schemas import CandlesOut, SeriesOut
from tradefleet.services.market.service import DEFAULT_LIMIT, MAX_LIMIT, MarketDataService


async def get_market_service(request: Request) -> MarketDataService:
    service: MarketDataService | None = getattr(request.app.state, "market_service", None)
    if service is None:
        raise StorageError("no market-data service in this process", hint="run the API with `tradefleet up`")
    return service


MarketDep = Annotated[MarketDataService, Depends(get_market_service)]
Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT, description="candles to return")]
SinceMs = Annotated[int | None, Query(ge=0, description="first candle opening at or after this Unix ms")]

router = APIRouter(prefix="/api/v1/market", tags=["market data"])


@router.get("/candles")
def candles(
    _viewer: RequireViewer,
    market: MarketDep,
    pair: Annotated[str, Query(min_length=3, max_length=50, examples=["ETH/BTC"])],
    timeframe: Annotated[str, Query(min_length=2, max_length=10, examples=["5m"])],
    exchange: Annotated[str | None, Query(min_length=1, max_length=100)] = None,
    since_ms: SinceMs = None,
    limit: Limit = DEFAULT_LIMIT,
) -> CandlesOut:
    """Stored candles, oldest first: the newest ``limit`` up to now, or the first ``limit`` from ``since_ms``.

    Without ``exchange`` the recorded series is preferred to a synthetic one; with it, only that folder counts.
    """
    return market.candles(pair, timeframe, exchange, since_ms, limit)


@router.get("/series")
def series(_viewer: RequireViewer, market: MarketDep) -> list[SeriesOut]:
    """Every stored series with its range, row count, gaps and whether it is synthetic."""
    return market.series()
