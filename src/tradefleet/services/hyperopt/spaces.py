"""Search spaces of hyperopt: a strategy's declared parameters plus ROI table, stoploss and trailing stop.

Spaces (Freqtrade's names): ``buy``, ``sell`` and ``protection`` hold the strategy's parameters declared in
that space with ``optimize=True``; ``roi`` is a four-step ROI table, ``stoploss`` a ratio in
[-0.35, -0.02] and ``trailing`` the trailing-stop settings. ``default`` means buy, sell, roi and stoploss,
``all`` every space.

Each space turns an Optuna trial into values (:meth:`SearchSpace.suggest`) and values into what a
strategy runs with (:class:`Candidate`), so the objective, the report and the saved JSON read the same data.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from tradefleet.core.candles import timeframe_to_seconds
from tradefleet.core.errors import ConfigError
from tradefleet.core.strategy import (
    SPACES as PARAMETER_SPACES,
)
from tradefleet.core.strategy import (
    CategoricalParameter,
    DecimalParameter,
    IntParameter,
    IStrategy,
    Parameter,
)

STRATEGY_SPACES = PARAMETER_SPACES  # buy, sell, protection
EXTRA_SPACES = ("roi", "stoploss", "trailing")
ALL_SPACES = (*STRATEGY_SPACES, *EXTRA_SPACES)
DEFAULT_SPACES = ("buy", "sell", "roi", "stoploss")
STOPLOSS_RANGE = (-0.35, -0.02)
_PRIMITIVE = (bool, int, float, str, type(None))


class TrialLike(Protocol):
    """The part of ``optuna.Trial`` a space uses (a fixed trial or a test double works too)."""

    def suggest_int(self, name: str, low: int, high: int) -> int: ...
    def suggest_float(self, name: str, low: float, high: float) -> float: ...
    def suggest_categorical(self, name: str, choices: Sequence[Any]) -> Any: ...


def parse_spaces(names: Iterable[str]) -> tuple[str, ...]:
    """Return the spaces named (``default`` and ``all`` expand); unknown names are a ConfigError."""
    chosen: list[str] = []
    for raw in names:
        for word in raw.replace(",", " ").split():
            name = word.strip().lower()
            expanded = {"default": DEFAULT_SPACES, "all": ALL_SPACES}.get(name, (name,))
            for space in expanded:
                if space not in ALL_SPACES:
                    raise ConfigError(
                        f"unknown hyperopt space {name!r}",
                        hint=f"choose from {', '.join(ALL_SPACES)}, default or all",
                    )
                if space not in chosen:
                    chosen.append(space)
    return tuple(chosen) or DEFAULT_SPACES


@dataclass
class Candidate:
    """What one epoch runs: strategy parameters and overrides of ROI, stoploss and trailing stop."""

    params: dict[str, dict[str, Any]] = field(default_factory=dict)  # space -> name -> value
    minimal_roi: dict[str, float] | None = None
    stoploss: float | None = None
    trailing: dict[str, Any] | None = None

    def strategy_params(self) -> dict[str, Any]:
        """Return the strategy parameters as one flat ``name -> value`` mapping."""
        return {name: value for values in self.params.values() for name, value in values.items()}

    def build(self, cls: type[IStrategy], base_params: dict[str, Any] | None = None) -> IStrategy:
        """Return a strategy instance running this candidate (on top of ``base_params``)."""
        strategy = cls({**(base_params or {}), **self.strategy_params()})
        apply_overrides(strategy, self.minimal_roi, self.stoploss, self.trailing)
        return strategy

    def to_json(self, strategy_name: str) -> dict[str, Any]:
        """Return Freqtrade's strategy-parameter file layout (``<strategy>.json``)."""
        params: dict[str, Any] = {space: dict(values) for space, values in self.params.items()}
        if self.minimal_roi is not None:
            params["roi"] = dict(self.minimal_roi)
        if self.stoploss is not None:
            params["stoploss"] = {"stoploss": self.stoploss}
        if self.trailing is not None:
            params["trailing"] = dict(self.trailing)
        return {"strategy_name": strategy_name, "params": params, "ft_stratparam_v": 1}


