"""Auth over real HTTP on loopback: logins, token rotation, forged tokens, roles, API keys, rate limits."""

from __future__ import annotations

import base64
import json

import jwt
import pytest
from api_support import PASSWORD, Api, assert_error


def _b64(data: dict[str, object]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def test_login_then_me_returns_the_caller(api: Api) -> None:
    tokens = api.login("trader")
    assert tokens["token_type"] == "bearer" and tokens["expires_in"] == 900
    assert set(tokens) == {"access_token", "refresh_token", "token_type", "expires_in"}
    me = api.client.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {tokens['access_token']}"})
    assert me.status_code == 200
    assert me.json() == {"user_id": me.json()["user_id"], "username": "trader", "role": "trader", "kind": "user"}


def test_login_alias_path_works_like_the_canonical_one(api: Api) -> None:
    answer = api.client.post("/api/auth/login", json={"username": "viewer", "password": PASSWORD})
    assert answer.status_code == 200 and answer.json()["token_type"] == "bearer"


def test_wrong_password_is_401_in_the_error_shape_with_request_id(api: Api) -> None:
    answer = api.client.post("/api/v1/auth/login", json={"username": "trader", "password": "nope"})
    error = assert_error(answer, 401, "unauthorized")
    assert error["message"] == "invalid username or password"
    assert answer.headers["WWW-Authenticate"] == "Bearer"
    assert "nope" not in answer.text


def test_unknown_user_and_wrong_password_answer_alike(api: Api) -> None:
    a = api.client.post("/api/v1/auth/login", json={"username": "ghost", "password": "nope"})
    b = api.client.post("/api/v1/auth/login", json={"username": "trader", "password": "nope"})
    assert a.status_code == b.status_code == 401
    assert a.json()["error"] == b.json()["error"]


def test_no_credentials_is_401(api: Api) -> None:
    assert_error(api.client.get("/api/v1/auth/me"), 401, "unauthorized")
    assert_error(api.client.get("/api/v1/auth/me", headers={"Authorization": "Basic abc"}), 401, "unauthorized")


def test_refresh_rotates_and_a_reused_token_revokes_the_whole_session(api: Api) -> None:
    first = api.login("trader")
    second = api.client.post("/api/v1/auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert second.status_code == 200
    rotated = second.json()
    assert rotated["refresh_token"] != first["refresh_token"]
    me = api.client.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {rotated['access_token']}"})
    assert me.status_code == 200

    reuse = api.client.post("/api/v1/auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert "already used" in assert_error(reuse, 401, "unauthorized")["message"]
    # The thief's replay ended the session: the legitimate successor is dead too.
    after = api.client.post("/api/v1/auth/refresh", json={"refresh_token": rotated["refresh_token"]})
    assert_error(after, 401, "unauthorized")


def test_logout_ends_the_session(api: Api) -> None:
    tokens = api.login("viewer")
    out = api.client.post("/api/v1/auth/logout", json={"refresh_token": tokens["refresh_token"]})
    assert out.status_code == 204 and "X-Request-ID" in out.headers
    again = api.client.post("/api/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert_error(again, 401, "unauthorized")


def _forgeries(api: Api) -> dict[str, str]:
    genuine = api.login("viewer")["access_token"]
    header, payload, signature = genuine.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    as_admin = {**claims, "role": "admin", "sub": str(api.auth.get_user("admin").id), "name": "admin"}
    return {
        "alg none": f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64(as_admin)}.",
        "wrong key": jwt.encode(as_admin, "k" * 64, algorithm="HS256"),
        "tampered": f"{header}.{_b64(as_admin)}.{signature}",
        "HS512 same claims": jwt.encode(claims, "k" * 64, algorithm="HS512"),
        "garbage": "not.a.token",
    }


@pytest.mark.parametrize("kind", ["alg none", "wrong key", "tampered", "HS512 same claims", "garbage"])
def test_forged_tokens_are_refused(api: Api, kind: str) -> None:
    token = _forgeries(api)[kind]
    answer = api.client.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {token}"})
    assert_error(answer, 401, "unauthorized")


def test_expired_access_token_is_refused(api: Api) -> None:
    headers = api.bearer("trader")
    assert api.client.get("/api/v1/auth/me", headers=headers).status_code == 200
    api.advance(16 * 60)
    error = assert_error(api.client.get("/api/v1/auth/me", headers=headers), 401, "unauthorized")
    assert "expired" in error["message"]


def test_viewer_and_trader_cannot_create_users(api: Api) -> None:
    body = {"username": "mallory", "password": PASSWORD, "role": "admin"}
    for who in ("viewer", "trader"):
        answer = api.client.post("/api/v1/users", json=body, headers=api.bearer(who))
        assert_error(answer, 403, "forbidden")
    assert_error(api.client.get("/api/v1/users", headers=api.bearer("viewer")), 403, "forbidden")


def test_admin_creates_lists_and_promotes_users(api: Api) -> None:
    admin = api.bearer("admin")
    made = api.client.post("/api/v1/users", json={"username": "carol", "password": PASSWORD}, headers=admin)
    assert made.status_code == 201
    assert made.json()["role"] == "viewer" and "password" not in made.text
    listed = api.client.get("/api/v1/users", headers=admin).json()
    assert [u["username"] for u in listed] == ["admin", "trader", "viewer", "carol"]

    promoted = api.client.patch(f"/api/v1/users/{made.json()['id']}/role", json={"role": "trader"}, headers=admin)
    assert promoted.status_code == 200 and promoted.json()["role"] == "trader"
    me = api.client.get("/api/v1/auth/me", headers=api.bearer("carol"))
    assert me.json()["role"] == "trader"

    duplicate = api.client.post("/api/v1/users", json={"username": "carol", "password": PASSWORD}, headers=admin)
    assert_error(duplicate, 409, "user_exists")
    missing = api.client.patch("/api/v1/users/999/role", json={"role": "viewer"}, headers=admin)
    assert_error(missing, 404, "unknown_user")


def test_nobody_sets_their_own_role(api: Api) -> None:
    admin_id = api.auth.get_user("admin").id
    answer = api.client.patch(f"/api/v1/users/{admin_id}/role", json={"role": "viewer"}, headers=api.bearer("admin"))
    assert_error(answer, 403, "forbidden")
    trader_id = api.auth.get_user("trader").id
    answer = api.client.patch(f"/api/v1/users/{trader_id}/role", json={"role": "admin"}, headers=api.bearer("trader"))
    assert_error(answer, 403, "forbidden")
    assert api.auth.get_user("trader").role == "trader"


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/api/v1/auth/login", {"username": "viewer", "password": PASSWORD, "role": "admin"}),
        ("/api/auth/login", {"username": "viewer", "password": PASSWORD, "is_admin": True}),
        ("/api/v1/auth/refresh", {"refresh_token": "x", "role": "admin"}),
    ],
)
def test_extra_fields_are_refused_never_assigned(api: Api, path: str, body: dict[str, object]) -> None:
    error = assert_error(api.client.post(path, json=body), 422, "validation_error")
    assert any(d["type"] == "extra_forbidden" for d in error["details"])
    assert PASSWORD not in json.dumps(error), "the input is never echoed"


def test_user_create_refuses_fields_outside_its_model(api: Api) -> None:
    body = {"username": "eve", "password": PASSWORD, "role": "viewer", "disabled": False, "id": 1}
    answer = api.client.post("/api/v1/users", json=body, headers=api.bearer("admin"))
    error = assert_error(answer, 422, "validation_error")
    assert sorted(d["loc"][-1] for d in error["details"]) == ["disabled", "id"]
    role_body = {"role": "admin", "username": "someone-else"}
    trader_id = api.auth.get_user("trader").id
    answer = api.client.patch(f"/api/v1/users/{trader_id}/role", json=role_body, headers=api.bearer("admin"))
    assert_error(answer, 422, "validation_error")


def test_invalid_role_and_missing_fields_are_422_with_field_details(api: Api) -> None:
    admin = api.bearer("admin")
    answer = api.client.post(
        "/api/v1/users", json={"username": "x1", "password": PASSWORD, "role": "god"}, headers=admin
    )
    assert assert_error(answer, 422, "validation_error")["details"][0]["loc"] == ["body", "role"]
    answer = api.client.post("/api/v1/auth/login", json={"username": "viewer"})
    assert assert_error(answer, 422, "validation_error")["details"][0]["loc"] == ["body", "password"]
    answer = api.client.post("/api/v1/auth/login", content=b"{not json", headers={"Content-Type": "application/json"})
    assert_error(answer, 422, "validation_error")


def test_failed_logins_are_rate_limited_with_retry_after(api: Api) -> None:
    for _ in range(5):
        answer = api.client.post("/api/v1/auth/login", json={"username": "trader", "password": "wrong"})
        assert answer.status_code == 401
    limited = api.client.post("/api/v1/auth/login", json={"username": "trader", "password": PASSWORD})
    assert_error(limited, 429, "rate_limited")
    assert 1 <= int(limited.headers["Retry-After"]) <= 300
    api.advance(301)
    assert api.client.post("/api/v1/auth/login", json={"username": "trader", "password": PASSWORD}).status_code == 200


def test_api_keys_by_header_or_bearer_then_revoked(api: Api) -> None:
    trader = api.bearer("trader")
    made = api.client.post("/api/v1/auth/api-keys", json={"name": "script"}, headers=trader)
    assert made.status_code == 201
    key = made.json()["api_key"]
    assert key.startswith("tfk_")
    for headers in ({"X-API-Key": key}, {"Authorization": f"Bearer {key}"}):
        me = api.client.get("/api/v1/auth/me", headers=headers)
        assert me.status_code == 200 and me.json()["kind"] == "api_key" and me.json()["username"] == "trader"
    listed = api.client.get("/api/v1/auth/api-keys", headers=trader).json()
    assert [(k["name"], k["revoked"]) for k in listed] == [("script", False)]
    assert key not in json.dumps(listed)

    gone = api.client.delete(f"/api/v1/auth/api-keys/{made.json()['id']}", headers=trader)
    assert gone.status_code == 204
    assert_error(api.client.get("/api/v1/auth/me", headers={"X-API-Key": key}), 401, "unauthorized")


def test_someone_elses_api_key_cannot_be_revoked_by_a_non_admin(api: Api) -> None:
    made = api.client.post("/api/v1/auth/api-keys", json={"name": "k"}, headers=api.bearer("trader")).json()
    answer = api.client.delete(f"/api/v1/auth/api-keys/{made['id']}", headers=api.bearer("viewer"))
    assert_error(answer, 403, "forbidden")
