"""Candle store: one Feather (Arrow IPC) file per exchange, pair and timeframe.

Layout (Freqtrade's file naming, so a Freqtrade user recognises it)::

    <root>/<exchange>/ETH_BTC-5m.feather               spot pair ETH/BTC
    <root>/<exchange>/BTC_USDT_USDT-1h-futures.feather  futures pair BTC/USDT:USDT

Every file holds a validated candle frame. Synthetic (generated) series carry ``synthetic: true`` in the
Arrow schema metadata under the ``tradefleet`` key and are never merged with real candles.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import tempfile
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
from pyarrow import feather

from tradefleet.core.candles import (
    dates_ms,
    empty_frame,
    find_gaps,
    timeframe_to_ms,
    validate_candles,
    validate_pair,
)
from tradefleet.core.errors import CandleValidationError, ConfigError, DataError, DataNotFoundError

META_KEY = b"tradefleet"
SUFFIX = ".feather"
_EXCHANGE_RE = re.compile(r"^[a-z0-9][a-z0-9_-]*$")
_PART_RE = re.compile(r"^[A-Za-z0-9]+$")
# ETH_BTC-5m.feather, BTC_USDT_USDT-1h-futures.feather
_NAME_RE = re.compile(r"^(?P<stem>[A-Za-z0-9]+(?:_[A-Za-z0-9]+){1,2})-(?P<tf>\d+[smhdw])(?P<fut>-futures)?$")


def normalize_pair(pair: str) -> str:
    """Return ``pair`` upper-cased as ``BASE/QUOTE`` or ``BASE/QUOTE:SETTLE``; raise ConfigError otherwise."""
    spot, sep, settle = pair.partition(":")
    spot = validate_pair(spot)
    if not sep:
        return spot
    if not _PART_RE.match(settle):
        raise ConfigError(
            f"invalid pair {pair!r}",
            hint="write futures pairs as BASE/QUOTE:SETTLE, for example BTC/USDT:USDT",
        )
    return f"{spot}:{settle.upper()}"


def normalize_exchange(exchange: str) -> str:
    """Return the exchange name in lower case if it is safe as a folder name."""
    name = exchange.strip().lower()
    if not _EXCHANGE_RE.match(name):
        raise ConfigError(f"invalid exchange name {exchange!r}", hint="use letters, digits, '-' and '_', e.g. binance")
    return name


def series_filename(pair: str, timeframe: str) -> str:
    """Return the Freqtrade-style file name of a series, e.g. ``ETH_BTC-5m.feather``."""
    pair = normalize_pair(pair)
    timeframe_to_ms(timeframe)
    futures = ":" in pair
    stem = pair.replace("/", "_").replace(":", "_")
    return f"{stem}-{timeframe}{'-futures' if futures else ''}{SUFFIX}"


def parse_series_name(name: str) -> tuple[str, str] | None:
    """Return ``(pair, timeframe)`` from a Freqtrade-style file stem, or None when it does not fit."""
    match = _NAME_RE.match(name)
    if not match:
        return None
    parts = match.group("stem").upper().split("_")
    futures = match.group("fut") is not None
    if futures and len(parts) == 2:
        parts.append(parts[1])  # Freqtrade also accepts BTC_USDT-1h-futures for BTC/USDT:USDT
    if len(parts) == 3 and not futures:
        return None
    pair = f"{parts[0]}/{parts[1]}" + (f":{parts[2]}" if len(parts) == 3 else "")
    return pair, match.group("tf")


def check_candles(frame: pd.DataFrame, *, name: str, rows: str = "dates") -> pd.DataFrame:
    """Validate like ``validate_candles`` but with a one-line message naming the first offending rows.

    ``rows="dates"`` names them by candle date, ``rows="index"`` by the frame's index labels (file rows).
    """
    try:
        return validate_candles(frame, name=name)
    except CandleValidationError as exc:
        message = exc.message
        if "\n" in message:  # validate_candles appends a table of rows: keep its summary line only
            first = message.split("\n", 1)[0]
            message = first[: first.rfind(": ")] if ": " in first[len(name) + 2 :] else first
        positions = [int(i) for i in (exc.details or [])]
        labels = [_row_label(frame, i, rows) for i in positions[:5]]
        more = f" and {len(positions) - 5} more" if len(positions) > 5 else ""
        where = f" ({'first at ' if rows == 'dates' else 'rows '}{', '.join(labels)}{more})" if labels else ""
        raise CandleValidationError(
            f"{message}{where}",
            details=frame.index[positions].tolist() if rows == "index" else positions,
        ) from None


def _row_label(frame: pd.DataFrame, position: int, rows: str) -> str:
    if rows == "index":
        return str(frame.index[position])
    try:
        return str(pd.Timestamp(frame["date"].iloc[position]))
    except (KeyError, IndexError, TypeError, ValueError):
        return f"row {position}"


@dataclass(frozen=True, slots=True)
class SeriesInfo:
    """What ``data list`` shows about one stored series."""

    exchange: str
    pair: str
    timeframe: str
    rows: int
    start: pd.Timestamp | None
    end: pd.Timestamp | None
    gaps: int
    synthetic: bool
    path: Path


@dataclass(frozen=True, slots=True)
class _Cached:
    stamp: tuple[int, int]
    frame: pd.DataFrame
    ms: np.ndarray


@dataclass(frozen=True, slots=True)
class _Pending:
    path: Path
    frame: pd.DataFrame
    synthetic: bool
    meta: dict[str, object]
    added: int
    changed: bool


class CandleStore:
    """Read and write candle series under ``root``; reads are cached in memory per series."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self._cache: dict[Path, _Cached] = {}
        self._lock = threading.RLock()

    def path(self, exchange: str, pair: str, timeframe: str) -> Path:
        """Return where the series lives (whether or not it exists)."""
        return self.root / normalize_exchange(exchange) / series_filename(pair, timeframe)

    def has(self, exchange: str, pair: str, timeframe: str) -> bool:
        """Return True when the series has a file."""
        return self.path(exchange, pair, timeframe).is_file()

    def read(
        self,
        exchange: str,
        pair: str,
        timeframe: str,
        start_ms: int | None = None,
        end_ms: int | None = None,
    ) -> pd.DataFrame:
        """Return the validated candles whose open time is in ``[start_ms, end_ms)``."""
        cached = self._load(exchange, pair, timeframe)
        lo = 0 if start_ms is None else int(np.searchsorted(cached.ms, start_ms, side="left"))
        hi = len(cached.ms) if end_ms is None else int(np.searchsorted(cached.ms, end_ms, side="left"))
        if lo == 0 and hi == len(cached.ms):
            return cached.frame.copy(deep=False)
        return cached.frame.iloc[lo : max(lo, hi)].reset_index(drop=True)

    def last_ms(self, exchange: str, pair: str, timeframe: str) -> int | None:
        """Return the open time of the last stored candle, or None when there is none."""
        if not self.has(exchange, pair, timeframe):
            return None
        ms = self._load(exchange, pair, timeframe).ms
        return int(ms[-1]) if len(ms) else None

    def first_ms(self, exchange: str, pair: str, timeframe: str) -> int | None:
        """Return the open time of the first stored candle, or None when there is none."""
        if not self.has(exchange, pair, timeframe):
            return None
        ms = self._load(exchange, pair, timeframe).ms
        return int(ms[0]) if len(ms) else None

    def is_synthetic(self, exchange: str, pair: str, timeframe: str) -> bool:
        """Return True when the stored series was generated rather than recorded."""
        path = self.path(exchange, pair, timeframe)
        return path.is_file() and bool(_read_meta(path).get("synthetic", False))

    def gaps(self, exchange: str, pair: str, timeframe: str) -> list[tuple[pd.Timestamp, pd.Timestamp]]:
        """Return (last candle before, first candle after) for every hole in the series."""
        return find_gaps(self.read(exchange, pair, timeframe), timeframe)

    def source(self, exchange: str) -> StoreCandleSource:
        """Return a :class:`~tradefleet.core.ports.CandleSource` over one exchange's series."""
        return StoreCandleSource(self, normalize_exchange(exchange))

    def list_series(self) -> list[SeriesInfo]:
        """Describe every stored series, sorted by exchange, pair and timeframe."""
        found: list[SeriesInfo] = []
        if not self.root.is_dir():
            return found
        for path in sorted(self.root.glob(f"*/*{SUFFIX}")):
            parsed = parse_series_name(path.name[: -len(SUFFIX)])
            if parsed is None or series_filename(*parsed) != path.name:
                continue  # not a file this store wrote or could read back under that name
            pair, timeframe = parsed
            found.append(self._describe(path, path.parent.name, pair, timeframe))
        return sorted(found, key=lambda s: (s.exchange, s.pair, timeframe_to_ms(s.timeframe)))

    def write(
        self,
        exchange: str,
        pair: str,
        timeframe: str,
        frame: pd.DataFrame,
        *,
        synthetic: bool = False,
    ) -> int:
        """Merge ``frame`` into the stored series atomically and return how many rows were added."""
        return self.write_many([(exchange, pair, timeframe, frame)], synthetic=synthetic)[0]

    def write_many(
        self,
        items: Sequence[tuple[str, str, str, pd.DataFrame]],
        *,
        synthetic: bool = False,
    ) -> list[int]:
        """Validate and merge every ``(exchange, pair, timeframe, frame)`` first, then write them all."""
        with self._lock:
            pending = [self._prepare(*item, synthetic=synthetic) for item in items]
            paths = [p.path for p in pending]
            if len(set(paths)) != len(paths):
                raise DataError("the same series appears twice in one write", hint="merge the frames first")
            for item in pending:
                if item.changed:
                    self._cache.pop(item.path, None)
                    _atomic_write(item.path, item.frame, item.meta)
                    stat = item.path.stat()  # what we just wrote is valid: keep it as the cached read
                    stamp = (stat.st_mtime_ns, stat.st_size)
                    self._cache[item.path] = _Cached(stamp, item.frame, dates_ms(item.frame["date"]))
            return [p.added for p in pending]

    # internals

    def _prepare(self, exchange: str, pair: str, timeframe: str, frame: pd.DataFrame, *, synthetic: bool) -> _Pending:
        exchange, pair = normalize_exchange(exchange), normalize_pair(pair)
        path = self.path(exchange, pair, timeframe)
        label = f"{exchange} {pair} {timeframe}"
        new = check_candles(frame, name=label)
        _check_grid(new, timeframe, label)
        meta: dict[str, object] = {
            "exchange": exchange,
            "pair": pair,
            "timeframe": timeframe,
            "synthetic": synthetic,
        }
        if not path.exists():
            return _Pending(path, new, synthetic, meta, len(new), changed=len(new) > 0)
        if self.is_synthetic(exchange, pair, timeframe) != synthetic:
            kinds = ("real", "synthetic") if synthetic else ("synthetic", "real")
            raise DataError(
                f"{label}: refusing to merge {kinds[1]} candles into the stored {kinds[0]} series {path}",
                hint="use another --exchange name for generated data, or delete the stored file first",
            )
        cached = self._load(exchange, pair, timeframe)
        old = cached.frame
        if len(new) and len(old) and dates_ms(new["date"].iloc[:1])[0] > cached.ms[-1]:
            # appending after the stored end (every downloaded page): both halves are already valid
            merged = pd.concat([old, new], ignore_index=True)
            _check_grid(merged.iloc[len(old) - 1 : len(old) + 1], timeframe, label)
            return _Pending(path, merged, synthetic, meta, len(new), changed=True)
        merged = pd.concat([old, new], ignore_index=True)
        merged = merged.drop_duplicates(subset="date", keep="last").sort_values("date", kind="stable")
        merged = check_candles(merged.reset_index(drop=True), name=label)
        _check_grid(merged, timeframe, label)
        changed = len(merged) != len(old) or not merged.equals(old)
        return _Pending(path, merged, synthetic, meta, len(merged) - len(old), changed=changed)

    def _load(self, exchange: str, pair: str, timeframe: str) -> _Cached:
        path = self.path(exchange, pair, timeframe)
        with self._lock:
            try:
                stat = path.stat()
            except FileNotFoundError:
                raise self._not_found(exchange, pair, timeframe, path) from None
            stamp = (stat.st_mtime_ns, stat.st_size)
            cached = self._cache.get(path)
            if cached is not None and cached.stamp == stamp:
                return cached
            frame = check_candles(_read_frame(path), name=str(path))
            cached = _Cached(stamp, frame, dates_ms(frame["date"]))
            self._cache[path] = cached
            return cached

    def _not_found(self, exchange: str, pair: str, timeframe: str, path: Path) -> DataNotFoundError:
        exchange, pair = normalize_exchange(exchange), normalize_pair(pair)
        try:
            others = [f"{s.pair} {s.timeframe}" for s in self.list_series() if s.exchange == exchange]
        except DataError:  # a broken neighbour must not hide the real message
            others = []
        where = f"; {exchange} has: {', '.join(others)}" if others else ""
        return DataNotFoundError(
            f"no {timeframe} candles for {pair} on {exchange} (looked for {path}){where}",
            hint=(
                f"run `tradefleet data download --exchange {exchange} --pair {pair} --timeframe {timeframe} "
                "--since YYYY-MM-DD`, or `tradefleet data import|generate`"
            ),
        )

    def _describe(self, path: Path, exchange: str, pair: str, timeframe: str) -> SeriesInfo:
        try:
            table = feather.read_table(path, columns=["date"], memory_map=True)
        except (pa.ArrowException, OSError, KeyError) as exc:
            raise DataError(f"{path}: unreadable candle file ({exc})", hint="delete it and fetch again") from exc
        meta = _meta_of(table.schema)
        dates = pd.Series(table.column("date").to_pandas(), name="date")
        if not isinstance(dates.dtype, pd.DatetimeTZDtype):
            dates = pd.to_datetime(dates, utc=True)
        rows = len(dates)
        gaps = len(find_gaps(dates.to_frame(), timeframe)) if rows > 1 else 0
        return SeriesInfo(
            exchange=exchange,
            pair=pair,
            timeframe=timeframe,
            rows=rows,
            start=dates.iloc[0] if rows else None,
            end=dates.iloc[-1] if rows else None,
            gaps=gaps,
            synthetic=bool(meta.get("synthetic", False)),
            path=path,
        )


