"""Fan-out of live events to subscribers, transport-neutral (the WebSocket endpoint is ``api.ws``).

The feed thread prepares each batch once (type filter, owner lookup, JSON text serialised once for every
subscriber) and hands it to the event loop in one ``call_soon_threadsafe``; the loop puts each event into
the bounded queue of every subscriber that wants it. A subscriber whose queue is full is dropped on the
spot (its ``overflowed`` event is set and it gets nothing more), so one slow client never delays another.

Who sees what is the bots service's rule itself (``services.bots.visibility``): admins every bot, users
the bots they own, events of a bot without an owner reach admins only, machine clients see none. Ownership
comes from the owners table, cached: refreshed when an unknown bot shows up (at most once per
``miss_refresh_s``) and every ``ttl_s``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

from tradefleet.core.bus import BusMessage, EventType, entry_id_key
from tradefleet.services.auth import Principal
from tradefleet.services.bots.visibility import OwnerTest, bot_visibility
from tradefleet.services.events.feed import EventsFeed

logger = logging.getLogger(__name__)

# The events a client may subscribe to (the others on the stream are internal: deployments, tasks, replies).
WS_EVENT_TYPES: tuple[str, ...] = (
    EventType.POSITION_UPDATE,
    EventType.TRADE_EXECUTED,
    EventType.AI_SIGNAL_RECEIVED,
    EventType.BOT_STATUS_UPDATE,
    EventType.ORDER_UPDATE,
    EventType.RISK_ALERT,
)
ALL_BOTS = "*"

OwnersSource = Callable[[], Mapping[str, int]]


@dataclass(frozen=True, slots=True)
class PreparedEvent:
    """One event as every subscriber gets it: ``text`` is the whole outgoing JSON message."""

    id: str
    key: tuple[int, int]
    type: str
    bot_id: str
    owner: int | None
    text: str


class OwnerLookup:
    """Thread-safe cache of ``bot_id -> owner user id`` over the owners table."""

    def __init__(
        self,
        source: OwnersSource | None,
        *,
        ttl_s: float = 5.0,
        miss_refresh_s: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._source = source
        self._ttl_s = ttl_s
        self._miss_refresh_s = miss_refresh_s
        self._clock = clock
        self._owners: Mapping[str, int] = {}
        self._loaded_s = float("-inf")
        self._lock = threading.Lock()

    def owner_of(self, bot_id: str) -> int | None:
        if self._source is None:
            return None
        with self._lock:
            age = self._clock() - self._loaded_s
            if age >= self._ttl_s or (bot_id not in self._owners and age >= self._miss_refresh_s):
                self._reload()
            return self._owners.get(bot_id)

    def invalidate(self) -> None:
        """Reload on the next lookup."""
        with self._lock:
            self._loaded_s = float("-inf")

    def _reload(self) -> None:
        assert self._source is not None
        try:
            self._owners = dict(self._source())
        except Exception:  # keep the last known owners; the next miss or expiry tries again
            logger.exception("cannot load bot owners; keeping %d cached", len(self._owners))
        self._loaded_s = self._clock()


@dataclass(frozen=True, slots=True)
class Subscription:
    """What one subscriber wants: bots (``None``: every bot it may see) and event types.

    ``visible`` is the bots service's rule for the principal (:func:`~tradefleet.services.bots.bot_visibility`),
    decided once per subscription rather than per event.
    """

    principal: Principal
    bots: frozenset[str] | None
    types: frozenset[str]
    visible: OwnerTest

    @classmethod
    def of(cls, principal: Principal, bots: Iterable[str] | None, types: Iterable[str] | None) -> Subscription:
        chosen = frozenset(types) if types else frozenset(WS_EVENT_TYPES)
        return cls(principal, None if bots is None else frozenset(bots), chosen, bot_visibility(principal))

    def wants(self, event: PreparedEvent) -> bool:
        if event.type not in self.types or (self.bots is not None and event.bot_id not in self.bots):
            return False
        return self.visible(event.owner)


class EventQueue:
    """A bounded queue for one subscriber, lighter than ``asyncio.Queue``: ``put`` refuses when full, and
    the one reader takes everything queued at once (one wake-up per batch, not per event). Loop-only."""

    def __init__(self, maxsize: int) -> None:
        self.maxsize = maxsize
        self._items: deque[PreparedEvent] = deque()
        self._waiter: asyncio.Future[None] | None = None

    def __len__(self) -> int:
        return len(self._items)

    def put(self, event: PreparedEvent) -> bool:
        """Queue ``event``; return False (and queue nothing) when the queue is full."""
        if len(self._items) >= self.maxsize:
            return False
        self._items.append(event)
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
        return True

    async def take_all(self) -> list[PreparedEvent]:
        """Wait until something is queued, then return everything queued, oldest first."""
        while not self._items:
            self._waiter = asyncio.get_running_loop().create_future()
            await self._waiter
        items = list(self._items)
        self._items.clear()
        return items


@dataclass(eq=False)
class Subscriber:
    """One client: its subscription (replaceable at any time in the loop) and its bounded queue.

    ``on_overflow`` runs (in the loop) when the queue was full: the subscriber is already dropped then.
    """

    subscription: Subscription
    queue: EventQueue
    on_overflow: Callable[[], None] = lambda: None
    first_key: tuple[int, int] | None = None  # key of the first event queued (resumes stop there)


class EventsHub:
    """Fan the feed's events out to subscribers in ``loop`` (the API server's event loop)."""

    def __init__(
        self,
        feed: EventsFeed,
        loop: asyncio.AbstractEventLoop,
        *,
        owners: OwnersSource | None = None,
        queue_size: int = 1000,
    ) -> None:
        self.feed = feed
        self.loop = loop
        self.owners = OwnerLookup(owners)
        self.queue_size = queue_size
        self.subscribers: set[Subscriber] = set()
        self.delivered = 0  # events queued to subscribers
        self.dropped = 0  # subscribers dropped for being too slow
        self._attached = False

    # ------------------------------------------------------------------ lifecycle (in the loop)
    def attach(self) -> None:
        if not self._attached:
            self.feed.add_batch_listener(self._on_batch)
            self._attached = True

    def detach(self) -> None:
        self.feed.remove_listener(self._on_batch)
        self._attached = False

    def subscribe(self, subscription: Subscription, on_overflow: Callable[[], None] | None = None) -> Subscriber:
        """Register a subscriber: events from now on go to its queue."""
        subscriber = Subscriber(subscription, EventQueue(self.queue_size))
        if on_overflow is not None:
            subscriber.on_overflow = on_overflow
        self.owners.invalidate()  # a bot created just before is known to the next event
        self.subscribers.add(subscriber)
        return subscriber

    def unsubscribe(self, subscriber: Subscriber) -> None:
        self.subscribers.discard(subscriber)

    # ------------------------------------------------------------------ feed thread
    def prepare(self, messages: Sequence[BusMessage]) -> list[PreparedEvent]:
        """Turn bus messages into events for clients (the six client types only); thread-safe."""
        out: list[PreparedEvent] = []
        for message in messages:
            if message.type not in WS_EVENT_TYPES:
                continue
            bot_id = str(message.payload.get("bot_id", ""))
            text = json.dumps(
                {"type": "event", "id": message.id, "event": message.payload}, separators=(",", ":"), default=str
            )
            key = entry_id_key(message.id)
            out.append(PreparedEvent(message.id, key, message.type, bot_id, self.owners.owner_of(bot_id), text))
        return out

    def _on_batch(self, messages: Sequence[BusMessage]) -> None:
        if not self.subscribers:  # a racy read is fine: resumes read the stream, not this hand-off
            return
        prepared = self.prepare(messages)
        if not prepared:
            return
        try:
            self.loop.call_soon_threadsafe(self._fan_out, prepared)
        except RuntimeError:  # the loop is closed: the server is gone
            self.feed.remove_listener(self._on_batch)

    # ------------------------------------------------------------------ event loop
    def _fan_out(self, events: list[PreparedEvent]) -> None:
        delivered = 0
        for subscriber in list(self.subscribers):
            wants = subscriber.subscription.wants
            put = subscriber.queue.put
            for event in events:
                if not wants(event):
                    continue
                if not put(event):
                    self._drop(subscriber)
                    break
                delivered += 1
                if subscriber.first_key is None:
                    subscriber.first_key = event.key
        self.delivered += delivered

    def _drop(self, subscriber: Subscriber) -> None:
        self.subscribers.discard(subscriber)
        self.dropped += 1
        subscriber.on_overflow()
        logger.warning(
            "dropping a too slow events subscriber (%s): %d events queued",
            subscriber.subscription.principal.username,
            len(subscriber.queue),
        )


__all__ = [
    "ALL_BOTS",
    "WS_EVENT_TYPES",
    "EventQueue",
    "EventsHub",
    "OwnerLookup",
    "OwnersSource",
    "PreparedEvent",
    "Subscriber",
    "Subscription",
]
