"""Commands to bots over the bus, and the replies gateways send back as ``CommandResult`` events.

The API (any process) publishes a command on the ``commands`` stream; every gateway reads it (each gateway
has its own consumer group) and the one holding the bot's lease acts. State commands (start, stop, stop
entries, kill switch) only wake the gateways: the wanted state is already committed in the database, which
they reconcile with, so a command lost with a dead gateway loses nothing. Manual orders (ForceEnter,
ForceExit) expire after ``ttl_s`` and are applied at most once; their answer comes back as a
``CommandResult`` event that :class:`CommandReplies` hands to the waiting request.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from tradefleet.core.bus import COMMANDS_STREAM, BusMessage, CommandType, EventBus, EventType
from tradefleet.logs import current_trace_id

DEFAULT_TTL_S = 30.0


@dataclass(frozen=True, slots=True)
class CommandReply:
    command_id: str
    ok: bool
    message: str
    result: dict[str, Any]


class CommandReplies:
    """Waiters for command answers, fed with every event the process sees (an events-feed listener)."""

    def __init__(self, keep: int = 1000) -> None:
        self._lock = threading.Condition()
        self._replies: dict[str, CommandReply] = {}
        self._keep = keep

    def __call__(self, message: BusMessage) -> None:
        """Take ``message`` if it is a command result (the listener interface)."""
        if message.type != EventType.COMMAND_RESULT:
            return
        payload = message.payload
        try:
            result = json.loads(str(payload.get("result") or "{}"))
        except ValueError:
            result = {}
        reply = CommandReply(
            str(payload["command_id"]), bool(payload.get("ok")), str(payload.get("message", "")), result
        )
        with self._lock:
            self._replies[reply.command_id] = reply
            while len(self._replies) > self._keep:
                self._replies.pop(next(iter(self._replies)))
            self._lock.notify_all()

    def wait(self, command_id: str, timeout_s: float) -> CommandReply | None:
        """Return the answer to ``command_id``, waiting up to ``timeout_s``; None when none came."""
        deadline = time.monotonic() + timeout_s
        with self._lock:
            while command_id not in self._replies:
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self._lock.wait(left)
            return self._replies.pop(command_id)


class BusCommands:
    """Send commands to the gateways over ``bus``; wait for their answers through ``replies``."""

    def __init__(self, bus: EventBus, replies: CommandReplies | None = None, *, ttl_s: float = DEFAULT_TTL_S) -> None:
        self.bus = bus
        self.replies = replies
        self.ttl_s = ttl_s

    def send(self, command: CommandType, bot_id: str, payload: Mapping[str, Any], *, actor: str) -> str:
        """Publish ``command`` for ``bot_id``; return its command id (the trace id travels with it)."""
        command_id = uuid.uuid4().hex
        now = time.time_ns() // 1_000_000
        body = {
            **payload,
            "command_id": command_id,
            "bot_id": bot_id,
            "actor": actor,
            "issued_ms": now,
            "expires_ms": now + int(self.ttl_s * 1000),
        }
        self.bus.publish(COMMANDS_STREAM, command.value, body, trace_id=current_trace_id())
        return command_id

    def wait(self, command_id: str, timeout_s: float) -> CommandReply | None:
        """Return the gateway's answer to ``command_id``, or None (no listener, or no answer in time)."""
        if self.replies is None:
            return None
        return self.replies.wait(command_id, timeout_s)
