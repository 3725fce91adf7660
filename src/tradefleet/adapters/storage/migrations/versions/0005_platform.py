"""Platform tables: gateways and bot leases, bot logs, the audit log, encrypted exchange credentials.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-21
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen copies of the types this revision used: later changes to the table module must not rewrite history.
_INT = sa.BigInteger()
_KEY = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_STR = sa.String()


def upgrade() -> None:
    op.create_table(
        "gateways",
        sa.Column("gateway_id", _STR, nullable=False),
        sa.Column("host", _STR, nullable=False),
        sa.Column("pid", _INT, nullable=False),
        sa.Column("started_ms", _INT, nullable=False),
        sa.Column("heartbeat_ms", _INT, nullable=False),
        sa.Column("capacity", _INT, nullable=False),
        sa.PrimaryKeyConstraint("gateway_id", name="pk_gateways"),
    )
    op.create_table(
        "bot_leases",
        sa.Column("bot_id", _STR, nullable=False),
        sa.Column("gateway_id", _STR, nullable=False),
        sa.Column("epoch", _INT, nullable=False),
        sa.Column("acquired_ms", _INT, nullable=False),
        sa.Column("expires_ms", _INT, nullable=False),
        sa.PrimaryKeyConstraint("bot_id", name="pk_bot_leases"),
    )
    op.create_index("ix_bot_leases_gateway_id", "bot_leases", ["gateway_id"])
    op.create_table(
        "bot_logs",
        sa.Column("seq", _KEY, autoincrement=True, nullable=False),
        sa.Column("bot_id", _STR, nullable=False),
        sa.Column("ts_ms", _INT, nullable=False),
        sa.Column("level", _STR, nullable=False),
        sa.Column("logger", _STR, nullable=False),
        sa.Column("message", _STR, nullable=False),
        sa.PrimaryKeyConstraint("seq", name="pk_bot_logs"),
    )
    op.create_index("ix_bot_logs_bot_id_seq", "bot_logs", ["bot_id", "seq"])
    op.create_table(
        "audit_log",
        sa.Column("seq", _KEY, autoincrement=True, nullable=False),
        sa.Column("ts_ms", _INT, nullable=False),
        sa.Column("actor", _STR, nullable=False),
        sa.Column("role", _STR, nullable=False),
        sa.Column("action", _STR, nullable=False),
        sa.Column("target", _STR, nullable=False),
        sa.Column("status_code", _INT, nullable=False),
        sa.Column("request_id", _STR, nullable=False),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("seq", name="pk_audit_log"),
    )
    op.create_index("ix_audit_log_ts_ms", "audit_log", ["ts_ms"])
    op.create_index("ix_audit_log_actor", "audit_log", ["actor"])
    op.create_table(
        "exchange_credentials",
        sa.Column("bot_id", _STR, nullable=False),
        sa.Column("exchange", _STR, nullable=False),
        sa.Column("key_hint", _STR, nullable=False),
        sa.Column("ciphertext", sa.LargeBinary(), nullable=False),
        sa.Column("updated_ms", _INT, nullable=False),
        sa.PrimaryKeyConstraint("bot_id", name="pk_exchange_credentials"),
    )


def downgrade() -> None:
    op.drop_table("exchange_credentials")
    op.drop_index("ix_audit_log_actor", table_name="audit_log")
    op.drop_index("ix_audit_log_ts_ms", table_name="audit_log")
    op.drop_table("audit_log")
    op.drop_index("ix_bot_logs_bot_id_seq", table_name="bot_logs")
    op.drop_table("bot_logs")
    op.drop_index("ix_bot_leases_gateway_id", table_name="bot_leases")
    op.drop_table("bot_leases")
    op.drop_table("gateways")
