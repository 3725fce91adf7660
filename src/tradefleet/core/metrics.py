"""Performance metrics of a backtest (or any run) from its trades and equity curve.

Pure numpy and the standard library, so hyperopt, reports and the API can share it. The domain does not know
the backtest types: :func:`compute_metrics` takes anything shaped like a trade (:class:`TradeLike`) and the
equity curve as arrays.

Conventions
-----------
- **Ratios, not percentages.** ``0.05`` means 5 %; reports format them.
- **None means undefined or infinite.** A profit factor without losing trades, a Sharpe ratio of a flat
  curve, an average over zero trades and a CAGR too large for a float are all ``None``, never ``inf`` or
  ``NaN``, so :meth:`Metrics.to_dict` is plain JSON.
- **Trade statistics count closed trades only.** Trades still open at the end of the data are counted in
  ``open_trades``; their unrealised profit is in the equity curve and so in the balance figures.
  A trade wins when ``profit_abs > 0``, draws at exactly 0, loses below 0.
- **Equity curve.** ``equity[i]`` is the account value at ``equity_ms[i]``. The account holds
  ``starting_balance`` one timeframe before the first point, which is where drawdowns and returns start.
  The run spans from one timeframe before the first point to the last point (``days``).
- **Risk-adjusted ratios** come from daily returns: the curve is resampled to the last value of each UTC
  calendar day (days without a point repeat the previous value) and the first day's return is measured from
  ``starting_balance``. Risk-free rate 0, 365 days a year (crypto trades every day):

  - Sharpe = mean(r) / std(r, ddof=1) × √365, None with fewer than two daily returns or no spread (flat);
  - Sortino = mean(r) / √mean(min(r, 0)²) × √365 (downside deviation against a 0 target over *all* days),
    None with fewer than two daily returns or no losing day;
  - CAGR = (final / start) ^ (365 / days) − 1;
  - Calmar = CAGR / max relative drawdown, None without a drawdown.
- **Max drawdown** is the episode with the deepest fall relative to its running peak; ``max_drawdown_abs`` is
  that episode's fall in quote currency. Recovery is the first point back at or above the peak (None if
  the curve never gets back).
- **Expectancy** is the mean profit per closed trade (quote); the expectancy ratio is
  ``(1 + avg win / avg loss) × win rate − 1``, the expected return per unit risked (None without losers).
- Group tables (per pair, exit reason, entry tag) give ``total_profit_ratio`` relative to the starting
  balance, as Freqtrade does, and ``avg_profit_ratio`` as the mean of the trades' own ratios.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

DAY_MS = 86_400_000
DAYS_PER_YEAR = 365

__all__ = [
    "DAYS_PER_YEAR",
    "DAY_MS",
    "GroupStats",
    "Metrics",
    "TradeExtreme",
    "TradeLike",
    "compute_metrics",
    "daily_values",
    "drawdown",
    "market_change",
]


class TradeLike(Protocol):
    """What metrics read from a trade (``BacktestTrade`` and persisted trades fit)."""

    @property
    def pair(self) -> str: ...
    @property
    def open_ms(self) -> int: ...
    @property
    def close_ms(self) -> int | None: ...
    @property
    def profit_abs(self) -> float: ...
    @property
    def profit_ratio(self) -> float: ...
    @property
    def exit_reason(self) -> str: ...
    @property
    def enter_tag(self) -> str: ...
    @property
    def is_open(self) -> bool: ...


@dataclass(frozen=True, slots=True)
class GroupStats:
    """Closed trades of one pair, exit reason or entry tag (or all of them)."""

    key: str
    trades: int
    avg_profit_ratio: float | None
    total_profit_abs: float
    total_profit_ratio: float
    wins: int
    draws: int
    losses: int
    win_rate: float | None
    avg_duration_ms: float | None


@dataclass(frozen=True, slots=True)
class TradeExtreme:
    """The best or worst closed trade, by profit ratio."""

    pair: str
    open_ms: int
    close_ms: int | None
    profit_ratio: float
    profit_abs: float


@dataclass(frozen=True, slots=True)
class Metrics:
    """Summary of a run; see the module docstring for the conventions."""

    start_ms: int | None
    end_ms: int | None
    days: float
    starting_balance: float
    final_balance: float
    profit_abs: float
    profit_ratio: float
    market_change: float | None
    cagr: float | None
    sharpe: float | None
    sortino: float | None
    calmar: float | None
    max_drawdown_abs: float
    max_drawdown_ratio: float
    max_drawdown_peak_ms: int | None
    max_drawdown_trough_ms: int | None
    max_drawdown_recovery_ms: int | None
    trades: int
    open_trades: int
    wins: int
    draws: int
    losses: int
    win_rate: float | None
    gross_profit: float
    gross_loss: float
    profit_factor: float | None
    expectancy: float | None
    expectancy_ratio: float | None
    trades_per_day: float | None
    avg_duration_ms: float | None
    avg_winner_duration_ms: float | None
    avg_loser_duration_ms: float | None
    best_trade: TradeExtreme | None
    worst_trade: TradeExtreme | None
    best_pair: GroupStats | None
    worst_pair: GroupStats | None
    total: GroupStats
    per_pair: tuple[GroupStats, ...]
    exit_reasons: tuple[GroupStats, ...]
    enter_tags: tuple[GroupStats, ...]

    def to_dict(self) -> dict[str, Any]:
        """Return the metrics as plain JSON-ready data (tables as lists of dicts)."""
        out = asdict(self)
        for name in ("per_pair", "exit_reasons", "enter_tags"):
            out[name] = list(out[name])
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Metrics:
        """Rebuild metrics from :meth:`to_dict` output (for example read back from a JSON export)."""
        values = dict(data)

        def group(item: Mapping[str, Any] | None) -> GroupStats | None:
            return None if item is None else GroupStats(**item)

        def extreme(item: Mapping[str, Any] | None) -> TradeExtreme | None:
            return None if item is None else TradeExtreme(**item)

        converters: dict[str, Callable[[Any], Any]] = {
            "best_trade": extreme,
            "worst_trade": extreme,
            "best_pair": group,
            "worst_pair": group,
            "total": lambda item: GroupStats(**item),
            "per_pair": lambda items: tuple(GroupStats(**i) for i in items),
            "exit_reasons": lambda items: tuple(GroupStats(**i) for i in items),
            "enter_tags": lambda items: tuple(GroupStats(**i) for i in items),
        }
        known = {f.name for f in fields(cls)}
        kwargs = {k: converters.get(k, _identity)(v) for k, v in values.items() if k in known}
        return cls(**kwargs)


def _identity(value: Any) -> Any:
    return value


def compute_metrics(
    trades: Sequence[TradeLike],
    equity_ms: npt.ArrayLike,
    equity: npt.ArrayLike,
    starting_balance: float,
    timeframe_ms: int,
    market_change: float | None = None,
    *,
    pairs: Sequence[str] = (),
) -> Metrics:
    """Compute the summary metrics of a run.

    Parameters
    ----------
    trades
        All trades of the run, open ones included (they only count in ``open_trades``).
    equity_ms, equity
        The equity curve: epoch milliseconds (ascending) and account value at those times. May be empty.
    starting_balance
        Account value before the first point.
    timeframe_ms
        Candle length; each curve point stands for one candle.
    market_change
        Buy-and-hold change of the traded market over the run, see :func:`market_change`.
    pairs
        Pairs to list in the per-pair table even without trades.
    """
    times = np.asarray(equity_ms, dtype=np.int64)
    values = np.asarray(equity, dtype=np.float64)
    if times.shape != values.shape or times.ndim != 1:
        raise ValueError(f"equity_ms and equity must be 1-D arrays of one length, got {times.shape}, {values.shape}")
    start = float(starting_balance)
    final = float(values[-1]) if len(values) else start
    days = (int(times[-1]) - int(times[0]) + timeframe_ms) / DAY_MS if len(times) else 0.0

    closed = [t for t in trades if not t.is_open]
    open_count = len(trades) - len(closed)
    total = _group("TOTAL", closed, start)
    profits = np.array([t.profit_abs for t in closed], dtype=np.float64)
    win_mask = profits > 0
    loss_mask = profits < 0
    gross_profit = float(profits[win_mask].sum())
    gross_loss = float(-profits[loss_mask].sum())

    daily = daily_values(times, values, start)[1]
    prev = daily[:-1]
    returns = np.divide(np.diff(daily), prev, out=np.full(len(prev), np.nan), where=prev > 0)
    cagr = _cagr(start, final, days)
    dd = _max_drawdown(times, values, start, timeframe_ms)

    per_pair = _groups(closed, start, key=lambda t: t.pair, always=pairs)
    traded_pairs = [g for g in per_pair if g.trades]
    best_trade = max(closed, key=lambda t: t.profit_ratio, default=None)
    worst_trade = min(closed, key=lambda t: t.profit_ratio, default=None)

    return Metrics(
        start_ms=int(times[0]) if len(times) else None,
        end_ms=int(times[-1]) if len(times) else None,
        days=days,
        starting_balance=start,
        final_balance=final,
        profit_abs=final - start,
        profit_ratio=(final - start) / start if start else 0.0,
        market_change=market_change,
        cagr=cagr,
        sharpe=_sharpe(returns),
        sortino=_sortino(returns),
        calmar=cagr / dd.ratio if cagr is not None and dd.ratio > 0 else None,
        max_drawdown_abs=dd.abs,
        max_drawdown_ratio=dd.ratio,
        max_drawdown_peak_ms=dd.peak_ms,
        max_drawdown_trough_ms=dd.trough_ms,
        max_drawdown_recovery_ms=dd.recovery_ms,
        trades=len(closed),
        open_trades=open_count,
        wins=total.wins,
        draws=total.draws,
        losses=total.losses,
        win_rate=total.win_rate,
        gross_profit=gross_profit,
        gross_loss=gross_loss,
        profit_factor=gross_profit / gross_loss if gross_loss > 0 else None,
        expectancy=float(profits.mean()) if len(profits) else None,
        expectancy_ratio=_expectancy_ratio(profits),
        trades_per_day=len(closed) / days if days > 0 else None,
        avg_duration_ms=total.avg_duration_ms,
        avg_winner_duration_ms=_mean_duration([t for t in closed if t.profit_abs > 0]),
        avg_loser_duration_ms=_mean_duration([t for t in closed if t.profit_abs < 0]),
        best_trade=_extreme(best_trade),
        worst_trade=_extreme(worst_trade),
        best_pair=max(traded_pairs, key=lambda g: g.total_profit_abs, default=None),
        worst_pair=min(traded_pairs, key=lambda g: g.total_profit_abs, default=None),
        total=total,
        per_pair=per_pair,
        exit_reasons=_groups(closed, start, key=lambda t: t.exit_reason),
        enter_tags=_groups(closed, start, key=lambda t: t.enter_tag),
    )


def daily_values(
    equity_ms: npt.ArrayLike, equity: npt.ArrayLike, starting_balance: float
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]:
    """Return the equity curve at UTC day ends: (day start ms, value), led by the starting balance.

    The first row is the day before the first point holding ``starting_balance``; then one row per calendar
    day up to the last point, with the day's last value (days without points repeat the previous value).
    """
    times = np.asarray(equity_ms, dtype=np.int64)
    values = np.asarray(equity, dtype=np.float64)
    if not len(times):
        return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.float64)
    day = times // DAY_MS
    first, last = int(day[0]), int(day[-1])
    calendar = np.arange(first - 1, last + 1, dtype=np.int64)
    # Index of the last point at or before each day's end; -1 (before the curve) means the starting balance.
    idx = np.searchsorted(day, calendar, side="right") - 1
    out = np.where(idx >= 0, values[np.clip(idx, 0, None)], starting_balance)
    return calendar * DAY_MS, out.astype(np.float64)


def drawdown(equity: npt.ArrayLike, starting_balance: float | None = None) -> npt.NDArray[np.float64]:
    """Return the relative drawdown (0 at a peak, 0.1 = 10 % below it) at each point of an equity curve."""
    values = np.asarray(equity, dtype=np.float64)
    peaks = np.maximum.accumulate(values) if len(values) else values
    if starting_balance is not None and len(values):
        peaks = np.maximum(peaks, starting_balance)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where(peaks > 0, 1.0 - values / peaks, 0.0)
    return np.asarray(out, dtype=np.float64)


def market_change(closes: Mapping[str, npt.ArrayLike]) -> float | None:
    """Return the buy-and-hold change averaged over pairs: mean of last close / first close − 1.

    NaN closes are skipped; pairs without two valid closes are left out. None when no pair is left.
    """
    changes: list[float] = []
    for series in closes.values():
        arr = np.asarray(series, dtype=np.float64)
        arr = arr[np.isfinite(arr)]
        if len(arr) >= 2 and arr[0] > 0:
            changes.append(float(arr[-1] / arr[0] - 1.0))
    return float(np.mean(changes)) if changes else None


# -- internals --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Drawdown:
    abs: float
    ratio: float
    peak_ms: int | None
    trough_ms: int | None
    recovery_ms: int | None


def _max_drawdown(times: np.ndarray, values: np.ndarray, start: float, timeframe_ms: int) -> _Drawdown:
    if not len(values):
        return _Drawdown(0.0, 0.0, None, None, None)
    t = np.concatenate(([times[0] - timeframe_ms], times))
    v = np.concatenate(([start], values))
    peaks = np.maximum.accumulate(v)
    with np.errstate(divide="ignore", invalid="ignore"):
        rel = np.where(peaks > 0, 1.0 - v / peaks, 0.0)
    trough = int(np.argmax(rel))
    if rel[trough] <= 0:
        return _Drawdown(0.0, 0.0, None, None, None)
    peak = int(np.argmax(v[: trough + 1] == peaks[trough]))  # first time the running peak was reached
    back = np.flatnonzero(v[trough + 1 :] >= peaks[trough])
    recovery = int(t[trough + 1 + back[0]]) if len(back) else None
    return _Drawdown(float(peaks[trough] - v[trough]), float(rel[trough]), int(t[peak]), int(t[trough]), recovery)


def _cagr(start: float, final: float, days: float) -> float | None:
    if start <= 0 or days <= 0:
        return None
    if final <= 0:
        return -1.0
    try:
        return math.exp(math.log(final / start) * DAYS_PER_YEAR / days) - 1.0
    except OverflowError:  # a short, lucky run annualises beyond a float
        return None


def _sharpe(returns: np.ndarray) -> float | None:
    if len(returns) < 2 or not np.all(np.isfinite(returns)):
        return None
    std = float(np.std(returns, ddof=1))
    if std <= 1e-15:
        return None
    return float(np.mean(returns)) / std * math.sqrt(DAYS_PER_YEAR)


def _sortino(returns: np.ndarray) -> float | None:
    if len(returns) < 2 or not np.all(np.isfinite(returns)):
        return None
    downside = math.sqrt(float(np.mean(np.minimum(returns, 0.0) ** 2)))
    if downside <= 1e-15:
        return None
    return float(np.mean(returns)) / downside * math.sqrt(DAYS_PER_YEAR)


def _expectancy_ratio(profits: np.ndarray) -> float | None:
    wins, losses = profits[profits > 0], profits[profits < 0]
    if not len(profits) or not len(losses):
        return None
    avg_win = float(wins.mean()) if len(wins) else 0.0
    avg_loss = float(-losses.mean())
    return (1.0 + avg_win / avg_loss) * (len(wins) / len(profits)) - 1.0


def _mean_duration(trades: Iterable[TradeLike]) -> float | None:
    durations = [t.close_ms - t.open_ms for t in trades if t.close_ms is not None]
    return float(np.mean(durations)) if durations else None


def _extreme(trade: TradeLike | None) -> TradeExtreme | None:
    if trade is None:
        return None
    return TradeExtreme(trade.pair, trade.open_ms, trade.close_ms, float(trade.profit_ratio), float(trade.profit_abs))


def _group(key: str, trades: Sequence[TradeLike], start: float) -> GroupStats:
    profits = np.array([t.profit_abs for t in trades], dtype=np.float64)
    ratios = np.array([t.profit_ratio for t in trades], dtype=np.float64)
    n = len(trades)
    wins, losses = int((profits > 0).sum()), int((profits < 0).sum())
    total_abs = float(profits.sum())
    return GroupStats(
        key=key,
        trades=n,
        avg_profit_ratio=float(ratios.mean()) if n else None,
        total_profit_abs=total_abs,
        total_profit_ratio=total_abs / start if start else 0.0,
        wins=wins,
        draws=n - wins - losses,
        losses=losses,
        win_rate=wins / n if n else None,
        avg_duration_ms=_mean_duration(trades),
    )


def _groups(
    trades: Sequence[TradeLike],
    start: float,
    *,
    key: Callable[[TradeLike], str],
    always: Sequence[str] = (),
) -> tuple[GroupStats, ...]:
    """Group closed trades by ``key``, most profitable group first (ties by name)."""
    buckets: dict[str, list[TradeLike]] = {k: [] for k in always}
    for trade in trades:
        buckets.setdefault(key(trade), []).append(trade)
    stats = [_group(k, members, start) for k, members in buckets.items()]
    return tuple(sorted(stats, key=lambda g: (-g.total_profit_abs, g.key)))
