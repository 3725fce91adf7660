"""Tuned parameters on disk: ``hyperopt --write`` saves them, bots and backtests load them.

The file is Freqtrade's strategy-parameter layout (``{"strategy_name", "params": {"buy", "sell",
"protection", "roi", "stoploss", "trailing"}}``): ``<strategy file stem>.json`` next to a user strategy,
``<strategies_dir>/<ClassName>.json`` for a built-in.
"""

from __future__ import annotations

import inspect
import json
import os
from pathlib import Path
from typing import Any

from tradefleet.core.errors import StrategyError
from tradefleet.core.strategy import IStrategy
from tradefleet.services.hyperopt.spaces import TRAILING_KEYS, Candidate, apply_overrides
from tradefleet.strategies.loader import builtin_strategies


def params_path(cls: type[IStrategy], strategies_dir: Path) -> Path:
    """Return where the tuned parameters of ``cls`` live.

    ``<strategy file stem>.json`` next to a user strategy's file; ``<strategies_dir>/<ClassName>.json`` for
    a built-in (its file is inside the installed package).
    """
    if builtin_strategies().get(cls.__name__) is cls:
        return Path(strategies_dir) / f"{cls.__name__}.json"
    try:
        source = inspect.getsourcefile(cls)
    except TypeError:
        source = None
    if source is None:
        return Path(strategies_dir) / f"{cls.__name__}.json"
    return Path(source).with_suffix(".json")


def write_params(cls: type[IStrategy], candidate: Candidate, strategies_dir: Path, **extra: Any) -> Path:
    """Write the candidate as ``<strategy>.json`` (Freqtrade's layout) and return the path."""
    path = params_path(cls, strategies_dir)
    document = {**candidate.to_json(cls.__name__), **extra}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(document, indent=2, sort_keys=False, allow_nan=False) + "\n", encoding="utf-8")
    os.replace(tmp, path)
    return path


def _read_saved(cls: type[IStrategy], strategies_dir: Path) -> dict[str, Any] | None:
    path = params_path(cls, strategies_dir)
    if not path.is_file():
        return None
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise StrategyError(f"{path}: cannot read saved parameters ({exc})", hint="fix or delete the file") from None
    if not isinstance(document, dict) or not isinstance(document.get("params"), dict):
        raise StrategyError(f"{path}: not a strategy parameter file (no 'params' object)", hint="fix or delete it")
    name = document.get("strategy_name")
    if name is not None and name != cls.__name__:
        return None  # another class of the same file
    return dict(document["params"])


def load_saved_params(cls: type[IStrategy], strategies_dir: Path) -> dict[str, Any]:
    """Return the tuned strategy parameters saved by ``hyperopt --write`` (``name -> value``), or ``{}``.

    Names the class no longer declares are dropped; values are checked against the declared ranges when the
    strategy is built (``cls(params)``), so a stale file fails loudly rather than silently.
    """
    saved = _read_saved(cls, strategies_dir)
    if not saved:
        return {}
    declared = cls.parameters()
    flat: dict[str, Any] = {}
    for space in ("buy", "sell", "protection"):
        values = saved.get(space) or {}
        if not isinstance(values, dict):
            raise StrategyError(f"{params_path(cls, strategies_dir)}: params.{space} must be an object")
        flat.update({k: v for k, v in values.items() if k in declared})
    return flat


def load_saved_overrides(cls: type[IStrategy], strategies_dir: Path) -> dict[str, Any]:
    """Return saved ``minimal_roi``, ``stoploss`` and ``trailing`` settings (only those present)."""
    saved = _read_saved(cls, strategies_dir) or {}
    out: dict[str, Any] = {}
    path = params_path(cls, strategies_dir)
    roi = saved.get("roi")
    if roi is not None:
        try:
            out["minimal_roi"] = {str(int(k)): float(v) for k, v in dict(roi).items()}
        except (TypeError, ValueError):
            raise StrategyError(f"{path}: params.roi must map minutes to ratios") from None
    stop = saved.get("stoploss")
    if isinstance(stop, dict) and "stoploss" in stop:
        value = float(stop["stoploss"])
        if not -1 < value < 0:
            raise StrategyError(f"{path}: params.stoploss.stoploss must be in (-1, 0), got {value}")
        out["stoploss"] = value
    trailing = saved.get("trailing")
    if isinstance(trailing, dict):
        out["trailing"] = {k: v for k, v in trailing.items() if k in TRAILING_KEYS}
    return out


def apply_saved_overrides(strategy: IStrategy, strategies_dir: Path) -> dict[str, Any]:
    """Apply saved ROI, stoploss and trailing settings to ``strategy``; return what was applied."""
    overrides = load_saved_overrides(type(strategy), strategies_dir)
    apply_overrides(strategy, overrides.get("minimal_roi"), overrides.get("stoploss"), overrides.get("trailing"))
    return overrides
