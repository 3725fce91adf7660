"""Live domain events for clients: the feed tailing the bus, the fan-out hub, the client messages.

The composition root builds one :class:`EventsFeed` per API process over the bus, starts it with the
server and stops it on shutdown; ``api.ws`` serves it on ``/ws``::

    feed = EventsFeed(bus)            # EVENTS_STREAM
    app.state.events_feed = feed
    feed.start()
"""

from tradefleet.services.events.feed import BatchListener, EventsFeed, Listener, Replay
from tradefleet.services.events.hub import (
    ALL_BOTS,
    WS_EVENT_TYPES,
    EventsHub,
    OwnerLookup,
    PreparedEvent,
    Subscriber,
    Subscription,
)
from tradefleet.services.events.schemas import CLIENT_MESSAGE, AuthMessage, PingMessage, SubscribeMessage

__all__ = [
    "ALL_BOTS",
    "CLIENT_MESSAGE",
    "WS_EVENT_TYPES",
    "AuthMessage",
    "BatchListener",
    "EventsFeed",
    "EventsHub",
    "Listener",
    "OwnerLookup",
    "PingMessage",
    "PreparedEvent",
    "Replay",
    "SubscribeMessage",
    "Subscriber",
    "Subscription",
]
