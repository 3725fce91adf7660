"""Helpers of the security tests: the production-built API (every router) on a live server, and a small world.

The app is built the way ``tradefleet serve api`` builds it (``build_platform`` + ``build_bus`` +
``build_api`` over a temporary data directory and the test database), so every router that lands in the
composition root is under test. The world: users ``admin``, ``owner`` (a trader owning bot ``alpha``),
``other`` (a trader owning nothing) and ``viewer`` (owning nothing), each with a fresh access token, and an
API key of ``owner``.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration" / "api"))

from api_support import LiveServer

from tradefleet.bootstrap import Platform
from tradefleet.services.auth import Role

PASSWORD = "correct horse battery staple"
BOT_ID = "alpha"
BOT: dict[str, Any] = {"bot_id": BOT_ID, "strategy": "SampleStrategy", "pairs": ["BTC/USDT"], "timeframe": "5m"}
__all__ = ["BOT", "BOT_ID", "PASSWORD", "USERS", "LiveServer", "World", "wire_missing"]

USERS = {"admin": Role.ADMIN, "owner": Role.TRADER, "other": Role.TRADER, "viewer": Role.VIEWER}


@dataclass
class World:
    """The live production API and the fixture world the route matrix fills path parameters from."""

    url: str
    app: FastAPI
    client: httpx.Client
    tokens: dict[str, dict[str, str]] = field(default_factory=dict)  # username -> login answer
    user_ids: dict[str, int] = field(default_factory=dict)
    api_key_id: int = 0

    def bearer(self, username: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[username]['access_token']}"}

    def login(self, username: str) -> dict[str, str]:
        answer = self.client.post("/api/v1/auth/login", json={"username": username, "password": PASSWORD})
        assert answer.status_code == 200, answer.text
        body: dict[str, str] = answer.json()
        return body

    def restore(self) -> None:
        """Put bot ``alpha`` back as the matrix expects it: existing, owned by ``owner``, stopped."""
        found = self.client.get(f"/api/v1/bots/{BOT_ID}", headers=self.bearer("admin"))
        if found.status_code == 404:
            made = self.client.post("/api/v1/bots", json=BOT, headers=self.bearer("owner"))
            assert made.status_code == 201, made.text
        elif found.json()["status"] != "stopped":
            stopped = self.client.post(f"/api/v1/bots/{BOT_ID}/stop", headers=self.bearer("admin"))
            assert stopped.status_code == 200, stopped.text


def wire_missing(app: FastAPI, platform: Platform) -> None:
    """Fill in what ``bootstrap.build_api`` does not wire yet (the audit log, the credentials service).

    A no-op for each part the composition root wires (delete this once it wires both); until then their
    routes would answer 503 and nothing would be audited.
    """
    from tradefleet.adapters.storage.audit import SqlAuditLog
    from tradefleet.adapters.storage.credentials import SqlCredentialStore
    from tradefleet.adapters.storage.db import make_engine
    from tradefleet.services.auth import load_or_create_keys
    from tradefleet.services.credentials import CredentialService

    settings = platform.settings
    engine = make_engine(settings.database_url)
    platform.closers.append(engine.dispose)
    if app.state.services.audit is None:
        app.state.services.audit = SqlAuditLog(engine)
    if getattr(app.state, "credential_service", None) is None:
        box = load_or_create_keys(settings.data_dir).secret_box
        app.state.credential_service = CredentialService(SqlCredentialStore(engine), box, app.state.bot_service)
