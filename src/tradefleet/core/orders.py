"""Orders, fills and the order state machine.

``PENDING_SUBMIT → OPEN → PARTIALLY_FILLED → FILLED | CANCELED | REJECTED``, plus ``UNKNOWN`` after an
ambiguous exchange answer. ``UNKNOWN`` is resolved by looking the order up by client order id, never by
sending it again.
"""

from __future__ import annotations

import enum
import logging
from dataclasses import dataclass, field

from tradefleet.core.errors import OrderStateError

log = logging.getLogger(__name__)


class OrderStatus(enum.StrEnum):
    PENDING_SUBMIT = "PENDING_SUBMIT"
    OPEN = "OPEN"
    PARTIALLY_FILLED = "PARTIALLY_FILLED"
    FILLED = "FILLED"
    CANCELED = "CANCELED"
    REJECTED = "REJECTED"
    UNKNOWN = "UNKNOWN"

    @property
    def is_terminal(self) -> bool:
        return self in TERMINAL

    @property
    def is_live(self) -> bool:
        """True while the order may still rest on (or reach) the exchange."""
        return self not in TERMINAL


class OrderSide(enum.StrEnum):
    BUY = "buy"
    SELL = "sell"


class OrderType(enum.StrEnum):
    MARKET = "market"
    LIMIT = "limit"
    STOP = "stop"  # stop-market: triggers at stop_price


class OrderIntent(enum.StrEnum):
    ENTRY = "entry"
    EXIT = "exit"
    STOP = "stop"


TERMINAL = frozenset({OrderStatus.FILLED, OrderStatus.CANCELED, OrderStatus.REJECTED})
_RESOLVED = frozenset(
    {
        OrderStatus.OPEN,
        OrderStatus.PARTIALLY_FILLED,
        OrderStatus.FILLED,
        OrderStatus.CANCELED,
        OrderStatus.REJECTED,
    }
)
TRANSITIONS: dict[OrderStatus, frozenset[OrderStatus]] = {
    OrderStatus.PENDING_SUBMIT: _RESOLVED | {OrderStatus.UNKNOWN},
    OrderStatus.UNKNOWN: _RESOLVED | {OrderStatus.UNKNOWN},
    OrderStatus.OPEN: frozenset(
        {
            OrderStatus.OPEN,
            OrderStatus.PARTIALLY_FILLED,
            OrderStatus.FILLED,
            OrderStatus.CANCELED,
            OrderStatus.UNKNOWN,
        }
    ),
    OrderStatus.PARTIALLY_FILLED: frozenset(
        {OrderStatus.PARTIALLY_FILLED, OrderStatus.FILLED, OrderStatus.CANCELED, OrderStatus.UNKNOWN}
    ),
    OrderStatus.FILLED: frozenset({OrderStatus.FILLED}),
    OrderStatus.CANCELED: frozenset({OrderStatus.CANCELED}),
    OrderStatus.REJECTED: frozenset({OrderStatus.REJECTED}),
}


def check_transition(current: OrderStatus, new: OrderStatus) -> None:
    """Raise OrderStateError unless ``current → new`` is allowed."""
    if new not in TRANSITIONS[current]:
        raise OrderStateError(f"illegal order transition {current} → {new}")


@dataclass(frozen=True, slots=True)
class Fill:
    """One execution reported by the venue; ``trade_id`` is unique per exchange."""

    trade_id: str
    client_order_id: str
    price: float
    amount: float
    fee: float
    timestamp_ms: int
    fee_currency: str = ""


@dataclass(slots=True)
class Order:
    """An order as the bot knows it; the database row mirrors these fields."""

    client_order_id: str
    bot_id: str
    pair: str
    side: OrderSide
    type: OrderType
    amount: float
    intent: OrderIntent
    created_ms: int
    price: float | None = None
    stop_price: float | None = None
    status: OrderStatus = OrderStatus.PENDING_SUBMIT
    exchange_order_id: str | None = None
    filled: float = 0.0
    average: float = 0.0
    fee: float = 0.0
    reason: str = ""
    trade_ref: int | None = None
    updated_ms: int = 0
    fill_ids: set[str] = field(default_factory=set)
    # Fees the venue took in the base asset (Binance on buys): part of ``filled`` never reached the account.
    fee_base: float = 0.0

    @property
    def remaining(self) -> float:
        return max(self.amount - self.filled, 0.0)

    def transition(self, new: OrderStatus, now_ms: int) -> bool:
        """Move to ``new``; return True when the status changed."""
        check_transition(self.status, new)
        changed = new != self.status
        self.status = new
        self.updated_ms = now_ms
        return changed

    def apply_fill(self, fill: Fill) -> bool:
        """Add a fill unless already seen; return True when it was new."""
        if fill.trade_id in self.fill_ids:
            return False
        if fill.amount <= 0:
            raise OrderStateError(f"fill {fill.trade_id} has non-positive amount {fill.amount}")
        if self.filled + fill.amount > self.amount * (1 + 1e-9) + 1e-12:
            raise OrderStateError(
                f"fill {fill.trade_id} overfills order {self.client_order_id}: "
                f"{self.filled} + {fill.amount} > {self.amount}"
            )
        total = self.filled + fill.amount
        target = OrderStatus.FILLED if self.amount - total <= self.amount * 1e-9 else OrderStatus.PARTIALLY_FILLED
        check_transition(self.status, target)  # before any change: a refused fill leaves the order as it was
        self.average = (self.average * self.filled + fill.price * fill.amount) / total
        self.filled = total
        base, _, quote = self.pair.partition("/")
        if fill.fee_currency == base:  # ``fee`` stays in quote currency; the withheld base is remembered
            self.fee_base += fill.fee
            self.fee += fill.fee * fill.price
        elif fill.fee_currency in ("", quote):
            self.fee += fill.fee
        else:  # a third asset (BNB, say): it leaves this pair's accounting untouched
            log.warning("order %s: fee of %g %s not counted in %s", self.client_order_id, fill.fee,
                        fill.fee_currency, quote)  # fmt: skip
        self.fill_ids.add(fill.trade_id)
        self.transition(target, max(self.updated_ms, fill.timestamp_ms))
        return True
