"""The FastAPI app factory: one app per call, holding only what it is given (no module globals)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager

from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from tradefleet import __version__
from tradefleet.api.deps import ApiServices, ServicesDep
from tradefleet.api.errors import error_response, install_error_handlers, request_id_of
from tradefleet.api.health import run_checks
from tradefleet.api.middleware import AuditMiddleware, RequestContextMiddleware

log = logging.getLogger(__name__)


def create_app(
    services: ApiServices,
    *,
    on_shutdown: Sequence[Callable[[], None]] = (),
    title: str = "TradeFleet",
) -> FastAPI:
    """Build the management API over ``services``; ``on_shutdown`` callbacks run when the server stops."""

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        try:
            yield
        finally:
            for close in on_shutdown:
                try:
                    close()
                except Exception:  # one failing closer must not keep the others from running
                    log.exception("API shutdown step failed")

    app = FastAPI(title=title, version=__version__, lifespan=lifespan)
    app.state.services = services
    install_error_handlers(app)
    app.add_middleware(AuditMiddleware, services=services)  # inside the next one: it needs the request id
    app.add_middleware(RequestContextMiddleware, metrics=services.metrics)
    app.include_router(_operations_router())

    from tradefleet.api.ws import router as ws_router
    from tradefleet.services.audit.router import router as audit_router
    from tradefleet.services.auth.router import aliases as auth_aliases
    from tradefleet.services.auth.router import router as auth_router
    from tradefleet.services.bots.aliases import router as bots_aliases
    from tradefleet.services.bots.router import router as bots_router
    from tradefleet.services.credentials.router import router as credentials_router
    from tradefleet.services.ftcompat.router import router as ft_router
    from tradefleet.services.market.router import router as market_router

    app.include_router(auth_router)
    app.include_router(auth_aliases)
    app.include_router(bots_router)
    app.include_router(bots_aliases)  # the trading-engine paths: /api/status, /api/positions, …
    app.include_router(ws_router)  # WebSocket /ws
    app.include_router(credentials_router)
    app.include_router(audit_router)
    app.include_router(market_router)
    app.include_router(ft_router)  # Freqtrade REST API per bot: /ft/{bot_id}/api/v1
    return app


def _operations_router() -> APIRouter:
    ops = APIRouter(tags=["operations"])

    @ops.get("/health", responses={503: {"description": "a required dependency is down"}})
    async def health(request: Request, services: ServicesDep) -> JSONResponse:
        """Check every dependency: 200 when each required one is ok, 503 otherwise."""
        report = await run_in_threadpool(run_checks, services.health_checks)
        request_id = request_id_of(request)
        if report.healthy:
            body = {"status": "ok", "components": report.as_dict(), "request_id": request_id}
            return JSONResponse(body, headers={"Cache-Control": "no-store"})
        failing = ", ".join(report.failing())
        return error_response(
            request_id, 503, "unhealthy", f"required dependencies are down: {failing}",
            {"components": report.as_dict()}, {"Cache-Control": "no-store"},
        )  # fmt: skip

    @ops.get("/metrics", response_class=Response)
    async def metrics(services: ServicesDep) -> Response:
        """Prometheus text exposition of this app's metrics."""
        return Response(services.metrics.render(), media_type=services.metrics.content_type)

    return ops
