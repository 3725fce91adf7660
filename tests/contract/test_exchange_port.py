"""The contract every :class:`~tradefleet.core.ports.ExchangePort` adapter passes.

Each adapter is registered in :data:`ADAPTERS` as a factory that yields ``(adapter, driver)``: the adapter
under test, funded with :data:`STARTING_QUOTE` of the driver's quote currency and nothing else, and a
:class:`VenueDriver` that moves the venue's market so that the tests can say "the price is now P" without
knowing how the venue works. To add an adapter (a recorded ccxt venue, a testnet, ...), write one factory
and one driver and add the pair to ``ADAPTERS``; the tests stay as they are.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Protocol

import pytest

from tradefleet.adapters.exchanges.simulated import SimSettings, SimulatedVenue
from tradefleet.core.errors import (
    InsufficientFundsError,
    InvalidOrderError,
    OrderNotFoundError,
    UnknownSymbolError,
)
from tradefleet.core.orders import OrderSide, OrderStatus, OrderType
from tradefleet.core.ports import Balance, ExchangeOrder, ExchangePort, Market, OrderRequest
from tradefleet.engine.clock import SimClock

STARTING_QUOTE = 10_000.0
PRICE = 20_000.0  # the driver's symbol trades here when a test starts
MAX_SLIPPAGE = 0.01  # a market fill lands within 1 % of the price the driver set


class VenueDriver(Protocol):
    """Moves the market of the venue behind an adapter; tests never touch the venue otherwise."""

    symbol: str
    base: str
    quote: str

    def set_price(self, price: float) -> None:
        """Make ``price`` the symbol's current price: market orders placed next fill near it."""
        ...


# -- the simulated exchange -------------------------------------------------------------------------------

SIM_MARKET = Market(
    symbol="BTC/USDT",
    base="BTC",
    quote="USDT",
    price_precision=0.01,
    amount_precision=0.0001,
    min_notional=10.0,
    min_amount=0.0001,
    taker_fee=0.001,
    maker_fee=0.001,
)


class SimulatedDriver:
    """Feeds flat one-minute candles to a :class:`SimulatedVenue`."""

    def __init__(self, venue: SimulatedVenue, clock: SimClock) -> None:
        self.venue, self.clock = venue, clock
        self.symbol, self.base, self.quote = SIM_MARKET.symbol, SIM_MARKET.base, SIM_MARKET.quote
        self._next_open_ms = clock.now_ms()

    def set_price(self, price: float) -> None:
        open_ms, close_ms = self._next_open_ms, self._next_open_ms + 60_000
        self.venue.on_candle(self.symbol, open_ms, close_ms, (price, price, price, price))
        self._next_open_ms = close_ms
        self.clock.set(close_ms)


@contextmanager
def simulated(ledger_path: Path | None) -> Iterator[tuple[ExchangePort, VenueDriver]]:
    clock = SimClock(1_704_067_200_000)
    venue = SimulatedVenue(
        {SIM_MARKET.symbol: SIM_MARKET},
        clock=clock,
        ledger_path=ledger_path,
        settings=SimSettings(slippage_bps=5),
    )
    try:
        adapter = venue.open_account("contract", {SIM_MARKET.quote: STARTING_QUOTE})
        yield adapter, SimulatedDriver(venue, clock)
    finally:
        venue.close()


AdapterFactory = Callable[[Path], AbstractContextManager[tuple[ExchangePort, VenueDriver]]]
ADAPTERS: dict[str, AdapterFactory] = {
    "simulated-memory-ledger": lambda tmp_path: simulated(None),
    "simulated-sqlite-ledger": lambda tmp_path: simulated(tmp_path / "venue" / "ledger.sqlite"),
}


@pytest.fixture(params=sorted(ADAPTERS))
def exchange(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[ExchangePort, VenueDriver]]:
    """Yield ``(adapter, driver)`` for each registered adapter, its symbol trading at :data:`PRICE`."""
    with ADAPTERS[request.param](tmp_path) as (adapter, driver):
        driver.set_price(PRICE)
        yield adapter, driver


# -- helpers ------------------------------------------------------------------------------------------------


def free(adapter: ExchangePort, currency: str) -> float:
    balance = adapter.fetch_balance().get(currency)
    return balance.free if balance else 0.0


def used(adapter: ExchangePort, currency: str) -> float:
    balance = adapter.fetch_balance().get(currency)
    return balance.used if balance else 0.0


