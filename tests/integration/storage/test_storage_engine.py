"""Engines: URL handling, SQLite durability settings, locking, and errors that say what to do."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tradefleet.adapters.storage import SqlTradingStore, make_engine, normalize_url, upgrade
from tradefleet.adapters.storage.db import redact
from tradefleet.adapters.storage.leases import SqlBotLogs, SqlLeases
from tradefleet.adapters.storage.owner_tables import SqlBotOwners
from tradefleet.core.errors import ConfigError, StorageError
from tradefleet.core.orders import Order, OrderIntent, OrderSide, OrderType


def order(client_order_id: str) -> Order:
    return Order(client_order_id, "alpha", "BTC/USDT", OrderSide.BUY, OrderType.MARKET, 1.0, OrderIntent.ENTRY, 1)


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    url = f"sqlite:///{(tmp_path / 'trading.sqlite').as_posix()}"
    upgrade(url)
    return url


@pytest.fixture
def impatient_store(sqlite_url: str) -> Iterator[SqlTradingStore]:
    """A store that waits only 50 ms for another process's write lock."""
    engine = make_engine(sqlite_url, busy_timeout_ms=50)
    store = SqlTradingStore(engine)
    yield store
    store.close()
    engine.dispose()


@pytest.mark.parametrize(
    ("given", "driver"),
    [
        ("postgresql://u:p@db:5432/fleet", "postgresql+psycopg"),
        ("postgres://u@db/fleet", "postgresql+psycopg"),
        ("postgresql+psycopg://u@db/fleet", "postgresql+psycopg"),
        ("sqlite:///var/tradefleet.sqlite", "sqlite"),
    ],
)
def test_postgresql_urls_use_psycopg_3(given: str, driver: str) -> None:
    assert normalize_url(given).drivername == driver


@pytest.mark.parametrize("url", ["mysql://u@db/fleet", "not a url"])
def test_unsupported_or_malformed_urls_are_config_errors(url: str) -> None:
    with pytest.raises(ConfigError):
        make_engine(url)


def test_redact_hides_the_password() -> None:
    assert redact("postgresql://fleet:s3cret@db/fleet") == "postgresql://fleet:***@db/fleet"


def test_sqlite_connections_are_durable_wal_with_foreign_keys(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path}/missing/dir/db.sqlite", busy_timeout_ms=1234)
    try:
        with engine.connect() as conn:
            pragmas = {
                name: conn.exec_driver_sql(f"PRAGMA {name}").scalar()
                for name in ("journal_mode", "synchronous", "foreign_keys", "busy_timeout")
            }
    finally:
        engine.dispose()
    assert pragmas == {"journal_mode": "wal", "synchronous": 2, "foreign_keys": 1, "busy_timeout": 1234}
    assert (tmp_path / "missing" / "dir" / "db.sqlite").exists()


def test_in_memory_sqlite_keeps_one_database_for_the_engine() -> None:
    engine = make_engine("sqlite://")
    try:
        upgrade(engine)
        store = SqlTradingStore(engine)
        store.set_state("k", "v")
        assert store.get_state("k") == "v"
        store.close()
    finally:
        engine.dispose()


def test_store_on_an_unmigrated_database_says_to_run_db_upgrade(tmp_path: Path) -> None:
    store = SqlTradingStore.from_url(f"sqlite:///{tmp_path}/empty.sqlite")
    try:
        with pytest.raises(StorageError) as caught:
            store.add_order(order("c-1"))
    finally:
        store.close()
    assert "add_order failed" in caught.value.message
    assert "tradefleet db upgrade" in caught.value.hint


def test_writer_blocked_by_another_process_gets_a_lock_error_then_recovers(
    sqlite_url: str, impatient_store: SqlTradingStore
) -> None:
    other = sqlite3.connect(sqlite_url.removeprefix("sqlite:///"), isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")
        with pytest.raises(StorageError) as caught:
            impatient_store.add_order(order("c-1"))
        assert "write lock" in caught.value.hint
        assert impatient_store.get_order("c-0") is None  # readers are not blocked by the writer
        other.execute("ROLLBACK")
    finally:
        other.close()

    assert impatient_store.add_order(order("c-1")) is True


def test_a_read_only_transaction_neither_waits_for_nor_leaves_behind_a_lock_mode(
    sqlite_url: str, impatient_store: SqlTradingStore
) -> None:
    path = sqlite_url.removeprefix("sqlite:///")
    other = sqlite3.connect(path, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")  # another process writes all along
        with impatient_store.transaction(write=False):
            assert impatient_store.get_order("c-0") is None
            assert impatient_store.get_state("k") is None
        other.execute("ROLLBACK")
    finally:
        other.close()

    with impatient_store.transaction(write=False):
        pass  # no statement ran: the next block must still be a writer's
    with impatient_store.transaction():
        assert impatient_store.get_state("k") is None  # a writer's block holds the write lock from its start
        probe = sqlite3.connect(path, isolation_level=None, timeout=0)
        try:
            with pytest.raises(sqlite3.OperationalError, match="locked"):
                probe.execute("BEGIN IMMEDIATE")
        finally:
            probe.close()
        impatient_store.set_state("k", "v")
    assert impatient_store.get_state("k") == "v"


def test_owner_lease_and_log_readers_do_not_wait_for_a_writer(sqlite_url: str) -> None:
    engine = make_engine(sqlite_url, busy_timeout_ms=50)
    owners, leases, logs = SqlBotOwners(engine), SqlLeases(engine), SqlBotLogs(engine)
    other = sqlite3.connect(sqlite_url.removeprefix("sqlite:///"), isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")
        assert (owners.owner_of("alpha"), owners.owners()) == (None, {})
        assert (leases.holder("alpha"), leases.live_leases(), leases.gateways()) == (None, {}, [])
        assert logs.recent("alpha") == []
        other.execute("ROLLBACK")
    finally:
        other.close()
        engine.dispose()


def test_unreachable_postgresql_raises_a_storage_error_with_a_hint() -> None:
    with pytest.raises(StorageError) as caught:
        upgrade("postgresql://nobody@127.0.0.1:9/none?connect_timeout=2")
    assert "DATABASE_URL" in caught.value.hint
    assert "127.0.0.1" in caught.value.message


def test_one_store_is_safe_to_share_between_threads(store: SqlTradingStore) -> None:
    errors: list[BaseException] = []

    def place(worker: int) -> None:
        try:
            for i in range(50):
                with store.transaction():
                    store.add_order(order(f"w{worker}-{i}"))
                    store.set_state(f"w{worker}", str(i))
        except BaseException as exc:  # collected and re-raised in the test thread
            errors.append(exc)

    threads = [threading.Thread(target=place, args=(w,)) for w in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert errors == []
    assert len(store.list_orders("alpha")) == 200
    assert [store.get_state(f"w{w}") for w in range(4)] == ["49"] * 4


def test_store_reconnects_after_the_server_dropped_its_connection(store: SqlTradingStore, database_url: str) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("only a database server can drop a connection")
    import psycopg
    from sqlalchemy.engine import make_url

    store.set_state("k", "v")
    conninfo = make_url(database_url).render_as_string(hide_password=False)
    with psycopg.connect(conninfo, autocommit=True) as admin:
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )

    with pytest.raises(StorageError) as caught:
        store.get_state("k")
    assert "unreachable" in caught.value.hint
    assert store.get_state("k") == "v"
