"""Market-data hub: one feed per (exchange, timeframe) shared by every bot on it.

A hundred bots on one pair cost one feed and, when they run the same strategy with the same parameters, one
analysis. The hub walks closed candles in time order across pairs; for each candle it first lets the venue
match resting orders (simulated exchange), then lets every subscribed bot handle the close.

A *static* hub reads each pair's candles once (replays, paper trading on stored data). A live hub
(``static=False``) asks its source again whenever a candle is due to have closed, appends what came and
keeps a bounded window; a source that fails is retried after a back-off, the other pairs go on. A live hub
made with ``background_poll=True`` leaves the asking to :meth:`MarketDataHub.refresh` on a thread of its own
(the gateway's), so a slow venue never holds up delivery, commands or other markets.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from tradefleet.core.candles import dates_ms, timeframe_to_ms
from tradefleet.core.errors import TradeFleetError
from tradefleet.core.ports import CandleSource
from tradefleet.engine.bot import BotRuntime, Signals

log = logging.getLogger(__name__)

VenueDriver = Callable[[str, int, int, tuple[float, float, float, float], float | None], Any]
FAR_FUTURE_MS = 2**62


@dataclass
class _PairFeed:
    frame: pd.DataFrame
    open_ms: np.ndarray
    ohlc: np.ndarray  # shape (n, 4)
    next_index: int = -1  # first candle not yet delivered (-1: no bot yet)
    bots: list[BotRuntime] = field(default_factory=list)
    keys: list[tuple[Any, ...]] = field(default_factory=list)
    poll_after_ms: int = 0  # live feeds: do not ask the source again before this time

    def append(self, new: pd.DataFrame) -> int:
        """Append candles opening after the last one held; return how many were added."""
        new_ms = dates_ms(new["date"])
        keep = new_ms > (int(self.open_ms[-1]) if len(self.open_ms) else -1)
        if not keep.any():
            return 0
        new = new.loc[keep]
        self.frame = pd.concat([self.frame, new], ignore_index=True) if len(self.frame) else new.reset_index(drop=True)
        self.open_ms = np.concatenate([self.open_ms, new_ms[keep]])
        self.ohlc = np.concatenate([self.ohlc, new[["open", "high", "low", "close"]].to_numpy(dtype="float64")])
        return int(keep.sum())

    def trim(self, keep: int) -> None:
        """Drop the oldest candles beyond ``keep`` that no bot needs any more (indices shift with them)."""
        drop = min(len(self.open_ms) - keep, max(0, self.next_index) - keep // 2)
        if drop <= 0:
            return
        self.frame = self.frame.iloc[drop:].reset_index(drop=True)
        self.open_ms = self.open_ms[drop:]
        self.ohlc = self.ohlc[drop:]
        self.next_index -= drop


def _strategy_key(bot: BotRuntime) -> tuple[Any, ...]:
    """Return what makes two bots' analyses identical: strategy class and parameter values."""
    params = tuple(sorted((k, repr(v)) for k, v in bot.strategy.param_values().items()))
    return (type(bot.strategy), params)


def _signals(frame: pd.DataFrame, open_ms: np.ndarray) -> Signals:
    return Signals(
        open_ms=open_ms,
        open=frame["open"].to_numpy(dtype="float64"),
        high=frame["high"].to_numpy(dtype="float64"),
        low=frame["low"].to_numpy(dtype="float64"),
        close=frame["close"].to_numpy(dtype="float64"),
        enter_long=frame["enter_long"].to_numpy(dtype="int8"),
        exit_long=frame["exit_long"].to_numpy(dtype="int8"),
        enter_tag=frame["enter_tag"].to_numpy(dtype=object),
    )


