"""Crash safety of ``tradefleet up``: ``kill -9`` at random moments, restart, and nothing is lost or doubled.

A paper fleet of four bots trades on the simulated exchange in a real subprocess. The test kills it with
SIGKILL at seeded random moments while it trades, restarts it each time, and finally lets it run to its
``--until`` date and exit normally. After every kill the venue's ledger and TradeFleet's database must
already satisfy what no reconciliation could repair (no order lost, executed twice or placed without its
intent committed; final orders and trades agree with the venue) and every restart must resume where the
last one stopped. After the clean end they must agree completely: every order resolved, fills, trades and
positions equal, every open trade protected by its stop.

Timing: one start of the CLI costs ~5 s before trading (imports, the look-ahead check of each strategy,
reconciliation), so each kill is timed from the moment the fleet reports it is trading, not from spawn.
"""

from __future__ import annotations

import os
import random
import re
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from support.ledger_audit import AuditResult, audit

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

SEED = 20240607
KILLS = 20
KILL_DELAY_S = (0.3, 2.5)
# Faster than the fleet can follow: it is busy all the time, in big batches (each batch analyses its
# candles once, so small batches spend their time in pandas rather than in orders), and a kill usually
# lands in order handling or candle analysis. The market used depends on the machine's speed, not on the
# start-up time: here 20 short runs get through ~20 days; 60 days leave room for a machine 3x faster.
SPEED = 60_000
SYNTHETIC_DAYS = 60
DATA_END = "2024-02-29 23:00"  # the generated market starts 2024-01-01 00:00
BANNER = "TradeFleet paper fleet 'up'"
BOTS = (
    ("sma-btc", "SmaCross", "BTC/USDT"),
    ("rsi-eth", "RsiMeanReversion", "ETH/USDT"),
    ("bb-sol", "BollingerBreakout", "SOL/USDT"),
    ("macd-bnb", "MacdTrend", "BNB/USDT"),
)
TRADE_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d\s+(\S+)\s+(BUY|SELL)\s+(\S+)")
SUMMARY_LINE = re.compile(r"^(\S+)\s+(\d+)\s+(\d+)\s+(-?\d+\.\d+)\s+(-?\d+\.\d+)$")


def write_config(workdir: Path) -> Path:
    lines = [
        "[simulated]",
        f"synthetic_days = {SYNTHETIC_DAYS}",
        "synthetic_seed = 5",
        "",
        "[paper]",
        'timeframe = "1m"',
        "",
        "[log]",
        'level = "WARNING"',
        "json = true",
    ]
    for bot_id, strategy, pair in BOTS:
        lines += [
            "",
            "[[paper.bots]]",
            f'bot_id = "{bot_id}"',
            f'strategy = "{strategy}"',
            f'pairs = ["{pair}"]',
        ]
    path = workdir / "tradefleet.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def clean_env() -> dict[str, str]:
    """The environment without settings of the developer's own TradeFleet (their database, say)."""
    from tradefleet.config import WELL_KNOWN_ENV

    known = {name for names, _key in WELL_KNOWN_ENV for name in names}
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("TRADEFLEET__") and k not in known}
    env["PYTHONUNBUFFERED"] = "1"
    return env


class FleetProcess:
    """One ``tradefleet up`` subprocess; stdout is collected line by line, stderr goes to a file."""

    def __init__(self, workdir: Path, config: Path, data_dir: Path, until: str, index: int) -> None:
        self.stderr_path = workdir / f"run-{index:02d}.stderr"
        self.lines: list[str] = []
        self.banner = threading.Event()
        self.started = time.monotonic()
        self.trading_at: float | None = None
        with self.stderr_path.open("wb") as stderr:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-c",
                    "from tradefleet.cli import main; main()",
                    "--config",
                    str(config),
                    "--data-dir",
                    str(data_dir),
                    "up",
                    "--no-api",  # the engine is under test; the API would only contend for a port
                    "--speed",
                    str(SPEED),
                    "--until",
                    until,
                ],
                cwd=workdir,
                env=clean_env(),
                stdout=subprocess.PIPE,
                stderr=stderr,
                text=True,
            )
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        with self.proc.stdout as out:
            for line in out:
                self.lines.append(line.rstrip("\n"))
                if line.startswith(BANNER):
                    self.trading_at = time.monotonic()
                    self.banner.set()
        self.banner.set()  # the process ended: nobody waits for a banner that will never come

    def wait_trading(self, timeout: float) -> bool:
        """Wait until the fleet says it trades; False if the process ended first."""
        self.banner.wait(timeout)
        return self.trading_at is not None

    def kill(self) -> int:
        self.proc.send_signal(signal.SIGKILL)
        return self.finish(timeout=30)

    def finish(self, timeout: float) -> int:
        rc = self.proc.wait(timeout)
        self.reader.join(10)
        return rc

    def describe(self) -> str:
        err = self.stderr_path.read_text(errors="replace").strip().splitlines()
        return (
            f"exit code {self.proc.returncode}\n--- stdout (last 15 lines):\n"
            + "\n".join(self.lines[-15:])
            + "\n--- stderr (last 15 lines):\n"
            + "\n".join(err[-15:])
        )

    def trades_printed(self) -> list[tuple[str, str, str]]:
        """Return (bot id, BUY or SELL, pair) of every trade line the run printed."""
        return [(m[1], m[2], m[3]) for line in self.lines if (m := TRADE_LINE.match(line))]


