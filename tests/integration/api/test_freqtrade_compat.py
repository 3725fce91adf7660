"""Freqtrade's REST API per bot (``/ft/{bot_id}/api/v1``), driven by Freqtrade's own ``FtRestClient``.

Reads run against the live test API with a bot and trades seeded through the store; the actions run end to
end against ``tradefleet up`` as a real process, whose in-process gateway runs the bot.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from api_support import PASSWORD, Api, assert_error
from freqtrade_client import FtRestClient
from test_api_cli import Process, clean_env, free_port

from tradefleet import __version__
from tradefleet.adapters.data.generator import generate_market
from tradefleet.adapters.data.store import CandleStore
from tradefleet.adapters.storage import SqlTradingStore
from tradefleet.adapters.storage.leases import LogLine, SqlBotLogs
from tradefleet.adapters.storage.owner_tables import SqlBotOwners
from tradefleet.core.bots import BotStatus
from tradefleet.core.candles import dates_ms
from tradefleet.core.orders import Order, OrderIntent, OrderSide, OrderStatus, OrderType
from tradefleet.core.ports import EquitySnapshot
from tradefleet.core.risk import KillSwitchLevel
from tradefleet.core.trades import Trade
from tradefleet.services.auth import Role
from tradefleet.services.bots import BotService
from tradefleet.services.market import MarketDataService
from tradefleet.strategies.sma_cross import SmaCross

D = 1_704_067_200_000  # 2024-01-01 00:00 UTC
H, DAY, TF = 3_600_000, 86_400_000, 300_000
BOT: dict[str, Any] = {
    "bot_id": "alpha",
    "strategy": "SmaCross",
    "pairs": ["BTC/USDT", "ETH/USDT"],
    "timeframe": "5m",
    "risk": {"stake_mode": "fixed", "stake_amount": 100, "max_open_trades": 3},
}
# (pair, open, close, close rate, exit reason, enter tag): entries at 100 with 1 unit and a 0.1 fee, exits at 0.1%
CLOSED = [
    ("BTC/USDT", D + H, D + 2 * H, 110.0, "roi", "cross"),
    ("ETH/USDT", D + DAY + H, D + DAY + 3 * H, 95.0, "stop_loss", "dip"),
    ("BTC/USDT", D + 2 * DAY + H, D + 2 * DAY + 2 * H, 105.0, "roi", "cross"),
]
PROFITS = [110 - 0.11 - 100.1, 95 - 0.095 - 100.1, 105 - 0.105 - 100.1]
OPEN_MS = D + 2 * DAY + 5 * H  # ETH/USDT, 2 units at 100 with a 0.2 fee, stop at 90
NOW = D + 2 * DAY + 6 * H  # the last candle the bot processed closes here; the last snapshot is taken here


@pytest.fixture
def seeded(api: Api) -> Iterator[dict[str, Any]]:
    """Bot ``alpha`` of ``trader`` with three closed trades, one open, a snapshot, progress and log lines."""
    store = SqlTradingStore(api.engine, api.clock)
    logs = SqlBotLogs(api.engine)
    api.app.state.bot_service = BotService(store, SqlBotOwners(api.engine), logs=logs)
    api.auth.create_user("trader2", PASSWORD, Role.TRADER)
    made = api.client.post("/api/v1/bots", json=BOT, headers=api.bearer("trader"))
    assert made.status_code == 201, made.text
    ids = []
    for n, (pair, opened, closed, rate, reason, tag) in enumerate(CLOSED):
        trade = Trade("alpha", pair, open_ms=opened, open_rate=100.0, amount=1.0, fee_open=0.1, stop_price=90.0,
                      initial_stop=90.0, entry_order=f"in-{n}", enter_tag=tag)  # fmt: skip
        trade.id = store.add_trade(trade)
        trade.close(closed, rate, rate * 0.001, reason, f"out-{n}")
        store.update_trade(trade)
        ids.append(trade.id)
    held = Trade("alpha", "ETH/USDT", open_ms=OPEN_MS, open_rate=100.0, amount=2.0, fee_open=0.2, stop_price=90.0,
                 initial_stop=90.0, entry_order="in-open", enter_tag="dip")  # fmt: skip
    open_id = store.add_trade(held)
    stop = Order("stop-open", "alpha", "ETH/USDT", OrderSide.SELL, OrderType.STOP, 2.0, OrderIntent.STOP,
                 OPEN_MS, stop_price=90.0, status=OrderStatus.OPEN, trade_ref=open_id)  # fmt: skip
    assert store.add_order(stop)
    store.add_equity_snapshots([EquitySnapshot("alpha", NOW, 9_809.19, 10_017.19, 9.39, 8.0, 0.61)])
    store.save_progress("alpha", "BTC/USDT", NOW - TF)
    store.save_progress("alpha", "ETH/USDT", NOW - TF)
    store.set_bot_status("alpha", BotStatus.RUNNING)
    logs.append("alpha", [LogLine(D + n * 1000, "INFO", "tradefleet.bot", f"line {n}") for n in range(3)])
    try:
        yield {"store": store, "ids": ids, "open_id": open_id}
    finally:
        store.close()


def _client(api: Api, username: str = "trader", password: str = PASSWORD, bot_id: str = "alpha") -> FtRestClient:
    return FtRestClient(f"{api.url}/ft/{bot_id}", username, password)


def test_freqtrade_client_reads_open_and_closed_trades_profit_and_balance(api: Api, seeded: dict[str, Any]) -> None:
    ft = _client(api)
    ids, open_id = seeded["ids"], seeded["open_id"]

    # The open trade, valued from the last snapshot (the only open trade: 2 units, 8.0 unrealized → 104).
    [status] = ft.status()
    assert (status["trade_id"], status["pair"], status["is_open"], status["amount"]) == (open_id, "ETH/USDT", True, 2)
    assert (status["open_rate"], status["stake_amount"], status["current_rate"]) == (100.0, 200.0, 104.0)
    assert (status["open_date"], status["open_timestamp"]) == ("2024-01-03 05:00:00", OPEN_MS)
    open_profit = 2 * 104 * 0.999 - 200.2
    assert status["profit_abs"] == pytest.approx(open_profit)
    assert status["profit_ratio"] == pytest.approx(open_profit / 200.2)
    assert status["profit_pct"] == round(open_profit / 200.2 * 100, 2)
    assert (status["stop_loss_abs"], status["enter_tag"], status["fee_open"]) == (90.0, "dip", pytest.approx(0.001))
    assert (status["exchange"], status["strategy"], status["timeframe"]) == ("simulated", "SmaCross", 5)
    assert status["stoploss_current_dist"] == pytest.approx(90 - 104)
    [order] = status["orders"]  # its protective stop: an open order that Freqtrade does not count as pending
    assert (order["order_id"], order["ft_order_side"], order["safe_price"], order["is_open"]) == (
        "stop-open", "stoploss", 90.0, True,
    )  # fmt: skip
    assert status["has_open_orders"] is False
    assert ft.count() == {"current": 1, "max": 3, "total_stake": 200.0}

    history = ft.trades()
    assert (history["total_trades"], history["trades_count"], history["offset"]) == (3, 3, 0)
    assert [t["trade_id"] for t in history["trades"]] == ids
    first = history["trades"][0]
    assert (first["is_open"], first["close_rate"], first["exit_reason"], first["enter_tag"]) == (
        False, 110.0, "roi", "cross",
    )  # fmt: skip
    assert (first["open_date"], first["close_date"]) == ("2024-01-01 01:00:00", "2024-01-01 02:00:00")
    assert (first["close_timestamp"], first["trade_duration"], first["open_trade_value"]) == (D + 2 * H, 60, 100.1)
    assert first["profit_abs"] == pytest.approx(PROFITS[0]) and first["close_profit_abs"] == first["profit_abs"]
    assert first["profit_ratio"] == pytest.approx(PROFITS[0] / 100.1) and first["fee_close"] == pytest.approx(0.001)
    assert [t["trade_id"] for t in ft.trades(limit=1, offset=1)["trades"]] == [ids[1]]
    assert [t["trade_id"] for t in ft.trades(order_by_id=False)["trades"]] == ids[::-1]

    closed = ft.trade(ids[1])
    assert (closed["trade_id"], closed["current_rate"]) == (ids[1], 95.0)
    assert closed["profit_abs"] == pytest.approx(PROFITS[1])
    assert ft.trade(open_id)["current_rate"] == 104.0
    missing = api.client.get("/ft/alpha/api/v1/trade/9999", auth=("trader", PASSWORD))
    assert_error(missing, 404, "trade_not_found")

    profit = ft.profit()
    closed_sum = sum(PROFITS)
    assert profit["profit_closed_coin"] == pytest.approx(closed_sum)
    assert profit["profit_all_coin"] == pytest.approx(closed_sum + open_profit)
    assert profit["profit_closed_ratio"] == pytest.approx(closed_sum / 10_000)
    assert profit["profit_closed_ratio_mean"] == pytest.approx(sum(p / 100.1 for p in PROFITS) / 3)
    assert (profit["trade_count"], profit["closed_trade_count"]) == (4, 3)
    assert (profit["winning_trades"], profit["losing_trades"], profit["winrate"]) == (2, 1, pytest.approx(2 / 3))
    assert (profit["first_trade_timestamp"], profit["latest_trade_timestamp"]) == (D + H, OPEN_MS)
    assert profit["first_trade_date"] == "2024-01-01 01:00:00" and profit["first_trade_humanized"].endswith("ago")
    assert (profit["best_pair"], profit["best_pair_profit_abs"]) == ("BTC/USDT", pytest.approx(PROFITS[0] + PROFITS[2]))
    assert profit["profit_factor"] == pytest.approx((PROFITS[0] + PROFITS[2]) / -PROFITS[1])
    assert profit["max_drawdown_abs"] == pytest.approx(-PROFITS[1])
    assert profit["max_drawdown_start_timestamp"] == D + 2 * H
    assert profit["max_drawdown_end_timestamp"] == D + DAY + 3 * H
    assert profit["avg_duration"] == "1:20:00"

    balance = ft.balance()
    cash = 10_000 + closed_sum - 200.2
    assert (balance["stake"], balance["starting_capital"], balance["symbol"]) == ("USDT", 10_000, "")
    rows = {row["currency"]: row for row in balance["currencies"]}
    assert rows["USDT"]["free"] == pytest.approx(cash)
    assert (rows["ETH"]["balance"], rows["ETH"]["est_stake"]) == (2.0, 208.0)
    assert balance["total"] == pytest.approx(cash + 208.0)
    assert balance["starting_capital_ratio"] == pytest.approx((cash + 208.0) / 10_000 - 1)
    assert balance["note"] == "Simulated balances"

    performance = ft.performance()
    assert [(p["pair"], p["count"]) for p in performance] == [("BTC/USDT", 2), ("ETH/USDT", 1)]
    assert performance[0]["profit_abs"] == pytest.approx(PROFITS[0] + PROFITS[2])
    assert performance[1]["profit_ratio"] == pytest.approx(PROFITS[1] / 100.1)
    assert {e["enter_tag"]: e["count"] for e in ft.entries()} == {"cross": 2, "dip": 1}
    assert {e["exit_reason"]: e["count"] for e in ft.exits(pair="BTC/USDT")} == {"roi": 2}
    assert [m["mix_tag"] for m in ft.mix_tags()] == ["cross roi", "dip stop_loss"]


def test_freqtrade_client_reads_config_state_periods_logs_and_candles(
    api: Api, seeded: dict[str, Any], tmp_path: Path
) -> None:
    ft = _client(api)
    assert ft.ping() == {"status": "pong"}  # freqtrade-client's ping: show_config says "running"
    assert api.client.get("/ft/alpha/api/v1/ping").json() == {"status": "pong"}  # public
    assert api.client.head("/ft/alpha/api/v1/ping").status_code == 200
    assert ft.version() == {"version": f"tradefleet-{__version__}"}
    config = ft.show_config()
    assert {k: config[k] for k in ("bot_name", "strategy", "timeframe", "timeframe_ms", "stake_currency")} == {
        "bot_name": "alpha", "strategy": "SmaCross", "timeframe": "5m", "timeframe_ms": TF, "stake_currency": "USDT",
    }  # fmt: skip
    assert (config["stake_amount"], config["max_open_trades"], config["exchange"]) == ("100.0", 3, "simulated")
    assert (config["dry_run"], config["runmode"], config["state"], config["trading_mode"]) == (
        True, "dry_run", "running", "spot",
    )  # fmt: skip
    assert (config["stoploss"], config["minimal_roi"]) == (SmaCross.stoploss, SmaCross.minimal_roi)
    assert ft.whitelist() == {"whitelist": ["BTC/USDT", "ETH/USDT"], "length": 2, "method": ["StaticPairList"]}
    assert ft.health()["last_process_ts"] == NOW // 1000

    # Days up to the bot's time (its last candle), newest first; each day starts where the next began.
    daily = ft.daily(days=4)
    assert daily["stake_currency"] == "USDT"
    rows = daily["data"]
    assert [(r["date"], r["trade_count"]) for r in rows] == [
        ("2024-01-03", 1), ("2024-01-02", 1), ("2024-01-01", 1), ("2023-12-31", 0),
    ]  # fmt: skip
    assert [r["abs_profit"] for r in rows] == pytest.approx([PROFITS[2], PROFITS[1], PROFITS[0], 0.0])
    now_balance = 10_000 + sum(PROFITS) - 200.2 + 208.0
    assert rows[0]["starting_balance"] == pytest.approx(now_balance - PROFITS[2])
    assert rows[3]["starting_balance"] == pytest.approx(10_000 - 200.2 + 208.0)
    assert rows[0]["rel_profit"] == round(PROFITS[2] / rows[0]["starting_balance"], 8)

    stats = ft.stats()
    assert stats["exit_reasons"] == {"roi": {"wins": 2, "losses": 0, "draws": 0},
                                     "stop_loss": {"wins": 0, "losses": 1, "draws": 0}}  # fmt: skip
    assert stats["durations"] == {"wins": 3600.0, "draws": None, "losses": 7200.0}

    assert ft.locks() == {"lock_count": 0, "locks": []}
    seeded["store"].set_kill_switch("alpha", KillSwitchLevel.HALT_ENTRIES, "admin", "test")
    [lock] = ft.locks()["locks"]
    assert (lock["pair"], lock["active"], lock["reason"]) == ("*", True, "bot kill switch HALT_ENTRIES (until cleared)")

    logs = ft.logs(limit=2)
    assert logs == {"log_count": 2, "logs": [
        ["2024-01-01 00:00:01", D + 1000.0, "tradefleet.bot", "INFO", "line 1"],
        ["2024-01-01 00:00:02", D + 2000.0, "tradefleet.bot", "INFO", "line 2"],
    ]}  # fmt: skip

    # With stored candles, an open trade is valued at the close of the last candle the bot processed.
    candles = CandleStore(tmp_path / "candles")
    frame = generate_market("ETH/USDT", "5m", start_ms=D, candles=3 * 288, seed=3)
    candles.write("simulated", "ETH/USDT", "5m", frame)
    api.app.state.market_service = MarketDataService(candles)
    last_close = float(frame["close"].iloc[list(dates_ms(frame["date"])).index(NOW - TF)])
    assert ft.status()[0]["current_rate"] == pytest.approx(last_close)
    history = ft.pair_candles("ETH/USDT", "5m", limit=3)
    assert history["columns"] == ["date", "open", "high", "low", "close", "volume", "__date_ts"]
    assert (history["length"], history["pair"], history["timeframe_ms"]) == (3, "ETH/USDT", TF)
    assert [row[-1] for row in history["data"]] == [NOW - 3 * TF, NOW - 2 * TF, NOW - TF]
    assert history["data"][-1][4] == pytest.approx(last_close)
    assert (history["data_stop_ts"], history["data_stop"]) == (NOW - TF, "2024-01-03 05:55:00+00:00")
    assert ft.pair_candles("ETH/USDT", "5m", limit=2, columns=["rsi"])["length"] == 2
    assert ft.pair_candles("SOL/USDT", "5m")["length"] == 0  # not the bot's pair: nothing, as Freqtrade


def test_freqtrade_logins_refresh_api_keys_ownership_and_roles(api: Api, seeded: dict[str, Any]) -> None:
    base, http = "/ft/alpha/api/v1", api.client
    # FreqUI: Basic login, then Bearer; refresh with the refresh token as Bearer (TradeFleet rotates it).
    login = http.post(f"{base}/token/login", auth=("trader", PASSWORD))
    assert login.status_code == 200, login.text
    tokens = login.json()
    assert set(tokens) == {"access_token", "refresh_token"}
    bearer = {"Authorization": f"Bearer {tokens['access_token']}"}
    assert http.get(f"{base}/count", headers=bearer).json()["current"] == 1
    refreshed = http.post(f"{base}/token/refresh", headers={"Authorization": f"Bearer {tokens['refresh_token']}"})
    assert refreshed.status_code == 200, refreshed.text
    assert http.get(f"{base}/count", headers={"Authorization": f"Bearer {refreshed.json()['access_token']}"}).is_success
    again = http.post(f"{base}/token/refresh", headers={"Authorization": f"Bearer {tokens['refresh_token']}"})
    assert_error(again, 401, "unauthorized")  # single use: the rotated one is in the answer
    assert_error(http.post(f"{base}/token/login", auth=("trader", "wrong password")), 401, "unauthorized")
    assert_error(http.post(f"{base}/token/login"), 401, "unauthorized")
    assert_error(http.get(f"{base}/status"), 401, "unauthorized")
    assert_error(http.get(f"{base}/status", auth=("trader", "wrong password")), 401, "unauthorized")

    # An API key as the password: on every call, or as both tokens of a login.
    trader = api.auth.verify_access(api.login("trader")["access_token"])
    key = api.auth.create_api_key(trader, "freqtrade").secret
    assert len(_client(api, "trader", key).status()) == 1
    key_login = http.post(f"{base}/token/login", auth=("trader", key)).json()
    assert key_login == {"access_token": key, "refresh_token": key}
    assert http.get(f"{base}/status", headers={"Authorization": f"Bearer {key}"}).is_success
    assert_error(http.get(f"{base}/status", auth=("trader2", key)), 401, "unauthorized")

    # Another trader's bot answers like a missing one; a viewer reads but may not act.
    for path in ("status", "show_config", "version", "profit"):
        theirs = assert_error(http.get(f"{base}/{path}", auth=("trader2", PASSWORD)), 404, "bot_not_found")
        ghost = http.get(f"/ft/ghost/api/v1/{path}", auth=("trader2", PASSWORD))
        assert theirs["details"] == assert_error(ghost, 404, "bot_not_found")["details"]
    admin = api.auth.verify_access(api.login("admin")["access_token"])
    api.auth.change_role(admin, "trader", Role.VIEWER)
    assert len(_client(api).status()) == 1
    enter = http.post(f"{base}/forceenter", json={"pair": "BTC/USDT", "side": "long"}, auth=("trader", PASSWORD))
    assert_error(enter, 403, "forbidden")
    for action in ("start", "stop", "stopentry", "stopbuy"):
        assert_error(http.post(f"{base}/{action}", auth=("trader", PASSWORD)), 403, "forbidden")
    assert seeded["store"].get_bot_status("alpha") is BotStatus.RUNNING

    # A remembered Basic check still reads the account: disabled means refused at once.
    api.auth.set_disabled(admin, "trader", True)
    assert_error(http.get(f"{base}/status", auth=("trader", PASSWORD)), 401, "unauthorized")


def _until(check: Any, what: str, timeout: float = 30.0) -> Any:
    """Poll ``check`` until it returns something truthy (bounded); the gateway acts on its own schedule."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def test_freqtrade_client_drives_a_bot_of_tradefleet_up_end_to_end(tmp_path: Path) -> None:
    port, secret = free_port(), "a-long-enough-admin-password-42"
    url = f"http://127.0.0.1:{port}"
    env = clean_env(TRADEFLEET_ADMIN_PASSWORD=secret)
    proc = Process(tmp_path, "up", "--port", str(port), "--speed", "600", env=env)
    try:
        assert proc.wait_healthy(url).status_code == 200
        token = httpx.post(f"{url}/api/v1/auth/login", json={"username": "admin", "password": secret}).json()
        # Room for a forced entry next to one the strategy may have opened by itself.
        risk = {**BOT["risk"], "max_per_pair": 2}
        bot = {**BOT, "bot_id": "ft-e2e", "pairs": ["BTC/USDT"], "risk": risk}
        made = httpx.post(f"{url}/api/v1/bots", json=bot, headers={"Authorization": f"Bearer {token['access_token']}"})
        assert made.status_code == 201, made.text
        ft = FtRestClient(f"{url}/ft/ft-e2e", "admin", secret, timeout=30)
        assert ft.show_config()["state"] == "stopped"

        assert ft.start() == {"status": "starting trader ..."}
        assert ft.start() == {"status": "already running"}
        _until(lambda: ft.health().get("last_process_ts"), "the gateway to run the bot through a candle")
        entered = ft.forceenter("BTC/USDT", "long")
        assert (entered.get("pair"), entered.get("is_open"), entered.get("enter_tag")) == (
            "BTC/USDT",
            True,
            "force_entry",
        ), entered
        assert entered["stake_amount"] == pytest.approx(100, rel=0.01)
        trade_id = entered["trade_id"]
        assert trade_id in [t["trade_id"] for t in ft.status()]
        assert ft.count()["current"] >= 1

        assert ft.forceexit(trade_id) == {"result": f"Created exit order for trade {trade_id}."}
        closed = _until(lambda: (t := ft.trade(trade_id)) and not t["is_open"] and t, "the forced exit to fill")
        assert (closed["exit_reason"], closed["close_rate"] is not None) == ("force_exit", True)
        assert trade_id in [t["trade_id"] for t in ft.trades()["trades"]]
        _until(lambda: any("ForceExit by admin" in line[4] for line in ft.logs()["logs"]), "the exit in the bot's log")

        assert ft.stopbuy()["status"].startswith("No more entries")
        assert ft.show_config()["state"] == "paused"
        assert ft.stop() == {"status": "stopping trader ..."}
        assert ft.show_config()["state"] == "stopped"
        assert proc.stop(signal.SIGINT) == 0, proc.stderr
    finally:
        proc.kill()
    assert "Traceback" not in proc.stderr, proc.stderr
