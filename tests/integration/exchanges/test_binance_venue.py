"""The stateful Binance loopback venue, driven through TradeFleet's own ccxt adapter.

``support/binance_venue.py`` answers like Binance's spot REST API from an in-memory account; these tests
place, look up and cancel orders through :class:`CcxtExchange` (ccxt's binance client pointed at the
venue) and read klines with ccxt's ``fetch_ohlcv``, then audit the venue's own ledger and balances.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import ccxt
import pytest

from support.binance_venue import API_KEY, CCXT_OPTIONS, SECRET, START_BALANCES, BinanceVenue
from tradefleet.adapters.exchanges.ccxt import CcxtExchange, ReadRetry
from tradefleet.core.errors import (
    AmbiguousOrderError,
    AuthenticationError,
    InsufficientFundsError,
    InvalidOrderError,
)
from tradefleet.core.orders import OrderSide, OrderStatus, OrderType
from tradefleet.core.ports import Balance, OrderRequest

FAST_RETRY = ReadRetry(attempts=3, backoff_s=0.01, max_wait_s=2.0)
ORDER = "/api/v3/order"
MINUTE, HOUR = 60_000, 3_600_000
BTC = "BTC/USDT"


@pytest.fixture
def venue() -> Iterator[BinanceVenue]:
    with BinanceVenue() as server:
        yield server
        assert server.unrouted() == []  # ccxt called nothing the venue does not model


def binance(venue: BinanceVenue, **overrides: Any) -> CcxtExchange:
    settings: dict[str, Any] = {
        "api_key": API_KEY,
        "secret": SECRET,
        "api_urls": venue.api_urls,
        "options": CCXT_OPTIONS,
        "timeout_ms": 2_000,
        "retry": FAST_RETRY,
    }
    return CcxtExchange("binance", **{**settings, **overrides})


def market(cid: str, side: OrderSide, amount: float, symbol: str = BTC) -> OrderRequest:
    return OrderRequest(cid, symbol, side, OrderType.MARKET, amount)


def limit(cid: str, side: OrderSide, amount: float, price: float) -> OrderRequest:
    return OrderRequest(cid, BTC, side, OrderType.LIMIT, amount, price=price)


def assert_balances_add_up(venue: BinanceVenue) -> None:
    """Every balance is its starting amount plus what the venue's own fills moved, less commissions."""
    expected: defaultdict[str, float] = defaultdict(float, START_BALANCES)
    for trade in venue.trades():
        base, quote = trade.unified_symbol.split("/")
        sign = 1 if trade.side == "BUY" else -1
        expected[base] += sign * trade.qty
        expected[quote] -= sign * trade.quote_qty
        expected[trade.commission_asset] -= trade.commission
    totals = {asset: balance.total for asset, balance in venue.balances().items()}
    assert totals == {asset: pytest.approx(expected[asset], abs=1e-8) for asset in totals}


def test_markets_and_balances_come_from_the_venue(venue: BinanceVenue) -> None:
    exchange = binance(venue)

    markets = exchange.load_markets()
    balances = exchange.fetch_balance()

    assert {"BTC/USDT", "ETH/USDT"} <= set(markets)
    assert (markets[BTC].min_notional, markets[BTC].amount_precision) == (5.0, 0.00001)
    assert balances == {"USDT": Balance("USDT", 10_000.0, 0.0)}  # zero balances are left out by the adapter


def test_market_buy_fills_at_once_at_the_current_price_and_moves_the_balances(venue: BinanceVenue) -> None:
    exchange = binance(venue)

    order = exchange.create_order(market("tf-v-mkt-0001", OrderSide.BUY, 0.01))

    assert (order.status, order.filled, order.average) == (OrderStatus.FILLED, 0.01, 97000.01)
    [fill] = order.fills
    assert (fill.price, fill.amount, fill.fee, fill.fee_currency) == (97000.01, 0.01, 0.00001, "BTC")
    [post] = venue.requests(ORDER, "POST")
    assert (post.params["newClientOrderId"], post.params["type"]) == ("tf-v-mkt-0001", "MARKET")
    [ledger] = venue.orders()
    assert (ledger.client_order_id, ledger.order_id, ledger.status) == (
        "tf-v-mkt-0001",
        order.exchange_order_id,
        "FILLED",
    )
    assert (ledger.executed_qty, ledger.cumulative_quote_qty) == (0.01, 970.0001)
    assert [t.fill_id for t in venue.trades()] == [fill.trade_id]
    assert exchange.fetch_balance() == {
        "BTC": Balance("BTC", 0.00999, 0.0),  # the commission is taken from the asset bought
        "USDT": Balance("USDT", 10_000.0 - 970.0001, 0.0),
    }
    assert_balances_add_up(venue)


