"""Who owns which bot: the ``bot_owners`` table and :class:`SqlBotOwners`, the small repository over it.

The table belongs to the trading database's metadata (``tables.Base``), so the migrations and the
schema-vs-metadata check cover it; migration ``0004`` creates it. A bot without a row (one defined in
``tradefleet.toml``, say) belongs to nobody: only admins see it. Times are epoch milliseconds.
"""

from __future__ import annotations

import time
from typing import cast

from sqlalchemy import BigInteger, Engine, ForeignKey, Index, Table, bindparam, delete, insert, select
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Mapped, mapped_column

from tradefleet.adapters.storage.db import read_transaction, storage_error
from tradefleet.adapters.storage.tables import Base


class BotOwnerRow(Base):
    """The user a bot belongs to; deleting the user deletes the row (the bot is then the admins')."""

    __tablename__ = "bot_owners"
    __table_args__ = (Index(None, "user_id"),)

    bot_id: Mapped[str] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(BigInteger(), ForeignKey("users.id", ondelete="CASCADE"))
    created_ms: Mapped[int]


bot_owners = cast(Table, BotOwnerRow.__table__)
_OWNER_OF = select(bot_owners.c.user_id).where(bot_owners.c.bot_id == bindparam("bot_id"))  # built once: a hot read


class SqlBotOwners:
    """Ownership of bots in the trading database; each method is its own transaction."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def owner_of(self, bot_id: str) -> int | None:
        """Return the id of the user owning ``bot_id``, or None."""
        with read_transaction(self._engine, "reading a bot owner") as conn:
            found = conn.execute(_OWNER_OF, {"bot_id": bot_id}).scalar()
        return None if found is None else int(found)

    def owners(self) -> dict[str, int]:
        """Return bot id → owner id of every owned bot."""
        with read_transaction(self._engine, "listing bot owners") as conn:
            rows = conn.execute(select(bot_owners.c.bot_id, bot_owners.c.user_id)).all()
        return {r.bot_id: int(r.user_id) for r in rows}

    def claim(self, bot_id: str, user_id: int) -> bool:
        """Make ``user_id`` the owner of ``bot_id``; return False (writing nothing) if it already has one."""
        row = {"bot_id": bot_id, "user_id": user_id, "created_ms": time.time_ns() // 1_000_000}
        try:
            with self._engine.begin() as conn:
                conn.execute(insert(bot_owners), row)
        except IntegrityError:
            return False
        except SQLAlchemyError as exc:
            raise storage_error("claiming a bot", exc) from exc
        return True

    def release(self, bot_id: str) -> None:
        """Forget who owns ``bot_id``."""
        try:
            with self._engine.begin() as conn:
                conn.execute(delete(bot_owners).where(bot_owners.c.bot_id == bot_id))
        except SQLAlchemyError as exc:
            raise storage_error("releasing a bot", exc) from exc
