"""The simulated exchange: a first-class venue used by paper trading, backtests, the demo fleet and tests.

:class:`SimulatedVenue` holds markets, a durable ledger (balances, orders, fills) and the last price of each
symbol; it is driven by closed candles (replayed from the candle store or generated). Each account on it is an
:class:`SimulatedExchange`, which implements :class:`tradefleet.core.ports.ExchangePort`.

Fill rules (the backtest kernel applies the same ones):

* market orders fill at once at the current price (the open of the forming candle) ± slippage, taker fee;
* resting orders are matched against each closed candle's range: a sell stop triggers when ``low <= stop``
  and fills at ``min(open, stop)`` − slippage; a sell limit fills at ``max(open, price)`` when ``high >= price``;
  buys mirror this;
* fees are charged in the quote currency; amounts are floored to the market's step, prices rounded to its tick;
* client order ids are unique among an account's open orders, as real venues enforce.
"""

from __future__ import annotations

import sqlite3
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tradefleet.adapters.exchanges.faults import FaultPlan
from tradefleet.adapters.exchanges.sim_ledger import Ledger
from tradefleet.core.errors import (
    InsufficientFundsError,
    InvalidOrderError,
    OrderNotFoundError,
    TemporaryExchangeError,
    UnknownSymbolError,
)
from tradefleet.core.orders import Fill, OrderSide, OrderStatus, OrderType
from tradefleet.core.ports import Balance, Clock, ExchangeCapabilities, ExchangeOrder, Market, OrderRequest
from tradefleet.core.precision import floor_to_step, round_to_tick

EPS = 1e-12

OrderRow = dict[str, Any]  # one row of the ledger's orders table, kept in memory while it rests


@dataclass(frozen=True, slots=True)
class SimSettings:
    slippage_bps: float = 5.0
    default_taker_fee: float = 0.001
    default_maker_fee: float = 0.001