# ---------------------------------------------------------------------------------------------- state
@dataclass
class Snapshot:
    """What the database and the venue hold after one run, for comparing consecutive restarts."""

    bots: dict[str, str]
    progress: dict[tuple[str, str], int]
    trades: dict[int, dict[str, Any]]
    final_orders: dict[str, tuple[str, float, float]]
    ledger_orders: dict[int, tuple[str, str, str]]
    order_count: int
    clock_ms: int | None
    audit: AuditResult

    @property
    def closed(self) -> int:
        return sum(1 for t in self.trades.values() if not t["is_open"])


def read_rows(path: Path, sql: str) -> list[sqlite3.Row]:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    conn.row_factory = sqlite3.Row
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


def snapshot(db_path: Path, ledger_path: Path) -> Snapshot:
    result = audit(ledger_path, f"sqlite:///{db_path.as_posix()}")
    clock = read_rows(db_path, "SELECT value FROM kv_state WHERE key = 'fleet.up.clock_ms'")
    return Snapshot(
        bots={r["bot_id"]: r["status"] for r in read_rows(db_path, "SELECT bot_id, status FROM bots")},
        progress={
            (r["bot_id"], r["pair"]): r["last_candle_ms"] for r in read_rows(db_path, "SELECT * FROM bot_progress")
        },
        trades={r["id"]: dict(r) for r in read_rows(db_path, "SELECT * FROM trades")},
        final_orders={
            r["client_order_id"]: (r["status"], r["filled"], r["average"])
            for r in read_rows(db_path, "SELECT * FROM orders WHERE status IN ('FILLED', 'CANCELED', 'REJECTED')")
        },
        ledger_orders={
            r["id"]: (r["account"], r["client_order_id"], r["type"])
            for r in read_rows(ledger_path, "SELECT id, account, client_order_id, type FROM orders")
        },
        order_count=result.db_orders,
        clock_ms=int(clock[0]["value"]) if clock else None,
        audit=result,
    )


def resume_problems(before: Snapshot, after: Snapshot) -> list[str]:
    """Return how ``after`` fails to continue ``before`` (a restart must resume, never start over)."""
    problems: list[str] = []
    if set(after.bots) != set(before.bots):
        problems.append(f"bot rows changed: {sorted(before.bots)} -> {sorted(after.bots)}")
    for key, ms in before.progress.items():
        if key not in after.progress:
            problems.append(f"progress of {key} vanished")
        elif after.progress[key] < ms:
            problems.append(f"progress of {key} went back from {ms} to {after.progress[key]} (restarted from scratch?)")
    for trade_id, old in before.trades.items():
        new = after.trades.get(trade_id)
        if new is None:
            problems.append(f"trade {trade_id} vanished")
            continue
        same_open = all(new[k] == old[k] for k in ("bot_id", "pair", "open_ms", "open_rate", "amount", "entry_order"))
        if not same_open:
            problems.append(f"trade {trade_id} was rewritten: {old} -> {new}")
        if not old["is_open"] and new != old:
            problems.append(f"closed trade {trade_id} changed after closing: {old} -> {new}")
    if (
        before.trades
        and after.trades
        and min(set(after.trades) - set(before.trades), default=1 << 62) <= max(before.trades)
    ):
        problems.append("new trades reuse ids below the last trade id: trade ids did not continue")
    if after.closed < before.closed:
        problems.append(f"closed trades went from {before.closed} to {after.closed}")
    for coid, final in before.final_orders.items():
        if after.final_orders.get(coid) != final:
            problems.append(f"final order {coid} changed from {final} to {after.final_orders.get(coid)}")
    for venue_id, row in before.ledger_orders.items():
        if after.ledger_orders.get(venue_id) != row:
            problems.append(f"venue order #{venue_id} {row} changed or vanished")
    return problems


def in_flight(result: AuditResult) -> int:
    """Return how many orders a kill caught between the venue and the database (work for reconciliation)."""
    settled = set(result.settled)
    return len(result.unresolved) + sum(1 for m in result.status_mismatches if m not in settled)


@dataclass
class Cycle:
    index: int
    delay_s: float
    startup_s: float
    orders: int
    closed: int
    open_trades: int
    in_flight: int
    trades_printed: int
    problems: list[str] = field(default_factory=list)

    def line(self) -> str:
        return (
            f"kill {self.index:2d}: {self.startup_s:4.1f}s to trading, killed {self.delay_s:4.2f}s later; "
            f"{self.orders:5d} orders, {self.closed:4d} closed / {self.open_trades} open trades, "
            f"{self.in_flight} in flight, {self.trades_printed} trade lines printed"
        )


