"""Fixtures of the API tests: the API on a real uvicorn server on loopback, over each database backend."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from api_support import PASSWORD, START_MS, Api, LiveServer, build_test_app
from fastapi import FastAPI

from tradefleet.adapters.storage import make_engine, upgrade
from tradefleet.engine.clock import SimClock
from tradefleet.services.auth import Role


@pytest.fixture
def serve() -> Iterator[Callable[[FastAPI], LiveServer]]:
    """Start apps on live servers; every one is stopped at the end of the test."""
    servers: list[LiveServer] = []

    def start(app: FastAPI) -> LiveServer:
        server = LiveServer(app).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def api(database_url: str, tmp_path: Path, serve: Callable[[FastAPI], LiveServer]) -> Iterator[Api]:
    """The API over a fresh database with users admin, trader and viewer (password ``PASSWORD``)."""
    upgrade(database_url)
    engine = make_engine(database_url)
    clock = SimClock(START_MS)
    app, auth = build_test_app(engine, tmp_path / "var", clock)
    for name, role in (("admin", Role.ADMIN), ("trader", Role.TRADER), ("viewer", Role.VIEWER)):
        auth.create_user(name, PASSWORD, role)
    server = serve(app)
    try:
        with httpx.Client(base_url=server.url, timeout=20) as client:
            yield Api(server.url, app, auth, engine, clock, client)
    finally:
        server.stop()  # before the engine goes: no request may be in flight on it
        engine.dispose()
