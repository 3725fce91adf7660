"""Freqtrade's trade statistics, computed the way Freqtrade's ``RPC`` computes them, over TradeFleet trades.

Pure functions over :class:`TradeView` (a trade as the bots service reports it, with the open ones valued at
their current rate), so every number here is testable without a server. Ratios are per trade (profit over
the quote committed, fees included); ``*_pct`` values are those ratios × 100 rounded to 2 places.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from tradefleet.services.ftcompat.schemas import (
    EntryStats,
    ExitReasonStats,
    ExitStats,
    MixTagStats,
    PerformanceEntry,
    PeriodProfit,
    PeriodProfits,
    Profit,
    Stats,
)

DATE_FORMAT = "%Y-%m-%d %H:%M:%S"
PeriodUnit = str  # "days" | "weeks" | "months"


@dataclass(frozen=True, slots=True)
class TradeView:
    """One trade: closed ones with their realized profit, open ones valued at ``close_rate`` = current rate."""

    trade_id: int
    pair: str
    is_open: bool
    open_ms: int
    close_ms: int | None
    open_rate: float
    close_rate: float | None
    amount: float
    fee_open: float  # quote paid
    fee_close: float  # quote paid (estimated at the entry fee rate while open)
    profit_abs: float
    enter_tag: str
    exit_reason: str
    stop_price: float | None = None
    initial_stop: float | None = None
    max_rate: float | None = None

    @property
    def stake(self) -> float:
        """Quote committed at entry, fees excluded (Freqtrade's ``stake_amount``)."""
        return self.amount * self.open_rate

    @property
    def cost(self) -> float:
        """Quote committed at entry, fees included (Freqtrade's ``open_trade_value``)."""
        return self.stake + self.fee_open

    @property
    def profit_ratio(self) -> float:
        return self.profit_abs / self.cost if self.cost else 0.0


def fmt_ms(ms: int) -> str:
    """Return ``ms`` as Freqtrade prints dates: ``2024-05-01 13:45:00`` (UTC)."""
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime(DATE_FORMAT)


def pct(ratio: float) -> float:
    return round(ratio * 100, 2)


def humanize(ms: int, now_ms: int) -> str:
    """Return how long before ``now_ms`` the time ``ms`` was, as Freqtrade's ``dt_humanize`` words it."""
    seconds = max(0, (now_ms - ms) // 1000)
    for unit, size in (("year", 365 * 86400), ("month", 30 * 86400), ("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size:
            n = seconds // size
            return f"{n} {unit}{'s' if n > 1 else ''} ago"
    return "just now"


def _mean(values: Sequence[float]) -> float:
    return float(statistics.fmean(values)) if values else 0.0


# ---------------------------------------------------------------------------------------------- profit


def profit_summary(trades: Sequence[TradeView], starting_balance: float, now_ms: int) -> Profit:
    """Return Freqtrade's ``/profit``: closed and all-trade profit, win/loss counts, drawdown, expectancy."""
    ordered = sorted(trades, key=lambda t: t.trade_id)
    closed = [t for t in ordered if not t.is_open]
    closed_coin = sum(t.profit_abs for t in closed)
    all_coin = sum(t.profit_abs for t in ordered)
    closed_ratios = [t.profit_ratio for t in closed]
    all_ratios = [t.profit_ratio for t in ordered]
    wins = [t for t in closed if t.profit_ratio >= 0]
    win_profit = sum(t.profit_abs for t in wins)
    loss_profit = sum(t.profit_abs for t in closed if t.profit_ratio < 0)
    durations = [((t.close_ms or t.open_ms) - t.open_ms) / 1000 for t in closed]
    best = _best_pair(closed)
    expectancy, expectancy_ratio = _expectancy(closed)
    dd = max_drawdown(closed, starting_balance)
    first, latest = (ordered[0].open_ms, ordered[-1].open_ms) if ordered else (None, None)
    return Profit(
        profit_closed_coin=closed_coin,
        profit_closed_percent_mean=pct(_mean(closed_ratios)),
        profit_closed_ratio_mean=_mean(closed_ratios),
        profit_closed_percent_sum=pct(sum(closed_ratios)),
        profit_closed_ratio_sum=sum(closed_ratios),
        profit_closed_percent=pct(closed_coin / starting_balance if starting_balance else 0.0),
        profit_closed_ratio=closed_coin / starting_balance if starting_balance else 0.0,
        profit_closed_fiat=0.0,
        profit_all_coin=all_coin,
        profit_all_percent_mean=pct(_mean(all_ratios)),
        profit_all_ratio_mean=_mean(all_ratios),
        profit_all_percent_sum=pct(sum(all_ratios)),
        profit_all_ratio_sum=sum(all_ratios),
        profit_all_percent=pct(all_coin / starting_balance if starting_balance else 0.0),
        profit_all_ratio=all_coin / starting_balance if starting_balance else 0.0,
        profit_all_fiat=0.0,
        trade_count=len(ordered),
        closed_trade_count=len(closed),
        first_trade_date=fmt_ms(first) if first is not None else "",
        first_trade_humanized=humanize(first, now_ms) if first is not None else "",
        first_trade_timestamp=first or 0,
        latest_trade_date=fmt_ms(latest) if latest is not None else "",
        latest_trade_humanized=humanize(latest, now_ms) if latest is not None else "",
        latest_trade_timestamp=latest or 0,
        avg_duration=str(timedelta(seconds=_mean(durations))).split(".")[0],
        best_pair=best[0] if best else "",
        best_rate=pct(best[1]) if best else 0.0,
        best_pair_profit_ratio=best[1] if best else 0.0,
        best_pair_profit_abs=best[2] if best else 0.0,
        winning_trades=len(wins),
        losing_trades=len(closed) - len(wins),
        profit_factor=win_profit / abs(loss_profit) if loss_profit else None,
        winrate=len(wins) / len(closed) if closed else 0.0,
        expectancy=expectancy,
        expectancy_ratio=expectancy_ratio,
        max_drawdown=dd.relative,
        max_drawdown_abs=dd.absolute,
        max_drawdown_start=fmt_ms(dd.start_ms) if dd.start_ms else "",
        max_drawdown_start_timestamp=dd.start_ms,
        max_drawdown_end=fmt_ms(dd.end_ms) if dd.end_ms else "",
        max_drawdown_end_timestamp=dd.end_ms,
        trading_volume=sum(t.stake + t.amount * (t.close_rate or 0.0) for t in closed)
        + sum(t.stake for t in ordered if t.is_open),
        bot_start_timestamp=0,
        bot_start_date="",
    )


def _best_pair(closed: Iterable[TradeView]) -> tuple[str, float, float] | None:
    """Return (pair, Σ profit ratio, Σ profit) of the pair with the most profit, as Freqtrade ranks them."""
    sums: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0])
    for t in closed:
        sums[t.pair][0] += t.profit_ratio
        sums[t.pair][1] += t.profit_abs
    if not sums:
        return None
    pair, (ratio, absolute) = max(sums.items(), key=lambda kv: (kv[1][1], kv[0]))
    return pair, ratio, absolute


def _expectancy(closed: Sequence[TradeView]) -> tuple[float, float]:
    """Return Freqtrade's (expectancy, expectancy ratio): mean outcome, and it per unit of mean loss."""
    if not closed:
        return 0.0, 100.0
    wins = [t.profit_abs for t in closed if t.profit_abs > 0]
    losses = [-t.profit_abs for t in closed if t.profit_abs < 0]
    average_win = sum(wins) / len(wins) if wins else 0.0
    average_loss = sum(losses) / len(losses) if losses else 0.0
    winrate, loserate = len(wins) / len(closed), len(losses) / len(closed)
    expectancy = winrate * average_win - loserate * average_loss
    ratio = (1 + average_win / average_loss) * winrate - 1 if average_loss > 0 else 100.0
    return expectancy, ratio


@dataclass(frozen=True, slots=True)
class Drawdown:
    absolute: float = 0.0
    relative: float = 0.0  # of the balance at the peak
    start_ms: int = 0  # close time of the trade at the peak
    end_ms: int = 0  # close time of the trade at the trough


def max_drawdown(closed: Iterable[TradeView], starting_balance: float) -> Drawdown:
    """Return the largest fall of the closed-trade balance from a peak, trades taken in closing order."""
    balance = peak = starting_balance
    peak_ms = 0
    worst = Drawdown()
    for t in sorted(closed, key=lambda t: (t.close_ms or 0, t.trade_id)):
        balance += t.profit_abs
        if balance > peak:
            peak, peak_ms = balance, t.close_ms or 0
        fall = peak - balance
        if fall > worst.absolute:
            worst = Drawdown(fall, fall / peak if peak > 0 else 0.0, peak_ms or (t.close_ms or 0), t.close_ms or 0)
    return worst


# ---------------------------------------------------------------------------------------------- per key


def _grouped(closed: Iterable[TradeView], key: Callable[[TradeView], str]) -> list[tuple[str, float, float, int]]:
    """Return (key, Σ ratio, Σ profit, count) per key, most profit first (Freqtrade's order)."""
    sums: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0, 0])
    for t in closed:
        row = sums[key(t)]
        row[0] += t.profit_ratio
        row[1] += t.profit_abs
        row[2] += 1
    rows = [(k, r, a, int(n)) for k, (r, a, n) in sums.items()]
    return sorted(rows, key=lambda row: (-row[2], row[0]))


