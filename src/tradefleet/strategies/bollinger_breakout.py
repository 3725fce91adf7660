"""Bollinger breakout: ride a close above the upper band when volume confirms it."""

from __future__ import annotations

import numpy as np
import pandas as pd

from tradefleet.core.indicators import bollinger, crossed_above, sma
from tradefleet.core.strategy import DecimalParameter, IntParameter, IStrategy


class BollingerBreakout(IStrategy):
    """Enter when the close breaks above the upper band on above-average volume; exit below the mid band.

    The volume filter compares the breakout candle with the mean volume of the ``volume_window`` candles
    before it, so the breakout candle does not dilute its own average.
    """

    timeframe = "5m"
    minimal_roi = {"0": 0.06, "90": 0.03, "360": 0.01}
    stoploss = -0.06
    startup_candle_count = 50

    bb_period = IntParameter(10, 50, default=20, space="buy")
    bb_std = DecimalParameter(1.0, 3.5, default=2.0, decimals=1, space="buy")
    volume_factor = DecimalParameter(1.0, 4.0, default=1.5, decimals=1, space="buy")
    volume_window = IntParameter(5, 50, default=20, space="buy", optimize=False)

    def populate_indicators(self, dataframe: pd.DataFrame) -> pd.DataFrame:
        bands = bollinger(dataframe["close"], self.bb_period.value, self.bb_std.value)
        dataframe["bb_mid"] = bands.mid
        dataframe["bb_upper"] = bands.upper
        dataframe["bb_lower"] = bands.lower
        volume_mean = sma(dataframe["volume"], self.volume_window.value)
        prior = np.full(len(dataframe), np.nan)
        prior[1:] = volume_mean[:-1]
        dataframe["volume_mean"] = prior
        return dataframe

    def populate_entry_trend(self, dataframe: pd.DataFrame) -> pd.DataFrame:
        breakout = crossed_above(dataframe["close"], dataframe["bb_upper"])
        loud = (dataframe["volume"] > self.volume_factor.value * dataframe["volume_mean"]).to_numpy()
        entry = breakout & loud
        dataframe["enter_long"] = entry.astype("int8")
        dataframe["enter_tag"] = ""
        dataframe.loc[entry, "enter_tag"] = "bb_breakout"
        return dataframe

    def populate_exit_trend(self, dataframe: pd.DataFrame) -> pd.DataFrame:
        dataframe["exit_long"] = (dataframe["close"] < dataframe["bb_mid"]).astype("int8")
        return dataframe
