"""Tables of users and their credentials: accounts, refresh tokens, API keys and service tokens.

They belong to the trading database's metadata (``tables.Base``), so the migrations and the
schema-vs-metadata check cover them; migration ``0003`` creates them. Only hashes of secrets are stored
(Argon2id for passwords, SHA-256 for random tokens). Times are epoch milliseconds.
"""

from __future__ import annotations

from typing import cast

from sqlalchemy import BigInteger, ForeignKey, Index, Table
from sqlalchemy.orm import Mapped, mapped_column

from tradefleet.adapters.storage.tables import Base, SurrogateKey

# Foreign keys name BIGINT explicitly: without a type they would copy SurrogateKey, INTEGER on SQLite.


class UserRow(Base):
    """A person who logs in; ``role`` is admin, trader or viewer."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(SurrogateKey, primary_key=True, autoincrement=True)
    username: Mapped[str] = mapped_column(unique=True)
    password_hash: Mapped[str]
    role: Mapped[str]
    created_ms: Mapped[int]
    disabled: Mapped[bool]


class RefreshTokenRow(Base):
    """One refresh token of a login session (``family_id``); rotation links each to its ``parent_jti``."""

    __tablename__ = "refresh_tokens"
    __table_args__ = (Index(None, "family_id"), Index(None, "user_id"))

    jti: Mapped[str] = mapped_column(primary_key=True)
    family_id: Mapped[str]
    user_id: Mapped[int] = mapped_column(BigInteger(), ForeignKey("users.id", ondelete="CASCADE"))
    parent_jti: Mapped[str | None]
    token_hash: Mapped[str]
    issued_ms: Mapped[int]
    expires_ms: Mapped[int]
    used_ms: Mapped[int | None]
    revoked_ms: Mapped[int | None]


class ApiKeyRow(Base):
    """A long-lived key a user made for scripts; acts with the user's current role."""

    __tablename__ = "api_keys"
    __table_args__ = (Index(None, "user_id"),)

    id: Mapped[int] = mapped_column(SurrogateKey, primary_key=True, autoincrement=True)
    user_id: Mapped[int] = mapped_column(BigInteger(), ForeignKey("users.id", ondelete="CASCADE"))
    name: Mapped[str]
    prefix: Mapped[str] = mapped_column(unique=True)
    key_hash: Mapped[str]
    created_ms: Mapped[int]
    last_used_ms: Mapped[int | None]
    revoked_ms: Mapped[int | None]


class ServiceTokenRow(Base):
    """A token of a machine client (another TradeFleet role, n8n, a Freqtrade bridge): role ``service``."""

    __tablename__ = "service_tokens"

    id: Mapped[int] = mapped_column(SurrogateKey, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(unique=True)
    prefix: Mapped[str] = mapped_column(unique=True)
    token_hash: Mapped[str]
    created_ms: Mapped[int]
    created_by: Mapped[int | None] = mapped_column(BigInteger(), ForeignKey("users.id", ondelete="SET NULL"))
    last_used_ms: Mapped[int | None]
    revoked_ms: Mapped[int | None]


users = cast(Table, UserRow.__table__)
refresh_tokens = cast(Table, RefreshTokenRow.__table__)
api_keys = cast(Table, ApiKeyRow.__table__)
service_tokens = cast(Table, ServiceTokenRow.__table__)
