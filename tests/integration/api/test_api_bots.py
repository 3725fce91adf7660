"""Bots over real HTTP on loopback: CRUD with validation, ownership (BOLA), roles, controls, trades."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from api_support import PASSWORD, Api, assert_error

from tradefleet.adapters.storage import SqlTradingStore
from tradefleet.adapters.storage.owner_tables import SqlBotOwners
from tradefleet.core.bots import BotStatus
from tradefleet.core.ports import EquitySnapshot
from tradefleet.core.risk import KillSwitchLevel
from tradefleet.core.trades import Trade
from tradefleet.services.auth import Role
from tradefleet.services.bots import BotService

BOT: dict[str, Any] = {
    "bot_id": "alpha",
    "strategy": "SampleStrategy",
    "pairs": ["BTC/USDT", "ETH/USDT"],
    "timeframe": "5m",
    "risk": {"stake_mode": "percent", "stake_amount": 20, "max_open_trades": 3},
}


@pytest.fixture
def store(api: Api) -> Iterator[SqlTradingStore]:
    """The trading store behind the API's bots service, and a second trader ``trader2``."""
    trading = SqlTradingStore(api.engine, api.clock)
    api.app.state.bot_service = BotService(trading, SqlBotOwners(api.engine))
    api.auth.create_user("trader2", PASSWORD, Role.TRADER)
    try:
        yield trading
    finally:
        trading.close()


def _create(api: Api, who: str, **changes: Any) -> dict[str, Any]:
    answer = api.client.post("/api/v1/bots", json={**BOT, **changes}, headers=api.bearer(who))
    assert answer.status_code == 201, answer.text
    body: dict[str, Any] = answer.json()
    return body


def _closed_trade(store: SqlTradingStore, bot_id: str, n: int, pair: str, reason: str, close_rate: float) -> int:
    trade = Trade(bot_id, pair, open_ms=1_000 * n, open_rate=100.0, amount=1.0, fee_open=0.1, stop_price=90.0,
                  initial_stop=90.0, entry_order=f"{bot_id}-in-{n}")  # fmt: skip
    trade.id = store.add_trade(trade)
    trade.close(1_000 * n + 500, close_rate, 0.1, reason, f"{bot_id}-out-{n}")
    store.update_trade(trade)
    return trade.id


def test_trader_creates_reads_updates_and_deletes_a_bot(api: Api, store: SqlTradingStore) -> None:
    trader = api.bearer("trader")
    made = _create(api, "trader")
    assert made["owner_id"] == api.auth.get_user("trader").id
    assert made["status"] == "stopped" and made["pairs"] == ["BTC/USDT", "ETH/USDT"]
    assert made["risk"]["stake_amount"] == 20 and made["risk"]["max_per_pair"] == 1
    assert store.get_bot("alpha") is not None

    assert [b["bot_id"] for b in api.client.get("/api/v1/bots", headers=trader).json()] == ["alpha"]
    assert api.client.get("/api/v1/bots/alpha", headers=trader).json() == made

    patch = {"risk": {"max_open_trades": 2, "cooldown": {"candles": 3}}, "pairs": ["sol/usdt"],
             "strategy_params": {"rsi": 30}}  # fmt: skip
    updated = api.client.patch("/api/v1/bots/alpha", json=patch, headers=trader)
    assert updated.status_code == 200, updated.text
    risk = updated.json()["risk"]
    assert (risk["max_open_trades"], risk["stake_amount"], risk["cooldown"]["candles"]) == (2, 20, 3)
    assert updated.json()["pairs"] == ["SOL/USDT"] and updated.json()["strategy_params"] == {"rsi": 30}
    stored = store.get_bot("alpha")
    assert stored is not None and stored.risk.max_open_trades == 2 and stored.pairs == ("SOL/USDT",)

    gone = api.client.delete("/api/v1/bots/alpha", headers=trader)
    assert gone.status_code == 204
    assert store.get_bot("alpha") is None
    assert_error(api.client.get("/api/v1/bots/alpha", headers=trader), 404, "bot_not_found")
    # The id is free again, for anyone.
    assert _create(api, "trader2")["owner_id"] == api.auth.get_user("trader2").id


