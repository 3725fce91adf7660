"""Candle-steps per second through the full paper engine: strategy + risk gate + simulated fills + persistence.

A candle-step is one bot handling one closed candle (``BotRuntime.step``); the figure is candle-steps over
the wall time of ``fleet.step(now)`` + ``fleet.flush()`` while a :class:`SimClock` is moved one day (1440
1m candles) at a time, as a backtest-style replay does. The fleet is built exactly as the CLI builds it
(``build_platform`` + ``build_paper_fleet``) on a generated synthetic market, SQLite on disk.

Persistence modes:

* strict  (``fleet.batched = False``, the paper/live default): every order intent is committed before the
  exchange call, SQLite ``synchronous=FULL`` — one fsync per commit;
* batched (``fleet.batched = True``): one store transaction per delivery batch.

Rows: the SmaCross reference strategy (10/50) and NeverSignal (never trades: the per-candle overhead floor),
with one bot and with 100 bots (one bot per pair, 100 pairs: no analysis is shared between bots).

    .venv/bin/python benchmarks/engine_throughput.py [--quick] [--profile]
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import _common as c

from tradefleet.engine.clock import SimClock

GOAL_ONE_BOT_BATCHED = 50_000
# Peers, measured on this machine by other engineers (not re-measured here): reference constants only.
PEERS = (
    ("NautilusTrader (bars/s, measured by others on this machine)", "13,000-21,000"),
    ("backtrader (bars/s, measured by others on this machine)", "~12,000"),
)
DAY = 1440  # 1m candles per day: the delivery batch


@dataclass
class Result:
    label: str
    strategy: str
    bots: int
    pairs: int
    mode: str
    steps: int
    orders: int
    trades: int
    build_s: float
    walls: list[float]

    @property
    def best(self) -> float:
        return self.steps / min(self.walls)

    @property
    def median(self) -> float:
        return self.steps / statistics.median(self.walls)


def drive(built: c.Built, clock: SimClock, candles: int, tick: int) -> tuple[int, float]:
    """Move the clock ``candles`` minutes past the start, ``tick`` candles per fleet.step; return steps, wall."""
    fleet = built.fleet
    now = built.start_ms
    end = min(built.end_ms, now + candles * c.MINUTE_MS)
    clock.set(now)
    steps = 0
    t0 = time.perf_counter()
    while now < end:
        now = min(now + tick * c.MINUTE_MS, end)
        clock.set(now)
        steps += fleet.step(now)
        fleet.flush()
    return steps, time.perf_counter() - t0


def run_variant(
    root: Path,
    key: str,
    *,
    strategy: str,
    pairs: list[str],
    n_bots: int,
    batched: bool,
    candles: int,
    repeats: int,
    days: int,
    tick: int = DAY,
    profile: cProfile.Profile | None = None,
) -> Result:
    walls: list[float] = []
    steps = orders = trades = 0
    build_s = 0.0
    for rep in range(repeats):
        settings = c.make_settings(root, days=days, db=f"{key}-{rep}")  # fresh database per repetition
        clock = SimClock(0)
        built = c.build_fleet(
            settings, c.bot_configs(n_bots, strategy, pairs), clock=clock, name=f"{key}-{rep}", batched=batched
        )
        try:
            if profile is not None:
                profile.enable()
            steps, wall = drive(built, clock, candles, tick)
            if profile is not None:
                profile.disable()
            walls.append(wall)
            orders, trades = c.order_counts(built)
            build_s = built.build_s
        finally:
            built.close()
    name = "SmaCross" if strategy == c.SMA else "NeverSignal"
    mode = "batched" if batched else "strict"
    return Result(key, name, n_bots, len(pairs), mode, steps, orders, trades, build_s, walls)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="short run (< 20 s)")
    parser.add_argument("--profile", action="store_true", help="cProfile the 1-bot SmaCross batched run")
    args = parser.parse_args()
    quick = args.quick
    c.header("engine throughput: candle-steps/s through the full paper engine (1m candles)", quick)

    one_candles = 2 * DAY if quick else 9 * DAY
    many = {  # (strategy, batched) -> candles per bot for the 100-bot fleet
        (c.SMA, True): 120 if quick else DAY,
        (c.SMA, False): 30 if quick else 480,
        (c.NEVER, True): 240 if quick else 2 * DAY,
        (c.NEVER, False): 240 if quick else 2 * DAY,
    }
    repeats = 1 if quick else 3
    days = 4 if quick else 12  # generated history per pair; a session starts after 1000 warm-up candles

    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="tf-bench-") as tmp:
        root = Path(tmp)
        one_pair = c.pair_names(1)
        hundred_pairs = c.pair_names(100)
        t0 = time.perf_counter()
        c.prepare_market(c.make_settings(root, days=days, db="gen"), hundred_pairs)
        print(f"generated {len(hundred_pairs)} synthetic 1m pairs x {days} days in {time.perf_counter() - t0:.1f} s")

        for strategy in (c.SMA, c.NEVER):
            for batched in (True, False):
                key = f"one-{'sma' if strategy == c.SMA else 'never'}-{'b' if batched else 's'}"
                results.append(
                    run_variant(
                        root, key, strategy=strategy, pairs=one_pair, n_bots=1, batched=batched,
                        candles=one_candles, repeats=repeats, days=days,
                    )
                )  # fmt: skip
        for strategy in (c.SMA, c.NEVER):
            for batched in (True, False):
                key = f"many-{'sma' if strategy == c.SMA else 'never'}-{'b' if batched else 's'}"
                results.append(
                    run_variant(
                        root, key, strategy=strategy, pairs=hundred_pairs, n_bots=100, batched=batched,
                        candles=many[(strategy, batched)], repeats=1, days=days,
                    )
                )  # fmt: skip

        # Paper in real time delivers one candle per fleet.step: the strategy is analysed on every candle.
        rt = run_variant(
            root, "rt", strategy=c.SMA, pairs=one_pair, n_bots=1, batched=False,
            candles=60 if quick else 1000, repeats=1, days=days, tick=1,
        )  # fmt: skip

        prof_text = ""
        if args.profile:
            prof = cProfile.Profile()
            run_variant(
                root, "prof", strategy=c.SMA, pairs=one_pair, n_bots=1, batched=True,
                candles=one_candles, repeats=1, days=days, profile=prof,
            )  # fmt: skip
            buf = io.StringIO()
            stats = pstats.Stats(prof, stream=buf)
            stats.sort_stats("cumulative").print_stats(30)
            stats.sort_stats("tottime").print_stats(15)
            prof_text = buf.getvalue()

    rows = []
    for r in results:
        rows.append(
            [
                r.strategy, r.bots, r.pairs, r.mode, r.steps, r.orders, r.trades, min(r.walls),
                round(r.best), round(r.median), 1e6 / r.best, r.build_s,
            ]
        )  # fmt: skip
    c.print_table(
        ["strategy", "bots", "pairs", "persistence", "candle-steps", "orders", "trades closed", "wall s",
         "steps/s best", "steps/s median", "us/step", "build s"],
        rows,
        title=f"Replay, {DAY} candles per fleet.step, flush after each step; best/median of {repeats} run(s) "
        "for 1 bot, 1 run for 100 bots",
    )  # fmt: skip

    c.print_table(
        ["delivery", "strategy", "bots", "persistence", "candle-steps", "orders", "wall s", "steps/s", "ms/candle"],
        [["1 candle per fleet.step (paper, real time)", rt.strategy, rt.bots, rt.mode, rt.steps, rt.orders,
          min(rt.walls), round(rt.best), 1e3 / rt.best]],
        title="Real-time delivery: every closed candle re-analyses the strategy on the 2000-candle window",
    )  # fmt: skip

    c.print_table(["reference (not measured by this script)", "throughput"], list(PEERS), title="Peers")

    one = next(r for r in results if r.strategy == "SmaCross" and r.bots == 1 and r.mode == "batched")
    verdict = "MET" if one.best >= GOAL_ONE_BOT_BATCHED else "MISSED"
    print(
        f"\nGoal: >= {GOAL_ONE_BOT_BATCHED:,} candle-steps/s for one bot batched (SmaCross): "
        f"{one.best:,.0f}/s best, {one.median:,.0f}/s median -> {verdict}"
    )
    print(f"end: {c.load_avg()}")
    if prof_text:
        print("\ncProfile, 1 bot SmaCross batched: top 30 by cumulative time, top 15 by own time")
        print(prof_text)
    sys.stdout.flush()


if __name__ == "__main__":
    main()
