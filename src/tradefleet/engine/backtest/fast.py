"""Fast backtest: analyse each pair once, then one compiled loop that applies the bot runtime's rules.

The loop (:mod:`tradefleet.engine.backtest._kernel`) follows :class:`tradefleet.engine.bot.BotRuntime`, the
simulated venue and :class:`tradefleet.core.trades.Portfolio` operation by operation, so its trades equal
those of the event-driven engine bit for bit; ``tests/integration/backtest/test_engine_parity.py`` proves it.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Callable
from typing import Any, cast

import numpy as np
import pandas as pd

from tradefleet.core.candles import dates_ms, timeframe_to_ms
from tradefleet.core.strategy import IStrategy
from tradefleet.engine.backtest import _kernel
from tradefleet.engine.backtest.data import merged_timeline, prepare_frames, resolve_start
from tradefleet.engine.backtest.types import BacktestConfig, BacktestResult, BacktestTrade

HOUR_MS = 3_600_000
SLIPPAGE_GUESS = 0.002  # BotRuntime's cost factor: fee and this much slippage must fit in free cash
REASONS = {
    _kernel.ROI: "roi",
    _kernel.EXIT_SIGNAL: "exit_signal",
    _kernel.STOP_LOSS: "stop_loss",
    _kernel.TRAILING: "trailing_stop_loss",
}

_run_kernel = cast(Callable[..., tuple[Any, ...]], _kernel.run_kernel)


def min_notional_for(quote: str) -> float:
    """Return the smallest order value the simulated venue accepts in ``quote`` (as ``default_market``)."""
    return 0.0001 if quote in {"BTC", "ETH"} else 5.0


def _decimals(step: float) -> int:
    return max(0, -math.floor(math.log10(step)) + 2) if step > 0 else 0


def fingerprint(frames: dict[str, pd.DataFrame]) -> str:
    """Return a short hash of the candles (pairs, dates, prices), to tell runs on different data apart.

    Hashing 1M candles takes ~30 ms, more than the kernel: callers that want it (reports) set it.
    """
    digest = hashlib.sha256()
    for pair, frame in frames.items():
        digest.update(pair.encode())
        digest.update(np.ascontiguousarray(dates_ms(frame["date"])).tobytes())
        digest.update(np.ascontiguousarray(frame[["open", "high", "low", "close"]].to_numpy("float64")).tobytes())
    return digest.hexdigest()[:16]


def analyse(config: BacktestConfig, frames: dict[str, pd.DataFrame], strategy: IStrategy) -> dict[str, pd.DataFrame]:
    """Run the strategy once per pair on all its candles (as the hub does with no analysis window)."""
    return {pair: strategy.analyze(frame, pair) for pair, frame in frames.items()}


def run_fast_backtest(config: BacktestConfig, candles: dict[str, pd.DataFrame], strategy: IStrategy) -> BacktestResult:
    """Backtest ``strategy`` over ``candles`` with the compiled kernel; same trades as the event engine."""
    started = time.perf_counter()
    frames = prepare_frames(config, candles)
    analysed = analyse(config, frames, strategy)
    return run_fast_on_signals(config, frames, analysed, strategy, started=started)


def run_fast_on_signals(
    config: BacktestConfig,
    frames: dict[str, pd.DataFrame],
    analysed: dict[str, pd.DataFrame],
    strategy: IStrategy,
    *,
    started: float | None = None,
) -> BacktestResult:
    """Run the kernel on already analysed frames (hyperopt and benchmarks reuse the analysis)."""
    started = time.perf_counter() if started is None else started
    pairs = list(config.pairs)
    open_ms = [dates_ms(frames[p]["date"]).astype(np.int64) for p in pairs]
    start = resolve_start(config, frames)
    tl_pair, tl_row = merged_timeline(open_ms, start)
    offsets = np.zeros(len(pairs) + 1, dtype=np.int64)
    offsets[1:] = np.cumsum([len(ms) for ms in open_ms])

    def column(name: str, dtype: str) -> np.ndarray:
        parts = [analysed[p][name].to_numpy(dtype=dtype) for p in pairs]
        # One pair: hand the column over as it is (a concatenate would copy a million values for nothing).
        return np.ascontiguousarray(parts[0] if len(parts) == 1 else np.concatenate(parts))

    risk = config.risk
    stoploss = risk.stoploss if risk.stoploss is not None else strategy.stoploss
    roi = strategy.roi_table()
    tf_ms = timeframe_to_ms(config.timeframe)
    quote = pairs[0].split("/")[1]
    out = _run_kernel(
        tl_pair,
        tl_row,
        offsets,
        np.concatenate(open_ms),
        column("open", "float64"),
        column("high", "float64"),
        column("low", "float64"),
        column("close", "float64"),
        column("enter_long", "int8"),
        column("exit_long", "int8"),
        tf_ms,
        config.slippage_bps / 10_000,
        config.taker_fee,
        config.price_tick,
        10.0 ** _decimals(config.price_tick),
        config.amount_step,
        10.0 ** _decimals(config.amount_step),
        min_notional_for(quote),
        config.amount_step,
        (1 + config.taker_fee) * (1 + SLIPPAGE_GUESS),
        risk.stake_mode == "fixed",
        risk.stake_amount,
        config.starting_balance,
        risk.max_open_trades,
        risk.max_per_pair,
        stoploss,
        bool(strategy.trailing_stop),
        strategy.trailing_stop_positive is not None,
        float(strategy.trailing_stop_positive or 0.0),
        float(strategy.trailing_stop_positive_offset),
        bool(strategy.trailing_only_offset_is_reached),
        np.array([m for m, _ in roi], dtype=np.float64),
        np.array([r for _, r in roi], dtype=np.float64),
        risk.cooldown.candles,
        risk.stoploss_guard.enabled,
        risk.stoploss_guard.lookback_candles,
        risk.stoploss_guard.trade_limit,
        risk.stoploss_guard.stop_candles,
        risk.max_drawdown.enabled,
        risk.max_drawdown.max_drawdown,
        risk.max_drawdown.stop_candles,
        HOUR_MS,
    )
    (
        n,
        t_pair,
        t_row,
        t_open_ms,
        t_close_ms,
        t_open_rate,
        t_close_rate,
        t_amount,
        t_fee_open,
        t_fee_close,
        t_reason,
        n_eq,
        eq_ms,
        eq_val,
    ) = out
    count = int(n)
    pair_of, row_of, reason_of = t_pair[:count].tolist(), t_row[:count].tolist(), t_reason[:count].tolist()
    opened, closed = t_open_ms[:count].tolist(), t_close_ms[:count].tolist()
    open_rate, close_rate = t_open_rate[:count].tolist(), t_close_rate[:count].tolist()
    amounts, fee_open, fee_close = t_amount[:count].tolist(), t_fee_open[:count].tolist(), t_fee_close[:count].tolist()
    # Tags are read only at the entry rows (converting a million-row text column would cost more than the run).
    tags: list[str] = [""] * count
    for p, pair in enumerate(pairs):
        picks = [k for k in range(count) if pair_of[k] == p]
        if picks:
            values = analysed[pair]["enter_tag"].take([row_of[k] for k in picks]).tolist()
            for k, tag in zip(picks, values, strict=True):
                tags[k] = tag if isinstance(tag, str) else ""  # analyze() fills missing tags with ""
    trades = []
    for k in range(count):
        reason = reason_of[k]
        is_open = reason == _kernel.OPEN
        trades.append(
            BacktestTrade(
                pair=pairs[pair_of[k]],
                open_ms=opened[k],
                close_ms=None if is_open else closed[k],
                open_rate=open_rate[k],
                close_rate=None if is_open else close_rate[k],
                amount=amounts[k],
                fee_open=fee_open[k],
                fee_close=0.0 if is_open else fee_close[k],
                exit_reason="" if is_open else REASONS[reason],
                enter_tag=tags[k],
                is_open=is_open,
            )
        )
    return BacktestResult(
        config=config,
        trades=trades,
        equity_ms=np.asarray(eq_ms[: int(n_eq)], dtype=np.int64),
        equity=np.asarray(eq_val[: int(n_eq)], dtype=np.float64),
        candles=len(tl_pair),
        elapsed_s=time.perf_counter() - started,
    )
