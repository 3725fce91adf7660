"""Detect strategies that read candles which have not closed yet.

Two checks, both pure:

- :func:`check_lookahead` (decisive) analyses the whole frame once, then, at several cut points, the
  frame without the candles after the cut and the frame with those candles scaled far up and far down. A
  causal strategy computes the same values up to the cut whatever comes after it; any column whose value
  at a row ``<= cut`` changes used the future.
- :func:`scan_source` (a hint) looks through the source of ``populate_*`` methods for the usual culprits:
  ``shift(-n)``, ``center=True``, whole-column statistics such as ``df["close"].max()`` and ``iloc[-n]``.
"""

from __future__ import annotations

import ast
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt
import pandas as pd

from tradefleet.core.errors import DataError
from tradefleet.core.strategy import IStrategy

REDUCTIONS = frozenset(
    {"mean", "max", "min", "std", "var", "sum", "median", "quantile", "idxmax", "idxmin", "rank", "nlargest",
     "nsmallest", "describe", "mode", "nunique"}
)  # fmt: skip
WINDOWS = frozenset({"rolling", "ewm", "expanding", "groupby", "resample"})
MIN_CUT_ROWS = 10
FUTURE_FACTORS = (4.0, 0.25)


@dataclass(frozen=True)
class LookAheadFinding:
    """One sign of look-ahead: a column that changed (``dynamic``) or a suspicious line (``static``)."""

    kind: Literal["dynamic", "static"]
    message: str
    column: str | None = None
    date: pd.Timestamp | None = None
    row: int | None = None
    line: int | None = None

    def describe(self) -> str:
        """Return the finding as one line."""
        return f"line {self.line}: {self.message}" if self.line is not None else self.message


