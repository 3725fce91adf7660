"""Ambiguous exchange outcomes: "accepted, response lost", 5xx and 429, against the real engine and venue.

The rule under test (ARCHITECTURE.md §1.4 and §3): the intent is committed before the exchange call, an
order whose outcome is unknown is resolved by looking it up by client order id and never sent again, and
a 429 (a definite refusal) may be retried with the *same* client order id. Afterwards the venue's ledger
and TradeFleet's database must tell the same story, order by order, fill by fill, coin by coin.

Every test runs on SQLite and, through the shared ``database_url`` fixture, on PostgreSQL.
"""

from __future__ import annotations

import random
import sqlite3
import textwrap
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from support.ledger_audit import AuditResult, audit
from tradefleet.adapters.exchanges.faults import FaultPlan
from tradefleet.adapters.exchanges.simulated import SimulatedExchange, SimulatedVenue, default_market
from tradefleet.adapters.storage import SqlTradingStore
from tradefleet.bootstrap import build_paper_fleet, build_platform
from tradefleet.config import Settings, load_settings
from tradefleet.core.bots import BotConfig, BotStatus
from tradefleet.core.errors import AmbiguousOrderError, TemporaryExchangeError
from tradefleet.core.events import DomainEvent
from tradefleet.core.orders import Fill, Order, OrderIntent, OrderSide, OrderStatus, OrderType
from tradefleet.core.ports import ExchangeOrder, OrderRequest
from tradefleet.engine.clock import SimClock
from tradefleet.engine.fleet import Fleet
from tradefleet.engine.orders import OrderManager, client_order_id

PAIR = "BTC/USDT"
T0 = 1_704_067_200_000  # 2024-01-01 00:00 UTC
MINUTE = 60_000


@dataclass
class RecordingFaultPlan(FaultPlan):
    """A fault plan that also remembers which client order ids lost their response."""

    lost_responses: list[str] = field(default_factory=list)

    def after_accept(self, client_order_id: str) -> None:
        try:
            super().after_accept(client_order_id)
        except AmbiguousOrderError:
            self.lost_responses.append(client_order_id)
            raise


class EventList:
    """Event sink that keeps what the bots emit."""

    def __init__(self) -> None:
        self.events: list[DomainEvent] = []

    def publish(self, event: DomainEvent) -> None:
        self.events.append(event)


