"""Shared CLI plumbing: one-line errors, exit codes, progress that suits the terminal."""

from __future__ import annotations

import functools
import logging
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, ParamSpec, TypeVar

import typer
from pydantic import ValidationError

from tradefleet.core.errors import TradeFleetError

P = ParamSpec("P")
R = TypeVar("R")

EXIT_USAGE = 2
EXIT_ERROR = 1

log = logging.getLogger("tradefleet.cli")


def fail(message: str, code: int = EXIT_ERROR) -> typer.Exit:
    """Print ``error: message`` on stderr and return an Exit to raise."""
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code)


def describe_validation_error(exc: ValidationError) -> str:
    """Return a one-line summary naming each offending field."""
    parts = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"]) or "value"
        parts.append(f"{loc}: {err['msg']}")
    return "; ".join(parts)


def handle_errors(fn: Callable[P, R]) -> Callable[P, R]:
    """Turn TradeFleet and validation errors into a one-line message and a non-zero exit."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except TradeFleetError as exc:
            raise fail(exc.one_line()) from None
        except ValidationError as exc:
            raise fail(f"invalid settings: {describe_validation_error(exc)}") from None

    return wrapper


@contextmanager
def progress(description: str, total: int | None) -> Iterator[Callable[[int], None]]:
    """Yield ``advance(n)``: a progress bar on a terminal, plain log lines every 10% otherwise."""
    if sys.stderr.isatty():
        from rich.progress import Progress

        with Progress(transient=False) as bar:
            task = bar.add_task(description, total=total)
            yield lambda n: bar.advance(task, n)
        return
    state: dict[str, Any] = {"done": 0, "next": 0.1}

    def advance(n: int) -> None:
        state["done"] += n
        if total and state["done"] / total >= state["next"]:
            typer.echo(f"{description}: {state['done']}/{total} ({100 * state['done'] // total}%)", err=True)
            state["next"] += 0.1

    yield advance
    typer.echo(f"{description}: done ({state['done']})", err=True)


class CliState:
    """Global options of the root command; settings are loaded once, on first use."""

    def __init__(self, config_file: Any = None, data_dir: Any = None) -> None:
        self.config_file = config_file
        self.data_dir = data_dir
        self._settings: Any = None

    def settings(self, **overrides: Any) -> Any:
        """Return the effective :class:`tradefleet.config.Settings` (file < env < CLI flags)."""
        if self._settings is None or overrides:
            from tradefleet.config import load_settings

            if self.data_dir is not None:
                overrides.setdefault("data_dir", self.data_dir)
            self._settings = load_settings(config_file=self.config_file, overrides=overrides)
        return self._settings


def settings_from(ctx: typer.Context, **overrides: Any) -> Any:
    """Return the effective settings for a command, with its own flags as ``overrides``."""
    state = ctx.find_root().obj
    if not isinstance(state, CliState):
        state = CliState()
    return state.settings(**overrides)
