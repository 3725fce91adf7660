"""WebSocket ``/ws``: live domain events of the bots a caller may see, with resume after a reconnect.

Protocol (JSON text frames)::

    client                                              server
    (header Authorization: Bearer <token> | X-API-Key)  {"type": "authenticated", "user": ..., "role": ...}
    or first message {"type": "auth", "token": "..."}   (within auth_timeout_s)
    {"type": "subscribe", "bots": ["alpha"] | ["*"],    {"type": "subscribed", "bots": [...], "events": [...]}
     "events": [...], "last_event_id": "..."}           missed events first, then live ones, or {"type": "resync"}
                                                        {"type": "event", "id": "<bus id>", "event": {...}}
    {"type": "ping"}                                    {"type": "pong"}

Credentials are the REST API's (access token, API key, service token, resolved by
``api.deps.current_principal``); one in the URL is refused, because URLs end up in logs. Closes: 4401 bad
or missing credentials, 4008 too slow (its bounded queue overflowed), 1011 no events feed in this process.
Another ``subscribe`` replaces the filters (a resume is only accepted in the first). Keepalive pings are
uvicorn's. Events come from ``app.state.events_feed`` (:class:`~tradefleet.services.events.EventsFeed`)
through one :class:`~tradefleet.services.events.EventsHub` per app, made on the first connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from dataclasses import dataclass
from typing import Any, cast

from fastapi import APIRouter, FastAPI, Request, WebSocket
from fastapi.security import HTTPAuthorizationCredentials
from fastapi.security.utils import get_authorization_scheme_param
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.websockets import WebSocketDisconnect, WebSocketState

from tradefleet.api.deps import ApiServices, current_principal
from tradefleet.core.bus import entry_id_key
from tradefleet.core.errors import TradeFleetError
from tradefleet.services.auth import AuthError, AuthService, Principal
from tradefleet.services.bots import UnknownBotError, may_see
from tradefleet.services.events import (
    ALL_BOTS,
    CLIENT_MESSAGE,
    AuthMessage,
    EventsFeed,
    EventsHub,
    PingMessage,
    PreparedEvent,
    Replay,
    SubscribeMessage,
    Subscriber,
    Subscription,
)

log = logging.getLogger(__name__)

CLOSE_UNAUTHORIZED = 4401
CLOSE_TOO_SLOW = 4008
CLOSE_UNAVAILABLE = 1011
URL_CREDENTIALS = frozenset({"token", "access_token", "api_key", "apikey", "key", "jwt", "auth", "authorization"})
NO_KEY = (0, 0)

router = APIRouter(tags=["events"])


@dataclass(frozen=True)
class WsSettings:
    """Tuning of ``/ws`` (``app.state.ws_settings``; these defaults otherwise)."""

    queue_size: int = 2048  # events waiting for one client before it is dropped as too slow
    auth_timeout_s: float = 5.0
    close_timeout_s: float = 2.0  # a close frame that cannot be written by then is abandoned
    replay_page: int = 1000
    replay_limit: int = 10_000  # more missed events than this: resync instead


@router.websocket("/ws")
async def events_socket(websocket: WebSocket) -> None:
    """Live events of your bots (see the module documentation for the protocol)."""
    await websocket.accept()
    app: FastAPI = websocket.app
    feed: EventsFeed | None = getattr(app.state, "events_feed", None)
    if feed is None:
        await close(websocket, CLOSE_UNAVAILABLE, "no events feed in this process")
        return
    settings: WsSettings = getattr(app.state, "ws_settings", None) or WsSettings()
    services: ApiServices = app.state.services
    with contextlib.suppress(WebSocketDisconnect):  # the client left: nothing more to do
        principal = await authenticate(websocket, services.auth, settings.auth_timeout_s)
        if principal is None:
            return
        hello = {"type": "authenticated", "user": principal.username, "role": principal.role}
        await websocket.send_text(_dump(hello))
        await _Session(websocket, principal, _hub(app, feed, settings), settings).run()


# ---------------------------------------------------------------------------------------------- auth
async def authenticate(websocket: WebSocket, auth: AuthService, timeout_s: float) -> Principal | None:
    """Resolve the caller from the upgrade's headers or the first message; close 4401 and return None if not."""
    if URL_CREDENTIALS & {name.lower() for name in websocket.query_params}:
        reason = "credentials in the URL are not accepted: use the Authorization header or an auth message"
        await close(websocket, CLOSE_UNAUTHORIZED, reason)
        return None
    header = websocket.headers.get("authorization")
    api_key = websocket.headers.get("x-api-key") or None
    if not header and not api_key:
        token = await _auth_message(websocket, timeout_s)
        if token is None:
            return None
        header = f"Bearer {token}"
    scheme, credentials = get_authorization_scheme_param(header)
    bearer = None
    if scheme.lower() == "bearer" and credentials:
        bearer = HTTPAuthorizationCredentials(scheme=scheme, credentials=credentials)
    try:
        # current_principal only keeps the caller on ``.state``, which a WebSocket has like a Request.
        return await run_in_threadpool(current_principal, cast("Request", websocket), auth, bearer, api_key)
    except AuthError as exc:
        await close(websocket, CLOSE_UNAUTHORIZED, exc.message)
    except TradeFleetError as exc:
        await close(websocket, CLOSE_UNAVAILABLE, exc.message)
    return None


