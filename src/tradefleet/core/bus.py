"""The event bus port: commands travel API → bus → gateway, domain events travel back.

Delivery is **at least once**. A message is acknowledged only after its handler returned, so a consumer
that dies mid-handler leaves it *pending* in its group; another consumer takes it over with
:meth:`EventBus.claim_stale` once it has been idle long enough. Consumers therefore must be idempotent:
they record the event id in the processed-event table in the same database transaction as their effect
(see ``adapters.bus.relay.idempotent``). The database stays the source of truth: events reach the bus
through the outbox (``adapters.bus.relay.OutboxRelay``), never straight from a request.

Semantics every adapter keeps (the contract suite checks them):

* a **consumer group** sees every message of a stream once; consumers of one group share the work;
* ``attempts`` counts deliveries: 1 on the first, +1 for each redelivery after a claim;
* a handler that raises leaves its message pending; after ``max_deliveries`` failed deliveries the message
  goes to the dead-letter stream ``<stream>:dead`` (see :func:`dead_letter_stream`) and is acknowledged;
* streams are bounded: the oldest entries are trimmed beyond the adapter's ``maxlen`` (approximately);
* ``read_after`` is a broadcast read outside any group (live feeds such as the WebSocket tail); entry ids
  of a stream increase and compare by :func:`entry_id_key` on every adapter.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol, runtime_checkable

from tradefleet.core.errors import ConfigError, TradeFleetError

COMMANDS_STREAM = "commands"
EVENTS_STREAM = "events"
FIRST_ID = "0"  # read_after(stream, FIRST_ID) reads from the oldest retained entry
DEAD_SUFFIX = ":dead"
DEFAULT_MAX_DELIVERIES = 5


class BusError(TradeFleetError):
    """The bus (its server or the path to it) failed; nothing was acknowledged."""

    code = "bus_error"
    hint = "check that the event bus is reachable (REDIS_URL); unacknowledged messages are delivered again"


class CommandType(StrEnum):
    """Commands: requests for a gateway to act, sent by the API and the controller."""

    START_BOT = "StartBot"
    STOP_BOT = "StopBot"
    STOP_ENTRIES = "StopEntries"
    RESUME = "Resume"
    EMERGENCY_STOP = "EmergencyStop"
    FORCE_ENTER = "ForceEnter"
    FORCE_EXIT = "ForceExit"
    DEPLOY_MODEL = "DeployModel"


class EventType(StrEnum):
    """Domain events (the class names in ``core.events``): facts the gateways report back."""

    TRADE_EXECUTED = "TradeExecuted"
    POSITION_UPDATE = "PositionUpdate"
    AI_SIGNAL_RECEIVED = "AISignalReceived"
    BOT_STATUS_UPDATE = "BotStatusUpdate"
    ORDER_UPDATE = "OrderUpdate"
    RISK_ALERT = "RiskAlert"
    MODEL_DEPLOYED = "ModelDeployed"
    TASK_PROGRESS = "TaskProgress"
    COMMAND_RESULT = "CommandResult"


@dataclass(frozen=True, slots=True)
class BusMessage:
    """One delivery of one message.

    ``id`` is the bus's id of the entry (stable across redeliveries); ``attempts`` is the delivery count,
    1 on the first delivery. Dead letters also carry ``origin_id`` (the entry id in the source stream)
    and ``error`` (why it was given up).
    """

    id: str
    stream: str
    type: str
    payload: dict[str, Any]
    trace_id: str | None = None
    attempts: int = 1
    origin_id: str = ""
    error: str = ""

    @property
    def dedupe_key(self) -> str:
        """Return the key an idempotent consumer records: the payload's event or command id, else ``id``."""
        for name in ("event_id", "command_id"):
            value = self.payload.get(name)
            if isinstance(value, str) and value:
                return value
        return self.id


Handler = Callable[[BusMessage], None]
Transaction = Callable[[], AbstractContextManager[Any]]
ErrorCallback = Callable[[BusMessage, Exception], None]


def deliver_batch(
    messages: Sequence[BusMessage],
    handler: Handler,
    done: list[BusMessage],
    on_error: ErrorCallback,
    transaction: Transaction | None = None,
) -> None:
    """Run ``handler`` over ``messages``, appending those it returned from to ``done`` (to acknowledge).

    With ``transaction``, the whole batch first runs inside one transaction (one commit for all effects);
    if any handler or the commit raises an ``Exception``, the transaction has rolled back and every message
    runs again in a transaction of its own, so one bad message costs the batch only time. ``on_error`` gets
    each message whose handler raised. A ``BaseException`` propagates at once.
    """
    if transaction is not None and len(messages) > 1:
        try:
            with transaction():
                for message in messages:
                    handler(message)
        except Exception:  # noqa: S110 - retried one by one below, where each failure is reported
            pass
        else:
            done.extend(messages)
            return
    for message in messages:
        try:
            if transaction is None:
                handler(message)
            else:
                with transaction():
                    handler(message)
        except Exception as exc:
            on_error(message, exc)
            continue
        done.append(message)


