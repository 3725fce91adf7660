"""The state behind :class:`support.binance_venue.BinanceVenue`: one Binance spot account.

:class:`SpotAccount` keeps balances (free and locked), orders and fills, and one price path per symbol;
it places, cancels and matches orders the way Binance documents it:

* MARKET orders fill at once at the current price, in one fill; a LIMIT order that is marketable fills at
  once at the current price (taker), otherwise it rests and fills at its limit price (maker) when
  :meth:`SpotAccount.set_price` goes through it; STOP_LOSS and TAKE_PROFIT (and their ``_LIMIT`` forms)
  wait untriggered (``workingTime`` -1) until the price reaches ``stopPrice``, then work as a market
  (limit) order; a stop that would trigger at once is refused; IOC/FOK limits that do not fill expire;
* a ``newClientOrderId`` is refused (-2010 "Duplicate order sent.") while the symbol's latest order with
  that id is not FILLED: Binance's "same newClientOrderId can be accepted only when the previous one is
  filled, otherwise the order will be rejected";
* LOT_SIZE, PRICE_FILTER and NOTIONAL filters of the recorded exchangeInfo, then the balance (-2010);
* commission ``fee_rate`` of the asset received (the base asset on a buy, the quote asset on a sell, as
  in the recorded FULL answer); amounts are Decimal, quote amounts and commissions cut to 8 decimals, so
  free + locked always equal deposits + trades exactly.

Refusals raise :class:`Reject` naming a recorded error (``tests/fixtures/ccxt/binance/errors``).
"""

from __future__ import annotations

import itertools
import json
import math
import time
from bisect import bisect_left, bisect_right
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import ROUND_DOWN, Decimal
from pathlib import Path
from typing import Any

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "ccxt" / "binance"
E8, ZERO = Decimal("0.00000001"), Decimal(0)
MARKET_TYPES = ("MARKET", "STOP_LOSS", "TAKE_PROFIT")  # fill at the current price once working
LIMIT_TYPES = ("LIMIT", "STOP_LOSS_LIMIT", "TAKE_PROFIT_LIMIT")
STOP_TYPES = ("STOP_LOSS", "STOP_LOSS_LIMIT", "TAKE_PROFIT", "TAKE_PROFIT_LIMIT")
OPEN = ("NEW", "PARTIALLY_FILLED")
WIGGLE, WIGGLE_PERIOD_MS = 0.001, 6 * 3_600_000  # the generated history: ±0.1 % over six hours


def recorded(name: str) -> Any:
    """Return a recorded answer of ``tests/fixtures/ccxt/binance`` (``errors/x.json`` for an error)."""
    return json.loads((FIXTURES / name).read_text())


def f8(value: Decimal) -> str:
    """Format like Binance: eight decimals."""
    return f"{value:.8f}"


def now_ms() -> int:
    return time.time_ns() // 1_000_000


class Reject(Exception):  # noqa: N818 - an answer, not a failure of the venue
    """Refuse the request with the recorded error ``errors/<error>.json`` (``fmt`` fills its message)."""

    def __init__(self, error: str, **fmt: str) -> None:
        super().__init__(error)
        self.error, self.fmt = error, fmt


class Unmodelled(Exception):  # noqa: N818
    """The request is valid for Binance but this venue does not model it."""


@dataclass(frozen=True, slots=True)
class VenueOrder:
    """One order as the venue's own ledger holds it (the audit side of a live-trading test)."""

    order_id: str  # Binance's orderId, as a string like the adapter's exchange_order_id
    client_order_id: str
    symbol: str  # Binance's id, "BTCUSDT"
    unified_symbol: str  # ccxt's, "BTC/USDT"
    side: str  # BUY | SELL
    type: str  # MARKET, LIMIT, STOP_LOSS, STOP_LOSS_LIMIT, TAKE_PROFIT, TAKE_PROFIT_LIMIT
    status: str  # NEW, FILLED, CANCELED, EXPIRED
    orig_qty: float
    executed_qty: float
    cumulative_quote_qty: float
    price: float  # 0.0 for market-type orders
    stop_price: float  # 0.0 for non-stop orders
    triggered: bool  # False only for a stop still waiting for its price
    time_ms: int
    update_ms: int


@dataclass(frozen=True, slots=True)
class VenueTrade:
    """One fill of one order."""

    trade_id: int
    order_id: str
    client_order_id: str
    symbol: str
    unified_symbol: str
    side: str
    price: float
    qty: float
    quote_qty: float
    commission: float
    commission_asset: str
    is_maker: bool
    time_ms: int

    @property
    def fill_id(self) -> str:
        """The id the ccxt adapter gives this fill (``Fill.trade_id``)."""
        return f"{self.unified_symbol}:{self.trade_id}"


