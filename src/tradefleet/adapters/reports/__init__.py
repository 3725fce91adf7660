"""Backtest reports: text tables for the terminal, a self-contained HTML page, and a JSON export.

``write_html`` needs plotly and is imported on first use, so the text and JSON reports work without it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tradefleet.adapters.reports.export import (
    FORMAT,
    backtest_metrics,
    read_json,
    result_from_json,
    to_json,
    write_json,
)
from tradefleet.adapters.reports.text import render_text

if TYPE_CHECKING:
    from tradefleet.adapters.reports.html import write_html

__all__ = [
    "FORMAT",
    "backtest_metrics",
    "read_json",
    "render_text",
    "result_from_json",
    "to_json",
    "write_html",
    "write_json",
]


def __getattr__(name: str) -> Any:
    if name == "write_html":
        from tradefleet.adapters.reports.html import write_html

        return write_html
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
