"""The order state machine: legal transitions, fills, and the invariants random sequences must keep.

The table of allowed transitions is written out here from the spec in ``core/orders.py`` instead of being
read from ``TRANSITIONS``, so that an accidental edit of the product table fails a test.
"""

from __future__ import annotations

import copy
import itertools
import math
from collections.abc import Callable

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from tradefleet.core.errors import OrderStateError
from tradefleet.core.orders import Fill, Order, OrderIntent, OrderSide, OrderStatus, OrderType

S = OrderStatus
RESOLVED = (S.OPEN, S.PARTIALLY_FILLED, S.FILLED, S.CANCELED, S.REJECTED)
TERMINAL = (S.FILLED, S.CANCELED, S.REJECTED)
ALLOWED: dict[OrderStatus, frozenset[OrderStatus]] = {
    S.PENDING_SUBMIT: frozenset({*RESOLVED, S.UNKNOWN}),
    S.UNKNOWN: frozenset({*RESOLVED, S.UNKNOWN}),
    S.OPEN: frozenset({S.OPEN, S.PARTIALLY_FILLED, S.FILLED, S.CANCELED, S.UNKNOWN}),
    S.PARTIALLY_FILLED: frozenset({S.PARTIALLY_FILLED, S.FILLED, S.CANCELED, S.UNKNOWN}),
    S.FILLED: frozenset({S.FILLED}),
    S.CANCELED: frozenset({S.CANCELED}),
    S.REJECTED: frozenset({S.REJECTED}),
}
# The product's own tolerances: an order is complete when what remains is at most amount·1e-9, and a fill
# may exceed the amount by float noise only.
DONE_TOLERANCE = 1e-9
OVERFILL_SLACK = 1e-9


def make_order(amount: float = 2.0, status: OrderStatus = S.PENDING_SUBMIT) -> Order:
    order = Order(
        client_order_id="c-1",
        bot_id="bot",
        pair="BTC/USDT",
        side=OrderSide.BUY,
        type=OrderType.LIMIT,
        amount=amount,
        intent=OrderIntent.ENTRY,
        created_ms=1_000,
        price=100.0,
    )
    order.status = status
    return order


def fill(trade_id: str, amount: float, price: float = 100.0, fee: float = 0.1, ts: int = 2_000) -> Fill:
    return Fill(trade_id=trade_id, client_order_id="c-1", price=price, amount=amount, fee=fee, timestamp_ms=ts)


def order_is_complete(order: Order) -> bool:
    return order.remaining <= order.amount * DONE_TOLERANCE


# -- the transition table -------------------------------------------------------------------------------


@pytest.mark.parametrize(("current", "new"), list(itertools.product(S, S)), ids=str)
def test_each_transition_is_allowed_exactly_when_the_spec_allows_it(current: OrderStatus, new: OrderStatus) -> None:
    order = make_order(status=current)
    if new in ALLOWED[current]:
        order.transition(new, now_ms=5_000)
        assert order.status is new
        assert order.updated_ms == 5_000
    else:
        before = copy.deepcopy(order)
        with pytest.raises(OrderStateError, match=f"{current} → {new}"):
            order.transition(new, now_ms=5_000)
        assert order == before


@pytest.mark.parametrize("resolved", RESOLVED, ids=str)
def test_unknown_order_resolves_to_every_resolved_state(resolved: OrderStatus) -> None:
    order = make_order(status=S.PENDING_SUBMIT)
    order.transition(S.UNKNOWN, now_ms=2_000)

    assert order.transition(resolved, now_ms=3_000) is True
    assert order.status is resolved


@pytest.mark.parametrize("terminal", TERMINAL, ids=str)
@pytest.mark.parametrize("other", list(S), ids=str)
def test_terminal_states_absorb_every_other_transition(terminal: OrderStatus, other: OrderStatus) -> None:
    order = make_order(status=terminal)
    if other is terminal:
        assert order.transition(other, now_ms=2_000) is False
    else:
        with pytest.raises(OrderStateError):
            order.transition(other, now_ms=2_000)
    assert order.status is terminal


def test_nothing_returns_to_pending_submit() -> None:
    for status in S:
        assert S.PENDING_SUBMIT not in ALLOWED[status]
        with pytest.raises(OrderStateError):
            make_order(status=status).transition(S.PENDING_SUBMIT, now_ms=1)


def test_transition_reports_whether_the_status_changed() -> None:
    order = make_order()
    assert order.transition(S.OPEN, now_ms=1) is True
    assert order.transition(S.OPEN, now_ms=2) is False
    assert order.updated_ms == 2


def test_live_and_terminal_flags_partition_the_statuses() -> None:
    assert {s for s in S if s.is_terminal} == set(TERMINAL)
    assert all(s.is_live != s.is_terminal for s in S)


# -- fills ----------------------------------------------------------------------------------------------


