"""Importing Freqtrade folders and files and CSV files; nothing is written unless every file is good."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pandas as pd
import pytest

from tradefleet.adapters.data.generator import generate_market
from tradefleet.adapters.data.importers import candle_files, import_path
from tradefleet.adapters.data.store import CandleStore
from tradefleet.core.candles import validate_candles
from tradefleet.core.errors import CandleValidationError, ConfigError, DataError

START = 1_704_067_200_000
MIN5 = 300_000


def market(n: int = 12, timeframe: str = "5m", pair: str = "ETH/BTC") -> pd.DataFrame:
    return generate_market(pair, timeframe, start_ms=START, candles=n, seed=11)


def freqtrade_feather(path: Path, frame: pd.DataFrame) -> Path:
    """Write a file the way Freqtrade does: nanosecond UTC dates, float columns, lz4."""
    out = frame.copy()
    out["date"] = out["date"].astype("datetime64[ns, UTC]")
    path.parent.mkdir(parents=True, exist_ok=True)
    out.to_feather(path, compression="lz4")
    return path


def freqtrade_json(path: Path, frame: pd.DataFrame) -> list[list]:
    rows = [[int(r.date.value // 1_000_000), r.open, r.high, r.low, r.close, r.volume] for r in frame.itertuples()]
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.name.endswith(".gz"):
        with gzip.open(path, "wt") as handle:
            json.dump(rows, handle)
    else:
        path.write_text(json.dumps(rows))
    return rows


def csv_text(frame: pd.DataFrame, *, iso: bool = False) -> str:
    lines = ["date,open,high,low,close,volume"]
    for r in frame.itertuples():
        when = r.date.isoformat() if iso else str(int(r.date.value // 1_000_000))
        lines.append(f"{when},{r.open!r},{r.high!r},{r.low!r},{r.close!r},{r.volume!r}")
    return "\n".join(lines) + "\n"


@pytest.fixture
def store(tmp_path: Path) -> CandleStore:
    return CandleStore(tmp_path / "candles")


def stored_files(store: CandleStore) -> list[Path]:
    return sorted(store.root.rglob("*")) if store.root.exists() else []


def test_freqtrade_feather_file_is_imported_with_pair_and_timeframe_from_its_name(store, tmp_path):
    frame = market()
    path = freqtrade_feather(tmp_path / "in" / "ETH_BTC-5m.feather", frame)

    [result] = import_path(store, path)

    assert (result.exchange, result.pair, result.timeframe, result.rows, result.added) == (
        "imported",
        "ETH/BTC",
        "5m",
        12,
        12,
    )
    pd.testing.assert_frame_equal(store.read("imported", "ETH/BTC", "5m"), validate_candles(frame))


@pytest.mark.parametrize("name", ["BTC_USDT-5m.json", "BTC_USDT-5m.json.gz"])
def test_freqtrade_json_files_are_imported(store, tmp_path, name):
    frame = market(pair="BTC/USDT")
    freqtrade_json(tmp_path / name, frame)

    [result] = import_path(store, tmp_path / name, exchange="binance")

    assert (result.pair, result.timeframe, result.added) == ("BTC/USDT", "5m", 12)
    pd.testing.assert_frame_equal(store.read("binance", "BTC/USDT", "5m"), validate_candles(frame))


@pytest.mark.parametrize("iso", [False, True])
def test_csv_with_millisecond_or_iso_dates_is_imported(store, tmp_path, iso):
    frame = market()
    (tmp_path / "ETH_BTC-5m.csv").write_text(csv_text(frame, iso=iso))

    import_path(store, tmp_path / "ETH_BTC-5m.csv")

    pd.testing.assert_frame_equal(store.read("imported", "ETH/BTC", "5m"), validate_candles(frame))


def test_csv_with_timestamp_header_in_seconds_and_newest_first_is_sorted(store, tmp_path):
    frame = market(4)
    lines = ["timestamp,open,high,low,close,volume"] + [
        f"{int(r.date.value // 1_000_000_000)},{r.open!r},{r.high!r},{r.low!r},{r.close!r},{r.volume!r}"
        for r in frame.iloc[::-1].itertuples()
    ]
    (tmp_path / "ETH_BTC-5m.csv").write_text("\n".join(lines))

    import_path(store, tmp_path / "ETH_BTC-5m.csv")

    pd.testing.assert_frame_equal(store.read("imported", "ETH/BTC", "5m"), validate_candles(frame))


def test_futures_file_names_give_settled_pairs(store, tmp_path):
    freqtrade_feather(tmp_path / "futures" / "BTC_USDT_USDT-1h-futures.feather", market(5, "1h"))

    [result] = import_path(store, tmp_path / "futures")

    assert (result.pair, result.timeframe) == ("BTC/USDT:USDT", "1h")
    assert store.path("imported", "BTC/USDT:USDT", "1h").name == "BTC_USDT_USDT-1h-futures.feather"


def test_flags_override_what_the_file_name_says(store, tmp_path):
    (tmp_path / "ETH_BTC-5m.csv").write_text(csv_text(market()))

    [result] = import_path(store, tmp_path / "ETH_BTC-5m.csv", pair="LTC/BTC", timeframe="5m", exchange="kraken")

    assert (result.exchange, result.pair) == ("kraken", "LTC/BTC")
    assert store.has("kraken", "LTC/BTC", "5m")


def test_name_without_pair_or_timeframe_needs_flags(store, tmp_path):
    (tmp_path / "export.csv").write_text(csv_text(market()))

    with pytest.raises(ConfigError, match=r"export.csv: cannot tell the pair and timeframe") as err:
        import_path(store, tmp_path / "export.csv")
    assert "--pair and --timeframe" in err.value.hint

    [result] = import_path(store, tmp_path / "export.csv", pair="ETH/BTC", timeframe="5m")
    assert result.added == 12


def test_freqtrade_folder_is_imported_recursively_skipping_trades_files(store, tmp_path):
    data = tmp_path / "user_data" / "data" / "binance"
    freqtrade_feather(data / "ETH_BTC-5m.feather", market())
    freqtrade_json(data / "BTC_USDT-1h.json", market(6, "1h", "BTC/USDT"))
    freqtrade_feather(data / "futures" / "BTC_USDT_USDT-1h-futures.feather", market(3, "1h"))
    (data / "ETH_BTC-trades.json").write_text("[]")
    ticks = []
    progress = ticks.append

    results = import_path(store, tmp_path / "user_data", exchange="binance", progress=progress)

    assert sorted((r.pair, r.timeframe, r.added) for r in results) == [
        ("BTC/USDT", "1h", 6),
        ("BTC/USDT:USDT", "1h", 3),
        ("ETH/BTC", "5m", 12),
    ]
    assert ticks == [1, 1, 1]


def test_one_corrupt_file_in_a_folder_means_nothing_is_written(store, tmp_path):
    freqtrade_feather(tmp_path / "data" / "ETH_BTC-5m.feather", market())
    (tmp_path / "data" / "XRP_BTC-5m.feather").write_bytes(b"ARROW1\x00\x00garbage")

    with pytest.raises(DataError, match=r"XRP_BTC-5m.feather: not a readable Feather file"):
        import_path(store, tmp_path / "data")

    assert stored_files(store) == []


def test_csv_rows_with_high_below_low_are_named_by_file_line_and_nothing_is_written(store, tmp_path):
    frame = market()
    frame.loc[[3, 8], "high"] = frame.loc[[3, 8], "low"] * 0.5
    (tmp_path / "ETH_BTC-5m.csv").write_text(csv_text(frame))

    with pytest.raises(CandleValidationError) as err:
        import_path(store, tmp_path / "ETH_BTC-5m.csv")

    message = err.value.message
    assert "ETH_BTC-5m.csv" in message and "2 row(s) with high below max(open, close)" in message
    assert "rows 5, 10" in message and "\n" not in message  # header is line 1, frame row 3 is line 5
    assert err.value.details == {"file": str(tmp_path / "ETH_BTC-5m.csv"), "rows": [5, 10]}
    assert stored_files(store) == []


def test_csv_with_text_in_a_price_column_names_the_line(store, tmp_path):
    text = csv_text(market(4)).splitlines()
    text[3] = text[3].replace(text[3].split(",")[4], "n/a")
    (tmp_path / "ETH_BTC-5m.csv").write_text("\n".join(text))

    with pytest.raises(CandleValidationError, match=r"column 'close' is not a number in 1 row\(s\) \(rows 4\)"):
        import_path(store, tmp_path / "ETH_BTC-5m.csv")
    assert stored_files(store) == []


def test_csv_with_an_unreadable_date_names_the_line(store, tmp_path):
    text = csv_text(market(4), iso=True).splitlines()
    text[2] = "yesterday" + text[2][text[2].index(",") :]
    (tmp_path / "ETH_BTC-5m.csv").write_text("\n".join(text))

    with pytest.raises(CandleValidationError, match=r"unreadable date in 1 row\(s\) \(rows 3\)"):
        import_path(store, tmp_path / "ETH_BTC-5m.csv")


def test_csv_without_the_needed_columns_says_which(store, tmp_path):
    (tmp_path / "ETH_BTC-5m.csv").write_text("time_open,o,h,l,c\n1,2,3,4,5\n")

    with pytest.raises(DataError, match="CSV header lacks date or timestamp, open, high, low, close, volume"):
        import_path(store, tmp_path / "ETH_BTC-5m.csv")


def test_json_rows_of_the_wrong_shape_are_named(store, tmp_path):
    rows = freqtrade_json(tmp_path / "ETH_BTC-5m.json", market(4))
    rows[2] = rows[2][:3]
    (tmp_path / "ETH_BTC-5m.json").write_text(json.dumps(rows))

    with pytest.raises(DataError, match=r"1 row\(s\) are not \[ms, open, high, low, close, volume\] \(rows 2\)"):
        import_path(store, tmp_path / "ETH_BTC-5m.json")


def test_wrong_timeframe_flag_is_caught_by_the_grid_check(store, tmp_path):
    (tmp_path / "data.csv").write_text(csv_text(market()))

    with pytest.raises(CandleValidationError, match="off the 1h grid"):
        import_path(store, tmp_path / "data.csv", pair="ETH/BTC", timeframe="1h")
    assert stored_files(store) == []


def test_two_files_for_one_series_are_refused(store, tmp_path):
    freqtrade_feather(tmp_path / "a" / "ETH_BTC-5m.feather", market())
    freqtrade_json(tmp_path / "a" / "ETH_BTC-5m.json", market())

    with pytest.raises(DataError, match="both hold ETH/BTC 5m"):
        import_path(store, tmp_path / "a")
    assert stored_files(store) == []


def test_real_candles_are_not_mixed_into_a_synthetic_series(store, tmp_path):
    store.write("simulated", "ETH/BTC", "5m", market(), synthetic=True)
    (tmp_path / "ETH_BTC-5m.csv").write_text(csv_text(market()))

    with pytest.raises(DataError, match=r"ETH_BTC-5m\.csv: simulated ETH/BTC 5m holds synthetic candles"):
        import_path(store, tmp_path / "ETH_BTC-5m.csv", exchange="simulated")


def test_reimporting_adds_nothing(store, tmp_path):
    freqtrade_feather(tmp_path / "ETH_BTC-5m.feather", market())
    import_path(store, tmp_path / "ETH_BTC-5m.feather")

    [again] = import_path(store, tmp_path / "ETH_BTC-5m.feather")

    assert (again.rows, again.added) == (12, 0)


def test_missing_path_empty_folder_and_unsupported_file_are_clear_errors(tmp_path):
    with pytest.raises(DataError, match="no such file or folder"):
        candle_files(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no candle files found"):
        candle_files(tmp_path / "empty")
    (tmp_path / "ETH_BTC-5m.parquet").write_bytes(b"")
    with pytest.raises(DataError, match="unsupported file type"):
        candle_files(tmp_path / "ETH_BTC-5m.parquet")
