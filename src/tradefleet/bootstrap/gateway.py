"""Composition of gateways: how a gateway builds the bots it hosts, paper or live, and their market clocks.

* **Paper** bots trade on the simulated exchange, each with its own venue ledger, over stored (or generated)
  candles replayed on one market clock that every gateway shares.
* **Live** bots trade on a real venue through ccxt with the bot's stored credentials (or the account's from
  the configuration), on the wall clock, with candles polled from the venue as they close.
"""

from __future__ import annotations

import json
import logging
import time
from typing import TYPE_CHECKING, Protocol

import pandas as pd

from tradefleet.adapters.exchanges.ccxt import CcxtExchangeFactory
from tradefleet.adapters.exchanges.ccxt_candles import CcxtCandleSource
from tradefleet.adapters.exchanges.simulated import SimSettings, SimulatedVenue, default_market
from tradefleet.bootstrap import (
    Platform,
    candles_lock,
    check_strategy_causal,
    ensure_market_data,
    load_bot_strategies,
    paper_start_ms,
)
from tradefleet.core.bots import BotConfig
from tradefleet.core.candles import timeframe_to_ms
from tradefleet.core.errors import ConfigError
from tradefleet.core.ports import Clock, EventSink
from tradefleet.engine.bot import BotRuntime
from tradefleet.engine.clock import AnchoredClock, WallClock
from tradefleet.services.gateway import Hosted, MarketFeed
from tradefleet.services.gateway.service import VenueDriver

if TYPE_CHECKING:
    from tradefleet.adapters.storage.leases import SqlLeases
    from tradefleet.services.credentials import ExchangeCredentials

log = logging.getLogger(__name__)

PAPER_MARKET = "paper"
GATEWAY_CLOCK_KEY = "gateway.clock"
GATEWAY_MARKET_KEY = "gateway.market_ms"
DEFAULT_MARKET_START = "2024-01-08"
LIVE_CAUSALITY_CANDLES = 1500


class _PairSource:
    """Candle source reading each (pair, timeframe) from the exchange folder routed for it."""

    def __init__(self, platform: Platform) -> None:
        self.candles_store = platform.candles
        self.routes: dict[tuple[str, str], str] = {}

    def candles(self, pair: str, timeframe: str, start_ms: int, end_ms: int) -> pd.DataFrame:
        exchange = self.routes[(pair, timeframe)]
        return self.candles_store.source(exchange).candles(pair, timeframe, start_ms, end_ms)


class PaperRuntimeFactory:
    """Builds paper bots for a gateway: strategy, a simulated account with its own ledger, the runtime.

    Each bot has its own venue ledger (``sim/bots/<bot_id>.sqlite``), so a bot taken over by another gateway
    finds its exchange account, orders and stops where the last gateway left them.
    """

    def __init__(self, platform: Platform, clock: Clock, *, check_causal: bool = True) -> None:
        self.platform = platform
        self.market = MarketFeed(PAPER_MARKET, _PairSource(platform), clock, static=True)
        self.check_causal = check_causal

    def build(self, config: BotConfig, sink: EventSink) -> Hosted:
        settings, store = self.platform.settings, self.platform.store
        source = self.market.source
        assert isinstance(source, _PairSource)
        strategy = load_bot_strategies(settings, [config])[config.bot_id]
        with candles_lock(self.platform):
            routes = ensure_market_data(self.platform, list(config.pairs), config.timeframe)
        for pair, exchange in routes.items():
            source.routes[(pair, config.timeframe)] = exchange
        if self.check_causal:
            first = config.pairs[0]
            check_strategy_causal(strategy, self.platform.candles.read(routes[first], first, config.timeframe))
        sim = settings.simulated
        markets = {p: default_market(p, taker_fee=sim.taker_fee, maker_fee=sim.maker_fee) for p in config.pairs}
        venue = SimulatedVenue(
            markets,
            clock=self.market.clock,
            ledger_path=settings.data_dir / "sim" / "bots" / f"{config.bot_id}.sqlite",
            settings=SimSettings(slippage_bps=sim.slippage_bps, default_taker_fee=sim.taker_fee),
        )
        try:
            tf_ms = timeframe_to_ms(config.timeframe)
            for pair, last in store.load_progress(config.bot_id).items():
                venue.market_ms[pair] = last + tf_ms  # orders placed while reconciling meet the replayed candles
            account = venue.open_account(config.bot_id, {config.quote_currency: config.starting_balance})
            runtime = BotRuntime(config, strategy, account, store, self.market.clock, sink, sink_delivers=False)
        except BaseException:
            venue.close()
            raise
        drivers: dict[str, VenueDriver] = {p: venue.on_candle for p in config.pairs}
        return Hosted(runtime=runtime, market=self.market, drivers=drivers, close=venue.close)


class CredentialSource(Protocol):
    """Decrypts a bot's stored exchange credentials (``services.credentials.CredentialService``)."""

    def load_credentials(self, bot_id: str) -> ExchangeCredentials | None: ...


