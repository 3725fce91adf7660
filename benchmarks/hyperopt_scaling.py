"""Hyperopt throughput: epochs per second with 1 worker process and with every core (2 here).

    .venv/bin/python benchmarks/hyperopt_scaling.py [--quick]

RsiMeanReversion, spaces buy sell roi stoploss, loss sharpe, over ETH/BTC and ADA/BTC 5m: the real candles
of ../shared/data/real when present, else two seeded synthetic series of the same length. Each row is a
fresh study in a fresh journal file; wall time includes starting the worker processes, which is what a user
waits for. The epoch-only rate subtracts that start-up (measured as the time to the first finished epoch).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
from _common import header, print_table

from tradefleet.core.candles import dates_ms
from tradefleet.core.risk import RiskSettings
from tradefleet.engine.backtest.types import BacktestConfig
from tradefleet.services.hyperopt.runner import EpochReport, HyperoptJob, default_jobs, run_hyperopt
from tradefleet.strategies.loader import synthetic_candles

REAL = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "real"
PAIRS = ("ETH/BTC", "ADA/BTC")


def load_candles() -> tuple[dict[str, pd.DataFrame], str]:
    if all((REAL / f"{p.replace('/', '_')}-5m.feather").is_file() for p in PAIRS):
        frames = {p: pd.read_feather(REAL / f"{p.replace('/', '_')}-5m.feather") for p in PAIRS}
        return frames, "real (../shared/data/real)"
    return {p: synthetic_candles(5760, "5m", seed=s) for p, s in zip(PAIRS, (3, 11), strict=True)}, "synthetic"


def make_job(candles: dict[str, pd.DataFrame], storage: str) -> HyperoptJob:
    start = int(dates_ms(candles[PAIRS[0]]["date"])[150])
    config = BacktestConfig(
        strategy="RsiMeanReversion",
        pairs=PAIRS,
        timeframe="5m",
        start_ms=start,
        risk=RiskSettings(stake_mode="fixed", stake_amount=0.05, max_open_trades=2, max_per_pair=1),
        starting_balance=1.0,
        quote_currency="BTC",
    )
    return HyperoptJob(
        strategy="RsiMeanReversion",
        search_dirs=(),
        spaces=("buy", "sell", "roi", "stoploss"),
        loss="sharpe",
        config=config,
        candles=candles,
        storage=storage,
        study_name="bench",
        seed=1,
    )


def measure(candles: dict[str, pd.DataFrame], jobs: int, epochs: int) -> list[object]:
    with tempfile.TemporaryDirectory(prefix="tf-hyperopt-bench-") as tmp:
        job = make_job(candles, os.path.join(tmp, "bench.journal"))
        started = time.perf_counter()
        first: list[float] = []

        def on_epoch(_report: EpochReport) -> None:
            if not first:
                first.append(time.perf_counter() - started)

        run_hyperopt(job, epochs, jobs=jobs, on_epoch=on_epoch)
        wall = time.perf_counter() - started
    startup = first[0] if first else 0.0
    steady = (epochs - jobs) / (wall - startup) if wall > startup and epochs > jobs else 0.0
    return [jobs, epochs, round(wall, 2), round(startup, 2), round(epochs / wall, 1), round(steady, 1)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer epochs")
    parser.add_argument("--epochs", type=int, default=None)
    args = parser.parse_args()
    epochs = args.epochs or (60 if args.quick else 240)
    header("Hyperopt scaling: epochs per second by worker processes", args.quick)
    candles, kind = load_candles()
    print(f"RsiMeanReversion, buy sell roi stoploss, loss sharpe, {' '.join(PAIRS)} 5m, {kind} candles")
    counts = sorted({1, max(2, default_jobs())})
    rows = [measure(candles, jobs, epochs) for jobs in counts]
    base = rows[0][4]
    for row in rows:
        row.append(round(row[4] / base, 2) if base else "-")  # type: ignore[operator]
    print_table(
        ["workers", "epochs", "wall s", "to 1st epoch s", "epochs/s", "epochs/s after start", "speed-up"],
        rows,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
