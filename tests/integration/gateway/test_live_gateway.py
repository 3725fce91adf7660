"""Live bots on gateways: ccxt against a Binance spot account on loopback (the exchange is the outer edge).

The gateway builds a live bot from its stored, encrypted credentials and the ``[exchange.accounts]`` entry
of its exchange, reconciles it with the venue, feeds it candles polled from the venue as they close, and
places forced orders for real through ccxt (signed requests, client order ids). A second gateway taking the
bot over finds its trade and stop on the venue and places nothing twice. Every venue order is audited
against the database.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from gateway_support import ADMIN, GatewayWorld, Run, gateway_world, wait_for

from support.binance_venue import API_KEY, SECRET, BinanceVenue
from tradefleet.adapters.storage.credentials import SqlCredentialStore
from tradefleet.core.bots import BotConfig, BotStatus
from tradefleet.core.orders import OrderStatus
from tradefleet.core.precision import floor_to_step
from tradefleet.services.auth import load_or_create_keys
from tradefleet.services.bots.schemas import ForceEnterIn, ForceExitIn
from tradefleet.services.credentials import CredentialService
from tradefleet.services.credentials.schemas import CredentialsIn

BOT = "live-btc"


class LiveWorld(GatewayWorld):
    """Live bots on the loopback Binance venue, with their keys stored through the credential service."""

    venue: BinanceVenue
    credentials: CredentialService

    def gateway(self, gateway_id: str, lease_ttl_s: float = 5.0) -> Run:
        return self.start_gateway(gateway_id, lease_ttl_s=lease_ttl_s)

    def add_live_bot(self, bot_id: str = BOT) -> None:
        risk = {"max_open_trades": 2, "max_per_pair": 2, "stake_mode": "fixed", "stake_amount": 100}
        config = BotConfig.model_validate(
            {
                "bot_id": bot_id,
                "strategy": "SmaCross",
                "pairs": ("BTC/USDT",),
                "timeframe": "1m",
                "exchange": "binance",
                "mode": "live",
                "starting_balance": 1000,
                "risk": risk,
            }
        )
        self.platform.store.save_bot(config)
        self.platform.store.set_bot_status(bot_id, BotStatus.RUNNING)

    def holder(self, bot_id: str = BOT) -> str | None:
        return super().holder(bot_id)


@pytest.fixture
def live(database_url: str, tmp_path: Path) -> Iterator[LiveWorld]:
    venue = BinanceVenue().start()
    overrides = {
        "data_dir": str(tmp_path / "var"),
        "exchange.accounts": {"binance": {"api_url": venue.url, "sandbox": False}},
    }
    try:
        with gateway_world(LiveWorld, database_url, overrides, reply_timeout_s=15) as world:
            box = load_or_create_keys(world.platform.settings.data_dir).secret_box
            world.venue = venue
            world.credentials = CredentialService(SqlCredentialStore(world.engine), box, world.service)
            yield world
    finally:
        venue.stop()
    assert venue.unrouted() == [], "the gateway called venue endpoints the test venue does not model"


def audit(world: LiveWorld) -> None:
    """Every venue order is one database order with the same status; nothing sent twice, nothing unknown."""
    venue_orders = world.venue.orders()
    ids = [o.client_order_id for o in venue_orders]
    assert len(ids) == len(set(ids)), f"an order reached the venue twice: {ids}"
    ours = {o.client_order_id: o for o in world.platform.store.list_orders(BOT)}
    status = {"FILLED": OrderStatus.FILLED, "NEW": OrderStatus.OPEN, "CANCELED": OrderStatus.CANCELED}
    for order in venue_orders:
        assert order.client_order_id in ours, f"venue order {order.client_order_id} unknown to the database"
        assert ours[order.client_order_id].status is status[order.status], (order, ours[order.client_order_id])
    sent = {cid for cid, o in ours.items() if o.status is not OrderStatus.REJECTED}
    assert sent == set(ids), "every order the database thinks was sent is on the venue"


def test_a_live_bot_trades_on_the_venue_and_survives_a_takeover(live: LiveWorld) -> None:
    live.add_live_bot()
    live.credentials.put(ADMIN, BOT, CredentialsIn(exchange="binance", api_key=API_KEY, secret=SECRET))
    _, stop_a, thread_a = live.gateway("gw-a")
    wait_for(lambda: live.holder() == "gw-a", what="the live bot claimed")
    wait_for(lambda: live.service.status(ADMIN, BOT).last_candle_ms is not None, what="a closed candle")
    status = live.service.status(ADMIN, BOT)
    assert status.status is BotStatus.RUNNING, status
    minute = 60_000
    assert status.last_candle_ms is not None
    assert time.time() * 1000 - status.last_candle_ms < 3 * minute, "live candles are the venue's, not a replay"
    signed = live.venue.requests("/api/v3/account")
    assert signed and all(r.headers.get("X-Mbx-Apikey") == API_KEY for r in signed), "the stored key signs"

    entered = live.service.force_enter(ADMIN, BOT, ForceEnterIn(pair="BTC/USDT", stake_amount=100))
    assert entered.status == "done", entered
    (trade_id,) = entered.result["trade_ids"]
    placed = live.venue.orders()
    buys = [o for o in placed if o.side == "BUY"]
    assert len(buys) == 1 and buys[0].status == "FILLED" and buys[0].type == "MARKET", placed
    assert 90 <= float(buys[0].cumulative_quote_qty) <= 101, "the stake, not more"
    wait_for(lambda: any(o.side == "SELL" and o.status == "NEW" for o in live.venue.orders()), what="the stop")
    assert live.venue.balances()["BTC"].locked > 0, "the stop rests on the venue, holding the coins"
    trade = next(t for t in live.platform.store.open_trades(BOT) if t.id == trade_id)
    # Binance kept 0.1 % of the coins as its fee: the trade holds what is left, down to the 0.00001 BTC step
    held = float(buys[0].executed_qty) * (1 - 0.001)
    assert trade.amount == pytest.approx(floor_to_step(held, 0.00001), abs=1e-12) and trade.amount <= held
    (stop,) = [o for o in live.venue.orders() if o.side == "SELL"]
    assert float(stop.orig_qty) == pytest.approx(trade.amount, abs=1e-12), "the stop sells what the trade holds"
    paid = float(buys[0].cumulative_quote_qty)
    assert trade.amount * trade.open_rate + trade.fee_open == pytest.approx(paid, rel=1e-9), "costs add up"
    audit(live)

    before = live.venue.orders()
    stop_a.set()  # a clean stop of gw-a; gw-b takes the bot over and reconciles it with the venue
    thread_a.join(20)
    # As if the bot had been down for an hour: gw-b must not trade the missed candles late at today's prices.
    hour_ago = (int(time.time() * 1000) // minute) * minute - 60 * minute
    live.platform.store.save_progress(BOT, "BTC/USDT", hour_ago)
    live.gateway("gw-b")
    wait_for(lambda: live.holder() == "gw-b", what="gw-b took the bot over")

    def started_on_b() -> bool:  # written after the bot reconciled with the venue
        return any("started on gateway gw-b" in x.message for x in live.service.logs(ADMIN, BOT, limit=50))

    wait_for(started_on_b, what="the bot reconciled and running on gw-b")
    wait_for(lambda: (live.service.status(ADMIN, BOT).last_candle_ms or 0) > hour_ago, what="candles on gw-b")
    lines = [x.message for x in live.service.logs(ADMIN, BOT, limit=50)]
    assert any("skipped candles missed while the bot was not running: BTC/USDT (5" in m for m in lines), lines
    assert live.service.status(ADMIN, BOT).status is BotStatus.RUNNING
    assert live.venue.orders() == before, "the takeover placed nothing: the trade's stop was found"
    audit(live)

    exited = live.service.force_exit(ADMIN, BOT, ForceExitIn(trade_id=trade_id))
    assert exited.status == "done", exited
    closed = {t.id: t for t in live.platform.store.closed_trades(BOT)}
    assert closed[trade_id].exit_reason == "force_exit"
    venue_orders = live.venue.orders()
    assert [o.status for o in venue_orders if o.side == "SELL"] == ["CANCELED", "FILLED"], venue_orders
    assert live.venue.balances()["BTC"].total < 0.00001, "the position is flat (dust below one step stays)"
    audit(live)

    lines = " ".join(line.message for line in live.service.logs(ADMIN, BOT, limit=200))
    assert SECRET not in lines and API_KEY not in lines


def test_a_live_bot_without_credentials_fails_to_start_with_the_reason(live: LiveWorld) -> None:
    live.add_live_bot()
    live.gateway("gw-a")
    wait_for(lambda: live.platform.store.get_bot_status(BOT) is BotStatus.ERROR, what="the bot marked failed")
    detail = live.service.status(ADMIN, BOT)
    assert live.holder() is None, "the lease is given back"
    assert detail.status is BotStatus.ERROR
    assert live.venue.orders() == []
    assert live.venue.requests("/api/v3/account") == [], "nothing signed without keys"


def test_a_live_bot_keeps_its_lease_while_the_venue_answers_slowly(live: LiveWorld) -> None:
    """Venue calls run on the gateway's loop, the heartbeat on its own thread: a venue slower than the
    lease's time to live (here while the bot starts and reads its candle history) costs no bot its lease,
    so it is neither dropped nor taken over and started again."""
    live.add_live_bot()
    live.credentials.put(ADMIN, BOT, CredentialsIn(exchange="binance", api_key=API_KEY, secret=SECRET))
    live.venue.delay_next("/api/v3/klines", 4.0, times=2)  # 8 s of candle reads against a 3 s lease
    gateway, _, _ = live.gateway("gw-a", lease_ttl_s=3.0)
    wait_for(lambda: live.service.status(ADMIN, BOT).last_candle_ms is not None, timeout=60, what="a candle")
    klines = live.venue.requests("/api/v3/klines")
    assert len(klines) >= 2, "the slow reads happened"
    lease = live.leases.holder(BOT)
    assert lease is not None and (lease.gateway_id, lease.epoch) == ("gw-a", 1), "claimed once, never lost"

    def started() -> list[str]:  # log lines are written at the gateway's next flush, after the progress
        lines = [x.message for x in live.service.logs(ADMIN, BOT, limit=50)]
        return [m for m in lines if "started on gateway gw-a" in m]

    wait_for(started, what="the start in the bot's log")
    assert len(started()) == 1, "started once: never dropped and started again"
    assert gateway.errors == 0, f"{gateway.errors} loop or start error(s)"
    assert live.service.status(ADMIN, BOT).status is BotStatus.RUNNING
