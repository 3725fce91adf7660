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

from tradefleet.services.auth import Role

PASSWORD = "correct horse battery staple"
BOT_ID = "alpha"
BOT: dict[str, Any] = {"bot_id": BOT_ID, "strategy": "SampleStrategy", "pairs": ["BTC/USDT"], "timeframe": "5m"}
__all__ = ["BOT", "BOT_ID", "PASSWORD", "USERS", "LiveServer", "World"]

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
