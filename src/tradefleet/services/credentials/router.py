"""HTTP routes of the credentials service under ``/api/v1/bots/{bot_id}/credentials``: thin translations.

The service is ``app.state.credential_service``, set by the composition root (``bootstrap.build_api``); roles
and bot visibility are checked by the service. No answer ever carries a key, a secret or a password.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response

from tradefleet.api.deps import CurrentPrincipal
from tradefleet.core.errors import StorageError
from tradefleet.services.bots.router import BotId
from tradefleet.services.credentials.schemas import CredentialsIn, CredentialsOut
from tradefleet.services.credentials.service import CredentialService


async def get_credential_service(request: Request) -> CredentialService:
    service: CredentialService | None = getattr(request.app.state, "credential_service", None)
    if service is None:
        raise StorageError(
            "no credentials service in this process", hint="run the API with `tradefleet up` or `serve api`"
        )
    return service


CredentialsDep = Annotated[CredentialService, Depends(get_credential_service)]

router = APIRouter(prefix="/api/v1/bots", tags=["credentials"])


@router.put("/{bot_id}/credentials")
def put_credentials(
    bot_id: BotId, body: CredentialsIn, principal: CurrentPrincipal, credentials: CredentialsDep
) -> CredentialsOut:
    """Store the bot's exchange API key, encrypted, replacing any (the bot's owner, traders; admins)."""
    return credentials.put(principal, bot_id, body)


@router.get("/{bot_id}/credentials")
def get_credentials(bot_id: BotId, principal: CurrentPrincipal, credentials: CredentialsDep) -> CredentialsOut:
    """Which exchange the bot's stored key is for, a hint of the key and when it was stored; never the key."""
    return credentials.describe(principal, bot_id)


@router.delete("/{bot_id}/credentials", status_code=204)
def delete_credentials(bot_id: BotId, principal: CurrentPrincipal, credentials: CredentialsDep) -> Response:
    """Forget the bot's exchange credentials (the bot's owner, traders; admins)."""
    credentials.delete(principal, bot_id)
    return Response(status_code=204)
