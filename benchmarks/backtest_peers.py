"""Backtest speed against peers: TradeFleet's fast kernel and event engine vs backtesting.py, vectorbt and numpy.

    .venv/bin/python benchmarks/backtest_peers.py [--quick] [--profile]

Everything is measured here, on this machine, on the same data and the same reference strategy:

* data: 1-minute synthetic GBM candles made with numpy (seed 42, 65 % annual volatility, no drift): closes
  from a geometric Brownian motion, open = previous close, high/low a little outside open and close,
  volume 1; 100k and 1M candles (``--quick``: 100k only, one repetition);
* strategy: SMA(10)/SMA(50) crossover, long only, enter when the fast SMA crosses above the slow one, exit
  when it crosses back below; all-in stake, fee 0.1 % per side, no slippage, one position at a time;
* fills: every engine acts on the candle's close and fills at the NEXT candle's open (TradeFleet's rule;
  backtesting.py's default ``trade_on_close=False``; vectorbt with signals shifted one candle, price=open);
* starting balance: 1e20 quote units in every engine. On driftless GBM the strategy makes ~14k round trips
  per 1M candles and the 0.2 % fees alone shrink the account by ~e^-28; with a normal balance every engine
  would stop trading once it falls under its minimum order (TradeFleet's venue: 5 USDT; backtesting.py:
  one whole unit) and the trade counts would no longer compare engines but their minimum-order rules.

Rows (candles/s = candles of the data set / median wall time of 3 runs after one warm-up run):

* numpy floor: SMA via cumsum, crossover signals, positions, returns, equity. Not a backtester (no orders,
  no stops, no fees in cash): the speed any backtester of this strategy can hardly beat in numpy;
* TradeFleet fast, incl. analyze: ``run_fast_backtest`` (frame preparation, ``strategy.analyze`` with
  tradefleet.core.indicators, the compiled kernel, trade objects). ROI (``{"0": 100}``) and the stoploss
  (-0.99, a resting stop order) are checked against every candle but never fire;
* TradeFleet fast, kernel only: ``run_fast_on_signals`` on frames analysed beforehand;
* TradeFleet event engine: ``run_event_backtest`` (the live engine on a sim clock, SQLite store) on 100k
  candles if a 20k probe says it takes < 60 s, else on 20k only (the table says which), one timed run;
* backtesting.py: ``Backtest(..., commission=0.001, finalize_trades=True).run()`` with ``self.I(SMA)``
  and ``backtesting.lib.crossover``, ``buy()`` (all available cash) / ``position.close()``;
* vectorbt: ``vbt.MA.run`` + ``ma_crossed_above/below`` + ``Portfolio.from_signals(fees=0.001)``.

Trades are counted including the one still open at the end of the data (backtesting.py: finalize_trades).
``--profile`` also prints a cProfile of ``run_fast_backtest`` on the largest set (top functions).
"""

from __future__ import annotations

import argparse
import cProfile
import importlib.metadata
import io
import os
import pstats
import statistics
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import _common as c
import numpy as np
import pandas as pd

from tradefleet.core.indicators import crossed_above, crossed_below, sma
from tradefleet.core.risk import RiskSettings
from tradefleet.core.strategy import IStrategy
from tradefleet.engine.backtest import BacktestConfig
from tradefleet.engine.backtest.data import prepare_frames
from tradefleet.engine.backtest.fast import analyse, run_fast_backtest, run_fast_on_signals
from tradefleet.services.backtest import run_event_backtest

os.environ.setdefault("TQDM_DISABLE", "1")  # backtesting.py's progress bar (read when tqdm is imported)

PAIR = "SYN/USDT"
FAST, SLOW = 10, 50
FEE = 0.001
BALANCE = 1e20  # see the module docstring: keeps every engine above its minimum order for 1M candles
SEED = 42
ANNUAL_VOL = 0.65
START = pd.Timestamp("2022-01-01", tz="UTC")
WARMUP_CANDLES = 10_000  # the warm-up run (JIT compilation, imports, caches) uses this slice
EVENT_PROBE = 20_000
EVENT_LIMIT_S = 60.0
GOAL_FAST = 10_000_000  # candles/s on 1M, analysis included
GOAL_EVENT = 50_000  # candles/s


# ------------------------------------------------------------------------------------------------ data


@dataclass
class Data:
    n: int
    candles: pd.DataFrame  # TradeFleet: date (UTC, ms), open, high, low, close, volume
    ohlcv: pd.DataFrame  # backtesting.py / vectorbt: Open, High, Low, Close, Volume on a DatetimeIndex

    def head(self, n: int) -> Data:
        return Data(n, self.candles.iloc[:n].copy(), self.ohlcv.iloc[:n].copy())