def test_stop_loss_sell_rests_until_the_price_falls_through_it_then_fills(venue: BinanceVenue) -> None:
    exchange = binance(venue)
    exchange.create_order(market("tf-v-mkt-0002", OrderSide.BUY, 0.01))
    request = OrderRequest("tf-v-stp-0001", BTC, OrderSide.SELL, OrderType.STOP, 0.00999, stop_price=90000)

    stop = exchange.create_order(request)

    assert (stop.status, stop.type, stop.stop_price, stop.fills) == (OrderStatus.OPEN, OrderType.STOP, 90000.0, ())
    assert venue.requests(ORDER, "POST")[-1].params["type"] == "STOP_LOSS"
    assert exchange.fetch_balance()["BTC"] == Balance("BTC", 0.0, 0.00999)  # locked by the resting stop
    assert [o.client_order_id for o in exchange.fetch_open_orders(BTC)] == ["tf-v-stp-0001"]
    assert venue.set_price("BTCUSDT", 92000) == []  # above the stop: nothing happens
    [triggered] = venue.set_price("BTCUSDT", 89500.5)  # a gap through the stop: fills at the market

    filled = exchange.fetch_order(BTC, "tf-v-stp-0001")

    assert (triggered.client_order_id, triggered.status, triggered.triggered) == ("tf-v-stp-0001", "FILLED", True)
    assert filled is not None
    assert (filled.status, filled.filled, filled.average) == (OrderStatus.FILLED, 0.00999, 89500.5)
    [fill] = filled.fills
    assert (fill.fee, fill.fee_currency) == (0.89410999, "USDT")  # 0.1 % of 894.109995, cut to 8 decimals
    assert fill.trade_id == venue.trades()[-1].fill_id
    assert exchange.fetch_open_orders(BTC) == []
    assert set(exchange.fetch_balance()) == {"USDT"}
    assert_balances_add_up(venue)


def test_stop_loss_limit_sell_waits_for_its_stop_then_for_its_limit(venue: BinanceVenue) -> None:
    # The adapter sends every stop as a STOP_LOSS, so ccxt's own create_order places a STOP_LOSS_LIMIT.
    exchange = binance(venue)
    exchange.create_order(market("tf-v-mkt-0003", OrderSide.BUY, 0.01))
    client = ccxt.binance({"apiKey": API_KEY, "secret": SECRET, "options": CCXT_OPTIONS})
    client.urls["api"] = {**client.urls["api"], **venue.api_urls}
    params = {"triggerPrice": 90000, "clientOrderId": "tf-v-sll-0001"}

    placed = client.create_order(BTC, "limit", "sell", 0.00999, 89900, params)

    assert venue.requests(ORDER, "POST")[-1].params["type"] == "STOP_LOSS_LIMIT"
    assert (placed["status"], placed["triggerPrice"]) == ("open", 90000.0)
    assert venue.set_price("BTCUSDT", 90500) == []
    [working] = venue.set_price("BTCUSDT", 89800)  # triggered, but below its limit: it rests
    assert (working.triggered, working.status) == (True, "NEW")
    [filled] = venue.set_price("BTCUSDT", 89950)  # back up through the limit: filled at the limit
    assert (filled.status, venue.trades()[-1].price, venue.trades()[-1].is_maker) == ("FILLED", 89900.0, True)
    order = exchange.fetch_order(BTC, "tf-v-sll-0001")
    assert order is not None
    assert (order.status, order.average, order.stop_price) == (OrderStatus.FILLED, 89900.0, 90000.0)
    assert_balances_add_up(venue)


