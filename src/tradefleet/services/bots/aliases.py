"""The trading-engine paths of the integration documents (``/api/status``, ``/api/positions``, …) as aliases.

Each alias is a thin mapping onto one :class:`BotService` (or :class:`MarketDataService`) call and answers
with the canonical schema; its docstring names the canonical route it mirrors. Single-bot paths act on
``?bot_id=`` or, without it, on the caller's default bot: the only bot the caller may see. With several
the answer is 422 ``bot_required`` listing them; with none, 404 ``bot_not_found`` with a hint to create one.

A ``symbol`` is ``BTC-USDT``, ``BTC_USDT``, ``BTC/USDT`` (``BTC%2FUSDT`` in a path) or, resolved against
the bot's pairs and quote currency, ``BTCUSDT``. Trading aliases accept only the bot's own pairs (404
``symbol_not_found`` otherwise); an unreadable symbol is 422 ``invalid_symbol``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Path, Query
from pydantic import BaseModel, ConfigDict, Field, model_validator

from tradefleet.api.deps import CurrentPrincipal, RequireTrader, RequireViewer
from tradefleet.core.errors import TradeFleetError
from tradefleet.core.risk import RiskSettings
from tradefleet.services.auth import Principal
from tradefleet.services.bots.router import BotsDep
from tradefleet.services.bots.schemas import (
    AccountOut,
    BotOut,
    BotStatusOut,
    BotUpdate,
    CommandOut,
    ForceEnterIn,
    ForceExitIn,
    PerformanceOut,
    PositionsOut,
    TradesPage,
)
from tradefleet.services.bots.service import MAX_PAGE, BotService, UnknownBotError
from tradefleet.services.market.router import Limit, MarketDep, SinceMs
from tradefleet.services.market.schemas import CandlesOut
from tradefleet.services.market.service import DEFAULT_LIMIT

MAX_LISTED = 20  # bot ids named in a bot_required error


class BotRequiredError(TradeFleetError):
    code = "bot_required"
    hint = "pass ?bot_id=<one of your bots> (GET /api/v1/bots lists them)"
    http_status = 422


class InvalidSymbolError(TradeFleetError):
    code = "invalid_symbol"
    hint = "write BASE-QUOTE, e.g. BTC-USDT (also BTC_USDT, BTC%2FUSDT, or BTCUSDT for one of the bot's pairs)"
    http_status = 422


class SymbolNotFoundError(TradeFleetError):
    code = "symbol_not_found"
    http_status = 404


# ---------------------------------------------------------------------------------------------- resolution


def default_bot(bots: BotService, principal: Principal, bot_id: str | None) -> str:
    """Return ``bot_id`` or, when None, the id of the only bot ``principal`` may see."""
    if bot_id is not None:
        return bot_id
    visible = [b.bot_id for b in bots.list_bots(principal)]
    if len(visible) == 1:
        return visible[0]
    if not visible:
        raise UnknownBotError("you have no bot", hint="create one with POST /api/v1/bots")
    listed = ", ".join(visible[:MAX_LISTED]) + (", …" if len(visible) > MAX_LISTED else "")
    raise BotRequiredError(f"you have {len(visible)} bots ({listed}): say which one", details={"bots": visible})


def resolve_symbol(symbol: str, pairs: Sequence[str] = (), quote: str | None = None) -> str:
    """Return ``symbol`` as ``BASE/QUOTE``; a symbol without separator is looked up in ``pairs``, then ``quote``."""
    text = symbol.strip().upper()
    separators = [s for s in "/-_" if s in text]
    if len(separators) == 1:
        parts = text.split(separators[0])
        if len(parts) == 2 and all(p.isalnum() for p in parts):
            return f"{parts[0]}/{parts[1]}"
    elif not separators and text.isalnum():
        for pair in pairs:
            if pair.replace("/", "") == text:
                return pair
        quote = (quote or "").upper()
        if quote and text.endswith(quote) and len(text) > len(quote):
            return f"{text[: -len(quote)]}/{quote}"
    raise InvalidSymbolError(f"cannot read the symbol {symbol!r}")


def bot_pair(bots: BotService, principal: Principal, bot_id: str, symbol: str) -> str:
    """Return the pair of bot ``bot_id`` that ``symbol`` names (404 when the bot does not trade it)."""
    bot = bots.get_bot(principal, bot_id)
    pair = resolve_symbol(symbol, bot.pairs, bot.quote_currency)
    if pair not in bot.pairs:
        raise SymbolNotFoundError(
            f"bot {bot_id!r} does not trade {pair}", hint=f"its pairs: {', '.join(bot.pairs)}", details={"pair": pair}
        )
    return pair


# ---------------------------------------------------------------------------------------------- schemas


class TradingConfigOut(BaseModel):
    """What ``/api/config/trading`` shows of a bot (the full bot: ``GET /api/v1/bots/{bot_id}``)."""

    bot_id: str
    strategy: str
    timeframe: str
    pairs: list[str]
    quote_currency: str
    risk: RiskSettings


class ExecuteIn(BaseModel):
    """A manual trade: ``buy`` opens a position in ``symbol``, ``sell`` closes the bot's open ones in it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    symbol: str = Field(min_length=3, max_length=50, examples=["BTC-USDT"])
    side: Literal["buy", "sell"]
    stake_amount: float | None = Field(None, gt=0, description="quote to commit (buy only); default: the bot's stake")
    bot_id: str | None = Field(None, min_length=1, max_length=63, description="default: ?bot_id= or your only bot")

    @model_validator(mode="after")
    def _stake_for_buys(self) -> ExecuteIn:
        if self.side == "sell" and self.stake_amount is not None:
            raise ValueError("stake_amount applies to buys only")
        return self


