"""Exactly-once effects over an at-least-once bus, with a consumer killed again and again.

100,000 events go into the outbox; the relay publishes them while three consumers apply them: each event
becomes one trade row, committed in the same transaction as its processed-event row (one transaction per
batch, acknowledged after the commit). One consumer is killed over and over, at random moments from
outside and right after a commit from inside (effects written, acknowledgement never sent), and restarted
under the same name; the others claim what it left pending. At the end every event has exactly one trade,
nothing is pending, nothing went to the dead letters and nothing was lost.

On Redis the consumers are processes killed with SIGKILL; on the in-process bus they are threads that die
by an exception raised at the same moments. ``TRADEFLEET_BUS_TEST_EVENTS`` changes the number of events.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from bus_fixtures import RedisSpace, redis_space_fixture  # noqa: F401  (registers the fixture)
from sqlalchemy import Engine, func, select

from tradefleet.adapters.bus import MemoryBus, OutboxRelay
from tradefleet.adapters.storage import SqlTradingStore, make_engine, upgrade
from tradefleet.adapters.storage import tables as t
from tradefleet.core.bus import BusMessage, BusSettings, EventBus
from tradefleet.core.events import DomainEvent, TaskProgress
from tradefleet.core.trades import Trade

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

EVENTS = int(os.environ.get("TRADEFLEET_BUS_TEST_EVENTS", "100000"))
STREAM, GROUP, EFFECT = "events", "effects", "effects"
SETTINGS = BusSettings(maxlen=250_000, max_deliveries=20)  # the stream holds every event: no trimming here
WORKER = Path(__file__).with_name("bus_worker.py")
SEED = 20240611
DEADLINE_S = 240.0
MIN_KILLS = 3  # the run goes on until the victim was killed this often (matters only for small runs)


class ConsumerDied(BaseException):
    """A consumer thread killed (the in-process stand-in for SIGKILL)."""


def fill_outbox(store: SqlTradingStore, count: int) -> set[str]:
    ids: set[str] = set()
    for start in range(0, count, 5_000):
        chunk: list[DomainEvent] = [
            TaskProgress(bot_id="bus-test", ts_ms=1_700_000_000_000 + i, task_id="load", progress=i / count)
            for i in range(start, min(start + 5_000, count))
        ]
        store.add_events(chunk)
        ids.update(e.event_id for e in chunk)
    return ids


def trade_for(message: BusMessage) -> Trade:
    return Trade(
        bot_id="bus-test", pair="BTC/USDT", open_ms=int(message.payload["ts_ms"]), open_rate=1.0, amount=1.0,
        fee_open=0.0, stop_price=0.0, initial_stop=0.0, entry_order=message.payload["event_id"],
    )  # fmt: skip


def processed_count(engine: Engine) -> int:
    with engine.connect() as conn:
        stmt = select(func.count()).select_from(t.processed_events).where(t.processed_events.c.consumer == EFFECT)
        return int(conn.execute(stmt).scalar_one())


def effect_rows(engine: Engine) -> list[str]:
    with engine.connect() as conn:
        return list(conn.execute(select(t.trades.c.entry_order).where(t.trades.c.bot_id == "bus-test")).scalars())


@contextmanager
def relaying(store: SqlTradingStore, bus: EventBus) -> Iterator[OutboxRelay]:
    relay = OutboxRelay(store, bus, STREAM, batch=1_000)
    stop = threading.Event()
    thread = threading.Thread(target=relay.run, args=(stop,), kwargs={"idle_s": 0.05}, daemon=True)
    thread.start()
    try:
        yield relay
    finally:
        stop.set()
        thread.join(10)


def check_exactly_once(engine: Engine, store: SqlTradingStore, bus: EventBus, event_ids: set[str]) -> None:
    effects = effect_rows(engine)
    assert len(effects) == len(event_ids), "an event was applied twice or never"
    assert set(effects) == event_ids
    assert processed_count(engine) == len(event_ids)
    assert store.pending_events() == []
    assert bus.pending(STREAM, GROUP) == 0
    assert bus.dead_letters(STREAM) == []
    assert bus.length(STREAM) == len(event_ids)  # nothing trimmed, nothing lost


# ---------------------------------------------------------------------- Redis Streams, consumer processes


class Workers:
    """Consumer processes, their logs under ``logs``, restarted under the same name when killed."""

    def __init__(self, db_url: str, space: RedisSpace, logs: Path) -> None:
        self.db_url, self.space, self.logs = db_url, space, logs
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.starts: dict[str, int] = {}
        self.self_kill: dict[str, float] = {}

    def start(self, name: str, self_kill: float = 0.0) -> None:
        n = self.starts[name] = self.starts.get(name, 0) + 1
        self.self_kill[name] = self_kill
        cmd = [sys.executable, str(WORKER), self.db_url, self.space.url, self.space.namespace, name]
        cmd += ["--self-kill", str(self_kill), "--seed", str(SEED + n)]
        with (self.logs / f"{name}.{n}.out").open("wb") as out, (self.logs / f"{name}.{n}.err").open("wb") as err:
            self.procs[name] = subprocess.Popen(cmd, stdout=out, stderr=err)

    def ready(self, name: str) -> bool:
        return b"ready" in (self.logs / f"{name}.{self.starts[name]}.out").read_bytes()

    def restart_if_dead(self, name: str) -> bool:
        if self.procs[name].poll() is None:
            return False
        assert self.procs[name].returncode == -signal.SIGKILL, self.tail(name)
        self.start(name, self.self_kill[name])
        return True

    def kill(self, name: str) -> None:
        self.procs[name].send_signal(signal.SIGKILL)
        self.procs[name].wait()
        self.start(name, self.self_kill[name])

    def stop(self) -> list[dict[str, int]]:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.terminate()
        stats = []
        for name, proc in self.procs.items():
            proc.wait(20)
            lines = (self.logs / f"{name}.{self.starts[name]}.out").read_text().splitlines()
            stats.append(json.loads(lines[-1]) if lines and proc.returncode == 0 else {})
        return stats

    def tail(self, name: str) -> str:
        return (self.logs / f"{name}.{self.starts[name]}.err").read_text()[-3_000:]


def test_redis_effects_are_applied_exactly_once_while_a_consumer_process_is_killed_repeatedly(
    database_url: str, redis_space: RedisSpace, tmp_path: Path
) -> None:
    from tradefleet.adapters.bus.redis_streams import RedisStreamsBus

    upgrade(database_url)
    store = SqlTradingStore.from_url(database_url)
    engine = make_engine(database_url)
    bus = RedisStreamsBus.from_url(redis_space.url, SETTINGS, namespace=redis_space.namespace)
    event_ids = fill_outbox(store, EVENTS)
    rng = random.Random(SEED)
    workers = Workers(database_url, redis_space, tmp_path)
    kills = {"outside": 0, "after commit": 0}
    t0 = time.perf_counter()
    try:
        workers.start("victim", self_kill=0.03)
        workers.start("steady-1")
        workers.start("steady-2")
        with relaying(store, bus):
            next_kill: float | None = None  # timed from the moment the victim consumes, not from its spawn
            done = False
            while not done and time.perf_counter() - t0 < DEADLINE_S:
                time.sleep(0.1)
                for name in ("steady-1", "steady-2"):
                    assert workers.procs[name].poll() is None, f"{name} died:\n{workers.tail(name)}"
                if workers.restart_if_dead("victim"):
                    kills["after commit"] += 1
                    next_kill = None
                if next_kill is None and workers.ready("victim"):
                    next_kill = time.monotonic() + rng.uniform(0.2, 1.0)
                if next_kill is not None and time.monotonic() >= next_kill:
                    workers.kill("victim")
                    kills["outside"] += 1
                    next_kill = None
                done = kills["outside"] >= MIN_KILLS and processed_count(engine) == EVENTS
                done = done and bus.pending(STREAM, GROUP) == 0
        elapsed = time.perf_counter() - t0
        stats = workers.stop()
        assert done, f"not done after {DEADLINE_S} s: {processed_count(engine)} of {EVENTS} applied"
        check_exactly_once(engine, store, bus, event_ids)
        [info] = redis_space.client.xinfo_groups(redis_space.namespace + STREAM)
        assert info["pending"] == 0
        assert info.get("lag", 0) == 0  # every entry was read by the group (Redis >= 7)
        assert kills["outside"] >= MIN_KILLS
        print(
            f"\nRedis: {EVENTS:,} events in {elapsed:.1f} s ({EVENTS / elapsed:,.0f}/s), kills {kills}, "
            f"survivors' counters {stats}"
        )
    finally:
        for proc in workers.procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        bus.close()
        store.close()
        engine.dispose()


# ---------------------------------------------------------------------- in-process bus, consumer threads


def test_memory_bus_effects_are_applied_exactly_once_while_a_consumer_thread_is_killed_repeatedly(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{(tmp_path / 'bus.sqlite').as_posix()}"
    upgrade(url)
    store = SqlTradingStore.from_url(url)
    engine = make_engine(url)
    bus = MemoryBus(SETTINGS)
    event_ids = fill_outbox(store, EVENTS)
    rng = random.Random(SEED)
    stop = threading.Event()
    kill_now = threading.Event()
    kills = {"outside": 0, "after commit": 0}
    errors: list[BaseException] = []

    def consumer(name: str, victim: bool) -> None:
        def apply(message: BusMessage) -> None:
            if victim and kill_now.is_set():  # a kill at a random moment of the batch: its effects roll back
                kill_now.clear()
                kills["outside"] += 1
                raise ConsumerDied
            if store.mark_processed(EFFECT, message.payload["event_id"]):
                store.add_trade(trade_for(message))

        @contextmanager
        def transaction() -> Iterator[None]:
            with store.transaction():
                yield
            if victim and rng.random() < 0.03:  # committed, never acknowledged
                kills["after commit"] += 1
                raise ConsumerDied

        try:
            while not stop.is_set():
                if victim and kill_now.is_set():  # a kill between two batches
                    kill_now.clear()
                    kills["outside"] += 1
                    return
                bus.claim_stale(STREAM, GROUP, name, min_idle_ms=500, batch=1_000)
                bus.consume(STREAM, GROUP, name, apply, batch=250, block_ms=50, transaction=transaction)
        except ConsumerDied:
            return
        except BaseException as exc:
            errors.append(exc)

    def spawn(name: str, victim: bool = False) -> threading.Thread:
        thread = threading.Thread(target=consumer, args=(name, victim), name=name, daemon=True)
        thread.start()
        return thread

    t0 = time.perf_counter()
    threads = {"victim": spawn("victim", victim=True), "steady-1": spawn("steady-1"), "steady-2": spawn("steady-2")}
    restarts = 0
    try:
        with relaying(store, bus):
            next_kill = time.monotonic() + rng.uniform(0.2, 0.6)
            done = False
            while not done and time.perf_counter() - t0 < DEADLINE_S and not errors:
                time.sleep(0.05)
                if not threads["victim"].is_alive():
                    threads["victim"] = spawn("victim", victim=True)
                    restarts += 1
                if time.monotonic() >= next_kill:
                    kill_now.set()
                    next_kill = time.monotonic() + rng.uniform(0.2, 0.6)
                done = restarts >= MIN_KILLS and processed_count(engine) == EVENTS
                done = done and bus.pending(STREAM, GROUP) == 0
        elapsed = time.perf_counter() - t0
    finally:
        stop.set()
        for thread in threads.values():
            thread.join(10)
    try:
        assert not errors, errors
        assert done, f"not done after {DEADLINE_S} s: {processed_count(engine)} of {EVENTS} applied"
        check_exactly_once(engine, store, bus, event_ids)
        assert bus.lost == 0
        assert restarts >= MIN_KILLS
        print(f"\nmemory: {EVENTS:,} events in {elapsed:.1f} s ({EVENTS / elapsed:,.0f}/s), kills {kills}")
    finally:
        store.close()
        engine.dispose()
