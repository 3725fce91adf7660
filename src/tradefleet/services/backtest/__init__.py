"""Backtests through the real engine, and the dispatcher over both engines."""

from tradefleet.services.backtest.runner import run_backtest, run_event_backtest

__all__ = ["run_backtest", "run_event_backtest"]
