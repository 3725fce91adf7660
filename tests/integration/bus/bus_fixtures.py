"""Fixtures of the bus integration tests (imported by the test modules): a Redis namespace per test.

Redis tests need ``TRADEFLEET_TEST_REDIS_URL`` (e.g. ``redis://127.0.0.1:6379/0``); without it or the server
they are skipped, unless ``TRADEFLEET_REQUIRE_SERVICES=1`` turns the skip into a failure.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, NoReturn

import pytest

REDIS_URL_VAR = "TRADEFLEET_TEST_REDIS_URL"


def skip_or_fail(reason: str) -> NoReturn:
    """Skip, or fail when ``TRADEFLEET_REQUIRE_SERVICES=1`` (as ``tests/conftest.py`` does for PostgreSQL)."""
    if os.environ.get("TRADEFLEET_REQUIRE_SERVICES") == "1":
        pytest.fail(f"{reason} (TRADEFLEET_REQUIRE_SERVICES=1)")
    pytest.skip(reason)


@dataclass(frozen=True)
class RedisSpace:
    url: str
    namespace: str
    client: Any  # redis.Redis with decode_responses=True


@pytest.fixture(name="redis_space")
def redis_space_fixture() -> Iterator[RedisSpace]:
    """A reachable Redis and a key namespace unique to the test; its keys are deleted afterwards."""
    url = os.environ.get(REDIS_URL_VAR, "")
    if not url:
        skip_or_fail(f"Redis tests need {REDIS_URL_VAR}, e.g. redis://127.0.0.1:6379/0")
    redis = pytest.importorskip("redis")
    client = redis.Redis.from_url(url, decode_responses=True, socket_connect_timeout=2)
    try:
        client.ping()
    except redis.RedisError as exc:
        client.close()
        skip_or_fail(f"Redis at {url} does not answer: {exc}")
    namespace = f"tftest:{uuid.uuid4().hex[:12]}:"
    try:
        yield RedisSpace(url, namespace, client)
    finally:
        for key in client.scan_iter(match=namespace + "*"):
            client.delete(key)
        client.close()
