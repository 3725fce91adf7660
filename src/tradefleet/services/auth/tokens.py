"""Access tokens (HS256 JWT, 15 minutes) and opaque refresh tokens (only their hash is stored).

Access tokens carry ``sub`` (user id), ``name``, ``role``, ``iat``, ``exp``, ``jti`` and ``typ=access``.
Decoding pins the algorithm to HS256 (``alg: none`` and every other algorithm are refused), requires all
of those claims, and checks ``exp``/``iat`` against the injected clock with a small leeway, so tests and
accelerated clocks expire tokens deterministically. Every failure is an :class:`AuthError`.

Refresh tokens are ``<jti>.<secret>``: the jti names the row, SHA-256 of the secret is what is stored. The
secret has 256 random bits, so a fast hash suffices and a stolen database yields no usable token.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from typing import Any

import jwt

from tradefleet.core.ports import Clock
from tradefleet.services.auth.errors import AuthError

ALGORITHM = "HS256"
ACCESS_TTL_S = 15 * 60
REFRESH_TTL_S = 14 * 24 * 3600
LEEWAY_S = 10
MAX_TOKEN_LENGTH = 4096  # refuse to parse anything larger than any token we issue
_REQUIRED = ["sub", "name", "role", "iat", "exp", "jti", "typ"]


@dataclass(frozen=True)
class AccessClaims:
    """The verified claims of an access token."""

    user_id: int
    username: str
    role: str
    issued_s: int
    expires_s: int
    jti: str


class AccessTokenCodec:
    """Issue and verify access tokens signed with ``key`` at the time of ``clock``."""

    def __init__(self, key: bytes, clock: Clock, *, ttl_s: int = ACCESS_TTL_S, leeway_s: int = LEEWAY_S) -> None:
        if len(key) < 32:
            raise ValueError("the HS256 key must have at least 256 bits")
        self._key = key
        self._clock = clock
        self.ttl_s = ttl_s
        self._leeway = leeway_s

    def issue(self, user_id: int, username: str, role: str) -> str:
        """Return a signed access token for the user, valid for ``ttl_s`` seconds from now."""
        now = self._clock.now_ms() // 1000
        claims = {
            "sub": str(user_id),
            "name": username,
            "role": role,
            "iat": now,
            "exp": now + self.ttl_s,
            "jti": secrets.token_urlsafe(12),
            "typ": "access",
        }
        return jwt.encode(claims, self._key, algorithm=ALGORITHM)

    def decode(self, token: str) -> AccessClaims:
        """Return the claims of a valid access token; raise :class:`AuthError` for anything else."""
        if not token or len(token) > MAX_TOKEN_LENGTH:
            raise AuthError("invalid access token")
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                self._key,
                algorithms=[ALGORITHM],  # pinned: never taken from the token's own header
                options={"require": _REQUIRED, "verify_exp": False, "verify_iat": False, "verify_nbf": False},
            )
        except jwt.PyJWTError as exc:
            raise AuthError("invalid access token", details={"reason": type(exc).__name__}) from None
        return self._checked(claims)

    def _checked(self, claims: dict[str, Any]) -> AccessClaims:
        sub, name, role, iat, exp, jti = (claims[k] for k in ("sub", "name", "role", "iat", "exp", "jti"))
        if claims["typ"] != "access":
            raise AuthError("invalid access token", details={"reason": "not an access token"})
        if not (isinstance(sub, str) and sub.isdigit() and isinstance(name, str) and isinstance(role, str)):
            raise AuthError("invalid access token", details={"reason": "malformed claims"})
        if not (_is_int(iat) and _is_int(exp) and isinstance(jti, str)):
            raise AuthError("invalid access token", details={"reason": "malformed claims"})
        now = self._clock.now_ms() / 1000
        if exp <= now - self._leeway:
            raise AuthError("access token expired", hint="get a new one with the refresh token")
        if iat > now + self._leeway:
            raise AuthError("invalid access token", details={"reason": "issued in the future"})
        return AccessClaims(int(sub), name, role, iat, exp, jti)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


@dataclass(frozen=True)
class RefreshSecret:
    """A new refresh token: ``token`` goes to the client, ``jti`` and ``token_hash`` to the database."""

    jti: str
    token: str
    token_hash: str


def new_refresh_token() -> RefreshSecret:
    """Return a fresh random refresh token with its id and stored hash."""
    jti = secrets.token_urlsafe(16)
    secret = secrets.token_urlsafe(32)
    return RefreshSecret(jti=jti, token=f"{jti}.{secret}", token_hash=hash_secret(secret))


def parse_refresh_token(token: str) -> tuple[str, str]:
    """Return ``(jti, secret_hash)`` of a refresh token; raise :class:`AuthError` if malformed."""
    if not token or len(token) > 256:
        raise AuthError("invalid refresh token")
    jti, dot, secret = token.partition(".")
    if not dot or not jti or not secret:
        raise AuthError("invalid refresh token")
    return jti, hash_secret(secret)


def hash_secret(secret: str) -> str:
    """Return the hex SHA-256 of a high-entropy secret (refresh token, API key, service token)."""
    return hashlib.sha256(secret.encode()).hexdigest()


def same_hash(a: str, b: str) -> bool:
    """Compare two hashes in constant time."""
    return hmac.compare_digest(a.encode(), b.encode())
