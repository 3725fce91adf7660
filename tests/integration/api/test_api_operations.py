"""Operations over real HTTP: request ids, one error shape for every failure, /health, /metrics, /docs."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from api_support import START_MS, Api, LiveServer, assert_error, build_test_app
from fastapi import FastAPI

from tradefleet.adapters.storage import make_engine, upgrade
from tradefleet.core.errors import DataNotFoundError, RiskError
from tradefleet.engine.clock import SimClock


def test_request_id_is_echoed_or_generated(api: Api) -> None:
    given = api.client.get("/health", headers={"X-Request-ID": "abc-123_x.y"})
    assert given.headers["X-Request-ID"] == "abc-123_x.y" and given.json()["request_id"] == "abc-123_x.y"
    generated = api.client.get("/health")
    assert len(generated.headers["X-Request-ID"]) == 32
    for bad in (b"has space", b"x" * 129, b"semi;colon", "ünï".encode(), b"a\tb"):
        answer = api.client.get("/health", headers={"X-Request-ID": bad})
        assert answer.headers["X-Request-ID"].encode() != bad and len(answer.headers["X-Request-ID"]) == 32


def test_unknown_path_and_wrong_method_use_the_error_shape(api: Api) -> None:
    assert_error(api.client.get("/nope", headers={"X-Request-ID": "rid-404"}), 404, "not_found")
    wrong = api.client.get("/api/v1/auth/login")
    assert_error(wrong, 405, "method_not_allowed")
    assert wrong.headers["Allow"] == "POST"


def test_unexpected_errors_are_500_without_a_traceback(api: Api) -> None:
    def boom() -> None:
        raise RuntimeError("secret internals at /srv/db password=hunter2")

    api.app.add_api_route("/boom", boom)
    answer = api.client.get("/boom", headers={"X-Request-ID": "rid-boom"})
    error = assert_error(answer, 500, "internal_error")
    assert answer.json()["request_id"] == "rid-boom"
    assert "hunter2" not in answer.text and "Traceback" not in answer.text and error["details"] is None


@pytest.mark.parametrize(
    ("exc", "status", "code"),
    [(DataNotFoundError("no candles"), 404, "data_not_found"), (RiskError("max open trades"), 409, "risk_refused")],
)
def test_domain_errors_map_to_their_status(api: Api, exc: Exception, status: int, code: str) -> None:
    def fail() -> None:
        raise exc

    api.app.add_api_route("/fail", fail)
    error = assert_error(api.client.get("/fail"), status, code)
    assert error["message"] == str(exc)


def test_health_reports_every_component(api: Api) -> None:
    answer = api.client.get("/health")
    assert answer.status_code == 200
    body = answer.json()
    assert body["status"] == "ok"
    components = body["components"]
    assert components["storage"]["status"] == "ok" and components["storage"]["required"] is True
    for name in ("bus", "gateways", "exchanges"):
        assert components[name] == {"status": "not_configured", "required": False, "latency_ms": None, "detail": None}


def test_health_is_503_when_the_database_is_unreachable(tmp_path: Path, serve: Callable[[FastAPI], LiveServer]) -> None:
    db_dir = tmp_path / "db"
    url = f"sqlite:///{(db_dir / 'tradefleet.sqlite').as_posix()}"
    upgrade(url)
    engine = make_engine(url)
    app, _ = build_test_app(engine, tmp_path / "var", SimClock(START_MS))
    server = serve(app)
    try:
        with httpx.Client(base_url=server.url) as client:
            assert client.get("/health").status_code == 200
            engine.dispose()
            shutil.rmtree(db_dir)
            answer = client.get("/health")
            error = assert_error(answer, 503, "unhealthy")
            storage = error["details"]["components"]["storage"]
            assert storage["status"] == "error" and "unable to open database file" in storage["detail"]
            assert error["details"]["components"]["bus"]["status"] == "not_configured"
            # the login path fails in the same shape, not with a traceback
            login = client.post("/api/v1/auth/login", json={"username": "admin", "password": "b" * 12})
            assert login.json()["status"] == "error" and login.status_code in (500, 503)
    finally:
        engine.dispose()


def test_metrics_count_requests_by_route_template_in_a_per_app_registry(api: Api) -> None:
    api.client.get("/health")
    api.client.get("/api/v1/auth/me")
    api.client.get("/no/such/path")
    text = api.client.get("/metrics")
    assert text.status_code == 200 and text.headers["content-type"].startswith("text/plain")
    body = text.text
    assert 'tradefleet_http_requests_total{method="GET",route="/health",status="200"} 1.0' in body
    assert 'tradefleet_http_errors_total{method="GET",route="/api/v1/auth/me",status="401"} 1.0' in body
    assert 'route="<unmatched>",status="404"' in body and "/no/such/path" not in body
    assert "tradefleet_http_request_duration_seconds_bucket" in body
    assert "tradefleet_http_requests_in_flight 1.0" in body  # the /metrics request itself


def test_two_apps_keep_separate_metrics(tmp_path: Path, serve: Callable[[FastAPI], LiveServer]) -> None:
    url = f"sqlite:///{(tmp_path / 'db.sqlite').as_posix()}"
    upgrade(url)
    engine = make_engine(url)
    try:
        first = serve(build_test_app(engine, tmp_path / "var", SimClock(START_MS))[0])
        second = serve(build_test_app(engine, tmp_path / "var", SimClock(START_MS))[0])
        httpx.get(f"{first.url}/health")
        httpx.get(f"{first.url}/health")
        assert 'route="/health",status="200"} 2.0' in httpx.get(f"{first.url}/metrics").text
        assert 'route="/health"' not in httpx.get(f"{second.url}/metrics").text
    finally:
        engine.dispose()


def test_openapi_and_docs_are_served(api: Api) -> None:
    spec = api.client.get("/openapi.json").json()
    for path in ("/api/v1/auth/login", "/api/auth/login", "/api/v1/users/{user_id}/role", "/health", "/metrics"):
        assert path in spec["paths"]
    assert "HTTPBearer" in spec["components"]["securitySchemes"]
    assert api.client.get("/docs").status_code == 200


def test_log_lines_of_a_request_carry_its_request_id_as_trace_id(api: Api) -> None:
    import io
    import json

    from tradefleet.logs import configure_logging, reset_logging

    stream = io.StringIO()
    configure_logging("INFO", json=True, stream=stream)
    try:
        trader_id = api.auth.get_user("trader").id
        headers = {**api.bearer("admin"), "X-Request-ID": "trace-me-42"}
        answer = api.client.patch(f"/api/v1/users/{trader_id}/role", json={"role": "viewer"}, headers=headers)
        assert answer.status_code == 200
    finally:
        reset_logging()
    lines = [json.loads(line) for line in stream.getvalue().splitlines() if line.startswith("{")]
    changed = [line for line in lines if line.get("event") == "role changed"]
    assert changed and changed[0]["trace_id"] == "trace-me-42"
