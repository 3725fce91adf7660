"""Schema migrations: the only way tables are created, idempotent, reversible and equal to ``tables.py``."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect

from tradefleet.adapters.storage import current_revision, head_revision, make_engine, upgrade
from tradefleet.adapters.storage.db import alembic_config
from tradefleet.adapters.storage.tables import metadata
from tradefleet.core.errors import StorageError

REPO_ROOT = Path(__file__).resolve().parents[3]


def table_names(url: str) -> set[str]:
    engine = make_engine(url)
    try:
        return set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def test_upgrade_creates_every_table_and_is_idempotent(database_url: str) -> None:
    assert current_revision(database_url) is None

    upgrade(database_url)
    upgrade(database_url)

    assert current_revision(database_url) == head_revision() == "0006"
    assert table_names(database_url) == set(metadata.tables) | {"alembic_version"}


def test_migrated_schema_matches_the_table_metadata(database_url: str) -> None:
    upgrade(database_url)
    engine = make_engine(database_url)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            assert compare_metadata(context, metadata) == []
    finally:
        engine.dispose()


def test_initial_migration_downgrades_to_an_empty_database_and_back(database_url: str) -> None:
    upgrade(database_url)
    engine = make_engine(database_url)
    try:
        with engine.connect() as conn:
            command.downgrade(alembic_config(conn), "base")
            conn.commit()
        assert table_names(database_url) == {"alembic_version"}
        upgrade(engine)
        assert current_revision(engine) == head_revision()
    finally:
        engine.dispose()


def test_upgrade_does_not_depend_on_the_working_directory(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    upgrade(database_url)
    assert current_revision(database_url) == head_revision()


def test_processes_upgrading_a_fresh_database_at_once_all_succeed(database_url: str) -> None:
    script = "import sys; from tradefleet.adapters.storage import upgrade; upgrade(sys.argv[1])"
    children = [
        subprocess.Popen([sys.executable, "-c", script, database_url], stderr=subprocess.PIPE, text=True)
        for _ in range(3)
    ]
    failures = [err for child in children if (err := child.communicate(timeout=120)[1]) and child.returncode]

    assert failures == []
    assert current_revision(database_url) == head_revision()


def test_threads_upgrading_at_once_all_succeed(database_url: str) -> None:
    errors: list[BaseException] = []

    def migrate() -> None:
        try:
            upgrade(database_url)
        except BaseException as exc:  # collected and checked in the test thread
            errors.append(exc)

    threads = [threading.Thread(target=migrate) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert errors == []
    assert current_revision(database_url) == head_revision()


def test_repository_alembic_ini_migrates_the_database_named_by_database_url(
    database_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.chdir(tmp_path)
    config = Config(str(REPO_ROOT / "alembic.ini"))

    command.upgrade(config, "head")

    assert current_revision(database_url) == head_revision()


def test_database_migrated_by_a_newer_version_is_refused_with_a_hint(database_url: str) -> None:
    upgrade(database_url)
    engine = make_engine(database_url)
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql("UPDATE alembic_version SET version_num = '9999'")
        with pytest.raises(StorageError) as caught:
            upgrade(engine)
    finally:
        engine.dispose()
    assert "newer TradeFleet" in caught.value.hint
    assert current_revision(database_url) == "9999"