class SimulatedVenue:
    """Markets, ledger and prices of the simulated exchange, shared by all its accounts."""

    name = "simulated"

    def __init__(
        self,
        markets: dict[str, Market],
        *,
        clock: Clock,
        ledger_path: Path | None = None,
        settings: SimSettings | None = None,
        faults: FaultPlan | None = None,
    ) -> None:
        self.markets = dict(markets)
        self.clock = clock
        self.settings = settings or SimSettings()
        self.faults = faults or FaultPlan()
        self.ledger = Ledger(ledger_path)
        self.marks: dict[str, float] = {}
        self.market_ms: dict[str, int] = {}  # market time per symbol: close of the last candle seen
        self._balances: dict[tuple[str, str], list[float]] = {}
        self._resting: dict[str, dict[int, OrderRow]] = defaultdict(dict)
        self._listeners: dict[str, list[Callable[[ExchangeOrder], None]]] = {}
        self._load()

    # -- state -------------------------------------------------------------------------------------
    def _load(self) -> None:
        self._balances.clear()
        self._resting.clear()
        for row in self.ledger.query("SELECT account, currency, free, used FROM balances"):
            self._balances[(row["account"], row["currency"])] = [row["free"], row["used"]]
        for row in self.ledger.query("SELECT * FROM orders WHERE status = 'OPEN'"):
            self._resting[row["symbol"]][row["id"]] = dict(row)

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        """One ledger transaction; on failure memory is reloaded from the ledger so both agree."""
        try:
            with self.ledger.tx() as db:
                yield db
        except BaseException:
            self._load()
            raise

    def add_market(self, market: Market) -> None:
        self.markets[market.symbol] = market

    def open_account(self, account: str, balances: dict[str, float]) -> SimulatedExchange:
        """Return the account, funding it with ``balances`` only when it is new."""
        if not any(key[0] == account for key in self._balances):
            with self._tx() as db:
                for currency, amount in balances.items():
                    if amount < 0:
                        raise InvalidOrderError(f"starting balance of {currency} must not be negative")
                    db.execute("INSERT INTO balances VALUES (?, ?, ?, 0)", (account, currency, float(amount)))
                    self._balances[(account, currency)] = [float(amount), 0.0]
        return SimulatedExchange(self, account)

    def balance(self, account: str) -> dict[str, Balance]:
        return {cur: Balance(cur, free, used) for (acc, cur), (free, used) in self._balances.items() if acc == account}

    def _move(self, db: sqlite3.Connection, account: str, currency: str, free: float, used: float = 0.0) -> None:
        bal = self._balances.get((account, currency), [0.0, 0.0])
        new_free, new_used = bal[0] + free, bal[1] + used
        if new_free < -1e-9 * max(1.0, abs(bal[0])) or new_used < -1e-9 * max(1.0, abs(bal[1])):
            raise InsufficientFundsError(
                f"account {account}: {currency} free {bal[0]:.8f} is not enough for {-free:.8f}"
            )
        new_free, new_used = max(new_free, 0.0), max(new_used, 0.0)
        db.execute(
            "INSERT INTO balances VALUES (?, ?, ?, ?) ON CONFLICT (account, currency) "
            "DO UPDATE SET free = excluded.free, used = excluded.used",
            (account, currency, new_free, new_used),
        )
        self._balances[(account, currency)] = [new_free, new_used]

    def market(self, symbol: str) -> Market:
        try:
            return self.markets[symbol]
        except KeyError:
            raise UnknownSymbolError(f"simulated exchange does not list {symbol}") from None

    # -- orders --------------------------------------------------------------------------------------
    def place(self, account: str, req: OrderRequest) -> ExchangeOrder:
        self.faults.before_call("create_order")
        market = self.market(req.symbol)
        amount = floor_to_step(req.amount, market.amount_precision)
        if amount <= 0 or amount < market.min_amount:
            raise InvalidOrderError(f"amount {req.amount} of {req.symbol} is below the minimum after rounding")
        price = round_to_tick(req.price, market.price_precision) if req.price is not None else None
        stop = round_to_tick(req.stop_price, market.price_precision) if req.stop_price is not None else None
        if req.type is OrderType.LIMIT and not price:
            raise InvalidOrderError("limit orders need a positive price")
        if req.type is OrderType.STOP and not stop:
            raise InvalidOrderError("stop orders need a positive stop price")
        mark = self.marks.get(req.symbol)
        reference = price or stop or mark
        if reference is None:
            raise TemporaryExchangeError(f"no price for {req.symbol} yet")
        if amount * reference < market.min_notional:
            raise InvalidOrderError(
                f"order value {amount * reference:.8f} {market.quote} is below the minimum {market.min_notional}"
            )
        now = self.market_ms.get(req.symbol) or self.clock.now_ms()
        with self._tx() as db:
            try:
                cur = db.execute(
                    "INSERT INTO orders (account, client_order_id, symbol, side, type, amount, price, stop_price,"
                    " status, ts_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'OPEN', ?)",
                    (
                        account,
                        req.client_order_id,
                        req.symbol,
                        req.side.value,
                        req.type.value,
                        amount,
                        price,
                        stop,
                        now,
                    ),
                )
            except sqlite3.IntegrityError:  # the unique index over open orders' client ids
                raise InvalidOrderError(
                    f"Duplicate order sent: client order id {req.client_order_id} is open"
                ) from None
            row: OrderRow = {
                "id": int(cur.lastrowid or 0),
                "account": account,
                "client_order_id": req.client_order_id,
                "symbol": req.symbol,
                "side": req.side.value,
                "type": req.type.value,
                "amount": amount,
                "price": price,
                "stop_price": stop,
                "status": "OPEN",
                "filled": 0.0,
                "average": 0.0,
                "fee": 0.0,
                "reserved": 0.0,
                "ts_ms": now,
            }
            fills: list[Fill] = []
            crosses = self._crosses_now(row, mark)
            if crosses is not None:
                fills.append(self._fill(db, row, crosses, market.taker_fee, now))
            else:
                self._reserve(db, row, market)
        self.faults.after_accept(req.client_order_id)
        return _exchange_order(row, tuple(fills))

    def _crosses_now(self, row: OrderRow, mark: float | None) -> float | None:
        """Return the fill price when the order executes on arrival, else None (it rests)."""
        if row["type"] == OrderType.MARKET.value:
            if mark is None:
                raise TemporaryExchangeError(f"no price for {row['symbol']} yet")
            return self._slipped(mark, row["side"])
        if mark is None:
            return None
        buy = row["side"] == OrderSide.BUY.value
        if row["type"] == OrderType.LIMIT.value and (
            (buy and row["price"] >= mark) or (not buy and row["price"] <= mark)
        ):
            return mark
        if row["type"] == OrderType.STOP.value and (
            (buy and mark >= row["stop_price"]) or (not buy and mark <= row["stop_price"])
        ):
            return self._slipped(mark, row["side"])
        return None

    def _slipped(self, price: float, side: str) -> float:
        slip = self.settings.slippage_bps / 10_000
        return price * (1 + slip) if side == OrderSide.BUY.value else price * (1 - slip)

    def _affordable(self, row: OrderRow, price: float, fee_rate: float) -> bool:
        if row["side"] != OrderSide.BUY.value:
            return True
        market = self.market(row["symbol"])
        free = self._balances.get((row["account"], market.quote), [0.0, 0.0])[0]
        return bool(free + row["reserved"] >= row["amount"] * price * (1 + fee_rate))

    def _reserve(self, db: sqlite3.Connection, row: OrderRow, market: Market) -> None:
        if row["side"] == OrderSide.BUY.value:
            level = row["price"] or row["stop_price"]
            reserved = row["amount"] * level * (1 + market.taker_fee) * (1 + 2 * self.settings.slippage_bps / 1e4)
            self._move(db, row["account"], market.quote, -reserved, reserved)
        else:
            reserved = row["amount"]
            self._move(db, row["account"], market.base, -reserved, reserved)
        db.execute("UPDATE orders SET reserved = ? WHERE id = ?", (reserved, row["id"]))
        row["reserved"] = reserved
        self._resting[row["symbol"]][row["id"]] = row

    def _release(self, db: sqlite3.Connection, row: OrderRow) -> None:
        market = self.market(row["symbol"])
        reserved = row["reserved"]
        currency = market.quote if row["side"] == OrderSide.BUY.value else market.base
        if reserved:
            self._move(db, row["account"], currency, reserved, -reserved)
        self._resting[row["symbol"]].pop(row["id"], None)

    def _fill(self, db: sqlite3.Connection, row: OrderRow, price: float, fee_rate: float, now: int) -> Fill:
        market = self.market(row["symbol"])
        self._release(db, row)
        amount = row["amount"]
        notional = amount * price
        fee = notional * fee_rate
        acct = row["account"]
        if row["side"] == OrderSide.BUY.value:
            self._move(db, acct, market.quote, -(notional + fee))
            self._move(db, acct, market.base, amount)
        else:
            self._move(db, acct, market.base, -amount)
            self._move(db, acct, market.quote, notional - fee)
        cur = db.execute(
            "INSERT INTO fills (order_id, account, price, amount, fee, ts_ms) VALUES (?, ?, ?, ?, ?, ?)",
            (row["id"], acct, price, amount, fee, now),
        )
        db.execute(
            "UPDATE orders SET status = 'FILLED', filled = ?, average = ?, fee = ?, reserved = 0 WHERE id = ?",
            (amount, price, fee, row["id"]),
        )
        row.update(status="FILLED", filled=amount, average=price, fee=fee, reserved=0.0)
        return Fill(f"{acct}:{cur.lastrowid}", row["client_order_id"], price, amount, fee, now)

    def cancel(self, account: str, symbol: str, client_order_id: str) -> ExchangeOrder:
        self.faults.before_call("cancel_order")
        with self._tx() as db:
            row = db.execute(
                "SELECT * FROM orders WHERE account = ? AND symbol = ? AND client_order_id = ? AND status = 'OPEN'",
                (account, symbol, client_order_id),
            ).fetchone()
            if row is None:
                raise OrderNotFoundError(f"no open order {client_order_id} on {symbol}")
            self._release(db, row)
            db.execute("UPDATE orders SET status = 'CANCELED', reserved = 0 WHERE id = ?", (row["id"],))
        return self._order(row["id"])

    def lookup(self, account: str, symbol: str, client_order_id: str) -> ExchangeOrder | None:
        self.faults.before_call("fetch_order")
        rows = self.ledger.query(
            "SELECT id FROM orders WHERE account = ? AND symbol = ? AND client_order_id = ? ORDER BY id DESC LIMIT 1",
            (account, symbol, client_order_id),
        )
        return self._order(rows[0]["id"]) if rows else None

    def open_orders(self, account: str, symbol: str | None) -> list[ExchangeOrder]:
        self.faults.before_call("fetch_open_orders")
        return [
            self._order(row["id"])
            for sym, rows in self._resting.items()
            if symbol is None or sym == symbol
            for row in rows.values()
            if row["account"] == account
        ]

    def _order(self, order_id: int) -> ExchangeOrder:
        row = self.ledger.query("SELECT * FROM orders WHERE id = ?", (order_id,))[0]
        account, coid = row["account"], row["client_order_id"]
        fills = tuple(  # trade ids name the account: unique across ledgers (each paper bot may have its own)
            Fill(f"{account}:{f['trade_id']}", coid, f["price"], f["amount"], f["fee"], f["ts_ms"])
            for f in self.ledger.query("SELECT * FROM fills WHERE order_id = ? ORDER BY trade_id", (order_id,))
        )
        return _exchange_order(dict(row), fills)

    # -- market data -------------------------------------------------------------------------------
    def on_candle(
        self,
        symbol: str,
        open_ms: int,
        close_ms: int,
        ohlc: tuple[float, float, float, float],
        next_open: float | None = None,
    ) -> int:
        """Match resting orders against a closed candle, then move the price; return orders filled."""
        opened, high, low, close = ohlc
        filled: list[OrderRow] = []
        resting = self._resting.get(symbol)
        if resting:
            # An order only meets candles that open at or after it was placed: replaying older candles after
            # a restart can never fill it, and a filled order cannot fill twice, so no per-candle bookkeeping.
            hits = [
                (row, price)
                for row in sorted(resting.values(), key=lambda r: r["id"])
                if row["ts_ms"] <= open_ms and (price := self._trigger(row, opened, high, low)) is not None
            ]
            fee = self.market(symbol).taker_fee
            for row, price in hits:
                # One transaction per order: one account's trouble never undoes another's fill.
                with self._tx() as db:
                    if row["status"] != "OPEN":
                        continue
                    if self._affordable(row, price, fee):
                        self._fill(db, row, price, fee, close_ms)
                    else:
                        # A triggered buy stop that gapped past its reserved funds expires, as venues do.
                        self._release(db, row)
                        db.execute("UPDATE orders SET status = 'CANCELED', reserved = 0 WHERE id = ?", (row["id"],))
                        row.update(status="CANCELED", reserved=0.0)
                filled.append(row)
        self.marks[symbol] = next_open if next_open is not None else close
        self.market_ms[symbol] = close_ms
        for row in filled:
            self._notify(row["account"], row["id"])
        return len(filled)

    def subscribe(self, account: str, listener: Callable[[ExchangeOrder], None]) -> None:
        """Push order updates of ``account`` to ``listener`` (like a venue's user-data stream)."""
        self._listeners.setdefault(account, []).append(listener)

    def _notify(self, account: str, order_id: int) -> None:
        listeners = self._listeners.get(account)
        if listeners:
            order = self._order(order_id)
            for listener in listeners:
                listener(order)

    def _trigger(self, row: OrderRow, opened: float, high: float, low: float) -> float | None:
        buy = row["side"] == OrderSide.BUY.value
        if row["type"] == OrderType.STOP.value:
            stop = float(row["stop_price"])
            if buy and high >= stop:
                return self._slipped(max(opened, stop), row["side"])
            if not buy and low <= stop:
                return self._slipped(min(opened, stop), row["side"])
        elif row["type"] == OrderType.LIMIT.value:
            price = float(row["price"])
            if buy and low <= price:
                return min(opened, price)
            if not buy and high >= price:
                return max(opened, price)
        return None

    def has_resting(self, symbol: str) -> bool:
        return bool(self._resting.get(symbol))

    def close(self) -> None:
        self.ledger.close()


