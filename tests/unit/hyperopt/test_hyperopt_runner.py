"""Hyperopt runs: worker processes share one study, runs resume it, the best parameters are saved and loaded."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest

from tradefleet.core.candles import dates_ms
from tradefleet.core.errors import ConfigError
from tradefleet.core.risk import RiskSettings
from tradefleet.engine.backtest.types import BacktestConfig
from tradefleet.services.hyperopt.runner import (
    HyperoptJob,
    apply_saved_overrides,
    load_saved_params,
    params_path,
    run_hyperopt,
    write_params,
)
from tradefleet.services.hyperopt.spaces import Candidate
from tradefleet.strategies.loader import synthetic_candles
from tradefleet.strategies.rsi_mean_reversion import RsiMeanReversion

PAIRS = ("AAA/BTC", "BBB/BTC")


def candles() -> dict[str, pd.DataFrame]:
    return {pair: synthetic_candles(2500, "5m", seed=seed) for pair, seed in zip(PAIRS, (3, 11), strict=True)}


def job(storage: str, **changes: object) -> HyperoptJob:
    frames = candles()
    start = int(dates_ms(frames[PAIRS[0]]["date"])[300])
    config = BacktestConfig(
        strategy="RsiMeanReversion",
        pairs=PAIRS,
        timeframe="5m",
        start_ms=start,
        risk=RiskSettings(stake_mode="fixed", stake_amount=0.1, max_open_trades=2, max_per_pair=1),
        starting_balance=1.0,
        quote_currency="BTC",
    )
    base = HyperoptJob(
        strategy="RsiMeanReversion",
        search_dirs=(),
        spaces=("buy", "sell", "roi", "stoploss"),
        loss="profit",
        config=config,
        candles=frames,
        storage=storage,
        study_name="test-study",
        seed=7,
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def within_declared_ranges(candidate: Candidate) -> None:
    params = candidate.strategy_params()
    assert set(params) == {"rsi_period", "buy_rsi", "sell_rsi"}
    for name, value in params.items():
        declared = RsiMeanReversion.parameters()[name]
        assert declared.low <= value <= declared.high  # type: ignore[attr-defined]
    assert candidate.stoploss is not None and -0.35 <= candidate.stoploss <= -0.02
    assert candidate.minimal_roi is not None and candidate.minimal_roi["0"] > 0


def test_two_worker_processes_finish_a_study_that_the_next_run_continues(tmp_path: Path) -> None:
    storage = str(tmp_path / "hyperopt" / "test.journal")
    seen: list[int] = []

    first = run_hyperopt(job(storage), 8, jobs=2, on_epoch=lambda r: seen.append(r.worker))
    second = run_hyperopt(job(storage), 6, jobs=2)

    assert first.jobs == 2 and sorted(set(seen)) == [0, 1], "both workers ran epochs"
    assert (first.epochs_run, first.epochs_total) == (8, 8)
    assert (second.epochs_run, second.epochs_total) == (6, 14), "epochs of both runs add up in one study"
    assert second.best_value <= first.best_value
    within_declared_ranges(second.best)
    assert second.best_metrics["trades"] >= 0 and "profit_ratio" in second.best_metrics


def test_a_study_refuses_to_continue_with_other_settings(tmp_path: Path) -> None:
    storage = str(tmp_path / "h.journal")
    run_hyperopt(job(storage), 2, jobs=1)
    with pytest.raises(ConfigError, match="was run with other settings"):
        run_hyperopt(job(storage, loss="sharpe"), 2, jobs=1)


def test_rdb_storage_shares_one_study_between_worker_processes(database_url: str) -> None:
    """SQLite file and a fresh PostgreSQL database (workers on several machines share a study this way)."""
    first = run_hyperopt(job(database_url), 4, jobs=2)
    second = run_hyperopt(job(database_url), 4, jobs=2)

    assert (first.epochs_total, second.epochs_total) == (4, 8)
    within_declared_ranges(second.best)


def test_best_parameters_are_written_and_loaded_back_for_bots(tmp_path: Path) -> None:
    outcome = run_hyperopt(job(str(tmp_path / "h.journal")), 3, jobs=1)
    strategies_dir = tmp_path / "strategies"

    path = write_params(RsiMeanReversion, outcome.best, strategies_dir)

    assert path == strategies_dir / "RsiMeanReversion.json" == params_path(RsiMeanReversion, strategies_dir)
    assert json.loads(path.read_text())["strategy_name"] == "RsiMeanReversion"
    params = load_saved_params(RsiMeanReversion, strategies_dir)
    assert params == outcome.best.strategy_params()
    strategy = RsiMeanReversion(params)
    applied = apply_saved_overrides(strategy, strategies_dir)
    assert strategy.stoploss == outcome.best.stoploss == applied["stoploss"]
    assert strategy.minimal_roi == outcome.best.minimal_roi
    assert load_saved_params(RsiMeanReversion, tmp_path / "elsewhere") == {}


def test_parameters_of_a_user_strategy_are_saved_next_to_its_file(tmp_path: Path) -> None:
    from tradefleet.strategies.loader import load_strategy_file

    source = tmp_path / "my_strategy.py"
    source.write_text("from tradefleet.strategies.sma_cross import SmaCross\n\nclass MyStrategy(SmaCross):\n    pass\n")
    cls = load_strategy_file(source)

    assert params_path(cls, tmp_path / "strategies") == tmp_path / "my_strategy.json"