def request(
    driver: VenueDriver,
    client_order_id: str,
    side: OrderSide,
    amount: float,
    type_: OrderType = OrderType.MARKET,
    price: float | None = None,
    symbol: str | None = None,
) -> OrderRequest:
    return OrderRequest(client_order_id, symbol or driver.symbol, side, type_, amount, price=price)


def resting_buy(driver: VenueDriver, client_order_id: str, amount: float = 0.01) -> OrderRequest:
    """A limit buy far below the price: it rests and reserves quote."""
    return request(driver, client_order_id, OrderSide.BUY, amount, OrderType.LIMIT, price=PRICE / 2)


def snapshot(adapter: ExchangePort) -> tuple[dict[str, Balance], list[ExchangeOrder]]:
    orders = sorted(adapter.fetch_open_orders(), key=lambda o: o.exchange_order_id)
    return adapter.fetch_balance(), orders


def close_to(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9)


# -- the contract -------------------------------------------------------------------------------------------


def test_adapter_implements_the_exchange_port(exchange: tuple[ExchangePort, VenueDriver]) -> None:
    adapter, _ = exchange
    assert isinstance(adapter, ExchangePort)
    assert adapter.name
    assert adapter.capabilities.client_order_id


def test_load_markets_lists_the_symbol_with_precision_and_min_notional(
    exchange: tuple[ExchangePort, VenueDriver],
) -> None:
    adapter, driver = exchange
    market = adapter.load_markets()[driver.symbol]

    assert (market.symbol, market.base, market.quote) == (driver.symbol, driver.base, driver.quote)
    assert market.price_precision > 0
    assert market.amount_precision > 0
    assert market.min_notional > 0
    assert 0 <= market.taker_fee < 0.01


def test_market_buy_fills_and_moves_balances_by_amount_times_price_plus_fee(
    exchange: tuple[ExchangePort, VenueDriver],
) -> None:
    adapter, driver = exchange
    quote_before = free(adapter, driver.quote)

    order = adapter.create_order(request(driver, "buy-1", OrderSide.BUY, 0.1))

    assert order.status is OrderStatus.FILLED
    assert order.client_order_id == "buy-1"
    assert close_to(order.filled, 0.1)
    assert abs(order.average / PRICE - 1) <= MAX_SLIPPAGE
    assert order.fee > 0
    assert close_to(free(adapter, driver.quote), quote_before - (order.filled * order.average + order.fee))
    assert close_to(free(adapter, driver.base), order.filled)


def test_market_sell_credits_amount_times_price_minus_fee(exchange: tuple[ExchangePort, VenueDriver]) -> None:
    adapter, driver = exchange
    adapter.create_order(request(driver, "buy-1", OrderSide.BUY, 0.1))
    quote_before, base_before = free(adapter, driver.quote), free(adapter, driver.base)

    order = adapter.create_order(request(driver, "sell-1", OrderSide.SELL, 0.05))

    assert order.status is OrderStatus.FILLED
    assert close_to(free(adapter, driver.quote), quote_before + order.filled * order.average - order.fee)
    assert close_to(free(adapter, driver.base), base_before - 0.05)


def test_amount_is_floored_to_the_market_step(exchange: tuple[ExchangePort, VenueDriver]) -> None:
    adapter, driver = exchange
    step = adapter.load_markets()[driver.symbol].amount_precision
    wanted = 0.0123456789

    order = adapter.create_order(request(driver, "buy-1", OrderSide.BUY, wanted))

    expected = math.floor(wanted / step) * step
    assert close_to(order.amount, expected)
    assert order.amount <= wanted
    assert close_to(order.filled, expected)


def test_order_below_min_notional_is_refused_and_changes_nothing(
    exchange: tuple[ExchangePort, VenueDriver],
) -> None:
    adapter, driver = exchange
    market = adapter.load_markets()[driver.symbol]
    amount = math.floor(market.min_notional / PRICE / market.amount_precision * 0.9) * market.amount_precision
    amount = max(amount, market.amount_precision, market.min_amount)
    assert amount * PRICE < market.min_notional, "the market's step is too coarse to test min notional"
    before = snapshot(adapter)

    with pytest.raises(InvalidOrderError):
        adapter.create_order(request(driver, "tiny-1", OrderSide.BUY, amount))
    assert snapshot(adapter) == before
    assert adapter.fetch_order(driver.symbol, "tiny-1") is None


