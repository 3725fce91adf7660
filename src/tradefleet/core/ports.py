"""Ports: the interfaces adapters implement. Small Protocols, nothing else."""

from __future__ import annotations

from collections.abc import Collection
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from tradefleet.core.orders import Fill, Order, OrderSide, OrderStatus, OrderType

if TYPE_CHECKING:
    import pandas as pd

    from tradefleet.core.bots import BotConfig, BotStatus
    from tradefleet.core.events import DomainEvent
    from tradefleet.core.risk import KillSwitchLevel
    from tradefleet.core.trades import Trade


@dataclass(frozen=True, slots=True)
class Market:
    """Trading rules of one symbol on one venue."""

    symbol: str
    base: str
    quote: str
    price_precision: float  # tick size
    amount_precision: float  # step size
    min_notional: float = 0.0
    min_amount: float = 0.0
    taker_fee: float = 0.001
    maker_fee: float = 0.001


@dataclass(frozen=True, slots=True)
class ExchangeCapabilities:
    """Declarative flags instead of ``if venue == ...``."""

    stop_orders: bool = True
    client_order_id: bool = True
    fetch_order_by_client_id: bool = True
    shorting: bool = False
    push_order_updates: bool = False  # the adapter has ``subscribe(listener)`` for order updates
    # How long after it was sent a placement may still reach the venue (a request in flight, a stalled
    # gateway): until then an order the venue does not know stays UNKNOWN instead of "never accepted".
    placement_settle_s: float = 0.0


@dataclass(frozen=True, slots=True)
class OrderRequest:
    """What the engine asks a venue to do. ``client_order_id`` makes the request idempotent."""

    client_order_id: str
    symbol: str
    side: OrderSide
    type: OrderType
    amount: float
    price: float | None = None
    stop_price: float | None = None


@dataclass(frozen=True, slots=True)
class ExchangeOrder:
    """The venue's view of an order."""

    client_order_id: str
    exchange_order_id: str
    symbol: str
    side: OrderSide
    type: OrderType
    status: OrderStatus
    amount: float
    filled: float
    average: float
    fee: float
    timestamp_ms: int
    price: float | None = None
    stop_price: float | None = None
    fills: tuple[Fill, ...] = field(default_factory=tuple)


@dataclass(frozen=True, slots=True)
class Balance:
    currency: str
    free: float
    used: float

    @property
    def total(self) -> float:
        return self.free + self.used


@runtime_checkable
class Clock(Protocol):
    """Source of time: accelerated wall clock for paper, simulated clock for tests and backtests."""

    def now_ms(self) -> int: ...


@runtime_checkable
class ExchangePort(Protocol):
    """One account on one venue. Implementations: simulated exchange, ccxt.

    ``create_order`` raises :class:`~tradefleet.core.errors.AmbiguousOrderError` when the outcome is unknown;
    callers resolve it with :meth:`fetch_order` by client order id and never resend blindly.
    """

    name: str
    capabilities: ExchangeCapabilities

    def load_markets(self) -> dict[str, Market]: ...

    def fetch_balance(self) -> dict[str, Balance]: ...

    def create_order(self, request: OrderRequest) -> ExchangeOrder: ...

    def cancel_order(self, symbol: str, client_order_id: str) -> ExchangeOrder: ...

    def fetch_order(self, symbol: str, client_order_id: str) -> ExchangeOrder | None: ...

    def fetch_open_orders(self, symbol: str | None = None) -> list[ExchangeOrder]: ...


class CandleSource(Protocol):
    """Closed candles of one pair and timeframe, by open-time range ``[start_ms, end_ms)``."""

    def candles(self, pair: str, timeframe: str, start_ms: int, end_ms: int) -> pd.DataFrame: ...


class EventSink(Protocol):
    """Where domain events go: the event bus, a printer, a list in tests."""

    def publish(self, event: DomainEvent) -> None: ...


class TradingStore(Protocol):
    """Durable state of bots: the source of truth. Every method commits unless inside :meth:`transaction`.

    ``add_order`` is the commit-before-act point: it returns False (and writes nothing) when the client order
    id already exists, which makes replays after a crash idempotent. ``transaction(write=False)`` groups reads
    into one transaction that takes no write lock.
    """

    def transaction(self, *, write: bool = True) -> AbstractContextManager[None]: ...

    # bots
    def save_bot(self, config: BotConfig) -> None: ...
    def get_bot(self, bot_id: str) -> BotConfig | None: ...
    def list_bots(self) -> list[BotConfig]: ...
    def delete_bot(self, bot_id: str) -> None: ...
    def set_bot_status(self, bot_id: str, status: BotStatus, detail: str = "") -> None: ...
    def get_bot_status(self, bot_id: str) -> BotStatus: ...
    def save_progress(self, bot_id: str, pair: str, last_candle_ms: int) -> None: ...
    def load_progress(self, bot_id: str) -> dict[str, int]: ...

    # orders and fills
    def add_order(self, order: Order) -> bool: ...
    def fence(self, bot_id: str, holder: str, epoch: int) -> None:
        """Refuse the bot's trading writes (LeaseLostError) unless ``holder`` holds its lease at ``epoch``."""

    def unfence(self, bot_id: str, holder: str) -> None: ...
    def check_fence(self, bot_id: str) -> None:
        """Raise LeaseLostError if the bot is fenced and its lease is lost (before acting on the venue)."""

    def update_order(self, order: Order) -> None: ...
    def get_order(self, client_order_id: str) -> Order | None: ...
    def live_orders(self, bot_id: str) -> list[Order]: ...
    def list_orders(self, bot_id: str) -> list[Order]: ...
    def add_fill(self, exchange: str, bot_id: str, fill: Fill) -> bool: ...

    # trades
    def add_trade(self, trade: Trade) -> int: ...
    def update_trade(self, trade: Trade) -> None: ...
    def open_trades(self, bot_id: str) -> list[Trade]: ...
    def closed_trades(self, bot_id: str, limit: int | None = None) -> list[Trade]: ...

    # balances and equity
    def add_equity_snapshots(self, rows: list[EquitySnapshot]) -> None: ...
    def equity_history(self, bot_id: str, limit: int | None = None) -> list[EquitySnapshot]: ...

    # kill switch (scope "*" is the whole fleet)
    def get_kill_switch(self, scope: str) -> KillSwitchLevel: ...
    def set_kill_switch(self, scope: str, level: KillSwitchLevel, actor: str, reason: str) -> None: ...

    # events outbox and idempotent consumers
    def add_events(self, events: list[DomainEvent]) -> None: ...
    def pending_events(self, limit: int = 100, bot_ids: Collection[str] | None = None) -> list[PendingEvent]: ...
    def mark_published(self, event_ids: list[str]) -> None: ...
    def mark_processed(self, consumer: str, event_id: str) -> bool: ...

    # key/value for small runtime state (paper clock position, ...)
    def get_state(self, key: str) -> str | None: ...
    def set_state(self, key: str, value: str) -> None: ...


@dataclass(frozen=True, slots=True)
class EquitySnapshot:
    bot_id: str
    ts_ms: int
    cash: float
    equity: float
    realized: float
    unrealized: float
    fees_paid: float


@dataclass(frozen=True, slots=True)
class PendingEvent:
    """An outbox event not yet on the bus: ``DomainEvent.to_dict()`` and the trace id bound when it was added."""

    payload: dict[str, Any]
    trace_id: str | None = None
