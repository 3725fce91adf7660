"""Alembic environment: runs the migrations on the connection handed over by ``db.upgrade``.

Run from the command line (``alembic upgrade head`` with the repository's ``alembic.ini``), it connects to
``sqlalchemy.url`` from the ini file or, when that is empty, to ``DATABASE_URL``.
"""

from __future__ import annotations

import os

from alembic import context
from sqlalchemy import Connection

from tradefleet.adapters.storage.db import make_engine, normalize_url
from tradefleet.adapters.storage.tables import metadata
from tradefleet.core.errors import ConfigError

# Any constant works; it keeps two processes from migrating the same PostgreSQL database at once.
_PG_MIGRATION_LOCK = 0x7472_6164_6566  # "tradef"


def _url() -> str:
    url = context.config.get_main_option("sqlalchemy.url") or os.environ.get("DATABASE_URL", "")
    if not url:
        raise ConfigError(
            "no database URL for the migrations",
            hint="set DATABASE_URL, or run `tradefleet db upgrade`, which reads TradeFleet's settings",
        )
    return url


def _run(connection: Connection) -> None:
    sqlite = connection.dialect.name == "sqlite"
    context.configure(
        connection=connection,
        target_metadata=metadata,
        compare_type=True,
        render_as_batch=sqlite,  # SQLite cannot ALTER most things; batch mode copies the table
        transactional_ddl=True,  # SQLite too: make_engine emits BEGIN IMMEDIATE, so a migration is atomic
    )
    with context.begin_transaction():
        if connection.dialect.name == "postgresql":
            connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_PG_MIGRATION_LOCK})")
        context.run_migrations()


def run_online() -> None:
    connection = context.config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    engine = make_engine(_url())
    try:
        with engine.connect() as own_connection:
            _run(own_connection)
    finally:
        engine.dispose()


def run_offline() -> None:
    context.configure(url=normalize_url(_url()), target_metadata=metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
