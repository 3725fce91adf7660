"""Errors of the auth service, in the one TradeFleet tree (``core.errors``).

Each carries the HTTP status a front end should answer with, so routes translate without logic::

    TradeFleetError
    ├── AuthError              401  missing, malformed, forged, expired or revoked credentials
    ├── PermissionDenied       403  authenticated, but the role does not allow the action
    ├── RateLimited            429  too many failed logins (``retry_after`` seconds) or hashing saturated
    ├── AccountError           422  invalid username, role or password (policy)
    │   ├── UserExistsError    409
    │   ├── UnknownUserError   404
    │   └── LastAdminError     409  the action would leave no enabled admin
    └── ConfigError
        └── SecretFileError         a key file is unsafe (permissions) or corrupt
"""

from __future__ import annotations

import math
from typing import Any

from tradefleet.core.errors import ConfigError, TradeFleetError


class AuthError(TradeFleetError):
    code = "unauthorized"
    hint = "log in again, or present a valid access token, API key or service token"
    http_status = 401


class PermissionDenied(TradeFleetError):  # noqa: N818 - the name the API contract uses
    code = "forbidden"
    hint = "ask an admin for a role that allows this action"
    http_status = 403


class RateLimited(TradeFleetError):  # noqa: N818 - the name the API contract uses
    code = "rate_limited"
    hint = "wait for the number of seconds in retry_after, then try again"
    http_status = 429

    def __init__(self, message: str, *, retry_after: float, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.retry_after = max(1, math.ceil(retry_after))  # whole seconds, as the Retry-After header wants


class AccountError(TradeFleetError):
    code = "invalid_account"
    http_status = 422


class UserExistsError(AccountError):
    code = "user_exists"
    hint = "pick another username"
    http_status = 409


class UnknownUserError(AccountError):
    code = "unknown_user"
    http_status = 404


class LastAdminError(AccountError):
    code = "last_admin"
    hint = "make another user admin first"
    http_status = 409


class SecretFileError(ConfigError):
    code = "secret_file"
