"""Exchange credentials of bots, encrypted at rest with the data directory's ``fernet.key`` (:class:`SecretBox`).

Who may do what (the bots service decides who sees a bot; a bot one may not see is 404 ``bot_not_found``)::

    viewer   read the metadata (exchange, key hint, time) of the credentials of bots it owns
    trader   also store (replace) and delete them
    admin    all of it on every bot

Only :meth:`CredentialService.load_credentials`, for the gateway building a ccxt exchange, ever decrypts;
no route answers with a key, a secret or a password. The encrypted payload names the bot and its owner at
the time it was stored, so a ciphertext copied onto another bot's row, or left behind by a deleted bot
whose id someone else took, is refused instead of trading on another user's account.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from pydantic import SecretStr

from tradefleet.adapters.storage.credentials import StoredCredentials
from tradefleet.core.errors import ConfigError, TradeFleetError
from tradefleet.services.auth import Principal, Role, SecretBox, SecretFileError, authorize
from tradefleet.services.bots import BotService
from tradefleet.services.credentials.schemas import CredentialsIn, CredentialsOut

log = logging.getLogger(__name__)

_PAYLOAD_VERSION = 1


class CredentialsNotFoundError(TradeFleetError):
    code = "credentials_not_found"
    hint = "store them with PUT /api/v1/bots/{bot_id}/credentials"
    http_status = 404


class CredentialsUnreadableError(ConfigError):
    code = "credentials_unreadable"
    hint = "enter the bot's exchange keys again (PUT /api/v1/bots/{bot_id}/credentials)"
    http_status = 409  # the stored state is at fault; storing the keys again resolves it


class CredentialStore(Protocol):
    """Where encrypted credentials live (``adapters.storage.credentials.SqlCredentialStore``)."""

    def put(self, record: StoredCredentials) -> None: ...
    def get(self, bot_id: str) -> StoredCredentials | None: ...
    def delete(self, bot_id: str) -> bool: ...


@dataclass(frozen=True)
class ExchangeCredentials:
    """Decrypted credentials of one bot; the secrets stay ``SecretStr`` until handed to the exchange."""

    bot_id: str
    exchange: str
    api_key: SecretStr
    secret: SecretStr
    password: SecretStr | None = None

    def ccxt_options(self) -> dict[str, str]:
        """Return the ``apiKey``/``secret``/``password`` entries of a ccxt exchange's options."""
        options = {"apiKey": self.api_key.get_secret_value(), "secret": self.secret.get_secret_value()}
        if self.password is not None:
            options["password"] = self.password.get_secret_value()
        return options


def key_hint(api_key: str) -> str:
    """Return the part of ``api_key`` a person may see: 4 characters of each end, only the last 4, or none."""
    if len(api_key) >= 16:
        return f"{api_key[:4]}…{api_key[-4:]}"
    if len(api_key) >= 8:
        return f"…{api_key[-4:]}"
    return "…"


def _wall_ms() -> int:
    return time.time_ns() // 1_000_000