def test_resting_limit_is_found_by_client_id_and_its_cancel_unlocks_the_funds(venue: BinanceVenue) -> None:
    exchange = binance(venue)

    placed = exchange.create_order(limit("tf-v-lim-0001", OrderSide.BUY, 0.01, 95000))

    assert (placed.status, placed.price) == (OrderStatus.OPEN, 95000.0)
    assert exchange.fetch_balance()["USDT"] == Balance("USDT", 9050.0, 950.0)
    found = exchange.fetch_order(BTC, "tf-v-lim-0001")
    assert found is not None
    assert (found.status, found.exchange_order_id) == (OrderStatus.OPEN, placed.exchange_order_id)
    assert [o.client_order_id for o in exchange.fetch_open_orders()] == ["tf-v-lim-0001"]
    assert [o.client_order_id for o in exchange.fetch_open_orders(BTC)] == ["tf-v-lim-0001"]
    assert "symbol" not in venue.requests("/api/v3/openOrders")[0].params

    canceled = exchange.cancel_order(BTC, "tf-v-lim-0001")

    assert (canceled.status, canceled.client_order_id) == (OrderStatus.CANCELED, "tf-v-lim-0001")
    assert venue.requests(ORDER, "DELETE")[0].params["origClientOrderId"] == "tf-v-lim-0001"
    assert exchange.fetch_open_orders(BTC) == []
    assert exchange.fetch_balance() == {"USDT": Balance("USDT", 10_000.0, 0.0)}
    assert exchange.cancel_order(BTC, "tf-v-lim-0001").status is OrderStatus.CANCELED  # -2011, then looked up
    assert exchange.fetch_order(BTC, "tf-v-never-sent") is None  # -2013
    assert [(o.client_order_id, o.status, o.executed_qty) for o in venue.orders()] == [
        ("tf-v-lim-0001", "CANCELED", 0.0)
    ]


def test_limit_orders_take_at_once_when_marketable_else_fill_at_their_price(venue: BinanceVenue) -> None:
    exchange = binance(venue)

    taker = exchange.create_order(limit("tf-v-lim-0002", OrderSide.BUY, 0.01, 98000))
    maker = exchange.create_order(limit("tf-v-lim-0003", OrderSide.BUY, 0.01, 96000))
    venue.set_price("BTCUSDT", 95800)
    filled = exchange.fetch_order(BTC, "tf-v-lim-0003")

    assert (taker.status, taker.average) == (OrderStatus.FILLED, 97000.01)  # at the market, not its limit
    assert maker.status is OrderStatus.OPEN
    assert filled is not None
    assert (filled.status, filled.average) == (OrderStatus.FILLED, 96000.0)
    assert [(t.client_order_id, t.is_maker) for t in venue.trades()] == [
        ("tf-v-lim-0002", False),
        ("tf-v-lim-0003", True),
    ]
    assert_balances_add_up(venue)


def test_a_client_order_id_still_open_is_refused_and_no_second_order_exists(venue: BinanceVenue) -> None:
    exchange = binance(venue)
    first = exchange.create_order(limit("tf-v-dup-0001", OrderSide.BUY, 0.01, 95000))

    with pytest.raises(InvalidOrderError, match="Duplicate order sent"):
        exchange.create_order(limit("tf-v-dup-0001", OrderSide.BUY, 0.01, 95000))

    assert [r.status for r in venue.requests(ORDER, "POST")] == [200, 400]
    assert [o.order_id for o in venue.orders()] == [first.exchange_order_id]
    assert exchange.fetch_balance()["USDT"] == Balance("USDT", 9050.0, 950.0)  # locked once


def test_binance_takes_the_client_order_id_of_a_filled_order_again(venue: BinanceVenue) -> None:
    """Binance: "same newClientOrderId can be accepted only when the previous one is filled".

    So the venue is no guard against resending a market order that filled: only looking it up is.
    """
    exchange = binance(venue)

    exchange.create_order(market("tf-v-dup-0002", OrderSide.BUY, 0.001))
    exchange.create_order(market("tf-v-dup-0002", OrderSide.BUY, 0.001))

    assert [(o.client_order_id, o.status) for o in venue.orders()] == [("tf-v-dup-0002", "FILLED")] * 2


@pytest.mark.parametrize("wrong", [{"api_key": "tfWrongKey"}, {"secret": "tfWrongSecret"}], ids=["key", "secret"])
def test_wrong_credentials_are_authentication_errors(venue: BinanceVenue, wrong: dict[str, str]) -> None:
    exchange = binance(venue, **wrong)

    with pytest.raises(AuthenticationError):
        exchange.fetch_balance()
    with pytest.raises(AuthenticationError):
        exchange.create_order(market("tf-v-auth-0001", OrderSide.BUY, 0.001))

    assert venue.orders() == []
    assert [r.status for r in venue.requests(ORDER)] == [401 if "api_key" in wrong else 400]


def test_an_order_beyond_the_balance_is_refused_and_nothing_moves(venue: BinanceVenue) -> None:
    exchange = binance(venue)

    with pytest.raises(InsufficientFundsError):
        exchange.create_order(market("tf-v-big-0001", OrderSide.BUY, 0.5))

    assert venue.orders() == []
    assert exchange.fetch_balance() == {"USDT": Balance("USDT", 10_000.0, 0.0)}


