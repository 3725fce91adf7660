"""Event bus adapters: in-process (embedded default) and Redis Streams (when ``REDIS_URL`` is set).

:func:`make_bus` picks one from configuration; both implement ``core.bus.EventBus``. ``redis`` is imported
only when a Redis URL is given, so the embedded default needs no Redis client installed.
"""

from __future__ import annotations

from tradefleet.adapters.bus.memory import MemoryBus
from tradefleet.adapters.bus.relay import OutboxRelay, idempotent
from tradefleet.core.bus import BusSettings, EventBus


def make_bus(
    redis_url: str | None = None, settings: BusSettings | None = None, *, namespace: str = "tradefleet:"
) -> EventBus:
    """Return the Redis Streams bus for ``redis_url``, or the in-process bus when it is empty or None."""
    if not redis_url:
        return MemoryBus(settings)
    from tradefleet.adapters.bus.redis_streams import RedisStreamsBus

    return RedisStreamsBus.from_url(redis_url, settings, namespace=namespace)


__all__ = ["MemoryBus", "OutboxRelay", "idempotent", "make_bus"]
