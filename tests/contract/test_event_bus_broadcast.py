"""Contract of the broadcast reads of ``core.bus.EventBus`` (``read_after``, ``last_id``) on both adapters.

Redis as in ``test_event_bus``: ``TRADEFLEET_TEST_REDIS_URL``, skipped without it unless
``TRADEFLEET_REQUIRE_SERVICES=1``; each test has its own key namespace, deleted afterwards.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from test_event_bus import SETTINGS, BusFactory, Recorder, publish_n, redis_client_or_skip

from tradefleet.adapters.bus import MemoryBus
from tradefleet.core.bus import FIRST_ID, BusError, BusSettings, EventBus, entry_id_key


@pytest.fixture(params=["memory", "redis"])
def bus_factory(request: pytest.FixtureRequest) -> Iterator[BusFactory]:
    made: list[EventBus] = []
    if request.param == "memory":

        def memory(settings: BusSettings = SETTINGS) -> EventBus:
            made.append(MemoryBus(settings))
            return made[-1]

        yield memory
        for bus in made:
            bus.close()
        return
    from tradefleet.adapters.bus.redis_streams import RedisStreamsBus

    client: Any = redis_client_or_skip()
    namespace = f"tftest:{uuid.uuid4().hex[:12]}:"

    def on_redis(settings: BusSettings = SETTINGS) -> EventBus:
        made.append(RedisStreamsBus(client, settings, namespace=namespace))
        return made[-1]

    try:
        yield on_redis
    finally:
        for key in client.scan_iter(match=namespace + "*"):
            client.delete(key)
        client.close()


@pytest.fixture
def bus(bus_factory: BusFactory) -> EventBus:
    return bus_factory()


def test_entry_id_key_orders_redis_and_memory_ids_alike() -> None:
    assert entry_id_key("0") == (0, 0)
    assert entry_id_key("7-0") < entry_id_key("7-1") < entry_id_key("8-0") < entry_id_key("10-0")
    assert entry_id_key("1700000000000-5") == (1_700_000_000_000, 5)
    for bad in ("", "-", "x-1", "1-", "1-x", "1-2-3", "٣-0", " 1-0"):
        with pytest.raises(ValueError, match="not a bus entry id"):
            entry_id_key(bad)


def test_last_id_is_first_id_on_an_empty_stream_then_the_newest_entry(bus: EventBus) -> None:
    assert bus.last_id("events") == FIRST_ID == "0"
    ids = publish_n(bus, "events", 3)
    assert bus.last_id("events") == ids[-1]
    assert bus.last_id("other") == FIRST_ID


def test_read_after_returns_entries_strictly_after_the_id_in_order(bus: EventBus) -> None:
    ids = publish_n(bus, "events", 10)
    bus.publish("events", "RiskAlert", {"n": 10}, trace_id="t-1")

    everything = bus.read_after("events", FIRST_ID)
    assert [m.payload["n"] for m in everything] == list(range(11))
    assert [m.id for m in everything[:10]] == ids
    assert (everything[-1].type, everything[-1].trace_id, everything[-1].stream) == ("RiskAlert", "t-1", "events")

    after = bus.read_after("events", ids[3])
    assert [m.payload["n"] for m in after] == list(range(4, 11))
    assert bus.read_after("events", everything[-1].id) == []
    assert [entry_id_key(m.id) for m in everything] == sorted(entry_id_key(m.id) for m in everything)


def test_read_after_pages_by_count(bus: EventBus) -> None:
    publish_n(bus, "events", 25)
    seen: list[int] = []
    cursor = FIRST_ID
    while page := bus.read_after("events", cursor, count=10):
        assert len(page) <= 10
        seen += [m.payload["n"] for m in page]
        cursor = page[-1].id
    assert seen == list(range(25))


def test_an_id_that_is_no_entry_reads_from_the_next_entry_after_it(bus: EventBus) -> None:
    first = bus.publish("events", "TaskProgress", {"n": 0})
    time.sleep(0.005)  # the next id is in a later millisecond on Redis: there are ids between the two
    later = publish_n(bus, "events", 2, start=1)
    head, seq = entry_id_key(first)
    between = f"{head}-{seq + 1}"
    assert entry_id_key(first) < entry_id_key(between) < entry_id_key(later[0])
    assert [m.id for m in bus.read_after("events", between)] == later


def test_broadcast_reads_are_independent_of_consumer_groups(bus: EventBus) -> None:
    publish_n(bus, "events", 5)
    assert len(bus.read_after("events", FIRST_ID)) == 5
    seen = Recorder()
    assert bus.consume("events", "g", "c", seen, block_ms=0) == 5  # the group still gets all of them
    assert bus.pending("events", "g") == 0
    assert len(bus.read_after("events", FIRST_ID)) == 5  # and readers still do, acknowledged or not


def test_read_after_returns_at_once_when_nothing_is_newer_and_block_is_zero(bus: EventBus) -> None:
    ids = publish_n(bus, "events", 1)
    t0 = time.perf_counter()
    assert bus.read_after("events", ids[0]) == []
    assert bus.read_after("empty", FIRST_ID) == []
    assert time.perf_counter() - t0 < 0.5


def test_a_blocked_read_wakes_up_when_an_entry_is_published(bus: EventBus) -> None:
    ids = publish_n(bus, "events", 1)
    timer = threading.Timer(0.2, lambda: bus.publish("events", "OrderUpdate", {"n": 1}))
    timer.start()
    t0 = time.perf_counter()
    try:
        got = bus.read_after("events", ids[0], block_ms=5_000)
    finally:
        timer.join()
    assert 0.1 < time.perf_counter() - t0 < 3.0
    assert [m.payload for m in got] == [{"n": 1}]


def test_a_blocked_read_gives_up_after_block_ms(bus: EventBus) -> None:
    ids = publish_n(bus, "events", 1)
    t0 = time.perf_counter()
    assert bus.read_after("events", ids[0], block_ms=200) == []
    assert 0.15 < time.perf_counter() - t0 < 2.0


def test_reading_from_first_id_starts_at_the_oldest_retained_entry(bus_factory: BusFactory) -> None:
    bus = bus_factory(BusSettings(maxlen=50))
    ids = [i for start in range(0, 1_000, 100) for i in publish_n(bus, "events", 100, start)]
    retained = bus.read_after("events", FIRST_ID, count=10_000)
    assert len(retained) == bus.length("events") < 1_000
    assert retained[-1].payload["n"] == 999
    assert [m.id for m in retained] == ids[-len(retained) :]
    assert [m.id for m in bus.read_after("events", ids[0], count=10_000)] == [m.id for m in retained]


def test_read_after_refuses_what_is_not_an_id(bus: EventBus) -> None:
    with pytest.raises(ValueError, match="not a bus entry id"):
        bus.read_after("events", "latest")


def test_a_closed_bus_refuses_broadcast_reads(bus_factory: BusFactory) -> None:
    bus = bus_factory()
    bus.close()
    with pytest.raises(BusError):
        bus.read_after("events", FIRST_ID)
    with pytest.raises(BusError):
        bus.last_id("events")
