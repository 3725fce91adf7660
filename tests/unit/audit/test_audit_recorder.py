"""What an audit entry keeps of a request: allow-listed body fields, the login tried, never a secret."""

from __future__ import annotations

import base64
import json

from tradefleet.services.audit.recorder import (
    ANONYMOUS,
    MAX_TEXT,
    basic_auth_username,
    build_entry,
    error_code_of,
    summarize_body,
    target_of,
)
from tradefleet.services.auth import Principal, PrincipalKind, Role

SECRETS = {
    "password": "hunter2-password",
    "new_password": "hunter3-password",
    "refresh_token": "rt-secret-value",
    "api_key": "AKIA-exchange-key",
    "secret": "exchange-secret-value",
    "access_token": "eyJ.secret.jwt",
}


def test_body_summary_keeps_only_allow_listed_scalars_and_drops_every_secret() -> None:
    body = {"username": "alice", "role": "trader", "pairs": ["BTC/USDT"], "strategy_params": {"x": 1},
            "reason": "r" * 500, "exchange": "binance", **SECRETS}  # fmt: skip
    summary = summarize_body(json.dumps(body).encode(), "application/json")
    assert summary == {"username": "alice", "role": "trader", "pairs": ["BTC/USDT"], "reason": "r" * MAX_TEXT,
                       "exchange": "binance"}  # fmt: skip
    assert not any(secret in json.dumps(summary) for secret in SECRETS.values())


def test_non_json_or_malformed_bodies_are_not_summarised() -> None:
    assert summarize_body(b"username=alice&password=x", "application/x-www-form-urlencoded") == {}
    assert summarize_body(b"{not json", "application/json") == {}
    assert summarize_body(b'["username"]', "application/json") == {}
    assert summarize_body(b'{"pairs": [{"nested": 1}]}', "application/json") == {}


def test_basic_auth_gives_the_username_and_never_the_password() -> None:
    header = "Basic " + base64.b64encode(b"alice:s3cret:with:colons").decode()
    assert basic_auth_username(header) == "alice"
    assert basic_auth_username("Bearer abc") is None
    assert basic_auth_username("Basic !!!not-base64") is None
    assert basic_auth_username("Basic " + base64.b64encode(b"no-colon").decode()) is None


def test_a_failed_login_names_the_username_tried_and_other_anonymous_calls_name_nobody() -> None:
    login = build_entry(method="POST", route="/api/v1/auth/login", path_params={}, status_code=401,
                        request_id="r1", principal=None, summary={"username": "mallory"},
                        error_code="unauthorized")  # fmt: skip
    assert (login.actor, login.role, login.action, login.status_code) == (
        "mallory",
        "none",
        "POST /api/v1/auth/login",
        401,
    )
    assert login.details == {"body": {"username": "mallory"}, "error": "unauthorized"}
    # A username in any other anonymous body (creating a user without credentials) is not the actor.
    other = build_entry(method="POST", route="/api/v1/users", path_params={}, status_code=401, request_id="r2",
                        principal=None, summary={"username": "mallory"})  # fmt: skip
    assert other.actor == ANONYMOUS


def test_the_principal_is_the_actor_and_path_parameters_are_the_target() -> None:
    admin = Principal(1, "root", Role.ADMIN, PrincipalKind.USER)
    entry = build_entry(method="PATCH", route="/api/v1/users/{user_id}/role", path_params={"user_id": "7"},
                        status_code=200, request_id="r3", principal=admin, summary={"role": "viewer"})  # fmt: skip
    assert (entry.actor, entry.role, entry.target) == ("root", "admin", "7")
    assert target_of({"bot_id": "alpha", "trade_id": "3"}) == "bot_id=alpha,trade_id=3"
    assert target_of({}) == ""


def test_error_code_is_read_from_the_one_error_shape_only() -> None:
    assert error_code_of(b'{"status":"error","error":{"code":"bot_not_found","message":"m"}}') == "bot_not_found"
    assert error_code_of(b"<html>") is None
    assert error_code_of(b'{"detail": "x"}') is None
