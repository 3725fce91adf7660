"""Live market-data hubs: candles polled from a venue while the bots are fed, and pairs added later.

The hub is the unit here: its source is a frame of minute candles that can be held up like a slow venue,
and its bots are recorders of the candles they are handed (they do not trade).
"""

from __future__ import annotations

import threading
from types import SimpleNamespace
from typing import Any

import numpy as np
import pandas as pd

from tradefleet.core.candles import dates_ms
from tradefleet.engine.bot import Signals
from tradefleet.engine.hub import MarketDataHub

MINUTE = 60_000
T0 = 1_767_225_600_000  # 2026-01-01 00:00 UTC


def minutes(n: int) -> pd.DataFrame:
    close = 100 + np.arange(n, dtype="float64")
    dates = pd.to_datetime(T0 + MINUTE * np.arange(n), unit="ms", utc=True).astype("datetime64[ms, UTC]")
    return pd.DataFrame({"date": dates, "open": close, "high": close, "low": close, "close": close, "volume": 1.0})


class SlowVenueSource:
    """Minute candles published as they close (by the ``now`` the test says); ``hold`` stalls the next asks."""

    def __init__(self, frame: pd.DataFrame, now_ms: int) -> None:
        self.frame = frame
        self.now_ms = now_ms  # candles closed by then are published
        self.asked: list[tuple[str, int, int]] = []
        self.hold = threading.Event()  # set: asks wait for ``release``
        self.release = threading.Event()
        self.waiting = threading.Event()  # an ask is stalled now

    def candles(self, pair: str, timeframe: str, start_ms: int, end_ms: int) -> pd.DataFrame:
        self.asked.append((pair, start_ms, end_ms))
        if self.hold.is_set():
            self.waiting.set()
            assert self.release.wait(10), "the test never released the venue"
        ms = dates_ms(self.frame["date"])
        closed = ms + MINUTE <= self.now_ms
        return self.frame[(ms >= start_ms) & (ms < end_ms) & closed].reset_index(drop=True)


class Quiet:
    """A strategy with no signals (its analysis is the candles as they are)."""

    def param_values(self) -> dict[str, Any]:
        return {}

    def analyze(self, frame: pd.DataFrame, pair: str) -> pd.DataFrame:
        return frame.assign(enter_long=0, exit_long=0, enter_tag="")


class Recorder:
    """Stands in for a bot: keeps the open time of every candle it is handed, per pair."""

    def __init__(self, *pairs: str, progress: dict[str, int] | None = None) -> None:
        self.config = SimpleNamespace(pairs=pairs)
        self.progress = dict(progress or {})
        self.strategy = Quiet()
        self.seen: list[tuple[str, int]] = []

    def step(self, pair: str, i: int, sig: Signals) -> None:
        self.seen.append((pair, int(sig.open_ms[i])))


def live_hub(source: SlowVenueSource, start_ms: int, **kwargs: Any) -> MarketDataHub:
    return MarketDataHub(source, "1m", start_ms=start_ms, static=False, history_ms=10 * MINUTE, **kwargs)


def test_a_stalled_venue_poll_on_another_thread_does_not_hold_up_delivery() -> None:
    now = T0 + 100 * MINUTE
    source = SlowVenueSource(minutes(200), now)
    hub = live_hub(source, start_ms=now, background_poll=True)
    bot = Recorder("BTC/USDT", progress={"BTC/USDT": now - 3 * MINUTE})  # two closed candles not yet traded
    hub.subscribe(bot)  # reads the history up to ``now``: the source publishes what has closed

    later = source.now_ms = now + 3 * MINUTE
    source.hold.set()
    poller = threading.Thread(target=hub.refresh, args=(later,), daemon=True)
    poller.start()
    assert source.waiting.wait(5), "the poller asked the venue"
    delivered = hub.advance_to(later)  # the venue is stalled: what the hub holds is delivered all the same
    assert delivered == 2 and bot.seen == [("BTC/USDT", now - 2 * MINUTE), ("BTC/USDT", now - MINUTE)]
    assert poller.is_alive(), "the venue is still stalled"

    source.release.set()
    poller.join(5)
    assert hub.advance_to(later) == 3, "the candles the poller brought are delivered next"
    assert [ms for _, ms in bot.seen[2:]] == [now, now + MINUTE, now + 2 * MINUTE]


def test_a_hub_polled_in_the_background_never_asks_the_venue_on_the_delivery_thread() -> None:
    now = T0 + 100 * MINUTE
    source = SlowVenueSource(minutes(200), now)
    hub = live_hub(source, start_ms=now, background_poll=True)
    hub.subscribe(Recorder("BTC/USDT"))
    source.now_ms = now + 5 * MINUTE
    asked = len(source.asked)
    hub.advance_to(now + 5 * MINUTE)
    assert len(source.asked) == asked, "delivery left the asking to the poller"
    source.now_ms = now
    foreground = live_hub(source, start_ms=now)
    foreground.subscribe(Recorder("BTC/USDT"))
    source.now_ms = now + 5 * MINUTE
    asked = len(source.asked)
    foreground.advance_to(now + 5 * MINUTE)
    assert len(source.asked) == asked + 1, "without a poller, delivery asks itself"


def test_a_pair_added_to_an_old_live_hub_is_read_from_the_present_not_from_the_hub_start() -> None:
    start = T0 + 20 * MINUTE
    source = SlowVenueSource(minutes(600), start)
    hub = live_hub(source, start_ms=start)
    hub.subscribe(Recorder("BTC/USDT"))
    now = source.now_ms = T0 + 500 * MINUTE
    hub.advance_to(now)  # the hub has delivered up to now
    assert hub.market_ms == now
    hub.subscribe(Recorder("ETH/USDT", progress={"ETH/USDT": now - 2 * MINUTE}))
    pair, since, _ = source.asked[-1]
    assert pair == "ETH/USDT" and since == now - 10 * MINUTE, "its history up to now, not since the hub started"
