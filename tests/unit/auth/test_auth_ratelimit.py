"""Login rate limiting: sliding windows of failures per username and per IP."""

from __future__ import annotations

import pytest

from tradefleet.services.auth import InMemoryFailureLimiter, LoginRateLimiter

MIN = 60_000


def test_fifth_failure_blocks_until_the_oldest_leaves_the_window() -> None:
    limiter = InMemoryFailureLimiter(5, 300)
    for i in range(5):
        assert limiter.retry_after_s("alice", i * MIN) == 0
        limiter.record_failure("alice", i * MIN)

    assert limiter.retry_after_s("alice", 4 * MIN) == pytest.approx(60)  # first failure at 0 leaves at 5 min
    assert limiter.retry_after_s("alice", 5 * MIN) == 0


def test_window_slides_rather_than_resetting() -> None:
    limiter = InMemoryFailureLimiter(3, 300)
    for t in (0, 1 * MIN, 2 * MIN):
        limiter.record_failure("k", t)
    assert limiter.retry_after_s("k", 5 * MIN) == 0  # the failure at 0 left
    limiter.record_failure("k", 5 * MIN)
    assert limiter.retry_after_s("k", 5 * MIN) == pytest.approx(60)  # 1 min, 2 min, 5 min: blocked until 6 min


def test_keys_are_independent_and_reset_forgets() -> None:
    limiter = InMemoryFailureLimiter(1, 300)
    limiter.record_failure("a", 0)

    assert limiter.retry_after_s("a", 0) > 0
    assert limiter.retry_after_s("b", 0) == 0
    limiter.reset("a")
    assert limiter.retry_after_s("a", 0) == 0


def test_memory_stays_bounded_under_a_spray_of_keys() -> None:
    limiter = InMemoryFailureLimiter(1, 300, max_keys=100)
    for i in range(1000):
        limiter.record_failure(f"user{i}", 0)

    assert len(limiter._failures) == 100
    assert limiter.retry_after_s("user999", 0) > 0


def test_login_limiter_blocks_an_ip_spraying_usernames() -> None:
    limiter = LoginRateLimiter(InMemoryFailureLimiter(5, 300), InMemoryFailureLimiter(20, 300))
    for i in range(20):
        limiter.record_failure(f"user{i}", "10.0.0.1", 0)

    assert limiter.retry_after_s("fresh-user", "10.0.0.1", 0) > 0
    assert limiter.retry_after_s("fresh-user", "10.0.0.2", 0) == 0


def test_success_clears_the_username_but_not_the_ip() -> None:
    limiter = LoginRateLimiter(InMemoryFailureLimiter(2, 300), InMemoryFailureLimiter(2, 300))
    limiter.record_failure("alice", "10.0.0.1", 0)
    limiter.record_failure("alice", "10.0.0.1", 0)
    limiter.record_success("alice")

    assert limiter.retry_after_s("alice", None, 0) == 0
    assert limiter.retry_after_s("alice", "10.0.0.1", 0) > 0
