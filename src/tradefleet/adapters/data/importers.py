"""Import candles from Freqtrade data folders, Freqtrade files and CSV files into a :class:`CandleStore`.

Every file is parsed and validated before anything is written: one bad file aborts the whole import.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
import pyarrow as pa
from pyarrow import feather

from tradefleet.adapters.data.store import (
    CandleStore,
    check_candles,
    normalize_exchange,
    normalize_pair,
    parse_series_name,
)
from tradefleet.core.candles import COLUMNS, OHLCV, dates_ms, timeframe_to_ms
from tradefleet.core.errors import CandleValidationError, ConfigError, DataError

SUFFIXES = (".feather", ".json.gz", ".json", ".csv")
# Freqtrade keeps these next to candles; they are not candles, so a folder import skips them
_NOT_CANDLES = ("-trades", "-funding_rate", "-mark", "-index", "-premiumIndex")
_MS_FLOOR = 100_000_000_000  # epoch values below this are seconds, not milliseconds (before 1973 in ms)

Progress = Callable[[int], None]


@dataclass(frozen=True, slots=True)
class ImportResult:
    """One file imported into one series."""

    source: Path
    exchange: str
    pair: str
    timeframe: str
    rows: int
    added: int
    start: pd.Timestamp | None
    end: pd.Timestamp | None


def candle_files(path: Path) -> list[Path]:
    """Return the candle files at ``path``: the file itself, or every candle file under a folder."""
    path = Path(path)
    if path.is_file():
        if _suffix(path) is None:
            raise DataError(f"{path}: unsupported file type", hint=f"import one of: {', '.join(SUFFIXES)}")
        return [path]
    if not path.is_dir():
        raise DataError(f"{path}: no such file or folder", hint="check the path")
    files = [
        p
        for p in sorted(path.rglob("*"))
        if p.is_file() and _suffix(p) is not None and not _stem(p).endswith(_NOT_CANDLES)
    ]
    if not files:
        raise DataError(
            f"{path}: no candle files found",
            hint="expected Freqtrade files such as ETH_BTC-5m.feather, BTC_USDT-1h.json or .csv files",
        )
    return files


def import_path(
    store: CandleStore,
    path: Path,
    *,
    exchange: str = "imported",
    pair: str | None = None,
    timeframe: str | None = None,
    progress: Progress | None = None,
) -> list[ImportResult]:
    """Import a Freqtrade data folder (searched recursively) or one file; return what each file added.

    ``pair`` and ``timeframe`` override what the file names say. ``progress`` is called with 1 per file read.
    """
    exchange = normalize_exchange(exchange)
    pair = normalize_pair(pair) if pair else None
    if timeframe is not None:
        timeframe_to_ms(timeframe)
    files = candle_files(path)
    targets = [_target(f, pair, timeframe) for f in files]
    _refuse_duplicates(files, targets)
    frames = []
    for file, (_, file_tf) in zip(files, targets, strict=True):
        frames.append(read_candle_file(file, timeframe=file_tf))
        if progress is not None:
            progress(1)
    _refuse_synthetic(store, exchange, files, targets)
    items = [(exchange, p, tf, frame) for (p, tf), frame in zip(targets, frames, strict=True)]
    added = store.write_many(items)
    return [
        ImportResult(
            source=file,
            exchange=exchange,
            pair=p,
            timeframe=tf,
            rows=len(frame),
            added=n,
            start=frame["date"].iloc[0] if len(frame) else None,
            end=frame["date"].iloc[-1] if len(frame) else None,
        )
        for file, (p, tf), frame, n in zip(files, targets, frames, added, strict=True)
    ]


def read_candle_file(path: Path, *, timeframe: str | None = None) -> pd.DataFrame:
    """Parse one candle file and return a validated frame; errors name the file and the bad rows."""
    kind = _suffix(path)
    if kind == ".feather":
        frame = _read_feather(path)
    elif kind in (".json", ".json.gz"):
        frame = _read_json(path)
    elif kind == ".csv":
        frame = _read_csv(path)
    else:
        raise DataError(f"{path}: unsupported file type", hint=f"import one of: {', '.join(SUFFIXES)}")
    return _validated(frame, path, timeframe)


def _suffix(path: Path) -> str | None:
    name = path.name.lower()
    return next((s for s in SUFFIXES if name.endswith(s)), None)


def _stem(path: Path) -> str:
    suffix = _suffix(path) or ""
    return path.name[: len(path.name) - len(suffix)]


def _target(path: Path, pair: str | None, timeframe: str | None) -> tuple[str, str]:
    parsed = parse_series_name(_stem(path))
    if (pair is None or timeframe is None) and parsed is None:
        raise ConfigError(
            f"{path}: cannot tell the pair and timeframe from the file name",
            hint="name it like ETH_BTC-5m.csv (Freqtrade style) or pass --pair and --timeframe",
        )
    file_pair = pair or (parsed[0] if parsed else "")
    file_tf = timeframe or (parsed[1] if parsed else "")
    return normalize_pair(file_pair), file_tf


def _refuse_duplicates(files: list[Path], targets: list[tuple[str, str]]) -> None:
    seen: dict[tuple[str, str], Path] = {}
    for file, target in zip(files, targets, strict=True):
        if target in seen:
            raise DataError(
                f"{seen[target]} and {file} both hold {target[0]} {target[1]}",
                hint="import them one at a time, or pass the single file you want",
            )
        seen[target] = file


def _refuse_synthetic(store: CandleStore, exchange: str, files: list[Path], targets: list[tuple[str, str]]) -> None:
    """Name the file when its series is stored as synthetic: real candles never mix with generated ones."""
    for file, (pair, timeframe) in zip(files, targets, strict=True):
        if store.is_synthetic(exchange, pair, timeframe):
            raise DataError(
                f"{file}: {exchange} {pair} {timeframe} holds synthetic candles; refusing to mix in real ones",
                hint="import into another exchange name with --exchange",
            )


def _validated(frame: pd.DataFrame, path: Path, timeframe: str | None) -> pd.DataFrame:
    """Sort by date, validate and report offending rows by their position in the file."""
    frame = frame.sort_values("date", kind="stable") if "date" in frame.columns else frame
    try:
        out = check_candles(frame, name=str(path), rows="index")
    except CandleValidationError as exc:
        raise CandleValidationError(
            exc.message,
            hint="repair or re-export the file; nothing was imported",
            details={"file": str(path), "rows": exc.details},
        ) from None
    if timeframe is not None and len(out) > 1:
        step = np.diff(dates_ms(out["date"]))
        off = np.flatnonzero(step % timeframe_to_ms(timeframe) != 0)
        if len(off):
            rows = [int(frame.index[int(i) + 1]) for i in off]
            raise CandleValidationError(
                f"{path}: {len(off)} candle(s) off the {timeframe} grid (rows {_rows_text(rows)})",
                hint="check --timeframe; nothing was imported",
                details={"file": str(path), "rows": rows},
            )
    return out


def _rows_text(rows: list[int], limit: int = 10) -> str:
    text = ", ".join(str(r) for r in rows[:limit])
    return text + (f" and {len(rows) - limit} more" if len(rows) > limit else "")


def _read_feather(path: Path) -> pd.DataFrame:
    try:
        table = feather.read_table(path, memory_map=False)
    except (pa.ArrowException, OSError) as exc:
        raise DataError(f"{path}: not a readable Feather file ({exc})", hint="re-export or re-download it") from exc
    frame: pd.DataFrame = table.to_pandas()
    frame.columns = [str(c).lower() for c in frame.columns]
    if "date" in frame.columns and not isinstance(frame["date"].dtype, pd.DatetimeTZDtype):
        frame["date"] = _parse_dates(frame["date"], path)
    return frame


def _read_json(path: Path) -> pd.DataFrame:
    """Read Freqtrade's JSON layout: a list of ``[ms, open, high, low, close, volume]``."""
    try:
        opener = gzip.open if path.name.lower().endswith(".gz") else open
        with opener(path, "rt", encoding="utf-8") as handle:
            raw = json.load(handle)
    except (OSError, EOFError, ValueError) as exc:
        raise DataError(f"{path}: not readable JSON ({exc})", hint="re-export or re-download it") from exc
    if not isinstance(raw, list):
        raise DataError(f"{path}: expected a JSON list of [ms, open, high, low, close, volume] rows")
    bad = [i for i, row in enumerate(raw) if not isinstance(row, list) or len(row) < 6]
    if bad:
        raise DataError(
            f"{path}: {len(bad)} row(s) are not [ms, open, high, low, close, volume] (rows {_rows_text(bad)})",
            details={"file": str(path), "rows": bad},
        )
    frame = pd.DataFrame([row[:6] for row in raw], columns=list(COLUMNS))
    frame = _numeric(frame, path)
    frame["date"] = _parse_dates(frame["date"], path)
    return frame