async def _auth_message(websocket: WebSocket, timeout_s: float) -> str | None:
    try:
        message = await asyncio.wait_for(websocket.receive(), timeout_s)
    except TimeoutError:
        await close(websocket, CLOSE_UNAUTHORIZED, "authentication timed out: send an auth message first")
        return None
    if message["type"] == "websocket.disconnect":
        return None
    try:
        parsed = CLIENT_MESSAGE.validate_json(_text_of(message))
    except ValidationError:
        parsed = None
    if not isinstance(parsed, AuthMessage):
        await close(websocket, CLOSE_UNAUTHORIZED, 'authentication required: {"type": "auth", "token": "..."}')
        return None
    return parsed.token


# ---------------------------------------------------------------------------------------------- session
def _hub(app: FastAPI, feed: EventsFeed, settings: WsSettings) -> EventsHub:
    """The app's hub, made (and attached to the feed) on the first connection in this event loop."""
    loop = asyncio.get_running_loop()
    hub: EventsHub | None = getattr(app.state, "ws_hub", None)
    if hub is None or hub.feed is not feed or hub.loop is not loop:
        if hub is not None:
            hub.detach()
        bots = getattr(app.state, "bot_service", None)
        hub = EventsHub(
            feed, loop, owners=bots.owners.owners if bots is not None else None, queue_size=settings.queue_size
        )
        hub.attach()
        app.state.ws_hub = hub
    return hub


