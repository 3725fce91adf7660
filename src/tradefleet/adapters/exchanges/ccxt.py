"""The ccxt exchange adapter: one account on any ccxt venue (Binance first), behind ``ExchangePort``.

Every ccxt call goes through :func:`translate_error`, the one place that maps ccxt's exception tree onto
TradeFleet's (``placing``: the call that sends an order)::

    RateLimitExceeded, DDoSProtection        RateLimitError, retry_after from the Retry-After header
    InvalidNonce                             TemporaryExchangeError (the venue refused the request)
    NetworkError, OperationFailed, and a     TemporaryExchangeError; AmbiguousOrderError when placing
      bare ExchangeError on an HTTP 5xx
    AuthenticationError, BadSymbol           AuthenticationError, UnknownSymbolError
    OrderNotFound, InsufficientFunds         OrderNotFoundError, InsufficientFundsError
    InvalidOrder                             InvalidOrderError
    BadRequest                               ExchangeError; InvalidOrderError when placing
    anything else                            ExchangeError; any non-ccxt error while placing is ambiguous

Reads are idempotent, so they are retried (bounded, with tenacity) on ``TemporaryExchangeError``;
``create_order`` is never retried, and ccxt's own ``maxRetriesOnFailure`` is forced to 0 so nothing
resends an order behind our back. An order whose outcome is unknown is resolved with :meth:`fetch_order`
by client order id.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from time import time
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import ccxt
from ccxt.base.decimal_to_precision import DECIMAL_PLACES, TICK_SIZE
from tenacity import RetryCallState, Retrying, before_sleep_log, retry_if_exception, stop_after_attempt

from tradefleet.core import errors
from tradefleet.core.orders import Fill, OrderSide, OrderStatus, OrderType
from tradefleet.core.ports import Balance, ExchangeCapabilities, ExchangeOrder, Market, OrderRequest

__all__ = [
    "CcxtExchange",
    "CcxtExchangeFactory",
    "ReadRetry",
    "market_from_ccxt",
    "rebase_urls",
    "translate_error",
]

log = logging.getLogger(__name__)
T = TypeVar("T")

# ccxt classes whose fetchOrder and cancelOrder take the unified ``clientOrderId`` param (checked in the
# ccxt 4.5 sources; binance sends it as origClientOrderId). ccxt's own ``fetchOrderWithClientOrderId`` flag
# is unset for most venues, so this table fills the gap; subclasses (binanceus, ...) inherit the entry.
CLIENT_ID_VENUES = frozenset({"binance", "bitget", "htx", "kraken", "mexc", "okx", "phemex", "woo"})
_STOP_FLAGS = ("createStopOrder", "createTriggerOrder", "createStopLossOrder", "createStopMarketOrder")
_DEFAULT_OPTIONS: dict[str, Any] = {"warnOnFetchOpenOrdersWithoutSymbol": False}
# Per-venue ccxt options, declared rather than branched on, keyed by ccxt class (subclasses inherit): this
# adapter trades spot, and binance would otherwise also load futures, delivery and margin markets, and with
# keys its wallet's currency list (a sapi endpoint the spot testnet lacks; markets carry what we use).
VENUE_OPTIONS: dict[str, dict[str, Any]] = {
    "binance": {
        "defaultType": "spot",
        "fetchMarkets": {"types": ["spot"]},
        "fetchMargins": False,
        "fetchCurrencies": False,
    },
}
_STATUS = {
    "closed": OrderStatus.FILLED,
    "canceled": OrderStatus.CANCELED,
    "expired": OrderStatus.CANCELED,
    "rejected": OrderStatus.REJECTED,
    "canceling": OrderStatus.OPEN,
}


def rebase_urls(urls: Any, base: str) -> Any:
    """Return ccxt's ``urls['api']`` with every URL's scheme and host replaced by ``base``'s (proxies, tests)."""
    if isinstance(urls, str):
        target, parts = urlsplit(base), urlsplit(urls)
        return urlunsplit(
            (target.scheme, target.netloc, target.path.rstrip("/") + parts.path, parts.query, parts.fragment)
        )
    if isinstance(urls, dict):
        return {key: rebase_urls(value, base) for key, value in urls.items()}
    return urls