def _read_csv(path: Path) -> pd.DataFrame:
    """Read a CSV with ``date`` or ``timestamp`` (ms, s or ISO 8601) and open, high, low, close, volume."""
    try:
        frame = pd.read_csv(path, dtype=str, skipinitialspace=True, keep_default_na=False)
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: not a readable CSV file ({exc})", hint="re-export it") from exc
    frame.columns = [str(c).strip().lower() for c in frame.columns]
    time_col = next((c for c in ("date", "timestamp", "time", "datetime") if c in frame.columns), None)
    missing = [c for c in OHLCV if c not in frame.columns]
    if time_col is None or missing:
        need = ", ".join(([] if time_col else ["date or timestamp"]) + missing)
        raise DataError(
            f"{path}: CSV header lacks {need}",
            hint="the header needs date (or timestamp), open, high, low, close, volume",
        )
    frame = frame.rename(columns={time_col: "date"})[list(COLUMNS)]
    frame.index = frame.index + 2  # file line numbers: line 1 is the header
    frame = _numeric(frame, path)
    frame["date"] = _parse_dates(frame["date"], path)
    return frame


def _numeric(frame: pd.DataFrame, path: Path) -> pd.DataFrame:
    out = frame.copy()
    for col in OHLCV:
        values = pd.to_numeric(frame[col], errors="coerce")
        bad = values.isna() & frame[col].notna()
        if bad.any():
            rows = [int(r) for r in frame.index[bad.to_numpy()]]
            raise CandleValidationError(
                f"{path}: column {col!r} is not a number in {int(bad.sum())} row(s) (rows {_rows_text(rows)})",
                hint="repair or re-export the file; nothing was imported",
                details={"file": str(path), "rows": rows},
            )
        out[col] = values.astype("float64")
    return out


def _parse_dates(values: pd.Series, path: Path) -> pd.Series:
    """Parse epoch milliseconds (or seconds) or ISO 8601 strings; naive times are taken as UTC."""
    numbers = pd.to_numeric(values, errors="coerce")
    parsed: pd.Series
    if numbers.notna().all() and len(numbers):
        unit: Literal["ms", "s"] = "ms" if numbers.abs().max() >= _MS_FLOOR else "s"
        epoch = np.asarray(numbers.round(), dtype=np.int64)
        parsed = pd.Series(pd.to_datetime(epoch, unit=unit, utc=True), index=values.index)
    else:
        parsed = pd.to_datetime(values, utc=True, errors="coerce", format="ISO8601")
    bad = parsed.isna()
    if bad.any():
        rows = [int(r) for r in values.index[bad.to_numpy()]]
        raise CandleValidationError(
            f"{path}: unreadable date in {int(bad.sum())} row(s) (rows {_rows_text(rows)})",
            hint="use epoch milliseconds or ISO 8601 such as 2024-01-01T00:00:00Z; nothing was imported",
            details={"file": str(path), "rows": rows},
        )
    out: pd.Series = parsed.astype("datetime64[ms, UTC]")
    return out
