"""Search spaces: declared parameters, ROI table, stoploss and trailing stop, always within their ranges."""

from __future__ import annotations

import itertools

import optuna
import pytest

from tradefleet.core.errors import ConfigError
from tradefleet.core.strategy import BooleanParameter, CategoricalParameter, DecimalParameter, IntParameter
from tradefleet.services.hyperopt.spaces import (
    DEFAULT_SPACES,
    STOPLOSS_RANGE,
    SearchSpace,
    parse_spaces,
    roi_table,
)
from tradefleet.strategies.rsi_mean_reversion import RsiMeanReversion
from tradefleet.strategies.sma_cross import SmaCross


class Tunable(SmaCross):
    ratio = DecimalParameter(0.1, 0.9, default=0.5, decimals=2, space="sell")
    mode = CategoricalParameter(["a", "b", "c"], default="a", space="sell")
    shield = BooleanParameter(default=True, space="protection")
    fixed = IntParameter(1, 5, default=3, space="buy", optimize=False)


def draw(space: SearchSpace, n: int = 60) -> list[optuna.trial.FrozenTrial]:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))
    study.optimize(lambda t: float(len(str(space.suggest(t)))), n_trials=n)
    return study.trials


def test_space_names_expand_and_unknown_ones_are_refused() -> None:
    assert parse_spaces([]) == DEFAULT_SPACES
    assert parse_spaces(["buy", "sell,roi"]) == ("buy", "sell", "roi")
    assert "trailing" in parse_spaces(["all"])
    with pytest.raises(ConfigError, match="unknown hyperopt space 'bye'"):
        parse_spaces(["bye"])


def test_only_optimisable_parameters_of_the_chosen_spaces_are_searched() -> None:
    assert set(SearchSpace(Tunable, ("buy",)).parameters) == {"fast", "slow"}
    assert set(SearchSpace(Tunable, ("sell", "protection")).parameters) == {"ratio", "mode", "shield"}


def test_every_drawn_value_lies_within_its_declared_range() -> None:
    space = SearchSpace(Tunable, ("buy", "sell", "protection", "roi", "stoploss", "trailing"))
    for trial in draw(space):
        candidate = space.candidate_from(trial.params)
        Tunable(candidate.strategy_params())  # the strategy itself checks the ranges
        values = candidate.strategy_params()
        assert 3 <= values["fast"] <= 40 and 20 <= values["slow"] <= 200
        assert 0.1 <= values["ratio"] <= 0.9 and round(values["ratio"], 2) == values["ratio"]
        assert values["mode"] in ("a", "b", "c") and values["shield"] in (True, False)
        assert STOPLOSS_RANGE[0] <= candidate.stoploss <= STOPLOSS_RANGE[1]
        assert candidate.trailing is not None
        assert candidate.trailing["trailing_stop_positive_offset"] > candidate.trailing["trailing_stop_positive"]


def test_roi_table_has_four_falling_steps_ending_at_zero() -> None:
    table = roi_table({"roi_t1": 60, "roi_t2": 30, "roi_t3": 20, "roi_p1": 0.02, "roi_p2": 0.03, "roi_p3": 0.05})
    assert table == {"0": 0.1, "20": 0.05, "50": 0.02, "110": 0.0}
    space = SearchSpace(RsiMeanReversion, ("roi",))
    for trial in draw(space, 30):
        steps = sorted((int(k), v) for k, v in space.candidate_from(trial.params).minimal_roi.items())
        assert len(steps) == 4 and steps[0][0] == 0 and steps[-1][1] == 0.0
        assert [m for m, _ in steps] == sorted({m for m, _ in steps})
        assert all(a[1] > b[1] for a, b in itertools.pairwise(steps))


def test_candidate_builds_a_strategy_without_touching_the_class() -> None:
    space = SearchSpace(RsiMeanReversion, ("buy", "roi", "stoploss"))
    candidate = space.candidate_from(draw(space, 1)[0].params)
    strategy = candidate.build(RsiMeanReversion)
    assert strategy.stoploss == candidate.stoploss and strategy.minimal_roi == candidate.minimal_roi
    assert RsiMeanReversion.stoploss == -0.08 and RsiMeanReversion.minimal_roi["0"] == 0.04
    document = candidate.to_json("RsiMeanReversion")
    assert set(document["params"]) == {"buy", "roi", "stoploss"}


def test_a_strategy_with_nothing_to_tune_in_the_spaces_is_refused() -> None:
    with pytest.raises(ConfigError, match="nothing to optimise"):
        SearchSpace(RsiMeanReversion, ("protection",))
