"""One backtest as the command line (and later the API) asks for it: strategy, parameters, data, settings.

:func:`prepare` checks everything and loads the candles without writing anything; :func:`execute` runs the
engine and computes the metrics. Saving (``history``) and reports stay with the caller.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tradefleet.adapters.data.store import CandleStore
from tradefleet.core.candles import dates_ms, timeframe_to_ms
from tradefleet.core.errors import ConfigError, StrategyError
from tradefleet.core.lookahead import LookAheadFinding, check_lookahead
from tradefleet.core.metrics import Metrics, compute_metrics, market_change
from tradefleet.core.risk import RiskSettings
from tradefleet.core.strategy import IStrategy
from tradefleet.engine.backtest.types import BacktestConfig, BacktestResult, EngineName
from tradefleet.services.backtest.data import BacktestData, TimeRange, load_backtest_data
from tradefleet.services.hyperopt.saved import load_saved_overrides, load_saved_params, params_path
from tradefleet.services.hyperopt.spaces import apply_overrides
from tradefleet.strategies.loader import load_strategy


@dataclass(frozen=True)
class BacktestSettings:
    """Settings shared by every strategy of one ``tradefleet backtest`` call."""

    pairs: tuple[str, ...]
    timeframe: str | None  # None: each strategy's own
    timerange: TimeRange
    risk: RiskSettings
    starting_balance: float
    taker_fee: float
    slippage_bps: float
    engine: EngineName = "fast"
    exchange: str | None = None
    params: dict[str, Any] = field(default_factory=dict)  # from --params, over the saved ones


@dataclass
class PreparedRun:
    """A checked backtest, ready to execute: the strategy instance, its config and its candles."""

    target: str
    cls: type[IStrategy]
    strategy: IStrategy
    config: BacktestConfig
    data: BacktestData
    params_source: str = ""


@dataclass
class RunOutput:
    prepared: PreparedRun
    result: BacktestResult
    metrics: Metrics


def read_params_arg(text: str | None) -> dict[str, Any]:
    """Read ``--params``: a JSON object or a JSON file, flat or in Freqtrade's ``{"params": {"buy": …}}`` layout."""
    if text is None or not text.strip():
        return {}
    raw = text.strip()
    if not raw.startswith("{"):
        path = Path(raw).expanduser()
        if not path.is_file():
            raise ConfigError(f"--params: {raw!r} is neither a JSON object nor a file", hint="pass '{\"fast\": 12}'")
        try:
            raw = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"--params: cannot read {path} ({exc})") from None
    try:
        document = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"--params: invalid JSON ({exc.msg} at column {exc.colno})") from None
    if not isinstance(document, dict):
        raise ConfigError("--params must be a JSON object mapping parameter names to values")
    params = document.get("params", document)
    if not isinstance(params, dict):
        raise ConfigError("--params: 'params' must be an object")
    if any(space in params for space in ("buy", "sell", "protection")):
        flat: dict[str, Any] = {}
        for space in ("buy", "sell", "protection"):
            flat.update(params.get(space) or {})
        return flat
    return {k: v for k, v in params.items() if k not in ("roi", "stoploss", "trailing")}


def prepare(
    target: str, settings: BacktestSettings, store: CandleStore, strategies_dir: Path, *, quote_hint: str | None = None
) -> PreparedRun:
    """Load and check the strategy, its parameters and candles; write nothing."""
    cls = load_strategy(target, search_dirs=[strategies_dir])
    saved = load_saved_params(cls, strategies_dir)
    params = {**saved, **settings.params}
    strategy = cls(params)
    overrides = load_saved_overrides(cls, strategies_dir)
    apply_overrides(strategy, overrides.get("minimal_roi"), overrides.get("stoploss"), overrides.get("trailing"))
    source = f"parameters from {params_path(cls, strategies_dir)}" if saved or overrides else ""
    timeframe = settings.timeframe or cls.timeframe
    quotes = sorted({p.split("/")[-1].split(":")[0].upper() for p in settings.pairs})
    if len(quotes) != 1:
        raise ConfigError(
            f"the pairs are quoted in {', '.join(quotes)}; one backtest trades one quote currency",
            hint="backtest pairs of one quote currency together (e.g. ETH/BTC ADA/BTC)",
        )
    data = load_backtest_data(
        store,
        settings.pairs,
        timeframe,
        settings.timerange,
        startup_candle_count=cls.startup_candle_count,
        strategy=cls.__name__,
        exchange=settings.exchange,
    )
    config = BacktestConfig(
        strategy=target,
        pairs=tuple(data.candles),
        timeframe=timeframe,
        start_ms=data.start_ms,
        end_ms=data.end_ms,
        strategy_params=strategy.param_values(),
        risk=settings.risk,
        starting_balance=settings.starting_balance,
        quote_currency=quotes[0],
        taker_fee=settings.taker_fee,
        slippage_bps=settings.slippage_bps,
        engine=settings.engine,
    )
    return PreparedRun(target, cls, strategy, config, data, source)


def execute(run: PreparedRun) -> RunOutput:
    """Run the backtest engine on a prepared run and compute its metrics."""
    from tradefleet.services.backtest.runner import run_backtest

    result = run_backtest(run.config, run.data.candles, run.strategy)
    metrics = compute_metrics(
        result.trades,
        result.equity_ms,
        result.equity,
        run.config.starting_balance,
        timeframe_to_ms(run.config.timeframe),
        traded_market_change(run.data),
        pairs=run.config.pairs,
    )
    result.metrics = metrics.to_dict()
    return RunOutput(run, result, metrics)


def traded_market_change(data: BacktestData) -> float | None:
    """Return the buy-and-hold change of the pairs over the traded candles."""
    closes = {}
    for pair, frame in data.candles.items():
        mask = dates_ms(frame["date"]) >= data.start_ms
        closes[pair] = frame["close"].to_numpy(dtype=np.float64)[mask]
    return market_change(closes)


def lookahead_findings(run: PreparedRun) -> dict[str, list[LookAheadFinding]]:
    """Return the dynamic look-ahead findings of the strategy on each pair's backtest candles."""
    found: dict[str, list[LookAheadFinding]] = {}
    for pair, frame in run.data.candles.items():
        try:
            findings = check_lookahead(run.strategy, frame, pair=pair)
        except StrategyError:
            raise
        found[pair] = [f for f in findings if f.kind == "dynamic"]
    return found