def ledger_orders(path: Path, client_order_id: str | None = None) -> list[sqlite3.Row]:
    """Return the venue's orders (all, or those with one client order id), read from its ledger file."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    conn.row_factory = sqlite3.Row
    try:
        if client_order_id is None:
            return conn.execute("SELECT * FROM orders ORDER BY id").fetchall()
        return conn.execute("SELECT * FROM orders WHERE client_order_id = ? ORDER BY id", (client_order_id,)).fetchall()
    finally:
        conn.close()


# =============================================================================== the order manager alone
@dataclass
class Desk:
    """One account on a simulated venue, an order manager over the real store, and what it reported."""

    venue: SimulatedVenue
    exchange: SimulatedExchange
    manager: OrderManager
    store: SqlTradingStore
    database_url: str
    ledger_path: Path
    clock: SimClock
    updates: list[tuple[OrderStatus, int]] = field(default_factory=list)
    requests: list[OrderRequest] = field(default_factory=list)

    def order(
        self,
        kind: str,
        side: OrderSide,
        amount: float,
        *,
        type: OrderType = OrderType.MARKET,
        intent: OrderIntent = OrderIntent.ENTRY,
        stop_price: float | None = None,
    ) -> Order:
        return Order(
            client_order_id=client_order_id("desk", PAIR, T0, kind),
            bot_id="desk",
            pair=PAIR,
            side=side,
            type=type,
            amount=amount,
            intent=intent,
            created_ms=self.clock.now_ms(),
            stop_price=stop_price,
        )

    def audit(self) -> AuditResult:
        return audit(self.ledger_path, self.database_url)


class SpyExchange(SimulatedExchange):
    """The real simulated account, recording every placement request it is given."""

    def __init__(self, venue: SimulatedVenue, account: str, requests: list[OrderRequest]) -> None:
        super().__init__(venue, account)
        self.requests = requests

    def create_order(self, request: OrderRequest) -> ExchangeOrder:
        self.requests.append(request)
        return super().create_order(request)


def make_desk(store: SqlTradingStore, database_url: str, tmp_path: Path, faults: FaultPlan) -> Desk:
    clock = SimClock(T0)
    ledger_path = tmp_path / "venue.sqlite"
    venue = SimulatedVenue({PAIR: default_market(PAIR)}, clock=clock, ledger_path=ledger_path, faults=faults)
    venue.open_account("desk", {"USDT": 10_000.0})
    # One closed candle gives the venue a price; market orders fill at the next open, 20 000.
    venue.on_candle(PAIR, T0 - MINUTE, T0, (19_900.0, 20_100.0, 19_800.0, 20_000.0), 20_000.0)
    store.save_bot(BotConfig(bot_id="desk", strategy="SmaCross", pairs=(PAIR,), timeframe="1m"))
    requests: list[OrderRequest] = []
    exchange = SpyExchange(venue, "desk", requests)
    updates: list[tuple[OrderStatus, int]] = []

    def on_update(order: Order, fills: list[Fill]) -> None:
        updates.append((order.status, len(fills)))

    manager = OrderManager("desk", exchange, store, clock, on_update)
    return Desk(venue, exchange, manager, store, database_url, ledger_path, clock, updates, requests)


def assert_orders_agree(result: AuditResult) -> None:
    """Order-level agreement (the desk opens no trades, so trades and positions are not compared)."""
    for name in ("lost", "unresolved", "duplicated", "orphans", "status_mismatches", "fill_mismatches"):
        assert getattr(result, name) == [], result.report()


def test_market_order_whose_response_is_lost_is_resolved_by_lookup_not_resent(
    store: SqlTradingStore, database_url: str, tmp_path: Path
) -> None:
    plan = FaultPlan(timeout_after_accept=1.0, seed=1)
    desk = make_desk(store, database_url, tmp_path, plan)
    order = desk.order("en", OrderSide.BUY, 0.1)

    seen = desk.manager.submit(order)

    assert plan.counts == {"timeout_after_accept": 1}
    assert desk.manager.stats.ambiguous == 1
    assert len(desk.requests) == 1, "an order whose outcome was unknown was sent again"
    rows = ledger_orders(desk.ledger_path, order.client_order_id)
    assert len(rows) == 1
    assert rows[0]["status"] == "FILLED"
    assert seen.status is OrderStatus.FILLED
    assert seen.exchange_order_id == str(rows[0]["id"])
    stored = store.get_order(order.client_order_id)
    assert stored is not None
    assert stored.status is OrderStatus.FILLED
    assert stored.filled == pytest.approx(rows[0]["filled"], rel=1e-12)
    assert stored.average == pytest.approx(rows[0]["average"], rel=1e-12)
    assert len(stored.fill_ids) == 1
    assert desk.updates == [(OrderStatus.FILLED, 1)], "the fill must be reported exactly once"

    # The same candle handled again (say after a restart) must not reach the venue a second time.
    again = desk.manager.submit(desk.order("en", OrderSide.BUY, 0.1))
    assert again.status is OrderStatus.FILLED
    assert desk.manager.stats.replayed == 1
    assert len(desk.requests) == 1
    assert len(ledger_orders(desk.ledger_path, order.client_order_id)) == 1
    assert_orders_agree(desk.audit())


def test_stop_order_whose_response_is_lost_is_found_resting(
    store: SqlTradingStore, database_url: str, tmp_path: Path
) -> None:
    plan = FaultPlan(timeout_after_accept=1.0, seed=2)
    desk = make_desk(store, database_url, tmp_path, plan)
    entry = desk.manager.submit(desk.order("en", OrderSide.BUY, 0.1))
    assert entry.status is OrderStatus.FILLED
    stop = desk.order(
        "sl", OrderSide.SELL, entry.filled, type=OrderType.STOP, intent=OrderIntent.STOP, stop_price=19_000.0
    )

    seen = desk.manager.submit(stop)

    assert plan.counts == {"timeout_after_accept": 2}
    assert seen.status is OrderStatus.OPEN
    assert stop.client_order_id in desk.manager.live
    rows = ledger_orders(desk.ledger_path, stop.client_order_id)
    assert [(r["type"], r["status"], r["stop_price"]) for r in rows] == [("stop", "OPEN", 19_000.0)]
    assert [r.client_order_id for r in desk.exchange.fetch_open_orders()] == [stop.client_order_id]
    assert [r.client_order_id for r in desk.requests] == [entry.client_order_id, stop.client_order_id]

    # The stop triggers on the next candle; the update reaches the order once, whatever asks twice.
    desk.venue.on_candle(PAIR, T0, T0 + MINUTE, (20_000.0, 20_050.0, 18_900.0, 19_000.0), 19_000.0)
    desk.manager.sync()
    desk.manager.sync([seen])
    stored = store.get_order(stop.client_order_id)
    assert stored is not None
    assert stored.status is OrderStatus.FILLED
    assert len(stored.fill_ids) == 1
    assert desk.manager.live == {}
    assert_orders_agree(desk.audit())


def _seed_with_one_429_then_success(probability: float) -> int:
    """Return a FaultPlan seed whose first placement draws a 429 and whose second does not."""
    for seed in range(1000):
        rng = random.Random(seed)
        if rng.random() < probability <= rng.random():
            return seed
    raise AssertionError("no suitable seed")  # pragma: no cover - there are plenty


def test_rate_limited_order_is_retried_with_the_same_client_order_id_once_executed(
    store: SqlTradingStore, database_url: str, tmp_path: Path
) -> None:
    plan = FaultPlan(rate_limit=0.5, seed=_seed_with_one_429_then_success(0.5))
    desk = make_desk(store, database_url, tmp_path, plan)
    order = desk.order("en", OrderSide.BUY, 0.1)

    seen = desk.manager.submit(order)

    assert plan.counts == {"rate_limit": 1}
    assert [r.client_order_id for r in desk.requests] == [order.client_order_id] * 2
    assert desk.manager.stats.ambiguous == 0
    assert desk.manager.stats.rejected == 0
    assert seen.status is OrderStatus.FILLED
    rows = ledger_orders(desk.ledger_path, order.client_order_id)
    assert len(rows) == 1, f"the retry after a 429 duplicated the order: {[dict(r) for r in rows]}"
    assert_orders_agree(desk.audit())


def test_order_rate_limited_on_every_attempt_is_rejected_and_never_reaches_the_venue(
    store: SqlTradingStore, database_url: str, tmp_path: Path
) -> None:
    plan = FaultPlan(rate_limit=1.0, seed=3)
    desk = make_desk(store, database_url, tmp_path, plan)
    order = desk.order("en", OrderSide.BUY, 0.1)

    seen = desk.manager.submit(order)

    assert seen.status is OrderStatus.REJECTED
    assert "rate limited" in seen.reason
    assert plan.counts == {"rate_limit": 4}  # the first attempt and three retries
    assert {r.client_order_id for r in desk.requests} == {order.client_order_id}
    assert ledger_orders(desk.ledger_path) == []
    stored = store.get_order(order.client_order_id)
    assert stored is not None and stored.status is OrderStatus.REJECTED
    assert_orders_agree(desk.audit())


def test_server_error_before_the_venue_acted_leaves_unknown_until_a_lookup_says_never_accepted(
    store: SqlTradingStore, database_url: str, tmp_path: Path
) -> None:
    plan = FaultPlan(server_error=1.0, seed=4)
    desk = make_desk(store, database_url, tmp_path, plan)
    order = desk.order("en", OrderSide.BUY, 0.1)

    seen = desk.manager.submit(order)

    # The 503 and every look-up failed: nothing is known, nothing may be resent.
    assert seen.status is OrderStatus.UNKNOWN
    stored = store.get_order(order.client_order_id)
    assert stored is not None and stored.status is OrderStatus.UNKNOWN
    assert len(desk.requests) == 1
    assert len(desk.audit().unresolved) == 1

    plan.server_error = 0.0  # the venue answers again
    desk.manager.sync()

    assert seen.status is OrderStatus.REJECTED
    assert "never accepted" in seen.reason
    assert len(desk.requests) == 1
    assert ledger_orders(desk.ledger_path) == []
    assert_orders_agree(desk.audit())


def test_amount_already_on_the_venue_step_is_executed_in_full(
    store: SqlTradingStore, database_url: str, tmp_path: Path
) -> None:
    """An exit sells exactly what the entry bought; nothing is rounded away to dust.

    0.29 is a multiple of the 1e-8 step, so the venue must not floor it to 0.28999999.
    """
    desk = make_desk(store, database_url, tmp_path, FaultPlan(seed=5))
    entry = desk.manager.submit(desk.order("en", OrderSide.BUY, 0.29))
    assert entry.filled == pytest.approx(0.29, abs=1e-12), "the venue floored an amount already on its step"
    exit_order = desk.manager.submit(desk.order("ex", OrderSide.SELL, entry.filled, intent=OrderIntent.EXIT))
    assert exit_order.filled == pytest.approx(entry.filled, abs=1e-12)
    assert desk.exchange.fetch_balance()["BTC"].total == pytest.approx(0.0, abs=1e-12)


# ======================================================================================= a whole fleet
TRAILING_STRATEGY = '''
"""SmaCross with a tight trailing stop: every new high replaces the stop order (cancel + place)."""

from tradefleet.strategies.sma_cross import SmaCross


class TrailingSmaCross(SmaCross):
    trailing_stop = True
    trailing_stop_positive = 0.004
    trailing_stop_positive_offset = 0.0
    trailing_only_offset_is_reached = False
'''

FLEET_TOML = """
[simulated]
synthetic_days = {days}
synthetic_seed = 11

