"""Moving-average crossover: the textbook trend-following strategy."""

from __future__ import annotations

import pandas as pd

from tradefleet.core.indicators import crossed_above, crossed_below, sma
from tradefleet.core.strategy import IntParameter, IStrategy


class SmaCross(IStrategy):
    """Enter when the fast SMA crosses above the slow SMA; exit when it crosses back below.

    The reference setting is SMA(10) / SMA(50). A trailing stop is configured but off: set
    ``trailing_stop = True`` in a subclass to lock in 1% below the high once a trade is 2% up.
    """

    timeframe = "5m"
    minimal_roi = {"0": 0.10, "120": 0.05, "480": 0.02}
    stoploss = -0.05
    trailing_stop = False
    trailing_stop_positive = 0.01
    trailing_stop_positive_offset = 0.02
    trailing_only_offset_is_reached = True
    startup_candle_count = 50

    fast = IntParameter(3, 40, default=10, space="buy")
    slow = IntParameter(20, 200, default=50, space="buy")

    def populate_indicators(self, dataframe: pd.DataFrame) -> pd.DataFrame:
        dataframe["sma_fast"] = sma(dataframe["close"], self.fast.value)
        dataframe["sma_slow"] = sma(dataframe["close"], self.slow.value)
        return dataframe

    def populate_entry_trend(self, dataframe: pd.DataFrame) -> pd.DataFrame:
        entry = crossed_above(dataframe["sma_fast"], dataframe["sma_slow"]) & (dataframe["volume"] > 0).to_numpy()
        dataframe["enter_long"] = entry.astype("int8")
        dataframe["enter_tag"] = ""
        dataframe.loc[entry, "enter_tag"] = "sma_cross"
        return dataframe

    def populate_exit_trend(self, dataframe: pd.DataFrame) -> pd.DataFrame:
        dataframe["exit_long"] = crossed_below(dataframe["sma_fast"], dataframe["sma_slow"]).astype("int8")
        return dataframe
