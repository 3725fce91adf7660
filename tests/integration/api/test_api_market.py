"""Market data over real HTTP on loopback: stored real candles by pair and timeframe, paging, series, errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest
from api_support import Api, assert_error

from tradefleet.adapters.data.generator import generate_market
from tradefleet.adapters.data.store import CandleStore
from tradefleet.core.candles import dates_ms
from tradefleet.engine.clock import SimClock
from tradefleet.services.market import MarketDataService

# Candles live in files, not in the database: one backend is enough (the aliases' tests run on both).
pytestmark = [pytest.mark.realdata, pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)]
ROWS = 400  # real ETH/BTC 5m candles stored (of 5,760)


@pytest.fixture
def real(real_data_dir: Path) -> pd.DataFrame:
    return pd.read_feather(real_data_dir / "ETH_BTC-5m.feather").iloc[:ROWS].reset_index(drop=True)


@pytest.fixture
def candles(api: Api, tmp_path: Path, real: pd.DataFrame) -> CandleStore:
    """A candle store with recorded ETH/BTC 5m on ``bittrex`` and a synthetic ETH/BTC 5m on ``simulated``."""
    store = CandleStore(tmp_path / "candles")
    store.write("bittrex", "ETH/BTC", "5m", real)
    start = int(dates_ms(real["date"])[0])
    store.write("simulated", "ETH/BTC", "5m", generate_market("ETH/BTC", "5m", start_ms=start, candles=50, seed=7),
                synthetic=True)  # fmt: skip
    api.app.state.market_service = MarketDataService(store)
    return store


def _rows(frame: pd.DataFrame) -> list[list[float]]:
    ms = dates_ms(frame["date"]).tolist()
    values = frame[["open", "high", "low", "close", "volume"]].to_numpy().tolist()
    return [[d, *v] for d, v in zip(ms, values, strict=True)]


def test_candles_are_the_newest_recorded_ones_up_to_now_or_a_page_from_since_ms(
    api: Api, candles: CandleStore, real: pd.DataFrame
) -> None:
    viewer = api.bearer("viewer")
    answer = api.client.get("/api/v1/market/candles", params={"pair": "ETH/BTC", "timeframe": "5m", "limit": 3},
                            headers=viewer)  # fmt: skip
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert (body["exchange"], body["pair"], body["timeframe"], body["synthetic"]) == ("bittrex", "ETH/BTC", "5m", False)
    assert body["columns"] == ["date", "open", "high", "low", "close", "volume"]
    assert body["length"] == 3 and body["data"] == _rows(real.iloc[-3:])

    default = api.client.get("/api/v1/market/candles", params={"pair": "eth/btc", "timeframe": "5m"}, headers=viewer)
    assert default.json()["length"] == ROWS and default.json()["data"] == _rows(real)

    params: dict[str, Any] = {"pair": "ETH/BTC", "timeframe": "5m", "exchange": "simulated"}
    synthetic = api.client.get("/api/v1/market/candles", params=params, headers=viewer).json()
    assert (synthetic["exchange"], synthetic["synthetic"], synthetic["length"]) == ("simulated", True, 50)

    ms = dates_ms(real["date"])
    params = {"pair": "ETH/BTC", "timeframe": "5m", "since_ms": int(ms[10]), "limit": 5}
    first = api.client.get("/api/v1/market/candles", params=params, headers=viewer).json()
    assert first["data"] == _rows(real.iloc[10:15])
    after = {**params, "since_ms": first["data"][-1][0] + 1}
    assert api.client.get("/api/v1/market/candles", params=after, headers=viewer).json()["data"] == _rows(
        real.iloc[15:20]
    )
    # "Now" in the middle of the stored candles: nothing opening later is answered.
    api.app.state.market_service = MarketDataService(candles, SimClock(int(ms[99])))
    newest = api.client.get("/api/v1/market/candles", params={"pair": "ETH/BTC", "timeframe": "5m", "limit": 2},
                            headers=viewer).json()  # fmt: skip
    assert newest["data"] == _rows(real.iloc[98:100])


def test_series_are_listed_afresh_after_writes_and_bad_queries_get_the_error_shape(
    api: Api, candles: CandleStore, real: pd.DataFrame
) -> None:
    viewer = api.bearer("viewer")
    listed = api.client.get("/api/v1/market/series", headers=viewer).json()
    ms = dates_ms(real["date"])
    assert listed[0] == {"exchange": "bittrex", "pair": "ETH/BTC", "timeframe": "5m", "rows": ROWS,
                         "first_ms": int(ms[0]), "last_ms": int(ms[-1]), "gaps": 0, "synthetic": False}  # fmt: skip
    assert [(s["exchange"], s["synthetic"], s["rows"]) for s in listed[1:]] == [("simulated", True, 50)]
    candles.write("bittrex", "ADA/BTC", "5m", real.iloc[:20])  # the listing is cached until a file changes
    candles.write("bittrex", "ETH/BTC", "5m", real.iloc[:ROWS])  # unchanged content: not rewritten
    relisted = api.client.get("/api/v1/market/series", headers=viewer).json()
    assert [(s["exchange"], s["pair"], s["rows"]) for s in relisted] == [
        ("bittrex", "ADA/BTC", 20), ("bittrex", "ETH/BTC", ROWS), ("simulated", "ETH/BTC", 50),
    ]  # fmt: skip
    ada = api.client.get("/api/v1/market/candles", params={"pair": "ADA/BTC", "timeframe": "5m"}, headers=viewer)
    assert ada.json()["length"] == 20

    def get(**params: Any) -> httpx.Response:
        return api.client.get("/api/v1/market/candles", params={"pair": "ETH/BTC", "timeframe": "5m", **params},
                              headers=viewer)  # fmt: skip

    error = assert_error(get(exchange="binance"), 404, "data_not_found")
    assert "stored on: bittrex, simulated" in error["message"]
    assert "stored timeframes of ETH/BTC: 5m" in assert_error(get(timeframe="1h"), 404, "data_not_found")["message"]
    assert_error(get(pair="BTC/USDT"), 404, "data_not_found")
    assert_error(get(pair="ETHBTC"), 422, "config_error")
    assert_error(get(timeframe="7x"), 422, "config_error")
    assert_error(get(exchange="../etc"), 422, "config_error")
    for bad in ({"limit": 0}, {"limit": 5001}, {"since_ms": -1}, {"limit": "many"}):
        assert_error(get(**bad), 422, "validation_error")
    no_pair = api.client.get("/api/v1/market/candles", params={"timeframe": "5m"}, headers=viewer)
    assert ["query", "pair"] in [d["loc"] for d in assert_error(no_pair, 422, "validation_error")["details"]]
    assert_error(api.client.get("/api/v1/market/series"), 401, "unauthorized")
    assert_error(api.client.get("/api/v1/market/candles", params={"pair": "ETH/BTC", "timeframe": "5m"}), 401,
                 "unauthorized")  # fmt: skip