class StoreCandleSource:
    """A CandleSource over one exchange's series in a :class:`CandleStore`."""

    def __init__(self, store: CandleStore, exchange: str) -> None:
        self.store = store
        self.exchange = exchange

    def candles(self, pair: str, timeframe: str, start_ms: int, end_ms: int) -> pd.DataFrame:
        """Return the stored candles opening in ``[start_ms, end_ms)`` (empty when none do)."""
        if end_ms <= start_ms:
            return empty_frame()
        return self.store.read(self.exchange, pair, timeframe, start_ms, end_ms)


def _check_grid(frame: pd.DataFrame, timeframe: str, label: str) -> None:
    """Reject candles whose spacing is not a whole number of timeframes (a wrong --timeframe, usually)."""
    if len(frame) < 2:
        return
    step = np.diff(dates_ms(frame["date"]))
    bad = np.flatnonzero(step % timeframe_to_ms(timeframe) != 0) + 1
    if len(bad):
        first = ", ".join(str(frame["date"].iloc[i]) for i in bad[:3])
        raise CandleValidationError(
            f"{label}: {len(bad)} candle(s) off the {timeframe} grid (first at {first})",
            hint="check the timeframe; nothing was written",
            details=bad.tolist(),
        )


def _read_frame(path: Path) -> pd.DataFrame:
    try:
        table = feather.read_table(path, memory_map=False)
    except (pa.ArrowException, OSError) as exc:
        raise DataError(
            f"{path}: unreadable candle file ({exc})", hint="delete it and import or download it again"
        ) from exc
    frame: pd.DataFrame = table.to_pandas()
    if "date" in frame.columns and not isinstance(frame["date"].dtype, pd.DatetimeTZDtype):
        frame["date"] = pd.to_datetime(frame["date"], utc=True)
    return frame


