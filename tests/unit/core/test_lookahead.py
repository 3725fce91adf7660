"""Look-ahead detection: cheating strategies are caught, causal ones pass."""

from __future__ import annotations

import inspect
import textwrap

import numpy as np
import pandas as pd
import pytest

from tradefleet.core.errors import DataError
from tradefleet.core.lookahead import check_lookahead, cut_points, first_difference, scan_source
from tradefleet.core.strategy import IStrategy
from tradefleet.strategies import builtin_strategies


def gbm_candles(n: int = 2000, seed: int = 11, drift: float = 0.0003) -> pd.DataFrame:
    """Seeded geometric Brownian motion, upward drift so the maximum lies late in the frame."""
    rng = np.random.default_rng(seed)
    close = 100.0 * np.exp(np.cumsum(rng.normal(drift, 0.006, n)))
    open_ = np.concatenate([[100.0], close[:-1]])
    return pd.DataFrame(
        {
            "date": pd.date_range("2024-03-01", periods=n, freq="5min", tz="UTC"),
            "open": open_,
            "high": np.maximum(open_, close) * 1.002,
            "low": np.minimum(open_, close) * 0.998,
            "close": close,
            "volume": rng.lognormal(5.0, 0.5, n),
        }
    )


class PeeksNextClose(IStrategy):
    def populate_indicators(self, df: pd.DataFrame) -> pd.DataFrame:
        df["next_close"] = df["close"].shift(-1)
        return df

    def populate_entry_trend(self, df: pd.DataFrame) -> pd.DataFrame:
        df["enter_long"] = (df["next_close"] > df["close"]).astype(int)
        return df

    def populate_exit_trend(self, df: pd.DataFrame) -> pd.DataFrame:
        df["exit_long"] = (df["next_close"] < df["close"]).astype(int)
        return df


class NormalisesByColumnMax(IStrategy):
    def populate_indicators(self, df: pd.DataFrame) -> pd.DataFrame:
        df["norm"] = df["close"] / df["close"].max()
        return df

    def populate_entry_trend(self, df: pd.DataFrame) -> pd.DataFrame:
        df["enter_long"] = (df["norm"] < 0.5).astype(int)
        return df

    def populate_exit_trend(self, df: pd.DataFrame) -> pd.DataFrame:
        df["exit_long"] = (df["norm"] > 0.9).astype(int)
        return df


class CentredWindow(IStrategy):
    def populate_indicators(self, df: pd.DataFrame) -> pd.DataFrame:
        df["smooth"] = df["close"].rolling(9, center=True).mean()
        return df

    def populate_entry_trend(self, df: pd.DataFrame) -> pd.DataFrame:
        df["enter_long"] = (df["close"] < df["smooth"]).astype(int)
        return df

    def populate_exit_trend(self, df: pd.DataFrame) -> pd.DataFrame:
        df["exit_long"] = 0
        return df


class CausalPandas(IStrategy):
    startup_candle_count = 30

    def populate_indicators(self, df: pd.DataFrame) -> pd.DataFrame:
        df["sma"] = df["close"].rolling(30).mean()
        df["ema"] = df["close"].ewm(span=12, adjust=False).mean()
        df["hi"] = df["high"].rolling(20).max().shift(1)
        df["cum"] = df["volume"].cumsum()
        return df

    def populate_entry_trend(self, df: pd.DataFrame) -> pd.DataFrame:
        df["enter_long"] = (df["close"] > df["hi"]).astype(int)
        df["enter_tag"] = np.where(df["enter_long"] == 1, "breakout", "")
        return df

    def populate_exit_trend(self, df: pd.DataFrame) -> pd.DataFrame:
        df["exit_long"] = (df["ema"] < df["sma"]).astype(int)
        return df


def test_strategy_reading_the_next_close_is_caught_with_column_and_date() -> None:
    candles = gbm_candles()
    findings = check_lookahead(PeeksNextClose(), candles)
    by_column = {f.column: f for f in findings}
    assert findings[0].column == "next_close"  # the indicator is named before the signals built on it
    first_cut = cut_points(len(candles), 6)[0]
    finding = by_column["next_close"]
    assert finding.kind == "dynamic"
    assert finding.row == first_cut
    assert finding.date == candles["date"].iloc[first_cut]
    assert "next_close" in finding.message and str(finding.date) in finding.message
    assert {"enter_long", "exit_long"} & set(by_column)


def test_strategy_normalising_by_the_column_maximum_is_caught() -> None:
    candles = gbm_candles()
    assert int(candles["close"].to_numpy().argmax()) > len(candles) // 2  # the data really hides its maximum late
    findings = check_lookahead(NormalisesByColumnMax(), candles)
    assert "norm" in {f.column for f in findings}
    assert findings[0].row == 0  # every row was scaled by a future maximum


