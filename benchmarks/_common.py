"""Shared helpers of the benchmarks: settings in a temp dir, fleets, driving, tables, machine load.

Not a benchmark itself (``run_all.py`` skips files starting with ``_``). Scripts import it as ``_common``
because Python puts the script's folder (``benchmarks/``) first on ``sys.path``.
"""

from __future__ import annotations

import os
import platform
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from tradefleet.bootstrap import Platform, build_paper_fleet, build_platform
from tradefleet.config import Settings, load_settings
from tradefleet.core.bots import BotConfig
from tradefleet.core.events import DomainEvent
from tradefleet.core.ports import Clock
from tradefleet.core.strategy import IStrategy
from tradefleet.engine.fleet import Fleet

MINUTE_MS = 60_000

# Strategy targets as bot configs name them. NeverSignal is loaded from this file by path, like a user file.
SMA = "SmaCross"
NEVER = f"{Path(__file__).resolve()}:NeverSignal"


class NeverSignal(IStrategy):
    """A strategy that never signals: what a candle costs the engine when nothing trades."""

    timeframe = "1m"
    minimal_roi = {"0": 10.0}
    stoploss = -0.10

    def populate_indicators(self, dataframe: pd.DataFrame) -> pd.DataFrame:
        return dataframe

    def populate_entry_trend(self, dataframe: pd.DataFrame) -> pd.DataFrame:
        dataframe["enter_long"] = 0
        return dataframe

    def populate_exit_trend(self, dataframe: pd.DataFrame) -> pd.DataFrame:
        dataframe["exit_long"] = 0
        return dataframe


class CountingSink:
    """Event sink that only counts (printing or a bus would be part of another benchmark)."""

    def __init__(self) -> None:
        self.events = 0

    def publish(self, event: DomainEvent) -> None:
        self.events += 1


# ------------------------------------------------------------------------------------------ machine


def load_avg() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load avg {one:.2f} / {five:.2f} / {fifteen:.2f} (1/5/15 min) on {os.cpu_count()} cores"


def header(title: str, quick: bool) -> None:
    mode = "quick" if quick else "full"
    print(f"\n=== {title} ({mode} run) ===")
    print(f"python {platform.python_version()} on {platform.machine()}, {load_avg()}")


def print_table(headers: Sequence[str], rows: Sequence[Sequence[Any]], title: str = "") -> None:
    """Print a plain-text table; numbers right-aligned, text left-aligned."""
    cells = [[_fmt(v) for v in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) if cells else len(h) for i, h in enumerate(headers)]
    numeric = [all(isinstance(row[i], int | float) or row[i] in ("", "-") for row in rows) for i in range(len(headers))]
    if title:
        print(f"\n{title}")

    def line(values: Sequence[str]) -> str:
        parts = [v.rjust(w) if num else v.ljust(w) for v, w, num in zip(values, widths, numeric, strict=True)]
        return "  ".join(parts).rstrip()

    print(line(list(headers)))
    print("  ".join("-" * w for w in widths))
    for row in cells:
        print(line(row))
    sys.stdout.flush()


def _fmt(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if value == 0:
            return "0"
        if abs(value) >= 100:
            return f"{value:,.0f}"
        if abs(value) >= 1:
            return f"{value:.2f}"
        return f"{value:.3f}"
    return str(value)


def percentile(values: Sequence[float], q: float) -> float:
    """Return the ``q``-th percentile (0-100) by linear interpolation; NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100
    lo = int(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


# ------------------------------------------------------------------------------------------ fleets


def make_settings(root: Path, *, days: int, db: str = "tradefleet") -> Settings:
    """Settings for a fresh data dir under ``root``: SQLite on disk (WAL, synchronous=FULL), defaults else.

    ``env={}`` and an empty settings file keep the caller's environment and ./tradefleet.toml out of it.
    Several variants share one data dir (and its generated candles) with one database file each (``db``).
    """
    root.mkdir(parents=True, exist_ok=True)
    toml = root / "bench.toml"
    toml.write_text("# benchmark settings: defaults, overridden below\n")
    data_dir = root / "data"
    return load_settings(
        toml,
        overrides={
            "data_dir": str(data_dir),
            "database.url": f"sqlite:///{(data_dir / f'{db}.sqlite').as_posix()}",
            "simulated.synthetic_days": days,
        },
        env={},
    )


def pair_names(n: int) -> list[str]:
    return [f"S{i:03d}/USDT" for i in range(n)]


def bot_configs(n_bots: int, strategy: str, pairs: Sequence[str], *, timeframe: str = "1m") -> list[BotConfig]:
    """``n_bots`` bots on one pair each, pairs assigned round-robin."""
    return [
        BotConfig(
            bot_id=f"bot-{i:03d}",
            strategy=strategy,
            pairs=(pairs[i % len(pairs)],),
            timeframe=timeframe,
        )
        for i in range(n_bots)
    ]


@dataclass
class Built:
    platform: Platform
    fleet: Fleet
    sink: CountingSink
    build_s: float
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def start_ms(self) -> int:
        return min(h.start_ms for h in self.fleet.hubs)

    @property
    def end_ms(self) -> int:
        """Close of the last stored candle: driving the clock there replays everything."""
        return max((h.last_open_ms() or h.start_ms) + h.tf_ms for h in self.fleet.hubs)

    def close(self) -> None:
        self.platform.close()


def build_fleet(
    settings: Settings,
    configs: list[BotConfig],
    *,
    clock: Clock | None,
    name: str = "bench",
    speed: float = 1.0,
    batched: bool = False,
    check_causal: bool = False,
) -> Built:
    """``build_platform`` + ``build_paper_fleet`` exactly as the CLI does (the look-ahead check is optional:
    it is start-up cost, not per-candle cost, and is timed separately where it matters)."""
    t0 = time.perf_counter()
    platform_ = build_platform(settings)
    sink = CountingSink()
    fleet = build_paper_fleet(
        platform_, configs, name=name, speed=speed, sink=sink, clock=clock, check_causal=check_causal
    )
    fleet.batched = batched
    return Built(platform_, fleet, sink, time.perf_counter() - t0)


def prepare_market(settings: Settings, pairs: Sequence[str], timeframe: str = "1m") -> None:
    """Generate the synthetic market once (so fleets built later in the same data dir only read it)."""
    from tradefleet.bootstrap import ensure_market_data

    platform_ = build_platform(settings)
    try:
        ensure_market_data(platform_, sorted(pairs), timeframe)
    finally:
        platform_.close()


def order_counts(built: Built) -> tuple[int, int]:
    """Return (orders submitted, trades closed) over the fleet's bots."""
    orders = sum(b.orders.stats.submitted for b in built.fleet.bots)
    trades = sum(b.counters.exits for b in built.fleet.bots)
    return orders, trades
