"""Bodies and answers of the credentials routes; secrets are ``SecretStr``, never echoed or logged."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

MAX_SECRET = 1024  # exchange keys are far shorter; bounded so no body is stored (and encrypted) at any size

Secret = Annotated[SecretStr, Field(min_length=1, max_length=MAX_SECRET)]


class CredentialsIn(BaseModel):
    """A bot's exchange API key: ``exchange`` is the ccxt id (``binance``, ``kraken``, ...)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    exchange: str = Field(min_length=1, max_length=40, pattern=r"^[a-z][a-z0-9_]*$")
    api_key: Secret
    secret: Secret
    password: Secret | None = None  # the passphrase some exchanges add (OKX, KuCoin)

    @field_validator("api_key", "secret", "password")
    @classmethod
    def _printable(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None:
            return None
        text = value.get_secret_value()
        if not text.strip():
            raise ValueError("must not be blank")
        if any(ord(c) < 0x20 or ord(c) == 0x7F for c in text):  # keys are printable; NUL cannot even be stored
            raise ValueError("must not contain control characters")
        return value


class CredentialsOut(BaseModel):
    """What anyone may see of stored credentials: never the key, the secret or the password."""

    bot_id: str
    exchange: str
    key_hint: str
    updated_ms: int
