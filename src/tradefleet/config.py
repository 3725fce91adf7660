"""Typed settings: one root, layered defaults < ``tradefleet.toml`` < environment < command line.

Load them with :func:`load_settings`. ``Settings(...)`` itself validates only the values it is given and
never reads the environment or a file, so tests and the composition root can build exact settings::

    settings = load_settings()                          # ./tradefleet.toml if present, then os.environ
    settings = load_settings(Path("prod.toml"), overrides={"paper.speed": 120})
    settings = Settings(data_dir=tmp_path)              # defaults plus exactly these values

Environment variables are ``TRADEFLEET__SECTION__KEY`` (double underscore nesting, case-insensitive;
values starting with ``[`` or ``{`` are JSON) plus the well-known names of :data:`WELL_KNOWN_ENV`. Where a
well-known name and its ``TRADEFLEET__`` spelling are both set, the ``TRADEFLEET__`` one wins. Empty
environment values count as unset. Every mistake becomes one :class:`ConfigError` naming the key and
where it came from, e.g. ``tradefleet.toml: paper.sped: unknown setting (did you mean 'speed'?)``.
"""

from __future__ import annotations

import difflib
import json
import os
import tomllib
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import (
    BaseModel,
    Field,
    SecretStr,
    ValidationError,
    model_validator,
)
from pydantic_core import ErrorDetails
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from tradefleet.config_sections import (
    DEMO_FLEET,
    ApiSettings,
    DatabaseSettings,
    ExchangeAccount,
    ExchangeSettings,
    IntegrationSettings,
    LogSettings,
    PaperBotSettings,
    PaperSettings,
    RedisSettings,
    SimulatedSettings,
)
from tradefleet.core.bots import BotConfig
from tradefleet.core.errors import ConfigError
from tradefleet.core.risk import RiskSettings
from tradefleet.logs import MASK, is_secret_key, redact

__all__ = [
    "DEFAULT_CONFIG_FILE",
    "DEMO_FLEET",
    "ENV_PREFIX",
    "WELL_KNOWN_ENV",
    "ApiSettings",
    "DatabaseSettings",
    "ExchangeAccount",
    "ExchangeSettings",
    "IntegrationSettings",
    "LogSettings",
    "PaperBotSettings",
    "PaperSettings",
    "RedisSettings",
    "Settings",
    "SimulatedSettings",
    "load_settings",
]

ENV_PREFIX = "TRADEFLEET__"
ENV_DELIMITER = "__"
DEFAULT_CONFIG_FILE = Path("tradefleet.toml")

# Well-known names from the products TradeFleet replaces; the first name is canonical, the others aliases.
WELL_KNOWN_ENV: tuple[tuple[tuple[str, ...], tuple[str, ...]], ...] = (
    (("DATABASE_URL",), ("database", "url")),
    (("REDIS_URL",), ("redis", "url")),
    (("QDRANT_URL",), ("integrations", "qdrant_url")),
    (("FREQTRADE_API_URL",), ("integrations", "freqtrade_api_url")),
    (("FREQTRADE_API_USER", "FREQTRADE_USERNAME"), ("integrations", "freqtrade_api_user")),
    (("FREQTRADE_API_PASSWORD", "FREQTRADE_PASSWORD"), ("integrations", "freqtrade_api_password")),
    (("INTER_SERVICE_TOKEN",), ("integrations", "inter_service_token")),
    (("OPENAI_API_KEY",), ("integrations", "openai_api_key")),
    (("OPENAI_BASE_URL",), ("integrations", "openai_base_url")),
    (("OPENROUTER_API_KEY",), ("integrations", "openrouter_api_key")),
    (("N8N_WEBHOOK_URL",), ("integrations", "n8n_webhook_url")),
    (("CONTROLLER_PORT",), ("integrations", "controller_port")),
    (("BINANCE_API_KEY",), ("exchange", "accounts", "binance", "api_key")),
    (("BINANCE_API_SECRET",), ("exchange", "accounts", "binance", "secret")),
)


