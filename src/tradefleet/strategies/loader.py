"""Find, load and validate strategies: built-ins, user files, and the template for new ones.

Every problem surfaces as a one-line :class:`~tradefleet.core.errors.StrategyLoadError` or
:class:`~tradefleet.core.errors.LookAheadError` that starts with ``file:line`` where one is known, so an
editor or a terminal can jump to it.
"""

from __future__ import annotations

import ast
import hashlib
import inspect
import keyword
import math
import re
import sys
import traceback
import types
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from string import Template

import numpy as np
import pandas as pd

from tradefleet.core.candles import COLUMNS, timeframe_to_seconds
from tradefleet.core.errors import ConfigError, DataError, LookAheadError, StrategyError, StrategyLoadError
from tradefleet.core.lookahead import LookAheadFinding, check_lookahead, scan_source
from tradefleet.core.strategy import IStrategy, Parameter
from tradefleet.strategies.bollinger_breakout import BollingerBreakout
from tradefleet.strategies.macd_trend import MacdTrend
from tradefleet.strategies.rsi_mean_reversion import RsiMeanReversion
from tradefleet.strategies.sma_cross import SmaCross

BUILTINS: tuple[type[IStrategy], ...] = (SmaCross, RsiMeanReversion, BollingerBreakout, MacdTrend)
REQUIRED_SIGNALS = ("enter_long", "exit_long")
OPTIONAL_SIGNALS = ("enter_short", "exit_short")
_POPULATE = ("populate_indicators", "populate_entry_trend", "populate_exit_trend")
_CLASS_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def builtin_strategies() -> dict[str, type[IStrategy]]:
    """Return the strategies shipped with TradeFleet by class name."""
    return {cls.__name__: cls for cls in BUILTINS}


# --------------------------------------------------------------------------------------------- loading


def _module_name(path: Path) -> str:
    digest = hashlib.sha256(str(path).encode()).hexdigest()[:10]
    stem = re.sub(r"\W", "_", path.stem)
    return f"tradefleet_user_strategy_{stem}_{digest}"


def _failing_line(exc: BaseException, path: Path) -> int | None:
    lines = [f.lineno for f in traceback.extract_tb(exc.__traceback__) if Path(f.filename) == path]
    return lines[-1] if lines and lines[-1] is not None else None


def _describe(exc: BaseException) -> str:
    """Return ``Type: message`` on one line, whatever the exception put in its message."""
    return f"{type(exc).__name__}: {' '.join(str(exc).split())}"


def _load_module(path: Path) -> types.ModuleType:
    """Execute a strategy file as a fresh module (edits are always picked up)."""
    if not path.is_file():
        raise StrategyLoadError(f"{path}: no such strategy file")
    try:
        source = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise StrategyLoadError(f"{path}: cannot read the file ({exc})") from None
    try:
        code = compile(source, str(path), "exec")
    except SyntaxError as exc:
        raise StrategyLoadError(f"{path}:{exc.lineno}: syntax error: {exc.msg}") from None
    name = _module_name(path)
    module = types.ModuleType(name)
    module.__file__ = str(path)
    # Registered so inspect.getsource, dataclasses and pickling by reference find the module.
    sys.modules[name] = module
    try:
        exec(code, module.__dict__)  # noqa: S102 - running the user's strategy file is the point
    except (Exception, SystemExit) as exc:
        del sys.modules[name]
        line = _failing_line(exc, path)
        where = f"{path}:{line}" if line else str(path)
        raise StrategyLoadError(f"{where}: import failed: {_describe(exc)}") from None
    return module


def _strategies_in(module: types.ModuleType) -> list[type[IStrategy]]:
    return [
        obj
        for obj in vars(module).values()
        if isinstance(obj, type) and issubclass(obj, IStrategy) and obj.__module__ == module.__name__
    ]


def load_strategy_file(path: str | Path, class_name: str | None = None) -> type[IStrategy]:
    """Load the strategy class of a ``.py`` file; ``class_name`` is needed when it defines several."""
    path = Path(path).expanduser().resolve()
    module = _load_module(path)
    if class_name is not None:
        found = vars(module).get(class_name)
        if not (isinstance(found, type) and issubclass(found, IStrategy)):
            defined = ", ".join(c.__name__ for c in _strategies_in(module)) or "none"
            raise StrategyLoadError(f"{path}: no IStrategy subclass named {class_name} (strategies: {defined})")
        return found
    classes = _strategies_in(module)
    if not classes:
        raise StrategyLoadError(f"{path}: no IStrategy subclass defined in the file")
    if len(classes) > 1:
        names = ", ".join(c.__name__ for c in classes)
        raise StrategyLoadError(f"{path}: several strategies ({names}); name one as {path.name}:ClassName")
    return classes[0]


