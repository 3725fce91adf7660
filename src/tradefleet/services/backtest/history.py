"""Backtest history: store every run in the trading database and list the stored runs."""

from __future__ import annotations

import time
from typing import Any

from tradefleet.adapters.storage.backtests import BacktestRunRecord, BacktestRunStore
from tradefleet.adapters.storage.db import upgrade
from tradefleet.core.metrics import Metrics
from tradefleet.engine.backtest.types import BacktestResult
from tradefleet.services.backtest.data import BacktestData


def record_of(
    result: BacktestResult, metrics: Metrics, data: BacktestData, *, now_ms: int | None = None
) -> BacktestRunRecord:
    """Return the history row of one run."""
    config = result.config
    return BacktestRunRecord(
        created_ms=now_ms if now_ms is not None else time.time_ns() // 1_000_000,
        strategy=config.strategy,
        pairs=tuple(config.pairs),
        timeframe=config.timeframe,
        timerange=data.timerange.text,
        start_ms=data.start_ms,
        end_ms=data.end_ms,
        engine=config.engine,
        trades=metrics.trades,
        profit_pct=100.0 * metrics.profit_ratio,
        max_drawdown_pct=100.0 * metrics.max_drawdown_ratio,
        sharpe=metrics.sharpe,
        data_fingerprint=data.fingerprint,
        elapsed_s=result.elapsed_s,
        config=_config_json(result),
        metrics=metrics.to_dict(),
    )


def _config_json(result: BacktestResult) -> dict[str, Any]:
    config = result.config
    return {
        "strategy": config.strategy,
        "pairs": list(config.pairs),
        "timeframe": config.timeframe,
        "start_ms": config.start_ms,
        "end_ms": config.end_ms,
        "strategy_params": dict(config.strategy_params),
        "risk": config.risk.model_dump(mode="json"),
        "starting_balance": config.starting_balance,
        "quote_currency": config.quote_currency,
        "taker_fee": config.taker_fee,
        "slippage_bps": config.slippage_bps,
        "engine": config.engine,
    }


def save_runs(database_url: str, records: list[BacktestRunRecord]) -> list[int]:
    """Migrate the database if needed, store the runs and return their ids."""
    upgrade(database_url)
    with BacktestRunStore.from_url(database_url) as store:
        return [store.save_run(r) for r in records]


def list_runs(database_url: str, *, limit: int | None = 50, strategy: str | None = None) -> list[BacktestRunRecord]:
    """Return stored runs, newest first (migrating an older database first)."""
    upgrade(database_url)
    with BacktestRunStore.from_url(database_url) as store:
        return store.list_runs(limit=limit, strategy=strategy)
