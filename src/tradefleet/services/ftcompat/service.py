"""Each TradeFleet bot seen through Freqtrade's REST API: the bots service's answers in Freqtrade's shapes.

Every method takes the caller and the bot id and goes through :class:`BotService`, so roles and ownership
are exactly the bots service's (a bot the caller may not see is a 404, a viewer acting is a 403). Nothing
here reads the database: numbers are computed from what the bots service returns, the way Freqtrade's
``RPC`` computes them (``metrics``), and trades are shaped by ``mapping``.

How Freqtrade's notions map onto TradeFleet's:

    Freqtrade state running / paused / stopped   bot status running / stopentry / stopped (error: "error")
    start (from paused)                          resume; otherwise start_bot
    stopentry, stopbuy                           stop_entries
    forceenter, forcebuy                         force_enter: long, at market (no limit price, no leverage)
    forceexit, forcesell                         force_exit: a trade id or "all", whole amount, at market
    current rate of an open trade                close of the last candle the bot processed for the pair
                                                 (else derived from the last equity snapshot, else entry)
    locks                                        the kill switch in force, as a lock on every pair ("*")
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime

from tradefleet import __version__
from tradefleet.core.bots import BotStatus
from tradefleet.core.candles import timeframe_to_ms
from tradefleet.core.errors import DataNotFoundError, StorageError, TradeFleetError
from tradefleet.services.auth import Principal, Role, authorize
from tradefleet.services.bots.schemas import BotOut, ForceEnterIn, ForceExitIn, PositionOut
from tradefleet.services.bots.service import MAX_PAGE, BotService
from tradefleet.services.ftcompat import metrics
from tradefleet.services.ftcompat.mapping import closed_view, open_trade_json, open_view, order_json, trade_json
from tradefleet.services.ftcompat.metrics import TradeView, fmt_ms
from tradefleet.services.ftcompat.schemas import (
    Balance,
    Balances,
    Count,
    EntryStats,
    ExitStats,
    ForceEnterPayload,
    ForceExitPayload,
    Health,
    Lock,
    Locks,
    Logs,
    MixTagStats,
    OpenTrade,
    Order,
    PairHistory,
    PerformanceEntry,
    PeriodProfits,
    Profit,
    ResultMsg,
    ShowConfig,
    Stats,
    StatusMsg,
    Trade,
    TradeHistory,
    Whitelist,
)
from tradefleet.services.market.service import MAX_LIMIT, MarketDataService
from tradefleet.strategies.loader import builtin_strategies

API_VERSION = 2.34  # the Freqtrade REST API level whose endpoints and shapes these answer
FOREVER_MS = 253_402_300_799_000  # 9999-12-31 23:59:59: a lock that lasts until someone clears it
STATES = {
    BotStatus.RUNNING: "running",
    BotStatus.STOPPING_ENTRIES: "paused",
    BotStatus.STOPPED: "stopped",
    BotStatus.ERROR: "error",
}
_DECIMALS = {"BTC": 8, "ETH": 5}  # Freqtrade's digits per stake currency; 3 for the others


class FtUnsupportedError(TradeFleetError):
    code = "unsupported"
    hint = "TradeFleet bots trade spot, long, at market: leave price, ordertype, leverage and amount out"
    http_status = 422


class FtTradeNotFoundError(TradeFleetError):
    code = "trade_not_found"
    hint = "list the bot's trades with GET status (open) or trades (closed)"
    http_status = 404


class FtCommandFailedError(TradeFleetError):
    code = "command_failed"
    hint = "the bot refused the command: see the message, and the bot's logs"
    http_status = 409


def _wall_ms() -> int:
    return time.time_ns() // 1_000_000


class FtCompatService:
    """Freqtrade's REST API over one :class:`BotService` (and stored candles, when the process has them)."""

    def __init__(
        self, bots: BotService, market: MarketDataService | None = None, now_ms: Callable[[], int] = _wall_ms
    ) -> None:
        self.bots = bots
        self.market = market
        self.now_ms = now_ms

    # ------------------------------------------------------------------ configuration and state
    def show_config(self, principal: Principal, bot_id: str) -> ShowConfig:
        """Return the part of the bot's configuration Freqtrade shows (never credentials)."""
        bot = self.bots.get_bot(principal, bot_id)
        strategy = builtin_strategies().get(bot.strategy)  # user strategies are not loaded by the API
        risk = bot.risk
        stoploss = risk.stoploss if risk.stoploss is not None else (strategy.stoploss if strategy else None)
        tf_ms = timeframe_to_ms(bot.timeframe)
        return ShowConfig(
            version=f"tradefleet-{__version__}", api_version=API_VERSION, dry_run=bot.mode != "live",
            trading_mode="spot", short_allowed=False, stake_currency=bot.quote_currency,
            stake_amount=str(risk.stake_amount) if risk.stake_mode == "fixed" else "unlimited",
            stake_mode=risk.stake_mode, stake_percent=risk.stake_amount if risk.stake_mode == "percent" else None,
            available_capital=bot.starting_balance, stake_currency_decimals=_DECIMALS.get(bot.quote_currency, 3),
            max_open_trades=risk.max_open_trades,
            minimal_roi={k: float(v) for k, v in strategy.minimal_roi.items()} if strategy else {},
            stoploss=stoploss, stoploss_on_exchange=False,
            trailing_stop=strategy.trailing_stop if strategy else None,
            trailing_stop_positive=strategy.trailing_stop_positive if strategy else None,
            trailing_stop_positive_offset=strategy.trailing_stop_positive_offset if strategy else None,
            trailing_only_offset_is_reached=strategy.trailing_only_offset_is_reached if strategy else None,
            timeframe=bot.timeframe, timeframe_ms=tf_ms, timeframe_min=tf_ms // 60_000, exchange=bot.exchange,
            strategy=bot.strategy, force_entry_enable=True, exit_pricing={}, entry_pricing={}, bot_name=bot.bot_id,
            state=STATES[bot.status], runmode="live" if bot.mode == "live" else "dry_run",
            position_adjustment_enable=False, max_entry_position_adjustment=-1,
        )  # fmt: skip

    def whitelist(self, principal: Principal, bot_id: str) -> Whitelist:
        pairs = self.bots.get_bot(principal, bot_id).pairs
        return Whitelist(whitelist=pairs, length=len(pairs), method=["StaticPairList"])

    def locks(self, principal: Principal, bot_id: str) -> Locks:
        """Return the kill switch in force (the bot's or the fleet's) as a lock on every pair."""
        status = self.bots.status(principal, bot_id)
        if status.effective_kill_switch == "NONE":
            return Locks(lock_count=0, locks=[])
        scope = "bot" if status.kill_switch == status.effective_kill_switch else "fleet"
        now = self.now_ms()
        lock = Lock(
            id=0, active=True, pair="*", side="*", lock_time=fmt_ms(now), lock_timestamp=now,
            lock_end_time=fmt_ms(FOREVER_MS), lock_end_timestamp=FOREVER_MS,
            reason=f"{scope} kill switch {status.effective_kill_switch} (until cleared)",
        )  # fmt: skip
        return Locks(lock_count=1, locks=[lock])

    def logs(self, principal: Principal, bot_id: str, limit: int | None) -> Logs:
        """Return the bot's recent log lines, oldest first, as Freqtrade's ``[date, ms, logger, level, msg]``."""
        lines = self.bots.logs(principal, bot_id, limit=limit or 1000)
        rows = [[fmt_ms(x.ts_ms), float(x.ts_ms), x.logger, x.level, x.message] for x in lines]
        return Logs(log_count=len(rows), logs=rows)

    def health(self, principal: Principal, bot_id: str) -> Health:
        """Return when the bot last processed a candle (its last candle's close, or its last snapshot)."""
        bot = self.bots.get_bot(principal, bot_id)
        status = self.bots.status(principal, bot_id)
        snapshots = self.bots.equity(principal, bot_id, limit=1)
        seen = [s.ts_ms for s in snapshots]
        if status.last_candle_ms is not None:
            seen.append(status.last_candle_ms + timeframe_to_ms(bot.timeframe))
        if not seen:
            return Health()
        last = max(seen)
        return Health(last_process=_iso(last), last_process_ts=last // 1000)

    # ------------------------------------------------------------------ trades
    def status(self, principal: Principal, bot_id: str) -> list[OpenTrade]:
        """Return the open trades, valued at their current rate."""
        bot = self.bots.get_bot(principal, bot_id)
        orders = self._orders(principal, bot_id)
        return [open_trade_json(t, bot, orders.get(t.trade_id)) for t in self._open(principal, bot)]

    def trades(
        self, principal: Principal, bot_id: str, limit: int, offset: int, order_by_id: bool = True
    ) -> TradeHistory:
        """Return closed trades, by id (or newest close first), ``limit`` from ``offset``."""
        bot = self.bots.get_bot(principal, bot_id)
        closed = self._closed(principal, bot_id)
        if order_by_id:
            closed.sort(key=lambda t: t.trade_id)
        page = closed[offset : offset + limit]
        return TradeHistory(
            trades=[trade_json(t, bot) for t in page], trades_count=len(page), offset=offset, total_trades=len(closed)
        )

    def trade(self, principal: Principal, bot_id: str, trade_id: int) -> OpenTrade:
        """Return one trade, open or closed (a closed trade's current rate is its exit rate)."""
        bot = self.bots.get_bot(principal, bot_id)
        for found in (*self._open(principal, bot), *self._closed(principal, bot_id)):
            if found.trade_id == trade_id:
                orders = self._orders(principal, bot_id).get(trade_id) if found.is_open else None
                return open_trade_json(found, bot, orders)
        raise FtTradeNotFoundError(f"bot {bot_id!r} has no trade {trade_id}")

    def count(self, principal: Principal, bot_id: str) -> Count:
        bot = self.bots.get_bot(principal, bot_id)
        positions = self.bots.positions(principal, bot_id).positions
        return Count(
            current=len(positions),
            max=bot.risk.max_open_trades,
            total_stake=sum(p.amount * p.open_rate for p in positions),
        )

    def _orders(self, principal: Principal, bot_id: str) -> dict[int, list[Order]]:
        """Return trade id → the trade's live orders."""
        found: dict[int, list[Order]] = {}
        for o in self.bots.open_orders(principal, bot_id):
            if o.trade_id is not None:
                found.setdefault(o.trade_id, []).append(order_json(o))
        return found

    def _open(self, principal: Principal, bot: BotOut) -> list[TradeView]:
        found = self.bots.positions(principal, bot.bot_id).positions
        rates = self._current_rates(principal, bot, found)
        return [open_view(p, rates[p.trade_id]) for p in found]

    def _closed(self, principal: Principal, bot_id: str) -> list[TradeView]:
        """Return every closed trade, newest close first, a page of the bots service at a time."""
        page = self.bots.trades(principal, bot_id, limit=MAX_PAGE, offset=0)
        found = list(page.trades)
        while len(found) < page.total:
            page = self.bots.trades(principal, bot_id, limit=MAX_PAGE, offset=len(found))
            if not page.trades:
                break
            found.extend(page.trades)
        return [closed_view(t) for t in found]

    def _current_rates(self, principal: Principal, bot: BotOut, positions: list[PositionOut]) -> dict[int, float]:
        """Return trade id → current rate: last processed candle's close, else snapshot-derived, else entry."""
        rates = {p.trade_id: p.open_rate for p in positions}
        for p in positions:
            if p.unrealized_pnl is not None and p.amount:  # the only open trade: the snapshot's marks are its own
                rates[p.trade_id] = p.open_rate + p.unrealized_pnl / p.amount
        if self.market is None or not positions:
            return rates
        progress = self.bots.status(principal, bot.bot_id).progress
        closes: dict[str, float | None] = {}
        for p in positions:
            if p.pair in progress and p.pair not in closes:
                closes[p.pair] = self._close_at(p.pair, bot.timeframe, progress[p.pair])
            close = closes.get(p.pair)
            if close is not None:
                rates[p.trade_id] = close
        return rates

    def _close_at(self, pair: str, timeframe: str, open_ms: int) -> float | None:
        assert self.market is not None
        try:
            found = self.market.candles(pair, timeframe, since_ms=open_ms, limit=1).data
        except DataNotFoundError:
            return None
        return found[0][4] if found and found[0][0] == open_ms else None

    # ------------------------------------------------------------------ money
    def profit(self, principal: Principal, bot_id: str) -> Profit:
        bot = self.bots.get_bot(principal, bot_id)
        trades = [*self._open(principal, bot), *self._closed(principal, bot_id)]
        return metrics.profit_summary(trades, bot.starting_balance, self.now_ms())

    def balance(self, principal: Principal, bot_id: str) -> Balances:
        """Return the bot's quote cash (from its trades: ``_cash``) and each held base currency at its rate."""
        bot = self.bots.get_bot(principal, bot_id)
        opens = self._open(principal, bot)
        quote = bot.quote_currency
        cash = _cash(bot, opens, self._closed(principal, bot_id))
        rows = [_balance_row(quote, cash, cash, quote)]
        held: dict[str, tuple[float, float]] = {}
        for t in opens:
            amount, value = held.get(t.pair, (0.0, 0.0))
            held[t.pair] = (amount + t.amount, value + t.amount * (t.close_rate or t.open_rate))
        rows += [_balance_row(pair.split("/")[0], amount, value, quote) for pair, (amount, value) in held.items()]
        total = sum(r.est_stake for r in rows)
        start = bot.starting_balance
        ratio = total / start - 1 if start else 0.0
        return Balances(
            currencies=rows, total=total, total_bot=total, symbol="", value=0.0, value_bot=0.0, stake=quote,
            note="Simulated balances" if bot.mode != "live" else "", starting_capital=start,
            starting_capital_ratio=ratio, starting_capital_pct=metrics.pct(ratio), starting_capital_fiat=0.0,
            starting_capital_fiat_ratio=0.0, starting_capital_fiat_pct=0.0,
        )  # fmt: skip

    def performance(self, principal: Principal, bot_id: str) -> list[PerformanceEntry]:
        return metrics.performance(self._closed(principal, bot_id))

    def entries(self, principal: Principal, bot_id: str, pair: str | None) -> list[EntryStats]:
        return metrics.entries(t for t in self._closed(principal, bot_id) if pair is None or t.pair == pair)

    def exits(self, principal: Principal, bot_id: str, pair: str | None) -> list[ExitStats]:
        return metrics.exits(t for t in self._closed(principal, bot_id) if pair is None or t.pair == pair)

    def mix_tags(self, principal: Principal, bot_id: str, pair: str | None) -> list[MixTagStats]:
        return metrics.mix_tags(t for t in self._closed(principal, bot_id) if pair is None or t.pair == pair)

    def stats(self, principal: Principal, bot_id: str) -> Stats:
        return metrics.trade_stats(self._closed(principal, bot_id))

    def period_profits(self, principal: Principal, bot_id: str, unit: str, count: int) -> PeriodProfits:
        """Return closed profit per day, week or month, the ``count`` periods up to the bot's time."""
        bot = self.bots.get_bot(principal, bot_id)
        opens, closed = self._open(principal, bot), self._closed(principal, bot_id)
        balance_now = _cash(bot, opens, closed) + sum(t.amount * (t.close_rate or 0.0) for t in opens)
        anchor = self._bot_now(principal, bot, [*opens, *closed])
        return metrics.period_profits(closed, unit, count, anchor, balance_now, bot.quote_currency)

    def _bot_now(self, principal: Principal, bot: BotOut, trades: list[TradeView]) -> int:
        """Return the bot's time: its newest candle or trade (paper bots may replay the past), else now."""
        last_candle = self.bots.status(principal, bot.bot_id).last_candle_ms
        seen = [t.close_ms or t.open_ms for t in trades]
        if last_candle is not None:
            seen.append(last_candle + timeframe_to_ms(bot.timeframe))
        return max(seen) if seen else self.now_ms()

    # ------------------------------------------------------------------ candles
    def pair_candles(self, principal: Principal, bot_id: str, pair: str, timeframe: str, limit: int) -> PairHistory:
        """Return the candles the bot traded on, up to the last one it processed (plain OHLCV, no signals)."""
        bot = self.bots.get_bot(principal, bot_id)
        if self.market is None:
            raise StorageError("no market-data service in this process", hint="run the API with `tradefleet up`")
        tf_ms = timeframe_to_ms(timeframe)
        limit = max(1, min(limit, MAX_LIMIT))
        pair = pair.upper()
        rows: list[tuple[int, float, float, float, float, float]] = []
        if pair in bot.pairs:
            last = self.bots.status(principal, bot_id).progress.get(pair) if timeframe == bot.timeframe else None
            since = max(0, last - (limit - 1) * tf_ms) if last is not None else None
            try:
                rows = list(self.market.candles(pair, timeframe, since_ms=since, limit=limit).data)
            except DataNotFoundError:
                rows = []
            if last is not None:
                rows = [r for r in rows if r[0] <= last]
        return _pair_history(bot, pair, timeframe, tf_ms, rows, self.now_ms())

    # ------------------------------------------------------------------ controls
    def start(self, principal: Principal, bot_id: str) -> StatusMsg:
        """Run the bot (from paused: open trades again); ``already running`` when it runs."""
        before = self._status_for_action(principal, bot_id)
        if before == BotStatus.STOPPING_ENTRIES:
            self.bots.resume(principal, bot_id)
            return StatusMsg(status="starting trader ...")
        self.bots.start_bot(principal, bot_id)
        return StatusMsg(status="already running" if before == BotStatus.RUNNING else "starting trader ...")

    def stop(self, principal: Principal, bot_id: str) -> StatusMsg:
        before = self._status_for_action(principal, bot_id)
        self.bots.stop_bot(principal, bot_id)
        running = before in (BotStatus.RUNNING, BotStatus.STOPPING_ENTRIES)
        return StatusMsg(status="stopping trader ..." if running else "already stopped")

    def _status_for_action(self, principal: Principal, bot_id: str) -> BotStatus:
        """Return the bot's status before an action, checking the role first as the bots service does."""
        authorize(principal, Role.TRADER)  # a viewer is refused before learning whether the bot exists
        return self.bots.get_bot(principal, bot_id).status

    def stop_entries(self, principal: Principal, bot_id: str) -> StatusMsg:
        self.bots.stop_entries(principal, bot_id)
        return StatusMsg(status="No more entries will occur from now. Run /start to enable entries.")

    def force_enter(self, principal: Principal, bot_id: str, body: ForceEnterPayload) -> Trade | StatusMsg:
        """Enter ``pair`` long at market; answer with the trade, as Freqtrade does."""
        if body.side != "long" or body.price is not None or body.ordertype == "limit" or body.leverage not in (None, 1):
            raise FtUnsupportedError("only long market entries without leverage are supported")
        enter = ForceEnterIn(pair=body.pair, stake_amount=body.stakeamount, enter_tag=body.entry_tag or "force_entry")
        reply = self.bots.force_enter(principal, bot_id, enter)
        if reply.status == "failed":
            raise FtCommandFailedError(f"Error entering long trade for pair {enter.pair}: {reply.message}")
        if reply.status == "done":
            opened = set(reply.result.get("trade_ids") or ())
            bot = self.bots.get_bot(principal, bot_id)
            for t in self._open(principal, bot):
                if t.trade_id in opened:
                    return trade_json(t, bot)
        return StatusMsg(status=f"Entry for {enter.pair} sent to the bot ({reply.status}): {reply.message}")

    def force_exit(self, principal: Principal, bot_id: str, body: ForceExitPayload) -> ResultMsg:
        """Exit one open trade (or ``all``) at market."""
        if body.amount is not None or body.price is not None or body.ordertype == "limit":
            raise FtUnsupportedError("only whole market exits are supported")
        if str(body.tradeid).strip().lower() == "all":
            exit_, what = ForceExitIn(), "all open trades"
        elif str(body.tradeid).strip().isdigit() and int(body.tradeid) >= 1:
            exit_, what = ForceExitIn(trade_id=int(body.tradeid)), f"trade {int(body.tradeid)}"
        else:
            raise FtUnsupportedError(f"tradeid must be a trade id or 'all', got {body.tradeid!r}")
        reply = self.bots.force_exit(principal, bot_id, exit_)
        if reply.status == "failed":
            raise FtCommandFailedError(f"Error exiting {what}: {reply.message}")
        if reply.status == "accepted":
            return ResultMsg(result=f"Exit of {what} sent to the bot: {reply.message}")
        return ResultMsg(
            result=f"Created exit orders for {what}." if exit_.trade_id is None else f"Created exit order for {what}."
        )


def _cash(bot: BotOut, opens: list[TradeView], closed: list[TradeView]) -> float:
    """Return the quote cash: every cash movement of a bot account is a fill of one of its trades."""
    return bot.starting_balance + sum(t.profit_abs for t in closed) - sum(t.cost for t in opens)


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).isoformat()


