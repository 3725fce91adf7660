"""Every route of the production app × every kind of caller, against a declared access policy.

The routes are enumerated from the app itself (every HTTP route with each of its methods, and the
WebSocket), so a route nobody classified in :data:`POLICIES` fails the test: new routes must say who may
call them. Callers: anonymous, ``viewer`` (owns nothing), ``owner`` (trader owning bot ``alpha``), ``other``
(a trader who does not own it) and ``admin``. Each policy says what each caller must get:

    401   anonymous on a protected route
    403   the caller's role is too low (``forbidden``)
    404   ``bot_not_found``: the bot exists but is not the caller's (BOLA: like a missing bot)
    ok    anything else that is not a server error: 2xx, or a 4xx about the input or the bot's state
          (422 validation, 409 bot not running, 404 no such data, ...); 503 only as ``gateway_unavailable``

Request bodies are valid, so a role or ownership check that happens in the service (after validation)
is reached. Actions are kept light: bot ``alpha`` is stopped, so force orders answer 409, and after each
state-changing request that was let through the world is restored (``alpha`` back, owned by ``owner``, stopped).
"""

from __future__ import annotations

import json
from base64 import b64encode
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from fastapi.routing import APIWebSocketRoute, iter_route_contexts
from security_support import BOT, BOT_ID, PASSWORD, World
from starlette.routing import Route
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

ANONYMOUS = "anonymous"
CALLERS = (ANONYMOUS, "viewer", "other", "owner", "admin")  # the owner acts after the others were refused
OK, UNAUTHORIZED, FORBIDDEN, NOT_FOUND = "ok", "401", "403", "404 bot_not_found"
TOLERATED_5XX = {"gateway_unavailable"}  # a command to a bot no gateway runs: authorization was passed

# What each caller must get, per kind of policy.
EXPECTED: dict[str, dict[str, str]] = {
    "public": dict.fromkeys(CALLERS, OK),
    "viewer+": {**dict.fromkeys(CALLERS, OK), ANONYMOUS: UNAUTHORIZED},
    "trader+": {ANONYMOUS: UNAUTHORIZED, "viewer": FORBIDDEN, "other": OK, "owner": OK, "admin": OK},
    "admin": {ANONYMOUS: UNAUTHORIZED, "viewer": FORBIDDEN, "other": FORBIDDEN, "owner": FORBIDDEN, "admin": OK},
    "owner-viewer+": {ANONYMOUS: UNAUTHORIZED, "viewer": NOT_FOUND, "other": NOT_FOUND, "owner": OK, "admin": OK},
    "owner-trader+": {ANONYMOUS: UNAUTHORIZED, "viewer": FORBIDDEN, "other": NOT_FOUND, "owner": OK, "admin": OK},
    # the owner's API key: its owner or an admin may revoke it
    "key-owner-or-admin": {
        ANONYMOUS: UNAUTHORIZED,
        "viewer": FORBIDDEN,
        "other": FORBIDDEN,
        "owner": OK,
        "admin": OK,
    },
}

Body = Callable[[World, str], Any]


@dataclass(frozen=True)
class Policy:
    """Who may call a route, and how the matrix calls it.

    ``auth``: how a caller presents itself: ``bearer`` (access token), ``basic`` (username and password, the
    Freqtrade way) or ``refresh`` (a fresh refresh token as bearer). ``body`` and ``query`` make a valid
    request; ``body`` may be a function of the world and the caller.
    """

    kind: str
    body: Any = None
    query: dict[str, Any] = field(default_factory=dict)
    auth: str = "bearer"


def _fresh_refresh(world: World, caller: str) -> dict[str, str]:
    return {"refresh_token": world.login("viewer" if caller == ANONYMOUS else caller)["refresh_token"]}


def _new_bot(_world: World, caller: str) -> dict[str, Any]:
    return {**BOT, "bot_id": f"made-by-{caller}"}


ON_ALPHA = {"bot_id": BOT_ID}  # the single-bot aliases act on ?bot_id=
LOGIN = {"username": "viewer", "password": PASSWORD}
FT = "/ft/{bot_id}/api/v1"
BOTS = "/api/v1/bots/{bot_id}"

