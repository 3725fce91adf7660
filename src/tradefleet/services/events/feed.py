"""The live events feed: one daemon thread tails ``EVENTS_STREAM`` and hands every message to listeners.

A broadcast read (``EventBus.read_after``, no consumer group): every API process sees every event, nothing
is acknowledged, and the stream's own ids are the positions clients resume from. The feed starts at the
newest entry (``last_id``) and wakes within ``block_ms`` when stopped. Listeners run in the feed thread, in
the order added; one that raises is logged and the others still get the message.

    feed = EventsFeed(bus)
    feed.add_listener(lambda message: ...)          # one BusMessage at a time
    feed.add_batch_listener(lambda messages: ...)   # each batch read from the bus, as one list
    feed.start()
    ...
    feed.stop()
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from tradefleet.core.bus import EVENTS_STREAM, FIRST_ID, BusError, BusMessage, EventBus, entry_id_key

logger = logging.getLogger(__name__)

Listener = Callable[[BusMessage], None]
BatchListener = Callable[[Sequence[BusMessage]], None]
RETRY_S = 1.0  # wait after a bus error before reading again


@dataclass(frozen=True, slots=True)
class Replay:
    """What :meth:`EventsFeed.replay` found after a client's last id.

    ``resync`` is True when the id is not in the retained range (trimmed away, or from another stream, e.g.
    an in-process bus that restarted): events may be missing, so the client must reload its state.
    """

    messages: list[BusMessage]
    resync: bool = False


class EventsFeed:
    """Tail ``stream`` of ``bus`` in a daemon thread and dispatch each message to the listeners."""

    def __init__(self, bus: EventBus, stream: str = EVENTS_STREAM, *, block_ms: int = 200, batch: int = 1000) -> None:
        self.bus = bus
        self.stream = stream
        self.block_ms = block_ms
        self.batch = batch
        self.dispatched = 0
        self.listener_errors = 0
        self._listeners: tuple[tuple[Any, bool], ...] = ()  # (callback, takes a batch), copied on change
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._position = FIRST_ID

    # ------------------------------------------------------------------ listeners
    def add_listener(self, listener: Listener) -> None:
        """Call ``listener(message)`` for every message, in the feed thread."""
        self._add(listener, batch=False)

    def add_batch_listener(self, listener: BatchListener) -> None:
        """Call ``listener(messages)`` once per batch read from the bus (one hand-off for many events)."""
        self._add(listener, batch=True)

    def _add(self, listener: Any, *, batch: bool) -> None:
        with self._lock:
            self._listeners = (*self._listeners, (listener, batch))

    def remove_listener(self, listener: Listener | BatchListener) -> None:
        """Stop calling ``listener`` (either kind); unknown listeners are ignored."""
        with self._lock:
            self._listeners = tuple(item for item in self._listeners if item[0] is not listener)

    # ------------------------------------------------------------------ lifecycle
    @property
    def position(self) -> str:
        """The id of the last message dispatched (the stream's newest id when started, before any)."""
        return self._position

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        """Start tailing from the newest entry now in the stream; a second call does nothing."""
        if self.running:
            return
        self._position = self.bus.last_id(self.stream)
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name=f"events-feed:{self.stream}", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the thread (within ``block_ms``) and wait for it."""
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                messages = self.bus.read_after(self.stream, self._position, count=self.batch, block_ms=self.block_ms)
            except BusError as exc:
                logger.warning("events feed cannot read %s: %s; retrying", self.stream, exc.message)
                self._stop.wait(RETRY_S)
                continue
            if messages and not self._stop.is_set():
                self._position = messages[-1].id
                self._dispatch(messages)

    def _dispatch(self, messages: list[BusMessage]) -> None:
        for listener, takes_batch in self._listeners:
            if takes_batch:
                self._call(listener, messages)
            else:
                for message in messages:
                    self._call(listener, message)
        self.dispatched += len(messages)

    def _call(self, listener: Callable[[Any], None], argument: object) -> None:
        try:
            listener(argument)
        except Exception:  # one broken listener must not starve the others or kill the feed
            self.listener_errors += 1
            logger.exception("events feed listener %r failed", listener)

    # ------------------------------------------------------------------ resumes
    def replay(self, after_id: str, limit: int = 1000) -> Replay:
        """Return up to ``limit`` messages after ``after_id`` (a client's last seen id), oldest first.

        ``resync`` when ``after_id`` is older than the oldest retained entry (trimmed: events between may be
        gone) or newer than the newest (not an id of this stream). The oldest entry is read *after* the page,
        so a trim racing with the read is seen too. Raise ``ValueError`` when ``after_id`` is not an id.
        """
        after = entry_id_key(after_id)
        if after_id == FIRST_ID:
            return Replay(self.bus.read_after(self.stream, FIRST_ID, count=limit))
        messages = self.bus.read_after(self.stream, after_id, count=limit)
        oldest = self.bus.read_after(self.stream, FIRST_ID, count=1)
        if not oldest or after < entry_id_key(oldest[0].id):
            return Replay([], resync=True)  # trimmed past it, or the stream is empty (it was reset)
        if not messages and after > entry_id_key(self.bus.last_id(self.stream)):
            return Replay([], resync=True)  # an id from the future: another stream's
        return Replay(messages)


__all__ = ["BatchListener", "EventsFeed", "Listener", "Replay"]
