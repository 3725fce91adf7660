"""What the Freqtrade-compatible API answers and takes: Freqtrade's own field names and JSON shapes.

Field names and types follow Freqtrade's REST API (``freqtrade/rpc/api_server/api_schemas.py``), so its
clients (``freqtrade-client``, FreqUI) read them unchanged. Values TradeFleet does not have are sent the way
Freqtrade sends them when it has no value either (``None``, ``0``, ``""``); extra keys are harmless to those
clients, which ignore what they do not know.

Dates are ``"%Y-%m-%d %H:%M:%S"`` in UTC and timestamps are milliseconds, as in Freqtrade.
"""

from __future__ import annotations

from datetime import date
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from tradefleet.core.bots import check_pairs

# ---------------------------------------------------------------------------------------------- requests


class _Body(BaseModel):
    # Freqtrade's payloads accept unknown keys (newer clients send more than older servers know).
    model_config = ConfigDict(extra="ignore", frozen=True, allow_inf_nan=False)


class ForceEnterPayload(_Body):
    """Body of ``forceenter`` / ``forcebuy``; TradeFleet enters long at market, with an optional stake."""

    pair: str = Field(min_length=3, max_length=50)
    side: Literal["long", "short"] = "long"
    price: float | None = Field(None, gt=0, description="limit price: not supported, leave it out")
    ordertype: Literal["market", "limit"] | None = None
    stakeamount: float | None = Field(None, gt=0, description="quote to commit; the bot's stake rule if absent")
    entry_tag: str | None = Field(None, max_length=100)
    leverage: float | None = Field(None, gt=0)

    @field_validator("pair")
    @classmethod
    def _pair(cls, value: str) -> str:
        return check_pairs([value])[0]


class ForceExitPayload(_Body):
    """Body of ``forceexit`` / ``forcesell``: a trade id or ``"all"``; only whole market exits."""

    tradeid: int | str
    ordertype: Literal["market", "limit"] | None = None
    amount: float | None = Field(None, gt=0, description="partial exits are not supported")
    price: float | None = Field(None, gt=0, description="limit price: not supported")


class PairCandlesPayload(_Body):
    """Body of ``POST pair_candles`` (freqtrade-client sends it when columns are asked for)."""

    pair: str = Field(min_length=3, max_length=50)
    timeframe: str = Field(min_length=2, max_length=5)
    limit: int | None = Field(None, ge=1, le=10_000)
    columns: list[str] | None = None


# ---------------------------------------------------------------------------------------------- answers


class Ping(BaseModel):
    status: str


class AccessToken(BaseModel):
    access_token: str
    refresh_token: str | None = Field(None, description="the rotated refresh token (TradeFleet rotates them)")


class AccessAndRefreshToken(BaseModel):
    access_token: str
    refresh_token: str


class Version(BaseModel):
    version: str


class StatusMsg(BaseModel):
    status: str


class ResultMsg(BaseModel):
    result: str


class Order(BaseModel):
    pair: str
    order_id: str
    status: str
    remaining: float | None = None
    amount: float
    safe_price: float
    cost: float
    filled: float | None = None
    ft_order_side: str
    order_type: str
    is_open: bool
    order_timestamp: int | None = None
    order_filled_timestamp: int | None = None
    ft_fee_base: float | None = None
    ft_order_tag: str | None = None