def split_target(target: str) -> tuple[str, str | None] | None:
    """Return (path, class name) if ``target`` names a file, ``None`` if it is a bare class name."""
    head, sep, tail = target.rpartition(":")
    if sep and head.endswith(".py") and tail.isidentifier():
        return head, tail
    if target.endswith(".py") or "/" in target or "\\" in target:
        return target, None
    return None


def _defines_class(path: Path, name: str) -> bool:
    try:
        source = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return False
    try:
        tree = ast.parse(source)
    except SyntaxError:
        # Load it anyway if it looks like the one: the user wants to hear about the syntax error.
        return re.search(rf"^class\s+{re.escape(name)}\b", source, re.MULTILINE) is not None
    return any(isinstance(node, ast.ClassDef) and node.name == name for node in tree.body)


def _strategy_files(search_dirs: Iterable[str | Path]) -> list[Path]:
    files: list[Path] = []
    for directory in search_dirs:
        folder = Path(directory).expanduser()
        if folder.is_dir():
            files.extend(p for p in sorted(folder.glob("*.py")) if not p.name.startswith("_"))
    return files


def load_strategy(name_or_path: str | Path, *, search_dirs: Sequence[str | Path] = ()) -> type[IStrategy]:
    """Return a strategy class from a built-in name, a class name in ``search_dirs`` or a file path.

    A path may name the class as ``path.py:ClassName``. Built-in names win over user classes.
    """
    target = str(name_or_path)
    split = split_target(target)
    if split is not None:
        return load_strategy_file(split[0], split[1])
    builtins = builtin_strategies()
    if target in builtins:
        return builtins[target]
    matches = [p for p in _strategy_files(search_dirs) if _defines_class(p, target)]
    if len(matches) > 1:
        raise StrategyLoadError(f"strategy {target} is defined in several files: {', '.join(map(str, matches))}")
    if matches:
        return load_strategy_file(matches[0], target)
    dirs = ", ".join(str(d) for d in search_dirs) or "no strategy directory"
    raise StrategyLoadError(
        f"unknown strategy {target!r}: not a built-in ({', '.join(builtins)}) and not defined in {dirs}",
        hint="check the class name, or pass the file as path/to/file.py[:ClassName]",
    )


@dataclass(frozen=True)
class StrategyInfo:
    """One row of :func:`list_strategies`; ``error`` is set for user files that fail to load."""

    name: str
    timeframe: str = ""
    source: Path | None = None
    parameters: dict[str, Parameter] = field(default_factory=dict)
    error: str | None = None

    @property
    def builtin(self) -> bool:
        return self.source is None


def list_strategies(search_dirs: Sequence[str | Path] = ()) -> list[StrategyInfo]:
    """Return built-ins, then every strategy of every ``.py`` file in ``search_dirs`` (broken ones too)."""
    rows = [StrategyInfo(n, c.timeframe, None, c.parameters()) for n, c in builtin_strategies().items()]
    for path in _strategy_files(search_dirs):
        try:
            module = _load_module(path.resolve())
        except StrategyLoadError as exc:
            rows.append(StrategyInfo(path.stem, source=path, error=exc.message))
            continue
        classes = _strategies_in(module)
        if not classes:
            rows.append(StrategyInfo(path.stem, source=path, error="no IStrategy subclass defined in the file"))
        rows.extend(StrategyInfo(c.__name__, c.timeframe, path, c.parameters()) for c in classes)
    return rows


# ------------------------------------------------------------------------------------------ validation


@dataclass(frozen=True)
class ValidationReport:
    """What :func:`validate_strategy` found in a strategy that passed."""

    strategy: str
    source: str
    timeframe: str
    candles: int
    synthetic: bool
    entries: int
    exits: int
    warnings: list[LookAheadFinding]

    def summary(self) -> str:
        data = "synthetic" if self.synthetic else "given"
        return (
            f"{self.strategy} ({self.source}): {self.entries} entry and {self.exits} exit signals "
            f"on {self.candles} {data} {self.timeframe} candles, no look-ahead"
        )


def _where(obj: object) -> str:
    """Return ``file:line`` of a class or function, or its qualified name when the source is unknown."""
    try:
        file = inspect.getsourcefile(obj)  # type: ignore[arg-type]
        _, line = inspect.getsourcelines(obj)  # type: ignore[arg-type]
    except (OSError, TypeError):
        return getattr(obj, "__qualname__", repr(obj))
    return f"{file}:{line}" if file else getattr(obj, "__qualname__", repr(obj))


