"""Event bus on Redis Streams with consumer groups: the scale-out adapter of ``core.bus.EventBus``.

Each message is one stream entry with the fields ``type``, ``payload`` (JSON) and, when given, ``trace``.

* ``publish`` is ``XADD key MAXLEN ~ maxlen * ...`` (bounded, approximate trimming is O(1)); ``publish_many``
  runs those ``XADD`` calls in a server-side script, up to 1,000 messages per call.
* ``consume`` creates the group (``XGROUP CREATE key group 0 MKSTREAM``, idempotent) on first use, reads
  with ``XREADGROUP ... STREAMS key >`` (in a script that returns one string per entry, much cheaper for
  redis-py to parse; a plain blocking ``XREADGROUP`` when there is nothing yet) and acknowledges the messages
  whose handler returned with one ``XACK`` per batch. A consumer killed before that ``XACK`` leaves its
  messages pending: they are delivered again, which idempotent consumers absorb.
* ``claim_stale`` runs ``XAUTOCLAIM`` (which counts a delivery), reads the delivery counts with
  ``XPENDING`` and moves messages delivered more than ``max_deliveries`` times to ``<stream>:dead``
  (``XADD`` + ``XACK`` in one ``MULTI``). Entries trimmed before they were acknowledged are reported by
  Redis ≥ 7 and counted in :attr:`RedisStreamsBus.lost`.
* ``read_after`` (broadcast, no group) is ``XREAD COUNT n STREAMS key after_id`` in a flat script, then a
  blocking ``XREAD`` when nothing is there yet; ``last_id`` is ``XREVRANGE key + - COUNT 1``.

Keys are ``namespace + stream``. Redis errors become :class:`~tradefleet.core.bus.BusError`.
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import orjson
import redis
from redis.exceptions import RedisError, ResponseError

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

SOCKET_TIMEOUT_S = 30.0
SCRIPT_CHUNK = 1_000  # messages per XADD script call: ~1 ms of server time, so others are not held up

# XADD of many messages in one command: the packing and reply parsing of one command instead of one per
# message, which makes publishing faster than pipelined XADD calls from redis-py (benchmarks/bus_throughput).
_XADD_MANY = """
local key, maxlen, trace = KEYS[1], ARGV[1], ARGV[2]
local ids = {}
for i = 3, #ARGV, 2 do
  if trace == '' then
    ids[#ids + 1] = redis.call('XADD', key, 'MAXLEN', '~', maxlen, '*', 'type', ARGV[i], 'payload', ARGV[i + 1])
  else
    ids[#ids + 1] = redis.call(
      'XADD', key, 'MAXLEN', '~', maxlen, '*', 'type', ARGV[i], 'payload', ARGV[i + 1], 'trace', trace)
  end
end
return ids
"""

# XREADGROUP without blocking, each entry joined into one string "id\ntype\ntrace\npayload": redis-py parses
# one string per message much faster than a nested entry turned into a dict (type and trace hold no newline;
# the payload is last, so it may).
_READ_FLAT = r"""
local reply = redis.call('XREADGROUP', 'GROUP', ARGV[1], ARGV[2], 'COUNT', ARGV[3], 'STREAMS', KEYS[1], '>')
local out = {}
if not reply then return out end
for _, entry in ipairs(reply[1][2]) do
  local f = {}
  for j = 1, #entry[2], 2 do f[entry[2][j]] = entry[2][j + 1] end
  out[#out + 1] = entry[1] .. '\n' .. (f['type'] or '') .. '\n' .. (f['trace'] or '') .. '\n' .. (f['payload'] or '')
end
return out
"""
# XREAD without blocking (a broadcast read, no group), entries joined as in _READ_FLAT.
_READ_AFTER_FLAT = r"""
local reply = redis.call('XREAD', 'COUNT', ARGV[2], 'STREAMS', KEYS[1], ARGV[1])
local out = {}
if not reply then return out end
for _, entry in ipairs(reply[1][2]) do
  local f = {}
  for j = 1, #entry[2], 2 do f[entry[2][j]] = entry[2][j + 1] end
  out[#out + 1] = entry[1] .. '\n' .. (f['type'] or '') .. '\n' .. (f['trace'] or '') .. '\n' .. (f['payload'] or '')
end
return out
"""
MAX_BLOCK_MS = 20_000  # below the socket timeout, so a blocking read never looks like a dead server


class RedisStreamsBus:
    """Event bus on one Redis server (or a client given by the caller, which keeps ownership of it)."""

    def __init__(
        self,
        client: redis.Redis,
        settings: BusSettings | None = None,
        *,
        namespace: str = "tradefleet:",
        owns_client: bool = False,
    ) -> None:
        if not client.get_connection_kwargs().get("decode_responses"):
            raise BusError("the Redis client must be created with decode_responses=True", hint="use from_url()")
        self.settings = settings or BusSettings()
        self.namespace = namespace
        self.lost = 0
        self._redis: Any = client  # redis-py's stubs do not know decode_responses=True: str replies
        self._owns_client = owns_client
        self._groups: set[tuple[str, str]] = set()
        self._claimed: dict[tuple[str, str, str], dict[str, BusMessage]] = {}
        self._lock = threading.Lock()
        self._closed = False
        self._xadd_many = client.register_script(_XADD_MANY)
        self._read_flat = client.register_script(_READ_FLAT)
        self._read_after_flat = client.register_script(_READ_AFTER_FLAT)

    @classmethod
    def from_url(
        cls, url: str, settings: BusSettings | None = None, *, namespace: str = "tradefleet:"
    ) -> RedisStreamsBus:
        """Connect to ``url`` (``redis://host:6379/0``); :meth:`close` closes the connections."""
        try:
            client = redis.Redis.from_url(
                url, decode_responses=True, socket_connect_timeout=5.0, socket_timeout=SOCKET_TIMEOUT_S
            )
        except ValueError as exc:
            raise BusError(f"invalid REDIS_URL: {exc}", hint="use redis://host:6379/0") from None
        return cls(client, settings, namespace=namespace, owns_client=True)

    def _key(self, stream: str) -> str:
        if self._closed:
            raise BusError("the event bus is closed", hint="create a new bus")
        return self.namespace + stream

    # ------------------------------------------------------------------ publishing
    def publish(self, stream: str, type: str, payload: Mapping[str, Any], *, trace_id: str | None = None) -> str:
        with _errors("publish"):
            return str(self._redis.xadd(self._key(stream), _fields(type, payload, trace_id), **self._bound()))

    def publish_many(
        self, stream: str, messages: Iterable[tuple[str, Mapping[str, Any]]], *, trace_id: str | None = None
    ) -> list[str]:
        key = self._key(stream)
        args = [str(self.settings.maxlen), trace_id or ""]
        for type_, payload in messages:
            _check_names(type_, trace_id)
            args += (type_, orjson.dumps(payload).decode())
        ids: list[str] = []
        with _errors("publish"):
            for start in range(2, len(args), 2 * SCRIPT_CHUNK):
                ids += self._xadd_many(keys=[key], args=args[:2] + args[start : start + 2 * SCRIPT_CHUNK])
        return ids

    def _bound(self, maxlen: int | None = None) -> dict[str, Any]:
        return {"maxlen": maxlen or self.settings.maxlen, "approximate": True}

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
        key = self._key(stream)
        messages = self._take_claimed(key, group, consumer, batch)
        if len(messages) < batch:
            wait_ms = 0 if messages else block_ms
            messages += self._read_new(stream, key, group, consumer, batch - len(messages), wait_ms)
        done: list[BusMessage] = []
        try:
            deliver_batch(messages, handler, done, functools.partial(self._failed, stream, group), transaction)
        finally:
            if done:
                with _errors("acknowledge"):
                    self._redis.xack(key, group, *(m.id for m in done))
        return len(done)

    def _failed(self, stream: str, group: str, message: BusMessage, exc: Exception) -> None:
        """Leave a failed message pending, or dead-letter it after its last allowed delivery."""
        logger.warning("handler failed on %s %s (attempt %d)", stream, message.id, message.attempts, exc_info=exc)
        if message.attempts >= self.settings.max_deliveries:
            self._dead_letter(stream, group, message, message.attempts, f"handler failed: {exc!r}")

    def _read_new(
        self, stream: str, key: str, group: str, consumer: str, batch: int, block_ms: int
    ) -> list[BusMessage]:
        self._ensure_group(key, group)
        block = min(block_ms, MAX_BLOCK_MS) if block_ms > 0 else None
        for retry in (False, True):
            try:
                with _errors("read"):
                    flat = self._read_flat(keys=[key], args=[group, consumer, batch])
                    reply = None
                    if not flat and block is not None:  # a script cannot block: wait in XREADGROUP itself
                        reply = self._redis.xreadgroup(group, consumer, {key: ">"}, count=batch, block=block)
                break
            except BusError as exc:  # the stream was deleted under us: recreate the group once
                if retry or "NOGROUP" not in str(exc):
                    raise
                self._groups.discard((key, group))
                self._ensure_group(key, group)
        messages: list[BusMessage] = []
        for joined in flat:  # the hot path: straight from the joined entry to a message
            entry_id, type_, trace, raw = joined.split("\n", 3)
            try:
                payload = orjson.loads(raw)
            except orjson.JSONDecodeError:
                payload = None
            if isinstance(payload, dict):
                messages.append(BusMessage(entry_id, stream, type_, payload, trace or None, 1))
            else:
                self._decode(stream, group, *_joined_entry(joined), 1)  # dead-letters it, with the reason
        for _key, more in reply or ():
            for entry_id, fields in more:
                message = self._decode(stream, group, entry_id, fields, 1)
                if message is not None:
                    messages.append(message)
        return messages

    def _ensure_group(self, key: str, group: str) -> None:
        if (key, group) in self._groups:
            return
        try:
            with _errors("create group"):
                self._redis.xgroup_create(key, group, id="0", mkstream=True)
        except BusError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
        self._groups.add((key, group))

    def _decode(
        self, stream: str, group: str, entry_id: str, fields: dict[str, str], attempts: int
    ) -> BusMessage | None:
        """Turn an entry into a message; an entry that is not one goes straight to the dead letters."""
        try:
            payload = orjson.loads(fields["payload"])
            if not isinstance(payload, dict):
                raise TypeError("payload is not a JSON object")
            return BusMessage(entry_id, stream, fields["type"], payload, fields.get("trace"), attempts)
        except (KeyError, TypeError, ValueError) as exc:
            raw = BusMessage(entry_id, stream, fields.get("type", ""), {"raw": fields}, fields.get("trace"), attempts)
            self._dead_letter(stream, group, raw, attempts, f"undecodable entry: {exc!r}")
            return None

    def _dead_letter(self, stream: str, group: str, message: BusMessage, attempts: int, error: str) -> None:
        """Move ``message`` to the dead-letter stream and acknowledge it, atomically."""
        logger.error(
            "dead-lettering %s %s after %d deliveries in group %s: %s", stream, message.id, attempts, group, error
        )
        fields = _fields(message.type, message.payload, message.trace_id)
        fields |= {"origin": message.id, "attempts": str(attempts), "error": f"{group}: {error}"}
        with _errors("dead-letter"):
            pipe = self._redis.pipeline(transaction=True)
            pipe.xadd(self._key(dead_letter_stream(stream)), fields, **self._bound(self.settings.dead_maxlen))
            pipe.xack(self._key(stream), group, message.id)
            pipe.execute()

    # ------------------------------------------------------------------ recovery
    def claim_stale(self, stream: str, group: str, consumer: str, min_idle_ms: int, *, batch: int = 100) -> int:
        key = self._key(stream)
        self._ensure_group(key, group)
        entries: list[tuple[str, dict[str, str]]] = []
        cursor = "0-0"
        with _errors("claim"):
            while len(entries) < batch:
                reply = self._redis.xautoclaim(key, group, consumer, min_idle_ms, cursor, count=batch - len(entries))
                cursor, claimed = reply[0], reply[1]
                gone = [i for i, fields in claimed if fields is None] + list(reply[2] if len(reply) > 2 else [])
                if gone:  # Redis < 7 returns trimmed entries as nil: drop them from the PEL ourselves
                    self._redis.xack(key, group, *gone)
                    self._lost(stream, group, gone)
                entries += [(i, fields) for i, fields in claimed if fields is not None]
                if cursor == "0-0":
                    break
            if not entries:
                return 0
            pipe = self._redis.pipeline(transaction=False)
            for entry_id, _ in entries:
                pipe.xpending_range(key, group, min=entry_id, max=entry_id, count=1)
            counts = {p["message_id"]: p for rows in pipe.execute() for p in rows}
        fresh: list[BusMessage] = []
        for entry_id, fields in entries:
            info = counts.get(entry_id)
            if info is None or info["consumer"] != consumer:  # acknowledged or claimed by another meanwhile
                continue
            message = self._decode(stream, group, entry_id, fields, int(info["times_delivered"]))
            if message is None:
                continue
            if message.attempts > self.settings.max_deliveries:
                self._dead_letter(stream, group, message, message.attempts - 1, "its consumers died or stalled")
                continue
            fresh.append(message)
        with self._lock:
            waiting = self._claimed.setdefault((key, group, consumer), {})
            waiting.update((m.id, m) for m in fresh)
        return len(fresh)

    def _lost(self, stream: str, group: str, ids: list[str]) -> None:
        self.lost += len(ids)
        logger.error("%d pending messages of %s/%s were trimmed before they were acknowledged", len(ids), stream, group)

    def _take_claimed(self, key: str, group: str, consumer: str, batch: int) -> list[BusMessage]:
        with self._lock:
            waiting = self._claimed.get((key, group, consumer))
            if not waiting:
                return []
            ids = list(waiting)[:batch]
            return [waiting.pop(i) for i in ids]

    # ------------------------------------------------------------------ inspection
    def pending(self, stream: str, group: str) -> int:
        try:
            with _errors("pending"):
                return int(self._redis.xpending(self._key(stream), group)["pending"])
        except BusError as exc:
            if "NOGROUP" in str(exc):
                return 0
            raise

    def dead_letters(self, stream: str, limit: int = 1000) -> list[BusMessage]:
        name = dead_letter_stream(stream)
        with _errors("read dead letters"):
            entries = self._redis.xrange(self._key(name), count=limit)
        out = []
        for entry_id, f in entries:
            payload = orjson.loads(f["payload"])
            attempts = int(f.get("attempts", "0"))
            out.append(
                BusMessage(entry_id, name, f["type"], payload, f.get("trace"), attempts, f["origin"], f["error"])
            )
        return out

    def length(self, stream: str) -> int:
        with _errors("length"):
            return int(self._redis.xlen(self._key(stream)))

    # ------------------------------------------------------------------ broadcast reads
    def read_after(self, stream: str, after_id: str, *, count: int = 1000, block_ms: int = 0) -> list[BusMessage]:
        """``XREAD COUNT count STREAMS key after_id`` (in a script, flat), then a blocking ``XREAD`` if empty."""
        entry_id_key(after_id)  # the same ValueError as the memory bus for what is not an id
        key = self._key(stream)
        if count < 1:
            return []
        with _errors("read"):
            entries = [_joined_entry(joined) for joined in self._read_after_flat(keys=[key], args=[after_id, count])]
            if not entries and block_ms > 0:
                reply = self._redis.xread({key: after_id}, count=count, block=min(block_ms, MAX_BLOCK_MS))
                entries = [entry for _key, more in reply or () for entry in more]
        messages: list[BusMessage] = []
        for entry_id, fields in entries:
            try:
                payload = orjson.loads(fields["payload"])
                if not isinstance(payload, dict):
                    raise TypeError("payload is not a JSON object")
            except (KeyError, TypeError, ValueError) as exc:  # no group to dead-letter it in: skip it
                logger.error("skipping undecodable entry %s of %s: %r", entry_id, stream, exc)
                continue
            messages.append(BusMessage(entry_id, stream, fields["type"], payload, fields.get("trace")))
        return messages

    def last_id(self, stream: str) -> str:
        with _errors("read"):
            newest = self._redis.xrevrange(self._key(stream), count=1)
        return str(newest[0][0]) if newest else FIRST_ID

    def close(self) -> None:
        self._closed = True
        if self._owns_client:
            self._redis.close()


def _joined_entry(joined: str) -> tuple[str, dict[str, str]]:
    entry_id, type_, trace, payload = joined.split("\n", 3)
    fields = {"type": type_, "payload": payload}
    if trace:
        fields["trace"] = trace
    return entry_id, fields


def _fields(type_: str, payload: Mapping[str, Any], trace_id: str | None) -> dict[str, str]:
    _check_names(type_, trace_id)
    fields = {"type": type_, "payload": orjson.dumps(payload).decode()}
    if trace_id:
        fields["trace"] = trace_id
    return fields


def _check_names(type_: str, trace_id: str | None) -> None:
    if "\n" in type_ or (trace_id and "\n" in trace_id):
        raise BusError(f"message type and trace id may not contain a newline: {type_!r}, {trace_id!r}")


@contextmanager
def _errors(operation: str) -> Iterator[None]:
    try:
        yield
    except ResponseError as exc:
        raise BusError(f"Redis refused to {operation}: {exc}") from exc
    except RedisError as exc:
        raise BusError(f"event bus {operation} failed: Redis is unreachable ({exc})") from exc


__all__ = ["RedisStreamsBus"]