def translate_error(
    exc: Exception,
    *,
    placing: bool = False,
    headers: Mapping[str, str] | None = None,
    http_status: int | None = None,
) -> errors.ExchangeError:
    """Return the TradeFleet error for a ccxt error.

    ``placing`` marks an order submission; ``headers`` and ``http_status`` describe the venue's answer, when
    one came: an error ccxt could not classify is temporary (and, when placing, ambiguous) on a 5xx answer.
    """
    message = str(exc) or type(exc).__name__
    details = {"ccxt": type(exc).__name__}
    if isinstance(exc, ccxt.DDoSProtection | ccxt.RateLimitExceeded):
        return errors.RateLimitError(message, retry_after=_retry_after(headers), details=details)
    if isinstance(exc, ccxt.InvalidNonce):
        return errors.TemporaryExchangeError(message, details=details)
    unclassified = type(exc) is ccxt.ExchangeError and http_status is not None and http_status >= 500
    if isinstance(exc, ccxt.OperationFailed) or unclassified or (placing and not isinstance(exc, ccxt.BaseError)):
        if placing:
            return errors.AmbiguousOrderError(
                message, hint="look the order up by client order id; do not resend it", details=details
            )
        return errors.TemporaryExchangeError(message, details=details)
    table: tuple[tuple[type[Exception], type[errors.ExchangeError]], ...] = (
        (ccxt.AuthenticationError, errors.AuthenticationError),
        (ccxt.BadSymbol, errors.UnknownSymbolError),
        (ccxt.OrderNotFound, errors.OrderNotFoundError),
        (ccxt.InsufficientFunds, errors.InsufficientFundsError),
        (ccxt.InvalidOrder, errors.InvalidOrderError),
        (ccxt.BadRequest, errors.InvalidOrderError if placing else errors.ExchangeError),
    )
    for ccxt_type, ours in table:
        if isinstance(exc, ccxt_type):
            return ours(message, details=details)
    return errors.ExchangeError(message, details=details)


def _retry_after(headers: Mapping[str, str] | None, default: float = 1.0) -> float:
    value = (headers or {}).get("Retry-After")
    if not value:
        return default
    try:
        return max(float(value), 0.0)
    except ValueError:
        try:
            return max(parsedate_to_datetime(value).timestamp() - time(), 0.0)
        except (TypeError, ValueError):
            return default


