"""What the market-data service answers: stored candles and the list of stored series."""

from __future__ import annotations

from pydantic import BaseModel, Field

CANDLE_COLUMNS = ("date", "open", "high", "low", "close", "volume")

Candle = tuple[int, float, float, float, float, float]


class CandlesOut(BaseModel):
    """Candles of one series, oldest first, one row per candle in the order of ``columns``."""

    exchange: str = Field(description="candle folder the series was read from")
    pair: str
    timeframe: str
    synthetic: bool = Field(description="generated candles rather than recorded ones")
    columns: list[str] = Field(
        default_factory=lambda: list(CANDLE_COLUMNS), description="date is the candle open time, Unix ms (UTC)"
    )
    length: int
    data: list[Candle]


class SeriesOut(BaseModel):
    """One stored series."""

    exchange: str
    pair: str
    timeframe: str
    rows: int
    first_ms: int | None = Field(description="open time of the first candle, Unix ms")
    last_ms: int | None = Field(description="open time of the last candle, Unix ms")
    gaps: int = Field(description="holes of at least one missing candle")
    synthetic: bool
