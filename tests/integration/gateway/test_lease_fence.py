"""The lease fence: a gateway that lost a bot's lease cannot commit a new order for it (SQLite and PostgreSQL).

The order intent is committed before the exchange is called, so refusing the intent refuses the order.
"""

from __future__ import annotations

import dataclasses

import pytest
from sqlalchemy import update

from tradefleet.adapters.storage import SqlTradingStore, make_engine
from tradefleet.adapters.storage.leases import SqlLeases
from tradefleet.adapters.storage.platform_tables import bot_leases
from tradefleet.core.errors import LeaseLostError
from tradefleet.core.orders import Fill, Order, OrderIntent, OrderSide, OrderStatus, OrderType
from tradefleet.core.trades import Trade

TTL_MS = 60_000


def intent(client_order_id: str) -> Order:
    return Order(
        client_order_id=client_order_id,
        bot_id="fenced",
        pair="BTC/USDT",
        side=OrderSide.BUY,
        type=OrderType.MARKET,
        amount=0.01,
        intent=OrderIntent.ENTRY,
        created_ms=1_700_000_000_000,
    )


def expire(store: SqlTradingStore, database_url: str) -> None:
    engine = make_engine(database_url)
    try:
        with engine.begin() as conn:
            conn.execute(update(bot_leases).where(bot_leases.c.bot_id == "fenced").values(expires_ms=0))
    finally:
        engine.dispose()


def test_orders_of_a_fenced_bot_need_the_lease_they_were_claimed_with(
    store: SqlTradingStore, database_url: str
) -> None:
    engine = make_engine(database_url)
    try:
        check_fence(store, database_url, SqlLeases(engine))
    finally:
        engine.dispose()


def check_fence(store: SqlTradingStore, database_url: str, leases: SqlLeases) -> None:
    epoch = leases.claim("fenced", "gw-a", TTL_MS)
    assert epoch == 1
    store.fence("fenced", "gw-a", epoch)
    assert store.add_order(intent("tf-held")) is True

    expire(store, database_url)  # gw-a stalled past its lease...
    with pytest.raises(LeaseLostError):
        store.add_order(intent("tf-expired"))
    assert leases.claim("fenced", "gw-b", TTL_MS) == 2  # ...and gw-b took the bot over
    with pytest.raises(LeaseLostError, match="gw-a"):
        store.add_order(intent("tf-stale"))
    with pytest.raises(LeaseLostError), store.transaction():  # the caller's whole unit of work rolls back
        store.set_state("fenced.progress", "1")
        store.add_order(intent("tf-stale-2"))

    ids = {o.client_order_id for o in store.list_orders("fenced")}
    assert ids == {"tf-held"}, "no order row was committed without the lease"
    assert store.get_state("fenced.progress") is None

    # a stale gateway can neither act on the venue nor change what the new holder trades on
    held = store.get_order("tf-held")
    assert held is not None
    with pytest.raises(LeaseLostError):
        store.check_fence("fenced")
    with pytest.raises(LeaseLostError):
        store.update_order(dataclasses.replace(held, status=OrderStatus.CANCELED, reason="stale cancel"))
    fill = Fill("venue-1", "tf-held", 100.0, 0.01, 0.0, 1_700_000_060_000)
    with pytest.raises(LeaseLostError):
        store.add_fill("binance", "fenced", fill)
    trade = Trade(bot_id="fenced", pair="BTC/USDT", open_ms=1, open_rate=100.0, amount=0.01, fee_open=0.0,
                  stop_price=90.0, initial_stop=90.0, entry_order="tf-held")  # fmt: skip
    with pytest.raises(LeaseLostError):
        store.add_trade(trade)
    with pytest.raises(LeaseLostError):
        store.save_progress("fenced", "BTC/USDT", 1_700_000_000_000)
    after = store.get_order("tf-held")
    assert after is not None and after.status is OrderStatus.PENDING_SUBMIT and after.fill_ids == set()
    assert store.open_trades("fenced") == [] and store.load_progress("fenced") == {}

    # the same gateway re-claiming gets a new epoch: the old fence stays refused until it is renewed
    leases.release("fenced", "gw-b")
    epoch_c = leases.claim("fenced", "gw-a", TTL_MS)
    assert epoch_c == 3
    with pytest.raises(LeaseLostError):
        store.add_order(intent("tf-old-epoch"))
    store.fence("fenced", "gw-a", epoch_c)
    assert store.add_order(dataclasses.replace(intent("tf-new-epoch"))) is True

    store.unfence("fenced", "gw-other")  # only the holder's own fence is lifted by it
    expire(store, database_url)
    with pytest.raises(LeaseLostError):
        store.check_fence("fenced")
    store.unfence("fenced", "gw-a")  # unfenced (the API process, backtests): no lease needed
    store.check_fence("fenced")
    assert store.add_order(intent("tf-unfenced")) is True


def test_a_heartbeat_renews_only_the_leases_of_the_bots_named(store: SqlTradingStore, database_url: str) -> None:
    """A gateway renews the bots it runs; a bot it dropped (a storage error, say) is left to expire so
    that another gateway can take it over, instead of being held by a gateway that no longer runs it.

    (``store`` migrates the database.)
    """
    engine = make_engine(database_url)
    try:
        leases = SqlLeases(engine)
        assert leases.claim("runs", "gw-a", TTL_MS) == 1 and leases.claim("dropped", "gw-a", TTL_MS) == 1
        before = leases.live_leases()
        assert leases.heartbeat("gw-a", 10 * TTL_MS, ["runs"]) == {"runs": 1}
        after = leases.live_leases()
        assert after["runs"].expires_ms > before["runs"].expires_ms + TTL_MS
        assert after["dropped"].expires_ms == before["dropped"].expires_ms, "not renewed"
        assert leases.heartbeat("gw-b", TTL_MS, ["runs"]) == {}, "another gateway's lease is not renewed"
        assert leases.heartbeat("gw-a", TTL_MS, []) == {}
    finally:
        engine.dispose()
