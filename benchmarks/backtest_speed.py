"""Fast backtest kernel speed: candles per second on 1M 1m candles of SMA(10)/SMA(50), with and without analysis.

    .venv/bin/python benchmarks/backtest_speed.py [--quick]

Also times the event-driven engine (the live engine on a sim clock) on a slice, for the ratio between them.
"""

from __future__ import annotations

import argparse
import time

import pandas as pd

from tradefleet.adapters.data.generator import generate_market
from tradefleet.core.risk import RiskSettings
from tradefleet.engine.backtest import BacktestConfig
from tradefleet.engine.backtest.data import prepare_frames
from tradefleet.engine.backtest.fast import analyse, run_fast_on_signals
from tradefleet.services.backtest import run_event_backtest
from tradefleet.strategies import SmaCross

GOAL = 10_000_000  # candles/s, analysis included
T0 = int(pd.Timestamp("2022-01-01", tz="UTC").value // 1_000_000)


class Sma1m(SmaCross):
    timeframe = "1m"


def best_of(n: int, fn: object) -> tuple[float, object]:
    best, out = float("inf"), None
    for _ in range(n):
        t = time.perf_counter()
        out = fn()  # type: ignore[operator]
        best = min(best, time.perf_counter() - t)
    return best, out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    n = 200_000 if args.quick else 1_000_000
    pair = "BTC/USDT"
    candles = {pair: generate_market(pair, "1m", start_ms=T0, candles=n, seed=1)}
    cfg = BacktestConfig(
        strategy="SmaCross",
        pairs=(pair,),
        timeframe="1m",
        start_ms=T0 + 60 * 60_000,
        quote_currency="USDT",
        starting_balance=10_000.0,
        risk=RiskSettings(stake_mode="percent", stake_amount=90.0, max_open_trades=1),
    )
    strategy = Sma1m()
    frames = prepare_frames(cfg, candles)
    run_fast_on_signals(cfg, frames, analyse(cfg, frames, strategy), strategy)  # compile (or load the cache)
    t_analysis, analysed = best_of(5, lambda: analyse(cfg, frames, strategy))
    t_kernel, result = best_of(5, lambda: run_fast_on_signals(cfg, frames, analysed, strategy))  # type: ignore[arg-type]
    steps = result.candles  # type: ignore[union-attr]
    slice_n = 20_000 if args.quick else 50_000
    small = {pair: candles[pair].iloc[:slice_n]}
    t = time.perf_counter()
    event = run_event_backtest(cfg, small, strategy)
    t_event = time.perf_counter() - t
    total = t_analysis + t_kernel
    print(f"fast backtest, SMA(10)/SMA(50), {n:,} 1m candles, {len(result.trades):,} trades")  # type: ignore[union-attr]
    print(f"{'part':<28}{'seconds':>10}{'candles/s':>16}")
    print(f"{'analysis (pandas + numpy)':<28}{t_analysis:>10.4f}{n / t_analysis:>16,.0f}")
    print(f"{'kernel (incl. wrapping)':<28}{t_kernel:>10.4f}{steps / t_kernel:>16,.0f}")
    verdict = "met" if steps / total >= GOAL else "MISSED"
    print(f"{'total':<28}{total:>10.4f}{steps / total:>16,.0f}   goal {GOAL:,}/s {verdict}")
    print(f"{'event engine (' + format(slice_n, ',') + ')':<28}{t_event:>10.4f}{event.candles / t_event:>16,.0f}")


if __name__ == "__main__":
    main()