def test_column_maximum_is_caught_even_when_the_maximum_lies_before_every_cut() -> None:
    candles = gbm_candles(drift=-0.0005)
    assert (
        int(candles["close"].to_numpy().argmax()) < cut_points(len(candles), 6)[0]
    )  # removing candles changes nothing
    findings = check_lookahead(NormalisesByColumnMax(), candles)
    assert findings[0].column == "norm"
    assert findings[0].message.endswith("are altered")  # the scaled-up future gave it away


def test_centred_rolling_window_is_caught() -> None:
    findings = check_lookahead(CentredWindow(), gbm_candles())
    assert "smooth" in {f.column for f in findings}


@pytest.mark.parametrize("name", sorted(builtin_strategies()))
def test_builtin_strategies_do_not_look_ahead(name: str) -> None:
    strategy = builtin_strategies()[name]()
    assert check_lookahead(strategy, gbm_candles(3000), samples=8) == []


def test_causal_pandas_rolling_ewm_and_cumsum_pass() -> None:
    strategy = CausalPandas()
    candles = gbm_candles()
    assert check_lookahead(strategy, candles) == []
    assert strategy.analyze(candles)["enter_long"].sum() > 0  # the check compared real signals


def test_too_few_candles_is_a_data_error() -> None:
    with pytest.raises(DataError, match="needs more candles"):
        check_lookahead(CausalPandas(), gbm_candles(20))


def test_cut_points_are_distinct_sorted_and_leave_later_candles_to_remove() -> None:
    cuts = cut_points(1000, 6, start=50)
    assert cuts == sorted(set(cuts))
    assert len(cuts) == 6
    assert cuts[0] >= 200 and cuts[-1] == 998
    assert cut_points(1000, 6, start=999) == []


def test_first_difference_treats_nan_as_equal_and_ignores_float_noise() -> None:
    full = pd.Series([np.nan, 1.0, 2.0, 3.0, 4.0])
    assert first_difference(full, pd.Series([np.nan, 1.0, 2.0 + 1e-15, 3.0])) is None
    assert first_difference(full, pd.Series([np.nan, 1.0, 2.0, np.nan])) == 3
    assert first_difference(full, pd.Series([1.0, 1.0])) == 0


def test_first_difference_compares_text_and_dates() -> None:
    tags = pd.Series(["", "a", None, "b"])
    assert first_difference(tags, pd.Series(["", "a", None])) is None
    assert first_difference(tags, pd.Series(["", "x", None])) == 1
    dates = pd.Series(pd.date_range("2024-01-01", periods=3, tz="UTC"))
    assert first_difference(dates, dates.iloc[:2]) is None
    assert first_difference(dates, dates.iloc[:2] + pd.Timedelta(1, "s")) == 0


SUSPICIOUS = """
class Sneaky(IStrategy):
    def populate_indicators(self, df):
        df["a"] = df["close"].shift(-2)
        df["b"] = df["close"].rolling(5, center=True).mean()
        df["c"] = df["close"] / df["close"].max()
        df["d"] = df["close"] - df["close"].iloc[-1]
        df["e"] = np.mean(df["close"])
        df["f"] = df["close"].shift(periods=-1)
        return df
"""

HARMLESS = """
class Fine(IStrategy):
    def populate_indicators(self, df):
        df["a"] = df["close"].shift(1)
        df["b"] = df["close"].rolling(20).max()
        df["c"] = df[["open", "close"]].max(axis=1)
        df["d"] = df["close"].ewm(span=5).mean()
        df["e"] = max(1, 2)
        df["f"] = df["close"].iloc[3]
        return df

    def custom_exit(self, df):
        return df["close"].iloc[-1] > df["close"].max()
"""


def test_static_scan_flags_each_culprit_with_its_line() -> None:
    findings = scan_source(SUSPICIOUS, first_line=10)
    lines = {f.line: f.message for f in findings if f.line is not None}
    assert sorted(lines) == [13, 14, 15, 16, 17, 18]
    assert "shift(-2)" in lines[13]
    assert "center=True" in lines[14]
    assert ".max()" in lines[15]
    assert "iloc[-1]" in lines[16]
    assert "np.mean" in lines[17]
    assert "shift(-1)" in lines[18]
    assert all(f.kind == "static" for f in findings)
    assert findings[0].describe().startswith("line 13: ")


def test_static_scan_leaves_causal_code_and_non_populate_methods_alone() -> None:
    assert scan_source(HARMLESS) == []
    assert scan_source("def broken(:\n") == []


def test_static_scan_of_a_real_class_names_lines_in_its_file() -> None:
    source, first = inspect.getsourcelines(PeeksNextClose)
    findings = scan_source(textwrap.dedent("".join(source)), first_line=first)
    expected = first + next(i for i, line in enumerate(source) if "shift(-1)" in line)
    assert [f.line for f in findings] == [expected]
