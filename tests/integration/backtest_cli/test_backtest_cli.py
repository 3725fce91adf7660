"""``tradefleet backtest`` as a user runs it: real processes, the real candles imported into a fresh data dir."""

from __future__ import annotations

import json
import shlex
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from tradefleet.cli.backtest import expand_multi_values, split_values

Cli = Callable[..., subprocess.CompletedProcess[str]]  # the `cli` fixture of conftest.py
ISSUE_COMMAND = shlex.split(
    "backtest --strategy SmaCross --pairs ETH/BTC ADA/BTC --timeframe 5m --timerange 20180110-20180130 "
    "--stake 100 --max-open-trades 2"
)

CHEAT = """
from tradefleet import IStrategy


class Cheat(IStrategy):
    timeframe = "5m"
    minimal_roi = {"0": 0.02}
    stoploss = -0.05

    def populate_indicators(self, df):
        df["future"] = df["close"].shift(-1)
        return df

    def populate_entry_trend(self, df):
        df["enter_long"] = (df["future"] > df["close"]).astype(int)
        return df

    def populate_exit_trend(self, df):
        df["exit_long"] = 0
        return df
"""


def test_multi_value_options_are_expanded_into_repeated_options() -> None:
    args = ["--strategy", "S", "--pairs", "ETH/BTC", "ADA/BTC", "--timeframe", "5m", "--export", "json", "html"]
    assert expand_multi_values(args) == [
        "--strategy", "S", "--pairs", "ETH/BTC", "--pairs", "ADA/BTC", "--timeframe", "5m",
        "--export", "json", "--export", "html",
    ]  # fmt: skip
    assert expand_multi_values(["history", "--limit", "3"]) == ["history", "--limit", "3"]
    assert split_values(["ETH/BTC,ADA/BTC", "ETH/BTC XRP/BTC"]) == ["ETH/BTC", "ADA/BTC", "XRP/BTC"]


@pytest.mark.realdata
def test_the_command_of_the_issue_prints_the_report_and_stores_the_run(cli: Cli, workdir: Path) -> None:
    result = cli(*ISSUE_COMMAND, cwd=workdir)

    assert result.returncode == 0, result.stderr
    assert "BACKTESTING REPORT" in result.stdout and "SmaCross" in result.stdout
    assert "ETH/BTC" in result.stdout and "ADA/BTC" in result.stdout
    assert "stored as backtest run #1" in result.stdout

    history = cli("backtest", "history", cwd=workdir)
    assert history.returncode == 0, history.stderr
    row = history.stdout.splitlines()[2].split()
    assert row[0] == "1" and "SmaCross" in row and "20180110-20180130" in row
    assert "ETH/BTC" in row and "ADA/BTC" in row


@pytest.mark.realdata
def test_repeated_and_comma_separated_pairs_give_the_same_backtest(cli: Cli, workdir: Path) -> None:
    base = [a for a in ISSUE_COMMAND if a not in ("ETH/BTC", "ADA/BTC", "--pairs")]
    spaced = cli(*ISSUE_COMMAND, cwd=workdir)
    repeated = cli(*base, "--pairs", "ETH/BTC", "--pairs", "ADA/BTC", cwd=workdir)
    commas = cli(*base, "--pairs", "ETH/BTC,ADA/BTC", cwd=workdir)

    for run in (spaced, repeated, commas):
        assert run.returncode == 0, run.stderr
    history = cli("backtest", "history", cwd=workdir).stdout.splitlines()[2:]
    trades = {line.split()[-4] for line in history}
    profits = {line.split()[-3] for line in history}
    assert len(history) == 3 and len(trades) == 1 and len(profits) == 1