def test_average_price_is_the_amount_weighted_mean_of_two_fills() -> None:
    order = make_order(amount=4.0, status=S.OPEN)
    order.apply_fill(fill("t1", 1.0, price=100.0, fee=0.1))
    order.apply_fill(fill("t2", 3.0, price=120.0, fee=0.36))

    assert order.average == pytest.approx((1.0 * 100.0 + 3.0 * 120.0) / 4.0)  # 115
    assert order.filled == 4.0
    assert order.fee == pytest.approx(0.46)
    assert order.status is S.FILLED


def test_partial_fill_moves_an_open_order_to_partially_filled() -> None:
    order = make_order(amount=2.0, status=S.OPEN)
    assert order.apply_fill(fill("t1", 0.5, ts=7_000)) is True
    assert order.status is S.PARTIALLY_FILLED
    assert order.remaining == 1.5
    assert order.updated_ms == 7_000


def test_fill_on_a_pending_order_resolves_it_without_an_explicit_open() -> None:
    order = make_order(amount=2.0)
    order.apply_fill(fill("t1", 2.0))
    assert order.status is S.FILLED


def test_duplicate_fill_id_is_ignored_even_when_its_numbers_differ() -> None:
    order = make_order(amount=2.0, status=S.OPEN)
    order.apply_fill(fill("t1", 0.5, price=100.0))
    before = copy.deepcopy(order)

    assert order.apply_fill(fill("t1", 1.0, price=50.0)) is False
    assert order == before


def test_fill_that_would_overfill_raises_and_leaves_the_order_unchanged() -> None:
    order = make_order(amount=2.0, status=S.OPEN)
    order.apply_fill(fill("t1", 1.5))
    before = copy.deepcopy(order)

    with pytest.raises(OrderStateError, match="overfills"):
        order.apply_fill(fill("t2", 0.6))
    assert order == before


@pytest.mark.parametrize("amount", [0.0, -1.0])
def test_fill_with_a_non_positive_amount_raises_and_leaves_the_order_unchanged(amount: float) -> None:
    order = make_order(status=S.OPEN)
    before = copy.deepcopy(order)
    with pytest.raises(OrderStateError, match="non-positive"):
        order.apply_fill(fill("t1", amount))
    assert order == before


@pytest.mark.parametrize("terminal", TERMINAL, ids=str)
def test_partial_fill_on_a_terminal_order_raises_and_leaves_the_order_unchanged(
    terminal: OrderStatus,
) -> None:
    order = make_order(amount=2.0)
    order.transition(terminal, now_ms=3_000)  # FILLED here: the venue said so before any fill was seen
    before = copy.deepcopy(order)

    with pytest.raises(OrderStateError):
        order.apply_fill(fill("late", 0.5, ts=9_000))
    assert order == before, "a refused fill must not touch filled, average, fee, fill_ids or updated_ms"


def test_fill_completing_the_order_within_float_noise_marks_it_filled() -> None:
    order = make_order(amount=0.3, status=S.OPEN)
    order.apply_fill(fill("t1", 0.1))
    order.apply_fill(fill("t2", 0.2))  # 0.1 + 0.2 != 0.3 in binary floating point
    assert order.status is S.FILLED
    assert order_is_complete(order)


# -- random sequences -------------------------------------------------------------------------------------

amounts = st.floats(min_value=1e-6, max_value=1e6, allow_nan=False, allow_infinity=False)
prices = st.floats(min_value=1e-6, max_value=1e6, allow_nan=False, allow_infinity=False)
fees = st.floats(min_value=0.0, max_value=1e3, allow_nan=False, allow_infinity=False)
fractions = st.one_of(st.just(1.0), st.floats(min_value=1e-3, max_value=1.0))


