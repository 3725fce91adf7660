"""Text report: the Freqtrade-style tables carry the numbers of the metrics."""

from __future__ import annotations

import numpy as np

from tradefleet.adapters.reports import backtest_metrics, render_text
from tradefleet.core.metrics import Metrics
from tradefleet.engine.backtest.types import BacktestResult, BacktestTrade

T0 = 1_704_067_200_000


def _line(report: str, start: str) -> str:
    return next(line for line in report.splitlines() if line.strip("│|+ ").startswith(start))


def test_report_has_the_four_sections_in_order(result: BacktestResult, metrics: Metrics) -> None:
    report = render_text(result, metrics)
    titles = ["PAIR RESULTS", "ENTER TAG STATS", "EXIT REASON STATS", "SUMMARY METRICS"]
    assert [report.index(t) for t in titles] == sorted(report.index(t) for t in titles)
    assert "SmaCross" in report


def test_pair_table_rows_show_trades_profits_and_win_draw_loss(result: BacktestResult, metrics: Metrics) -> None:
    report = render_text(result, metrics)
    btc = _line(report, "BTC/USDT")
    # BTC: +9.79 and +1.788 USDT on 1000 → 11.58 USDT, 1.16 % of the balance; mean of 9.78 % and 1.70 %
    for cell in ("2", "5.74%", "11.58", "1.16%", "08:00:00", "100.0%"):
        assert cell in btc
    eth = _line(report, "ETH/USDT")
    for cell in ("-5.19%", "-2.60", "-0.26%", "04:00:00", "0.0%"):
        assert cell in eth
    assert "SOL/USDT" in report  # configured pair without trades is listed
    total = _line(report, "TOTAL")
    for cell in ("3", "8.98", "66.7%"):
        assert cell in total


def test_exit_reason_and_entry_tag_tables(result: BacktestResult, metrics: Metrics) -> None:
    report = render_text(result, metrics)
    assert "9.78%" in _line(report, "roi")
    assert "-2.60" in _line(report, "stop_loss")
    assert "1.79" in _line(report, "exit_signal")
    assert "7.19" in _line(report, "golden")
    assert "1.79" in _line(report, "OTHER")  # trades without an entry tag


def test_summary_block_shows_the_headline_metrics(result: BacktestResult, metrics: Metrics) -> None:
    report = render_text(result, metrics)
    expected = {
        "Starting balance": "1,000.00 USDT",
        "Final balance": "1,011.20 USDT",
        "Absolute profit": "11.20 USDT",
        "Total profit %": "1.12%",
        "Sharpe": f"{metrics.sharpe:.2f}",
        "Sortino": f"{metrics.sortino:.2f}",
        "Profit factor": "4.46",
        "Win rate": "66.67%",
        "Open trades at end": "1",
        "Max drawdown": "0.48% (4.80 USDT)",
        "Drawdown peak": "2024-01-01 23:00:00",
        "Drawdown recovered": "2024-01-03 18:00:00",
        "Market change": "4.25%",
    }
    for name, value in expected.items():
        assert value in _line(report, name), name


def test_profit_factor_without_losses_shows_infinity(result: BacktestResult) -> None:
    result.trades = [t for t in result.trades if t.profit_abs > 0]
    report = render_text(result, backtest_metrics(result))
    assert "∞" in _line(report, "Profit factor")


def test_ascii_report_uses_no_box_drawing_and_no_trailing_blanks(result: BacktestResult, metrics: Metrics) -> None:
    report = render_text(result, metrics, ascii_only=True, width=100)
    assert not any(ch in report for ch in "┌│─")
    assert all(line == line.rstrip() for line in report.splitlines())


def test_empty_backtest_renders_dashes(result: BacktestResult) -> None:
    result.trades = []
    result.equity_ms = np.empty(0, dtype=np.int64)
    result.equity = np.empty(0)
    report = render_text(result, backtest_metrics(result))
    assert "-" in _line(report, "Sharpe")
    assert "0 / 0 / 0" in _line(report, "Win / Draw / Loss")


def test_durations_over_a_day_show_days(result: BacktestResult) -> None:
    result.trades = [
        BacktestTrade("BTC/USDT", T0, T0 + 26 * 3_600_000 + 90_000, 100.0, 101.0, 1.0, 0.0, 0.0, "roi", "")
    ]
    report = render_text(result, backtest_metrics(result))
    assert "1d 02:01:30" in _line(report, "BTC/USDT")
