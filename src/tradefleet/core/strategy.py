"""Freqtrade-style strategy API.

A strategy is a class deriving from :class:`IStrategy` that sets ``enter_long`` / ``exit_long`` (and
``enter_tag``) columns from indicators. Signals on candle *i* are acted on at the open of candle *i + 1*;
the engine never shows a strategy a candle that has not closed.

Tunable values are declared as parameters so hyperopt can search them::

    class MyStrategy(IStrategy):
        fast = IntParameter(5, 50, default=10, space="buy")

        def populate_indicators(self, df):
            df["sma_fast"] = df["close"].rolling(self.fast.value).mean()
            return df
"""

from __future__ import annotations

import copy
import inspect
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from tradefleet.core.errors import StrategyError

SIGNAL_COLUMNS = ("enter_long", "exit_long", "enter_short", "exit_short")
SPACES = ("buy", "sell", "protection")


class Parameter:
    """A tunable value of a strategy; ``value`` is what the strategy reads."""

    def __init__(self, *, default: Any, space: str = "buy", optimize: bool = True) -> None:
        if space not in SPACES:
            raise StrategyError(f"parameter space {space!r} is not one of {', '.join(SPACES)}")
        self.space = space
        self.optimize = optimize
        self.name = ""
        self.default = self.validate(default)
        self.value = self.default

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def validate(self, value: Any) -> Any:
        return value

    def set(self, value: Any) -> None:
        self.value = self.validate(value)


class IntParameter(Parameter):
    def __init__(self, low: int, high: int, *, default: int, space: str = "buy", optimize: bool = True) -> None:
        if low > high:
            raise StrategyError(f"IntParameter low {low} is above high {high}")
        self.low, self.high = int(low), int(high)
        super().__init__(default=default, space=space, optimize=optimize)

    def validate(self, value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int | float) or int(value) != value:
            raise StrategyError(f"parameter {self.name or '?'} needs an integer, got {value!r}")
        if not self.low <= int(value) <= self.high:
            raise StrategyError(f"parameter {self.name or '?'}={value} is outside [{self.low}, {self.high}]")
        return int(value)