class SimulatedExchange:
    """One account on the simulated venue; implements :class:`~tradefleet.core.ports.ExchangePort`."""

    capabilities = ExchangeCapabilities(
        stop_orders=True, client_order_id=True, fetch_order_by_client_id=True, push_order_updates=True
    )

    def __init__(self, venue: SimulatedVenue, account: str) -> None:
        self.venue = venue
        self.account = account
        self.name = venue.name

    def load_markets(self) -> dict[str, Market]:
        return dict(self.venue.markets)

    def fetch_balance(self) -> dict[str, Balance]:
        self.venue.faults.before_call("fetch_balance")
        return self.venue.balance(self.account)

    def create_order(self, request: OrderRequest) -> ExchangeOrder:
        return self.venue.place(self.account, request)

    def cancel_order(self, symbol: str, client_order_id: str) -> ExchangeOrder:
        return self.venue.cancel(self.account, symbol, client_order_id)

    def fetch_order(self, symbol: str, client_order_id: str) -> ExchangeOrder | None:
        return self.venue.lookup(self.account, symbol, client_order_id)

    def fetch_open_orders(self, symbol: str | None = None) -> list[ExchangeOrder]:
        return self.venue.open_orders(self.account, symbol)

    def subscribe(self, listener: Callable[[ExchangeOrder], None]) -> None:
        self.venue.subscribe(self.account, listener)


def _exchange_order(row: OrderRow, fills: tuple[Fill, ...]) -> ExchangeOrder:
    return ExchangeOrder(
        client_order_id=row["client_order_id"],
        exchange_order_id=str(row["id"]),
        symbol=row["symbol"],
        side=OrderSide(row["side"]),
        type=OrderType(row["type"]),
        status=OrderStatus(row["status"]),
        amount=row["amount"],
        filled=row["filled"],
        average=row["average"],
        fee=row["fee"],
        timestamp_ms=row["ts_ms"],
        price=row["price"],
        stop_price=row["stop_price"],
        fills=fills,
    )


def default_market(symbol: str, *, taker_fee: float = 0.001, maker_fee: float = 0.001) -> Market:
    """Return a market with spot-venue-like rules for ``symbol`` (used for generated and replayed pairs)."""
    base, quote = symbol.split("/")
    return Market(
        symbol=symbol,
        base=base,
        quote=quote,
        price_precision=1e-8,
        amount_precision=1e-8,
        min_notional=0.0001 if quote in {"BTC", "ETH"} else 5.0,
        min_amount=1e-8,
        taker_fee=taker_fee,
        maker_fee=maker_fee,
    )