def test_the_id_of_a_deleted_bot_with_history_is_not_reused(api: Api, store: SqlTradingStore) -> None:
    """A new bot under an old id would start from the old one's trades, PnL and kill switch: refused."""
    trader = api.bearer("trader")
    for bot_id, history in (("traded", "equity"), ("halted", "kill switch")):
        _create(api, "trader", bot_id=bot_id)
        if history == "equity":
            store.add_equity_snapshots([EquitySnapshot(bot_id, 1_700_000_000_000, 90.0, 95.0, -5.0, 0.0, 0.1)])
        else:
            store.set_kill_switch(bot_id, KillSwitchLevel.HALT_ENTRIES, "trader", "test")
        assert api.client.delete(f"/api/v1/bots/{bot_id}", headers=trader).status_code == 204
        again = api.client.post("/api/v1/bots", json={**BOT, "bot_id": bot_id}, headers=trader)
        assert_error(again, 409, "bot_exists")
        assert "history" in again.json()["error"]["message"], again.json()
        assert store.get_bot(bot_id) is None, f"nothing written ({history})"
    assert _create(api, "trader", bot_id="fresh")["bot_id"] == "fresh"


@pytest.mark.parametrize(
    ("changes", "loc"),
    [
        ({"risk": {"stake_amount": -5}}, ["body", "risk", "stake_amount"]),
        ({"risk": {"max_open_trades": 1, "max_per_pair": 2}}, ["body", "risk"]),
        ({"risk": {"stake_amount": 50, "max_open_trades": 3}}, ["body", "risk"]),
        ({"starting_balance": 0}, ["body", "starting_balance"]),
        ({"bot_id": "Not A Slug"}, ["body", "bot_id"]),
        ({"pairs": ["BTC/USDT", "btc/usdt"]}, ["body", "pairs"]),
        ({"pairs": []}, ["body", "pairs"]),
        ({"timeframe": "7x"}, ["body", "timeframe"]),
        ({"owner_id": 1}, ["body", "owner_id"]),
        ({"status": "running"}, ["body", "status"]),
    ],
)
def test_invalid_bots_are_422_in_the_error_shape(
    api: Api, store: SqlTradingStore, changes: dict[str, Any], loc: list[str]
) -> None:
    answer = api.client.post("/api/v1/bots", json={**BOT, **changes}, headers=api.bearer("trader"))
    error = assert_error(answer, 422, "validation_error")
    assert loc in [d["loc"] for d in error["details"]], error
    assert store.list_bots() == []


def test_contradictory_updates_and_conflicts_are_refused(api: Api, store: SqlTradingStore) -> None:
    trader = api.bearer("trader")
    _create(api, "trader")
    answer = api.client.patch("/api/v1/bots/alpha", json={"risk": {"max_per_pair": 5}}, headers=trader)
    error = assert_error(answer, 422, "validation_error")
    assert error["details"]["errors"][0]["loc"] == ["risk"]
    answer = api.client.patch("/api/v1/bots/alpha", json={"risk": {"leverage": 10}}, headers=trader)
    assert assert_error(answer, 422, "validation_error")["details"]["errors"][0]["type"] == "extra_forbidden"
    answer = api.client.patch("/api/v1/bots/alpha", json={"pairs": ["BTC/EUR"]}, headers=trader)
    assert "not quoted in USDT" in assert_error(answer, 422, "validation_error")["message"]
    assert_error(api.client.patch("/api/v1/bots/alpha", json={"owner_id": 2}, headers=trader), 422, "validation_error")
    stored = store.get_bot("alpha")
    assert stored is not None and stored.risk.max_per_pair == 1 and stored.pairs == ("BTC/USDT", "ETH/USDT")

    again = api.client.post("/api/v1/bots", json=BOT, headers=api.bearer("trader2"))
    assert_error(again, 409, "bot_exists")
    mismatch = api.client.post("/api/v1/bots", json={**BOT, "bot_id": "b2", "pairs": ["BTC/EUR"]}, headers=trader)
    assert_error(mismatch, 422, "validation_error")
    live = api.client.post("/api/v1/bots", json={**BOT, "bot_id": "b3", "mode": "live"}, headers=trader)
    assert_error(live, 403, "forbidden")


