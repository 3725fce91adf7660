"""Accounting of :class:`Portfolio` and :class:`Trade`: the identity of ``core/trades.py`` under random fills.

Identity::

    equity(marks) == cash + Σ amount·mark == starting_cash + realized + unrealized(marks) − fees_paid

Floats are compared with a relative tolerance of 1e-9 of the *scale* of the books (the largest sums that
enter the identity), not of the equity itself: equity can be near zero after a crash in marks while the
terms that cancel out are large, and a relative test on a difference of large terms would only measure
cancellation error.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from tradefleet.core.errors import RiskError
from tradefleet.core.trades import Portfolio, Trade

REL = 1e-9
PAIRS = ("BTC/USDT", "ETH/USDT", "SOL/USDT")
MIN_AMOUNT = 1e-6  # far above the portfolio's dust threshold (1e-9), so no position is rounded away by it

prices = st.floats(min_value=0.01, max_value=1e5, allow_nan=False, allow_infinity=False)
fee_rates = st.sampled_from([0.0, 0.00075, 0.001, 0.002, 0.01])
buy_fractions = st.one_of(st.just(1.0), st.floats(min_value=0.01, max_value=1.0))
# Selling everything, or leaving at least 1 % behind: see test_selling_all_but_dust_keeps_the_identity for
# residues below the dust threshold.
sell_fractions = st.one_of(st.just(1.0), st.floats(min_value=0.01, max_value=0.99))
starting_cash = st.floats(min_value=100.0, max_value=1e6)


@dataclass(frozen=True)
class Op:
    pair: str
    side: str
    fraction: float
    price: float
    fee_rate: float


@st.composite
def op_strategy(draw: st.DrawFn) -> Op:
    side = draw(st.sampled_from(["buy", "sell"]))
    fraction = draw(buy_fractions if side == "buy" else sell_fractions)
    return Op(draw(st.sampled_from(PAIRS)), side, fraction, draw(prices), draw(fee_rates))


ops = st.lists(op_strategy(), max_size=40)
marks_strategy = st.fixed_dictionaries({pair: prices for pair in PAIRS})


@dataclass
class Books:
    """An independent model of the account: every quote and base movement, summed exactly."""

    start: float
    cash_moves: list[float] = field(default_factory=list)
    held: dict[str, list[float]] = field(default_factory=dict)

    def cash(self) -> float:
        return math.fsum([self.start, *self.cash_moves])

    def amount(self, pair: str) -> float:
        return math.fsum(self.held.get(pair, []))


def fill_for(portfolio: Portfolio, op: Op) -> tuple[float, float] | None:
    """Return (amount, fee) of a fill that stays within free cash or holdings, or None when too small."""
    if op.side == "buy":
        amount = portfolio.cash * op.fraction / (op.price * (1 + op.fee_rate))
    else:
        position = portfolio.positions.get(op.pair)
        amount = (position.amount if position else 0.0) * op.fraction
    if amount < MIN_AMOUNT:
        return None
    return amount, amount * op.price * op.fee_rate


def run(start: float, history: list[Op], books: Books | None = None) -> Portfolio:
    portfolio = Portfolio(start)
    for op in history:
        sized = fill_for(portfolio, op)
        if sized is None:
            continue
        amount, fee = sized
        portfolio.apply_fill(op.pair, op.side, amount, op.price, fee)
        if books is not None:
            sign = 1.0 if op.side == "buy" else -1.0
            books.cash_moves.append(-sign * amount * op.price - fee)
            books.held.setdefault(op.pair, []).append(sign * amount)
    return portfolio


def scale(portfolio: Portfolio, marks: dict[str, float]) -> float:
    positions = portfolio.positions.values()
    return (
        portfolio.starting_cash
        + abs(portfolio.cash)
        + abs(portfolio.realized)
        + portfolio.fees_paid
        + math.fsum(p.amount * marks[p.pair] + p.cost for p in positions)
    )


def assert_identity(portfolio: Portfolio, marks: dict[str, float]) -> None:
    equity = portfolio.equity(marks)
    by_marks = portfolio.cash + math.fsum(p.amount * marks[p.pair] for p in portfolio.positions.values())
    by_pnl = portfolio.starting_cash + portfolio.realized + portfolio.unrealized(marks) - portfolio.fees_paid
    tolerance = REL * scale(portfolio, marks)
    assert abs(equity - by_marks) <= tolerance
    assert abs(equity - by_pnl) <= tolerance, f"equity {equity} != start + realized + unrealized − fees {by_pnl}"


# -- Portfolio: properties ------------------------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(start=starting_cash, history=ops, marks=marks_strategy)
def test_equity_identity_holds_after_every_random_fill(
    start: float, history: list[Op], marks: dict[str, float]
) -> None:
    portfolio = Portfolio(start)
    assert_identity(portfolio, marks)
    for op in history:
        sized = fill_for(portfolio, op)
        if sized is None:
            continue
        portfolio.apply_fill(op.pair, op.side, sized[0], op.price, sized[1])
        assert_identity(portfolio, marks)


@settings(max_examples=300, deadline=None)
@given(start=starting_cash, history=ops)
def test_cash_and_holdings_match_an_independent_ledger_of_fills(start: float, history: list[Op]) -> None:
    books = Books(start)
    portfolio = run(start, history, books)

    turnover = start + math.fsum(abs(move) for move in books.cash_moves)
    assert abs(portfolio.cash - books.cash()) <= REL * turnover
    for pair in PAIRS:
        held = portfolio.positions[pair].amount if pair in portfolio.positions else 0.0
        traded = math.fsum(abs(move) for move in books.held.get(pair, []))
        assert abs(held - books.amount(pair)) <= REL * traded


@settings(max_examples=300, deadline=None)
@given(start=starting_cash, history=ops)
@example(
    start=853553.263460518,
    history=[Op("BTC/USDT", "buy", 1.0, 96906.54329515871, 0.001)],
).via("float noise of a buy that spends all free cash")
def test_free_cash_is_never_negative(start: float, history: list[Op]) -> None:
    portfolio = Portfolio(start)
    for op in history:
        sized = fill_for(portfolio, op)
        if sized is None:
            continue
        portfolio.apply_fill(op.pair, op.side, sized[0], op.price, sized[1])
        assert portfolio.cash >= 0.0, f"cash {portfolio.cash!r} after {op}"


overdraws = st.tuples(
    st.sampled_from(PAIRS),
    st.sampled_from(["buy", "sell"]),
    st.floats(min_value=0.01, max_value=10.0),  # how far beyond what is available
    prices,
)


@settings(max_examples=300, deadline=None)
@given(start=starting_cash, history=ops, overdraw=overdraws)
def test_fill_that_would_overdraw_raises_and_changes_nothing(
    start: float, history: list[Op], overdraw: tuple[str, str, float, float]
) -> None:
    portfolio = run(start, history)
    pair, side, excess, price = overdraw
    if side == "buy":
        amount = portfolio.cash * (1 + excess) / price + MIN_AMOUNT
    else:
        position = portfolio.positions.get(pair)
        amount = (position.amount if position else 0.0) * (1 + excess) + MIN_AMOUNT
    before = copy.deepcopy(portfolio)

    with pytest.raises(RiskError):
        portfolio.apply_fill(pair, side, amount, price, fee=0.0)
    assert portfolio == before


# -- Portfolio: examples --------------------------------------------------------------------------------


def test_worked_example_buy_part_sell_and_mark_to_market() -> None:
    portfolio = Portfolio(20_000.0)
    portfolio.apply_fill("BTC/USDT", "buy", 0.5, 20_000.0, 10.0)  # pays 10 000 + 10 fee
    portfolio.apply_fill("BTC/USDT", "sell", 0.2, 25_000.0, 5.0)  # gets 5 000 − 5 fee, realizes 0.2·5 000
    marks = {"BTC/USDT": 18_000.0}

    assert portfolio.cash == pytest.approx(14_985.0)
    assert portfolio.realized == pytest.approx(1_000.0)
    assert portfolio.fees_paid == pytest.approx(15.0)
    assert portfolio.positions["BTC/USDT"].amount == pytest.approx(0.3)
    assert portfolio.positions["BTC/USDT"].avg_price == pytest.approx(20_000.0)
    assert portfolio.unrealized(marks) == pytest.approx(0.3 * 18_000.0 - 6_000.0)  # −600
    assert portfolio.equity(marks) == pytest.approx(14_985.0 + 5_400.0)  # 20 385
    assert portfolio.equity(marks) == pytest.approx(20_000.0 + 1_000.0 - 600.0 - 15.0)


def test_worked_example_average_cost_after_two_buys_sets_the_realized_profit() -> None:
    portfolio = Portfolio(1_000.0)
    portfolio.apply_fill("ETH/USDT", "buy", 0.1, 2_000.0, 0.2)
    portfolio.apply_fill("ETH/USDT", "buy", 0.3, 1_000.0, 0.3)  # average (200 + 300) / 0.4 = 1 250
    portfolio.apply_fill("ETH/USDT", "sell", 0.4, 1_500.0, 0.6)

    assert portfolio.realized == pytest.approx(0.4 * (1_500.0 - 1_250.0))  # 100
    assert portfolio.fees_paid == pytest.approx(1.1)
    assert portfolio.cash == pytest.approx(1_000.0 - 200.2 - 300.3 + 599.4)  # 1 098.9
    assert portfolio.positions["ETH/USDT"].amount == 0.0
    assert portfolio.equity({}) == pytest.approx(1_000.0 + 100.0 - 1.1)


def test_buy_beyond_free_cash_on_a_held_pair_raises_and_changes_nothing() -> None:
    portfolio = Portfolio(1_000.0)
    portfolio.apply_fill("BTC/USDT", "buy", 0.01, 50_000.0, 0.5)
    before = copy.deepcopy(portfolio)

    with pytest.raises(RiskError, match="exceeds free cash"):
        portfolio.apply_fill("BTC/USDT", "buy", 0.01, 50_000.0, 0.5)
    assert portfolio == before


@pytest.mark.parametrize("side", ["buy", "sell"])
def test_refused_fill_on_a_pair_never_traded_leaves_no_position_behind(side: str) -> None:
    portfolio = Portfolio(100.0)
    before = copy.deepcopy(portfolio)

    with pytest.raises(RiskError):
        portfolio.apply_fill("ETH/USDT", side, 1.0, 1_000.0, 0.0)
    assert portfolio == before
    assert "ETH/USDT" not in portfolio.positions


@pytest.mark.parametrize(
    ("amount", "price", "fee"), [(0.0, 1.0, 0.0), (-1.0, 1.0, 0.0), (1.0, 0.0, 0.0), (1.0, 1.0, -0.01)]
)
def test_fill_with_non_positive_amount_or_price_or_negative_fee_is_refused(
    amount: float, price: float, fee: float
) -> None:
    portfolio = Portfolio(100.0)
    before = copy.deepcopy(portfolio)
    with pytest.raises(RiskError, match="invalid fill"):
        portfolio.apply_fill("BTC/USDT", "buy", amount, price, fee)
    assert portfolio == before


def test_negative_starting_cash_is_refused() -> None:
    with pytest.raises(RiskError, match="must not be negative"):
        Portfolio(-1.0)


def test_selling_all_but_dust_keeps_the_identity() -> None:
    """A residue below the dust threshold is dropped from the position: its cost must go somewhere."""
    portfolio = Portfolio(1_000.0)
    portfolio.apply_fill("BTC/USDT", "buy", 0.02, 50_000.0, 0.0)
    portfolio.apply_fill("BTC/USDT", "sell", 0.02 - 5e-10, 50_000.0, 0.0)  # 5e-10 BTC left: 25 µUSDT of cost
    marks = {"BTC/USDT": 50_000.0}

    assert_identity(portfolio, marks)


# -- Trade ----------------------------------------------------------------------------------------------

trade_amounts = st.floats(min_value=1e-6, max_value=1e4)


def open_trade(amount: float, open_rate: float, fee_open: float) -> Trade:
    return Trade(
        bot_id="bot",
        pair="BTC/USDT",
        open_ms=1_000,
        open_rate=open_rate,
        amount=amount,
        fee_open=fee_open,
        stop_price=open_rate * 0.9,
        initial_stop=open_rate * 0.9,
        entry_order="c-entry",
    )


@settings(max_examples=300, deadline=None)
@given(
    amount=trade_amounts,
    open_rate=prices,
    close_rate=prices,
    fee_open_rate=fee_rates,
    fee_close_rate=fee_rates,
)
def test_closed_trade_profit_matches_a_hand_computation(
    amount: float, open_rate: float, close_rate: float, fee_open_rate: float, fee_close_rate: float
) -> None:
    fee_open = amount * open_rate * fee_open_rate
    fee_close = amount * close_rate * fee_close_rate
    trade = open_trade(amount, open_rate, fee_open)
    trade.close(9_000, close_rate, fee_close, "roi", "c-exit")

    cost = amount * open_rate + fee_open
    profit = amount * close_rate - fee_close - cost
    assert math.isclose(trade.cost, cost, rel_tol=REL)
    assert math.isclose(trade.profit_abs, profit, rel_tol=REL, abs_tol=REL * (cost + amount * close_rate))
    assert math.isclose(trade.profit_ratio, trade.profit_abs / cost, rel_tol=REL)


@settings(max_examples=300, deadline=None)
@given(amount=trade_amounts, open_rate=prices, mark=prices, fee_rate=fee_rates)
def test_unrealized_profit_is_what_closing_at_the_mark_would_realize(
    amount: float, open_rate: float, mark: float, fee_rate: float
) -> None:
    trade = open_trade(amount, open_rate, amount * open_rate * fee_rate)
    unrealized = trade.unrealized(mark, fee_rate)
    trade.close(9_000, mark, amount * mark * fee_rate, "exit_signal", "c-exit")

    assert math.isclose(unrealized, trade.profit_abs, rel_tol=REL, abs_tol=REL * (trade.cost + amount * mark))


@settings(max_examples=300, deadline=None)
@given(start=starting_cash, fraction=buy_fractions, open_rate=prices, close_rate=prices, fee_rate=fee_rates)
def test_round_trip_through_the_portfolio_realizes_the_trade_profit(
    start: float, fraction: float, open_rate: float, close_rate: float, fee_rate: float
) -> None:
    amount = start * fraction / (open_rate * (1 + fee_rate))
    fee_open, fee_close = amount * open_rate * fee_rate, amount * close_rate * fee_rate
    portfolio = Portfolio(start)
    portfolio.apply_fill("BTC/USDT", "buy", amount, open_rate, fee_open)
    portfolio.apply_fill("BTC/USDT", "sell", amount, close_rate, fee_close)
    trade = open_trade(amount, open_rate, fee_open)
    trade.close(9_000, close_rate, fee_close, "roi", "c-exit")

    tolerance = REL * (start + amount * close_rate)
    assert abs((portfolio.realized - portfolio.fees_paid) - trade.profit_abs) <= tolerance
    assert abs(portfolio.cash - (start + trade.profit_abs)) <= tolerance


def test_open_trade_reports_no_realized_profit() -> None:
    trade = open_trade(1.0, 100.0, 0.1)
    assert trade.is_open
    assert trade.profit_abs == 0.0
    assert trade.profit_ratio == 0.0


def test_worked_example_closed_trade_profit_and_ratio() -> None:
    trade = open_trade(0.5, 20_000.0, 10.0)  # cost 10 000 + 10
    trade.close(9_000, 22_000.0, 11.0, "roi", "c-exit")  # proceeds 11 000 − 11

    assert trade.cost == 10_010.0
    assert trade.profit_abs == pytest.approx(979.0)
    assert trade.profit_ratio == pytest.approx(979.0 / 10_010.0)  # 0.0978...
    assert (trade.is_open, trade.close_ms, trade.close_rate, trade.exit_reason, trade.exit_order) == (
        False,
        9_000,
        22_000.0,
        "roi",
        "c-exit",
    )


def test_worked_example_losing_trade_has_a_negative_ratio() -> None:
    trade = open_trade(2.0, 100.0, 0.2)  # cost 200.2
    trade.close(9_000, 90.0, 0.18, "stop_loss", "c-stop")  # proceeds 180 − 0.18

    assert trade.profit_abs == pytest.approx(179.82 - 200.2)  # −20.38
    assert trade.profit_ratio == pytest.approx(-20.38 / 200.2)
