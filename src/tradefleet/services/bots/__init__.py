"""Bots as a service: CRUD, state, trades and emergency controls, transport-neutral (:class:`BotService`).

Compose it in the composition root over the trading store and the owners table::

    bots = BotService(platform.store, SqlBotOwners(engine))

Errors carry ``http_status``: UnknownBotError 404 (also for a bot the caller may not see), BotExistsError
409, BotStateError 409, BotValidationError 422; roles are checked with ``services.auth`` (403). Who sees
which bot is :func:`may_see` (``services.bots.visibility``), the one rule of every front end.
"""

from tradefleet.services.bots.schemas import BotCreate, BotUpdate, EmergencyStop
from tradefleet.services.bots.service import (
    BotExistsError,
    BotOwners,
    BotService,
    BotStateError,
    BotValidationError,
    UnknownBotError,
)
from tradefleet.services.bots.visibility import bot_visibility, may_see

__all__ = [
    "BotCreate",
    "BotExistsError",
    "BotOwners",
    "BotService",
    "BotStateError",
    "BotUpdate",
    "BotValidationError",
    "EmergencyStop",
    "UnknownBotError",
    "bot_visibility",
    "may_see",
]
