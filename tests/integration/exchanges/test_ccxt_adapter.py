"""The ccxt adapter against a loopback server answering like Binance's spot REST API.

The answers live in ``tests/fixtures/ccxt/binance`` (see its README); ccxt's Binance client is pointed at
the server, so ccxt's request building, signing, parsing and error mapping all run for real.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import ccxt
import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from tradefleet.adapters.exchanges.ccxt import (
    CcxtExchange,
    CcxtExchangeFactory,
    ReadRetry,
    market_from_ccxt,
    translate_error,
)
from tradefleet.core.errors import (
    AmbiguousOrderError,
    AuthenticationError,
    ConfigError,
    ExchangeError,
    InsufficientFundsError,
    InvalidOrderError,
    OrderNotFoundError,
    RateLimitError,
    TemporaryExchangeError,
    UnknownSymbolError,
)
from tradefleet.core.orders import OrderSide, OrderStatus, OrderType
from tradefleet.core.ports import ExchangeCapabilities, ExchangePort, OrderRequest

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "ccxt" / "binance"
API_KEY = "tfTestKey0000000000000000000000000000000000000000000000000000001"  # fake, not a secret
SECRET = "tfTestSecret000000000000000000000000000000000000000000000000001"  # fake, not a secret
OPTIONS = {
    "fetchMarkets": {"types": ["spot"]},
    "fetchMargins": False,
    "fetchCurrencies": False,
    "adjustForTimeDifference": False,
    "warnOnFetchOpenOrdersWithoutSymbol": False,
}
FAST_RETRY = ReadRetry(attempts=3, backoff_s=0.01, max_wait_s=2.0)
ORDER = "/api/v3/order"


def recorded(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text())


def recorded_error(name: str) -> Response:
    answer = recorded(f"errors/{name}")
    text = answer["body"] if isinstance(answer["body"], str) else json.dumps(answer["body"])
    content_type = answer["headers"].get("Content-Type", "application/json")
    return Response(text, status=answer["status"], headers=answer["headers"], content_type=content_type)


@pytest.fixture(scope="module")
def loopback() -> Iterator[HTTPServer]:
    server = HTTPServer(threaded=True)  # threaded: a stalled answer must not hold up the next request
    server.start()
    yield server
    server.stop()


@pytest.fixture
def venue(loopback: HTTPServer) -> Iterator[HTTPServer]:
    loopback.clear()
    loopback.expect_request("/api/v3/exchangeInfo", method="GET").respond_with_json(recorded("exchangeInfo.json"))
    yield loopback
    loopback.check_assertions()  # fails the test when ccxt called an endpoint nothing was recorded for


def binance(server: HTTPServer, **overrides: Any) -> CcxtExchange:
    settings: dict[str, Any] = {
        "api_key": API_KEY,
        "secret": SECRET,
        "api_urls": {"public": server.url_for("/api/v3"), "private": server.url_for("/api/v3")},
        "options": OPTIONS,
        "timeout_ms": 2_000,
        "retry": FAST_RETRY,
    }
    return CcxtExchange("binance", **{**settings, **overrides})


def sent(server: HTTPServer, method: str, path: str) -> list[Request]:
    return [request for request, _ in server.log if request.method == method and request.path == path]


def answer_order_lookup(server: HTTPServer, known: dict[str, str]) -> None:
    """Answer GET /order by origClientOrderId: the recorded order when known, else Binance's -2013."""

    def lookup(request: Request) -> Response:
        name = known.get(request.args.get("origClientOrderId", ""))
        if name is None:
            return recorded_error("order_does_not_exist.json")
        return Response(json.dumps(recorded(name)), content_type="application/json")

    server.expect_request(ORDER, method="GET").respond_with_handler(lookup)


def answer_my_trades(server: HTTPServer) -> None:
    """Answer GET /myTrades?orderId=... from the recorded trades of that order."""

    def trades(request: Request) -> Response:
        name = f"myTrades_{request.args['symbol']}_{request.args['orderId']}.json"
        return Response(json.dumps(recorded(name)), content_type="application/json")

    server.expect_request("/api/v3/myTrades", method="GET").respond_with_handler(trades)


def test_the_adapter_is_an_exchange_port(venue: HTTPServer) -> None:
    assert isinstance(binance(venue), ExchangePort)