EVERY_ROUTE: list[tuple[str, str, dict[str, Any] | None]] = [
    ("GET", "", None),
    ("PATCH", "", {"risk": {"max_open_trades": 2}}),
    ("DELETE", "", None),
    ("GET", "/status", None),
    ("GET", "/positions", None),
    ("GET", "/trades", None),
    ("GET", "/performance", None),
    ("GET", "/equity", None),
    ("POST", "/stop-entries", None),
    ("POST", "/resume", None),
    ("POST", "/emergency-stop", {"level": "FLATTEN"}),
]


@pytest.mark.parametrize(("method", "suffix", "body"), EVERY_ROUTE)
def test_another_traders_bot_answers_like_a_missing_one(
    api: Api, store: SqlTradingStore, method: str, suffix: str, body: dict[str, Any] | None
) -> None:
    _create(api, "trader")
    store.set_bot_status("alpha", BotStatus.RUNNING)
    intruder = api.bearer("trader2")
    theirs = api.client.request(method, f"/api/v1/bots/alpha{suffix}", json=body, headers=intruder)
    missing = api.client.request(method, f"/api/v1/bots/ghost{suffix}", json=body, headers=intruder)
    mine = assert_error(theirs, 404, "bot_not_found")
    assert mine == {**assert_error(missing, 404, "bot_not_found"), "message": "no bot 'alpha'"}
    # Nothing changed, nothing leaked.
    assert store.get_bot("alpha") is not None and store.get_kill_switch("alpha") is KillSwitchLevel.NONE
    assert store.get_bot_status("alpha") is BotStatus.RUNNING
    assert api.client.get("/api/v1/bots", headers=intruder).json() == []
    # The admin sees (and may act on) it.
    if method == "GET":
        assert api.client.get(f"/api/v1/bots/alpha{suffix}", headers=api.bearer("admin")).status_code == 200


def test_admin_sees_every_bot_and_the_kill_switch_clear_is_theirs(api: Api, store: SqlTradingStore) -> None:
    _create(api, "trader")
    _create(api, "trader2", bot_id="beta")
    admin = api.bearer("admin")
    assert [b["bot_id"] for b in api.client.get("/api/v1/bots", headers=admin).json()] == ["alpha", "beta"]
    assert [b["bot_id"] for b in api.client.get("/api/v1/bots", headers=api.bearer("trader2")).json()] == ["beta"]
    clear = api.client.delete("/api/v1/bots/alpha/kill-switch", headers=api.bearer("trader"))
    assert_error(clear, 403, "forbidden")
    assert_error(api.client.delete("/api/v1/bots/ghost/kill-switch", headers=admin), 404, "bot_not_found")


def test_viewer_reads_its_own_bots_and_gets_403_on_writes(api: Api, store: SqlTradingStore) -> None:
    _create(api, "trader2", bot_id="beta")
    api.auth.change_role(api.auth.verify_access(api.login("admin")["access_token"]), "trader2", Role.VIEWER)
    viewer = api.bearer("trader2")
    for suffix in ("", "/status", "/positions", "/trades", "/performance", "/equity"):
        assert api.client.get(f"/api/v1/bots/beta{suffix}", headers=viewer).status_code == 200, suffix
    writes = [
        ("POST", "/api/v1/bots", {**BOT, "bot_id": "gamma"}),
        ("PATCH", "/api/v1/bots/beta", {"risk": {"max_open_trades": 2}}),
        ("DELETE", "/api/v1/bots/beta", None),
        ("POST", "/api/v1/bots/beta/stop-entries", None),
        ("POST", "/api/v1/bots/beta/resume", None),
        ("POST", "/api/v1/bots/beta/emergency-stop", {"level": "HALT_ENTRIES"}),
        ("DELETE", "/api/v1/bots/beta/kill-switch", None),
    ]
    for method, path, body in writes:
        assert_error(api.client.request(method, path, json=body, headers=viewer), 403, "forbidden")
    # A viewer acting on someone else's bot learns nothing either: the role check comes first.
    _create(api, "trader")
    answer = api.client.post("/api/v1/bots/alpha/emergency-stop", json={"level": "FLATTEN"}, headers=viewer)
    assert_error(answer, 403, "forbidden")
    assert store.get_kill_switch("beta") is KillSwitchLevel.NONE and store.get_bot("gamma") is None
    assert_error(api.client.get("/api/v1/bots"), 401, "unauthorized")


