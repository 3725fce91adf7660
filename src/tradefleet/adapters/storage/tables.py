"""Database tables of the trading store, and how domain objects map to their rows.

Tables are created only by the Alembic migrations in ``migrations/versions``; this module is the
metadata those migrations must match (a test compares them). Times are integer epoch milliseconds and
amounts and prices are double precision floats, as in the domain.

Tables that need an insertion order (orders, fills, trades, events_outbox) carry a surrogate integer key;
their natural keys (client order id, ``(exchange, trade_id)``, event id) are unique constraints.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from typing import Any, cast

from sqlalchemy import JSON, BigInteger, Double, Index, Integer, MetaData, String, Table, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from tradefleet.core.orders import Order, OrderIntent, OrderSide, OrderStatus, OrderType
from tradefleet.core.trades import Trade

# Deterministic constraint names, identical on SQLite and PostgreSQL, so later migrations can name them.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# 64-bit surrogate keys on PostgreSQL; SQLite only auto-increments a column declared exactly INTEGER.
SurrogateKey = BigInteger().with_variant(Integer(), "sqlite")


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {
        int: BigInteger(),
        float: Double(),
        str: String(),
        dict[str, Any]: JSON(),
    }


class BotRow(Base):
    __tablename__ = "bots"

    bot_id: Mapped[str] = mapped_column(primary_key=True)
    config: Mapped[dict[str, Any]]
    status: Mapped[str]
    detail: Mapped[str]
    created_ms: Mapped[int]
    updated_ms: Mapped[int]


class BotProgressRow(Base):
    __tablename__ = "bot_progress"

    bot_id: Mapped[str] = mapped_column(primary_key=True)
    pair: Mapped[str] = mapped_column(primary_key=True)
    last_candle_ms: Mapped[int]


class OrderRow(Base):
    __tablename__ = "orders"
    __table_args__ = (Index(None, "bot_id", "status"),)

    id: Mapped[int] = mapped_column(SurrogateKey, primary_key=True, autoincrement=True)
    client_order_id: Mapped[str] = mapped_column(unique=True)
    bot_id: Mapped[str]
    pair: Mapped[str]
    side: Mapped[str]
    type: Mapped[str]
    intent: Mapped[str]
    amount: Mapped[float]
    price: Mapped[float | None]
    stop_price: Mapped[float | None]
    status: Mapped[str]
    exchange_order_id: Mapped[str | None]
    filled: Mapped[float]
    average: Mapped[float]
    fee: Mapped[float]
    reason: Mapped[str]
    trade_ref: Mapped[int | None]
    created_ms: Mapped[int]
    updated_ms: Mapped[int]


class FillRow(Base):
    __tablename__ = "fills"
    __table_args__ = (UniqueConstraint("exchange", "trade_id"),)

    id: Mapped[int] = mapped_column(SurrogateKey, primary_key=True, autoincrement=True)
    exchange: Mapped[str]
    trade_id: Mapped[str]
    client_order_id: Mapped[str] = mapped_column(index=True)
    bot_id: Mapped[str]
    price: Mapped[float]
    amount: Mapped[float]
    fee: Mapped[float]
    fee_currency: Mapped[str]
    ts_ms: Mapped[int]


class TradeRow(Base):
    __tablename__ = "trades"
    __table_args__ = (Index(None, "bot_id", "is_open"),)

    id: Mapped[int] = mapped_column(SurrogateKey, primary_key=True, autoincrement=True)
    bot_id: Mapped[str]
    pair: Mapped[str]
    is_open: Mapped[bool]
    open_ms: Mapped[int]
    open_rate: Mapped[float]
    amount: Mapped[float]
    fee_open: Mapped[float]
    stop_price: Mapped[float]
    initial_stop: Mapped[float]
    max_rate: Mapped[float]
    enter_tag: Mapped[str]
    close_ms: Mapped[int | None]
    close_rate: Mapped[float | None]
    fee_close: Mapped[float]
    exit_reason: Mapped[str]
    entry_order: Mapped[str]
    exit_order: Mapped[str | None]


class EquitySnapshotRow(Base):
    __tablename__ = "equity_snapshots"

    bot_id: Mapped[str] = mapped_column(primary_key=True)
    ts_ms: Mapped[int] = mapped_column(primary_key=True)
    cash: Mapped[float]
    equity: Mapped[float]
    realized: Mapped[float]
    unrealized: Mapped[float]
    fees_paid: Mapped[float]


class KillSwitchRow(Base):
    """Current level per scope, with who set it, why and when (``*`` is the whole fleet)."""

    __tablename__ = "kill_switch"

    scope: Mapped[str] = mapped_column(primary_key=True)
    level: Mapped[str]
    actor: Mapped[str]
    reason: Mapped[str]
    updated_ms: Mapped[int]


class OutboxRow(Base):
    """Events committed with the state change that caused them, waiting to be put on the bus."""

    __tablename__ = "events_outbox"
    __table_args__ = (Index(None, "published", "seq"),)

    seq: Mapped[int] = mapped_column(SurrogateKey, primary_key=True, autoincrement=True)
    event_id: Mapped[str] = mapped_column(unique=True)
    type: Mapped[str]
    bot_id: Mapped[str]
    payload: Mapped[dict[str, Any]]
    ts_ms: Mapped[int]
    published: Mapped[bool]
    trace_id: Mapped[str | None]  # of the request or command that caused the event, for the bus message


class ProcessedEventRow(Base):
    """Events a consumer already applied; written in the same transaction as the effect."""

    __tablename__ = "processed_events"

    consumer: Mapped[str] = mapped_column(primary_key=True)
    event_id: Mapped[str] = mapped_column(primary_key=True)
    processed_ms: Mapped[int]


class KvStateRow(Base):
    __tablename__ = "kv_state"

    key: Mapped[str] = mapped_column(primary_key=True)
    value: Mapped[str]


metadata = Base.metadata
bots = cast(Table, BotRow.__table__)
bot_progress = cast(Table, BotProgressRow.__table__)
orders = cast(Table, OrderRow.__table__)
fills = cast(Table, FillRow.__table__)
trades = cast(Table, TradeRow.__table__)
equity_snapshots = cast(Table, EquitySnapshotRow.__table__)
kill_switch = cast(Table, KillSwitchRow.__table__)
events_outbox = cast(Table, OutboxRow.__table__)
processed_events = cast(Table, ProcessedEventRow.__table__)
kv_state = cast(Table, KvStateRow.__table__)


# ---------------------------------------------------------------------- rows <-> domain objects
ORDER_FIELDS = (  # every column but the key; updated in full by update_order
    "bot_id", "pair", "side", "type", "intent", "amount", "price", "stop_price", "status",
    "exchange_order_id", "filled", "average", "fee", "reason", "trade_ref", "created_ms", "updated_ms",
)  # fmt: skip
TRADE_FIELDS = (
    "bot_id", "pair", "is_open", "open_ms", "open_rate", "amount", "fee_open", "stop_price", "initial_stop",
    "max_rate", "enter_tag", "close_ms", "close_rate", "fee_close", "exit_reason", "entry_order",
    "exit_order",
)  # fmt: skip
ORDER_COLUMNS = ("client_order_id", *ORDER_FIELDS)
ORDER_ENUMS: dict[str, type[enum.StrEnum]] = {
    "side": OrderSide, "type": OrderType, "intent": OrderIntent, "status": OrderStatus,
}  # fmt: skip


def order_row(order: Order) -> dict[str, Any]:
    row = {name: getattr(order, name) for name in ORDER_COLUMNS}
    for name, enum_type in ORDER_ENUMS.items():
        row[name] = enum_type(row[name]).value  # plain strings: drivers must not adapt enums their own way
    return row


def order_from_row(row: Any, fill_ids: set[str]) -> Order:
    values = {name: getattr(row, name) for name in ORDER_COLUMNS}
    for name, enum_type in ORDER_ENUMS.items():
        values[name] = enum_type(values[name])
    return Order(**values, fill_ids=fill_ids)


def orders_from_rows(rows: Iterable[Any]) -> list[Order]:
    """Fold rows of orders outer-joined with their fills into orders, keeping the row order.

    The fills give each order its fill ids and ``fee_base``, the fees the venue kept in the base asset.
    """
    found: dict[str, Order] = {}
    for row in rows:
        order = found.get(row.client_order_id)
        if order is None:
            order = found[row.client_order_id] = order_from_row(row, set())
        if row.trade_id is not None:
            order.fill_ids.add(row.trade_id)
            if row.fee_currency and row.fee_currency == order.pair.partition("/")[0]:
                order.fee_base += row.fill_fee
    return list(found.values())


def trade_row(trade: Trade) -> dict[str, Any]:
    return {name: getattr(trade, name) for name in TRADE_FIELDS}


def trade_from_row(row: Any) -> Trade:
    return Trade(id=row.id, **{name: getattr(row, name) for name in TRADE_FIELDS})