@dataclass(frozen=True, slots=True)
class VenueBalance:
    asset: str
    free: float
    locked: float

    @property
    def total(self) -> float:
        return self.free + self.locked


@dataclass(frozen=True, slots=True)
class Market:
    """One symbol of the recorded exchangeInfo, with the filters the venue enforces."""

    symbol: str
    base: str
    quote: str
    trading: bool
    order_types: frozenset[str]
    tick: Decimal
    min_price: Decimal
    max_price: Decimal
    step: Decimal
    min_qty: Decimal
    max_qty: Decimal
    min_notional: Decimal

    @classmethod
    def from_info(cls, raw: Mapping[str, Any]) -> Market:
        filters = {f["filterType"]: f for f in raw["filters"]}
        price, lot, notional = filters["PRICE_FILTER"], filters["LOT_SIZE"], filters["NOTIONAL"]
        return cls(
            symbol=raw["symbol"],
            base=raw["baseAsset"],
            quote=raw["quoteAsset"],
            trading=raw["status"] == "TRADING",
            order_types=frozenset(raw["orderTypes"]),
            tick=Decimal(price["tickSize"]).normalize(),
            min_price=Decimal(price["minPrice"]),
            max_price=Decimal(price["maxPrice"]),
            step=Decimal(lot["stepSize"]).normalize(),
            min_qty=Decimal(lot["minQty"]),
            max_qty=Decimal(lot["maxQty"]),
            min_notional=Decimal(notional["minNotional"]),
        )

    @property
    def unified(self) -> str:
        return f"{self.base}/{self.quote}"

    def check(self, qty: Decimal, price: Decimal, stop: Decimal) -> None:
        """Apply LOT_SIZE, PRICE_FILTER and NOTIONAL (``price``: the limit, stop or current price)."""
        if qty < self.min_qty or qty > self.max_qty or (qty - self.min_qty) % self.step:
            raise Reject("filter_failure_lot_size")
        for value in (price, stop):
            off_grid = (value - self.min_price) % self.tick
            if value and (value < self.min_price or value > self.max_price or off_grid):
                raise Reject("filter_failure_price_filter")
        if qty * price < self.min_notional:
            raise Reject("filter_failure_notional")


@dataclass
class Order:
    order_id: int
    client_order_id: str
    market: Market
    side: str
    type: str
    time_in_force: str
    qty: Decimal
    price: Decimal
    stop_price: Decimal
    time: int
    update_time: int
    working_time: int  # -1 while a stop waits for its price
    status: str = "NEW"
    executed: Decimal = ZERO
    quote: Decimal = ZERO
    lock_asset: str = ""
    locked: Decimal = ZERO

    @property
    def is_open(self) -> bool:
        return self.status in OPEN

    def reached(self, price: Decimal) -> bool:
        """Whether ``price`` triggers this stop: a stop-loss when the price goes against its side."""
        falling = (self.side == "SELL") == self.type.startswith("STOP_LOSS")
        return price <= self.stop_price if falling else price >= self.stop_price

    def marketable(self, price: Decimal) -> bool:
        return price <= self.price if self.side == "BUY" else price >= self.price

    def snapshot(self) -> VenueOrder:
        return VenueOrder(
            order_id=str(self.order_id),
            client_order_id=self.client_order_id,
            symbol=self.market.symbol,
            unified_symbol=self.market.unified,
            side=self.side,
            type=self.type,
            status=self.status,
            orig_qty=float(self.qty),
            executed_qty=float(self.executed),
            cumulative_quote_qty=float(self.quote),
            price=float(self.price),
            stop_price=float(self.stop_price),
            triggered=self.working_time != -1,
            time_ms=self.time,
            update_ms=self.update_time,
        )

    def ids(self) -> dict[str, Any]:
        """The fields every order answer starts with, in Binance's order."""
        return {
            "symbol": self.market.symbol,
            "orderId": self.order_id,
            "orderListId": -1,
            "clientOrderId": self.client_order_id,
        }

    def terms(self) -> dict[str, Any]:
        """The fields after the ids and times of new-order and cancel answers."""
        answer = {
            "price": f8(self.price),
            "origQty": f8(self.qty),
            "executedQty": f8(self.executed),
            "origQuoteOrderQty": f8(ZERO),
            "cummulativeQuoteQty": f8(self.quote),
            "status": self.status,
            "timeInForce": self.time_in_force,
            "type": self.type,
            "side": self.side,
        }
        if self.type in STOP_TYPES:
            answer["stopPrice"] = f8(self.stop_price)
        return answer

    def query_answer(self) -> dict[str, Any]:
        """The shape of GET /order, /openOrders and /allOrders."""
        return {
            **self.ids(),
            "price": f8(self.price),
            "origQty": f8(self.qty),
            "executedQty": f8(self.executed),
            "cummulativeQuoteQty": f8(self.quote),
            "status": self.status,
            "timeInForce": self.time_in_force,
            "type": self.type,
            "side": self.side,
            "stopPrice": f8(self.stop_price),
            "icebergQty": f8(ZERO),
            "time": self.time,
            "updateTime": self.update_time,
            "isWorking": self.working_time != -1,
            "workingTime": self.working_time,
            "origQuoteOrderQty": f8(ZERO),
            "selfTradePreventionMode": "EXPIRE_MAKER",
        }


