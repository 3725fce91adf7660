"""Fixtures of the security tests: the production-built API on a live server, with the world of ``security_support``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from security_support import BOT, PASSWORD, USERS, LiveServer, World

from tradefleet.bootstrap import build_api, build_bus, build_platform
from tradefleet.config import Settings


@pytest.fixture
def world(database_url: str, tmp_path: Path) -> Iterator[World]:
    """The production API on a live loopback server, with the users, bot ``alpha`` and an API key of ``owner``."""
    settings = Settings(data_dir=tmp_path / "var", database={"url": database_url})
    platform = build_platform(settings)
    bus = build_bus(settings)
    app = build_api(platform, bus)
    auth = app.state.services.auth
    user_ids = {name: auth.create_user(name, PASSWORD, role).id for name, role in USERS.items()}
    server = LiveServer(app).start()
    try:
        with httpx.Client(base_url=server.url, timeout=30) as client:
            world = World(server.url, app, client, user_ids=user_ids)
            world.tokens = {name: world.login(name) for name in USERS}
            made = client.post("/api/v1/bots", json=BOT, headers=world.bearer("owner"))
            assert made.status_code == 201, made.text
            key = client.post("/api/v1/auth/api-keys", json={"name": "matrix"}, headers=world.bearer("owner"))
            assert key.status_code == 201, key.text
            world.api_key_id = key.json()["id"]
            yield world
    finally:
        server.stop()
        bus.close()
        platform.close()