def _until_after(snap: Snapshot, margin: pd.Timedelta) -> str:
    """Return a market date a little after the candles the bots have handled, as ``--until`` text."""
    stand = max(snap.progress.values())
    return (pd.Timestamp(stand, unit="ms", tz="UTC") + margin).strftime("%Y-%m-%d %H:%M")


def describe_problems(problems: list[str], history: str, per_kind: int = 8) -> str:
    """Group problems by kind (their text with numbers and ids blanked), a few examples of each."""
    kinds: dict[str, list[str]] = {}
    for problem in problems:
        detail = problem.split(": ", 1)[1]
        kinds.setdefault(re.sub(r"\b(tf[0-9a-f]+|[-+]?[\d.]+(e-?\d+)?)\b", "#", detail)[:90], []).append(problem)
    lines = [f"{len(problems)} problems of {len(kinds)} kinds:"]
    for kind, items in kinds.items():
        lines.append(f"{len(items)} x {kind!r}")
        lines.extend(f"    {item}" for item in items[:per_kind])
    return "\n".join([*lines, history])


# ---------------------------------------------------------------------------------------------- the test
def test_kill_9_at_random_moments_loses_and_duplicates_nothing(tmp_path: Path) -> None:
    rng = random.Random(SEED)
    config = write_config(tmp_path)
    data_dir = tmp_path / "var"
    db_path = data_dir / "tradefleet.sqlite"
    ledger_path = data_dir / "sim" / "up.sqlite"
    began = time.monotonic()

    cycles: list[Cycle] = []
    printed: list[tuple[str, str, str]] = []
    previous: Snapshot | None = None
    for index in range(1, KILLS + 1):
        run = FleetProcess(tmp_path, config, data_dir, DATA_END, index)
        if not run.wait_trading(timeout=120):
            pytest.fail(f"run {index} ended before it started trading:\n{run.describe()}")
        delay = rng.uniform(*KILL_DELAY_S)
        time.sleep(delay)
        if run.proc.poll() is not None:
            pytest.fail(
                f"run {index} ended by itself before kill {index} (did it run out of market data?):\n" + run.describe()
            )
        rc = run.kill()
        assert rc == -signal.SIGKILL, run.describe()
        assert run.trading_at is not None
        printed += run.trades_printed()
        snap = snapshot(db_path, ledger_path)
        seen = set(previous.audit.invariant_violations()) if previous is not None else set()
        # Each violation is reported once, with the kill after which it first showed.
        problems = [f"after kill {index}: {p}" for p in snap.audit.invariant_violations() if p not in seen]
        if previous is not None:
            problems += [f"restart {index}: {p}" for p in resume_problems(previous, snap)]
        cycles.append(
            Cycle(
                index=index,
                delay_s=delay,
                startup_s=run.trading_at - run.started,
                orders=snap.order_count,
                closed=snap.closed,
                open_trades=len(snap.trades) - snap.closed,
                in_flight=in_flight(snap.audit),
                trades_printed=len(printed),
                problems=problems,
            )
        )
        previous = snap

    assert previous is not None
    until = _until_after(previous, pd.Timedelta(hours=8))
    final = FleetProcess(tmp_path, config, data_dir, until, KILLS + 1)
    rc = final.finish(timeout=180)
    history = "\n".join(c.line() for c in cycles)
    assert rc == 0, f"the last run did not end normally:\n{final.describe()}\n{history}"
    assert final.lines[-1] == "stopped: reached the end time", final.describe()
    printed += final.trades_printed()
    last = snapshot(db_path, ledger_path)
    elapsed = time.monotonic() - began
    print(f"\n{history}\nfinal run to {until}: {last.audit.report(5)}\n{elapsed:.0f}s in all")

    # Enough happened for the test to mean something, and the fleet printed it.
    assert last.order_count >= 300, history
    assert last.closed >= 100, history
    buys = [p for p in printed if p[1] == "BUY"]
    assert len(buys) >= 50 and {p[0] for p in buys} == {b[0] for b in BOTS}, history

    # Every restart resumed, every kill left the venue and the database consistent.
    problems = [p for c in cycles for p in c.problems]
    problems += [f"final run: {p}" for p in resume_problems(previous, last)]
    assert problems == [], describe_problems(problems, history)

    # The printed summary is the database's.
    summary = {m.group(1): m.groups() for line in final.lines if (m := SUMMARY_LINE.match(line))}
    for bot_id, _strategy, _pair in BOTS:
        rows = [t for t in last.trades.values() if t["bot_id"] == bot_id]
        closed = sum(1 for t in rows if not t["is_open"])
        assert summary[bot_id][1:3] == (str(closed), str(len(rows) - closed)), (summary[bot_id], history)
    assert last.bots == {b[0]: "running" for b in BOTS}, "a bot was halted by reconciliation"

    # After a clean end the two sides agree completely.
    result = last.audit
    assert result.lost == [], result.report()
    assert result.duplicated == [], result.report()
    assert result.orphans == [], result.report()
    assert result.unresolved == [], result.report()
    assert result.status_mismatches == [], result.report()
    assert result.ok, result.report()
    assert result.unprotected == [], result.report()
    assert result.stop_mismatches == [], result.report()