def test_load_markets_reads_tick_step_and_limits_of_active_spot_markets(venue: HTTPServer) -> None:
    markets = binance(venue).load_markets()

    assert set(markets) == {"BTC/USDT", "ETH/USDT", "ETH/BTC"}  # BCCBTC is in BREAK
    btc = markets["BTC/USDT"]
    assert (btc.base, btc.quote) == ("BTC", "USDT")
    assert (btc.price_precision, btc.amount_precision) == (0.01, 0.00001)
    assert (btc.min_notional, btc.min_amount) == (5.0, 0.00001)
    assert (btc.taker_fee, btc.maker_fee) == (0.001, 0.001)
    assert markets["ETH/BTC"].price_precision == 0.00001
    assert markets["ETH/BTC"].min_notional == 0.0001


def test_binance_loads_only_its_spot_markets_without_being_told(venue: HTTPServer) -> None:
    every_api = {name: venue.url_for(f"/{name}") for name in ccxt.binance().urls["api"]}  # catch strays
    urls = {**every_api, "public": venue.url_for("/api/v3"), "private": venue.url_for("/api/v3")}
    exchange = binance(venue, api_urls=urls, options={"fetchCurrencies": False})

    assert "BTC/USDT" in exchange.load_markets()
    assert [request.path for request, _ in venue.log] == ["/api/v3/exchangeInfo"]


@pytest.mark.parametrize(
    ("mode", "precision", "steps"),
    [
        (ccxt.TICK_SIZE, {"price": 0.05, "amount": 0.001}, (0.05, 0.001)),
        (ccxt.DECIMAL_PLACES, {"price": 2, "amount": 5}, (0.01, 0.00001)),
        (ccxt.SIGNIFICANT_DIGITS, {"price": 5, "amount": 8}, (0.0, 0.0)),  # no fixed step
    ],
)
def test_market_precision_follows_the_venues_precision_mode(
    mode: int, precision: dict[str, float], steps: tuple[float, float]
) -> None:
    raw = {
        "symbol": "XRP/EUR",
        "base": "XRP",
        "quote": "EUR",
        "precision": precision,
        "limits": {"amount": {"min": 1.0}, "cost": {"min": None}},
        "taker": 0.002,
        "maker": 0.001,
    }
    market = market_from_ccxt(raw, mode)

    assert (market.price_precision, market.amount_precision) == steps
    assert (market.min_amount, market.min_notional, market.taker_fee) == (1.0, 0.0, 0.002)


def test_capabilities_are_derived_from_ccxt_flags() -> None:
    binance_caps = CcxtExchange("binance").capabilities
    assert binance_caps == ExchangeCapabilities(
        stop_orders=True, client_order_id=True, fetch_order_by_client_id=True, shorting=False, placement_settle_s=30.0
    )
    slow = CcxtExchange("binance", timeout_ms=20_000).capabilities
    assert slow.placement_settle_s == 60.0, "an unknown order may be in flight for three request timeouts"
    assert CcxtExchange("binanceus").capabilities.fetch_order_by_client_id  # inherits binance's entry
    assert not CcxtExchange("bitstamp").capabilities.fetch_order_by_client_id


def test_market_order_carries_the_client_order_id_as_new_client_order_id(venue: HTTPServer) -> None:
    venue.expect_request(ORDER, method="POST").respond_with_json(recorded("order_market_buy_full.json"))
    request = OrderRequest("tf-b1-mkt-0001", "BTC/USDT", OrderSide.BUY, OrderType.MARKET, 0.0012345)

    order = binance(venue).create_order(request)

    [post] = sent(venue, "POST", ORDER)
    form = post.form.to_dict()
    assert form["newClientOrderId"] == "tf-b1-mkt-0001"
    assert [form[k] for k in ("symbol", "side", "type", "quantity")] == [
        "BTCUSDT",
        "BUY",
        "MARKET",
        "0.00123",
    ]
    assert {"price", "quoteOrderQty", "clientOrderId", "maxRetriesOnFailure"}.isdisjoint(form)
    assert post.headers["X-MBX-APIKEY"] == API_KEY
    assert order.status is OrderStatus.FILLED
    assert (order.exchange_order_id, order.client_order_id) == ("47123456789", "tf-b1-mkt-0001")
    assert order.filled == pytest.approx(0.00123)
    assert order.average == pytest.approx(119.3100166 / 0.00123)
    assert [f.trade_id for f in order.fills] == ["BTC/USDT:4175012345", "BTC/USDT:4175012346"]
    assert [(f.amount, f.fee, f.fee_currency) for f in order.fills] == [
        (0.0008, 0.0000008, "BTC"),
        (0.00043, 0.00000043, "BTC"),
    ]
    assert order.fee == pytest.approx(0.00000123)
    assert order.timestamp_ms == 1732190401234