class Settings(BaseSettings):
    """The one settings root. Build it with :func:`load_settings`; see the module docstring."""

    model_config = SettingsConfigDict(extra="forbid", frozen=True, validate_default=True)

    data_dir: Path = Field(default=Path("var"), description="where TradeFleet keeps its state")
    database: DatabaseSettings = Field(default_factory=DatabaseSettings)
    redis: RedisSettings = Field(default_factory=RedisSettings)
    exchange: ExchangeSettings = Field(default_factory=ExchangeSettings)
    simulated: SimulatedSettings = Field(default_factory=SimulatedSettings)
    paper: PaperSettings = Field(default_factory=PaperSettings)
    risk: RiskSettings = Field(
        default_factory=lambda: RiskSettings.model_validate({}),
        description="default risk of bots that set none",
    )
    log: LogSettings = Field(default_factory=LogSettings)
    api: ApiSettings = Field(default_factory=ApiSettings)
    integrations: IntegrationSettings = Field(default_factory=IntegrationSettings)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Layering lives in load_settings, which knows each value's origin and so can name it in errors.
        return (init_settings,)

    @model_validator(mode="after")
    def _pairs_in_simulated_quote(self) -> Settings:
        for i, bot in enumerate(self.paper.bots):
            wrong = [p for p in bot.pairs if p.split("/")[1] != self.simulated.quote]
            if wrong:
                raise ValueError(
                    f"paper.bots[{i}] ({bot.bot_id}): {', '.join(wrong)} not quoted in "
                    f"simulated.quote {self.simulated.quote}"
                )
        return self

    @property
    def database_url(self) -> str:
        """Return ``database.url`` or the SQLite file in the data directory."""
        return self.database.url or f"sqlite:///{(self.data_dir / 'tradefleet.sqlite').as_posix()}"

    @property
    def candles_dir(self) -> Path:
        return self.data_dir / "candles"

    @property
    def strategies_dir(self) -> Path:
        return self.data_dir / "strategies"

    def bot_risk(self, bot: PaperBotSettings) -> RiskSettings:
        """Return the bot's own risk settings or the fleet default."""
        return bot.risk if bot.risk is not None else self.risk

    def paper_bot_configs(self) -> list[BotConfig]:
        """Return the paper fleet as core bot configs, with fleet defaults filled in."""
        return [
            BotConfig(
                bot_id=bot.bot_id,
                strategy=bot.strategy,
                strategy_params=bot.strategy_params,
                pairs=tuple(bot.pairs),
                timeframe=bot.timeframe,
                exchange="simulated",
                mode="paper",
                quote_currency=self.simulated.quote,
                starting_balance=bot.starting_balance or self.simulated.starting_balance,
                risk=self.bot_risk(bot),
            )
            for bot in self.paper.bots
        ]

    def masked(self) -> dict[str, Any]:
        """Return the effective settings as plain data with every secret shown as ``********``.

        Secrets are the ``SecretStr`` fields, values under secret-looking keys (e.g. in
        ``strategy_params``) and credentials inside URLs (``postgresql://user:********@host/db``).
        """
        result = redact(_plain(self.model_dump(by_alias=True)))
        assert isinstance(result, dict)
        return result


def _plain(value: Any) -> Any:
    if isinstance(value, SecretStr):
        return MASK
    if isinstance(value, Path):
        return value.as_posix()
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


# --- loading ---------------------------------------------------------------------------------------------

Key = tuple[str | int, ...]


@dataclass(frozen=True)
class _Origin:
    """Where a value came from: a file (errors show the dotted key) or a variable (its name says it)."""

    label: str
    path: Key
    names_key: bool


