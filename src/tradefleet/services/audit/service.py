"""The audit service: record state-changing actions and let admins read them back, transport-neutral.

Writers append :class:`AuditEntry` rows through :meth:`AuditService.record` (the API does so for every
POST/PUT/PATCH/DELETE, see ``api.middleware.AuditMiddleware``; the CLI and gateways may too). Readers are
admins only (:meth:`AuditService.query`). Entries never hold a request body: at most the allow-listed
summary built by ``services.audit.recorder``.
"""

from __future__ import annotations

from typing import Protocol

from pydantic import BaseModel, Field

from tradefleet.adapters.storage.audit import AuditEntry, AuditFilter, AuditPage, AuditRecord
from tradefleet.core.errors import TradeFleetError
from tradefleet.services.auth import Principal, Role, authorize

MAX_PAGE = 500


class AuditQueryError(TradeFleetError):
    code = "validation_error"
    http_status = 422


class AuditLog(Protocol):
    """Where entries are kept (``adapters.storage.audit.SqlAuditLog``)."""

    def append(self, entry: AuditEntry) -> int: ...
    def query(self, where: AuditFilter | None = None, *, limit: int = 100, offset: int = 0) -> AuditPage: ...


class AuditRecordOut(BaseModel):
    seq: int
    ts_ms: int
    actor: str
    role: str
    action: str = Field(description="HTTP method and route template, e.g. `POST /api/v1/bots/{bot_id}/stop`")
    target: str = Field(description="the path parameters: the value of a single one, else `name=value,...`")
    status_code: int
    request_id: str
    details: dict[str, object]


class AuditPageOut(BaseModel):
    total: int = Field(description="how many records match the filters in all")
    limit: int
    offset: int
    items: list[AuditRecordOut] = Field(description="newest first")


class AuditService:
    """Append to and read the audit log."""

    def __init__(self, log: AuditLog) -> None:
        self.log = log

    def record(self, entry: AuditEntry) -> int:
        """Append ``entry``; return its sequence number. Storage failures raise (callers decide)."""
        return self.log.append(entry)

    def query(self, principal: Principal, where: AuditFilter, *, limit: int = 100, offset: int = 0) -> AuditPageOut:
        """Return matching records, newest first (admins only)."""
        authorize(principal, Role.ADMIN)
        if not 1 <= limit <= MAX_PAGE or offset < 0:
            raise AuditQueryError(f"limit must be 1..{MAX_PAGE} and offset at least 0")
        if any("\x00" in text for text in (where.actor, where.action, where.target) if text is not None):
            raise AuditQueryError("filters must not contain NUL characters")
        if where.since_ms is not None and where.until_ms is not None and where.since_ms > where.until_ms:
            raise AuditQueryError("since_ms is after until_ms", hint="give since_ms <= until_ms")
        page = self.log.query(where, limit=limit, offset=offset)
        return AuditPageOut(total=page.total, limit=limit, offset=offset, items=[_out(r) for r in page.records])


def _out(record: AuditRecord) -> AuditRecordOut:
    return AuditRecordOut(
        seq=record.seq,
        ts_ms=record.ts_ms,
        actor=record.actor,
        role=record.role,
        action=record.action,
        target=record.target,
        status_code=record.status_code,
        request_id=record.request_id,
        details=record.details,
    )
