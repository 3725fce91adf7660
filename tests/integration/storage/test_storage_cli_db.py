"""``tradefleet db upgrade`` and ``tradefleet db current`` against both backends."""

from __future__ import annotations

from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from tradefleet.adapters.storage import current_revision, head_revision, make_engine, upgrade
from tradefleet.cli import root
from tradefleet.cli.db import register


@pytest.fixture
def cli() -> typer.Typer:
    app = typer.Typer(pretty_exceptions_enable=False)
    app.callback()(root)
    register(app)
    return app


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # no tradefleet.toml of the developer's
    monkeypatch.delenv("DATABASE_URL", raising=False)


def test_db_upgrade_migrates_the_database_url_and_reports_it_once(
    cli: typer.Typer, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATABASE_URL", database_url)
    runner = CliRunner()

    first = runner.invoke(cli, ["db", "upgrade"])
    second = runner.invoke(cli, ["db", "upgrade"])

    assert first.exit_code == 0, first.output
    assert f"upgraded from an empty database to revision {head_revision()}" in first.output
    assert second.exit_code == 0, second.output
    assert f"already at revision {head_revision()}" in second.output
    assert current_revision(database_url) == head_revision()


def test_db_current_tells_whether_an_upgrade_is_needed(
    cli: typer.Typer, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATABASE_URL", database_url)
    runner = CliRunner()

    behind = runner.invoke(cli, ["db", "current", "--check"])
    assert behind.exit_code == 1
    assert "revision (none)" in behind.output
    assert "run `tradefleet db upgrade`" in behind.output

    assert runner.invoke(cli, ["db", "upgrade"]).exit_code == 0
    current = runner.invoke(cli, ["db", "current", "--check"])
    assert current.exit_code == 0, current.output
    assert f"revision {head_revision()}, newest {head_revision()} (up to date)" in current.output


def test_db_current_flags_a_revision_this_version_does_not_know(
    cli: typer.Typer, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATABASE_URL", database_url)
    upgrade(database_url)
    engine = make_engine(database_url)
    with engine.begin() as conn:
        conn.exec_driver_sql("UPDATE alembic_version SET version_num = '9999'")
    engine.dispose()
    runner = CliRunner()

    current = runner.invoke(cli, ["db", "current", "--check"])
    upgraded = runner.invoke(cli, ["db", "upgrade"])

    assert current.exit_code == 1
    assert "newer TradeFleet" in current.output
    assert upgraded.exit_code == 1
    assert "newer TradeFleet" in upgraded.output


def test_without_database_url_the_sqlite_file_in_the_data_dir_is_used(cli: typer.Typer, tmp_path: Path) -> None:
    data_dir = tmp_path / "state"

    result = CliRunner().invoke(cli, ["--data-dir", str(data_dir), "db", "upgrade"])

    assert result.exit_code == 0, result.output
    assert current_revision(f"sqlite:///{data_dir / 'tradefleet.sqlite'}") == head_revision()


def test_db_upgrade_reports_an_unreachable_server_in_one_line(
    cli: typer.Typer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://fleet:s3cret@127.0.0.1:9/none?connect_timeout=2")

    result = CliRunner().invoke(cli, ["db", "upgrade"])

    assert result.exit_code == 1
    assert "error:" in result.output
    assert "DATABASE_URL" in result.output
    assert "s3cret" not in result.output