[paper]
timeframe = "1m"

[[paper.bots]]
bot_id = "sma-btc"
strategy = "SmaCross"
pairs = ["BTC/USDT"]

[[paper.bots]]
bot_id = "rsi-eth"
strategy = "RsiMeanReversion"
pairs = ["ETH/USDT"]

[[paper.bots]]
bot_id = "bb-sol"
strategy = "BollingerBreakout"
pairs = ["SOL/USDT"]

[[paper.bots]]
bot_id = "macd-bnb"
strategy = "MacdTrend"
pairs = ["BNB/USDT"]

[[paper.bots]]
bot_id = "trail-xrp"
strategy = "TrailingSmaCross"
pairs = ["XRP/USDT"]
"""


def fleet_settings(tmp_path: Path, database_url: str, days: int) -> Settings:
    data_dir = tmp_path / "data"
    (data_dir / "strategies").mkdir(parents=True)
    (data_dir / "strategies" / "trailing_sma.py").write_text(textwrap.dedent(TRAILING_STRATEGY))
    toml = tmp_path / "tradefleet.toml"
    toml.write_text(FLEET_TOML.format(days=days))
    return load_settings(toml, overrides={"database.url": database_url, "data_dir": str(data_dir)}, env={})


def drive(fleet: Fleet, clock: SimClock, *, minutes_per_tick: int = 30) -> int:
    """Move the clock over every stored candle in ticks, as the paper loop does; return candle-steps."""
    hub = fleet.hubs[0]
    clock.set(max(clock.now_ms(), hub.start_ms))
    end = (hub.last_open_ms() or hub.start_ms) + 2 * hub.tf_ms
    steps = 0
    now = clock.now_ms()
    while now < end:
        now = min(now + minutes_per_tick * MINUTE, end)
        clock.set(now)
        steps += fleet.step(now)
        fleet.flush()
    fleet.shutdown()
    return steps


@pytest.mark.timeout(600)
def test_fleet_under_lost_responses_5xx_and_429_keeps_ledger_and_database_in_agreement(
    database_url: str, tmp_path: Path
) -> None:
    settings = fleet_settings(tmp_path, database_url, days=4)
    platform = build_platform(settings)
    clock = SimClock(0)
    # Start-up reconciliation under faults is its own test below; here every bot starts cleanly, then the
    # venue turns hostile for the whole run.
    plan = RecordingFaultPlan(seed=20240601)
    try:
        fleet = build_paper_fleet(
            platform,
            settings.paper_bot_configs(),
            name="faults",
            speed=1.0,
            sink=EventList(),
            clock=clock,
            faults=plan,
        )
        assert [b.status for b in fleet.bots] == [BotStatus.RUNNING] * 5
        plan.timeout_after_accept, plan.server_error, plan.rate_limit = 0.3, 0.05, 0.05
        steps = drive(fleet, clock)
        stats = [b.orders.stats for b in fleet.bots]
    finally:
        platform.close()

    result = audit(settings.data_dir / "sim" / "faults.sqlite", database_url)
    intents = _intents_hit(settings, database_url, plan)
    summary = (
        f"{steps} candle-steps, faults {plan.counts}, {result.db_orders} orders, "
        f"ambiguous per bot {[s.ambiguous for s in stats]}, lost responses by intent {dict(intents)}"
    )
    print(summary)  # shown with -s; the asserts below carry it too
    assert plan.counts.get("timeout_after_accept", 0) >= 100, summary
    assert plan.counts.get("server_error", 0) >= 10, summary
    assert plan.counts.get("rate_limit", 0) >= 10, summary
    assert result.db_orders >= 300, summary
    assert sum(s.ambiguous for s in stats) >= plan.counts["timeout_after_accept"], summary
    # Entries, exits and stops all lost responses, not just one kind of order.
    assert min(intents[i] for i in ("entry", "exit", "stop")) >= 10, summary
    assert result.duplicated == [], result.report()
    assert result.unresolved == [], result.report()
    assert result.ok, result.report()
    assert result.closed_trades >= 100, result.report()


def _intents_hit(settings: Settings, database_url: str, plan: RecordingFaultPlan) -> Counter[str]:
    """Return how many orders of each intent hit "accepted, response lost"."""
    store = SqlTradingStore.from_url(database_url)
    try:
        orders = {o.client_order_id: o for b in settings.paper_bot_configs() for o in store.list_orders(b.bot_id)}
    finally:
        store.close()
    return Counter(orders[c].intent.value for c in plan.lost_responses if c in orders)


def test_transient_error_during_startup_reconciliation_does_not_halt_the_bot_for_good(
    database_url: str, tmp_path: Path
) -> None:
    """A 503 while reconciling halts entries for that start only; a clean restart trades again."""
    settings = fleet_settings(tmp_path, database_url, days=1)
    configs = [c for c in settings.paper_bot_configs() if c.bot_id == "sma-btc"]

    platform = build_platform(settings)
    try:
        fleet = build_paper_fleet(
            platform, configs, name="flaky", speed=1.0, sink=EventList(), clock=SimClock(0),
            faults=FaultPlan(server_error=1.0, seed=6),
        )  # fmt: skip
        # Reconciliation could not list orders nor read balances: no entries this time, rightly.
        assert fleet.bots[0].status is BotStatus.STOPPING_ENTRIES
        fleet.shutdown()
    finally:
        platform.close()

    platform = build_platform(settings)
    try:
        fleet = build_paper_fleet(
            platform,
            configs,
            name="flaky",
            speed=1.0,
            sink=EventList(),
            clock=SimClock(0),
            faults=FaultPlan(),
        )
        bot = fleet.bots[0]
        assert platform.store.get_bot_status(bot.bot_id) is bot.status
        assert bot.status is BotStatus.RUNNING, (
            f"after a clean reconciliation the bot is still {bot.status.value!r}: the halt caused by one "
            "transient exchange error at an earlier start was persisted and read back as the user's wish"
        )
    finally:
        platform.close()


def test_exit_refused_by_the_venue_puts_the_protective_stop_back(database_url: str, tmp_path: Path) -> None:
    """The exit cancels the trade's stop first; if the venue then refuses the exit, the stop must return.

    Here the exit's placement meets a 503 before the venue acts: the order is UNKNOWN, the look-up finds
    nothing, it becomes REJECTED, and the position must not be left without a stop on the venue.
    """
    settings = fleet_settings(tmp_path, database_url, days=2)
    configs = [c for c in settings.paper_bot_configs() if c.bot_id == "sma-btc"]
    platform = build_platform(settings)
    clock = SimClock(0)
    try:
        fleet = build_paper_fleet(
            platform, configs, name="refuse", speed=1.0, sink=EventList(), clock=clock, faults=FaultPlan()
        )
        bot, venue, hub = fleet.bots[0], platform.venues["refuse"], fleet.hubs[0]
        refused: list[str] = []
        place = venue.place

        def refuse_first_exit(account: str, request: OrderRequest) -> ExchangeOrder:
            if request.type is OrderType.MARKET and request.side is OrderSide.SELL and not refused:
                refused.append(request.client_order_id)
                raise TemporaryExchangeError("simulated 503 Service Unavailable on create_order")
            return place(account, request)

        venue.place = refuse_first_exit  # type: ignore[method-assign]
        now = hub.start_ms
        end = (hub.last_open_ms() or now) + hub.tf_ms
        while not refused and now < end:
            now += hub.tf_ms
            clock.set(now)
            fleet.step(now)
        assert refused, "the bot never exited a trade; pick more days"

        exit_order = platform.store.get_order(refused[0])
        assert exit_order is not None and exit_order.status is OrderStatus.REJECTED, exit_order
        trade = next(t for t in bot.trades[exit_order.pair] if t.id == exit_order.trade_ref)
        assert trade.is_open
        resting = [o for o in venue.open_orders(bot.bot_id, None) if o.type is OrderType.STOP]
        assert [(o.amount, o.status) for o in resting] == [(trade.amount, OrderStatus.OPEN)], (
            f"trade {trade.id} is open but has no stop on the venue after its exit was refused; its orders: "
            + "; ".join(
                f"{o.intent.value} {o.client_order_id} {o.status.value}"
                for o in platform.store.list_orders(bot.bot_id)
                if o.trade_ref == trade.id
            )
        )
    finally:
        platform.close()


def test_stop_restored_at_startup_reconciliation_guards_the_very_next_candle(database_url: str, tmp_path: Path) -> None:
    """A stop put back while reconciling must meet the first candle the bot handles after the restart.

    The venue cancelled the trade's stop while TradeFleet was down; at the next start reconciliation finds
    the trade unprotected and places a new stop. The paper clock is ahead of the bots' progress at that
    moment (it runs while the process starts, and it is saved at a flush while a crash can leave progress
    behind), so the venue must not stamp the stop with that clock: candles replayed from the bots'
    progress would then never trigger it, and the position would ride through its stop.
    """
    settings = fleet_settings(tmp_path, database_url, days=2)
    configs = [c for c in settings.paper_bot_configs() if c.bot_id == "sma-btc"]
    pair = configs[0].pairs[0]
    platform = build_platform(settings)
    clock = SimClock(0)
    try:
        fleet = build_paper_fleet(
            platform, configs, name="restore", speed=1.0, sink=EventList(), clock=clock, faults=FaultPlan()
        )
        bot, venue, hub = fleet.bots[0], platform.venues["restore"], fleet.hubs[0]
        now, end = hub.start_ms, (hub.last_open_ms() or hub.start_ms) + hub.tf_ms
        while not bot.trades[pair] and now < end:
            now += hub.tf_ms
            clock.set(now)
            fleet.step(now)
        assert bot.trades[pair], "the bot never entered; pick more days"
        (stop,) = [o for o in venue.open_orders(bot.bot_id, pair) if o.type is OrderType.STOP]
        fleet.flush()
        handled = bot.progress[pair]
        venue.cancel(bot.bot_id, pair, stop.client_order_id)  # the venue drops it while we are down
    finally:
        platform.close()

    platform = build_platform(settings)
    try:
        ahead = SimClock(handled + 24 * 60 * MINUTE)  # the paper clock, a day of market ahead of the bot
        fleet = build_paper_fleet(
            platform, configs, name="restore", speed=1.0, sink=EventList(), clock=ahead, faults=FaultPlan()
        )
        bot, venue = fleet.bots[0], platform.venues["restore"]
        (trade,) = bot.trades[pair]
        (restored,) = [o for o in venue.open_orders(bot.bot_id, pair) if o.type is OrderType.STOP]
        assert restored.client_order_id != stop.client_order_id
        assert restored.stop_price == pytest.approx(trade.stop_price, rel=1e-9)
        # The next candle the bot handles opens right after its progress and falls through the stop.
        low = trade.stop_price * 0.9
        filled = venue.on_candle(
            pair, handled + MINUTE, handled + 2 * MINUTE, (trade.stop_price * 1.01, trade.stop_price * 1.02, low, low)
        )
        assert filled == 1, (
            f"the stop restored at start-up (stamped {restored.timestamp_ms}) ignored the next candle "
            f"(opening {handled + MINUTE}) that fell through it: the position is unprotected until the "
            "market reaches the clock time of the restart"
        )
    finally:
        platform.close()