def load_settings(
    config_file: Path | None = None,
    overrides: Mapping[str, Any] | None = None,
    env: Mapping[str, str] | None = None,
) -> Settings:
    """Return the effective settings: defaults < settings file < environment < ``overrides``.

    Parameters
    ----------
    config_file
        TOML settings file; it must exist. None: ``./tradefleet.toml`` if it exists.
    overrides
        Command-line values, by dotted key (``{"paper.speed": 120}``) or nested mapping. None values
        are skipped: they are flags the user did not give.
    env
        Environment to read; defaults to ``os.environ`` (tests pass a dict instead of mutating it).

    Raises
    ------
    ConfigError
        Naming each bad key and its source; ``details`` lists them as ``{key, source, message}``.
    """
    environ = os.environ if env is None else env
    assigned: dict[Key, tuple[Any, _Origin]] = {}
    path = config_file if config_file is not None else _default_config_file()
    if path is not None:
        _assign_all(assigned, _read_file(path), lambda key: _Origin(str(path), key, True))
    for key, value, name in _environment(environ):
        _assign(assigned, key, value, _Origin(name, key, False))
    if overrides:
        _assign_all(assigned, _expand_dotted(overrides), lambda key: _Origin("command line", key, True))
    values = _nest(assigned)
    bad = sorted(k for k in values if not k.isidentifier() or k.startswith("_"))
    if bad:  # would reach BaseSettings' own keyword arguments such as _env_file
        origin = _origin_label(assigned, (bad[0],))
        raise ConfigError(f"{origin}: {bad[0]}: unknown setting")
    try:
        return Settings(**values)
    except ValidationError as exc:
        problems = [_problem(err, assigned) for err in exc.errors(include_url=False)]
        message = "; ".join(dict.fromkeys(p["text"] for p in problems))
        details = [{k: v for k, v in p.items() if k != "text"} for p in problems]
        raise ConfigError(message, details=details) from None


def _default_config_file() -> Path | None:
    return DEFAULT_CONFIG_FILE if DEFAULT_CONFIG_FILE.is_file() else None


def _read_file(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"{path}: settings file not found") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read settings file: {exc.strerror}") from None


def _environment(environ: Mapping[str, str]) -> list[tuple[Key, Any, str]]:
    """Return ``(key, value, variable)`` from the environment, well-known names before prefixed ones."""
    upper = {name.upper(): name for name in environ}
    found: list[tuple[Key, Any, str]] = []
    for names, key in WELL_KNOWN_ENV:
        for name in reversed(names):  # canonical name last, so it wins over its aliases
            actual = upper.get(name)
            if actual is not None and environ[actual] != "":
                found.append((key, environ[actual], actual))
    for name in sorted(environ):
        if not name.upper().startswith(ENV_PREFIX) or environ[name] == "":
            continue
        parts = name[len(ENV_PREFIX) :].lower().split(ENV_DELIMITER)
        if not all(parts):
            raise ConfigError(f"{name}: malformed variable name; write TRADEFLEET__SECTION__KEY")
        found.append((tuple(parts), _env_value(name, environ[name]), name))
    return found


def _env_value(name: str, raw: str) -> Any:
    if raw.lstrip()[:1] not in ("[", "{"):
        return raw
    try:
        return json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{name}: not valid JSON ({exc.msg} at character {exc.pos})") from None


def _expand_dotted(overrides: Mapping[str, Any]) -> dict[str, Any]:
    nested: dict[str, Any] = {}
    for dotted, value in overrides.items():
        if value is None:
            continue
        *parents, leaf = dotted.split(".")
        node = nested
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return nested


def _assign_all(assigned: dict[Key, tuple[Any, _Origin]], data: Mapping[str, Any], origin: Any) -> None:
    def walk(node: Mapping[str, Any], prefix: Key) -> None:
        for name, value in node.items():
            key = (*prefix, name)
            if isinstance(value, Mapping) and value:
                walk(value, key)
            else:
                _assign(assigned, key, value, origin(key))

    walk(data, ())


def _assign(assigned: dict[Key, tuple[Any, _Origin]], key: Key, value: Any, origin: _Origin) -> None:
    """Set one leaf; a later layer replaces whatever an earlier one set above or below it."""
    for other in [k for k in assigned if k[: len(key)] == key or key[: len(k)] == k]:
        del assigned[other]
    assigned[key] = (value, origin)


