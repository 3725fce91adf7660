"""Helpers of the API tests: a live uvicorn server in a thread, the test app, the error-shape check."""

from __future__ import annotations

import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import argon2
import httpx
from fastapi import FastAPI
from sqlalchemy import Engine

from tradefleet.adapters.storage.audit import SqlAuditLog
from tradefleet.api import ApiServices, DatabaseCheck, StaticCheck, create_app
from tradefleet.cli.serve import make_server
from tradefleet.engine.clock import SimClock
from tradefleet.services.auth import AuthService, PasswordHasher, SqlAuthRepository, load_or_create_keys

CHEAP = argon2.Parameters(
    type=argon2.Type.ID, version=19, salt_len=16, hash_len=32, time_cost=1, memory_cost=1024, parallelism=1
)
PASSWORD = "correct horse battery staple"
START_MS = 1_800_000_000_000


class LiveServer:
    """A uvicorn server in a thread on a free loopback port; ``stop`` asks it to exit and waits."""

    def __init__(self, app: FastAPI) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        port = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        self.server = make_server(app, "127.0.0.1", port)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)

    def start(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the API server did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(20)
        self.sock.close()
        assert not self.thread.is_alive(), "the API server did not stop"


@dataclass
class Api:
    """A running API and what it runs on; ``client`` talks HTTP to it."""

    url: str
    app: FastAPI
    auth: AuthService
    engine: Engine
    clock: SimClock
    client: httpx.Client

    def advance(self, seconds: float) -> None:
        self.clock.set(self.clock.now_ms() + int(seconds * 1000))

    def login(self, username: str, password: str = PASSWORD) -> dict[str, str]:
        answer = self.client.post("/api/v1/auth/login", json={"username": username, "password": password})
        assert answer.status_code == 200, answer.text
        body: dict[str, str] = answer.json()
        return body

    def bearer(self, username: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.login(username)['access_token']}"}


def build_test_app(engine: Engine, data_dir: Path, clock: SimClock) -> tuple[FastAPI, AuthService]:
    auth = AuthService(SqlAuthRepository(engine), load_or_create_keys(data_dir), clock, hasher=PasswordHasher(CHEAP))
    services = ApiServices(
        auth=auth,
        health_checks=[DatabaseCheck(engine), StaticCheck("bus"), StaticCheck("gateways"), StaticCheck("exchanges")],
        audit=SqlAuditLog(engine),
    )
    return create_app(services), auth


def assert_error(answer: httpx.Response, status: int, code: str) -> dict[str, Any]:
    """Check the one error shape (body and X-Request-ID header); return the ``error`` object."""
    assert answer.status_code == status, answer.text
    body = answer.json()
    assert set(body) == {"status", "error", "request_id"}, body
    assert body["status"] == "error"
    assert set(body["error"]) == {"code", "message", "details"}, body
    assert body["error"]["code"] == code, body
    assert body["request_id"] and body["request_id"] == answer.headers["X-Request-ID"]
    error: dict[str, Any] = body["error"]
    return error
