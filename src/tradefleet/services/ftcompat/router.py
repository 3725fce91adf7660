"""Freqtrade's REST API for each bot under ``/ft/{bot_id}/api/v1``: thin translations to :class:`FtCompatService`.

Point a Freqtrade client at ``http://host:port/ft/<bot_id>`` (``FtRestClient(url, user, password)``, or FreqUI's
"bot API URL"). Credentials: HTTP Basic on every call (a TradeFleet username with its password or one of its
API keys), or the tokens of ``token/login`` as ``Authorization: Bearer``; every credential the REST API takes
(access token, API key, service token, ``X-API-Key``) works too. ``ping`` is public. Errors keep TradeFleet's
one error shape: Freqtrade clients only read the status code.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBasic, HTTPBasicCredentials, HTTPBearer

from tradefleet import __version__
from tradefleet.api.deps import AuthDep, current_principal
from tradefleet.services.auth import AuthError, Principal
from tradefleet.services.bots.router import BotsDep
from tradefleet.services.ftcompat.auth import FtAuth
from tradefleet.services.ftcompat.schemas import (
    AccessAndRefreshToken,
    AccessToken,
    Balances,
    Blacklist,
    Count,
    EntryStats,
    ExitStats,
    ForceEnterPayload,
    ForceExitPayload,
    Health,
    Locks,
    Logs,
    MixTagStats,
    OpenTrade,
    PairCandlesPayload,
    PairHistory,
    PerformanceEntry,
    PeriodProfits,
    Ping,
    PlotConfig,
    Profit,
    ResultMsg,
    ShowConfig,
    Stats,
    StatusMsg,
    Trade,
    TradeHistory,
    Version,
    Whitelist,
)
from tradefleet.services.ftcompat.service import FtCompatService
from tradefleet.services.market.service import DEFAULT_LIMIT, MAX_LIMIT

_bearer = HTTPBearer(auto_error=False, description="access token, API key (tfk_…) or service token (tfs_…)")
_basic = HTTPBasic(auto_error=False, description="TradeFleet username, and its password or one of its API keys")
_api_key = APIKeyHeader(name="X-API-Key", auto_error=False, description="API key (tfk_…)")

BearerDep = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
BasicDep = Annotated[HTTPBasicCredentials | None, Depends(_basic)]


def get_ft_auth(request: Request) -> FtAuth:
    """Return the app's :class:`FtAuth` (made on first use: it remembers Basic checks across requests)."""
    found: FtAuth | None = getattr(request.app.state, "ftcompat_auth", None)
    if found is None:
        found = FtAuth(request.app.state.services.auth)
        request.app.state.ftcompat_auth = found  # a race makes two; one is kept and the other forgotten
    return found


FtAuthDep = Annotated[FtAuth, Depends(get_ft_auth)]


def ft_principal(
    request: Request,
    auth: AuthDep,
    ft_auth: FtAuthDep,
    bearer: BearerDep,
    basic: BasicDep,
    api_key: Annotated[str | None, Depends(_api_key)],
) -> Principal:
    """Resolve the caller from HTTP Basic (Freqtrade clients) or any credential the REST API takes."""
    if basic is None or api_key:
        return current_principal(request, auth, bearer, api_key)
    principal = ft_auth.basic(basic.username, basic.password, _ip(request))
    request.state.principal = principal  # as current_principal does: the audit log says who acted
    return principal


def get_ft(request: Request, bots: BotsDep) -> FtCompatService:
    return FtCompatService(bots, getattr(request.app.state, "market_service", None))


def _ip(request: Request) -> str | None:
    return request.client.host if request.client is not None else None


Caller = Annotated[Principal, Depends(ft_principal)]
Ft = Annotated[FtCompatService, Depends(get_ft)]
BotId = Annotated[str, Path(min_length=1, max_length=63)]
PairFilter = Annotated[str | None, Query(max_length=50)]

public = APIRouter(prefix="/ft/{bot_id}/api/v1", tags=["freqtrade"])
private = APIRouter(prefix="/ft/{bot_id}/api/v1", tags=["freqtrade"])


@public.head("/ping", operation_id="ft_ping_head")
@public.get("/ping")
def ping(bot_id: BotId) -> Ping:
    """Answer ``pong`` (public, and the same for every bot id: it tells nothing about bots)."""
    return Ping(status="pong")


