"""Contract of ``core.bus.EventBus``: the in-process bus and Redis Streams behave the same.

Redis tests need ``TRADEFLEET_TEST_REDIS_URL`` (e.g. ``redis://127.0.0.1:6379/0``); without it or the server
they are skipped, unless ``TRADEFLEET_REQUIRE_SERVICES=1`` turns the skip into a failure. Each test uses its
own key namespace on Redis and deletes its keys afterwards.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, NoReturn

import pytest

from tradefleet.adapters.bus import MemoryBus, make_bus
from tradefleet.core import events as domain_events
from tradefleet.core.bus import BusError, BusMessage, BusSettings, CommandType, EventType, dead_letter_stream

if TYPE_CHECKING:
    from tradefleet.core.bus import EventBus

    def _memory_implements_the_port(bus: MemoryBus) -> EventBus:
        return bus  # mypy rejects this line if an adapter drifts from the EventBus protocol

    from tradefleet.adapters.bus.redis_streams import RedisStreamsBus

    def _redis_implements_the_port(bus: RedisStreamsBus) -> EventBus:
        return bus


REDIS_URL_VAR = "TRADEFLEET_TEST_REDIS_URL"
SETTINGS = BusSettings(maxlen=10_000, max_deliveries=3)
BusFactory = Callable[..., "EventBus"]


def skip_or_fail(reason: str) -> NoReturn:
    """Skip, or fail when ``TRADEFLEET_REQUIRE_SERVICES=1`` (as ``tests/conftest.py`` does for PostgreSQL)."""
    if os.environ.get("TRADEFLEET_REQUIRE_SERVICES") == "1":
        pytest.fail(f"{reason} (TRADEFLEET_REQUIRE_SERVICES=1)")
    pytest.skip(reason)


class ConsumerDied(BaseException):
    """Stands for a consumer process killed in the middle of a handler."""


def redis_client_or_skip() -> object:
    """Return a Redis client on ``TRADEFLEET_TEST_REDIS_URL`` that answered PING, or skip (or fail)."""
    url = os.environ.get(REDIS_URL_VAR, "")
    if not url:
        skip_or_fail(f"Redis tests need {REDIS_URL_VAR}, e.g. redis://127.0.0.1:6379/0")
    redis = pytest.importorskip("redis")
    client = redis.Redis.from_url(url, decode_responses=True, socket_connect_timeout=2)
    try:
        client.ping()
    except redis.RedisError as exc:
        client.close()
        skip_or_fail(f"Redis at {url} does not answer: {exc}")
    return client


@pytest.fixture(params=["memory", "redis"])
def bus_factory(request: pytest.FixtureRequest) -> Iterator[BusFactory]:
    """Make buses of one adapter (``settings`` optional); Redis ones share a namespace deleted afterwards."""
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

    client = redis_client_or_skip()
    namespace = f"tftest:{uuid.uuid4().hex[:12]}:"

    def on_redis(settings: BusSettings = SETTINGS) -> EventBus:
        made.append(RedisStreamsBus(client, settings, namespace=namespace))  # type: ignore[arg-type]
        return made[-1]

    try:
        yield on_redis
    finally:
        for key in client.scan_iter(match=namespace + "*"):  # type: ignore[attr-defined]
            client.delete(key)  # type: ignore[attr-defined]
        client.close()  # type: ignore[attr-defined]


@pytest.fixture
def bus(bus_factory: BusFactory) -> EventBus:
    return bus_factory()


class Recorder:
    """Handler that records what it was given and can be told to fail on some payloads."""

    def __init__(self, fail_on: Callable[[BusMessage], BaseException | None] = lambda _m: None) -> None:
        self.seen: list[BusMessage] = []
        self.fail_on = fail_on

    def __call__(self, message: BusMessage) -> None:
        self.seen.append(message)
        error = self.fail_on(message)
        if error is not None:
            raise error

    @property
    def ns(self) -> list[int]:
        return [m.payload["n"] for m in self.seen]


def publish_n(bus: EventBus, stream: str, count: int, start: int = 0) -> list[str]:
    return bus.publish_many(stream, [("TaskProgress", {"n": i}) for i in range(start, start + count)])


# ---------------------------------------------------------------------- delivery


def test_a_published_message_reaches_a_consumer_with_its_type_payload_and_trace_id(bus: EventBus) -> None:
    payload = {"event_id": "e-1", "bot_id": "alpha", "price": 30_000.5, "tags": ["a", "b"], "none": None}
    message_id = bus.publish("events", "TradeExecuted", payload, trace_id="req-42")
    seen = Recorder()

    assert bus.consume("events", "ws", "c1", seen, block_ms=0) == 1

    [message] = seen.seen
    assert (message.id, message.stream, message.type, message.payload) == (
        message_id,
        "events",
        "TradeExecuted",
        payload,
    )
    assert message.trace_id == "req-42"
    assert message.attempts == 1
    assert message.dedupe_key == "e-1"
    assert bus.pending("events", "ws") == 0


def test_a_message_without_trace_id_has_none(bus: EventBus) -> None:
    bus.publish("commands", CommandType.STOP_BOT, {"bot_id": "alpha"})
    seen = Recorder()
    bus.consume("commands", "gateway", "g1", seen, block_ms=0)
    assert seen.seen[0].trace_id is None
    assert seen.seen[0].type == "StopBot"
    assert seen.seen[0].dedupe_key == seen.seen[0].id  # no event or command id: the entry id


def test_publish_many_keeps_order_and_returns_increasing_ids(bus: EventBus) -> None:
    ids = publish_n(bus, "events", 250)
    seen = Recorder()
    while bus.consume("events", "g", "c", seen, batch=100, block_ms=0):
        pass
    assert seen.ns == list(range(250))
    assert [m.id for m in seen.seen] == ids
    assert ids == sorted(ids, key=lambda i: tuple(int(p) for p in i.split("-")))
    assert bus.length("events") == 250


def test_consume_delivers_at_most_batch_messages(bus: EventBus) -> None:
    publish_n(bus, "events", 10)
    seen = Recorder()
    assert bus.consume("events", "g", "c", seen, batch=4, block_ms=0) == 4
    assert seen.ns == [0, 1, 2, 3]


def test_a_group_created_late_still_sees_earlier_messages(bus: EventBus) -> None:
    publish_n(bus, "events", 3)
    seen = Recorder()
    bus.consume("events", "late", "c", seen, block_ms=0)
    assert seen.ns == [0, 1, 2]


def test_every_group_gets_every_message_and_consumers_of_a_group_share_them(bus: EventBus) -> None:
    publish_n(bus, "events", 20)
    a, b, other = Recorder(), Recorder(), Recorder()

    bus.consume("events", "workers", "a", a, batch=8, block_ms=0)
    bus.consume("events", "workers", "b", b, batch=100, block_ms=0)
    bus.consume("events", "audit", "x", other, batch=100, block_ms=0)

    assert a.ns == list(range(8))
    assert b.ns == list(range(8, 20))
    assert other.ns == list(range(20))


def test_consume_returns_zero_at_once_when_nothing_is_there_and_block_is_zero(bus: EventBus) -> None:
    t0 = time.perf_counter()
    assert bus.consume("events", "g", "c", Recorder(), block_ms=0) == 0
    assert time.perf_counter() - t0 < 0.5


def test_a_blocked_consumer_wakes_up_when_a_message_is_published(bus: EventBus) -> None:
    bus.consume("events", "g", "c", Recorder(), block_ms=0)  # creates the group before the publish
    timer = threading.Timer(0.2, lambda: bus.publish("events", "RiskAlert", {"n": 1}))
    timer.start()
    seen = Recorder()
    t0 = time.perf_counter()
    try:
        assert bus.consume("events", "g", "c", seen, block_ms=5_000) == 1
    finally:
        timer.join()
    assert 0.1 < time.perf_counter() - t0 < 3.0
    assert seen.ns == [1]


def test_a_blocked_consumer_gives_up_after_block_ms(bus: EventBus) -> None:
    t0 = time.perf_counter()
    assert bus.consume("events", "g", "c", Recorder(), block_ms=200) == 0
    assert 0.15 < time.perf_counter() - t0 < 2.0


# ---------------------------------------------------------------------- failures and recovery


def test_a_failed_handler_leaves_the_message_pending_and_acks_the_others(bus: EventBus) -> None:
    publish_n(bus, "events", 3)
    seen = Recorder(lambda m: RuntimeError("boom") if m.payload["n"] == 1 else None)

    assert bus.consume("events", "g", "c1", seen, block_ms=0) == 2

    assert seen.ns == [0, 1, 2]
    assert bus.pending("events", "g") == 1
    assert bus.dead_letters("events") == []


def test_a_pending_message_is_redelivered_to_a_claimer_with_its_attempt_counted(bus: EventBus) -> None:
    publish_n(bus, "events", 2)
    bus.consume("events", "g", "c1", Recorder(lambda m: RuntimeError("boom") if m.payload["n"] == 0 else None))

    assert bus.claim_stale("events", "g", "c2", min_idle_ms=0) == 1
    retry = Recorder()
    assert bus.consume("events", "g", "c2", retry, block_ms=0) == 1

    [message] = retry.seen
    assert message.payload == {"n": 0}
    assert message.attempts == 2
    assert bus.pending("events", "g") == 0


def test_claim_stale_leaves_messages_that_are_not_idle_long_enough(bus: EventBus) -> None:
    publish_n(bus, "events", 2)
    bus.consume("events", "g", "c1", Recorder(lambda _m: RuntimeError("boom")))
    assert bus.claim_stale("events", "g", "c2", min_idle_ms=60_000) == 0
    assert bus.pending("events", "g") == 2

    time.sleep(0.12)
    assert bus.claim_stale("events", "g", "c2", min_idle_ms=100) == 2


def test_messages_of_a_consumer_that_died_mid_batch_are_taken_over_by_another(bus: EventBus) -> None:
    publish_n(bus, "events", 5)
    dying = Recorder(lambda m: ConsumerDied() if m.payload["n"] == 2 else None)

    with pytest.raises(ConsumerDied):
        bus.consume("events", "g", "doomed", dying, block_ms=0)

    assert dying.ns == [0, 1, 2]
    assert bus.pending("events", "g") == 3  # 0 and 1 were acknowledged before it died; 2, 3, 4 were not
    survivor = Recorder()
    assert bus.claim_stale("events", "g", "survivor", min_idle_ms=0) == 3
    assert bus.consume("events", "g", "survivor", survivor, block_ms=0) == 3
    assert survivor.ns == [2, 3, 4]
    assert [m.attempts for m in survivor.seen] == [2, 2, 2]
    assert bus.pending("events", "g") == 0


def test_claimed_messages_come_before_new_ones(bus: EventBus) -> None:
    publish_n(bus, "events", 2)
    with pytest.raises(ConsumerDied):
        bus.consume("events", "g", "c1", Recorder(lambda _m: ConsumerDied()), batch=1, block_ms=0)
    bus.claim_stale("events", "g", "c2", min_idle_ms=0)
    seen = Recorder()
    bus.consume("events", "g", "c2", seen, block_ms=0)
    assert seen.ns == [0, 1]
    assert [m.attempts for m in seen.seen] == [2, 1]


def test_a_message_goes_to_the_dead_letters_after_max_deliveries_failed(bus: EventBus) -> None:
    bus.publish("events", "ModelDeployed", {"event_id": "e-9", "model": "m"}, trace_id="t-9")
    always = Recorder(lambda _m: ValueError("poison"))

    bus.consume("events", "g", "c1", always, block_ms=0)
    for _ in range(SETTINGS.max_deliveries - 1):
        assert bus.claim_stale("events", "g", "c1", min_idle_ms=0) == 1
        bus.consume("events", "g", "c1", always, block_ms=0)

    assert [m.attempts for m in always.seen] == [1, 2, 3]
    assert bus.pending("events", "g") == 0
    [dead] = bus.dead_letters("events")
    assert dead.stream == dead_letter_stream("events") == "events:dead"
    assert (dead.type, dead.payload, dead.trace_id) == ("ModelDeployed", {"event_id": "e-9", "model": "m"}, "t-9")
    assert dead.origin_id == always.seen[0].id
    assert dead.attempts == SETTINGS.max_deliveries
    assert "poison" in dead.error
    assert "g" in dead.error
    assert bus.claim_stale("events", "g", "c1", min_idle_ms=0) == 0


def test_a_message_whose_consumers_keep_dying_goes_to_the_dead_letters_on_claim(bus: EventBus) -> None:
    bus.publish("events", "TaskProgress", {"n": 7})
    killer = Recorder(lambda _m: ConsumerDied())
    with pytest.raises(ConsumerDied):
        bus.consume("events", "g", "c0", killer, block_ms=0)
    for i in range(1, SETTINGS.max_deliveries):
        assert bus.claim_stale("events", "g", f"c{i}", min_idle_ms=0) == 1
        with pytest.raises(ConsumerDied):
            bus.consume("events", "g", f"c{i}", killer, block_ms=0)

    assert bus.claim_stale("events", "g", "last", min_idle_ms=0) == 0  # delivered max_deliveries times already

    assert len(killer.seen) == SETTINGS.max_deliveries
    assert bus.pending("events", "g") == 0
    [dead] = bus.dead_letters("events")
    assert (dead.payload, dead.attempts) == ({"n": 7}, SETTINGS.max_deliveries)
    assert "died" in dead.error


def test_dead_letters_of_one_group_do_not_disturb_another_group(bus: EventBus) -> None:
    bus.publish("events", "TaskProgress", {"n": 1})
    fail = Recorder(lambda _m: ValueError("x"))
    for _ in range(SETTINGS.max_deliveries):
        bus.consume("events", "flaky", "c", fail, block_ms=0)
        bus.claim_stale("events", "flaky", "c", min_idle_ms=0)
    healthy = Recorder()
    bus.consume("events", "healthy", "c", healthy, block_ms=0)
    assert healthy.ns == [1]
    assert len(bus.dead_letters("events")) == 1


# ---------------------------------------------------------------------- bounded streams and lifecycle


def test_streams_are_bounded_by_maxlen(bus_factory: BusFactory) -> None:
    bus = bus_factory(BusSettings(maxlen=50))
    for start in range(0, 1_000, 100):
        publish_n(bus, "events", 100, start)
    # Redis trims whole macro nodes (100 entries by default): the length is maxlen plus at most one node.
    assert 50 <= bus.length("events") <= 50 + 100
    seen = Recorder()
    while bus.consume("events", "g", "c", seen, batch=500, block_ms=0):
        pass
    assert seen.ns[-1] == 999
    assert len(seen.ns) == bus.length("events")


def test_settings_reject_nonsense() -> None:
    from tradefleet.core.errors import ConfigError

    with pytest.raises(ConfigError):
        BusSettings(max_deliveries=0)
    with pytest.raises(ConfigError):
        BusSettings(maxlen=0)


def test_a_closed_bus_refuses_work(bus_factory: BusFactory) -> None:
    bus = bus_factory()
    bus.close()
    with pytest.raises(BusError):
        bus.publish("events", "X", {})
    with pytest.raises(BusError):
        bus.consume("events", "g", "c", Recorder(), block_ms=0)


def test_redis_that_does_not_answer_raises_bus_error_with_a_hint() -> None:
    pytest.importorskip("redis")
    bus = make_bus("redis://127.0.0.1:9/0")  # the discard port: nothing listens there
    try:
        with pytest.raises(BusError) as caught:
            bus.publish("events", "X", {})
        assert "unreachable" in caught.value.message
        assert "REDIS_URL" in caught.value.hint
    finally:
        bus.close()


def test_make_bus_without_url_is_the_in_process_bus() -> None:
    assert isinstance(make_bus(None), MemoryBus)
    assert isinstance(make_bus(""), MemoryBus)


def test_event_type_names_match_the_domain_events() -> None:
    classes = {
        obj.__name__
        for obj in vars(domain_events).values()
        if isinstance(obj, type) and issubclass(obj, domain_events.DomainEvent) and obj is not domain_events.DomainEvent
    }
    assert {e.value for e in EventType} == classes
    assert [c.value for c in CommandType] == [
        "StartBot",
        "StopBot",
        "StopEntries",
        "Resume",
        "EmergencyStop",
        "ForceEnter",
        "ForceExit",
        "DeployModel",
    ]


def test_bus_message_is_frozen() -> None:
    message = BusMessage("1-0", "events", "X", {})
    with pytest.raises(dataclasses.FrozenInstanceError):
        message.type = "Y"  # type: ignore[misc]


# ---------------------------------------------------------------------- batches in one transaction


class Ledger:
    """A tiny transactional store: effects inside ``transaction()`` vanish when the block raises."""

    def __init__(self) -> None:
        self.effects: list[int] = []
        self.commits = 0
        self.rollbacks = 0

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        saved = list(self.effects)
        try:
            yield
        except BaseException:
            self.effects = saved
            self.rollbacks += 1
            raise
        self.commits += 1


def test_a_transaction_wraps_the_whole_batch_and_commits_once(bus: EventBus) -> None:
    publish_n(bus, "events", 50)
    ledger = Ledger()

    handled = bus.consume(
        "events", "g", "c", lambda m: ledger.effects.append(m.payload["n"]), block_ms=0, transaction=ledger.transaction
    )

    assert handled == 50
    assert ledger.effects == list(range(50))
    assert (ledger.commits, ledger.rollbacks) == (1, 0)
    assert bus.pending("events", "g") == 0


def test_a_failing_message_in_a_transactional_batch_only_costs_a_retry_of_the_others(bus: EventBus) -> None:
    publish_n(bus, "events", 5)
    ledger = Ledger()

    def apply(message: BusMessage) -> None:
        ledger.effects.append(message.payload["n"])
        if message.payload["n"] == 3:
            raise RuntimeError("bad message")

    assert bus.consume("events", "g", "c", apply, block_ms=0, transaction=ledger.transaction) == 4

    assert ledger.effects == [0, 1, 2, 4]
    assert ledger.commits == 4  # the batch rolled back, then one transaction per message, 3's rolled back
    assert bus.pending("events", "g") == 1


def test_a_consumer_dying_inside_a_transactional_batch_applies_and_acknowledges_nothing(bus: EventBus) -> None:
    publish_n(bus, "events", 5)
    ledger = Ledger()

    def apply(message: BusMessage) -> None:
        ledger.effects.append(message.payload["n"])
        if message.payload["n"] == 3:
            raise ConsumerDied

    with pytest.raises(ConsumerDied):
        bus.consume("events", "g", "c", apply, block_ms=0, transaction=ledger.transaction)

    assert ledger.effects == []
    assert bus.pending("events", "g") == 5
