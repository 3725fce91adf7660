"""What routes receive: services from the app that holds them, and the caller, as ``Annotated`` aliases.

Route signatures stay one line::

    def create_user(body: UserCreate, admin: RequireAdmin, auth: AuthDep) -> UserOut: ...

Credentials: ``Authorization: Bearer <access token | API key | service token>`` or ``X-API-Key: <API key>``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated

from fastapi import Depends, Request
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from tradefleet.api.health import HealthCheck
from tradefleet.api.metrics import ApiMetrics
from tradefleet.core.errors import StorageError
from tradefleet.core.ports import TradingStore
from tradefleet.services.auth import AuthError, AuthService, Principal, Role, authorize

if TYPE_CHECKING:
    from tradefleet.services.audit import AuditLog


@dataclass
class ApiServices:
    """Everything the routes of one app use, built by the composition root (``bootstrap.build_api``)."""

    auth: AuthService
    store: TradingStore | None = None
    health_checks: list[HealthCheck] = field(default_factory=list)
    metrics: ApiMetrics = field(default_factory=ApiMetrics)
    audit: AuditLog | None = None  # where every state-changing request is recorded (None: not recorded)


async def get_services(request: Request) -> ApiServices:
    services: ApiServices = request.app.state.services
    return services


ServicesDep = Annotated[ApiServices, Depends(get_services)]


async def get_auth(services: ServicesDep) -> AuthService:
    return services.auth


async def get_store(services: ServicesDep) -> TradingStore:
    if services.store is None:
        raise StorageError("no trading store in this process", hint="run the API with `tradefleet up` or `serve api`")
    return services.store


AuthDep = Annotated[AuthService, Depends(get_auth)]
StoreDep = Annotated[TradingStore, Depends(get_store)]

_bearer = HTTPBearer(auto_error=False, description="access token, API key (tfk_…) or service token (tfs_…)")
_api_key = APIKeyHeader(name="X-API-Key", auto_error=False, description="API key (tfk_…)")


def current_principal(
    request: Request,
    auth: AuthDep,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    api_key: Annotated[str | None, Depends(_api_key)],
) -> Principal:
    """Resolve the caller from ``X-API-Key`` or the bearer credential; 401 when neither is valid.

    The caller is also kept as ``request.state.principal``, for the audit log to say who acted.
    """
    if api_key:
        principal = auth.verify_api_key(api_key)
    elif bearer is not None:
        principal = auth.verify_bearer(bearer.credentials)
    else:
        raise AuthError("authentication required")
    request.state.principal = principal
    return principal


CurrentPrincipal = Annotated[Principal, Depends(current_principal)]


def require_role(minimum: Role) -> Callable[[Principal], Awaitable[Principal]]:
    """Return a dependency admitting callers with at least ``minimum`` (403 otherwise)."""

    async def dependency(principal: CurrentPrincipal) -> Principal:
        authorize(principal, minimum)
        return principal

    dependency.__name__ = f"require_{minimum.value}"
    return dependency


RequireAdmin = Annotated[Principal, Depends(require_role(Role.ADMIN))]
RequireTrader = Annotated[Principal, Depends(require_role(Role.TRADER))]
RequireViewer = Annotated[Principal, Depends(require_role(Role.VIEWER))]
