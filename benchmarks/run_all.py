"""Run every benchmark in sequence (``make bench``); each prints its own tables.

    .venv/bin/python benchmarks/run_all.py [--quick] [only ...]

Each script runs in its own process (a fresh interpreter: no warm caches or memory carried over). The exit
code is non-zero when a script fails; a missed goal is reported in the tables, not as a failure.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
SCRIPTS = ("engine_throughput.py", "order_latency.py", "bot_footprint.py", "backtest_peers.py")


def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load avg {one:.2f} / {five:.2f} / {fifteen:.2f} on {os.cpu_count()} cores"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="short runs (each < 20 s)")
    parser.add_argument("only", nargs="*", help="run only these scripts (e.g. order_latency)")
    args = parser.parse_args()
    # Known scripts first, then any new benchmark dropped into the folder (helpers start with "_").
    found = sorted(p.name for p in HERE.glob("*.py") if not p.name.startswith("_") and p.name != "run_all.py")
    scripts = [s for s in SCRIPTS if s in found] + [s for s in found if s not in SCRIPTS]
    if args.only:
        wanted = {o.removesuffix(".py") for o in args.only}
        scripts = [s for s in scripts if s.removesuffix(".py") in wanted]
    print(f"TradeFleet benchmarks ({'quick' if args.quick else 'full'}): {', '.join(scripts)}; start {load()}")
    summary = []
    failed = False
    for script in scripts:
        t0 = time.perf_counter()
        cmd = [sys.executable, str(HERE / script), *(["--quick"] if args.quick else [])]
        code = subprocess.run(cmd, check=False).returncode
        wall = time.perf_counter() - t0
        failed |= code != 0
        summary.append((script, wall, code))
    print("\nSummary")
    for script, wall, code in summary:
        print(f"  {script:<24} {wall:6.1f} s  {'ok' if code == 0 else f'FAILED (exit {code})'}")
    print(f"end: {load()}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
