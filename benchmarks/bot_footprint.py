"""Footprint of bots: memory per idle bot (goal < 2 MB) and CPU share of 100 paper bots on 1m in real time.

Memory: fresh subprocesses build a fleet of 1 and of 101 idle bots (NeverSignal, SQLite on disk), deliver a
few candles so every bot has stepped, collect garbage and read their resident set size (psutil when
installed, else ``VmRSS`` of /proc/self/status). Memory per bot = (RSS(101) - RSS(1)) / 100. Row "same pair":
all bots on one pair, so only the bot itself is counted; row "own pair": each bot on its own pair, so its
candle feed is counted too.

CPU: a fresh subprocess runs 100 SmaCross paper bots (strict persistence, the paper default) with an
accelerated clock at speed 60 (one 1m candle closes every wall second) through ``Fleet.run`` for ~20 s of
wall time, and reports process CPU time (``time.process_time``) / wall time as a percentage of one core,
plus where the wall time went (``fleet.step``, ``fleet.flush``, kill-switch checks, idle).

    .venv/bin/python benchmarks/bot_footprint.py [--quick]
"""

from __future__ import annotations

import argparse
import gc
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import _common as c

GOAL_MB_PER_BOT = 2.0
SPEED = 60.0


def rss_bytes() -> tuple[int, str]:
    """Return the current resident set size and how it was read."""
    try:
        import psutil  # type: ignore[import-untyped]
    except ImportError:
        pass
    else:
        return int(psutil.Process().memory_info().rss), "psutil"
    with open("/proc/self/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024, "/proc/self/status VmRSS"
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024, "ru_maxrss (peak)"


# ------------------------------------------------------------------------------------- child: memory


def child_rss(root: Path, n_bots: int, n_pairs: int, days: int) -> dict[str, Any]:
    from tradefleet.engine.clock import SimClock

    settings = c.make_settings(root, days=days, db=f"rss-{n_bots}-{n_pairs}")
    gc.collect()
    before, _ = rss_bytes()
    clock = SimClock(0)
    built = c.build_fleet(
        settings, c.bot_configs(n_bots, c.NEVER, c.pair_names(n_pairs)), clock=clock, name=f"rss-{n_bots}-{n_pairs}"
    )
    try:
        now = built.start_ms + 30 * c.MINUTE_MS  # every bot steps 30 candles: state and signals exist
        clock.set(now)
        built.fleet.step(now)
        built.fleet.flush()
        gc.collect()
        rss, how = rss_bytes()
        return {"bots": n_bots, "pairs": n_pairs, "rss": rss, "before_build": before, "how": how}
    finally:
        built.close()


# ---------------------------------------------------------------------------------------- child: CPU


def child_cpu(root: Path, n_bots: int, n_pairs: int, seconds: float, days: int) -> dict[str, Any]:
    from tradefleet.adapters.data.store import CandleStore
    from tradefleet.bootstrap import SIM_EXCHANGE, paper_start_ms
    from tradefleet.engine.clock import AcceleratedClock

    class StartableClock(AcceleratedClock):
        """Accelerated clock whose wall origin is reset once the fleet is built (100 bots take seconds)."""

        def restart(self, start_ms: int) -> None:
            AcceleratedClock.__init__(self, start_ms, self.speed)

    pairs = c.pair_names(n_pairs)
    settings = c.make_settings(root, days=days, db=f"cpu-{n_bots}-{n_pairs}")
    candles = CandleStore(settings.candles_dir)
    start = paper_start_ms([candles.read(SIM_EXCHANGE, p, "1m") for p in pairs], "1m")
    clock = StartableClock(start, SPEED)
    built = c.build_fleet(
        settings, c.bot_configs(n_bots, c.SMA, pairs), clock=clock, name=f"cpu-{n_pairs}", speed=SPEED
    )
    fleet = built.fleet
    spent = {"step": 0.0, "flush": 0.0, "kill": 0.0}

    def timed(name: str, fn: Any) -> Any:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            t0 = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                spent[name] += time.perf_counter() - t0

        return wrapper

    fleet.step = timed("step", fleet.step)  # type: ignore[method-assign]
    fleet.flush = timed("flush", fleet.flush)  # type: ignore[method-assign]
    fleet.check_kill_switches = timed("kill", fleet.check_kill_switches)  # type: ignore[method-assign]
    until = start + int(seconds * SPEED * 1000)
    try:
        gc.collect()
        clock.restart(start)
        wall0, cpu0 = time.perf_counter(), time.process_time()
        reason = fleet.run(until_ms=until)
        wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
        steps = sum(h.delivered for h in fleet.hubs)
        orders, trades = c.order_counts(built)
        return {
            "bots": n_bots, "pairs": n_pairs, "wall": wall, "cpu": cpu, "steps": steps, "orders": orders,
            "trades": trades, "reason": reason, "build": built.build_s, **spent,
        }  # fmt: skip
    finally:
        built.close()


# --------------------------------------------------------------------------------------------- parent


def spawn(args: list[str]) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), *args], capture_output=True, text=True, check=False
    )
    if out.returncode != 0:
        raise SystemExit(f"child {args} failed:\n{out.stderr}")
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="short run (< 20 s)")
    parser.add_argument("--child", choices=["rss", "cpu"], help=argparse.SUPPRESS)
    parser.add_argument("--root", help=argparse.SUPPRESS)
    parser.add_argument("--bots", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--pairs", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--seconds", type=float, default=20.0, help=argparse.SUPPRESS)
    parser.add_argument("--days", type=int, default=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child == "rss":
        print(json.dumps(child_rss(Path(args.root), args.bots, args.pairs, args.days)))
        return
    if args.child == "cpu":
        print(json.dumps(child_cpu(Path(args.root), args.bots, args.pairs, args.seconds, args.days)))
        return

    quick = args.quick
    c.header("bot footprint: memory per idle bot, CPU share of 100 paper bots on 1m in real time", quick)
    # 1m history per pair (a session starts after 1000 warm-up candles); the hub holds the whole series
    days = 1 if quick else 4
    seconds = 4.0 if quick else 20.0
    layouts = [1] if quick else [1, 101]  # pairs of the 101-bot fleet: one shared pair, one pair per bot
    cpu_layouts = [100] if quick else [100, 10]

    with tempfile.TemporaryDirectory(prefix="tf-bench-") as tmp:
        root = Path(tmp)
        t0 = time.perf_counter()
        c.prepare_market(c.make_settings(root, days=days, db="gen"), c.pair_names(101))
        print(f"generated 101 synthetic 1m pairs x {days} days in {time.perf_counter() - t0:.1f} s")

        mem_rows = []
        how = ""
        one = spawn(["--child", "rss", "--root", tmp, "--bots", "1", "--pairs", "1", "--days", str(days)])
        for pairs in layouts:
            many = spawn(["--child", "rss", "--root", tmp, "--bots", "101", "--pairs", str(pairs), "--days", str(days)])
            how = one["how"]
            per_bot = (many["rss"] - one["rss"]) / 100 / 2**20
            label = "same pair (bot only)" if pairs == 1 else "own pair each (bot + its 1m feed)"
            mem_rows.append(
                [label, one["rss"] / 2**20, many["rss"] / 2**20, per_bot, "yes" if per_bot < GOAL_MB_PER_BOT else "NO"]
            )
        c.print_table(
            ["idle bots (NeverSignal)", "RSS 1 bot MB", "RSS 101 bots MB", "MB per bot", "< 2 MB"],
            mem_rows,
            title=f"Memory per idle bot = (RSS(101) - RSS(1)) / 100, fresh processes, RSS from {how}",
        )

        cpu_rows = []
        for pairs in cpu_layouts:
            r = spawn(
                ["--child", "cpu", "--root", tmp, "--bots", "100", "--pairs", str(pairs),
                 "--seconds", str(seconds), "--days", str(days)]
            )  # fmt: skip
            wall = r["wall"]
            idle = max(0.0, wall - r["step"] - r["flush"] - r["kill"])
            cpu_rows.append(
                [
                    f"100 SmaCross bots on {pairs} pairs", r["steps"], r["orders"], wall, r["cpu"],
                    100 * r["cpu"] / wall, 100 * r["step"] / wall, 100 * r["flush"] / wall,
                    100 * r["kill"] / wall, 100 * idle / wall,
                ]
            )  # fmt: skip
        c.print_table(
            ["fleet (strict, speed 60: 1 candle/s)", "candle-steps", "orders", "wall s", "CPU s",
             "CPU % of 1 core", "% wall in step", "% in flush", "% in kill checks", "% idle"],
            cpu_rows,
            title="CPU share in real time (Fleet.run with an accelerated clock; CPU = time.process_time)",
        )  # fmt: skip

    print(f"end: {c.load_avg()}")


if __name__ == "__main__":
    main()
