"""Backtest results as JSON: everything needed to re-render a report or compare runs later.

The document (``format`` = :data:`FORMAT`)::

    {"format", "config": {... "risk": {...}}, "trades": [{fields..., "cost", "profit_abs", "profit_ratio"}],
     "equity": {"ms": [...], "value": [...]}, "metrics": {...}, "candles", "elapsed_s", "data_fingerprint"}

It is standard JSON (no NaN or Infinity). :func:`result_from_json` reads it back into a
:class:`~tradefleet.engine.backtest.types.BacktestResult` equal to the original.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import fields
from pathlib import Path
from typing import Any

import numpy as np

from tradefleet.core.candles import timeframe_to_ms
from tradefleet.core.errors import DataError
from tradefleet.core.metrics import Metrics, compute_metrics
from tradefleet.core.risk import RiskSettings
from tradefleet.engine.backtest.types import BacktestConfig, BacktestResult, BacktestTrade

FORMAT = "tradefleet.backtest/1"
_TRADE_FIELDS = tuple(f.name for f in fields(BacktestTrade))


def backtest_metrics(result: BacktestResult, *, market_change: float | None = None) -> Metrics:
    """Compute the metrics of a backtest result (the adapter-side shortcut to ``compute_metrics``)."""
    return compute_metrics(
        result.trades,
        result.equity_ms,
        result.equity,
        result.config.starting_balance,
        timeframe_to_ms(result.config.timeframe),
        market_change,
        pairs=result.config.pairs,
    )


def to_json(result: BacktestResult, metrics: Metrics | None = None) -> dict[str, Any]:
    """Return the whole result as JSON-ready data; without ``metrics``, ``result.metrics`` is written."""
    return {
        "format": FORMAT,
        "config": _config_to_json(result.config),
        "trades": [_trade_to_json(t) for t in result.trades],
        "equity": {
            "ms": np.asarray(result.equity_ms, dtype=np.int64).tolist(),
            "value": np.asarray(result.equity, dtype=np.float64).tolist(),
        },
        "metrics": metrics.to_dict() if metrics is not None else dict(result.metrics),
        "candles": int(result.candles),
        "elapsed_s": float(result.elapsed_s),
        "data_fingerprint": result.data_fingerprint,
    }


def write_json(
    path: str | Path, result: BacktestResult, metrics: Metrics | None = None, *, indent: int | None = None
) -> Path:
    """Write :func:`to_json` to ``path`` (parents created) and return the path.

    Raises ``ValueError`` if something is not representable in standard JSON (NaN, infinity, objects in
    the strategy parameters) rather than writing a file other tools cannot read.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(
        to_json(result, metrics), indent=indent, allow_nan=False, ensure_ascii=False, default=_json_default
    )
    target.write_text(text + "\n", encoding="utf-8")
    return target


def read_json(path: str | Path) -> BacktestResult:
    """Read a result written by :func:`write_json`."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise DataError(
            f"cannot read backtest result {path}: {exc}",
            hint="pass a JSON file written by a TradeFleet backtest export (write_json)",
        ) from exc
    return result_from_json(data)


def result_from_json(data: Mapping[str, Any]) -> BacktestResult:
    """Rebuild a result from :func:`to_json` data; ``metrics`` comes back as the exported dict."""
    if data.get("format") != FORMAT:
        raise DataError(
            f"not a TradeFleet backtest result (format {data.get('format')!r}, expected {FORMAT!r})",
            hint="pass a JSON file written by a TradeFleet backtest export (write_json)",
        )
    try:
        equity = data["equity"]
        return BacktestResult(
            config=_config_from_json(data["config"]),
            trades=[BacktestTrade(**{k: t[k] for k in _TRADE_FIELDS if k in t}) for t in data["trades"]],
            equity_ms=np.asarray(equity["ms"], dtype=np.int64),
            equity=np.asarray(equity["value"], dtype=np.float64),
            candles=int(data["candles"]),
            elapsed_s=float(data["elapsed_s"]),
            data_fingerprint=str(data.get("data_fingerprint", "")),
            metrics=dict(data.get("metrics") or {}),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise DataError(f"malformed backtest result: {exc!r}", hint="the file may be truncated or edited") from exc


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic | np.ndarray):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def _config_to_json(config: BacktestConfig) -> dict[str, Any]:
    # dataclasses.asdict would deep-copy the pydantic RiskSettings instead of dumping it.
    out = {f.name: getattr(config, f.name) for f in fields(config)}
    out["pairs"] = list(config.pairs)
    out["strategy_params"] = {k: _plain(v) for k, v in config.strategy_params.items()}
    out["risk"] = config.risk.model_dump(mode="json")
    return out


def _config_from_json(data: Mapping[str, Any]) -> BacktestConfig:
    values = dict(data)
    values["pairs"] = tuple(values["pairs"])
    values["risk"] = RiskSettings.model_validate(values.get("risk", {}))
    return BacktestConfig(**values)


def _trade_to_json(trade: BacktestTrade) -> dict[str, Any]:
    out = {name: _plain(getattr(trade, name)) for name in _TRADE_FIELDS}
    out.update(cost=_plain(trade.cost), profit_abs=_plain(trade.profit_abs), profit_ratio=_plain(trade.profit_ratio))
    return out


def _plain(value: Any) -> Any:
    """Return numpy scalars and arrays as Python values (engines may fill fields from arrays)."""
    if isinstance(value, np.generic | np.ndarray):
        return value.tolist()
    return value