class OrderLifecycle(RuleBasedStateMachine):
    """Drive one order with random transitions, fills, duplicate fills and overfills against a model."""

    def __init__(self) -> None:
        super().__init__()
        self.order = make_order()
        self.accepted: dict[str, tuple[float, float, float]] = {}  # trade id -> (price, amount, fee)
        self.declared_filled = False  # FILLED set by transition() with no fills (venue said so)
        self.first_terminal: OrderStatus | None = None
        self.clock = 1_000
        self.next_id = 0

    @initialize(amount=amounts)
    def create(self, amount: float) -> None:
        self.order = make_order(amount=amount)

    def _tick(self) -> int:
        self.clock += 1
        return self.clock

    def _new_id(self) -> str:
        self.next_id += 1
        return f"t{self.next_id}"

    def _expect_refusal(self, action: Callable[[], object], match: str | None = None) -> None:
        before = copy.deepcopy(self.order)
        with pytest.raises(OrderStateError, match=match):
            action()
        assert self.order == before, "a refused action must leave the order unchanged"

    @rule(new=st.sampled_from(list(S)))
    def transition(self, new: OrderStatus) -> None:
        current = self.order.status
        now = self._tick()
        if new in ALLOWED[current]:
            changed = self.order.transition(new, now)
            assert changed is (new is not current)
            assert self.order.status is new
            assert self.order.updated_ms == now
            if new is S.FILLED and current is not S.FILLED and not order_is_complete(self.order):
                self.declared_filled = True
        else:
            self._expect_refusal(lambda: self.order.transition(new, now), match="illegal order transition")

    def _apply_new_fill(self, amount: float, price: float, fee: float) -> None:
        order = self.order
        trade = fill(self._new_id(), amount, price=price, fee=fee, ts=self._tick())
        total = order.filled + amount
        overfills = total > order.amount * (1 + OVERFILL_SLACK) + 1e-12
        target = S.FILLED if max(order.amount - total, 0.0) <= order.amount * DONE_TOLERANCE else S.PARTIALLY_FILLED
        if overfills or target not in ALLOWED[order.status]:
            self._expect_refusal(lambda: order.apply_fill(trade))
            return
        assert order.apply_fill(trade) is True
        self.accepted[trade.trade_id] = (price, amount, fee)
        assert order.status is target

    @rule(fraction=fractions, price=prices, fee=fees)
    def fill_part_of_what_remains(self, fraction: float, price: float, fee: float) -> None:
        amount = self.order.remaining * fraction
        if amount > 0:
            self._apply_new_fill(amount, price, fee)

    @rule(excess=st.floats(min_value=1e-6, max_value=10.0), price=prices)
    def try_to_overfill(self, excess: float, price: float) -> None:
        self._apply_new_fill(self.order.remaining + self.order.amount * excess, price, 0.0)

    @precondition(lambda self: bool(self.accepted))
    @rule(data=st.data(), amount=amounts, price=prices)
    def replay_a_seen_fill_id(self, data: st.DataObject, amount: float, price: float) -> None:
        trade_id = data.draw(st.sampled_from(sorted(self.accepted)))
        before = copy.deepcopy(self.order)
        assert self.order.apply_fill(fill(trade_id, amount, price=price, ts=self._tick())) is False
        assert self.order == before

    @invariant()
    def filled_never_exceeds_amount(self) -> None:
        assert self.order.filled <= self.order.amount * (1 + OVERFILL_SLACK) + 1e-12

    @invariant()
    def totals_are_the_sums_of_accepted_fills(self) -> None:
        order = self.order
        assert order.fill_ids == set(self.accepted)
        filled = math.fsum(a for _, a, _ in self.accepted.values())
        assert math.isclose(order.filled, filled, rel_tol=1e-9, abs_tol=1e-12)
        assert math.isclose(order.fee, math.fsum(f for _, _, f in self.accepted.values()), rel_tol=1e-9, abs_tol=1e-9)

    @invariant()
    def average_is_the_amount_weighted_mean_of_fills(self) -> None:
        if not self.accepted:
            assert self.order.average == 0.0
            return
        weighted = math.fsum(p * a for p, a, _ in self.accepted.values())
        filled = math.fsum(a for _, a, _ in self.accepted.values())
        assert math.isclose(self.order.average, weighted / filled, rel_tol=1e-9)

    @invariant()
    def filled_status_iff_nothing_remains(self) -> None:
        if order_is_complete(self.order):
            assert self.order.status is S.FILLED
        if self.order.status is S.FILLED and not self.declared_filled:
            assert order_is_complete(self.order)

    @invariant()
    def terminal_states_absorb(self) -> None:
        if self.first_terminal is not None:
            assert self.order.status is self.first_terminal
        elif self.order.status.is_terminal:
            self.first_terminal = self.order.status


OrderLifecycle.TestCase.settings = settings(max_examples=300, stateful_step_count=30, deadline=None)
test_random_order_lifecycles_keep_the_state_machine_invariants = OrderLifecycle.TestCase


@pytest.mark.parametrize(
    ("currency", "fee_quote", "fee_base"),
    [("USDT", 0.5, 0.0), ("", 0.5, 0.0), ("BTC", 0.00001 * 50_000, 0.00001), ("BNB", 0.0, 0.0)],
)
def test_fees_are_kept_in_quote_and_base_fees_are_remembered(currency: str, fee_quote: float, fee_base: float) -> None:
    """A venue's fee in the quote asset is counted as is; one in the base asset is valued at the fill price
    and remembered (those coins never reached the account); one in a third asset is not this pair's cost."""
    order = Order("tf-fee", "bot", "BTC/USDT", OrderSide.BUY, OrderType.MARKET, 0.01, OrderIntent.ENTRY, 0)
    fee = {"USDT": 0.5, "": 0.5, "BTC": 0.00001, "BNB": 0.001}[currency]
    order.apply_fill(Fill("t1", "tf-fee", 50_000.0, 0.01, fee, 1, fee_currency=currency))
    assert order.fee == pytest.approx(fee_quote) and order.fee_base == pytest.approx(fee_base)
    assert order.filled == 0.01 and order.status is OrderStatus.FILLED
