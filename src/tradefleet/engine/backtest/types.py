"""What a backtest takes and what it gives back: plain data shared by both engines, reports and hyperopt."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from tradefleet.core.risk import RiskSettings
from tradefleet.core.trades import RoundTripPnL

EngineName = Literal["fast", "event"]


@dataclass(frozen=True)
class BacktestConfig:
    """One backtest: a strategy with parameters over pairs and a time range, under risk settings."""

    strategy: str
    pairs: tuple[str, ...]
    timeframe: str
    start_ms: int | None = None  # first candle traded (open time); history before it only warms indicators up
    end_ms: int | None = None  # exclusive
    strategy_params: dict[str, Any] = field(default_factory=dict)
    risk: RiskSettings = field(default_factory=RiskSettings)
    starting_balance: float = 1000.0
    quote_currency: str = "BTC"
    taker_fee: float = 0.001
    slippage_bps: float = 5.0
    amount_step: float = 1e-8
    price_tick: float = 1e-8
    engine: EngineName = "fast"


@dataclass(slots=True)
class BacktestTrade(RoundTripPnL):
    """One closed (or, at the end of the data, still open) round trip."""

    pair: str
    open_ms: int
    close_ms: int | None
    open_rate: float
    close_rate: float | None
    amount: float
    fee_open: float
    fee_close: float
    exit_reason: str
    enter_tag: str
    is_open: bool = False

    def key(self) -> tuple[Any, ...]:
        """Everything two engines must agree on, for parity checks."""
        return (
            self.pair,
            self.open_ms,
            self.close_ms,
            self.open_rate,
            self.close_rate,
            self.amount,
            self.fee_open,
            self.fee_close,
            self.exit_reason,
        )


@dataclass
class BacktestResult:
    """Trades, equity curve and metrics of one run."""

    config: BacktestConfig
    trades: list[BacktestTrade]
    equity_ms: np.ndarray  # int64 epoch ms, one point per candle close of the traded range
    equity: np.ndarray  # float64 account value at those times (cash + positions marked at the close)
    candles: int  # candle-steps simulated (pairs × candles)
    elapsed_s: float
    data_fingerprint: str = ""
    metrics: dict[str, Any] = field(default_factory=dict)