def test_emergency_stop_persists_the_kill_switch_and_only_raises_it(api: Api, store: SqlTradingStore) -> None:
    trader = api.bearer("trader")
    _create(api, "trader")
    answer = api.client.post(
        "/api/v1/bots/alpha/emergency-stop", json={"level": "CANCEL_ALL", "reason": "exchange outage"}, headers=trader
    )
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"bot_id": "alpha", "level": "CANCEL_ALL", "actor": "trader", "reason": "exchange outage"}
    assert store.get_kill_switch("alpha") is KillSwitchLevel.CANCEL_ALL
    record = store.kill_switch_record("alpha")
    assert record is not None and (record["actor"], record["reason"]) == ("trader", "exchange outage")

    lower = api.client.post("/api/v1/bots/alpha/emergency-stop", json={"level": "HALT_ENTRIES"}, headers=trader)
    assert lower.json()["level"] == "CANCEL_ALL"
    assert store.get_kill_switch("alpha") is KillSwitchLevel.CANCEL_ALL
    api.client.post("/api/v1/bots/alpha/emergency-stop", json={"level": "FLATTEN"}, headers=trader)
    assert store.get_kill_switch("alpha") is KillSwitchLevel.FLATTEN

    status = api.client.get("/api/v1/bots/alpha/status", headers=trader).json()
    assert (status["kill_switch"], status["fleet_kill_switch"], status["effective_kill_switch"]) == (
        "FLATTEN", "NONE", "FLATTEN",
    )  # fmt: skip
    for bad in ({"level": "NONE"}, {"level": "flatten!"}, {}, {"level": "FLATTEN", "scope": "*"}):
        bad_answer = api.client.post("/api/v1/bots/alpha/emergency-stop", json=bad, headers=trader)
        assert_error(bad_answer, 422, "validation_error")

    cleared = api.client.delete("/api/v1/bots/alpha/kill-switch", headers=api.bearer("admin"))
    assert cleared.status_code == 200 and cleared.json()["level"] == "NONE"
    assert store.get_kill_switch("alpha") is KillSwitchLevel.NONE


def test_stop_entries_and_resume_set_the_stored_status(api: Api, store: SqlTradingStore) -> None:
    trader = api.bearer("trader")
    _create(api, "trader")
    assert_error(api.client.post("/api/v1/bots/alpha/stop-entries", headers=trader), 409, "bot_state")
    store.set_bot_status("alpha", BotStatus.RUNNING)
    stopped = api.client.post("/api/v1/bots/alpha/stop-entries", headers=trader)
    assert stopped.status_code == 200 and stopped.json()["status"] == "stopentry"
    assert store.get_bot_status("alpha") is BotStatus.STOPPING_ENTRIES
    assert_error(api.client.delete("/api/v1/bots/alpha", headers=trader), 409, "bot_state")
    resumed = api.client.post("/api/v1/bots/alpha/resume", headers=trader)
    assert resumed.status_code == 200 and resumed.json()["status"] == "running"
    assert store.get_bot_status("alpha") is BotStatus.RUNNING


