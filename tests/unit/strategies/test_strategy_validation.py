"""validate_strategy: every way a strategy can be wrong gives one line naming the file and the line."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import pytest

from tradefleet.core.errors import LookAheadError, StrategyLoadError
from tradefleet.core.strategy import IntParameter, IStrategy
from tradefleet.strategies import validate_strategy

CandleFactory = Callable[..., pd.DataFrame]
THIS_FILE = __file__


class Valid(IStrategy):
    period = IntParameter(5, 50, default=20)

    def populate_indicators(self, df: pd.DataFrame) -> pd.DataFrame:
        df["sma"] = df["close"].rolling(self.period.value).mean()
        return df

    def populate_entry_trend(self, df: pd.DataFrame) -> pd.DataFrame:
        df["enter_long"] = (df["close"] > df["sma"]).astype("int8")
        return df

    def populate_exit_trend(self, df: pd.DataFrame) -> pd.DataFrame:
        df["exit_long"] = (df["close"] < df["sma"]).astype("int8")
        return df


def line_of(obj: Any) -> int:
    return inspect.getsourcelines(obj)[1]


def test_valid_strategy_passes_with_counts_on_synthetic_candles() -> None:
    report = validate_strategy(Valid)
    assert report.strategy == "Valid"
    assert report.source == f"{THIS_FILE}:{line_of(Valid)}"
    assert report.synthetic and report.candles >= 1500 and report.timeframe == "5m"
    assert report.entries > 0 and report.exits > 0
    assert "no look-ahead" in report.summary()


def test_valid_strategy_on_given_candles_counts_those(gbm_candles: CandleFactory) -> None:
    candles = gbm_candles(800, seed=1)
    report = validate_strategy(Valid, candles)
    expected = Valid().analyze(candles)
    assert not report.synthetic and report.candles == 800
    assert report.entries == expected["enter_long"].sum()
    assert report.exits == expected["exit_long"].sum()


class NoEntry(IStrategy):
    def populate_exit_trend(self, df: pd.DataFrame) -> pd.DataFrame:
        df["exit_long"] = 0
        return df


class NoExit(IStrategy):
    def populate_entry_trend(self, df: pd.DataFrame) -> pd.DataFrame:
        df["enter_long"] = 0
        return df


@pytest.mark.parametrize(("cls", "method"), [(NoEntry, "populate_entry_trend"), (NoExit, "populate_exit_trend")])
def test_missing_populate_method_is_named_with_the_class_line(cls: type[IStrategy], method: str) -> None:
    with pytest.raises(StrategyLoadError) as info:
        validate_strategy(cls)
    assert info.value.message == f"{THIS_FILE}:{line_of(cls)}: {cls.__name__} does not define {method}(self, dataframe)"


class ReturnsNothing(Valid):
    def populate_entry_trend(self, df: pd.DataFrame) -> pd.DataFrame:
        df["enter_long"] = 1
        return None  # type: ignore[return-value]


class DropsRows(Valid):
    def populate_indicators(self, df: pd.DataFrame) -> pd.DataFrame:
        return super().populate_indicators(df).dropna()


class Reorders(Valid):
    def populate_indicators(self, df: pd.DataFrame) -> pd.DataFrame:
        return df.iloc[::-1]


class DropsCandleColumn(Valid):
    def populate_indicators(self, df: pd.DataFrame) -> pd.DataFrame:
        return super().populate_indicators(df).drop(columns=["volume"])


@pytest.mark.parametrize(
    ("cls", "method", "message"),
    [
        (ReturnsNothing, "populate_entry_trend", "must return the DataFrame, got NoneType"),
        (DropsRows, "populate_indicators", "changed the rows"),
        (Reorders, "populate_indicators", "changed the rows"),
        (DropsCandleColumn, "populate_indicators", "dropped the candle column(s) volume"),
    ],
)
def test_populate_returning_the_wrong_frame_names_the_method(cls: type[IStrategy], method: str, message: str) -> None:
    with pytest.raises(StrategyLoadError) as info:
        validate_strategy(cls)
    where = f"{THIS_FILE}:{line_of(getattr(cls, method))}: {cls.__name__}.{method}"
    assert info.value.message.startswith(where)
    assert message in info.value.message


class WrongColumns(IStrategy):
    def populate_entry_trend(self, df: pd.DataFrame) -> pd.DataFrame:
        df["buy"] = 1
        return df

    def populate_exit_trend(self, df: pd.DataFrame) -> pd.DataFrame:
        df["sell"] = 1
        return df


class FloatSignals(Valid):
    def populate_entry_trend(self, df: pd.DataFrame) -> pd.DataFrame:
        df["enter_long"] = df["close"] - df["sma"]
        return df


class TextSignals(Valid):
    def populate_exit_trend(self, df: pd.DataFrame) -> pd.DataFrame:
        df["exit_long"] = "yes"
        return df


def test_missing_signal_columns_are_named() -> None:
    with pytest.raises(StrategyLoadError, match=r"never sets the signal column\(s\) enter_long, exit_long"):
        validate_strategy(WrongColumns)


@pytest.mark.parametrize(("cls", "column"), [(FloatSignals, "enter_long"), (TextSignals, "exit_long")])
def test_signal_columns_must_hold_zero_or_one(cls: type[IStrategy], column: str) -> None:
    with pytest.raises(StrategyLoadError, match=rf"column {column} must hold 0 or 1"):
        validate_strategy(cls)


def test_boolean_and_nan_signals_are_accepted() -> None:
    class BoolSignals(Valid):
        def populate_entry_trend(self, df: pd.DataFrame) -> pd.DataFrame:
            df["enter_long"] = df["close"] > df["sma"]
            return df

        def populate_exit_trend(self, df: pd.DataFrame) -> pd.DataFrame:
            df["exit_long"] = np.where(df["sma"].isna(), np.nan, 0.0)
            return df

    assert validate_strategy(BoolSignals).entries > 0


class Raises(Valid):
    def populate_indicators(self, df: pd.DataFrame) -> pd.DataFrame:
        df["x"] = df["no_such_column"]
        return df


def test_exception_inside_populate_names_the_failing_line() -> None:
    with pytest.raises(StrategyLoadError) as info:
        validate_strategy(Raises)
    failing = line_of(Raises.populate_indicators) + 1
    assert f"Raises.populate_indicators raised KeyError: 'no_such_column' at line {failing}" in info.value.message


def make(name: str, base: type[IStrategy] = Valid, **attrs: Any) -> type[IStrategy]:
    return type(name, (base,), attrs)


@pytest.mark.parametrize(
    ("attrs", "message"),
    [
        ({"stoploss": 0.0}, "stoploss must be a ratio in (-1, 0)"),
        ({"stoploss": -1.0}, "stoploss must be a ratio in (-1, 0)"),
        ({"stoploss": 0.1}, "stoploss must be a ratio in (-1, 0)"),
        ({"stoploss": True}, "stoploss must be a ratio in (-1, 0)"),
        ({"stoploss": "-0.1"}, "stoploss must be a ratio in (-1, 0)"),
        ({"minimal_roi": {}}, "minimal_roi must map minutes"),
        ({"minimal_roi": {"-5": 0.1}}, "minimal_roi must map minutes"),
        ({"minimal_roi": {"soon": 0.1}}, "minimal_roi must map minutes"),
        ({"minimal_roi": {"0": float("nan")}}, "minimal_roi must map minutes"),
        ({"minimal_roi": {"0": "lots"}}, "minimal_roi must map minutes"),
        ({"minimal_roi": {"12.5": 0.1}}, "minimal_roi must map minutes"),
        ({"timeframe": "5x"}, "timeframe '5x' is invalid"),
        ({"timeframe": "0m"}, "timeframe '0m' is invalid"),
        ({"startup_candle_count": -1}, "startup_candle_count must be a non-negative integer"),
        ({"trailing_stop_positive": 1.5}, "trailing_stop_positive must be in (0, 1)"),
    ],
)
def test_invalid_settings_are_refused_with_the_class_location(attrs: dict[str, Any], message: str) -> None:
    cls = make("Misconfigured", **attrs)
    with pytest.raises(StrategyLoadError) as info:
        validate_strategy(cls)
    assert message in info.value.message
    assert info.value.message.startswith(f"{THIS_FILE}:") or info.value.message.startswith("Misconfigured")


def test_valid_roi_tables_with_integer_keys_pass() -> None:
    assert validate_strategy(make("IntKeys", minimal_roi={0: 0.05, 30: 0.02, 120: 0})).entries > 0


def test_non_strategy_class_is_refused() -> None:
    with pytest.raises(StrategyLoadError, match="is not an IStrategy subclass"):
        validate_strategy(dict)  # type: ignore[arg-type]


class BadInit(Valid):
    def __init__(self, params: dict[str, Any] | None = None) -> None:
        super().__init__({"period": 500})


def test_constructor_failure_is_a_load_error() -> None:
    with pytest.raises(StrategyLoadError, match=r"BadInit\(\) failed: StrategyError: parameter period=500 is outside"):
        validate_strategy(BadInit)


class PeeksAhead(Valid):
    def populate_indicators(self, df: pd.DataFrame) -> pd.DataFrame:
        df["future"] = df["close"].shift(-1)
        return df

    def populate_entry_trend(self, df: pd.DataFrame) -> pd.DataFrame:
        df["enter_long"] = (df["future"] > df["close"]).astype("int8")
        return df

    def populate_exit_trend(self, df: pd.DataFrame) -> pd.DataFrame:
        df["exit_long"] = (df["future"] < df["close"]).astype("int8")
        return df


class ScalesByMax(Valid):
    def populate_indicators(self, df: pd.DataFrame) -> pd.DataFrame:
        df = super().populate_indicators(df)
        df["scaled"] = df["close"] / df["close"].max()
        return df

    def populate_entry_trend(self, df: pd.DataFrame) -> pd.DataFrame:
        df["enter_long"] = (df["scaled"] > 0.97).astype("int8")
        return df


def test_shift_minus_one_is_a_lookahead_error_naming_column_and_suspect_line() -> None:
    with pytest.raises(LookAheadError) as info:
        validate_strategy(PeeksAhead)
    message = info.value.message
    suspect = line_of(PeeksAhead.populate_indicators) + 1
    assert message.startswith(f"{THIS_FILE}:{line_of(PeeksAhead)}: PeeksAhead looks ahead: column 'future' at 2024-")
    assert f"suspect line {suspect}: `.shift(-1)` reads a later candle" in message
    assert "\n" not in info.value.one_line()


def test_whole_column_max_is_a_lookahead_error(gbm_candles: CandleFactory) -> None:
    with pytest.raises(LookAheadError, match=r"column 'scaled'.*suspect line \d+: `.max\(\)` over a whole column"):
        validate_strategy(ScalesByMax, gbm_candles(2000, seed=4))


class UnusedMax(Valid):
    peak: ClassVar[float] = 0.0

    def populate_indicators(self, df: pd.DataFrame) -> pd.DataFrame:
        df = super().populate_indicators(df)
        if df["close"].max() <= 0:  # a sanity check, not a feature: the run decides
            raise ValueError("prices must be positive")
        return df


def test_static_suspicion_without_a_changed_column_is_only_a_warning() -> None:
    report = validate_strategy(UnusedMax)
    assert [w.line for w in report.warnings] == [line_of(UnusedMax.populate_indicators) + 2]
    assert report.entries > 0


class FailsOnShortHistory(Valid):
    def populate_indicators(self, df: pd.DataFrame) -> pd.DataFrame:
        if len(df) < 1500:
            raise RuntimeError("history too short")
        return super().populate_indicators(df)


def test_failure_on_a_truncated_history_is_a_load_error() -> None:
    with pytest.raises(StrategyLoadError, match="failed on a shorter history: RuntimeError: history too short"):
        validate_strategy(FailsOnShortHistory)
