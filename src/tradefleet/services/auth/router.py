"""HTTP routes of the auth service: thin translations to :class:`AuthService` calls, nothing else.

Bodies reject unknown fields (``extra="forbid"``), so a ``role`` smuggled into a login, a refresh or any
other body is a 422, never a silent mass assignment; the only way to set a role is an admin's
``PATCH /api/v1/users/{id}/role`` on someone else.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from tradefleet.api.deps import AuthDep, CurrentPrincipal, RequireAdmin
from tradefleet.core.bots import PRINTABLE
from tradefleet.services.auth.errors import PermissionDenied
from tradefleet.services.auth.repository import Role
from tradefleet.services.auth.service import KeyInfo, TokenPair, UserInfo

_MAX_SECRET = 4096  # bodies are bounded; the service refuses over-long passwords without hashing them
MAX_ID = 2**63 - 1  # ids are 64-bit database integers: a larger one is a 422, not a failed query
DbId = Annotated[int, Path(ge=1, le=MAX_ID)]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class LoginRequest(_Body):
    username: str = Field(min_length=1, max_length=128)
    password: str = Field(min_length=1, max_length=_MAX_SECRET)


class RefreshRequest(_Body):
    refresh_token: str = Field(min_length=1, max_length=_MAX_SECRET)


class TokenResponse(BaseModel):
    access_token: str
    refresh_token: str
    token_type: str
    expires_in: int


class PrincipalOut(BaseModel):
    user_id: int | None
    username: str
    role: Role
    kind: str


class UserCreate(_Body):
    username: str = Field(min_length=1, max_length=128)
    password: str = Field(min_length=1, max_length=_MAX_SECRET)
    role: Role = Role.VIEWER


class RoleChange(_Body):
    role: Role


class UserOut(BaseModel):
    id: int
    username: str
    role: Role
    created_ms: int
    disabled: bool


class ApiKeyCreate(_Body):
    name: str = Field(min_length=1, max_length=100, pattern=PRINTABLE)


class ApiKeyOut(BaseModel):
    id: int
    name: str
    prefix: str
    created_ms: int
    last_used_ms: int | None
    revoked: bool


class ApiKeyIssued(BaseModel):
    id: int
    name: str
    prefix: str
    api_key: str  # shown once


router = APIRouter(prefix="/api/v1", tags=["auth"])
aliases = APIRouter(tags=["auth (documented aliases)"])


def _tokens(pair: TokenPair) -> TokenResponse:
    return TokenResponse(access_token=pair.access_token, refresh_token=pair.refresh_token,
                         token_type=pair.token_type, expires_in=pair.expires_in)  # fmt: skip


def _user_out(info: UserInfo) -> UserOut:
    return UserOut(id=info.id, username=info.username, role=info.role, created_ms=info.created_ms,
                   disabled=info.disabled)  # fmt: skip


def _key_out(info: KeyInfo) -> ApiKeyOut:
    return ApiKeyOut(id=info.id, name=info.name, prefix=info.prefix, created_ms=info.created_ms,
                     last_used_ms=info.last_used_ms, revoked=info.revoked)  # fmt: skip


def login(body: LoginRequest, request: Request, auth: AuthDep) -> TokenResponse:
    """Log in with a username and password; failures count towards per-user and per-IP limits (429)."""
    ip = request.client.host if request.client is not None else None
    return _tokens(auth.authenticate(body.username, body.password, ip=ip))


router.add_api_route("/auth/login", login, methods=["POST"], response_model=TokenResponse)
aliases.add_api_route("/api/auth/login", login, methods=["POST"], response_model=TokenResponse,
                      summary="Login (alias of /api/v1/auth/login)")  # fmt: skip


@router.post("/auth/refresh")
def refresh(body: RefreshRequest, auth: AuthDep) -> TokenResponse:
    """Exchange a refresh token for a new pair; a token used twice ends its whole session (401)."""
    return _tokens(auth.refresh(body.refresh_token))


@router.post("/auth/logout", status_code=204)
def logout(body: RefreshRequest, auth: AuthDep) -> Response:
    """End the session the refresh token belongs to."""
    auth.logout(body.refresh_token)
    return Response(status_code=204)


@router.get("/auth/me")
async def me(principal: CurrentPrincipal) -> PrincipalOut:
    """Return who the credentials belong to."""
    return PrincipalOut(user_id=principal.user_id, username=principal.username, role=principal.role,
                        kind=principal.kind.value)  # fmt: skip


@router.post("/users", status_code=201)
def create_user(body: UserCreate, admin: RequireAdmin, auth: AuthDep) -> UserOut:
    """Create an account (admins)."""
    return _user_out(auth.create_user(body.username, body.password, body.role, actor=admin))


@router.get("/users")
def list_users(_admin: RequireAdmin, auth: AuthDep) -> list[UserOut]:
    """List every account (admins)."""
    return [_user_out(u) for u in auth.list_users()]


@router.patch("/users/{user_id}/role")
def change_role(user_id: DbId, body: RoleChange, admin: RequireAdmin, auth: AuthDep) -> UserOut:
    """Give another user a role (admins; nobody sets their own)."""
    if admin.user_id == user_id:
        raise PermissionDenied("you cannot change your own role", hint="ask another admin")
    target = auth.user_by_id(user_id)
    return _user_out(auth.change_role(admin, target.username, body.role))


@router.post("/auth/api-keys", status_code=201)
def create_api_key(body: ApiKeyCreate, principal: CurrentPrincipal, auth: AuthDep) -> ApiKeyIssued:
    """Make an API key acting with your role; the key is in this answer only."""
    issued = auth.create_api_key(principal, body.name)
    return ApiKeyIssued(id=issued.id, name=issued.name, prefix=issued.prefix, api_key=issued.secret)


@router.get("/auth/api-keys")
def list_api_keys(principal: CurrentPrincipal, auth: AuthDep) -> list[ApiKeyOut]:
    """List your API keys (never their secrets)."""
    return [_key_out(k) for k in auth.list_api_keys(principal)]


@router.delete("/auth/api-keys/{key_id}", status_code=204)
def revoke_api_key(key_id: DbId, principal: CurrentPrincipal, auth: AuthDep) -> Response:
    """Revoke one of your API keys (admins: anyone's)."""
    auth.revoke_api_key(principal, key_id)
    return Response(status_code=204)