def _config_out(bot: BotOut) -> TradingConfigOut:
    return TradingConfigOut(bot_id=bot.bot_id, strategy=bot.strategy, timeframe=bot.timeframe, pairs=bot.pairs,
                            quote_currency=bot.quote_currency, risk=bot.risk)  # fmt: skip


# ---------------------------------------------------------------------------------------------- routes

BotQuery = Annotated[
    str | None, Query(min_length=1, max_length=63, description="bot to act on; default: your only bot")
]
Symbol = Annotated[str, Path(min_length=3, max_length=50, description="BTC-USDT, BTC_USDT, BTC%2FUSDT or BTCUSDT")]

router = APIRouter(prefix="/api", tags=["trading engine (documented aliases)"])


@router.get("/status")
def status(principal: CurrentPrincipal, bots: BotsDep, bot_id: BotQuery = None) -> BotStatusOut:
    """Alias of ``GET /api/v1/bots/{bot_id}/status`` (``BotService.status``)."""
    return bots.status(principal, default_bot(bots, principal, bot_id))


@router.post("/bot/start")
def start(principal: RequireTrader, bots: BotsDep, bot_id: BotQuery = None) -> BotStatusOut:
    """Alias of ``POST /api/v1/bots/{bot_id}/start`` (``BotService.start_bot``): a gateway starts the bot."""
    return bots.start_bot(principal, default_bot(bots, principal, bot_id))


@router.post("/bot/stop")
def stop(principal: RequireTrader, bots: BotsDep, bot_id: BotQuery = None) -> BotStatusOut:
    """Alias of ``POST /api/v1/bots/{bot_id}/stop`` (``BotService.stop_bot``)."""
    return bots.stop_bot(principal, default_bot(bots, principal, bot_id))


@router.get("/positions")
def positions(principal: CurrentPrincipal, bots: BotsDep, bot_id: BotQuery = None) -> PositionsOut:
    """Alias of ``GET /api/v1/bots/{bot_id}/positions`` (``BotService.positions``)."""
    return bots.positions(principal, default_bot(bots, principal, bot_id))


@router.post("/positions/close-all")
def close_all(principal: RequireTrader, bots: BotsDep, bot_id: BotQuery = None) -> CommandOut:
    """Alias of ``POST /api/v1/bots/{bot_id}/force-exit`` with an empty body (``BotService.force_exit``)."""
    return bots.force_exit(principal, default_bot(bots, principal, bot_id), ForceExitIn())


@router.post("/positions/{symbol:path}/close")
def close(symbol: Symbol, principal: RequireTrader, bots: BotsDep, bot_id: BotQuery = None) -> CommandOut:
    """Alias of ``POST /api/v1/bots/{bot_id}/force-exit`` with ``{"pair": symbol}`` (``BotService.force_exit``)."""
    bot = default_bot(bots, principal, bot_id)
    return bots.force_exit(principal, bot, ForceExitIn(pair=bot_pair(bots, principal, bot, symbol)))


@router.get("/trades/history")
def trades_history(
    principal: CurrentPrincipal,
    bots: BotsDep,
    bot_id: BotQuery = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 50,
    offset: Annotated[int, Query(ge=0)] = 0,
    symbol: Annotated[str | None, Query(min_length=3, max_length=50, description="only this pair")] = None,
    exit_reason: Annotated[str | None, Query(max_length=100)] = None,
) -> TradesPage:
    """Alias of ``GET /api/v1/bots/{bot_id}/trades`` (``BotService.trades``); ``symbol`` is its ``pair``."""
    bot = default_bot(bots, principal, bot_id)
    pair = bot_pair(bots, principal, bot, symbol) if symbol is not None else None
    return bots.trades(principal, bot, limit=limit, offset=offset, pair=pair, exit_reason=exit_reason)


