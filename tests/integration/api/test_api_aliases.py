"""The trading-engine alias paths over real HTTP: same answers as /api/v1, default bot, symbols, roles, BOLA."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from api_support import PASSWORD, Api, assert_error

from tradefleet.adapters.bus import MemoryBus
from tradefleet.adapters.data.store import CandleStore
from tradefleet.adapters.storage import SqlTradingStore
from tradefleet.adapters.storage.owner_tables import SqlBotOwners
from tradefleet.core.bots import BotStatus
from tradefleet.core.bus import COMMANDS_STREAM, FIRST_ID
from tradefleet.core.ports import EquitySnapshot
from tradefleet.core.trades import Trade
from tradefleet.services.auth import Role
from tradefleet.services.bots import BotService
from tradefleet.services.gateway import BusCommands, CommandReplies
from tradefleet.services.market import MarketDataService

BOT: dict[str, Any] = {
    "bot_id": "alpha",
    "strategy": "SampleStrategy",
    "pairs": ["BTC/USDT", "ETH/USDT"],
    "timeframe": "5m",
    "risk": {"stake_mode": "percent", "stake_amount": 20, "max_open_trades": 3},
}
# Every alias: method, path, JSON body (None: no body).
ALIASES: list[tuple[str, str, dict[str, Any] | None]] = [
    ("GET", "/api/status", None),
    ("POST", "/api/bot/start", None),
    ("POST", "/api/bot/stop", None),
    ("GET", "/api/positions", None),
    ("POST", "/api/positions/BTC-USDT/close", None),
    ("POST", "/api/positions/close-all", None),
    ("GET", "/api/trades/history", None),
    ("GET", "/api/performance/stats", None),
    ("GET", "/api/account", None),
    ("GET", "/api/config/trading", None),
    ("PUT", "/api/config/trading", {"max_open_trades": 2}),
    ("POST", "/api/trades/execute", {"symbol": "BTC-USDT", "side": "buy"}),
]
WRITES = [(m, p, b) for m, p, b in ALIASES if m != "GET"]


@dataclass
class World:
    store: SqlTradingStore
    bus: MemoryBus

    def commands(self) -> list[tuple[str, dict[str, Any]]]:
        return [(m.type, m.payload) for m in self.bus.read_after(COMMANDS_STREAM, FIRST_ID)]


@pytest.fixture
def world(api: Api, tmp_path: Path, real_data_dir: Path) -> Iterator[World]:
    """Bots over the test database with a command bus no gateway listens to, real ETH/BTC candles, ``trader2``."""
    trading = SqlTradingStore(api.engine, api.clock)
    bus = MemoryBus()
    commands = BusCommands(bus, CommandReplies())
    api.app.state.bot_service = BotService(trading, SqlBotOwners(api.engine), commands=commands, reply_timeout_s=0.05)
    candles = CandleStore(tmp_path / "candles")
    candles.write("bittrex", "ETH/BTC", "5m", pd.read_feather(real_data_dir / "ETH_BTC-5m.feather").iloc[:300])
    api.app.state.market_service = MarketDataService(candles)
    api.auth.create_user("trader2", PASSWORD, Role.TRADER)
    try:
        yield World(trading, bus)
    finally:
        bus.close()
        trading.close()


def _create(api: Api, headers: dict[str, str], **changes: Any) -> None:
    answer = api.client.post("/api/v1/bots", json={**BOT, **changes}, headers=headers)
    assert answer.status_code == 201, answer.text


def _seed_history(store: SqlTradingStore) -> None:
    for n, (pair, reason, rate) in enumerate([("BTC/USDT", "roi", 110.0), ("ETH/USDT", "stop_loss", 95.0),
                                              ("BTC/USDT", "roi", 104.0)], 1):  # fmt: skip
        trade = Trade("alpha", pair, open_ms=1_000 * n, open_rate=100.0, amount=1.0, fee_open=0.1, stop_price=90.0,
                      initial_stop=90.0, entry_order=f"in-{n}")  # fmt: skip
        trade.id = store.add_trade(trade)
        trade.close(1_000 * n + 500, rate, 0.1, reason, f"out-{n}")
        store.update_trade(trade)
    store.add_trade(Trade("alpha", "ETH/USDT", open_ms=9_000, open_rate=50.0, amount=2.0, fee_open=0.1,
                          stop_price=45.0, initial_stop=45.0, entry_order="in-open"))  # fmt: skip
    store.add_equity_snapshots([EquitySnapshot("alpha", 10_000, 9_890.0, 10_012.0, 9.6, 2.4, 0.7)])
    store.save_progress("alpha", "BTC/USDT", 8_000)


def test_each_alias_answers_what_its_canonical_route_answers_and_put_config_patches_risk(
    api: Api, world: World
) -> None:
    trader = api.bearer("trader")
    _create(api, trader)
    _seed_history(world.store)
    page = "limit=1&offset=1&exit_reason=roi"
    canonical = {
        "/api/status": "/api/v1/bots/alpha/status",
        "/api/positions": "/api/v1/bots/alpha/positions",
        "/api/performance/stats": "/api/v1/bots/alpha/performance",
        "/api/account": "/api/v1/bots/alpha/account",
        f"/api/trades/history?{page}": f"/api/v1/bots/alpha/trades?{page}",
        "/api/trades/history?symbol=btcusdt": "/api/v1/bots/alpha/trades?pair=BTC/USDT",
    }  # fmt: skip
    for alias, route in canonical.items():
        expected = api.client.get(route, headers=trader)
        assert expected.status_code == 200, expected.text
        for path in (alias, alias + ("&" if "?" in alias else "?") + "bot_id=alpha"):
            answer = api.client.get(path, headers=trader)
            assert answer.status_code == 200, (path, answer.text)
            assert answer.json() == expected.json(), path
    # The data behind them is the seeded one, not an empty default.
    assert api.client.get("/api/positions", headers=trader).json()["positions"][0]["pair"] == "ETH/USDT"
    assert api.client.get("/api/trades/history?symbol=BTC_USDT", headers=trader).json()["total"] == 2
    assert api.client.get("/api/account", headers=trader).json()["equity"] == 10_012.0
    bot = api.client.get("/api/v1/bots/alpha", headers=trader).json()
    config = api.client.get("/api/config/trading", headers=trader).json()
    assert config == {k: bot[k] for k in ("bot_id", "strategy", "timeframe", "pairs", "quote_currency", "risk")}

    # PUT /api/config/trading is PATCH /api/v1/bots/{id} with {"risk": body}: merged, validated the same.
    answer = api.client.put("/api/config/trading", json={"max_open_trades": 2, "cooldown": {"candles": 3}},
                            headers=trader)  # fmt: skip
    assert answer.status_code == 200, answer.text
    risk = answer.json()["risk"]
    assert (risk["max_open_trades"], risk["stake_amount"], risk["cooldown"]["candles"]) == (2, 20, 3)
    assert api.client.get("/api/v1/bots/alpha", headers=trader).json()["risk"] == risk
    stored = world.store.get_bot("alpha")
    assert stored is not None and stored.risk.max_open_trades == 2
    assert api.client.put("/api/config/trading", json={}, headers=trader).json()["risk"] == risk

    bad: list[Any] = [{"max_per_pair": 5}, {"leverage": 10}, {"stake_amount": -1}, {"stake_mode": "all-in"}]
    for body in bad:
        error = assert_error(api.client.put("/api/config/trading", json=body, headers=trader), 422, "validation_error")
        assert error["details"]["errors"][0]["loc"][0] == "risk", body
    for body in ([1, 2], "risk", None):
        assert_error(api.client.put("/api/config/trading", json=body, headers=trader), 422, "validation_error")
    not_json = api.client.put(
        "/api/config/trading", content=b"{", headers={**trader, "Content-Type": "application/json"}
    )
    assert_error(not_json, 422, "validation_error")
    assert api.client.get("/api/config/trading", headers=trader).json()["risk"] == risk


def test_without_bot_id_the_callers_only_bot_is_used_else_a_clear_error(api: Api, world: World) -> None:
    trader, other = api.bearer("trader"), api.bearer("trader2")
    none = assert_error(api.client.get("/api/status", headers=trader), 404, "bot_not_found")
    assert "POST /api/v1/bots" in none["details"]["hint"]
    _create(api, trader)
    _create(api, other, bot_id="theirs")  # another trader's bot is not a candidate
    assert api.client.get("/api/status", headers=trader).json()["bot_id"] == "alpha"
    _create(api, trader, bot_id="beta")
    for method, path, body in ALIASES:
        error = assert_error(api.client.request(method, path, json=body, headers=trader), 422, "bot_required")
        assert error["details"]["bots"] == ["alpha", "beta"] and "bot_id" in error["details"]["hint"], path
    assert api.client.get("/api/status?bot_id=beta", headers=trader).json()["bot_id"] == "beta"
    execute = api.client.post("/api/trades/execute", json={"symbol": "BTCUSDT", "side": "sell", "bot_id": "alpha"},
                              params={"bot_id": "beta"}, headers=trader)  # fmt: skip
    assert_error(execute, 422, "bot_required")
    assert world.commands() == []
    admin = api.bearer("admin")  # sees every bot: must say which
    assert assert_error(api.client.get("/api/status", headers=admin), 422, "bot_required")["details"]["bots"] == [
        "alpha", "beta", "theirs",
    ]  # fmt: skip


def test_commands_reach_the_gateway_bus_and_bad_symbols_or_bodies_do_not(api: Api, world: World) -> None:
    trader = api.bearer("trader")
    _create(api, trader)
    stopped = api.client.post("/api/trades/execute", json={"symbol": "BTC-USDT", "side": "buy"}, headers=trader)
    assert_error(stopped, 409, "bot_state")
    started = api.client.post("/api/bot/start", headers=trader)
    assert started.status_code == 200 and started.json()["status"] == "running"
    assert world.store.get_bot_status("alpha") is BotStatus.RUNNING

    sent: list[tuple[str, dict[str, Any] | None, str, dict[str, Any]]] = [
        ("/api/trades/execute", {"symbol": "btcusdt", "side": "buy", "stake_amount": 50}, "ForceEnter",
         {"pair": "BTC/USDT", "stake_amount": 50}),
        ("/api/trades/execute", {"symbol": "ETH_USDT", "side": "sell"}, "ForceExit", {"pair": "ETH/USDT"}),
        ("/api/positions/BTC%2FUSDT/close", None, "ForceExit", {"pair": "BTC/USDT", "trade_id": None}),
        ("/api/positions/eth-usdt/close", None, "ForceExit", {"pair": "ETH/USDT"}),
        ("/api/positions/close-all", None, "ForceExit", {"pair": None, "trade_id": None}),
    ]  # fmt: skip
    for path, body, command, payload in sent:
        answer = api.client.post(path, json=body, headers=trader)
        assert answer.status_code == 200, (path, answer.text)
        out = answer.json()
        assert (out["bot_id"], out["command"], out["status"]) == ("alpha", command, "accepted"), out
        kind, published = world.commands()[-1]
        assert kind == command and published["command_id"] == out["command_id"], path
        assert {k: published[k] for k in payload} == payload, path

    before = len(world.commands())  # nothing below reaches the gateways
    unknown = assert_error(api.client.post("/api/positions/DOGE-USDT/close", headers=trader), 404, "symbol_not_found")
    assert "BTC/USDT, ETH/USDT" in unknown["details"]["hint"]
    for symbol in ("BTC-USDT-X", "BTC-", "BT$USDT", "BTC-USDT_X", "XRPEUR"):
        assert_error(api.client.post(f"/api/positions/{symbol}/close", headers=trader), 422, "invalid_symbol")
    assert_error(api.client.get("/api/trades/history?symbol=SOLUSDT", headers=trader), 404, "symbol_not_found")
    bodies: list[Any] = [
        {"symbol": "BTC-USDT", "side": "hold"},
        {"symbol": "BTC-USDT", "side": "buy", "stake_amount": 0},
        {"symbol": "BTC-USDT", "side": "sell", "stake_amount": 10},
        {"symbol": "BTC-USDT", "side": "buy", "leverage": 3},
        {"side": "buy"},
        [],
    ]
    for body in bodies:
        assert_error(api.client.post("/api/trades/execute", json=body, headers=trader), 422, "validation_error")
    wrong = api.client.post("/api/trades/execute", json={"symbol": "DOGEUSDT", "side": "buy"}, headers=trader)
    assert_error(wrong, 404, "symbol_not_found")
    assert len(world.commands()) == before

    halted = api.client.post("/api/bot/stop?bot_id=alpha", headers=trader)
    assert halted.status_code == 200 and halted.json()["status"] == "stopped"
    assert world.store.get_bot_status("alpha") is BotStatus.STOPPED
    assert [kind for kind, _ in world.commands()] == ["StartBot", "ForceEnter", *["ForceExit"] * 4, "StopBot"]


def test_other_traders_bots_answer_like_missing_ones_and_viewers_cannot_write(api: Api, world: World) -> None:
    _create(api, api.bearer("trader"))
    world.store.set_bot_status("alpha", BotStatus.RUNNING)
    intruder = api.bearer("trader2")
    for method, path, body in [*ALIASES, ("GET", "/api/market-data/BTCUSDT/5m", None)]:
        theirs = api.client.request(method, path, params={"bot_id": "alpha"}, json=body, headers=intruder)
        ghost = api.client.request(method, path, params={"bot_id": "ghost"}, json=body, headers=intruder)
        mine = assert_error(theirs, 404, "bot_not_found")
        assert mine == {**assert_error(ghost, 404, "bot_not_found"), "message": "no bot 'alpha'"}, path
    smuggled = api.client.post("/api/trades/execute", json={"symbol": "BTC-USDT", "side": "buy", "bot_id": "alpha"},
                               headers=intruder)  # fmt: skip
    assert_error(smuggled, 404, "bot_not_found")
    assert world.commands() == [] and world.store.get_bot_status("alpha") is BotStatus.RUNNING

    admin = api.auth.verify_access(api.login("admin")["access_token"])
    api.auth.change_role(admin, "trader2", Role.VIEWER)
    viewer = api.bearer("trader2")
    for method, path, body in WRITES:  # the role check comes first: a viewer learns nothing of bots
        assert_error(api.client.request(method, path, json=body, headers=viewer), 403, "forbidden")
        assert_error(api.client.request(method, path, params={"bot_id": "alpha"}, json=body, headers=viewer), 403,
                     "forbidden")  # fmt: skip
    assert_error(api.client.get("/api/status"), 401, "unauthorized")
    stored = world.store.get_bot("alpha")
    assert stored is not None and stored.risk.max_open_trades == 3 and world.commands() == []


def test_market_data_alias_serves_the_canonical_candles_for_any_symbol_spelling(api: Api, world: World) -> None:
    trader = api.bearer("trader")
    _create(api, trader, bot_id="btcbot", pairs=["ETH/BTC", "ADA/BTC"], quote_currency="BTC")
    params: dict[str, Any] = {"pair": "ETH/BTC", "timeframe": "5m", "limit": 7}
    expected = api.client.get("/api/v1/market/candles", params=params, headers=trader).json()
    assert expected["length"] == 7 and expected["exchange"] == "bittrex"
    for symbol, bot in (("ETH-BTC", None), ("eth_btc", None), ("ETH%2FBTC", None), ("ETHBTC", "btcbot")):
        query: dict[str, Any] = {"limit": 7, **({"bot_id": bot} if bot else {})}
        answer = api.client.get(f"/api/market-data/{symbol}/5m", params=query, headers=trader)
        assert answer.status_code == 200, (symbol, answer.text)
        assert answer.json() == expected, symbol
    since = expected["data"][0][0]
    paged = api.client.get(f"/api/market-data/ETH-BTC/5m?since_ms={since}&limit=2", headers=trader).json()
    assert paged["data"] == expected["data"][:2]
    assert_error(api.client.get("/api/market-data/ETHBTC/5m", headers=trader), 422, "invalid_symbol")
    assert_error(api.client.get("/api/market-data/BTC-USDT/5m", headers=trader), 404, "data_not_found")
    assert_error(api.client.get("/api/market-data/ETH-BTC/7x", headers=trader), 422, "config_error")
    assert_error(api.client.get("/api/market-data/ETH-BTC/5m?limit=0", headers=trader), 422, "validation_error")
    assert api.client.get("/api/market-data/ETH-BTC/5m", headers=api.bearer("viewer")).status_code == 200
    assert_error(api.client.get("/api/market-data/ETH-BTC/5m"), 401, "unauthorized")
