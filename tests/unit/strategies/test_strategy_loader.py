"""Loading strategies by name, by file and by ``file:Class``; listing them; creating new ones."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from tradefleet.core.errors import StrategyError, StrategyLoadError
from tradefleet.core.strategy import IStrategy
from tradefleet.strategies import SmaCross, list_strategies, load_strategy, validate_strategy
from tradefleet.strategies.loader import (
    check_class_name,
    create_strategy_file,
    load_strategy_file,
    render_template,
    split_target,
    strategy_file_name,
)

GOOD = """
import pandas as pd
from tradefleet.core.indicators import sma
from tradefleet.core.strategy import IStrategy, IntParameter


class {name}(IStrategy):
    timeframe = "{timeframe}"
    period = IntParameter(5, 50, default=20)

    def populate_indicators(self, df):
        df["sma"] = sma(df["close"], self.period.value)
        return df

    def populate_entry_trend(self, df):
        df["enter_long"] = (df["close"] > df["sma"]).astype("int8")
        return df

    def populate_exit_trend(self, df):
        df["exit_long"] = (df["close"] < df["sma"]).astype("int8")
        return df
"""


def write(path: Path, source: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(source), encoding="utf-8")
    return path


def good(name: str = "Mine", timeframe: str = "5m") -> str:
    return GOOD.format(name=name, timeframe=timeframe)


def test_builtin_name_loads_the_builtin_class() -> None:
    assert load_strategy("SmaCross") is SmaCross


def test_file_with_one_strategy_loads_it(tmp_path: Path) -> None:
    path = write(tmp_path / "mine.py", good())
    cls = load_strategy(str(path))
    assert cls.__name__ == "Mine" and issubclass(cls, IStrategy)
    assert cls().analyze is not None and "period" in cls.parameters()


def test_class_name_is_found_in_the_search_directories(tmp_path: Path) -> None:
    write(tmp_path / "a" / "first.py", good("First"))
    write(tmp_path / "b" / "second.py", good("Second", "1h"))
    write(tmp_path / "b" / "broken.py", "def (:\n")
    cls = load_strategy("Second", search_dirs=[tmp_path / "a", tmp_path / "b"])
    assert cls.__name__ == "Second" and cls.timeframe == "1h"


def test_path_colon_class_picks_one_of_several(tmp_path: Path) -> None:
    path = write(tmp_path / "two.py", good("One") + good("Two", "15m"))
    assert load_strategy(f"{path}:Two").timeframe == "15m"
    with pytest.raises(StrategyLoadError, match=r"several strategies \(One, Two\); name one as two.py:ClassName"):
        load_strategy(path)
    with pytest.raises(StrategyLoadError, match=r"no IStrategy subclass named Three \(strategies: One, Two\)"):
        load_strategy(f"{path}:Three")


def test_imported_strategy_classes_do_not_count_as_defined_in_the_file(tmp_path: Path) -> None:
    source = "from tradefleet.strategies import SmaCross\n\nclass Faster(SmaCross):\n    stoploss = -0.02\n"
    path = write(tmp_path / "sub.py", source)
    assert load_strategy(path).__name__ == "Faster"


def test_syntax_error_names_file_and_line(tmp_path: Path) -> None:
    path = write(tmp_path / "bad.py", good() + "\n    def oops(self:\n        pass\n")
    with pytest.raises(StrategyLoadError) as info:
        load_strategy(path)
    line = good().count("\n") + 2
    assert str(info.value).startswith(f"{path.resolve()}:{line}: syntax error")
    assert "\n" not in info.value.one_line()


def test_import_error_inside_the_file_names_the_import_line(tmp_path: Path) -> None:
    path = write(tmp_path / "imp.py", "import os\nimport not_a_module_anywhere\n" + good())
    with pytest.raises(StrategyLoadError, match=r"imp.py:2: import failed: ModuleNotFoundError: No module named"):
        load_strategy(path)


def test_exception_at_import_time_names_its_line(tmp_path: Path) -> None:
    path = write(tmp_path / "boom.py", good() + "\nVALUE = 1 / 0\n")
    with pytest.raises(StrategyLoadError, match=r"boom.py:\d+: import failed: ZeroDivisionError"):
        load_strategy(path)


def test_file_without_strategy_class_is_an_error(tmp_path: Path) -> None:
    path = write(tmp_path / "empty.py", "class NotAStrategy:\n    pass\n")
    with pytest.raises(StrategyLoadError, match="no IStrategy subclass defined in the file"):
        load_strategy(path)


def test_missing_file_and_unknown_name_are_errors(tmp_path: Path) -> None:
    with pytest.raises(StrategyLoadError, match="no such strategy file"):
        load_strategy(tmp_path / "nope.py")
    with pytest.raises(StrategyLoadError, match=r"unknown strategy 'Nope': not a built-in \(SmaCross"):
        load_strategy("Nope", search_dirs=[tmp_path])


def test_same_class_in_two_files_is_ambiguous(tmp_path: Path) -> None:
    write(tmp_path / "x.py", good("Twin"))
    write(tmp_path / "y.py", good("Twin"))
    with pytest.raises(StrategyLoadError, match="defined in several files"):
        load_strategy("Twin", search_dirs=[tmp_path])


def test_class_search_reports_the_syntax_error_of_the_file_that_defines_it(tmp_path: Path) -> None:
    write(tmp_path / "wip.py", good("Wip") + "\nx = (\n")
    with pytest.raises(StrategyLoadError, match=r"wip.py:\d+: syntax error"):
        load_strategy("Wip", search_dirs=[tmp_path])


def test_reloading_an_edited_file_sees_the_edit(tmp_path: Path) -> None:
    path = write(tmp_path / "edit.py", good(timeframe="5m"))
    assert load_strategy(path).timeframe == "5m"
    write(path, good(timeframe="1h"))
    assert load_strategy(path).timeframe == "1h"


def test_loaded_class_source_is_inspectable_for_the_static_scan(tmp_path: Path) -> None:
    path = write(tmp_path / "src.py", good())
    report = validate_strategy(load_strategy(path))
    assert report.source == f"{path.resolve()}:7"


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("a/b.py", ("a/b.py", None)),
        ("b.py:Cls", ("b.py", "Cls")),
        ("C:\\dir\\b.py:Cls", ("C:\\dir\\b.py", "Cls")),
        ("dir/file", ("dir/file", None)),
        ("SmaCross", None),
    ],
)
def test_split_target_tells_paths_from_class_names(target: str, expected: tuple[str, str | None] | None) -> None:
    assert split_target(target) == expected


def test_list_shows_builtins_user_strategies_and_broken_files(tmp_path: Path) -> None:
    write(tmp_path / "mine.py", good("Mine", "1h"))
    write(tmp_path / "broken.py", "import nothing_here_at_all\n")
    write(tmp_path / "_private.py", good("Hidden"))
    rows = {row.name: row for row in list_strategies([tmp_path, tmp_path / "missing"])}
    assert {"SmaCross", "RsiMeanReversion", "BollingerBreakout", "MacdTrend"} <= set(rows)
    assert rows["SmaCross"].builtin and rows["SmaCross"].timeframe == "5m"
    assert rows["Mine"].source == tmp_path / "mine.py" and rows["Mine"].timeframe == "1h"
    assert set(rows["Mine"].parameters) == {"period"}
    assert rows["broken"].error is not None and "ModuleNotFoundError" in rows["broken"].error
    assert "Hidden" not in rows


@pytest.mark.parametrize(
    ("name", "file"),
    [("MyStrategy", "my_strategy.py"), ("RSIStrategy2", "rsi_strategy2.py"), ("MACDTrend", "macd_trend.py"),
     ("simple", "simple.py")],
)  # fmt: skip
def test_strategy_file_names_are_snake_case(name: str, file: str) -> None:
    assert strategy_file_name(name) == file


@pytest.mark.parametrize("name", ["class", "1Strategy", "my-strategy", "My Strategy", "", "Stratégie", "SmaCross"])
def test_invalid_or_taken_class_names_are_refused(name: str) -> None:
    with pytest.raises(StrategyError):
        check_class_name(name)


def test_new_strategy_file_from_the_template_loads_and_validates(tmp_path: Path) -> None:
    path = create_strategy_file("MyStrategy", tmp_path / "strategies")
    assert path == tmp_path / "strategies" / "my_strategy.py"
    cls = load_strategy("MyStrategy", search_dirs=[tmp_path / "strategies"])
    report = validate_strategy(cls)
    assert report.entries > 0 and report.exits > 0 and report.warnings == []
    assert cls.trailing_stop is False


def test_new_strategy_file_refuses_to_overwrite_without_force(tmp_path: Path) -> None:
    path = create_strategy_file("Keep", tmp_path)
    path.write_text("# my edits\n", encoding="utf-8")
    with pytest.raises(StrategyError, match="already exists"):
        create_strategy_file("Keep", tmp_path)
    assert path.read_text(encoding="utf-8") == "# my edits\n"
    create_strategy_file("Keep", tmp_path, force=True)
    assert "class Keep(IStrategy)" in path.read_text(encoding="utf-8")


def test_template_substitutes_only_the_class_name() -> None:
    source = render_template("Alpha")
    assert "class Alpha(IStrategy):" in source
    assert "$" not in source
    compile(source, "alpha.py", "exec")


def test_load_strategy_file_accepts_a_class_name_argument(tmp_path: Path) -> None:
    path = write(tmp_path / "two.py", good("One") + good("Two"))
    assert load_strategy_file(path, "One").__name__ == "One"
