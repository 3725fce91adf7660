"""Request context and audit trail as pure ASGI middleware: request id, trace id, metrics, last-resort 500.

Pure ASGI rather than ``BaseHTTPMiddleware``: the trace id bound here stays visible to the endpoint
(contextvars flow into the handler and its worker thread), and streaming responses are not buffered.
:class:`AuditMiddleware` runs inside :class:`RequestContextMiddleware` (it needs the request id) and writes
the audit row of a state-changing request before the last byte of its answer leaves, so a client that
got an answer can read the row back.
"""

from __future__ import annotations

import logging
import re
import time
import uuid

import anyio.to_thread
import structlog
from starlette.datastructures import Headers, MutableHeaders
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tradefleet.api.deps import ApiServices
from tradefleet.api.errors import REQUEST_ID_HEADER, unexpected_error_handler
from tradefleet.api.metrics import UNMATCHED_ROUTE, ApiMetrics
from tradefleet.logs import bind_trace_id
from tradefleet.services.audit.recorder import (
    MAX_BODY,
    STATE_CHANGING,
    basic_auth_username,
    build_entry,
    error_code_of,
    is_login_route,
    summarize_body,
)
from tradefleet.services.auth import Principal

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


_MAX_ERROR_BODY = 8 * 1024  # enough for the one error shape; only its code is kept


class _Exchange:
    """What the audit row of one request needs, gathered while the request and its answer pass."""

    def __init__(self) -> None:
        self.body = bytearray()
        self.body_bytes = 0
        self.status = 500
        self.answer = bytearray()
        self.recorded = False

    def took(self, chunk: bytes) -> None:
        self.body_bytes += len(chunk)
        if self.body_bytes <= MAX_BODY:
            self.body += chunk

    def answered(self, chunk: bytes) -> None:
        if self.status >= 400 and len(self.answer) + len(chunk) <= _MAX_ERROR_BODY:
            self.answer += chunk


class AuditMiddleware:
    """Record every POST/PUT/PATCH/DELETE that reached a route in ``services.audit`` (who, what, outcome).

    A failed write is logged with the request id and counted (``tradefleet_audit_write_failures``); it
    never changes the answer. Requests matching no route (404/405 before routing) are not recorded.
    """

    def __init__(self, app: ASGIApp, services: ApiServices) -> None:
        self.app = app
        self.services = services

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in STATE_CHANGING or self.services.audit is None:
            await self.app(scope, receive, send)
            return
        seen = _Exchange()

        async def tapped_receive() -> Message:
            message = await receive()
            if message["type"] == "http.request":
                seen.took(message.get("body", b""))
            return message

        async def tapped_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                seen.status = int(message["status"])
            elif message["type"] == "http.response.body":
                seen.answered(message.get("body", b""))
                if not message.get("more_body", False):
                    await self._record(scope, seen)
            await send(message)

        try:
            await self.app(scope, tapped_receive, tapped_send)
        except Exception:
            await self._record(scope, seen)  # the request-context middleware answers 500
            raise

    async def _record(self, scope: Scope, seen: _Exchange) -> None:
        if seen.recorded:
            return
        seen.recorded = True
        route = route_template(scope)
        if route == UNMATCHED_ROUTE:
            return
        await anyio.to_thread.run_sync(self._write, scope, route, seen)

    def _write(self, scope: Scope, route: str, seen: _Exchange) -> None:
        state = scope.get("state", {})
        request_id = str(state.get("request_id", ""))
        try:
            headers = Headers(scope=scope)
            principal = state.get("principal")
            if principal is None and seen.status < 400:
                principal = self._caller(headers)  # e.g. a logout: the route itself needs no credentials
            too_large = seen.body_bytes > MAX_BODY
            entry = build_entry(
                method=scope["method"],
                route=route,
                path_params=scope.get("path_params", {}),
                status_code=seen.status,
                request_id=request_id,
                principal=principal if isinstance(principal, Principal) else None,
                summary={} if too_large else summarize_body(bytes(seen.body), headers.get("content-type", "")),
                attempted_username=basic_auth_username(headers.get("authorization")) if is_login_route(route) else None,
                error_code=error_code_of(bytes(seen.answer)) if seen.status >= 400 else None,
                body_too_large=seen.body_bytes if too_large else None,
            )
            audit = self.services.audit
            if audit is not None:
                audit.append(entry)
        except Exception as exc:  # the action stands; its trace is in the log and the metric
            self.services.metrics.audit_failures.inc()
            log.error(
                "audit log write failed for request %s (%s %s): %s", request_id, scope["method"], route, exc,
                extra={"request_id": request_id},
            )  # fmt: skip

    def _caller(self, headers: Headers) -> Principal | None:
        """Resolve the caller's credentials when the route did not; None if there are none or they fail."""
        api_key = headers.get("x-api-key")
        scheme, _, credentials = (headers.get("authorization") or "").partition(" ")
        try:
            if api_key:
                return self.services.auth.verify_api_key(api_key)
            if scheme.lower() == "bearer" and credentials:
                return self.services.auth.verify_bearer(credentials.strip())
        except Exception:
            return None
        return None
