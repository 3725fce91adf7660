"""Downloading candles from a loopback server that answers like Binance's public REST API."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest
from binance_replay import STEP_5M, BinanceReplay, binance_error, gateway_error, load_fixture

from tradefleet.adapters.data.downloader import RetryPolicy, download, make_client
from tradefleet.adapters.data.generator import generate_market
from tradefleet.adapters.data.store import CandleStore
from tradefleet.core.errors import RateLimitError, TemporaryExchangeError, UnknownSymbolError

RECORDED = load_fixture("klines_ETHBTC_5m.json")
FIRST_MS = RECORDED[0][0]
END_MS = RECORDED[-1][0] + STEP_5M
FAST = RetryPolicy(attempts=3, first_wait=0.01, max_wait=0.05)


def fetch(store: CandleStore, binance: BinanceReplay, pair: str = "ETH/BTC", **kwargs):
    client = make_client("binance", api_url=binance.url)
    try:
        kwargs.setdefault("since_ms", FIRST_MS)
        kwargs.setdefault("retry", FAST)
        return download(store, "binance", pair, "5m", client=client, **kwargs)
    finally:
        client.close()


def recorded_frame() -> pd.DataFrame:
    rows = np.array([r[:6] for r in RECORDED], dtype="float64")
    frame = pd.DataFrame(rows[:, 1:], columns=["open", "high", "low", "close", "volume"])
    frame.insert(
        0,
        "date",
        pd.to_datetime(rows[:, 0].astype("int64"), unit="ms", utc=True).astype("datetime64[ms, UTC]"),
    )
    return frame


def test_download_pages_through_the_whole_range_and_stores_every_candle(store, binance):
    result = fetch(store, binance, limit=500)

    assert binance.kline_starts()[:3] == [FIRST_MS, FIRST_MS + 500 * STEP_5M, FIRST_MS + 1000 * STEP_5M]
    assert result.added == result.fetched == len(RECORDED)
    assert result.pages >= 3
    stored = store.read("binance", "ETH/BTC", "5m")
    pd.testing.assert_frame_equal(stored, recorded_frame())
    assert (result.first_ms, result.last_ms) == (FIRST_MS, RECORDED[-1][0])


def test_load_markets_touches_only_the_spot_exchange_info(store, binance):
    fetch(store, binance, until_ms=FIRST_MS + 10 * STEP_5M)

    assert set(binance.paths()) == {"/api/v3/exchangeInfo", "/api/v3/klines"}
    assert binance.paths().count("/api/v3/exchangeInfo") == 1


def test_until_is_exclusive(store, binance):
    result = fetch(store, binance, until_ms=FIRST_MS + 10 * STEP_5M)

    assert result.added == 10
    assert store.last_ms("binance", "ETH/BTC", "5m") == FIRST_MS + 9 * STEP_5M


def test_interrupted_download_keeps_its_pages_and_the_next_run_resumes_after_them(store, binance):
    binance.faults = {n: gateway_error() for n in range(2, 10)}
    with pytest.raises(TemporaryExchangeError, match="ExchangeNotAvailable"):
        fetch(store, binance, limit=500)
    assert store.last_ms("binance", "ETH/BTC", "5m") == FIRST_MS + 499 * STEP_5M

    binance.faults = {}
    binance.server.clear_log()
    result = fetch(store, binance, limit=500)

    assert binance.kline_starts()[0] == FIRST_MS + 500 * STEP_5M
    assert result.resumed_from_ms == FIRST_MS + 500 * STEP_5M
    assert result.added == len(RECORDED) - 500
    pd.testing.assert_frame_equal(store.read("binance", "ETH/BTC", "5m"), recorded_frame())


def test_rate_limited_page_is_retried_then_succeeds(store, binance):
    binance.faults = {1: binance_error(429, -1003, "Too many requests; current limit is 6000 request weight.")}

    result = fetch(store, binance, until_ms=FIRST_MS + 20 * STEP_5M)

    assert result.added == 20
    assert binance.kline_starts() == [FIRST_MS, FIRST_MS]


def test_persistent_rate_limit_gives_up_after_the_bounded_retries(store, binance):
    binance.faults = {n: binance_error(429, -1003, "Too many requests.") for n in range(1, 10)}

    with pytest.raises(RateLimitError):
        fetch(store, binance, until_ms=FIRST_MS + 20 * STEP_5M)

    assert len(binance.kline_starts()) == FAST.attempts
    assert not store.has("binance", "ETH/BTC", "5m")


def test_pair_the_exchange_does_not_list_is_an_unknown_symbol(store, binance):
    with pytest.raises(UnknownSymbolError, match="XRP/BTC"):
        fetch(store, binance, pair="XRP/BTC")

    assert "/api/v3/klines" not in binance.paths()
    assert not store.has("binance", "XRP/BTC", "5m")


def test_symbol_refused_by_the_venue_is_an_unknown_symbol(store, binance):
    # ADABTC is listed in exchangeInfo but the venue answers klines with -1121 Invalid symbol
    with pytest.raises(UnknownSymbolError, match="BadSymbol"):
        fetch(store, binance, pair="ADA/BTC")


def test_earlier_range_is_filled_in_before_the_stored_one(store, binance):
    fetch(store, binance, since_ms=FIRST_MS + 600 * STEP_5M, until_ms=FIRST_MS + 700 * STEP_5M)
    binance.server.clear_log()

    result = fetch(store, binance, since_ms=FIRST_MS, until_ms=FIRST_MS + 800 * STEP_5M)

    assert binance.kline_starts()[0] == FIRST_MS
    assert FIRST_MS + 700 * STEP_5M in binance.kline_starts()
    assert result.added == 700
    stored = store.read("binance", "ETH/BTC", "5m")
    assert len(stored) == 800 and store.gaps("binance", "ETH/BTC", "5m") == []


def test_second_download_of_a_complete_range_fetches_nothing(store, binance):
    fetch(store, binance, until_ms=END_MS)
    binance.server.clear_log()

    result = fetch(store, binance, until_ms=END_MS)

    assert result.added == 0 and result.pages == 0
    assert binance.kline_starts() == []


def test_still_forming_candle_is_never_stored(store, binance):
    step = 60_000
    start = (int(time.time() * 1000) // step - 30) * step
    market = generate_market("BTC/USDT", "1m", start_ms=start, candles=40, seed=3, start_price=60_000)

    def live(start_ms: int, limit: int) -> list[list]:
        now = int(time.time() * 1000)
        rows = market[market["date"] <= pd.Timestamp(now, unit="ms", tz="UTC")]
        rows = rows[rows["date"] >= pd.Timestamp(start_ms, unit="ms", tz="UTC")].head(limit)
        return [
            [
                int(r.date.value // 1_000_000),
                f"{r.open:.2f}",
                f"{r.high:.2f}",
                f"{r.low:.2f}",
                f"{r.close:.2f}",
                f"{r.volume:.5f}",
                int(r.date.value // 1_000_000) + step - 1,
                "0",
                1,
                "0",
                "0",
                "0",
            ]
            for r in rows.itertuples()
        ]

    binance.live[("BTCUSDT", "1m")] = live
    client = make_client("binance", api_url=binance.url)
    try:
        before = int(time.time() * 1000)
        download(store, "binance", "BTC/USDT", "1m", since_ms=start, client=client, retry=FAST)
        after = int(time.time() * 1000)
    finally:
        client.close()

    last = store.last_ms("binance", "BTC/USDT", "1m")
    assert last is not None
    assert last + step <= after  # closed
    assert last >= before // step * step - step  # and nothing closed is missing