def _balance_row(currency: str, amount: float, value: float, quote: str) -> Balance:
    return Balance(currency=currency, free=amount, balance=amount, used=0.0, bot_owned=amount, est_stake=value,
                   est_stake_bot=value, stake=quote)  # fmt: skip


def _pair_history(
    bot: BotOut,
    pair: str,
    timeframe: str,
    tf_ms: int,
    rows: list[tuple[int, float, float, float, float, float]],
    now: int,
) -> PairHistory:
    data = [[_timestamp(r[0]), *r[1:], r[0]] for r in rows]
    return PairHistory(
        strategy=bot.strategy, pair=pair, timeframe=timeframe, timeframe_ms=tf_ms,
        columns=["date", "open", "high", "low", "close", "volume", "__date_ts"], data=data, length=len(data),
        buy_signals=0, sell_signals=0, enter_long_signals=0, exit_long_signals=0, enter_short_signals=0,
        exit_short_signals=0, last_analyzed=_iso(now), last_analyzed_ts=now // 1000,
        data_start=data[0][0] if data else "", data_start_ts=rows[0][0] if rows else 0,
        data_stop=data[-1][0] if data else "", data_stop_ts=rows[-1][0] if rows else 0,
    )  # fmt: skip


def _timestamp(ms: int) -> str:
    return str(datetime.fromtimestamp(ms / 1000, tz=UTC)).replace("T", " ")
