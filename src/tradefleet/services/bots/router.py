"""HTTP routes of the bots service under ``/api/v1/bots``: thin translations to :class:`BotService` calls.

The service is ``app.state.bot_service``, set by the composition root (``bootstrap.build_api``); roles and
ownership are checked by the service, so every front end enforces the same rules.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request, Response

from tradefleet.api.deps import CurrentPrincipal
from tradefleet.core.errors import StorageError
from tradefleet.services.bots.schemas import (
    AccountOut,
    BotCreate,
    BotOut,
    BotStatusOut,
    BotUpdate,
    CommandOut,
    EmergencyStop,
    EquityPoint,
    ForceEnterIn,
    ForceExitIn,
    KillSwitchOut,
    LogLineOut,
    OrderOut,
    PerformanceOut,
    PositionsOut,
    TradesPage,
)
from tradefleet.services.bots.service import MAX_PAGE, BotService


async def get_bot_service(request: Request) -> BotService:
    service: BotService | None = getattr(request.app.state, "bot_service", None)
    if service is None:
        raise StorageError("no bots service in this process", hint="run the API with `tradefleet up` or `serve api`")
    return service


BotsDep = Annotated[BotService, Depends(get_bot_service)]
BotId = Annotated[str, Path(min_length=1, max_length=63)]

router = APIRouter(prefix="/api/v1/bots", tags=["bots"])


@router.get("")
def list_bots(principal: CurrentPrincipal, bots: BotsDep) -> list[BotOut]:
    """Your bots (admins: every bot)."""
    return bots.list_bots(principal)


@router.post("", status_code=201)
def create_bot(body: BotCreate, principal: CurrentPrincipal, bots: BotsDep) -> BotOut:
    """Create a stopped bot you own (traders; live bots: admins)."""
    return bots.create_bot(principal, body)


@router.get("/{bot_id}")
def get_bot(bot_id: BotId, principal: CurrentPrincipal, bots: BotsDep) -> BotOut:
    return bots.get_bot(principal, bot_id)


@router.patch("/{bot_id}")
def update_bot(bot_id: BotId, body: BotUpdate, principal: CurrentPrincipal, bots: BotsDep) -> BotOut:
    """Change risk settings (merged), pairs or strategy parameters; they apply at the bot's next start."""
    return bots.update_bot(principal, bot_id, body)


@router.delete("/{bot_id}", status_code=204)
def delete_bot(bot_id: BotId, principal: CurrentPrincipal, bots: BotsDep) -> Response:
    """Delete a stopped bot without open trades; its history stays."""
    bots.delete_bot(principal, bot_id)
    return Response(status_code=204)


@router.get("/{bot_id}/status")
def status(bot_id: BotId, principal: CurrentPrincipal, bots: BotsDep) -> BotStatusOut:
    return bots.status(principal, bot_id)


@router.get("/{bot_id}/positions")
def positions(bot_id: BotId, principal: CurrentPrincipal, bots: BotsDep) -> PositionsOut:
    return bots.positions(principal, bot_id)


@router.get("/{bot_id}/trades")
def trades(
    bot_id: BotId,
    principal: CurrentPrincipal,
    bots: BotsDep,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 50,
    offset: Annotated[int, Query(ge=0)] = 0,
    pair: Annotated[str | None, Query(max_length=50)] = None,
    exit_reason: Annotated[str | None, Query(max_length=100)] = None,
) -> TradesPage:
    """Closed trades, newest first."""
    return bots.trades(principal, bot_id, limit=limit, offset=offset, pair=pair, exit_reason=exit_reason)


@router.get("/{bot_id}/performance")
def performance(bot_id: BotId, principal: CurrentPrincipal, bots: BotsDep) -> PerformanceOut:
    return bots.performance(principal, bot_id)


@router.get("/{bot_id}/equity")
def equity(
    bot_id: BotId, principal: CurrentPrincipal, bots: BotsDep, limit: Annotated[int, Query(ge=1, le=100_000)] = 1000
) -> list[EquityPoint]:
    """The most recent equity snapshots, oldest first."""
    return bots.equity(principal, bot_id, limit)


@router.post("/{bot_id}/start")
def start_bot(bot_id: BotId, principal: CurrentPrincipal, bots: BotsDep) -> BotStatusOut:
    """Run the bot: a gateway claims it within seconds (reconciling with the exchange first)."""
    return bots.start_bot(principal, bot_id)


@router.post("/{bot_id}/stop")
def stop_bot(bot_id: BotId, principal: CurrentPrincipal, bots: BotsDep) -> BotStatusOut:
    """Stop the bot; open trades keep their protective stops on the exchange."""
    return bots.stop_bot(principal, bot_id)


@router.post("/{bot_id}/force-enter")
def force_enter(bot_id: BotId, body: ForceEnterIn, principal: CurrentPrincipal, bots: BotsDep) -> CommandOut:
    """Buy a pair now at market (the bot's risk rules apply); waits a few seconds for the gateway's answer."""
    return bots.force_enter(principal, bot_id, body)


@router.post("/{bot_id}/force-exit")
def force_exit(bot_id: BotId, body: ForceExitIn, principal: CurrentPrincipal, bots: BotsDep) -> CommandOut:
    """Sell at market one trade, a pair's trades, or every open trade (empty body)."""
    return bots.force_exit(principal, bot_id, body)


@router.get("/{bot_id}/orders")
def open_orders(bot_id: BotId, principal: CurrentPrincipal, bots: BotsDep) -> list[OrderOut]:
    """Orders not yet final."""
    return bots.open_orders(principal, bot_id)


@router.get("/{bot_id}/logs")
def logs(
    bot_id: BotId, principal: CurrentPrincipal, bots: BotsDep, limit: Annotated[int, Query(ge=1, le=1000)] = 100
) -> list[LogLineOut]:
    """The bot's most recent log lines, oldest first."""
    return bots.logs(principal, bot_id, limit)


@router.get("/{bot_id}/account")
def account(bot_id: BotId, principal: CurrentPrincipal, bots: BotsDep) -> AccountOut:
    """Cash, equity and PnL of the bot's account."""
    return bots.account(principal, bot_id)


@router.post("/{bot_id}/stop-entries")
def stop_entries(bot_id: BotId, principal: CurrentPrincipal, bots: BotsDep) -> BotStatusOut:
    return bots.stop_entries(principal, bot_id)


@router.post("/{bot_id}/resume")
def resume(bot_id: BotId, principal: CurrentPrincipal, bots: BotsDep) -> BotStatusOut:
    return bots.resume(principal, bot_id)


@router.post("/{bot_id}/emergency-stop")
def emergency_stop(bot_id: BotId, body: EmergencyStop, principal: CurrentPrincipal, bots: BotsDep) -> KillSwitchOut:
    """Raise the bot's kill switch (HALT_ENTRIES < CANCEL_ALL < FLATTEN); the fleet applies it within a second."""
    return bots.emergency_stop(principal, bot_id, body.level, body.reason)


@router.delete("/{bot_id}/kill-switch")
def clear_kill_switch(bot_id: BotId, principal: CurrentPrincipal, bots: BotsDep) -> KillSwitchOut:
    """Clear the bot's kill switch (admins)."""
    return bots.clear_kill_switch(principal, bot_id)
