"""Backtests: plain result types and the fast kernel. The event-driven engine, which composes adapters,
lives in :mod:`tradefleet.services.backtest` with ``run_backtest`` choosing between the two."""

from tradefleet.engine.backtest.fast import run_fast_backtest
from tradefleet.engine.backtest.types import BacktestConfig, BacktestResult, BacktestTrade, EngineName

__all__ = ["BacktestConfig", "BacktestResult", "BacktestTrade", "EngineName", "run_fast_backtest"]