@dataclass(frozen=True, slots=True)
class Trade:
    trade_id: int
    order: Order
    price: Decimal
    qty: Decimal
    quote: Decimal
    commission: Decimal
    commission_asset: str
    is_maker: bool
    time: int

    def fill_answer(self) -> dict[str, Any]:
        """One entry of a FULL new-order answer's ``fills``."""
        return {
            "price": f8(self.price),
            "qty": f8(self.qty),
            "commission": f8(self.commission),
            "commissionAsset": self.commission_asset,
            "tradeId": self.trade_id,
        }

    def my_trade_answer(self) -> dict[str, Any]:
        """One entry of GET /myTrades."""
        return {
            "symbol": self.order.market.symbol,
            "id": self.trade_id,
            "orderId": self.order.order_id,
            "orderListId": -1,
            "price": f8(self.price),
            "qty": f8(self.qty),
            "quoteQty": f8(self.quote),
            "commission": f8(self.commission),
            "commissionAsset": self.commission_asset,
            "time": self.time,
            "isBuyer": self.order.side == "BUY",
            "isMaker": self.is_maker,
            "isBestMatch": True,
        }

    def snapshot(self) -> VenueTrade:
        order = self.order
        return VenueTrade(
            trade_id=self.trade_id,
            order_id=str(order.order_id),
            client_order_id=order.client_order_id,
            symbol=order.market.symbol,
            unified_symbol=order.market.unified,
            side=order.side,
            price=float(self.price),
            qty=float(self.qty),
            quote_qty=float(self.quote),
            commission=float(self.commission),
            commission_asset=self.commission_asset,
            is_maker=self.is_maker,
            time_ms=self.time,
        )


@dataclass
class PricePath:
    """A symbol's price over time: (ms, price) steps, the first one when the venue started."""

    tick: Decimal
    times: list[int] = field(default_factory=list)
    prices: list[Decimal] = field(default_factory=list)

    @property
    def current(self) -> Decimal:
        return self.prices[-1]

    @property
    def started(self) -> int:
        return self.times[0]

    def at(self, ms: int) -> Decimal:
        if ms < self.times[0]:  # generated history: a slow, small wiggle that meets the starting price
            wave = math.sin(2 * math.pi * (ms - self.times[0]) / WIGGLE_PERIOD_MS)
            return (self.prices[0] * Decimal(1 + WIGGLE * wave)).quantize(self.tick)
        return self.prices[bisect_right(self.times, ms) - 1]

    def between(self, start: int, end: int) -> list[Decimal]:
        return self.prices[bisect_left(self.times, start) : bisect_right(self.times, end)]


