"""Order safety of live bots: ccxt against a Binance spot account on loopback, on SQLite and PostgreSQL.

The rules pinned here (commit 8acd6fa):

* an order the venue does not know stays ``UNKNOWN`` while it may still be in flight (the venue's
  ``placement_settle_s``), blocks entries meanwhile, and is taken as never accepted only afterwards;
* an intent committed but unknown to the venue at a restart is no reconcile problem: the bot runs, and the
  order is applied once a late request lands with its client order id (never sent again by the bot);
* a protective stop cancelled on the venue by someone else is placed again (RiskAlert "stoploss"); a stop
  the bot cancels itself is not;
* the fees a venue kept in the base asset (``fee_base``) are rebuilt from the stored fills after a restart;
* a bot whose lease was lost cannot cancel on the venue.

The venue (``support/binance_venue.py``) is the outer edge: real HTTP, signed requests, its own ledger.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator
from typing import Any

import ccxt
import numpy as np
import pytest
from sqlalchemy import update

from support.binance_venue import API_KEY, SECRET, BinanceVenue
from tradefleet.adapters.exchanges.ccxt import CcxtExchange, ReadRetry, capabilities_from_ccxt
from tradefleet.adapters.storage import SqlTradingStore, make_engine
from tradefleet.adapters.storage.leases import SqlLeases
from tradefleet.adapters.storage.platform_tables import bot_leases
from tradefleet.core.bots import BotConfig, BotStatus
from tradefleet.core.errors import LeaseLostError
from tradefleet.core.events import DomainEvent, RiskAlert
from tradefleet.core.orders import Fill, Order, OrderIntent, OrderSide, OrderStatus, OrderType
from tradefleet.core.ports import OrderRequest
from tradefleet.core.precision import floor_to_step
from tradefleet.core.strategy import IStrategy
from tradefleet.engine.bot import BotRuntime, Signals
from tradefleet.engine.clock import WallClock
from tradefleet.engine.manual import force_entry, force_exit
from tradefleet.engine.orders import OrderManager, client_order_id

BOT = "safety"
PAIR = "BTC/USDT"
ORDER = "/api/v3/order"
MINUTE = 60_000
BTC_STEP = 0.00001  # the amount step of BTCUSDT on the venue
FAST_RETRY = ReadRetry(attempts=3, backoff_s=0.01, max_wait_s=2.0)
TTL_MS = 60_000


class Scripted(IStrategy):
    """The candles say when to enter; no ROI exit, a 5 % stop."""

    timeframe = "1m"
    minimal_roi = {"0": 10.0}
    stoploss = -0.05


class EventList:
    """Event sink that keeps what the bot publishes."""

    def __init__(self) -> None:
        self.events: list[DomainEvent] = []

    def publish(self, event: DomainEvent) -> None:
        self.events.append(event)

    def alerts(self, rule: str) -> list[RiskAlert]:
        return [e for e in self.events if isinstance(e, RiskAlert) and e.rule == rule]


class Candles:
    """Closed 1m candles at the venue's current minute, handed to the bot one by one."""

    def __init__(self) -> None:
        self.next_open = (time.time_ns() // 1_000_000 // MINUTE) * MINUTE - 30 * MINUTE

    def step(self, bot: BotRuntime, price: float, *, enter: bool = False) -> int:
        """Have ``bot`` handle the close of one more candle; return its open time."""
        open_ms, self.next_open = self.next_open, self.next_open + MINUTE
        signals = Signals(
            open_ms=np.array([open_ms], dtype=np.int64),
            open=np.array([price]),
            high=np.array([price]),
            low=np.array([price]),
            close=np.array([price]),
            enter_long=np.array([1 if enter else 0], dtype=np.int8),
            exit_long=np.array([0], dtype=np.int8),
            enter_tag=np.array(["scripted" if enter else ""], dtype=object),
        )
        bot.step(PAIR, 0, signals)
        return open_ms


@pytest.fixture
def venue() -> Iterator[BinanceVenue]:
    server = BinanceVenue().start()
    try:
        yield server
    finally:
        server.stop()
    assert server.unrouted() == [], "ccxt called venue endpoints the test venue does not model"


def binance(venue: BinanceVenue, *, settle_s: float | None = None) -> CcxtExchange:
    """A ccxt client of the venue's account; ``settle_s`` overrides its ``placement_settle_s``."""
    settings: dict[str, Any] = {
        "api_key": API_KEY,
        "secret": SECRET,
        "api_url": venue.url,
        "timeout_ms": 2_000,
        "retry": FAST_RETRY,
    }
    if settle_s is not None:
        derived = capabilities_from_ccxt(ccxt.binance())
        settings["capabilities"] = dataclasses.replace(derived, placement_settle_s=settle_s)
    return CcxtExchange("binance", **settings)


def live_bot(store: SqlTradingStore, exchange: CcxtExchange, sink: EventList) -> BotRuntime:
    """A stored live bot on ``exchange`` (not started): 100 USDT per entry, one trade per pair."""
    config = BotConfig(
        bot_id=BOT,
        strategy="Scripted",
        pairs=(PAIR,),
        timeframe="1m",
        exchange="binance",
        mode="live",
        starting_balance=1000.0,
        risk={"stake_mode": "fixed", "stake_amount": 100.0, "max_open_trades": 2, "max_per_pair": 1},
    )
    store.save_bot(config)
    store.set_bot_status(BOT, BotStatus.RUNNING)
    return BotRuntime(config, Scripted(), exchange, store, WallClock(), sink)


def posts_of(venue: BinanceVenue, cid: str) -> list[int]:
    """HTTP statuses of the placements the venue received with client order id ``cid``."""
    return [r.status for r in venue.requests(ORDER, "POST") if r.params.get("newClientOrderId") == cid]


def stored(store: SqlTradingStore, cid: str) -> Order:
    order = store.get_order(cid)
    assert order is not None, f"order {cid} is not in the database"
    return order


# ======================================================================= 1. in flight: UNKNOWN, then rejected
def test_order_whose_placement_failed_before_the_venue_acted_stays_unknown_until_it_cannot_be_in_flight(
    store: SqlTradingStore, venue: BinanceVenue
) -> None:
    """A 503 on the order POST (the venue did nothing) leaves the order UNKNOWN, not REJECTED, while the
    request may still reach the venue (``placement_settle_s``): it is settling and blocks new entries
    ("entry_pending"). Once the settle time has passed, the next sync rejects it as never accepted, and
    entries trade again. Nothing is ever sent twice."""
    sink = EventList()
    bot = live_bot(store, binance(venue, settle_s=0.5), sink)
    bot.start()
    assert bot.status is BotStatus.RUNNING
    candles = Candles()
    venue.fail_next(ORDER, "service_unavailable_html", method="POST", after_effect=False)

    open_ms = candles.step(bot, 97_000.01, enter=True)

    cid = client_order_id(BOT, PAIR, open_ms, "en")
    assert posts_of(venue, cid) == [503], "one placement, answered 503"
    assert venue.orders() == [], "the venue did not act"
    assert bot.orders.stats.ambiguous == 1
    order = stored(store, cid)
    assert order.status is OrderStatus.UNKNOWN, f"{order.status}: an order maybe in flight is not rejected yet"
    assert cid in bot.orders.settling
    assert cid in bot.orders.live
    # the settle time runs from the look-up that found nothing, just now; force_entry asks the venue nothing
    refused = force_entry(bot, PAIR, command_id="cmd-1", stake_amount=100.0)
    assert (refused.ok, refused.message) == (False, "entry refused: entry_pending"), refused

    time.sleep(0.6)  # past placement_settle_s: a request sent then can no longer reach the venue
    bot.orders.sync()

    order = stored(store, cid)
    assert order.status is OrderStatus.REJECTED
    assert "never accepted" in order.reason
    assert bot.orders.settling == set() and bot.orders.live == {}
    assert posts_of(venue, cid) == [503], "a rejected order is not sent again"

    # entries are no longer blocked: the next signal buys, and the trade gets its stop
    next_open = candles.step(bot, 97_000.01, enter=True)
    again = stored(store, client_order_id(BOT, PAIR, next_open, "en"))
    assert again.status is OrderStatus.FILLED
    assert [(o.side, o.type, o.status) for o in venue.orders()] == [
        ("BUY", "MARKET", "FILLED"),
        ("SELL", "STOP_LOSS", "NEW"),
    ]
    assert len(bot.trades[PAIR]) == 1


# ================================================================== 2. in flight at a restart, landing late
def test_intent_unknown_to_the_venue_at_start_is_settling_and_applied_once_its_late_request_lands(
    store: SqlTradingStore, venue: BinanceVenue
) -> None:
    """An entry committed (PENDING_SUBMIT) whose request had not reached the venue when the bot starts is
    no reconcile problem: the bot runs, the order is UNKNOWN and settling (entries wait). The stalled
    request then lands with the same client order id; ``resolve_unsettled`` finds it and applies it (the
    market buy FILLED, a trade opened, its stop placed). The venue got that client order id once."""
    sink = EventList()
    exchange = binance(venue)  # the adapter's own settle time: at least 30 s
    assert exchange.capabilities.placement_settle_s >= 30.0
    bot = live_bot(store, exchange, sink)
    entry_open = (time.time_ns() // 1_000_000 // MINUTE) * MINUTE - 2 * MINUTE
    cid = client_order_id(BOT, PAIR, entry_open, "en")
    intent = Order(
        client_order_id=cid,
        bot_id=BOT,
        pair=PAIR,
        side=OrderSide.BUY,
        type=OrderType.MARKET,
        amount=0.001,
        intent=OrderIntent.ENTRY,
        created_ms=entry_open + MINUTE,
        reason="scripted",
    )
    assert store.add_order(intent) is True  # committed before the exchange call, which stalled

    bot.start()

    assert bot.status is BotStatus.RUNNING, bot.reconcile_problems
    assert bot.reconcile_problems == []
    assert sink.alerts("reconcile") == []
    assert store.get_bot_status(BOT) is BotStatus.RUNNING
    assert stored(store, cid).status is OrderStatus.UNKNOWN
    assert cid in bot.orders.settling
    assert bot._entry_block(PAIR, bot.now_ms()) == "entry_pending"
    bot.resolve_unsettled()  # asked again before it lands: still maybe in flight
    assert stored(store, cid).status is OrderStatus.UNKNOWN and cid in bot.orders.settling
    assert venue.orders() == [] and posts_of(venue, cid) == []

    # the stalled gateway's request reaches the venue late, with the same client order id
    late = binance(venue).create_order(OrderRequest(cid, PAIR, OrderSide.BUY, OrderType.MARKET, 0.001))
    assert late.status is OrderStatus.FILLED
    bot.resolve_unsettled()

    order = stored(store, cid)
    assert order.status is OrderStatus.FILLED
    assert order.filled == pytest.approx(0.001, abs=1e-12)
    assert bot.orders.settling == set()
    (trade,) = bot.trades[PAIR]
    assert trade.entry_order == cid and trade.is_open
    assert [t.id for t in store.open_trades(BOT)] == [trade.id]
    # Binance kept 0.1 % of the coins: the trade holds what is left, down to the amount step
    assert trade.amount == pytest.approx(floor_to_step(0.001 * (1 - 0.001), BTC_STEP), abs=1e-12)
    (buy, stop) = venue.orders()
    assert (buy.client_order_id, buy.status) == (cid, "FILLED")
    assert (stop.side, stop.type, stop.status) == ("SELL", "STOP_LOSS", "NEW")
    assert stop.orig_qty == pytest.approx(trade.amount, abs=1e-12)
    assert stop.stop_price == pytest.approx(trade.stop_price, abs=0.01)  # to the venue's 0.01 tick
    assert posts_of(venue, cid) == [200], "the bot never sent the in-flight order itself"
    assert [o.client_order_id for o in venue.orders()].count(cid) == 1


def test_stop_committed_by_an_earlier_holder_but_never_sent_is_placed_again_once_it_cannot_be_in_flight(
    store: SqlTradingStore, venue: BinanceVenue
) -> None:
    """A gateway committed a stop (PENDING_SUBMIT) and lost the bot before sending it. The next holder's
    reconcile must wait out the settle time (the request may still land), so the trade has no stop resting
    meanwhile; once the venue still does not know it, the stop is written off as never accepted and a new
    one is placed at once, with a RiskAlert, instead of leaving the trade unprotected."""
    sink = EventList()
    first = live_bot(store, binance(venue, settle_s=0.5), sink)
    first.start()
    Candles().step(first, 97_000.01, enter=True)
    (trade,) = first.trades[PAIR]
    resting = first._live_stop(trade)
    assert resting is not None
    first.orders.cancel(resting)  # the bot itself moves its stop: the new one is committed, never sent...
    first._drain()
    orphan = Order(
        client_order_id=client_order_id(BOT, PAIR, first.now_ms(), f"sl:{trade.entry_order}:orphan"),
        bot_id=BOT,
        pair=PAIR,
        side=OrderSide.SELL,
        type=OrderType.STOP,
        amount=trade.amount,
        intent=OrderIntent.STOP,
        created_ms=first.now_ms(),
        stop_price=trade.stop_price,
        reason="stop_loss",
        trade_ref=trade.id,
    )
    assert store.add_order(orphan) is True
    first.flush()  # ...because that gateway is gone; another one starts the bot

    second = live_bot(store, binance(venue, settle_s=0.5), sink)
    second.start()
    assert second.reconcile_problems == [] and orphan.client_order_id in second.orders.settling
    assert second._live_stop(second.trades[PAIR][0]) is not None, "the orphan counts as maybe in flight"
    assert [o.status for o in venue.orders() if o.side == "SELL"] == ["CANCELED"], "nothing rests yet"

    time.sleep(0.6)  # past the settle time: the request cannot land any more
    second.resolve_unsettled()

    assert stored(store, orphan.client_order_id).status is OrderStatus.REJECTED
    (held,) = second.trades[PAIR]
    new_stop = second._live_stop(held)
    assert new_stop is not None and new_stop.client_order_id != orphan.client_order_id
    sells = [o for o in venue.orders() if o.side == "SELL"]
    assert [(o.type, o.status) for o in sells] == [("STOP_LOSS", "CANCELED"), ("STOP_LOSS", "NEW")]
    assert sells[1].client_order_id == new_stop.client_order_id
    assert sells[1].orig_qty == pytest.approx(held.amount, abs=1e-12)
    alerts = [a for a in sink.alerts("stoploss") if orphan.client_order_id in a.message]
    assert len(alerts) == 1 and "never reached" in alerts[0].message, sink.alerts("stoploss")


# ============================================================ 3. a stop cancelled by someone else comes back
def test_stop_cancelled_on_the_venue_by_someone_else_is_placed_again_but_not_one_the_bot_cancelled(
    store: SqlTradingStore, venue: BinanceVenue
) -> None:
    """A protective stop cancelled on the venue by another client is found CANCELED at the bot's next
    sync: the bot raises a RiskAlert "stoploss" and places the stop again, with a new client order id (even
    within the candle that placed the first one) and the same amount and stop price. A stop the bot cancels
    itself (a forced exit) is not replaced."""
    sink = EventList()
    bot = live_bot(store, binance(venue), sink)
    bot.start()
    candles = Candles()
    candles.step(bot, 97_000.01, enter=True)
    (trade,) = bot.trades[PAIR]
    (first,) = [o for o in venue.orders() if o.type == "STOP_LOSS"]
    assert first.status == "NEW"

    cancelled = binance(venue).cancel_order(PAIR, first.client_order_id)  # someone else, on the venue
    assert cancelled.status is OrderStatus.CANCELED
    # the bot syncs its live orders still within the candle that placed the stop (same market time)
    bot.orders.sync()
    bot._drain()
    bot.flush()

    assert stored(store, first.client_order_id).status is OrderStatus.CANCELED
    (alert,) = sink.alerts("stoploss")
    assert first.client_order_id in alert.message and alert.pair == PAIR
    stops = [o for o in venue.orders() if o.type == "STOP_LOSS"]
    assert [s.status for s in stops] == ["CANCELED", "NEW"]
    second = stops[1]
    assert second.client_order_id != first.client_order_id
    assert second.orig_qty == pytest.approx(first.orig_qty, abs=1e-12)
    assert second.orig_qty == pytest.approx(trade.amount, abs=1e-12)
    assert second.stop_price == first.stop_price
    replacement = stored(store, second.client_order_id)
    assert (replacement.intent, replacement.status, replacement.trade_ref) == (
        OrderIntent.STOP,
        OrderStatus.OPEN,
        trade.id,
    )
    assert bot._live_stop(trade) is not None and bot._live_stop(trade) is bot.orders.live[second.client_order_id]

    # the bot's own cancel (a forced exit cancels the stop, then sells) places no new stop
    result = force_exit(bot, trade_id=trade.id)

    stops = [o for o in venue.orders() if o.type == "STOP_LOSS"]
    assert [(s.client_order_id, s.status) for s in stops] == [
        (first.client_order_id, "CANCELED"),
        (second.client_order_id, "CANCELED"),
    ], "a stop the bot cancelled itself was placed again"
    assert [o for o in venue.orders() if o.status == "NEW"] == []
    assert len(sink.alerts("stoploss")) == 1
    assert bot.orders.cancel_requested == set(), "handled cancels are forgotten (the set does not grow)"
    assert result.ok and result.trade_ids == [trade.id], result
    assert not trade.is_open and bot.trades[PAIR] == []
    assert [(o.side, o.type, o.status) for o in venue.orders()][-1] == ("SELL", "MARKET", "FILLED")
    assert bot.orders.live == {}


# ====================================================================== 4. fee_base rebuilt from the fills
def test_fee_kept_in_the_base_asset_is_rebuilt_from_stored_fills_after_a_restart(
    store: SqlTradingStore, database_url: str
) -> None:
    """``fee_base`` is not a column: ``live_orders``, ``get_order`` and ``list_orders`` rebuild it from the
    order's stored fills whose fee currency is the pair's base (BTC). Fees in the quote (USDT) or in a third
    asset (BNB) are not counted; a fresh store on the same database (a restart) gives the same values."""
    store.save_bot(BotConfig(bot_id=BOT, strategy="Scripted", pairs=(PAIR,), timeframe="1m"))

    def entry(cid: str) -> Order:
        return Order(cid, BOT, PAIR, OrderSide.BUY, OrderType.LIMIT, 0.003, OrderIntent.ENTRY, 1_000, price=90_000.0)

    base_fees, quote_fees = entry("tf-fee-base"), entry("tf-fee-quote")
    fills = {
        base_fees.client_order_id: [
            Fill("BTCUSDT:1", "tf-fee-base", 90_000.0, 0.001, 0.000001, 2_000, "BTC"),
            Fill("BTCUSDT:2", "tf-fee-base", 90_000.0, 0.0005, 0.0000005, 3_000, "BTC"),
            Fill("BTCUSDT:3", "tf-fee-base", 90_000.0, 0.0005, 0.0001, 4_000, "BNB"),
        ],
        quote_fees.client_order_id: [
            Fill("BTCUSDT:4", "tf-fee-quote", 90_000.0, 0.001, 0.09, 5_000, "USDT"),
        ],
    }
    for order in (base_fees, quote_fees):
        assert store.add_order(order) is True
        order.transition(OrderStatus.OPEN, 1_500)
        with store.transaction():
            for fill in fills[order.client_order_id]:
                assert store.add_fill("binance", BOT, fill) is True
                order.apply_fill(fill)
            store.update_order(order)
    assert base_fees.status is OrderStatus.PARTIALLY_FILLED and quote_fees.status is OrderStatus.PARTIALLY_FILLED
    assert base_fees.fee_base == pytest.approx(0.0000015, abs=1e-15)  # what the running bot knew
    assert quote_fees.fee_base == 0.0
    expected = {"tf-fee-base": pytest.approx(0.0000015, abs=1e-15), "tf-fee-quote": 0.0}

    def check(reader: SqlTradingStore) -> None:
        assert {o.client_order_id: o.fee_base for o in reader.live_orders(BOT)} == expected
        assert {o.client_order_id: o.fee_base for o in reader.list_orders(BOT)} == expected
        for cid, fee_base in expected.items():
            assert stored(reader, cid).fee_base == fee_base
        rebuilt = stored(reader, "tf-fee-base")
        assert rebuilt.fill_ids == {"BTCUSDT:1", "BTCUSDT:2", "BTCUSDT:3"}
        assert rebuilt.filled == pytest.approx(0.002, abs=1e-12)

    check(store)
    engine = make_engine(database_url)  # a restart: a new store on the same database
    restarted = SqlTradingStore(engine)
    try:
        check(restarted)
    finally:
        restarted.close()
        engine.dispose()


# ======================================================================= 5. no venue cancel without the lease
def test_fenced_bot_that_lost_its_lease_cannot_cancel_on_the_venue(
    store: SqlTradingStore, database_url: str, venue: BinanceVenue
) -> None:
    """``OrderManager.cancel`` checks the lease before the venue call: with the lease lost it raises
    LeaseLostError and the venue sees no DELETE; with the lease held again it cancels."""
    engine = make_engine(database_url)
    try:
        leases = SqlLeases(engine)
        epoch = leases.claim(BOT, "gw-a", TTL_MS)
        assert epoch is not None
        store.fence(BOT, "gw-a", epoch)
        updates: list[OrderStatus] = []
        manager = OrderManager(BOT, binance(venue), store, WallClock(), lambda o, f: updates.append(o.status))
        resting = Order("tf-fenced-limit", BOT, PAIR, OrderSide.BUY, OrderType.LIMIT, 0.001, OrderIntent.ENTRY,
                        WallClock().now_ms(), price=50_000.0)  # fmt: skip
        placed = manager.submit(resting)
        assert placed.status is OrderStatus.OPEN
        assert [(o.client_order_id, o.status) for o in venue.orders()] == [("tf-fenced-limit", "NEW")]

        with engine.begin() as conn:  # the gateway stalled past its lease
            conn.execute(update(bot_leases).where(bot_leases.c.bot_id == BOT).values(expires_ms=0))
        with pytest.raises(LeaseLostError, match="gw-a"):
            manager.cancel(placed)

        assert venue.requests(ORDER, "DELETE") == [], "a bot without its lease acted on the venue"
        assert [(o.client_order_id, o.status) for o in venue.orders()] == [("tf-fenced-limit", "NEW")]
        assert stored(store, "tf-fenced-limit").status is OrderStatus.OPEN
        assert "tf-fenced-limit" in manager.live

        renewed = leases.claim(BOT, "gw-a", TTL_MS)  # the lease held again (a new epoch)
        assert renewed == epoch + 1
        store.fence(BOT, "gw-a", renewed)
        manager.cancel(placed)

        assert [r.status for r in venue.requests(ORDER, "DELETE")] == [200]
        assert [(o.client_order_id, o.status) for o in venue.orders()] == [("tf-fenced-limit", "CANCELED")]
        assert stored(store, "tf-fenced-limit").status is OrderStatus.CANCELED
        assert manager.live == {} and updates[-1] is OrderStatus.CANCELED
    finally:
        store.unfence(BOT, "gw-a")
        engine.dispose()
