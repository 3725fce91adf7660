"""A loopback HTTP server answering like Binance's public spot REST API, from recorded responses.

``/api/v3/exchangeInfo`` is the recorded answer; ``/api/v3/klines`` slices the recorded candles the way
Binance does (``startTime``/``endTime`` inclusive, ``limit`` default 500, at most 1000) and answers unknown
symbols with Binance's error body.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "data" / "binance"
STEP_5M = 300_000


def load_fixture(name: str) -> Any:
    """Return a recorded JSON response."""
    return json.loads((FIXTURES / name).read_text())


@dataclass
class BinanceReplay:
    """Serves recorded Binance answers on a loopback port; tests add faults per request number."""

    server: HTTPServer
    klines: dict[tuple[str, str], list[list[Any]]] = field(default_factory=dict)
    faults: dict[int, Response] = field(default_factory=dict)
    live: dict[tuple[str, str], Callable[[int, int], list[list[Any]]]] = field(default_factory=dict)
    kline_calls: int = 0

    @property
    def url(self) -> str:
        return self.server.url_for("/").rstrip("/")

    def paths(self) -> list[str]:
        """Return the path of every request served so far."""
        return [request.path for request, _ in self.server.log]

    def kline_starts(self) -> list[int]:
        """Return the ``startTime`` of every klines request served so far."""
        return [int(request.args["startTime"]) for request, _ in self.server.log if request.path == "/api/v3/klines"]

    def handle_klines(self, request: Request) -> Response:
        self.kline_calls += 1
        if self.kline_calls in self.faults:
            return self.faults[self.kline_calls]
        key = (request.args.get("symbol", ""), request.args.get("interval", ""))
        limit = min(int(request.args.get("limit", 500)), 1000)
        start = int(request.args.get("startTime", 0))
        end = int(request.args.get("endTime", 2**62))
        if key in self.live:
            rows = self.live[key](start, limit)
        elif key in self.klines:
            rows = [r for r in self.klines[key] if start <= r[0] <= end][:limit]
        else:
            body = {"code": -1121, "msg": "Invalid symbol."}
            return Response(json.dumps(body), status=400, content_type="application/json")
        return Response(json.dumps(rows), status=200, content_type="application/json")


def gateway_error(status: int = 502) -> Response:
    """Return what a load balancer in front of the venue answers when the venue is down."""
    body = f"<html><body><h1>{status} Bad Gateway</h1></body></html>"
    return Response(body, status=status, content_type="text/html")


def binance_error(status: int, code: int, msg: str) -> Response:
    """Return an error response shaped like Binance's."""
    headers = {"Retry-After": "1"} if status == 429 else {}
    return Response(
        json.dumps({"code": code, "msg": msg}),
        status=status,
        content_type="application/json",
        headers=headers,
    )
