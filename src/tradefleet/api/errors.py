"""Translate every failure into the one error body of the API, at the edge.

Every error response, whatever raised it, is::

    {"status": "error", "error": {"code": "...", "message": "...", "details": ...}, "request_id": "..."}

with the request id also in the ``X-Request-ID`` header. Status codes of TradeFleet errors:

    TradeFleetError with ``http_status`` (auth errors)    that status (429 adds Retry-After, 401 WWW-Authenticate)
    ConfigError, StrategyError, DataError                 422
    DataNotFoundError                                     404
    RiskError, OrderStateError                            409
    ExchangeRateLimitError                                429 with Retry-After
    TemporaryExchangeError, StorageError                  503
    ExchangeError                                         502
    any other TradeFleetError                             400
    request validation (body, query, path)                422, one entry per offending field
    unknown path / method (HTTPException)                 its status (404, 405 with Allow)
    anything else                                         500, a generic message; the traceback goes to the log
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from tradefleet.core.errors import (
    ConfigError,
    DataError,
    DataNotFoundError,
    ExchangeError,
    OrderStateError,
    RateLimitError,
    RiskError,
    StorageError,
    StrategyError,
    TemporaryExchangeError,
    TradeFleetError,
)

log = logging.getLogger(__name__)

REQUEST_ID_HEADER = "X-Request-ID"
INTERNAL_MESSAGE = "an unexpected error occurred; the request id identifies it in the server log"

# Most specific first: the first class an error is an instance of decides its status.
_STATUS_BY_CLASS: tuple[tuple[type[TradeFleetError], int], ...] = (
    (DataNotFoundError, 404),
    (RateLimitError, 429),
    (TemporaryExchangeError, 503),
    (StorageError, 503),
    (ExchangeError, 502),
    (RiskError, 409),
    (OrderStateError, 409),
    (ConfigError, 422),
    (StrategyError, 422),
    (DataError, 422),
)

_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_error",
    429: "rate_limited",
}


def request_id_of(request: Request) -> str | None:
    """Return the id the request-context middleware gave this request (None outside it)."""
    value = getattr(request.state, "request_id", None)
    return str(value) if value is not None else None


def error_body(code: str, message: str, details: Any, request_id: str | None) -> dict[str, Any]:
    """Return the one error body of the API."""
    return {
        "status": "error",
        "error": {"code": code, "message": message, "details": details},
        "request_id": request_id,
    }


def error_response(
    request_id: str | None,
    status: int,
    code: str,
    message: str,
    details: Any = None,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    """Build an error response in the one shape, with the request id in body and header."""
    merged = dict(headers or {})
    if request_id:
        merged[REQUEST_ID_HEADER] = request_id
    return JSONResponse(error_body(code, message, details, request_id), status_code=status, headers=merged)


def status_of(exc: TradeFleetError) -> int:
    """Return the HTTP status a TradeFleet error is answered with."""
    declared = getattr(exc, "http_status", None)
    if isinstance(declared, int):
        return declared
    for cls, status in _STATUS_BY_CLASS:
        if isinstance(exc, cls):
            return status
    return 400


def _details(exc: TradeFleetError) -> Any:
    details: dict[str, Any] = {"hint": exc.hint} if exc.hint else {}
    if isinstance(exc.details, Mapping):
        details.update(exc.details)
    elif exc.details is not None:
        details["info"] = exc.details
    return details or None


async def tradefleet_error_handler(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, TradeFleetError)
    status = status_of(exc)
    headers: dict[str, str] = {}
    retry_after = getattr(exc, "retry_after", None)
    if status == 429 and retry_after is not None:
        headers["Retry-After"] = str(max(1, round(float(retry_after))))
    if status == 401:
        headers["WWW-Authenticate"] = "Bearer"
    if status >= 500:
        log.warning("request failed: %s", exc.message, extra={"code": exc.code, "status": status})
    return error_response(request_id_of(request), status, exc.code, exc.message, _details(exc), headers)


async def validation_error_handler(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    # Only where and what: the offending input is never echoed (it may be a password).
    fields = [
        {"loc": [str(p) for p in err.get("loc", ())], "message": err.get("msg", ""), "type": err.get("type", "")}
        for err in exc.errors()
    ]
    return error_response(request_id_of(request), 422, "validation_error", "the request is invalid", fields)


async def http_error_handler(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    status = exc.status_code
    code = _HTTP_CODES.get(status, "http_error")
    try:
        default = HTTPStatus(status).phrase.lower()
    except ValueError:
        default = "http error"
    message = exc.detail if isinstance(exc.detail, str) and exc.detail else default
    return error_response(request_id_of(request), status, code, message, None, exc.headers)


async def unexpected_error_handler(request: Request, exc: Exception) -> JSONResponse:
    log.error("unhandled error in %s %s", request.method, request.url.path, exc_info=exc)
    return error_response(request_id_of(request), 500, "internal_error", INTERNAL_MESSAGE)


def install_error_handlers(app: FastAPI) -> None:
    """Register the handlers that give every error response the one shape."""
    app.add_exception_handler(TradeFleetError, tradefleet_error_handler)
    app.add_exception_handler(RequestValidationError, validation_error_handler)
    app.add_exception_handler(StarletteHTTPException, http_error_handler)
    app.add_exception_handler(Exception, unexpected_error_handler)
