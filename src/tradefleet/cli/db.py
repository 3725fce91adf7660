"""``tradefleet db``: migrate and inspect the trading database (``DATABASE_URL`` or the SQLite file)."""

from __future__ import annotations

from typing import Annotated

import typer

from tradefleet.cli._common import fail, handle_errors, settings_from

db_app = typer.Typer(name="db", help="Migrate and inspect the trading database.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    """Add the ``db`` command group to ``app``."""
    app.add_typer(db_app, name="db")


@db_app.command("upgrade")
@handle_errors
def upgrade_command(
    ctx: typer.Context,
    revision: Annotated[str, typer.Option(help="target migration revision")] = "head",
) -> None:
    """Apply the database migrations; safe to run again (nothing happens when up to date)."""
    from tradefleet.adapters.storage.db import current_revision, redact, upgrade

    url = settings_from(ctx).database_url
    before = current_revision(url)
    upgrade(url, revision)
    after = current_revision(url)
    where = redact(url)
    if before == after:
        typer.echo(f"{where}: already at revision {after}")
    else:
        typer.echo(f"{where}: upgraded from {before or 'an empty database'} to revision {after}")


@db_app.command("current")
@handle_errors
def current_command(
    ctx: typer.Context,
    check: Annotated[bool, typer.Option("--check", help="exit with status 1 unless at the newest revision")] = False,
) -> None:
    """Print the database's migration revision and whether it is the newest one."""
    from tradefleet.adapters.storage.db import current_revision, head_revision, known_revisions, redact

    url = settings_from(ctx).database_url
    revision, head = current_revision(url), head_revision()
    if revision == head:
        state = "up to date"
    elif revision is None or revision in known_revisions():
        state = "behind: run `tradefleet db upgrade`"
    else:
        state = "unknown to this version: was it migrated by a newer TradeFleet?"
    typer.echo(f"{redact(url)}: revision {revision or '(none)'}, newest {head} ({state})")
    if check and revision != head:
        raise fail(f"database at revision {revision or '(none)'}, expected {head}")