def apply_overrides(
    strategy: IStrategy,
    minimal_roi: dict[str, float] | None = None,
    stoploss: float | None = None,
    trailing: dict[str, Any] | None = None,
) -> None:
    """Set ROI table, stoploss and trailing-stop settings on one strategy instance (never on its class)."""
    if minimal_roi is not None:
        strategy.minimal_roi = dict(minimal_roi)  # type: ignore[misc]  # instance override of a ClassVar
    if stoploss is not None:
        strategy.stoploss = float(stoploss)  # type: ignore[misc]
    for name, value in (trailing or {}).items():
        if name not in TRAILING_KEYS:
            raise ConfigError(f"unknown trailing setting {name!r}", hint=f"use {', '.join(TRAILING_KEYS)}")
        setattr(strategy, name, value)


TRAILING_KEYS = (
    "trailing_stop",
    "trailing_stop_positive",
    "trailing_stop_positive_offset",
    "trailing_only_offset_is_reached",
)


class SearchSpace:
    """The dimensions of one hyperopt run over a strategy class."""

    def __init__(self, cls: type[IStrategy], spaces: Sequence[str], timeframe: str | None = None) -> None:
        self.cls = cls
        self.spaces = tuple(spaces)
        self.timeframe = timeframe or cls.timeframe
        declared = cls.parameters()
        self.parameters: dict[str, Parameter] = {
            name: p for name, p in declared.items() if p.optimize and p.space in self.spaces
        }
        clash = [n for n in self.parameters if n in RESERVED_NAMES]
        if clash:
            raise ConfigError(
                f"{cls.__name__} declares parameter(s) {', '.join(clash)}, names hyperopt uses itself",
                hint="rename the parameter",
            )
        if not self.parameters and not any(s in self.spaces for s in EXTRA_SPACES):
            wanted = ", ".join(self.spaces)
            have = sorted({p.space for p in declared.values() if p.optimize}) or ["none"]
            raise ConfigError(
                f"{cls.__name__} has nothing to optimise in the space(s) {wanted}",
                hint=f"its parameters are in: {', '.join(have)}; add roi, stoploss or trailing to --spaces",
            )

    def dimensions(self) -> int:
        """Return how many values one epoch chooses."""
        extra = {"roi": 6, "stoploss": 1, "trailing": 3}
        return len(self.parameters) + sum(extra[s] for s in self.spaces if s in extra)

    def suggest(self, trial: TrialLike) -> Candidate:
        """Draw one candidate from ``trial``."""
        candidate = Candidate()
        for name, param in self.parameters.items():
            candidate.params.setdefault(param.space, {})[name] = suggest_parameter(trial, name, param)
        if "roi" in self.spaces:
            candidate.minimal_roi = roi_table(suggest_roi(trial, self.timeframe))
        if "stoploss" in self.spaces:
            candidate.stoploss = round(trial.suggest_float("stoploss", *STOPLOSS_RANGE), 3)
        if "trailing" in self.spaces:
            candidate.trailing = suggest_trailing(trial)
        return candidate

    def candidate_from(self, values: dict[str, Any]) -> Candidate:
        """Rebuild the candidate of finished trial parameters (``study.best_params``)."""
        return self.suggest(_FixedTrial(values))

    def describe(self) -> list[str]:
        """Return one line per dimension, for the report."""
        lines = [f"{p.space:<10} {name:<28} {_range(p)}" for name, p in self.parameters.items()]
        if "roi" in self.spaces:
            scale = _roi_scale(self.timeframe)
            lines.append(f"{'roi':<10} {'minimal_roi':<28} 4 steps up to {round(220 * scale)} min, 1%..31%")
        if "stoploss" in self.spaces:
            lines.append(f"{'stoploss':<10} {'stoploss':<28} {STOPLOSS_RANGE[0]} .. {STOPLOSS_RANGE[1]}")
        if "trailing" in self.spaces:
            lines.append(f"{'trailing':<10} {'trailing_stop_positive':<28} 0.02 .. 0.35 (offset +0.011 .. 0.1)")
        return lines


RESERVED_NAMES = frozenset(
    {"stoploss", "roi_t1", "roi_t2", "roi_t3", "roi_p1", "roi_p2", "roi_p3", "trailing_stop_positive",
     "trailing_stop_positive_offset_p1", "trailing_only_offset_is_reached"}
)  # fmt: skip


