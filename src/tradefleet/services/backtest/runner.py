"""Event-driven backtest: the live engine (bot runtime, hub, fleet, simulated venue, SQL store) on a sim clock.

This is the reference: paper and live trading run this very code. :func:`run_backtest` picks it or the fast
kernel (:func:`tradefleet.engine.backtest.run_fast_backtest`) from ``config.engine``; both give the same trades.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from tradefleet.adapters.exchanges.simulated import SimSettings, SimulatedVenue
from tradefleet.adapters.storage.db import upgrade
from tradefleet.adapters.storage.repository import SqlTradingStore
from tradefleet.core.bots import BotConfig
from tradefleet.core.candles import dates_ms, timeframe_to_ms
from tradefleet.core.events import DomainEvent
from tradefleet.core.ports import Market
from tradefleet.core.strategy import IStrategy
from tradefleet.core.trades import Trade
from tradefleet.engine.backtest import BacktestConfig, BacktestResult, BacktestTrade, run_fast_backtest
from tradefleet.engine.backtest.data import prepare_frames, resolve_start
from tradefleet.engine.backtest.fast import fingerprint, min_notional_for
from tradefleet.engine.bot import BotRuntime
from tradefleet.engine.clock import SimClock
from tradefleet.engine.fleet import Fleet
from tradefleet.engine.hub import MarketDataHub, VenueDriver

BOT_ID = "backtest"


def run_backtest(config: BacktestConfig, candles: dict[str, pd.DataFrame], strategy: IStrategy) -> BacktestResult:
    """Run a backtest on the engine ``config.engine`` names (``fast`` or ``event``)."""
    if config.engine == "event":
        result = run_event_backtest(config, candles, strategy)
    else:
        result = run_fast_backtest(config, candles, strategy)
    result.data_fingerprint = fingerprint(prepare_frames(config, candles))
    return result


def backtest_market(pair: str, config: BacktestConfig) -> Market:
    """Return the venue rules a backtest trades ``pair`` under."""
    base, quote = pair.split("/")
    return Market(
        symbol=pair,
        base=base,
        quote=quote,
        price_precision=config.price_tick,
        amount_precision=config.amount_step,
        min_notional=min_notional_for(quote),
        min_amount=config.amount_step,
        taker_fee=config.taker_fee,
        maker_fee=config.taker_fee,
    )


class _FrameSource:
    """Candle source over frames held in memory."""

    def __init__(self, frames: dict[str, pd.DataFrame]) -> None:
        self.frames = frames

    def candles(self, pair: str, timeframe: str, start_ms: int, end_ms: int) -> pd.DataFrame:
        frame = self.frames[pair]
        ms = dates_ms(frame["date"])
        return frame.loc[(ms >= start_ms) & (ms < end_ms)].reset_index(drop=True)


class _NullSink:
    def publish(self, event: DomainEvent) -> None:
        """Drop events: a backtest reads its results from the store."""


class _EquityRecorder:
    """Venue driver that records the bot's equity once every candle closing at one time has been handled."""

    def __init__(self, bot: BotRuntime, venue: VenueDriver, tf_ms: int) -> None:
        self.bot, self.venue, self.tf_ms = bot, venue, tf_ms
        self.last_open: int | None = None
        self.ms: list[int] = []
        self.values: list[float] = []

    def __call__(
        self, pair: str, open_ms: int, close_ms: int, ohlc: tuple[float, float, float, float], nxt: float | None
    ) -> Any:
        if self.last_open is not None and open_ms != self.last_open:
            self.record()
        self.last_open = open_ms
        return self.venue(pair, open_ms, close_ms, ohlc, nxt)

    def record(self) -> None:
        if self.last_open is not None:
            self.ms.append(self.last_open + self.tf_ms)
            self.values.append(self.bot.portfolio.equity(self.bot.marks))


def _as_backtest_trade(trade: Trade) -> BacktestTrade:
    return BacktestTrade(
        pair=trade.pair,
        open_ms=trade.open_ms,
        close_ms=trade.close_ms,
        open_rate=trade.open_rate,
        close_rate=trade.close_rate,
        amount=trade.amount,
        fee_open=trade.fee_open,
        fee_close=trade.fee_close,
        exit_reason=trade.exit_reason,
        enter_tag=trade.enter_tag,
        is_open=trade.is_open,
    )


def run_event_backtest(
    config: BacktestConfig, candles: dict[str, pd.DataFrame], strategy: IStrategy, *, workdir: Path | None = None
) -> BacktestResult:
    """Replay ``candles`` through the live engine and return the trades it recorded in its store."""
    if workdir is None:
        with tempfile.TemporaryDirectory(prefix="tradefleet-backtest-") as tmp:
            return run_event_backtest(config, candles, strategy, workdir=Path(tmp))
    started = time.perf_counter()
    frames = prepare_frames(config, candles)
    start = resolve_start(config, frames)
    tf_ms = timeframe_to_ms(config.timeframe)
    first = min(int(dates_ms(f["date"])[0]) for f in frames.values())
    last = max(int(dates_ms(f["date"])[-1]) for f in frames.values())
    url = f"sqlite:///{(workdir / 'backtest.sqlite').as_posix()}"
    upgrade(url)
    store = SqlTradingStore.from_url(url)
    clock = SimClock(start)
    venue = SimulatedVenue(
        {p: backtest_market(p, config) for p in config.pairs},
        clock=clock,
        settings=SimSettings(slippage_bps=config.slippage_bps, default_taker_fee=config.taker_fee),
    )
    try:
        bot_config = BotConfig(
            bot_id=BOT_ID,
            strategy=config.strategy,
            strategy_params=config.strategy_params,
            pairs=config.pairs,
            timeframe=config.timeframe,
            quote_currency=config.quote_currency,
            starting_balance=config.starting_balance,
            risk=config.risk,
        )
        store.save_bot(bot_config)
        account = venue.open_account(BOT_ID, {config.quote_currency: config.starting_balance})
        bot = BotRuntime(bot_config, strategy, account, store, clock, _NullSink())
        recorder = _EquityRecorder(bot, venue.on_candle, tf_ms)
        hub = MarketDataHub(
            _FrameSource(frames),
            config.timeframe,
            start_ms=start,
            venue=recorder,
            analysis_window=None,
            history_ms=max(0, start - first) + tf_ms,
        )
        fleet = Fleet(store, clock, batched=True)
        fleet.add(hub, bot)
        end = max(last + tf_ms, start)
        clock.set(end)
        steps = fleet.step(end)
        recorder.record()
        fleet.flush()
        stored = store.closed_trades(BOT_ID) + store.open_trades(BOT_ID)
        trades = [_as_backtest_trade(t) for t in sorted(stored, key=lambda t: t.id or 0)]
    finally:
        venue.close()
        store.close()
    return BacktestResult(
        config=config,
        trades=trades,
        equity_ms=np.asarray(recorder.ms, dtype=np.int64),
        equity=np.asarray(recorder.values, dtype=np.float64),
        candles=steps,
        elapsed_s=time.perf_counter() - started,
    )
