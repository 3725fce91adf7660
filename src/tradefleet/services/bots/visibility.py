"""Who may see which bot: one rule for every front end (REST and MCP through ``BotService``, ``/ws`` events).

Admins see every bot; a user sees the bots it owns; a bot without an owner (one defined in
``tradefleet.toml``, say) is the admins' alone. A machine client (a service token or ``INTER_SERVICE_TOKEN``:
role ``service``, no user) owns nothing, so it sees no bot.
"""

from __future__ import annotations

from collections.abc import Callable

from tradefleet.services.auth import Principal, Role

OwnerTest = Callable[[int | None], bool]


def _every(_owner: int | None) -> bool:
    return True


def _none(_owner: int | None) -> bool:
    return False


def bot_visibility(principal: Principal) -> OwnerTest:
    """Return the rule for ``principal`` as a test of a bot's owner id: decided once, applied to many bots."""
    if principal.allows(Role.ADMIN):
        return _every
    user_id = principal.user_id
    if user_id is None:
        return _none
    return lambda owner: owner == user_id


def may_see(principal: Principal, owner: int | None) -> bool:
    """Return True if ``principal`` may see a bot owned by ``owner`` (None: nobody)."""
    return bot_visibility(principal)(owner)


__all__ = ["OwnerTest", "bot_visibility", "may_see"]