def suggest_parameter(trial: TrialLike, name: str, param: Parameter) -> Any:
    """Draw a value of one declared parameter within its declared range."""
    if isinstance(param, IntParameter):
        return trial.suggest_int(name, param.low, param.high)
    if isinstance(param, DecimalParameter):
        raw = trial.suggest_float(name, param.low, param.high)
        return min(max(round(raw, param.decimals), param.low), param.high)
    if isinstance(param, CategoricalParameter):
        choices = param.categories
        if all(isinstance(c, _PRIMITIVE) for c in choices):
            return trial.suggest_categorical(name, choices)
        return choices[trial.suggest_categorical(name, list(range(len(choices))))]
    raise ConfigError(f"parameter {name!r} of type {type(param).__name__} cannot be optimised")


def _range(param: Parameter) -> str:
    if isinstance(param, IntParameter | DecimalParameter):
        return f"{param.low} .. {param.high} (default {param.default})"
    if isinstance(param, CategoricalParameter):
        return f"one of {param.categories} (default {param.default!r})"
    return f"default {param.default!r}"


def _roi_scale(timeframe: str) -> float:
    """Freqtrade scales the ROI time steps with the timeframe; its base ranges fit 5m candles."""
    return timeframe_to_seconds(timeframe) / 300


def suggest_roi(trial: TrialLike, timeframe: str) -> dict[str, float]:
    """Draw the six numbers of a four-step ROI table (Freqtrade's generator, scaled to ``timeframe``)."""
    scale = _roi_scale(timeframe)
    return {
        "roi_t1": trial.suggest_int("roi_t1", max(1, round(10 * scale)), max(2, round(120 * scale))),
        "roi_t2": trial.suggest_int("roi_t2", max(1, round(10 * scale)), max(2, round(60 * scale))),
        "roi_t3": trial.suggest_int("roi_t3", max(1, round(10 * scale)), max(2, round(40 * scale))),
        "roi_p1": round(trial.suggest_float("roi_p1", 0.01, 0.04), 4),
        "roi_p2": round(trial.suggest_float("roi_p2", 0.01, 0.07), 4),
        "roi_p3": round(trial.suggest_float("roi_p3", 0.01, 0.20), 4),
    }


def roi_table(v: dict[str, float]) -> dict[str, float]:
    """Return ``minimal_roi`` from the six ROI numbers: falling steps that end at 0 (exit at break-even)."""
    t1, t2, t3 = int(v["roi_t1"]), int(v["roi_t2"]), int(v["roi_t3"])
    p1, p2, p3 = v["roi_p1"], v["roi_p2"], v["roi_p3"]
    return {
        "0": round(p1 + p2 + p3, 4),
        str(t3): round(p1 + p2, 4),
        str(t3 + t2): round(p1, 4),
        str(t3 + t2 + t1): 0.0,
    }


def suggest_trailing(trial: TrialLike) -> dict[str, Any]:
    """Draw trailing-stop settings; the offset always lies above the trailing distance."""
    positive = round(trial.suggest_float("trailing_stop_positive", 0.02, 0.35), 3)
    offset = round(positive + trial.suggest_float("trailing_stop_positive_offset_p1", 0.011, 0.1), 3)
    only_offset = bool(trial.suggest_categorical("trailing_only_offset_is_reached", [True, False]))
    return {
        "trailing_stop": True,
        "trailing_stop_positive": positive,
        "trailing_stop_positive_offset": offset,
        "trailing_only_offset_is_reached": only_offset,
    }


class _FixedTrial:
    """Replays stored values through the same suggest code (a TrialLike without Optuna)."""

    def __init__(self, values: dict[str, Any]) -> None:
        self.values = values

    def _get(self, name: str) -> Any:
        if name not in self.values:
            raise ConfigError(f"the study has no value for {name!r}", hint="the study was run with other spaces")
        return self.values[name]

    def suggest_int(self, name: str, low: int, high: int) -> int:
        return int(self._get(name))

    def suggest_float(self, name: str, low: float, high: float) -> float:
        return float(self._get(name))

    def suggest_categorical(self, name: str, choices: Sequence[Any]) -> Any:
        return self._get(name)
