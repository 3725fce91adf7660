"""Round-trip trades, positions and PnL with fees.

Accounting identity kept by :class:`Portfolio` (checked by property tests)::

    equity(marks) == cash + Σ amount·mark == starting_cash + realized + unrealized(marks) − fees_paid
"""

from __future__ import annotations

from dataclasses import dataclass, field

from tradefleet.core.errors import RiskError

EPS = 1e-9


class RoundTripPnL:
    """Profit of a long round trip with fees in quote; shared by live trades and backtest trades."""

    __slots__ = ()
    amount: float
    open_rate: float
    fee_open: float
    close_rate: float | None
    fee_close: float

    @property
    def cost(self) -> float:
        """Quote spent to open, fees included."""
        return self.amount * self.open_rate + self.fee_open

    @property
    def profit_abs(self) -> float:
        if self.close_rate is None:
            return 0.0
        return self.amount * self.close_rate - self.fee_close - self.cost

    @property
    def profit_ratio(self) -> float:
        return self.profit_abs / self.cost if self.cost else 0.0


@dataclass(slots=True)
class Trade(RoundTripPnL):
    """One long round trip on one pair: an entry fill, then (when closed) an exit."""

    bot_id: str
    pair: str
    open_ms: int
    open_rate: float
    amount: float
    fee_open: float
    stop_price: float
    initial_stop: float
    entry_order: str
    id: int | None = None
    enter_tag: str = ""
    is_open: bool = True
    max_rate: float = 0.0
    close_ms: int | None = None
    close_rate: float | None = None
    fee_close: float = 0.0
    exit_reason: str = ""
    exit_order: str | None = None

    def unrealized(self, mark: float, fee_rate: float) -> float:
        """Profit if closed at ``mark`` paying ``fee_rate`` on the exit."""
        value = self.amount * mark
        return value - value * fee_rate - self.cost

    def close(self, close_ms: int, rate: float, fee: float, reason: str, order: str) -> None:
        self.is_open = False
        self.close_ms = close_ms
        self.close_rate = rate
        self.fee_close = fee
        self.exit_reason = reason
        self.exit_order = order


@dataclass(slots=True)
class Position:
    pair: str
    amount: float = 0.0
    cost: float = 0.0  # quote paid for the amount held, fees excluded

    @property
    def avg_price(self) -> float:
        return self.cost / self.amount if self.amount > EPS else 0.0


@dataclass(slots=True)
class Portfolio:
    """Cash and positions of one bot account, moved only by fills."""

    starting_cash: float
    cash: float = -1.0
    realized: float = 0.0
    fees_paid: float = 0.0
    positions: dict[str, Position] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.starting_cash < 0:
            raise RiskError(f"starting balance must not be negative, got {self.starting_cash}")
        if self.cash < 0:
            self.cash = self.starting_cash

    def apply_fill(self, pair: str, side: str, amount: float, price: float, fee: float) -> None:
        """Apply one fill with its fee in quote currency; refuse what would make a balance negative."""
        if amount <= 0 or price <= 0 or fee < 0:
            raise RiskError(f"invalid fill amount={amount} price={price} fee={fee}")
        notional = amount * price
        if side == "buy":
            if notional + fee > self.cash + EPS * max(1.0, self.cash):
                raise RiskError(f"fill of {notional + fee:.8f} exceeds free cash {self.cash:.8f}")
            pos = self.positions.setdefault(pair, Position(pair))
            self.cash = max(self.cash - (notional + fee), 0.0)
            pos.amount += amount
            pos.cost += notional
        else:
            held = self.positions.get(pair)
            holding = held.amount if held is not None else 0.0
            if held is None or amount > holding + EPS * max(1.0, holding):
                raise RiskError(f"cannot sell {amount} {pair}: holding {holding}")
            avg = held.avg_price
            sold = min(amount, held.amount)
            self.realized += sold * (price - avg)
            held.cost -= sold * avg
            held.amount -= sold
            if held.amount <= EPS:
                # Dust left by rounding is written off as realised, so the accounting identity still holds.
                self.realized -= held.cost
                held.amount, held.cost = 0.0, 0.0
            self.cash += notional - fee
        self.fees_paid += fee

    def marked_value(self, marks: dict[str, float]) -> float:
        return sum(p.amount * marks.get(p.pair, p.avg_price) for p in self.positions.values())

    def unrealized(self, marks: dict[str, float]) -> float:
        return sum(p.amount * marks.get(p.pair, p.avg_price) - p.cost for p in self.positions.values())

    def equity(self, marks: dict[str, float]) -> float:
        return self.cash + self.marked_value(marks)
