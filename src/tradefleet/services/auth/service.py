"""The auth service: accounts, logins, token rotation, API keys and service tokens, transport-neutral.

Credentials a caller may present, all resolved to a :class:`Principal` by :meth:`AuthService.verify_bearer`:

- access token: HS256 JWT of 15 minutes, from :meth:`~AuthService.authenticate` or :meth:`~AuthService.refresh`;
  the role is read from the database on every check, so a demotion or a disabled account applies at once;
- refresh token: opaque, single use; each refresh returns a new one, and presenting a used one again
  (a stolen copy) revokes every token of that login session;
- API key ``tfk_<prefix>_<secret>``: made by a user for scripts, acts with that user's current role;
- service token ``tfs_<prefix>_<secret>`` or the configured ``INTER_SERVICE_TOKEN``: machine clients.

Failures raise :class:`AuthError` (401), :class:`PermissionDenied` (403), :class:`RateLimited` (429) or an
:class:`AccountError` (4xx); see ``services.auth.errors``.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import logging
import os
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass

from pydantic import SecretStr

from tradefleet.core.errors import ConfigError
from tradefleet.core.ports import Clock
from tradefleet.services.auth.errors import (
    AccountError,
    AuthError,
    LastAdminError,
    PermissionDenied,
    RateLimited,
    UnknownUserError,
    UserExistsError,
)
from tradefleet.services.auth.keys import AuthKeys
from tradefleet.services.auth.passwords import MAX_PASSWORD_LENGTH, PasswordHasher, check_password_policy
from tradefleet.services.auth.ratelimit import LoginRateLimiter
from tradefleet.services.auth.repository import (
    USER_ROLES,
    KeyRecord,
    RefreshRecord,
    Role,
    SqlAuthRepository,
    UserRecord,
)
from tradefleet.services.auth.tokens import (
    ACCESS_TTL_S,
    REFRESH_TTL_S,
    AccessTokenCodec,
    hash_secret,
    new_refresh_token,
    parse_refresh_token,
    same_hash,
)

log = logging.getLogger(__name__)

API_KEY_PREFIX = "tfk_"
SERVICE_TOKEN_PREFIX = "tfs_"  # noqa: S105 - a marker, not a secret
ADMIN_USERNAME = "admin"
ADMIN_PASSWORD_ENV = "TRADEFLEET_ADMIN_PASSWORD"  # noqa: S105 - a variable name
INTER_SERVICE_NAME = "inter-service"
_USERNAME = re.compile(r"[a-z0-9][a-z0-9_.@-]{1,63}")
_KEY_PREFIX = re.compile(r"[0-9a-f]{12}")
_TOUCH_EVERY_MS = 60_000  # last_used is a write: record it at most once a minute per key
_RANK = {Role.VIEWER: 1, Role.TRADER: 2, Role.SERVICE: 2, Role.ADMIN: 3}


class PrincipalKind(enum.StrEnum):
    USER = "user"
    API_KEY = "api_key"
    SERVICE = "service"


@dataclass(frozen=True)
class Principal:
    """Who is calling: a user (by access token or API key) or a machine client (``user_id`` None)."""

    user_id: int | None
    username: str
    role: Role
    kind: PrincipalKind

    def allows(self, minimum: Role) -> bool:
        """Return True if this principal's role is at least ``minimum`` (viewer < trader, service < admin)."""
        return _RANK[self.role] >= _RANK[minimum]


@dataclass(frozen=True)
class TokenPair:
    access_token: str
    refresh_token: str
    expires_in: int  # seconds the access token lives
    refresh_expires_in: int
    token_type: str = "bearer"  # noqa: S105 - the OAuth 2 token type

    def __repr__(self) -> str:
        return f"TokenPair(<hidden>, expires_in={self.expires_in})"


@dataclass(frozen=True)
class UserInfo:
    id: int
    username: str
    role: Role
    created_ms: int
    disabled: bool


@dataclass(frozen=True)
class IssuedSecret:
    """A new API key or service token: ``secret`` is shown to the caller once and never stored."""

    id: int
    name: str
    prefix: str
    secret: str

    def __repr__(self) -> str:
        return f"IssuedSecret(id={self.id}, name={self.name!r}, prefix={self.prefix!r}, secret=<hidden>)"


