"""Domain objects to the bots service's answers: pure functions, no store, no caller, no rules."""

from __future__ import annotations

from collections.abc import Iterable

from tradefleet.core.bots import BotConfig, BotStatus
from tradefleet.core.orders import Order
from tradefleet.core.ports import EquitySnapshot
from tradefleet.core.trades import Trade
from tradefleet.services.bots.schemas import BotOut, EquityPoint, OrderOut, PairPerformance, PositionOut, TradeOut


def bot_out(config: BotConfig, owner: int | None, status: BotStatus) -> BotOut:
    return BotOut(
        bot_id=config.bot_id,
        owner_id=owner,
        status=status,
        strategy=config.strategy,
        strategy_params=dict(config.strategy_params),
        pairs=list(config.pairs),
        timeframe=config.timeframe,
        exchange=config.exchange,
        mode=config.mode,
        quote_currency=config.quote_currency,
        starting_balance=config.starting_balance,
        risk=config.risk,
    )


def position_out(trade: Trade, unrealized_pnl: float | None) -> PositionOut:
    return PositionOut(
        trade_id=trade.id or 0,
        pair=trade.pair,
        open_ms=trade.open_ms,
        open_rate=trade.open_rate,
        amount=trade.amount,
        cost=trade.cost,
        stop_price=trade.stop_price,
        enter_tag=trade.enter_tag,
        unrealized_pnl=unrealized_pnl,
    )


def trades_out(trades: Iterable[Trade]) -> list[TradeOut]:
    return [
        TradeOut(
            trade_id=t.id or 0,
            pair=t.pair,
            is_open=t.is_open,
            open_ms=t.open_ms,
            close_ms=t.close_ms,
            open_rate=t.open_rate,
            close_rate=t.close_rate,
            amount=t.amount,
            fee_open=t.fee_open,
            fee_close=t.fee_close,
            profit_abs=t.profit_abs,
            profit_ratio=t.profit_ratio,
            enter_tag=t.enter_tag,
            exit_reason=t.exit_reason,
        )
        for t in trades
    ]


def order_out(order: Order) -> OrderOut:
    return OrderOut(
        client_order_id=order.client_order_id,
        pair=order.pair,
        side=order.side.value,
        type=order.type.value,
        status=order.status.value,
        intent=order.intent.value,
        amount=order.amount,
        filled=order.filled,
        price=order.price,
        stop_price=order.stop_price,
        average=order.average,
        created_ms=order.created_ms,
        reason=order.reason,
        trade_id=order.trade_ref,
    )


def equity_point(snapshot: EquitySnapshot) -> EquityPoint:
    return EquityPoint(
        ts_ms=snapshot.ts_ms,
        cash=snapshot.cash,
        equity=snapshot.equity,
        realized=snapshot.realized,
        unrealized=snapshot.unrealized,
        fees_paid=snapshot.fees_paid,
    )


def performance(pair: str, trades: list[Trade]) -> PairPerformance:
    """Closed ``trades`` summed up under ``pair`` (``*`` for the whole bot)."""
    wins = sum(1 for t in trades if t.profit_abs > 0)
    profit = sum(t.profit_abs for t in trades)
    cost = sum(t.cost for t in trades)
    return PairPerformance(
        pair=pair,
        trades=len(trades),
        wins=wins,
        win_rate=wins / len(trades) if trades else 0.0,
        profit_abs=profit,
        profit_ratio=profit / cost if cost else 0.0,
    )
