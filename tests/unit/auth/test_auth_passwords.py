"""Password hashing: Argon2id with OWASP parameters, rehash on parameter change, bounded concurrency."""

from __future__ import annotations

import threading
import time

import argon2
import pytest

from tradefleet.services.auth import AccountError, PasswordHasher, RateLimited
from tradefleet.services.auth.passwords import OWASP_PARAMETERS, check_password_policy

CHEAP = argon2.Parameters(
    type=argon2.Type.ID, version=19, salt_len=16, hash_len=32, time_cost=1, memory_cost=1024, parallelism=1
)


def test_default_hash_is_argon2id_with_owasp_parameters() -> None:
    encoded = PasswordHasher().hash("correct horse battery staple")

    assert encoded.startswith("$argon2id$v=19$m=19456,t=2,p=1$")
    assert argon2.extract_parameters(encoded) == OWASP_PARAMETERS


def test_verify_accepts_the_password_and_rejects_others_and_garbage() -> None:
    hasher = PasswordHasher(CHEAP)
    encoded = hasher.hash("correct horse battery staple")

    assert hasher.verify(encoded, "correct horse battery staple")
    assert not hasher.verify(encoded, "correct horse battery stapl")
    assert not hasher.verify("not-a-hash", "correct horse battery staple")


def test_same_password_hashes_differently_each_time() -> None:
    hasher = PasswordHasher(CHEAP)
    assert hasher.hash("correct horse battery staple") != hasher.hash("correct horse battery staple")


def test_hash_made_with_other_parameters_needs_rehash() -> None:
    old = PasswordHasher(CHEAP).hash("correct horse battery staple")
    current = PasswordHasher(OWASP_PARAMETERS)

    assert current.needs_rehash(old)
    assert not current.needs_rehash(current.hash("correct horse battery staple"))
    assert current.verify(old, "correct horse battery staple")  # old hashes still verify until replaced


def test_unparseable_hash_needs_rehash() -> None:
    assert PasswordHasher(CHEAP).needs_rehash("$argon2id$garbage")


@pytest.mark.parametrize("password", ["short", "elevenchars", " " * 20, "x" * 1025])
def test_password_policy_rejects(password: str) -> None:
    with pytest.raises(AccountError):
        check_password_policy(password)


def test_password_policy_accepts_twelve_characters() -> None:
    check_password_policy("twelve chars")


class _SlowArgon2:
    """Stands in for argon2's hasher and records how many calls overlap."""

    def __init__(self, hold_s: float) -> None:
        self.hold_s = hold_s
        self.active = 0
        self.peak = 0
        self._lock = threading.Lock()

    def hash(self, password: str) -> str:
        with self._lock:
            self.active += 1
            self.peak = max(self.peak, self.active)
        time.sleep(self.hold_s)
        with self._lock:
            self.active -= 1
        return "hash"


def test_parallel_hashing_never_exceeds_max_concurrent() -> None:
    hasher = PasswordHasher(CHEAP, max_concurrent=2)
    slow = _SlowArgon2(0.02)
    hasher._hasher = slow  # type: ignore[assignment]
    threads = [threading.Thread(target=hasher.hash, args=("correct horse battery staple",)) for _ in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert slow.peak == 2


def test_saturated_hasher_answers_rate_limited_instead_of_queueing_forever() -> None:
    hasher = PasswordHasher(CHEAP, max_concurrent=1, acquire_timeout_s=0.05)
    hasher._hasher = _SlowArgon2(0.5)  # type: ignore[assignment]
    busy = threading.Thread(target=hasher.hash, args=("correct horse battery staple",))
    busy.start()
    time.sleep(0.05)
    try:
        with pytest.raises(RateLimited) as caught:
            hasher.hash("another long password")
    finally:
        busy.join()
    assert caught.value.retry_after == 1