def make_data(n: int, seed: int = SEED) -> Data:
    """GBM closes (per-minute sigma from ``ANNUAL_VOL``), open = previous close, wicks outside both."""
    rng = np.random.default_rng(seed)
    sigma = ANNUAL_VOL / np.sqrt(365 * 24 * 60)
    close = 100.0 * np.exp(np.cumsum(rng.normal(-0.5 * sigma * sigma, sigma, n)))
    open_ = np.empty(n)
    open_[0] = 100.0
    open_[1:] = close[:-1]
    wick = np.abs(rng.normal(0.0, sigma / 2, (2, n)))
    high = np.maximum(open_, close) * (1.0 + wick[0])
    low = np.minimum(open_, close) * (1.0 - wick[1])
    dates = pd.date_range(START, periods=n, freq="1min").as_unit("ms")
    candles = pd.DataFrame(
        {"date": dates, "open": open_, "high": high, "low": low, "close": close, "volume": np.ones(n)}
    )
    ohlcv = pd.DataFrame(
        {"Open": open_, "High": high, "Low": low, "Close": close, "Volume": np.ones(n)},
        index=dates.tz_localize(None),
    )
    return Data(n, candles, ohlcv)


# ---------------------------------------------------------------------------------------------- engines


@dataclass
class Outcome:
    trades: int  # including a trade still open at the end
    final: float  # final equity / starting balance
    extra: dict[str, Any] = field(default_factory=dict)


def numpy_floor(d: Data) -> Outcome:
    """Signals only: SMA via cumsum, crossovers, position held from the next open, open-to-open returns."""
    close = d.ohlcv["Close"].to_numpy()
    open_ = d.ohlcv["Open"].to_numpy()
    n = close.shape[0]
    cs = np.concatenate(([0.0], np.cumsum(close)))
    fast = np.full(n, np.nan)
    slow = np.full(n, np.nan)
    fast[FAST - 1 :] = (cs[FAST:] - cs[:-FAST]) / FAST
    slow[SLOW - 1 :] = (cs[SLOW:] - cs[:-SLOW]) / SLOW
    up = np.zeros(n, dtype=bool)
    down = np.zeros(n, dtype=bool)
    up[1:] = (fast[1:] > slow[1:]) & (fast[:-1] <= slow[:-1])
    down[1:] = (fast[1:] < slow[1:]) & (fast[:-1] >= slow[:-1])
    # state after each candle's close: 1 after an up-cross, 0 after a down-cross (forward-filled)
    last = np.maximum.accumulate(np.where(up | down, np.arange(n), -1))
    state = np.where(last >= 0, up[np.maximum(last, 0)], False)
    held = np.zeros(n, dtype=np.int8)  # held[k]: in the market from open k to open k+1
    held[1:] = state[:-1]
    rets = np.zeros(n)
    rets[:-1] = open_[1:] / open_[:-1] - 1.0
    rets[-1] = close[-1] / open_[-1] - 1.0
    turns = np.abs(np.diff(held, prepend=np.int8(0)))
    strat = held * rets - FEE * turns
    equity = np.cumprod(1.0 + strat)
    return Outcome(int(np.count_nonzero(np.diff(held, prepend=np.int8(0)) == 1)), float(equity[-1]))


class RefSmaCross(IStrategy):
    """The reference strategy for TradeFleet: SMA(10)/SMA(50) cross, ROI and stoploss checked but never hit."""

    timeframe = "1m"
    minimal_roi = {"0": 100.0}
    stoploss = -0.99
    startup_candle_count = SLOW

    def populate_indicators(self, dataframe: pd.DataFrame) -> pd.DataFrame:
        dataframe["sma_fast"] = sma(dataframe["close"], FAST)
        dataframe["sma_slow"] = sma(dataframe["close"], SLOW)
        return dataframe

    def populate_entry_trend(self, dataframe: pd.DataFrame) -> pd.DataFrame:
        dataframe["enter_long"] = crossed_above(dataframe["sma_fast"], dataframe["sma_slow"]).astype("int8")
        return dataframe

    def populate_exit_trend(self, dataframe: pd.DataFrame) -> pd.DataFrame:
        dataframe["exit_long"] = crossed_below(dataframe["sma_fast"], dataframe["sma_slow"]).astype("int8")
        return dataframe


