"""Contract of ``core.ports.TradingStore``: every adapter passes it, on every database backend."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

import pytest

from tradefleet.adapters.storage import SqlTradingStore, make_engine
from tradefleet.core.bots import BotConfig, BotStatus
from tradefleet.core.errors import StorageError
from tradefleet.core.events import BotStatusUpdate, DomainEvent, OrderUpdate, RiskAlert
from tradefleet.core.orders import Fill, Order, OrderIntent, OrderSide, OrderStatus, OrderType
from tradefleet.core.ports import EquitySnapshot, PendingEvent
from tradefleet.core.risk import KillSwitchLevel, RiskSettings
from tradefleet.core.trades import Trade

if TYPE_CHECKING:
    from tradefleet.core.ports import TradingStore

    def _implements_the_port(store: SqlTradingStore) -> TradingStore:
        return store  # mypy rejects this line if SqlTradingStore drifts from the TradingStore protocol


def bot(bot_id: str = "alpha", **changes: object) -> BotConfig:
    fields: dict[str, object] = {"bot_id": bot_id, "strategy": "SampleStrategy", "pairs": ("BTC/USDT",)}
    return BotConfig.model_validate(fields | changes)


def order(client_order_id: str, bot_id: str = "alpha", **changes: object) -> Order:
    base = Order(
        client_order_id=client_order_id,
        bot_id=bot_id,
        pair="BTC/USDT",
        side=OrderSide.BUY,
        type=OrderType.LIMIT,
        amount=0.5,
        intent=OrderIntent.ENTRY,
        created_ms=1_700_000_000_000,
        price=30_000.5,
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def fill(trade_id: str, client_order_id: str, amount: float = 0.25, price: float = 30_000.5) -> Fill:
    return Fill(
        trade_id,
        client_order_id,
        price,
        amount,
        fee=0.03,
        timestamp_ms=1_700_000_060_000,
        fee_currency="USDT",
    )


def trade(bot_id: str = "alpha", open_ms: int = 1_700_000_000_000, **changes: object) -> Trade:
    base = Trade(
        bot_id=bot_id,
        pair="BTC/USDT",
        open_ms=open_ms,
        open_rate=30_000.5,
        amount=0.5,
        fee_open=15.0,
        stop_price=27_000.0,
        initial_stop=27_000.0,
        entry_order=f"entry-{open_ms}",
        enter_tag="breakout",
        max_rate=30_100.25,
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def snapshot(ts_ms: int, equity: float, bot_id: str = "alpha") -> EquitySnapshot:
    return EquitySnapshot(
        bot_id, ts_ms, cash=equity - 100.0, equity=equity, realized=5.0, unrealized=2.5, fees_paid=1.25
    )


# ---------------------------------------------------------------------- bots
def test_saved_bot_reads_back_equal_and_starts_stopped(store: SqlTradingStore) -> None:
    risk = RiskSettings.model_validate({"max_open_trades": 2, "stake_amount": 25.0})
    config = bot(pairs=("BTC/USDT", "ETH/USDT"), strategy_params={"rsi": 14}, risk=risk)
    store.save_bot(config)

    assert store.get_bot("alpha") == config
    assert store.get_bot_status("alpha") is BotStatus.STOPPED
    assert store.get_bot("missing") is None


def test_saving_a_bot_again_replaces_its_config_but_keeps_its_status(store: SqlTradingStore) -> None:
    store.save_bot(bot(timeframe="5m"))
    store.set_bot_status("alpha", BotStatus.RUNNING, "trading")
    store.save_bot(bot(timeframe="1h"))

    stored = store.get_bot("alpha")
    assert stored is not None
    assert stored.timeframe == "1h"
    assert store.get_bot_status("alpha") is BotStatus.RUNNING


def test_list_bots_returns_all_bots_sorted_by_id(store: SqlTradingStore) -> None:
    for bot_id in ("gamma", "alpha", "beta"):
        store.save_bot(bot(bot_id))

    assert [b.bot_id for b in store.list_bots()] == ["alpha", "beta", "gamma"]


def test_deleted_bot_is_gone_with_its_progress(store: SqlTradingStore) -> None:
    store.save_bot(bot("alpha"))
    store.save_bot(bot("beta"))
    store.save_progress("alpha", "BTC/USDT", 1_000)
    store.save_progress("beta", "BTC/USDT", 2_000)

    store.delete_bot("alpha")

    assert store.get_bot("alpha") is None
    assert store.load_progress("alpha") == {}
    assert store.load_progress("beta") == {"BTC/USDT": 2_000}
    assert [b.bot_id for b in store.list_bots()] == ["beta"]


def test_status_of_an_unknown_bot_is_stopped_and_cannot_be_set(store: SqlTradingStore) -> None:
    assert store.get_bot_status("ghost") is BotStatus.STOPPED
    with pytest.raises(StorageError, match="ghost"):
        store.set_bot_status("ghost", BotStatus.RUNNING)


def test_progress_round_trips_per_pair_and_moves_forward(store: SqlTradingStore) -> None:
    store.save_progress("alpha", "BTC/USDT", 1_700_000_000_000)
    store.save_progress("alpha", "ETH/USDT", 1_700_000_300_000)
    store.save_progress("alpha", "BTC/USDT", 1_700_000_600_000)

    assert store.load_progress("alpha") == {"BTC/USDT": 1_700_000_600_000, "ETH/USDT": 1_700_000_300_000}
    assert store.load_progress("beta") == {}


# ---------------------------------------------------------------------- orders and fills
def test_order_round_trips_every_field(store: SqlTradingStore) -> None:
    original = order(
        "c-1",
        type=OrderType.STOP,
        side=OrderSide.SELL,
        intent=OrderIntent.STOP,
        price=None,
        stop_price=29_000.125,
        status=OrderStatus.PARTIALLY_FILLED,
        exchange_order_id="ex-9",
        filled=0.25,
        average=29_000.0,
        fee=0.03,
        reason="stoploss",
        trade_ref=7,
        updated_ms=1_700_000_060_000,
    )
    assert store.add_order(original)

    assert store.get_order("c-1") == original
    assert store.get_order("missing") is None


def test_add_order_is_idempotent_on_client_order_id(store: SqlTradingStore) -> None:
    assert store.add_order(order("c-1", amount=1.0)) is True
    assert store.add_order(order("c-1", amount=9.0, pair="ETH/USDT")) is False

    stored = store.get_order("c-1")
    assert stored is not None
    assert (stored.amount, stored.pair) == (1.0, "BTC/USDT")
    assert len(store.list_orders("alpha")) == 1


def test_update_order_stores_every_changed_field(store: SqlTradingStore) -> None:
    current = order("c-1")
    store.add_order(current)
    current.transition(OrderStatus.OPEN, 1_700_000_001_000)
    current.exchange_order_id = "ex-1"
    current.reason = "entry signal"
    current.trade_ref = 3
    store.update_order(current)

    assert store.get_order("c-1") == current


def test_updating_an_order_never_added_raises(store: SqlTradingStore) -> None:
    with pytest.raises(StorageError, match="c-404"):
        store.update_order(order("c-404"))


def test_fill_ids_of_an_order_come_back_from_recorded_fills(store: SqlTradingStore) -> None:
    current = order("c-1")
    store.add_order(current)
    for f in (fill("t-1", "c-1"), fill("t-2", "c-1")):
        current.apply_fill(f)
        assert store.add_fill("simulated", "alpha", f)
    store.update_order(current)

    stored = store.get_order("c-1")
    assert stored == current
    assert stored is not None
    assert stored.fill_ids == {"t-1", "t-2"}
    assert stored.status is OrderStatus.FILLED


def test_add_fill_is_idempotent_per_exchange_and_trade_id(store: SqlTradingStore) -> None:
    store.add_order(order("c-1"))
    assert store.add_fill("binance", "alpha", fill("t-1", "c-1")) is True
    assert store.add_fill("binance", "alpha", fill("t-1", "c-1", amount=0.1)) is False
    assert store.add_fill("kraken", "alpha", fill("t-1", "c-1")) is True  # trade ids are unique per venue


def test_live_orders_are_the_non_terminal_ones_of_the_bot_oldest_first(store: SqlTradingStore) -> None:
    statuses = ["PENDING_SUBMIT", "FILLED", "OPEN", "CANCELED", "UNKNOWN", "REJECTED", "PARTIALLY_FILLED"]
    for i, status in enumerate(map(OrderStatus, statuses)):
        store.add_order(order(f"c-{i}", status=status))
    store.add_order(order("other-bot", bot_id="beta"))
    store.add_fill("simulated", "alpha", fill("t-6", "c-6"))

    live = store.live_orders("alpha")

    assert [o.client_order_id for o in live] == ["c-0", "c-2", "c-4", "c-6"]
    assert live[-1].fill_ids == {"t-6"}
    assert [o.client_order_id for o in store.list_orders("alpha")] == [f"c-{i}" for i in range(7)]
    assert [o.client_order_id for o in store.list_orders("beta")] == ["other-bot"]


# ---------------------------------------------------------------------- trades
def test_trade_gets_an_id_and_round_trips(store: SqlTradingStore) -> None:
    new = trade()
    trade_id = store.add_trade(new)

    assert new.id is None
    assert store.open_trades("alpha") == [dataclasses.replace(new, id=trade_id)]
    assert store.add_trade(trade(open_ms=1_700_000_300_000)) != trade_id


def test_closing_a_trade_moves_it_from_open_to_closed(store: SqlTradingStore) -> None:
    stored = trade()
    stored.id = store.add_trade(stored)
    stored.max_rate, stored.stop_price = 31_000.0, 29_500.0
    stored.close(1_700_003_600_000, 31_000.0, 15.5, "roi", "exit-1")
    store.update_trade(stored)

    assert store.open_trades("alpha") == []
    assert store.closed_trades("alpha") == [stored]


def test_updating_a_trade_without_a_stored_id_raises(store: SqlTradingStore) -> None:
    with pytest.raises(StorageError):
        store.update_trade(trade())
    with pytest.raises(StorageError):
        store.update_trade(trade(id=12_345))


def test_closed_trades_are_in_closing_order_and_limit_keeps_the_latest(store: SqlTradingStore) -> None:
    for i, close_ms in enumerate([3_000, 1_000, 2_000, 4_000]):
        t = trade(open_ms=i)
        t.id = store.add_trade(t)
        t.close(close_ms, 31_000.0, 1.0, "exit_signal", f"x-{i}")
        store.update_trade(t)
    store.add_trade(trade(open_ms=99))  # still open

    assert [t.close_ms for t in store.closed_trades("alpha")] == [1_000, 2_000, 3_000, 4_000]
    assert [t.close_ms for t in store.closed_trades("alpha", limit=2)] == [3_000, 4_000]
    assert [t.open_ms for t in store.open_trades("alpha")] == [99]
    assert store.closed_trades("beta") == []


# ---------------------------------------------------------------------- equity
def test_equity_history_is_oldest_first_and_limit_keeps_the_latest(store: SqlTradingStore) -> None:
    store.add_equity_snapshots([snapshot(3, 103.0), snapshot(1, 101.0), snapshot(2, 102.0)])
    store.add_equity_snapshots([snapshot(1, 999.0, bot_id="beta")])
    store.add_equity_snapshots([])

    assert store.equity_history("alpha") == [snapshot(1, 101.0), snapshot(2, 102.0), snapshot(3, 103.0)]
    assert store.equity_history("alpha", limit=2) == [snapshot(2, 102.0), snapshot(3, 103.0)]
    assert store.equity_history("beta") == [snapshot(1, 999.0, bot_id="beta")]


def test_a_snapshot_taken_again_at_the_same_time_replaces_the_first(store: SqlTradingStore) -> None:
    store.add_equity_snapshots([snapshot(1, 101.0)])
    store.add_equity_snapshots([snapshot(1, 105.0)])

    assert store.equity_history("alpha") == [snapshot(1, 105.0)]


# ---------------------------------------------------------------------- kill switch
def test_kill_switch_is_off_until_set_and_keeps_who_and_why(store: SqlTradingStore) -> None:
    assert store.get_kill_switch("*") is KillSwitchLevel.NONE

    store.set_kill_switch("*", KillSwitchLevel.CANCEL_ALL, actor="admin", reason="exchange outage")
    store.set_kill_switch("alpha", KillSwitchLevel.HALT_ENTRIES, actor="risk", reason="drawdown")

    assert store.get_kill_switch("*") is KillSwitchLevel.CANCEL_ALL
    assert store.get_kill_switch("alpha") is KillSwitchLevel.HALT_ENTRIES
    assert store.get_kill_switch("beta") is KillSwitchLevel.NONE
    record = store.kill_switch_record("*")
    assert record is not None
    assert (record["level"], record["actor"], record["reason"]) == (
        KillSwitchLevel.CANCEL_ALL,
        "admin",
        "exchange outage",
    )
    assert record["updated_ms"] > 1_600_000_000_000


def test_clearing_the_kill_switch_records_who_cleared_it(store: SqlTradingStore) -> None:
    store.set_kill_switch("*", KillSwitchLevel.FLATTEN, actor="risk", reason="max drawdown")
    store.set_kill_switch("*", KillSwitchLevel.NONE, actor="admin", reason="reviewed")

    assert store.get_kill_switch("*") is KillSwitchLevel.NONE
    record = store.kill_switch_record("*")
    assert record is not None
    assert (record["actor"], record["reason"]) == ("admin", "reviewed")


# ---------------------------------------------------------------------- outbox and idempotent consumers
def test_outbox_publish_cycle_returns_events_in_order_until_published(store: SqlTradingStore) -> None:
    events = [
        OrderUpdate(
            bot_id="alpha",
            ts_ms=5,
            client_order_id="c-1",
            pair="BTC/USDT",
            side="buy",
            status="OPEN",
            amount=0.5,
            filled=0.0,
            average=0.0,
            intent="entry",
        ),
        BotStatusUpdate(bot_id="alpha", ts_ms=5, status="running"),
        RiskAlert(bot_id="alpha", ts_ms=4, rule="cooldown", message="pair cooling down", pair="BTC/USDT"),
    ]
    store.add_events(events)
    store.add_events(events[:1])  # a replay queues nothing twice
    store.add_events([])

    pending = store.pending_events()
    assert [p.payload for p in pending] == [e.to_dict() for e in events]
    assert store.pending_events(limit=2) == pending[:2]

    store.mark_published([events[0].event_id, events[2].event_id])
    assert store.pending_events() == [PendingEvent(events[1].to_dict())]
    store.mark_published([events[1].event_id, "never-queued"])
    store.mark_published([])
    assert store.pending_events() == []


def test_mark_published_handles_more_ids_than_one_statement_takes(store: SqlTradingStore) -> None:
    events: list[DomainEvent] = [BotStatusUpdate(bot_id="alpha", ts_ms=i, status="running") for i in range(1_201)]
    store.add_events(events)

    store.mark_published([e.event_id for e in events[:1_200]])

    assert store.pending_events(limit=10) == [PendingEvent(events[-1].to_dict())]


def test_mark_processed_is_true_once_per_consumer_and_event(store: SqlTradingStore) -> None:
    assert store.mark_processed("notifier", "e-1") is True
    assert store.mark_processed("notifier", "e-1") is False
    assert store.mark_processed("ledger", "e-1") is True
    assert store.mark_processed("notifier", "e-2") is True


# ---------------------------------------------------------------------- key/value
def test_state_round_trips_and_overwrites(store: SqlTradingStore) -> None:
    assert store.get_state("paper.clock") is None
    store.set_state("paper.clock", "1700000000000")
    store.set_state("paper.clock", "1700000060000")
    store.set_state("other", "")

    assert store.get_state("paper.clock") == "1700000060000"
    assert store.get_state("other") == ""


# ---------------------------------------------------------------------- transactions
def test_transaction_commits_everything_at_the_end(store: SqlTradingStore, database_url: str) -> None:
    observer = SqlTradingStore.from_url(database_url)
    try:
        with store.transaction():
            store.add_order(order("c-1"))
            store.add_fill("simulated", "alpha", fill("t-1", "c-1"))
            store.set_state("k", "v")
            assert store.get_order("c-1") is not None  # the writer sees its own work
            assert observer.get_order("c-1") is None  # nobody else does yet
        assert observer.get_order("c-1") is not None
        assert observer.get_state("k") == "v"
    finally:
        observer.close()


def test_exception_in_transaction_leaves_nothing_half_written(store: SqlTradingStore) -> None:
    store.set_state("k", "before")
    with pytest.raises(RuntimeError, match="crash between writes"), store.transaction():
        store.add_order(order("c-1"))
        store.add_fill("simulated", "alpha", fill("t-1", "c-1"))
        store.add_trade(trade())
        store.set_state("k", "after")
        store.add_events([BotStatusUpdate(bot_id="alpha", ts_ms=1, status="running")])
        store.mark_processed("c", "e-1")
        raise RuntimeError("crash between writes")

    assert store.get_order("c-1") is None
    assert store.open_trades("alpha") == []
    assert store.get_state("k") == "before"
    assert store.pending_events() == []
    assert store.mark_processed("c", "e-1") is True
    assert store.add_fill("simulated", "alpha", fill("t-1", "c-1")) is True


def test_duplicate_inside_a_transaction_does_not_spoil_it(store: SqlTradingStore) -> None:
    store.add_order(order("c-1"))
    with store.transaction():
        assert store.add_order(order("c-1")) is False
        assert store.mark_processed("c", "e-1") is True
        assert store.mark_processed("c", "e-1") is False
        assert store.add_order(order("c-2")) is True

    assert [o.client_order_id for o in store.list_orders("alpha")] == ["c-1", "c-2"]


def test_nested_transaction_joins_the_outer_one(store: SqlTradingStore) -> None:
    with pytest.raises(RuntimeError), store.transaction():
        store.add_order(order("c-1"))
        with store.transaction():
            store.add_order(order("c-2"))
        assert store.get_order("c-2") is not None
        raise RuntimeError("outer fails after the inner block finished")

    assert store.list_orders("alpha") == []

    with store.transaction(), store.transaction():
        store.add_order(order("c-3"))
    assert [o.client_order_id for o in store.list_orders("alpha")] == ["c-3"]


def test_failed_inner_block_dooms_the_outer_transaction_even_if_caught(store: SqlTradingStore) -> None:
    with pytest.raises(StorageError, match="rolled back"), store.transaction():
        store.add_order(order("c-1"))
        try:
            with store.transaction():
                store.add_order(order("c-2"))
                raise ValueError("inner failure")
        except ValueError:
            pass

    assert store.list_orders("alpha") == []


def test_failed_store_call_in_a_transaction_refuses_later_calls(store: SqlTradingStore) -> None:
    with pytest.raises(StorageError, match="rolled back"), store.transaction():
        store.add_order(order("c-1"))
        with pytest.raises(StorageError):
            store.update_order(order("c-404"))
        with pytest.raises(StorageError, match="earlier call"):
            store.add_order(order("c-2"))

    assert store.list_orders("alpha") == []
    assert store.add_order(order("c-3")) is True  # the store is usable again afterwards


# ---------------------------------------------------------------------- durability
def test_everything_survives_reopening_the_database(store: SqlTradingStore, database_url: str) -> None:
    store.save_bot(bot())
    store.set_bot_status("alpha", BotStatus.RUNNING, "trading")
    store.save_progress("alpha", "BTC/USDT", 42)
    placed = order("c-1")
    store.add_order(placed)
    first = fill("t-1", "c-1")
    placed.apply_fill(first)
    store.add_fill("simulated", "alpha", first)
    store.update_order(placed)
    open_trade = trade()
    open_trade.id = store.add_trade(open_trade)
    store.add_equity_snapshots([snapshot(1, 101.0)])
    store.set_kill_switch("*", KillSwitchLevel.HALT_ENTRIES, "admin", "maintenance")
    store.add_events([BotStatusUpdate(bot_id="alpha", ts_ms=1, status="running")])
    store.mark_processed("c", "e-1")
    store.set_state("k", "v")
    store.close()

    engine = make_engine(database_url)
    reopened = SqlTradingStore(engine)
    try:
        assert reopened.get_bot("alpha") == bot()
        assert reopened.get_bot_status("alpha") is BotStatus.RUNNING
        assert reopened.load_progress("alpha") == {"BTC/USDT": 42}
        assert reopened.get_order("c-1") == placed
        assert reopened.add_fill("simulated", "alpha", first) is False
        assert reopened.open_trades("alpha") == [open_trade]
        assert reopened.equity_history("alpha") == [snapshot(1, 101.0)]
        assert reopened.get_kill_switch("*") is KillSwitchLevel.HALT_ENTRIES
        assert len(reopened.pending_events()) == 1
        assert reopened.mark_processed("c", "e-1") is False
        assert reopened.get_state("k") == "v"
    finally:
        reopened.close()
        engine.dispose()


def test_closed_store_refuses_calls(store: SqlTradingStore) -> None:
    store.close()
    with pytest.raises(StorageError, match="closed"):
        store.get_state("k")
