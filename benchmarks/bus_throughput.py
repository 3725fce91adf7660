"""Event bus throughput: publish → consume → ack, in-process and on Redis Streams, next to raw redis-py.

Every path moves the same messages (a ``TradeExecuted`` event as the outbox stores it, ~300 bytes of JSON):

* ``memory bus``: ``MemoryBus.publish_many`` in chunks, then ``consume`` until drained (no-op handler);
* ``redis bus``: the same through ``RedisStreamsBus`` (pipelined ``XADD ~MAXLEN``, ``XREADGROUP``,
  one ``XACK`` per batch, JSON both ways);
* ``raw XADD pipelined``: redis-py alone, ``XADD`` of the pre-serialised fields in pipelines of the same
  chunk size: the ceiling of publishing alone, measured in the same run (goal: the Redis bus's end-to-end
  rate ≥ 50 % of it);
* ``raw XADD+XREADGROUP+XACK``: redis-py alone doing the whole round trip without JSON or message objects,
  to show what the bus adds on top of Redis itself.

Redis comes from ``REDIS_URL`` or ``TRADEFLEET_TEST_REDIS_URL`` (default ``redis://127.0.0.1:6379/0``); the
Redis rows are skipped when it does not answer. Keys live under a unique namespace, deleted at the end.

    .venv/bin/python benchmarks/bus_throughput.py [--quick] [--events N]
"""

from __future__ import annotations

import argparse
import json
import os
import time
import uuid
from collections.abc import Callable
from typing import Any

import _common as c

from tradefleet.adapters.bus import MemoryBus
from tradefleet.core.bus import BusMessage, BusSettings, EventBus
from tradefleet.core.events import TradeExecuted

GOAL_RATIO = 0.5
CHUNK = 1_000
GROUP = "bench"


def sample_payload() -> dict[str, Any]:
    event = TradeExecuted(
        bot_id="bot-001", ts_ms=1_700_000_000_000, trade_id=42, pair="BTC/USDT", side="buy", amount=0.0123,
        price=43_210.5, fee=0.53, action="entry", reason="enter_long",
    )  # fmt: skip
    return event.to_dict()


def bus_round_trip(bus: EventBus, stream: str, n: int) -> tuple[float, float, float]:
    """Publish ``n`` messages in chunks, then drain them; return (publish s, consume s, total s)."""
    payload = sample_payload()
    handled = 0

    def handler(_message: BusMessage) -> None:
        nonlocal handled
        handled += 1

    bus.consume(stream, GROUP, "c1", handler, block_ms=0)  # creates the group outside the timing
    t0 = time.perf_counter()
    for start in range(0, n, CHUNK):
        bus.publish_many(stream, [("TradeExecuted", payload)] * min(CHUNK, n - start))
    t1 = time.perf_counter()
    while handled < n:
        if bus.consume(stream, GROUP, "c1", handler, batch=CHUNK, block_ms=0) == 0:
            raise RuntimeError(f"bus drained after {handled} of {n} messages")
    t2 = time.perf_counter()
    assert bus.pending(stream, GROUP) == 0
    return t1 - t0, t2 - t1, t2 - t0


def raw_xadd(client: Any, key: str, n: int) -> float:
    fields = {"type": "TradeExecuted", "payload": json.dumps(sample_payload(), separators=(",", ":"))}
    t0 = time.perf_counter()
    for start in range(0, n, CHUNK):
        pipe = client.pipeline(transaction=False)
        for _ in range(min(CHUNK, n - start)):
            pipe.xadd(key, fields, maxlen=10 * n, approximate=True)
        pipe.execute()
    return time.perf_counter() - t0


def raw_round_trip(client: Any, key: str, n: int) -> float:
    client.xgroup_create(key, GROUP, id="0", mkstream=True)
    t0 = time.perf_counter()
    raw_xadd(client, key, n)
    read = 0
    while read < n:
        [[_key, entries]] = client.xreadgroup(GROUP, "c1", {key: ">"}, count=CHUNK)
        client.xack(key, GROUP, *(entry_id for entry_id, _fields in entries))
        read += len(entries)
    return time.perf_counter() - t0


def redis_client() -> Any:
    url = os.environ.get("REDIS_URL") or os.environ.get("TRADEFLEET_TEST_REDIS_URL") or "redis://127.0.0.1:6379/0"
    try:
        import redis
    except ImportError:
        print("redis-py is not installed: Redis rows skipped (pip install 'redis>=5')")
        return None
    client = redis.Redis.from_url(url, decode_responses=True, socket_connect_timeout=2)
    try:
        client.ping()
    except redis.RedisError as exc:
        print(f"Redis at {url} does not answer ({exc}): Redis rows skipped")
        return None
    return client


def best_of(runs: int, measure: Callable[[int], tuple[float, ...]]) -> tuple[float, ...]:
    """Run ``measure(i)`` ``runs`` times and keep the run with the shortest total (last element)."""
    return min((measure(i) for i in range(runs)), key=lambda r: r[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--events", type=int, default=None)
    args = parser.parse_args()
    n = args.events or (20_000 if args.quick else 200_000)
    runs = 1 if args.quick else 3
    c.header(f"Event bus throughput: {n:,} events, chunks of {CHUNK:,}, best of {runs}", args.quick)
    settings = BusSettings(maxlen=10 * n)
    rows: list[list[Any]] = []

    def memory(i: int) -> tuple[float, ...]:
        bus = MemoryBus(settings)
        try:
            return bus_round_trip(bus, f"mem{i}", n)
        finally:
            bus.close()

    pub, con, total = best_of(runs, memory)
    rows.append(["memory bus", n, pub, con, total, n / total])

    client = redis_client()
    raw_rate = None
    if client is not None:
        from tradefleet.adapters.bus.redis_streams import RedisStreamsBus

        namespace = f"tfbench:{uuid.uuid4().hex[:8]}:"
        try:
            (raw_total,) = best_of(runs, lambda i: (raw_xadd(client, f"{namespace}raw{i}", n),))
            raw_rate = n / raw_total
            rows.append(["raw XADD pipelined (redis-py)", n, raw_total, "-", raw_total, raw_rate])
            (raw_rt,) = best_of(runs, lambda i: (raw_round_trip(client, f"{namespace}rawrt{i}", n),))
            rows.append(["raw XADD+XREADGROUP+XACK (redis-py)", n, "-", "-", raw_rt, n / raw_rt])

            def on_redis(i: int) -> tuple[float, ...]:
                bus = RedisStreamsBus(client, settings, namespace=namespace)
                return bus_round_trip(bus, f"bus{i}", n)

            pub, con, total = best_of(runs, on_redis)
            rows.append(["redis bus (publish → consume → ack)", n, pub, con, total, n / total])
        finally:
            for key in client.scan_iter(match=namespace + "*"):
                client.delete(key)
            client.close()

    table = [[*row, f"{row[-1] / raw_rate:.0%}" if raw_rate else "-"] for row in rows]
    c.print_table(
        ["path", "events", "publish s", "consume+ack s", "total s", "events/s", "of raw XADD"],
        table,
        title="Throughput (higher is better)",
    )
    if raw_rate is not None:
        ratio = rows[-1][-1] / raw_rate
        verdict = "met" if ratio >= GOAL_RATIO else "MISSED"
        print(f"\nGoal: Redis bus end to end ≥ {GOAL_RATIO:.0%} of raw pipelined XADD: {ratio:.0%} ({verdict})")
        print(f"Redis bus vs redis-py's own XADD+XREADGROUP+XACK round trip: {rows[-1][-1] / rows[-2][-1]:.0%}")


if __name__ == "__main__":
    main()
