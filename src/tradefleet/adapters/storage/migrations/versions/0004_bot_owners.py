"""Bot owners: which user each bot created through the API belongs to.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-21
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen copies of the types this revision used: later changes to the table module must not rewrite history.
_INT = sa.BigInteger()
_STR = sa.String()


def upgrade() -> None:
    op.create_table(
        "bot_owners",
        sa.Column("bot_id", _STR, nullable=False),
        sa.Column("user_id", _INT, nullable=False),
        sa.Column("created_ms", _INT, nullable=False),
        sa.PrimaryKeyConstraint("bot_id", name="pk_bot_owners"),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name="fk_bot_owners_user_id_users", ondelete="CASCADE"),
    )
    op.create_index("ix_bot_owners_user_id", "bot_owners", ["user_id"])


def downgrade() -> None:
    op.drop_index("ix_bot_owners_user_id", table_name="bot_owners")
    op.drop_table("bot_owners")
