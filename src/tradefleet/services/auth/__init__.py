"""Authentication and authorization, transport-neutral: routes, CLI and MCP all call :class:`AuthService`.

Compose it in the composition root::

    keys = load_or_create_keys(settings.data_dir)           # <data_dir>/secrets, 0700/0600
    auth = AuthService(SqlAuthRepository(engine), keys, WallClock(),
                       inter_service_token=settings.integrations.inter_service_token)
    first = auth.ensure_admin()                             # print first.password once if set

Errors (``services.auth.errors``) carry ``http_status``: AuthError 401, PermissionDenied 403,
RateLimited 429 (``retry_after`` seconds), AccountError 4xx.
"""

from tradefleet.services.auth.errors import (
    AccountError,
    AuthError,
    LastAdminError,
    PermissionDenied,
    RateLimited,
    SecretFileError,
    UnknownUserError,
    UserExistsError,
)
from tradefleet.services.auth.keys import AuthKeys, SecretBox, load_or_create_keys
from tradefleet.services.auth.passwords import OWASP_PARAMETERS, PasswordHasher
from tradefleet.services.auth.ratelimit import FailureLimiter, InMemoryFailureLimiter, LoginRateLimiter
from tradefleet.services.auth.repository import Role, SqlAuthRepository
from tradefleet.services.auth.service import (
    ADMIN_PASSWORD_ENV,
    AuthService,
    FirstRunAdmin,
    IssuedSecret,
    KeyInfo,
    Principal,
    PrincipalKind,
    TokenPair,
    UserInfo,
    authorize,
)

__all__ = [
    "ADMIN_PASSWORD_ENV",
    "OWASP_PARAMETERS",
    "AccountError",
    "AuthError",
    "AuthKeys",
    "AuthService",
    "FailureLimiter",
    "FirstRunAdmin",
    "InMemoryFailureLimiter",
    "IssuedSecret",
    "KeyInfo",
    "LastAdminError",
    "LoginRateLimiter",
    "PasswordHasher",
    "PermissionDenied",
    "Principal",
    "PrincipalKind",
    "RateLimited",
    "Role",
    "SecretBox",
    "SecretFileError",
    "SqlAuthRepository",
    "TokenPair",
    "UnknownUserError",
    "UserExistsError",
    "UserInfo",
    "authorize",
    "load_or_create_keys",
]
