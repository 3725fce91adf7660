"""Engines and schema migrations for the trading database (SQLite file or PostgreSQL).

SQLite connections run in WAL mode with ``synchronous=FULL``: a committed order survives ``kill -9`` and
power loss. SQLAlchemy, not the ``sqlite3`` module, emits ``BEGIN`` so that transactions, savepoints and
migrations behave as documented; writers take the lock up front (``BEGIN IMMEDIATE``) so a transaction
never fails half-way on a lock upgrade, while a connection flagged with :data:`READ_ONLY_BEGIN` opens a
deferred transaction that does not block writers.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, IntegrityError, SQLAlchemyError
from sqlalchemy.pool import StaticPool

from tradefleet.core.errors import ConfigError, StorageError

if TYPE_CHECKING:  # Alembic takes a second to import: only commands that migrate pay for it
    from alembic.config import Config

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"

# Key in ``Connection.info``: when set, the next SQLite BEGIN is deferred (read-only work). Consumed by BEGIN.
READ_ONLY_BEGIN = "tradefleet_read_only_begin"

DEFAULT_BUSY_TIMEOUT_MS = 10_000

# Alembic runs env.py through a module-global context, so one process migrates one database at a time;
# other processes are kept out by the database (advisory lock on PostgreSQL, BEGIN IMMEDIATE on SQLite).
_MIGRATION_LOCK = threading.Lock()


def normalize_url(url: str | URL) -> URL:
    """Parse ``url`` and pick the psycopg 3 driver for PostgreSQL URLs that name no driver."""
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise ConfigError(
            f"invalid database URL {url!r}: {exc}",
            hint="use sqlite:///path/to/file.sqlite or postgresql://user@host:5432/dbname",
        ) from None
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    if parsed.get_backend_name() not in ("sqlite", "postgresql"):
        raise ConfigError(
            f"unsupported database {parsed.get_backend_name()!r} in DATABASE_URL",
            hint="TradeFleet stores its state in SQLite or PostgreSQL",
        )
    return parsed


def redact(url: str | URL) -> str:
    """Return ``url`` with its password hidden, for messages and logs."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "<invalid database URL>"


def make_engine(url: str | URL, *, busy_timeout_ms: int = DEFAULT_BUSY_TIMEOUT_MS, echo: bool = False) -> Engine:
    """Create an engine for a SQLite file (WAL, ``synchronous=FULL``) or PostgreSQL (psycopg 3).

    ``busy_timeout_ms`` is how long a SQLite writer waits for another process's write lock before failing.
    A missing parent directory of a SQLite file is created.
    """
    parsed = normalize_url(url)
    if parsed.get_backend_name() == "postgresql":
        return create_engine(parsed, echo=echo, pool_pre_ping=True)
    database = parsed.database or ""
    in_memory = database in ("", ":memory:") or "mode=memory" in database
    if not in_memory:
        Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    options: dict[str, Any] = {"connect_args": {"check_same_thread": False}}
    if in_memory:  # one shared connection, or every checkout would see a different empty database
        options["poolclass"] = StaticPool
    engine = create_engine(parsed, echo=echo, **options)
    _install_sqlite_hooks(engine, busy_timeout_ms)
    return engine


def _install_sqlite_hooks(engine: Engine, busy_timeout_ms: int) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy emit BEGIN itself (see module docstring); sqlite3 still issues COMMIT/ROLLBACK.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
            cursor.execute("PRAGMA journal_mode = WAL")
            cursor.execute("PRAGMA synchronous = FULL")
            cursor.execute("PRAGMA foreign_keys = ON")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        read_only = connection.info.pop(READ_ONLY_BEGIN, False)
        connection.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")


@contextlib.contextmanager
def read_transaction(engine: Engine, operation: str) -> Iterator[Connection]:
    """Run reads in one transaction that takes no write lock (SQLite: a deferred BEGIN); errors as StorageError."""
    try:
        with engine.connect() as conn:
            conn.info[READ_ONLY_BEGIN] = True
            with conn.begin():
                yield conn
    except SQLAlchemyError as exc:
        raise storage_error(operation, exc) from exc


def alembic_config(connection: Connection | None = None) -> Config:
    """Build the Alembic configuration in code, pointing at the migrations shipped inside the package."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("path_separator", "os")
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def head_revision() -> str:
    """Return the newest migration revision shipped with this version of TradeFleet."""
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if head is None:  # pragma: no cover - the package always ships migrations
        raise StorageError("no database migrations found in the installed package", hint="reinstall TradeFleet")
    return head


def known_revisions() -> set[str]:
    """Return every migration revision shipped with this version of TradeFleet."""
    from alembic.script import ScriptDirectory

    return {script.revision for script in ScriptDirectory.from_config(alembic_config()).walk_revisions()}


@contextlib.contextmanager
def _connected(target: str | URL | Engine, operation: str) -> Iterator[Connection]:
    from alembic.util import CommandError

    engine = target if isinstance(target, Engine) else make_engine(target)
    try:
        with engine.connect() as connection:
            yield connection
    except SQLAlchemyError as exc:
        raise storage_error(f"{operation} of {redact(engine.url)}", exc) from exc
    except CommandError as exc:  # e.g. a revision this version does not know: a newer TradeFleet migrated it
        raise StorageError(
            f"{operation} of {redact(engine.url)} failed: {exc}",
            hint="the database may have been migrated by a newer TradeFleet; run that version or a newer one",
        ) from exc
    finally:
        if engine is not target:
            engine.dispose()


def upgrade(target: str | URL | Engine, revision: str = "head") -> None:
    """Migrate the database at ``target`` (a URL or an engine) to ``revision``; a no-op when already there."""
    from alembic import command

    with _MIGRATION_LOCK, _connected(target, "migration") as connection:
        command.upgrade(alembic_config(connection), revision)
        connection.commit()


def current_revision(target: str | URL | Engine) -> str | None:
    """Return the migration revision of the database at ``target``, or None for an empty database."""
    from alembic.runtime.migration import MigrationContext

    with _connected(target, "reading the schema revision") as connection:
        revision = MigrationContext.configure(connection).get_current_revision()
        connection.rollback()
        return revision


def _first_line(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None)
    text = str(orig if orig is not None else exc).strip()
    return text.splitlines()[0] if text else exc.__class__.__name__


_SCHEMA_PROBLEMS = ("no such table", "no such column", "does not exist", "undefined")
_LOCKED = ("database is locked", "database table is locked", "busy")


def storage_error(operation: str, exc: SQLAlchemyError) -> StorageError:
    """Translate a SQLAlchemy error raised by ``operation`` into a StorageError that says what to do."""
    text = _first_line(exc)
    lowered = text.lower()
    if isinstance(exc, DBAPIError) and (exc.connection_invalidated or "connect" in lowered):
        hint = "the database is unreachable: check DATABASE_URL, that the server runs and the database exists"
    elif any(marker in lowered for marker in _SCHEMA_PROBLEMS):
        hint = "the database schema is missing or out of date: run `tradefleet db upgrade`"
    elif any(marker in lowered for marker in _LOCKED):
        hint = (
            "another process held the SQLite write lock for longer than the busy timeout; "
            "stop the other writer, or use PostgreSQL when several processes write"
        )
    elif isinstance(exc, IntegrityError):
        hint = "the write conflicts with stored data (duplicate or missing key); nothing was written"
    else:
        hint = "check that the database is reachable, writable and not full; the cause is chained below"
    return StorageError(f"{operation} failed: {exc.__class__.__name__}: {text}", hint=hint)