def cut_points(n_rows: int, samples: int, *, start: int = 0) -> list[int]:
    """Return up to ``samples`` distinct row indexes between ``start`` and the second-to-last row."""
    lo = max(start, n_rows // 5, MIN_CUT_ROWS)
    hi = n_rows - 2
    if hi < lo or samples < 1:
        return []
    return sorted({round(float(v)) for v in np.linspace(lo, hi, samples)})


def _as_floats(series: pd.Series) -> npt.NDArray[np.float64] | None:
    if pd.api.types.is_bool_dtype(series.dtype) or pd.api.types.is_numeric_dtype(series.dtype):
        return series.to_numpy(dtype=np.float64, na_value=np.nan)
    return None


def first_difference(full: pd.Series, part: pd.Series, *, rtol: float = 1e-9) -> int | None:
    """Return the position of the first row where ``part`` differs from the same row of ``full``.

    NaN equals NaN; floats compare with relative tolerance ``rtol`` plus an absolute tolerance scaled to
    the column, so summation noise is not a finding.
    """
    n = len(part)
    a, b = _as_floats(full.iloc[:n]), _as_floats(part)
    if a is not None and b is not None:
        nan_a, nan_b = np.isnan(a), np.isnan(b)
        finite = np.abs(a[~nan_a])
        atol = 1e-12 * float(finite.max()) if finite.size else 0.0
        with np.errstate(invalid="ignore"):
            same = (nan_a & nan_b) | np.isclose(a, b, rtol=rtol, atol=atol)
    else:  # text, dates and anything else must match exactly
        left, right = full.iloc[:n].to_numpy(dtype=object), part.to_numpy(dtype=object)
        missing_l, missing_r = pd.isna(left), pd.isna(right)
        equal = np.fromiter((bool(x == y) for x, y in zip(left, right, strict=True)), dtype=np.bool_, count=n)
        same = (missing_l & missing_r) | (~missing_l & ~missing_r & equal)
    bad = np.flatnonzero(~same)
    return int(bad[0]) if bad.size else None


def _variants(candles: pd.DataFrame, cut: int) -> Iterator[tuple[str, pd.DataFrame]]:
    """Yield the histories a causal strategy cannot tell apart up to row ``cut``.

    Removing the later candles catches most look-ahead; replacing them by a much higher and a much lower
    market catches whole-column statistics even when the extreme happens to lie before the cut.
    """
    yield "removed", candles.iloc[: cut + 1]
    prices = [c for c in ("open", "high", "low", "close") if c in candles.columns]
    for factor in FUTURE_FACTORS:
        altered = candles.copy()
        rows = altered.index[cut + 1 :]
        for column in prices:
            altered.loc[rows, column] = altered.loc[rows, column] * factor
        if "volume" in altered.columns:
            altered.loc[rows, "volume"] = altered.loc[rows, "volume"] * factor
        yield "altered", altered


def check_lookahead(
    strategy: IStrategy, candles: pd.DataFrame, *, samples: int = 6, pair: str = "", rtol: float = 1e-9
) -> list[LookAheadFinding]:
    """Return one finding per column whose past values change when later candles are removed or altered.

    Parameters
    ----------
    strategy
        The strategy instance to run; it is analysed ``3 * samples + 1`` times.
    candles
        A candle frame with a ``date`` column, long enough for ``startup_candle_count`` plus some rows.
    samples
        How many cut points to compare with the full run; they are spread over the frame. At each, the
        candles after the cut are removed, then scaled up, then scaled down.
    """
    cuts = cut_points(len(candles), samples, start=strategy.startup_candle_count)
    if not cuts:
        raise DataError(
            f"the look-ahead check needs more candles than {len(candles)}",
            hint=f"pass at least {max(strategy.startup_candle_count, MIN_CUT_ROWS) * 2 + 2} candles",
        )
    full = strategy.analyze(candles, pair)
    order = {column: i for i, column in enumerate(full.columns)}
    # column -> (first differing row, cut that revealed it, how the future was changed)
    earliest: dict[str, tuple[int, int, str]] = {}
    for cut in cuts:
        for how, history in _variants(candles, cut):
            part = strategy.analyze(history, pair).iloc[: cut + 1]
            for column in part.columns:
                if column == "date" or column not in order:
                    continue
                row = first_difference(full[column], part[column], rtol=rtol)
                if row is not None and (column not in earliest or row < earliest[column][0]):
                    earliest[column] = (row, cut, how)
    dates = candles["date"] if "date" in candles.columns else None
    findings = []
    # Earliest row first; at the same row, the column created first (the indicator before its signals).
    for column, (row, cut, how) in sorted(earliest.items(), key=lambda kv: (kv[1][0], order[kv[0]])):
        when = pd.Timestamp(dates.iloc[row]) if dates is not None else None
        where = f"{when} (row {row})" if when is not None else f"row {row}"
        until = f"{pd.Timestamp(dates.iloc[cut])}" if dates is not None else f"row {cut}"
        findings.append(
            LookAheadFinding(
                kind="dynamic",
                column=str(column),
                date=when,
                row=row,
                message=f"column {column!r} at {where} changes when the candles after {until} are {how}",
            )
        )
    return findings


def _negative_int(node: ast.expr | None) -> int | None:
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        value = node.operand.value if isinstance(node.operand, ast.Constant) else None
        return -value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None
    return None


def _through_window(node: ast.expr) -> bool:
    """Return True if an attribute/call chain passes through rolling(), ewm(), expanding(), ..."""
    while isinstance(node, ast.Call | ast.Attribute | ast.Subscript):
        if isinstance(node, ast.Call):
            func = node.func
            if isinstance(func, ast.Attribute) and func.attr in WINDOWS:
                return True
            node = func
        else:
            node = node.value
    return False


def _row_wise(call: ast.Call) -> bool:
    for kw in call.keywords:
        if kw.arg == "axis" and isinstance(kw.value, ast.Constant):
            return kw.value.value in (1, "columns")
    first = call.args[0] if call.args else None
    return isinstance(first, ast.Constant) and first.value in (1, "columns")


def _inspect_call(call: ast.Call) -> str | None:
    for kw in call.keywords:
        if kw.arg == "center" and isinstance(kw.value, ast.Constant) and kw.value.value is True:
            return "`center=True` centres the window on later candles"
    func = call.func
    if not isinstance(func, ast.Attribute):
        return None
    if func.attr == "shift":
        periods = [k.value for k in call.keywords if k.arg == "periods"]
        n = _negative_int(call.args[0] if call.args else (periods[0] if periods else None))
        if n is not None:
            return f"`.shift({n})` reads a later candle"
    if func.attr in REDUCTIONS and not _through_window(func.value) and not _row_wise(call):
        if isinstance(func.value, ast.Name) and func.value.id in ("np", "numpy"):
            if not call.args:
                return None
            return f"`np.{func.attr}(...)` over a whole column uses every candle, later ones included"
        return f"`.{func.attr}()` over a whole column uses every candle, later ones included (use rolling)"
    return None


def _inspect_subscript(node: ast.Subscript) -> str | None:
    if not (isinstance(node.value, ast.Attribute) and node.value.attr in ("iloc", "iat")):
        return None
    index = node.slice.elts[0] if isinstance(node.slice, ast.Tuple) and node.slice.elts else node.slice
    n = _negative_int(index)
    if n is not None:
        return f"`.{node.value.attr}[{n}]` reads the last candle into every row"
    return None


def scan_source(source: str, *, first_line: int = 1) -> list[LookAheadFinding]:
    """Return static warnings for suspicious expressions inside ``populate_*`` functions of ``source``.

    ``first_line`` is the line number of the first line of ``source`` in its file, so warnings name file
    lines when ``source`` is a class cut out of a module. Unparsable source gives no warnings.
    """
    try:
        tree = ast.parse(textwrap.dedent(source))
    except SyntaxError:
        return []
    found: dict[tuple[int, str], LookAheadFinding] = {}
    for fn in ast.walk(tree):
        if not isinstance(fn, ast.FunctionDef | ast.AsyncFunctionDef) or not fn.name.startswith("populate_"):
            continue
        for node in ast.walk(fn):
            if isinstance(node, ast.Call):
                message = _inspect_call(node)
            elif isinstance(node, ast.Subscript):
                message = _inspect_subscript(node)
            else:
                continue
            if message is not None:
                line = node.lineno + first_line - 1
                found.setdefault((line, message), LookAheadFinding(kind="static", message=message, line=line))
    return [found[key] for key in sorted(found)]


__all__ = ["LookAheadFinding", "check_lookahead", "cut_points", "first_difference", "scan_source"]
