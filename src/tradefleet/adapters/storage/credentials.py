"""Encrypted exchange credentials over ``platform_tables.exchange_credentials``, one row per bot.

This module stores what it is given: ``ciphertext`` is already encrypted by the credentials service
(``services.credentials``), and ``key_hint`` is the few characters of the API key a person may see. No
plaintext key or secret ever reaches this module. Each method is its own transaction.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine, delete, insert, select, update
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from tradefleet.adapters.storage.db import storage_error
from tradefleet.adapters.storage.platform_tables import exchange_credentials


@dataclass(frozen=True, slots=True)
class StoredCredentials:
    """A bot's credentials row: metadata in clear, the keys only as ``ciphertext``."""

    bot_id: str
    exchange: str
    key_hint: str
    ciphertext: bytes
    updated_ms: int

    def __repr__(self) -> str:  # the ciphertext is useless without the key, but keeps logs short and quiet
        return f"StoredCredentials(bot_id={self.bot_id!r}, exchange={self.exchange!r}, key_hint={self.key_hint!r})"


class SqlCredentialStore:
    """Exchange credentials of bots in the trading database."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def put(self, record: StoredCredentials) -> None:
        """Insert or replace the credentials of ``record.bot_id``."""
        c = exchange_credentials.c
        values = {
            "exchange": record.exchange,
            "key_hint": record.key_hint,
            "ciphertext": record.ciphertext,
            "updated_ms": record.updated_ms,
        }
        for attempt in (1, 2):  # a concurrent first insert of the same bot: the second try updates its row
            try:
                with self._engine.begin() as conn:
                    done = conn.execute(update(exchange_credentials).where(c.bot_id == record.bot_id).values(values))
                    if done.rowcount == 0:
                        conn.execute(insert(exchange_credentials), {"bot_id": record.bot_id, **values})
                return
            except IntegrityError as exc:
                if attempt == 2:
                    raise storage_error("storing exchange credentials", exc) from exc
            except SQLAlchemyError as exc:
                raise storage_error("storing exchange credentials", exc) from exc

    def get(self, bot_id: str) -> StoredCredentials | None:
        """Return the credentials row of ``bot_id``, or None."""
        query = select(exchange_credentials).where(exchange_credentials.c.bot_id == bot_id)
        try:
            with self._engine.connect() as conn:
                row = conn.execute(query).first()
        except SQLAlchemyError as exc:
            raise storage_error("reading exchange credentials", exc) from exc
        if row is None:
            return None
        return StoredCredentials(
            bot_id=row.bot_id,
            exchange=row.exchange,
            key_hint=row.key_hint,
            ciphertext=bytes(row.ciphertext),
            updated_ms=int(row.updated_ms),
        )

    def delete(self, bot_id: str) -> bool:
        """Forget the credentials of ``bot_id``; return False if there were none."""
        try:
            with self._engine.begin() as conn:
                done = conn.execute(delete(exchange_credentials).where(exchange_credentials.c.bot_id == bot_id))
        except SQLAlchemyError as exc:
            raise storage_error("deleting exchange credentials", exc) from exc
        return done.rowcount > 0