def test_limit_order_amount_and_price_are_rounded_to_the_market(venue: HTTPServer) -> None:
    venue.expect_request(ORDER, method="POST").respond_with_json(recorded("order_limit_buy_new.json"))
    request = OrderRequest("tf-b1-lim-0001", "BTC/USDT", OrderSide.BUY, OrderType.LIMIT, 0.0012399, price=95123.456)

    order = binance(venue).create_order(request)

    form = sent(venue, "POST", ORDER)[0].form
    assert (form["type"], form["timeInForce"]) == ("LIMIT", "GTC")
    assert form["quantity"] == "0.00123"  # truncated to the 0.00001 step
    assert form["price"] == "95123.46"  # rounded to the 0.01 tick
    assert (order.status, order.type, order.price, order.amount) == (
        OrderStatus.OPEN,
        OrderType.LIMIT,
        95123.46,
        0.00123,
    )
    assert order.fills == ()


def test_stop_order_goes_out_as_a_stop_loss_with_its_stop_price(venue: HTTPServer) -> None:
    venue.expect_request(ORDER, method="POST").respond_with_json(recorded("order_stop_loss_sell_new.json"))
    request = OrderRequest("tf-b1-stp-0001", "BTC/USDT", OrderSide.SELL, OrderType.STOP, 0.001, stop_price=90000.004)

    order = binance(venue).create_order(request)

    form = sent(venue, "POST", ORDER)[0].form
    assert (form["type"], form["stopPrice"], form["quantity"]) == ("STOP_LOSS", "90000", "0.001")
    assert "price" not in form
    assert (order.type, order.status, order.stop_price) == (OrderType.STOP, OrderStatus.OPEN, 90000.0)
    assert order.timestamp_ms == 1732190403456  # not Binance's workingTime -1 of an untriggered stop


@pytest.mark.parametrize(
    ("request_", "error"),
    [
        (OrderRequest("tf-b1-x-1", "DOGE/USDT", OrderSide.BUY, OrderType.MARKET, 10), UnknownSymbolError),
        (OrderRequest("tf-b1-x-2", "BTC/USDT", OrderSide.BUY, OrderType.MARKET, 0.000004), InvalidOrderError),
        (OrderRequest("tf-b1-x-3", "BTC/USDT", OrderSide.BUY, OrderType.LIMIT, 0.001), InvalidOrderError),
    ],
    ids=["unlisted-symbol", "amount-below-one-step", "limit-without-price"],
)
def test_orders_that_cannot_be_valid_are_refused_before_anything_is_sent(
    venue: HTTPServer, request_: OrderRequest, error: type[ExchangeError]
) -> None:
    with pytest.raises(error):
        binance(venue).create_order(request_)
    assert sent(venue, "POST", ORDER) == []


@pytest.mark.parametrize(
    ("answer", "symbol", "error"),
    [
        ("insufficient_balance.json", "BTC/USDT", InsufficientFundsError),
        ("invalid_symbol.json", "ETH/BTC", UnknownSymbolError),
        ("filter_failure_notional.json", "BTC/USDT", InvalidOrderError),
        ("invalid_api_key.json", "BTC/USDT", AuthenticationError),
        ("too_much_weight.json", "BTC/USDT", RateLimitError),
        ("timeout_status_unknown.json", "BTC/USDT", AmbiguousOrderError),
        ("unexpected_response.json", "BTC/USDT", AmbiguousOrderError),
        ("service_unavailable_html.json", "BTC/USDT", AmbiguousOrderError),
        ("server_busy.json", "BTC/USDT", AmbiguousOrderError),  # a code ccxt maps only for api.binance.com
    ],
)
def test_create_order_errors_are_translated_and_never_retried(
    venue: HTTPServer, answer: str, symbol: str, error: type[ExchangeError]
) -> None:
    venue.expect_request(ORDER, method="POST").respond_with_response(recorded_error(answer))
    request = OrderRequest("tf-b1-err-0001", symbol, OrderSide.BUY, OrderType.MARKET, 0.001)

    with pytest.raises(error) as raised:
        binance(venue).create_order(request)

    assert type(raised.value) is error
    assert len(sent(venue, "POST", ORDER)) == 1
    if isinstance(raised.value, RateLimitError):
        assert raised.value.retry_after == 7.0  # from the Retry-After header