class LiveRuntimeFactory:
    """Builds live bots: a ccxt account with the bot's credentials, candles polled from the venue, wall time.

    ``config.exchange`` names an account of ``[exchange.accounts]`` (its ``exchange``, ``sandbox`` and
    ``api_url`` apply) or, with no such account, a ccxt exchange id on ``exchange.sandbox``. The keys are the
    bot's own stored credentials, else the account's keys from the configuration.
    """

    def __init__(
        self,
        platform: Platform,
        credentials: CredentialSource,
        exchanges: CcxtExchangeFactory | None = None,
        *,
        check_causal: bool = True,
    ) -> None:
        self.platform = platform
        self.credentials = credentials
        self.exchanges = exchanges or CcxtExchangeFactory()
        self.check_causal = check_causal
        self.clock = WallClock()
        self._markets: dict[str, MarketFeed] = {}

    def build(self, config: BotConfig, sink: EventSink) -> Hosted:
        settings = self.platform.settings
        if config.exchange == "simulated":
            raise ConfigError(
                f"bot {config.bot_id} is a live bot on the simulated exchange",
                hint="give a live bot a real exchange (a ccxt id or an [exchange.accounts] name), or use mode paper",
            )
        account = settings.exchange.accounts.get(config.exchange)
        exchange_id = account.exchange if account is not None else config.exchange
        sandbox = settings.exchange.sandbox if account is None or account.sandbox is None else account.sandbox
        api_url = account.api_url if account is not None else None
        stored = self.credentials.load_credentials(config.bot_id)
        if stored is not None:
            if stored.exchange != exchange_id:
                raise ConfigError(
                    f"bot {config.bot_id}: its stored credentials are for {stored.exchange}, "
                    f"it trades on {exchange_id}",
                    hint="store the bot's keys for its exchange (PUT /api/v1/bots/{bot_id}/credentials)",
                )
            options = stored.ccxt_options()
        elif account is not None and account.api_key is not None and account.secret is not None:
            options = {"apiKey": account.api_key.get_secret_value(), "secret": account.secret.get_secret_value()}
            if account.password is not None:
                options["password"] = account.password.get_secret_value()
        else:
            raise ConfigError(
                f"live bot {config.bot_id} has no exchange credentials",
                hint="store its keys (PUT /api/v1/bots/{bot_id}/credentials) or configure [exchange.accounts]",
            )
        strategy = load_bot_strategies(settings, [config])[config.bot_id]
        market = self._market(exchange_id, sandbox, api_url)
        if self.check_causal:
            first, tf_ms = config.pairs[0], timeframe_to_ms(config.timeframe)
            now = self.clock.now_ms()
            recent = market.source.candles(first, config.timeframe, now - LIVE_CAUSALITY_CANDLES * tf_ms, now)
            check_strategy_causal(strategy, recent)
        exchange = self.exchanges.get(
            exchange_id,
            options["apiKey"],
            secret=options["secret"],
            password=options.get("password"),
            sandbox=sandbox,
            api_url=api_url,
        )
        runtime = BotRuntime(config, strategy, exchange, self.platform.store, self.clock, sink, sink_delivers=False)
        log.info("live bot %s on %s%s", config.bot_id, exchange_id, " (sandbox)" if sandbox else "")
        return Hosted(runtime=runtime, market=market)

    def _market(self, exchange_id: str, sandbox: bool, api_url: str | None) -> MarketFeed:
        """Return the shared live market of a venue (public client: candles need no keys)."""
        name = f"{exchange_id}{'-sandbox' if sandbox else ''}"
        if api_url:
            name += f"@{api_url}"
        market = self._markets.get(name)
        if market is None:
            public = self.exchanges.get(exchange_id, None, sandbox=sandbox, api_url=api_url)
            market = self._markets[name] = MarketFeed(name, CcxtCandleSource(public), self.clock, static=False)
        return market


class GatewayRuntimeFactory:
    """Builds each bot with the factory of its mode."""

    def __init__(self, paper: PaperRuntimeFactory, live: LiveRuntimeFactory) -> None:
        self.paper = paper
        self.live = live

    def build(self, config: BotConfig, sink: EventSink) -> Hosted:
        return (self.live if config.mode == "live" else self.paper).build(config, sink)


def shared_paper_clock(platform: Platform, leases: SqlLeases, speed: float, ttl_s: float) -> AnchoredClock:
    """Return the market clock every gateway shares (adopted from a live gateway, else anchored now).

    With no gateway alive the market resumes where the gateways last left it, so a restart loses no candle.
    """
    store = platform.store
    saved = store.get_state(GATEWAY_CLOCK_KEY)
    if saved and leases.gateways(alive_within_ms=int(ttl_s * 1000)):
        anchor = json.loads(saved)
        return AnchoredClock(int(anchor["wall_origin_ms"]), int(anchor["market_origin_ms"]), float(anchor["speed"]))
    market = store.get_state(GATEWAY_MARKET_KEY)
    start = int(market) if market else _first_market_ms(platform)
    clock = AnchoredClock(time.time_ns() // 1_000_000, start, speed)
    anchor = {"wall_origin_ms": clock.wall_origin_ms, "market_origin_ms": start, "speed": speed}
    store.set_state(GATEWAY_CLOCK_KEY, json.dumps(anchor))
    return clock


def _first_market_ms(platform: Platform) -> int:
    """Where a fresh platform's market starts: after enough history for the stored paper bots' indicators."""
    bots = [b for b in platform.store.list_bots() if b.mode == "paper"]
    starts = []
    for tf in sorted({b.timeframe for b in bots}):
        with candles_lock(platform):
            routes = ensure_market_data(platform, sorted({p for b in bots if b.timeframe == tf for p in b.pairs}), tf)
        starts.append(paper_start_ms([platform.candles.read(ex, p, tf) for p, ex in routes.items()], tf))
    return max(starts) if starts else int(pd.Timestamp(DEFAULT_MARKET_START, tz="UTC").value // 1_000_000)