@router.get("/performance/stats")
def performance_stats(principal: CurrentPrincipal, bots: BotsDep, bot_id: BotQuery = None) -> PerformanceOut:
    """Alias of ``GET /api/v1/bots/{bot_id}/performance`` (``BotService.performance``)."""
    return bots.performance(principal, default_bot(bots, principal, bot_id))


@router.get("/account")
def account(principal: CurrentPrincipal, bots: BotsDep, bot_id: BotQuery = None) -> AccountOut:
    """Alias of ``GET /api/v1/bots/{bot_id}/account`` (``BotService.account``)."""
    return bots.account(principal, default_bot(bots, principal, bot_id))


@router.get("/config/trading")
def trading_config(principal: CurrentPrincipal, bots: BotsDep, bot_id: BotQuery = None) -> TradingConfigOut:
    """The bot's strategy, timeframe, pairs and risk settings: part of ``GET /api/v1/bots/{bot_id}`` (``get_bot``)."""
    return _config_out(bots.get_bot(principal, default_bot(bots, principal, bot_id)))


@router.put("/config/trading")
def update_trading_config(
    risk: Annotated[dict[str, Any], Body(examples=[{"max_open_trades": 2, "stoploss": -0.05}])],
    principal: RequireTrader,
    bots: BotsDep,
    bot_id: BotQuery = None,
) -> TradingConfigOut:
    """Alias of ``PATCH /api/v1/bots/{bot_id}`` with ``{"risk": body}`` (``BotService.update_bot``).

    The body holds risk settings (``stake_mode``, ``stake_amount``, ``max_open_trades``, ``stoploss``, …);
    the keys given are merged into the bot's, the others keep their values. Applies at the bot's next start.
    """
    bot = default_bot(bots, principal, bot_id)
    return _config_out(bots.update_bot(principal, bot, BotUpdate(risk=risk)))


@router.get("/market-data/{symbol:path}/{timeframe}")
def market_data(
    symbol: Symbol,
    timeframe: Annotated[str, Path(min_length=2, max_length=10, examples=["5m"])],
    principal: RequireViewer,
    bots: BotsDep,
    market: MarketDep,
    bot_id: Annotated[
        str | None, Query(min_length=1, max_length=63, description="resolve BTCUSDT on its pairs")
    ] = None,
    since_ms: SinceMs = None,
    limit: Limit = DEFAULT_LIMIT,
) -> CandlesOut:
    """Alias of ``GET /api/v1/market/candles?pair=…&timeframe=…`` (``MarketDataService.candles``).

    With ``bot_id`` a symbol without separator is resolved on that bot's pairs and quote currency; without
    it the symbol must read as BASE-QUOTE. The series is chosen like a paper bot's: recorded before synthetic.
    """
    if bot_id is None:
        pair = resolve_symbol(symbol)
    else:
        bot = bots.get_bot(principal, bot_id)
        pair = resolve_symbol(symbol, bot.pairs, bot.quote_currency)
    return market.candles(pair, timeframe, since_ms=since_ms, limit=limit)


@router.post("/trades/execute")
def execute(body: ExecuteIn, principal: RequireTrader, bots: BotsDep, bot_id: BotQuery = None) -> CommandOut:
    """Alias of ``POST /api/v1/bots/{bot_id}/force-enter`` (``buy``) or ``/force-exit`` of the pair (``sell``).

    ``buy`` is ``BotService.force_enter`` with ``{"pair", "stake_amount"}``; ``sell`` is
    ``BotService.force_exit`` with ``{"pair"}``, closing every open trade of the bot in that pair.
    """
    if body.bot_id is not None and bot_id is not None and body.bot_id != bot_id:
        raise BotRequiredError(f"bot_id {body.bot_id!r} in the body and {bot_id!r} in the query differ",
                               hint="give the bot once")  # fmt: skip
    bot = default_bot(bots, principal, body.bot_id or bot_id)
    pair = bot_pair(bots, principal, bot, body.symbol)
    if body.side == "buy":
        return bots.force_enter(principal, bot, ForceEnterIn(pair=pair, stake_amount=body.stake_amount))
    return bots.force_exit(principal, bot, ForceExitIn(pair=pair))
