"""Importing the real Freqtrade candles in ../shared/data/real (skipped by ``real_data_dir`` if absent)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tradefleet.adapters.data.importers import import_path
from tradefleet.adapters.data.store import CandleStore

pytestmark = pytest.mark.realdata

EXPECTED = {
    ("ETH/BTC", "5m"): ("ETH_BTC-5m.feather", 5760, 0),
    ("ADA/BTC", "5m"): ("ADA_BTC-5m.feather", 5720, 5),
    ("UNITTEST/BTC", "1m"): ("UNITTEST_BTC-1m.feather", 13681, 538),
}


@pytest.fixture
def store(tmp_path: Path) -> CandleStore:
    return CandleStore(tmp_path / "candles")


def test_the_real_folder_imports_every_series_with_its_values_intact(store, real_data_dir):
    results = import_path(store, real_data_dir, exchange="bittrex")

    assert {(r.pair, r.timeframe): r.added for r in results} == {k: v[1] for k, v in EXPECTED.items()}
    for (pair, timeframe), (name, rows, _) in EXPECTED.items():
        original = pd.read_feather(real_data_dir / name)
        stored = store.read("bittrex", pair, timeframe)
        assert len(stored) == rows
        np.testing.assert_array_equal(
            stored["date"].to_numpy(dtype="datetime64[ms]"), original["date"].to_numpy(dtype="datetime64[ms]")
        )
        for col in ("open", "high", "low", "close", "volume"):
            np.testing.assert_array_equal(stored[col].to_numpy(), original[col].to_numpy())


def test_real_series_are_listed_as_real_with_their_gaps(store, real_data_dir):
    import_path(store, real_data_dir, exchange="bittrex")

    listed = {(s.pair, s.timeframe): s for s in store.list_series()}

    for key, (_, rows, gaps) in EXPECTED.items():
        assert listed[key].rows == rows
        assert listed[key].gaps == gaps == len(store.gaps("bittrex", *key))
        assert listed[key].synthetic is False
    assert listed[("ETH/BTC", "5m")].start == pd.Timestamp("2018-01-10 04:55", tz="UTC")
    assert listed[("ETH/BTC", "5m")].end == pd.Timestamp("2018-01-30 04:50", tz="UTC")


def test_a_single_real_file_with_flags_goes_where_the_flags_say(store, real_data_dir):
    [result] = import_path(store, real_data_dir / "ETH_BTC-5m.feather", exchange="kraken", pair="ETH/XBT")

    assert (result.exchange, result.pair, result.timeframe, result.rows) == ("kraken", "ETH/XBT", "5m", 5760)


def test_real_candles_serve_the_paper_engine_through_the_candle_source(store, real_data_dir):
    import_path(store, real_data_dir, exchange="bittrex")
    source = store.source("bittrex")
    start = int(pd.Timestamp("2018-01-20", tz="UTC").value // 1_000_000)

    day = source.candles("ETH/BTC", "5m", start, start + 86_400_000)

    assert len(day) == 288
    assert day["date"].iloc[0] == pd.Timestamp("2018-01-20", tz="UTC")
