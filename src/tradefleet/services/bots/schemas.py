"""What the bots service takes and answers: Pydantic models shared by every front end (REST, CLI, MCP).

Requests reject unknown fields (``extra="forbid"``): an ``owner`` or ``status`` in a body is a 422, never a
silent mass assignment. Bot ids, pairs and timeframes are checked with the same rules as ``core.bots``.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from tradefleet.core.bots import PRINTABLE, BotStatus, check_bot_id, check_pairs, check_timeframe
from tradefleet.core.risk import RiskSettings

KillLevelName = Literal["HALT_ENTRIES", "CANCEL_ALL", "FLATTEN"]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class BotCreate(_Body):
    """A new bot; the caller becomes its owner."""

    bot_id: str = Field(max_length=63)
    strategy: str = Field(min_length=1, max_length=200)
    strategy_params: dict[str, Any] = Field(default_factory=dict)
    pairs: list[str] = Field(min_length=1, max_length=200)
    timeframe: str = "5m"
    exchange: str = Field("simulated", min_length=1, max_length=100)
    mode: Literal["paper", "live"] = "paper"
    quote_currency: str = Field("USDT", min_length=1, max_length=20)
    starting_balance: float = Field(10_000.0, gt=0)
    risk: RiskSettings = RiskSettings()

    _bot_id = field_validator("bot_id")(check_bot_id)
    _pairs = field_validator("pairs")(check_pairs)
    _timeframe = field_validator("timeframe")(check_timeframe)


class BotUpdate(_Body):
    """Changes to a bot: ``risk`` keys are merged into its risk settings, the others replace the field.

    The running fleet reads a bot's configuration when it starts the bot: changes apply at the next start.
    """

    risk: dict[str, Any] | None = None
    pairs: list[str] | None = Field(None, min_length=1, max_length=200)
    strategy_params: dict[str, Any] | None = None

    @field_validator("pairs")
    @classmethod
    def _pairs(cls, value: list[str] | None) -> list[str] | None:
        return None if value is None else check_pairs(value)


class EmergencyStop(_Body):
    level: KillLevelName
    reason: str = Field("", max_length=500, pattern=PRINTABLE)


class BotOut(BaseModel):
    bot_id: str
    owner_id: int | None
    status: BotStatus
    strategy: str
    strategy_params: dict[str, Any]
    pairs: list[str]
    timeframe: str
    exchange: str
    mode: str
    quote_currency: str
    starting_balance: float
    risk: RiskSettings


class BotStatusOut(BaseModel):
    bot_id: str
    status: BotStatus
    kill_switch: str = Field(description="level set on this bot")
    fleet_kill_switch: str = Field(description="level set on the whole fleet")
    effective_kill_switch: str
    open_trades: int
    last_candle_ms: int | None = Field(description="newest candle the bot processed, over its pairs")
    progress: dict[str, int] = Field(description="pair → last processed candle (open time, ms)")
    gateway: str | None = Field(None, description="the gateway running the bot now (None: not running anywhere)")


class PositionOut(BaseModel):
    trade_id: int
    pair: str
    open_ms: int
    open_rate: float
    amount: float
    cost: float
    stop_price: float
    enter_tag: str
    unrealized_pnl: float | None = Field(description="at the last equity snapshot, when it can be attributed")


class PositionsOut(BaseModel):
    bot_id: str
    as_of_ms: int | None = Field(description="time of the last equity snapshot, if any")
    unrealized_total: float | None
    positions: list[PositionOut]


class TradeOut(BaseModel):
    trade_id: int
    pair: str
    is_open: bool
    open_ms: int
    close_ms: int | None
    open_rate: float
    close_rate: float | None
    amount: float
    fee_open: float
    fee_close: float
    profit_abs: float
    profit_ratio: float
    enter_tag: str
    exit_reason: str


class TradesPage(BaseModel):
    bot_id: str
    total: int = Field(description="closed trades matching the filters")
    limit: int
    offset: int
    trades: list[TradeOut] = Field(description="newest first")


class PairPerformance(BaseModel):
    pair: str
    trades: int
    wins: int
    win_rate: float
    profit_abs: float
    profit_ratio: float = Field(description="profit over the quote committed, fees included")


class PerformanceOut(BaseModel):
    bot_id: str
    trades: int
    wins: int
    win_rate: float
    profit_abs: float
    profit_ratio: float
    pairs: list[PairPerformance] = Field(description="best pair first")


class EquityPoint(BaseModel):
    ts_ms: int
    cash: float
    equity: float
    realized: float
    unrealized: float
    fees_paid: float


class KillSwitchOut(BaseModel):
    bot_id: str
    level: str
    actor: str
    reason: str


class ForceEnterIn(_Body):
    """Buy ``pair`` now at market (the risk rules still apply)."""

    pair: str = Field(min_length=3, max_length=40)
    stake_amount: float | None = Field(None, gt=0, description="quote to spend; default: the bot's stake rule")
    enter_tag: str | None = Field(None, max_length=100, pattern=PRINTABLE)

    @field_validator("pair")
    @classmethod
    def _pair(cls, value: str) -> str:
        return check_pairs([value])[0]


class ForceExitIn(_Body):
    """Sell at market one trade, every trade of a pair, or (neither given) every open trade."""

    trade_id: int | None = Field(None, ge=1)
    pair: str | None = Field(None, min_length=3, max_length=40)


class CommandOut(BaseModel):
    """A command sent to the gateway running the bot, and its answer.

    ``status``: ``done`` (the gateway did it), ``failed`` (it refused: see ``message``) or ``accepted`` (sent;
    no answer within the wait: check the bot's orders and trades).
    """

    command_id: str
    bot_id: str
    command: str
    status: Literal["done", "failed", "accepted"]
    message: str = ""
    result: dict[str, Any] = Field(default_factory=dict)


class OrderOut(BaseModel):
    client_order_id: str
    pair: str
    side: str
    type: str
    status: str
    intent: str
    amount: float
    filled: float
    price: float | None
    stop_price: float | None
    average: float
    created_ms: int
    reason: str
    trade_id: int | None


class LogLineOut(BaseModel):
    ts_ms: int
    level: str
    logger: str
    message: str


class AccountOut(BaseModel):
    """The bot's account in its quote currency, as of its last equity snapshot."""

    bot_id: str
    quote_currency: str
    starting_balance: float
    cash: float
    equity: float
    realized: float
    unrealized: float
    fees_paid: float
    open_trades: int
    as_of_ms: int | None
