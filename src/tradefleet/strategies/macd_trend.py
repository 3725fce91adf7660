"""MACD trend following, only in the direction of the long-term trend."""

from __future__ import annotations

import pandas as pd

from tradefleet.core.indicators import crossed_above, crossed_below, ema, macd
from tradefleet.core.strategy import IntParameter, IStrategy


class MacdTrend(IStrategy):
    """Enter when MACD crosses above its signal line while the close is above the trend EMA.

    Exit when MACD crosses back below the signal line.
    """

    timeframe = "5m"
    minimal_roi = {"0": 0.08, "120": 0.04, "480": 0.015}
    stoploss = -0.06
    # EMAs depend on their seed: warm up for about twice the trend period before trading.
    startup_candle_count = 400

    fast = IntParameter(6, 20, default=12, space="buy")
    slow = IntParameter(21, 52, default=26, space="buy")
    signal = IntParameter(5, 18, default=9, space="buy")
    trend = IntParameter(50, 300, default=200, space="buy")

    def populate_indicators(self, dataframe: pd.DataFrame) -> pd.DataFrame:
        lines = macd(dataframe["close"], self.fast.value, self.slow.value, self.signal.value)
        dataframe["macd"] = lines.macd
        dataframe["macd_signal"] = lines.signal
        dataframe["macd_hist"] = lines.hist
        dataframe["ema_trend"] = ema(dataframe["close"], self.trend.value)
        return dataframe

    def populate_entry_trend(self, dataframe: pd.DataFrame) -> pd.DataFrame:
        cross = crossed_above(dataframe["macd"], dataframe["macd_signal"])
        uptrend = (dataframe["close"] > dataframe["ema_trend"]).to_numpy()
        entry = cross & uptrend & (dataframe["volume"] > 0).to_numpy()
        dataframe["enter_long"] = entry.astype("int8")
        dataframe["enter_tag"] = ""
        dataframe.loc[entry, "enter_tag"] = "macd_trend"
        return dataframe

    def populate_exit_trend(self, dataframe: pd.DataFrame) -> pd.DataFrame:
        dataframe["exit_long"] = crossed_below(dataframe["macd"], dataframe["macd_signal"]).astype("int8")
        return dataframe