def test_ccxt_is_not_allowed_to_resend_an_order_even_when_configured_to(venue: HTTPServer) -> None:
    venue.expect_request(ORDER, method="POST").respond_with_response(recorded_error("timeout_status_unknown.json"))
    exchange = binance(venue, options={**OPTIONS, "maxRetriesOnFailure": 3})
    request = OrderRequest("tf-b1-err-0002", "BTC/USDT", OrderSide.BUY, OrderType.MARKET, 0.001)

    with pytest.raises(AmbiguousOrderError):
        exchange.create_order(request)
    assert len(sent(venue, "POST", ORDER)) == 1


def test_lost_order_answer_is_ambiguous_never_resent_and_resolved_by_client_id(venue: HTTPServer) -> None:
    def accept_then_stall(request: Request) -> Response:
        time.sleep(1.0)  # the venue took the order; its answer comes after the client gave up
        return Response(json.dumps(recorded("order_market_buy_0002_full.json")), content_type="application/json")

    venue.expect_request(ORDER, method="POST").respond_with_handler(accept_then_stall)
    answer_order_lookup(venue, {"tf-b1-mkt-0002": "order_query_market_0002_filled.json"})
    answer_my_trades(venue)
    exchange = binance(venue, timeout_ms=300)
    request = OrderRequest("tf-b1-mkt-0002", "BTC/USDT", OrderSide.BUY, OrderType.MARKET, 0.0005)

    with pytest.raises(AmbiguousOrderError):
        exchange.create_order(request)
    resolved = exchange.fetch_order("BTC/USDT", "tf-b1-mkt-0002")

    time.sleep(1.0)  # let the stalled answer finish so the log holds every request
    assert len(sent(venue, "POST", ORDER)) == 1
    [lookup] = sent(venue, "GET", ORDER)
    assert lookup.args["origClientOrderId"] == "tf-b1-mkt-0002"
    assert "orderId" not in lookup.args
    assert resolved is not None
    assert (resolved.status, resolved.exchange_order_id, resolved.filled) == (
        OrderStatus.FILLED,
        "47123456792",
        0.0005,
    )
    assert [(f.trade_id, f.price, f.amount) for f in resolved.fills] == [("BTC/USDT:4175012400", 97000.01, 0.0005)]
    assert sent(venue, "GET", "/api/v3/myTrades")[0].args["orderId"] == "47123456792"


def test_order_whose_connection_drops_is_ambiguous_and_not_resent(venue: HTTPServer) -> None:
    received: list[dict[str, str]] = []

    def drop(request: Request) -> Response:
        received.append(request.form.to_dict())  # the server log is written after the handler returns
        request.environ["werkzeug.socket"].shutdown(socket.SHUT_RDWR)
        return Response(status=500)  # never reaches the client

    venue.expect_request(ORDER, method="POST").respond_with_handler(drop)
    request = OrderRequest("tf-b1-mkt-0003", "BTC/USDT", OrderSide.BUY, OrderType.MARKET, 0.0005)

    with pytest.raises(AmbiguousOrderError):
        binance(venue).create_order(request)
    assert [form["newClientOrderId"] for form in received] == ["tf-b1-mkt-0003"]


def test_fetch_order_of_an_unknown_client_id_is_none(venue: HTTPServer) -> None:
    answer_order_lookup(venue, {})

    assert binance(venue).fetch_order("BTC/USDT", "tf-b1-never-sent") is None
    assert len(sent(venue, "GET", ORDER)) == 1


def test_reads_are_retried_on_temporary_errors(venue: HTTPServer) -> None:
    venue.expect_oneshot_request(ORDER, method="GET").respond_with_response(
        recorded_error("timeout_status_unknown.json")
    )
    answer_order_lookup(venue, {"tf-b1-mkt-0002": "order_query_market_0002_filled.json"})
    answer_my_trades(venue)

    order = binance(venue).fetch_order("BTC/USDT", "tf-b1-mkt-0002")

    assert order is not None
    assert order.status is OrderStatus.FILLED
    assert len(sent(venue, "GET", ORDER)) == 2