class DecimalParameter(Parameter):
    def __init__(
        self,
        low: float,
        high: float,
        *,
        default: float,
        decimals: int = 3,
        space: str = "buy",
        optimize: bool = True,
    ) -> None:
        if low > high:
            raise StrategyError(f"DecimalParameter low {low} is above high {high}")
        self.low, self.high, self.decimals = float(low), float(high), decimals
        super().__init__(default=default, space=space, optimize=optimize)

    def validate(self, value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise StrategyError(f"parameter {self.name or '?'} needs a number, got {value!r}")
        if not self.low <= float(value) <= self.high:
            raise StrategyError(f"parameter {self.name or '?'}={value} is outside [{self.low}, {self.high}]")
        return round(float(value), self.decimals)


class CategoricalParameter(Parameter):
    def __init__(self, categories: Sequence[Any], *, default: Any, space: str = "buy", optimize: bool = True) -> None:
        if len(categories) < 1:
            raise StrategyError("CategoricalParameter needs at least one category")
        self.categories = list(categories)
        super().__init__(default=default, space=space, optimize=optimize)

    def validate(self, value: Any) -> Any:
        if value not in self.categories:
            raise StrategyError(f"parameter {self.name or '?'}={value!r} is not one of {self.categories}")
        return value


class BooleanParameter(CategoricalParameter):
    def __init__(self, *, default: bool, space: str = "buy", optimize: bool = True) -> None:
        super().__init__([True, False], default=default, space=space, optimize=optimize)


class IStrategy:
    """Base class of every strategy. Override the three ``populate_*`` methods."""

    timeframe: ClassVar[str] = "5m"
    minimal_roi: ClassVar[dict[str, float]] = {"0": 10.0}
    stoploss: ClassVar[float] = -0.10
    trailing_stop: ClassVar[bool] = False
    trailing_stop_positive: ClassVar[float | None] = None
    trailing_stop_positive_offset: ClassVar[float] = 0.0
    trailing_only_offset_is_reached: ClassVar[bool] = False
    startup_candle_count: ClassVar[int] = 0
    can_short: ClassVar[bool] = False

    def __init__(self, params: dict[str, Any] | None = None) -> None:
        # Each instance owns its parameters, so bots running the same class never share tuned values.
        for name, param in self.parameters().items():
            setattr(self, name, copy.copy(param))
        if params:
            self.set_params(params)
        self._wants_metadata = {
            m: len(inspect.signature(getattr(self, m)).parameters) >= 2
            for m in ("populate_indicators", "populate_entry_trend", "populate_exit_trend")
        }

    @classmethod
    def parameters(cls) -> dict[str, Parameter]:
        """Return the declared parameters by name, base classes first."""
        found: dict[str, Parameter] = {}
        for klass in reversed(cls.__mro__):
            for name, value in vars(klass).items():
                if isinstance(value, Parameter):
                    found[name] = value
        return found

    def set_params(self, params: dict[str, Any]) -> None:
        """Set parameter values by name; unknown names and out-of-range values are errors."""
        declared = self.parameters()
        for name, value in params.items():
            if name not in declared:
                raise StrategyError(
                    f"{type(self).__name__} has no parameter {name!r}",
                    hint=f"declared parameters: {', '.join(declared) or 'none'}",
                )
            getattr(self, name).set(value)

    def param_values(self) -> dict[str, Any]:
        return {name: getattr(self, name).value for name in self.parameters()}

    def populate_indicators(self, dataframe: pd.DataFrame) -> pd.DataFrame:
        return dataframe

    def populate_entry_trend(self, dataframe: pd.DataFrame) -> pd.DataFrame:
        raise NotImplementedError

    def populate_exit_trend(self, dataframe: pd.DataFrame) -> pd.DataFrame:
        raise NotImplementedError

    def _call(self, method: str, frame: pd.DataFrame, metadata: dict[str, Any]) -> pd.DataFrame:
        fn = getattr(self, method)
        out = fn(frame, metadata) if self._wants_metadata[method] else fn(frame)
        if not isinstance(out, pd.DataFrame):
            raise StrategyError(f"{type(self).__name__}.{method} must return the DataFrame, got {type(out).__name__}")
        if len(out) != len(frame):
            raise StrategyError(
                f"{type(self).__name__}.{method} changed the number of rows ({len(frame)} → {len(out)})",
                hint="add columns; never drop, add or reorder candles",
            )
        return out

    def analyze(self, candles: pd.DataFrame, pair: str = "") -> pd.DataFrame:
        """Run the three populate steps on a copy of ``candles``; return the frame with signal columns."""
        metadata = {"pair": pair, "timeframe": self.timeframe}
        frame = candles.copy()
        # An object column index makes each new indicator column cheap to add (pandas 3 defaults to an
        # Arrow string index, whose insert copies): analysis runs on every closed candle.
        frame.columns = pd.Index(list(frame.columns), dtype=object)
        frame = self._call("populate_indicators", frame, metadata)
        frame = self._call("populate_entry_trend", frame, metadata)
        frame = self._call("populate_exit_trend", frame, metadata)
        n = len(frame)
        for col in SIGNAL_COLUMNS:
            if col not in frame.columns:
                frame[col] = np.zeros(n, dtype=np.int8)
            else:
                values = np.asarray(frame[col].to_numpy(dtype="float64", na_value=0.0))
                frame[col] = (values != 0).astype(np.int8)
        if "enter_tag" not in frame.columns:
            frame["enter_tag"] = pd.Series("", index=frame.index, dtype="string")
        else:
            tags = frame["enter_tag"]
            frame["enter_tag"] = (tags if isinstance(tags.dtype, pd.StringDtype) else tags.astype("string")).fillna("")
        return frame

    def roi_table(self) -> list[tuple[int, float]]:
        """Return the ROI table as (minutes, ratio) sorted by minutes."""
        try:
            table = sorted((int(k), float(v)) for k, v in self.minimal_roi.items())
        except (TypeError, ValueError) as exc:
            raise StrategyError(f"{type(self).__name__}.minimal_roi must map minutes to ratios ({exc})") from exc
        return table
