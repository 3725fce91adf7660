"""The ``tradefleet`` command line. Each command group lives in its own module with a ``register(app)``."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Annotated

import typer

from tradefleet.cli._common import CliState

app = typer.Typer(
    name="tradefleet",
    help="TradeFleet: run a fleet of crypto trading bots.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    rich_markup_mode=None,  # usage errors as plain lines, not boxes
)

COMMAND_MODULES = ("data", "strategy", "config", "db", "run", "backtest", "hyperopt", "serve")


@app.callback()
def root(
    ctx: typer.Context,
    config: Annotated[
        Path | None,
        typer.Option("--config", "-c", help="settings file (default ./tradefleet.toml if present)"),
    ] = None,
    data_dir: Annotated[Path | None, typer.Option("--data-dir", help="where TradeFleet keeps its state")] = None,
) -> None:
    """Run a fleet of crypto trading bots."""
    ctx.obj = CliState(config_file=config, data_dir=data_dir)


def _register() -> None:
    for module in COMMAND_MODULES:
        importlib.import_module(f"tradefleet.cli.{module}").register(app)


def main() -> None:
    """Entry point of the console script."""
    _register()
    app()
