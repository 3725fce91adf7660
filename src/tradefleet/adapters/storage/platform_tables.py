"""Tables of the scale-out platform: gateways and bot leases, bot logs, the audit log, exchange credentials.

They belong to the trading database's metadata (``tables.Base``), so the migrations and the schema-vs-
metadata check cover them; migration ``0005`` creates them. Times are epoch milliseconds. The repositories
over them live next to their services' adapters (``adapters.storage.leases``, ``adapters.storage.audit``,
``adapters.storage.credentials``).
"""

from __future__ import annotations

from typing import Any, cast

from sqlalchemy import Index, LargeBinary, Table
from sqlalchemy.orm import Mapped, mapped_column

from tradefleet.adapters.storage.tables import Base, SurrogateKey


class GatewayRow(Base):
    """A gateway process: who it is and when it last said it was alive."""

    __tablename__ = "gateways"

    gateway_id: Mapped[str] = mapped_column(primary_key=True)
    host: Mapped[str]
    pid: Mapped[int]
    started_ms: Mapped[int]
    heartbeat_ms: Mapped[int]
    capacity: Mapped[int]


class BotLeaseRow(Base):
    """Which gateway runs a bot, until when. ``epoch`` grows with every takeover (a fencing token)."""

    __tablename__ = "bot_leases"
    __table_args__ = (Index(None, "gateway_id"),)

    bot_id: Mapped[str] = mapped_column(primary_key=True)
    gateway_id: Mapped[str]
    epoch: Mapped[int]
    acquired_ms: Mapped[int]
    expires_ms: Mapped[int]


class BotLogRow(Base):
    """A log record a gateway wrote about one bot (bounded per bot by its writer)."""

    __tablename__ = "bot_logs"
    __table_args__ = (Index(None, "bot_id", "seq"),)

    seq: Mapped[int] = mapped_column(SurrogateKey, primary_key=True, autoincrement=True)
    bot_id: Mapped[str]
    ts_ms: Mapped[int]
    level: Mapped[str]
    logger: Mapped[str]
    message: Mapped[str]


class AuditRow(Base):
    """One state-changing action: who did what to which target, when, and how it ended."""

    __tablename__ = "audit_log"
    __table_args__ = (Index(None, "ts_ms"), Index(None, "actor"))

    seq: Mapped[int] = mapped_column(SurrogateKey, primary_key=True, autoincrement=True)
    ts_ms: Mapped[int]
    actor: Mapped[str]
    role: Mapped[str]
    action: Mapped[str]
    target: Mapped[str]
    status_code: Mapped[int]
    request_id: Mapped[str]
    details: Mapped[dict[str, Any]]


class ExchangeCredentialRow(Base):
    """A bot's exchange API key, encrypted at rest (``ciphertext``); never returned by any route."""

    __tablename__ = "exchange_credentials"

    bot_id: Mapped[str] = mapped_column(primary_key=True)
    exchange: Mapped[str]
    key_hint: Mapped[str]
    ciphertext: Mapped[bytes] = mapped_column(LargeBinary())
    updated_ms: Mapped[int]


gateways = cast(Table, GatewayRow.__table__)
bot_leases = cast(Table, BotLeaseRow.__table__)
bot_logs = cast(Table, BotLogRow.__table__)
audit_log = cast(Table, AuditRow.__table__)
exchange_credentials = cast(Table, ExchangeCredentialRow.__table__)
