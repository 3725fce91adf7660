"""``tradefleet data`` end to end; a failure is one line on stderr, exit != 0 and nothing written."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from binance_replay import STEP_5M, load_fixture
from typer.testing import CliRunner

from tradefleet.adapters.data.generator import generate_market
from tradefleet.adapters.data.store import CandleStore

FIRST_MS = load_fixture("klines_ETHBTC_5m.json")[0][0]


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)  # no stray ./tradefleet.toml
    return tmp_path / "var"


@pytest.fixture
def run(cli_app, data_dir):
    runner = CliRunner()

    def invoke(*args: str):
        return runner.invoke(cli_app, ["--data-dir", str(data_dir), "data", *args])

    return invoke


def candle_files(data_dir: Path) -> list[Path]:
    root = data_dir / "candles"
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


def assert_one_line_failure(result, *fragments: str) -> None:
    assert result.exit_code != 0
    assert isinstance(result.exception, SystemExit), result.exception
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    for fragment in fragments:
        assert fragment in lines[0]


def test_generate_stores_a_synthetic_market_that_list_labels(run, data_dir):
    result = run("generate", "--pair", "SYN/USDT", "--timeframe", "1h", "--days", "10", "--seed", "7")

    assert result.exit_code == 0, result.output
    assert "240 synthetic candles (seed 7)" in result.stdout
    store = CandleStore(data_dir / "candles")
    assert store.is_synthetic("simulated", "SYN/USDT", "1h")
    listing = run("list")
    assert listing.exit_code == 0
    [header, row] = listing.stdout.strip().splitlines()
    assert header.split() == ["EXCHANGE", "PAIR", "TF", "ROWS", "FROM", "TO", "GAPS", "KIND"]
    assert row.split()[:4] == ["simulated", "SYN/USDT", "1h", "240"]
    assert row.split()[-1] == "SYNTHETIC"


def test_generate_is_deterministic_for_a_seed(run, data_dir):
    run("generate", "--timeframe", "1h", "--days", "2", "--seed", "3", "--exchange", "a")
    run("generate", "--timeframe", "1h", "--days", "2", "--seed", "3", "--exchange", "b")

    store = CandleStore(data_dir / "candles")
    assert store.read("a", "SYN/USDT", "1h").equals(store.read("b", "SYN/USDT", "1h"))


def test_list_of_an_empty_store_says_how_to_get_data(run):
    result = run("list")

    assert result.exit_code == 0
    assert "tradefleet data import|download|generate" in result.stdout


def test_import_of_a_freqtrade_file(run, data_dir, tmp_path):
    frame = generate_market("ETH/BTC", "5m", start_ms=FIRST_MS, candles=50, seed=1)
    frame.to_feather(tmp_path / "ETH_BTC-5m.feather")

    result = run("import", str(tmp_path / "ETH_BTC-5m.feather"), "--exchange", "binance")

    assert result.exit_code == 0, result.output
    assert "binance ETH/BTC 5m: 50 rows, 50 new" in result.stdout
    assert run("list").stdout.splitlines()[1].split()[-1] == "real"


def test_import_of_a_corrupt_feather_file_fails_in_one_line_and_writes_nothing(run, data_dir, tmp_path):
    (tmp_path / "ETH_BTC-5m.feather").write_bytes(b"ARROW1\x00\x00this is not arrow")

    result = run("import", str(tmp_path / "ETH_BTC-5m.feather"))

    assert_one_line_failure(result, "ETH_BTC-5m.feather", "not a readable Feather file")
    assert candle_files(data_dir) == []


def test_import_of_a_csv_with_high_below_low_fails_in_one_line_and_writes_nothing(run, data_dir, tmp_path):
    csv = tmp_path / "prices.csv"
    csv.write_text(
        "timestamp,open,high,low,close,volume\n"
        "2024-01-01T00:00:00Z,100,101,99,100.5,10\n"
        "2024-01-01T00:01:00Z,100.5,99,101,100,12\n"
        "2024-01-01T00:02:00Z,100,100.8,99.5,100.2,8\n"
    )

    result = run("import", str(csv), "--pair", "BTC/USDT", "--timeframe", "1m")

    assert_one_line_failure(result, "prices.csv", "high below max(open, close)", "rows 3")
    assert candle_files(data_dir) == []


def test_import_without_pair_for_an_unnamed_file_fails_in_one_line(run, data_dir, tmp_path):
    (tmp_path / "prices.csv").write_text("date,open,high,low,close,volume\n")

    result = run("import", str(tmp_path / "prices.csv"))

    assert_one_line_failure(result, "cannot tell the pair and timeframe", "--pair and --timeframe")


def test_download_through_a_local_binance(run, data_dir, binance):
    result = run(
        "download",
        "--exchange",
        "binance",
        "--pair",
        "ETH/BTC",
        "--timeframe",
        "5m",
        "--since",
        "2018-01-10T04:55:00Z",
        "--until",
        "2018-01-10T06:55:00Z",
        "--api-url",
        binance.url,
    )

    assert result.exit_code == 0, result.output
    assert "binance ETH/BTC 5m: 24 new candles" in result.stdout
    store = CandleStore(data_dir / "candles")
    assert store.first_ms("binance", "ETH/BTC", "5m") == FIRST_MS
    assert store.last_ms("binance", "ETH/BTC", "5m") == FIRST_MS + 23 * STEP_5M


def test_download_of_an_unknown_pair_fails_in_one_line_and_writes_nothing(run, data_dir, binance):
    result = run("download", "--pair", "NOPE/USDT", "--since", "2024-01-01", "--api-url", binance.url)

    assert_one_line_failure(result, "binance does not list NOPE/USDT", "check the pair spelling")
    assert candle_files(data_dir) == []


@pytest.mark.parametrize("since", ["2024-13-01", "yesterday", "01/02/2024"])
def test_malformed_since_fails_in_one_line(run, data_dir, since):
    result = run("download", "--pair", "BTC/USDT", "--since", since)

    assert_one_line_failure(result, "--since", repr(since), "YYYY-MM-DD")
    assert candle_files(data_dir) == []


def test_until_before_since_fails_in_one_line(run):
    result = run("download", "--pair", "BTC/USDT", "--since", "2024-02-01", "--until", "2024-01-01")

    assert_one_line_failure(result, "--until must be after --since")


@pytest.mark.parametrize("days", ["-5", "0", "nan"])
def test_non_positive_days_fail_in_one_line(run, data_dir, days):
    result = run("generate", "--days", days)

    assert_one_line_failure(result, "--days must be positive")
    assert candle_files(data_dir) == []


def test_bad_timeframe_fails_in_one_line(run, data_dir):
    result = run("generate", "--timeframe", "7x", "--days", "1")

    assert_one_line_failure(result, "invalid timeframe '7x'")


def test_console_entry_point_reports_errors_in_one_line(data_dir, tmp_path):
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            "from tradefleet.cli import main; main()",
            "--data-dir",
            str(data_dir),
            "data",
            "generate",
            "--days",
            "-1",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        check=False,
    )

    assert proc.returncode != 0
    assert proc.stderr.strip().splitlines() == ["error: --days must be positive, got -1 — for example --days 365"]
    assert not (data_dir / "candles").exists()
