"""Schemathesis against the live production API (real HTTP over loopback), as an admin: no 5xx, one error shape.

The OpenAPI document is read from the running server; every operation gets a few generated requests (the
schema's own examples first), bounded so the whole run stays well under a minute. Checks: no server error
(``not_a_server_error``) and every 4xx in the one error shape with the request id of the answer.
"""

from __future__ import annotations

import os
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from security_support import World

# A few requests per operation and mode keep the run short; set TRADEFLEET_FUZZ_EXAMPLES for a deeper one.
EXAMPLES_PER_OPERATION = int(os.environ.get("TRADEFLEET_FUZZ_EXAMPLES", "2"))

# Operations not fuzzed, and why. Nothing here shuts the server down; these would only make the run slow.
EXCLUDED: dict[tuple[str, str], str] = {
    # A password check costs ~65 ms of Argon2 by design, and every failed login counts towards the rate
    # limit; their validation and error shape are covered by tests/integration/api/test_api_auth.py.
    ("POST", "/api/v1/auth/login"): "slow by design (Argon2)",
    ("POST", "/api/auth/login"): "slow by design (Argon2)",
    ("POST", "/ft/{bot_id}/api/v1/token/login"): "slow by design (Argon2 behind HTTP Basic)",
}


def one_error_shape(ctx: Any, response: schemathesis.Response, case: schemathesis.Case) -> bool | None:
    """Every 4xx answer is ``{"status": "error", "error": {code, message, details}, "request_id"}``."""
    if not 400 <= response.status_code < 500 or case.method.upper() == "HEAD":  # HEAD answers carry no body
        return None
    body = response.json()
    assert isinstance(body, dict) and set(body) == {"status", "error", "request_id"}, body
    assert body["status"] == "error", body
    assert isinstance(body["error"], dict) and set(body["error"]) == {"code", "message", "details"}, body
    assert isinstance(body["error"]["code"], str) and body["error"]["code"], body
    assert body["request_id"] == response.headers.get("x-request-id", [None])[0], body
    return None


def fuzz(operation: Any, url: str, headers: dict[str, str], mode: GenerationMode) -> None:
    """Send a few generated requests to ``operation`` and check each answer; raise on the first failure."""

    @settings(
        max_examples=EXAMPLES_PER_OPERATION,
        deadline=None,
        database=None,
        derandomize=True,  # the same requests every run: a failure here is reproducible
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(data=st.data())
    def run(data: st.DataObject) -> None:
        case = data.draw(operation.as_strategy(generation_mode=mode))
        response = case.call(base_url=url, headers=headers, timeout=30)
        case.validate_response(response, checks=[not_a_server_error, one_error_shape])

    run()


def _has_inputs(operation: Any) -> bool:
    """Return True if the operation takes any input (only those can be sent an invalid one)."""
    parts = (operation.path_parameters, operation.query, operation.headers, operation.cookies, operation.body)
    return any(len(list(part)) for part in parts)


# PostgreSQL only: it is the stricter backend (NUL characters, 64-bit integers), and one run keeps the time.
@pytest.mark.parametrize("database_url", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True)
def test_generated_requests_get_no_server_error_and_one_error_shape(world: World) -> None:
    admin = world.bearer("admin")
    schema = schemathesis.openapi.from_url(f"{world.url}/openapi.json", headers=admin, timeout=30)
    failures: list[str] = []
    operations = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        if (operation.method.upper(), operation.path) in EXCLUDED:
            continue
        operations += 1
        modes = (
            [GenerationMode.POSITIVE, GenerationMode.NEGATIVE] if _has_inputs(operation) else [GenerationMode.POSITIVE]
        )
        for mode in modes:
            try:
                fuzz(operation, world.url, admin, mode)
            except Exception as exc:
                failures.append(f"{operation.method.upper()} {operation.path} ({mode.value}): {exc}")
    assert operations >= 40, operations
    assert not failures, f"{len(failures)} of {operations} operations failed:\n\n" + "\n\n".join(failures)
