"""HTML report: one offline file with plotly inline, every pair, the trade counts, well-formed markup."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd

from tradefleet.adapters.reports import write_html
from tradefleet.core.metrics import Metrics
from tradefleet.engine.backtest.types import BacktestResult

VOID = {"meta", "link", "br", "hr", "img", "input", "col", "area", "base", "source", "wbr"}


class _Checker(HTMLParser):
    """Collect script sources, text and tag-nesting errors."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.errors: list[str] = []
        self.script_srcs: list[str] = []
        self.inline_script_chars = 0
        self.text: list[str] = []
        self.doctype = ""

    def handle_decl(self, decl: str) -> None:
        self.doctype = decl

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "script":
            self.script_srcs += [v or "" for k, v in attrs if k == "src"]
        if tag not in VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes {self.stack[-1:] or 'nothing'}")
            return
        self.stack.pop()

    def handle_data(self, data: str) -> None:
        if self.stack and self.stack[-1] == "script":
            self.inline_script_chars += len(data)
        else:
            self.text.append(data)


def _parse(path: Path) -> tuple[str, _Checker]:
    page = path.read_text(encoding="utf-8")
    checker = _Checker()
    checker.feed(page)
    checker.close()
    return page, checker


def test_report_is_well_formed_html_with_plotly_inline_and_no_remote_scripts(
    tmp_path: Path, result: BacktestResult, metrics: Metrics, candles: dict[str, pd.DataFrame]
) -> None:
    page, checker = _parse(write_html(tmp_path / "report.html", result, metrics, candles))
    assert checker.doctype.lower() == "doctype html"
    assert checker.errors == []
    assert checker.stack == []
    assert checker.script_srcs == []  # nothing is fetched: no CDN, no local side files
    assert not re.search(r"<script[^>]+src\s*=", page)
    assert re.search(r"plotly\.js v\d+\.\d+\.\d+", page)  # the library's own banner
    assert checker.inline_script_chars > 3_000_000  # the whole plotly.js bundle is in the page
    assert "Plotly.newPlot" in page


def test_report_names_every_pair_with_its_trade_count(
    tmp_path: Path, result: BacktestResult, metrics: Metrics, candles: dict[str, pd.DataFrame]
) -> None:
    _, checker = _parse(write_html(tmp_path / "report.html", result, metrics, candles))
    text = " ".join(checker.text)
    assert "BTC/USDT — 2 trades" in text
    assert "ETH/USDT — 1 trade, 1 open at end" in text
    assert "SOL/USDT — 0 trades" in text
    assert "No candles given for this pair." in text  # SOL has no candles
    for number in ("1,011.20 USDT", "66.67%", "4.46", "11.58"):  # summary and pair tables
        assert number in text


def test_indicators_are_drawn_by_panel_and_missing_ones_reported(
    tmp_path: Path, result: BacktestResult, metrics: Metrics, candles: dict[str, pd.DataFrame]
) -> None:
    panels = {"main": ["sma_fast"], "RSI": ["rsi", "macd"]}
    page, checker = _parse(write_html(tmp_path / "report.html", result, metrics, candles, panels))
    assert '"name":"sma_fast"' in page
    assert '"name":"rsi"' in page
    assert "Not in the candles, not plotted: macd." in " ".join(checker.text)
    assert "2024-01-01T00:00" in page  # candle dates are written as UTC strings


def test_long_candle_series_are_aggregated_and_the_report_says_so(
    tmp_path: Path, result: BacktestResult, metrics: Metrics, make_candles: Callable[..., pd.DataFrame]
) -> None:
    candles = {"BTC/USDT": make_candles(1_000, step_ms=60_000)}
    _, checker = _parse(write_html(tmp_path / "r.html", result, metrics, candles, max_points=300))
    text = " ".join(checker.text)
    assert "1,000 candles shown as 250 bars of 4 candles" in text
    assert "72 points shown as" not in text  # the equity curve fits
    assert checker.errors == []


def test_aggregated_bars_keep_the_extremes(
    tmp_path: Path, result: BacktestResult, metrics: Metrics, make_candles: Callable[..., pd.DataFrame]
) -> None:
    frame = make_candles(40)
    frame.loc[13, "high"] = 1e6  # inside the 4th bar of 4 candles
    result.trades = []
    page, _ = _parse(write_html(tmp_path / "r.html", result, metrics, {"BTC/USDT": frame}, max_points=10))
    assert "40 candles shown as 10 bars" in page
    # plotly writes numpy arrays as base64; decode the candlestick's "high" array and look for the spike
    figure = re.search(r'Plotly\.newPlot\(\s*"[^"]+",\s*(\[\{"close".*?\}\]),', page, re.S)
    assert figure is not None
    traces = json.loads(figure.group(1))
    high = traces[0]["high"]
    values = np.frombuffer(base64.b64decode(high["bdata"]), dtype=high["dtype"]) if isinstance(high, dict) else high
    assert len(values) == 10
    assert values[3] == 1e6


def test_empty_backtest_still_writes_a_report(tmp_path: Path, result: BacktestResult, metrics: Metrics) -> None:
    result.trades = []
    result.equity_ms = np.empty(0, dtype=np.int64)
    result.equity = np.empty(0)
    _, checker = _parse(write_html(tmp_path / "r.html", result, metrics, {}))
    assert checker.errors == []
    assert "No equity curve." in " ".join(checker.text)
