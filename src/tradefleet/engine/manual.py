"""Manual actions on a running bot: forced entries and exits asked for by a user (ForceEnter, ForceExit).

They go through the same order path as the strategy's own orders (intent committed before the exchange
call, deterministic client order ids) and the same entry rules (status, kill switch, max open trades,
protections): a forced entry overrides the strategy's signal, never the risk rules. The id of a forced
entry derives from the command id, so a command applied twice places one order.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from tradefleet.core.orders import Order, OrderIntent, OrderSide, OrderStatus, OrderType
from tradefleet.core.precision import floor_to_step
from tradefleet.core.risk import stake_for_entry
from tradefleet.core.trades import Trade
from tradefleet.engine.bot import BotRuntime
from tradefleet.engine.orders import client_order_id


@dataclass(frozen=True, slots=True)
class ManualResult:
    """What a manual action did: ``ok`` with the orders placed, or why nothing was done."""

    ok: bool
    message: str
    orders: list[str] = field(default_factory=list)
    trade_ids: list[int] = field(default_factory=list)


def force_entry(
    bot: BotRuntime, pair: str, *, command_id: str, stake_amount: float | None = None, tag: str = "force_entry"
) -> ManualResult:
    """Buy ``pair`` now at market with ``stake_amount`` (default: the bot's stake rule)."""
    if pair not in bot.config.pairs:
        return ManualResult(False, f"{pair} is not one of the bot's pairs ({', '.join(bot.config.pairs)})")
    price = bot.marks.get(pair)
    if price is None:
        return ManualResult(False, f"no price for {pair} yet; try again after the next candle")
    blocked = bot._entry_block(pair, bot.now_ms())
    if blocked is not None:
        return ManualResult(False, f"entry refused: {blocked}")
    equity = bot.portfolio.equity(bot.marks)
    stake = stake_amount or stake_for_entry(bot.config.risk, equity, bot.portfolio.cash, bot._cost_factor)
    if stake * bot._cost_factor > bot.portfolio.cash:
        return ManualResult(False, f"stake {stake:.8g} is more than the free {bot.portfolio.cash:.8g}")
    market = bot.markets[pair]
    amount = floor_to_step(stake / price, market.amount_precision)
    if stake <= 0 or amount * price < market.min_notional or amount < market.min_amount:
        return ManualResult(False, f"stake {stake:.8g} is below the market minimum of {pair}")
    order = Order(
        client_order_id=client_order_id(bot.bot_id, pair, 0, f"fe:{command_id}"),
        bot_id=bot.bot_id,
        pair=pair,
        side=OrderSide.BUY,
        type=OrderType.MARKET,
        amount=amount,
        intent=OrderIntent.ENTRY,
        created_ms=bot.now_ms(),
        reason=tag,
    )
    placed = bot.orders.submit(order)
    bot._drain()
    bot.flush()
    if placed.status is OrderStatus.REJECTED:
        return ManualResult(False, f"the exchange refused the entry: {placed.reason}", [order.client_order_id])
    opened = [t.id or 0 for t in bot.trades.get(pair, ()) if t.entry_order == order.client_order_id]
    return ManualResult(True, f"bought {placed.filled or amount:.8g} {pair}", [order.client_order_id], opened)


def force_exit(bot: BotRuntime, *, trade_id: int | None = None, pair: str | None = None) -> ManualResult:
    """Sell at market the trade ``trade_id``, every open trade of ``pair``, or (neither) every open trade."""
    chosen = [
        t
        for trades in bot.trades.values()
        for t in trades
        if (trade_id is None or t.id == trade_id) and (pair is None or t.pair == pair)
    ]
    if not chosen:
        what = f"trade {trade_id}" if trade_id is not None else f"{pair} trades" if pair else "trades"
        return ManualResult(False, f"no open {what} to exit")
    placed: list[str] = []
    closed: list[int] = []
    for trade in chosen:
        if _exit_pending(bot, trade):
            continue
        stamp = bot.now_ms()
        bot._exit(trade, stamp, "force_exit")
        placed.append(client_order_id(bot.bot_id, trade.pair, stamp, f"ex:{trade.entry_order}"))
        if not trade.is_open:
            closed.append(trade.id or 0)
    bot.flush()
    if not closed and not placed:
        return ManualResult(False, "exits already pending for those trades")
    return ManualResult(True, f"exited {len(closed)} of {len(chosen)} trade(s)", placed, closed)


def _exit_pending(bot: BotRuntime, trade: Trade) -> bool:
    return any(o.intent is OrderIntent.EXIT and o.trade_ref == trade.id for o in bot.orders.live.values())
