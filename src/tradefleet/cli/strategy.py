"""``tradefleet strategy``: create, list and validate strategies."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from tradefleet.cli._common import handle_errors, settings_from
from tradefleet.core.strategy import BooleanParameter, CategoricalParameter, Parameter
from tradefleet.strategies.loader import (
    builtin_strategies,
    check_class_name,
    create_strategy_file,
    list_strategies,
    load_strategy,
    split_target,
    validate_strategy,
)

strategy_app = typer.Typer(name="strategy", help="Create, list and validate strategies.", no_args_is_help=True)

DirOption = Annotated[Path | None, typer.Option("--dir", help="strategy directory (default: <data_dir>/strategies)")]


def register(app: typer.Typer) -> None:
    """Add the ``strategy`` command group to ``app``."""
    app.add_typer(strategy_app, name="strategy")


def _strategies_dir(ctx: typer.Context, directory: Path | None) -> Path:
    if directory is not None:
        return directory
    return Path(settings_from(ctx).strategies_dir)


def describe_parameter(name: str, param: Parameter) -> str:
    """Return ``name=default (range)`` for a listing."""
    if isinstance(param, BooleanParameter):
        span = "yes/no"
    elif isinstance(param, CategoricalParameter):
        span = "|".join(map(str, param.categories))
    else:
        span = f"{getattr(param, 'low', '?')}..{getattr(param, 'high', '?')}"
    fixed = "" if param.optimize else ", fixed"
    return f"{name}={param.default} ({span}, {param.space}{fixed})"


@strategy_app.command("new")
@handle_errors
def new(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="class name of the new strategy, e.g. MyStrategy")],
    directory: DirOption = None,
    force: Annotated[bool, typer.Option("--force", help="overwrite an existing file")] = False,
) -> None:
    """Write a ready-to-edit strategy file from the template."""
    check_class_name(name)
    path = create_strategy_file(name, _strategies_dir(ctx, directory), force=force)
    typer.echo(f"created {path}")
    typer.echo(f"edit it, then check it with: tradefleet strategy validate {path}")


@strategy_app.command("list")
@handle_errors
def list_(ctx: typer.Context, directory: DirOption = None) -> None:
    """List built-in strategies and those in the strategy directory."""
    folder = _strategies_dir(ctx, directory)
    rows = list_strategies([folder])
    table = [("NAME", "TIMEFRAME", "SOURCE", "PARAMETERS")]
    for row in rows:
        source = "built-in" if row.builtin else str(row.source)
        if row.error is not None:
            table.append((row.name, "-", source, f"error: {row.error}"))
            continue
        params = ", ".join(describe_parameter(n, p) for n, p in row.parameters.items()) or "-"
        table.append((row.name, row.timeframe, source, params))
    widths = [max(len(r[i]) for r in table) for i in range(3)]
    for cells in table:
        typer.echo("  ".join(c.ljust(w) for c, w in zip(cells[:3], widths, strict=True)) + "  " + cells[3])
    user = sum(1 for r in rows if not r.builtin)
    typer.echo(f"\n{len(rows) - user} built-in, {user} in {folder}")


@strategy_app.command("validate")
@handle_errors
def validate(
    ctx: typer.Context,
    target: Annotated[str, typer.Argument(help="path.py[:ClassName], or a strategy name")],
    directory: DirOption = None,
) -> None:
    """Load a strategy, run it on synthetic candles and check it for look-ahead; print OK or the error."""
    is_named = split_target(target) is None and target not in builtin_strategies()
    search = [_strategies_dir(ctx, directory)] if is_named else []
    report = validate_strategy(load_strategy(target, search_dirs=search))
    typer.echo(f"OK: {report.summary()}")
    for finding in report.warnings:
        typer.echo(f"warning: {finding.describe()} (not confirmed by the run)")
