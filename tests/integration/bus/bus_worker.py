"""A consumer process of the exactly-once test: Redis Streams in, one trade row per event out.

    python bus_worker.py DB_URL REDIS_URL NAMESPACE CONSUMER [--self-kill P] [--seed S]

Each batch runs in one store transaction (processed-event rows and trades together), acknowledged after the
commit. With ``--self-kill P`` the process SIGKILLs itself right after a commit with probability P: effects
committed, acknowledgement never sent, the worst moment to die. SIGTERM stops it cleanly; it then prints one
JSON line of counters.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

from tradefleet.adapters.bus.redis_streams import RedisStreamsBus
from tradefleet.adapters.storage import SqlTradingStore
from tradefleet.core.bus import BusMessage, BusSettings
from tradefleet.core.trades import Trade

STREAM, GROUP, EFFECT = "events", "effects", "effects"
SETTINGS = BusSettings(maxlen=250_000, max_deliveries=20)


def main() -> int:
    parser = argparse.ArgumentParser()
    for name in ("db", "redis", "namespace", "consumer"):
        parser.add_argument(name)
    parser.add_argument("--self-kill", type=float, default=0.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--min-idle-ms", type=int, default=1_000)
    parser.add_argument("--batch", type=int, default=250)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    store = SqlTradingStore.from_url(args.db)
    bus = RedisStreamsBus.from_url(args.redis, SETTINGS, namespace=args.namespace)
    counters = {"applied": 0, "duplicates": 0, "claimed": 0}
    stopping: list[bool] = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(True))

    def apply(message: BusMessage) -> None:
        event_id = message.payload["event_id"]
        if not store.mark_processed(EFFECT, event_id):  # idempotent(store, EFFECT), counted
            counters["duplicates"] += 1
            return
        trade = Trade(
            bot_id="bus-test", pair="BTC/USDT", open_ms=int(message.payload["ts_ms"]), open_rate=1.0,
            amount=1.0, fee_open=0.0, stop_price=0.0, initial_stop=0.0, entry_order=event_id,
        )  # fmt: skip
        store.add_trade(trade)
        counters["applied"] += 1

    @contextmanager
    def transaction() -> Iterator[None]:
        with store.transaction():
            yield
        if args.self_kill and rng.random() < args.self_kill:
            os.kill(os.getpid(), signal.SIGKILL)

    print(json.dumps({"ready": args.consumer}), flush=True)
    last_claim = 0.0
    while not stopping:
        if time.monotonic() - last_claim > 0.3:
            counters["claimed"] += bus.claim_stale(STREAM, GROUP, args.consumer, args.min_idle_ms, batch=1_000)
            last_claim = time.monotonic()
        bus.consume(STREAM, GROUP, args.consumer, apply, batch=args.batch, block_ms=100, transaction=transaction)
    bus.close()
    store.close()
    print(json.dumps(counters), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
