"""Backtest report as text tables, in the manner of Freqtrade's backtesting output.

The rows are built here once (:func:`summary_rows`, :func:`group_rows`) and shared with the HTML report, so
both show the same numbers formatted the same way.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from datetime import UTC, datetime

from rich import box
from rich.console import Console
from rich.table import Table

from tradefleet.core.metrics import GroupStats, Metrics
from tradefleet.engine.backtest.types import BacktestResult

__all__ = ["GROUP_HEADERS", "group_rows", "render_text", "summary_rows"]

GROUP_HEADERS = (
    "Trades",
    "Avg Profit %",
    "Tot Profit {quote}",
    "Tot Profit %",
    "Avg Duration",
    "Win  Draw  Loss  Win%",
)
NONE = "-"


def render_text(result: BacktestResult, metrics: Metrics, *, width: int = 120, ascii_only: bool = False) -> str:
    """Return the report: per-pair, entry-tag and exit-reason tables, then the summary metrics.

    ``ascii_only`` draws the tables with ``+-|`` for terminals and logs without Unicode box drawing.
    """
    console = Console(record=True, width=width, file=io.StringIO(), color_system=None, soft_wrap=False)
    style = box.ASCII if ascii_only else box.SQUARE
    quote = result.config.quote_currency
    decimals = amount_decimals(metrics.starting_balance)

    console.print(f"BACKTESTING REPORT — {result.config.strategy} on {result.config.timeframe}", style="bold")
    for title, label, groups in (
        ("PAIR RESULTS", "Pair", metrics.per_pair),
        ("ENTER TAG STATS", "Enter Tag", metrics.enter_tags),
        ("EXIT REASON STATS", "Exit Reason", metrics.exit_reasons),
    ):
        table = Table(title=title, box=style, show_footer=True, title_justify="left")
        footer = group_rows([metrics.total], decimals)[0]
        headers = (label, *(h.format(quote=quote) for h in GROUP_HEADERS))
        for i, header in enumerate(headers):
            table.add_column(header, footer=footer[i], justify="left" if i == 0 else "right")
        for row in group_rows(groups, decimals):
            table.add_row(*row)
        console.print(table)

    summary = Table(title="SUMMARY METRICS", box=style, show_header=True, title_justify="left")
    summary.add_column("Metric")
    summary.add_column("Value")
    for name, value in summary_rows(result, metrics):
        summary.add_row(name, value)
    console.print(summary)
    # rich pads titles to the table width; trailing blanks only get in the way of logs and diffs
    return "\n".join(line.rstrip() for line in console.export_text().splitlines()) + "\n"


def group_rows(groups: Sequence[GroupStats], decimals: int) -> list[list[str]]:
    """Return one row of strings per group: the key (empty entry tag as ``OTHER``), then :data:`GROUP_HEADERS`."""
    return [
        [
            g.key or "OTHER",
            str(g.trades),
            fmt_pct(g.avg_profit_ratio),
            fmt_amount(g.total_profit_abs, decimals),
            fmt_pct(g.total_profit_ratio),
            fmt_duration(g.avg_duration_ms),
            f"{g.wins:>4} {g.draws:>5} {g.losses:>5} {fmt_pct(g.win_rate, 1):>6}",
        ]
        for g in groups
    ]


def summary_rows(result: BacktestResult, metrics: Metrics) -> list[tuple[str, str]]:
    """Return (name, value) rows of the summary block."""
    m, cfg = metrics, result.config
    q = cfg.quote_currency
    d = amount_decimals(m.starting_balance)

    def money(value: float) -> str:
        return f"{fmt_amount(value, d)} {q}"

    best, worst = m.best_trade, m.worst_trade
    no_losses = m.profit_factor is None and m.gross_profit > 0
    profit_factor = "∞" if no_losses else fmt_num(m.profit_factor)
    expectancy = NONE if m.expectancy is None else f"{money(m.expectancy)} ({fmt_num(m.expectancy_ratio)})"
    return [
        ("Backtesting from", fmt_date(m.start_ms)),
        ("Backtesting to", fmt_date(m.end_ms)),
        ("Days", f"{m.days:.2f}"),
        ("Timeframe", cfg.timeframe),
        ("Pairs", str(len(cfg.pairs))),
        ("Engine", cfg.engine),
        ("Starting balance", money(m.starting_balance)),
        ("Final balance", money(m.final_balance)),
        ("Absolute profit", money(m.profit_abs)),
        ("Total profit %", fmt_pct(m.profit_ratio)),
        ("CAGR %", fmt_pct(m.cagr)),
        ("Sharpe (daily, annualised)", fmt_num(m.sharpe)),
        ("Sortino (daily, annualised)", fmt_num(m.sortino)),
        ("Calmar", fmt_num(m.calmar)),
        ("Profit factor", profit_factor),
        ("Expectancy (ratio)", expectancy),
        ("Trades", str(m.trades)),
        ("Trades per day", fmt_num(m.trades_per_day)),
        ("Open trades at end", str(m.open_trades)),
        ("Win / Draw / Loss", f"{m.wins} / {m.draws} / {m.losses}"),
        ("Win rate", fmt_pct(m.win_rate)),
        ("Avg duration", fmt_duration(m.avg_duration_ms)),
        ("Avg duration winners", fmt_duration(m.avg_winner_duration_ms)),
        ("Avg duration losers", fmt_duration(m.avg_loser_duration_ms)),
        ("Best pair", _pair(m.best_pair, d, q)),
        ("Worst pair", _pair(m.worst_pair, d, q)),
        ("Best trade", NONE if best is None else f"{best.pair} {fmt_pct(best.profit_ratio)}"),
        ("Worst trade", NONE if worst is None else f"{worst.pair} {fmt_pct(worst.profit_ratio)}"),
        ("Max drawdown", f"{fmt_pct(m.max_drawdown_ratio)} ({money(m.max_drawdown_abs)})"),
        ("Drawdown peak", fmt_date(m.max_drawdown_peak_ms)),
        ("Drawdown trough", fmt_date(m.max_drawdown_trough_ms)),
        ("Drawdown recovered", _recovery(m)),
        ("Market change", fmt_pct(m.market_change)),
        ("Candles simulated", f"{result.candles:,} in {result.elapsed_s:.2f} s"),
    ]


def _pair(group: GroupStats | None, decimals: int, quote: str) -> str:
    if group is None:
        return NONE
    return f"{group.key} {fmt_amount(group.total_profit_abs, decimals)} {quote} ({fmt_pct(group.total_profit_ratio)})"


def _recovery(m: Metrics) -> str:
    if m.max_drawdown_peak_ms is None:
        return NONE
    return fmt_date(m.max_drawdown_recovery_ms) if m.max_drawdown_recovery_ms is not None else "not recovered"


# -- formatting --------------------------------------------------------------------------------------------


def amount_decimals(balance: float) -> int:
    """Return decimals that show about four significant digits of amounts near ``balance`` (2 to 8)."""
    if balance <= 0 or not math.isfinite(balance):
        return 8
    return max(2, min(8, 4 - math.floor(math.log10(balance))))


def fmt_amount(value: float, decimals: int) -> str:
    return f"{value:,.{decimals}f}"


def fmt_pct(ratio: float | None, decimals: int = 2) -> str:
    return NONE if ratio is None else f"{ratio * 100:,.{decimals}f}%"


def fmt_num(value: float | None, decimals: int = 2) -> str:
    return NONE if value is None else f"{value:,.{decimals}f}"


def fmt_date(ms: int | None) -> str:
    return NONE if ms is None else datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M:%S")


def fmt_duration(ms: float | None) -> str:
    """Format a duration as ``1d 02:30:00`` (days only when there are any)."""
    if ms is None:
        return NONE
    seconds = round(ms / 1000)
    days, rest = divmod(seconds, 86_400)
    hours, rest = divmod(rest, 3_600)
    minutes, secs = divmod(rest, 60)
    clock = f"{hours:02d}:{minutes:02d}:{secs:02d}"
    return f"{days}d {clock}" if days else clock