class Trade(BaseModel):
    """One trade, open or closed, as Freqtrade's ``Trade.to_json``."""

    trade_id: int
    pair: str
    base_currency: str
    quote_currency: str
    is_open: bool
    is_short: bool = False
    exchange: str
    amount: float
    amount_requested: float
    stake_amount: float
    max_stake_amount: float
    strategy: str
    enter_tag: str | None
    timeframe: int = Field(description="minutes")
    fee_open: float | None = Field(description="ratio of the entry value")
    fee_open_cost: float | None
    fee_open_currency: str | None
    fee_close: float | None
    fee_close_cost: float | None
    fee_close_currency: str | None
    open_date: str
    open_timestamp: int
    open_fill_date: str | None
    open_fill_timestamp: int | None
    open_rate: float
    open_rate_requested: float | None = None
    open_trade_value: float
    close_date: str | None
    close_timestamp: int | None
    close_rate: float | None
    close_rate_requested: float | None = None
    close_profit: float | None
    close_profit_pct: float | None
    close_profit_abs: float | None
    trade_duration_s: int | None
    trade_duration: int | None = Field(description="minutes")
    profit_ratio: float | None
    profit_pct: float | None
    profit_abs: float | None
    profit_fiat: float | None = None
    realized_profit: float
    realized_profit_ratio: float | None
    exit_reason: str | None
    exit_order_status: str | None
    stop_loss_abs: float | None
    stop_loss_ratio: float | None
    stop_loss_pct: float | None
    stoploss_last_update: str | None = None
    stoploss_last_update_timestamp: int | None = None
    initial_stop_loss_abs: float | None
    initial_stop_loss_ratio: float | None
    initial_stop_loss_pct: float | None
    min_rate: float | None = None
    max_rate: float | None = None
    has_open_orders: bool
    orders: list[Order]
    leverage: float = 1.0
    interest_rate: float = 0.0
    liquidation_price: float | None = None
    funding_fees: float = 0.0
    trading_mode: str = "spot"
    amount_precision: float | None = None
    price_precision: float | None = None
    precision_mode: int | None = None


class OpenTrade(Trade):
    """An open trade as ``status`` answers it: with the current rate and the distance to its stop."""

    stoploss_current_dist: float | None
    stoploss_current_dist_pct: float | None
    stoploss_current_dist_ratio: float | None
    stoploss_entry_dist: float | None
    stoploss_entry_dist_ratio: float | None
    current_rate: float
    total_profit_abs: float
    total_profit_fiat: float | None = None
    total_profit_ratio: float | None


class TradeHistory(BaseModel):
    trades: list[Trade]
    trades_count: int
    offset: int
    total_trades: int


class Count(BaseModel):
    current: int
    max: int
    total_stake: float


class Balance(BaseModel):
    currency: str
    free: float
    balance: float
    used: float
    bot_owned: float | None
    est_stake: float
    est_stake_bot: float | None
    stake: str
    side: str = "long"
    leverage: float = 1.0
    is_position: bool = False
    position: float = 0.0
    is_bot_managed: bool = True


class Balances(BaseModel):
    currencies: list[Balance]
    total: float
    total_bot: float
    symbol: str
    value: float
    value_bot: float
    stake: str
    note: str
    starting_capital: float
    starting_capital_ratio: float
    starting_capital_pct: float
    starting_capital_fiat: float
    starting_capital_fiat_ratio: float
    starting_capital_fiat_pct: float


class _TagStats(BaseModel):
    profit_ratio: float
    profit_pct: float
    profit_abs: float
    count: int


class PerformanceEntry(_TagStats):
    pair: str
    profit: float = Field(description="percent, as profit_pct (kept by Freqtrade for old clients)")


class EntryStats(_TagStats):
    enter_tag: str


class ExitStats(_TagStats):
    exit_reason: str


class MixTagStats(_TagStats):
    mix_tag: str


class Profit(BaseModel):
    profit_closed_coin: float
    profit_closed_percent_mean: float
    profit_closed_ratio_mean: float
    profit_closed_percent_sum: float
    profit_closed_ratio_sum: float
    profit_closed_percent: float
    profit_closed_ratio: float
    profit_closed_fiat: float
    profit_all_coin: float
    profit_all_percent_mean: float
    profit_all_ratio_mean: float
    profit_all_percent_sum: float
    profit_all_ratio_sum: float
    profit_all_percent: float
    profit_all_ratio: float
    profit_all_fiat: float
    trade_count: int
    closed_trade_count: int
    first_trade_date: str
    first_trade_humanized: str
    first_trade_timestamp: int
    latest_trade_date: str
    latest_trade_humanized: str
    latest_trade_timestamp: int
    avg_duration: str
    best_pair: str
    best_rate: float
    best_pair_profit_ratio: float
    best_pair_profit_abs: float
    winning_trades: int
    losing_trades: int
    profit_factor: float | None = Field(description="None when there is no loss (Freqtrade's infinity)")
    winrate: float
    expectancy: float
    expectancy_ratio: float
    max_drawdown: float
    max_drawdown_abs: float
    max_drawdown_start: str
    max_drawdown_start_timestamp: int
    max_drawdown_end: str
    max_drawdown_end_timestamp: int
    trading_volume: float | None
    bot_start_timestamp: int
    bot_start_date: str


