"""Hyperopt loss functions: each maps a backtest (result, metrics) to a number to minimise.

Risk-adjusted ratios of short backtests swing wildly (a day without a loss makes Sortino infinite), so
ratios are clipped to ±:data:`RATIO_CAP`; an undefined ratio counts as the cap when the run made money and as
0 otherwise. Epochs with fewer than ``min_trades`` closed trades get :func:`too_few_trades` instead, which is
worse than any real loss and falls as the count rises, so the search moves towards strategies that trade.
"""

from __future__ import annotations

from collections.abc import Callable

from tradefleet.core.errors import ConfigError
from tradefleet.core.metrics import Metrics
from tradefleet.engine.backtest.types import BacktestResult

LossFunction = Callable[[BacktestResult, Metrics], float]

RATIO_CAP = 20.0
DRAWDOWN_WEIGHT = 1.0  # profit-drawdown: each 1% of max drawdown costs 1% of profit
TOO_FEW_TRADES = 100.0


def _ratio(value: float | None, metrics: Metrics) -> float:
    if value is None:
        return RATIO_CAP if metrics.profit_ratio > 0 else 0.0
    return max(-RATIO_CAP, min(RATIO_CAP, value))


def profit_loss(result: BacktestResult, metrics: Metrics) -> float:
    """Total profit relative to the starting balance (more is better)."""
    return -metrics.profit_ratio


def sharpe_loss(result: BacktestResult, metrics: Metrics) -> float:
    """Annualised Sharpe ratio of daily returns."""
    return -_ratio(metrics.sharpe, metrics)


def sortino_loss(result: BacktestResult, metrics: Metrics) -> float:
    """Annualised Sortino ratio: like Sharpe, but only losing days count as risk."""
    return -_ratio(metrics.sortino, metrics)


def calmar_loss(result: BacktestResult, metrics: Metrics) -> float:
    """Calmar ratio: annual growth over the deepest drawdown."""
    return -_ratio(metrics.calmar, metrics)


def profit_drawdown_loss(result: BacktestResult, metrics: Metrics) -> float:
    """Profit penalised by the deepest drawdown (both relative): ``-(profit - weight × max drawdown)``."""
    return -(metrics.profit_ratio - DRAWDOWN_WEIGHT * metrics.max_drawdown_ratio)


LOSSES: dict[str, LossFunction] = {
    "profit": profit_loss,
    "sharpe": sharpe_loss,
    "sortino": sortino_loss,
    "calmar": calmar_loss,
    "profit-drawdown": profit_drawdown_loss,
}
ALIASES = {"drawdown": "profit-drawdown", "max-drawdown": "profit-drawdown", "profit_drawdown": "profit-drawdown"}


def get_loss(name: str) -> LossFunction:
    """Return the loss function called ``name``; unknown names are a ConfigError listing the known ones."""
    key = ALIASES.get(name.strip().lower(), name.strip().lower())
    if key not in LOSSES:
        raise ConfigError(f"unknown hyperopt loss {name!r}", hint=f"choose one of {', '.join(LOSSES)}")
    return LOSSES[key]


def canonical_loss(name: str) -> str:
    """Return the canonical name of a loss (aliases resolved)."""
    get_loss(name)
    key = name.strip().lower()
    return ALIASES.get(key, key)


def too_few_trades(trades: int, min_trades: int) -> float:
    """Return the value of an epoch that closed fewer than ``min_trades`` trades."""
    return TOO_FEW_TRADES + (min_trades - trades)


def evaluate(loss: LossFunction, result: BacktestResult, metrics: Metrics, min_trades: int) -> float:
    """Return the loss of one epoch, or the too-few-trades value."""
    if metrics.trades < min_trades:
        return too_few_trades(metrics.trades, min_trades)
    return float(loss(result, metrics))