def _meta_of(schema: pa.Schema) -> dict[str, object]:
    raw = (schema.metadata or {}).get(META_KEY)
    if not raw:
        return {}
    try:
        meta = json.loads(raw)
    except ValueError:
        return {}
    return meta if isinstance(meta, dict) else {}


def _read_meta(path: Path) -> dict[str, object]:
    try:
        with pa.memory_map(str(path)) as source:
            schema = pa.ipc.open_file(source).schema
    except (pa.ArrowException, OSError) as exc:
        raise DataError(f"{path}: unreadable candle file ({exc})", hint="delete it and fetch again") from exc
    return _meta_of(schema)


def _atomic_write(path: Path, frame: pd.DataFrame, meta: dict[str, object]) -> None:
    """Write to a temporary file in the same folder, fsync it and rename it over the target."""
    path.parent.mkdir(parents=True, exist_ok=True)
    table = pa.Table.from_pandas(frame.reset_index(drop=True), preserve_index=False, nthreads=1)
    schema_meta = dict(table.schema.metadata or {})
    schema_meta[META_KEY] = json.dumps(meta).encode()
    table = table.replace_schema_metadata(schema_meta)
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        tmp.chmod(0o644)  # candles are not secrets; mkstemp's 0600 would surprise other tools
        feather.write_feather(table, tmp_name, compression="lz4")
        with tmp.open("rb") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def _fsync_dir(folder: Path) -> None:
    with contextlib.suppress(OSError):  # not every platform lets us open a directory
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
