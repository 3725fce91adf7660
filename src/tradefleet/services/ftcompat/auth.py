"""Freqtrade's ways of authenticating, over TradeFleet's :class:`AuthService`.

Freqtrade clients authenticate in two ways, both accepted here:

- ``POST token/login`` with HTTP Basic returns ``access_token`` and ``refresh_token`` (FreqUI); later calls
  send ``Authorization: Bearer <access token>`` and ``POST token/refresh`` sends the refresh token the same
  way. With a password this is an ordinary TradeFleet login (a session, rate-limited like any login).
- HTTP Basic on every call (``freqtrade-client``'s ``FtRestClient(url, username, password)``).

The password may be an API key (``tfk_…``) of that user instead: login then hands the key back as both
tokens (Bearer accepts API keys), so nothing longer-lived than the key is ever issued.

Checking a password costs an Argon2 hash, far too slow for every call of a polling client, so a successful
Basic check is remembered for ``ttl_s`` seconds as an HMAC of the credentials under a per-process random key
(never the password); the account's role and enabled flag are still read on every call.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from tradefleet.services.auth import AuthError, AuthService, Principal, PrincipalKind, UnknownUserError
from tradefleet.services.auth.service import API_KEY_PREFIX

BASIC_TTL_S = 60.0
MAX_REMEMBERED = 1024


@dataclass(frozen=True)
class FtTokens:
    access_token: str
    refresh_token: str


class FtAuth:
    """Logins, refreshes and per-call HTTP Basic checks for the Freqtrade-compatible API; thread-safe."""

    def __init__(
        self,
        auth: AuthService,
        *,
        ttl_s: float = BASIC_TTL_S,
        max_entries: int = MAX_REMEMBERED,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._auth = auth
        self._ttl_s = ttl_s
        self._max = max_entries
        self._monotonic = monotonic
        self._key = secrets.token_bytes(32)
        self._seen: OrderedDict[bytes, tuple[int, float]] = OrderedDict()
        self._lock = threading.Lock()

    def login(self, username: str, password: str, ip: str | None) -> FtTokens:
        """Start a session for a username and password, or hand back a valid API key of that user."""
        if password.startswith(API_KEY_PREFIX):
            self._key_principal(username, password)
            return FtTokens(password, password)
        pair = self._auth.authenticate(username, password, ip=ip)
        return FtTokens(pair.access_token, pair.refresh_token)

    def refresh(self, token: str) -> FtTokens:
        """Exchange a refresh token for a new pair (TradeFleet rotates them); an API key stays itself."""
        if token.startswith(API_KEY_PREFIX):
            self._auth.verify_api_key(token)
            return FtTokens(token, token)
        pair = self._auth.refresh(token)
        return FtTokens(pair.access_token, pair.refresh_token)

    def basic(self, username: str, password: str, ip: str | None) -> Principal:
        """Return the caller of one HTTP Basic request (password or API key); :class:`AuthError` if wrong."""
        if password.startswith(API_KEY_PREFIX):
            return self._key_principal(username, password)
        digest = hmac.new(self._key, f"{username.strip().lower()}\0{password}".encode(), hashlib.sha256).digest()
        user_id = self._remembered(digest)
        if user_id is not None:
            return self._current(user_id)
        pair = self._auth.authenticate(username, password, ip=ip)
        principal = self._auth.verify_access(pair.access_token)
        self._auth.logout(pair.refresh_token)  # a check, not a session: nothing is left to refresh
        if principal.user_id is not None:
            self._remember(digest, principal.user_id)
        return principal

    def _key_principal(self, username: str, key: str) -> Principal:
        principal = self._auth.verify_api_key(key)
        if principal.username != username.strip().lower():
            raise AuthError("invalid username or API key")
        return principal

    def _current(self, user_id: int) -> Principal:
        """Return the user as the database holds it now: a disabled or deleted account is refused."""
        try:
            user = self._auth.user_by_id(user_id)
        except UnknownUserError:
            raise AuthError("account disabled or deleted") from None
        if user.disabled:
            raise AuthError("account disabled or deleted")
        return Principal(user.id, user.username, user.role, PrincipalKind.USER)

    def _remembered(self, digest: bytes) -> int | None:
        now = self._monotonic()
        with self._lock:
            found = self._seen.get(digest)
            if found is None:
                return None
            if found[1] <= now:
                del self._seen[digest]
                return None
            return found[0]

    def _remember(self, digest: bytes, user_id: int) -> None:
        with self._lock:
            self._seen[digest] = (user_id, self._monotonic() + self._ttl_s)
            self._seen.move_to_end(digest)
            while len(self._seen) > self._max:
                self._seen.popitem(last=False)