def performance(closed: Iterable[TradeView]) -> list[PerformanceEntry]:
    return [
        PerformanceEntry(pair=k, profit=pct(r), profit_ratio=r, profit_pct=pct(r), profit_abs=a, count=n)
        for k, r, a, n in _grouped(closed, lambda t: t.pair)
    ]


def entries(closed: Iterable[TradeView]) -> list[EntryStats]:
    return [
        EntryStats(enter_tag=k, profit_ratio=r, profit_pct=pct(r), profit_abs=a, count=n)
        for k, r, a, n in _grouped(closed, lambda t: t.enter_tag or "Other")
    ]


def exits(closed: Iterable[TradeView]) -> list[ExitStats]:
    return [
        ExitStats(exit_reason=k, profit_ratio=r, profit_pct=pct(r), profit_abs=a, count=n)
        for k, r, a, n in _grouped(closed, lambda t: t.exit_reason or "Other")
    ]


def mix_tags(closed: Iterable[TradeView]) -> list[MixTagStats]:
    return [
        MixTagStats(mix_tag=k, profit_ratio=r, profit_pct=pct(r), profit_abs=a, count=n)
        for k, r, a, n in _grouped(closed, lambda t: f"{t.enter_tag or 'Other'} {t.exit_reason or 'Other'}")
    ]