@dataclass(frozen=True)
class KeyInfo:
    id: int
    name: str
    prefix: str
    created_ms: int
    last_used_ms: int | None
    revoked: bool


@dataclass(frozen=True)
class FirstRunAdmin:
    """The admin made on first run; ``password`` is set only when generated, to be printed once."""

    username: str
    password: str | None

    def __repr__(self) -> str:
        return f"FirstRunAdmin(username={self.username!r}, password=<hidden>)"


def authorize(principal: Principal, minimum: Role) -> None:
    """Raise :class:`PermissionDenied` unless ``principal`` has at least the ``minimum`` role."""
    if not principal.allows(minimum):
        raise PermissionDenied(f"{principal.username} ({principal.role}) may not do this: needs {minimum}")


class AuthService:
    """Accounts and credentials over :class:`SqlAuthRepository`; thread-safe; times from ``clock``."""

    def __init__(
        self,
        repository: SqlAuthRepository,
        keys: AuthKeys,
        clock: Clock,
        *,
        hasher: PasswordHasher | None = None,
        limiter: LoginRateLimiter | None = None,
        inter_service_token: SecretStr | str | None = None,
        access_ttl_s: int = ACCESS_TTL_S,
        refresh_ttl_s: int = REFRESH_TTL_S,
    ) -> None:
        self._repo = repository
        self._clock = clock
        self._hasher = hasher if hasher is not None else PasswordHasher()
        self._limiter = limiter if limiter is not None else LoginRateLimiter()
        self._access = AccessTokenCodec(keys.jwt_key, clock, ttl_s=access_ttl_s)
        self._refresh_ttl_ms = refresh_ttl_s * 1000
        token = (
            inter_service_token.get_secret_value()
            if isinstance(inter_service_token, SecretStr)
            else inter_service_token
        )
        self._inter_service_digest = hashlib.sha256(token.encode()).digest() if token else None

    # ------------------------------------------------------------------ accounts
    def create_user(
        self, username: str, password: str, role: Role | str, *, actor: Principal | None = None
    ) -> UserInfo:
        """Create a user; ``actor`` None means a trusted local operator (CLI, first run), else it must be admin."""
        if actor is not None:
            authorize(actor, Role.ADMIN)
        name = _valid_username(username)
        user_role = _user_role(role)
        check_password_policy(password)
        record = self._repo.add_user(name, self._hasher.hash(password), user_role, self._clock.now_ms())
        log.info("user created", extra={"username": name, "role": user_role.value})
        return _info(record)

    def list_users(self) -> list[UserInfo]:
        """Return every account, oldest first (admin views)."""
        return [_info(user) for user in self._repo.list_users()]

    def user_by_id(self, user_id: int) -> UserInfo:
        user = self._repo.user_by_id(user_id)
        if user is None:
            raise UnknownUserError(f"no user with id {user_id}", hint="list users with GET /api/v1/users")
        return _info(user)

    def get_user(self, username: str) -> UserInfo:
        user = self._repo.user_by_name(_normalize(username))
        if user is None:
            raise UnknownUserError(f"no user {username!r}")
        return _info(user)

    def change_role(self, actor: Principal, username: str, role: Role | str) -> UserInfo:
        """Give ``username`` another role (admins only); the last enabled admin cannot be demoted."""
        authorize(actor, Role.ADMIN)
        new_role = _user_role(role)
        user = self._repo.user_by_name(_normalize(username))
        if user is None:
            raise UnknownUserError(f"no user {username!r}")
        if user.role is Role.ADMIN and new_role is not Role.ADMIN and not user.disabled:
            self._keep_an_admin(user.username)
        self._repo.update_user(user.id, role=new_role)
        log.info("role changed", extra={"username": user.username, "role": new_role.value, "by": actor.username})
        return _info(user, role=new_role)

    def set_disabled(self, actor: Principal, username: str, disabled: bool) -> UserInfo:
        """Disable (or enable) an account (admins only); disabling ends its sessions at once."""
        authorize(actor, Role.ADMIN)
        user = self._repo.user_by_name(_normalize(username))
        if user is None:
            raise UnknownUserError(f"no user {username!r}")
        if disabled and user.role is Role.ADMIN and not user.disabled:
            self._keep_an_admin(user.username)
        self._repo.update_user(user.id, disabled=disabled)
        if disabled:
            self._repo.revoke_user_refresh(user.id, self._clock.now_ms())
        return _info(user, disabled=disabled)

    def change_password(self, principal: Principal, old_password: str, new_password: str) -> None:
        """Change the caller's own password; every session of the account ends (log in again)."""
        user = self._repo.user_by_id(principal.user_id) if principal.user_id is not None else None
        if user is None or principal.kind is not PrincipalKind.USER:
            raise PermissionDenied("only a logged-in user can change their password")
        if not self._hasher.verify(user.password_hash, old_password):
            raise AuthError("the current password is wrong")
        check_password_policy(new_password)
        self._repo.update_user(user.id, password_hash=self._hasher.hash(new_password))
        self._repo.revoke_user_refresh(user.id, self._clock.now_ms())

    def ensure_admin(self, environ: Mapping[str, str] | None = None) -> FirstRunAdmin | None:
        """On first run (no users), create ``admin``; return it, or None when users already exist.

        The password is ``TRADEFLEET_ADMIN_PASSWORD`` from ``environ`` (``os.environ`` by default) if set,
        else generated (144 random bits) and returned for the caller to print once; it is stored only hashed.
        """
        if self._repo.count_users() > 0:
            return None
        env = os.environ if environ is None else environ
        given = env.get(ADMIN_PASSWORD_ENV) or None
        password = given if given is not None else secrets.token_urlsafe(18)
        try:
            self.create_user(ADMIN_USERNAME, password, Role.ADMIN)
        except UserExistsError:
            return None  # another process made it first
        except AccountError as exc:
            raise ConfigError(f"{ADMIN_PASSWORD_ENV}: {exc.message}", hint=exc.hint or None) from None
        return FirstRunAdmin(ADMIN_USERNAME, None if given is not None else password)

    def _keep_an_admin(self, username: str) -> None:
        if self._repo.count_users(role=Role.ADMIN, enabled_only=True) <= 1:
            raise LastAdminError(f"{username} is the last enabled admin")

    # ------------------------------------------------------------------ logins and sessions
    def authenticate(self, username: str, password: str, *, ip: str | None = None) -> TokenPair:
        """Check a username and password and start a session; failures count towards the rate limits."""
        name = _normalize(username)
        now = self._clock.now_ms()
        wait = self._limiter.retry_after_s(name, ip, now)
        if wait > 0:
            raise RateLimited("too many failed logins; try again later", retry_after=wait)
        user = self._repo.user_by_name(name) if _USERNAME.fullmatch(name) else None
        if len(password) > MAX_PASSWORD_LENGTH:
            ok = False  # never hashed: it would only burn CPU
        elif user is None or user.disabled:
            self._hasher.verify_dummy(password)  # same cost as a real check: timing must not tell who exists
            ok = False
        else:
            ok = self._hasher.verify(user.password_hash, password)
        if not ok or user is None:
            self._limiter.record_failure(name, ip, now)
            raise AuthError("invalid username or password")
        self._limiter.record_success(name)
        if self._hasher.needs_rehash(user.password_hash):
            self._repo.update_user(user.id, password_hash=self._hasher.hash(password))
        family = secrets.token_urlsafe(16)
        refresh = self._new_refresh(user.id, family, parent=None)
        self._repo.add_refresh(refresh[1])
        return self._pair(user.id, user.username, user.role, refresh[0])

    def refresh(self, refresh_token: str) -> TokenPair:
        """Exchange a refresh token for a new pair; a reused token revokes its whole session."""
        old = self._refresh_record(refresh_token)
        now = self._clock.now_ms()
        if old.revoked_ms is not None:
            raise AuthError("refresh token revoked: log in again")
        if old.used_ms is not None:
            self._revoke_on_reuse(old, now)
        if old.expires_ms <= now:
            raise AuthError("refresh token expired: log in again")
        user = self._repo.user_by_id(old.user_id)
        if user is None or user.disabled:
            self._repo.revoke_family(old.family_id, now)
            raise AuthError("account disabled or deleted")
        token, successor = self._new_refresh(user.id, old.family_id, parent=old.jti)
        if not self._repo.rotate_refresh(old.jti, successor, now):
            self._revoke_on_reuse(old, now)  # used (or revoked) between our read and our update
        return self._pair(user.id, user.username, user.role, token)

    def logout(self, refresh_token: str) -> None:
        """End the session of ``refresh_token``: every token of its family is revoked (idempotent)."""
        record = self._refresh_record(refresh_token)
        self._repo.revoke_family(record.family_id, self._clock.now_ms())

    def logout_everywhere(self, principal: Principal) -> int:
        """End every session of the principal's user; return how many tokens were revoked."""
        if principal.user_id is None:
            raise PermissionDenied("machine clients have no sessions")
        return self._repo.revoke_user_refresh(principal.user_id, self._clock.now_ms())

    def _refresh_record(self, token: str) -> RefreshRecord:
        jti, token_hash = parse_refresh_token(token)
        record = self._repo.refresh_by_jti(jti)
        if record is None or not same_hash(record.token_hash, token_hash):
            raise AuthError("invalid refresh token")
        return record

    def _revoke_on_reuse(self, old: RefreshRecord, now: int) -> None:
        revoked = self._repo.revoke_family(old.family_id, now)
        log.warning(
            "refresh token reused: session revoked",
            extra={"user_id": old.user_id, "family_id": old.family_id, "revoked": revoked},
        )
        raise AuthError("refresh token already used: the session was revoked, log in again")

    def _new_refresh(self, user_id: int, family: str, parent: str | None) -> tuple[str, RefreshRecord]:
        now = self._clock.now_ms()
        fresh = new_refresh_token()
        record = RefreshRecord(
            jti=fresh.jti, family_id=family, user_id=user_id, parent_jti=parent, token_hash=fresh.token_hash,
            issued_ms=now, expires_ms=now + self._refresh_ttl_ms, used_ms=None, revoked_ms=None,
        )  # fmt: skip
        return fresh.token, record

    def _pair(self, user_id: int, username: str, role: Role, refresh_token: str) -> TokenPair:
        access = self._access.issue(user_id, username, role.value)
        return TokenPair(access, refresh_token, self._access.ttl_s, self._refresh_ttl_ms // 1000)

    # ------------------------------------------------------------------ verification
    def verify_access(self, token: str) -> Principal:
        """Return the user of a valid access token, with the role the database holds now."""
        claims = self._access.decode(token)
        user = self._repo.user_by_id(claims.user_id)
        if user is None or user.disabled:
            raise AuthError("account disabled or deleted")
        return Principal(user.id, user.username, user.role, PrincipalKind.USER)

    def verify_bearer(self, token: str) -> Principal:
        """Resolve any credential a client may send as ``Authorization: Bearer``."""
        if token.startswith(API_KEY_PREFIX):
            return self.verify_api_key(token)
        if token.startswith(SERVICE_TOKEN_PREFIX):
            return self.verify_service_token(token)
        if token.count(".") == 2:
            return self.verify_access(token)
        return self.verify_inter_service(token)

    def verify_inter_service(self, token: str) -> Principal:
        """Accept the configured ``INTER_SERVICE_TOKEN``, compared in constant time."""
        digest = hashlib.sha256(token.encode()).digest()  # equal lengths: compare_digest leaks nothing
        if self._inter_service_digest is None or not hmac.compare_digest(digest, self._inter_service_digest):
            raise AuthError("invalid credentials")
        return Principal(None, INTER_SERVICE_NAME, Role.SERVICE, PrincipalKind.SERVICE)

    # ------------------------------------------------------------------ API keys
    def create_api_key(self, principal: Principal, name: str) -> IssuedSecret:
        """Make an API key for the calling user; the returned ``secret`` is shown once."""
        if principal.kind is not PrincipalKind.USER or principal.user_id is None:
            raise PermissionDenied("only a logged-in user can create API keys")
        label = _valid_label(name)
        prefix, secret, secret_hash = _new_key(API_KEY_PREFIX)
        key_id = self._repo.add_api_key(principal.user_id, label, prefix, secret_hash, self._clock.now_ms())
        return IssuedSecret(key_id, label, prefix, secret)

    def verify_api_key(self, key: str) -> Principal:
        """Return the owner of a valid, unrevoked API key, with the owner's current role."""
        record = self._key_record("api_key", key, API_KEY_PREFIX)
        user = self._repo.user_by_id(record.owner) if record.owner is not None else None
        if user is None or user.disabled:
            raise AuthError("account disabled or deleted")
        return Principal(user.id, user.username, user.role, PrincipalKind.API_KEY)

    def list_api_keys(self, principal: Principal) -> list[KeyInfo]:
        if principal.user_id is None:
            return []
        return [_key_info(r) for r in self._repo.list_keys("api_key", owner=principal.user_id)]

    def revoke_api_key(self, principal: Principal, key_id: int) -> None:
        """Revoke one of the caller's keys; admins may revoke anyone's."""
        owned = {r.id for r in self._repo.list_keys("api_key", owner=principal.user_id)} if principal.user_id else set()
        if key_id not in owned:
            authorize(principal, Role.ADMIN)
        self._repo.revoke_key("api_key", key_id, self._clock.now_ms())

    # ------------------------------------------------------------------ service tokens
    def create_service_token(self, actor: Principal, name: str) -> IssuedSecret:
        """Make a token for a machine client (admins only); the returned ``secret`` is shown once."""
        authorize(actor, Role.ADMIN)
        label = _valid_label(name)
        prefix, secret, secret_hash = _new_key(SERVICE_TOKEN_PREFIX)
        token_id = self._repo.add_service_token(label, prefix, secret_hash, self._clock.now_ms(), actor.user_id)
        return IssuedSecret(token_id, label, prefix, secret)

    def verify_service_token(self, token: str) -> Principal:
        record = self._key_record("service", token, SERVICE_TOKEN_PREFIX)
        return Principal(None, record.name, Role.SERVICE, PrincipalKind.SERVICE)

    def revoke_service_token(self, actor: Principal, token_id: int) -> None:
        authorize(actor, Role.ADMIN)
        self._repo.revoke_key("service", token_id, self._clock.now_ms())

    def _key_record(self, kind: str, secret: str, marker: str) -> KeyRecord:
        prefix, _, rest = secret.removeprefix(marker).partition("_")
        if not _KEY_PREFIX.fullmatch(prefix) or not rest or len(secret) > 256:
            raise AuthError("invalid credentials")
        record = self._repo.key_by_prefix(kind, prefix)
        if record is None or not same_hash(record.secret_hash, hash_secret(rest)):
            raise AuthError("invalid credentials")
        if record.revoked_ms is not None:
            raise AuthError("credentials revoked")
        now = self._clock.now_ms()
        if record.last_used_ms is None or now - record.last_used_ms >= _TOUCH_EVERY_MS:
            self._repo.touch_key(kind, record.id, now)
        return record


def _normalize(username: str) -> str:
    return username.strip().lower()


def _valid_username(username: str) -> str:
    name = _normalize(username)
    if not _USERNAME.fullmatch(name):
        raise AccountError(
            f"invalid username {username!r}",
            hint="use 2 to 64 characters: letters, digits and _ . @ -, starting with a letter or digit",
        )
    return name


def _user_role(role: Role | str) -> Role:
    try:
        value = Role(role)
    except ValueError:
        value = None
    if value not in USER_ROLES:
        raise AccountError(f"invalid role {role!r}: one of {', '.join(r.value for r in USER_ROLES)}")
    assert value is not None
    return value


def _valid_label(name: str) -> str:
    label = name.strip()
    if not 1 <= len(label) <= 100:
        raise AccountError("a key name needs 1 to 100 characters")
    return label


def _new_key(marker: str) -> tuple[str, str, str]:
    prefix = secrets.token_hex(6)
    secret = secrets.token_urlsafe(32)
    return prefix, f"{marker}{prefix}_{secret}", hash_secret(secret)


def _info(user: UserRecord, *, role: Role | None = None, disabled: bool | None = None) -> UserInfo:
    return UserInfo(
        id=user.id,
        username=user.username,
        role=user.role if role is None else role,
        created_ms=user.created_ms,
        disabled=user.disabled if disabled is None else disabled,
    )


def _key_info(record: KeyRecord) -> KeyInfo:
    return KeyInfo(record.id, record.name, record.prefix, record.created_ms, record.last_used_ms,
                   record.revoked_ms is not None)  # fmt: skip