def test_reads_give_up_after_a_bounded_number_of_attempts(venue: HTTPServer) -> None:
    venue.expect_request("/api/v3/account", method="GET").respond_with_response(
        recorded_error("service_unavailable_html.json")
    )

    with pytest.raises(TemporaryExchangeError):
        binance(venue).fetch_balance()
    assert len(sent(venue, "GET", "/api/v3/account")) == FAST_RETRY.attempts


def test_a_read_waits_out_a_short_retry_after(venue: HTTPServer) -> None:
    venue.expect_oneshot_request("/api/v3/account").respond_with_response(
        recorded_error("too_much_weight_retry_1s.json")
    )
    venue.expect_request("/api/v3/account", method="GET").respond_with_json(recorded("account.json"))
    exchange = binance(venue)
    exchange.load_markets()

    started = time.monotonic()
    balances = exchange.fetch_balance()

    assert time.monotonic() - started >= 1.0
    assert balances["BTC"].free == 0.015
    assert len(sent(venue, "GET", "/api/v3/account")) == 2


def test_a_read_does_not_wait_out_a_long_retry_after(venue: HTTPServer) -> None:
    venue.expect_request("/api/v3/account").respond_with_response(recorded_error("too_much_weight.json"))

    with pytest.raises(RateLimitError) as raised:
        binance(venue).fetch_balance()
    assert raised.value.retry_after == 7.0
    assert len(sent(venue, "GET", "/api/v3/account")) == 1


def test_authentication_errors_on_reads_are_not_retried(venue: HTTPServer) -> None:
    venue.expect_request(ORDER, method="GET").respond_with_response(recorded_error("invalid_api_key.json"))

    with pytest.raises(AuthenticationError):
        binance(venue).fetch_order("BTC/USDT", "tf-b1-lim-0001")
    assert len(sent(venue, "GET", ORDER)) == 1


def test_cancel_order_goes_by_client_id_and_keeps_it(venue: HTTPServer) -> None:
    venue.expect_request(ORDER, method="DELETE").respond_with_json(recorded("order_cancel_limit_0001.json"))

    order = binance(venue).cancel_order("BTC/USDT", "tf-b1-lim-0001")

    [delete] = sent(venue, "DELETE", ORDER)
    assert delete.args["origClientOrderId"] == "tf-b1-lim-0001"
    assert (order.status, order.exchange_order_id) == (OrderStatus.CANCELED, "47123456790")
    assert order.client_order_id == "tf-b1-lim-0001"  # not the id Binance gave the cancel request itself


def test_cancel_of_an_order_that_already_filled_reports_it_filled(venue: HTTPServer) -> None:
    venue.expect_request(ORDER, method="DELETE").respond_with_response(recorded_error("unknown_order_sent.json"))
    answer_order_lookup(venue, {"tf-b1-mkt-0002": "order_query_market_0002_filled.json"})
    answer_my_trades(venue)

    order = binance(venue).cancel_order("BTC/USDT", "tf-b1-mkt-0002")

    assert order.status is OrderStatus.FILLED
    assert len(sent(venue, "DELETE", ORDER)) == 1


def test_cancel_of_an_order_the_venue_never_saw_raises_not_found(venue: HTTPServer) -> None:
    venue.expect_request(ORDER, method="DELETE").respond_with_response(recorded_error("unknown_order_sent.json"))
    answer_order_lookup(venue, {})

    with pytest.raises(OrderNotFoundError):
        binance(venue).cancel_order("BTC/USDT", "tf-b1-never-sent")


def test_open_orders_map_statuses_and_bring_fills_of_partial_orders(venue: HTTPServer) -> None:
    venue.expect_request("/api/v3/openOrders", method="GET").respond_with_json(recorded("openOrders.json"))
    answer_my_trades(venue)

    orders = {o.client_order_id: o for o in binance(venue).fetch_open_orders()}

    assert "symbol" not in sent(venue, "GET", "/api/v3/openOrders")[0].args
    assert orders["tf-b1-lim-0001"].status is OrderStatus.OPEN
    assert orders["tf-b1-lim-0001"].fills == ()
    partial = orders["tf-b2-lim-0007"]
    assert (partial.status, partial.symbol) == (OrderStatus.PARTIALLY_FILLED, "ETH/USDT")
    assert (partial.filled, partial.amount) == (0.2, 0.5)
    assert [(f.trade_id, f.fee, f.fee_currency) for f in partial.fills] == [("ETH/USDT:1987654321", 0.0002, "ETH")]


