"""Users and credentials in the trading database: SQLAlchemy 2 Core over the store's engine.

Each method is its own transaction. Refresh-token rotation is one conditional ``UPDATE`` (only a token not
yet used nor revoked is consumed) followed by the insert of its successor, so of two requests presenting
the same token exactly one wins, on SQLite and on PostgreSQL alike.
"""

from __future__ import annotations

import enum
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine, func, insert, select, update
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from tradefleet.adapters.storage.auth_tables import api_keys, refresh_tokens, service_tokens, users
from tradefleet.adapters.storage.db import READ_ONLY_BEGIN, storage_error
from tradefleet.services.auth.errors import UserExistsError


class Role(enum.StrEnum):
    """What a principal may do: admins manage, traders trade, viewers read, services call in."""

    ADMIN = "admin"
    TRADER = "trader"
    VIEWER = "viewer"
    SERVICE = "service"  # machine clients only; no user has it


USER_ROLES = (Role.ADMIN, Role.TRADER, Role.VIEWER)


@dataclass(frozen=True)
class UserRecord:
    id: int
    username: str
    password_hash: str
    role: Role
    created_ms: int
    disabled: bool


@dataclass(frozen=True)
class RefreshRecord:
    jti: str
    family_id: str
    user_id: int
    parent_jti: str | None
    token_hash: str
    issued_ms: int
    expires_ms: int
    used_ms: int | None
    revoked_ms: int | None


@dataclass(frozen=True)
class KeyRecord:
    """An API key or a service token: ``owner`` is the user id (service tokens: its creator, or None)."""

    id: int
    name: str
    prefix: str
    secret_hash: str
    owner: int | None
    created_ms: int
    last_used_ms: int | None
    revoked_ms: int | None


