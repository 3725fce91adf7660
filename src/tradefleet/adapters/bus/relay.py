"""The outbox relay and the idempotent-consumer pattern: how the database stays the source of truth.

Producers commit domain events to the outbox table in the same transaction as the state they describe
(``TradingStore.add_events``), with the trace id of the request or command that caused them.
:class:`OutboxRelay` publishes what is still unpublished, each message with its event's trace id, and only
then marks it published, so a crash in between publishes it again: delivery is at least once. Consumers
make that exactly-once in effect with :func:`idempotent`: the processed-event row and the handler's effect
commit in one transaction, so a redelivered event is recognised and skipped, and a failed handler leaves
no trace.

    relay = OutboxRelay(store, bus, EVENTS_STREAM)
    relay.run_once()                                   # or relay.run(stop_event) in a thread

    @idempotent(store, "positions-projector")
    def on_event(message: BusMessage) -> None:
        store.set_state(...)                           # the effect: same store, same transaction

    bus.consume(EVENTS_STREAM, "projectors", "worker-1", on_event)
"""

from __future__ import annotations

import functools
import itertools
import threading
from collections.abc import Callable, Collection

from tradefleet.core.bus import EVENTS_STREAM, BusMessage, EventBus, Handler
from tradefleet.core.ports import TradingStore


class OutboxRelay:
    """Publish the store's unpublished events to ``stream``, oldest first, ``batch`` per round trip.

    Run one relay per database: two relays do no harm (consumers deduplicate) but publish twice.
    """

    def __init__(
        self,
        store: TradingStore,
        bus: EventBus,
        stream: str = EVENTS_STREAM,
        *,
        batch: int = 500,
        bot_ids: Callable[[], Collection[str]] | None = None,
    ) -> None:
        self.store = store
        self.bot_ids = bot_ids  # relay only these bots' events (a gateway: the bots it holds)
        self.bus = bus
        self.stream = stream
        self.batch = batch
        self.published = 0

    def run_once(self) -> int:
        """Publish one batch of pending events, then mark it published; return how many.

        Each event goes out with the trace id it was added under; events in a row that share one (most do:
        those of one command, or none at all) go in one round trip, and the order is kept.
        """
        pending = self.store.pending_events(self.batch, bot_ids=None if self.bot_ids is None else self.bot_ids())
        if not pending:
            return 0
        for trace_id, run in itertools.groupby(pending, key=lambda event: event.trace_id):
            messages = [(str(event.payload["type"]), event.payload) for event in run]
            self.bus.publish_many(self.stream, messages, trace_id=trace_id)
        self.store.mark_published([str(event.payload["event_id"]) for event in pending])
        self.published += len(pending)
        return len(pending)

    def drain(self) -> int:
        """Publish until a batch comes back short (the outbox is empty for now); return how many."""
        total = 0
        while (count := self.run_once()) > 0:
            total += count
            if count < self.batch:
                break
        return total

    def run(self, stop: threading.Event, *, idle_s: float = 0.2) -> None:
        """Relay until ``stop`` is set, waiting ``idle_s`` whenever the outbox is empty."""
        while not stop.is_set():
            if self.drain() == 0:
                stop.wait(idle_s)


def idempotent(store: TradingStore, consumer: str) -> Callable[[Handler], Handler]:
    """Wrap a handler so it applies each message at most once for ``consumer``.

    The handler runs inside ``store.transaction()`` after ``store.mark_processed(consumer, key)``, where
    ``key`` is :attr:`BusMessage.dedupe_key` (the event or command id); a key already processed skips the
    handler. The handler's effects must go through the same store to share that transaction; if it raises,
    both the effect and the processed row roll back and the bus delivers the message again.
    """

    def wrap(handler: Handler) -> Handler:
        @functools.wraps(handler)
        def run_once(message: BusMessage) -> None:
            with store.transaction():
                if store.mark_processed(consumer, message.dedupe_key):
                    handler(message)

        return run_once

    return wrap


__all__ = ["OutboxRelay", "idempotent"]