@pytest.mark.realdata
def test_strategy_list_compares_side_by_side_and_exports(cli: Cli, workdir: Path) -> None:
    result = cli(
        "backtest", "--strategy-list", "SmaCross", "RsiMeanReversion", "--pairs", "ETH/BTC", "ADA/BTC",
        "--timerange", "20180115-", "--export", "json", "html", "--export-dir", "out", cwd=workdir,
    )  # fmt: skip

    assert result.returncode == 0, result.stderr
    table = result.stdout.split("STRATEGY COMPARISON", 1)[1].splitlines()
    assert table[1].split()[:3] == ["Strategy", "Trades", "Win%"]
    assert table[3].startswith("SmaCross") and table[4].startswith("RsiMeanReversion")
    exported = sorted(p.name for p in (workdir / "out").iterdir())
    assert exported == [
        "backtest-1-SmaCross.html", "backtest-1-SmaCross.json",
        "backtest-2-RsiMeanReversion.html", "backtest-2-RsiMeanReversion.json",
    ]  # fmt: skip
    document = json.loads((workdir / "out" / "backtest-2-RsiMeanReversion.json").read_text())
    assert document["config"]["pairs"] == ["ETH/BTC", "ADA/BTC"] and document["metrics"]["trades"] > 0


@pytest.mark.realdata
def test_event_engine_gives_the_trades_of_the_fast_engine(cli: Cli, workdir: Path) -> None:
    fast = cli(*ISSUE_COMMAND, "--engine", "fast", cwd=workdir)
    event = cli(*ISSUE_COMMAND, "--engine", "event", cwd=workdir)

    assert fast.returncode == 0 and event.returncode == 0, event.stderr
    rows = cli("backtest", "history", cwd=workdir).stdout.splitlines()[2:]
    assert rows[0].split()[-4:] == rows[1].split()[-4:]


@pytest.mark.realdata
def test_check_lookahead_reports_a_cheating_strategy_and_fails(cli: Cli, workdir: Path) -> None:
    (workdir / "var" / "strategies").mkdir(parents=True)
    (workdir / "var" / "strategies" / "cheat.py").write_text(CHEAT)

    clean = cli("backtest", "--strategy", "SmaCross", "--pairs", "ETH/BTC", "--check-lookahead", cwd=workdir)
    cheat = cli("backtest", "--strategy", "Cheat", "--pairs", "ETH/BTC", "--check-lookahead", cwd=workdir)

    assert clean.returncode == 0, clean.stderr
    assert "look-ahead check SmaCross ETH/BTC: no findings" in clean.stdout
    assert cheat.returncode != 0
    assert "look-ahead Cheat ETH/BTC: column 'future'" in cheat.stdout
    assert "look-ahead" in cheat.stderr.splitlines()[-1]


@pytest.mark.realdata
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--strategy", "NoSuchStrategy"], "unknown strategy 'NoSuchStrategy'"),
        (["--timerange", "20190101-20190201"], "no ETH/BTC 5m candles in --timerange 20190101-20190201"),
        (["--timerange", "1515560100-1515570000"], "needs 50 startup candles"),
        (["--params", '{"fast": 100}'], "fast=100 is outside [3, 40]"),
        (["--params", '{"nope": 1}'], "no parameter 'nope'"),
        (["--timerange", "2018011-2018013"], "--timerange '2018011-2018013'"),
        (["--timerange", "20180130-20180110"], "the end must be after the start"),
        (["--pairs", "XRP/BTC"], "no 5m candles for XRP/BTC"),
        (["--stake", "-5"], "stake_amount"),
        (["--engine", "turbo"], "--engine 'turbo'"),
    ],
)
def test_bad_input_fails_in_one_line_and_writes_nothing(cli: Cli, workdir: Path, args: list[str], message: str) -> None:
    options = {"--strategy": "SmaCross", "--pairs": "ETH/BTC", "--timeframe": "5m"}
    options.update(zip(args[::2], args[1::2], strict=True))
    flat = [item for pair in options.items() for item in pair]

    result = cli("backtest", *flat, cwd=workdir)

    assert result.returncode != 0
    assert message in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
    assert not (workdir / "var" / "tradefleet.sqlite").exists(), "nothing may be written for bad input"


def test_history_of_a_fresh_data_dir_says_there_is_none_and_creates_nothing(cli: Cli, tmp_path: Path) -> None:
    result = cli("backtest", "history", cwd=tmp_path)

    assert result.returncode == 0, result.stderr
    assert "no backtest runs stored yet" in result.stdout
    assert not (tmp_path / "var").exists()
