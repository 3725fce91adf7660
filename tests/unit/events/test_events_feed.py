"""The events feed on the in-process bus: tailing, listeners that fail, prompt stop, resumes and resyncs."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence

import pytest

from tradefleet.adapters.bus import MemoryBus
from tradefleet.core.bus import EVENTS_STREAM, BusMessage, BusSettings
from tradefleet.services.events import EventsFeed


@pytest.fixture
def bus() -> Iterator[MemoryBus]:
    memory = MemoryBus(BusSettings(maxlen=10))
    yield memory
    memory.close()


def publish(bus: MemoryBus, *ns: int) -> list[str]:
    return bus.publish_many(EVENTS_STREAM, [("RiskAlert", {"n": n, "bot_id": "a"}) for n in ns])


class Seen:
    """A listener recording payload numbers; ``wait`` blocks until it has ``count`` of them."""

    def __init__(self) -> None:
        self.ns: list[int] = []
        self._cond = threading.Condition()

    def __call__(self, message: BusMessage) -> None:
        with self._cond:
            self.ns.append(message.payload["n"])
            self._cond.notify_all()

    def wait(self, count: int) -> list[int]:
        with self._cond:
            assert self._cond.wait_for(lambda: len(self.ns) >= count, 5), self.ns
            return list(self.ns)


def test_the_feed_starts_at_the_newest_entry_and_a_failing_listener_harms_no_other(bus: MemoryBus) -> None:
    publish(bus, 0, 1)  # before the start: not dispatched
    feed = EventsFeed(bus, block_ms=50)
    seen, batches = Seen(), Seen()

    def broken(_message: BusMessage) -> None:
        raise RuntimeError("listener bug")

    def batch_listener(messages: Sequence[BusMessage]) -> None:
        batches(BusMessage("x", "s", "t", {"n": len(messages)}))

    feed.add_listener(broken)
    feed.add_listener(seen)
    feed.add_batch_listener(batch_listener)
    feed.start()
    try:
        publish(bus, 2, 3, 4)
        assert seen.wait(3) == [2, 3, 4]
        assert batches.wait(1) == [3]  # one call for the batch of three
        feed.remove_listener(broken)
        publish(bus, 5)
        assert seen.wait(4) == [2, 3, 4, 5]
        assert feed.listener_errors == 3
        assert feed.running
    finally:
        t0 = time.perf_counter()
        feed.stop()
    assert time.perf_counter() - t0 < 1.0
    assert not feed.running


def test_replay_gives_what_followed_an_id_or_asks_for_a_resync(bus: MemoryBus) -> None:
    ids = publish(bus, *range(5))
    feed = EventsFeed(bus)
    assert [m.payload["n"] for m in feed.replay(ids[1]).messages] == [2, 3, 4]
    assert [m.payload["n"] for m in feed.replay(ids[1], limit=2).messages] == [2, 3]
    assert feed.replay(ids[-1]).messages == [] and not feed.replay(ids[-1]).resync
    assert [m.payload["n"] for m in feed.replay("0").messages] == [0, 1, 2, 3, 4]

    publish(bus, *range(5, 20))  # maxlen 10: the first ten are gone
    assert feed.replay(ids[1]).resync
    assert feed.replay("999-0").resync  # never an id of this stream
    with pytest.raises(ValueError, match="not a bus entry id"):
        feed.replay("newest")
