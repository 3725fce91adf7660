"""``tradefleet hyperopt``: tune a strategy's parameters, ROI table and stoploss with Optuna on every core."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from tradefleet.cli._common import handle_errors, progress, settings_from
from tradefleet.cli.backtest import MultiValueCommand, split_values
from tradefleet.core.errors import ConfigError


def register(app: typer.Typer) -> None:
    """Add the ``hyperopt`` command to ``app``."""
    app.command("hyperopt", cls=MultiValueCommand)(hyperopt)


@handle_errors
def hyperopt(
    ctx: typer.Context,
    strategy: Annotated[str, typer.Option("--strategy", "-s", help="strategy name or path.py[:Class]")],
    pairs: Annotated[list[str], typer.Option("--pairs", "-p", help="pairs, e.g. --pairs ETH/BTC ADA/BTC")],
    epochs: Annotated[int, typer.Option("--epochs", "-e", help="epochs (backtests) to add to the study")] = 100,
    loss: Annotated[str, typer.Option("--loss", help="profit, sharpe, sortino, calmar or profit-drawdown")] = "sharpe",
    spaces: Annotated[
        list[str] | None,
        typer.Option("--spaces", help="buy sell protection roi stoploss trailing, default or all"),
    ] = None,
    jobs: Annotated[int | None, typer.Option("--jobs", "-j", help="worker processes (default: every core)")] = None,
    storage: Annotated[
        str | None,
        typer.Option("--storage", help="Optuna storage: postgresql://… or sqlite:///… (default: a journal file)"),
    ] = None,
    study: Annotated[
        str | None, typer.Option("--study", help="study name (default: derived from the settings)")
    ] = None,
    seed: Annotated[int | None, typer.Option("--seed", help="seed of the sampler (worker i uses seed + i)")] = None,
    timeframe: Annotated[str | None, typer.Option("--timeframe", "-t", help="candle timeframe")] = None,
    timerange: Annotated[str | None, typer.Option("--timerange", help="YYYYMMDD-YYYYMMDD, open ends allowed")] = None,
    min_trades: Annotated[
        int, typer.Option("--min-trades", help="epochs with fewer closed trades count as failures")
    ] = 1,
    stake: Annotated[float | None, typer.Option("--stake", help="stake per trade")] = None,
    stake_mode: Annotated[str | None, typer.Option("--stake-mode", help="fixed or percent")] = None,
    max_open_trades: Annotated[int | None, typer.Option("--max-open-trades", help="open trades at most")] = None,
    balance: Annotated[float | None, typer.Option("--balance", help="starting balance")] = None,
    fee: Annotated[float | None, typer.Option("--fee", help="taker fee as a fraction")] = None,
    params: Annotated[str | None, typer.Option("--params", help="base parameters: JSON object or file")] = None,
    exchange: Annotated[str | None, typer.Option("--exchange", help="prefer candles of this exchange")] = None,
    write: Annotated[bool, typer.Option("--write", help="write the best parameters to <strategy>.json")] = False,
) -> None:
    """Search the strategy's parameters with Optuna's TPE on every core; the study resumes on the next run."""
    from tradefleet.adapters.data.store import CandleStore
    from tradefleet.cli.backtest import _session_settings
    from tradefleet.services.backtest.data import parse_timerange
    from tradefleet.services.backtest.session import prepare
    from tradefleet.services.hyperopt import runner
    from tradefleet.services.hyperopt.losses import canonical_loss
    from tradefleet.services.hyperopt.spaces import SearchSpace, parse_spaces

    if epochs < 1:
        raise ConfigError(f"--epochs must be at least 1, got {epochs}")
    if jobs is not None and jobs < 1:
        raise ConfigError(f"--jobs must be at least 1, got {jobs}")
    if min_trades < 0:
        raise ConfigError(f"--min-trades must not be negative, got {min_trades}")
    chosen_spaces = parse_spaces(split_values(spaces))
    canonical_loss(loss)
    settings = settings_from(ctx)
    session_settings = _session_settings(
        settings, split_values(pairs), timeframe, parse_timerange(timerange), stake, stake_mode, max_open_trades,
        balance, fee, "fast", exchange, params,
    )  # fmt: skip
    prepared = prepare(strategy, session_settings, CandleStore(settings.candles_dir), settings.strategies_dir)
    space = SearchSpace(prepared.cls, chosen_spaces, prepared.config.timeframe)
    for note in (prepared.params_source, *prepared.data.notes):
        if note:
            typer.echo(f"{prepared.cls.__name__}: {note}", err=True)
    job = runner.HyperoptJob(
        strategy=strategy,
        search_dirs=(str(settings.strategies_dir),),
        spaces=chosen_spaces,
        loss=loss,
        config=prepared.config,
        candles=prepared.data.candles,
        storage="",
        study_name="",
        min_trades=min_trades,
        seed=seed,
        base_params=prepared.strategy.param_values(),
        base_overrides=runner.load_saved_overrides(prepared.cls, settings.strategies_dir),
    )
    name = study or runner.default_study_name(prepared.cls.__name__, job.context())
    job = _replace(job, study_name=name, storage=storage or runner.default_storage(settings.data_dir, name))
    workers = min(jobs or runner.default_jobs(), epochs)
    typer.echo(
        f"hyperopt {prepared.cls.__name__} on {' '.join(prepared.config.pairs)} {prepared.config.timeframe}: "
        f"{epochs} epochs, loss {canonical_loss(loss)}, spaces {' '.join(chosen_spaces)} "
        f"({space.dimensions()} dimensions), {workers} worker process(es); study {name!r} in "
        f"{runner.redact_storage(job.storage)}"
    )
    with progress("epochs", epochs) as advance:
        outcome = runner.run_hyperopt(job, epochs, jobs=workers, on_epoch=lambda _r: advance(1))
    _print_outcome(outcome)
    if write:
        path = runner.write_params(prepared.cls, _full_candidate(prepared, outcome.best, settings.strategies_dir),
                                   settings.strategies_dir, loss=canonical_loss(loss), study=name)  # fmt: skip
        typer.echo(f"wrote the best parameters to {path}; bots and backtests of {prepared.cls.__name__} load them")


def _replace(job: Any, **changes: Any) -> Any:
    from dataclasses import replace

    return replace(job, **changes)


def _full_candidate(prepared: Any, best: Any, strategies_dir: Any) -> Any:
    """Return the best candidate completed with the current values of every declared parameter."""
    from tradefleet.services.hyperopt.runner import load_saved_overrides
    from tradefleet.services.hyperopt.spaces import Candidate

    full = Candidate()
    current = prepared.strategy.param_values()
    for name, param in prepared.cls.parameters().items():
        full.params.setdefault(param.space, {})[name] = current[name]
    for space_name, values in best.params.items():
        full.params.setdefault(space_name, {}).update(values)
    saved = load_saved_overrides(prepared.cls, strategies_dir)
    full.minimal_roi = best.minimal_roi if best.minimal_roi is not None else saved.get("minimal_roi")
    full.stoploss = best.stoploss if best.stoploss is not None else saved.get("stoploss")
    full.trailing = best.trailing if best.trailing is not None else saved.get("trailing")
    return full


def _print_outcome(outcome: Any) -> None:
    m = outcome.best_metrics

    def pct(key: str) -> str:
        value = m.get(key)
        return "-" if value is None else f"{100 * value:.2f}%"

    def num(key: str) -> str:
        value = m.get(key)
        return "-" if value is None else f"{value:.2f}"

    typer.echo(
        f"{outcome.epochs_run} epochs in {outcome.elapsed_s:.1f} s ({outcome.epochs_per_s:.1f} epochs/s, "
        f"{outcome.jobs} worker(s)); the study now has {outcome.epochs_total} epochs"
        + (f", {outcome.failed} failed" if outcome.failed else "")
    )
    typer.echo(
        f"best epoch #{outcome.best_number}: loss {outcome.best_value:.5f} — {m.get('trades', 0)} trades, "
        f"profit {pct('profit_ratio')}, max drawdown {pct('max_drawdown_ratio')}, win rate {pct('win_rate')}, "
        f"Sharpe {num('sharpe')}, Sortino {num('sortino')}, Calmar {num('calmar')}"
    )
    best = outcome.best
    for space_name, values in best.params.items():
        typer.echo(f"# {space_name} space\n{space_name}_params = {json.dumps(values)}")
    if best.minimal_roi is not None:
        typer.echo(f"# ROI table\nminimal_roi = {json.dumps(best.minimal_roi)}")
    if best.stoploss is not None:
        typer.echo(f"# stoploss\nstoploss = {best.stoploss}")
    if best.trailing is not None:
        typer.echo("# trailing stop\n" + "\n".join(f"{k} = {v}" for k, v in best.trailing.items()))
