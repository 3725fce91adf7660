"""Request context as pure ASGI middleware: request id, trace id for logs, metrics, last-resort 500.

Pure ASGI rather than ``BaseHTTPMiddleware``: the trace id bound here stays visible to the endpoint
(contextvars flow into the handler and its worker thread), and streaming responses are not buffered.
"""

from __future__ import annotations

import logging
import re
import time
import uuid

import structlog
from starlette.datastructures import Headers, MutableHeaders
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tradefleet.api.errors import REQUEST_ID_HEADER, unexpected_error_handler
from tradefleet.api.metrics import UNMATCHED_ROUTE, ApiMetrics
from tradefleet.logs import bind_trace_id

log = logging.getLogger(__name__)

_VALID_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,128}")


def accept_request_id(value: str | None) -> str:
    """Return ``value`` if it is a safe request id (≤ 128 of ``[A-Za-z0-9._-]``), else a new random one."""
    if value and _VALID_REQUEST_ID.fullmatch(value):
        return value
    return uuid.uuid4().hex


def route_template(scope: Scope) -> str:
    """Return the path template of the route that answered (``/api/v1/users/{user_id}/role``)."""
    route = scope.get("route")
    path = getattr(route, "path_format", None) or getattr(route, "path", None)
    return str(path) if path else UNMATCHED_ROUTE


class RequestContextMiddleware:
    """Give each HTTP request an id (header ``X-Request-ID`` in and out), a log trace id and metrics."""

    def __init__(self, app: ASGIApp, metrics: ApiMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = accept_request_id(Headers(scope=scope).get(REQUEST_ID_HEADER))
        scope.setdefault("state", {})["request_id"] = request_id
        bind_trace_id(request_id)
        status = 500
        started = False

        async def send_with_id(message: Message) -> None:
            nonlocal status, started
            if message["type"] == "http.response.start":
                started = True
                status = int(message["status"])
                MutableHeaders(scope=message)[REQUEST_ID_HEADER] = request_id
            await send(message)

        self.metrics.in_flight.inc()
        begin = time.perf_counter()
        try:
            await self.app(scope, receive, send_with_id)
        except Exception as exc:
            if started:  # the client already has a status line: nothing better to do than log
                log.error("error after the response started", exc_info=exc)
                raise
            response = await unexpected_error_handler(Request(scope), exc)
            await response(scope, receive, send_with_id)
        finally:
            self.metrics.in_flight.dec()
            self.metrics.observe(scope["method"], route_template(scope), status, time.perf_counter() - begin)
            structlog.contextvars.unbind_contextvars("trace_id")