def test_fetch_balance_reports_free_and_used_of_held_currencies(venue: HTTPServer) -> None:
    venue.expect_request("/api/v3/account", method="GET").respond_with_json(recorded("account.json"))

    balances = binance(venue).fetch_balance()

    assert set(balances) == {"BTC", "USDT", "BNB"}
    assert (balances["BTC"].free, balances["BTC"].used) == (0.015, 0.001)
    assert balances["USDT"].total == pytest.approx(1367.5)


def test_without_client_id_lookup_orders_are_found_among_open_and_past_orders(venue: HTTPServer) -> None:
    def by_symbol(name: str) -> Any:
        def answer(request: Request) -> Response:
            rows = [o for o in recorded(name) if o["symbol"] == request.args["symbol"]]
            return Response(json.dumps(rows), content_type="application/json")

        return answer

    venue.expect_request("/api/v3/openOrders", method="GET").respond_with_handler(by_symbol("openOrders.json"))
    venue.expect_request("/api/v3/allOrders", method="GET").respond_with_handler(by_symbol("allOrders_BTCUSDT.json"))
    answer_my_trades(venue)
    exchange = binance(venue, capabilities=ExchangeCapabilities(fetch_order_by_client_id=False))

    found = exchange.fetch_order("BTC/USDT", "tf-b1-mkt-0002")
    missing = exchange.fetch_order("BTC/USDT", "tf-b1-never-sent")

    assert found is not None
    assert (found.status, found.exchange_order_id) == (OrderStatus.FILLED, "47123456792")
    assert missing is None
    assert sent(venue, "GET", ORDER) == []


def test_without_client_ids_an_order_lookup_is_refused_rather_than_guessed(venue: HTTPServer) -> None:
    no_ids = ExchangeCapabilities(client_order_id=False, fetch_order_by_client_id=False)

    with pytest.raises(ExchangeError, match="no client order id"):
        binance(venue, capabilities=no_ids).fetch_order("BTC/USDT", "tf-b1-mkt-0002")


def test_factory_hands_out_one_adapter_per_exchange_and_key() -> None:
    factory = CcxtExchangeFactory()

    first = factory.get("binance", "key-a", secret="s-a")
    assert factory.get("binance", "key-a", secret="s-a") is first
    assert factory.get("binance", "key-b", secret="s-b") is not first
    assert factory.get("binanceus", "key-a", secret="s-a") is not first
    with pytest.raises(ConfigError):
        factory.get("binance", "key-a", secret="another secret")


def test_unknown_exchange_and_missing_sandbox_are_config_errors() -> None:
    with pytest.raises(ConfigError):
        CcxtExchange("no-such-venue")
    with pytest.raises(ConfigError):
        CcxtExchange("bitstamp", sandbox=True)  # ccxt knows no test network for it
    assert CcxtExchange("binance", sandbox=True).sandbox


@pytest.mark.parametrize(
    ("error", "placing", "http_status", "expected"),
    [
        (ccxt.RequestTimeout("t"), False, None, TemporaryExchangeError),
        (ccxt.RequestTimeout("t"), True, None, AmbiguousOrderError),
        (ccxt.BadResponse("b"), True, 200, AmbiguousOrderError),
        (ccxt.InvalidNonce("n"), True, 400, TemporaryExchangeError),
        (ccxt.BadRequest("r"), False, 400, ExchangeError),
        (ccxt.BadRequest("r"), True, 400, InvalidOrderError),
        (ccxt.OrderNotFound("o"), False, 400, OrderNotFoundError),
        (ccxt.NotSupported("s"), False, None, ExchangeError),
        (ccxt.ExchangeError("e"), True, 400, ExchangeError),
        (ccxt.ExchangeError("e"), False, 502, TemporaryExchangeError),
        (ccxt.ExchangeError("e"), True, 502, AmbiguousOrderError),
        (KeyError("parse"), True, 200, AmbiguousOrderError),
    ],
)
def test_translate_error_table(
    error: Exception, placing: bool, http_status: int | None, expected: type[ExchangeError]
) -> None:
    translated = translate_error(error, placing=placing, http_status=http_status)

    assert type(translated) is expected
    assert translated.details == {"ccxt": type(error).__name__}