def _check_settings(cls: type[IStrategy]) -> None:
    where, name = _where(cls), cls.__name__
    for method in ("populate_entry_trend", "populate_exit_trend"):
        if getattr(cls, method) is getattr(IStrategy, method):
            raise StrategyLoadError(f"{where}: {name} does not define {method}(self, dataframe)")
    try:
        timeframe_to_seconds(cls.timeframe)
    except (ConfigError, TypeError) as exc:
        raise StrategyLoadError(
            f"{where}: {name}.timeframe {cls.timeframe!r} is invalid (use 1m, 5m, 1h, 1d…)"
        ) from exc
    stop = cls.stoploss
    if isinstance(stop, bool) or not isinstance(stop, int | float) or not -1 < stop < 0:
        raise StrategyLoadError(f"{where}: {name}.stoploss must be a ratio in (-1, 0) such as -0.10, got {stop!r}")
    roi = cls.minimal_roi
    bad_roi = f'{where}: {name}.minimal_roi must map minutes ("0", "30", …) to finite ratios, got {roi!r}'
    if not isinstance(roi, dict) or not roi:
        raise StrategyLoadError(bad_roi)
    for minutes, ratio in roi.items():
        try:
            ok = int(minutes) >= 0 and str(int(minutes)) == str(minutes).strip() and math.isfinite(float(ratio))
        except (TypeError, ValueError):
            ok = False
        if not ok or isinstance(ratio, bool) or float(ratio) <= -1:
            raise StrategyLoadError(bad_roi)
    count = cls.startup_candle_count
    if isinstance(count, bool) or not isinstance(count, int) or count < 0:
        raise StrategyLoadError(f"{where}: {name}.startup_candle_count must be a non-negative integer")
    positive = cls.trailing_stop_positive
    if positive is not None and not 0 < positive < 1:
        raise StrategyLoadError(f"{where}: {name}.trailing_stop_positive must be in (0, 1), got {positive!r}")


def synthetic_candles(n: int, timeframe: str = "5m", *, seed: int = 7) -> pd.DataFrame:
    """Return ``n`` deterministic candles of a geometric random walk with volatility regimes."""
    rng = np.random.default_rng(seed)
    vol = 0.004 * np.exp(0.5 * np.sin(np.arange(n) / 97.0))
    close = 100.0 * np.exp(np.cumsum(rng.normal(0.0, 1.0, n) * vol))
    open_ = np.concatenate([[100.0], close[:-1]])
    wick = np.abs(rng.normal(0.0, 0.6, (2, n))) * vol
    step = timeframe_to_seconds(timeframe)
    dates = pd.Timestamp("2024-01-01", tz="UTC") + pd.to_timedelta(np.arange(n) * step, unit="s")
    return pd.DataFrame(
        {
            "date": pd.Series(dates).astype("datetime64[ms, UTC]"),
            "open": open_,
            "high": np.maximum(open_, close) * (1 + wick[0]),
            "low": np.minimum(open_, close) * (1 - wick[1]),
            "close": close,
            "volume": rng.lognormal(7.0, 0.8, n),
        }
    )


def _step(strategy: IStrategy, method: str, frame: pd.DataFrame) -> pd.DataFrame:
    fn = getattr(strategy, method)
    where = f"{_where(fn)}: {type(strategy).__name__}.{method}"
    try:
        wants_metadata = len(inspect.signature(fn).parameters) >= 2
        out = fn(frame, {"pair": "", "timeframe": strategy.timeframe}) if wants_metadata else fn(frame)
    except Exception as exc:
        line = _failing_line(exc, Path(inspect.getsourcefile(fn) or ""))
        at = f" at line {line}" if line else ""
        raise StrategyLoadError(f"{where} raised {_describe(exc)}{at}") from None
    if not isinstance(out, pd.DataFrame):
        raise StrategyLoadError(f"{where} must return the DataFrame, got {type(out).__name__}")
    if len(out) != len(frame) or not out.index.equals(frame.index):
        raise StrategyLoadError(
            f"{where} changed the rows ({len(frame)} → {len(out)} or reordered); add columns, never drop rows"
        )
    missing = [c for c in COLUMNS if c in frame.columns and c not in out.columns]
    if missing:
        raise StrategyLoadError(f"{where} dropped the candle column(s) {', '.join(missing)}")
    return out


