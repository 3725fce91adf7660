"""Start-up reconciliation: make the database agree with the exchange before a bot may trade."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from tradefleet.core.errors import TemporaryExchangeError
from tradefleet.core.orders import OrderStatus
from tradefleet.core.risk import KillSwitchLevel

if TYPE_CHECKING:
    from tradefleet.engine.bot import BotRuntime


@dataclass
class ReconcileReport:
    resolved: int = 0
    rejected_never_sent: int = 0
    stops_restored: int = 0
    settling: int = 0  # orders the venue does not know yet that may still be in flight
    problems: list[str] = field(default_factory=list)


def reconcile_bot(bot: BotRuntime) -> ReconcileReport:
    """Resolve every live order by client order id, restore missing stops, check balances."""
    report = ReconcileReport()
    manager = bot.orders
    manager.load_live()
    for order in list(manager.live.values()):
        before = order.status
        manager.sync([order])
        if order.status is not before:
            report.resolved += 1
            if order.status is OrderStatus.REJECTED and before in (
                OrderStatus.PENDING_SUBMIT,
                OrderStatus.UNKNOWN,
            ):
                report.rejected_never_sent += 1
        if order.client_order_id in manager.settling:
            report.settling += 1  # maybe still in flight: asked again while the bot runs (entries wait)
        elif order.status in (OrderStatus.UNKNOWN, OrderStatus.PENDING_SUBMIT):
            report.problems.append(f"order {order.client_order_id} could not be resolved with the exchange")
    bot._drain()
    known = {o.client_order_id for o in bot.store.list_orders(bot.bot_id)}
    try:
        venue_open = bot.exchange.fetch_open_orders()
    except TemporaryExchangeError as exc:
        report.problems.append(f"could not list open orders on the exchange: {exc.message}")
        venue_open = []
    for seen in venue_open:
        if seen.client_order_id not in known and seen.symbol in bot.config.pairs:
            report.problems.append(f"exchange has open order {seen.client_order_id} that TradeFleet did not place")
    if bot.kill_level < KillSwitchLevel.CANCEL_ALL:
        for trades in bot.trades.values():
            for trade in trades:
                if bot._live_stop(trade) is None:
                    bot._place_stop(trade, "stop_loss")
                    report.stops_restored += bot._live_stop(trade) is not None
        bot._drain()
    _check_balances(bot, report)
    return report


def _check_balances(bot: BotRuntime, report: ReconcileReport) -> None:
    try:
        balances = bot.exchange.fetch_balance()
    except TemporaryExchangeError as exc:
        report.problems.append(f"could not read balances: {exc.message}")
        return
    held: dict[str, float] = {}
    for trades in bot.trades.values():
        for trade in trades:
            base = bot.markets[trade.pair].base
            held[base] = held.get(base, 0.0) + trade.amount
    for currency, amount in held.items():
        have = balances[currency].total if currency in balances else 0.0
        if have < amount * (1 - 1e-9) - 1e-12:
            report.problems.append(
                f"exchange holds {have:.8f} {currency} but open trades need {amount:.8f}; entries halted"
            )
