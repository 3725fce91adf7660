"""Fixtures of the market data integration tests: a Binance replay server, a store, the CLI app."""

from __future__ import annotations

from pathlib import Path

import pytest
import typer
from binance_replay import BinanceReplay, load_fixture
from pytest_httpserver import HTTPServer

from tradefleet.adapters.data.store import CandleStore
from tradefleet.cli import root
from tradefleet.cli.data import register


@pytest.fixture
def binance(httpserver: HTTPServer) -> BinanceReplay:
    """Return a running Binance replay with ETH/BTC 5m candles recorded."""
    replay = BinanceReplay(httpserver)
    replay.klines[("ETHBTC", "5m")] = load_fixture("klines_ETHBTC_5m.json")
    httpserver.expect_request("/api/v3/exchangeInfo", method="GET").respond_with_json(load_fixture("exchangeInfo.json"))
    httpserver.expect_request("/api/v3/klines", method="GET").respond_with_handler(replay.handle_klines)
    return replay


@pytest.fixture
def store(tmp_path: Path) -> CandleStore:
    """Return an empty candle store in a temporary folder."""
    return CandleStore(tmp_path / "candles")


@pytest.fixture
def cli_app() -> typer.Typer:
    """Return a root app wired like ``tradefleet`` with the data group registered."""
    app = typer.Typer(pretty_exceptions_enable=False, add_completion=False)
    app.callback()(root)
    register(app)
    return app
