"""Initial schema: bots, orders, fills, trades, equity, kill switch, outbox, idempotency, key/value.

Revision ID: 0001
Revises:
Create Date: 2026-11-21
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen copies of the types this revision used: later changes to tables.py must not rewrite history.
_KEY = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_MS = sa.BigInteger()
_FLOAT: sa.Double[float] = sa.Double()
_STR = sa.String()


def _surrogate_key(name: str) -> sa.Column[int]:
    return sa.Column(name, _KEY, autoincrement=True, nullable=False)


def _req(name: str, type_: sa.types.TypeEngine[Any]) -> sa.Column[Any]:
    return sa.Column(name, type_, nullable=False)


def _opt(name: str, type_: sa.types.TypeEngine[Any]) -> sa.Column[Any]:
    return sa.Column(name, type_, nullable=True)


def upgrade() -> None:
    op.create_table(
        "bots",
        _req("bot_id", _STR),
        _req("config", sa.JSON()),
        _req("status", _STR),
        _req("detail", _STR),
        _req("created_ms", _MS),
        _req("updated_ms", _MS),
        sa.PrimaryKeyConstraint("bot_id", name="pk_bots"),
    )
    op.create_table(
        "bot_progress",
        _req("bot_id", _STR),
        _req("pair", _STR),
        _req("last_candle_ms", _MS),
        sa.PrimaryKeyConstraint("bot_id", "pair", name="pk_bot_progress"),
    )
    op.create_table(
        "orders",
        _surrogate_key("id"),
        _req("client_order_id", _STR),
        _req("bot_id", _STR),
        _req("pair", _STR),
        _req("side", _STR),
        _req("type", _STR),
        _req("intent", _STR),
        _req("amount", _FLOAT),
        _opt("price", _FLOAT),
        _opt("stop_price", _FLOAT),
        _req("status", _STR),
        _opt("exchange_order_id", _STR),
        _req("filled", _FLOAT),
        _req("average", _FLOAT),
        _req("fee", _FLOAT),
        _req("reason", _STR),
        _opt("trade_ref", _MS),
        _req("created_ms", _MS),
        _req("updated_ms", _MS),
        sa.PrimaryKeyConstraint("id", name="pk_orders"),
        sa.UniqueConstraint("client_order_id", name="uq_orders_client_order_id"),
    )
    op.create_index("ix_orders_bot_id_status", "orders", ["bot_id", "status"])
    op.create_table(
        "fills",
        _surrogate_key("id"),
        _req("exchange", _STR),
        _req("trade_id", _STR),
        _req("client_order_id", _STR),
        _req("bot_id", _STR),
        _req("price", _FLOAT),
        _req("amount", _FLOAT),
        _req("fee", _FLOAT),
        _req("fee_currency", _STR),
        _req("ts_ms", _MS),
        sa.PrimaryKeyConstraint("id", name="pk_fills"),
        sa.UniqueConstraint("exchange", "trade_id", name="uq_fills_exchange_trade_id"),
    )
    op.create_index("ix_fills_client_order_id", "fills", ["client_order_id"])
    op.create_table(
        "trades",
        _surrogate_key("id"),
        _req("bot_id", _STR),
        _req("pair", _STR),
        _req("is_open", sa.Boolean()),
        _req("open_ms", _MS),
        _req("open_rate", _FLOAT),
        _req("amount", _FLOAT),
        _req("fee_open", _FLOAT),
        _req("stop_price", _FLOAT),
        _req("initial_stop", _FLOAT),
        _req("max_rate", _FLOAT),
        _req("enter_tag", _STR),
        _opt("close_ms", _MS),
        _opt("close_rate", _FLOAT),
        _req("fee_close", _FLOAT),
        _req("exit_reason", _STR),
        _req("entry_order", _STR),
        _opt("exit_order", _STR),
        sa.PrimaryKeyConstraint("id", name="pk_trades"),
    )
    op.create_index("ix_trades_bot_id_is_open", "trades", ["bot_id", "is_open"])
    op.create_table(
        "equity_snapshots",
        _req("bot_id", _STR),
        _req("ts_ms", _MS),
        _req("cash", _FLOAT),
        _req("equity", _FLOAT),
        _req("realized", _FLOAT),
        _req("unrealized", _FLOAT),
        _req("fees_paid", _FLOAT),
        sa.PrimaryKeyConstraint("bot_id", "ts_ms", name="pk_equity_snapshots"),
    )
    op.create_table(
        "kill_switch",
        _req("scope", _STR),
        _req("level", _STR),
        _req("actor", _STR),
        _req("reason", _STR),
        _req("updated_ms", _MS),
        sa.PrimaryKeyConstraint("scope", name="pk_kill_switch"),
    )
    op.create_table(
        "events_outbox",
        _surrogate_key("seq"),
        _req("event_id", _STR),
        _req("type", _STR),
        _req("bot_id", _STR),
        _req("payload", sa.JSON()),
        _req("ts_ms", _MS),
        _req("published", sa.Boolean()),
        sa.PrimaryKeyConstraint("seq", name="pk_events_outbox"),
        sa.UniqueConstraint("event_id", name="uq_events_outbox_event_id"),
    )
    op.create_index("ix_events_outbox_published_seq", "events_outbox", ["published", "seq"])
    op.create_table(
        "processed_events",
        _req("consumer", _STR),
        _req("event_id", _STR),
        _req("processed_ms", _MS),
        sa.PrimaryKeyConstraint("consumer", "event_id", name="pk_processed_events"),
    )
    op.create_table(
        "kv_state",
        _req("key", _STR),
        _req("value", _STR),
        sa.PrimaryKeyConstraint("key", name="pk_kv_state"),
    )


def downgrade() -> None:
    for table in (
        "kv_state",
        "processed_events",
        "events_outbox",
        "kill_switch",
        "equity_snapshots",
        "trades",
        "fills",
        "orders",
        "bot_progress",
        "bots",
    ):
        op.drop_table(table)