@public.post("/token/login")
def token_login(bot_id: BotId, request: Request, ft_auth: FtAuthDep, basic: BasicDep) -> AccessAndRefreshToken:
    """Log in with HTTP Basic (password: a session; API key: the key back as both tokens)."""
    if basic is None:
        raise AuthError("log in with HTTP Basic: your TradeFleet username and password (or API key)")
    tokens = ft_auth.login(basic.username, basic.password, _ip(request))
    return AccessAndRefreshToken(access_token=tokens.access_token, refresh_token=tokens.refresh_token)


@public.post("/token/refresh")
def token_refresh(bot_id: BotId, ft_auth: FtAuthDep, bearer: BearerDep) -> AccessToken:
    """Exchange the refresh token (as ``Authorization: Bearer``) for an access token and the next refresh token.

    TradeFleet refresh tokens are single use: keep the ``refresh_token`` of this answer for the next refresh.
    """
    if bearer is None:
        raise AuthError("send the refresh token as Authorization: Bearer")
    tokens = ft_auth.refresh(bearer.credentials)
    return AccessToken(access_token=tokens.access_token, refresh_token=tokens.refresh_token)


@private.get("/version")
def version(bot_id: BotId, caller: Caller, ft: Ft) -> Version:
    ft.bots.get_bot(caller, bot_id)  # a bot the caller may not see is a 404 here too
    return Version(version=f"tradefleet-{__version__}")


@private.get("/show_config")
def show_config(bot_id: BotId, caller: Caller, ft: Ft) -> ShowConfig:
    return ft.show_config(caller, bot_id)


@private.get("/status")
def status(bot_id: BotId, caller: Caller, ft: Ft) -> list[OpenTrade]:
    """Open trades with their current rate and profit."""
    return ft.status(caller, bot_id)


@private.get("/count")
def count(bot_id: BotId, caller: Caller, ft: Ft) -> Count:
    return ft.count(caller, bot_id)


@private.get("/trades")
def trades(
    bot_id: BotId,
    caller: Caller,
    ft: Ft,
    limit: Annotated[int, Query(ge=1, le=500)] = 500,
    offset: Annotated[int, Query(ge=0)] = 0,
    order_by_id: bool = True,
) -> TradeHistory:
    """Closed trades by id (``order_by_id=false``: newest close first)."""
    return ft.trades(caller, bot_id, limit, offset, order_by_id)


@private.get("/trade/{tradeid}")
def trade(bot_id: BotId, tradeid: Annotated[int, Path(ge=0)], caller: Caller, ft: Ft) -> OpenTrade:
    return ft.trade(caller, bot_id, tradeid)


@private.get("/profit")
def profit(bot_id: BotId, caller: Caller, ft: Ft) -> Profit:
    return ft.profit(caller, bot_id)


@private.get("/balance")
def balance(bot_id: BotId, caller: Caller, ft: Ft) -> Balances:
    return ft.balance(caller, bot_id)


@private.get("/performance")
def performance(bot_id: BotId, caller: Caller, ft: Ft) -> list[PerformanceEntry]:
    """Closed-trade profit per pair, most profitable first."""
    return ft.performance(caller, bot_id)


@private.get("/entries")
def entries(bot_id: BotId, caller: Caller, ft: Ft, pair: PairFilter = None) -> list[EntryStats]:
    return ft.entries(caller, bot_id, pair)


@private.get("/exits")
def exits(bot_id: BotId, caller: Caller, ft: Ft, pair: PairFilter = None) -> list[ExitStats]:
    return ft.exits(caller, bot_id, pair)


@private.get("/mix_tags")
def mix_tags(bot_id: BotId, caller: Caller, ft: Ft, pair: PairFilter = None) -> list[MixTagStats]:
    return ft.mix_tags(caller, bot_id, pair)


def _periods(unit: str, default: int) -> Callable[..., PeriodProfits]:
    def handler(
        bot_id: BotId, caller: Caller, ft: Ft, timescale: Annotated[int, Query(ge=1, le=1000)] = default
    ) -> PeriodProfits:
        return ft.period_profits(caller, bot_id, unit, timescale)

    handler.__name__ = {"days": "daily", "weeks": "weekly", "months": "monthly"}[unit]
    handler.__doc__ = f"Closed-trade profit of the last ``timescale`` {unit}, up to the bot's time, newest first."
    return handler


