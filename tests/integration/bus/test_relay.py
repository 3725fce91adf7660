"""The outbox relay and idempotent consumers on a real database: at-least-once in, exactly-once effects."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import structlog
from bus_fixtures import RedisSpace, redis_space_fixture  # noqa: F401  (registers the fixture)

from tradefleet.adapters.bus import MemoryBus, OutboxRelay, idempotent
from tradefleet.adapters.storage import SqlTradingStore
from tradefleet.core.bus import EVENTS_STREAM, BusMessage, BusSettings, EventBus
from tradefleet.core.errors import StorageError
from tradefleet.core.events import DomainEvent, RiskAlert, TaskProgress


@pytest.fixture(params=["memory", "redis"])
def bus(request: pytest.FixtureRequest) -> Iterator[EventBus]:
    settings = BusSettings(max_deliveries=3)
    if request.param == "memory":
        yield MemoryBus(settings)
        return
    from tradefleet.adapters.bus.redis_streams import RedisStreamsBus

    space: RedisSpace = request.getfixturevalue("redis_space")
    redis_bus = RedisStreamsBus.from_url(space.url, settings, namespace=space.namespace)
    yield redis_bus
    redis_bus.close()


def events(count: int) -> list[DomainEvent]:
    return [TaskProgress(bot_id="alpha", ts_ms=1_700_000_000_000 + i, task_id="t", progress=i) for i in range(count)]


def state_effect(store: SqlTradingStore) -> Any:
    """An effect that counts: read-modify-write of a kv counter plus a marker per event."""

    def apply(message: BusMessage) -> None:
        count = int(store.get_state("effects") or "0")
        store.set_state("effects", str(count + 1))
        store.set_state(f"seen:{message.payload['event_id']}", message.type)

    return apply


def drain(bus: EventBus, handler: Any) -> int:
    total = 0
    while (n := bus.consume(EVENTS_STREAM, "projector", "p1", handler, batch=50, block_ms=0)) > 0:
        total += n
    return total


def test_the_relay_publishes_pending_events_in_order_and_marks_them_published(
    store: SqlTradingStore, bus: EventBus
) -> None:
    batch = [*events(120), RiskAlert(bot_id="alpha", ts_ms=1, rule="max_drawdown", message="halted")]
    store.add_events(batch)
    relay = OutboxRelay(store, bus, batch=50)

    assert relay.drain() == 121
    assert store.pending_events() == []
    seen: list[BusMessage] = []
    drain(bus, seen.append)
    assert [m.payload["event_id"] for m in seen] == [e.event_id for e in batch]
    assert seen[-1].type == "RiskAlert"
    assert seen[-1].payload == batch[-1].to_dict()
    assert relay.run_once() == 0


def test_a_relay_that_crashes_before_marking_publishes_again_and_consumers_apply_once(
    store: SqlTradingStore, bus: EventBus
) -> None:
    store.add_events(events(30))

    class CrashingStore:
        """The store as the relay sees it, dying between the publish and the mark."""

        def __getattr__(self, name: str) -> Any:
            return getattr(store, name)

        def mark_published(self, event_ids: list[str]) -> None:
            raise StorageError("process killed")

    with pytest.raises(StorageError):
        OutboxRelay(CrashingStore(), bus, batch=100).run_once()
    assert len(store.pending_events()) == 30  # published, but not marked
    assert OutboxRelay(store, bus).drain() == 30  # published a second time

    handler = idempotent(store, "projector")(state_effect(store))
    assert drain(bus, handler) == 60  # every copy delivered and acknowledged
    assert store.get_state("effects") == "30"  # but applied once each
    assert bus.pending(EVENTS_STREAM, "projector") == 0


def test_a_failed_effect_rolls_back_its_processed_mark_and_succeeds_on_redelivery(
    store: SqlTradingStore, bus: EventBus
) -> None:
    store.add_events(events(3))
    OutboxRelay(store, bus).drain()
    failures = {"left": 1}
    apply = state_effect(store)

    def flaky(message: BusMessage) -> None:
        apply(message)  # the effect is written, then the handler fails: all of it must roll back
        if message.payload["progress"] == 1 and failures["left"]:
            failures["left"] -= 1
            raise RuntimeError("downstream hiccup")

    handler = idempotent(store, "projector")(flaky)
    assert drain(bus, handler) == 2
    assert store.get_state("effects") == "2"
    assert bus.claim_stale(EVENTS_STREAM, "projector", "p1", min_idle_ms=0) == 1
    assert drain(bus, handler) == 1
    assert store.get_state("effects") == "3"
    assert bus.pending(EVENTS_STREAM, "projector") == 0


def test_idempotent_consumers_in_one_batch_transaction_apply_a_duplicate_once(
    store: SqlTradingStore, bus: EventBus
) -> None:
    store.add_events(events(10))
    relay = OutboxRelay(store, bus)
    rows = [event.payload for event in store.pending_events()]
    bus.publish_many(EVENTS_STREAM, [(str(r["type"]), r) for r in rows[:4]])  # an earlier relay's partial batch
    relay.drain()

    handler = idempotent(store, "projector")(state_effect(store))
    handled = bus.consume(EVENTS_STREAM, "projector", "p1", handler, batch=100, transaction=store.transaction)

    assert handled == 14
    assert store.get_state("effects") == "10"


def test_two_consumers_names_keep_their_own_processed_marks(store: SqlTradingStore, bus: EventBus) -> None:
    store.add_events(events(5))
    OutboxRelay(store, bus).drain()
    counts = {"a": 0, "b": 0}

    def counter(name: str) -> Any:
        def apply(_message: BusMessage) -> None:
            counts[name] += 1

        return idempotent(store, name)(apply)

    bus.consume(EVENTS_STREAM, "group-a", "x", counter("a"), block_ms=0)
    bus.consume(EVENTS_STREAM, "group-b", "x", counter("b"), block_ms=0)
    assert counts == {"a": 5, "b": 5}


def test_each_event_reaches_consumers_with_the_trace_id_bound_when_it_was_added(
    store: SqlTradingStore, bus: EventBus
) -> None:
    added = events(7)
    store.add_events(added[:2])  # no trace bound: a strategy's own events
    with structlog.contextvars.bound_contextvars(trace_id="req-1"):
        store.add_events(added[2:5])
    with structlog.contextvars.bound_contextvars(trace_id="req-2"):
        store.add_events(added[5:6])
    store.add_events(added[6:])

    assert OutboxRelay(store, bus, batch=50).drain() == 7

    received: list[BusMessage] = []
    bus.consume(EVENTS_STREAM, "tracer", "t1", received.append, block_ms=0)
    assert [(m.payload["event_id"], m.trace_id) for m in received] == [
        (e.event_id, trace)
        for e, trace in zip(added, [None, None, "req-1", "req-1", "req-1", "req-2", None], strict=True)
    ]