class CredentialService:
    """Store, describe, delete and (for the gateway) decrypt bots' exchange credentials."""

    def __init__(
        self, store: CredentialStore, box: SecretBox, bots: BotService, now_ms: Callable[[], int] = _wall_ms
    ) -> None:
        self._store = store
        self._box = box
        self._bots = bots
        self._now_ms = now_ms

    def put(self, principal: Principal, bot_id: str, body: CredentialsIn) -> CredentialsOut:
        """Encrypt and store ``body`` as the credentials of ``bot_id``, replacing any (owner traders, admins)."""
        authorize(principal, Role.TRADER)
        bot = self._bots.get_bot(principal, bot_id)  # 404 bot_not_found unless the caller may see the bot
        payload: dict[str, Any] = {
            "v": _PAYLOAD_VERSION,
            "bot_id": bot_id,
            "owner_id": bot.owner_id,
            "exchange": body.exchange,
            "api_key": body.api_key.get_secret_value(),
            "secret": body.secret.get_secret_value(),
            "password": body.password.get_secret_value() if body.password is not None else None,
        }
        ciphertext = self._box.encrypt(json.dumps(payload, separators=(",", ":"))).encode("ascii")
        record = StoredCredentials(bot_id, body.exchange, key_hint(payload["api_key"]), ciphertext, self._now_ms())
        self._store.put(record)
        log.info("exchange credentials stored", extra={"bot_id": bot_id, "exchange": body.exchange,
                                                       "by": principal.username})  # fmt: skip
        return _out(record)

    def describe(self, principal: Principal, bot_id: str) -> CredentialsOut:
        """Return the metadata of the bot's credentials (owners, admins); 404 when none are stored.

        Credentials left behind by an earlier owner of the bot id are not the bot's: 404 too.
        """
        self._bots.get_bot(principal, bot_id)
        record = self._store.get(bot_id)
        if record is None or self._stale(self._open(record), bot_id):
            raise CredentialsNotFoundError(f"bot {bot_id!r} has no stored exchange credentials")
        return _out(record)

    def delete(self, principal: Principal, bot_id: str) -> None:
        """Forget the bot's credentials (owner traders, admins); 404 when none are stored."""
        authorize(principal, Role.TRADER)
        self._bots.get_bot(principal, bot_id)
        if not self._store.delete(bot_id):
            raise CredentialsNotFoundError(f"bot {bot_id!r} has no stored exchange credentials")
        log.info("exchange credentials deleted", extra={"bot_id": bot_id, "by": principal.username})

    def load_credentials(self, bot_id: str) -> ExchangeCredentials | None:
        """Return the decrypted credentials of ``bot_id`` (None if none are stored), for building its exchange.

        Raises :class:`CredentialsUnreadableError` when the ciphertext was tampered with, made with another
        ``fernet.key``, copied from another bot, or stored while the bot id belonged to another owner.
        """
        record = self._store.get(bot_id)
        if record is None:
            return None
        payload = self._open(record)
        if self._stale(payload, bot_id):
            raise CredentialsUnreadableError(
                f"the stored exchange credentials of bot {bot_id!r} were stored for another owner of this bot id"
            )
        password = payload.get("password")
        return ExchangeCredentials(
            bot_id=bot_id,
            exchange=record.exchange,
            api_key=SecretStr(str(payload["api_key"])),
            secret=SecretStr(str(payload["secret"])),
            password=SecretStr(str(password)) if password is not None else None,
        )

    def _stale(self, payload: dict[str, Any], bot_id: str) -> bool:
        return bool(payload.get("owner_id") != self._bots.owners.owner_of(bot_id))

    def _open(self, record: StoredCredentials) -> dict[str, Any]:
        """Decrypt ``record`` and check that it was made for this row (bot and exchange)."""
        try:
            payload = json.loads(self._box.decrypt(record.ciphertext.decode("ascii")))
        except (SecretFileError, UnicodeError, ValueError) as exc:
            raise CredentialsUnreadableError(
                f"cannot decrypt the exchange credentials of bot {record.bot_id!r}: they were tampered with "
                "or encrypted with another fernet.key"
            ) from exc
        if not isinstance(payload, dict) or payload.get("v") != _PAYLOAD_VERSION:
            raise CredentialsUnreadableError(f"the stored exchange credentials of bot {record.bot_id!r} are malformed")
        if payload.get("bot_id") != record.bot_id or payload.get("exchange") != record.exchange:
            raise CredentialsUnreadableError(
                f"the stored exchange credentials of bot {record.bot_id!r} were made for another bot or exchange"
            )
        return payload


def _out(record: StoredCredentials) -> CredentialsOut:
    return CredentialsOut(
        bot_id=record.bot_id, exchange=record.exchange, key_hint=record.key_hint, updated_ms=record.updated_ms
    )
