"""HTTP route of the audit service: ``GET /api/v1/audit`` (admins), a thin translation to :class:`AuditService`.

The log itself is ``ApiServices.audit`` (built by the composition root); the API writes to it through
``api.middleware.AuditMiddleware``.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query

from tradefleet.adapters.storage.audit import AuditFilter
from tradefleet.api.deps import CurrentPrincipal, ServicesDep
from tradefleet.core.errors import StorageError
from tradefleet.services.audit.service import MAX_PAGE, AuditPageOut, AuditService

MAX_MS = 10**13  # year 2286: bounds the filters so no value overflows a database integer
MAX_OFFSET = 10**9
_ACTION = "method and route template, e.g. `DELETE /api/v1/bots/{bot_id}`"


async def get_audit_service(services: ServicesDep) -> AuditService:
    if services.audit is None:
        raise StorageError("no audit log in this process", hint="run the API with `tradefleet up` or `serve api`")
    return AuditService(services.audit)


AuditDep = Annotated[AuditService, Depends(get_audit_service)]

router = APIRouter(prefix="/api/v1", tags=["audit"])


@router.get("/audit")
def list_audit(
    principal: CurrentPrincipal,
    audit: AuditDep,
    actor: Annotated[str | None, Query(min_length=1, max_length=200)] = None,
    action: Annotated[
        str | None, Query(min_length=1, max_length=300, description="e.g. `DELETE /api/v1/bots/{bot_id}`")
    ] = None,
    target: Annotated[str | None, Query(min_length=1, max_length=200, description="e.g. a bot id")] = None,
    since_ms: Annotated[int | None, Query(ge=0, le=MAX_MS)] = None,
    until_ms: Annotated[int | None, Query(ge=0, le=MAX_MS)] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 100,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
) -> AuditPageOut:
    """State-changing actions, newest first, with how many match in all (admins)."""
    where = AuditFilter(actor=actor, action=action, target=target, since_ms=since_ms, until_ms=until_ms)
    return audit.query(principal, where, limit=limit, offset=offset)
