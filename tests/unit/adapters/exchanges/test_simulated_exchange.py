"""The simulated exchange's own rules: the fill rules of its module docstring, its ledger, faults and pushes.

What every exchange adapter must do lives in ``tests/contract/test_exchange_port.py``; this file pins what
only the simulated venue promises. Candles are one minute long; candle ``i`` opens at ``T0 + i·TF``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tradefleet.adapters.exchanges.faults import FaultPlan
from tradefleet.adapters.exchanges.simulated import SimSettings, SimulatedExchange, SimulatedVenue
from tradefleet.core.errors import (
    AmbiguousOrderError,
    InsufficientFundsError,
    InvalidOrderError,
    RateLimitError,
    TemporaryExchangeError,
)
from tradefleet.core.orders import OrderSide, OrderStatus, OrderType
from tradefleet.core.ports import Balance, ExchangeOrder, Market, OrderRequest
from tradefleet.engine.clock import SimClock

T0 = 1_704_067_200_000
TF = 60_000
SLIP = 0.001  # 10 bps
FEE = 0.002
SYMBOL = "BTC/USDT"
MARKET = Market(
    symbol=SYMBOL,
    base="BTC",
    quote="USDT",
    price_precision=0.01,
    amount_precision=0.0001,
    min_notional=10.0,
    min_amount=0.0001,
    taker_fee=FEE,
    maker_fee=FEE,
)


def make_venue(ledger_path: Path | None = None, clock: SimClock | None = None) -> SimulatedVenue:
    return SimulatedVenue(
        {SYMBOL: MARKET},
        clock=clock or SimClock(T0),
        ledger_path=ledger_path,
        settings=SimSettings(slippage_bps=SLIP * 10_000),
    )


def candle(venue: SimulatedVenue, i: int, o: float, h: float, low: float, c: float) -> int:
    """Feed closed candle ``i``; return how many orders it filled."""
    return venue.on_candle(SYMBOL, T0 + i * TF, T0 + (i + 1) * TF, (o, h, low, c))


def flat(venue: SimulatedVenue, i: int, price: float) -> int:
    return candle(venue, i, price, price, price, price)


@pytest.fixture
def venue() -> Iterator[SimulatedVenue]:
    venue = make_venue()
    try:
        yield venue
    finally:
        venue.close()


@pytest.fixture
def account(venue: SimulatedVenue) -> SimulatedExchange:
    """An account with 10 000 USDT and 1 BTC, after candle 0 closed at 100."""
    exchange = venue.open_account("acct", {"USDT": 10_000.0, "BTC": 1.0})
    flat(venue, 0, 100.0)
    return exchange


def stop(side: OrderSide, amount: float, stop_price: float, cid: str = "stop-1") -> OrderRequest:
    return OrderRequest(cid, SYMBOL, side, OrderType.STOP, amount, stop_price=stop_price)


def limit(side: OrderSide, amount: float, price: float, cid: str = "limit-1") -> OrderRequest:
    return OrderRequest(cid, SYMBOL, side, OrderType.LIMIT, amount, price=price)


def market(side: OrderSide, amount: float, cid: str = "mkt-1") -> OrderRequest:
    return OrderRequest(cid, SYMBOL, side, OrderType.MARKET, amount)


def filled_at(account: SimulatedExchange, cid: str) -> float:
    order = account.fetch_order(SYMBOL, cid)
    assert order is not None
    assert order.status is OrderStatus.FILLED, f"{cid} is {order.status}"
    return order.average


def still_open(account: SimulatedExchange, cid: str) -> bool:
    order = account.fetch_order(SYMBOL, cid)
    return order is not None and order.status is OrderStatus.OPEN


# -- fill rules ------------------------------------------------------------------------------------------


def test_stop_sell_fills_at_the_stop_minus_slippage_when_the_candle_trades_through_it(
    venue: SimulatedVenue, account: SimulatedExchange
) -> None:
    account.create_order(stop(OrderSide.SELL, 1.0, 95.0))
    assert candle(venue, 1, 99.0, 100.0, 90.0, 92.0) == 1
    assert filled_at(account, "stop-1") == pytest.approx(95.0 * (1 - SLIP))


def test_stop_sell_fills_at_the_open_minus_slippage_when_the_candle_gaps_below_the_stop(
    venue: SimulatedVenue, account: SimulatedExchange
) -> None:
    account.create_order(stop(OrderSide.SELL, 1.0, 95.0))
    candle(venue, 1, 90.0, 91.0, 85.0, 88.0)
    assert filled_at(account, "stop-1") == pytest.approx(90.0 * (1 - SLIP))


def test_stop_sell_rests_while_the_low_stays_above_the_stop(venue: SimulatedVenue, account: SimulatedExchange) -> None:
    account.create_order(stop(OrderSide.SELL, 1.0, 95.0))
    assert candle(venue, 1, 99.0, 101.0, 95.01, 97.0) == 0
    assert still_open(account, "stop-1")


def test_stop_sell_triggers_when_the_low_touches_the_stop_exactly(
    venue: SimulatedVenue, account: SimulatedExchange
) -> None:
    account.create_order(stop(OrderSide.SELL, 1.0, 95.0))
    candle(venue, 1, 99.0, 101.0, 95.0, 97.0)
    assert filled_at(account, "stop-1") == pytest.approx(95.0 * (1 - SLIP))


def test_limit_sell_fills_at_the_limit_without_slippage_when_the_high_reaches_it(
    venue: SimulatedVenue, account: SimulatedExchange
) -> None:
    account.create_order(limit(OrderSide.SELL, 1.0, 105.0))
    candle(venue, 1, 101.0, 110.0, 100.0, 104.0)
    assert filled_at(account, "limit-1") == 105.0


def test_limit_sell_fills_at_the_open_when_the_candle_gaps_above_the_limit(
    venue: SimulatedVenue, account: SimulatedExchange
) -> None:
    account.create_order(limit(OrderSide.SELL, 1.0, 105.0))
    candle(venue, 1, 108.0, 112.0, 107.0, 111.0)
    assert filled_at(account, "limit-1") == 108.0


def test_limit_sell_rests_while_the_high_stays_below_the_limit(
    venue: SimulatedVenue, account: SimulatedExchange
) -> None:
    account.create_order(limit(OrderSide.SELL, 1.0, 105.0))
    assert candle(venue, 1, 101.0, 104.99, 100.0, 104.0) == 0
    assert still_open(account, "limit-1")


def test_limit_buy_mirrors_the_sell_rule_and_fills_at_min_of_open_and_limit(
    venue: SimulatedVenue, account: SimulatedExchange
) -> None:
    account.create_order(limit(OrderSide.BUY, 1.0, 95.0, cid="through"))
    candle(venue, 1, 99.0, 100.0, 94.0, 96.0)  # trades down through 95
    assert filled_at(account, "through") == 95.0

    account.create_order(limit(OrderSide.BUY, 1.0, 95.0, cid="gapped"))
    candle(venue, 2, 90.0, 92.0, 89.0, 91.0)  # opens below 95
    assert filled_at(account, "gapped") == 90.0


def test_stop_buy_mirrors_the_sell_rule_and_fills_at_max_of_open_and_stop_plus_slippage(
    venue: SimulatedVenue, account: SimulatedExchange
) -> None:
    account.create_order(stop(OrderSide.BUY, 1.0, 105.0, cid="through"))
    candle(venue, 1, 101.0, 106.0, 100.0, 104.0)
    assert filled_at(account, "through") == pytest.approx(105.0 * (1 + SLIP))

    account.create_order(stop(OrderSide.BUY, 1.0, 105.0, cid="gapped"))
    candle(venue, 2, 108.0, 109.0, 107.0, 108.0)
    assert filled_at(account, "gapped") == pytest.approx(108.0 * (1 + SLIP))


def test_order_never_matches_a_candle_that_opened_before_it_was_placed(
    venue: SimulatedVenue, account: SimulatedExchange
) -> None:
    flat(venue, 1, 100.0)
    flat(venue, 2, 100.0)  # market time is now the open of candle 3
    account.create_order(stop(OrderSide.SELL, 1.0, 95.0))

    for replayed in (0, 1, 2):  # older candles arriving again (replay after a restart) trade through the stop
        assert candle(venue, replayed, 99.0, 100.0, 80.0, 85.0) == 0
    assert still_open(account, "stop-1")

    assert candle(venue, 3, 99.0, 100.0, 80.0, 85.0) == 1
    assert filled_at(account, "stop-1") == pytest.approx(95.0 * (1 - SLIP))


def test_order_placed_before_any_candle_waits_for_the_first_candle_opening_after_the_clock() -> None:
    clock = SimClock(T0 + TF + TF // 2)  # half-way through candle 1
    venue = make_venue(clock=clock)
    try:
        account = venue.open_account("acct", {"USDT": 0.0, "BTC": 1.0})
        account.create_order(stop(OrderSide.SELL, 1.0, 95.0))

        assert candle(venue, 1, 99.0, 100.0, 80.0, 85.0) == 0  # opened before the order existed
        assert candle(venue, 2, 99.0, 100.0, 80.0, 85.0) == 1
    finally:
        venue.close()


def test_filled_order_never_fills_twice_when_its_candle_is_replayed(
    venue: SimulatedVenue, account: SimulatedExchange
) -> None:
    account.create_order(stop(OrderSide.SELL, 1.0, 95.0))
    candle(venue, 1, 99.0, 100.0, 90.0, 92.0)
    balances = account.fetch_balance()

    assert candle(venue, 1, 99.0, 100.0, 90.0, 92.0) == 0
    assert account.fetch_balance() == balances
    order = account.fetch_order(SYMBOL, "stop-1")
    assert order is not None
    assert len(order.fills) == 1


def test_market_buy_fills_at_the_current_price_plus_slippage(venue: SimulatedVenue, account: SimulatedExchange) -> None:
    order = account.create_order(market(OrderSide.BUY, 1.0))
    assert order.average == pytest.approx(100.0 * (1 + SLIP))


def test_market_sell_fills_at_the_current_price_minus_slippage(
    venue: SimulatedVenue, account: SimulatedExchange
) -> None:
    order = account.create_order(market(OrderSide.SELL, 1.0))
    assert order.average == pytest.approx(100.0 * (1 - SLIP))


def test_current_price_is_the_next_open_when_the_feed_knows_it(
    venue: SimulatedVenue, account: SimulatedExchange
) -> None:
    venue.on_candle(SYMBOL, T0 + TF, T0 + 2 * TF, (100.0, 101.0, 99.0, 100.0), next_open=103.0)
    order = account.create_order(market(OrderSide.BUY, 1.0))
    assert order.average == pytest.approx(103.0 * (1 + SLIP))


def test_market_order_without_any_price_yet_is_a_temporary_error(venue: SimulatedVenue) -> None:
    account = venue.open_account("acct", {"USDT": 1_000.0})
    with pytest.raises(TemporaryExchangeError, match="no price"):
        account.create_order(market(OrderSide.BUY, 1.0))
    assert account.fetch_order(SYMBOL, "mkt-1") is None


def test_fees_are_charged_in_quote_on_buys(venue: SimulatedVenue, account: SimulatedExchange) -> None:
    order = account.create_order(market(OrderSide.BUY, 2.0))

    notional = 2.0 * 100.0 * (1 + SLIP)
    assert order.fee == pytest.approx(notional * FEE)
    assert order.fills[0].fee == pytest.approx(notional * FEE)
    balances = account.fetch_balance()
    assert balances["USDT"].free == pytest.approx(10_000.0 - notional * (1 + FEE))
    assert balances["BTC"].free == pytest.approx(3.0)  # the base arrives whole


def test_fees_are_charged_in_quote_on_sells(venue: SimulatedVenue, account: SimulatedExchange) -> None:
    account.create_order(limit(OrderSide.SELL, 1.0, 105.0))
    candle(venue, 1, 101.0, 110.0, 100.0, 104.0)

    balances = account.fetch_balance()
    assert balances["USDT"].free == pytest.approx(10_000.0 + 105.0 * (1 - FEE))
    assert balances["USDT"].used == 0.0
    assert balances["BTC"] == Balance("BTC", 0.0, 0.0)


def test_amount_is_floored_to_the_step_and_prices_rounded_to_the_tick(
    venue: SimulatedVenue, account: SimulatedExchange
) -> None:
    order = account.create_order(
        OrderRequest("s", SYMBOL, OrderSide.SELL, OrderType.STOP, 0.123456789, stop_price=95.004999)
    )
    assert (order.amount, order.stop_price) == (0.1234, 95.0)
    order = account.create_order(limit(OrderSide.BUY, 0.99999, 90.006))
    assert (order.amount, order.price) == (0.9999, 90.01)


def test_resting_buy_reserves_quote_for_price_fee_and_slippage_and_fill_settles_it(
    venue: SimulatedVenue, account: SimulatedExchange
) -> None:
    account.create_order(limit(OrderSide.BUY, 10.0, 95.0))
    usdt = account.fetch_balance()["USDT"]
    assert usdt.used == pytest.approx(10.0 * 95.0 * (1 + FEE) * (1 + 2 * SLIP))
    assert usdt.total == pytest.approx(10_000.0)

    candle(venue, 1, 99.0, 100.0, 94.0, 96.0)

    usdt = account.fetch_balance()["USDT"]
    assert usdt.free == pytest.approx(10_000.0 - 950.0 * (1 + FEE))
    assert usdt.used == 0.0


def test_buy_stop_that_gaps_beyond_its_reserved_funds_does_not_abort_candle_processing(
    venue: SimulatedVenue,
) -> None:
    account = venue.open_account("acct", {"USDT": 1_000.0})
    flat(venue, 0, 100.0)
    account.create_order(stop(OrderSide.BUY, 9.0, 105.0))  # reserves ~947 of the 1 000 USDT

    candle(venue, 1, 200.0, 210.0, 190.0, 200.0)  # gaps to 200: 9 BTC would now cost ~1 800

    assert venue.marks[SYMBOL] == 200.0


def test_venue_memory_matches_its_ledger_after_a_buy_stop_gap_it_cannot_pay(tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite"
    venue = make_venue(path)
    account = venue.open_account("acct", {"USDT": 1_000.0})
    flat(venue, 0, 100.0)
    account.create_order(stop(OrderSide.BUY, 9.0, 105.0))
    # Whatever the venue decides for an order it cannot pay (the test above pins that candle processing goes
    # on), what it reports must be what its ledger holds.
    with contextlib.suppress(InsufficientFundsError):
        candle(venue, 1, 200.0, 210.0, 190.0, 200.0)
    in_memory = (account.fetch_balance(), [o.client_order_id for o in account.fetch_open_orders()])
    venue.close()

    reopened = make_venue(path)
    try:
        again = reopened.open_account("acct", {})
        assert (again.fetch_balance(), [o.client_order_id for o in again.fetch_open_orders()]) == in_memory
    finally:
        reopened.close()


# -- the ledger --------------------------------------------------------------------------------------------


def test_ledger_survives_closing_and_reopening_the_venue_on_the_same_file(tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite"
    venue = make_venue(path)
    account = venue.open_account("acct", {"USDT": 10_000.0, "BTC": 1.0})
    flat(venue, 0, 100.0)
    account.create_order(market(OrderSide.BUY, 2.0))
    account.create_order(limit(OrderSide.BUY, 3.0, 90.0, cid="bid"))
    account.create_order(stop(OrderSide.SELL, 1.5, 95.0, cid="stop"))
    balances, open_orders = account.fetch_balance(), account.fetch_open_orders()
    venue.close()

    reopened = make_venue(path)
    try:
        again = reopened.open_account("acct", {"USDT": 1.0})  # an existing account is not funded twice

        assert again.fetch_balance() == balances
        assert sorted(again.fetch_open_orders(), key=lambda o: o.client_order_id) == sorted(
            open_orders, key=lambda o: o.client_order_id
        )
        filled = again.fetch_order(SYMBOL, "mkt-1")
        assert filled is not None
        assert filled.status is OrderStatus.FILLED
        assert len(filled.fills) == 1

        # the resting orders still work: replayed old candles leave them alone, a new one fills them
        assert candle(reopened, 0, 99.0, 100.0, 80.0, 85.0) == 0
        assert candle(reopened, 1, 99.0, 100.0, 80.0, 85.0) == 2
        assert again.fetch_open_orders() == []
    finally:
        reopened.close()


def test_new_account_cannot_start_with_a_negative_balance(venue: SimulatedVenue) -> None:
    with pytest.raises(InvalidOrderError, match="negative"):
        venue.open_account("acct", {"USDT": -1.0})
    assert venue.balance("acct") == {}


# -- fault injection ---------------------------------------------------------------------------------------


def ledger_rows(venue: SimulatedVenue) -> tuple[list[tuple[object, ...]], ...]:
    return tuple(
        [tuple(row) for row in venue.ledger.query(f"SELECT * FROM {table} ORDER BY rowid")]
        for table in ("balances", "orders", "fills")
    )


@pytest.mark.parametrize(
    ("fault", "error"),
    [("server_error", TemporaryExchangeError), ("rate_limit", RateLimitError)],
)
@pytest.mark.parametrize(
    "request_", [market(OrderSide.BUY, 1.0), limit(OrderSide.BUY, 1.0, 90.0)], ids=["market", "limit"]
)
def test_server_error_and_rate_limit_raise_before_anything_is_written(
    venue: SimulatedVenue,
    account: SimulatedExchange,
    fault: str,
    error: type[Exception],
    request_: OrderRequest,
) -> None:
    before = ledger_rows(venue), account.fetch_balance()
    certain: dict[str, Any] = {fault: 1.0}
    venue.faults = FaultPlan(**certain)

    with pytest.raises(error) as caught:
        account.create_order(request_)

    assert not isinstance(caught.value, AmbiguousOrderError)
    assert venue.faults.counts == {fault: 1}
    venue.faults = FaultPlan()
    assert (ledger_rows(venue), account.fetch_balance()) == before
    assert account.fetch_order(SYMBOL, request_.client_order_id) is None


def test_rate_limit_tells_how_long_to_wait(venue: SimulatedVenue, account: SimulatedExchange) -> None:
    venue.faults = FaultPlan(rate_limit=1.0)
    with pytest.raises(RateLimitError) as caught:
        account.fetch_balance()
    assert caught.value.retry_after > 0


def test_server_error_on_cancel_leaves_the_order_resting(venue: SimulatedVenue, account: SimulatedExchange) -> None:
    account.create_order(limit(OrderSide.BUY, 1.0, 90.0))
    before = ledger_rows(venue)
    venue.faults = FaultPlan(server_error=1.0)

    with pytest.raises(TemporaryExchangeError):
        account.cancel_order(SYMBOL, "limit-1")

    venue.faults = FaultPlan()
    assert ledger_rows(venue) == before
    assert still_open(account, "limit-1")


def test_timeout_after_accept_raises_ambiguous_after_the_market_order_is_in_the_ledger(
    venue: SimulatedVenue, account: SimulatedExchange
) -> None:
    venue.faults = FaultPlan(timeout_after_accept=1.0)

    with pytest.raises(AmbiguousOrderError) as caught:
        account.create_order(market(OrderSide.BUY, 1.0))

    assert "client order id" in caught.value.hint
    found = account.fetch_order(SYMBOL, "mkt-1")
    assert found is not None
    assert found.status is OrderStatus.FILLED
    assert account.fetch_balance()["BTC"].free == pytest.approx(2.0)


def test_timeout_after_accept_leaves_a_resting_order_that_a_resend_cannot_duplicate(
    venue: SimulatedVenue, account: SimulatedExchange
) -> None:
    venue.faults = FaultPlan(timeout_after_accept=1.0)
    with pytest.raises(AmbiguousOrderError):
        account.create_order(limit(OrderSide.BUY, 1.0, 90.0))
    venue.faults = FaultPlan()

    assert still_open(account, "limit-1")
    with pytest.raises(InvalidOrderError, match="Duplicate"):
        account.create_order(limit(OrderSide.BUY, 1.0, 90.0))
    assert len(account.fetch_open_orders()) == 1


def test_fault_plan_replays_the_same_faults_for_the_same_seed() -> None:
    def outcomes(seed: int) -> list[str]:
        plan = FaultPlan(server_error=0.3, rate_limit=0.2, seed=seed)
        seen = []
        for _ in range(50):
            try:
                plan.before_call("fetch_balance")
                seen.append("ok")
            except RateLimitError:
                seen.append("429")
            except TemporaryExchangeError:
                seen.append("503")
        return seen

    assert outcomes(7) == outcomes(7)
    assert {"ok", "429", "503"} <= set(outcomes(7))


@pytest.mark.parametrize("name", ["server_error", "rate_limit", "timeout_after_accept"])
@pytest.mark.parametrize("value", [-0.1, 1.5])
def test_fault_probabilities_outside_zero_to_one_are_refused(name: str, value: float) -> None:
    with pytest.raises(ValueError, match=name):
        FaultPlan(**{name: value})  # type: ignore[arg-type]


# -- push listeners ------------------------------------------------------------------------------------------


def test_subscribers_receive_fills_from_on_candle(venue: SimulatedVenue, account: SimulatedExchange) -> None:
    pushed: list[ExchangeOrder] = []
    account.subscribe(pushed.append)
    account.create_order(stop(OrderSide.SELL, 1.0, 95.0))

    candle(venue, 1, 99.0, 100.0, 90.0, 92.0)

    assert [(o.client_order_id, o.status) for o in pushed] == [("stop-1", OrderStatus.FILLED)]
    assert len(pushed[0].fills) == 1
    assert pushed[0].fills[0].price == pytest.approx(95.0 * (1 - SLIP))


def test_subscribers_see_the_fill_already_committed_to_the_ledger(
    venue: SimulatedVenue, account: SimulatedExchange
) -> None:
    seen: list[OrderStatus | None] = []

    def look_up(order: ExchangeOrder) -> None:
        found = account.fetch_order(SYMBOL, order.client_order_id)
        seen.append(found.status if found else None)

    account.subscribe(look_up)
    account.create_order(stop(OrderSide.SELL, 1.0, 95.0))
    candle(venue, 1, 99.0, 100.0, 90.0, 92.0)

    assert seen == [OrderStatus.FILLED]


def test_subscribers_hear_nothing_of_other_accounts_or_of_candles_that_fill_nothing(
    venue: SimulatedVenue, account: SimulatedExchange
) -> None:
    other = venue.open_account("other", {"BTC": 1.0})
    pushed: list[ExchangeOrder] = []
    account.subscribe(pushed.append)
    account.create_order(stop(OrderSide.SELL, 1.0, 80.0))
    other.create_order(stop(OrderSide.SELL, 1.0, 95.0, cid="theirs"))

    assert candle(venue, 1, 99.0, 100.0, 90.0, 92.0) == 1  # fills only the other account's stop
    assert pushed == []


def test_simulated_exchange_declares_push_order_updates() -> None:
    assert SimulatedExchange.capabilities.push_order_updates
