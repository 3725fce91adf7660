"""Outbox trace ids: the trace id of the request or command that caused an event, carried onto the bus.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-21
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen copies of the types this revision used: later changes to the table module must not rewrite history.
_STR = sa.String()


def upgrade() -> None:
    # Nullable and without a default: an ALTER TABLE ... ADD COLUMN on both backends, no table copy.
    op.add_column("events_outbox", sa.Column("trace_id", _STR, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("events_outbox") as batch:  # SQLite: batch mode copies the table
        batch.drop_column("trace_id")