CONFIG = BacktestConfig(
    strategy="RefSmaCross",
    pairs=(PAIR,),
    timeframe="1m",
    quote_currency="USDT",
    starting_balance=BALANCE,
    taker_fee=FEE,
    slippage_bps=0.0,
    # RiskSettings allows percent <= 100 and stake × max_open_trades <= 100 %: 100 % with one trade at a time
    risk=RiskSettings(stake_mode="percent", stake_amount=100.0, max_open_trades=1, max_per_pair=1),
)


def tradefleet_outcome(result: Any) -> Outcome:
    final = result.equity[-1] / BALANCE if len(result.equity) else float("nan")
    return Outcome(len(result.trades), float(final), {"keys": [t.key() for t in result.trades]})


def tradefleet_fast(d: Data) -> Outcome:
    return tradefleet_outcome(run_fast_backtest(CONFIG, {PAIR: d.candles}, RefSmaCross()))


class KernelOnly:
    """``run_fast_on_signals`` on frames prepared and analysed once, outside the timing."""

    def __init__(self) -> None:
        self.cache: dict[int, tuple[Any, Any, IStrategy]] = {}

    def prepare(self, d: Data) -> None:
        strategy = RefSmaCross()
        frames = prepare_frames(CONFIG, {PAIR: d.candles})
        self.cache[d.n] = (frames, analyse(CONFIG, frames, strategy), strategy)

    def __call__(self, d: Data) -> Outcome:
        if d.n not in self.cache:
            self.prepare(d)
        frames, analysed, strategy = self.cache[d.n]
        return tradefleet_outcome(run_fast_on_signals(CONFIG, frames, analysed, strategy))


def tradefleet_event(d: Data) -> Outcome:
    return tradefleet_outcome(run_event_backtest(CONFIG, {PAIR: d.candles}, RefSmaCross()))


def backtesting_py() -> Callable[[Data], Outcome] | None:
    try:
        from backtesting import Backtest, Strategy
        from backtesting.lib import crossover
    except ImportError:
        return None

    def rolling_mean(values: Any, n: int) -> Any:
        return pd.Series(values).rolling(n).mean()

    class SmaCrossBt(Strategy):  # type: ignore[misc]
        def init(self) -> None:
            self.fast = self.I(rolling_mean, self.data.Close, FAST)
            self.slow = self.I(rolling_mean, self.data.Close, SLOW)

        def next(self) -> None:
            if crossover(self.fast, self.slow):
                if not self.position:
                    self.buy()  # all available cash (size defaults to ~100 % of equity), fee included
            elif crossover(self.slow, self.fast):
                self.position.close()

    def run(d: Data) -> Outcome:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            bt = Backtest(
                d.ohlcv,
                SmaCrossBt,
                cash=BALANCE,
                commission=FEE,
                trade_on_close=False,  # the default: market orders fill at the next open
                exclusive_orders=True,
                finalize_trades=True,  # count the trade still open at the end, as the other engines do
            )
            stats = bt.run()
        return Outcome(int(stats["# Trades"]), float(stats["Equity Final [$]"]) / BALANCE)

    return run


def vectorbt() -> Callable[[Data], Outcome] | None:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import vectorbt as vbt
    except ImportError:
        return None

    def run(d: Data) -> Outcome:
        close = d.ohlcv["Close"]
        fast = vbt.MA.run(close, FAST)
        slow = vbt.MA.run(close, SLOW)
        # decided on the close, filled at the next open: shift the signals one candle, price = open
        entries = fast.ma_crossed_above(slow).shift(1, fill_value=False).astype(bool)
        exits = fast.ma_crossed_below(slow).shift(1, fill_value=False).astype(bool)
        pf = vbt.Portfolio.from_signals(
            close, entries, exits, price=d.ohlcv["Open"], fees=FEE, init_cash=BALANCE, freq="1min"
        )
        return Outcome(-1, float("nan"), {"pf": pf})  # trades counted outside the timing (lazy records)

    return run


def vbt_finish(out: Outcome) -> Outcome:
    pf = out.extra.pop("pf")
    return Outcome(int(pf.trades.count()), float(pf.final_value()) / BALANCE)


# ---------------------------------------------------------------------------------------------- timing


@dataclass
class Row:
    engine: str
    rates: dict[int, float] = field(default_factory=dict)  # data size -> candles/s
    trades: dict[int, int] = field(default_factory=dict)
    final: dict[int, float] = field(default_factory=dict)
    note: str = ""


