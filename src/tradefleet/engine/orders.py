"""Order manager: commit intent, then act; resolve ambiguous outcomes by client order id; reconcile.

The rules that keep money safe live here:

* an order row with its client order id and ``PENDING_SUBMIT`` is committed *before* the exchange call;
* a placement whose outcome is unknown becomes ``UNKNOWN`` and is looked up by client order id, never resent;
  an order the venue does not know is taken as never accepted only once it cannot be in flight any more
  (``placement_settle_s`` of the venue's capabilities): until then it stays ``UNKNOWN``;
* a bot held by lease acts on the venue only while the lease holds (``TradingStore.check_fence``);
* fills are applied once (de-duplicated by exchange trade id), in the same transaction as their effects;
* follow-up exchange calls (a stop after an entry fill) run only after that transaction commits.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from tradefleet.core.errors import (
    AmbiguousOrderError,
    ExchangeError,
    InvalidOrderError,
    OrderNotFoundError,
    RateLimitError,
    TemporaryExchangeError,
)
from tradefleet.core.orders import Fill, Order, OrderStatus
from tradefleet.core.ports import Clock, ExchangeOrder, ExchangePort, OrderRequest, TradingStore

log = logging.getLogger(__name__)

UpdateHandler = Callable[[Order, list[Fill]], None]


def client_order_id(bot_id: str, pair: str, candle_ms: int, kind: str) -> str:
    """Return a deterministic, venue-safe client order id (replaying a candle yields the same id)."""
    digest = hashlib.sha1(f"{bot_id}|{pair}|{candle_ms}|{kind}".encode(), usedforsecurity=False).hexdigest()
    return f"tf{digest[:30]}"


@dataclass
class OrderManagerStats:
    submitted: int = 0
    ambiguous: int = 0
    rejected: int = 0
    replayed: int = 0


class OrderManager:
    """Places and tracks the orders of one bot on one exchange account."""

    def __init__(
        self,
        bot_id: str,
        exchange: ExchangePort,
        store: TradingStore,
        clock: Clock,
        on_update: UpdateHandler,
        *,
        on_intent: Callable[[Order], None] | None = None,
        max_rate_limit_retries: int = 3,
        lookup_attempts: int = 5,
    ) -> None:
        self.bot_id = bot_id
        self.exchange = exchange
        self.store = store
        self.clock = clock
        self.on_update = on_update
        self.on_intent = on_intent
        self.live: dict[str, Order] = {}
        self.settling: set[str] = set()  # unknown to the venue but maybe still in flight: asked again later
        self.cancel_requested: set[str] = set()  # orders this manager asked the venue to cancel
        self.placed_here: set[str] = set()  # orders this manager sent (not ones found in the store at start)
        self._unseen_since: dict[str, float] = {}  # client order id -> when the venue first did not know it
        self.stats = OrderManagerStats()
        self._max_rl = max_rate_limit_retries
        self._lookups = lookup_attempts

    def load_live(self) -> None:
        self.live = {o.client_order_id: o for o in self.store.live_orders(self.bot_id)}

    def submit(self, order: Order) -> Order:
        """Commit the intent, then place it; return the order in its latest known state."""
        with self.store.transaction():
            if self.on_intent is not None:
                self.on_intent(order)
            added = self.store.add_order(order)
        if not added:
            # Same client order id: this candle was handled before a restart. Never send it twice.
            self.stats.replayed += 1
            existing = self.store.get_order(order.client_order_id)
            return existing if existing is not None else order
        self.live[order.client_order_id] = order
        self.placed_here.add(order.client_order_id)
        self.stats.submitted += 1
        request = OrderRequest(
            client_order_id=order.client_order_id,
            symbol=order.pair,
            side=order.side,
            type=order.type,
            amount=order.amount,
            price=order.price,
            stop_price=order.stop_price,
        )
        for attempt in range(self._max_rl + 1):
            # The lease again, right before sending: a gateway stalled since the commit must not send late.
            self.store.check_fence(self.bot_id)
            try:
                placed = self.exchange.create_order(request)
            except RateLimitError as exc:
                # A 429 is a definite refusal: the venue did not act, so sending again is not a duplicate.
                if attempt == self._max_rl:
                    self._reject(order, f"rate limited: {exc.message}")
                    return order
                time.sleep(min(exc.retry_after, 5.0))
            except (AmbiguousOrderError, TemporaryExchangeError) as exc:
                self.stats.ambiguous += 1
                order.reason = order.reason or ""
                self._set_status(order, OrderStatus.UNKNOWN)
                log.warning("order %s outcome unknown (%s); resolving by client order id", order.client_order_id, exc)
                self.resolve(order)
                return order
            except ExchangeError as exc:
                self._reject(order, exc.message)
                return order
            else:
                self.apply(order, placed)
                return order
        return order

    def _reject(self, order: Order, why: str) -> None:
        self.stats.rejected += 1
        order.reason = f"{order.reason}; rejected: {why}" if order.reason else f"rejected: {why}"
        self._set_status(order, OrderStatus.REJECTED)
        self.on_update(order, [])
        self.cancel_requested.discard(order.client_order_id)
        self.placed_here.discard(order.client_order_id)

    def _set_status(self, order: Order, status: OrderStatus) -> None:
        order.transition(status, self.clock.now_ms())
        self.store.update_order(order)
        if status.is_terminal:
            self.live.pop(order.client_order_id, None)

    def resolve(self, order: Order) -> bool:
        """Look an UNKNOWN or PENDING_SUBMIT order up by client order id; return True once resolved."""
        for attempt in range(self._lookups):
            try:
                found = self.exchange.fetch_order(order.pair, order.client_order_id)
            except TemporaryExchangeError:
                time.sleep(min(0.05 * 2**attempt, 1.0))
                continue
            if found is None:
                if self._may_be_in_flight(order):
                    if order.status is OrderStatus.PENDING_SUBMIT:
                        self._set_status(order, OrderStatus.UNKNOWN)
                    return False
                # The venue never accepted it: close the intent so nothing waits on it forever.
                self._reject(order, "the venue has no such order (never accepted)")
                return True
            self.apply(order, found)
            return True
        log.warning("order %s still unresolved after %d look-ups", order.client_order_id, self._lookups)
        return False

    def _may_be_in_flight(self, order: Order) -> bool:
        """True while an order the venue does not know may still reach it (see ``placement_settle_s``)."""
        settle = self.exchange.capabilities.placement_settle_s
        key = order.client_order_id
        first = self._unseen_since.setdefault(key, time.monotonic())
        if time.monotonic() - first < settle:
            self.settling.add(key)
            return True
        self.settling.discard(key)
        del self._unseen_since[key]
        return False

    def apply(self, order: Order, seen: ExchangeOrder) -> None:
        """Apply the venue's view of an order (status, new fills) and its effects in one transaction."""
        self.settling.discard(order.client_order_id)
        self._unseen_since.pop(order.client_order_id, None)
        now = self.clock.now_ms()
        with self.store.transaction():
            new_fills = [f for f in seen.fills if f.trade_id not in order.fill_ids and self._record_fill(f)]
            for fill in new_fills:
                order.apply_fill(fill)
            order.exchange_order_id = seen.exchange_order_id
            target = seen.status
            if target is OrderStatus.OPEN and order.filled > 0:
                target = OrderStatus.PARTIALLY_FILLED
            if target is not order.status and not order.status.is_terminal:
                if target is OrderStatus.FILLED and order.status is not OrderStatus.FILLED:
                    # The venue says filled but we saw no fill: trust its totals.
                    order.filled, order.average, order.fee = seen.filled, seen.average, seen.fee
                order.transition(target, now)
            order.updated_ms = now
            self.store.update_order(order)
            if order.status.is_terminal:
                self.live.pop(order.client_order_id, None)
            else:
                self.live[order.client_order_id] = order
            self.on_update(order, new_fills)
            if order.status.is_terminal:  # the update was handled: forget what this manager did to it
                self.cancel_requested.discard(order.client_order_id)
                self.placed_here.discard(order.client_order_id)

    def _record_fill(self, fill: Fill) -> bool:
        return self.store.add_fill(self.exchange.name, self.bot_id, fill)

    def cancel(self, order: Order) -> None:
        """Cancel a resting order; if it filled meanwhile, apply the fill instead."""
        self.store.check_fence(self.bot_id)
        self.cancel_requested.add(order.client_order_id)
        try:
            seen = self.exchange.cancel_order(order.pair, order.client_order_id)
        except (OrderNotFoundError, TemporaryExchangeError, InvalidOrderError):
            self.resolve(order)
            if not order.status.is_terminal:  # still resting: not cancelled by us after all
                self.cancel_requested.discard(order.client_order_id)
            return
        except BaseException:
            self.cancel_requested.discard(order.client_order_id)  # not cancelled by us: guarded as before
            raise
        self.apply(order, seen)

    def sync(self, orders: list[Order] | None = None) -> None:
        """Poll the venue for the orders still live (or the ones given)."""
        for order in list(orders if orders is not None else self.live.values()):
            if order.status.is_terminal:
                continue
            if order.status in (OrderStatus.UNKNOWN, OrderStatus.PENDING_SUBMIT):
                self.resolve(order)
                continue
            try:
                seen = self.exchange.fetch_order(order.pair, order.client_order_id)
            except TemporaryExchangeError:
                continue
            if seen is not None:
                self.apply(order, seen)