class SpotAccount:
    """Balances, orders, fills and prices of one account; not thread-safe (the venue holds a lock)."""

    def __init__(
        self, markets: Mapping[str, Market], balances: Mapping[str, float], prices: Mapping[str, float], fee_rate: float
    ) -> None:
        self.markets = dict(markets)
        self.fee_rate = Decimal(str(fee_rate))
        self.free: defaultdict[str, Decimal] = defaultdict(Decimal)
        self.locked: defaultdict[str, Decimal] = defaultdict(Decimal)
        for asset, amount in balances.items():
            self.free[asset] = Decimal(str(amount))
        started = now_ms()
        self.paths: dict[str, PricePath] = {}
        for symbol, price in prices.items():
            if symbol not in self.markets:
                raise ValueError(f"{symbol} is not in the recorded exchangeInfo: {sorted(self.markets)}")
            tick = self.markets[symbol].tick
            self.paths[symbol] = PricePath(tick, [started], [Decimal(str(price)).quantize(tick)])
        self.orders: list[Order] = []
        self.trades: list[Trade] = []
        self._order_ids = itertools.count(47_200_000_001)
        self._trade_ids: defaultdict[str, itertools.count[int]] = defaultdict(lambda: itertools.count(4_176_000_001))

    def path(self, symbol: str) -> PricePath:
        if symbol not in self.paths:
            raise ValueError(f"{symbol} has no price here; pass it in prices=")
        return self.paths[symbol]

    def latest(self, symbol: str, client_order_id: str) -> Order | None:
        """The symbol's most recent order with this client order id (Binance answers for that one)."""
        mine = (o for o in reversed(self.orders) if o.market.symbol == symbol)
        return next((o for o in mine if o.client_order_id == client_order_id), None)

    def place(
        self, market: Market, side: str, kind: str, tif: str, qty: Decimal, price: Decimal, stop: Decimal, cid: str
    ) -> tuple[Order, list[Trade]]:
        """Accept one order or raise Reject; return it with the fills it took at once."""
        current = self.path(market.symbol).current
        market.check(qty, price or stop or current, stop)
        previous = self.latest(market.symbol, cid)
        if previous is not None and previous.status != "FILLED":
            raise Reject("duplicate_order")
        now = now_ms()
        working = -1 if kind in STOP_TYPES else now
        order = Order(next(self._order_ids), cid, market, side, kind, tif, qty, price, stop, now, now, working)
        if kind in STOP_TYPES and order.reached(current):
            raise Reject("stop_price_would_trigger_immediately")
        self._reserve(order, current)
        self.orders.append(order)
        trades = [] if kind in STOP_TYPES else self._work(order, current)
        if order.is_open and tif in ("IOC", "FOK"):
            self.close(order, "EXPIRED")
        return order, trades

    def close(self, order: Order, status: str) -> None:
        """End an open order (CANCELED, EXPIRED) and unlock what it held."""
        self._release(order)
        order.status, order.update_time = status, now_ms()

    def set_price(self, symbol: str, price: float) -> list[Order]:
        """Move the symbol to ``price`` now; trigger and fill its open orders, oldest first."""
        path = self.path(symbol)
        path.times.append(max(now_ms(), path.times[-1]))
        path.prices.append(Decimal(str(price)).quantize(path.tick))
        current, now, touched = path.current, now_ms(), []
        for order in [o for o in self.orders if o.is_open and o.market.symbol == symbol]:
            if order.working_time == -1:
                if not order.reached(current):
                    continue
                order.working_time = order.update_time = now
                self._work(order, current)
            elif order.marketable(current):  # a resting limit the price went through fills at its own price
                self._fill(order, order.price, maker=True)
            else:
                continue
            touched.append(order)
        return touched

    def balances(self) -> dict[str, VenueBalance]:
        assets = sorted(set(self.free) | set(self.locked))
        return {a: VenueBalance(a, float(self.free[a]), float(self.locked[a])) for a in assets}

    def _reserve(self, order: Order, current: Decimal) -> None:
        """Lock what the order may spend: the base asset of a sell, the quote asset of a buy."""
        market = order.market
        if order.side == "SELL":
            asset, amount = market.base, order.qty
        else:
            reference = order.price or order.stop_price or current
            asset, amount = market.quote, (order.qty * reference).quantize(E8, ROUND_DOWN)
        if self.free[asset] < amount:
            raise Reject("insufficient_balance")
        self.free[asset] -= amount
        self.locked[asset] += amount
        order.lock_asset, order.locked = asset, amount

    def _release(self, order: Order) -> None:
        self.free[order.lock_asset] += order.locked
        self.locked[order.lock_asset] -= order.locked
        order.locked = ZERO

    def _work(self, order: Order, price: Decimal) -> list[Trade]:
        """Put a (triggered) order to work at ``price``: market types and marketable limits take at once."""
        if order.type in MARKET_TYPES or order.marketable(price):
            trade = self._fill(order, price, maker=False)
            return [] if trade is None else [trade]
        return []

    def _fill(self, order: Order, price: Decimal, *, maker: bool) -> Trade | None:
        self._release(order)
        market, qty = order.market, order.qty - order.executed
        quote = (qty * price).quantize(E8, ROUND_DOWN)
        if order.side == "BUY":
            if self.free[market.quote] < quote:  # a buy stop that triggered above what it had set aside
                self.close(order, "EXPIRED")
                return None
            commission, asset = (qty * self.fee_rate).quantize(E8, ROUND_DOWN), market.base
            self.free[market.quote] -= quote
            self.free[market.base] += qty - commission
        else:
            commission, asset = (quote * self.fee_rate).quantize(E8, ROUND_DOWN), market.quote
            self.free[market.base] -= qty
            self.free[market.quote] += quote - commission
        now = now_ms()
        order.executed, order.quote, order.status, order.update_time = order.qty, order.quote + quote, "FILLED", now
        trade = Trade(next(self._trade_ids[market.symbol]), order, price, qty, quote, commission, asset, maker, now)
        self.trades.append(trade)
        return trade
