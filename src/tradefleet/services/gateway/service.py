"""The gateway: hosts bots by lease, feeds them candles, obeys commands and relays their events.

One loop in one thread does everything that touches the bots, so a command never races a candle step.
A :class:`~tradefleet.services.gateway.leasing.LeaseKeeper` beats the **heartbeat** on its own thread, so a
slow venue call in the loop never costs the bots their leases; a bot whose lease was lost (this process
stalled and another gateway took it over) is dropped by the loop before its next step. The loop steps bots
only while the last renewal is fresh, and every trading write and venue action of a bot checks its lease
first (``TradingStore.fence``), so a stalled gateway cannot trade late.

* **scan** (every ``scan_s``, or at once after a command): start the bots whose wanted status is running and
  that no gateway holds (claiming each lease first), stop the ones whose wanted status became stopped;
* **commands**: read the ``commands`` stream; manual orders for a bot held here are applied at most once;
* **step**: deliver every candle closed by now to the hubs, then flush progress and apply kill switches.

A relay thread publishes the outbox events of the bots held here onto the bus as soon as a bot emits one,
and each live market's hub asks its venue for new candles on a poller thread of its own.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Protocol

import structlog

from tradefleet.adapters.bus.relay import OutboxRelay
from tradefleet.adapters.storage.leases import LogLine
from tradefleet.core.bots import BotConfig, BotStatus
from tradefleet.core.bus import COMMANDS_STREAM, BusMessage, CommandType, EventBus
from tradefleet.core.candles import timeframe_to_ms
from tradefleet.core.errors import LeaseLostError, StorageError, TemporaryExchangeError, TradeFleetError
from tradefleet.core.events import CommandResult, DomainEvent, RiskAlert, TradeExecuted
from tradefleet.core.orders import OrderStatus
from tradefleet.core.ports import CandleSource, Clock, EventSink, TradingStore
from tradefleet.engine.bot import BotRuntime
from tradefleet.engine.fleet import Fleet
from tradefleet.engine.hub import MarketDataHub
from tradefleet.engine.manual import ManualResult, force_entry, force_exit
from tradefleet.services.gateway.leasing import LeaseKeeper, LeaseStore

log = logging.getLogger(__name__)

RUNNABLE = (BotStatus.RUNNING, BotStatus.STOPPING_ENTRIES)
COMMANDS_CONSUMER = "gateway-commands"
TRANSIENT = (LeaseLostError, StorageError, TemporaryExchangeError)
VenueDriver = Callable[[str, int, int, tuple[float, float, float, float], float | None], Any]


@dataclass(frozen=True)
class GatewayConfig:
    gateway_id: str = field(default_factory=lambda: f"{socket.gethostname()}-{os.getpid()}")
    capacity: int = 100
    lease_ttl_s: float = 10.0
    heartbeat_s: float = 2.0
    scan_s: float = 1.0
    tick_s: float = 0.05
    # Candles one step may deliver per feed: a catch-up after a takeover runs in slices, and the lease is
    # checked between slices, so no step outlives the lease.
    max_step_candles: int = 100
    flush_s: float = 1.0
    retry_start_s: float = 30.0  # after a start failed for a passing reason (venue, database, lost lease)
    resolve_s: float = 5.0  # how often orders of unknown outcome are asked about between candles
    # A loop stuck this long (a strategy that never returns, a call that hangs) stops renewing the leases,
    # so another gateway takes its bots over instead of them going unmanaged.
    loop_stall_s: float = 300.0


@dataclass(frozen=True)
class MarketFeed:
    """Where a bot's candles come from: bots of one market share its clock, its source and its hubs.

    ``name`` is ``paper`` for the shared simulated market, else the live venue (``binance``, ...);
    ``static`` sources are read once (replayed candles), live ones are asked again as candles close.
    """

    name: str
    source: CandleSource
    clock: Clock
    static: bool = True


@dataclass
class Hosted:
    """A bot built for this gateway: its runtime, its market, the venue drivers of its pairs, its closer."""

    runtime: BotRuntime
    market: MarketFeed
    drivers: dict[str, VenueDriver] = field(default_factory=dict)
    close: Callable[[], None] = lambda: None


class RuntimeFactory(Protocol):
    """Builds a bot (strategy, exchange account, runtime) from its configuration; the composition root's."""

    def build(self, config: BotConfig, sink: EventSink) -> Hosted: ...


