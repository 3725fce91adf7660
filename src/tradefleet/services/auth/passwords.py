"""Password hashing with Argon2id: OWASP parameters, rehash on change, bounded concurrency.

Parameters: the OWASP Password Storage Cheat Sheet's first Argon2id option, m=19 MiB, t=2, p=1
(:data:`OWASP_PARAMETERS`). RFC 9106's "low memory" profile (64 MiB, t=3, p=4) costs 3.4 times the memory
per login; with logins limited to ``max_concurrent`` at a time, OWASP's 19 MiB keeps the embedded
default usable on a small machine (4 logins = 76 MiB) at a strength OWASP rates equivalent. Raising
the parameters later is safe: hashes made with older parameters are replaced on the next good login
(:meth:`PasswordHasher.needs_rehash`).
"""

from __future__ import annotations

import threading

import argon2
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from tradefleet.services.auth.errors import AccountError, RateLimited

OWASP_PARAMETERS = argon2.Parameters(
    type=argon2.Type.ID,
    version=19,
    salt_len=16,
    hash_len=32,
    time_cost=2,
    memory_cost=19 * 1024,  # KiB
    parallelism=1,
)

MIN_PASSWORD_LENGTH = 12
MAX_PASSWORD_LENGTH = 1024  # hashing a megabyte "password" is a cheap way to burn our CPU


def check_password_policy(password: str) -> None:
    """Raise :class:`AccountError` unless ``password`` has 12 to 1024 characters, not all blank."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise AccountError(
            f"password too short: at least {MIN_PASSWORD_LENGTH} characters",
            hint="use a passphrase of several words, or a password manager",
        )
    if len(password) > MAX_PASSWORD_LENGTH:
        raise AccountError(f"password too long: at most {MAX_PASSWORD_LENGTH} characters")
    if not password.strip():
        raise AccountError("password must not be blank")


class PasswordHasher:
    """Hash and verify passwords, at most ``max_concurrent`` at a time.

    Each Argon2 call takes ``memory_cost`` KiB and tens of milliseconds of CPU; the semaphore keeps a burst
    of parallel logins from exhausting memory. A caller that waits longer than ``acquire_timeout_s`` for a
    slot gets :class:`RateLimited` rather than queueing without bound.
    """

    def __init__(
        self,
        parameters: argon2.Parameters = OWASP_PARAMETERS,
        *,
        max_concurrent: int = 4,
        acquire_timeout_s: float = 10.0,
    ) -> None:
        if max_concurrent < 1:
            raise ValueError(f"max_concurrent must be at least 1, got {max_concurrent}")
        self.parameters = parameters
        self._hasher = argon2.PasswordHasher.from_parameters(parameters)
        self._slots = threading.BoundedSemaphore(max_concurrent)
        self._timeout = acquire_timeout_s
        self._dummy_hash: str | None = None
        self._dummy_lock = threading.Lock()

    def hash(self, password: str) -> str:
        """Return the encoded Argon2id hash (``$argon2id$v=19$m=...``) of ``password`` with a fresh salt."""
        with self._slot():
            return self._hasher.hash(password)

    def verify(self, encoded: str, password: str) -> bool:
        """Return True if ``password`` matches ``encoded``; False for a mismatch or a malformed hash."""
        with self._slot():
            try:
                return self._hasher.verify(encoded, password)
            except (VerifyMismatchError, VerificationError, InvalidHashError):
                return False

    def verify_dummy(self, password: str) -> None:
        """Spend the time of a real verification, for unknown users: timing must not reveal who exists."""
        self.verify(self._dummy(), password)

    def needs_rehash(self, encoded: str) -> bool:
        """Return True if ``encoded`` was made with other parameters than this hasher's."""
        try:
            return self._hasher.check_needs_rehash(encoded)
        except (InvalidHashError, ValueError):
            return True

    def _dummy(self) -> str:
        with self._dummy_lock:
            if self._dummy_hash is None:
                self._dummy_hash = self.hash("tradefleet-dummy-password-for-unknown-users")
            return self._dummy_hash

    def _slot(self) -> _Slot:
        return _Slot(self._slots, self._timeout)


class _Slot:
    def __init__(self, semaphore: threading.BoundedSemaphore, timeout: float) -> None:
        self._semaphore = semaphore
        self._timeout = timeout

    def __enter__(self) -> None:
        if not self._semaphore.acquire(timeout=self._timeout):
            raise RateLimited("too many logins at once: password hashing is saturated", retry_after=1)

    def __exit__(self, *_exc: object) -> None:
        self._semaphore.release()
