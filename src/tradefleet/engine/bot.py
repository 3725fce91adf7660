"""The bot runtime: on every closed candle, strategy signals → risk gate → orders → fills → positions → events.

The same code runs paper, live and event-driven backtests; only the clock, the feed and the exchange differ.
Per closed candle *i* of a pair, in this order (the fast backtest kernel follows the same order):

1. fills of resting stop orders, matched by the venue against candle *i*, are applied (trade closed);
2. for each open trade: the high of *i* raises ``max_rate`` and the trailing stop (stop order replaced);
   ROI is checked on the close of *i* (gross ``close / open_rate − 1``), then the exit signal;
3. if no trade was closed on this candle, an entry signal passes the risk gate and a market buy is sent,
   filled at the open of *i + 1*; the protective stop is placed right after the fill.

Keeping every open trade's stop on the venue is :mod:`tradefleet.engine.stops` (a mixin of the runtime).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from tradefleet.core.bots import BotConfig, BotStatus
from tradefleet.core.candles import timeframe_to_ms
from tradefleet.core.errors import RiskError
from tradefleet.core.events import BotStatusUpdate, DomainEvent, OrderUpdate, RiskAlert, TradeExecuted
from tradefleet.core.orders import Fill, Order, OrderIntent, OrderSide, OrderStatus, OrderType
from tradefleet.core.ports import (
    Clock,
    EquitySnapshot,
    EventSink,
    ExchangeOrder,
    ExchangePort,
    Market,
    TradingStore,
)
from tradefleet.core.precision import floor_to_step
from tradefleet.core.risk import (
    KillSwitchLevel,
    ProtectionState,
    roi_threshold,
    stake_for_entry,
    trailing_stop,
)
from tradefleet.core.strategy import IStrategy
from tradefleet.core.trades import Portfolio, Trade
from tradefleet.engine.orders import OrderManager, client_order_id
from tradefleet.engine.reconcile import reconcile_bot
from tradefleet.engine.stops import ProtectiveStops

log = logging.getLogger(__name__)

HOUR_MS = 3_600_000


@dataclass(slots=True)
class Signals:
    """Analysed candles of one pair as plain arrays (the hot loop never touches pandas)."""

    open_ms: np.ndarray
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    enter_long: np.ndarray
    exit_long: np.ndarray
    enter_tag: np.ndarray


@dataclass
class BotCounters:
    candles: int = 0
    entries: int = 0
    exits: int = 0
    skipped_entries: dict[str, int] = field(default_factory=dict)


class BotRuntime(ProtectiveStops):
    """One bot: its strategy, its exchange account, its state. Driven by :class:`MarketDataHub`."""

    def __init__(
        self,
        config: BotConfig,
        strategy: IStrategy,
        exchange: ExchangePort,
        store: TradingStore,
        clock: Clock,
        sink: EventSink,
        *,
        slippage_guess: float = 0.002,
        snapshot_every_ms: int = HOUR_MS,
        sink_delivers: bool = True,
    ) -> None:
        self.config = config
        self.bot_id = config.bot_id
        self.strategy = strategy
        self.exchange = exchange
        self.store = store
        self.clock = clock
        self.sink = sink
        # True: the sink delivers events itself, so the bot marks them published. False: an outbox relay
        # publishes them (the sink only wakes it) and marks them.
        self.sink_delivers = sink_delivers
        self.timeframe_ms = timeframe_to_ms(config.timeframe)
        self.stoploss = config.risk.stoploss if config.risk.stoploss is not None else strategy.stoploss
        self.roi = strategy.roi_table()
        self.markets: dict[str, Market] = {}
        self.protections = ProtectionState(config.risk, self.timeframe_ms)
        self.portfolio = Portfolio(config.starting_balance)
        self.trades: dict[str, list[Trade]] = {p: [] for p in config.pairs}
        self.progress: dict[str, int] = {}
        self.marks: dict[str, float] = {}
        self.status = BotStatus.STOPPED
        self.reconcile_problems: list[str] = []
        self.kill_level = KillSwitchLevel.NONE
        self.counters = BotCounters()
        self._current: tuple[str, int] | None = None
        # Orders and trades are stamped with market time (the close of the candle being handled), so a
        # replay of the same candles gives the same records whatever the wall clock says.
        self.orders = OrderManager(self.bot_id, exchange, store, self, self._on_order_update, on_intent=self._on_intent)
        self._after_commit: list[Callable[[], None]] = []
        self._events: list[DomainEvent] = []
        self._snapshots: list[EquitySnapshot] = []
        self._snapshot_every = snapshot_every_ms
        self._next_snapshot = 0
        self._cost_factor = 1.0
        self._pending_progress: dict[str, int] = {}
        self._closed_this_candle: set[str] = set()
        self._pushed: list[ExchangeOrder] = []
        self._delivered: list[str] = []  # outbox events the sink took, marked published on flush
        self._saved_max: dict[str, float] = {}  # trailing high last written per trade (entry order id)
        self._push = bool(exchange.capabilities.push_order_updates) and hasattr(exchange, "subscribe")
        if self._push:
            exchange.subscribe(self._on_push)  # type: ignore[attr-defined]

    def now_ms(self) -> int:
        """Return market time: the close of the candle being handled, else the clock."""
        if self._current is not None:
            return self._current[1] + self.timeframe_ms
        return self.clock.now_ms()

    # -- lifecycle ---------------------------------------------------------------------------------
    def start(self) -> None:
        """Load state, reconcile with the exchange, then allow trading."""
        markets = self.exchange.load_markets()
        missing = [p for p in self.config.pairs if p not in markets]
        if missing:
            raise RiskError(f"bot {self.bot_id}: the exchange does not list {', '.join(missing)}")
        self.markets = {p: markets[p] for p in self.config.pairs}
        taker = max(m.taker_fee for m in self.markets.values())
        self._cost_factor = (1 + taker) * (1 + 0.002)
        self.progress = self.store.load_progress(self.bot_id)
        self._load_trades()
        self.kill_level = max(self.store.get_kill_switch("*"), self.store.get_kill_switch(self.bot_id))
        report = reconcile_bot(self)
        for problem in report.problems:
            self.alert("reconcile", problem)
        self._drain()
        wanted = self.store.get_bot_status(self.bot_id)
        wanted = BotStatus.STOPPING_ENTRIES if wanted is BotStatus.STOPPING_ENTRIES else BotStatus.RUNNING
        # A disagreement with the venue halts entries for this run only; the stored status stays the
        # user's choice, so a clean reconciliation at the next start trades again.
        self.reconcile_problems = list(report.problems)
        self.status = BotStatus.STOPPING_ENTRIES if report.problems else wanted
        self.store.set_bot_status(self.bot_id, wanted, "; ".join(report.problems))
        self.emit(BotStatusUpdate(bot_id=self.bot_id, ts_ms=self.now_ms(), status=self.status.value))
        self.flush()

    def _load_trades(self) -> None:
        portfolio = Portfolio(self.config.starting_balance)
        for trade in sorted(self.store.closed_trades(self.bot_id), key=lambda t: (t.close_ms or 0, t.id or 0)):
            portfolio.apply_fill(trade.pair, "buy", trade.amount, trade.open_rate, trade.fee_open)
            portfolio.apply_fill(trade.pair, "sell", trade.amount, trade.close_rate or 0.0, trade.fee_close)
            self.protections.on_trade_closed(trade.pair, trade.close_ms or 0, trade.exit_reason)
        self.trades = {p: [] for p in self.config.pairs}
        for trade in self.store.open_trades(self.bot_id):
            portfolio.apply_fill(trade.pair, "buy", trade.amount, trade.open_rate, trade.fee_open)
            self.trades.setdefault(trade.pair, []).append(trade)
        self.portfolio = portfolio

    def stop(self) -> None:
        self.flush()
        self.status = BotStatus.STOPPED
        self.store.set_bot_status(self.bot_id, self.status)
        self.emit(BotStatusUpdate(bot_id=self.bot_id, ts_ms=self.now_ms(), status=self.status.value))
        self._publish()

    # -- events ------------------------------------------------------------------------------------
    def emit(self, event: DomainEvent) -> None:
        self._events.append(event)

    def alert(self, rule: str, message: str, *, pair: str = "", ts_ms: int | None = None) -> None:
        """Emit a :class:`RiskAlert` of this bot (at market time unless ``ts_ms`` is given)."""
        when = self.now_ms() if ts_ms is None else ts_ms
        self.emit(RiskAlert(bot_id=self.bot_id, ts_ms=when, rule=rule, message=message, pair=pair))

    def _publish(self) -> None:
        if not self._events:
            return
        events, self._events = self._events, []
        self.store.add_events(events)  # outbox first: the database stays the source of truth
        for event in events:
            self.sink.publish(event)
            if self.sink_delivers:
                self._delivered.append(event.event_id)

    # -- the candle step ---------------------------------------------------------------------------
    def step(self, pair: str, i: int, sig: Signals) -> None:
        """Handle the close of candle ``i`` of ``pair``."""
        open_ms = int(sig.open_ms[i])
        if open_ms <= self.progress.get(pair, -1):
            return  # already handled before a restart
        self.counters.candles += 1
        close_ms = open_ms + self.timeframe_ms
        close = float(sig.close[i])
        self.marks[pair] = close
        self._closed_this_candle.discard(pair)
        self._current = (pair, open_ms)
        if self._pushed:
            self._apply_pushed()
        elif self.orders.live and not self._push:
            self._sync_stops(pair)
        open_trades = self.trades.get(pair)
        if open_trades:
            high = float(sig.high[i])
            for trade in list(open_trades):
                self._manage_trade(trade, open_ms, close_ms, high, close, bool(sig.exit_long[i]))
        if sig.enter_long[i] and pair not in self._closed_this_candle:
            self._try_entry(pair, open_ms, close, str(sig.enter_tag[i]))
        self.progress[pair] = open_ms
        self._pending_progress[pair] = open_ms
        if close_ms >= self._next_snapshot:
            self._snapshot(close_ms)
        if self._events:
            self._publish()

    def _on_push(self, seen: ExchangeOrder) -> None:
        self._pushed.append(seen)

    def _apply_pushed(self) -> None:
        pushed, self._pushed = self._pushed, []
        for seen in pushed:
            order = self.orders.live.get(seen.client_order_id)
            if order is not None:
                self.orders.apply(order, seen)
        self._drain()

    def _sync_stops(self, pair: str) -> None:
        live = [o for o in self.orders.live.values() if o.pair == pair]
        if live:
            self.orders.sync(live)
            self._drain()

    def _manage_trade(
        self, trade: Trade, open_ms: int, close_ms: int, high: float, close: float, exit_signal: bool
    ) -> None:
        strat = self.strategy
        if high > trade.max_rate:
            trade.max_rate = high
            if strat.trailing_stop:
                new_stop = trailing_stop(
                    trade.stop_price,
                    trade.open_rate,
                    trade.max_rate,
                    self.stoploss,
                    strat.trailing_stop_positive,
                    strat.trailing_stop_positive_offset,
                    strat.trailing_only_offset_is_reached,
                )
                tick = self.markets[trade.pair].price_precision
                if new_stop > trade.stop_price + tick:
                    self._replace_stop(trade, new_stop)
                    if not trade.is_open:
                        return
        minutes = (close_ms - trade.open_ms) / 60_000
        threshold = roi_threshold(self.roi, minutes)
        if threshold is not None and close / trade.open_rate - 1.0 >= threshold:
            self._exit(trade, open_ms, "roi")
        elif exit_signal:
            self._exit(trade, open_ms, "exit_signal")

    def _try_entry(self, pair: str, open_ms: int, price: float, tag: str) -> None:
        reason = self._entry_block(pair, open_ms + self.timeframe_ms)
        if reason is None:
            equity = self.portfolio.equity(self.marks)
            stake = stake_for_entry(self.config.risk, equity, self.portfolio.cash, self._cost_factor)
            market = self.markets[pair]
            amount = floor_to_step(stake / price, market.amount_precision)
            if stake <= 0 or amount * price < market.min_notional or amount < market.min_amount:
                reason = "min_notional"
            else:
                order = Order(
                    client_order_id=client_order_id(self.bot_id, pair, open_ms, "en"),
                    bot_id=self.bot_id,
                    pair=pair,
                    side=OrderSide.BUY,
                    type=OrderType.MARKET,
                    amount=amount,
                    intent=OrderIntent.ENTRY,
                    created_ms=self.now_ms(),
                    reason=tag,
                )
                self.orders.submit(order)
                self._drain()
                return
        self.counters.skipped_entries[reason] = self.counters.skipped_entries.get(reason, 0) + 1

    def _entry_block(self, pair: str, now_ms: int) -> str | None:
        if self.status is not BotStatus.RUNNING:
            return "not_running"
        if self.kill_level >= KillSwitchLevel.HALT_ENTRIES:
            return "kill_switch"
        n_open = sum(len(t) for t in self.trades.values())
        if n_open >= self.config.risk.max_open_trades:
            return "max_open_trades"
        if len(self.trades.get(pair, ())) >= self.config.risk.max_per_pair:
            return "max_per_pair"
        if any(o.intent is OrderIntent.ENTRY for o in self.orders.live.values()):
            return "entry_pending"
        return self.protections.entry_block(pair, now_ms)

    def _exit(self, trade: Trade, open_ms: int, reason: str) -> None:
        exit_id = client_order_id(self.bot_id, trade.pair, open_ms, f"ex:{trade.entry_order}")
        done = self.store.get_order(exit_id)
        if done is not None and done.status.is_terminal and done.filled == 0:
            # This exit was refused already (before a restart, say); sending it again would only be a replay of
            # the refusal, so the stop that protects the trade stays where it is.
            return
        stop = self._live_stop(trade)
        if stop is not None:
            self.orders.cancel(stop)
            self._drain()
            if not trade.is_open:
                return  # the stop filled before we could cancel it
        order = Order(
            client_order_id=exit_id,
            bot_id=self.bot_id,
            pair=trade.pair,
            side=OrderSide.SELL,
            type=OrderType.MARKET,
            amount=trade.amount,
            intent=OrderIntent.EXIT,
            created_ms=self.now_ms(),
            reason=reason,
            trade_ref=trade.id,
        )
        self.orders.submit(order)
        self._drain()

    # -- order updates (inside the store transaction) -----------------------------------------------
    def _on_intent(self, order: Order) -> None:
        pair = order.pair
        done = self.progress.get(pair)
        current = self._current
        if current is not None and current[0] == pair:
            # Everything before this candle is done; this candle is replayed after a crash (same ids).
            prior = current[1] - self.timeframe_ms
            if done is None or prior > done:
                self.store.save_progress(self.bot_id, pair, prior)
        for trade in self.trades.get(pair, ()):
            if self._saved_max.get(trade.entry_order) != trade.max_rate:
                self.store.update_trade(trade)
                self._saved_max[trade.entry_order] = trade.max_rate

    def _on_order_update(self, order: Order, fills: list[Fill]) -> None:
        now = self.now_ms()
        self.emit(
            OrderUpdate(
                bot_id=self.bot_id,
                ts_ms=now,
                client_order_id=order.client_order_id,
                pair=order.pair,
                side=order.side.value,
                status=order.status.value,
                amount=order.amount,
                filled=order.filled,
                average=order.average,
                intent=order.intent.value,
            )
        )
        if not order.status.is_terminal:
            return
        if order.intent is OrderIntent.ENTRY and order.filled > 0:
            self._open_trade(order)
        elif order.intent in (OrderIntent.EXIT, OrderIntent.STOP) and order.filled > 0:
            self._close_trade(order)
        else:
            self._protect_again(order)  # a refused exit, or a stop not resting by this bot's doing

    def _open_trade(self, order: Order) -> None:
        if any(t.entry_order == order.client_order_id for t in self.trades.get(order.pair, ())):
            return
        rate = order.average
        stop = rate * (1.0 + self.stoploss)
        ts = order.updated_ms or self.now_ms()
        amount, fee = order.filled, order.fee
        if order.fee_base:
            # The venue kept part of the coins as its fee: the trade holds what can be sold, and the dust
            # below the venue's amount step counts as cost (the quote paid stays exactly what was paid).
            net = order.filled - order.fee_base
            amount = floor_to_step(net, self.markets[order.pair].amount_precision)
            fee += (net - amount) * rate
        trade = Trade(
            bot_id=self.bot_id,
            pair=order.pair,
            open_ms=ts,
            open_rate=rate,
            amount=amount,
            fee_open=fee,
            stop_price=stop,
            initial_stop=stop,
            entry_order=order.client_order_id,
            enter_tag=order.reason,
            max_rate=rate,
        )
        trade.id = self.store.add_trade(trade)
        self.portfolio.apply_fill(order.pair, "buy", amount, rate, fee)
        self.trades.setdefault(order.pair, []).append(trade)
        self.counters.entries += 1
        self.emit(
            TradeExecuted(
                bot_id=self.bot_id,
                ts_ms=ts,
                trade_id=trade.id,
                pair=order.pair,
                side="buy",
                amount=amount,
                price=rate,
                fee=fee,
                action="entry",
                reason=order.reason,
            )
        )
        self._after_commit.append(lambda: self._place_stop(trade, "stop_loss"))

    def _trade_by_id(self, trade_id: int | None) -> Trade | None:
        for trades in self.trades.values():
            for trade in trades:
                if trade.id == trade_id:
                    return trade
        return None

    def _close_trade(self, order: Order) -> None:
        trade = self._trade_by_id(order.trade_ref)
        if trade is None or not trade.is_open:
            return
        ts = order.updated_ms or self.now_ms()
        reason = order.reason or "exit"
        if order.intent is OrderIntent.STOP:
            reason = "trailing_stop_loss" if order.reason == "trailing_stop_loss" else "stop_loss"
        sold = min(order.filled, trade.amount)
        if trade.amount - sold > self.markets[trade.pair].amount_precision:
            self.alert(
                "partial_exit", f"exit of trade {trade.id} sold {sold} of {trade.amount}", pair=trade.pair, ts_ms=ts
            )
        trade.amount = sold
        trade.close(ts, order.average, order.fee, reason, order.client_order_id)
        self.store.update_trade(trade)
        self.portfolio.apply_fill(trade.pair, "sell", sold, order.average, order.fee)
        self.trades[trade.pair].remove(trade)
        self._closed_this_candle.add(trade.pair)
        self.counters.exits += 1
        tripped = self.protections.on_trade_closed(trade.pair, ts, reason)
        if tripped:
            self.alert(tripped, "entries paused", pair=trade.pair, ts_ms=ts)
        self.emit(
            TradeExecuted(
                bot_id=self.bot_id,
                ts_ms=ts,
                trade_id=trade.id or 0,
                pair=trade.pair,
                side="sell",
                amount=trade.amount,
                price=order.average,
                fee=order.fee,
                action="exit",
                reason=reason,
                profit_abs=trade.profit_abs,
                profit_ratio=trade.profit_ratio,
            )
        )

    def _drain(self) -> None:
        while self._after_commit:
            self._after_commit.pop(0)()

    # -- persistence -------------------------------------------------------------------------------
    def _snapshot(self, now_ms: int) -> None:
        equity = self.portfolio.equity(self.marks)
        tripped = self.protections.on_equity(now_ms, equity)
        if tripped:
            self.alert(tripped, "entries paused", ts_ms=now_ms)
        self._snapshots.append(
            EquitySnapshot(
                bot_id=self.bot_id,
                ts_ms=now_ms,
                cash=self.portfolio.cash,
                equity=equity,
                realized=self.portfolio.realized,
                unrealized=self.portfolio.unrealized(self.marks),
                fees_paid=self.portfolio.fees_paid,
            )
        )
        self._next_snapshot = (now_ms // self._snapshot_every + 1) * self._snapshot_every

    def flush(self) -> None:
        """Persist progress, trailing state and equity snapshots in one transaction."""
        self._publish()
        if not (self._pending_progress or self._snapshots or self._delivered):
            return
        with self.store.transaction():
            for pair, ms in self._pending_progress.items():
                self.store.save_progress(self.bot_id, pair, ms)
            for trades in self.trades.values():
                for trade in trades:
                    if self._saved_max.get(trade.entry_order) != trade.max_rate:
                        self.store.update_trade(trade)
                        self._saved_max[trade.entry_order] = trade.max_rate
            if self._snapshots:
                self.store.add_equity_snapshots(self._snapshots)
            if self._delivered:
                self.store.mark_published(self._delivered)
                self._delivered = []
            self._pending_progress = {}
            self._snapshots = []

    def resolve_unsettled(self) -> None:
        """Ask the venue again about orders whose outcome is unknown (maybe in flight, or look-ups failed)."""
        pending = (OrderStatus.UNKNOWN, OrderStatus.PENDING_SUBMIT)
        unsettled = [o for o in self.orders.live.values() if o.status in pending]
        if unsettled:
            self.orders.sync(unsettled)
            self._drain()
            self._publish()

    def follow_wanted_status(self, wanted: BotStatus) -> None:
        """Apply a stop-entries or resume asked for while running (a reconcile halt stays until restart)."""
        if wanted is BotStatus.STOPPING_ENTRIES and self.status is BotStatus.RUNNING:
            self.status = BotStatus.STOPPING_ENTRIES
        elif wanted is BotStatus.RUNNING and self.status is BotStatus.STOPPING_ENTRIES and not self.reconcile_problems:
            self.status = BotStatus.RUNNING
        else:
            return
        self.emit(BotStatusUpdate(bot_id=self.bot_id, ts_ms=self.now_ms(), status=self.status.value))

    # -- kill switch -------------------------------------------------------------------------------
    def apply_kill_switch(self, level: KillSwitchLevel, now_open_ms: int | None = None) -> None:
        """Escalate to ``level``: halt entries, cancel every order, or also close every position."""
        self.kill_level = max(self.kill_level, level)
        if level >= KillSwitchLevel.CANCEL_ALL:
            for order in list(self.orders.live.values()):
                if order.type is not OrderType.MARKET:
                    self.orders.cancel(order)
            self._drain()
        if level >= KillSwitchLevel.FLATTEN:
            stamp = now_open_ms if now_open_ms is not None else self.now_ms()
            for trades in list(self.trades.values()):
                for trade in list(trades):
                    self._exit(trade, stamp, "emergency_flatten")
        self.alert("kill_switch", level.name)
        self._publish()