private.add_api_route("/daily", _periods("days", 7), methods=["GET"])
private.add_api_route("/weekly", _periods("weeks", 4), methods=["GET"])
private.add_api_route("/monthly", _periods("months", 3), methods=["GET"])


@private.get("/stats")
def stats(bot_id: BotId, caller: Caller, ft: Ft) -> Stats:
    return ft.stats(caller, bot_id)


@private.get("/whitelist")
def whitelist(bot_id: BotId, caller: Caller, ft: Ft) -> Whitelist:
    return ft.whitelist(caller, bot_id)


@private.get("/blacklist")
def blacklist(bot_id: BotId, caller: Caller, ft: Ft) -> Blacklist:
    """Always empty: a TradeFleet bot trades exactly its pairs."""
    ft.bots.get_bot(caller, bot_id)
    return Blacklist(blacklist=[], blacklist_expanded=[], errors={}, length=0, method=["StaticPairList"])


@private.get("/locks")
def locks(bot_id: BotId, caller: Caller, ft: Ft) -> Locks:
    return ft.locks(caller, bot_id)


@private.get("/logs")
def logs(bot_id: BotId, caller: Caller, ft: Ft, limit: Annotated[int | None, Query(ge=1, le=1000)] = None) -> Logs:
    return ft.logs(caller, bot_id, limit)


@private.get("/health")
def health(bot_id: BotId, caller: Caller, ft: Ft) -> Health:
    return ft.health(caller, bot_id)


@private.get("/plot_config")
def plot_config(bot_id: BotId, caller: Caller, ft: Ft) -> PlotConfig:
    """Empty: the chart shows candles and trades only."""
    ft.bots.get_bot(caller, bot_id)
    return PlotConfig(main_plot={}, subplots={})


@private.get("/pair_candles")
def pair_candles(
    bot_id: BotId,
    caller: Caller,
    ft: Ft,
    pair: Annotated[str, Query(min_length=3, max_length=50)],
    timeframe: Annotated[str, Query(min_length=2, max_length=5)],
    limit: Annotated[int | None, Query(ge=1, le=MAX_LIMIT)] = None,
) -> PairHistory:
    """The candles the bot traded on, up to the last one it processed."""
    return ft.pair_candles(caller, bot_id, pair, timeframe, limit or DEFAULT_LIMIT)


@private.post("/pair_candles")
def pair_candles_post(bot_id: BotId, body: PairCandlesPayload, caller: Caller, ft: Ft) -> PairHistory:
    """As ``GET pair_candles`` (columns beyond OHLCV are not kept: TradeFleet stores no indicators)."""
    return ft.pair_candles(caller, bot_id, body.pair, body.timeframe, body.limit or DEFAULT_LIMIT)


@private.post("/start")
def start(bot_id: BotId, caller: Caller, ft: Ft) -> StatusMsg:
    """Run the bot (from paused: enter trades again); a gateway picks it up."""
    return ft.start(caller, bot_id)


@private.post("/stop")
def stop(bot_id: BotId, caller: Caller, ft: Ft) -> StatusMsg:
    return ft.stop(caller, bot_id)


@private.post("/stopentry")
@private.post("/stopbuy")
@private.post("/pause")
def stop_entries(bot_id: BotId, caller: Caller, ft: Ft) -> StatusMsg:
    """Stop entering trades; exits go on (``start`` resumes entries)."""
    return ft.stop_entries(caller, bot_id)


@private.post("/forceenter")
@private.post("/forcebuy")
def force_enter(bot_id: BotId, body: ForceEnterPayload, caller: Caller, ft: Ft) -> Trade | StatusMsg:
    """Enter a pair long at market now (risk rules apply); answers with the trade."""
    return ft.force_enter(caller, bot_id, body)


@private.post("/forceexit")
@private.post("/forcesell")
def force_exit(bot_id: BotId, body: ForceExitPayload, caller: Caller, ft: Ft) -> ResultMsg:
    """Exit one open trade (``tradeid``) or all of them (``"all"``) at market."""
    return ft.force_exit(caller, bot_id, body)


router = APIRouter()
router.include_router(public)
router.include_router(private)