POLICIES: dict[tuple[str, str], Policy] = {
    # documentation and operations
    **{
        (m, p): Policy("public")
        for p in ("/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc")
        for m in ("GET", "HEAD")
    },
    ("GET", "/health"): Policy("public"),
    ("GET", "/metrics"): Policy("public"),
    # auth and users
    ("POST", "/api/v1/auth/login"): Policy("public", body=LOGIN),
    ("POST", "/api/auth/login"): Policy("public", body=LOGIN),
    ("POST", "/api/v1/auth/refresh"): Policy("public", body=_fresh_refresh),
    ("POST", "/api/v1/auth/logout"): Policy("public", body=_fresh_refresh),
    ("GET", "/api/v1/auth/me"): Policy("viewer+"),
    ("POST", "/api/v1/auth/api-keys"): Policy("viewer+", body={"name": "matrix key"}),
    ("GET", "/api/v1/auth/api-keys"): Policy("viewer+"),
    ("DELETE", "/api/v1/auth/api-keys/{key_id}"): Policy("key-owner-or-admin"),
    ("POST", "/api/v1/users"): Policy("admin", body={"username": "made-by-matrix", "password": PASSWORD}),
    ("GET", "/api/v1/users"): Policy("admin"),
    ("PATCH", "/api/v1/users/{user_id}/role"): Policy("admin", body={"role": "viewer"}),
    ("GET", "/api/v1/audit"): Policy("admin"),
    # bots
    ("GET", "/api/v1/bots"): Policy("viewer+"),
    ("POST", "/api/v1/bots"): Policy("trader+", body=_new_bot),
    ("GET", BOTS): Policy("owner-viewer+"),
    ("PATCH", BOTS): Policy("owner-trader+", body={"pairs": ["BTC/USDT"]}),
    ("DELETE", BOTS): Policy("owner-trader+"),
    **{
        ("GET", f"{BOTS}/{r}"): Policy("owner-viewer+")
        for r in ("status", "positions", "trades", "performance", "equity", "orders", "logs", "account")
    },
    **{("POST", f"{BOTS}/{r}"): Policy("owner-trader+") for r in ("start", "stop", "stop-entries", "resume")},
    ("POST", f"{BOTS}/force-enter"): Policy("owner-trader+", body={"pair": "BTC/USDT"}),
    ("POST", f"{BOTS}/force-exit"): Policy("owner-trader+", body={}),
    ("POST", f"{BOTS}/emergency-stop"): Policy("owner-trader+", body={"level": "HALT_ENTRIES", "reason": "matrix"}),
    ("DELETE", f"{BOTS}/kill-switch"): Policy("admin"),
    ("PUT", f"{BOTS}/credentials"): Policy(
        "owner-trader+", body={"exchange": "okx", "api_key": "k" * 16, "secret": "s"}
    ),
    ("GET", f"{BOTS}/credentials"): Policy("owner-viewer+"),
    ("DELETE", f"{BOTS}/credentials"): Policy("owner-trader+"),
    # market data
    ("GET", "/api/v1/market/candles"): Policy("viewer+", query={"pair": "BTC/USDT", "timeframe": "5m"}),
    ("GET", "/api/v1/market/series"): Policy("viewer+"),
    # the trading engine's documented aliases, on ?bot_id=alpha
    **{
        ("GET", f"/api/{r}"): Policy("owner-viewer+", query=ON_ALPHA)
        for r in ("status", "positions", "trades/history", "performance/stats", "account", "config/trading")
    },
    **{
        ("POST", f"/api/{r}"): Policy("owner-trader+", query=ON_ALPHA)
        for r in ("bot/start", "bot/stop", "positions/close-all", "positions/{symbol:path}/close")
    },
    ("PUT", "/api/config/trading"): Policy("owner-trader+", body={"max_open_trades": 2}, query=ON_ALPHA),
    ("POST", "/api/trades/execute"): Policy(
        "owner-trader+", body={"symbol": "BTC-USDT", "side": "sell"}, query=ON_ALPHA
    ),
    ("GET", "/api/market-data/{symbol:path}/{timeframe}"): Policy("owner-viewer+", query=ON_ALPHA),
    # live events
    ("WS", "/ws"): Policy("viewer+"),
    # Freqtrade's REST API per bot
    ("GET", f"{FT}/ping"): Policy("public"),
    ("HEAD", f"{FT}/ping"): Policy("public"),
    ("POST", f"{FT}/token/login"): Policy("viewer+", auth="basic"),
    ("POST", f"{FT}/token/refresh"): Policy("viewer+", auth="refresh"),
    **{
        ("GET", f"{FT}/{r}"): Policy("owner-viewer+")
        for r in (
            "version",
            "show_config",
            "status",
            "count",
            "trades",
            "trade/{tradeid}",
            "profit",
            "balance",
            "performance",
            "entries",
            "exits",
            "mix_tags",
            "daily",
            "weekly",
            "monthly",
            "stats",
            "whitelist",
            "blacklist",
            "locks",
            "logs",
            "health",
            "plot_config",
        )
    },
    ("GET", f"{FT}/pair_candles"): Policy("owner-viewer+", query={"pair": "BTC/USDT", "timeframe": "5m"}),
    ("POST", f"{FT}/pair_candles"): Policy("owner-viewer+", body={"pair": "BTC/USDT", "timeframe": "5m"}),
    **{("POST", f"{FT}/{r}"): Policy("owner-trader+") for r in ("start", "stop", "pause", "stopbuy", "stopentry")},
    **{("POST", f"{FT}/{r}"): Policy("owner-trader+", body={"pair": "BTC/USDT"}) for r in ("forcebuy", "forceenter")},
    **{("POST", f"{FT}/{r}"): Policy("owner-trader+", body={"tradeid": "all"}) for r in ("forcesell", "forceexit")},
}


