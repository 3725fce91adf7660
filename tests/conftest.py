"""Fixtures shared by the whole suite: databases on both backends, a migrated store, the real data set.

PostgreSQL tests need ``TRADEFLEET_TEST_DATABASE_URL`` (any database the user may connect to and create
databases from); each test gets a fresh database, dropped afterwards. Without the variable or the server
those tests are skipped, unless ``TRADEFLEET_REQUIRE_SERVICES=1`` turns the skip into a failure.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import pytest

if TYPE_CHECKING:
    from tradefleet.adapters.storage import SqlTradingStore

REPO_ROOT = Path(__file__).resolve().parents[1]
REAL_DATA_DIR = REPO_ROOT.parent / "shared" / "data" / "real"
PG_URL_VAR = "TRADEFLEET_TEST_DATABASE_URL"
_pg_down: list[str] = []  # why PostgreSQL did not answer, remembered so later tests skip without waiting


def skip_or_fail(reason: str) -> NoReturn:
    """Skip the test, or fail it when ``TRADEFLEET_REQUIRE_SERVICES=1`` says the service must be there."""
    if os.environ.get("TRADEFLEET_REQUIRE_SERVICES") == "1":
        pytest.fail(f"{reason} (TRADEFLEET_REQUIRE_SERVICES=1)")
    pytest.skip(reason)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """URL of an empty database: a SQLite file under ``tmp_path``, or a fresh PostgreSQL database."""
    if request.param == "sqlite":
        yield f"sqlite:///{(tmp_path / 'tradefleet.sqlite').as_posix()}"
        return
    yield from _fresh_postgres_database()


def _fresh_postgres_database() -> Iterator[str]:
    import psycopg
    from sqlalchemy.engine import make_url

    admin_url = os.environ.get(PG_URL_VAR, "")
    if not admin_url:
        skip_or_fail(f"PostgreSQL tests need {PG_URL_VAR}, e.g. postgresql://postgres@127.0.0.1:5432/test")
    if _pg_down:
        skip_or_fail(_pg_down[0])
    conninfo = make_url(admin_url).set(drivername="postgresql").render_as_string(hide_password=False)
    name = f"tradefleet_test_{uuid.uuid4().hex[:16]}"
    try:
        with psycopg.connect(conninfo, autocommit=True, connect_timeout=5) as admin:
            admin.execute(f'CREATE DATABASE "{name}"')
    except psycopg.OperationalError as exc:
        _pg_down.append(f"PostgreSQL at {make_url(admin_url)!r} does not answer: {' '.join(str(exc).split())}")
        skip_or_fail(_pg_down[0])
    try:
        yield make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(conninfo, autocommit=True, connect_timeout=5) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def store(database_url: str) -> Iterator[SqlTradingStore]:
    """A :class:`SqlTradingStore` on a freshly migrated database of each backend."""
    from tradefleet.adapters.storage import SqlTradingStore, make_engine, upgrade

    upgrade(database_url)
    engine = make_engine(database_url)
    trading_store = SqlTradingStore(engine)
    try:
        yield trading_store
    finally:
        trading_store.close()
        engine.dispose()


@pytest.fixture
def real_data_dir() -> Path:
    """The real market data set shared next to the repository (``../shared/data/real``)."""
    if not REAL_DATA_DIR.is_dir():
        pytest.skip(f"real data set not found at {REAL_DATA_DIR}")
    return REAL_DATA_DIR