def test_buy_beyond_free_quote_raises_insufficient_funds_and_changes_nothing(
    exchange: tuple[ExchangePort, VenueDriver],
) -> None:
    adapter, driver = exchange
    before = snapshot(adapter)

    with pytest.raises(InsufficientFundsError):
        adapter.create_order(request(driver, "big-1", OrderSide.BUY, STARTING_QUOTE / PRICE * 2))
    assert snapshot(adapter) == before
    assert adapter.fetch_order(driver.symbol, "big-1") is None


def test_resting_buy_beyond_free_quote_raises_insufficient_funds_and_changes_nothing(
    exchange: tuple[ExchangePort, VenueDriver],
) -> None:
    adapter, driver = exchange
    before = snapshot(adapter)

    with pytest.raises(InsufficientFundsError):
        adapter.create_order(resting_buy(driver, "big-1", amount=STARTING_QUOTE / (PRICE / 2) * 2))
    assert snapshot(adapter) == before


def test_sell_beyond_holdings_raises_insufficient_funds_and_changes_nothing(
    exchange: tuple[ExchangePort, VenueDriver],
) -> None:
    adapter, driver = exchange
    adapter.create_order(request(driver, "buy-1", OrderSide.BUY, 0.1))
    before = snapshot(adapter)

    with pytest.raises(InsufficientFundsError):
        adapter.create_order(request(driver, "sell-1", OrderSide.SELL, 0.2))
    assert snapshot(adapter) == before


def test_sell_of_a_currency_never_held_raises_insufficient_funds_and_changes_nothing(
    exchange: tuple[ExchangePort, VenueDriver],
) -> None:
    adapter, driver = exchange
    before = snapshot(adapter)

    with pytest.raises(InsufficientFundsError):
        adapter.create_order(request(driver, "sell-1", OrderSide.SELL, 0.1))
    assert snapshot(adapter) == before


def test_order_on_an_unknown_symbol_raises_unknown_symbol(exchange: tuple[ExchangePort, VenueDriver]) -> None:
    adapter, driver = exchange
    before = snapshot(adapter)

    with pytest.raises(UnknownSymbolError):
        adapter.create_order(request(driver, "x-1", OrderSide.BUY, 1.0, symbol="NOPE/USDT"))
    assert snapshot(adapter) == before


def test_client_order_id_of_an_open_order_cannot_be_used_again(
    exchange: tuple[ExchangePort, VenueDriver],
) -> None:
    adapter, driver = exchange
    first = adapter.create_order(resting_buy(driver, "dup-1"))
    before = snapshot(adapter)

    with pytest.raises(InvalidOrderError) as caught:
        adapter.create_order(resting_buy(driver, "dup-1"))
    assert not isinstance(caught.value, InsufficientFundsError)
    assert snapshot(adapter) == before
    found = adapter.fetch_order(driver.symbol, "dup-1")
    assert found is not None
    assert found.exchange_order_id == first.exchange_order_id


def test_client_order_id_is_reusable_after_the_first_order_is_canceled(
    exchange: tuple[ExchangePort, VenueDriver],
) -> None:
    adapter, driver = exchange
    first = adapter.create_order(resting_buy(driver, "reuse-1"))
    adapter.cancel_order(driver.symbol, "reuse-1")

    second = adapter.create_order(resting_buy(driver, "reuse-1"))

    assert second.status is OrderStatus.OPEN
    assert second.exchange_order_id != first.exchange_order_id
    assert [o.exchange_order_id for o in adapter.fetch_open_orders(driver.symbol)] == [second.exchange_order_id]


def test_client_order_id_is_reusable_after_the_first_order_filled(
    exchange: tuple[ExchangePort, VenueDriver],
) -> None:
    adapter, driver = exchange
    first = adapter.create_order(request(driver, "reuse-1", OrderSide.BUY, 0.01))

    second = adapter.create_order(request(driver, "reuse-1", OrderSide.BUY, 0.02))

    assert second.status is OrderStatus.FILLED
    assert second.exchange_order_id != first.exchange_order_id
    found = adapter.fetch_order(driver.symbol, "reuse-1")
    assert found is not None
    assert found.exchange_order_id == second.exchange_order_id, "look-ups by client id find the latest order"