def app_routes(world: World) -> list[tuple[str, str]]:
    """Every (method, path template) the app serves, ``("WS", path)`` for WebSockets."""
    found: set[tuple[str, str]] = set()
    for context in iter_route_contexts(world.app.routes):
        route, path = context.original_route, context.path
        if isinstance(route, APIWebSocketRoute):
            found.add(("WS", str(path)))
        elif isinstance(route, Route):
            found.update((method, str(path)) for method in context.methods or ())
    # The enumeration must not go quiet (FastAPI changed how included routers appear in app.routes once):
    # every operation of the published OpenAPI document has to be among the routes found.
    documented = world.client.get("/openapi.json").json()["paths"]
    missing = {(m.upper(), p) for p, ops in documented.items() for m in ops} - {(m, _plain(p)) for m, p in found}
    assert not missing, f"routes in /openapi.json that the enumeration missed: {sorted(missing)}"
    return sorted(found)


def _plain(path: str) -> str:
    return path.replace(":path}", "}")


def _path_values(world: World) -> dict[str, str]:
    return {"bot_id": BOT_ID, "user_id": str(world.user_ids["viewer"]), "key_id": str(world.api_key_id),
            "symbol": "BTC-USDT", "timeframe": "5m", "tradeid": "1"}  # fmt: skip


def _fill(path: str, values: dict[str, str]) -> str:
    filled = _plain(path)
    for name, value in values.items():
        filled = filled.replace("{" + name + "}", value)
    assert "{" not in filled, f"no fixture value for a path parameter of {path}: add it to _path_values"
    return filled


def _headers(world: World, caller: str, auth: str) -> dict[str, str]:
    if caller == ANONYMOUS:
        return {}
    if auth == "basic":
        return {"Authorization": "Basic " + b64encode(f"{caller}:{PASSWORD}".encode()).decode()}
    if auth == "refresh":
        return {"Authorization": f"Bearer {world.login(caller)['refresh_token']}"}
    return world.bearer(caller)


def _outcome(status: int, code: str | None) -> str:
    if status == 401:
        return UNAUTHORIZED
    if status == 403:
        return FORBIDDEN
    if status == 404 and code == "bot_not_found":
        return NOT_FOUND
    if status >= 500 and not (status == 503 and code in TOLERATED_5XX):
        return f"server error {status} {code}"
    return OK


def _call_http(world: World, method: str, path: str, policy: Policy, caller: str) -> tuple[str, str]:
    body = policy.body(world, caller) if callable(policy.body) else policy.body
    answer = world.client.request(
        method,
        _fill(path, _path_values(world)),
        params=policy.query,
        json=body,
        headers=_headers(world, caller, policy.auth),
    )
    code = None
    if answer.headers.get("content-type", "").startswith("application/json") and answer.content:
        parsed = answer.json()
        error = parsed.get("error") if isinstance(parsed, dict) else None
        code = error.get("code") if isinstance(error, dict) else None
    outcome = _outcome(answer.status_code, code)
    if outcome == OK and method not in ("GET", "HEAD"):  # a refused request changed nothing
        world.restore()
    return outcome, f"{answer.status_code} {code or ''}".strip()


def _call_ws(world: World, path: str, caller: str) -> tuple[str, str]:
    url = world.url.replace("http://", "ws://") + path
    with connect(url, additional_headers=_headers(world, caller, "bearer"), open_timeout=10) as socket:
        if caller == ANONYMOUS:
            socket.send(json.dumps({"type": "auth", "token": "not-a-token"}))
        try:
            first = json.loads(socket.recv(timeout=10))
        except ConnectionClosed as closed:
            code = closed.rcvd.code if closed.rcvd is not None else None
            return (UNAUTHORIZED if code == 4401 else f"closed {code}"), f"close {code}"
    return (OK if first.get("type") == "authenticated" else f"answer {first}"), str(first.get("type"))


# One backend: who may call what does not depend on it (the storage under it is tested on both elsewhere).
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_every_route_answers_every_caller_as_its_policy_says(world: World) -> None:
    routes = app_routes(world)
    unclassified = [route for route in routes if route not in POLICIES]
    assert not unclassified, f"routes without an access policy (classify them in POLICIES): {unclassified}"
    stale = sorted(set(POLICIES) - set(routes))
    mismatches: list[str] = []
    cells = 0
    for method, path in routes:
        policy = POLICIES[(method, path)]
        for caller in CALLERS:
            expected = EXPECTED[policy.kind][caller]
            if method == "WS":
                got, seen = _call_ws(world, path, caller)
            else:
                got, seen = _call_http(world, method, path, policy, caller)
            cells += 1
            if got != expected:
                mismatches.append(f"{method} {path} as {caller}: expected {expected}, got {seen}")
    assert cells == len(routes) * len(CALLERS) and len(routes) >= 40, (cells, len(routes))
    assert not mismatches, f"{len(mismatches)} of {cells} cells disagree with the policy:\n" + "\n".join(mismatches)
    assert not stale, f"policies for routes the app no longer has (remove them): {stale}"
