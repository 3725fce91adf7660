"""Live candles from a venue (:class:`CcxtCandleSource`), read through ccxt from the loopback Binance venue.

A live bot must only ever see candles that have closed. The venue's klines end with the still-forming
candle; a candle counts as closed only when the local clock has passed its close *and* the venue has
already started a newer one, so a local clock running ahead of the venue's cannot cut a candle short.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import pytest

from support.binance_venue import API_KEY, CCXT_OPTIONS, SECRET, BinanceVenue
from tradefleet.adapters.exchanges.ccxt import CcxtExchange, ReadRetry
from tradefleet.adapters.exchanges.ccxt_candles import CcxtCandleSource
from tradefleet.core.candles import dates_ms

MINUTE = 60_000
BTC = "BTC/USDT"
FAR_FUTURE_MS = 2**62


@pytest.fixture
def venue() -> Iterator[BinanceVenue]:
    with BinanceVenue() as server:
        yield server
        assert server.unrouted() == []


def source(venue: BinanceVenue, *, clock_ahead_ms: int = 0, page_limit: int = 1000) -> CcxtCandleSource:
    exchange = CcxtExchange(
        "binance",
        api_key=API_KEY,
        secret=SECRET,
        api_urls=venue.api_urls,
        options=CCXT_OPTIONS,
        timeout_ms=2_000,
        retry=ReadRetry(attempts=2, backoff_s=0.01, max_wait_s=1.0),
    )
    if clock_ahead_ms:
        venue_clock = exchange.milliseconds
        exchange.milliseconds = lambda: venue_clock() + clock_ahead_ms  # type: ignore[method-assign]
    return CcxtCandleSource(exchange, page_limit=page_limit)


def forming_open_ms() -> int:
    """Open time of the candle the venue is forming now (it follows the wall clock)."""
    return time.time_ns() // 1_000_000 // MINUTE * MINUTE


def read_within_one_minute(read: Callable[[], list[int]]) -> tuple[list[int], int]:
    """Read open times while the venue forms one same candle (retried if a minute turned meanwhile)."""
    for _ in range(3):
        before = forming_open_ms()
        opens = read()
        if forming_open_ms() == before:
            return opens, before
    raise AssertionError("the minute kept turning during the read")


def opens(frame_source: CcxtCandleSource, start_ms: int, end_ms: int = FAR_FUTURE_MS) -> list[int]:
    frame = frame_source.candles(BTC, "1m", start_ms, end_ms)
    return [int(ms) for ms in dates_ms(frame["date"])]


def test_only_closed_candles_are_returned_in_order_without_gaps(venue: BinanceVenue) -> None:
    candles = source(venue)
    got, forming = read_within_one_minute(lambda: opens(candles, forming_open_ms() - 30 * MINUTE))
    assert got[-1] == forming - MINUTE, "up to the last closed candle, not the forming one"
    assert got == list(range(got[0], forming, MINUTE)) and len(got) == 30


def test_a_local_clock_ahead_of_the_venue_does_not_get_the_forming_candle(venue: BinanceVenue) -> None:
    # The local clock says the venue's forming candle has closed 30 s ago; the venue has not started a new one.
    candles = source(venue, clock_ahead_ms=90_000)
    got, forming = read_within_one_minute(lambda: opens(candles, forming_open_ms() - 5 * MINUTE))
    assert forming not in got, "the venue's forming candle was taken as closed"
    assert got[-1] == forming - MINUTE


def test_candles_are_paged_across_many_requests(venue: BinanceVenue) -> None:
    candles = source(venue, page_limit=7)
    got, forming = read_within_one_minute(lambda: opens(candles, forming_open_ms() - 40 * MINUTE))
    assert got == list(range(forming - 40 * MINUTE, forming, MINUTE)), "40 closed candles, none twice"
    assert len(venue.requests("/api/v3/klines")) >= 6, "read in pages of 7"


def test_an_end_before_now_bounds_the_candles(venue: BinanceVenue) -> None:
    candles = source(venue)
    start = forming_open_ms() - 20 * MINUTE
    got = opens(candles, start, start + 5 * MINUTE)
    assert got == [start + i * MINUTE for i in range(5)], "the end is exclusive, as everywhere"
