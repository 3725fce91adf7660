"""Built-in strategies and the loader for user strategies.

Public API: :func:`builtin_strategies`, :func:`load_strategy`, :func:`validate_strategy`,
:func:`list_strategies`, :func:`create_strategy_file`, and the four built-in classes.
"""

from __future__ import annotations

from tradefleet.strategies.bollinger_breakout import BollingerBreakout
from tradefleet.strategies.loader import (
    StrategyInfo,
    ValidationReport,
    builtin_strategies,
    create_strategy_file,
    list_strategies,
    load_strategy,
    load_strategy_file,
    validate_strategy,
)
from tradefleet.strategies.macd_trend import MacdTrend
from tradefleet.strategies.rsi_mean_reversion import RsiMeanReversion
from tradefleet.strategies.sma_cross import SmaCross

__all__ = [
    "BollingerBreakout",
    "MacdTrend",
    "RsiMeanReversion",
    "SmaCross",
    "StrategyInfo",
    "ValidationReport",
    "builtin_strategies",
    "create_strategy_file",
    "list_strategies",
    "load_strategy",
    "load_strategy_file",
    "validate_strategy",
]
