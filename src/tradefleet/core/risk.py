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


def stake_for_entry(settings: RiskSettings, equity: float, free_cash: float, cost_factor: float) -> float:
    """Return the quote to commit to a new trade, capped so price, fee and slippage fit in free cash."""
    stake = settings.stake_amount if settings.stake_mode == "fixed" else equity * settings.stake_amount / 100.0
    return max(0.0, min(stake, free_cash / cost_factor))


class ProtectionState:
    """Protections of one bot: cooldown per pair, stoploss guard, max drawdown. Pure and replayable."""

    def __init__(self, settings: RiskSettings, timeframe_ms: int) -> None:
        self.settings = settings
        self.timeframe_ms = timeframe_ms
        self.last_exit: dict[str, int] = {}
        self.stoploss_exits: list[int] = []
        self.blocked_until = 0
        self.peak_equity = 0.0

    def on_trade_closed(self, pair: str, close_ms: int, reason: str) -> str | None:
        """Record a closed trade; return the name of a protection it triggers, if any."""
        self.last_exit[pair] = max(self.last_exit.get(pair, 0), close_ms)
        guard = self.settings.stoploss_guard
        if guard.enabled and reason in ("stop_loss", "trailing_stop_loss"):
            self.stoploss_exits.append(close_ms)
            horizon = close_ms - guard.lookback_candles * self.timeframe_ms
            self.stoploss_exits = [t for t in self.stoploss_exits if t > horizon]
            if len(self.stoploss_exits) >= guard.trade_limit:
                self.blocked_until = max(self.blocked_until, close_ms + guard.stop_candles * self.timeframe_ms)
                self.stoploss_exits.clear()
                return "stoploss_guard"
        return None

    def on_equity(self, now_ms: int, equity: float) -> str | None:
        """Track peak equity; return "max_drawdown" when the drawdown limit trips."""
        self.peak_equity = max(self.peak_equity, equity)
        dd = self.settings.max_drawdown
        drawdown = 1.0 - equity / self.peak_equity if self.peak_equity > 0 else 0.0
        if dd.enabled and now_ms >= self.blocked_until and drawdown >= dd.max_drawdown - 1e-12:
            self.blocked_until = now_ms + dd.stop_candles * self.timeframe_ms
            self.peak_equity = equity
            return "max_drawdown"
        return None

    def entry_block(self, pair: str, now_ms: int) -> str | None:
        """Return why entries on ``pair`` are blocked at ``now_ms``, or None."""
        if now_ms < self.blocked_until:
            return "protection"
        cooldown = self.settings.cooldown.candles
        if cooldown and pair in self.last_exit and now_ms < self.last_exit[pair] + cooldown * self.timeframe_ms:
            return "cooldown"
        return None
