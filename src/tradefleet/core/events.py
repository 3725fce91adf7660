"""Domain events: the vocabulary the engine emits, the bus carries and the WebSocket shows."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field, fields
from typing import Any


def _new_id() -> str:
    return uuid.uuid4().hex


@dataclass(frozen=True, slots=True, kw_only=True)
class DomainEvent:
    bot_id: str
    ts_ms: int
    event_id: str = field(default_factory=_new_id)

    @property
    def type(self) -> str:
        return type(self).__name__

    def to_dict(self) -> dict[str, Any]:
        """Return the event as JSON-ready data with its ``type`` (fields are flat scalars)."""
        data = {f.name: getattr(self, f.name) for f in fields(self)}
        data["type"] = self.type
        return data


@dataclass(frozen=True, slots=True, kw_only=True)
class OrderUpdate(DomainEvent):
    client_order_id: str
    pair: str
    side: str
    status: str
    amount: float
    filled: float
    average: float
    intent: str


@dataclass(frozen=True, slots=True, kw_only=True)
class TradeExecuted(DomainEvent):
    """A fill turned into a position change: an entry or an exit of a round-trip trade."""

    trade_id: int
    pair: str
    side: str
    amount: float
    price: float
    fee: float
    action: str  # "entry" | "exit"
    reason: str = ""
    profit_abs: float | None = None
    profit_ratio: float | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class PositionUpdate(DomainEvent):
    pair: str
    amount: float
    open_rate: float
    mark: float
    unrealized: float


@dataclass(frozen=True, slots=True, kw_only=True)
class BotStatusUpdate(DomainEvent):
    status: str
    detail: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class RiskAlert(DomainEvent):
    rule: str
    message: str
    pair: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class AISignalReceived(DomainEvent):
    pair: str
    signal: str
    confidence: float


@dataclass(frozen=True, slots=True, kw_only=True)
class ModelDeployed(DomainEvent):
    model: str
    version: str


@dataclass(frozen=True, slots=True, kw_only=True)
class TaskProgress(DomainEvent):
    task_id: str
    progress: float
    message: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class CommandResult(DomainEvent):
    """A gateway's answer to one command (``command_id``): done or refused, with a one-line reason.

    ``result`` is JSON text (events stay flat scalars): e.g. the client order id a forced entry placed.
    """

    command_id: str
    command: str
    ok: bool
    message: str = ""
    result: str = "{}"
