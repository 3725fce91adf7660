"""In-process event bus: the embedded default of ``core.bus.EventBus``, with the semantics of Redis Streams.

Streams, consumer groups, per-group pending entries with delivery counts and idle times, claims of stale
entries, dead letters and bounded retention all behave as in :mod:`.redis_streams`, so code tested on this
bus runs unchanged on Redis. Thread-safe (one lock; handlers run outside it), no asyncio, no I/O: the
messages live as long as the process. Payloads must be JSON-ready, as on Redis; each delivery gets its own
shallow copy.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from tradefleet.core.bus import (
    FIRST_ID,
    BusError,
    BusMessage,
    BusSettings,
    Handler,
    Transaction,
    dead_letter_stream,
    deliver_batch,
    entry_id_key,
)

logger = logging.getLogger(__name__)


@dataclass(slots=True)
class _Entry:
    id: str
    type: str
    payload: dict[str, Any]
    trace_id: str | None
    attempts: int = 0  # dead letters: deliveries before giving up
    origin_id: str = ""
    error: str = ""


@dataclass(slots=True)
class _Pending:
    owner: str
    attempts: int
    delivered_s: float


@dataclass(slots=True)
class _Group:
    last_seq: int = 0
    pel: dict[str, _Pending] = field(default_factory=dict)  # in order of first delivery, like Redis' PEL by id
    claimed: dict[str, dict[str, None]] = field(default_factory=dict)  # consumer -> ids waiting for consume()


@dataclass(slots=True)
class _Stream:
    entries: dict[int, _Entry] = field(default_factory=dict)
    first_seq: int = 1
    next_seq: int = 1
    groups: dict[str, _Group] = field(default_factory=dict)


def _seq(entry_id: str) -> int:
    return int(entry_id.partition("-")[0])


class MemoryBus:
    """Event bus inside one process; ``clock`` (seconds, monotonic) measures idle times."""

    def __init__(self, settings: BusSettings | None = None, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.settings = settings or BusSettings()
        self._clock = clock
        self._streams: dict[str, _Stream] = {}
        self._cond = threading.Condition(threading.Lock())
        self._closed = False
        self.lost = 0  # pending entries whose message was trimmed away before it was acknowledged

    # ------------------------------------------------------------------ publishing
    def publish(self, stream: str, type: str, payload: Mapping[str, Any], *, trace_id: str | None = None) -> str:
        return self.publish_many(stream, [(type, payload)], trace_id=trace_id)[0]

    def publish_many(
        self, stream: str, messages: Iterable[tuple[str, Mapping[str, Any]]], *, trace_id: str | None = None
    ) -> list[str]:
        with self._cond:
            self._check_open()
            state = self._streams.setdefault(stream, _Stream())
            ids = [self._append(state, _Entry("", type_, dict(payload), trace_id)) for type_, payload in messages]
            self._trim(state, self.settings.maxlen)
            self._cond.notify_all()
        return ids

    def _append(self, state: _Stream, entry: _Entry) -> str:
        seq = state.next_seq
        state.next_seq += 1
        entry.id = f"{seq}-0"
        state.entries[seq] = entry
        return entry.id

    @staticmethod
    def _trim(state: _Stream, maxlen: int) -> None:
        while len(state.entries) > maxlen:
            del state.entries[state.first_seq]
            state.first_seq += 1

    # ------------------------------------------------------------------ consuming
    def consume(
        self,
        stream: str,
        group: str,
        consumer: str,
        handler: Handler,
        *,
        batch: int = 100,
        block_ms: int = 1000,
        transaction: Transaction | None = None,
    ) -> int:
        with self._cond:
            self._check_open()
            state, grp = self._group(stream, group)
            messages = self._take(stream, state, grp, consumer, batch)
            if not messages and block_ms > 0:
                self._cond.wait_for(lambda: self._closed or self._ready(state, grp, consumer), block_ms / 1000)
                self._check_open()
                messages = self._take(stream, state, grp, consumer, batch)
        done: list[BusMessage] = []
        try:
            deliver_batch(messages, handler, done, functools.partial(self._failed, stream, group), transaction)
        finally:
            with self._cond:
                for message in done:
                    grp.pel.pop(message.id, None)
        return len(done)

    @staticmethod
    def _ready(state: _Stream, grp: _Group, consumer: str) -> bool:
        return bool(grp.claimed.get(consumer)) or max(grp.last_seq + 1, state.first_seq) < state.next_seq

    def _group(self, stream: str, group: str) -> tuple[_Stream, _Group]:
        state = self._streams.setdefault(stream, _Stream())
        return state, state.groups.setdefault(group, _Group())

    def _take(self, stream: str, state: _Stream, grp: _Group, consumer: str, batch: int) -> list[BusMessage]:
        out: list[BusMessage] = []
        waiting = grp.claimed.get(consumer)
        while waiting and len(out) < batch:
            entry_id = next(iter(waiting))
            del waiting[entry_id]
            pending = grp.pel.get(entry_id)
            entry = state.entries.get(_seq(entry_id))
            if pending is not None and pending.owner == consumer and entry is not None:
                out.append(self._message(stream, entry, pending.attempts))
        now = self._clock()
        seq = max(grp.last_seq + 1, state.first_seq)
        while len(out) < batch and seq < state.next_seq:
            entry = state.entries[seq]
            grp.pel[entry.id] = _Pending(consumer, 1, now)
            grp.last_seq = seq
            out.append(self._message(stream, entry, 1))
            seq += 1
        return out

    @staticmethod
    def _message(stream: str, entry: _Entry, attempts: int) -> BusMessage:
        return BusMessage(
            entry.id, stream, entry.type, dict(entry.payload), entry.trace_id, attempts, entry.origin_id, entry.error
        )

    def _failed(self, stream: str, group: str, message: BusMessage, exc: Exception) -> None:
        """Leave a failed message pending, or dead-letter it after its last allowed delivery."""
        logger.warning("handler failed on %s %s (attempt %d)", stream, message.id, message.attempts, exc_info=exc)
        if message.attempts < self.settings.max_deliveries:
            return
        with self._cond:
            _state, grp = self._group(stream, group)
            if grp.pel.pop(message.id, None) is not None:
                self._dead_letter(stream, group, message, message.attempts, f"handler failed: {exc!r}")

    def _dead_letter(self, stream: str, group: str, message: BusMessage, attempts: int, error: str) -> None:
        logger.error(
            "dead-lettering %s %s after %d deliveries in group %s: %s", stream, message.id, attempts, group, error
        )
        dead = self._streams.setdefault(dead_letter_stream(stream), _Stream())
        entry = _Entry("", message.type, message.payload, message.trace_id, attempts, message.id, f"{group}: {error}")
        self._append(dead, entry)
        self._trim(dead, self.settings.dead_maxlen)

    # ------------------------------------------------------------------ recovery and inspection
    def claim_stale(self, stream: str, group: str, consumer: str, min_idle_ms: int, *, batch: int = 100) -> int:
        claimed = 0
        with self._cond:
            self._check_open()
            state, grp = self._group(stream, group)
            now = self._clock()
            for entry_id, pending in list(grp.pel.items()):
                if claimed >= batch:
                    break
                if (now - pending.delivered_s) * 1000 < min_idle_ms:
                    continue
                entry = state.entries.get(_seq(entry_id))
                grp.claimed.get(pending.owner, {}).pop(entry_id, None)
                if entry is None:  # trimmed before it was acknowledged
                    del grp.pel[entry_id]
                    self.lost += 1
                    logger.error(
                        "pending message %s of %s/%s was trimmed before it was acknowledged", entry_id, stream, group
                    )
                    continue
                pending.owner, pending.attempts, pending.delivered_s = consumer, pending.attempts + 1, now
                if pending.attempts > self.settings.max_deliveries:
                    del grp.pel[entry_id]
                    message = self._message(stream, entry, pending.attempts - 1)
                    self._dead_letter(stream, group, message, pending.attempts - 1, "its consumers died or stalled")
                    continue
                grp.claimed.setdefault(consumer, {})[entry_id] = None
                claimed += 1
            if claimed:
                self._cond.notify_all()
        return claimed

    def pending(self, stream: str, group: str) -> int:
        with self._cond:
            state = self._streams.get(stream)
            grp = state.groups.get(group) if state else None
            return len(grp.pel) if grp else 0

    def dead_letters(self, stream: str, limit: int = 1000) -> list[BusMessage]:
        name = dead_letter_stream(stream)
        with self._cond:
            state = self._streams.get(name)
            entries = list(state.entries.values())[:limit] if state else []
            return [self._message(name, e, e.attempts) for e in entries]

    def length(self, stream: str) -> int:
        """Return how many entries ``stream`` retains."""
        with self._cond:
            state = self._streams.get(stream)
            return len(state.entries) if state else 0

    # ------------------------------------------------------------------ broadcast reads
    def read_after(self, stream: str, after_id: str, *, count: int = 1000, block_ms: int = 0) -> list[BusMessage]:
        # Ids here are "<seq>-0": an entry is after "<n>-<k>" exactly when its seq > n (any k).
        after = entry_id_key(after_id)[0]
        with self._cond:
            self._check_open()
            state = self._streams.setdefault(stream, _Stream())
            if block_ms > 0 and not self._newer(state, after):
                self._cond.wait_for(lambda: self._closed or self._newer(state, after), block_ms / 1000)
                self._check_open()
            first = max(after + 1, state.first_seq)
            last = min(first + max(count, 0), state.next_seq)
            return [self._message(stream, state.entries[seq], 1) for seq in range(first, last)]

    @staticmethod
    def _newer(state: _Stream, after: int) -> bool:
        return state.next_seq > state.first_seq and state.next_seq - 1 > after

    def last_id(self, stream: str) -> str:
        with self._cond:
            self._check_open()
            state = self._streams.get(stream)
            return f"{state.next_seq - 1}-0" if state and state.entries else FIRST_ID

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def _check_open(self) -> None:
        if self._closed:
            raise BusError("the event bus is closed", hint="create a new bus")


__all__ = ["MemoryBus"]
