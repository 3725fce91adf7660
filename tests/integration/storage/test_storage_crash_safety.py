"""A committed write survives the writer being killed with SIGKILL mid-stream."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import pytest

from tradefleet.adapters.storage import SqlTradingStore, upgrade

WRITER = textwrap.dedent(
    """
    import sys
    from tradefleet.adapters.storage import SqlTradingStore
    from tradefleet.core.orders import Fill, Order, OrderIntent, OrderSide, OrderType

    store = SqlTradingStore.from_url(sys.argv[1])
    i = 0
    while True:
        coid = f"c-{i}"
        with store.transaction():
            store.add_order(Order(coid, "alpha", "BTC/USDT", OrderSide.BUY, OrderType.MARKET, 1.0,
                                  OrderIntent.ENTRY, i))
            store.add_fill("simulated", "alpha", Fill(f"t-{i}", coid, 100.0, 1.0, 0.1, i))
        print(coid, flush=True)  # acknowledged only after the commit returned
        i += 1
    """
)


@pytest.mark.slow
def test_acknowledged_orders_survive_kill_9_of_the_writer(database_url: str) -> None:
    upgrade(database_url)
    child = subprocess.Popen(
        [sys.executable, "-c", WRITER, database_url],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONWARNINGS": "error"},
    )
    acknowledged: list[str] = []
    try:
        assert child.stdout is not None
        while len(acknowledged) < 200:
            line = child.stdout.readline()
            assert line, f"writer exited early with {child.wait()}"
            acknowledged.append(line.strip())
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
        if child.stdout is not None:
            child.stdout.close()

    store = SqlTradingStore.from_url(database_url)
    try:
        stored = {o.client_order_id: o for o in store.list_orders("alpha")}
        assert set(acknowledged) <= set(stored)
        # an order is never stored without its fill: each transaction is all or nothing
        assert all(o.fill_ids == {o.client_order_id.replace("c-", "t-")} for o in stored.values())
        if database_url.startswith("sqlite"):
            conn = store._connection()
            assert conn.exec_driver_sql("PRAGMA integrity_check").scalar() == "ok"
            conn.rollback()
    finally:
        store.close()