def _check_signals(strategy: IStrategy, frame: pd.DataFrame) -> None:
    where = f"{_where(type(strategy))}: {type(strategy).__name__}"
    missing = [c for c in REQUIRED_SIGNALS if c not in frame.columns]
    if missing:
        raise StrategyLoadError(
            f"{where} never sets the signal column(s) {', '.join(missing)}; "
            "populate_entry_trend must set enter_long, populate_exit_trend exit_long (1 = signal, 0 = none)"
        )
    for column in (*REQUIRED_SIGNALS, *(c for c in OPTIONAL_SIGNALS if c in frame.columns)):
        values = frame[column]
        numeric = pd.api.types.is_bool_dtype(values.dtype) or pd.api.types.is_numeric_dtype(values.dtype)
        seen = set(pd.unique(values.dropna().astype("float64"))) if numeric else {None}
        if not seen <= {0.0, 1.0}:
            shown = sorted(map(str, seen))[:3] if numeric else [str(values.dtype)]
            raise StrategyLoadError(f"{where}: column {column} must hold 0 or 1, found {', '.join(shown)}")


def validate_strategy(
    cls: type[IStrategy], candles: pd.DataFrame | None = None, *, samples: int = 6
) -> ValidationReport:
    """Check settings, signal columns and look-ahead of a strategy class; raise on the first problem.

    Without ``candles`` the strategy runs on deterministic synthetic candles of its own timeframe.
    Static look-ahead suspicions that the dynamic check does not confirm come back as warnings.

    Raises
    ------
    StrategyLoadError
        Bad settings, missing methods or columns, ``populate_*`` failing or returning the wrong thing.
    LookAheadError
        A column changed when later candles were removed.
    """
    if not (isinstance(cls, type) and issubclass(cls, IStrategy)):
        raise StrategyLoadError(f"{cls!r} is not an IStrategy subclass")
    _check_settings(cls)
    try:
        strategy = cls()
    except (StrategyError, TypeError, ValueError) as exc:
        raise StrategyLoadError(f"{_where(cls)}: {cls.__name__}() failed: {_describe(exc)}") from None
    synthetic = candles is None
    if candles is None:
        frame = synthetic_candles(max(1500, 3 * cls.startup_candle_count + 500), cls.timeframe)
    else:
        frame = candles
    out = frame.copy()
    for method in _POPULATE:
        out = _step(strategy, method, out)
    _check_signals(strategy, out)
    try:
        source, first_line = inspect.getsourcelines(cls)
        static = scan_source("".join(source), first_line=first_line)
    except (OSError, TypeError):
        static = []
    try:
        findings = check_lookahead(strategy, frame, samples=samples)
    except DataError:
        raise
    except Exception as exc:
        raise StrategyLoadError(
            f"{_where(cls)}: {cls.__name__} failed on a shorter history: {_describe(exc)}"
        ) from None
    if findings:
        first = findings[0]
        names = [f.column for f in findings[1:4] if f.column]
        more = ", …" if len(findings) > 4 else ""
        others = f" (also: {', '.join(names)}{more})" if names else ""
        suspect = f"; suspect line {static[0].line}: {static[0].message}" if static else ""
        raise LookAheadError(f"{_where(cls)}: {cls.__name__} looks ahead: {first.message}{others}{suspect}")
    return ValidationReport(
        strategy=cls.__name__,
        source=_where(cls),
        timeframe=cls.timeframe,
        candles=len(frame),
        synthetic=synthetic,
        entries=int(out["enter_long"].fillna(0).astype(bool).sum()),
        exits=int(out["exit_long"].fillna(0).astype(bool).sum()),
        warnings=static,
    )


# ----------------------------------------------------------------------------------------- new files


def strategy_file_name(class_name: str) -> str:
    """Return the snake_case file name for a class: ``MACDTrend`` → ``macd_trend.py``."""
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_", class_name).lower() + ".py"


def check_class_name(class_name: str) -> str:
    """Return ``class_name`` if it can name a new strategy class; raise StrategyError otherwise."""
    if not _CLASS_NAME.match(class_name) or keyword.iskeyword(class_name):
        raise StrategyError(
            f"{class_name!r} is not a valid Python class name",
            hint="use letters, digits and _, e.g. MyStrategy",
        )
    if class_name in builtin_strategies() or class_name == IStrategy.__name__:
        raise StrategyError(f"{class_name} is already a built-in name", hint="choose another class name")
    return class_name


def render_template(class_name: str) -> str:
    """Return the source of a new, valid strategy called ``class_name``."""
    template = resources.files("tradefleet.strategies").joinpath("templates/strategy.py.tmpl")
    return Template(template.read_text(encoding="utf-8")).substitute(class_name=check_class_name(class_name))


def create_strategy_file(class_name: str, directory: str | Path, *, force: bool = False) -> Path:
    """Write a new strategy file from the template into ``directory`` and return its path."""
    source = render_template(class_name)
    path = Path(directory).expanduser() / strategy_file_name(class_name)
    if path.exists() and not force:
        raise StrategyError(f"{path} already exists", hint="choose another name or overwrite it with --force")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(source, encoding="utf-8")
    return path
