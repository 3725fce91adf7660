"""The audit log over real HTTP: every state-changing request is recorded (who, what, when, outcome), no secret.

Admins read it back with ``GET /api/v1/audit`` (filters, pagination with the total); a failure to write a
row is logged with the request id and counted, and the request still succeeds.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from api_support import PASSWORD, Api, assert_error
from sqlalchemy import select

from tradefleet.adapters.storage import SqlTradingStore, make_engine
from tradefleet.adapters.storage.audit import SqlAuditLog
from tradefleet.adapters.storage.owner_tables import SqlBotOwners
from tradefleet.adapters.storage.platform_tables import audit_log
from tradefleet.services.bots import BotService

BOT: dict[str, Any] = {"bot_id": "alpha", "strategy": "SampleStrategy", "pairs": ["BTC/USDT"], "timeframe": "5m"}
WRONG_PASSWORD = "not-the-password-at-all-4711"


@pytest.fixture
def bots(api: Api) -> Iterator[SqlTradingStore]:
    trading = SqlTradingStore(api.engine, api.clock)
    api.app.state.bot_service = BotService(trading, SqlBotOwners(api.engine))
    try:
        yield trading
    finally:
        trading.close()


def _audit(api: Api, **params: Any) -> dict[str, Any]:
    answer = api.client.get("/api/v1/audit", params=params, headers=api.bearer("admin"))
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def _all_rows_text(api: Api) -> str:
    with api.engine.connect() as conn:
        return repr(conn.execute(select(audit_log)).all())


def test_state_changing_requests_are_recorded_with_actor_action_target_and_outcome(
    api: Api, bots: SqlTradingStore
) -> None:
    trader = api.bearer("trader")
    made = api.client.post("/api/v1/bots", json=BOT, headers=trader)
    assert made.status_code == 201, made.text
    patched = api.client.patch("/api/v1/bots/alpha", json={"pairs": ["ETH/USDT"]}, headers=trader)
    denied = api.client.delete("/api/v1/bots/alpha", headers=api.bearer("viewer"))
    assert_error(denied, 403, "forbidden")
    anonymous = api.client.post("/api/v1/bots", json={**BOT, "bot_id": "beta"})
    assert_error(anonymous, 401, "unauthorized")
    assert api.client.get("/api/v1/bots/alpha", headers=trader).status_code == 200  # reads are not recorded
    nul = api.client.post("/api/v1/auth/login", json={"username": "mal\x00lory", "password": WRONG_PASSWORD})
    assert_error(nul, 401, "unauthorized")  # PostgreSQL text cannot hold NUL: the row must be written anyway

    page = _audit(api, limit=500)
    acts = [r for r in page["items"] if not r["action"].endswith("/auth/login")]  # each bearer() logs in
    rows = [(r["actor"], r["role"], r["action"], r["target"], r["status_code"]) for r in acts]
    assert rows[:4] == [
        ("anonymous", "none", "POST /api/v1/bots", "", 401),
        ("viewer", "viewer", "DELETE /api/v1/bots/{bot_id}", "alpha", 403),
        ("trader", "trader", "PATCH /api/v1/bots/{bot_id}", "alpha", 200),
        ("trader", "trader", "POST /api/v1/bots", "", 201),
    ]
    assert not any(r["action"].startswith("GET ") for r in page["items"])
    by_request = {r["request_id"]: r for r in page["items"]}
    assert by_request[made.headers["X-Request-ID"]]["details"]["body"]["bot_id"] == "alpha"
    assert by_request[patched.headers["X-Request-ID"]]["details"] == {"body": {"pairs": ["ETH/USDT"]}}
    assert by_request[denied.headers["X-Request-ID"]]["details"] == {"error": "forbidden"}
    assert all(r["ts_ms"] > 0 for r in page["items"])
    assert by_request[nul.headers["X-Request-ID"]]["actor"] == "mal\ufffdlory"


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # nothing backend-specific beyond the above
def test_logins_failed_logins_and_logouts_are_recorded_without_any_secret(api: Api) -> None:
    failed = api.client.post("/api/v1/auth/login", json={"username": "trader", "password": WRONG_PASSWORD})
    assert_error(failed, 401, "unauthorized")
    unknown = api.client.post("/api/auth/login", json={"username": "mallory", "password": WRONG_PASSWORD})
    assert_error(unknown, 401, "unauthorized")
    tokens = api.login("trader")
    out = api.client.post(
        "/api/v1/auth/logout",
        json={"refresh_token": tokens["refresh_token"]},
        headers={"Authorization": f"Bearer {tokens['access_token']}"},
    )
    assert out.status_code == 204
    created = api.client.post("/api/v1/users", json={"username": "carol", "password": PASSWORD},
                              headers=api.bearer("admin"))  # fmt: skip
    assert created.status_code == 201

    trader_rows = _audit(api, actor="trader")["items"]
    assert [(r["action"], r["status_code"]) for r in trader_rows] == [
        ("POST /api/v1/auth/logout", 204),
        ("POST /api/v1/auth/login", 200),
        ("POST /api/v1/auth/login", 401),
    ]
    assert trader_rows[0]["role"] == "trader"  # the logout's caller, from the access token it came with
    assert trader_rows[2]["details"] == {"body": {"username": "trader"}, "error": "unauthorized"}
    mallory = _audit(api, actor="mallory")["items"]
    assert [(r["action"], r["status_code"]) for r in mallory] == [("POST /api/auth/login", 401)]
    creation = _audit(api, action="POST /api/v1/users")["items"][0]
    assert (creation["actor"], creation["details"]) == ("admin", {"body": {"username": "carol"}})

    stored = _all_rows_text(api)
    for secret in (WRONG_PASSWORD, PASSWORD, tokens["refresh_token"], tokens["access_token"]):
        assert secret not in stored


def test_audit_query_filters_paginates_with_a_total_and_is_for_admins_only(api: Api) -> None:
    viewer = api.bearer("viewer")
    action = "POST /api/v1/auth/api-keys"
    for name in ("k1", "k2", "k3", "k4"):
        assert api.client.post("/api/v1/auth/api-keys", json={"name": name}, headers=viewer).status_code == 201

    everything = _audit(api, actor="viewer", action=action)
    assert everything["total"] == 4
    names = [r["details"]["body"]["name"] for r in everything["items"]]
    assert names == ["k4", "k3", "k2", "k1"]  # newest first
    second = _audit(api, actor="viewer", action=action, limit=2, offset=2)
    assert (second["total"], second["limit"], second["offset"]) == (4, 2, 2)
    assert [r["details"]["body"]["name"] for r in second["items"]] == ["k2", "k1"]
    assert _audit(api, actor="nobody")["total"] == 0
    first, last = everything["items"][-1]["ts_ms"], everything["items"][0]["ts_ms"]
    assert _audit(api, action=action, since_ms=last + 1)["total"] == 0
    assert _audit(api, action=action, until_ms=first - 1)["total"] == 0
    assert _audit(api, action=action, since_ms=first, until_ms=last)["total"] == 4

    revoked = api.client.get("/api/v1/auth/api-keys", headers=viewer).json()[0]["id"]
    assert api.client.delete(f"/api/v1/auth/api-keys/{revoked}", headers=viewer).status_code == 204
    by_target = _audit(api, target=str(revoked))["items"]
    assert [r["action"] for r in by_target] == ["DELETE /api/v1/auth/api-keys/{key_id}"]

    assert_error(api.client.get("/api/v1/audit", headers=viewer), 403, "forbidden")
    assert_error(api.client.get("/api/v1/audit", headers=api.bearer("trader")), 403, "forbidden")
    assert_error(api.client.get("/api/v1/audit"), 401, "unauthorized")
    admin = api.bearer("admin")
    backwards = api.client.get("/api/v1/audit", params={"since_ms": 2000, "until_ms": 1999}, headers=admin)
    assert_error(backwards, 422, "validation_error")
    for bad in ({"limit": 0}, {"limit": 501}, {"offset": -1}, {"since_ms": "yesterday"}, {"until_ms": 10**14},
                {"actor": "a\x00b"}, {"target": "x" * 201}):  # fmt: skip
        assert_error(api.client.get("/api/v1/audit", params=bad, headers=admin), 422, "validation_error")


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_failed_audit_write_is_logged_and_counted_and_the_action_still_succeeds(
    api: Api, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    viewer = api.bearer("viewer")  # logged in while the log still works
    working = api.app.state.services.audit
    unmigrated = make_engine(f"sqlite:///{(tmp_path / 'no-schema.sqlite').as_posix()}")  # no audit_log table
    api.app.state.services.audit = SqlAuditLog(unmigrated)
    try:
        with caplog.at_level(logging.ERROR, logger="tradefleet.api.middleware"):
            answer = api.client.post("/api/v1/auth/api-keys", json={"name": "kept"}, headers=viewer)
    finally:
        api.app.state.services.audit = working
        unmigrated.dispose()
    assert answer.status_code == 201, answer.text
    assert api.client.get("/api/v1/auth/api-keys", headers=viewer).json()[0]["name"] == "kept"
    request_id = answer.headers["X-Request-ID"]
    failures = [r for r in caplog.records if "audit log write failed" in r.getMessage()]
    assert len(failures) == 1 and request_id in failures[0].getMessage()
    assert "tradefleet_audit_write_failures_total 1.0" in api.client.get("/metrics").text
    assert _audit(api, action="POST /api/v1/auth/api-keys")["total"] == 0