@dataclass(frozen=True, slots=True)
class ReadRetry:
    """Bounded retry of idempotent calls on temporary errors."""

    attempts: int = 3  # calls in total, the first included
    backoff_s: float = 0.25  # pause before the second attempt, doubled for each further one
    max_wait_s: float = 10.0  # a longer Retry-After is not waited out: the RateLimitError is raised

    def should_retry(self, exc: BaseException) -> bool:
        if isinstance(exc, errors.RateLimitError):
            return exc.retry_after <= self.max_wait_s
        return isinstance(exc, errors.TemporaryExchangeError)

    def wait(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome is not None else None
        if isinstance(exc, errors.RateLimitError):
            return exc.retry_after
        return float(self.backoff_s * 2 ** (state.attempt_number - 1))


def _step(value: Any, precision_mode: int) -> float:
    """Turn a ccxt precision into a step; 0.0 means no fixed step (significant-digit venues)."""
    if value is None:
        return 0.0
    if precision_mode == TICK_SIZE:
        return float(value)
    if precision_mode == DECIMAL_PLACES:
        return float(10.0 ** -int(value))
    return 0.0


def market_from_ccxt(raw: Mapping[str, Any], precision_mode: int) -> Market:
    """Convert one ccxt market structure into a core :class:`Market`."""
    precision = raw.get("precision") or {}
    limits = raw.get("limits") or {}
    return Market(
        symbol=raw["symbol"],
        base=raw["base"],
        quote=raw["quote"],
        price_precision=_step(precision.get("price"), precision_mode),
        amount_precision=_step(precision.get("amount"), precision_mode),
        min_notional=float((limits.get("cost") or {}).get("min") or 0.0),
        min_amount=float((limits.get("amount") or {}).get("min") or 0.0),
        taker_fee=float(raw.get("taker") or 0.0),
        maker_fee=float(raw.get("maker") or 0.0),
    )


def _status(raw: Mapping[str, Any]) -> OrderStatus:
    status = raw.get("status")
    if status == "open":
        return OrderStatus.PARTIALLY_FILLED if (raw.get("filled") or 0) > 0 else OrderStatus.OPEN
    return _STATUS.get(status or "", OrderStatus.UNKNOWN)


def _order_type(raw: Mapping[str, Any]) -> OrderType:
    if raw.get("type") == "limit":
        return OrderType.LIMIT
    return OrderType.STOP if raw.get("triggerPrice") else OrderType.MARKET


def _timestamp(raw: Mapping[str, Any]) -> int:
    # Binance reports workingTime -1 for untriggered stops, and ccxt picks it as the order's timestamp.
    for key in ("timestamp", "lastUpdateTimestamp", "lastTradeTimestamp"):
        value = raw.get(key)
        if value is not None and value > 0:
            return int(value)
    return 0


def _fill(trade: Mapping[str, Any], client_order_id: str, order_ts: int) -> Fill:
    fee = trade.get("fee") or {}
    return Fill(
        # Some venues (Binance) number trades per symbol; the symbol makes the id unique per exchange.
        trade_id=f"{trade['symbol']}:{trade['id']}",
        client_order_id=client_order_id,
        price=float(trade["price"]),
        amount=float(trade["amount"]),
        fee=float(fee.get("cost") or 0.0),
        timestamp_ms=int(trade.get("timestamp") or order_ts),
        fee_currency=fee.get("currency") or "",
    )


def _usable_trades(raw: Mapping[str, Any]) -> list[dict[str, Any]] | None:
    """Return the order's embedded trades, or None when they cannot account for its filled amount."""
    trades = list(raw.get("trades") or [])
    if any(t.get("id") is None for t in trades):
        return None
    if (raw.get("filled") or 0) > 0 and not trades:
        return None
    return trades


def order_from_ccxt(
    raw: Mapping[str, Any], trades: list[dict[str, Any]], client_order_id: str | None = None
) -> ExchangeOrder:
    """Convert a ccxt order structure; a known ``client_order_id`` wins over the venue's echo."""
    cid = client_order_id or raw.get("clientOrderId") or ""
    ts = _timestamp(raw)
    fills = tuple(_fill(t, cid, ts) for t in trades)
    fee = sum(f.fee for f in fills) if fills else float((raw.get("fee") or {}).get("cost") or 0.0)
    return ExchangeOrder(
        client_order_id=cid,
        exchange_order_id=str(raw.get("id") or ""),
        symbol=raw["symbol"],
        side=OrderSide(raw["side"]),
        type=_order_type(raw),
        status=_status(raw),
        amount=float(raw.get("amount") or 0.0),
        filled=float(raw.get("filled") or 0.0),
        average=float(raw.get("average") or 0.0),
        fee=fee,
        timestamp_ms=ts,
        price=float(raw["price"]) if raw.get("price") else None,
        stop_price=float(raw["triggerPrice"]) if raw.get("triggerPrice") else None,
        fills=fills,
    )


def capabilities_from_ccxt(exchange: ccxt.Exchange) -> ExchangeCapabilities:
    """Derive the capabilities from ccxt's ``has`` flags and :data:`CLIENT_ID_VENUES`.

    A placement may reach the venue until its request times out (a request the venue queued, or one a
    stalled gateway sends late is refused once older than the venue's receive window): an order the venue
    does not know is taken as never accepted only after three timeouts, and at least 30 s.
    """
    has = exchange.has
    lineage = {cls.__name__ for cls in type(exchange).__mro__}
    by_client_id = bool(has.get("fetchOrderWithClientOrderId")) or bool(lineage & CLIENT_ID_VENUES)
    return ExchangeCapabilities(
        stop_orders=any(has.get(flag) for flag in _STOP_FLAGS),
        client_order_id=by_client_id,
        fetch_order_by_client_id=by_client_id,
        shorting=False,  # spot only: margin borrowing is not wired
        placement_settle_s=max(30.0, 3 * float(exchange.timeout) / 1000),
    )


class CcxtExchange:
    """One account on one ccxt venue (sync ccxt); implements ``ExchangePort``.

    ``sandbox`` switches to the venue's test network (a venue without one is a ConfigError); ``api_url``
    re-points every REST URL at one base and ``api_urls`` overrides single entries of ccxt's ``urls["api"]``
    after that (proxies, recorded-answer servers); ``options``
    are ccxt options; ``capabilities`` replaces the ones derived from ccxt where its flags are wrong.
    """

    def __init__(
        self,
        exchange_id: str,
        *,
        api_key: str | None = None,
        secret: str | None = None,
        password: str | None = None,
        sandbox: bool = False,
        api_url: str | None = None,
        api_urls: Mapping[str, str] | None = None,
        options: Mapping[str, Any] | None = None,
        timeout_ms: int = 10_000,
        retry: ReadRetry | None = None,
        capabilities: ExchangeCapabilities | None = None,
    ) -> None:
        if exchange_id not in ccxt.exchanges:
            raise errors.ConfigError(f"ccxt has no exchange {exchange_id!r}", hint="see ccxt.exchanges")
        venue_class = getattr(ccxt, exchange_id)
        venue = next((VENUE_OPTIONS[c.__name__] for c in venue_class.__mro__ if c.__name__ in VENUE_OPTIONS), {})
        config: dict[str, Any] = {
            "enableRateLimit": True,
            "timeout": timeout_ms,
            # resending is our decision, never ccxt's: an order must not be sent twice
            "options": {**_DEFAULT_OPTIONS, **venue, **(options or {}), "maxRetriesOnFailure": 0},
        }
        for key, value in (("apiKey", api_key), ("secret", secret), ("password", password)):
            if value is not None:
                config[key] = value
        self._ccxt: ccxt.Exchange = venue_class(config)
        if sandbox:
            # ccxt lists "test": None for venues without one, and set_sandbox_mode then fails on it
            if not self._ccxt.urls.get("test"):
                raise errors.ConfigError(f"{exchange_id} has no sandbox in ccxt", hint="set sandbox = false")
            self._ccxt.set_sandbox_mode(True)
        if api_url:
            self._ccxt.urls["api"] = rebase_urls(self._ccxt.urls.get("api"), api_url)
        if api_urls:
            current = self._ccxt.urls.get("api")
            if not isinstance(current, dict):
                raise errors.ConfigError(f"{exchange_id}: ccxt api urls are not a mapping, cannot override them")
            self._ccxt.urls["api"] = {**current, **api_urls}
        self.name = exchange_id
        self.sandbox = sandbox
        self.capabilities = capabilities or capabilities_from_ccxt(self._ccxt)
        self._retry = retry or ReadRetry()
        self._lock = threading.RLock()  # a sync ccxt instance is not safe to share between threads
        self._http_status: int | None = None
        on_rest_response = self._ccxt.on_rest_response

        def remember_status(code: int, *answer: Any) -> Any:  # ccxt's hook on every HTTP answer
            self._http_status = int(code)
            return on_rest_response(code, *answer)

        self._ccxt.on_rest_response = remember_status

    # -- the port ---------------------------------------------------------------------------------------

    def load_markets(self) -> dict[str, Market]:
        """Reload the venue's active spot markets."""
        markets = self._read(lambda: self._ccxt.load_markets(True))
        mode = int(self._ccxt.precisionMode)
        return {
            symbol: market_from_ccxt(raw, mode)
            for symbol, raw in markets.items()
            if raw.get("spot") and raw.get("active") is not False
        }

    def fetch_balance(self) -> dict[str, Balance]:
        """Return the balances of every currency the account holds (zero balances left out)."""
        raw = self._read(self._ccxt.fetch_balance)
        held = [currency for currency, total in (raw.get("total") or {}).items() if total]
        return {c: Balance(c, float(raw[c].get("free") or 0.0), float(raw[c].get("used") or 0.0)) for c in held}

    def create_order(self, request: OrderRequest) -> ExchangeOrder:
        """Send one order, once; raise AmbiguousOrderError when its outcome is unknown."""
        self._ensure_markets()
        symbol = request.symbol
        amount = float(self._call(lambda: self._ccxt.amount_to_precision(symbol, request.amount)))
        params: dict[str, Any] = {"maxRetriesOnFailure": 0}
        if self.capabilities.client_order_id:
            params["clientOrderId"] = request.client_order_id
        price: float | None = None
        if request.type is OrderType.LIMIT:
            if request.price is None:
                raise errors.InvalidOrderError(f"limit order {request.client_order_id} has no price")
            limit = request.price
            price = float(self._call(lambda: self._ccxt.price_to_precision(symbol, limit)))
        elif request.type is OrderType.STOP:
            if request.stop_price is None:
                raise errors.InvalidOrderError(f"stop order {request.client_order_id} has no stop price")
            if not self.capabilities.stop_orders:
                raise errors.InvalidOrderError(f"{self.name} does not take stop orders through ccxt")
            stop = request.stop_price
            params["triggerPrice"] = float(self._call(lambda: self._ccxt.price_to_precision(symbol, stop)))
        ccxt_type = "limit" if request.type is OrderType.LIMIT else "market"
        raw = self._call(
            lambda: self._ccxt.create_order(symbol, ccxt_type, request.side.value, amount, price, params),
            placing=True,
        )
        trades = _usable_trades(raw)
        if trades is None:
            try:
                trades = self._order_trades(raw)
            except errors.ExchangeError as exc:  # the order stands; fetch_order brings its fills later
                log.warning("order %s placed, its fills not fetched: %s", request.client_order_id, exc)
                trades = []
        return order_from_ccxt(raw, trades, request.client_order_id)

    def cancel_order(self, symbol: str, client_order_id: str) -> ExchangeOrder:
        """Cancel by client order id and return the order as it stands.

        An order that had already finished comes back as it finished (FILLED, CANCELED, ...);
        OrderNotFoundError means the venue does not know the order.
        """
        self._ensure_markets()
        if self.capabilities.fetch_order_by_client_id:
            order_id, params = "", {"clientOrderId": client_order_id}
        else:
            found = self._scan_for(symbol, client_order_id)
            if found is None:
                raise errors.OrderNotFoundError(f"{self.name} has no order {client_order_id} on {symbol}")
            order_id, params = found["id"], {}
        try:
            raw = self._read(lambda: self._ccxt.cancel_order(order_id, symbol, params))
        except errors.OrderNotFoundError:
            # Venues answer "unknown order" for orders already done, and for a retried cancel whose first
            # attempt went through: report the order as it stands when it exists.
            order = self.fetch_order(symbol, client_order_id)
            if order is None or order.status.is_live:
                raise
            return order
        return self._complete(raw, client_order_id)

    def fetch_order(self, symbol: str, client_order_id: str) -> ExchangeOrder | None:
        """Look an order up by client order id; None when the venue says it does not exist."""
        self._ensure_markets()
        if not self.capabilities.fetch_order_by_client_id:
            found = self._scan_for(symbol, client_order_id)
            return None if found is None else self._complete(found, client_order_id)
        params = {"clientOrderId": client_order_id}
        try:
            raw = self._read(lambda: self._ccxt.fetch_order("", symbol, params))
        except errors.OrderNotFoundError:
            return None
        return self._complete(raw, client_order_id)

    def fetch_open_orders(self, symbol: str | None = None) -> list[ExchangeOrder]:
        """Return the account's open orders, of one symbol or of all."""
        self._ensure_markets()
        raws = self._read(lambda: self._ccxt.fetch_open_orders(symbol))
        return [self._complete(raw) for raw in raws]

    # -- market data (not part of the port: live candle feeds) -------------------------------------------

    def milliseconds(self) -> int:
        """Return the venue client's clock (epoch ms)."""
        return int(self._ccxt.milliseconds())

    def fetch_ohlcv(self, symbol: str, timeframe: str, since_ms: int, limit: int) -> list[list[Any]]:
        """Return one page of OHLCV rows from ``since_ms`` (retried like every read)."""
        rows: list[list[Any]] = self._read(lambda: self._ccxt.fetch_ohlcv(symbol, timeframe, since_ms, limit))
        return rows

    # -- helpers ----------------------------------------------------------------------------------------

    def _ensure_markets(self) -> None:
        # create_order must not load markets inside the placing call, where a failure reads as ambiguous
        if not self._ccxt.markets:
            self._read(self._ccxt.load_markets)

    def _complete(self, raw: Mapping[str, Any], client_order_id: str | None = None) -> ExchangeOrder:
        trades = _usable_trades(raw)
        return order_from_ccxt(raw, self._order_trades(raw) if trades is None else trades, client_order_id)

    def _order_trades(self, raw: Mapping[str, Any]) -> list[dict[str, Any]]:
        """Fetch an order's trades from the venue, for answers that do not embed them."""
        order_id, symbol = raw.get("id"), raw.get("symbol")
        has = self._ccxt.has
        if has.get("fetchOrderTrades"):
            return list(self._read(lambda: self._ccxt.fetch_order_trades(order_id, symbol)))
        if has.get("fetchMyTrades"):
            since = raw.get("timestamp")
            mine = self._read(lambda: self._ccxt.fetch_my_trades(symbol, since))
            return [t for t in mine if t.get("order") == order_id]
        return []

    def _scan_for(self, symbol: str, client_order_id: str) -> dict[str, Any] | None:
        """Find an order by client order id among open and past orders, for venues that cannot look it up."""
        if not self.capabilities.client_order_id:  # "not found" would be a guess: the venue has no such ids
            raise errors.ExchangeError(f"orders on {self.name} carry no client order id to look them up by")
        has = self._ccxt.has
        sources: list[Callable[[], list[dict[str, Any]]]] = []
        if has.get("fetchOpenOrders"):
            sources.append(lambda: self._ccxt.fetch_open_orders(symbol))
        if has.get("fetchClosedOrders"):
            sources.append(lambda: self._ccxt.fetch_closed_orders(symbol))
        elif has.get("fetchOrders"):
            sources.append(lambda: self._ccxt.fetch_orders(symbol))
        if not sources:
            raise errors.ExchangeError(f"{self.name} cannot look orders up by client order id through ccxt")
        for source in sources:
            for raw in self._read(source):
                if raw.get("clientOrderId") == client_order_id:
                    return raw
        return None

    def _read(self, fn: Callable[[], T]) -> T:
        retrying = Retrying(
            stop=stop_after_attempt(self._retry.attempts),
            wait=self._retry.wait,
            retry=retry_if_exception(self._retry.should_retry),
            before_sleep=before_sleep_log(log, logging.WARNING),
            reraise=True,
        )
        result: T = retrying(self._call, fn)
        return result

    def _call(self, fn: Callable[[], T], *, placing: bool = False) -> T:
        with self._lock:
            self._http_status = None
            try:
                return fn()
            except ccxt.BaseError as exc:
                status = self._http_status  # None: no answer came, ccxt's last headers are an older call's
                headers = self._ccxt.last_response_headers if status is not None else None
                raise translate_error(exc, placing=placing, headers=headers, http_status=status) from exc
            except Exception as exc:
                if not placing:
                    raise
                # a failure past the point of sending (a parsing error, ...) leaves the outcome unknown
                raise translate_error(exc, placing=True) from exc


class CcxtExchangeFactory:
    """Hand out one :class:`CcxtExchange` per (exchange, API key); the composition root owns it.

    One ccxt instance per account keeps ccxt's rate limiter and nonce per account, as the venue counts them.
    """

    def __init__(self, *, timeout_ms: int = 10_000, retry: ReadRetry | None = None) -> None:
        self._timeout_ms = timeout_ms
        self._retry = retry
        self._lock = threading.Lock()
        self._adapters: dict[tuple[str, str | None], tuple[str, CcxtExchange]] = {}

    def get(
        self,
        exchange_id: str,
        api_key: str | None = None,
        *,
        secret: str | None = None,
        password: str | None = None,
        sandbox: bool = False,
        api_url: str | None = None,
        api_urls: Mapping[str, str] | None = None,
        options: Mapping[str, Any] | None = None,
    ) -> CcxtExchange:
        """Return the adapter for this account, creating it on first use.

        Asking again for the same account with other settings is a ConfigError: one ccxt instance cannot
        serve two configurations.
        """
        settings = (
            secret,
            password,
            sandbox,
            api_url,
            sorted((api_urls or {}).items()),
            sorted((options or {}).items()),
        )
        fingerprint = hashlib.sha256(repr(settings).encode()).hexdigest()  # keeps no second copy of secrets
        with self._lock:
            known = self._adapters.get((exchange_id, api_key))
            if known is not None:
                if known[0] != fingerprint:
                    raise errors.ConfigError(
                        f"this {exchange_id} account is already configured differently",
                        hint="give each account one configuration",
                    )
                return known[1]
            adapter = CcxtExchange(
                exchange_id,
                api_key=api_key,
                secret=secret,
                password=password,
                sandbox=sandbox,
                api_url=api_url,
                api_urls=api_urls,
                options=options,
                timeout_ms=self._timeout_ms,
                retry=self._retry,
            )
            self._adapters[(exchange_id, api_key)] = (fingerprint, adapter)
            return adapter