def trade_stats(closed: Iterable[TradeView]) -> Stats:
    """Return Freqtrade's ``/stats``: wins, losses and draws per exit reason, and mean durations of each."""
    reasons: dict[str, dict[str, int]] = {}
    durations: dict[str, list[float]] = {"wins": [], "draws": [], "losses": []}
    for t in closed:
        outcome = "wins" if t.profit_ratio > 0 else "losses" if t.profit_ratio < 0 else "draws"
        reasons.setdefault(t.exit_reason, {"wins": 0, "losses": 0, "draws": 0})[outcome] += 1
        if t.close_ms is not None:
            durations[outcome].append((t.close_ms - t.open_ms) / 1000)
    return Stats(
        exit_reasons={k: ExitReasonStats(**v) for k, v in reasons.items()},
        durations={k: (sum(v) / len(v) if v else None) for k, v in durations.items()},
    )


# ---------------------------------------------------------------------------------------------- periods


def _period_start(day: date, unit: PeriodUnit) -> date:
    if unit == "weeks":
        return day - timedelta(days=day.weekday())
    if unit == "months":
        return day.replace(day=1)
    return day


def _step_back(start: date, unit: PeriodUnit) -> date:
    if unit == "weeks":
        return start - timedelta(days=7)
    if unit == "months":
        return (start - timedelta(days=1)).replace(day=1)
    return start - timedelta(days=1)


def period_profits(
    closed: Iterable[TradeView], unit: PeriodUnit, count: int, anchor_ms: int, balance_now: float, quote: str
) -> PeriodProfits:
    """Return Freqtrade's ``/daily`` (``/weekly``, ``/monthly``): closed profit per period, newest first.

    Periods end with the one holding ``anchor_ms``; each period's starting balance is ``balance_now`` less
    the profit of that period and of every later one, as Freqtrade derives it.
    """
    by_period: dict[date, list[TradeView]] = defaultdict(list)
    for t in closed:
        closed_day = datetime.fromtimestamp((t.close_ms or t.open_ms) / 1000, tz=UTC).date()
        by_period[_period_start(closed_day, unit)].append(t)
    start = _period_start(datetime.fromtimestamp(anchor_ms / 1000, tz=UTC).date(), unit)
    later = sum(t.profit_abs for p, ts in by_period.items() if p > start for t in ts)
    balance = balance_now - later
    data: list[PeriodProfit] = []
    for _ in range(count):
        trades = by_period.get(start, [])
        profit = sum(t.profit_abs for t in trades)
        balance -= profit
        data.append(
            PeriodProfit(
                date=start,
                abs_profit=profit,
                rel_profit=round(profit / balance, 8) if balance > 0 else 0.0,
                starting_balance=balance,
                fiat_value=0.0,
                trade_count=len(trades),
            )
        )
        start = _step_back(start, unit)
    return PeriodProfits(data=data, fiat_display_currency="", stake_currency=quote)
