"""Backtest report as one self-contained HTML file with interactive plotly charts.

The plotly.js library is embedded in the page (no CDN), so the file opens offline and can be mailed or
archived as is. Charts: equity and drawdown, monthly returns, and per pair the candles with indicator lines
and entry/exit markers. Long series are aggregated to at most ``max_points`` points per chart (OHLC bars of
consecutive candles keep their open, high, low and close); the report says so where it happens.

Dates are UTC and passed to plotly as ISO strings: plotly.js reads numeric milliseconds in the viewer's time
zone.
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import plotly.io as pio
import plotly.offline
from plotly.subplots import make_subplots

from tradefleet.adapters.reports.text import GROUP_HEADERS, amount_decimals, fmt_pct, group_rows, summary_rows
from tradefleet.core.candles import dates_ms
from tradefleet.core.metrics import GroupStats, Metrics, daily_values, drawdown
from tradefleet.engine.backtest.types import BacktestResult, BacktestTrade

__all__ = ["MAX_POINTS", "render_html", "write_html"]

MAX_POINTS = 20_000
MAIN_PANEL = "main"
_PLOT_CONFIG = {"displaylogo": False, "responsive": True, "scrollZoom": True}
_GREEN, _RED, _BLUE = "#26a69a", "#ef5350", "#2962ff"

_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 2rem auto; max-width: 1400px;
       padding: 0 1rem; color: #1f2328; }
h1 { margin-bottom: .2rem; } h2 { margin-top: 2.5rem; border-bottom: 1px solid #d0d7de; }
.meta, .note { color: #59636e; }
table { border-collapse: collapse; margin: 1rem 0; font-variant-numeric: tabular-nums; font-size: .9rem; }
th, td { border: 1px solid #d0d7de; padding: .3rem .6rem; text-align: right; white-space: nowrap; }
th:first-child, td:first-child { text-align: left; }
thead th, tfoot td { background: #f6f8fa; font-weight: 600; }
.grid { display: flex; flex-wrap: wrap; gap: 0 2rem; align-items: flex-start; }
"""