def test_trades_are_paginated_and_filtered_with_performance_positions_and_equity(
    api: Api, store: SqlTradingStore
) -> None:
    trader = api.bearer("trader")
    _create(api, "trader")
    plan = [("BTC/USDT", "roi", 110.0), ("ETH/USDT", "stop_loss", 95.0), ("BTC/USDT", "roi", 105.0),
            ("BTC/USDT", "stop_loss", 90.0), ("ETH/USDT", "roi", 120.0)]  # fmt: skip
    ids = [_closed_trade(store, "alpha", n, pair, reason, rate) for n, (pair, reason, rate) in enumerate(plan, 1)]
    _closed_trade(store, "other", 9, "BTC/USDT", "roi", 200.0)  # another bot's trade never shows
    open_trade = Trade("alpha", "ETH/USDT", open_ms=10_000, open_rate=100.0, amount=2.0, fee_open=0.2,
                       stop_price=90.0, initial_stop=90.0, entry_order="alpha-in-open")  # fmt: skip
    open_id = store.add_trade(open_trade)

    first = api.client.get("/api/v1/bots/alpha/trades", params={"limit": 2}, headers=trader).json()
    assert (first["total"], first["limit"], first["offset"]) == (5, 2, 0)
    assert [t["trade_id"] for t in first["trades"]] == [ids[4], ids[3]]
    rest = api.client.get("/api/v1/bots/alpha/trades", params={"limit": 2, "offset": 4}, headers=trader).json()
    assert [t["trade_id"] for t in rest["trades"]] == [ids[0]]
    btc = api.client.get("/api/v1/bots/alpha/trades", params={"pair": "BTC/USDT", "exit_reason": "roi"},
                         headers=trader).json()  # fmt: skip
    assert btc["total"] == 2 and [t["trade_id"] for t in btc["trades"]] == [ids[2], ids[0]]
    assert btc["trades"][1]["profit_abs"] == pytest.approx(110.0 - 0.1 - 100.1)
    for bad in ({"limit": 0}, {"limit": 501}, {"offset": -1}):
        answer = api.client.get("/api/v1/bots/alpha/trades", params=bad, headers=trader)
        assert_error(answer, 422, "validation_error")

    perf = api.client.get("/api/v1/bots/alpha/performance", headers=trader).json()
    assert (perf["trades"], perf["wins"]) == (5, 3) and perf["win_rate"] == pytest.approx(0.6)
    assert [(p["pair"], p["trades"], p["wins"]) for p in perf["pairs"]] == [("ETH/USDT", 2, 1), ("BTC/USDT", 3, 2)]
    assert perf["profit_abs"] == pytest.approx(sum(p["profit_abs"] for p in perf["pairs"]))

    positions = api.client.get("/api/v1/bots/alpha/positions", headers=trader).json()
    assert positions["as_of_ms"] is None and positions["unrealized_total"] is None
    assert [(p["trade_id"], p["pair"], p["unrealized_pnl"]) for p in positions["positions"]] == [
        (open_id, "ETH/USDT", None)
    ]
    store.add_equity_snapshots([EquitySnapshot("alpha", ts, 9_800.0, 10_010.0 + ts / 1000, 15.0, 7.5, 1.2)
                                for ts in (11_000, 12_000)])  # fmt: skip
    positions = api.client.get("/api/v1/bots/alpha/positions", headers=trader).json()
    assert positions["as_of_ms"] == 12_000 and positions["positions"][0]["unrealized_pnl"] == 7.5
    assert positions["positions"][0]["cost"] == pytest.approx(200.2)

    equity = api.client.get("/api/v1/bots/alpha/equity", headers=trader).json()
    assert [p["ts_ms"] for p in equity] == [11_000, 12_000] and equity[1]["equity"] == 10_022.0
    one = api.client.get("/api/v1/bots/alpha/equity", params={"limit": 1}, headers=trader).json()
    assert [p["ts_ms"] for p in one] == [12_000]

    status = api.client.get("/api/v1/bots/alpha/status", headers=trader).json()
    assert status["open_trades"] == 1 and status["last_candle_ms"] is None
    store.save_progress("alpha", "BTC/USDT", 5_000)
    store.save_progress("alpha", "ETH/USDT", 6_000)
    status = api.client.get("/api/v1/bots/alpha/status", headers=trader).json()
    assert status["last_candle_ms"] == 6_000 and status["progress"] == {"BTC/USDT": 5_000, "ETH/USDT": 6_000}
    assert_error(api.client.delete("/api/v1/bots/alpha", headers=trader), 409, "bot_state")


def test_control_characters_are_refused_before_they_reach_the_database(api: Api, store: SqlTradingStore) -> None:
    """PostgreSQL cannot store NUL: ids and free text holding one are a 4xx, never a storage error."""
    admin = api.bearer("admin")
    assert api.client.post("/api/v1/bots", json=BOT, headers=api.bearer("trader")).status_code == 201
    assert_error(api.client.get("/api/v1/bots/a%00b/status", headers=admin), 404, "bot_not_found")
    assert_error(api.client.get("/api/status", params={"bot_id": "a\x00b"}, headers=admin), 404, "bot_not_found")
    stop = {"level": "HALT_ENTRIES", "reason": "oops\x00"}
    assert_error(
        api.client.post("/api/v1/bots/alpha/emergency-stop", json=stop, headers=admin), 422, "validation_error"
    )
    key = {"name": "script\x00"}
    assert_error(api.client.post("/api/v1/auth/api-keys", json=key, headers=admin), 422, "validation_error")
    assert store.get_kill_switch("alpha").name == "NONE", "nothing was half-written"
