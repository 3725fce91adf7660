"""``tradefleet strategy new|list|validate`` through the real command line."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner, Result

from tradefleet.cli import root
from tradefleet.cli.strategy import register

ENTRY_EXIT = """
    def populate_entry_trend(self, df):
        df["enter_long"] = (df["close"] > df["sma"]).astype("int8")
        return df

    def populate_exit_trend(self, df):
        df["exit_long"] = (df["close"] < df["sma"]).astype("int8")
        return df
"""

STRATEGY = (
    """
from tradefleet.core.strategy import IStrategy, IntParameter


class {name}(IStrategy):
    period = IntParameter(5, 50, default=20)

    def populate_indicators(self, df):
        df["sma"] = df["close"].rolling(self.period.value).mean()
        return df
"""
    + ENTRY_EXIT
)


@pytest.fixture
def cli() -> typer.Typer:
    app = typer.Typer(pretty_exceptions_enable=False)
    app.callback()(root)
    register(app)
    return app


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)  # no stray ./tradefleet.toml
    return tmp_path / "var"


def run(cli: typer.Typer, data_dir: Path, *args: str) -> Result:
    return CliRunner().invoke(cli, ["--data-dir", str(data_dir), "strategy", *args])


def write(path: Path, source: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(source), encoding="utf-8")
    return path


def assert_one_line_error(result: Result, *fragments: str) -> str:
    assert result.exit_code != 0, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    for fragment in fragments:
        assert fragment in lines[0]
    return lines[0]


def test_new_writes_a_valid_strategy_into_the_data_dir(cli: typer.Typer, data_dir: Path) -> None:
    result = run(cli, data_dir, "new", "MyStrategy")
    assert result.exit_code == 0, result.output
    path = data_dir / "strategies" / "my_strategy.py"
    assert path.is_file() and f"created {path}" in result.stdout
    validated = run(cli, data_dir, "validate", str(path))
    assert validated.exit_code == 0, validated.output
    assert validated.stdout.startswith("OK: MyStrategy (")
    by_name = run(cli, data_dir, "validate", "MyStrategy")
    assert by_name.exit_code == 0, by_name.output


def test_new_honours_dir(cli: typer.Typer, data_dir: Path, tmp_path: Path) -> None:
    result = run(cli, data_dir, "new", "Elsewhere", "--dir", str(tmp_path / "mine"))
    assert result.exit_code == 0, result.output
    assert (tmp_path / "mine" / "elsewhere.py").is_file()
    assert not (data_dir / "strategies").exists()


def test_new_refuses_an_existing_file_without_force(cli: typer.Typer, data_dir: Path) -> None:
    assert run(cli, data_dir, "new", "Twice").exit_code == 0
    path = data_dir / "strategies" / "twice.py"
    path.write_text("# edited\n", encoding="utf-8")
    assert_one_line_error(run(cli, data_dir, "new", "Twice"), "already exists", "--force")
    assert path.read_text(encoding="utf-8") == "# edited\n"
    assert run(cli, data_dir, "new", "Twice", "--force").exit_code == 0
    assert "class Twice(IStrategy)" in path.read_text(encoding="utf-8")


@pytest.mark.parametrize("name", ["class", "9Lives", "my-strategy", "SmaCross"])
def test_new_refuses_bad_class_names(cli: typer.Typer, data_dir: Path, name: str) -> None:
    assert_one_line_error(run(cli, data_dir, "new", name), repr(name) if name != "SmaCross" else "built-in")
    assert not (data_dir / "strategies").exists()


def test_list_shows_builtins_and_user_strategies_with_parameters(cli: typer.Typer, data_dir: Path) -> None:
    write(data_dir / "strategies" / "mine.py", STRATEGY.format(name="Mine"))
    write(data_dir / "strategies" / "broken.py", "def (:\n")
    result = run(cli, data_dir, "list")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["NAME", "TIMEFRAME", "SOURCE", "PARAMETERS"]
    sma = next(line for line in lines if line.startswith("SmaCross "))
    assert "built-in" in sma and "fast=10 (3..40, buy)" in sma and "slow=50 (20..200, buy)" in sma
    mine = next(line for line in lines if line.startswith("Mine "))
    assert str(data_dir / "strategies" / "mine.py") in mine and "period=20 (5..50, buy)" in mine
    broken = next(line for line in lines if line.startswith("broken "))
    assert "error:" in broken and "syntax error" in broken
    assert "4 built-in, 2 in" in result.stdout


def test_validate_a_builtin_by_name(cli: typer.Typer, data_dir: Path) -> None:
    result = run(cli, data_dir, "validate", "MacdTrend")
    assert result.exit_code == 0, result.output
    assert "no look-ahead" in result.stdout


def test_validate_syntax_error_names_file_and_line(cli: typer.Typer, data_dir: Path, tmp_path: Path) -> None:
    path = write(tmp_path / "bad.py", "from tradefleet.core.strategy import IStrategy\n\nclass Bad(IStrategy:\n")
    assert_one_line_error(run(cli, data_dir, "validate", str(path)), f"{path}:3: syntax error")


def test_validate_import_error_names_the_line(cli: typer.Typer, data_dir: Path, tmp_path: Path) -> None:
    path = write(tmp_path / "imp.py", "import tradefleet_no_such_thing\n" + STRATEGY.format(name="Imp"))
    assert_one_line_error(run(cli, data_dir, "validate", str(path)), f"{path}:1: import failed")


def test_validate_missing_method(cli: typer.Typer, data_dir: Path, tmp_path: Path) -> None:
    source = STRATEGY.format(name="Half").split("    def populate_exit_trend")[0]
    path = write(tmp_path / "half.py", source)
    assert_one_line_error(run(cli, data_dir, "validate", str(path)), "Half does not define populate_exit_trend")


def test_validate_look_ahead(cli: typer.Typer, data_dir: Path, tmp_path: Path) -> None:
    source = STRATEGY.format(name="Cheat").replace(".rolling(self.period.value).mean()", ".shift(-1)")
    path = write(tmp_path / "cheat.py", source)
    line = assert_one_line_error(run(cli, data_dir, "validate", str(path)), "Cheat looks ahead: column 'sma'")
    assert "`.shift(-1)` reads a later candle" in line


def test_validate_wrong_signal_columns(cli: typer.Typer, data_dir: Path, tmp_path: Path) -> None:
    source = STRATEGY.format(name="Wrong").replace('"enter_long"', '"buy"').replace('"exit_long"', '"sell"')
    path = write(tmp_path / "wrong.py", source)
    assert_one_line_error(run(cli, data_dir, "validate", str(path)), "never sets the signal column(s) enter_long")


def test_validate_bad_stoploss(cli: typer.Typer, data_dir: Path, tmp_path: Path) -> None:
    source = STRATEGY.format(name="Loose").replace("    period =", "    stoploss = -1.5\n    period =")
    path = write(tmp_path / "loose.py", source)
    assert_one_line_error(run(cli, data_dir, "validate", str(path)), "stoploss must be a ratio in (-1, 0)")


def test_validate_picks_a_class_with_path_colon_name(cli: typer.Typer, data_dir: Path, tmp_path: Path) -> None:
    path = write(tmp_path / "pair.py", STRATEGY.format(name="Left") + STRATEGY.format(name="Right"))
    assert_one_line_error(run(cli, data_dir, "validate", str(path)), "several strategies (Left, Right)")
    result = run(cli, data_dir, "validate", f"{path}:Right")
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("OK: Right (")


def test_validate_unknown_name(cli: typer.Typer, data_dir: Path) -> None:
    assert_one_line_error(run(cli, data_dir, "validate", "NoSuchThing"), "unknown strategy 'NoSuchThing'")


def test_validate_prints_unconfirmed_suspicions_as_warnings(cli: typer.Typer, data_dir: Path, tmp_path: Path) -> None:
    source = STRATEGY.format(name="Careful").replace(
        "        return df\n", "        assert df['close'].max() > 0\n        return df\n", 1
    )
    path = write(tmp_path / "careful.py", source)
    result = run(cli, data_dir, "validate", str(path))
    assert result.exit_code == 0, result.output
    assert "warning: line 10: `.max()` over a whole column" in result.stdout
