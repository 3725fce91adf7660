"""Settings layering, validation messages, masking and ``tradefleet config show``."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any

import pytest
import typer
from pydantic import SecretStr, ValidationError
from typer.testing import CliRunner

from tradefleet.cli import root
from tradefleet.cli.config import register, to_toml
from tradefleet.config import WELL_KNOWN_ENV, LogSettings, Settings, load_settings
from tradefleet.core.errors import ConfigError
from tradefleet.core.risk import RiskSettings

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _no_settings_file_in_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # load_settings reads ./tradefleet.toml when present: run every test in an empty directory.
    monkeypatch.chdir(tmp_path)


def write_toml(tmp_path: Path, text: str, name: str = "settings.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def config_error(**kwargs: Any) -> ConfigError:
    kwargs.setdefault("env", {})
    with pytest.raises(ConfigError) as info:
        load_settings(**kwargs)
    return info.value


# --- defaults -----------------------------------------------------------------------------------------


def test_defaults_keep_state_in_var_with_an_embedded_sqlite_file() -> None:
    settings = load_settings(env={})
    assert settings.data_dir == Path("var")
    assert settings.database_url == "sqlite:///var/tradefleet.sqlite"
    assert settings.candles_dir == Path("var/candles")
    assert settings.strategies_dir == Path("var/strategies")
    assert settings.redis.url is None
    assert settings.exchange.default == "simulated"
    assert settings.exchange.sandbox is True


def test_database_url_follows_an_absolute_data_dir(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    assert settings.database_url == f"sqlite:///{tmp_path.as_posix()}/tradefleet.sqlite"


def test_default_paper_fleet_is_four_demo_bots_on_five_minute_candles() -> None:
    bots = load_settings(env={}).paper.bots
    assert [(b.bot_id, b.strategy, b.pairs) for b in bots] == [
        ("sma-btc", "SmaCross", ["BTC/USDT"]),
        ("rsi-eth", "RsiMeanReversion", ["ETH/USDT"]),
        ("bb-sol", "BollingerBreakout", ["SOL/USDT"]),
        ("macd-bnb", "MacdTrend", ["BNB/USDT"]),
    ]
    assert {b.timeframe for b in bots} == {"5m"}


def test_simulated_exchange_defaults() -> None:
    sim = Settings().simulated
    assert (sim.taker_fee, sim.maker_fee, sim.slippage_bps) == (0.001, 0.001, 5.0)
    assert (sim.starting_balance, sim.quote, sim.synthetic_seed, sim.synthetic_days) == (
        10_000.0,
        "USDT",
        7,
        60,
    )


def test_settings_constructed_directly_ignore_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRADEFLEET__PAPER__SPEED", "5")
    monkeypatch.setenv("DATABASE_URL", "postgresql://db/x")
    settings = Settings()
    assert settings.paper.speed == 60.0
    assert settings.database.url is None


def test_settings_are_frozen() -> None:
    settings = Settings()
    with pytest.raises(ValidationError):
        settings.data_dir = Path("elsewhere")
    with pytest.raises(ValidationError):
        settings.paper.speed = 1.0


# --- layering -----------------------------------------------------------------------------------------


def test_file_beats_defaults_env_beats_file_and_overrides_beat_env(tmp_path: Path) -> None:
    path = write_toml(tmp_path, "[paper]\nspeed = 10\ntimeframe = '15m'\n")
    env = {"TRADEFLEET__PAPER__SPEED": "20"}
    assert load_settings(path, env={}).paper.speed == 10
    assert load_settings(path, env=env).paper.speed == 20
    settings = load_settings(path, overrides={"paper.speed": 30}, env=env)
    assert settings.paper.speed == 30
    assert settings.paper.timeframe == "15m"  # untouched keys of the file survive


def test_tradefleet_toml_in_the_working_directory_is_read_by_default(tmp_path: Path) -> None:
    write_toml(tmp_path, "[api]\nport = 9000\n", name="tradefleet.toml")
    assert load_settings(env={}).api.port == 9000


def test_missing_explicit_settings_file_is_an_error(tmp_path: Path) -> None:
    error = config_error(config_file=tmp_path / "nope.toml")
    assert "nope.toml: settings file not found" in error.message


def test_invalid_toml_names_the_file(tmp_path: Path) -> None:
    path = write_toml(tmp_path, "[paper\nspeed = 1\n")
    assert config_error(config_file=path).message.startswith(f"{path}: not valid TOML")


def test_env_names_are_case_insensitive() -> None:
    settings = load_settings(env={"tradefleet__Log__Level": "debug"})
    assert settings.log.level == "DEBUG"


def test_empty_environment_values_count_as_unset() -> None:
    settings = load_settings(env={"DATABASE_URL": "", "TRADEFLEET__API__PORT": ""})
    assert settings.database.url is None
    assert settings.api.port == 8080


def test_dotted_and_nested_overrides_merge_and_none_means_not_given(tmp_path: Path) -> None:
    settings = load_settings(
        overrides={"data_dir": tmp_path, "log": {"json": True}, "paper.speed": None, "log.level": "warning"},
        env={"TRADEFLEET__PAPER__SPEED": "2"},
    )
    assert settings.data_dir == tmp_path
    assert settings.log.json is True
    assert settings.log.level == "WARNING"
    assert settings.paper.speed == 2


def test_env_json_value_replaces_a_list_from_the_file(tmp_path: Path) -> None:
    path = write_toml(tmp_path, "[[paper.bots]]\nbot_id = 'a'\nstrategy = 'SmaCross'\npairs = ['BTC/USDT']\n")
    bots = json.dumps([{"bot_id": "b", "strategy": "MacdTrend", "pairs": ["ETH/USDT", "SOL/USDT"]}])
    settings = load_settings(path, env={"TRADEFLEET__PAPER__BOTS": bots})
    assert [(b.bot_id, b.pairs) for b in settings.paper.bots] == [("b", ["ETH/USDT", "SOL/USDT"])]


def test_malformed_json_in_env_names_the_variable() -> None:
    error = config_error(env={"TRADEFLEET__PAPER__BOTS": "[{oops"})
    assert error.message.startswith("TRADEFLEET__PAPER__BOTS: not valid JSON")


# --- well-known environment names ---------------------------------------------------------------------


def _value_at(settings: Settings, path: tuple[str, ...]) -> Any:
    node: Any = settings
    for part in path:
        node = node[part] if isinstance(node, dict) else getattr(node, part)
    return node.get_secret_value() if isinstance(node, SecretStr) else node


WELL_KNOWN_SAMPLES = {
    "DATABASE_URL": "postgresql://tf@db:5432/tradefleet",
    "REDIS_URL": "redis://cache:6379/0",
    "QDRANT_URL": "http://qdrant:6333",
    "FREQTRADE_API_URL": "http://freqtrade:8080",
    "FREQTRADE_API_USER": "ft-user",
    "FREQTRADE_API_PASSWORD": "ft-pass",
    "INTER_SERVICE_TOKEN": "svc-token",
    "OPENAI_API_KEY": "sk-test",
    "OPENAI_BASE_URL": "http://llm:8000/v1",
    "OPENROUTER_API_KEY": "or-test",
    "N8N_WEBHOOK_URL": "http://n8n:5678/webhook",
    "CONTROLLER_PORT": "8090",
}


@pytest.mark.parametrize(("names", "path"), [w for w in WELL_KNOWN_ENV if w[0][0] in WELL_KNOWN_SAMPLES])
def test_well_known_environment_name_sets_its_setting(names: tuple[str, ...], path: tuple[str, ...]) -> None:
    raw = WELL_KNOWN_SAMPLES[names[0]]
    value = _value_at(load_settings(env={names[0]: raw}), path)
    assert str(value) == raw


def test_every_well_known_name_of_the_architecture_is_mapped() -> None:
    names = {n for names, _path in WELL_KNOWN_ENV for n in names}
    assert names == {*WELL_KNOWN_SAMPLES, "BINANCE_API_KEY", "BINANCE_API_SECRET"} | {
        "FREQTRADE_USERNAME",
        "FREQTRADE_PASSWORD",
    }


def test_freqtrade_aliases_apply_and_canonical_names_win() -> None:
    only_alias = load_settings(env={"FREQTRADE_USERNAME": "alias", "FREQTRADE_PASSWORD": "pw"})
    assert only_alias.integrations.freqtrade_api_user == "alias"
    assert _value_at(only_alias, ("integrations", "freqtrade_api_password")) == "pw"
    both = load_settings(env={"FREQTRADE_USERNAME": "alias", "FREQTRADE_API_USER": "canonical"})
    assert both.integrations.freqtrade_api_user == "canonical"


def test_prefixed_variable_beats_its_well_known_name() -> None:
    settings = load_settings(
        env={"DATABASE_URL": "postgresql://db/a", "TRADEFLEET__DATABASE__URL": "postgresql://db/b"}
    )
    assert settings.database.url == "postgresql://db/b"


def test_binance_keys_become_the_binance_account() -> None:
    settings = load_settings(env={"BINANCE_API_KEY": "key", "BINANCE_API_SECRET": "secret"})
    account = settings.exchange.accounts["binance"]
    assert account.exchange == "binance"
    assert account.api_key is not None and account.api_key.get_secret_value() == "key"
    assert account.secret is not None and account.secret.get_secret_value() == "secret"


def test_heroku_style_postgres_scheme_is_normalised() -> None:
    assert load_settings(env={"DATABASE_URL": "postgres://u@db/x"}).database.url == "postgresql://u@db/x"


# --- errors name the key and its source ---------------------------------------------------------------


def test_unknown_key_in_file_names_file_key_and_suggestion(tmp_path: Path) -> None:
    path = write_toml(tmp_path, "[paper]\nsped = 3\n", name="tradefleet.toml")
    error = config_error(config_file=path)
    assert error.message == f"{path}: paper.sped: unknown setting (did you mean 'speed'?)"
    assert error.details == [{"key": "paper.sped", "source": str(path), "message": error.message.split(": ")[-1]}]


def test_unknown_top_level_section_in_file_is_an_error(tmp_path: Path) -> None:
    path = write_toml(tmp_path, "[exchnage]\ndefault = 'binance'\n")
    assert config_error(config_file=path).message == (f"{path}: exchnage: unknown setting (did you mean 'exchange'?)")


def test_unknown_prefixed_variable_names_the_variable() -> None:
    error = config_error(env={"TRADEFLEET__PAPER__SPED": "3"})
    assert error.message == "TRADEFLEET__PAPER__SPED: unknown setting (did you mean 'speed'?)"


def test_unknown_override_names_the_command_line() -> None:
    assert config_error(overrides={"paper.sped": 3}).message.startswith("command line: paper.sped: unknown")


def test_keys_reserved_by_pydantic_settings_are_unknown_settings() -> None:
    assert config_error(overrides={"_env_file": ".env"}).message == "command line: _env_file: unknown setting"


def test_wrong_type_in_env_names_the_variable() -> None:
    error = config_error(env={"TRADEFLEET__PAPER__SPEED": "fast"})
    assert error.message == "TRADEFLEET__PAPER__SPEED: not a valid number (got 'fast')"


def test_wrong_type_in_file_names_file_and_key(tmp_path: Path) -> None:
    path = write_toml(tmp_path, "[api]\nport = 'eighty'\n")
    assert config_error(config_file=path).message == f"{path}: api.port: not a valid integer (got 'eighty')"


def test_wrong_type_in_well_known_name_names_the_variable() -> None:
    assert config_error(env={"CONTROLLER_PORT": "x"}).message == "CONTROLLER_PORT: not a valid integer (got 'x')"


def test_wrong_type_for_a_secret_does_not_echo_the_value(tmp_path: Path) -> None:
    path = write_toml(tmp_path, "[exchange.accounts.kraken]\napi_key = 918273645\nsecret = 'x'\n")
    error = config_error(config_file=path)
    assert error.message == f"{path}: exchange.accounts.kraken.api_key: not a text value"


def test_every_problem_is_reported_in_one_line() -> None:
    error = config_error(env={"TRADEFLEET__LOG__LEVEL": "loud", "TRADEFLEET__API__PORT": "0"})
    assert "\n" not in error.one_line()
    assert "TRADEFLEET__LOG__LEVEL: must be 'DEBUG'" in error.message
    assert "TRADEFLEET__API__PORT: must be greater than or equal to 1" in error.message


def test_paper_speed_must_be_positive() -> None:
    assert config_error(overrides={"paper.speed": 0}).message == ("command line: paper.speed: must be greater than 0")


def test_duplicate_paper_bot_ids_are_rejected(tmp_path: Path) -> None:
    bot = "[[paper.bots]]\nbot_id = 'twin'\nstrategy = 'SmaCross'\npairs = ['BTC/USDT']\n"
    path = write_toml(tmp_path, bot + bot)
    assert config_error(config_file=path).message == f"{path}: paper: bot ids must be unique; repeated: twin"


def test_paper_bot_with_an_invalid_pair_names_the_bot_index(tmp_path: Path) -> None:
    path = write_toml(tmp_path, "[[paper.bots]]\nbot_id = 'a'\nstrategy = 'SmaCross'\npairs = ['BTCUSDT']\n")
    assert config_error(config_file=path).message == f"{path}: paper.bots[0].pairs: invalid pair 'BTCUSDT'"


def test_paper_bot_pairs_must_be_quoted_in_the_simulated_quote(tmp_path: Path) -> None:
    path = write_toml(tmp_path, "[[paper.bots]]\nbot_id = 'eur'\nstrategy = 'SmaCross'\npairs = ['BTC/EUR']\n")
    error = config_error(config_file=path)
    assert "paper.bots[0] (eur): BTC/EUR not quoted in simulated.quote USDT" in error.message


def test_api_key_without_secret_is_rejected() -> None:
    error = config_error(env={"BINANCE_API_KEY": "k"})
    assert error.message == ("BINANCE_API_KEY: exchange.accounts.binance: api_key and secret must be set together")


def test_contradictory_risk_settings_are_rejected_with_the_reason() -> None:
    error = config_error(env={"TRADEFLEET__RISK__STAKE_AMOUNT": "60"})
    assert error.message.startswith("TRADEFLEET__RISK__STAKE_AMOUNT: risk: 3 trades × 60.0% stake exceeds")


# --- derived values -------------------------------------------------------------------------------------


def test_bots_without_a_timeframe_take_the_paper_timeframe(tmp_path: Path) -> None:
    path = write_toml(
        tmp_path,
        "[paper]\ntimeframe = '1h'\n"
        "[[paper.bots]]\nbot_id = 'a'\nstrategy = 'SmaCross'\npairs = ['BTC/USDT']\n"
        "[[paper.bots]]\nbot_id = 'b'\nstrategy = 'SmaCross'\npairs = ['ETH/USDT']\ntimeframe = '15m'\n",
    )
    assert [b.timeframe for b in load_settings(path, env={}).paper.bots] == ["1h", "15m"]
    demo = load_settings(env={"TRADEFLEET__PAPER__TIMEFRAME": "1h"}).paper.bots
    assert {b.timeframe for b in demo} == {"1h"}


def test_paper_bot_configs_fill_in_fleet_defaults(tmp_path: Path) -> None:
    path = write_toml(
        tmp_path,
        "[risk]\nstake_amount = 10.0\n"
        "[[paper.bots]]\nbot_id = 'own'\nstrategy = 'SmaCross'\npairs = ['BTC/USDT']\n"
        "starting_balance = 500.0\n"
        "[paper.bots.risk]\nstake_mode = 'fixed'\nstake_amount = 50.0\n"
        "[[paper.bots]]\nbot_id = 'fleet'\nstrategy = 'SmaCross'\npairs = ['ETH/USDT']\n",
    )
    own, fleet = load_settings(path, env={}).paper_bot_configs()
    assert (own.mode, own.exchange, own.quote_currency) == ("paper", "simulated", "USDT")
    assert own.starting_balance == 500.0
    assert own.risk == RiskSettings.model_validate({"stake_mode": "fixed", "stake_amount": 50.0})
    assert fleet.starting_balance == 10_000.0
    assert fleet.risk.stake_amount == 10.0


# --- masking ------------------------------------------------------------------------------------------


def test_masked_hides_every_secret_and_url_credentials() -> None:
    env = {
        "BINANCE_API_KEY": "binance-key-123",
        "BINANCE_API_SECRET": "binance-secret-456",
        "DATABASE_URL": "postgresql://trader:hunter2@db:5432/tf",
        "REDIS_URL": "redis://:redispw@cache:6379/0",
        "OPENAI_API_KEY": "sk-live-789",
        "INTER_SERVICE_TOKEN": "svc-abc",
        "FREQTRADE_API_PASSWORD": "ftpw",
    }
    masked = load_settings(env=env).masked()
    dumped = json.dumps(masked)
    for secret in (
        "binance-key-123",
        "binance-secret-456",
        "hunter2",
        "redispw",
        "sk-live-789",
        "svc-abc",
        "ftpw",
    ):
        assert secret not in dumped
    assert masked["database"]["url"] == "postgresql://trader:********@db:5432/tf"
    assert masked["redis"]["url"] == "redis://:********@cache:6379/0"
    assert masked["exchange"]["accounts"]["binance"]["secret"] == "********"
    assert masked["integrations"]["openai_api_key"] == "********"
    assert masked["integrations"]["openrouter_api_key"] is None  # unset stays visibly unset


def test_masked_hides_secret_looking_strategy_params(tmp_path: Path) -> None:
    path = write_toml(
        tmp_path,
        "[[paper.bots]]\nbot_id = 'a'\nstrategy = 'SmaCross'\npairs = ['BTC/USDT']\n"
        "[paper.bots.strategy_params]\nfast = 10\nfeed_token = 'abc'\n",
    )
    params = load_settings(path, env={}).masked()["paper"]["bots"][0]["strategy_params"]
    assert params == {"fast": 10, "feed_token": "********"}


def test_masked_is_plain_json_data_with_the_log_json_key(tmp_path: Path) -> None:
    masked = Settings(data_dir=tmp_path, log=LogSettings(json=True)).masked()
    assert json.loads(json.dumps(masked)) == masked
    assert masked["data_dir"] == tmp_path.as_posix()
    assert masked["log"] == {"level": "INFO", "json": True}


# --- tradefleet config show -----------------------------------------------------------------------------


@pytest.fixture
def cli() -> typer.Typer:
    app = typer.Typer(pretty_exceptions_enable=False)
    app.callback()(root)
    register(app)
    return app


SECRET_ENV = {
    "BINANCE_API_KEY": "binance-key-123",
    "BINANCE_API_SECRET": "binance-secret-456",
    "DATABASE_URL": "postgresql://trader:hunter2@db:5432/tf",
}


def test_config_show_prints_toml_with_secrets_masked(cli: typer.Typer) -> None:
    result = CliRunner().invoke(cli, ["config", "show"], env=SECRET_ENV)
    assert result.exit_code == 0, result.output
    for secret in SECRET_ENV.values():
        assert secret not in result.stdout
    shown = tomllib.loads(result.stdout)
    assert shown["database"]["url"] == "postgresql://trader:********@db:5432/tf"
    assert shown["exchange"]["accounts"]["binance"]["secret"] == "********"
    assert '# database_url = "postgresql://trader:********@db:5432/tf"' in result.stdout


def test_config_show_json_reflects_global_flags(cli: typer.Typer, tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["--data-dir", str(tmp_path), "config", "show", "--json"], env=SECRET_ENV)
    assert result.exit_code == 0, result.output
    shown = json.loads(result.stdout)
    assert shown["data_dir"] == tmp_path.as_posix()
    assert shown["exchange"]["accounts"]["binance"]["api_key"] == "********"
    assert "hunter2" not in result.stdout


def test_config_show_output_loads_back_to_the_same_settings(cli: typer.Typer, tmp_path: Path) -> None:
    source = write_toml(tmp_path, "[paper]\nspeed = 5.5\n[log]\njson = false\n[exchange.accounts.kraken]\n")
    result = CliRunner().invoke(cli, ["--config", str(source), "config", "show"])
    assert result.exit_code == 0, result.output
    reloaded = load_settings(write_toml(tmp_path, result.stdout, name="shown.toml"), env={})
    assert reloaded == load_settings(source, env={})


def test_config_show_rejects_unknown_key_in_file_with_one_line(cli: typer.Typer, tmp_path: Path) -> None:
    path = write_toml(tmp_path, "[paper]\nsped = 3\n", name="tradefleet.toml")
    result = CliRunner().invoke(cli, ["--config", str(path), "config", "show"])
    assert result.exit_code != 0
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(f"error: {path}: paper.sped: unknown setting")


def test_config_show_rejects_wrong_type_in_env_naming_the_variable(cli: typer.Typer) -> None:
    result = CliRunner().invoke(cli, ["config", "show", "--json"], env={"TRADEFLEET__PAPER__SPEED": "fast"})
    assert result.exit_code != 0
    assert result.stderr.startswith("error: TRADEFLEET__PAPER__SPEED: not a valid number")


def test_to_toml_writes_unset_values_as_comments_and_quotes_odd_keys() -> None:
    text = to_toml({"a": None, "b": {"odd key": 1, "nested": {"x": [1, 2]}}, "c": [{"d": "e"}], "e": {}})
    assert text.splitlines()[0] == "# a = (unset)"
    assert tomllib.loads(text) == {"b": {"odd key": 1, "nested": {"x": [1, 2]}}, "c": [{"d": "e"}], "e": {}}


def test_example_settings_file_is_valid_and_documents_every_section() -> None:
    example = REPO_ROOT / "tradefleet.example.toml"
    settings = load_settings(example, env={})
    sections = {name for name, field in Settings.model_fields.items() if name != "data_dir"}
    assert sections <= set(tomllib.loads(example.read_text(encoding="utf-8")))
    assert settings.exchange.default == "simulated"
