"""JSON export: a complete, standard JSON document that reads back into the same result."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tradefleet.adapters.reports import FORMAT, read_json, result_from_json, to_json, write_json
from tradefleet.core.errors import DataError
from tradefleet.core.metrics import Metrics
from tradefleet.engine.backtest.types import BacktestResult, BacktestTrade


def _assert_same(a: BacktestResult, b: BacktestResult) -> None:
    assert a.config == b.config
    assert a.trades == b.trades
    assert a.equity_ms.dtype == np.int64
    assert a.equity.dtype == np.float64
    np.testing.assert_array_equal(a.equity_ms, b.equity_ms)
    np.testing.assert_array_equal(a.equity, b.equity)
    assert (a.candles, a.elapsed_s, a.data_fingerprint) == (b.candles, b.elapsed_s, b.data_fingerprint)


def test_round_trip_through_a_file_gives_the_same_result(
    tmp_path: Path, result: BacktestResult, metrics: Metrics
) -> None:
    path = write_json(tmp_path / "out" / "result.json", result, metrics)
    back = read_json(path)
    _assert_same(back, result)
    assert Metrics.from_dict(back.metrics) == metrics


def test_document_holds_trades_with_profit_equity_metrics_config_and_fingerprint(
    result: BacktestResult, metrics: Metrics
) -> None:
    data = json.loads(json.dumps(to_json(result, metrics), allow_nan=False))
    assert data["format"] == FORMAT
    first = data["trades"][0]
    assert first["pair"] == "BTC/USDT"
    assert first["profit_abs"] == pytest.approx(9.79)
    assert first["cost"] == pytest.approx(100.1)
    assert data["trades"][3]["is_open"] is True
    assert len(data["equity"]["ms"]) == len(data["equity"]["value"]) == 72
    assert data["metrics"]["trades"] == 3
    assert data["config"]["risk"]["stake_mode"] == "fixed"
    assert data["config"]["pairs"] == ["BTC/USDT", "ETH/USDT", "SOL/USDT"]
    assert data["config"]["strategy_params"] == {"fast": 10, "slow": 30}
    assert data["data_fingerprint"] == "abc123"


def test_without_metrics_the_results_own_metrics_are_written(result: BacktestResult) -> None:
    result.metrics = {"note": "engine-filled"}
    assert to_json(result)["metrics"] == {"note": "engine-filled"}


def test_numpy_values_from_an_engine_are_written_as_plain_numbers(tmp_path: Path, result: BacktestResult) -> None:
    ms: Any = np.int64(1)  # engines filling trades from arrays hand over numpy scalars despite the annotations
    result.trades = [BacktestTrade("BTC/USDT", ms, ms + 1, np.float64(1.5), np.float64(2.0), 1.0, 0.0, 0.0, "roi", "")]
    back = read_json(write_json(tmp_path / "r.json", result))
    assert back.trades[0].open_ms == 1
    assert type(back.trades[0].open_ms) is int


def test_round_trip_of_the_plain_dict_without_a_file(result: BacktestResult, metrics: Metrics) -> None:
    _assert_same(result_from_json(to_json(result, metrics)), result)


def test_other_documents_are_refused_with_a_data_error(tmp_path: Path, result: BacktestResult) -> None:
    with pytest.raises(DataError, match="not a TradeFleet backtest result"):
        result_from_json({"format": "something/1"})
    broken = to_json(result)
    del broken["equity"]
    with pytest.raises(DataError, match="malformed"):
        result_from_json(broken)
    (tmp_path / "bad.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(DataError, match="cannot read"):
        read_json(tmp_path / "bad.json")


def test_nan_in_the_result_is_refused_rather_than_written_as_non_standard_json(
    tmp_path: Path, result: BacktestResult
) -> None:
    result.equity = result.equity.copy()
    result.equity[3] = np.nan
    with pytest.raises(ValueError, match="JSON"):
        write_json(tmp_path / "r.json", result)
