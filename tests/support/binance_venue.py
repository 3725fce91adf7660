"""A stateful loopback server answering like Binance's spot REST API v3, for live-trading tests.

:class:`BinanceVenue` serves one in-memory spot account (:mod:`support.binance_account`: balances,
orders, fills, matching) and one price per symbol that the test moves with :meth:`BinanceVenue.set_price`.
Its answers have the shapes recorded in ``tests/fixtures/ccxt/binance`` (see its README), filled from that
state, so ccxt's binance client pointed at :attr:`BinanceVenue.api_urls` builds, signs, parses and maps
errors as it does against Binance. It serves ``ping``, ``time``, ``exchangeInfo``, ``klines`` and the
signed ``account``, ``order`` (POST, GET, DELETE), ``openOrders``, ``allOrders`` and ``myTrades``.

Signed requests are checked as Binance does: ``X-MBX-APIKEY`` (-2015, 401), the HMAC-SHA256 signature of
query string + body (-1022) and ``timestamp`` within ``recvWindow`` (-1021).

Klines follow the wall clock: aligned to the interval (weeks open on Mondays), the still-forming candle
last, ``startTime``/``endTime``/``limit`` read as Binance reads them (open times; 500 by default, at most
1000; nothing before 2017-08-17). Before the venue started, prices wiggle ±0.1 % around the starting price
over six hours (a strategy stays quiet); after it, they are the prices set, and fills add to the volume.

Anything it does not model (another endpoint, order type or interval) is answered 501 and listed by
:meth:`BinanceVenue.unrouted`, so a test fails loudly instead of passing on a guess.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
import re
import secrets
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from types import TracebackType
from typing import Any
from urllib.parse import parse_qsl

from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from support.binance_account import (
    LIMIT_TYPES,
    MARKET_TYPES,
    STOP_TYPES,
    ZERO,
    Market,
    Order,
    PricePath,
    Reject,
    SpotAccount,
    Trade,
    Unmodelled,
    VenueBalance,
    VenueOrder,
    VenueTrade,
    f8,
    now_ms,
    recorded,
)

__all__ = [
    "API_KEY",
    "CCXT_OPTIONS",
    "SECRET",
    "START_BALANCES",
    "START_PRICES",
    "BinanceVenue",
    "VenueBalance",
    "VenueOrder",
    "VenueRequest",
    "VenueTrade",
    "recorded",
]

API_KEY = "tfTestKey0000000000000000000000000000000000000000000000000000001"  # fake, not a secret
SECRET = "tfTestSecret000000000000000000000000000000000000000000000000001"  # fake, not a secret
# ccxt options that keep ccxt's binance on the endpoints this venue serves (spot only, no sapi, no /time).
CCXT_OPTIONS: dict[str, Any] = {
    "fetchMarkets": {"types": ["spot"]},
    "fetchMargins": False,
    "fetchCurrencies": False,
    "adjustForTimeDifference": False,
    "warnOnFetchOpenOrdersWithoutSymbol": False,
}
START_PRICES = {"BTCUSDT": 97000.01, "ETHUSDT": 3050.0, "ETHBTC": 0.03144}
START_BALANCES = {"USDT": 10000.0, "BTC": 0.0, "ETH": 0.0, "BNB": 0.0}
LISTED_MS = 1_502_942_400_000  # 2017-08-17 04:00 UTC: Binance's first BTCUSDT candle, nothing older is served
MINUTE, HOUR, DAY = 60_000, 3_600_000, 86_400_000
INTERVALS = {
    "1s": 1_000, "1m": MINUTE, "3m": 3 * MINUTE, "5m": 5 * MINUTE, "15m": 15 * MINUTE, "30m": 30 * MINUTE,
    "1h": HOUR, "2h": 2 * HOUR, "4h": 4 * HOUR, "6h": 6 * HOUR, "8h": 8 * HOUR, "12h": 12 * HOUR,
    "1d": DAY, "3d": 3 * DAY, "1w": 7 * DAY,
}  # fmt: skip
WEEK_OFFSET = 4 * DAY  # weekly candles open on Mondays; 1970-01-01 was a Thursday
WICK = Decimal("0.0002")  # high/low of generated candles beyond their open/close


@dataclass(frozen=True, slots=True)
class VenueRequest:
    """One request the venue received, query and form parameters merged."""

    method: str
    path: str
    params: Mapping[str, str]
    headers: Mapping[str, str]
    status: int  # the HTTP status the venue answered


@dataclass
class _Fault:
    path: str
    method: str | None
    error: str
    after_effect: bool


class _QuickServer(HTTPServer):
    """pytest-httpserver's server, polling for shutdown every 20 ms instead of 500 (a stop per test)."""

    def thread_target(self) -> None:
        assert self.server is not None
        self.server.serve_forever(poll_interval=0.02)