def test_fetch_order_by_client_id_returns_the_order_with_its_fills(
    exchange: tuple[ExchangePort, VenueDriver],
) -> None:
    adapter, driver = exchange
    placed = adapter.create_order(request(driver, "buy-1", OrderSide.BUY, 0.1))

    found = adapter.fetch_order(driver.symbol, "buy-1")

    assert found is not None
    assert (found.client_order_id, found.exchange_order_id) == ("buy-1", placed.exchange_order_id)
    assert (found.status, found.side, found.type) == (OrderStatus.FILLED, OrderSide.BUY, OrderType.MARKET)
    assert found.fills, "a filled order carries its fills"
    assert close_to(sum(f.amount for f in found.fills), found.filled)
    assert close_to(sum(f.fee for f in found.fills), found.fee)
    assert close_to(sum(f.price * f.amount for f in found.fills) / found.filled, found.average)
    assert all(f.client_order_id == "buy-1" for f in found.fills)
    assert len({f.trade_id for f in found.fills}) == len(found.fills)


def test_fetch_order_returns_none_for_an_unknown_client_id(
    exchange: tuple[ExchangePort, VenueDriver],
) -> None:
    adapter, driver = exchange
    assert adapter.fetch_order(driver.symbol, "never-sent") is None


def test_resting_order_reserves_funds_and_cancel_releases_them(
    exchange: tuple[ExchangePort, VenueDriver],
) -> None:
    adapter, driver = exchange
    quote_free, quote_used = free(adapter, driver.quote), used(adapter, driver.quote)

    placed = adapter.create_order(resting_buy(driver, "rest-1", amount=0.1))
    assert placed.status is OrderStatus.OPEN
    assert free(adapter, driver.quote) < quote_free
    assert close_to(free(adapter, driver.quote) + used(adapter, driver.quote), quote_free + quote_used)

    canceled = adapter.cancel_order(driver.symbol, "rest-1")

    assert canceled.status is OrderStatus.CANCELED
    assert close_to(free(adapter, driver.quote), quote_free)
    assert close_to(used(adapter, driver.quote), quote_used)
    assert adapter.fetch_open_orders(driver.symbol) == []
    found = adapter.fetch_order(driver.symbol, "rest-1")
    assert found is not None
    assert found.status is OrderStatus.CANCELED


def test_cancel_of_a_resting_sell_releases_the_base_it_reserved(
    exchange: tuple[ExchangePort, VenueDriver],
) -> None:
    adapter, driver = exchange
    adapter.create_order(request(driver, "buy-1", OrderSide.BUY, 0.1))
    base = free(adapter, driver.base)

    adapter.create_order(request(driver, "ask-1", OrderSide.SELL, base, OrderType.LIMIT, price=PRICE * 2))
    assert close_to(free(adapter, driver.base), 0.0)
    adapter.cancel_order(driver.symbol, "ask-1")

    assert close_to(free(adapter, driver.base), base)


def test_cancel_of_an_unknown_order_raises_order_not_found(
    exchange: tuple[ExchangePort, VenueDriver],
) -> None:
    adapter, driver = exchange
    with pytest.raises(OrderNotFoundError):
        adapter.cancel_order(driver.symbol, "never-sent")


def test_fetch_open_orders_lists_resting_orders_only(exchange: tuple[ExchangePort, VenueDriver]) -> None:
    adapter, driver = exchange
    adapter.create_order(request(driver, "buy-1", OrderSide.BUY, 0.1))  # fills at once
    bid = adapter.create_order(resting_buy(driver, "bid-1"))
    ask = adapter.create_order(request(driver, "ask-1", OrderSide.SELL, 0.05, OrderType.LIMIT, price=PRICE * 2))
    adapter.create_order(resting_buy(driver, "gone-1"))
    adapter.cancel_order(driver.symbol, "gone-1")

    by_symbol = adapter.fetch_open_orders(driver.symbol)
    everywhere = adapter.fetch_open_orders()

    assert {o.client_order_id for o in by_symbol} == {"bid-1", "ask-1"}
    assert {o.exchange_order_id for o in everywhere} == {bid.exchange_order_id, ask.exchange_order_id}
    assert all(o.status is OrderStatus.OPEN for o in everywhere)
    listed = {o.client_order_id: o for o in by_symbol}
    assert (listed["ask-1"].side, listed["ask-1"].type, listed["ask-1"].price) == (
        OrderSide.SELL,
        OrderType.LIMIT,
        PRICE * 2,
    )
    assert close_to(listed["ask-1"].amount, 0.05)
