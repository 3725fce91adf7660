"""Risk settings, kill switch and the pure rules of the risk gate."""

from __future__ import annotations

import enum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class KillSwitchLevel(enum.IntEnum):
    """Escalating emergency levels; each includes the ones below it."""

    NONE = 0
    HALT_ENTRIES = 1
    CANCEL_ALL = 2
    FLATTEN = 3


class CooldownSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    candles: int = Field(0, ge=0, description="candles to wait on a pair after a trade closes")


class StoplossGuardSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    enabled: bool = False
    lookback_candles: int = Field(24, ge=1)
    trade_limit: int = Field(3, ge=1, description="stoploss exits within the lookback that trigger the guard")
    stop_candles: int = Field(12, ge=1)


class MaxDrawdownSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    enabled: bool = False
    max_drawdown: float = Field(0.2, gt=0, lt=1, description="fraction of peak equity")
    stop_candles: int = Field(48, ge=1)


class RiskSettings(BaseModel):
    """Per-bot risk limits; contradictory combinations are rejected at construction."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    stake_mode: Literal["fixed", "percent"] = "percent"
    stake_amount: float = Field(
        30.0, gt=0, description="quote per trade (fixed) or percent of equity per trade (percent)"
    )
    max_open_trades: int = Field(3, ge=1)
    max_per_pair: int = Field(1, ge=1)
    stoploss: float | None = Field(None, gt=-1, lt=0, description="overrides the strategy's stoploss")
    cooldown: CooldownSettings = CooldownSettings()
    stoploss_guard: StoplossGuardSettings = StoplossGuardSettings()
    max_drawdown: MaxDrawdownSettings = MaxDrawdownSettings()

    @model_validator(mode="after")
    def _coherent(self) -> RiskSettings:
        if self.stake_mode == "percent" and self.stake_amount > 100:
            raise ValueError(f"stake_amount {self.stake_amount}% is above 100% of equity")
        if self.max_per_pair > self.max_open_trades:
            raise ValueError(
                f"max_per_pair ({self.max_per_pair}) cannot exceed max_open_trades ({self.max_open_trades})"
            )
        if self.stake_mode == "percent" and self.stake_amount * self.max_open_trades > 100 + 1e-9:
            raise ValueError(
                f"{self.max_open_trades} trades × {self.stake_amount}% stake exceeds 100% of equity; "
                "lower stake_amount or max_open_trades"
            )
        return self


def roi_threshold(table: list[tuple[int, float]], minutes_open: float) -> float | None:
    """Return the ROI ratio in force after ``minutes_open`` minutes, or None if the table is empty."""
    found: float | None = None
    for start, ratio in table:
        if minutes_open >= start:
            found = ratio
        else:
            break
    return found


def trailing_stop(
    current_stop: float,
    open_rate: float,
    max_rate: float,
    stoploss: float,
    positive: float | None,
    offset: float,
    only_offset_reached: bool,
) -> float:
    """Return the new stop price after the high so far reached ``max_rate`` (stops only move up)."""
    profit = max_rate / open_rate - 1.0
    if only_offset_reached and profit < offset:
        return current_stop
    distance = stoploss
    if positive is not None and profit > offset:
        distance = -positive
    return max(current_stop, max_rate * (1.0 + distance))
