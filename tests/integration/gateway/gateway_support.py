"""What the gateway tests share: a platform on the test database, the in-process bus, a bot service that
sends commands to gateways and waits for their answers, and gateways run on threads of this process."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from sqlalchemy import Engine

from tradefleet.adapters.bus import MemoryBus
from tradefleet.adapters.storage.db import make_engine
from tradefleet.adapters.storage.leases import SqlBotLogs, SqlLeases
from tradefleet.adapters.storage.owner_tables import SqlBotOwners
from tradefleet.bootstrap import Platform, build_gateway, build_platform
from tradefleet.config import load_settings
from tradefleet.services.auth import Principal, Role
from tradefleet.services.auth.service import PrincipalKind
from tradefleet.services.bots import BotService
from tradefleet.services.events import EventsFeed
from tradefleet.services.gateway import BusCommands, CommandReplies, Gateway

ADMIN = Principal(user_id=None, username="admin", role=Role.ADMIN, kind=PrincipalKind.SERVICE)
Run = tuple[Gateway, threading.Event, threading.Thread]


def wait_for(condition: Callable[[], object], timeout: float = 30.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


class GatewayWorld:
    """The platform, bus, leases and bot service of one test, and the gateways it started."""

    def __init__(
        self, platform: Platform, bus: MemoryBus, engine: Engine, leases: SqlLeases, service: BotService
    ) -> None:
        self.platform = platform
        self.engine = engine  # the platform database's, for the test's own stores
        self.bus = bus
        self.leases = leases
        self.service = service
        self.runs: list[Run] = []

    def start_gateway(self, gateway_id: str, *, lease_ttl_s: float, capacity: int = 100) -> Run:
        """Run a gateway on a thread of this process until the test ends (or its event is set)."""
        gateway = build_gateway(
            self.platform, self.bus, gateway_id=gateway_id, capacity=capacity, lease_ttl_s=lease_ttl_s
        )
        stop = threading.Event()
        thread = threading.Thread(target=gateway.run, args=(stop,), daemon=True)
        thread.start()
        self.runs.append((gateway, stop, thread))
        return gateway, stop, thread

    def holder(self, bot_id: str) -> str | None:
        lease = self.leases.holder(bot_id)
        return None if lease is None else lease.gateway_id


W = TypeVar("W", bound=GatewayWorld)


@contextmanager
def gateway_world(
    kind: type[W], database_url: str, overrides: dict[str, Any], *, reply_timeout_s: float
) -> Iterator[W]:
    """Build a ``kind`` world on ``database_url`` with the settings ``overrides``; stop and close it all after."""
    platform = build_platform(load_settings(overrides={"database.url": database_url, **overrides}, env={}))
    bus = MemoryBus()
    engine = make_engine(database_url)
    replies = CommandReplies()
    feed = EventsFeed(bus)
    feed.add_listener(replies)
    feed.start()
    leases = SqlLeases(engine)
    service = BotService(
        platform.store,
        SqlBotOwners(engine),
        commands=BusCommands(bus, replies),
        logs=SqlBotLogs(engine),
        holders=leases,
        reply_timeout_s=reply_timeout_s,
    )
    world = kind(platform, bus, engine, leases, service)
    try:
        yield world
    finally:
        for _, stop, _ in world.runs:
            stop.set()
        for _, _, thread in world.runs:
            thread.join(20)
        feed.stop()
        engine.dispose()
        bus.close()
        platform.close()
