"""Fixtures of the backtest and hyperopt CLI tests: a data dir with the real candles, and the CLI as a process."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

RUN = [sys.executable, "-c", "from tradefleet.cli import main; main()"]
Cli = Callable[..., subprocess.CompletedProcess[str]]


def tradefleet(*args: str, cwd: Path, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    """Run ``tradefleet --data-dir var ARGS`` in ``cwd`` with an environment free of TradeFleet settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRADEFLEET__") and k != "DATABASE_URL"}
    return subprocess.run(
        [*RUN, "--data-dir", "var", *args], cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env,
        check=False,
    )  # fmt: skip


@pytest.fixture
def cli() -> Cli:
    return tradefleet


@pytest.fixture
def workdir(tmp_path: Path, real_data_dir: Path) -> Path:
    """A directory whose ``var`` data dir holds the real ETH/BTC and ADA/BTC 5m candles, and nothing else."""
    from tradefleet.adapters.data.importers import import_path
    from tradefleet.adapters.data.store import CandleStore

    for name in ("ETH_BTC-5m.feather", "ADA_BTC-5m.feather"):
        import_path(CandleStore(tmp_path / "var" / "candles"), real_data_dir / name, exchange="bittrex")
    return tmp_path