def error_response(error: str, **fmt: str) -> Response:
    """The recorded error ``errors/<error>.json`` as Binance sends it (``fmt`` fills its message)."""
    answer = recorded(f"errors/{error.removesuffix('.json')}.json")
    body = answer["body"]
    if isinstance(body, dict):
        body = json.dumps({**body, "msg": body["msg"].format(**fmt)} if fmt else body)
    content_type = answer["headers"].get("Content-Type", "application/json;charset=UTF-8")
    return Response(body, status=answer["status"], headers=answer["headers"], content_type=content_type)


class BinanceVenue:
    """One Binance spot account on a loopback port; see the module docstring for what it answers.

    ``balances`` are the starting free balances (default :data:`START_BALANCES`); ``prices`` the starting
    prices by Binance symbol (default :data:`START_PRICES`); a symbol without one cannot be traded.
    Use it as a context manager, or call :meth:`start` and :meth:`stop`. Thread-safe.
    """

    def __init__(
        self,
        *,
        api_key: str = API_KEY,
        secret: str = SECRET,
        balances: Mapping[str, float] | None = None,
        prices: Mapping[str, float] | None = None,
        fee_rate: float = 0.001,
    ) -> None:
        self.api_key, self._secret = api_key, secret.encode()
        self._info = recorded("exchangeInfo.json")
        markets = {raw["symbol"]: Market.from_info(raw) for raw in self._info["symbols"]}
        self._account = SpotAccount(
            markets,
            START_BALANCES if balances is None else balances,
            START_PRICES if prices is None else prices,
            fee_rate,
        )
        self._lock = threading.RLock()
        self._faults: list[_Fault] = []
        self._delays: list[tuple[str, float]] = []  # (path, seconds) for the next requests to path
        self._log: list[VenueRequest] = []
        self._unrouted: list[str] = []
        self._routes: dict[tuple[str, str], tuple[bool, Callable[[Mapping[str, str]], Any]]] = {
            ("GET", "/api/v3/ping"): (False, lambda p: {}),
            ("GET", "/api/v3/time"): (False, lambda p: {"serverTime": now_ms()}),
            ("GET", "/api/v3/exchangeInfo"): (False, self._exchange_info),
            ("GET", "/api/v3/klines"): (False, self._klines),
            ("GET", "/api/v3/account"): (True, self._balances_answer),
            ("POST", "/api/v3/order"): (True, self._place),
            ("GET", "/api/v3/order"): (True, self._query),
            ("DELETE", "/api/v3/order"): (True, self._cancel),
            ("GET", "/api/v3/openOrders"): (True, self._open_orders),
            ("GET", "/api/v3/allOrders"): (True, self._all_orders),
            ("GET", "/api/v3/myTrades"): (True, self._my_trades),
        }
        self._server = _QuickServer(host="127.0.0.1", port=0, threaded=True)
        self._server.expect_request(re.compile(r"^/")).respond_with_handler(self._handle)

    # -- lifecycle and addresses ------------------------------------------------------------------------

    def start(self) -> BinanceVenue:
        self._server.start()
        return self

    def stop(self) -> None:
        if self._server.is_running():
            self._server.stop()

    def __enter__(self) -> BinanceVenue:
        return self.start()

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """The server's root, ``http://127.0.0.1:<port>``."""
        return self._server.url_for("/").rstrip("/")

    @property
    def api_urls(self) -> dict[str, str]:
        """ccxt ``urls["api"]`` overrides (``CcxtExchange(api_urls=...)``) pointing binance here."""
        return {"public": f"{self.url}/api/v3", "private": f"{self.url}/api/v3"}

    # -- test controls ----------------------------------------------------------------------------------

    def set_price(self, symbol: str, price: float) -> list[VenueOrder]:
        """Move ``symbol`` (Binance id, "BTCUSDT") to ``price`` now; return the orders it triggered or filled."""
        with self._lock:
            return [order.snapshot() for order in self._account.set_price(symbol, price)]

    def price(self, symbol: str) -> float:
        with self._lock:
            return float(self._account.path(symbol).current)

    def set_balance(self, asset: str, free: float) -> None:
        """Set an asset's free balance (a deposit or withdrawal outside trading)."""
        with self._lock:
            self._account.free[asset] = Decimal(str(free))

    def fail_next(self, path: str, error: str, *, method: str | None = None, after_effect: bool = False) -> None:
        """Answer the next request to ``path`` (of ``method``) with the recorded ``errors/<error>.json``.

        ``after_effect=True`` carries the request out first and only then answers the error: an order
        Binance took while its answer was lost (``timeout_status_unknown``, a gateway's 5xx).
        """
        error_response(error)  # fail here, in the test, on a name nothing is recorded for
        with self._lock:
            self._faults.append(_Fault(path, method.upper() if method else None, error, after_effect))

    def delay_next(self, path: str, seconds: float, *, times: int = 1) -> None:
        """Answer the next ``times`` requests to ``path`` only after ``seconds`` (a slow or congested venue).

        Other requests are answered meanwhile (the server is threaded).
        """
        with self._lock:
            self._delays.extend([(path, seconds)] * times)

    # -- audit ------------------------------------------------------------------------------------------

    def orders(self, symbol: str | None = None) -> list[VenueOrder]:
        """Every order the venue accepted, oldest first."""
        with self._lock:
            return [o.snapshot() for o in self._account.orders if symbol in (None, o.market.symbol)]

    def trades(self, symbol: str | None = None) -> list[VenueTrade]:
        """Every fill, oldest first."""
        with self._lock:
            return [t.snapshot() for t in self._account.trades if symbol in (None, t.order.market.symbol)]

    def balances(self) -> dict[str, VenueBalance]:
        """Free and locked balance of every asset the account has had."""
        with self._lock:
            return self._account.balances()

    def requests(self, path: str | None = None, method: str | None = None) -> list[VenueRequest]:
        """The requests received, oldest first; of one path and method when given."""
        with self._lock:
            return [r for r in self._log if path in (None, r.path) and method in (None, r.method)]

    def unrouted(self) -> list[str]:
        """Requests answered 501 because the venue does not model them ("GET /api/v3/depth: ...")."""
        with self._lock:
            return list(self._unrouted)

    # -- HTTP -------------------------------------------------------------------------------------------

    def _handle(self, request: Request) -> Response:
        with self._lock:
            delay = next((d for d in self._delays if d[0] == request.path), None)
            if delay is not None:
                self._delays.remove(delay)
        if delay is not None:
            time.sleep(delay[1])  # outside the lock: the venue answers other requests meanwhile
        query, body = request.query_string.decode(), request.get_data(as_text=True)
        params = dict(parse_qsl(query)) | dict(parse_qsl(body))
        with self._lock:
            response = self._answer(request, params, (query, body))
            headers = dict(request.headers.items())
            self._log.append(VenueRequest(request.method, request.path, params, headers, response.status_code))
            return response

    def _answer(self, request: Request, params: Mapping[str, str], raw: tuple[str, str]) -> Response:
        fault = next((f for f in self._faults if f.path == request.path and f.method in (None, request.method)), None)
        if fault is not None:
            self._faults.remove(fault)
            if not fault.after_effect:
                return error_response(fault.error)
        route = self._routes.get((request.method, request.path))
        try:
            if route is None:
                raise Unmodelled("no such endpoint here")
            signed, answer = route
            if signed:
                self._authenticate(request, params, raw)
            response = Response(json.dumps(answer(params)), content_type="application/json;charset=UTF-8")
        except Reject as reject:
            response = error_response(reject.error, **reject.fmt)
        except Unmodelled as gap:
            self._unrouted.append(f"{request.method} {request.path}: {gap}")
            response = Response(f"BinanceVenue does not model this: {gap}", status=501, content_type="text/plain")
        return response if fault is None else error_response(fault.error)  # the effect stands, its answer is lost

    def _authenticate(self, request: Request, params: Mapping[str, str], raw: tuple[str, str]) -> None:
        if request.headers.get("X-MBX-APIKEY") != self.api_key:
            raise Reject("invalid_api_key")
        signed = "".join(map(_unsigned, raw))  # Binance signs query string + body as sent, less the signature
        expected = hmac.new(self._secret, signed.encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(params.get("signature", ""), expected):
            raise Reject("invalid_signature")
        timestamp, window, now = _integer(params, "timestamp"), int(params.get("recvWindow", "5000")), now_ms()
        if timestamp > now + 1000:
            raise Reject("timestamp_ahead_of_server")
        if now - timestamp > window:
            raise Reject("timestamp_outside_recv_window")

    def _market(self, params: Mapping[str, str], *, trading: bool = False) -> Market:
        if not params.get("symbol"):
            raise Reject("mandatory_parameter", param="symbol")
        market = self._account.markets.get(params["symbol"])
        if market is None:
            raise Reject("invalid_symbol")
        if trading and not market.trading:
            raise Reject("market_closed")
        if trading and market.symbol not in self._account.paths:
            raise Unmodelled(f"{market.symbol} has no price (BinanceVenue(prices=...))")
        return market

    def _find(self, params: Mapping[str, str], missing: str) -> Order:
        market = self._market(params)
        if "orderId" in params:
            wanted = _integer(params, "orderId")
            order = next((o for o in self._account.orders if o.market is market and o.order_id == wanted), None)
        elif "origClientOrderId" in params:
            order = self._account.latest(market.symbol, params["origClientOrderId"])
        else:
            raise Reject("mandatory_parameter", param="orderId")
        if order is None:
            raise Reject(missing)
        return order

    # -- public endpoints -------------------------------------------------------------------------------

    def _exchange_info(self, params: Mapping[str, str]) -> dict[str, Any]:
        wanted = set(json.loads(params["symbols"])) if "symbols" in params else None
        if "symbol" in params:
            wanted = {params["symbol"]}
        symbols = [s for s in self._info["symbols"] if wanted is None or s["symbol"] in wanted]
        if wanted is not None and len(symbols) < len(wanted):
            raise Reject("invalid_symbol")
        return {**self._info, "serverTime": now_ms(), "symbols": symbols}

    def _klines(self, params: Mapping[str, str]) -> list[list[Any]]:
        market, interval = self._market(params), params.get("interval", "")
        if interval == "1M":
            raise Unmodelled("1M klines (calendar months)")
        if interval not in INTERVALS:
            raise Reject("invalid_interval")
        path = self._account.paths.get(market.symbol)
        if path is None:
            return []
        step, limit, now = INTERVALS[interval], _limit(params), now_ms()
        offset = WEEK_OFFSET if interval == "1w" else 0

        def opening(ms: int) -> int:  # open time of the candle holding ms
            return (ms - offset) // step * step + offset

        oldest, newest = opening(LISTED_MS - 1) + step, opening(now)
        if "endTime" in params:
            newest = min(newest, opening(_integer(params, "endTime")))
        if "startTime" in params:  # the first candles opening at or after startTime
            first = max(oldest, opening(_integer(params, "startTime") - 1) + step)
            last = min(newest, first + (limit - 1) * step)
        else:  # the latest candles, the forming one last
            first, last = max(oldest, newest - (limit - 1) * step), newest
        fills = [t for t in self._account.trades if t.order.market is market]
        return [_candle(path, fills, ms, step, now) for ms in range(first, last + 1, step)]

    # -- account endpoints ------------------------------------------------------------------------------

    def _balances_answer(self, params: Mapping[str, str]) -> dict[str, Any]:
        free, locked = self._account.free, self._account.locked
        rows = [{"asset": a, "free": f8(free[a]), "locked": f8(locked[a])} for a in sorted(set(free) | set(locked))]
        if params.get("omitZeroBalances") == "true":
            rows = [r for r in rows if free[r["asset"]] or locked[r["asset"]]]
        return {**recorded("account.json"), "updateTime": now_ms(), "balances": rows}

    def _place(self, params: Mapping[str, str]) -> dict[str, Any]:
        market = self._market(params, trading=True)
        side, kind = params.get("side", ""), params.get("type", "")
        if side not in ("BUY", "SELL"):
            raise Reject("mandatory_parameter", param="side")
        if kind not in MARKET_TYPES + LIMIT_TYPES or kind not in market.order_types:
            raise Unmodelled(f"order type {kind!r}")
        if "quantity" not in params and "quoteOrderQty" in params:
            raise Unmodelled("MARKET orders by quoteOrderQty")
        qty = _decimal(params, "quantity")
        price = _decimal(params, "price") if kind in LIMIT_TYPES else ZERO
        stop = _decimal(params, "stopPrice") if kind in STOP_TYPES else ZERO
        tif = params.get("timeInForce", "") if kind in LIMIT_TYPES else "GTC"
        if tif not in ("GTC", "IOC", "FOK"):
            raise Reject("mandatory_parameter", param="timeInForce")
        cid = params.get("newClientOrderId") or _random_id()
        order, trades = self._account.place(market, side, kind, tif, qty, price, stop, cid)
        # Binance's default answer: FULL for MARKET and LIMIT, ACK for the other types
        shape = params.get("newOrderRespType") or ("FULL" if kind in ("MARKET", "LIMIT") else "ACK")
        answer = {**order.ids(), "transactTime": order.time}
        if shape == "ACK":
            return answer
        answer |= {**order.terms(), "workingTime": order.working_time}
        if shape == "FULL":
            answer["fills"] = [t.fill_answer() for t in trades]
        return answer | {"selfTradePreventionMode": "EXPIRE_MAKER"}

    def _query(self, params: Mapping[str, str]) -> dict[str, Any]:
        return self._find(params, "order_does_not_exist").query_answer()

    def _cancel(self, params: Mapping[str, str]) -> dict[str, Any]:
        order = self._find(params, "unknown_order_sent")
        if not order.is_open:
            raise Reject("unknown_order_sent")
        self._account.close(order, "CANCELED")
        return {
            "symbol": order.market.symbol,
            "origClientOrderId": order.client_order_id,
            "orderId": order.order_id,
            "orderListId": -1,
            "clientOrderId": params.get("newClientOrderId") or _random_id(),  # the cancel request's own id
            "transactTime": order.update_time,
            **order.terms(),
            "selfTradePreventionMode": "EXPIRE_MAKER",
        }

    def _open_orders(self, params: Mapping[str, str]) -> list[dict[str, Any]]:
        market = self._market(params) if "symbol" in params else None
        return [o.query_answer() for o in self._account.orders if o.is_open and market in (None, o.market)]

    def _all_orders(self, params: Mapping[str, str]) -> list[dict[str, Any]]:
        market, limit = self._market(params), _limit(params)
        rows = [o for o in self._account.orders if o.market is market]
        if "orderId" in params:
            rows = [o for o in rows if o.order_id >= _integer(params, "orderId")]
        rows = _in_window(rows, params, lambda o: o.time)
        oldest_first = "orderId" in params or "startTime" in params  # else the most recent ones
        return [o.query_answer() for o in (rows[:limit] if oldest_first else rows[-limit:])]

    def _my_trades(self, params: Mapping[str, str]) -> list[dict[str, Any]]:
        market, limit = self._market(params), _limit(params)
        rows = [t for t in self._account.trades if t.order.market is market]
        if "orderId" in params:
            rows = [t for t in rows if t.order.order_id == _integer(params, "orderId")]
        if "fromId" in params:
            rows = [t for t in rows if t.trade_id >= _integer(params, "fromId")]
        rows = _in_window(rows, params, lambda t: t.time)
        oldest_first = "fromId" in params or "startTime" in params  # else the most recent ones
        return [t.my_trade_answer() for t in (rows[:limit] if oldest_first else rows[-limit:])]


def _candle(path: PricePath, fills: list[Trade], open_ms: int, step: int, now: int) -> list[Any]:
    """One kline row: the price path over the candle, generated volume plus the venue's own fills."""
    close_ms = open_ms + step - 1
    end = min(close_ms, now)
    first, last = path.at(open_ms), path.at(end)
    prices = [first, last, *path.between(open_ms, end)]
    high, low = max(prices), min(prices)
    if end < path.started:  # generated history gets small wicks
        high, low = (high * (1 + WICK)).quantize(path.tick), (low * (1 - WICK)).quantize(path.tick)
    elapsed = (end - open_ms + 1) / step
    generated = Decimal(f"{elapsed * step / MINUTE * (1.0 + 0.5 * abs(math.sin(open_ms / step))):.8f}")
    mine = [t for t in fills if open_ms <= t.time <= end]
    taker = [t for t in mine if not t.is_maker]
    volume = generated + sum((t.qty for t in mine), ZERO)
    quote_volume = generated * last + sum((t.quote for t in mine), ZERO)
    taker_base = generated / 2 + sum((t.qty for t in taker), ZERO)
    taker_quote = generated / 2 * last + sum((t.quote for t in taker), ZERO)
    count = int(generated * 10) + len(mine)
    return [
        open_ms, f8(first), f8(high), f8(low), f8(last), f8(volume), close_ms,
        f8(quote_volume), count, f8(taker_base), f8(taker_quote), "0",
    ]  # fmt: skip


def _decimal(params: Mapping[str, str], name: str) -> Decimal:
    try:
        value = Decimal(params[name])
    except (KeyError, InvalidOperation):
        raise Reject("mandatory_parameter", param=name) from None
    if not value.is_finite() or value <= 0:
        raise Reject("mandatory_parameter", param=name)
    return value


def _integer(params: Mapping[str, str], name: str) -> int:
    try:
        return int(params[name])
    except (KeyError, ValueError):
        raise Reject("mandatory_parameter", param=name) from None


def _limit(params: Mapping[str, str]) -> int:
    return max(1, min(_integer({"limit": "500", **params}, "limit"), 1000))


def _unsigned(part: str) -> str:
    return "&".join(p for p in part.split("&") if p and not p.startswith("signature="))


def _random_id() -> str:
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
    return "".join(secrets.choice(alphabet) for _ in range(22))


def _in_window(rows: Iterable[Any], params: Mapping[str, str], when: Callable[[Any], int]) -> list[Any]:
    start, end = int(params.get("startTime", 0)), int(params.get("endTime", 2**62))
    return [row for row in rows if start <= when(row) <= end]