@pytest.mark.parametrize(
    ("request_", "error", "message"),
    [
        (market("tf-v-bad-0002", OrderSide.BUY, 0.00001), InvalidOrderError, "Filter failure: NOTIONAL"),
        (
            OrderRequest("tf-v-bad-0003", BTC, OrderSide.SELL, OrderType.STOP, 0.001, stop_price=99000),
            InvalidOrderError,
            "Stop price would trigger immediately",
        ),
        (market("tf-v-bad-0004", OrderSide.SELL, 0.001), InsufficientFundsError, "insufficient balance"),
    ],
    ids=["below-min-notional", "stop-above-the-market", "sell-without-the-asset"],
)
def test_orders_binance_refuses_are_refused_with_its_errors(
    venue: BinanceVenue, request_: OrderRequest, error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        binance(venue).create_order(request_)

    assert [r.status for r in venue.requests(ORDER, "POST")] == [400]
    assert venue.orders() == []


def test_an_injected_error_answers_once_and_a_read_retries_past_it(venue: BinanceVenue) -> None:
    venue.fail_next("/api/v3/account", "service_unavailable_html")

    assert binance(venue).fetch_balance()["USDT"].free == 10_000.0
    assert [r.status for r in venue.requests("/api/v3/account")] == [503, 200]


def test_an_order_taken_while_its_answer_was_lost_is_resolved_by_client_id(venue: BinanceVenue) -> None:
    venue.fail_next(ORDER, "timeout_status_unknown", method="POST", after_effect=True)
    exchange = binance(venue)

    with pytest.raises(AmbiguousOrderError):
        exchange.create_order(market("tf-v-lost-0001", OrderSide.BUY, 0.01))
    resolved = exchange.fetch_order(BTC, "tf-v-lost-0001")

    assert resolved is not None
    assert (resolved.status, resolved.filled) == (OrderStatus.FILLED, 0.01)
    assert [f.trade_id for f in resolved.fills] == [t.fill_id for t in venue.trades()]
    assert len(venue.requests(ORDER, "POST")) == 1
    assert [(o.client_order_id, o.status) for o in venue.orders()] == [("tf-v-lost-0001", "FILLED")]


def ohlcv_client(venue: BinanceVenue) -> ccxt.binance:
    client = ccxt.binance({"options": CCXT_OPTIONS})
    client.urls["api"] = {**client.urls["api"], **venue.api_urls}
    return client


def test_klines_follow_the_wall_clock_with_the_forming_candle_last(venue: BinanceVenue) -> None:
    client = ohlcv_client(venue)

    before = time.time_ns() // 1_000_000 // MINUTE * MINUTE
    candles = client.fetch_ohlcv(BTC, "1m", limit=5)
    after = time.time_ns() // 1_000_000 // MINUTE * MINUTE

    opens = [c[0] for c in candles]
    assert opens == list(range(opens[0], opens[0] + 5 * MINUTE, MINUTE))
    assert opens[-1] in {before, after}  # the candle still forming now
    assert candles[-1][4] == 97000.01  # it closes at the current price
    assert all(abs(price / 97000.01 - 1) < 0.002 for c in candles for price in c[1:5])  # quiet history
    venue.set_price("BTCUSDT", 98000)
    forming = client.fetch_ohlcv(BTC, "1m", limit=1)[-1]
    assert (forming[2], forming[4]) == (98000.0, 98000.0)  # the new price is its high and close


def test_klines_read_start_end_and_limit_as_binance_does(venue: BinanceVenue) -> None:
    client = ohlcv_client(venue)
    hour_ago = time.time_ns() // 1_000_000 // HOUR * HOUR - HOUR

    from_start = client.fetch_ohlcv(BTC, "1m", since=hour_ago + 1, limit=3)
    to_end = client.fetch_ohlcv(BTC, "1h", limit=2, params={"until": hour_ago + 1})
    [week] = client.fetch_ohlcv(BTC, "1w", limit=1)

    assert [c[0] for c in from_start] == [hour_ago + MINUTE, hour_ago + 2 * MINUTE, hour_ago + 3 * MINUTE]
    assert [c[0] for c in to_end] == [hour_ago - HOUR, hour_ago]  # opening at or before endTime
    monday = datetime.fromtimestamp(week[0] / 1000, UTC)
    assert (monday.weekday(), monday.hour, monday.minute) == (0, 0, 0)
    assert [r.params["limit"] for r in venue.requests("/api/v3/klines")] == ["3", "2", "1"]