def timed(fn: Callable[[Data], Outcome], d: Data, reps: int) -> tuple[float, Outcome]:
    """Median wall time of ``reps`` runs (the caller did the warm-up) and the last outcome."""
    times: list[float] = []
    out = Outcome(-1, float("nan"))
    for _ in range(reps):
        t = time.perf_counter()
        out = fn(d)
        times.append(time.perf_counter() - t)
    return statistics.median(times), out


def measure(
    row: Row,
    fn: Callable[[Data], Outcome],
    datasets: list[Data],
    warm: Data,
    reps: int,
    finish: Callable[[Outcome], Outcome] | None = None,
) -> None:
    fn(warm)
    for d in datasets:
        seconds, out = timed(fn, d, reps)
        if finish is not None:
            out = finish(out)
        row.rates[d.n] = d.n / seconds
        row.trades[d.n] = out.trades
        row.final[d.n] = out.final
        print(
            f"  {row.engine:<34} {d.n:>9,} candles  {seconds:8.3f} s  {d.n / seconds:>14,.0f}/s"
            f"  {out.trades:>6,} trades",
            flush=True,
        )


def ratio(row: Row, ref: Row | None, size: int) -> str:
    if ref is None or size not in row.rates or size not in ref.rates:
        return "-"
    return f"{row.rates[size] / ref.rates[size]:.3g}x"


def label(n: int) -> str:
    return f"{n // 1_000_000}M" if n % 1_000_000 == 0 else f"{n // 1000}k"


def rate_cell(row: Row, size: int) -> int | str:
    if size in row.rates:
        return round(row.rates[size])
    small = [n for n in row.rates if n < size]
    return f"{row.rates[max(small)]:,.0f} ({label(max(small))})" if small and size == 100_000 else "-"


