"""Auth: users, refresh tokens (rotation families), API keys and service tokens.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-21
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen copies of the types this revision used: later changes to the table module must not rewrite history.
_KEY = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_INT = sa.BigInteger()
_STR = sa.String()


def upgrade() -> None:
    op.create_table(
        "users",
        sa.Column("id", _KEY, autoincrement=True, nullable=False),
        sa.Column("username", _STR, nullable=False),
        sa.Column("password_hash", _STR, nullable=False),
        sa.Column("role", _STR, nullable=False),
        sa.Column("created_ms", _INT, nullable=False),
        sa.Column("disabled", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_users"),
        sa.UniqueConstraint("username", name="uq_users_username"),
    )
    op.create_table(
        "refresh_tokens",
        sa.Column("jti", _STR, nullable=False),
        sa.Column("family_id", _STR, nullable=False),
        sa.Column("user_id", _INT, nullable=False),
        sa.Column("parent_jti", _STR, nullable=True),
        sa.Column("token_hash", _STR, nullable=False),
        sa.Column("issued_ms", _INT, nullable=False),
        sa.Column("expires_ms", _INT, nullable=False),
        sa.Column("used_ms", _INT, nullable=True),
        sa.Column("revoked_ms", _INT, nullable=True),
        sa.PrimaryKeyConstraint("jti", name="pk_refresh_tokens"),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name="fk_refresh_tokens_user_id_users", ondelete="CASCADE"),
    )
    op.create_index("ix_refresh_tokens_family_id", "refresh_tokens", ["family_id"])
    op.create_index("ix_refresh_tokens_user_id", "refresh_tokens", ["user_id"])
    op.create_table(
        "api_keys",
        sa.Column("id", _KEY, autoincrement=True, nullable=False),
        sa.Column("user_id", _INT, nullable=False),
        sa.Column("name", _STR, nullable=False),
        sa.Column("prefix", _STR, nullable=False),
        sa.Column("key_hash", _STR, nullable=False),
        sa.Column("created_ms", _INT, nullable=False),
        sa.Column("last_used_ms", _INT, nullable=True),
        sa.Column("revoked_ms", _INT, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_api_keys"),
        sa.UniqueConstraint("prefix", name="uq_api_keys_prefix"),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name="fk_api_keys_user_id_users", ondelete="CASCADE"),
    )
    op.create_index("ix_api_keys_user_id", "api_keys", ["user_id"])
    op.create_table(
        "service_tokens",
        sa.Column("id", _KEY, autoincrement=True, nullable=False),
        sa.Column("name", _STR, nullable=False),
        sa.Column("prefix", _STR, nullable=False),
        sa.Column("token_hash", _STR, nullable=False),
        sa.Column("created_ms", _INT, nullable=False),
        sa.Column("created_by", _INT, nullable=True),
        sa.Column("last_used_ms", _INT, nullable=True),
        sa.Column("revoked_ms", _INT, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_service_tokens"),
        sa.UniqueConstraint("name", name="uq_service_tokens_name"),
        sa.UniqueConstraint("prefix", name="uq_service_tokens_prefix"),
        sa.ForeignKeyConstraint(
            ["created_by"], ["users.id"], name="fk_service_tokens_created_by_users", ondelete="SET NULL"
        ),
    )


def downgrade() -> None:
    op.drop_table("service_tokens")
    op.drop_index("ix_api_keys_user_id", table_name="api_keys")
    op.drop_table("api_keys")
    op.drop_index("ix_refresh_tokens_user_id", table_name="refresh_tokens")
    op.drop_index("ix_refresh_tokens_family_id", table_name="refresh_tokens")
    op.drop_table("refresh_tokens")
    op.drop_table("users")
