"""Live events over WebSocket ``/ws`` on a real uvicorn server, fed the real way.

Events go store outbox → ``OutboxRelay`` → bus (in-process, and Redis on ``TRADEFLEET_TEST_REDIS_URL``,
skipped without it unless ``TRADEFLEET_REQUIRE_SERVICES=1``) → ``EventsFeed`` → hub → clients using the
``websockets`` library. One database (SQLite, then PostgreSQL), API server, set of users and bots serve the
whole module; each test brings its own bus, feed and relay, and event ids of its own. The relay→client
latency is printed as a report (``-s``), never asserted.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import statistics
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, NoReturn

import httpx
import pytest
from api_support import PASSWORD, START_MS, Api, LiveServer, build_test_app
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from tradefleet.adapters.bus import MemoryBus, OutboxRelay
from tradefleet.adapters.storage import SqlTradingStore, make_engine, upgrade
from tradefleet.adapters.storage.owner_tables import SqlBotOwners
from tradefleet.api.ws import WsSettings
from tradefleet.core.bots import BotConfig
from tradefleet.core.bus import BusSettings, EventBus, entry_id_key
from tradefleet.core.events import BotStatusUpdate, DomainEvent, OrderUpdate, PositionUpdate, RiskAlert, TaskProgress
from tradefleet.engine.clock import SimClock
from tradefleet.services.auth import Role
from tradefleet.services.bots import BotService
from tradefleet.services.events import EventsFeed

REDIS_URL_VAR = "TRADEFLEET_TEST_REDIS_URL"
PG_URL_VAR = "TRADEFLEET_TEST_DATABASE_URL"
BOT: dict[str, Any] = {"strategy": "SampleStrategy", "pairs": ["BTC/USDT"], "timeframe": "5m"}


def skip_or_fail(reason: str) -> NoReturn:
    """Skip, or fail when ``TRADEFLEET_REQUIRE_SERVICES=1`` (the suite's convention for services)."""
    if os.environ.get("TRADEFLEET_REQUIRE_SERVICES") == "1":
        pytest.fail(f"{reason} (TRADEFLEET_REQUIRE_SERVICES=1)")
    pytest.skip(reason)


# ---------------------------------------------------------------------------------------------- module world


@contextlib.contextmanager
def postgres_database() -> Iterator[str]:
    """A fresh PostgreSQL database for the module (as ``tests/conftest.py`` makes one per test), dropped after."""
    import psycopg
    from sqlalchemy.engine import make_url

    admin_url = os.environ.get(PG_URL_VAR, "")
    if not admin_url:
        skip_or_fail(f"PostgreSQL tests need {PG_URL_VAR}, e.g. postgresql://postgres@127.0.0.1:5432/test")
    conninfo = make_url(admin_url).set(drivername="postgresql").render_as_string(hide_password=False)
    name = f"tradefleet_test_{uuid.uuid4().hex[:16]}"
    try:
        with psycopg.connect(conninfo, autocommit=True, connect_timeout=5) as admin:
            admin.execute(f'CREATE DATABASE "{name}"')
    except psycopg.OperationalError as exc:
        skip_or_fail(f"PostgreSQL at {make_url(admin_url)!r} does not answer: {' '.join(str(exc).split())}")
    try:
        yield make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(conninfo, autocommit=True, connect_timeout=5) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@dataclass
class World:
    """The module's API: users admin, trader, trader2, viewer; bots alpha (trader), beta (trader2), orphan."""

    api: Api
    store: SqlTradingStore


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def world(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    folder = tmp_path_factory.mktemp("ws")
    with contextlib.ExitStack() as stack:
        if request.param == "sqlite":
            url = f"sqlite:///{(folder / 'tradefleet.sqlite').as_posix()}"
        else:
            url = stack.enter_context(postgres_database())
        upgrade(url)
        engine = make_engine(url)
        stack.callback(engine.dispose)
        clock = SimClock(START_MS)
        app, auth = build_test_app(engine, folder / "var", clock)
        for name, role in (("admin", Role.ADMIN), ("trader", Role.TRADER), ("trader2", Role.TRADER),
                           ("viewer", Role.VIEWER)):  # fmt: skip
            auth.create_user(name, PASSWORD, role)
        store = SqlTradingStore(engine, clock)
        stack.callback(store.close)
        app.state.bot_service = BotService(store, SqlBotOwners(engine))
        server = LiveServer(app).start()
        stack.callback(server.stop)  # first of all: no request may be in flight on the engine
        client = stack.enter_context(httpx.Client(base_url=server.url, timeout=20))
        api = Api(server.url, app, auth, engine, clock, client)
        for who, bot_id in (("trader", "alpha"), ("trader2", "beta")):
            answer = client.post("/api/v1/bots", json={**BOT, "bot_id": bot_id}, headers=api.bearer(who))
            assert answer.status_code == 201, answer.text
        store.save_bot(BotConfig(bot_id="orphan", strategy="SampleStrategy", pairs=("BTC/USDT",)))  # no owner
        yield World(api, store)


# ---------------------------------------------------------------------------------------------- per test


def redis_bus(settings: BusSettings) -> Iterator[EventBus]:
    """A Redis bus in a namespace of its own, deleted afterwards; skip (or fail) without Redis."""
    url = os.environ.get(REDIS_URL_VAR, "")
    if not url:
        skip_or_fail(f"Redis tests need {REDIS_URL_VAR}, e.g. redis://127.0.0.1:6379/0")
    redis = pytest.importorskip("redis")
    from tradefleet.adapters.bus.redis_streams import RedisStreamsBus

    client = redis.Redis.from_url(url, decode_responses=True, socket_connect_timeout=2)
    try:
        client.ping()
    except redis.RedisError as exc:
        client.close()
        skip_or_fail(f"Redis at {url} does not answer: {exc}")
    namespace = f"tftest:{uuid.uuid4().hex[:12]}:"
    bus = RedisStreamsBus(client, settings, namespace=namespace)
    try:
        yield bus
    finally:
        bus.close()
        for key in client.scan_iter(match=namespace + "*"):
            client.delete(key)
        client.close()


@pytest.fixture
def bus_maxlen() -> int:
    """Entries the events stream keeps (a test parametrizes it to see trimming)."""
    return 100_000


@pytest.fixture(params=["memory", "redis"])
def bus(request: pytest.FixtureRequest, bus_maxlen: int) -> Iterator[EventBus]:
    settings = BusSettings(maxlen=bus_maxlen)
    if request.param == "memory":
        memory = MemoryBus(settings)
        yield memory
        memory.close()
        return
    yield from redis_bus(settings)


@dataclass
class Live:
    """The module's API with this test's bus, running feed and relay; ``emit`` produces events."""

    api: Api
    store: SqlTradingStore
    bus: EventBus
    feed: EventsFeed
    relay: OutboxRelay
    tag: str = field(default_factory=lambda: uuid.uuid4().hex[:8])
    sockets: contextlib.ExitStack = field(default_factory=contextlib.ExitStack)
    latencies_ms: list[float] = field(default_factory=list)
    _sent: dict[str, float] = field(default_factory=dict)

    @property
    def ws_url(self) -> str:
        return self.api.url.replace("http://", "ws://") + "/ws"

    def event_id(self, name: str) -> str:
        """An event id unique to this test (the outbox ignores ids it has seen): ``ids`` strips the tag."""
        return f"{self.tag}/{name}"

    def emit(self, *events: DomainEvent) -> None:
        """Commit events to the outbox and relay them onto the bus, as the engine's process does."""
        self.store.add_events(list(events))
        now = time.perf_counter()
        self._sent.update((e.event_id, now) for e in events)
        assert self.relay.drain() == len(events)

    def received(self, message: dict[str, Any]) -> None:
        sent = self._sent.get(message["event"]["event_id"])
        if sent is not None:
            self.latencies_ms.append((time.perf_counter() - sent) * 1000)

    def token(self, username: str) -> str:
        return self.api.login(username)["access_token"]

    def client(self, username: str | None = None, *, url: str = "", **kwargs: Any) -> Client:
        """A connected client (with ``username``'s access token in the header); closed at the test's end."""
        bearer = {"Authorization": f"Bearer {self.token(username)}"} if username else None
        kwargs.setdefault("additional_headers", bearer)
        ws = connect(url or self.ws_url, open_timeout=5, close_timeout=2, **kwargs)
        return Client(self, self.sockets.enter_context(ws))


class Client:
    """A ``websockets`` sync client speaking the ``/ws`` protocol."""

    def __init__(self, live: Live, ws: ClientConnection) -> None:
        self.live = live
        self.ws = ws

    def send(self, body: dict[str, Any]) -> None:
        self.ws.send(json.dumps(body))

    def recv(self, timeout: float = 10) -> dict[str, Any]:
        message: dict[str, Any] = json.loads(self.ws.recv(timeout=timeout))
        if message["type"] == "event":
            self.live.received(message)
        return message

    def expect(self, kind: str, timeout: float = 10) -> dict[str, Any]:
        message = self.recv(timeout)
        assert message["type"] == kind, message
        return message

    def subscribe(self, bots: list[str], **extra: Any) -> dict[str, Any]:
        self.send({"type": "subscribe", "bots": bots, **extra})
        return self.expect("subscribed")

    def events(self, count: int, timeout: float = 15) -> list[dict[str, Any]]:
        """The next ``count`` messages, all of them events."""
        return [self.expect("event", timeout) for _ in range(count)]

    def closed(self, timeout: float = 10) -> tuple[int | None, str]:
        """Read until the server closes; return its close code and reason."""
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                self.ws.recv(timeout=deadline - time.monotonic())
        except ConnectionClosed as closed:
            return (closed.rcvd.code, closed.rcvd.reason) if closed.rcvd else (None, "")
        raise AssertionError("the server did not close the connection")

    def close(self) -> None:
        self.ws.close()


def ids(messages: list[dict[str, Any]]) -> list[str]:
    """The event ids of event messages, without the test's tag."""
    return [m["event"]["event_id"].rpartition("/")[2] for m in messages]


def status(live: Live, bot_id: str, n: int) -> BotStatusUpdate:
    event_id = live.event_id(f"{bot_id}-status-{n}")
    return BotStatusUpdate(bot_id=bot_id, ts_ms=n, status="running", detail=f"#{n}", event_id=event_id)


def _live(world: World, bus: EventBus) -> Iterator[Live]:
    app = world.api.app
    feed = EventsFeed(bus, block_ms=50)
    feed.start()
    app.state.events_feed = feed
    app.state.ws_settings = WsSettings()
    live = Live(world.api, world.store, bus, feed, OutboxRelay(world.store, bus))
    try:
        with live.sockets:
            yield live
    finally:
        feed.stop()
        if live.latencies_ms:
            lat = sorted(live.latencies_ms)
            p50, p99 = statistics.median(lat), lat[min(len(lat) - 1, int(len(lat) * 0.99))]
            print(f"\nrelay→client latency over {len(lat)} deliveries: p50 {p50:.1f} ms, p99 {p99:.1f} ms")


@pytest.fixture
def live(world: World, bus: EventBus) -> Iterator[Live]:
    yield from _live(world, bus)


@pytest.fixture
def live_memory(world: World) -> Iterator[Live]:
    """Auth tests: the bus does not matter there, the in-process one is enough."""
    memory = MemoryBus()
    yield from _live(world, memory)
    memory.close()


# ---------------------------------------------------------------------------------------------- auth


def test_header_and_first_message_auth_accept_tokens_api_keys_and_service_tokens(live_memory: Live) -> None:
    live, auth = live_memory, live_memory.api.auth
    welcome = live.client("trader").recv()
    assert welcome == {"type": "authenticated", "user": "trader", "role": "trader"}

    trader = auth.verify_bearer(live.token("trader"))
    api_key = auth.create_api_key(trader, "ws").secret
    admin = auth.verify_bearer(live.token("admin"))
    service_token = auth.create_service_token(admin, "controller").secret
    for token, expected in ((live.token("viewer"), "viewer"), (api_key, "trader"), (service_token, "service")):
        client = live.client()
        client.send({"type": "auth", "token": token})
        assert client.expect("authenticated")["role"] == expected
        client.send({"type": "ping"})
        assert client.expect("pong") == {"type": "pong"}
        client.close()

    client = live.client(additional_headers={"X-API-Key": api_key})
    assert client.expect("authenticated")["user"] == "trader"
    client.close()


def test_bad_forged_missing_or_url_tokens_are_closed_4401(live_memory: Live) -> None:
    live = live_memory
    live.api.app.state.ws_settings = WsSettings(auth_timeout_s=0.5)
    good = live.token("trader")
    header, payload, signature = good.split(".")
    forged_payload = payload[:-2] + ("A" if payload[-2] != "A" else "B") + payload[-1]
    cases: list[tuple[dict[str, str] | None, dict[str, Any] | None, str]] = [
        ({"Authorization": f"Bearer {header}.{forged_payload}.{signature}"}, None, ""),
        ({"Authorization": "Bearer tfk_0123456789ab_notakey"}, None, ""),
        ({"Authorization": f"Basic {good}"}, None, "authentication required"),
        (None, {"type": "auth", "token": f"{good}x"}, ""),
        (None, {"type": "subscribe", "bots": ["*"]}, "authentication required"),
        (None, None, "timed out"),
    ]
    for headers, first, reason in cases:
        client = live.client(additional_headers=headers)
        if first is not None:
            client.send(first)
        code, why = client.closed()
        assert code == 4401, (headers, first, code, why)
        assert reason in why

    in_url = live.client(url=f"{live.ws_url}?token={good}")  # a valid token, but URLs end up in logs
    code, why = in_url.closed()
    assert code == 4401 and "URL" in why


def test_without_a_feed_the_socket_closes_1011(live_memory: Live) -> None:
    del live_memory.api.app.state.events_feed
    code, why = live_memory.client("admin").closed()
    assert code == 1011 and "feed" in why


# ---------------------------------------------------------------------------------------------- delivery


def test_subscriptions_filter_by_bot_and_type_and_never_show_other_users_bots(live: Live) -> None:
    trader, admin, other = live.client("trader"), live.client("admin"), live.client("trader2")
    for client in (trader, admin, other):
        client.expect("authenticated")
    assert trader.subscribe(["*"])["events"] == sorted(
        ["PositionUpdate", "TradeExecuted", "AISignalReceived", "BotStatusUpdate", "OrderUpdate", "RiskAlert"]
    )
    admin.subscribe(["*"])
    other.send({"type": "subscribe", "bots": ["alpha"]})  # trader's bot: answered like a missing one
    refused = other.expect("error")
    other.send({"type": "subscribe", "bots": ["nope"]})
    missing = other.expect("error")
    assert (refused["code"], missing["code"]) == ("bot_not_found", "bot_not_found")
    assert refused["message"].replace("alpha", "X") == missing["message"].replace("nope", "X")
    other.subscribe(["beta"], events=["RiskAlert"])

    eid = live.event_id
    risk = RiskAlert(bot_id="beta", ts_ms=2, rule="drawdown", message="beta is down 5%", event_id=eid("beta-risk"))
    order = OrderUpdate(bot_id="beta", ts_ms=3, client_order_id="o1", pair="BTC/USDT", side="buy", status="open",
                        amount=1.0, filled=0.0, average=0.0, intent="entry", event_id=eid("beta-order"))  # fmt: skip
    position = PositionUpdate(bot_id="alpha", ts_ms=4, pair="BTC/USDT", amount=1.0, open_rate=100.0, mark=101.0,
                              unrealized=1.0, event_id=eid("alpha-position"))  # fmt: skip
    internal = TaskProgress(bot_id="alpha", ts_ms=5, task_id="t", progress=0.5, event_id=eid("alpha-task"))
    orphan = status(live, "orphan", 1)
    live.emit(status(live, "alpha", 1), risk, order, orphan, position, internal, status(live, "alpha", 2))

    assert ids(trader.events(3)) == ["alpha-status-1", "alpha-position", "alpha-status-2"]
    everything = admin.events(6)
    assert ids(everything) == ["alpha-status-1", "beta-risk", "beta-order", "orphan-status-1", "alpha-position",
                               "alpha-status-2"]  # fmt: skip
    assert everything[1]["event"] == {**risk.to_dict(), "type": "RiskAlert"}
    assert [entry_id_key(m["id"]) for m in everything] == sorted(entry_id_key(m["id"]) for m in everything)
    assert ids(other.events(1)) == ["beta-risk"]

    other.subscribe(["beta"])  # another subscribe replaces the filters
    live.emit(status(live, "alpha", 3), status(live, "beta", 1))
    assert ids(other.events(1)) == ["beta-status-1"]  # alpha's event, before it, never reached trader2
    assert ids(trader.events(1)) == ["alpha-status-3"]  # nor beta's the trader
    other.send({"type": "subscribe", "bots": ["*"], "events": ["NotAnEvent"]})
    assert other.expect("error")["code"] == "invalid_message"
    for client in (trader, admin, other):
        client.close()


def test_every_kind_of_caller_gets_the_events_of_exactly_the_bots_the_rest_api_shows_it(live_memory: Live) -> None:
    live, auth = live_memory, live_memory.api.auth
    admin = auth.verify_bearer(live.token("admin"))
    tokens = {name: live.token(name) for name in ("admin", "trader", "trader2", "viewer")}
    tokens["trader's API key"] = auth.create_api_key(auth.verify_bearer(tokens["trader"]), "ws-rule").secret
    tokens["service token"] = auth.create_service_token(admin, "ws-rule").secret
    rest: dict[str, set[str]] = {}
    clients: dict[str, Client] = {}
    for name, token in tokens.items():
        header = {"Authorization": f"Bearer {token}"}
        listed = live.api.client.get("/api/v1/bots", headers=header)
        assert listed.status_code == 200, listed.text
        rest[name] = {bot["bot_id"] for bot in listed.json()}
        clients[name] = live.client(additional_headers=header)
        clients[name].expect("authenticated")
        for bot_id in ("alpha", "beta", "orphan"):  # a bot the REST API hides is refused here too
            clients[name].send({"type": "subscribe", "bots": [bot_id]})
            answer = clients[name].recv()
            assert (answer["type"] == "subscribed") is (bot_id in rest[name]), (name, bot_id, answer)
        clients[name].subscribe(["*"])
    assert rest == {"admin": {"alpha", "beta", "orphan"}, "trader": {"alpha"}, "trader2": {"beta"}, "viewer": set(),
                    "trader's API key": {"alpha"}, "service token": set()}  # fmt: skip

    live.emit(status(live, "alpha", 1), status(live, "beta", 1), status(live, "orphan", 1))
    got = {"admin": ids(clients["admin"].events(3))}  # the hub has fanned all three out to every client by now
    for name, client in clients.items():
        if name != "admin":
            got[name] = ids(client.events(len(rest[name])))
        client.send({"type": "ping"})
        assert client.expect("pong"), name  # and nothing more came
    assert got == {name: [f"{b}-status-1" for b in ("alpha", "beta", "orphan") if b in rest[name]] for name in rest}
    for client in clients.values():
        client.close()


def test_a_client_that_does_not_read_is_dropped_and_the_others_get_every_event(live: Live) -> None:
    live.api.app.state.ws_settings = WsSettings(queue_size=8, close_timeout_s=10)
    port = int(live.api.url.rsplit(":", 1)[1])
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # a tiny window: the server's buffers fill soon
    sock.connect(("127.0.0.1", port))
    slow = live.client("trader", sock=sock, max_queue=1, compression=None)  # little buffering client-side
    fast = live.client("trader")
    for client in (slow, fast):
        client.expect("authenticated")
        client.subscribe(["alpha"])

    filler = "x" * 32_000  # uncompressed to the slow client: some 150 of them fill the kernel's buffers
    sent: list[str] = []
    hub = None
    for batch in range(60):  # batches that fit the queue: a client that reads keeps up
        events = [RiskAlert(bot_id="alpha", ts_ms=batch * 10 + i, rule="r", message=filler) for i in range(5)]
        live.emit(*events)
        sent += [e.event_id for e in events]
        assert ids(fast.events(len(events))) == sent[-len(events) :]  # the fast one keeps up all along
        hub = live.api.app.state.ws_hub
        if hub.dropped:
            break
    assert hub is not None and hub.dropped == 1, "the slow client was never dropped"
    live.emit(status(live, "alpha", 1))
    assert ids(fast.events(1)) == ["alpha-status-1"]

    got = 0
    with pytest.raises(ConnectionClosed) as closed:
        while True:
            message = json.loads(slow.ws.recv(timeout=10))
            got += message["type"] == "event"
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4008, closed.value
    assert "too slow" in closed.value.rcvd.reason
    assert got < len(sent)
    fast.close()


# ---------------------------------------------------------------------------------------------- resume


def test_a_reconnecting_client_gets_exactly_the_missed_events_then_live_ones(live: Live) -> None:
    first = live.client("trader")
    first.expect("authenticated")
    first.subscribe(["*"])
    live.emit(*(status(live, "alpha", n) for n in range(3)))
    seen = first.events(3)
    first.close()

    live.emit(*(status(live, "alpha", n) for n in range(3, 8)), status(live, "beta", 0))  # missed while away
    again = live.client("trader")
    again.expect("authenticated")
    again.subscribe(["alpha"], last_event_id=seen[-1]["id"])
    missed = again.events(5)
    assert ids(missed) == [f"alpha-status-{n}" for n in range(3, 8)]
    live.emit(status(live, "alpha", 8))
    [newest] = again.events(1)
    assert ids([newest]) == ["alpha-status-8"]
    again.send({"type": "ping"})
    assert again.expect("pong")  # nothing else came in between: no duplicate
    again.send({"type": "subscribe", "bots": ["*"], "last_event_id": seen[0]["id"]})
    assert again.expect("error")["code"] == "invalid_message"  # a resume is for the first subscribe only

    caught_up = live.client("trader")  # a resume from the newest id sends nothing, then live events
    caught_up.expect("authenticated")
    caught_up.subscribe(["*"], last_event_id=newest["id"])
    live.emit(status(live, "alpha", 9))
    assert ids(caught_up.events(1)) == ["alpha-status-9"]
    for client in (again, caught_up):
        client.close()


def test_a_resume_while_events_keep_coming_has_no_gap_and_no_duplicate(live: Live) -> None:
    live.api.app.state.ws_settings = WsSettings(replay_page=16)  # many pages, each racing the live events
    first = live.client("trader")
    first.expect("authenticated")
    first.subscribe(["alpha"])
    live.emit(status(live, "alpha", 0))
    [start] = first.events(1)
    first.close()
    live.emit(*(status(live, "alpha", n) for n in range(1, 101)))  # missed while away

    def produce() -> None:  # and more while the client reconnects and catches up
        for n in range(101, 301, 4):
            live.emit(*(status(live, "alpha", k) for k in range(n, n + 4)))

    with ThreadPoolExecutor(1) as pool:
        producing = pool.submit(produce)
        again = live.client("trader")
        again.expect("authenticated")
        again.subscribe(["alpha"], last_event_id=start["id"])
        got = again.events(300)
        producing.result()
    assert ids(got) == [f"alpha-status-{n}" for n in range(1, 301)]
    again.send({"type": "ping"})
    again.expect("pong")


@pytest.mark.parametrize("bus_maxlen", [20])
def test_a_resume_from_an_id_no_longer_kept_asks_for_a_resync(live: Live) -> None:
    live.emit(status(live, "alpha", 0))
    oldest = live.bus.last_id(live.feed.stream)
    for start in range(1, 301, 100):  # Redis trims whole nodes of 100 entries: go well past maxlen
        live.emit(*(status(live, "orphan", n) for n in range(start, start + 100)))

    client = live.client("trader")
    client.expect("authenticated")
    client.subscribe(["*"], last_event_id=oldest)
    assert "reload" in client.expect("resync")["reason"]
    live.emit(status(live, "alpha", 1))
    assert ids(client.events(1)) == ["alpha-status-1"]  # live events flow on after the resync

    future = live.client("trader")  # an id this stream never had (say, an in-process bus restarted)
    future.expect("authenticated")
    future.subscribe(["*"], last_event_id="99999999999999-0")
    future.expect("resync")
    live.emit(status(live, "alpha", 2))
    assert ids(future.events(1)) == ["alpha-status-2"]
    assert ids(client.events(1)) == ["alpha-status-2"]
    for c in (client, future):
        c.close()
