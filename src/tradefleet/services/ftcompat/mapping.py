"""TradeFleet trades as Freqtrade's trade JSON (``Trade.to_json`` plus what ``/status`` adds to open trades).

TradeFleet keeps fees in quote currency; Freqtrade reports them as a ratio of the order value (``fee_open``)
and as a cost (``fee_open_cost``), so both are derived here. Open trades are valued at a current rate the
service finds (see :meth:`FtCompatService._current_rates`); TradeFleet trades are long and spot only.
"""

from __future__ import annotations

from tradefleet.core.candles import timeframe_to_seconds
from tradefleet.services.bots.schemas import BotOut, OrderOut, PositionOut, TradeOut
from tradefleet.services.ftcompat.metrics import TradeView, fmt_ms, pct
from tradefleet.services.ftcompat.schemas import OpenTrade, Order, Trade


def closed_view(t: TradeOut) -> TradeView:
    return TradeView(
        trade_id=t.trade_id, pair=t.pair, is_open=False, open_ms=t.open_ms, close_ms=t.close_ms,
        open_rate=t.open_rate, close_rate=t.close_rate, amount=t.amount, fee_open=t.fee_open,
        fee_close=t.fee_close, profit_abs=t.profit_abs, enter_tag=t.enter_tag, exit_reason=t.exit_reason,
    )  # fmt: skip


def open_view(p: PositionOut, current_rate: float) -> TradeView:
    """Value an open trade at ``current_rate``, paying on exit the fee rate it paid on entry."""
    stake = p.amount * p.open_rate
    fee_open = p.cost - stake
    fee_rate = fee_open / stake if stake else 0.0
    value = p.amount * current_rate
    fee_close = value * fee_rate
    return TradeView(
        trade_id=p.trade_id, pair=p.pair, is_open=True, open_ms=p.open_ms, close_ms=None,
        open_rate=p.open_rate, close_rate=current_rate, amount=p.amount, fee_open=fee_open,
        fee_close=fee_close, profit_abs=value - fee_close - p.cost, enter_tag=p.enter_tag, exit_reason="",
        stop_price=p.stop_price,
    )  # fmt: skip


def _ratio(part: float | None, whole: float) -> float | None:
    return part / whole if part is not None and whole else None


def order_json(o: OrderOut) -> Order:
    """Return a live (not yet final) order of a trade as Freqtrade lists a trade's orders."""
    price = o.average or o.price or o.stop_price or 0.0
    side = "stoploss" if o.intent == "stop" else o.side  # Freqtrade's name for a trade's protective stop
    return Order(
        pair=o.pair, order_id=o.client_order_id, status=o.status, remaining=o.amount - o.filled, amount=o.amount,
        safe_price=price, cost=o.filled * price, filled=o.filled, ft_order_side=side, order_type=o.type,
        is_open=True, order_timestamp=o.created_ms, ft_order_tag=o.reason or None,
    )  # fmt: skip


def trade_json(t: TradeView, bot: BotOut, orders: list[Order] | None = None) -> Trade:
    """Return ``t`` as Freqtrade's ``Trade.to_json`` does (open trades: profit at the current rate).

    ``orders`` are the trade's live orders (TradeFleet keeps filled ones as the trade's entry and exit).
    """
    base, _, quote = t.pair.partition("/")
    fee_open_ratio = _ratio(t.fee_open, t.stake)
    exit_value = t.amount * t.close_rate if t.close_rate is not None else 0.0
    closed = not t.is_open
    duration_s = (t.close_ms - t.open_ms) // 1000 if closed and t.close_ms is not None else None
    stop_ratio = t.stop_price / t.open_rate - 1 if t.stop_price is not None and t.open_rate else None
    initial_ratio = t.initial_stop / t.open_rate - 1 if t.initial_stop is not None and t.open_rate else None
    return Trade(
        trade_id=t.trade_id, pair=t.pair, base_currency=base, quote_currency=quote, is_open=t.is_open,
        exchange=bot.exchange, amount=t.amount, amount_requested=t.amount, stake_amount=t.stake,
        max_stake_amount=t.stake, strategy=bot.strategy, enter_tag=t.enter_tag or None,
        timeframe=timeframe_to_seconds(bot.timeframe) // 60,
        fee_open=fee_open_ratio, fee_open_cost=t.fee_open, fee_open_currency=quote,
        fee_close=_ratio(t.fee_close, exit_value) if closed else fee_open_ratio,
        fee_close_cost=t.fee_close if closed else None, fee_close_currency=quote if closed else None,
        open_date=fmt_ms(t.open_ms), open_timestamp=t.open_ms, open_fill_date=fmt_ms(t.open_ms),
        open_fill_timestamp=t.open_ms, open_rate=t.open_rate, open_trade_value=t.cost,
        close_date=fmt_ms(t.close_ms) if closed and t.close_ms is not None else None,
        close_timestamp=t.close_ms if closed else None, close_rate=t.close_rate if closed else None,
        close_profit=t.profit_ratio if closed else None, close_profit_pct=pct(t.profit_ratio) if closed else None,
        close_profit_abs=t.profit_abs if closed else None,
        trade_duration_s=duration_s, trade_duration=duration_s // 60 if duration_s is not None else None,
        profit_ratio=t.profit_ratio, profit_pct=pct(t.profit_ratio), profit_abs=t.profit_abs,
        realized_profit=t.profit_abs if closed else 0.0, realized_profit_ratio=t.profit_ratio if closed else None,
        exit_reason=t.exit_reason if closed else None, exit_order_status="closed" if closed else None,
        stop_loss_abs=t.stop_price, stop_loss_ratio=stop_ratio,
        stop_loss_pct=pct(stop_ratio) if stop_ratio is not None else None,
        initial_stop_loss_abs=t.initial_stop, initial_stop_loss_ratio=initial_ratio,
        initial_stop_loss_pct=pct(initial_ratio) if initial_ratio is not None else None,
        max_rate=t.max_rate, orders=orders or [],
        has_open_orders=any(o.ft_order_side != "stoploss" for o in orders or ()),  # as Freqtrade: stops aside
    )  # fmt: skip


def open_trade_json(t: TradeView, bot: BotOut, orders: list[Order] | None = None) -> OpenTrade:
    """Return ``t`` as ``/status`` does: the trade, its current rate and how far its stop is."""
    base = trade_json(t, bot, orders).model_dump()
    current = t.close_rate if t.close_rate is not None else t.open_rate
    stop = t.stop_price
    fee_rate = t.fee_open / t.stake if t.stake else 0.0
    entry_dist = t.amount * stop * (1 - fee_rate) - t.cost if stop is not None else None
    current_dist = stop - current if stop is not None else None
    current_ratio = round(current_dist / current, 8) if current_dist is not None and current else None
    return OpenTrade(
        **base,
        current_rate=current,
        stoploss_current_dist=current_dist,
        stoploss_current_dist_ratio=current_ratio,
        stoploss_current_dist_pct=pct(current_ratio) if current_ratio is not None else None,
        stoploss_entry_dist=entry_dist,
        stoploss_entry_dist_ratio=round(entry_dist / t.cost, 8) if entry_dist is not None and t.cost else None,
        total_profit_abs=t.profit_abs,
        total_profit_ratio=t.profit_ratio,
    )
