"""Protective stops: every open trade keeps one resting stop order on the venue.

A stop is placed after an entry fills, replaced when the trailing stop rises, and cancelled by the bot
before it exits. Whatever else leaves a trade without one is repaired here: an exit the venue refused, a
stop cancelled on the venue by anyone but the bot (a person on the venue's site, a stalled gateway), a
stop an earlier run committed but never sent. No stop is placed while an exit of the trade may be
underway, since both would sell the same coins.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TYPE_CHECKING

from tradefleet.core.orders import Order, OrderIntent, OrderSide, OrderStatus, OrderType
from tradefleet.core.risk import KillSwitchLevel
from tradefleet.core.trades import Trade
from tradefleet.engine.orders import OrderManager, client_order_id


class ProtectiveStops:
    """The stop-order part of :class:`~tradefleet.engine.bot.BotRuntime` (a mixin over its state)."""

    bot_id: str
    orders: OrderManager
    kill_level: KillSwitchLevel
    _after_commit: list[Callable[[], None]]

    if TYPE_CHECKING:  # provided by BotRuntime

        def now_ms(self) -> int: ...
        def alert(self, rule: str, message: str, *, pair: str = "", ts_ms: int | None = None) -> None: ...
        def _trade_by_id(self, trade_id: int | None) -> Trade | None: ...
        def _drain(self) -> None: ...

    def _live_stop(self, trade: Trade) -> Order | None:
        for order in self.orders.live.values():
            if order.intent is OrderIntent.STOP and order.trade_ref == trade.id:
                return order
        return None

    def _replace_stop(self, trade: Trade, new_stop: float) -> None:
        old = self._live_stop(trade)
        if old is not None:
            self.orders.cancel(old)
            self._drain()
            if not trade.is_open:
                return
        trade.stop_price = new_stop
        self._place_stop(trade, "trailing_stop_loss")

    def _place_stop(self, trade: Trade, reason: str, replaces: str = "") -> None:
        """Protect ``trade`` with a stop order, unless one is live or an exit of it may be underway.

        ``replaces``: the order this stop stands in for (a distinct id even within the same candle; a replay
        of the same decision still yields the same id).
        """
        if not trade.is_open or self._live_stop(trade) is not None:
            return
        if self.kill_level >= KillSwitchLevel.CANCEL_ALL:
            return
        if any(o.intent is OrderIntent.EXIT and o.trade_ref == trade.id for o in self.orders.live.values()):
            return  # a sell of the whole position is resting or in flight: a stop could sell it twice
        kind = f"sl:{trade.entry_order}:{trade.stop_price:.10g}" + (f":{replaces}" if replaces else "")
        order = Order(
            # Keyed by the market time of the decision: a replay of the same candle yields the same id, while
            # a stop placed again later (after a refused exit, say) is a new order.
            client_order_id=client_order_id(self.bot_id, trade.pair, self.now_ms(), kind),
            bot_id=self.bot_id,
            pair=trade.pair,
            side=OrderSide.SELL,
            type=OrderType.STOP,
            amount=trade.amount,
            intent=OrderIntent.STOP,
            created_ms=self.now_ms(),
            stop_price=trade.stop_price,
            reason=reason,
            trade_ref=trade.id,
        )
        placed = self.orders.submit(order)
        if placed.status in (OrderStatus.REJECTED, OrderStatus.CANCELED):  # refused, or a replay of a cancelled one
            why = placed.reason if placed.status is OrderStatus.REJECTED else "a stop with this id was cancelled"
            self.alert(
                "stoploss",
                f"stop order {order.client_order_id} not resting for trade {trade.id}: {why}",
                pair=trade.pair,
            )

    def _protect_again(self, order: Order) -> None:
        """After an order ended unfilled: put the stop back where it left its trade without one (after commit)."""
        if order.intent is OrderIntent.EXIT:
            trade = self._trade_by_id(order.trade_ref)
            if trade is not None:  # exit refused (a new id: the cancelled stop may be from this very candle)
                replace = functools.partial(self._place_stop, trade, "stop_loss", order.client_order_id)
                self._after_commit.append(replace)
            return
        if order.intent is not OrderIntent.STOP:
            return
        cancelled_elsewhere = (
            order.status is OrderStatus.CANCELED and order.client_order_id not in self.orders.cancel_requested
        )
        # committed by an earlier run or gateway that never sent it (a refusal of our own is alerted instead)
        never_sent = order.status is OrderStatus.REJECTED and order.client_order_id not in self.orders.placed_here
        trade = self._trade_by_id(order.trade_ref)
        if not (cancelled_elsewhere or never_sent) or trade is None or not trade.is_open:
            return
        what = "was cancelled on the exchange" if cancelled_elsewhere else "never reached it"
        self.alert(
            "stoploss",
            f"stop order {order.client_order_id} of trade {trade.id} {what}; placing it again",
            pair=trade.pair,
        )
        replace = functools.partial(self._place_stop, trade, order.reason or "stop_loss", order.client_order_id)
        self._after_commit.append(replace)
