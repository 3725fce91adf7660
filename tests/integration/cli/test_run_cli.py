"""``tradefleet paper`` and ``tradefleet up`` as a user runs them: real processes, real files."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

RUN = [sys.executable, "-c", "from tradefleet.cli import main; main()"]


def tradefleet(*args: str, cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*RUN, *args], cwd=cwd, capture_output=True, text=True, timeout=timeout, env=_clean_env(), check=False
    )


def _clean_env() -> dict[str, str]:
    import os

    return {k: v for k, v in os.environ.items() if not k.startswith("TRADEFLEET__") and k != "DATABASE_URL"}


def test_paper_runs_one_bot_prints_trades_and_pnl_then_resumes(tmp_path: Path) -> None:
    args = ["--data-dir", "var", "paper", "--strategy", "SmaCross", "--pair", "BTC/USDT", "--speed", "1e9"]
    first = tradefleet(*args, "--until", "2024-01-12", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert " BUY  BTC/USDT" in first.stdout and " SELL BTC/USDT" in first.stdout
    assert "realized" in first.stdout and "paper-smacross-btc-usdt" in first.stdout
    closed_first = int(first.stdout.splitlines()[-2].split()[1])

    second = tradefleet(*args, "--until", "2024-01-14", cwd=tmp_path)
    assert second.returncode == 0, second.stderr
    closed_second = int(second.stdout.splitlines()[-2].split()[1])
    assert closed_second > closed_first, "the second run continues the same bot instead of starting over"
    assert (tmp_path / "var" / "tradefleet.sqlite").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--stake", "-5"], "stake_amount"),
        (["--speed", "0"], "speed"),
        (["--timeframe", "7x"], "timeframe"),
        (["--pair", "BTCUSDT"], "pair"),
        (["--strategy", "NoSuchStrategy"], "NoSuchStrategy"),
        (["--max-open-trades", "zero"], "max-open-trades"),
        (["--until", "someday"], "until"),
    ],
)
def test_bad_paper_arguments_fail_in_one_line_and_write_nothing(tmp_path: Path, args: list[str], message: str) -> None:
    base = {"--strategy": "SmaCross", "--pair": "BTC/USDT", "--speed": "1e9"}
    for flag, value in zip(args[::2], args[1::2], strict=True):
        base[flag] = value
    flat = [item for pair in base.items() for item in pair]
    result = tradefleet("--data-dir", "var", "paper", *flat, cwd=tmp_path)
    assert result.returncode != 0
    assert message.lower() in result.stderr.lower(), result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "var").exists(), "nothing may be written for bad input"


def test_contradictory_risk_settings_in_the_config_file_are_refused(tmp_path: Path) -> None:
    (tmp_path / "tradefleet.toml").write_text("[risk]\nmax_open_trades = 1\nmax_per_pair = 2\n")
    result = tradefleet("--data-dir", "var", "up", cwd=tmp_path)
    assert result.returncode != 0
    assert "max_per_pair" in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "var").exists()


def test_second_process_on_the_same_data_dir_is_refused(tmp_path: Path) -> None:
    args = ["--data-dir", "var", "paper", "--strategy", "SmaCross", "--pair", "BTC/USDT", "--speed", "1"]
    first = subprocess.Popen([*RUN, *args], cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(300):
            if (tmp_path / "var" / "sim").exists():
                break
            time.sleep(0.1)
        second = tradefleet(*args, cwd=tmp_path)
        assert second.returncode != 0
        assert "another TradeFleet process" in second.stderr
    finally:
        first.terminate()
        first.wait(timeout=30)
