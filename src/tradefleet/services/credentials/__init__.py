"""Bots' exchange API keys, encrypted at rest, transport-neutral (:class:`CredentialService`).

Compose it in the composition root over the credentials table, the data directory's secret box and the
bots service (which decides who sees which bot)::

    credentials = CredentialService(SqlCredentialStore(engine), keys.secret_box, bots)
    exchange_options = credentials.load_credentials("alpha").ccxt_options()   # the gateway, not the API

Errors carry ``http_status``: CredentialsNotFoundError 404; a bot the caller may not see is the bots
service's 404 ``bot_not_found``; roles are checked with ``services.auth`` (403).
"""

from tradefleet.services.credentials.schemas import CredentialsIn, CredentialsOut
from tradefleet.services.credentials.service import (
    CredentialService,
    CredentialsNotFoundError,
    CredentialStore,
    CredentialsUnreadableError,
    ExchangeCredentials,
    key_hint,
)

__all__ = [
    "CredentialService",
    "CredentialStore",
    "CredentialsIn",
    "CredentialsNotFoundError",
    "CredentialsOut",
    "CredentialsUnreadableError",
    "ExchangeCredentials",
    "key_hint",
]