def entry_id_key(entry_id: str) -> tuple[int, int]:
    """Return the sort key of a bus entry id (``"<ms>-<seq>"`` on Redis, ``"<n>-0"`` in memory, ``"0"``).

    Ids of one stream are totally ordered by this key on every adapter; raise ``ValueError`` for anything
    that is not an entry id.
    """
    head, sep, tail = entry_id.partition("-")
    if not (head.isdigit() and head.isascii() and (not sep or (tail.isdigit() and tail.isascii()))):
        raise ValueError(f"not a bus entry id: {entry_id!r}")
    return int(head), int(tail) if sep else 0


def dead_letter_stream(stream: str) -> str:
    """Return the name of ``stream``'s dead-letter stream."""
    return stream + DEAD_SUFFIX


@runtime_checkable
class EventBus(Protocol):
    """Streams of messages with consumer groups. Implementations: in-process memory bus, Redis Streams.

    Handlers run in the caller's thread. ``consume`` and ``claim_stale`` of one consumer name should be
    called on the same bus object (claimed messages wait there for the consumer's next ``consume``).
    """

    def publish(self, stream: str, type: str, payload: Mapping[str, Any], *, trace_id: str | None = None) -> str:
        """Append one message and return its id."""
        ...

    def publish_many(
        self, stream: str, messages: Iterable[tuple[str, Mapping[str, Any]]], *, trace_id: str | None = None
    ) -> list[str]:
        """Append ``(type, payload)`` messages in one round trip and return their ids in order."""
        ...

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
        """Deliver up to ``batch`` messages to ``handler`` and acknowledge the ones it returned from.

        Messages claimed for ``consumer`` come first, then new ones; with none, wait up to ``block_ms``
        (0: do not wait). The group is created at the start of the stream if missing. A handler
        ``Exception`` is logged and leaves its message pending (or dead-letters it after its last allowed
        delivery); a ``BaseException`` propagates and acknowledges nothing more. ``transaction`` (e.g.
        ``store.transaction``) wraps the whole batch, so its effects commit once, before the
        acknowledgement; see :func:`deliver_batch`. Return the number of messages handled successfully.
        """
        ...

    def claim_stale(self, stream: str, group: str, consumer: str, min_idle_ms: int, *, batch: int = 100) -> int:
        """Take over messages pending in ``group`` for at least ``min_idle_ms`` (their consumer died).

        The next :meth:`consume` of ``consumer`` delivers them; a message already delivered
        ``max_deliveries`` times goes to the dead-letter stream instead. Return the number claimed for
        delivery.
        """
        ...

    def pending(self, stream: str, group: str) -> int:
        """Return how many messages of ``group`` were delivered but not acknowledged."""
        ...

    def dead_letters(self, stream: str, limit: int = 1000) -> list[BusMessage]:
        """Return the oldest ``limit`` dead letters of ``stream``."""
        ...

    def length(self, stream: str) -> int:
        """Return how many entries ``stream`` retains (bounded by the adapter's ``maxlen``, roughly)."""
        ...

    def read_after(self, stream: str, after_id: str, *, count: int = 1000, block_ms: int = 0) -> list[BusMessage]:
        """Return up to ``count`` entries of ``stream`` with ids strictly after ``after_id``, oldest first.

        A broadcast read: no consumer group, nothing pending, nothing acknowledged; every reader sees every
        retained entry. ``after_id`` ``"0"`` (:data:`FIRST_ID`) reads from the oldest retained entry. With
        none there, wait up to ``block_ms`` for one (0: do not wait). Compare ids with :func:`entry_id_key`.
        """
        ...

    def last_id(self, stream: str) -> str:
        """Return the id of the newest entry of ``stream``, or ``"0"`` (:data:`FIRST_ID`) when it is empty."""
        ...

    def close(self) -> None:
        """Release connections; the bus is unusable afterwards."""
        ...


@dataclass(frozen=True, slots=True)
class BusSettings:
    """Tuning shared by the adapters: retention per stream and the delivery limit."""

    maxlen: int = 1_000_000
    max_deliveries: int = DEFAULT_MAX_DELIVERIES
    dead_maxlen: int = 100_000

    def __post_init__(self) -> None:
        if self.maxlen < 1 or self.dead_maxlen < 1 or self.max_deliveries < 1:
            raise ConfigError(f"invalid bus settings {self!r}: maxlen, dead_maxlen and max_deliveries must be >= 1")


__all__ = [
    "COMMANDS_STREAM",
    "DEAD_SUFFIX",
    "DEFAULT_MAX_DELIVERIES",
    "EVENTS_STREAM",
    "FIRST_ID",
    "BusError",
    "BusMessage",
    "BusSettings",
    "CommandType",
    "ErrorCallback",
    "EventBus",
    "EventType",
    "Handler",
    "Transaction",
    "dead_letter_stream",
    "deliver_batch",
    "entry_id_key",
]
