"""The ``tradefleet`` command line. Each command group lives in its own module."""

from __future__ import annotations

import typer

app = typer.Typer(
    name="tradefleet",
    help="TradeFleet: run a fleet of crypto trading bots.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def _register() -> None:
    import importlib

    for module in ("data", "strategy", "config", "db", "run"):
        try:
            importlib.import_module(f"tradefleet.cli.{module}").register(app)
        except ModuleNotFoundError as exc:
            if exc.name != f"tradefleet.cli.{module}":
                raise


def main() -> None:
    """Entry point of the console script."""
    _register()
    app()
