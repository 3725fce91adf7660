"""CandleStore: Feather files per exchange, pair and timeframe; validated, merged, atomic, cached."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pyarrow.feather as feather
import pytest

from tradefleet.adapters.data.generator import generate_market
from tradefleet.adapters.data.store import (
    CandleStore,
    normalize_exchange,
    normalize_pair,
    parse_series_name,
    series_filename,
)
from tradefleet.core.candles import validate_candles
from tradefleet.core.errors import CandleValidationError, ConfigError, DataError, DataNotFoundError

START = 1_704_067_200_000  # 2024-01-01 00:00 UTC
MIN = 60_000


def candles(n: int = 10, start: int = START, seed: int = 1) -> pd.DataFrame:
    return generate_market("ETH/USDT", "1m", start_ms=start, candles=n, seed=seed)


@pytest.fixture
def store(tmp_path: Path) -> CandleStore:
    return CandleStore(tmp_path / "candles")


def test_written_candles_read_back_validated_in_freqtrade_layout(store):
    frame = candles(10)

    added = store.write("binance", "eth/usdt", "1m", frame)

    path = store.root / "binance" / "ETH_USDT-1m.feather"
    assert added == 10 and path.is_file()
    pd.testing.assert_frame_equal(store.read("binance", "ETH/USDT", "1m"), validate_candles(frame))
    freqtrade_view = pd.read_feather(path)
    assert list(freqtrade_view.columns) == ["date", "open", "high", "low", "close", "volume"]
    assert str(freqtrade_view["date"].dt.tz) == "UTC"


def test_read_returns_candles_opening_in_the_half_open_range(store):
    store.write("binance", "ETH/USDT", "1m", candles(10))

    part = store.read("binance", "ETH/USDT", "1m", START + 2 * MIN, START + 5 * MIN)

    assert part["date"].tolist() == [pd.Timestamp(START + i * MIN, unit="ms", tz="UTC") for i in (2, 3, 4)]
    assert store.read("binance", "ETH/USDT", "1m", START + 20 * MIN, START + 30 * MIN).empty


def test_write_merges_overlaps_keeping_the_newest_values_and_counts_only_new_rows(store):
    store.write("binance", "ETH/USDT", "1m", candles(10))
    newer = candles(10, start=START + 5 * MIN, seed=2)

    added = store.write("binance", "ETH/USDT", "1m", newer)

    stored = store.read("binance", "ETH/USDT", "1m")
    assert added == 5 and len(stored) == 15
    pd.testing.assert_frame_equal(stored.iloc[5:].reset_index(drop=True), validate_candles(newer))


def test_writing_the_same_candles_again_adds_nothing_and_leaves_the_file_alone(store):
    store.write("binance", "ETH/USDT", "1m", candles(10))
    path = store.path("binance", "ETH/USDT", "1m")
    before = path.stat().st_mtime_ns

    assert store.write("binance", "ETH/USDT", "1m", candles(10)) == 0
    assert path.stat().st_mtime_ns == before


def test_invalid_candles_are_rejected_before_anything_is_written(store):
    store.write("binance", "ETH/USDT", "1m", candles(10))
    path = store.path("binance", "ETH/USDT", "1m")
    before = path.read_bytes()
    bad = candles(5, start=START + 10 * MIN)
    bad.loc[2, "high"] = bad.loc[2, "low"] / 2

    with pytest.raises(CandleValidationError, match=r"high below max\(open, close\).*2024-01-01 00:12") as err:
        store.write("binance", "ETH/USDT", "1m", bad)

    assert "\n" not in err.value.message
    assert path.read_bytes() == before
    assert not store.has("binance", "ETH/USDT", "5m")


def test_candles_off_the_timeframe_grid_are_rejected(store):
    with pytest.raises(CandleValidationError, match="off the 5m grid"):
        store.write("binance", "ETH/USDT", "5m", candles(10))
    assert not store.has("binance", "ETH/USDT", "5m")


def test_a_failed_rename_leaves_the_old_file_and_no_temporary_file(store, monkeypatch):
    store.write("binance", "ETH/USDT", "1m", candles(10))
    path = store.path("binance", "ETH/USDT", "1m")
    before = path.read_bytes()

    def disk_full(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", disk_full)
    with pytest.raises(OSError, match="No space"):
        store.write("binance", "ETH/USDT", "1m", candles(20))

    assert path.read_bytes() == before
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name]


def test_missing_series_says_what_exists_and_how_to_get_it(store):
    store.write("binance", "ETH/USDT", "1m", candles(3))

    with pytest.raises(DataNotFoundError) as err:
        store.read("binance", "BTC/USDT", "1h")

    text = err.value.one_line()
    assert "BTC/USDT" in text and "binance has: ETH/USDT 1m" in text
    assert "tradefleet data download --exchange binance --pair BTC/USDT --timeframe 1h" in text


def test_synthetic_series_are_labelled_and_never_mixed_with_real_ones(store):
    store.write("simulated", "SYN/USDT", "1m", candles(10), synthetic=True)
    store.write("binance", "ETH/USDT", "1m", candles(10))

    meta = feather.read_table(store.path("simulated", "SYN/USDT", "1m")).schema.metadata
    assert b'"synthetic": true' in meta[b"tradefleet"]
    with pytest.raises(DataError, match="refusing to merge real candles into the stored synthetic"):
        store.write("simulated", "SYN/USDT", "1m", candles(12))
    with pytest.raises(DataError, match="refusing to merge synthetic candles into the stored real"):
        store.write("binance", "ETH/USDT", "1m", candles(12), synthetic=True)
    assert len(store.read("simulated", "SYN/USDT", "1m")) == 10


def test_list_series_describes_every_file(store):
    store.write("simulated", "SYN/USDT", "1m", candles(10), synthetic=True)
    holey = pd.concat([candles(5), candles(5, start=START + 10 * MIN)], ignore_index=True)
    store.write("binance", "ETH/USDT", "1m", holey)
    (store.root / "binance" / "notes.txt").write_text("not candles")
    (store.root / "binance" / "BTC_USDT-1h-futures.feather").write_bytes(b"not a name this store writes")

    series = store.list_series()

    assert [(s.exchange, s.pair, s.timeframe, s.rows, s.gaps, s.synthetic) for s in series] == [
        ("binance", "ETH/USDT", "1m", 10, 1, False),
        ("simulated", "SYN/USDT", "1m", 10, 0, True),
    ]
    assert series[0].start == pd.Timestamp(START, unit="ms", tz="UTC")
    assert series[0].end == pd.Timestamp(START + 14 * MIN, unit="ms", tz="UTC")
    assert series[0].path == store.path("binance", "ETH/USDT", "1m")


def test_list_series_of_an_empty_store_is_empty(store):
    assert store.list_series() == []


def test_gaps_first_and_last(store):
    store.write("binance", "ETH/USDT", "1m", pd.concat([candles(3), candles(2, start=START + 7 * MIN)]))

    gaps = store.gaps("binance", "ETH/USDT", "1m")

    assert gaps == [
        (
            pd.Timestamp(START + 2 * MIN, unit="ms", tz="UTC"),
            pd.Timestamp(START + 7 * MIN, unit="ms", tz="UTC"),
        )
    ]
    assert store.first_ms("binance", "ETH/USDT", "1m") == START
    assert store.last_ms("binance", "ETH/USDT", "1m") == START + 8 * MIN
    assert store.last_ms("binance", "BTC/USDT", "1m") is None


def test_reads_are_cached_until_the_series_changes(store):
    store.write("binance", "ETH/USDT", "1m", candles(10))
    first = store.read("binance", "ETH/USDT", "1m")
    cached = store._cache[store.path("binance", "ETH/USDT", "1m")]

    store.read("binance", "ETH/USDT", "1m", START, START + 3 * MIN)
    assert store._cache[store.path("binance", "ETH/USDT", "1m")] is cached

    store.write("binance", "ETH/USDT", "1m", candles(12))
    assert len(store.read("binance", "ETH/USDT", "1m")) == 12
    assert len(first) == 10


def test_a_write_by_another_store_instance_is_seen(store):
    store.write("binance", "ETH/USDT", "1m", candles(10))
    assert len(store.read("binance", "ETH/USDT", "1m")) == 10

    CandleStore(store.root).write("binance", "ETH/USDT", "1m", candles(15))

    assert len(store.read("binance", "ETH/USDT", "1m")) == 15


def test_callers_cannot_corrupt_the_cache_by_mutating_a_result(store):
    store.write("binance", "ETH/USDT", "1m", candles(10))
    frame = store.read("binance", "ETH/USDT", "1m")
    frame.loc[0, "close"] = -1.0

    assert store.read("binance", "ETH/USDT", "1m").loc[0, "close"] > 0


def test_candle_source_serves_ranges_of_one_exchange(store):
    store.write("binance", "ETH/USDT", "1m", candles(10))
    source = store.source("Binance")

    part = source.candles("ETH/USDT", "1m", START + MIN, START + 3 * MIN)

    assert len(part) == 2
    assert source.candles("ETH/USDT", "1m", START + 3 * MIN, START + 3 * MIN).empty
    with pytest.raises(DataNotFoundError):
        source.candles("BTC/USDT", "1m", START, START + MIN)


def test_corrupt_file_in_the_store_is_a_data_error_naming_it(store):
    path = store.path("binance", "ETH/USDT", "1m")
    path.parent.mkdir(parents=True)
    path.write_bytes(b"definitely not arrow")

    with pytest.raises(DataError, match=r"ETH_USDT-1m\.feather: unreadable candle file"):
        store.read("binance", "ETH/USDT", "1m")


@pytest.mark.parametrize(
    ("pair", "timeframe", "name"),
    [
        ("ETH/BTC", "5m", "ETH_BTC-5m.feather"),
        ("btc/usdt:usdt", "1h", "BTC_USDT_USDT-1h-futures.feather"),
        ("1000SHIB/USDT", "1d", "1000SHIB_USDT-1d.feather"),
    ],
)
def test_file_names_follow_freqtrade_and_round_trip(pair, timeframe, name):
    assert series_filename(pair, timeframe) == name
    assert parse_series_name(name.removesuffix(".feather")) == (normalize_pair(pair), timeframe)


@pytest.mark.parametrize("stem", ["ETH-5m", "ETH_BTC_USDT-5m", "ETH_BTC-5x", "ETH_BTC-trades", "ETH_BTC"])
def test_names_that_are_not_candle_series_are_not_parsed(stem):
    assert parse_series_name(stem) is None


@pytest.mark.parametrize("exchange", ["../etc", "bin ance", "", "a/b"])
def test_exchange_names_cannot_escape_the_store(exchange):
    with pytest.raises(ConfigError):
        normalize_exchange(exchange)


@pytest.mark.parametrize("pair", ["BTCUSDT", "BTC/USDT/X", "BTC/", "BTC/USDT:", "../../x/y"])
def test_malformed_pairs_are_config_errors(pair):
    with pytest.raises(ConfigError):
        normalize_pair(pair)
