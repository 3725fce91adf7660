"""What a live-events client sends (``/ws``): Pydantic models, unknown fields refused.

{"type": "auth", "token": "<access token | API key | service token>"}      first message, if no header
{"type": "subscribe", "bots": ["alpha"] | ["*"], "events": [...], "last_event_id": "..."}
{"type": "ping"}                                                               answered {"type": "pong"}
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

WsEventType = Literal[
    "PositionUpdate", "TradeExecuted", "AISignalReceived", "BotStatusUpdate", "OrderUpdate", "RiskAlert"
]
MAX_BOTS = 500


class _Message(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class AuthMessage(_Message):
    type: Literal["auth"]
    token: str = Field(min_length=1, max_length=4096)


class SubscribeMessage(_Message):
    """Bots to follow (``["*"]``: every bot the caller may see), event types (default: all six) and the
    id of the last event the client saw before it reconnected (the missed events are sent first)."""

    type: Literal["subscribe"]
    bots: list[Annotated[str, Field(min_length=1, max_length=63)]] = Field(min_length=1, max_length=MAX_BOTS)
    events: list[WsEventType] | None = Field(None, min_length=1)
    last_event_id: str | None = Field(None, pattern=r"^[0-9]{1,20}(-[0-9]{1,20})?$")


class PingMessage(_Message):
    type: Literal["ping"]


ClientMessage = Annotated[AuthMessage | SubscribeMessage | PingMessage, Field(discriminator="type")]
CLIENT_MESSAGE: TypeAdapter[AuthMessage | SubscribeMessage | PingMessage] = TypeAdapter(ClientMessage)

__all__ = [
    "CLIENT_MESSAGE",
    "MAX_BOTS",
    "AuthMessage",
    "ClientMessage",
    "PingMessage",
    "SubscribeMessage",
    "WsEventType",
]