class SqlAuthRepository:
    """Read and write auth rows on ``engine``; the schema must be migrated (``adapters.storage.upgrade``)."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    # ------------------------------------------------------------------ users
    def add_user(self, username: str, password_hash: str, role: Role, created_ms: int) -> UserRecord:
        """Insert a user; raise :class:`UserExistsError` if the username is taken."""
        values = {"username": username, "password_hash": password_hash, "role": role.value,
                  "created_ms": created_ms, "disabled": False}  # fmt: skip
        with self._write("adding a user", duplicate=f"user {username!r} already exists") as conn:
            user_id = conn.execute(insert(users).values(values).returning(users.c.id)).scalar_one()
        return UserRecord(int(user_id), username, password_hash, role, created_ms, False)

    def user_by_name(self, username: str) -> UserRecord | None:
        with self._read("reading a user") as conn:
            row = conn.execute(select(users).where(users.c.username == username)).first()
        return _user(row) if row is not None else None

    def user_by_id(self, user_id: int) -> UserRecord | None:
        with self._read("reading a user") as conn:
            row = conn.execute(select(users).where(users.c.id == user_id)).first()
        return _user(row) if row is not None else None

    def list_users(self) -> list[UserRecord]:
        with self._read("listing users") as conn:
            rows = conn.execute(select(users).order_by(users.c.id)).all()
        return [_user(row) for row in rows]

    def count_users(self, *, role: Role | None = None, enabled_only: bool = False) -> int:
        query = select(func.count()).select_from(users)
        if role is not None:
            query = query.where(users.c.role == role.value)
        if enabled_only:
            query = query.where(users.c.disabled.is_(False))
        with self._read("counting users") as conn:
            return int(conn.execute(query).scalar_one())

    def update_user(self, user_id: int, **values: Any) -> None:
        """Set ``password_hash``, ``role`` or ``disabled`` of one user."""
        if "role" in values:
            values["role"] = Role(values["role"]).value
        with self._write("updating a user") as conn:
            conn.execute(update(users).where(users.c.id == user_id).values(values))

    # ------------------------------------------------------------------ refresh tokens
    def add_refresh(self, record: RefreshRecord) -> None:
        with self._write("storing a refresh token") as conn:
            conn.execute(insert(refresh_tokens).values(vars(record)))

    def refresh_by_jti(self, jti: str) -> RefreshRecord | None:
        with self._read("reading a refresh token") as conn:
            row = conn.execute(select(refresh_tokens).where(refresh_tokens.c.jti == jti)).first()
        return RefreshRecord(**row._mapping) if row is not None else None

    def rotate_refresh(self, old_jti: str, successor: RefreshRecord, now_ms: int) -> bool:
        """Mark ``old_jti`` used and store ``successor``, atomically; False if it was not usable any more."""
        consume = (
            update(refresh_tokens)
            .where(
                refresh_tokens.c.jti == old_jti,
                refresh_tokens.c.used_ms.is_(None),
                refresh_tokens.c.revoked_ms.is_(None),
                refresh_tokens.c.expires_ms > now_ms,
            )
            .values(used_ms=now_ms)
            .execution_options(preserve_rowcount=True)
        )
        with self._write("rotating a refresh token") as conn:
            if conn.execute(consume).rowcount != 1:
                return False
            conn.execute(insert(refresh_tokens).values(vars(successor)))
            return True

    def revoke_family(self, family_id: str, now_ms: int) -> int:
        """Revoke every unrevoked token of a session; return how many."""
        return self._revoke_refresh(refresh_tokens.c.family_id == family_id, now_ms)

    def revoke_user_refresh(self, user_id: int, now_ms: int) -> int:
        """Revoke every session of a user (disabled, password changed)."""
        return self._revoke_refresh(refresh_tokens.c.user_id == user_id, now_ms)

    def _revoke_refresh(self, condition: Any, now_ms: int) -> int:
        stmt = (
            update(refresh_tokens)
            .where(condition, refresh_tokens.c.revoked_ms.is_(None))
            .values(revoked_ms=now_ms)
            .execution_options(preserve_rowcount=True)
        )
        with self._write("revoking refresh tokens") as conn:
            return int(conn.execute(stmt).rowcount)

    # ------------------------------------------------------------------ API keys and service tokens
    def add_api_key(self, user_id: int, name: str, prefix: str, key_hash: str, created_ms: int) -> int:
        values = {"user_id": user_id, "name": name, "prefix": prefix, "key_hash": key_hash, "created_ms": created_ms}
        with self._write("storing an API key") as conn:
            return int(conn.execute(insert(api_keys).values(values).returning(api_keys.c.id)).scalar_one())

    def add_service_token(
        self, name: str, prefix: str, token_hash: str, created_ms: int, created_by: int | None
    ) -> int:
        values = {"name": name, "prefix": prefix, "token_hash": token_hash, "created_ms": created_ms,
                  "created_by": created_by}  # fmt: skip
        with self._write("storing a service token", duplicate=f"service token {name!r} already exists") as conn:
            stmt = insert(service_tokens).values(values).returning(service_tokens.c.id)
            return int(conn.execute(stmt).scalar_one())

    def key_by_prefix(self, kind: str, prefix: str) -> KeyRecord | None:
        """Return the API key (``kind="api_key"``) or service token (``"service"``) with this prefix."""
        with self._read("reading a key") as conn:
            row = conn.execute(_key_select(kind).where(_key_table(kind).c.prefix == prefix)).first()
        return KeyRecord(**row._mapping) if row is not None else None

    def list_keys(self, kind: str, owner: int | None = None) -> list[KeyRecord]:
        table = _key_table(kind)
        query = _key_select(kind).order_by(table.c.id)
        if owner is not None:
            query = query.where(table.c[_OWNER[kind]] == owner)
        with self._read("listing keys") as conn:
            return [KeyRecord(**row._mapping) for row in conn.execute(query)]

    def touch_key(self, kind: str, key_id: int, now_ms: int) -> None:
        table = _key_table(kind)
        with self._write("recording key use") as conn:
            conn.execute(update(table).where(table.c.id == key_id).values(last_used_ms=now_ms))

    def revoke_key(self, kind: str, key_id: int, now_ms: int) -> bool:
        table = _key_table(kind)
        stmt = (
            update(table)
            .where(table.c.id == key_id, table.c.revoked_ms.is_(None))
            .values(revoked_ms=now_ms)
            .execution_options(preserve_rowcount=True)
        )
        with self._write("revoking a key") as conn:
            return bool(conn.execute(stmt).rowcount)

    # ------------------------------------------------------------------ transactions
    @contextmanager
    def _write(self, operation: str, *, duplicate: str | None = None) -> Iterator[Connection]:
        """Run one transaction; a unique-key violation becomes :class:`UserExistsError` when ``duplicate``."""
        try:
            with self._engine.begin() as conn:
                yield conn
        except IntegrityError as exc:
            text = str(exc.orig).lower()
            if duplicate is not None and ("unique" in text or "duplicate" in text):
                raise UserExistsError(duplicate) from None
            raise storage_error(operation, exc) from exc
        except SQLAlchemyError as exc:
            raise storage_error(operation, exc) from exc

    @contextmanager
    def _read(self, operation: str) -> Iterator[Connection]:
        try:
            with self._engine.connect() as conn:
                conn.info[READ_ONLY_BEGIN] = True  # SQLite: a deferred BEGIN that does not block writers
                yield conn
                conn.rollback()
        except SQLAlchemyError as exc:
            raise storage_error(operation, exc) from exc


_OWNER = {"api_key": "user_id", "service": "created_by"}
_HASH = {"api_key": "key_hash", "service": "token_hash"}


def _key_table(kind: str) -> Any:
    return {"api_key": api_keys, "service": service_tokens}[kind]


def _key_select(kind: str) -> Any:
    table = _key_table(kind)
    return select(
        table.c.id, table.c.name, table.c.prefix, table.c[_HASH[kind]].label("secret_hash"),
        table.c[_OWNER[kind]].label("owner"), table.c.created_ms, table.c.last_used_ms, table.c.revoked_ms,
    )  # fmt: skip


def _user(row: Any) -> UserRecord:
    return UserRecord(
        id=int(row.id),
        username=row.username,
        password_hash=row.password_hash,
        role=Role(row.role),
        created_ms=int(row.created_ms),
        disabled=bool(row.disabled),
    )
