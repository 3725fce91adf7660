"""``tradefleet hyperopt`` as a user runs it: two worker processes, a resumed study, parameters bots load."""

from __future__ import annotations

import json
import shlex
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from tradefleet.services.hyperopt.runner import load_saved_params
from tradefleet.strategies.rsi_mean_reversion import RsiMeanReversion

Cli = Callable[..., subprocess.CompletedProcess[str]]  # the `cli` fixture of conftest.py
COMMAND = shlex.split(
    "hyperopt --strategy RsiMeanReversion --loss sharpe --spaces buy sell roi stoploss --jobs 2 "
    "--pairs ETH/BTC ADA/BTC --timerange 20180110-20180130 --seed 5"
)


@pytest.mark.realdata
def test_hyperopt_runs_on_two_workers_resumes_and_writes_parameters_bots_load(cli: Cli, workdir: Path) -> None:
    first = cli(*COMMAND, "--epochs", "12", "--write", cwd=workdir)
    assert first.returncode == 0, first.stderr
    assert "2 worker process(es)" in first.stdout and "the study now has 12 epochs" in first.stdout
    assert "buy_params = " in first.stdout and "minimal_roi = " in first.stdout and "stoploss = " in first.stdout
    saved = workdir / "var" / "strategies" / "RsiMeanReversion.json"
    document = json.loads(saved.read_text())
    assert set(document["params"]) == {"buy", "sell", "roi", "stoploss"}

    second = cli(*COMMAND, "--epochs", "6", cwd=workdir)
    assert second.returncode == 0, second.stderr
    assert "the study now has 18 epochs" in second.stdout
    assert len(list((workdir / "var" / "hyperopt").glob("*.journal"))) == 1

    params = load_saved_params(RsiMeanReversion, workdir / "var" / "strategies")
    for name, value in params.items():
        declared = RsiMeanReversion.parameters()[name]
        assert declared.low <= value <= declared.high  # type: ignore[attr-defined]
    backtest = cli("backtest", "--strategy", "RsiMeanReversion", "--pairs", "ETH/BTC", "ADA/BTC", cwd=workdir)
    assert backtest.returncode == 0, backtest.stderr
    assert "parameters from" in backtest.stderr and "RsiMeanReversion.json" in backtest.stderr


@pytest.mark.realdata
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--loss", "magic"], "unknown hyperopt loss 'magic'"),
        (["--spaces", "buy", "moon"], "unknown hyperopt space 'moon'"),
        (["--epochs", "0"], "--epochs must be at least 1"),
        (["--timerange", "20200101-"], "no ETH/BTC 5m candles"),
        (["--strategy", "Nope"], "unknown strategy 'Nope'"),
    ],
)
def test_bad_hyperopt_input_fails_in_one_line_and_writes_nothing(
    cli: Cli,
    workdir: Path,
    args: list[str],
    message: str,
) -> None:
    options = ["hyperopt", "--strategy", "RsiMeanReversion", "--pairs", "ETH/BTC", "--epochs", "3", *args]
    result = cli(*options, cwd=workdir)

    assert result.returncode != 0
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert not (workdir / "var" / "hyperopt").exists()