def version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def profile_fast(d: Data) -> None:
    strategy = RefSmaCross()
    run_fast_backtest(CONFIG, {PAIR: d.candles}, strategy)
    prof = cProfile.Profile()
    prof.enable()
    run_fast_backtest(CONFIG, {PAIR: d.candles}, strategy)
    prof.disable()
    buf = io.StringIO()
    pstats.Stats(prof, stream=buf).sort_stats("tottime").print_stats(10)
    print(f"\ncProfile of run_fast_backtest on {d.n:,} candles (top 10 by own time):")
    print("\n".join(line for line in buf.getvalue().splitlines() if line.strip())[:6000])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="100k candles only, one repetition")
    parser.add_argument("--profile", action="store_true", help="also print a cProfile of the fast path")
    args = parser.parse_args()
    c.header("Backtest speed vs peers: SMA(10)/SMA(50) cross, 1m GBM candles", args.quick)
    started = time.perf_counter()
    sizes = [100_000] if args.quick else [100_000, 1_000_000]
    reps = 1 if args.quick else 3
    full = make_data(max(sizes))
    datasets = [full if n == full.n else full.head(n) for n in sizes]
    warm = full.head(WARMUP_CANDLES)
    big = max(sizes)

    bt_run = backtesting_py()
    vbt_run = vectorbt()
    peers = [
        f"backtesting.py {version('backtesting')}" if bt_run else "backtesting.py: not installed",
        f"vectorbt {version('vectorbt')}" if vbt_run else "vectorbt: not installed",
    ]
    print(f"peers measured: {', '.join(peers)}; numpy {np.__version__}, pandas {pd.__version__}")
    print(f"timing: median of {reps} run(s) after a warm-up run on {WARMUP_CANDLES:,} candles")

    rows: dict[str, Row] = {}

    def add(key: str, name: str) -> Row:
        rows[key] = Row(name)
        return rows[key]

    measure(add("numpy", "numpy floor (signals only)"), numpy_floor, datasets, warm, reps)
    measure(add("fast", "TradeFleet fast, incl. analyze"), tradefleet_fast, datasets, warm, reps)
    kernel = KernelOnly()
    for d in datasets:
        kernel.prepare(d)
    measure(add("kernel", "TradeFleet fast, kernel only"), kernel, datasets, warm, reps)

    # event engine: a 20k probe (after a small warm-up) decides whether 100k fits in the time limit
    event = add("event", "TradeFleet event engine")
    tradefleet_event(full.head(2_000))
    probe = full.head(EVENT_PROBE)
    seconds, out = timed(tradefleet_event, probe, 1)
    projected = seconds * 100_000 / EVENT_PROBE
    event_data = probe
    if projected < EVENT_LIMIT_S:
        event_data = datasets[0]
        seconds, out = timed(tradefleet_event, event_data, 1)
    else:
        event.note = f"on {label(EVENT_PROBE)} only: 100k projected {projected:.0f} s >= {EVENT_LIMIT_S:.0f} s"
    event.rates[event_data.n] = event_data.n / seconds
    event.trades[event_data.n] = out.trades
    event.final[event_data.n] = out.final
    # parity on the event engine's data: the fast kernel must give the very same trades
    fast_same = tradefleet_fast(event_data)
    parity = fast_same.extra["keys"] == out.extra["keys"]
    print(
        f"  {event.engine:<34} {event_data.n:>9,} candles"
        f"  {seconds:8.3f} s  {event_data.n / seconds:>14,.0f}/s  {out.trades:>6,} trades"
        f"  (1 run; same trades as fast: {'yes' if parity else 'NO'})",
        flush=True,
    )

    if bt_run is not None:
        measure(add("bt", "backtesting.py"), bt_run, datasets, warm, reps)
    else:
        add("bt", "backtesting.py").note = "not installed"
    if vbt_run is not None:
        measure(add("vbt", "vectorbt"), vbt_run, datasets, warm, reps, finish=vbt_finish)
    else:
        add("vbt", "vectorbt").note = "not installed"

    # ------------------------------------------------------------------------------------- the table
    vbt_row = rows["vbt"] if rows["vbt"].rates else None
    np_row = rows["numpy"]
    goals = {
        "fast": (1_000_000, GOAL_FAST, f">= {GOAL_FAST / 1e6:.0f}M/s on 1M"),
        "event": (None, GOAL_EVENT, f">= {GOAL_EVENT / 1e3:.0f}k/s"),
    }
    table = []
    for key, row in rows.items():
        size = big if big in row.rates else (max(row.rates) if row.rates else big)
        tag = "" if size == big else f" ({label(size)})"
        goal = ""
        if key in goals and row.rates:
            at, target, text = goals[key]
            value = row.rates.get(at if at is not None else size)
            if value is not None:
                goal = f"{text}: {'met' if value >= target else 'MISSED'}"
            elif args.quick:
                goal = f"{text}: (full run only)"
        table.append(
            (
                row.engine + (f" [{row.note}]" if row.note else ""),
                rate_cell(row, 100_000),
                rate_cell(row, 1_000_000),
                (f"{row.trades[size]:,}{tag}" if tag else row.trades[size]) if row.trades else "-",
                ratio(row, vbt_row, size) + (tag if vbt_row is not None else ""),
                ratio(row, np_row, size) + tag,
                goal,
            )
        )
    headers = (
        "engine",
        "100k candles/s",
        "1M candles/s",
        f"trades ({label(big)})",
        "ratio vs vectorbt",
        "ratio vs numpy floor",
        "goal",
    )
    c.print_table(
        headers, table, title=f"Results (ratios of candles/s on the largest set both measured; {c.load_avg()})"
    )

    # ------------------------------------------------------------------------------- trade agreement
    check_rows = []
    counts: dict[int, set[int]] = {}
    for key in ("numpy", "fast", "kernel", "bt", "vbt"):
        row = rows[key]
        for n in sizes:
            if n in row.trades:
                counts.setdefault(n, set()).add(row.trades[n])
    for key in ("numpy", "fast", "event", "bt", "vbt"):
        row = rows[key]
        cells: list[Any] = [row.engine]
        for n in sizes:
            cells += [row.trades.get(n, "-"), f"{row.final[n]:.4g}" if n in row.final else "-"]
        check_rows.append(cells)
    headers2 = ["engine"]
    for n in sizes:
        headers2 += [f"trades {label(n)}", f"final/start {label(n)}"]
    c.print_table(
        headers2,
        check_rows,
        title="Trade counts side by side (incl. a trade open at the end; all fill at the next open)",
    )
    for n, found in counts.items():
        verdict = "agree" if len(found) == 1 else f"DIFFER ({sorted(found)})"
        print(f"  {n:,} candles: trade counts {verdict}")
    print(
        f"  event engine vs fast kernel on {event_data.n:,} candles: "
        f"{'identical trades' if parity else 'DIFFERENT trades'}"
    )
    print(
        "  final/start differs a little by design: TradeFleet stakes min(equity, cash / ((1+fee)*1.002)) "
        "(its slippage reserve), backtesting.py whole units of ~all cash, vectorbt all cash; numpy "
        "compounds open-to-open returns minus fee per side (no cash)."
    )
    if args.profile:
        profile_fast(datasets[-1])
    print(f"\npeers measured: {', '.join(peers)}")
    print(f"wall {time.perf_counter() - started:.0f} s; end {c.load_avg()}")


if __name__ == "__main__":
    main()
