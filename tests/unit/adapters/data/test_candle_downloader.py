"""Downloader pieces that need no server: client factory, error translation, windows, page filtering."""

from __future__ import annotations

from pathlib import Path

import ccxt
import pandas as pd
import pytest

from tradefleet.adapters.data.downloader import _windows, download, make_client, translate_error
from tradefleet.adapters.data.store import CandleStore
from tradefleet.core.candles import ohlcv_rows_frame
from tradefleet.core.errors import (
    AuthenticationError,
    ConfigError,
    ExchangeError,
    RateLimitError,
    TemporaryExchangeError,
    UnknownSymbolError,
)

STEP = 60_000


def test_client_is_rate_limited_and_binance_loads_spot_markets_only():
    client = make_client("Binance")
    try:
        assert client.enableRateLimit is True
        assert client.options["fetchMarkets"]["types"] == ["spot"]
    finally:
        client.close()


def test_api_url_repoints_every_rest_base_url_keeping_the_paths():
    client = make_client("binance", api_url="http://127.0.0.1:8765/")
    try:
        api = client.urls["api"]
        assert api["public"] == "http://127.0.0.1:8765/api/v3"
        assert api["fapiPublic"] == "http://127.0.0.1:8765/fapi/v1"
        assert all(url.startswith("http://127.0.0.1:8765/") for url in api.values() if isinstance(url, str))
    finally:
        client.close()


def test_unknown_exchange_is_a_config_error():
    with pytest.raises(ConfigError, match="unknown exchange 'notanexchange'"):
        make_client("notanexchange")


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (ccxt.BadSymbol("binance does not have market symbol X/Y"), UnknownSymbolError),
        (ccxt.AuthenticationError("invalid key"), AuthenticationError),
        (ccxt.PermissionDenied("no"), AuthenticationError),
        (ccxt.DDoSProtection("binance 429"), RateLimitError),
        (ccxt.RateLimitExceeded("binance -1003"), RateLimitError),
        (ccxt.ExchangeNotAvailable("502"), TemporaryExchangeError),
        (ccxt.RequestTimeout("timed out"), TemporaryExchangeError),
        (ccxt.OperationFailed("-1001 internal error"), TemporaryExchangeError),
        (ccxt.NotSupported("no ohlcv"), ExchangeError),
        (ccxt.ExchangeError("something else"), ExchangeError),
    ],
)
def test_ccxt_errors_are_translated_into_the_one_tree(error, expected):
    translated = translate_error(error, "binance BTC/USDT 1h: fetching candles")

    assert type(translated) is expected
    assert translated.message.startswith("binance BTC/USDT 1h: fetching candles: ")
    assert type(error).__name__ in translated.message


def test_long_ccxt_messages_are_cut():
    translated = translate_error(ccxt.ExchangeError("x" * 5000), "call")
    assert len(translated.message) < 400


def test_windows_of_an_empty_series_cover_the_request():
    assert _windows(0, 10 * STEP, STEP, None, None) == ([(0, 10 * STEP)], None)
    assert _windows(10 * STEP, 10 * STEP, STEP, None, None) == ([], None)


def test_windows_resume_after_the_last_stored_candle_and_fill_in_before_the_first():
    windows, resumed = _windows(0, 100 * STEP, STEP, first=20 * STEP, last=49 * STEP)

    assert windows == [(0, 20 * STEP), (50 * STEP, 100 * STEP)]
    assert resumed == 50 * STEP


def test_windows_of_a_complete_range_are_empty():
    assert _windows(20 * STEP, 50 * STEP, STEP, first=20 * STEP, last=49 * STEP) == ([], 50 * STEP)


def test_page_keeps_only_candles_in_the_window_and_drops_repeats():
    rows = [
        [0, 1.0, 2.0, 0.5, 1.5, 10.0],
        [STEP, 1.5, 2.0, 1.0, 1.2, 11.0],
        [STEP, 1.5, 2.5, 1.0, 1.3, 12.0],
        [2 * STEP, 1.3, 1.4, 1.2, 1.3, 9.0],
    ]

    frame = ohlcv_rows_frame(rows, STEP, 2 * STEP)

    assert frame["date"].tolist() == [pd.Timestamp(STEP, unit="ms", tz="UTC")]
    assert frame["close"].tolist() == [1.3]
    assert str(frame["date"].dtype) == "datetime64[ms, UTC]"


@pytest.mark.parametrize(
    ("pair", "limit", "message"),
    [
        ("BTC/USDT:USDT", 1000, "only spot pairs"),
        ("BTC/USDT", 0, "invalid page size"),
        ("BTCUSDT", 10, "invalid pair"),
    ],
)
def test_requests_that_cannot_work_fail_before_any_network_call(tmp_path: Path, pair, limit, message):
    with pytest.raises(ConfigError, match=message):
        download(CandleStore(tmp_path), "binance", pair, "1h", since_ms=0, limit=limit)
