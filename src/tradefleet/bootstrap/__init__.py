"""Composition root: build every part from settings and wire them together. Nothing else constructs adapters.

Later roles (API, gateway, AI service) are added as further builders over the same :class:`Platform`.
"""

from __future__ import annotations

import dataclasses
import fcntl
import logging
import time
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import pandas as pd

from tradefleet.adapters.data.generator import generate_market
from tradefleet.adapters.data.store import CandleStore
from tradefleet.adapters.exchanges.faults import FaultPlan
from tradefleet.adapters.exchanges.simulated import SimSettings, SimulatedVenue, default_market
from tradefleet.adapters.storage.db import upgrade
from tradefleet.adapters.storage.repository import SqlTradingStore
from tradefleet.config import Settings
from tradefleet.core.bots import BotConfig
from tradefleet.core.candles import timeframe_to_ms
from tradefleet.core.errors import ConfigError, DataNotFoundError, LookAheadError
from tradefleet.core.lookahead import check_lookahead
from tradefleet.core.ports import Clock, EventSink
from tradefleet.core.strategy import IStrategy
from tradefleet.engine.bot import BotRuntime
from tradefleet.engine.clock import AcceleratedClock
from tradefleet.engine.fleet import Fleet
from tradefleet.engine.hub import MarketDataHub
from tradefleet.services.backtest.data import find_series
from tradefleet.services.hyperopt.saved import apply_saved_overrides, load_saved_params
from tradefleet.strategies.loader import load_strategy

if TYPE_CHECKING:
    from fastapi import FastAPI

    from tradefleet.adapters.exchanges.ccxt import CcxtExchangeFactory
    from tradefleet.core.bus import EventBus
    from tradefleet.services.gateway import Gateway

log = logging.getLogger(__name__)

SIM_EXCHANGE = "simulated"
WARMUP_CANDLES = 1000


@dataclass
class Platform:
    """Everything a running TradeFleet process holds."""

    settings: Settings
    store: SqlTradingStore
    candles: CandleStore
    venues: dict[str, SimulatedVenue] = field(default_factory=dict)
    closers: list[Callable[[], None]] = field(default_factory=list)

    def close(self) -> None:
        for venue in self.venues.values():
            venue.close()
        for close in self.closers:
            close()
        self.store.close()


def build_platform(settings: Settings) -> Platform:
    """Create the data directory, migrate the database and open the stores."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    url = settings.database_url
    upgrade(url)
    store = SqlTradingStore.from_url(url)
    return Platform(settings=settings, store=store, candles=CandleStore(settings.candles_dir))


class _RoutedSource:
    """Candle source that reads each pair from the exchange folder that holds it."""

    def __init__(self, candles: CandleStore, routes: dict[str, str]) -> None:
        self.candles_store = candles
        self.routes = routes

    def candles(self, pair: str, timeframe: str, start_ms: int, end_ms: int) -> pd.DataFrame:
        return self.candles_store.source(self.routes[pair]).candles(pair, timeframe, start_ms, end_ms)


def ensure_market_data(platform: Platform, pairs: list[str], timeframe: str) -> dict[str, str]:
    """Return pair → exchange folder for replay; generate a labelled synthetic market where none is stored."""
    routes: dict[str, str] = {}
    listed = platform.candles.list_series()
    sim = platform.settings.simulated
    for pair in pairs:
        try:  # the rule backtests use: real candles before synthetic ones
            routes[pair] = find_series(platform.candles, pair, timeframe, series=listed).exchange
            continue
        except DataNotFoundError:
            pass
        tf_ms = timeframe_to_ms(timeframe)
        n = int(sim.synthetic_days * 86_400_000 // tf_ms)
        start = pd.Timestamp("2024-01-01", tz="UTC").value // 1_000_000
        seed = (sim.synthetic_seed * 1_000_003 + zlib.crc32(pair.encode())) % 2**31
        frame = generate_market(pair, timeframe, start_ms=start, candles=n, seed=seed)
        platform.candles.write(SIM_EXCHANGE, pair, timeframe, frame, synthetic=True)
        log.info("generated %d synthetic %s %s candles (seed %d)", n, pair, timeframe, seed)
        routes[pair] = SIM_EXCHANGE
    return routes


@contextmanager
def candles_lock(platform: Platform) -> Iterator[None]:
    """Hold the data directory's candle lock (processes generating the same synthetic market take turns)."""
    path = platform.settings.data_dir / "candles.lock"
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def load_bot_strategies(settings: Settings, bots: list[BotConfig]) -> dict[str, IStrategy]:
    """Load every bot's strategy with its parameters and check the bots; writes nothing.

    Run before anything is created, so a bad strategy or setting leaves the data directory untouched.
    """
    if not bots:
        raise ConfigError("no bots to run", hint="configure [paper] bots in tradefleet.toml")
    strategies: dict[str, IStrategy] = {}
    for config in bots:
        check_quotes(config)
        cls = load_strategy(config.strategy, search_dirs=[settings.strategies_dir])
        # Parameters tuned by `hyperopt --write` apply unless the bot sets its own.
        strategy = cls({**load_saved_params(cls, settings.strategies_dir), **config.strategy_params})
        apply_saved_overrides(strategy, settings.strategies_dir)
        strategies[config.bot_id] = strategy
    return strategies


