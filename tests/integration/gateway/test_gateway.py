"""Gateways in this process over a real database (SQLite file and PostgreSQL) and the in-process bus.

Bots are claimed by lease and run on the shared market clock; stop releases them; forced orders travel as
commands over the bus, are applied once and answered; a gateway that loses a lease drops the bot at once;
two gateways never hold the same bot. (Killing a gateway process is tests/e2e/test_gateway_failover.py.)
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog
from gateway_support import ADMIN, GatewayWorld, gateway_world, wait_for
from sqlalchemy import update

from tradefleet.adapters.storage.platform_tables import bot_leases
from tradefleet.core.bots import BotConfig, BotStatus
from tradefleet.core.bus import COMMANDS_STREAM, EVENTS_STREAM, FIRST_ID
from tradefleet.engine.orders import client_order_id
from tradefleet.services.bots.schemas import ForceEnterIn, ForceExitIn
from tradefleet.services.gateway import Gateway


class World(GatewayWorld):
    """Paper bots on 5m candles of the shared simulated market, replayed fast."""

    def gateway(self, gateway_id: str, *, capacity: int = 10, ttl: float = 3.0) -> Gateway:
        return self.start_gateway(gateway_id, capacity=capacity, lease_ttl_s=ttl)[0]

    def add_bot(self, bot_id: str, pair: str = "BTC/USDT", strategy: str = "SmaCross", per_pair: int = 1) -> BotConfig:
        risk = {"max_open_trades": 5, "max_per_pair": per_pair, "stake_mode": "percent", "stake_amount": 10}
        config = BotConfig.model_validate(
            {"bot_id": bot_id, "strategy": strategy, "pairs": (pair,), "timeframe": "5m", "risk": risk}
        )
        self.platform.store.save_bot(config)
        self.platform.store.set_bot_status(bot_id, BotStatus.RUNNING)
        return config


@pytest.fixture
def world(database_url: str, tmp_path: Path) -> Iterator[World]:
    overrides = {"data_dir": str(tmp_path / "var"), "paper.speed": 3000, "simulated.synthetic_days": 30}
    with gateway_world(World, database_url, overrides, reply_timeout_s=10) as made:
        yield made


def test_a_gateway_claims_wanted_bots_trades_them_and_releases_them_on_stop(world: World) -> None:
    world.add_bot("g-sma")
    world.add_bot("g-rsi", pair="ETH/USDT", strategy="RsiMeanReversion")
    world.gateway("gw-a")
    wait_for(lambda: world.holder("g-sma") == "gw-a" and world.holder("g-rsi") == "gw-a", what="both bots claimed")
    first = world.service.status(ADMIN, "g-sma").last_candle_ms
    wait_for(lambda: (world.service.status(ADMIN, "g-sma").last_candle_ms or 0) > (first or 0), what="candles")
    status = world.service.status(ADMIN, "g-sma")
    assert status.status is BotStatus.RUNNING and status.gateway == "gw-a"

    world.service.stop_bot(ADMIN, "g-sma")
    wait_for(lambda: world.holder("g-sma") is None, what="the stopped bot's lease released")
    assert world.platform.store.get_bot_status("g-sma") is BotStatus.STOPPED
    assert world.holder("g-rsi") == "gw-a", "the other bot runs on"
    lines = [x.message for x in world.service.logs(ADMIN, "g-sma", limit=50)]
    assert any("started on gateway gw-a" in m for m in lines) and any(m == "stopped" for m in lines), lines


def test_forced_orders_travel_over_the_bus_are_answered_and_applied_once(world: World) -> None:
    world.add_bot("g-force", per_pair=5)
    world.gateway("gw-a")
    wait_for(lambda: world.holder("g-force") == "gw-a", what="the bot claimed")
    wait_for(lambda: world.service.status(ADMIN, "g-force").last_candle_ms is not None, what="a first candle")

    entered = world.service.force_enter(ADMIN, "g-force", ForceEnterIn(pair="BTC/USDT", stake_amount=500))
    assert entered.status == "done", entered
    trade_ids = entered.result["trade_ids"]
    assert len(trade_ids) == 1
    forced_id = client_order_id("g-force", "BTC/USDT", 0, f"fe:{entered.command_id}")

    def forced_orders() -> list[str]:  # the strategy may place orders of its own meanwhile
        return [
            o.client_order_id for o in world.platform.store.list_orders("g-force") if o.client_order_id == forced_id
        ]

    assert forced_orders() == [forced_id]

    # The same command delivered again (a redelivery after a crash, say) places nothing more.
    again = {"pair": "BTC/USDT", "stake_amount": 500, "command_id": entered.command_id, "bot_id": "g-force",
             "actor": "admin", "issued_ms": time.time_ns() // 1_000_000,
             "expires_ms": time.time_ns() // 1_000_000 + 30_000}  # fmt: skip
    world.bus.publish(COMMANDS_STREAM, "ForceEnter", again)
    # Commands are handled in stream order: once this later one is answered, the redelivery was handled too.
    refused = world.service.force_enter(ADMIN, "g-force", ForceEnterIn(pair="BTC/USDT", stake_amount=10**9))
    assert refused.status == "failed" and "more than the free" in refused.message, refused
    assert forced_orders() == [forced_id], "the redelivery placed an order"
    store = world.platform.store
    forced_trades = [
        t.id for t in store.open_trades("g-force") + store.closed_trades("g-force") if t.enter_tag == "force_entry"
    ]
    assert forced_trades == trade_ids, "one forced trade, however often the command was delivered"

    exited = world.service.force_exit(ADMIN, "g-force", ForceExitIn(trade_id=trade_ids[0]))
    closed = {t.id: t for t in world.platform.store.closed_trades("g-force")}
    if exited.status == "failed":  # on this fast replay the strategy's exit, ROI or stop may close it first
        assert f"no open trade {trade_ids[0]}" in exited.message, exited
        assert closed[trade_ids[0]].exit_reason != "force_exit"
    else:
        assert exited.status == "done", exited
        assert closed[trade_ids[0]].exit_reason == "force_exit"
    # A pair with no open trade (the strategy may open BTC/USDT trades of its own at any moment).
    nothing = world.service.force_exit(ADMIN, "g-force", ForceExitIn(pair="ETH/USDT"))
    assert nothing.status == "failed" and "no open ETH/USDT trades" in nothing.message, nothing


def test_a_gateway_that_loses_a_lease_drops_the_bot_before_trading_it_again(world: World) -> None:
    world.add_bot("g-fence")
    gateway = world.gateway("gw-a", ttl=2.0)
    wait_for(lambda: "g-fence" in gateway.hosted, what="the bot hosted")
    with world.platform.store._engine.begin() as conn:  # another gateway took the bot over meanwhile
        conn.execute(
            update(bot_leases)
            .where(bot_leases.c.bot_id == "g-fence")
            .values(gateway_id="gw-thief", expires_ms=time.time_ns() // 1_000_000 + 600_000)
        )
    wait_for(lambda: "g-fence" not in gateway.hosted, timeout=5, what="the bot dropped")
    assert world.holder("g-fence") == "gw-thief", "the lost lease is not taken back"


def test_two_gateways_never_hold_the_same_bot(world: World) -> None:
    for i in range(4):
        world.add_bot(f"g-{i}", pair=("BTC/USDT", "ETH/USDT")[i % 2])
    a = world.gateway("gw-a", capacity=2)
    b = world.gateway("gw-b", capacity=2)
    wait_for(lambda: len(a.hosted) + len(b.hosted) == 4, what="every bot hosted")
    assert not set(a.hosted) & set(b.hosted)
    assert {world.holder(f"g-{i}") for i in range(4)} == {"gw-a", "gw-b"}


def test_the_events_of_a_forced_entry_carry_the_trace_id_of_the_request_that_sent_it(world: World) -> None:
    world.add_bot("g-trace", per_pair=5)
    world.gateway("gw-a")
    wait_for(lambda: world.holder("g-trace") == "gw-a", what="the bot claimed")
    wait_for(lambda: world.service.status(ADMIN, "g-trace").last_candle_ms is not None, what="a first candle")

    with structlog.contextvars.bound_contextvars(trace_id="req-trace-1"):  # as the API binds X-Request-ID
        entered = world.service.force_enter(ADMIN, "g-trace", ForceEnterIn(pair="BTC/USDT", stake_amount=500))
    assert entered.status == "done", entered

    events = world.bus.read_after(EVENTS_STREAM, FIRST_ID, count=1_000_000)
    answer = [m for m in events if m.type == "CommandResult" and m.payload["command_id"] == entered.command_id]
    entries = {("TradeExecuted", trade_id, "entry") for trade_id in entered.result["trade_ids"]}
    entry = [m for m in events if (m.type, m.payload.get("trade_id"), m.payload.get("action")) in entries]
    assert [(m.type, m.trace_id) for m in answer + entry] == [
        ("CommandResult", "req-trace-1"),
        ("TradeExecuted", "req-trace-1"),
    ]


FRAGILE = '''"""A strategy that breaks once the file ``break-now`` appears next to it."""

from pathlib import Path

import pandas as pd

from tradefleet.strategies.sma_cross import SmaCross


class Fragile(SmaCross):
    def populate_indicators(self, dataframe: pd.DataFrame) -> pd.DataFrame:
        if (Path(__file__).parent / "break-now").exists():
            raise RuntimeError("fragile strategy broke")
        return super().populate_indicators(dataframe)
'''


def test_a_strategy_that_raises_fails_its_bot_alone_and_the_gateway_runs_on(world: World) -> None:
    strategies = world.platform.settings.strategies_dir
    strategies.mkdir(parents=True, exist_ok=True)
    (strategies / "fragile.py").write_text(FRAGILE)
    world.add_bot("g-fragile", strategy="Fragile")
    world.add_bot("g-steady", pair="ETH/USDT", strategy="RsiMeanReversion")
    gateway = world.gateway("gw-a")
    wait_for(lambda: {"g-fragile", "g-steady"} <= set(gateway.hosted), what="both bots hosted")

    (strategies / "break-now").touch()
    wait_for(lambda: world.platform.store.get_bot_status("g-fragile") is BotStatus.ERROR, what="the bot failed")
    wait_for(lambda: world.holder("g-fragile") is None, what="its lease given back")
    before = world.service.status(ADMIN, "g-steady").last_candle_ms or 0
    wait_for(lambda: (world.service.status(ADMIN, "g-steady").last_candle_ms or 0) > before, what="the other bot")
    assert world.runs[0][2].is_alive(), "the gateway runs on"
    assert world.holder("g-steady") == "gw-a"
    lines = [x.message for x in world.service.logs(ADMIN, "g-fragile", limit=50)]
    assert any("failed: RuntimeError: fragile strategy broke" in m for m in lines), lines


STUCK = '''"""A strategy whose analysis hangs while the file ``stall-now`` lies next to it."""

import time
from pathlib import Path

import pandas as pd

from tradefleet.strategies.sma_cross import SmaCross


class Stuck(SmaCross):
    def populate_indicators(self, dataframe: pd.DataFrame) -> pd.DataFrame:
        while (Path(__file__).parent / "stall-now").exists():
            time.sleep(0.05)
        return super().populate_indicators(dataframe)
'''


def test_a_gateway_whose_loop_hangs_lets_its_bots_go_to_another_gateway(world: World) -> None:
    """The heartbeat has its own thread, so it must not keep the leases of a loop that no longer runs (a
    strategy that never returns): after ``loop_stall_s`` it stops renewing, another gateway takes the bot
    over, and the hung gateway, once it wakes, finds its writes fenced and drops the bot."""
    strategies = world.platform.settings.strategies_dir
    strategies.mkdir(parents=True, exist_ok=True)
    (strategies / "stuck.py").write_text(STUCK)
    world.add_bot("g-stuck", strategy="Stuck")
    hung = world.gateway("gw-a", ttl=2.0)
    hung.keeper.loop_stall_s = 2.0  # read at every beat
    wait_for(lambda: world.service.status(ADMIN, "g-stuck").last_candle_ms is not None, what="a first candle")

    stall = strategies / "stall-now"
    stall.touch()
    spare = world.gateway("gw-b", ttl=2.0)
    try:
        wait_for(lambda: world.holder("g-stuck") == "gw-b", timeout=30, what="the bot taken over")
    finally:
        stall.unlink()
    wait_for(lambda: "g-stuck" not in hung.hosted, what="the hung gateway drops the bot once it wakes")
    lease = world.leases.holder("g-stuck")
    assert lease is not None and (lease.gateway_id, lease.epoch) == ("gw-b", 2)
    before = world.service.status(ADMIN, "g-stuck").last_candle_ms or 0
    wait_for(lambda: (world.service.status(ADMIN, "g-stuck").last_candle_ms or 0) > before, what="trading on gw-b")
    assert "g-stuck" in spare.hosted and world.runs[0][2].is_alive(), "the woken gateway runs on"
