"""Loss functions: lower is better, drawdown costs profit, too few trades is worse than any result."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from tradefleet.core.errors import ConfigError
from tradefleet.core.metrics import compute_metrics
from tradefleet.engine.backtest.types import BacktestConfig, BacktestResult
from tradefleet.services.hyperopt.losses import LOSSES, evaluate, get_loss

DAY = 86_400_000


def run(values: list[float]) -> tuple[BacktestResult, object]:
    ms = np.arange(1, len(values) + 1, dtype=np.int64) * DAY
    equity = np.asarray(values, dtype=np.float64)
    config = BacktestConfig(strategy="S", pairs=("A/BTC",), timeframe="1d", starting_balance=100.0)
    result = BacktestResult(config, [], ms, equity, len(values), 0.0)
    return result, compute_metrics([], ms, equity, 100.0, DAY)


def with_trades(metrics: object, n: int) -> object:
    return dataclasses.replace(metrics, trades=n)  # type: ignore[type-var]


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_a_steady_gain_beats_a_loss_under_every_loss_function(name: str) -> None:
    good, good_m = run([101, 102, 101.5, 103, 104, 105])
    bad, bad_m = run([99, 98, 99.5, 97, 96, 95])
    loss = get_loss(name)
    assert loss(good, good_m) < loss(bad, bad_m)  # type: ignore[arg-type]


def test_profit_drawdown_prefers_the_same_profit_with_a_smaller_drawdown() -> None:
    smooth, smooth_m = run([102, 104, 106, 108, 110])
    rough, rough_m = run([102, 80, 95, 100, 110])
    loss = get_loss("profit-drawdown")
    assert get_loss("profit")(smooth, smooth_m) == pytest.approx(get_loss("profit")(rough, rough_m))  # type: ignore[arg-type]
    assert loss(smooth, smooth_m) < loss(rough, rough_m)  # type: ignore[arg-type]


def test_too_few_trades_is_worse_than_any_real_result_and_improves_with_more_trades() -> None:
    result, metrics = run([50, 40, 30, 20, 10])
    loss = get_loss("sharpe")
    real = evaluate(loss, result, with_trades(metrics, 5), min_trades=5)  # type: ignore[arg-type]
    none = evaluate(loss, result, with_trades(metrics, 0), min_trades=5)  # type: ignore[arg-type]
    some = evaluate(loss, result, with_trades(metrics, 3), min_trades=5)  # type: ignore[arg-type]
    assert real < some < none


def test_unknown_loss_names_the_known_ones() -> None:
    with pytest.raises(ConfigError, match="unknown hyperopt loss 'magic'") as caught:
        get_loss("magic")
    assert "profit, sharpe, sortino, calmar, profit-drawdown" in caught.value.one_line()
    assert get_loss("max-drawdown") is LOSSES["profit-drawdown"]