def check_strategy_causal(strategy: IStrategy, frame: pd.DataFrame) -> None:
    """Refuse a strategy whose signals change when future candles are removed."""
    sample = frame.iloc[: min(len(frame), 1500)]
    findings = [f for f in check_lookahead(strategy, sample) if f.kind == "dynamic"]
    if findings:
        raise LookAheadError(f"strategy {type(strategy).__name__} looks ahead: {findings[0].describe()}")


def paper_start_ms(frames: list[pd.DataFrame], timeframe: str) -> int:
    """Return where a fresh paper session starts: after enough history for indicators."""
    starts = []
    for frame in frames:
        if frame.empty:
            continue
        idx = min(len(frame) - 1, WARMUP_CANDLES)
        starts.append(int(frame["date"].iloc[idx].value // 1_000_000))
    if not starts:
        raise DataNotFoundError(f"no {timeframe} candles to trade")
    return max(starts)


def build_paper_fleet(
    platform: Platform,
    bots: list[BotConfig],
    *,
    name: str,
    speed: float,
    sink: EventSink,
    clock: Clock | None = None,
    faults: FaultPlan | None = None,
    check_causal: bool = True,
    start_ms: int | None = None,
) -> Fleet:
    """Build a fleet of paper bots on a simulated venue replaying stored (or generated) candles."""
    strategies = load_bot_strategies(platform.settings, bots)
    store, sim = platform.store, platform.settings.simulated
    timeframes = sorted({b.timeframe for b in bots})
    routes_by_tf = {
        tf: ensure_market_data(platform, sorted({p for b in bots if b.timeframe == tf for p in b.pairs}), tf)
        for tf in timeframes
    }
    clock_key = f"fleet.{name}.clock_ms"
    saved = store.get_state(clock_key)
    probe = {tf: [platform.candles.read(routes[p], p, tf) for p in routes] for tf, routes in routes_by_tf.items()}
    if saved:
        start = int(saved)
    elif start_ms is not None:
        start = start_ms
    else:
        start = max(paper_start_ms(frames, tf) for tf, frames in probe.items())
    clock = clock or AcceleratedClock(start, speed)
    markets = {
        p: default_market(p, taker_fee=sim.taker_fee, maker_fee=sim.maker_fee)
        for routes in routes_by_tf.values()
        for p in routes
    }
    venue = SimulatedVenue(
        markets,
        clock=clock,
        ledger_path=platform.settings.data_dir / "sim" / f"{name}.sqlite",
        settings=SimSettings(slippage_bps=sim.slippage_bps, default_taker_fee=sim.taker_fee),
        faults=faults,
    )
    platform.venues[name] = venue
    fleet = Fleet(store, clock, clock_key=clock_key)
    hubs = {
        tf: MarketDataHub(_RoutedSource(platform.candles, routes), tf, start_ms=start, venue=venue.on_candle)
        for tf, routes in routes_by_tf.items()
    }
    # Orders placed while bots reconcile (a restored stop, say) are stamped with the market time the fleet
    # resumes from, so they meet every candle replayed after it.
    for config in bots:
        tf_ms = timeframe_to_ms(config.timeframe)
        for pair, last in store.load_progress(config.bot_id).items():
            resume = last + tf_ms
            venue.market_ms[pair] = min(venue.market_ms.get(pair, resume), resume)
    for config in bots:
        existing = store.get_bot(config.bot_id)
        if existing is not None and existing != config:
            log.info("bot %s: configuration changed; open positions are kept", config.bot_id)
        store.save_bot(config)
        strategy = strategies[config.bot_id]
        if check_causal:
            check_strategy_causal(strategy, probe[config.timeframe][0])
        account = venue.open_account(config.bot_id, {config.quote_currency: config.starting_balance})
        runtime = BotRuntime(config, strategy, account, store, clock, sink)
        fleet.add(hubs[config.timeframe], runtime)
    return fleet


def check_quotes(config: BotConfig) -> None:
    """Refuse a bot whose pairs are not all quoted in its account currency."""
    wrong = [p for p in config.pairs if p.split("/")[1] != config.quote_currency]
    if wrong:
        raise ConfigError(
            f"bot {config.bot_id}: pairs {', '.join(wrong)} are not quoted in {config.quote_currency}",
            hint="give each bot pairs with one quote currency (set its quote currency to match)",
        )


def build_bus(settings: Settings) -> EventBus:
    """Return the Redis Streams bus when ``REDIS_URL`` (redis.url) is set, else the in-process bus."""
    from tradefleet.adapters.bus import make_bus

    return make_bus(settings.redis.url)


def build_gateway(
    platform: Platform,
    bus: EventBus,
    *,
    gateway_id: str | None = None,
    capacity: int = 100,
    lease_ttl_s: float = 10.0,
    speed: float | None = None,
    printer: EventSink | None = None,
    exchanges: CcxtExchangeFactory | None = None,
) -> Gateway:
    """Build a gateway hosting paper and live bots over ``platform``'s database and ``bus``.

    Live bots decrypt their stored exchange keys with the data directory's ``fernet.key``: a gateway on
    another machine needs the API's copy of that file.
    """
    from tradefleet.adapters.storage.credentials import SqlCredentialStore
    from tradefleet.adapters.storage.db import make_engine
    from tradefleet.adapters.storage.leases import SqlBotLogs, SqlLeases
    from tradefleet.adapters.storage.owner_tables import SqlBotOwners
    from tradefleet.bootstrap.gateway import (
        GATEWAY_MARKET_KEY,
        GatewayRuntimeFactory,
        LiveRuntimeFactory,
        PaperRuntimeFactory,
        shared_paper_clock,
    )
    from tradefleet.services.auth import load_or_create_keys
    from tradefleet.services.bots import BotService
    from tradefleet.services.credentials import CredentialService
    from tradefleet.services.gateway import Gateway, GatewayConfig

    engine = make_engine(platform.settings.database_url)
    platform.closers.append(engine.dispose)
    leases = SqlLeases(engine)
    clock = shared_paper_clock(platform, leases, speed or platform.settings.paper.speed, lease_ttl_s)
    heartbeat_s = min(2.0, lease_ttl_s / 4)
    config = GatewayConfig(capacity=capacity, lease_ttl_s=lease_ttl_s, heartbeat_s=heartbeat_s)
    if gateway_id:
        config = dataclasses.replace(config, gateway_id=gateway_id)
    box = load_or_create_keys(platform.settings.data_dir).secret_box
    credentials = CredentialService(SqlCredentialStore(engine), box, BotService(platform.store, SqlBotOwners(engine)))
    factory = GatewayRuntimeFactory(
        PaperRuntimeFactory(platform, clock), LiveRuntimeFactory(platform, credentials, exchanges)
    )
    return Gateway(
        config,
        platform.store,
        leases,
        bus,
        factory,
        logs=SqlBotLogs(engine),
        printer=printer,
        market_key=GATEWAY_MARKET_KEY,
    )


def build_api(platform: Platform, bus: EventBus | None = None) -> FastAPI:
    """Build the management API over ``platform``: auth on its own engine, health checks, metrics.

    With ``bus``, bot commands (start, stop, forced orders) reach the gateways and their answers come back
    through the events feed. The app's lifespan disposes of the engine it opened; the platform stays the
    caller's to close. The auth service is ``app.state.services.auth`` (the caller runs ``ensure_admin``
    and prints its password).
    """
    from tradefleet.adapters.storage.db import make_engine
    from tradefleet.adapters.storage.leases import SqlBotLogs, SqlLeases
    from tradefleet.adapters.storage.owner_tables import SqlBotOwners
    from tradefleet.api import ApiServices, CallableCheck, DatabaseCheck, create_app
    from tradefleet.api.health import HealthCheck
    from tradefleet.engine.clock import WallClock
    from tradefleet.services.auth import AuthService, SqlAuthRepository, load_or_create_keys
    from tradefleet.services.bots import BotService
    from tradefleet.services.gateway import BusCommands, CommandReplies
    from tradefleet.services.gateway.metrics import live_exchange_health

    settings = platform.settings
    engine = make_engine(settings.database_url)
    keys = load_or_create_keys(settings.data_dir)
    auth = AuthService(
        SqlAuthRepository(engine),
        keys,
        WallClock(),
        inter_service_token=settings.integrations.inter_service_token,
    )
    leases = SqlLeases(engine)
    ttl_ms = 15_000

    def gateways() -> tuple[bool, str]:
        alive = leases.gateways(alive_within_ms=ttl_ms)
        if not alive:
            return False, "no gateway alive: bots cannot run"
        return True, ", ".join(f"{g.gateway_id} ({g.bots} bots)" for g in alive)

    checks: list[HealthCheck] = [
        DatabaseCheck(engine, name="storage"),
        CallableCheck("bus", (lambda: _bus_health(bus)), required=bus is not None),
        CallableCheck("gateways", gateways),
        CallableCheck("exchanges", lambda: live_exchange_health(platform.store, time.time_ns() // 1_000_000)),
    ]
    replies = CommandReplies()
    commands = BusCommands(bus, replies) if bus is not None else None
    from tradefleet.adapters.storage.audit import SqlAuditLog
    from tradefleet.adapters.storage.credentials import SqlCredentialStore
    from tradefleet.services.credentials import CredentialService

    services = ApiServices(auth=auth, store=platform.store, health_checks=checks, audit=SqlAuditLog(engine))
    closers: list[Callable[[], None]] = [engine.dispose]
    feed = None
    if bus is not None:  # live events for /ws and the gateways' answers to commands
        from tradefleet.services.events import EventsFeed

        feed = EventsFeed(bus)
        feed.add_listener(replies)
        feed.start()
        closers.insert(0, feed.stop)
    from tradefleet.services.gateway.metrics import PlatformCollector

    services.metrics.registry.register(PlatformCollector(engine))
    app = create_app(services, on_shutdown=closers)
    app.state.events_feed = feed
    bots = BotService(platform.store, SqlBotOwners(engine), commands=commands, logs=SqlBotLogs(engine), holders=leases)
    app.state.bot_service = bots
    app.state.credential_service = CredentialService(SqlCredentialStore(engine), keys.secret_box, bots)
    app.state.command_replies = replies
    from tradefleet.services.market import MarketDataService

    app.state.market_service = MarketDataService(platform.candles)
    return app


def _bus_health(bus: EventBus | None) -> tuple[bool, str] | None:
    if bus is None:
        return None
    from tradefleet.core.bus import EVENTS_STREAM

    kind = type(bus).__name__
    return True, f"{kind}: {bus.length(EVENTS_STREAM)} events retained"