def _nest(assigned: Mapping[Key, tuple[Any, _Origin]]) -> dict[str, Any]:
    root: dict[str, Any] = {}
    for key, (value, _origin) in assigned.items():
        node = root
        for part in key[:-1]:
            node = node.setdefault(str(part), {})
        node[str(key[-1])] = value
    return root


def _origin_label(assigned: Mapping[Key, tuple[Any, _Origin]], key: Key) -> str:
    """Return the label of the source that set ``key`` (or something under it)."""
    labels = sorted({o.label for k, (_v, o) in assigned.items() if k[: len(key)] == key})
    return ", ".join(labels) or "settings"


def _dotted(loc: Key) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out or "settings"


def _problem(err: ErrorDetails, assigned: Mapping[Key, tuple[Any, _Origin]]) -> dict[str, Any]:
    loc: Key = tuple(err["loc"])
    msg = _friendly(err, loc)
    exact = [o for k, (_v, o) in assigned.items() if loc[: len(k)] == k]
    below = sorted({o.label for k, (_v, o) in assigned.items() if k[: len(loc)] == loc and k != loc})
    if exact:
        origin = exact[0]
        rest = loc[len(origin.path) :]
        if origin.names_key:
            text = f"{origin.label}: {_dotted(loc)}: {msg}"
        else:
            text = f"{origin.label}: {_dotted(rest)}: {msg}" if rest else f"{origin.label}: {msg}"
        source = origin.label
    elif below:
        source = ", ".join(below)
        text = f"{source}: {_dotted(loc)}: {msg}"
    else:
        source = "defaults"
        text = f"{_dotted(loc)}: {msg}"
    return {"key": _dotted(loc), "source": source, "message": msg, "text": text}


_FRIENDLY = {
    "float_parsing": "not a valid number",
    "float_type": "not a valid number",
    "int_parsing": "not a valid integer",
    "int_type": "not a valid integer",
    "int_from_float": "not a valid integer",
    "bool_parsing": "not a valid boolean (use true or false)",
    "bool_type": "not a valid boolean (use true or false)",
    "string_type": "not a text value",
    "missing": "required setting is missing",
    "model_type": "must be a table of settings",
    "model_attributes_type": "must be a table of settings",
    "dict_type": "must be a table",
    "list_type": "must be a list",
}


def _friendly(err: ErrorDetails, loc: Key) -> str:
    kind = err["type"]
    if kind == "extra_forbidden":
        return "unknown setting" + _suggestion(loc)
    if kind in _FRIENDLY:
        msg = _FRIENDLY[kind]
        last = next((p for p in reversed(loc) if isinstance(p, str)), "")
        if kind.endswith("_parsing") and not is_secret_key(last):
            msg += f" (got {err.get('input')!r})"
        return msg
    msg = err["msg"].removeprefix("Value error, ").replace("Input should be", "must be")
    return msg[:1].lower() + msg[1:]


def _suggestion(loc: Key) -> str:
    fields = _fields_at(loc[:-1])
    name = loc[-1] if loc else ""
    close = difflib.get_close_matches(str(name), fields, n=1) if fields else []
    return f" (did you mean {close[0]!r}?)" if close else ""


def _fields_at(loc: Key) -> list[str]:
    """Return the field names of the model at ``loc`` in :class:`Settings`, or [] if unknown."""
    annotation: Any = Settings
    for part in loc:
        annotation = _unwrap(annotation)
        origin = typing.get_origin(annotation)
        if isinstance(part, int) and origin is list:
            annotation = typing.get_args(annotation)[0]
        elif origin is dict:
            annotation = typing.get_args(annotation)[1]
        elif isinstance(annotation, type) and issubclass(annotation, BaseModel):
            field = annotation.model_fields.get(str(part))
            if field is None:
                return []
            annotation = field.annotation
        else:
            return []
    annotation = _unwrap(annotation)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return list(annotation.model_fields)
    return []


def _unwrap(annotation: Any) -> Any:
    """Strip ``X | None`` down to ``X``."""
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        return args[0] if len(args) == 1 else annotation
    return annotation
