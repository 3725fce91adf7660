"""The audit log over ``platform_tables.audit_log``: append-only rows of who did what, when, with what outcome.

Each method is its own transaction. Nothing here updates or deletes a row: the log only grows (pruning old
rows is an operator's job, outside the API). Writers are the API (every state-changing request) and, later,
the CLI and the gateways, all through :class:`SqlAuditLog`. Times are epoch milliseconds. NUL characters,
which PostgreSQL text cannot hold and a client may send (as a username, say), are stored as U+FFFD, so no
input can keep its row out of the log.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, Engine, Select, func, insert, select
from sqlalchemy.exc import SQLAlchemyError

from tradefleet.adapters.storage.db import READ_ONLY_BEGIN, storage_error
from tradefleet.adapters.storage.platform_tables import audit_log


def now_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One action to record; ``details`` holds only non-secret, JSON-serialisable facts."""

    actor: str
    role: str
    action: str
    target: str
    status_code: int
    request_id: str
    details: dict[str, Any] = field(default_factory=dict)
    ts_ms: int = field(default_factory=now_ms)


@dataclass(frozen=True, slots=True)
class AuditRecord:
    """A stored entry: the entry's fields and its position ``seq`` in the log."""

    seq: int
    ts_ms: int
    actor: str
    role: str
    action: str
    target: str
    status_code: int
    request_id: str
    details: dict[str, Any]


@dataclass(frozen=True, slots=True)
class AuditFilter:
    """Which records a query returns: every given field must match (``since_ms <= ts_ms <= until_ms``)."""

    actor: str | None = None
    action: str | None = None
    target: str | None = None
    since_ms: int | None = None
    until_ms: int | None = None


@dataclass(frozen=True, slots=True)
class AuditPage:
    """One page of matching records, newest first, and how many match in all."""

    total: int
    records: list[AuditRecord]


class SqlAuditLog:
    """The audit log in the trading database; each method is its own transaction."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def append(self, entry: AuditEntry) -> int:
        """Store ``entry``; return its ``seq``."""
        row = {
            "ts_ms": entry.ts_ms,
            "actor": _storable(entry.actor),
            "role": _storable(entry.role),
            "action": _storable(entry.action),
            "target": _storable(entry.target),
            "status_code": entry.status_code,
            "request_id": _storable(entry.request_id),
            "details": _storable(entry.details),
        }
        try:
            with self._engine.begin() as conn:
                seq = conn.execute(insert(audit_log).returning(audit_log.c.seq), row).scalar_one()
        except SQLAlchemyError as exc:
            raise storage_error("appending to the audit log", exc) from exc
        return int(seq)

    def query(self, where: AuditFilter | None = None, *, limit: int = 100, offset: int = 0) -> AuditPage:
        """Return the records matching ``where``, newest first, skipping ``offset`` and at most ``limit``."""
        where = where or AuditFilter()
        with self._read("reading the audit log") as conn:
            total = conn.execute(_filtered(select(func.count()).select_from(audit_log), where)).scalar_one()
            page = _filtered(select(audit_log), where).order_by(audit_log.c.seq.desc()).limit(limit).offset(offset)
            rows = conn.execute(page).all()
        return AuditPage(total=int(total), records=[_record(r) for r in rows])

    @contextmanager
    def _read(self, operation: str) -> Iterator[Connection]:
        try:
            with self._engine.connect() as conn:
                conn.info[READ_ONLY_BEGIN] = True  # SQLite: a deferred BEGIN that does not block writers
                with conn.begin():
                    yield conn
        except SQLAlchemyError as exc:
            raise storage_error(operation, exc) from exc


def _storable(value: Any) -> Any:
    """Return ``value`` with NUL characters replaced (PostgreSQL text cannot hold them; a failed login may)."""
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd")
    if isinstance(value, dict):
        return {_storable(k): _storable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_storable(v) for v in value]
    return value


def _filtered(query: Select[Any], where: AuditFilter) -> Select[Any]:
    c = audit_log.c
    if where.actor is not None:
        query = query.where(c.actor == where.actor)
    if where.action is not None:
        query = query.where(c.action == where.action)
    if where.target is not None:
        query = query.where(c.target == where.target)
    if where.since_ms is not None:
        query = query.where(c.ts_ms >= where.since_ms)
    if where.until_ms is not None:
        query = query.where(c.ts_ms <= where.until_ms)
    return query


def _record(row: Any) -> AuditRecord:
    return AuditRecord(
        seq=int(row.seq),
        ts_ms=int(row.ts_ms),
        actor=row.actor,
        role=row.role,
        action=row.action,
        target=row.target,
        status_code=int(row.status_code),
        request_id=row.request_id,
        details=dict(row.details or {}),
    )