class ExitReasonStats(BaseModel):
    wins: int
    losses: int
    draws: int


class Stats(BaseModel):
    exit_reasons: dict[str, ExitReasonStats]
    durations: dict[str, float | None] = Field(description="mean seconds of wins, draws and losses")


class PeriodProfit(BaseModel):
    date: date
    abs_profit: float
    rel_profit: float
    starting_balance: float
    fiat_value: float
    trade_count: int


class PeriodProfits(BaseModel):
    data: list[PeriodProfit] = Field(description="newest period first")
    fiat_display_currency: str
    stake_currency: str


class Whitelist(BaseModel):
    whitelist: list[str]
    length: int
    method: list[str]


class Blacklist(BaseModel):
    blacklist: list[str]
    blacklist_expanded: list[str]
    errors: dict[str, Any]
    length: int
    method: list[str]


class Lock(BaseModel):
    id: int
    active: bool
    lock_end_time: str
    lock_end_timestamp: int
    lock_time: str
    lock_timestamp: int
    pair: str
    side: str
    reason: str | None


class Locks(BaseModel):
    lock_count: int
    locks: list[Lock]


class Logs(BaseModel):
    log_count: int
    logs: list[list[Any]] = Field(description="[date, timestamp ms, logger, level, message], oldest first")


class Health(BaseModel):
    last_process: str | None = None
    last_process_ts: int | None = Field(None, description="seconds")
    bot_start: str | None = None
    bot_start_ts: int | None = None
    bot_startup: str | None = None
    bot_startup_ts: int | None = None


class ShowConfig(BaseModel):
    version: str
    strategy_version: str | None = None
    api_version: float
    dry_run: bool
    trading_mode: str
    short_allowed: bool
    stake_currency: str
    stake_amount: str = Field(description="quote per trade, or 'unlimited' when the stake is a share of equity")
    stake_mode: str = Field(description="TradeFleet's stake rule: fixed (quote) or percent (of equity)")
    stake_percent: float | None
    available_capital: float | None
    stake_currency_decimals: int
    max_open_trades: int
    minimal_roi: dict[str, float]
    stoploss: float | None
    stoploss_on_exchange: bool
    trailing_stop: bool | None
    trailing_stop_positive: float | None
    trailing_stop_positive_offset: float | None
    trailing_only_offset_is_reached: bool | None
    unfilledtimeout: dict[str, Any] | None = None
    order_types: dict[str, Any] | None = None
    use_custom_stoploss: bool | None = None
    timeframe: str
    timeframe_ms: int
    timeframe_min: int
    exchange: str
    strategy: str
    force_entry_enable: bool
    exit_pricing: dict[str, Any]
    entry_pricing: dict[str, Any]
    bot_name: str
    state: str
    runmode: str
    position_adjustment_enable: bool
    max_entry_position_adjustment: int


class PlotConfig(BaseModel):
    main_plot: dict[str, Any]
    subplots: dict[str, Any]


class PairHistory(BaseModel):
    strategy: str
    pair: str
    timeframe: str
    timeframe_ms: int
    columns: list[str]
    data: list[list[Any]]
    length: int
    buy_signals: int
    sell_signals: int
    enter_long_signals: int
    exit_long_signals: int
    enter_short_signals: int
    exit_short_signals: int
    last_analyzed: str
    last_analyzed_ts: int
    data_start_ts: int
    data_start: str
    data_stop: str
    data_stop_ts: int
