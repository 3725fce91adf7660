"""The sections of the settings tree: one frozen model each, unknown keys refused."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from tradefleet.core.bots import check_bot_id, check_pairs, check_timeframe
from tradefleet.core.risk import RiskSettings


def _url(value: str | None, schemes: tuple[str, ...] | None = None) -> str | None:
    if value is None:
        return None
    scheme, sep, rest = value.partition("://")
    if not sep or not scheme or not rest:
        raise ValueError("must be a URL like scheme://host[:port][/path]")
    if schemes and scheme.lower() not in schemes:
        raise ValueError(f"URL scheme must be one of {', '.join(schemes)}")
    return value


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DatabaseSettings(_Section):
    url: str | None = Field(default=None, description="SQLAlchemy URL; unset = SQLite file in the data directory")
    echo: bool = Field(default=False, description="log every SQL statement (debugging only)")

    @field_validator("url")
    @classmethod
    def _valid_url(cls, value: str | None) -> str | None:
        if value is not None and value.startswith("postgres://"):
            value = "postgresql://" + value.removeprefix("postgres://")  # Heroku-style URL SQLAlchemy rejects
        return _url(value)


class RedisSettings(_Section):
    url: str | None = Field(default=None, description="redis:// URL; unset = in-process event bus")

    @field_validator("url")
    @classmethod
    def _valid_url(cls, value: str | None) -> str | None:
        return _url(value, ("redis", "rediss", "unix"))


class ExchangeAccount(_Section):
    """Credentials for one venue account; the table key is the account name."""

    exchange: str = Field(description="ccxt exchange id, e.g. binance; defaults to the account name")
    api_key: SecretStr | None = None
    secret: SecretStr | None = None
    password: SecretStr | None = Field(default=None, description="passphrase, for venues that need one")
    sandbox: bool | None = Field(default=None, description="overrides exchange.sandbox for this account")
    api_url: str | None = Field(
        default=None, description="re-point the venue's REST API at this base URL (a proxy, a recorded-answer server)"
    )

    @field_validator("exchange")
    @classmethod
    def _exchange_id(cls, value: str) -> str:
        if not re.fullmatch(r"[a-z0-9_]+", value):
            raise ValueError("must be a ccxt exchange id in lower case, e.g. binance (defaults to the account name)")
        return value

    @field_validator("api_url")
    @classmethod
    def _valid_api_url(cls, value: str | None) -> str | None:
        return _url(value, ("http", "https"))

    @model_validator(mode="after")
    def _key_pair(self) -> ExchangeAccount:
        if (self.api_key is None) != (self.secret is None):
            raise ValueError("api_key and secret must be set together")
        return self


class ExchangeSettings(_Section):
    default: str = Field(default="simulated", description="account used when a bot names none")
    sandbox: bool = Field(default=True, description="use the venue's testnet; set false only for real money")
    accounts: dict[str, ExchangeAccount] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _exchange_defaults_to_name(cls, data: Any) -> Any:
        if isinstance(data, Mapping) and isinstance(data.get("accounts"), Mapping):
            accounts = {
                name: {"exchange": name, **acc} if isinstance(acc, Mapping) and "exchange" not in acc else acc
                for name, acc in data["accounts"].items()
            }
            data = {**data, "accounts": accounts}
        return data


class SimulatedSettings(_Section):
    taker_fee: float = Field(default=0.001, ge=0, lt=0.1, description="fraction of notional")
    maker_fee: float = Field(default=0.001, ge=0, lt=0.1, description="fraction of notional")
    slippage_bps: float = Field(default=5.0, ge=0, le=1000, description="market-order slippage in basis points")
    starting_balance: float = Field(default=10_000.0, gt=0, description="quote balance of each new account")
    quote: str = "USDT"
    synthetic_seed: int = Field(default=7, description="seed of the generated market")
    synthetic_days: int = Field(default=60, ge=1, le=3650, description="history generated when no candles exist")

    @field_validator("quote")
    @classmethod
    def _quote(cls, value: str) -> str:
        if not value.isalnum():
            raise ValueError("must be a currency code such as USDT")
        return value.upper()


class PaperBotSettings(_Section):
    """One bot of the paper fleet that ``tradefleet up`` starts."""

    bot_id: str
    strategy: str = Field(min_length=1, description="strategy class name")
    pairs: list[str] = Field(min_length=1)
    timeframe: str = Field(default="5m", description="defaults to paper.timeframe")
    risk: RiskSettings | None = Field(default=None, description="unset = the top-level [risk] section")
    strategy_params: dict[str, Any] = Field(default_factory=dict)
    starting_balance: float | None = Field(default=None, gt=0, description="unset = simulated.starting_balance")

    _bot_id = field_validator("bot_id")(check_bot_id)
    _pairs = field_validator("pairs")(check_pairs)
    _timeframe = field_validator("timeframe")(check_timeframe)


# The demo fleet of ``tradefleet up``; bots take paper.timeframe unless they set their own.
DEMO_FLEET: tuple[dict[str, Any], ...] = (
    {"bot_id": "sma-btc", "strategy": "SmaCross", "pairs": ["BTC/USDT"]},
    {"bot_id": "rsi-eth", "strategy": "RsiMeanReversion", "pairs": ["ETH/USDT"]},
    {"bot_id": "bb-sol", "strategy": "BollingerBreakout", "pairs": ["SOL/USDT"]},
    {"bot_id": "macd-bnb", "strategy": "MacdTrend", "pairs": ["BNB/USDT"]},
)


def _demo_fleet() -> list[PaperBotSettings]:
    return [PaperBotSettings.model_validate(bot) for bot in DEMO_FLEET]


class PaperSettings(_Section):
    speed: float = Field(default=60.0, gt=0, description="market seconds per wall-clock second")
    timeframe: str = Field(default="5m", description="timeframe of bots that do not set one")
    bots: list[PaperBotSettings] = Field(default_factory=_demo_fleet)

    _timeframe = field_validator("timeframe")(check_timeframe)

    @model_validator(mode="before")
    @classmethod
    def _bots_inherit_timeframe(cls, data: Any) -> Any:
        if isinstance(data, Mapping) and "timeframe" in data and isinstance(data.get("bots", []), list):
            bots = [
                {**bot, "timeframe": data["timeframe"]} if isinstance(bot, Mapping) and "timeframe" not in bot else bot
                for bot in data.get("bots", DEMO_FLEET)
            ]
            data = {**data, "bots": bots}
        return data

    @model_validator(mode="after")
    def _unique_ids(self) -> PaperSettings:
        repeated = sorted(i for i, n in Counter(b.bot_id for b in self.bots).items() if n > 1)
        if repeated:
            raise ValueError(f"bot ids must be unique; repeated: {', '.join(repeated)}")
        return self


class LogSettings(_Section):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"
    # Named json_ in Python because BaseModel has a json() method; it reads and shows as `json`.
    json_: bool | None = Field(
        default=None, alias="json", description="unset = JSON lines unless logging to a terminal"
    )

    @property
    def json(self) -> bool | None:  # type: ignore[override]
        """Return True for JSON lines, False for console lines, None to decide by the terminal."""
        return self.json_

    @field_validator("level", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value


class ApiSettings(_Section):
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=1, le=65535)


class IntegrationSettings(_Section):
    """External services named by their well-known environment variables."""

    freqtrade_api_url: str | None = None
    freqtrade_api_user: str | None = None
    freqtrade_api_password: SecretStr | None = None
    inter_service_token: SecretStr | None = None
    openai_api_key: SecretStr | None = None
    openai_base_url: str | None = None
    openrouter_api_key: SecretStr | None = None
    n8n_webhook_url: str | None = None
    controller_port: int | None = Field(default=None, ge=1, le=65535, description="unset = served on api.port")
    qdrant_url: str | None = None

    @field_validator("freqtrade_api_url", "openai_base_url", "n8n_webhook_url", "qdrant_url")
    @classmethod
    def _valid_url(cls, value: str | None) -> str | None:
        return _url(value, ("http", "https"))
