"""Fleet: many bots, their hubs and one clock, run in one loop until stopped."""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable

from tradefleet.core.events import RiskAlert
from tradefleet.core.ports import Clock, TradingStore
from tradefleet.core.risk import KillSwitchLevel
from tradefleet.engine.bot import BotRuntime
from tradefleet.engine.hub import MarketDataHub

log = logging.getLogger(__name__)

CLOCK_KEY = "paper.clock_ms"


class Fleet:
    """Start bots (reconciling each), then feed them closed candles as the clock moves."""

    def __init__(
        self,
        store: TradingStore,
        clock: Clock,
        *,
        flush_every_s: float = 1.0,
        kill_check_every_s: float = 1.0,
        clock_key: str = CLOCK_KEY,
        batched: bool = False,
        on_bot_error: Callable[[BotRuntime, Exception], None] | None = None,
    ) -> None:
        self.store = store
        self.clock = clock
        self.hubs: list[MarketDataHub] = []
        self.bots: list[BotRuntime] = []
        self.flush_every_s = flush_every_s
        self.kill_check_every_s = kill_check_every_s
        self.clock_key = clock_key
        # Batched: one store transaction per delivery batch (backtests, benchmarks). Paper and live keep
        # the strict rule: every intent is committed before its exchange call.
        self.batched = batched
        # Set (gateways): a bot whose flush or kill switch raises is reported, and the others go on; each
        # bot then saves in its own transaction. Unset: one transaction, and the error propagates.
        self.on_bot_error = on_bot_error
        self.stop_event = threading.Event()
        self.finished_reason = ""

    def add(self, hub: MarketDataHub, bot: BotRuntime) -> None:
        """Start ``bot`` (load state, reconcile) and attach it to ``hub``."""
        if hub not in self.hubs:
            self.hubs.append(hub)
        bot.start()
        hub.subscribe(bot)
        self.bots.append(bot)

    def remove(self, bot: BotRuntime) -> None:
        """Detach ``bot`` from its hub and the fleet (the caller stopped or saved it); drop an empty hub."""
        for hub in list(self.hubs):
            hub.unsubscribe(bot)
            if not hub.feeds:
                self.hubs.remove(hub)
        if bot in self.bots:
            self.bots.remove(bot)

    def step(self, now_ms: int) -> int:
        """Deliver all candles closed by ``now_ms``; return candle-steps run."""
        if self.batched:
            with self.store.transaction():
                return sum(hub.advance_to(now_ms) for hub in self.hubs)
        return sum(hub.advance_to(now_ms) for hub in self.hubs)

    def market_ms(self) -> int:
        """Return how far the fleet has traded: the close of the last candle delivered."""
        return min((hub.market_ms for hub in self.hubs), default=self.clock.now_ms())

    def flush(self) -> None:
        """Persist every bot's progress and the fleet's market time (in one transaction, unless isolated)."""
        if self.on_bot_error is None:
            with self.store.transaction():
                for bot in self.bots:
                    bot.flush()
                self.store.set_state(self.clock_key, str(self.market_ms()))
            return
        for bot in list(self.bots):
            self._isolated(bot, bot.flush)
        self.store.set_state(self.clock_key, str(self.market_ms()))

    def check_kill_switches(self) -> None:
        """Apply kill-switch levels and stop-entries/resume requests stored by the API or the CLI."""
        fleet_level = self.store.get_kill_switch("*")
        for bot in list(self.bots):
            self._isolated(bot, functools.partial(self._follow_switches, bot, fleet_level))

    def _follow_switches(self, bot: BotRuntime, fleet_level: KillSwitchLevel) -> None:
        bot.follow_wanted_status(self.store.get_bot_status(bot.bot_id))
        level = max(fleet_level, self.store.get_kill_switch(bot.bot_id))
        if level > bot.kill_level:
            bot.apply_kill_switch(level)
        elif level == KillSwitchLevel.NONE and bot.kill_level > KillSwitchLevel.NONE:
            bot.kill_level = KillSwitchLevel.NONE  # cleared by an admin

    def _isolated(self, bot: BotRuntime, action: Callable[[], None]) -> None:
        if self.on_bot_error is None:
            action()
            return
        try:
            action()
        except Exception as exc:
            self.on_bot_error(bot, exc)

    def run(
        self,
        *,
        until_ms: int | None = None,
        idle: Callable[[float], bool] | None = None,
    ) -> str:
        """Run until stopped, ``until_ms`` is reached, or every feed is exhausted; return why it ended."""
        wait = idle or self.stop_event.wait
        last_flush = last_kill = time.monotonic()
        try:
            while not self.stop_event.is_set():
                now = self.clock.now_ms()
                if until_ms is not None:
                    now = min(now, until_ms)
                self.step(now)
                mono = time.monotonic()
                if mono - last_kill >= self.kill_check_every_s:
                    self.check_kill_switches()
                    last_kill = mono
                if mono - last_flush >= self.flush_every_s:
                    self.flush()
                    last_flush = mono
                if until_ms is not None and now >= until_ms:
                    return self._finish("reached the end time")
                upcoming = [c for c in (h.next_close_ms() for h in self.hubs) if c is not None]
                if not upcoming:
                    return self._finish("replayed every stored candle")
                delay = self._wall_delay(min(upcoming))
                if delay > 0 and wait(min(delay, 0.5)):
                    break
            return self._finish("stopped")
        finally:
            self.flush()

    def _wall_delay(self, sim_ms: int) -> float:
        until = getattr(self.clock, "wall_seconds_until", None)
        if until is None:
            return 0.0
        delay: float = until(sim_ms)
        return delay

    def _finish(self, reason: str) -> str:
        self.finished_reason = reason
        return reason

    def shutdown(self) -> None:
        """Persist everything; bots keep their status so the next start resumes them with open positions."""
        for bot in self.bots:
            try:
                bot.flush()
            except Exception:  # one bot failing to flush must not keep the others from saving
                log.exception("bot %s failed to save its state", bot.bot_id)
                bot.emit(RiskAlert(bot_id=bot.bot_id, ts_ms=self.clock.now_ms(), rule="shutdown", message="failed"))
        self.store.set_state(self.clock_key, str(self.market_ms()))