class LogSink(Protocol):
    def append(self, bot_id: str, lines: list[LogLine]) -> None: ...


class _Sink:
    """Where the hosted bots' events go: wake the relay, keep a log line, tell an optional printer."""

    def __init__(self, wake: threading.Event, lines: Callable[[DomainEvent], None], extra: EventSink | None) -> None:
        self.wake = wake
        self.lines = lines
        self.extra = extra

    def publish(self, event: DomainEvent) -> None:
        self.wake.set()
        self.lines(event)
        if self.extra is not None:
            self.extra.publish(event)


class Gateway:
    """Run bots held by lease until ``stop`` is set; see the module docstring for the loop."""

    def __init__(
        self,
        config: GatewayConfig,
        store: TradingStore,
        leases: LeaseStore,
        bus: EventBus,
        factory: RuntimeFactory,
        *,
        logs: LogSink | None = None,
        printer: EventSink | None = None,
        market_key: str = "gateway.market_ms",
    ) -> None:
        self.config = config
        self.id = config.gateway_id
        self.store = store
        self.leases = leases
        self.bus = bus
        self.factory = factory
        self.logs = logs
        self._held: tuple[str, ...] = ()  # the hosted bots' ids, for the relay thread
        self.hosted: dict[str, Hosted] = {}
        self.market_key = market_key
        self.fleets: dict[str, Fleet] = {}  # one per market (its own clock), made with the market's first bot
        self.hubs: dict[tuple[str, str], MarketDataHub] = {}  # (market, timeframe)
        self.drivers: dict[tuple[str, str], list[VenueDriver]] = {}  # (market, pair)
        self._pollers: dict[MarketDataHub, threading.Event] = {}  # live hubs' poller threads: set to stop
        self.wake_relay = threading.Event()
        self.sink = _Sink(self.wake_relay, self._log_event, printer)
        self._lines: dict[str, list[LogLine]] = {}
        self._scan_now = True
        self._kill_now = False
        self.keeper = LeaseKeeper(
            leases,
            self.id,
            ttl_s=config.lease_ttl_s,
            heartbeat_s=config.heartbeat_s,
            loop_stall_s=config.loop_stall_s,
        )
        self._last_resolve = 0.0
        self.stop_event = threading.Event()
        self.errors = 0
        self._failed: list[tuple[str, Exception]] = []  # bots whose step raised, dropped after the step
        self._retry_at: dict[str, float] = {}  # bots that could not start for a passing reason: not before

    # ------------------------------------------------------------------ the loop
    def run(self, stop: threading.Event | None = None) -> None:
        """Run until ``stop`` (or :attr:`stop_event`) is set; leave every bot saved and its lease released."""
        stop = stop or self.stop_event
        self.stop_event = stop
        self.leases.register(self.id, socket.gethostname(), os.getpid(), self.config.capacity)
        relay = threading.Thread(target=self._relay_loop, name=f"relay-{self.id}", daemon=True)
        relay.start()
        self.keeper.start()
        last_scan = last_flush = 0.0
        try:
            while not stop.is_set():
                mono = time.monotonic()
                self.keeper.progress()
                self._drop_lost()
                if self._scan_now or mono - last_scan >= self.config.scan_s:
                    self._scan_now = False
                    last_scan = mono
                    try:
                        self._scan()
                    except TradeFleetError as exc:
                        log.warning("gateway %s: scan failed (%s); retrying", self.id, exc.one_line())
                behind = False
                try:  # a failing phase (the database or the bus away for a moment) is retried, not fatal
                    self.bus.consume(
                        COMMANDS_STREAM, f"gateway.{self.id}", self.id, self._on_command, batch=50, block_ms=0
                    )
                    behind = self._step() if self.keeper.fresh() else False
                    if self._kill_now or mono - last_flush >= self.config.flush_s:
                        self._kill_now = False
                        for fleet in list(self.fleets.values()):
                            fleet.check_kill_switches()
                            fleet.flush()
                        self._resolve_unsettled()
                        self._drop_failed()
                        self._flush_logs()
                        last_flush = mono
                except Exception:
                    self.errors += 1
                    log.exception("gateway %s: loop step failed; retrying", self.id)
                    stop.wait(min(1.0, self.config.heartbeat_s))
                if not behind:
                    stop.wait(self.config.tick_s)
        finally:
            self.wake_relay.set()
            try:
                self.shutdown()
            finally:
                self.keeper.stop()
                stop.set()  # the relay and pollers end too, also when the loop ended on an error
                relay.join(5)

    def _step(self) -> bool:
        """Deliver candles closed by now, at most ``max_step_candles`` per feed; return True if still behind."""
        behind = False
        for fleet in list(self.fleets.values()):
            now = fleet.clock.now_ms()
            upcoming = [(c, h.tf_ms) for h in fleet.hubs if (c := h.next_close_ms()) is not None]
            target = now
            if upcoming:
                first, tf_ms = min(upcoming)
                target = min(now, first + (self.config.max_step_candles - 1) * tf_ms)
            fleet.step(target)
            behind = behind or target < now
        self._drop_failed()
        return behind

    def _drop_failed(self) -> None:
        failed, self._failed = self._failed, []
        for bot_id, exc in failed:
            if bot_id not in self.hosted:
                continue
            try:
                self._fail(bot_id, exc)
            except Exception:  # the database away while failing it: paused, rebuilt and reconciled at a scan
                log.exception("gateway %s: could not mark bot %s failed; dropping it", self.id, bot_id)
                if bot_id in self.hosted:
                    self._drop(bot_id, release=False)

    def _resolve_unsettled(self) -> None:
        """Ask the venues again about orders of unknown outcome (maybe in flight), between candles."""
        mono = time.monotonic()
        if mono - self._last_resolve < self.config.resolve_s:
            return
        self._last_resolve = mono
        pending = (OrderStatus.UNKNOWN, OrderStatus.PENDING_SUBMIT)
        for bot_id, hosted in list(self.hosted.items()):
            bot = hosted.runtime
            unknown = any(o.status in pending for o in bot.orders.live.values())
            self.keeper.progress()
            if unknown and bot_id not in {b for b, _ in self._failed}:
                try:
                    bot.resolve_unsettled()
                except Exception as exc:
                    self._on_bot_error(bot, exc)

    def _on_bot_error(self, bot: BotRuntime, exc: Exception) -> None:
        self._failed.append((bot.bot_id, exc))

    def _fail(self, bot_id: str, exc: Exception) -> None:
        """Drop a bot whose step raised; only an error of the bot itself marks it as failed."""
        self.errors += 1
        if isinstance(exc, LeaseLostError):
            log.warning("gateway %s: %s; dropping bot %s", self.id, exc.one_line(), bot_id)
            self._drop(bot_id, release=False)
        elif isinstance(exc, StorageError):  # the database, not the bot: rebuilt and reconciled at the next scan
            log.warning("gateway %s: bot %s paused by a storage error (%s)", self.id, bot_id, exc.one_line())
            self._drop(bot_id, release=False)
        else:
            log.error("gateway %s: bot %s failed", self.id, bot_id, exc_info=exc)
            detail = exc.one_line() if isinstance(exc, TradeFleetError) else f"{type(exc).__name__}: {exc}"
            try:
                self.store.check_fence(bot_id)  # a gateway that lost the bot must not mark another's bot failed
            except TradeFleetError as unsure:  # lost, or the database cannot tell: leave the bot to a later scan
                log.warning("gateway %s: %s; dropping bot %s", self.id, unsure.one_line(), bot_id)
                self._drop(bot_id, release=False)
                return
            self._note(bot_id, "ERROR", f"failed: {detail}")
            try:
                self.store.set_bot_status(bot_id, BotStatus.ERROR, f"failed: {detail}")
            finally:
                self._drop(bot_id, release=True)

    def _drop_lost(self) -> None:
        for bot_id in self.keeper.take_lost():
            if bot_id in self.hosted:
                log.warning("gateway %s: lost the lease of bot %s; dropping it", self.id, bot_id)
                self._drop(bot_id, release=False)

    def _scan(self) -> None:
        try:
            wanted = {c.bot_id: c for c in self.store.list_bots() if self.store.get_bot_status(c.bot_id) in RUNNABLE}
        except TradeFleetError as exc:
            log.warning("gateway %s: cannot read bots (%s)", self.id, exc)
            return
        for bot_id in [b for b in self.hosted if b not in wanted]:
            self._stop(bot_id)
        mono = time.monotonic()
        for bot_id, config in sorted(wanted.items()):
            if bot_id in self.hosted or len(self.hosted) >= self.config.capacity:
                continue
            if self._retry_at.get(bot_id, 0.0) > mono:
                continue
            self.keeper.progress()  # each start is progress (a long scan is not a stalled loop)
            epoch = self.leases.claim(bot_id, self.id, self.keeper.ttl_ms)
            if epoch is None:
                continue
            self.keeper.track(bot_id, epoch)  # renewed while it starts (reconciling with a venue may take a while)
            self.store.fence(bot_id, self.id, epoch)  # its trading writes are refused once the lease is lost
            try:
                self._start(config)
            except Exception as exc:
                self.errors += 1
                self.keeper.track(bot_id, None)
                self.store.unfence(bot_id, self.id)
                detail = exc.one_line() if isinstance(exc, TradeFleetError) else f"{type(exc).__name__}: {exc}"
                if isinstance(exc, TRANSIENT):  # not the bot's fault: it starts again later, here or elsewhere
                    log.warning("gateway %s: bot %s could not start (%s); retrying later", self.id, bot_id, detail)
                    self._retry_at[bot_id] = time.monotonic() + self.config.retry_start_s
                else:
                    log.exception("gateway %s: bot %s failed to start", self.id, bot_id)
                    self.store.set_bot_status(bot_id, BotStatus.ERROR, f"failed to start: {detail}")
                self.leases.release(bot_id, self.id)

    # ------------------------------------------------------------------ bots
    def _start(self, config: BotConfig) -> None:
        hosted = self.factory.build(config, self.sink)
        bot = hosted.runtime
        try:
            bot.start()
        except BaseException:
            hosted.close()
            raise
        market = hosted.market
        fleet = self.fleets.get(market.name)
        if fleet is None:
            key = self.market_key if market.name == "paper" else f"gateway.{market.name}.market_ms"
            fleet = self.fleets[market.name] = Fleet(
                self.store, market.clock, clock_key=key, on_bot_error=self._on_bot_error
            )
        tf_ms = timeframe_to_ms(config.timeframe)
        now = fleet.clock.now_ms()
        present = (now // tf_ms) * tf_ms - 2 * tf_ms
        skipped = []
        for pair in config.pairs:  # a new bot starts at the present, not at the start of the stored history
            last = bot.progress.get(pair)
            if last is None:
                bot.progress[pair] = present
            elif not market.static and last < present:
                # Live: candles missed while no gateway ran the bot are not traded late at today's prices.
                skipped.append(f"{pair} ({(present - last) // tf_ms} candles)")
                bot.progress[pair] = present
        if skipped:
            message = f"skipped candles missed while the bot was not running: {', '.join(skipped)}"
            bot.emit(RiskAlert(bot_id=config.bot_id, ts_ms=now, rule="missed_candles", message=message))
        hub = self.hubs.get((market.name, config.timeframe))
        created = hub is None or hub not in fleet.hubs
        if hub is None or created:
            drive = partial(self._drive, market.name) if market.static else None
            hub = MarketDataHub(
                market.source,
                config.timeframe,
                start_ms=now,
                venue=drive,
                static=market.static,
                on_bot_error=self._on_bot_error,
                background_poll=not market.static,
                on_progress=self.keeper.progress,
            )
        try:
            hub.subscribe(bot)  # reads each new pair's candles: a failure leaves nothing attached
        except BaseException:
            hub.unsubscribe(bot)
            hosted.close()
            raise
        if created:
            self.hubs[(market.name, config.timeframe)] = hub
            fleet.hubs.append(hub)
            if hub.background_poll:
                self._start_poller(hub, market)
        for pair, driver in hosted.drivers.items():
            self.drivers.setdefault((market.name, pair), []).append(driver)
        fleet.bots.append(bot)
        self.hosted[config.bot_id] = hosted
        self._held = tuple(self.hosted)
        self._note(config.bot_id, "INFO", f"started on gateway {self.id} ({bot.status.value})")
        log.info("gateway %s: bot %s started", self.id, config.bot_id)

    def _drive(
        self,
        market: str,
        pair: str,
        open_ms: int,
        close_ms: int,
        ohlc: tuple[float, float, float, float],
        nxt: float | None,
    ) -> None:
        for driver in self.drivers.get((market, pair), ()):
            driver(pair, open_ms, close_ms, ohlc, nxt)

    def _stop(self, bot_id: str) -> None:
        """Stop a bot its user stopped: save it, mark it stopped, give the lease back."""
        hosted = self.hosted.get(bot_id)
        if hosted is None:
            return
        hosted.runtime.stop()
        self._note(bot_id, "INFO", "stopped")
        self._flush_logs()
        self._drop(bot_id, release=True)

    def _drop(self, bot_id: str, *, release: bool) -> None:
        """Detach a bot from this gateway, keeping its wanted status (it runs again here or elsewhere)."""
        hosted = self.hosted.pop(bot_id)
        self._held = tuple(self.hosted)
        bot = hosted.runtime
        try:
            if release:
                try:
                    bot.flush()  # still fenced: a gateway that lost the lease writes nothing and releases nothing
                except LeaseLostError as exc:
                    log.warning("gateway %s: %s; bot %s left to its holder", self.id, exc.one_line(), bot_id)
                    release = False
        finally:
            self.keeper.track(bot_id, None)
            self.store.unfence(bot_id, self.id)
            market = hosted.market.name
            fleet = self.fleets[market]
            fleet.remove(bot)  # drops a hub no bot uses any more
            for key in [k for k, hub in self.hubs.items() if k[0] == market and hub not in fleet.hubs]:
                self._stop_poller(self.hubs.pop(key))
            for pair, driver in hosted.drivers.items():
                if driver in self.drivers.get((market, pair), []):
                    self.drivers[(market, pair)].remove(driver)
            hosted.close()
            if release:
                self.leases.release(bot_id, self.id)

    def shutdown(self) -> None:
        """Save every bot and release its lease so another gateway may take it over at once."""
        for bot_id in list(self.hosted):
            try:
                self._drop(bot_id, release=True)
            except Exception:
                log.exception("gateway %s: bot %s failed to save", self.id, bot_id)
        for hub in list(self._pollers):
            self._stop_poller(hub)
        self._flush_logs()

    def _start_poller(self, hub: MarketDataHub, market: MarketFeed) -> None:
        """Ask a live hub's venue for new candles on a thread of its own until the hub is dropped."""
        done = self._pollers[hub] = threading.Event()

        def poll() -> None:
            while not (done.is_set() or self.stop_event.is_set()):
                try:
                    hub.refresh(market.clock.now_ms())
                except Exception:  # refresh logs a failing venue itself; anything else must not end polling
                    log.exception("gateway %s: polling %s %s failed", self.id, market.name, hub.timeframe)
                    done.wait(hub.retry_ms / 1000)
                done.wait(0.25)

        name = f"candles-{self.id}-{market.name}-{hub.timeframe}"
        threading.Thread(target=poll, name=name, daemon=True).start()

    def _stop_poller(self, hub: MarketDataHub) -> None:
        done = self._pollers.pop(hub, None)
        if done is not None:
            done.set()

    # ------------------------------------------------------------------ commands
    def _on_command(self, message: BusMessage) -> None:
        payload = message.payload
        if int(payload.get("expires_ms", 0)) < time.time_ns() // 1_000_000:
            return  # too old: the user was told no gateway answered
        kind = message.type
        if kind in (CommandType.FORCE_ENTER, CommandType.FORCE_EXIT):
            # the command's trace id marks its log lines and the events it causes, and nothing after it
            with structlog.contextvars.bound_contextvars(trace_id=message.trace_id or uuid.uuid4().hex):
                self._manual(message)
        elif kind in (CommandType.START_BOT, CommandType.STOP_BOT):
            self._scan_now = True
        elif kind in (CommandType.EMERGENCY_STOP, CommandType.STOP_ENTRIES, CommandType.RESUME):
            self._kill_now = True

    def _manual(self, message: BusMessage) -> None:
        payload = message.payload
        bot_id, command_id = str(payload["bot_id"]), str(payload["command_id"])
        hosted = self.hosted.get(bot_id)
        if hosted is None:
            return  # another gateway holds it (or nobody: the caller times out)
        if not self.store.mark_processed(COMMANDS_CONSUMER, command_id):
            return  # at most once: marked (committed) before acting
        bot = hosted.runtime
        try:
            if message.type == CommandType.FORCE_ENTER:
                stake = payload.get("stake_amount")
                result = force_entry(
                    bot,
                    str(payload.get("pair", "")),
                    command_id=command_id,
                    stake_amount=float(stake) if stake is not None else None,
                    tag=str(payload.get("enter_tag") or "force_entry"),
                )
            else:
                trade_id = payload.get("trade_id")
                result = force_exit(
                    bot,
                    trade_id=int(trade_id) if trade_id is not None else None,
                    pair=payload.get("pair") or None,
                )
        except TradeFleetError as exc:
            result = ManualResult(False, exc.one_line())
        self._note(
            bot_id, "INFO" if result.ok else "WARNING", f"{message.type} by {payload.get('actor')}: {result.message}"
        )
        bot.emit(
            CommandResult(
                bot_id=bot_id,
                ts_ms=bot.now_ms(),
                command_id=command_id,
                command=message.type,
                ok=result.ok,
                message=result.message,
                result=json.dumps({"orders": result.orders, "trade_ids": result.trade_ids}),
            )
        )
        bot.flush()

    # ------------------------------------------------------------------ events and logs
    def _relay_loop(self) -> None:
        relay = OutboxRelay(self.store, self.bus, bot_ids=lambda: self._held)
        while True:
            try:
                relay.drain()
            except Exception:
                log.exception("gateway %s: relaying events failed; retrying", self.id)
                self.stop_event.wait(1.0)
            if self.stop_event.is_set() and not self.wake_relay.is_set():
                return
            self.wake_relay.wait(0.5)
            self.wake_relay.clear()

    def _log_event(self, event: DomainEvent) -> None:
        level = "WARNING" if isinstance(event, RiskAlert) else "INFO"
        self._lines.setdefault(event.bot_id, []).append(
            LogLine(_wall_ms(), level, "tradefleet.bot", describe_event(event))
        )

    def _note(self, bot_id: str, level: str, message: str) -> None:
        self._lines.setdefault(bot_id, []).append(LogLine(_wall_ms(), level, "tradefleet.gateway", message))

    def _flush_logs(self) -> None:
        lines, self._lines = self._lines, {}
        if self.logs is None:
            return
        for bot_id, batch in lines.items():
            try:
                self.logs.append(bot_id, batch)
            except TradeFleetError as exc:
                log.warning("gateway %s: could not save logs of %s (%s)", self.id, bot_id, exc)


def _wall_ms() -> int:
    return time.time_ns() // 1_000_000


def describe_event(event: DomainEvent) -> str:
    """Return one log line for a bot's domain event."""
    if isinstance(event, TradeExecuted):
        text = (
            f"{event.action} {event.side} {event.amount:.8g} {event.pair} @ {event.price:.8g} (trade {event.trade_id})"
        )
        if event.action == "exit":
            text += f", {event.reason}, profit {event.profit_abs or 0.0:.8g}"
        return text
    if isinstance(event, RiskAlert):
        return f"risk {event.rule}: {event.message}" + (f" ({event.pair})" if event.pair else "")
    fields = {k: v for k, v in event.to_dict().items() if k not in ("bot_id", "event_id", "ts_ms", "type")}
    return f"{event.type} " + ", ".join(f"{k}={v}" for k, v in fields.items())
