"""``tradefleet config``: inspect the effective settings."""

from __future__ import annotations

import json
import math
import re
from typing import Annotated, Any

import typer

from tradefleet.cli._common import handle_errors, settings_from
from tradefleet.logs import mask_url_credentials

config_app = typer.Typer(name="config", help="Inspect the effective settings.", no_args_is_help=True)

_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


def register(app: typer.Typer) -> None:
    """Add the ``config`` command group to ``app``."""
    app.add_typer(config_app, name="config")


@config_app.command("show")
@handle_errors
def show(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON instead of TOML")] = False,
) -> None:
    """Print the effective settings (defaults < file < environment < flags) with secrets masked."""
    settings = settings_from(ctx)
    data = settings.masked()
    if as_json:
        typer.echo(json.dumps(data, indent=2))
        return
    typer.echo("# Effective TradeFleet settings: defaults < tradefleet.toml < environment < flags.")
    typer.echo("# Secrets are masked; unset values are shown as comments.")
    typer.echo(f"# database_url = {_value(mask_url_credentials(settings.database_url))}  (derived)")
    typer.echo(to_toml(data), nl=False)


def to_toml(data: dict[str, Any]) -> str:
    """Return ``data`` as TOML; None values, which TOML cannot hold, become ``# key = (unset)`` comments."""
    lines: list[str] = []
    _table(data, (), lines)
    return "\n".join(lines).lstrip("\n") + "\n"


def _table(data: dict[str, Any], path: tuple[str, ...], lines: list[str]) -> None:
    tables = {k: v for k, v in data.items() if isinstance(v, dict) and v}  # empty ones go inline: {}
    arrays = {k: v for k, v in data.items() if _is_table_array(v)}
    for key, value in data.items():
        if key in tables or key in arrays:
            continue
        if value is None:
            lines.append(f"# {_key(key)} = (unset)")
        else:
            lines.append(f"{_key(key)} = {_value(value)}")
    for key, value in tables.items():
        if any(not (isinstance(v, dict) and v) and not _is_table_array(v) for v in value.values()):
            lines += ["", f"[{_dotted((*path, key))}]"]  # a table of tables needs no header of its own
        _table(value, (*path, key), lines)
    for key, items in arrays.items():
        for item in items:
            lines += ["", f"[[{_dotted((*path, key))}]]"]
            _table(item, (*path, key), lines)


def _is_table_array(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(v, dict) for v in value)


def _dotted(path: tuple[str, ...]) -> str:
    return ".".join(_key(p) for p in path)


def _key(key: str) -> str:
    return key if _BARE_KEY.match(key) else json.dumps(key)


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)  # JSON string escapes are valid TOML basic strings
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_value(v) for v in value if v is not None) + "]"
    if isinstance(value, dict):
        inner = ", ".join(f"{_key(k)} = {_value(v)}" for k, v in value.items() if v is not None)
        return "{ " + inner + " }" if inner else "{}"
    return json.dumps(str(value))
