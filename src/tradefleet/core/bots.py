"""Bot definitions: what a bot trades and under which limits."""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from tradefleet.core.candles import timeframe_to_seconds, validate_pair
from tradefleet.core.errors import ConfigError
from tradefleet.core.risk import RiskSettings

_BOT_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")


PRINTABLE = r"^[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f]*$"  # free text: no control characters but tab and newlines


def check_bot_id(value: str) -> str:
    """Return ``value`` if it is a valid bot id; raise ValueError (for validators) otherwise."""
    if not _BOT_ID.match(value):
        raise ValueError("bot_id must be 1-63 characters of a-z, 0-9, '-' or '_', starting alphanumeric")
    return value


def check_pairs(values: Iterable[str]) -> list[str]:
    """Return the pairs normalised to BASE/QUOTE; raise ValueError on a bad or repeated pair."""
    try:
        pairs = [validate_pair(p) for p in values]
    except ConfigError as exc:
        raise ValueError(exc.message) from None
    if len(set(pairs)) != len(pairs):
        raise ValueError("pairs contain duplicates")
    return pairs


def check_timeframe(value: str) -> str:
    """Return ``value`` if it is a timeframe like 5m or 1h; raise ValueError otherwise."""
    try:
        timeframe_to_seconds(value)
    except ConfigError as exc:
        raise ValueError(exc.message) from None
    return value


class BotStatus(enum.StrEnum):
    STOPPED = "stopped"
    RUNNING = "running"
    STOPPING_ENTRIES = "stopentry"
    ERROR = "error"


class BotConfig(BaseModel):
    """Everything needed to run one bot; validated at construction."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    bot_id: str = Field(description="lower-case slug, unique in the fleet")
    strategy: str
    strategy_params: dict[str, Any] = Field(default_factory=dict)
    pairs: tuple[str, ...] = Field(min_length=1)
    timeframe: str = "5m"
    exchange: str = "simulated"
    mode: Literal["paper", "live"] = "paper"
    quote_currency: str = "USDT"
    starting_balance: float = Field(10_000.0, gt=0)
    risk: RiskSettings = RiskSettings()

    _bot_id = field_validator("bot_id")(check_bot_id)
    _timeframe = field_validator("timeframe")(check_timeframe)

    @field_validator("pairs")
    @classmethod
    def _pairs(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(check_pairs(value))
