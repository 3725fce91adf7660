"""RSI mean reversion: buy oversold, sell overbought."""

from __future__ import annotations

import pandas as pd

from tradefleet.core.indicators import rsi
from tradefleet.core.strategy import IntParameter, IStrategy


class RsiMeanReversion(IStrategy):
    """Enter when RSI drops below ``buy_rsi``; exit when it rises above ``sell_rsi``."""

    timeframe = "5m"
    minimal_roi = {"0": 0.04, "60": 0.02, "240": 0.01}
    stoploss = -0.08
    # Wilder's smoothing remembers its seed for about ten periods: warm up long enough to forget it.
    startup_candle_count = 150

    rsi_period = IntParameter(7, 28, default=14, space="buy")
    buy_rsi = IntParameter(10, 45, default=30, space="buy")
    sell_rsi = IntParameter(55, 90, default=70, space="sell")

    def populate_indicators(self, dataframe: pd.DataFrame) -> pd.DataFrame:
        dataframe["rsi"] = rsi(dataframe["close"], self.rsi_period.value)
        return dataframe

    def populate_entry_trend(self, dataframe: pd.DataFrame) -> pd.DataFrame:
        entry = (dataframe["rsi"] < self.buy_rsi.value) & (dataframe["volume"] > 0)
        dataframe["enter_long"] = entry.astype("int8")
        dataframe["enter_tag"] = ""
        dataframe.loc[entry, "enter_tag"] = "rsi_oversold"
        return dataframe

    def populate_exit_trend(self, dataframe: pd.DataFrame) -> pd.DataFrame:
        dataframe["exit_long"] = (dataframe["rsi"] > self.sell_rsi.value).astype("int8")
        return dataframe