class MarketDataHub:
    """Deliver closed candles of one timeframe to bots, in time order, driving the venue first."""

    def __init__(
        self,
        source: CandleSource,
        timeframe: str,
        *,
        start_ms: int,
        venue: VenueDriver | None = None,
        analysis_window: int | None = 2000,
        history_ms: int | None = None,
        static: bool = True,
        poll_ms: int = 2_000,
        retry_ms: int = 10_000,
        on_bot_error: Callable[[BotRuntime, Exception], None] | None = None,
        background_poll: bool = False,
        on_progress: Callable[[], None] | None = None,
    ) -> None:
        self.source = source
        self.timeframe = timeframe
        self.tf_ms = timeframe_to_ms(timeframe)
        self.start_ms = start_ms
        self.venue = venue
        self.window = analysis_window
        self.static = static
        self.poll_ms = poll_ms  # live: how often to ask again for a candle that is due but not yet published
        self.retry_ms = retry_ms  # live: back-off after the source failed
        self.fetch_errors = 0
        # Set (gateways): a bot whose step raises is reported and gets no more candles in this delivery,
        # instead of the error stopping every bot of the hub. Unset (backtests): the error propagates.
        self.on_bot_error = on_bot_error
        self.history_ms = history_ms if history_ms is not None else 2000 * self.tf_ms
        self.feeds: dict[str, _PairFeed] = {}
        self.delivered = 0
        self.market_ms = start_ms  # close of the last candle delivered: where a resumed run continues
        self.background_poll = background_poll
        self.on_progress = on_progress  # told after each candle is delivered (a gateway's liveness watch)
        # Feeds change under this lock: a poller thread appends while the loop delivers (indices shift on trim).
        self._lock = threading.RLock()

    def subscribe(self, bot: BotRuntime) -> None:
        """Attach a started bot; delivery resumes after the earliest progress among the pair's bots."""
        for pair in bot.config.pairs:
            loaded = None if pair in self.feeds else self._load(pair)  # read outside the lock
            with self._lock:
                feed = self.feeds.setdefault(pair, loaded) if loaded is not None else self.feeds[pair]
                feed.bots.append(bot)
                feed.keys.append(_strategy_key(bot))
                resume = bot.progress.get(pair)
                first = resume + self.tf_ms if resume is not None else self.start_ms
                start = int(np.searchsorted(feed.open_ms, first, side="left"))
                feed.next_index = start if feed.next_index < 0 else min(feed.next_index, start)

    def unsubscribe(self, bot: BotRuntime) -> None:
        """Detach ``bot``; a pair no bot trades any more is dropped (re-read when a bot subscribes again)."""
        with self._lock:
            for pair in bot.config.pairs:
                feed = self.feeds.get(pair)
                if feed is None or bot not in feed.bots:
                    continue
                at = feed.bots.index(bot)
                del feed.bots[at], feed.keys[at]
                if not feed.bots:
                    del self.feeds[pair]

    def _load(self, pair: str) -> _PairFeed:
        # A live hub reads a pair added later from the present (where it has delivered to), not from its start.
        since = self.start_ms if self.static else max(self.start_ms, self.market_ms)
        frame = self.source.candles(pair, self.timeframe, since - self.history_ms, FAR_FUTURE_MS)
        frame = frame.reset_index(drop=True)
        open_ms = dates_ms(frame["date"])
        ohlc = frame[["open", "high", "low", "close"]].to_numpy(dtype="float64")
        return _PairFeed(frame=frame, open_ms=open_ms, ohlc=ohlc)

    def last_open_ms(self) -> int | None:
        """Return the open time of the last candle any feed holds (end of a replay)."""
        with self._lock:
            ends = [int(f.open_ms[-1]) for f in self.feeds.values() if len(f.open_ms)]
        return max(ends) if ends else None

    def next_close_ms(self) -> int | None:
        """Return when the next undelivered candle closes, or None when every feed is exhausted."""
        with self._lock:
            closes = [
                int(f.open_ms[f.next_index]) + self.tf_ms for f in self.feeds.values() if f.next_index < len(f.open_ms)
            ]
        return min(closes) if closes else None

    def refresh(self, now_ms: int) -> int:
        """Live hubs: fetch the candles that closed since each feed last read; return how many came.

        Safe on any thread: the source is asked outside the lock, and what came is appended under it.
        """
        with self._lock:
            due = [(p, f, start) for p, f in self.feeds.items() if (start := self._due(f, now_ms)) is not None]
        added = 0
        for pair, feed, start in due:
            try:
                new = self.source.candles(pair, self.timeframe, start, now_ms - self.tf_ms + 1)
            except TradeFleetError as exc:
                self.fetch_errors += 1
                feed.poll_after_ms = now_ms + self.retry_ms
                log.warning("%s %s: cannot fetch candles (%s); retrying in %d s", pair, self.timeframe,
                            exc.one_line(), self.retry_ms // 1000)  # fmt: skip
                continue
            with self._lock:  # a feed dropped meanwhile takes its candles with it
                got = feed.append(new) if len(new) else 0
                added += got
                feed.poll_after_ms = 0 if got else now_ms + self.poll_ms
                if self.window is not None:
                    feed.trim(2 * self.window)
        return added

    def _due(self, feed: _PairFeed, now_ms: int) -> int | None:
        """Where to ask from, when a feed's next candle has closed and it was not asked too recently."""
        last = int(feed.open_ms[-1]) if len(feed.open_ms) else self.start_ms - 2 * self.tf_ms
        if now_ms < last + 2 * self.tf_ms or now_ms < feed.poll_after_ms:
            return None
        return last + self.tf_ms

    def advance_to(self, now_ms: int) -> int:
        """Deliver every candle that has closed by ``now_ms``; return how many candle-steps ran."""
        if not self.static and not self.background_poll:
            self.refresh(now_ms)
        with self._lock:
            return self._deliver(now_ms)

    def _deliver(self, now_ms: int) -> int:
        ranges: dict[str, tuple[int, int]] = {}
        for pair, feed in self.feeds.items():
            hi = int(np.searchsorted(feed.open_ms, now_ms - self.tf_ms, side="right"))
            if hi > feed.next_index:
                ranges[pair] = (feed.next_index, hi)
        if not ranges:
            return 0
        analyses = self._analyse(ranges)
        timeline = sorted(
            (int(self.feeds[pair].open_ms[i]), order, pair, i)
            for order, (pair, (lo, hi)) in enumerate(ranges.items())
            for i in range(lo, hi)
        )
        steps = 0
        failed: list[BotRuntime] = []
        for open_ms, _, pair, i in timeline:
            feed = self.feeds[pair]
            if self.venue is not None:
                o, h, low, c = feed.ohlc[i]
                nxt = float(feed.ohlc[i + 1, 0]) if i + 1 < len(feed.ohlc) else None
                self.venue(pair, open_ms, open_ms + self.tf_ms, (float(o), float(h), float(low), float(c)), nxt)
            for bot, key in zip(feed.bots, feed.keys, strict=True):
                analysis = analyses[(pair, key)]
                if analysis is None:
                    continue  # its strategy's analysis failed: reported, no step
                sig, offset = analysis
                if self.on_bot_error is None:
                    bot.step(pair, i - offset, sig)
                elif bot not in failed:
                    try:
                        bot.step(pair, i - offset, sig)
                    except Exception as exc:
                        failed.append(bot)
                        self.on_bot_error(bot, exc)
                steps += 1
            feed.next_index = i + 1
            self.market_ms = max(self.market_ms, open_ms + self.tf_ms)
            if self.on_progress is not None:
                self.on_progress()
        self.delivered += steps
        return steps

    def _analyse(self, ranges: dict[str, tuple[int, int]]) -> dict[tuple[str, Any], tuple[Signals, int] | None]:
        """Analyse each (pair, strategy) once on the candles visible at the end of this batch.

        With ``on_bot_error``, an analysis that raises is reported for each bot of that strategy (None here).
        """
        out: dict[tuple[str, Any], tuple[Signals, int] | None] = {}
        for pair, (first, hi) in ranges.items():
            feed = self.feeds[pair]
            lo = 0 if self.window is None else max(0, first - self.window)
            visible = feed.frame.iloc[lo:hi]
            for bot, strategy_key in zip(feed.bots, feed.keys, strict=True):
                key = (pair, strategy_key)
                if key in out:
                    continue
                try:
                    analysed = bot.strategy.analyze(visible, pair)
                    out[key] = (_signals(analysed, feed.open_ms[lo:hi]), lo)
                except Exception as exc:
                    if self.on_bot_error is None:
                        raise
                    out[key] = None
                    for other, other_key in zip(feed.bots, feed.keys, strict=True):
                        if other_key == strategy_key:
                            self.on_bot_error(other, exc)
        return out