def write_html(
    path: str | Path,
    result: BacktestResult,
    metrics: Metrics,
    candles: Mapping[str, pd.DataFrame],
    indicators: Mapping[str, Sequence[str]] | None = None,
    *,
    max_points: int = MAX_POINTS,
) -> Path:
    """Write the report to ``path`` (parents created) and return the path; see :func:`render_html`."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(render_html(result, metrics, candles, indicators, max_points=max_points), encoding="utf-8")
    return target


def render_html(
    result: BacktestResult,
    metrics: Metrics,
    candles: Mapping[str, pd.DataFrame],
    indicators: Mapping[str, Sequence[str]] | None = None,
    *,
    max_points: int = MAX_POINTS,
) -> str:
    """Return the report page.

    Parameters
    ----------
    candles
        Candle frames per pair (``date`` column, OHLC, plus any indicator columns), as the strategy saw them.
    indicators
        Columns to plot, by panel: the ``"main"`` panel draws over the price, every other key gets its own
        panel under it, e.g. ``{"main": ["sma_fast", "sma_slow"], "RSI": ["rsi"]}``.
    max_points
        Most points per chart before consecutive candles are aggregated.
    """
    cfg = result.config
    title = f"Backtest {cfg.strategy} · {cfg.timeframe} · {len(cfg.pairs)} pairs"
    pairs = list(dict.fromkeys([*cfg.pairs, *candles]))
    parts = [
        f"<h1>{_e(title)}</h1>",
        f'<p class="meta">{_e(_range_text(metrics))} · {_e(cfg.quote_currency)} · engine {_e(cfg.engine)}'
        f"{' · data ' + _e(result.data_fingerprint[:12]) if result.data_fingerprint else ''}</p>",
        "<h2>Summary</h2>",
        _summary_tables(result, metrics),
        "<h2>Equity and drawdown</h2>",
        *_equity_section(result, metrics, max_points),
        "<h2>Monthly returns</h2>",
        _figure(_monthly_figure(result, metrics)),
        "<h2>Pairs</h2>",
    ]
    for pair in pairs:
        parts.extend(_pair_section(pair, result, candles.get(pair), indicators or {}, max_points))
    body = "\n".join(parts)
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{_e(title)}</title>\n<style>{_CSS}</style>\n"
        "<script>window.PlotlyConfig = {MathJaxConfig: 'local'};</script>\n"
        f"<script>{plotly.offline.get_plotlyjs()}</script>\n"
        f"</head>\n<body>\n{body}\n</body>\n</html>\n"
    )


# -- sections ----------------------------------------------------------------------------------------------


def _summary_tables(result: BacktestResult, metrics: Metrics) -> str:
    quote = result.config.quote_currency
    decimals = amount_decimals(metrics.starting_balance)
    summary = "".join(f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>" for k, v in summary_rows(result, metrics))
    groups = [
        _group_table("Pair", metrics.per_pair, metrics.total, quote, decimals),
        _group_table("Enter tag", metrics.enter_tags, metrics.total, quote, decimals),
        _group_table("Exit reason", metrics.exit_reasons, metrics.total, quote, decimals),
    ]
    return f'<div class="grid"><table><tbody>{summary}</tbody></table><div>{"".join(groups)}</div></div>'


def _group_table(label: str, groups: Sequence[GroupStats], total: GroupStats, quote: str, decimals: int) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in (label, *(h.format(quote=quote) for h in GROUP_HEADERS)))
    rows = "".join("<tr>" + "".join(f"<td>{_e(c)}</td>" for c in row) + "</tr>" for row in group_rows(groups, decimals))
    foot = "<tr>" + "".join(f"<td>{_e(c)}</td>" for c in group_rows([total], decimals)[0]) + "</tr>"
    return f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody><tfoot>{foot}</tfoot></table>"


def _equity_section(result: BacktestResult, metrics: Metrics, max_points: int) -> list[str]:
    ms = np.asarray(result.equity_ms, dtype=np.int64)
    values = np.asarray(result.equity, dtype=np.float64)
    if not len(ms):
        return ['<p class="note">No equity curve.</p>']
    dd = drawdown(values, metrics.starting_balance)
    notes = []
    factor = _factor(len(ms), max_points)
    if factor > 1:
        starts = np.arange(0, len(ms), factor)
        ends = np.append(starts[1:], len(ms)) - 1
        notes.append(
            f'<p class="note">{len(ms):,} points shown as {len(starts):,}: the balance at the end of each run '
            f"of {factor} points and the deepest drawdown within it.</p>"
        )
        ms, values, dd = ms[ends], values[ends], np.maximum.reduceat(dd, starts)
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, row_heights=[0.7, 0.3], vertical_spacing=0.04)
    x = _iso(ms)
    fig.add_trace(go.Scatter(x=x, y=values, name="Balance", line={"color": _BLUE, "width": 1.5}), row=1, col=1)
    fig.add_trace(
        go.Scatter(x=x, y=-dd * 100, name="Drawdown %", fill="tozeroy", line={"color": _RED, "width": 1}),
        row=2,
        col=1,
    )
    fig.update_yaxes(title_text=result.config.quote_currency, row=1, col=1)
    fig.update_yaxes(title_text="Drawdown %", row=2, col=1)
    fig.update_layout(height=560, hovermode="x unified", showlegend=False, margin={"t": 30, "b": 30})
    return [*notes, _figure(fig)]


def _monthly_figure(result: BacktestResult, metrics: Metrics) -> go.Figure:
    days, values = daily_values(result.equity_ms, result.equity, metrics.starting_balance)
    fig = go.Figure()
    if len(days) > 1:
        months = days[1:].astype("datetime64[ms]").astype("datetime64[M]")
        last = np.flatnonzero(np.append(months[1:] != months[:-1], True))  # last day of each month
        month_values = values[1:][last]
        prev = np.concatenate(([metrics.starting_balance], month_values[:-1]))
        returns = np.divide(month_values, prev, out=np.zeros_like(month_values), where=prev > 0) - 1.0
        returns[prev <= 0] = 0.0
        labels = np.datetime_as_string(months[last], unit="M").tolist()
        fig.add_trace(
            go.Bar(
                x=labels,
                y=returns * 100,
                marker_color=[_GREEN if r >= 0 else _RED for r in returns],
                text=[fmt_pct(float(r)) for r in returns],
                hovertemplate="%{x}: %{text}<extra></extra>",
            )
        )
    fig.update_xaxes(type="category")
    fig.update_yaxes(title_text="Return %")
    fig.update_layout(height=320, showlegend=False, margin={"t": 20, "b": 30})
    return fig


def _pair_section(
    pair: str,
    result: BacktestResult,
    frame: pd.DataFrame | None,
    indicators: Mapping[str, Sequence[str]],
    max_points: int,
) -> list[str]:
    trades = [t for t in result.trades if t.pair == pair]
    closed = sum(not t.is_open for t in trades)
    opened = len(trades) - closed
    heading = f"{pair} — {closed} trade{'s' if closed != 1 else ''}" + (f", {opened} open at end" if opened else "")
    out = [f'<h3 id="{_e(_anchor(pair))}">{_e(heading)}</h3>']
    if frame is None or frame.empty:
        return [*out, '<p class="note">No candles given for this pair.</p>']

    ms = dates_ms(frame["date"])
    panels = {name: [c for c in cols if c in frame.columns] for name, cols in indicators.items()}
    missing = sorted({c for cols in indicators.values() for c in cols} - set(frame.columns))
    columns = {c: frame[c].to_numpy(dtype=np.float64) for cols in panels.values() for c in cols}
    ohlc = {c: frame[c].to_numpy(dtype=np.float64) for c in ("open", "high", "low", "close")}
    factor = _factor(len(ms), max_points)
    if factor > 1:
        starts = np.arange(0, len(ms), factor)
        ends = np.append(starts[1:], len(ms)) - 1
        out.append(
            f'<p class="note">{len(ms):,} candles shown as {len(starts):,} bars of {factor} candles '
            "(first open, highest high, lowest low, last close); indicators at each bar's last candle.</p>"
        )
        ohlc = {
            "open": ohlc["open"][starts],
            "high": np.maximum.reduceat(ohlc["high"], starts),
            "low": np.minimum.reduceat(ohlc["low"], starts),
            "close": ohlc["close"][ends],
        }
        columns = {c: v[ends] for c, v in columns.items()}
        ms = ms[starts]
    if missing:
        out.append(f'<p class="note">Not in the candles, not plotted: {_e(", ".join(missing))}.</p>')

    sub = [name for name in panels if name != MAIN_PANEL]
    rows = 1 + len(sub)
    heights = [0.7, *[0.3 / len(sub)] * len(sub)] if sub else [1.0]
    fig = make_subplots(rows=rows, cols=1, shared_xaxes=True, row_heights=heights, vertical_spacing=0.03)
    x = _iso(ms)
    fig.add_trace(
        go.Candlestick(
            x=x,
            open=ohlc["open"],
            high=ohlc["high"],
            low=ohlc["low"],
            close=ohlc["close"],
            name=pair,
            increasing_line_color=_GREEN,
            decreasing_line_color=_RED,
        ),
        row=1,
        col=1,
    )
    for row, name in [(1, MAIN_PANEL), *((i + 2, n) for i, n in enumerate(sub))]:
        for col in panels.get(name, []):
            fig.add_trace(go.Scatter(x=x, y=columns[col], name=col, mode="lines", line={"width": 1}), row=row, col=1)
        if row > 1:
            fig.update_yaxes(title_text=name, row=row, col=1)
    for trace in _trade_markers(trades):
        fig.add_trace(trace, row=1, col=1)
    fig.update_xaxes(rangeslider_visible=False)
    fig.update_layout(height=520 + 180 * len(sub), hovermode="x", margin={"t": 30, "b": 30}, legend_orientation="h")
    return [*out, _figure(fig)]


def _trade_markers(trades: Sequence[BacktestTrade]) -> list[go.Scatter]:
    if not trades:
        return []
    entries = go.Scatter(
        x=_iso(np.array([t.open_ms for t in trades], dtype=np.int64)),
        y=[t.open_rate for t in trades],
        mode="markers",
        name="Entry",
        marker={"symbol": "triangle-up", "size": 10, "color": _BLUE, "line": {"width": 1, "color": "white"}},
        text=[f"enter {t.enter_tag}".strip() for t in trades],
        hovertemplate="%{text} @ %{y}<extra></extra>",
    )
    exits = [t for t in trades if t.close_ms is not None and t.close_rate is not None]
    markers = [entries]
    if exits:
        markers.append(
            go.Scatter(
                x=_iso(np.array([t.close_ms for t in exits], dtype=np.int64)),
                y=[t.close_rate for t in exits],
                mode="markers",
                name="Exit",
                marker={
                    "symbol": "triangle-down",
                    "size": 10,
                    "color": [_GREEN if t.profit_abs > 0 else _RED for t in exits],
                    "line": {"width": 1, "color": "white"},
                },
                text=[f"{t.exit_reason} {fmt_pct(t.profit_ratio)}" for t in exits],
                hovertemplate="%{text} @ %{y}<extra></extra>",
            )
        )
    return markers


# -- helpers -----------------------------------------------------------------------------------------------


def _figure(fig: go.Figure) -> str:
    fig.update_layout(template="plotly_white")
    return str(pio.to_html(fig, include_plotlyjs=False, full_html=False, config=_PLOT_CONFIG))


def _factor(n: int, max_points: int) -> int:
    return max(1, math.ceil(n / max(1, max_points)))


def _iso(ms: np.ndarray) -> list[str]:
    """Return UTC ISO strings, to the minute when that loses nothing (every date is repeated per trace)."""
    ms = np.asarray(ms, dtype=np.int64)
    unit: Literal["m", "s", "ms"] = "m" if not np.any(ms % 60_000) else "s" if not np.any(ms % 1000) else "ms"
    strings: list[str] = np.datetime_as_string(ms.astype("datetime64[ms]"), unit=unit).tolist()
    return strings


def _range_text(metrics: Metrics) -> str:
    if metrics.start_ms is None or metrics.end_ms is None:
        return "no data"
    first, last = _iso(np.array([metrics.start_ms, metrics.end_ms]))
    return f"{first.replace('T', ' ')} → {last.replace('T', ' ')} UTC ({metrics.days:.1f} days)"


def _anchor(pair: str) -> str:
    return "pair-" + "".join(ch if ch.isalnum() else "-" for ch in pair)


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)