class _Session:
    """One authenticated connection: a reader (client messages, resume) and a writer (queued events)."""

    def __init__(self, websocket: WebSocket, principal: Principal, hub: EventsHub, settings: WsSettings) -> None:
        self.ws = websocket
        self.principal = principal
        self.hub = hub
        self.settings = settings
        self.subscriber: Subscriber | None = None
        self.last_key = NO_KEY  # the newest event id sent: anything not newer is a duplicate
        self.live = asyncio.Event()  # set once a resume is over: the writer may send queued events
        self.closing = asyncio.Event()
        self.close_with: tuple[int, str] | None = None

    def finish(self, code: int, reason: str) -> None:
        if self.close_with is None:
            self.close_with = (code, reason)
        self.closing.set()

    async def run(self) -> None:
        tasks = [asyncio.create_task(coro) for coro in (self._read(), self._write(), self.closing.wait())]
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            results = await asyncio.gather(*tasks, return_exceptions=True)
            if self.subscriber is not None:
                self.hub.unsubscribe(self.subscriber)
        for result in results:
            if isinstance(result, Exception) and not isinstance(result, WebSocketDisconnect):
                log.error("events socket of %s failed", self.principal.username, exc_info=result)
                self.finish(CLOSE_UNAVAILABLE, "internal error")
        if self.close_with is not None:
            await close(self.ws, *self.close_with, timeout_s=self.settings.close_timeout_s)

    async def _write(self) -> None:
        await self.live.wait()
        assert self.subscriber is not None
        queue, send = self.subscriber.queue, self.ws.send_text
        while True:
            for event in await queue.take_all():
                if event.key > self.last_key:
                    await send(event.text)
                    self.last_key = event.key

    async def _read(self) -> None:
        while True:
            message = await self.ws.receive()
            if message["type"] == "websocket.disconnect":
                return
            try:
                parsed = CLIENT_MESSAGE.validate_json(_text_of(message))
            except ValidationError as exc:
                details = [{"loc": list(e["loc"]), "msg": e["msg"]} for e in exc.errors(include_url=False)[:5]]
                await self._error("invalid_message", "not a valid message", details=details)
                continue
            if isinstance(parsed, SubscribeMessage):
                await self._subscribe(parsed)
            elif isinstance(parsed, PingMessage):
                await self._send({"type": "pong"})
            else:
                await self._error("invalid_message", "already authenticated")

    async def _send(self, body: dict[str, Any]) -> None:
        await self.ws.send_text(_dump(body))

    async def _error(self, code: str, message: str, **extra: Any) -> None:
        await self._send({"type": "error", "code": code, "message": message, **extra})

    # ------------------------------------------------------------------ subscribing
    async def _subscribe(self, request: SubscribeMessage) -> None:
        first = self.subscriber is None
        if request.last_event_id is not None and not first:
            await self._error("invalid_message", "last_event_id is accepted in the first subscribe only")
            return
        bots = None if ALL_BOTS in request.bots else sorted(set(request.bots))
        hidden = await run_in_threadpool(self._hidden, bots or [])
        if hidden:  # missing or not yours: the same answer, as on the REST API
            await self._error("bot_not_found", f"no bot {hidden[0]!r}", bots=hidden)
            return
        subscription = Subscription.of(self.principal, bots, request.events)
        if self.subscriber is None:
            self.subscriber = self.hub.subscribe(
                subscription, on_overflow=lambda: self.finish(CLOSE_TOO_SLOW, "too slow: events were not read")
            )
        else:
            self.subscriber.subscription = subscription
        body = {"bots": bots or [ALL_BOTS], "events": sorted(subscription.types)}
        await self._send({"type": "subscribed", **body})
        if first:
            if request.last_event_id is not None:
                await self._resume(request.last_event_id)
            self.live.set()

    def _hidden(self, bots: list[str]) -> list[str]:
        """The requested bots the caller may not see (or that do not exist), via the bots service."""
        service = getattr(self.ws.app.state, "bot_service", None)
        if service is None:  # no owners known here: every bot counts as nobody's
            return [] if may_see(self.principal, None) else bots
        hidden = []
        for bot_id in bots:
            try:
                service.get_bot(self.principal, bot_id)
            except UnknownBotError:
                hidden.append(bot_id)
        return hidden

    # ------------------------------------------------------------------ resuming
    async def _resume(self, after_id: str) -> None:
        """Send the events after ``after_id`` straight from the stream, page by page, before the live ones.

        Live events queue up meanwhile (the subscriber is registered first); the writer skips those already
        sent here, so the client sees no gap and no duplicate. Stops when a page comes back short (caught up)
        or reaches the first queued live event.
        """
        assert self.subscriber is not None
        self.last_key = entry_id_key(after_id)
        loop = asyncio.get_running_loop()
        cursor, count, page = after_id, 0, self.settings.replay_page
        while True:
            replay, events = await loop.run_in_executor(None, self._replay_page, cursor, page)
            if replay.resync:
                if count == 0:
                    self.last_key = NO_KEY
                await self._resync("last_event_id is not among the events kept")
                return
            wants = self.subscriber.subscription.wants
            for event in events:
                if wants(event) and event.key > self.last_key:
                    await self.ws.send_text(event.text)
            if replay.messages:
                cursor = replay.messages[-1].id
                self.last_key = max(self.last_key, entry_id_key(cursor))
            count += len(replay.messages)
            first_live = self.subscriber.first_key
            if len(replay.messages) < page or (first_live is not None and self.last_key >= first_live):
                return
            if count >= self.settings.replay_limit:
                await self._resync(f"more than {self.settings.replay_limit} events were missed")
                return

    def _replay_page(self, after_id: str, limit: int) -> tuple[Replay, list[PreparedEvent]]:
        replay = self.hub.feed.replay(after_id, limit)
        return replay, self.hub.prepare(replay.messages)

    async def _resync(self, reason: str) -> None:
        await self._send({"type": "resync", "reason": f"{reason}: reload the state over the REST API"})


# ---------------------------------------------------------------------------------------------- helpers
async def close(websocket: WebSocket, code: int, reason: str, *, timeout_s: float = 2.0) -> None:
    """Close with ``code``; give up after ``timeout_s`` (a client that reads nothing never takes the frame)."""
    if WebSocketState.DISCONNECTED in (websocket.client_state, websocket.application_state):
        return
    with contextlib.suppress(Exception):
        await asyncio.wait_for(websocket.close(code, reason.encode()[:123].decode(errors="ignore")), timeout_s)


def _text_of(message: Any) -> str | bytes:
    text = message.get("text")
    return text if text is not None else message.get("bytes") or b""


def _dump(body: dict[str, Any]) -> str:
    return json.dumps(body, separators=(",", ":"))


__all__ = ["CLOSE_TOO_SLOW", "CLOSE_UNAUTHORIZED", "CLOSE_UNAVAILABLE", "WsSettings", "authenticate", "close", "router"]
